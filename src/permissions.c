/*-------------------------------------------------------------------------
 *
 * permissions.c
 *	  The permission query language (permquery.c) for PostgreSQL: parsing
 *	  with the designed errors, matching for verification, and the SQL
 *	  functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "permissions.h"
#include "utils.h"

/* The granted permissions, sorted bytewise for binary search */
typedef struct Granted
{
	int			n;
	Datum	   *perms;
} Granted;

/* pq_granted callback: is this exact name in the sorted set? */
static bool
IsGranted(const char *name, int len, void *arg)
{
	Granted    *g = arg;
	int			lo = 0,
				hi = g->n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		text	   *t = DatumGetTextPP(g->perms[mid]);
		int			c = UnkeyCompareBytes(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), name, len);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return false;
}

/* Parse a query or raise 42601 with the designed message and position */
int
UnkeyParsePermissionQuery(text *query, PQItem *items)
{
	char		message[PQ_ERRMSG_LEN];
	int			n = pq_parse(VARDATA_ANY(query), VARSIZE_ANY_EXHDR(query), items, message);

	if (n < 0)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("invalid permission query: %s", message),
				 errhint("Join permission names with AND and OR, and group them with parentheses.")));
	return n;
}

/* Does the query hold for these granted permissions (sorted bytewise)? */
bool
UnkeyPermissionsMatch(text *query, PQItem *items, int nitems, Datum *sorted_perms, int nperms)
{
	Granted		g = {nperms, sorted_perms};

	return pq_eval(VARDATA_ANY(query), items, nitems, IsGranted, &g);
}

PG_FUNCTION_INFO_V1(unkey_permissions_match);

/* unkey_permissions_match(query, permissions text[]) returns boolean */
Datum
unkey_permissions_match(PG_FUNCTION_ARGS)
{
	text	   *query = PG_GETARG_TEXT_PP(0);
	PQItem		items[PQ_MAX_ITEMS];
	int			nitems = UnkeyParsePermissionQuery(query, items);
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			kept = 0;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			elems[kept++] = elems[i];	/* a NULL grants nothing */
	qsort(elems, kept, sizeof(Datum), UnkeyCompareTexts);
	PG_RETURN_BOOL(UnkeyPermissionsMatch(query, items, nitems, elems, kept));
}

PG_FUNCTION_INFO_V1(unkey_normalize_permission_query);

/* unkey_normalize_permission_query(query): the canonical, fully parenthesised form */
Datum
unkey_normalize_permission_query(PG_FUNCTION_ARGS)
{
	text	   *query = PG_GETARG_TEXT_PP(0);
	PQItem		items[PQ_MAX_ITEMS];
	int			nitems = UnkeyParsePermissionQuery(query, items);
	char	   *out = palloc(PQ_MAX_NORMALIZED);
	int			len = pq_normalize(VARDATA_ANY(query), items, nitems, out);

	PG_RETURN_TEXT_P(cstring_to_text_with_len(out, len));
}
