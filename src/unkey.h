/*-------------------------------------------------------------------------
 *
 * unkey.h
 *	  Declarations shared by the unkey extension's source files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_H
#define UNKEY_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "utils/snapshot.h"

/* SHA-256 digest length; the stored key hash is exactly this long */
#define UNKEY_HASH_LEN 32

/* Bounds from Unkey's API, see README "Limits" */
#define UNKEY_MIN_BYTE_LENGTH 16
#define UNKEY_MAX_BYTE_LENGTH 255
#define UNKEY_MAX_KEY_CHARS 512
#define UNKEY_MAX_TAGS 20
#define UNKEY_MAX_TAG_CHARS 512

/* tables.c: the tables verification reads by index */
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
	UNKEY_NTABLES
} UnkeyTable;

/* The columns UnkeyFetch returns for UNKEY_KEYS, in order */
typedef enum KeyColumn
{
	K_ID, K_API_ID, K_NAME, K_IDENTITY_ID, K_META, K_EXPIRES, K_ENABLED,
	K_REMAINING, K_REFILL_AMOUNT, K_REFILL_DAY, K_LAST_REFILL_AT, K_DELETED_AT,
	K_NCOLS
} KeyColumn;

extern int	UnkeyFetch(UnkeyTable t, Datum key, Snapshot snapshot,
					   Datum **values, bool **nulls);

/* unkey.c */
extern TimestampTz UnkeyNow(void);

/* keygen.c */
extern void UnkeyHashKey(const char *key, size_t len, unsigned char *out);

/* credits.c */
extern bool UnkeyRefillDue(bool last_isnull, TimestampTz last_refill,
						   bool day_isnull, int32 refill_day, TimestampTz now);
extern int64 UnkeyCreditsNow(int64 remaining, bool amount_isnull, int64 refill_amount,
							 bool last_isnull, TimestampTz last_refill,
							 bool day_isnull, int32 refill_day, TimestampTz now);

#endif							/* UNKEY_H */
