/*-------------------------------------------------------------------------
 *
 * limiter.h
 *	  The sliding-window rate limiter in shared memory (limiter.c).
 *
 * The limiter only counts: callers validate a limit against Unkey's bounds
 * (ratelimit.h), build its counter key, and ask for a batch of limits to
 * be checked and counted all-or-nothing.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_LIMITER_H
#define UNKEY_LIMITER_H

#include "postgres.h"

/* A counter: hashed as raw bytes, so always built by UnkeyRateLimitKey */
typedef struct RLKey
{
	uint8		digest[16];		/* BLAKE2b of database, domain, namespace, identifier */
	int64		duration_ms;
} RLKey;

/* One limit to check and count, and (after UnkeyRateLimit) its outcome */
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
	bool		is_new;			/* it has no counter yet */
} RLRequest;

extern void LimiterInit(void);
extern void UnkeyRequireLimiter(void);
extern void UnkeyRateLimitKey(RLKey *key, const char *domain, const char *ns, int nslen,
							  const char *id, int idlen, int64 duration_ms);
extern bool UnkeyRateLimit(RLRequest *reqs, int n, int64 now_ms);

#endif							/* UNKEY_LIMITER_H */
