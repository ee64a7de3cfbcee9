/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *	  Unkey's bounds for a rate limit, defined once, and their checks
 *	  (ratelimit.c).
 *
 * They apply to a named config of a key or identity, and to an inline
 * limit given to verification; the SQL side checks the same through
 * unkey._check_ratelimit_config, so both raise the same errors.  As in
 * Unkey, a name in a verification's ratelimits may be longer (255) than a
 * stored config's (128).  The limiter itself refuses any duration outside
 * them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_RATELIMIT_H
#define UNKEY_RATELIMIT_H

#include "postgres.h"

#define RATELIMIT_MIN_NAME_CHARS 3
#define RATELIMIT_MAX_NAME_CHARS 128	/* a named config of a key or identity */
#define RATELIMIT_MAX_REQUEST_NAME_CHARS 255	/* a limit named in a verification */
#define RATELIMIT_MIN_LIMIT 1
#define RATELIMIT_MIN_DURATION_MS 1000	/* 1 second */
#define RATELIMIT_MAX_DURATION_MS INT64CONST(2592000000)	/* 30 days */

/* Raise 22023, with the field's message and a hint, when out of bounds (NULL name: missing) */
extern void RatelimitCheckName(const char *name, int bytes, int max_chars);
extern void RatelimitCheckLimit(int64 limit);
extern void RatelimitCheckDuration(int64 duration_ms);

#endif							/* UNKEY_RATELIMIT_H */
