/*-------------------------------------------------------------------------
 *
 * tables.c
 *	  Direct index access to unkey's tables for the verification hot path.
 *
 * Verification reads a key, its API, its identity and its permissions by
 * primary key.  Planning and running SQL for those lookups costs far more
 * than the lookups themselves, so they go straight to the btree indexes, the
 * way PostgreSQL reads its own catalogs.  Writes stay in SQL.
 *
 * Each backend resolves the OIDs of a table, its index and the columns it
 * reads when it first reads the table, and forgets them when a relcache
 * invalidation names one of them (or all relations), so DROP EXTENSION and
 * CREATE EXTENSION in a running session are safe.  Rows are read with the
 * caller's MVCC snapshot and AccessShareLock, like any SELECT.  Callers that
 * cache what they read register their own relcache callback, and can ask
 * here for the OID of a table to recognise its invalidations.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "executor/tuptable.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "keys.h"

#define MAX_COLS 12

typedef struct TableInfo
{
	const char *relname;
	const char *indexname;		/* a btree whose first column is the lookup key */
	const char *cols[MAX_COLS]; /* the columns returned, in this order */
	bool		valid;			/* relid ... attnums are resolved */
	Oid			relid;
	Oid			indexid;
	RegProcedure eqproc;		/* equality on the index's first column */
	Oid			collation;
	int			ncols;
	AttrNumber	attnums[MAX_COLS];
} TableInfo;

/* The order of keys' columns must match KeyColumn in keys.h */
static TableInfo tables[UNKEY_NTABLES] = {
	[UNKEY_KEYS] = {"keys", "keys_pkey",
		{"id", "api_id", "name", "identity_id", "meta", "expires", "enabled",
	"remaining", "refill_amount", "refill_day", "last_refill_at", "deleted_at"}},
	[UNKEY_APIS] = {"apis", "apis_pkey", {"deleted_at", "ip_whitelist"}},
	[UNKEY_IDENTITIES] = {"identities", "identities_pkey", {"external_id", "meta"}},
	[UNKEY_KEY_PERMISSIONS] = {"key_permissions", "key_permissions_pkey", {"permission_id"}},
	[UNKEY_KEY_ROLES] = {"key_roles", "key_roles_pkey", {"role_id"}},
	[UNKEY_ROLE_PERMISSIONS] = {"role_permissions", "role_permissions_pkey", {"permission_id"}},
	[UNKEY_PERMISSIONS] = {"permissions", "permissions_pkey", {"slug"}},
	[UNKEY_ROLES] = {"roles", "roles_pkey", {"name"}},
	/* these two must follow RatelimitColumn */
	[UNKEY_KEY_RATELIMITS] = {"key_ratelimits", "key_ratelimits_pkey",
	{"name", "limit", "duration_ms", "auto_apply"}},
	[UNKEY_IDENTITY_RATELIMITS] = {"identity_ratelimits", "identity_ratelimits_pkey",
	{"name", "limit", "duration_ms", "auto_apply"}},
	[UNKEY_NAMESPACES_BY_NAME] = {"ratelimit_namespaces", "ratelimit_namespaces_name_key",
	{"id", "deleted_at"}},
	[UNKEY_NAMESPACES_BY_ID] = {"ratelimit_namespaces", "ratelimit_namespaces_pkey",
	{"id", "deleted_at"}},
	[UNKEY_OVERRIDES] = {"ratelimit_overrides", "ratelimit_overrides_namespace_id_identifier_key",
	{"id", "identifier", "limit", "duration_ms"}},
	[UNKEY_ROOT_KEYS] = {"root_keys", "root_keys_pkey", {"permissions", "enabled"}},
};

static uint64 invalidations = 0;	/* counts the callbacks, to detect one mid-resolve */
static bool callback_registered = false;

/* Forget the cached OIDs when one of our relations (or every relation) changes */
static void
InvalidateTables(Datum arg, Oid relid)
{
	bool		ours = !OidIsValid(relid);

	for (int t = 0; t < UNKEY_NTABLES && !ours; t++)
		if (tables[t].relid == relid || tables[t].indexid == relid)
			ours = true;
	if (ours)
	{
		for (int t = 0; t < UNKEY_NTABLES; t++)
			tables[t].valid = false;
		invalidations++;
	}
}

/* Table t's OID as last resolved (or InvalidOid); resolves nothing, so relcache callbacks may ask */
Oid
UnkeyTableRelid(UnkeyTable t)
{
	return tables[t].relid;
}

/* Look up a relation of schema unkey by name, or fail clearly */
static Oid
UnkeyRelid(const char *name, Oid nsp)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation unkey.%s does not exist", name),
				 errhint("Install the extension in this database with CREATE EXTENSION unkey.")));
	return relid;
}

/* Resolve one table: its OID, its index, the index's equality and the columns */
static void ResolveTable(TableInfo *ti, Oid nsp);

/*
 * Resolve table t once, when it is first read: a table that a newer release
 * added is not needed until something reads it, so a library newer than
 * the installed SQL still verifies (before ALTER EXTENSION UPDATE)
 */
static TableInfo *
ResolvedTable(UnkeyTable t)
{
	TableInfo  *ti = &tables[t];
	uint64		seen;

	if (ti->valid)
		return ti;
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(InvalidateTables, (Datum) 0);
		callback_registered = true;
	}

	/* an invalidation during a pass (opening an index can deliver one) means pass again */
	do
	{
		seen = invalidations;
		ResolveTable(ti, get_namespace_oid("unkey", false));
	} while (seen != invalidations);
	ti->valid = true;
	return ti;
}

static void
ResolveTable(TableInfo *ti, Oid nsp)
{
	Relation	idx;
	Oid			eqop;

	ti->relid = UnkeyRelid(ti->relname, nsp);
	ti->indexid = UnkeyRelid(ti->indexname, nsp);

	idx = index_open(ti->indexid, AccessShareLock);
	eqop = get_opfamily_member(idx->rd_opfamily[0], idx->rd_opcintype[0],
							   idx->rd_opcintype[0], BTEqualStrategyNumber);
	ti->eqproc = get_opcode(eqop);
	ti->collation = idx->rd_indcollation[0];
	index_close(idx, AccessShareLock);

	for (ti->ncols = 0; ti->ncols < MAX_COLS && ti->cols[ti->ncols]; ti->ncols++)
	{
		ti->attnums[ti->ncols] = get_attnum(ti->relid, ti->cols[ti->ncols]);
		if (ti->attnums[ti->ncols] == InvalidAttrNumber)
			elog(ERROR, "unkey: column %s.%s not found", ti->relname, ti->cols[ti->ncols]);
	}
}

/*
 * UnkeyFetch: the rows of table t whose index's first column equals key.
 *
 * Each row's columns (in the TableInfo order) are copied into the current
 * memory context, row after row, in *values and *nulls; returns the number
 * of rows.
 */
int
UnkeyFetch(UnkeyTable t, Datum key, Snapshot snapshot, Datum **values, bool **nulls)
{
	TableInfo  *ti;
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData skey;
	int			n = 0;
	int			cap = 1;

	ti = ResolvedTable(t);

	*values = palloc(sizeof(Datum) * ti->ncols * cap);
	*nulls = palloc(sizeof(bool) * ti->ncols * cap);

	rel = table_open(ti->relid, AccessShareLock);
	idx = index_open(ti->indexid, AccessShareLock);
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   ti->collation, ti->eqproc, key);
	scan = index_beginscan(rel, idx, snapshot, 1, 0);
	index_rescan(scan, &skey, 1, NULL, 0);
	slot = table_slot_create(rel, NULL);

	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		if (n == cap)
		{
			cap *= 2;
			*values = repalloc(*values, sizeof(Datum) * ti->ncols * cap);
			*nulls = repalloc(*nulls, sizeof(bool) * ti->ncols * cap);
		}
		for (int c = 0; c < ti->ncols; c++)
		{
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), ti->attnums[c] - 1);
			bool		isnull;
			Datum		d = slot_getattr(slot, ti->attnums[c], &isnull);

			(*nulls)[n * ti->ncols + c] = isnull;
			(*values)[n * ti->ncols + c] =
				isnull ? (Datum) 0 : datumCopy(d, att->attbyval, att->attlen);
		}
		n++;
	}

	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	return n;
}
