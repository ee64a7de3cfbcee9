/*-------------------------------------------------------------------------
 *
 * wildcard.c
 *	  The rate-limit override matcher (ratelimit.c picks the override).
 *
 * Free of PostgreSQL headers: test/fuzz/wildcard_fuzz.c builds it alone
 * and checks it against a plain recursive matcher.
 *
 *-------------------------------------------------------------------------
 */
#include "wildcard.h"

/*
 * Does the pattern match the whole string?  '*' matches any run of bytes,
 * the empty one too; every other byte matches itself.  Greedy with one
 * backtrack point, so it runs in O(len(pattern) * len(string)) at worst.
 */
bool
UnkeyWildcardMatch(const char *p, int plen, const char *s, int slen)
{
	int			pi = 0,
				si = 0,
				star = -1,
				mark = 0;

	while (si < slen)
	{
		if (pi < plen && p[pi] == '*')
		{
			star = pi++;
			mark = si;
		}
		else if (pi < plen && p[pi] == s[si])
		{
			pi++;
			si++;
		}
		else if (star >= 0)
		{
			pi = star + 1;
			si = ++mark;
		}
		else
			return false;
	}
	while (pi < plen && p[pi] == '*')
		pi++;
	return pi == plen;
}
