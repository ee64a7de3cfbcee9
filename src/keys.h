/*-------------------------------------------------------------------------
 *
 * keys.h
 *	  Keys and their verification: hashing (keys.c) and the direct index
 *	  reads of verification's hot path (tables.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_KEYS_H
#define UNKEY_KEYS_H

#include "postgres.h"

#include "utils/snapshot.h"

/* SHA-256 digest length; the stored key hash is exactly this long */
#define UNKEY_HASH_LEN 32

/* ids are a prefix and 22 base58 characters, well within this */
#define UNKEY_MAX_ID_BYTES 64

/* keys.c */
extern void UnkeyHashKey(const char *key, size_t len, unsigned char *out);
extern char *UnkeyNewId(const char *prefix);

/* tables.c: the tables verification and the rate-limit caches read by index */
typedef enum UnkeyTable
{
	UNKEY_KEYS,
	UNKEY_APIS,
	UNKEY_IDENTITIES,
	UNKEY_KEY_PERMISSIONS,
	UNKEY_KEY_ROLES,
	UNKEY_ROLE_PERMISSIONS,
	UNKEY_PERMISSIONS,
	UNKEY_ROLES,
	UNKEY_KEY_RATELIMITS,
	UNKEY_IDENTITY_RATELIMITS,
	UNKEY_NAMESPACES_BY_NAME,
	UNKEY_NAMESPACES_BY_ID,
	UNKEY_OVERRIDES,
	UNKEY_ROOT_KEYS,
	UNKEY_CONFIG_VERSION,
	UNKEY_NTABLES
} UnkeyTable;

/* The columns UnkeyFetch returns for UNKEY_KEYS, in order */
typedef enum KeyColumn
{
	K_ID, K_API_ID, K_NAME, K_IDENTITY_ID, K_META, K_EXPIRES, K_ENABLED,
	K_REMAINING, K_REFILL_AMOUNT, K_REFILL_DAY, K_LAST_REFILL_AT, K_DELETED_AT,
	K_NCOLS
} KeyColumn;

/* The columns of unkey.verification, in order (src/sql/keys.sql) */
typedef enum VerificationColumn
{
	V_VALID, V_CODE, V_KEY_ID, V_API_ID, V_NAME, V_EXTERNAL_ID, V_IDENTITY_ID,
	V_META, V_EXPIRES, V_ENABLED, V_CREDITS, V_PERMISSIONS, V_ROLES,
	V_RATELIMITS, V_IDENTITY_META, V_NCOLS
} VerificationColumn;

/* The columns of a rate-limit config, for both key and identity configs */
typedef enum RatelimitColumn
{
	R_NAME, R_LIMIT, R_DURATION_MS, R_AUTO_APPLY, R_NCOLS
} RatelimitColumn;

extern int	UnkeyFetch(UnkeyTable t, Datum key, Snapshot snapshot,
					   Datum **values, bool **nulls);
extern Oid	UnkeyTableRelid(UnkeyTable t);

/* On Citus: has cached configuration changed (on any node) since *seen? */
extern bool UnkeyConfigChanged(int64 *seen);

/* On Citus: are the rows of t for this key in a shard on another node? */
extern bool UnkeyElsewhere(UnkeyTable t, Datum key);

/* On Citus: is this relation distributed (its rows in shards)? */
extern bool UnkeyDistributed(Oid relid);

#endif							/* UNKEY_KEYS_H */
