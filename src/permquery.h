/*-------------------------------------------------------------------------
 *
 * permquery.h
 *	  The permission query language, free of PostgreSQL headers so that a
 *	  fuzzer can build it alone.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PERMQUERY_H
#define PERMQUERY_H

#include <stdbool.h>
#include <stddef.h>

#define PQ_MAX_QUERY_CHARS 1000
#define PQ_MAX_DEPTH 100		/* levels of parentheses */
#define PQ_MAX_ITEMS PQ_MAX_QUERY_CHARS
#define PQ_ERRMSG_LEN 320
#define PQ_MAX_NORMALIZED (PQ_MAX_QUERY_CHARS * 8 + 1)

typedef enum PQOp
{
	PQ_LEAF,
	PQ_AND,
	PQ_OR
} PQOp;

/* One node of the postfix program; a leaf names a slice of the query */
typedef struct PQItem
{
	PQOp		op;
	int			start;			/* PQ_LEAF: byte offset of the permission */
	int			len;			/* PQ_LEAF: its length */
	int			left;			/* PQ_AND, PQ_OR: index of the left operand's root */
} PQItem;

/* Is this permission granted?  Called by pq_eval for each leaf it reaches. */
typedef bool (*pq_granted) (const char *name, int len, void *arg);

/* Parse query (len bytes) into items; returns the item count, or -1 and a message */
extern int	pq_parse(const char *query, int len, PQItem *items, char *errmsg);

/* Evaluate parsed items, short-circuiting AND and OR */
extern bool pq_eval(const char *query, const PQItem *items, int nitems,
					pq_granted granted, void *arg);

/* The canonical, fully parenthesised form; returns its length */
extern int	pq_normalize(const char *query, const PQItem *items, int nitems, char *out);

#endif							/* PERMQUERY_H */
