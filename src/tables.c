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
 * On Citus (README: Running on Citus) a distributed table is an empty shell
 * and its rows live in shards, tables named <table>_<shardid> on the nodes
 * that hold them.  When Citus's pg_dist_partition lists a table, it is read
 * through the shard that holds the key: the only one of a reference table
 * (every node has it), or for a table distributed by hash, the shard whose
 * range holds the hash of the key, computed as Citus computes it (the hash
 * function of the column type's default hash operator class).  A shard on
 * another node is read with a query that Citus routes there (one round trip,
 * never an empty answer); verification goes to the key's node instead
 * (src/verify.c), so that it reads and spends there.  The shard
 * map is read once and forgotten with the rest: Citus sends a relcache
 * invalidation of the distributed table when its shards change.  No Citus
 * header or library is needed: its catalogs are read with SQL.
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
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/typcache.h"

#include "keys.h"
#include "utils.h"

#define MAX_COLS 12

/* A relation to read: the table itself, or one of its Citus shards */
typedef struct Target
{
	Oid			relid;			/* InvalidOid: a shard that is not on this node */
	Oid			indexid;
	AttrNumber	attnums[MAX_COLS];
} Target;

/* A Citus shard: its hash range and, once looked up, its local relation */
typedef struct Shard
{
	int64		id;
	int32		min;
	int32		max;
	bool		resolved;
	Target		target;
} Shard;

typedef struct TableInfo
{
	const char *relname;
	const char *indexname;		/* a btree whose first column is the lookup key */
	const char *cols[MAX_COLS]; /* the columns returned, in this order */
	bool		valid;			/* what follows is resolved */
	Target		table;			/* the table itself (on Citus, the shell) */
	RegProcedure eqproc;		/* equality on the index's first column */
	char		keycol[NAMEDATALEN];	/* that column's name */
	Oid			keycoltype;
	Oid			collation;
	int			ncols;
	/* on Citus: 'h' distributed by hash, 'n' reference; '\0' not distributed */
	char		method;
	int			nshards;
	Shard	   *shards;			/* by min; in TableMemoryContext */
	FmgrInfo	hashfn;			/* Citus's hash of the lookup key */
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
	[UNKEY_CONFIG_VERSION] = {"config_version", "config_version_pkey", {"version"}},
};

static uint64 invalidations = 0;
static MemoryContext TableMemoryContext = NULL;	/* counts the callbacks, to detect one mid-resolve */
static bool callback_registered = false;

/* Forget the cached OIDs when one of our relations (or every relation) changes */
static void
InvalidateTables(Datum arg, Oid relid)
{
	bool		ours = !OidIsValid(relid);

	for (int t = 0; t < UNKEY_NTABLES && !ours; t++)
	{
		if (tables[t].table.relid == relid || tables[t].table.indexid == relid)
			ours = true;
		/* a shard of ours: Citus moved or dropped it */
		for (int i = 0; i < tables[t].nshards && !ours; i++)
			ours = tables[t].shards[i].target.relid == relid;
	}
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
	return tables[t].table.relid;
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
static void ResolveShards(TableInfo *ti, Oid keytype);

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
	Oid			keytype;

	ti->table.relid = UnkeyRelid(ti->relname, nsp);
	ti->table.indexid = UnkeyRelid(ti->indexname, nsp);

	idx = index_open(ti->table.indexid, AccessShareLock);
	eqop = get_opfamily_member(idx->rd_opfamily[0], idx->rd_opcintype[0],
							   idx->rd_opcintype[0], BTEqualStrategyNumber);
	ti->eqproc = get_opcode(eqop);
	ti->collation = idx->rd_indcollation[0];
	keytype = idx->rd_opcintype[0];
	strlcpy(ti->keycol, get_attname(ti->table.relid, idx->rd_index->indkey.values[0], false), NAMEDATALEN);
	ti->keycoltype = get_atttype(ti->table.relid, idx->rd_index->indkey.values[0]);
	index_close(idx, AccessShareLock);

	for (ti->ncols = 0; ti->ncols < MAX_COLS && ti->cols[ti->ncols]; ti->ncols++)
	{
		ti->table.attnums[ti->ncols] = get_attnum(ti->table.relid, ti->cols[ti->ncols]);
		if (ti->table.attnums[ti->ncols] == InvalidAttrNumber)
			elog(ERROR, "unkey: column %s.%s not found", ti->relname, ti->cols[ti->ncols]);
	}
	ResolveShards(ti, keytype);
}

/* On Citus, read how the table is distributed and where its shards' ranges lie */
static void
ResolveShards(TableInfo *ti, Oid keytype)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];

	ti->method = '\0';
	ti->nshards = 0;
	if (ti->shards)
		pfree(ti->shards);
	ti->shards = NULL;
	/* Citus's catalogs exist in a database where the citus extension is */
	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return;

	if (TableMemoryContext == NULL)
		TableMemoryContext = AllocSetContextCreate(TopMemoryContext, "unkey tables", ALLOCSET_SMALL_SIZES);
	args[0] = ObjectIdGetDatum(ti->table.relid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	if (SPI_execute_with_args("SELECT p.partmethod::text, s.shardid, s.shardminvalue::int4, s.shardmaxvalue::int4"
							  "  FROM pg_catalog.pg_dist_partition p"
							  "  LEFT JOIN pg_catalog.pg_dist_shard s ON s.logicalrelid = p.logicalrelid"
							  " WHERE p.logicalrelid::oid = $1"
							  " ORDER BY s.shardminvalue::int4 NULLS FIRST",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "unkey: could not read Citus's shards of unkey.%s", ti->relname);
	if (SPI_processed > 0)
	{
		bool		isnull;
		char	   *method = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (method == NULL || (method[0] != 'h' && method[0] != 'n'))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("unkey.%s is distributed in a way unkey cannot read", ti->relname),
					 errhint("Distribute unkey's tables with unkey.citus_distribute().")));
		ti->method = method[0];
		ti->shards = MemoryContextAllocZero(TableMemoryContext, sizeof(Shard) * SPI_processed);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			Shard	   *sh = &ti->shards[ti->nshards];

			sh->id = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
			if (isnull)
				continue;
			sh->min = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull));
			sh->max = DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 4, &isnull));
			ti->nshards++;
		}
		if (ti->method == 'h')
			fmgr_info_cxt(lookup_type_cache(keytype, TYPECACHE_HASH_PROC)->hash_proc, &ti->hashfn, TableMemoryContext);
	}
	SPI_finish();
}

/* The local relation of a shard, and its index and columns; relid InvalidOid if it is on another node */
static void
ResolveShard(TableInfo *ti, Shard *sh)
{
	Oid			nsp = get_namespace_oid("unkey", false);
	char	   *name = psprintf("%s_" INT64_FORMAT, ti->relname, sh->id);

	sh->target.relid = get_relname_relid(name, nsp);
	if (OidIsValid(sh->target.relid))
	{
		sh->target.indexid = get_relname_relid(psprintf("%s_" INT64_FORMAT, ti->indexname, sh->id), nsp);
		if (!OidIsValid(sh->target.indexid))
			elog(ERROR, "unkey: index %s of shard %s not found", ti->indexname, name);
		/* a shard has the columns of the table, but not its dropped ones: look them up again */
		for (int c = 0; c < ti->ncols; c++)
			sh->target.attnums[c] = get_attnum(sh->target.relid, ti->cols[c]);
	}
	sh->resolved = true;
}

/* On Citus, the shard of the table that holds key, resolved; NULL if the table is not distributed */
static Shard *
ShardFor(TableInfo *ti, Datum key)
{
	Shard	   *sh = NULL;

	if (ti->method == '\0')
		return NULL;
	if (ti->method == 'n' || ti->nshards == 1)
		sh = ti->nshards > 0 ? &ti->shards[0] : NULL;
	else
	{
		int32		h = DatumGetInt32(FunctionCall1Coll(&ti->hashfn, ti->collation, key));
		int			lo = 0;
		int			hi = ti->nshards - 1;

		while (lo <= hi)
		{
			int			mid = (lo + hi) / 2;

			if (h < ti->shards[mid].min)
				hi = mid - 1;
			else if (h > ti->shards[mid].max)
				lo = mid + 1;
			else
			{
				sh = &ti->shards[mid];
				break;
			}
		}
	}
	if (sh == NULL)
		elog(ERROR, "unkey: no shard of unkey.%s holds this key", ti->relname);
	if (!sh->resolved)
		ResolveShard(ti, sh);
	return sh;
}

/* Where to read the rows of table t whose lookup key is key: the table, its shard, or NULL for a shard on another node */
static Target *
TargetFor(TableInfo *ti, Datum key)
{
	Shard	   *sh = ShardFor(ti, key);

	if (sh == NULL)
		return &ti->table;
	return OidIsValid(sh->target.relid) ? &sh->target : NULL;
}

/* A read of FetchElsewhere, for UnkeyAsOwner */
typedef struct RemoteRead
{
	TableInfo  *ti;
	Datum		key;
	MemoryContext cxt;			/* where the rows go */
	Datum	   *values;
	bool	   *nulls;
	int			n;
} RemoteRead;

static void
RemoteReadRun(void *arg)
{
	RemoteRead *r = arg;
	TableInfo  *ti = r->ti;
	StringInfoData sql;
	Oid			argtypes[1] = {ti->keycoltype};
	Datum		args[1] = {r->key};

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int c = 0; c < ti->ncols; c++)
		appendStringInfo(&sql, "%s%s", c ? ", " : "", quote_identifier(ti->cols[c]));
	appendStringInfo(&sql, " FROM unkey.%s WHERE %s OPERATOR(pg_catalog.=) $1",
					 quote_identifier(ti->relname), quote_identifier(ti->keycol));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	if (SPI_execute_with_args(sql.data, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "unkey: could not read unkey.%s through Citus", ti->relname);
	r->n = (int) SPI_processed;
	r->values = MemoryContextAlloc(r->cxt, sizeof(Datum) * ti->ncols * Max(r->n, 1));
	r->nulls = MemoryContextAlloc(r->cxt, sizeof(bool) * ti->ncols * Max(r->n, 1));
	for (int i = 0; i < r->n; i++)
		for (int c = 0; c < ti->ncols; c++)
		{
			Form_pg_attribute att = TupleDescAttr(SPI_tuptable->tupdesc, c);
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &isnull);
			MemoryContext old = MemoryContextSwitchTo(r->cxt);

			r->nulls[i * ti->ncols + c] = isnull;
			r->values[i * ti->ncols + c] = isnull ? (Datum) 0 : datumCopy(d, att->attbyval, att->attlen);
			MemoryContextSwitchTo(old);
		}
	SPI_finish();
}

/*
 * On Citus, the rows of a shard on another node: read through Citus, which
 * routes the query by the key to that node (committed rows as of now, not
 * the caller's snapshot, which does not reach another node).  As the owner,
 * like the direct reads, whoever the caller is (the gateway runs as the
 * request's role).
 */
static int
FetchElsewhere(TableInfo *ti, Datum key, Datum **values, bool **nulls)
{
	RemoteRead	r = {ti, key, CurrentMemoryContext};

	UnkeyAsOwner(RemoteReadRun, &r);
	*values = r.values;
	*nulls = r.nulls;
	return r.n;
}

/*
 * UnkeyElsewhere: whether the rows of table t whose lookup key is key are
 * in a Citus shard on another node (never without Citus).
 */
bool
UnkeyElsewhere(UnkeyTable t, Datum key)
{
	Shard	   *sh = ShardFor(ResolvedTable(t), key);

	return sh != NULL && !OidIsValid(sh->target.relid);
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
	Target	   *target;
	Relation	rel;
	Relation	idx;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData skey;
	int			n = 0;
	int			cap = 1;

	ti = ResolvedTable(t);
	target = TargetFor(ti, key);
	if (target == NULL)
		return FetchElsewhere(ti, key, values, nulls);

	*values = palloc(sizeof(Datum) * ti->ncols * cap);
	*nulls = palloc(sizeof(bool) * ti->ncols * cap);

	rel = table_open(target->relid, AccessShareLock);
	idx = index_open(target->indexid, AccessShareLock);
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
			Form_pg_attribute att = TupleDescAttr(RelationGetDescr(rel), target->attnums[c] - 1);
			bool		isnull;
			Datum		d = slot_getattr(slot, target->attnums[c], &isnull);

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

/*
 * UnkeyConfigChanged: whether the configuration that backends cache (rate-
 * limit namespaces and overrides, the gateway's settings) changed since
 * *seen, which it updates.  On one server a relcache invalidation says so,
 * and this answers false without reading anything; on Citus a change made
 * on another node invalidates nothing here, so the counter in
 * unkey.config_version (a reference table, bumped by unkey._invalidate) is
 * read: one index read of the local shard.
 */
bool
UnkeyConfigChanged(int64 *seen)
{
	TableInfo  *ti;
	Snapshot	snap;
	Datum	   *v;
	bool	   *isnull;
	int64		version = 0;

	/* SQL older than 0.5.0, before ALTER EXTENSION UPDATE, has no counter */
	if (!tables[UNKEY_CONFIG_VERSION].valid &&
		!OidIsValid(get_relname_relid("config_version", get_namespace_oid("unkey", false))))
		return false;
	ti = ResolvedTable(UNKEY_CONFIG_VERSION);
	if (ti->method == '\0')
		return false;
	snap = RegisterSnapshot(GetLatestSnapshot());
	if (UnkeyFetch(UNKEY_CONFIG_VERSION, BoolGetDatum(true), snap, &v, &isnull) == 1)
		version = DatumGetInt64(v[0]);
	UnregisterSnapshot(snap);
	if (version == *seen)
		return false;
	*seen = version;
	return true;
}

/*
 * UnkeyDistributed: whether Citus distributes this relation, so that rows
 * written to it must go through Citus (an INSERT it routes to the shards)
 * rather than into the empty shell.  Without Citus it reads nothing.
 */
bool
UnkeyDistributed(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	bool		distributed;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return false;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	if (SPI_execute_with_args("SELECT FROM pg_catalog.pg_dist_partition WHERE logicalrelid::oid = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "unkey: could not read Citus's pg_dist_partition");
	distributed = SPI_processed > 0;
	SPI_finish();
	return distributed;
}
