/*-------------------------------------------------------------------------
 *
 * wildcard_fuzz.c
 *	  libFuzzer harness for the rate-limit override matcher (src/wildcard.c).
 *
 * Built alone, without PostgreSQL, with clang -fsanitize=fuzzer,address,
 * undefined.  An input is a pattern and a string, split at the first NUL
 * byte (a string of its own bytes when there is none).  The greedy matcher
 * must answer exactly as a plain dynamic-programming matcher does, and
 * aborts otherwise.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wildcard.h"

#define MAX_LEN 256

/* The reference: dp[i][j] says whether p[i..] matches s[j..] */
static bool
ReferenceMatch(const char *p, int plen, const char *s, int slen)
{
	static bool dp[MAX_LEN + 1][MAX_LEN + 1];

	for (int i = plen; i >= 0; i--)
		for (int j = slen; j >= 0; j--)
		{
			if (i == plen)
				dp[i][j] = j == slen;
			else if (p[i] == '*')
				dp[i][j] = dp[i + 1][j] || (j < slen && dp[i][j + 1]);
			else
				dp[i][j] = j < slen && p[i] == s[j] && dp[i + 1][j + 1];
		}
	return dp[0][0];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *) data;
	const char *nul = memchr(data, 0, size);
	int			plen = nul ? (int) (nul - p) : (int) size;
	const char *s = nul ? nul + 1 : p;
	int			slen = nul ? (int) (size - plen - 1) : (int) size;

	if (plen > MAX_LEN || slen > MAX_LEN)
		return 0;
	if (UnkeyWildcardMatch(p, plen, s, slen) != ReferenceMatch(p, plen, s, slen))
		abort();
	return 0;
}
