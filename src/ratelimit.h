/*-------------------------------------------------------------------------
 *
 * ratelimit.h
 *	  Unkey's bounds for a rate limit, defined once.
 *
 * They apply to a named config of a key or identity, to an inline limit
 * given to verification, and to a standalone limit.  The limiter itself
 * refuses any duration outside them.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_RATELIMIT_H
#define UNKEY_RATELIMIT_H

#include "postgres.h"

#define RATELIMIT_MIN_NAME_CHARS 3
#define RATELIMIT_MAX_NAME_CHARS 128
#define RATELIMIT_MIN_LIMIT 1
#define RATELIMIT_MIN_DURATION_MS 1000	/* 1 second */
#define RATELIMIT_MAX_DURATION_MS INT64CONST(2592000000)	/* 30 days */

#endif							/* UNKEY_RATELIMIT_H */
