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
#include "access/tupdesc.h"
#include "fmgr.h"

/* SHA-256 digest length; the stored key hash is exactly this long */
#define UNKEY_HASH_LEN 32

/* Bounds from Unkey's API, see README "Limits" */
#define UNKEY_MIN_BYTE_LENGTH 16
#define UNKEY_MAX_BYTE_LENGTH 255
#define UNKEY_MAX_KEY_CHARS 512
#define UNKEY_MAX_TAGS 20
#define UNKEY_MAX_TAG_CHARS 512
#define UNKEY_MAX_ID_BYTES 64	/* ids are a prefix and 22 base58 characters */

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
	UNKEY_KEY_RATELIMITS,
	UNKEY_IDENTITY_RATELIMITS,
	UNKEY_NAMESPACES_BY_NAME,
	UNKEY_NAMESPACES_BY_ID,
	UNKEY_OVERRIDES,
	UNKEY_NTABLES
} UnkeyTable;

/* The columns UnkeyFetch returns for UNKEY_KEYS, in order */
typedef enum KeyColumn
{
	K_ID, K_API_ID, K_NAME, K_IDENTITY_ID, K_META, K_EXPIRES, K_ENABLED,
	K_REMAINING, K_REFILL_AMOUNT, K_REFILL_DAY, K_LAST_REFILL_AT, K_DELETED_AT,
	K_NCOLS
} KeyColumn;

/* The columns of a rate-limit config, for both key and identity configs */
typedef enum RatelimitColumn
{
	R_NAME, R_LIMIT, R_DURATION_MS, R_AUTO_APPLY, R_NCOLS
} RatelimitColumn;

extern int	UnkeyFetch(UnkeyTable t, Datum key, Snapshot snapshot,
					   Datum **values, bool **nulls);
extern void UnkeyResetLimitCaches(void);

/* unkey.c */
extern TimestampTz UnkeyNow(void);
extern bool UnkeyCharsBetween(const char *s, int bytes, int min, int max);
extern TupleDesc UnkeyResultDesc(FunctionCallInfo fcinfo);
extern void UnkeySaveFile(const char *path, bool (*writer) (FILE *f, void *arg), void *arg);
extern int	UnkeyCompareBytes(const char *a, int alen, const char *b, int blen);
extern int	UnkeyCompareTexts(const void *a, const void *b);

/* keys.c */
extern void UnkeyHashKey(const char *key, size_t len, unsigned char *out);

/* limiter.c: the shared-memory limiter */
typedef struct RLKey
{
	uint8		digest[16];		/* BLAKE2b of domain, namespace, identifier */
	int64		duration_ms;
} RLKey;

typedef struct RLRequest
{
	RLKey		key;
	int64		limit;			/* 0 always denies */
	int64		cost;
	/* results */
	bool		passed;			/* this limit alone would pass */
	int64		effective;
	int64		remaining;
	int64		reset_ms;		/* Unix ms */
} RLRequest;

#define UNKEY_MIN_DURATION_MS 1000
#define UNKEY_MAX_DURATION_MS INT64CONST(2592000000)
#define UNKEY_MAX_NAME_CHARS 512

extern void UnkeyRateLimitInit(void);
extern void UnkeyRequireLimiter(void);
extern void UnkeyRateLimitKey(RLKey *key, const char *domain, const char *ns, int nslen,
							  const char *id, int idlen, int64 duration_ms);
extern bool UnkeyRateLimit(RLRequest *reqs, int n, int64 now_ms);
extern int64 UnkeyUnixMs(TimestampTz ts);
extern TimestampTz UnkeyFromUnixMs(int64 ms);

/* ratelimit.c */
extern bool UnkeyWildcardMatch(const char *p, int plen, const char *s, int slen);
extern int64 UnkeyIntervalMs(Interval *iv);
extern int	errcode_for_sqlstate(const char *code);

/* permissions.c */
struct PQItem;
extern int	UnkeyParsePermissionQuery(text *query, struct PQItem *items);
extern bool UnkeyPermissionsMatch(text *query, struct PQItem *items, int nitems,
								  Datum *sorted_perms, int nperms);

/* events.c: the event pipeline */
#define UNKEY_EVENT_VERIFICATION 1
#define UNKEY_EVENT_RATELIMIT 2
#define UNKEY_EVENT_NUMS 4
#define UNKEY_EVENT_STRS 8

/* the strings of a verification event, in the order unkey._store_verifications takes them */
enum
{
	EV_V_HASH, EV_V_REQUEST_ID, EV_V_API_ID, EV_V_KEY_ID, EV_V_IDENTITY_ID,
	EV_V_EXTERNAL_ID, EV_V_OUTCOME, EV_V_TAGS, EV_V_NSTR
};

/* the strings of a rate-limit event; num[] holds limit, remaining, reset (Unix ms), cost */
enum
{
	EV_R_REQUEST_ID, EV_R_NAMESPACE_ID, EV_R_NAMESPACE, EV_R_IDENTIFIER, EV_R_OVERRIDE_ID,
	EV_R_NSTR
};

typedef struct UnkeyEvent
{
	uint8		kind;
	uint8		flag;			/* rate limits: passed */
	int			nstr;
	TimestampTz time;
	double		latency_ms;
	int64		num[UNKEY_EVENT_NUMS];	/* verification: spent credits */
	const char *str[UNKEY_EVENT_STRS];	/* NULL for SQL NULL */
	int			len[UNKEY_EVENT_STRS];
} UnkeyEvent;

extern void UnkeyEventsInit(void);
extern void UnkeyEventRequestId(UnkeyEvent *e, int s);
extern void UnkeyEmitEvent(const UnkeyEvent *e);
extern PGDLLEXPORT void UnkeyEventWorkerMain(Datum main_arg);

/* credits.c */
extern bool UnkeyRefillDue(bool last_isnull, TimestampTz last_refill,
						   bool day_isnull, int32 refill_day, TimestampTz now);
extern int64 UnkeyCreditsNow(int64 remaining, bool amount_isnull, int64 refill_amount,
							 bool last_isnull, TimestampTz last_refill,
							 bool day_isnull, int32 refill_day, TimestampTz now);

#endif							/* UNKEY_H */
