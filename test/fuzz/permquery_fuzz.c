/*-------------------------------------------------------------------------
 *
 * permquery_fuzz.c
 *	  libFuzzer harness for the permission query language (src/permquery.c).
 *
 * Built alone, without PostgreSQL, with clang -fsanitize=fuzzer,address,
 * undefined.  For every input it parses; when the input parses, it checks
 * two properties and aborts if either fails:
 *	 - the canonical form parses again (unless its added parentheses take it
 *	   past the length or nesting limits), to the same canonical form;
 *	 - the canonical form evaluates exactly like the input, for a set of
 *	   granted permissions derived from the input itself.
 *
 *-------------------------------------------------------------------------
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "permquery.h"

static uint32_t salt;

/* Grant a permission when a hash of its name, salted per input, is odd */
static bool
Granted(const char *name, int len, void *arg)
{
	uint32_t	h = 2166136261u ^ salt;

	for (int i = 0; i < len; i++)
		h = (h ^ (unsigned char) name[i]) * 16777619u;
	return (h & 1) != 0;
}

/* One fuzzer input: parse, evaluate, normalise, and check the round trip */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static PQItem items[PQ_MAX_ITEMS];
	static PQItem again[PQ_MAX_ITEMS];
	static char errmsg[PQ_ERRMSG_LEN];
	static char canon[PQ_MAX_NORMALIZED];
	static char canon2[PQ_MAX_NORMALIZED];
	int			n;
	int			n2;
	int			len;

	if (size > 4 * PQ_MAX_QUERY_CHARS)
		return 0;
	n = pq_parse((const char *) data, (int) size, items, errmsg);
	if (n < 0)
		return 0;

	salt = (uint32_t) size;
	len = pq_normalize((const char *) data, items, n, canon);
	n2 = pq_parse(canon, len, again, errmsg);

	/*
	 * The canonical form adds parentheses, so it may exceed the length or
	 * nesting limits that the input met; any other failure is a bug.
	 */
	if (n2 < 0 && strstr(errmsg, "At most") != NULL)
		return 0;
	if (n2 != n)
		abort();				/* the canonical form must parse to the same program */
	pq_normalize(canon, again, n2, canon2);
	if (strcmp(canon, canon2) != 0)
		abort();
	if (pq_eval((const char *) data, items, n, Granted, NULL) != pq_eval(canon, again, n2, Granted, NULL))
		abort();
	return 0;
}
