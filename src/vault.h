/*-------------------------------------------------------------------------
 *
 * vault.h
 *	  The vault's root key (vault.c): read at server start from
 *	  unkey.vault_key_file, never returned to SQL.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_VAULT_H
#define UNKEY_VAULT_H

#include "postgres.h"

#define UNKEY_VAULT_KEY_BYTES 32

extern void VaultInit(void);

/* The root key; raises 55000 when the server runs without one */
extern const unsigned char *UnkeyVaultKey(void);

#endif							/* UNKEY_VAULT_H */
