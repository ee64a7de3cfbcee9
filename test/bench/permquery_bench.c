/*-------------------------------------------------------------------------
 *
 * permquery_bench.c
 *	  Micro-benchmark of the permission query language: parse and evaluate
 *	  a 25-term query a million times, and report nanoseconds per run.
 *
 *	  cc -O2 -Isrc test/bench/permquery_bench.c src/permquery.c -o permquery_bench
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "permquery.h"

/* 25 leaves, both operators, three levels of parentheses */
static const char query[] =
"(docs.read AND docs.write) OR (billing.read AND (billing.write OR billing.admin)) OR "
"(api.keys.create AND api.keys.read AND api.keys.update AND api.keys.delete) OR "
"(ratelimit.ns.limit AND (ratelimit.ns.read OR ratelimit.ns.update)) OR admin OR "
"(team:1/member AND team:1/owner) OR (p1 AND p2 AND p3 AND p4 AND p5 AND p6 AND p7) OR "
"(q1 AND q2 AND q3)";

/* The key's 6 permissions, sorted for binary search as in verification */
static const char *const granted[] = {
	"api.keys.create", "api.keys.read", "billing.read", "docs.read", "p1", "ratelimit.ns.limit"
};

/* pq_granted callback: binary search in the sorted grants */
static bool
Granted(const char *name, int len, void *arg)
{
	int			lo = 0,
				hi = sizeof(granted) / sizeof(granted[0]) - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		int			glen = strlen(granted[mid]);
		int			c = memcmp(granted[mid], name, glen < len ? glen : len);

		if (c == 0)
			c = (glen > len) - (glen < len);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/* Nanoseconds of a monotonic clock */
static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int
main(void)
{
	static PQItem items[PQ_MAX_ITEMS];
	char		errmsg[PQ_ERRMSG_LEN];
	const int	runs = 1000000;
	int			leaves = 0;
	int			n = pq_parse(query, strlen(query), items, errmsg);
	volatile int trues = 0;
	double		t0,
				t1,
				t2;

	if (n < 0)
	{
		fprintf(stderr, "%s\n", errmsg);
		return 1;
	}
	for (int i = 0; i < n; i++)
		leaves += items[i].op == PQ_LEAF;

	t0 = Now();
	for (int i = 0; i < runs; i++)
	{
		n = pq_parse(query, strlen(query), items, errmsg);
		trues += pq_eval(query, items, n, Granted, NULL);
	}
	t1 = Now();
	for (int i = 0; i < runs; i++)
		trues += pq_eval(query, items, n, Granted, NULL);
	t2 = Now();

	printf("query: %d terms, %zu bytes, result %s\n", leaves, strlen(query), trues ? "true" : "false");
	printf("parse + evaluate: %.0f ns per run (%d runs)\n", (t1 - t0) / runs, runs);
	printf("evaluate only:    %.0f ns per run\n", (t2 - t1) / runs);
	return 0;
}
