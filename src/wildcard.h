/*-------------------------------------------------------------------------
 *
 * wildcard.h
 *	  The rate-limit override matcher, free of PostgreSQL headers so that a
 *	  fuzzer can build it alone (test/fuzz/wildcard_fuzz.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_WILDCARD_H
#define UNKEY_WILDCARD_H

#include <stdbool.h>

/* Does the pattern match the whole string?  '*' matches any run of bytes */
extern bool UnkeyWildcardMatch(const char *p, int plen, const char *s, int slen);

#endif							/* UNKEY_WILDCARD_H */
