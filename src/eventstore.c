/*-------------------------------------------------------------------------
 *
 * eventstore.c
 *	  Writing a batch of events set-based: the raw rows through the bulk
 *	  insert path (table_multi_insert, the path COPY takes), and the batch
 *	  aggregated in memory into one hourly rollup row per key, identity,
 *	  API and tag set (verifications) or per namespace and identifier (rate
 *	  limits), each kind upserted by one statement.
 *
 * The event writer calls UnkeyStoreEvents with a batch in its own
 * transaction; a backend calls it with its one event when it writes inline
 * (as the extension's owner, events.c), and unkey._store_verifications and
 * unkey._store_ratelimits call it for SQL (benchmarks, tests).  Events of
 * one UTC day go to that day's partition, created on demand by
 * unkey._ensure_partitions.  The rollup rows of a batch go to one INSERT ...
 * ON CONFLICT per kind, run through SPI with search_path pinned, as arrays,
 * sorted by their unique key, so that concurrent writers lock rows in the
 * same order.  (A PL/pgSQL function taking the arrays would expand each of
 * them first: 1.3 µs per row of 20 columns.)
 *
 * The raw tables have no indexes and no triggers of ours; an index a DBA
 * adds is maintained (ExecInsertIndexTuples, as COPY), a trigger is not
 * fired, and constraints other than NOT NULL are not checked: every value
 * comes from our own C code.
 *
 * On Citus (README: Running on Citus) the event tables are distributed and
 * their shells empty: the raw rows go through one INSERT ... SELECT FROM
 * unnest(...) per table and day, which Citus routes to each row's shard, and
 * the rollup statements run through Citus as they are.  A worker cannot
 * create a partition; unkey._ensure_partitions asks the coordinator, before
 * this transaction writes anything (so that it holds no lock the
 * coordinator's DDL would wait for).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "common/md5.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "lib/stringinfo.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "analytics.h"
#include "events.h"
#include "keys.h"
#include "utils.h"

#define MULTI_INSERT_SLOTS 1000	/* rows per table_multi_insert, as COPY */

/* The verification outcomes, in the order of the rollup's columns */
static const char *const outcome_names[] = {
	"VALID", "NOT_FOUND", "FORBIDDEN", "USAGE_EXCEEDED", "RATE_LIMITED", "DISABLED",
	"INSUFFICIENT_PERMISSIONS", "EXPIRED"
};

#define NOUTCOMES lengthof(outcome_names)
#define OUTCOME_NOT_FOUND 1

/* A string of an event: bytes and length, or len < 0 for NULL */
typedef struct Str
{
	const char *p;
	int			len;
} Str;

/* One hourly verification rollup row, as the batch adds up */
typedef struct VRollup
{
	TimestampTz bucket;
	Str			hash;			/* 32 zero bytes for NOT_FOUND: one row, not one per presented key */
	Str			tags;			/* the normalised set, as an array literal */
	pg_uuid_t	tags_id;		/* its md5, the key of the set in the rollups */
	Str			identity;
	Str			api;
	Str			key;
	Str			external;
	int64		count[NOUTCOMES];
	int64		spent;
	double		latency_sum;
	int64		hist[UNKEY_HIST_BUCKETS];
	TimestampTz last_time;
} VRollup;

/* One hourly rate-limit rollup row */
typedef struct RRollup
{
	TimestampTz bucket;
	Str			ns;
	Str			identifier;
	int64		passed;
	int64		limited;
	TimestampTz last_time;
} RRollup;

/* Fill the values of one raw row, in the column order the caller named */
typedef void (*RawFill) (void *arg, int i, Datum *values, bool *nulls);

static const char zero_hash[UNKEY_HASH_LEN];

static inline Str
EvStr(const UnkeyEvent *e, int s)
{
	Str			r = {e->str[s], e->str[s] ? e->len[s] : -1};

	return r;
}

static inline Datum
StrText(Str s)
{
	return PointerGetDatum(cstring_to_text_with_len(s.p, s.len));
}

/* NULLs first, then bytewise, as COLLATE "C" orders text */
static int
StrCmp(Str a, Str b)
{
	if (a.len < 0 || b.len < 0)
		return (a.len >= 0) - (b.len >= 0);
	return UnkeyCompareBytes(a.p, a.len, b.p, b.len);
}

static inline TimestampTz
Floor(TimestampTz t, int64 unit)
{
	return t - (t % unit + unit) % unit;
}

/* The outcome's column, or an error for one we do not know */
static int
OutcomeIndex(Str o)
{
	for (int i = 0; i < NOUTCOMES; i++)
		if (o.len == strlen(outcome_names[i]) && memcmp(o.p, outcome_names[i], o.len) == 0)
			return i;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown verification outcome \"%.*s\"", Max(o.len, 0), o.p ? o.p : "")));
	return 0;
}

/*
 * The day partition of an event table, created when missing; its name is
 * <parent>_pYYYYMMDD (UTC), as unkey._ensure_partitions names it.  On a
 * Citus worker the coordinator creates it, and this node may not see it yet
 * (nor need to: Citus routes the rows): then it returns InvalidOid.
 */
static Oid
DayPartition(const char *parent, TimestampTz day)
{
	Oid			nsp = get_namespace_oid("unkey", false);
	struct pg_tm tm;
	fsec_t		fsec;
	char		name[NAMEDATALEN];
	Oid			relid;

	if (timestamp2tm(day, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("event time out of range")));
	snprintf(name, sizeof(name), "%s_p%04d%02d%02d", parent, tm.tm_year, tm.tm_mon, tm.tm_mday);
	relid = get_relname_relid(name, nsp);
	if (!OidIsValid(relid))
	{
		Datum		args[2];
		Oid			types[2] = {TEXTOID, TIMESTAMPTZARRAYOID};
		Datum		t = TimestampTzGetDatum(day);

		args[0] = CStringGetTextDatum(parent);
		args[1] = PointerGetDatum(construct_array(&t, 1, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (SPI_execute_with_args("SELECT unkey._ensure_partitions($1, $2)", 2, types, args, NULL, false, 0)
			!= SPI_OK_SELECT)
			elog(ERROR, "unkey: could not create partition %s", name);
		relid = get_relname_relid(name, nsp);
		if (!OidIsValid(relid) && !UnkeyDistributed(get_relname_relid(parent, nsp)))
			elog(ERROR, "unkey: partition %s is missing", name);
	}
	return relid;
}

/*
 * Insert rows idx[0..n) into a table through table_multi_insert.  cols
 * names the values fill() produces; the table's columns are matched by name,
 * so a partition whose columns were added in another order still gets each
 * value in its place (and NULL in a column we do not know).
 */
static void
RawInsert(Oid parent, Oid relid, const char *const *cols, const Oid *types, int ncols, const int *idx, int n,
		  RawFill fill, void *arg)
{
	Relation	rel = table_open(relid, RowExclusiveLock);
	TupleDesc	td = RelationGetDescr(rel);
	int		   *map = palloc(sizeof(int) * td->natts);
	Datum	   *values = palloc(sizeof(Datum) * ncols);
	bool	   *nulls = palloc(sizeof(bool) * ncols);
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	BulkInsertState bis = GetBulkInsertState();
	CommandId	cid = GetCurrentCommandId(true);
	TupleTableSlot **slots = palloc(sizeof(TupleTableSlot *) * Min(n, MULTI_INSERT_SLOTS));
	int			nslots = 0;

	if (rel->rd_rel->relkind != RELKIND_RELATION || !rel->rd_rel->relispartition ||
		get_partition_parent(relid, false) != parent)
		elog(ERROR, "unkey: \"%s\" is not a partition of the event table", RelationGetRelationName(rel));
	for (int a = 0; a < td->natts; a++)
	{
		Form_pg_attribute att = TupleDescAttr(td, a);

		map[a] = -1;
		for (int c = 0; c < ncols && !att->attisdropped; c++)
			if (strcmp(NameStr(att->attname), cols[c]) == 0)
			{
				/* a value of another type would be read as garbage, or crash */
				if (att->atttypid != types[c])
					elog(ERROR, "unkey: column \"%s\" of \"%s\" has type %s, not %s", cols[c],
						 RelationGetRelationName(rel), format_type_be(att->atttypid), format_type_be(types[c]));
				map[a] = c;
			}
	}
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	ExecOpenIndices(rri, false);

	for (int done = 0; done < n;)
	{
		int			m = Min(n - done, MULTI_INSERT_SLOTS);

		for (int j = 0; j < m; j++)
		{
			TupleTableSlot *slot;

			if (j == nslots)
				slots[nslots++] = MakeSingleTupleTableSlot(td, table_slot_callbacks(rel));
			slot = slots[j];
			ExecClearTuple(slot);
			fill(arg, idx[done + j], values, nulls);
			for (int a = 0; a < td->natts; a++)
			{
				slot->tts_isnull[a] = map[a] < 0 || nulls[map[a]];
				slot->tts_values[a] = slot->tts_isnull[a] ? (Datum) 0 : values[map[a]];
				if (slot->tts_isnull[a] && TupleDescAttr(td, a)->attnotnull)
					ereport(ERROR,
							(errcode(ERRCODE_NOT_NULL_VIOLATION),
							 errmsg("null value in column \"%s\" of an event",
									NameStr(TupleDescAttr(td, a)->attname))));
			}
			ExecStoreVirtualTuple(slot);
		}
		table_multi_insert(rel, slots, m, cid, 0, bis);
		for (int j = 0; j < m && rri->ri_NumIndices > 0; j++)
			list_free(ExecInsertIndexTuples(rri, slots[j], estate, false, false, NULL, NIL));
		ResetPerTupleExprContext(estate);
		done += m;
	}

	for (int j = 0; j < nslots; j++)
		ExecDropSingleTupleTableSlot(slots[j]);
	FreeBulkInsertState(bis);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
}

/*
 * On Citus, insert rows idx[0..n) through an INSERT that Citus routes, each
 * row to the shard of its key (on this node or another): one array per
 * column, unnested.  An array-typed column goes as text and is cast back,
 * since an array of arrays must be rectangular.
 */
static void
RawInsertRouted(const char *parent, const char *const *cols, const Oid *types, int ncols, const int *idx, int n,
				RawFill fill, void *arg)
{
	Datum	   *values = palloc(sizeof(Datum) * ncols);
	bool	   *nulls = palloc(sizeof(bool) * ncols);
	Datum	  **cv = palloc(sizeof(Datum *) * ncols);
	bool	  **cn = palloc(sizeof(bool *) * ncols);
	Oid		   *argtypes = palloc(sizeof(Oid) * ncols);
	Datum	   *args = palloc(sizeof(Datum) * ncols);
	int			dims[1] = {n};
	int			lbs[1] = {1};
	StringInfoData sql;
	StringInfoData sel;

	for (int c = 0; c < ncols; c++)
	{
		cv[c] = palloc(sizeof(Datum) * n);
		cn[c] = palloc(sizeof(bool) * n);
	}
	for (int j = 0; j < n; j++)
	{
		fill(arg, idx[j], values, nulls);
		for (int c = 0; c < ncols; c++)
		{
			cn[c][j] = nulls[c];
			cv[c][j] = nulls[c] ? (Datum) 0 : values[c];
			if (!nulls[c] && type_is_array(types[c]))
			{
				Oid			out;
				bool		varlena;

				getTypeOutputInfo(types[c], &out, &varlena);
				cv[c][j] = CStringGetTextDatum(OidOutputFunctionCall(out, values[c]));
			}
		}
	}

	initStringInfo(&sql);
	initStringInfo(&sel);
	appendStringInfo(&sql, "INSERT INTO unkey.%s (", quote_identifier(parent));
	for (int c = 0; c < ncols; c++)
	{
		Oid			elem = type_is_array(types[c]) ? TEXTOID : types[c];
		int16		len;
		bool		byval;
		char		align;

		get_typlenbyvalalign(elem, &len, &byval, &align);
		argtypes[c] = get_array_type(elem);
		args[c] = PointerGetDatum(construct_md_array(cv[c], cn[c], 1, dims, lbs, elem, len, byval, align));
		appendStringInfo(&sql, "%s%s", c ? ", " : "", quote_identifier(cols[c]));
		appendStringInfo(&sel, "%su.c%d%s%s", c ? ", " : "", c,
						 elem != types[c] ? "::" : "", elem != types[c] ? format_type_be(types[c]) : "");
	}
	appendStringInfo(&sql, ") SELECT %s FROM unnest(", sel.data);
	for (int c = 0; c < ncols; c++)
		appendStringInfo(&sql, "%s$%d", c ? ", " : "", c + 1);
	appendStringInfoString(&sql, ") AS u(");
	for (int c = 0; c < ncols; c++)
		appendStringInfo(&sql, "%sc%d", c ? ", " : "", c);
	appendStringInfoChar(&sql, ')');
	if (SPI_execute_with_args(sql.data, ncols, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "unkey: could not write %d events to unkey.%s", n, parent);
}

/*
 * Insert the raw rows of events es[0..n), each into the partition of its
 * day; on Citus through Citus, which routes each to its shard's partition.
 */
static void
RawInsertByDay(const char *parent, const char *const *cols, const Oid *types, int ncols, const UnkeyEvent *es,
			   int n, RawFill fill, void *arg)
{
	Oid			parent_oid = get_relname_relid(parent, get_namespace_oid("unkey", false));
	bool		routed = UnkeyDistributed(parent_oid);
	int		   *idx = palloc(sizeof(int) * n);
	bool	   *done = palloc0(sizeof(bool) * n);

	/* a batch spans one day, two around midnight: one pass per day */
	for (int first = 0; first < n; first++)
	{
		TimestampTz day;
		int			m = 0;

		if (done[first])
			continue;
		day = Floor(es[first].time, USECS_PER_DAY);
		for (int i = first; i < n; i++)
			if (!done[i] && Floor(es[i].time, USECS_PER_DAY) == day)
			{
				idx[m++] = i;
				done[i] = true;
			}
		if (routed)
			RawInsertRouted(parent, cols, types, ncols, idx, m, fill, arg);
		else
			RawInsert(parent_oid, DayPartition(parent, day), cols, types, ncols, idx, m, fill, arg);
	}
}

/* Verification events: what the raw rows and the rollup need of each */
typedef struct VBatch
{
	const UnkeyEvent *es;
	Datum	   *tags;			/* the tags as given, text[] (0: none) */
	Str		   *canon;			/* the normalised set, as an array literal */
	pg_uuid_t  *canon_id;		/* md5 of canon */
} VBatch;

static const char *const vcols[] = {
	"time", "request_id", "key_hash", "api_id", "key_id", "identity_id", "external_id",
	"outcome", "tags", "spent_credits", "latency"
};
static const Oid vtypes[] = {
	TIMESTAMPTZOID, TEXTOID, BYTEAOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTARRAYOID, INT8OID, FLOAT8OID
};

/* The raw row of verification i */
static void
VFill(void *arg, int i, Datum *v, bool *nulls)
{
	VBatch	   *b = arg;
	const UnkeyEvent *e = &b->es[i];
	static const int strcols[] = {EV_V_REQUEST_ID, EV_V_HASH, EV_V_API_ID, EV_V_KEY_ID,
	EV_V_IDENTITY_ID, EV_V_EXTERNAL_ID, EV_V_OUTCOME};

	memset(nulls, 0, sizeof(bool) * lengthof(vcols));
	v[0] = TimestampTzGetDatum(e->time);
	for (int c = 0; c < lengthof(strcols); c++)
	{
		Str			s = EvStr(e, strcols[c]);

		nulls[c + 1] = s.len < 0;
		if (s.len >= 0)
			v[c + 1] = StrText(s);	/* bytea and text share the varlena layout */
	}
	nulls[8] = b->tags[i] == (Datum) 0;
	v[8] = b->tags[i];
	v[9] = Int64GetDatum(e->num[0]);
	v[10] = Float8GetDatum(e->latency_ms);
}

/* The normalised form of a tag set: sorted bytewise, duplicates removed */
static ArrayType *
NormalizeTags(ArrayType *a)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;
	int			m = 0;

	deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &d, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			d[m++] = d[i];
	qsort(d, m, sizeof(Datum), UnkeyCompareTexts);
	n = m;
	m = 0;
	for (int i = 0; i < n; i++)
		if (m == 0 || UnkeyCompareTexts(&d[m - 1], &d[i]) != 0)
			d[m++] = d[i];
	return construct_array(d, m, TEXTOID, -1, false, TYPALIGN_INT);
}

/* The order of the unique key of the rollups, with the tag set or without it */
static int
VRollupCmp(const VRollup *a, const VRollup *b, bool tagged)
{
	int			r;

	if ((r = StrCmp(a->hash, b->hash)) != 0)
		return r;
	if (a->bucket != b->bucket)
		return a->bucket < b->bucket ? -1 : 1;
	if (tagged && (r = memcmp(a->tags_id.data, b->tags_id.data, UUID_LEN)) != 0)
		return r;
	if ((r = StrCmp(a->identity, b->identity)) != 0)
		return r;
	return StrCmp(a->api, b->api);
}

static int
VRollupPtrCmp(const void *a, const void *b)
{
	return VRollupCmp(*(VRollup *const *) a, *(VRollup *const *) b, false);
}

static int
VRollupPtrCmpTags(const void *a, const void *b)
{
	return VRollupCmp(*(VRollup *const *) a, *(VRollup *const *) b, true);
}

/* A text[] (or bytea[]) of strings, NULLs kept */
static Datum
StrArray(const Str *s, int n, Oid elemtype)
{
	Datum	   *d = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = s[i].len < 0;
		d[i] = nulls[i] ? (Datum) 0 : StrText(s[i]);
	}
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, elemtype, -1, false, TYPALIGN_INT));
}

/* An array of 8-byte values (bigint, float8, timestamptz) */
static Datum
Int8Array(const Datum *d, int n, Oid elemtype)
{
	return PointerGetDatum(construct_array((Datum *) d, n, elemtype, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * The rollup statements of a table (verification_rollups, or with tags
 * verification_tag_rollups).  The batch's rows come as one array per column,
 * unnested in the order given, which is the unique key's.  The hours are
 * upserted; for late events, rows of hours whose day (or month) is already
 * materialised, the rows are added to that day (and month) too ($21 and $22
 * are rollup_state's day_done and month_done).
 */
static char *
VRollupSql(bool tagged, bool late)
{
	StringInfoData sql;
	const char *table = tagged ? "verification_tag_rollups" : "verification_rollups";
	const char *tagcols = tagged ? ", tags, tags_id" : "";

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO unkey.%s AS r (granularity, bucket, key_hash, api_id, key_id, identity_id, "
					 "external_id, valid, not_found, forbidden, usage_exceeded, rate_limited, disabled, "
					 "insufficient_permissions, expired, spent_credits, latency_sum, latency_hist, last_time%s) ",
					 table, tagcols);
	if (!late)
		appendStringInfo(&sql,
						 "SELECT 'hour', e.b, e.h, e.a, e.k, e.i, e.x, e.c1, e.c2, e.c3, e.c4, e.c5, e.c6, e.c7, "
						 "e.c8, e.sp, e.ls, e.lh, e.lt%s",
						 tagged ? ", e.g::text[], e.gi" : "");
	else
		appendStringInfo(&sql,
						 "SELECT u.unit, date_trunc(u.unit, e.b, 'UTC'), e.h, e.a, max(e.k), e.i, max(e.x), "
						 "sum(e.c1), sum(e.c2), sum(e.c3), sum(e.c4), sum(e.c5), sum(e.c6), sum(e.c7), sum(e.c8), "
						 "sum(e.sp), sum(e.ls), unkey._latency_hist_sum(e.lh), max(e.lt)%s",
						 tagged ? ", min(e.g)::text[], e.gi" : "");
	appendStringInfoString(&sql,
						   " FROM unnest($1::timestamptz[], $2::bytea[], $3::text[], $4::text[], $5::text[], "
						   "$6::text[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], "
						   "$12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::float8[], $17::bytea[], "
						   "$18::timestamptz[], $19::text[], $20::uuid[]) "
						   "AS e(b, h, a, k, i, x, c1, c2, c3, c4, c5, c6, c7, c8, sp, ls, lh, lt, g, gi)");
	if (late)
		appendStringInfo(&sql,
						 ", (VALUES ('day'::text, $21::timestamptz), ('month'::text, $22::timestamptz)) "
						 "AS u(unit, done) WHERE e.b < u.done "
						 "GROUP BY u.unit, date_trunc(u.unit, e.b, 'UTC'), e.h, e.i, e.a%s "
						 /* in the unique key's order too, so that writers lock rows alike */
						 "ORDER BY e.h, u.unit, 2%s, e.i, e.a",
						 tagged ? ", e.gi" : "", tagged ? ", e.gi" : "");
	appendStringInfo(&sql,
					 " ON CONFLICT ON CONSTRAINT %s_key DO UPDATE SET "
					 "valid = r.valid + excluded.valid, not_found = r.not_found + excluded.not_found, "
					 "forbidden = r.forbidden + excluded.forbidden, "
					 "usage_exceeded = r.usage_exceeded + excluded.usage_exceeded, "
					 "rate_limited = r.rate_limited + excluded.rate_limited, disabled = r.disabled + excluded.disabled, "
					 "insufficient_permissions = r.insufficient_permissions + excluded.insufficient_permissions, "
					 "expired = r.expired + excluded.expired, spent_credits = r.spent_credits + excluded.spent_credits, "
					 "latency_sum = r.latency_sum + excluded.latency_sum, "
					 "latency_hist = unkey._hist_add(r.latency_hist, excluded.latency_hist), "
					 "last_time = greatest(r.last_time, excluded.last_time), "
					 "external_id = coalesce(excluded.external_id, r.external_id)",
					 table);
	return sql.data;
}

/*
 * Upsert rollup rows *r[0..n), sorted by their unique key, into one table.
 * ROW SHARE on rollup_state makes a materialisation (EXCLUSIVE) wait for
 * this batch to commit, or this batch for it, so that no row is missed or
 * counted twice; the state is read after the lock is granted.
 */
static void
VRollupStore(VRollup **r, int n, bool tagged)
{
	Datum		args[22];
	Oid			types[22];
	int			a = 0;
	Str		   *s = palloc(sizeof(Str) * n);
	Datum	   *d = palloc(sizeof(Datum) * n);
	TimestampTz first = r[0]->bucket;
	bool		isnull;
	SPIPlanPtr	state;

#define STRS(field, type) do { \
		for (int i = 0; i < n; i++) s[i] = r[i]->field; \
		types[a] = get_array_type(type); \
		args[a++] = StrArray(s, n, (type)); \
	} while (0)
#define EIGHTS(expr, type) do { \
		for (int i = 0; i < n; i++) d[i] = (expr); \
		types[a] = get_array_type(type); \
		args[a++] = Int8Array(d, n, (type)); \
	} while (0)

	EIGHTS(TimestampTzGetDatum(r[i]->bucket), TIMESTAMPTZOID);
	STRS(hash, BYTEAOID);
	STRS(api, TEXTOID);
	STRS(key, TEXTOID);
	STRS(identity, TEXTOID);
	STRS(external, TEXTOID);
	for (int o = 0; o < NOUTCOMES; o++)
		EIGHTS(Int64GetDatum(r[i]->count[o]), INT8OID);
	EIGHTS(Int64GetDatum(r[i]->spent), INT8OID);
	EIGHTS(Float8GetDatum(r[i]->latency_sum), FLOAT8OID);
	for (int i = 0; i < n; i++)
		d[i] = PointerGetDatum(UnkeyHistEncode(r[i]->hist));
	types[a] = BYTEAARRAYOID;
	args[a++] = PointerGetDatum(construct_array(d, n, BYTEAOID, -1, false, TYPALIGN_INT));
	EIGHTS(TimestampTzGetDatum(r[i]->last_time), TIMESTAMPTZOID);
	STRS(tags, TEXTOID);
	for (int i = 0; i < n; i++)
		d[i] = UUIDPGetDatum(&r[i]->tags_id);
	types[a] = get_array_type(UUIDOID);
	args[a++] = PointerGetDatum(construct_array(d, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
#undef STRS
#undef EIGHTS

	/*
	 * Read the state as committed now, also in a REPEATABLE READ caller (an
	 * inline write), whose snapshot may predate a materialisation the lock
	 * waited for.
	 */
	if (SPI_execute("LOCK TABLE unkey.rollup_state IN ROW SHARE MODE", false, 0) != SPI_OK_UTILITY ||
		(state = SPI_prepare("SELECT day_done, month_done FROM unkey.rollup_state", 0, NULL)) == NULL ||
		SPI_execute_snapshot(state, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 1)
		!= SPI_OK_SELECT)
		elog(ERROR, "unkey: could not read unkey.rollup_state");
	for (int i = 1; i < n; i++)
		first = Min(first, r[i]->bucket);
	if (SPI_processed > 0 &&
		first < DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		types[20] = types[21] = TIMESTAMPTZOID;
		args[20] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		args[21] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (SPI_execute_with_args(VRollupSql(tagged, true), 22, types, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "unkey: could not store late verification rollups");
	}
	if (SPI_execute_with_args(VRollupSql(tagged, false), 20, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "unkey: could not store %d verification rollups", n);
}

/*
 * Add up rows of equal unique key (with the tag set, or without it) in place
 * and upsert them, in that key's order (sorting pointers: a row is 500 bytes)
 */
static void
VRollupMerge(VRollup **sorted, int n, bool tagged)
{
	int			m = 0;

	if (n == 0)
		return;
	qsort(sorted, n, sizeof(VRollup *), tagged ? VRollupPtrCmpTags : VRollupPtrCmp);
	for (int i = 0; i < n; i++)
	{
		VRollup    *x = m > 0 ? sorted[m - 1] : NULL;
		VRollup    *y = sorted[i];

		if (x == NULL || VRollupCmp(x, y, tagged) != 0)
		{
			sorted[m++] = y;
			continue;
		}
		for (int o = 0; o < NOUTCOMES; o++)
			x->count[o] += y->count[o];
		x->spent += y->spent;
		x->latency_sum += y->latency_sum;
		for (int h = 0; h < UNKEY_HIST_BUCKETS; h++)
			x->hist[h] += y->hist[h];
		if (y->last_time >= x->last_time)
		{
			x->last_time = y->last_time;
			if (y->external.len >= 0)
				x->external = y->external;
		}
		if (x->key.len < 0)
			x->key = y->key;
	}
	VRollupStore(sorted, m, tagged);
}

/* Write verification events: raw rows, then the batch added up per hour */
static void
StoreVerifications(const UnkeyEvent *es, int n)
{
	VBatch		b = {es, palloc0(sizeof(Datum) * n), palloc(sizeof(Str) * n), palloc(sizeof(pg_uuid_t) * n)};
	pg_uuid_t	none_id;
	const char *err;
	VRollup    *r = palloc0(sizeof(VRollup) * n);
	VRollup   **sorted = palloc(sizeof(VRollup *) * n);
	VRollup    *t = palloc(sizeof(VRollup) * n);
	VRollup   **tsorted = palloc(sizeof(VRollup *) * n);
	int			nt = 0;
	int			lt = -1;			/* the last event with tags */

	/* parse each tag set once, for the raw row and the rollup; runs of one set are common */
	if (!pg_md5_binary("{}", 2, none_id.data, &err))
		elog(ERROR, "unkey: md5 failed: %s", err);
	for (int i = 0; i < n; i++)
	{
		Str			t = EvStr(&es[i], EV_V_TAGS);

		if (t.len < 0)
		{
			b.canon[i].p = "{}";
			b.canon[i].len = 2;
			b.canon_id[i] = none_id;
			continue;
		}
		if (lt >= 0 && t.len == es[lt].len[EV_V_TAGS] && memcmp(t.p, es[lt].str[EV_V_TAGS], t.len) == 0)
		{
			b.tags[i] = b.tags[lt];
			b.canon[i] = b.canon[lt];
			b.canon_id[i] = b.canon_id[lt];
			continue;
		}
		b.tags[i] = OidInputFunctionCall(F_ARRAY_IN, pnstrdup(t.p, t.len), TEXTOID, -1);
		b.canon[i].p = OidOutputFunctionCall(F_ARRAY_OUT,
											 PointerGetDatum(NormalizeTags(DatumGetArrayTypeP(b.tags[i]))));
		b.canon[i].len = strlen(b.canon[i].p);
		if (!pg_md5_binary(b.canon[i].p, b.canon[i].len, b.canon_id[i].data, &err))
			elog(ERROR, "unkey: md5 failed: %s", err);
		lt = i;
	}
	for (int i = 0; i < n; i++)
	{
		VRollup    *x = &r[i];
		int			o = OutcomeIndex(EvStr(&es[i], EV_V_OUTCOME));

		x->bucket = Floor(es[i].time, USECS_PER_HOUR);
		x->hash = EvStr(&es[i], EV_V_HASH);
		/* the raw table's CHECK, which the bulk path does not run */
		if (x->hash.len != UNKEY_HASH_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_CHECK_VIOLATION),
					 errmsg("key_hash must be %d bytes", UNKEY_HASH_LEN)));
		if (o == OUTCOME_NOT_FOUND)
			x->hash.p = zero_hash;
		x->tags = b.canon[i];
		x->tags_id = b.canon_id[i];
		x->identity = EvStr(&es[i], EV_V_IDENTITY_ID);
		x->api = EvStr(&es[i], EV_V_API_ID);
		x->key = EvStr(&es[i], EV_V_KEY_ID);
		x->external = EvStr(&es[i], EV_V_EXTERNAL_ID);
		x->count[o] = 1;
		x->spent = es[i].num[0];
		x->latency_sum = es[i].latency_ms;
		x->hist[UnkeyHistBucket(es[i].latency_ms)] = 1;
		x->last_time = es[i].time;
	}

	RawInsertByDay("verification_events", vcols, vtypes, lengthof(vcols), es, n, VFill, &b);

	/* the tagged ones are counted again per tag set; copies, since adding up changes the rows */
	for (int i = 0; i < n; i++)
	{
		sorted[i] = &r[i];
		if (es[i].str[EV_V_TAGS] != NULL && b.canon[i].len > 2)
		{
			t[nt] = r[i];
			tsorted[nt] = &t[nt];
			nt++;
		}
	}
	VRollupMerge(sorted, n, false);
	VRollupMerge(tsorted, nt, true);
}

/* Rate-limit events */
static const char *const rcols[] = {
	"time", "request_id", "namespace_id", "namespace", "identifier", "override_id", "passed",
	"limit", "remaining", "reset", "cost", "latency"
};
static const Oid rtypes[] = {
	TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID,
	INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID, FLOAT8OID
};

/* The raw row of rate-limit check i */
static void
RFill(void *arg, int i, Datum *v, bool *nulls)
{
	const UnkeyEvent *e = &((const UnkeyEvent *) arg)[i];
	static const int strcols[] = {EV_R_REQUEST_ID, EV_R_NAMESPACE_ID, EV_R_NAMESPACE, EV_R_IDENTIFIER,
	EV_R_OVERRIDE_ID};

	memset(nulls, 0, sizeof(bool) * lengthof(rcols));
	v[0] = TimestampTzGetDatum(e->time);
	for (int c = 0; c < lengthof(strcols); c++)
	{
		Str			s = EvStr(e, strcols[c]);

		nulls[c + 1] = s.len < 0;
		if (s.len >= 0)
			v[c + 1] = StrText(s);
	}
	v[6] = BoolGetDatum(e->flag != 0);
	v[7] = Int64GetDatum(e->num[0]);
	v[8] = Int64GetDatum(e->num[1]);
	v[9] = TimestampTzGetDatum(UnkeyFromUnixMs(e->num[2]));
	v[10] = Int64GetDatum(e->num[3]);
	v[11] = Float8GetDatum(e->latency_ms);
}

static int
RRollupCmp(const void *pa, const void *pb)
{
	const RRollup *a = pa;
	const RRollup *b = pb;
	int			r;

	if ((r = StrCmp(a->ns, b->ns)) != 0 || (r = StrCmp(a->identifier, b->identifier)) != 0)
		return r;
	return (a->bucket > b->bucket) - (a->bucket < b->bucket);
}

/* Write rate-limit events: raw rows, then the checks added up per hour, namespace and identifier */
static void
StoreRatelimits(const UnkeyEvent *es, int n)
{
	RRollup    *r = palloc(sizeof(RRollup) * n);
	Str		   *s = palloc(sizeof(Str) * n);
	Datum	   *d = palloc(sizeof(Datum) * n);
	Datum		args[6];
	Oid			types[6] = {TIMESTAMPTZARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	TIMESTAMPTZARRAYOID};
	int			m = 0;

	RawInsertByDay("ratelimit_events", rcols, rtypes, lengthof(rcols), es, n, RFill, (void *) es);

	for (int i = 0; i < n; i++)
	{
		r[i].bucket = Floor(es[i].time, USECS_PER_HOUR);
		r[i].ns = EvStr(&es[i], EV_R_NAMESPACE_ID);
		r[i].identifier = EvStr(&es[i], EV_R_IDENTIFIER);
		r[i].passed = es[i].flag != 0;
		r[i].limited = es[i].flag == 0;
		r[i].last_time = es[i].time;
		if (r[i].ns.len < 0 || r[i].identifier.len < 0)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("a rate-limit event needs a namespace and an identifier")));
	}
	qsort(r, n, sizeof(RRollup), RRollupCmp);
	for (int i = 0; i < n; i++)
	{
		if (m > 0 && RRollupCmp(&r[m - 1], &r[i]) == 0)
		{
			r[m - 1].passed += r[i].passed;
			r[m - 1].limited += r[i].limited;
			r[m - 1].last_time = Max(r[m - 1].last_time, r[i].last_time);
		}
		else
			r[m++] = r[i];
	}

	for (int i = 0; i < m; i++)
		d[i] = TimestampTzGetDatum(r[i].bucket);
	args[0] = Int8Array(d, m, TIMESTAMPTZOID);
	for (int i = 0; i < m; i++)
		s[i] = r[i].ns;
	args[1] = StrArray(s, m, TEXTOID);
	for (int i = 0; i < m; i++)
		s[i] = r[i].identifier;
	args[2] = StrArray(s, m, TEXTOID);
	for (int i = 0; i < m; i++)
		d[i] = Int64GetDatum(r[i].passed);
	args[3] = Int8Array(d, m, INT8OID);
	for (int i = 0; i < m; i++)
		d[i] = Int64GetDatum(r[i].limited);
	args[4] = Int8Array(d, m, INT8OID);
	for (int i = 0; i < m; i++)
		d[i] = TimestampTzGetDatum(r[i].last_time);
	args[5] = Int8Array(d, m, TIMESTAMPTZOID);
	if (SPI_execute_with_args("INSERT INTO unkey.ratelimit_rollups AS r (bucket, namespace_id, identifier,"
							  " passed, limited, last_time)"
							  " SELECT * FROM unnest($1, $2, $3, $4, $5, $6)"
							  " ON CONFLICT ON CONSTRAINT ratelimit_rollups_pkey DO UPDATE"
							  " SET passed = r.passed + excluded.passed, limited = r.limited + excluded.limited,"
							  " last_time = greatest(r.last_time, excluded.last_time)",
							  6, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "unkey: could not store %d rate-limit rollups", m);
}

/*
 * Write a batch of events in the current transaction: each kind's raw rows
 * and rollups.  The caller has the rights to do so (the event writer, or
 * the extension's owner).
 */
void
UnkeyStoreEvents(const UnkeyEvent *es, int n)
{
	UnkeyEvent *byk = palloc(sizeof(UnkeyEvent) * Max(n, 1));
	int			nestlevel = NewGUCNestLevel();

	/* our statements name every object but the built-ins: those come from pg_catalog */
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");

	/*
	 * Every day partition the batch needs, before anything is written: on a
	 * Citus worker the coordinator creates it, and must not wait for a lock
	 * this transaction holds.
	 */
	{
		TimestampTz seen[2][4];	/* the days looked up, per kind: a batch spans one or two */
		int			nseen[2] = {0, 0};

		for (int i = 0; i < n; i++)
		{
			int			k = es[i].kind == UNKEY_EVENT_VERIFICATION ? 0 : 1;
			TimestampTz day = Floor(es[i].time, USECS_PER_DAY);
			int			j = 0;

			while (j < nseen[k] && seen[k][j] != day)
				j++;
			if (j < nseen[k])
				continue;
			(void) DayPartition(k == 0 ? "verification_events" : "ratelimit_events", day);
			if (nseen[k] < lengthof(seen[k]))
				seen[k][nseen[k]++] = day;
		}
	}
	for (uint8 kind = UNKEY_EVENT_VERIFICATION; kind <= UNKEY_EVENT_RATELIMIT; kind++)
	{
		int			m = 0;

		for (int i = 0; i < n; i++)
			if (es[i].kind == kind)
				byk[m++] = es[i];
		if (m > 0 && kind == UNKEY_EVENT_VERIFICATION)
			StoreVerifications(byk, m);
		else if (m > 0)
			StoreRatelimits(byk, m);
	}
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
	pfree(byk);
}

/* The strings of element i of text[] (or bytea[]) argument a, NULLs kept */
static void
ArgStrings(FunctionCallInfo fcinfo, int a, int n, UnkeyEvent *es, int s)
{
	Datum	   *d;
	bool	   *nulls;
	int			m;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(a), ARR_ELEMTYPE(PG_GETARG_ARRAYTYPE_P(a)), -1, false,
					  TYPALIGN_INT, &d, &nulls, &m);
	if (m != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument %d has %d elements, not %d", a + 1, m, n)));
	for (int i = 0; i < n; i++)
	{
		es[i].str[s] = nulls[i] ? NULL : VARDATA_ANY(DatumGetTextPP(d[i]));
		es[i].len[s] = nulls[i] ? 0 : VARSIZE_ANY_EXHDR(DatumGetTextPP(d[i]));
	}
}

/* The values of element i of an 8-byte array argument, NULL not allowed */
static Datum *
ArgEights(FunctionCallInfo fcinfo, int a, int n)
{
	Datum	   *d;
	bool	   *nulls;
	int			m;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(a), ARR_ELEMTYPE(PG_GETARG_ARRAYTYPE_P(a)), 8, FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &d, &nulls, &m);
	if (m != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument %d has %d elements, not %d", a + 1, m, n)));
	for (int i = 0; i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d has a NULL element", a + 1)));
	return d;
}

/* An event's time and latency must be finite: they become buckets and sums */
static void
CheckFinite(TimestampTz t, double latency)
{
	if (TIMESTAMP_NOT_FINITE(t))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("t must be finite")));
	if (isnan(latency) || isinf(latency))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("latency must be a finite number")));
}

/* The number of events in a call: the length of the first array */
static int
ArgCount(FunctionCallInfo fcinfo)
{
	for (int a = 0; a < PG_NARGS(); a++)
		if (PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d must not be NULL", a + 1)));
	return ArrayGetNItems(ARR_NDIM(PG_GETARG_ARRAYTYPE_P(0)), ARR_DIMS(PG_GETARG_ARRAYTYPE_P(0)));
}

PG_FUNCTION_INFO_V1(unkey_store_verifications);

/*
 * unkey._store_verifications(t, latency, key_hash, request_id, api_id,
 * key_id, identity_id, external_id, outcome, tags, spent): write
 * verification events given as arrays (tags as array literals) the way the
 * event writer writes them
 */
Datum
unkey_store_verifications(PG_FUNCTION_ARGS)
{
	int			n = ArgCount(fcinfo);
	UnkeyEvent *es = palloc0(sizeof(UnkeyEvent) * Max(n, 1));
	Datum	   *t = ArgEights(fcinfo, 0, n);
	Datum	   *lat = ArgEights(fcinfo, 1, n);
	Datum	   *spent = ArgEights(fcinfo, 10, n);

	for (int s = EV_V_HASH; s < EV_V_NSTR; s++)
		ArgStrings(fcinfo, s + 2, n, es, s);
	for (int i = 0; i < n; i++)
	{
		es[i].kind = UNKEY_EVENT_VERIFICATION;
		es[i].nstr = EV_V_NSTR;
		es[i].time = DatumGetTimestampTz(t[i]);
		es[i].latency_ms = DatumGetFloat8(lat[i]);
		CheckFinite(es[i].time, es[i].latency_ms);
		es[i].num[0] = DatumGetInt64(spent[i]);
		if (es[i].str[EV_V_OUTCOME] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("outcome must not be NULL")));
	}
	if (n > 0)
		UnkeyStoreEvents(es, n);
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(unkey_store_ratelimits);

/*
 * unkey._store_ratelimits(t, latency, request_id, namespace_id, namespace,
 * identifier, override_id, passed, limit, remaining, reset, cost): write
 * rate-limit events given as arrays the way the event writer writes them
 */
Datum
unkey_store_ratelimits(PG_FUNCTION_ARGS)
{
	int			n = ArgCount(fcinfo);
	UnkeyEvent *es = palloc0(sizeof(UnkeyEvent) * Max(n, 1));
	Datum	   *t = ArgEights(fcinfo, 0, n);
	Datum	   *lat = ArgEights(fcinfo, 1, n);
	Datum	   *passed;
	bool	   *pnulls;
	int			np;
	static const int strs[] = {EV_R_REQUEST_ID, EV_R_NAMESPACE_ID, EV_R_NAMESPACE, EV_R_IDENTIFIER,
	EV_R_OVERRIDE_ID};

	for (int s = 0; s < lengthof(strs); s++)
		ArgStrings(fcinfo, s + 2, n, es, strs[s]);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(7), BOOLOID, 1, true, TYPALIGN_CHAR, &passed, &pnulls, &np);
	if (np != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("argument 8 has %d elements, not %d", np, n)));
	for (int k = 0; k < 4; k++)
	{
		Datum	   *v = ArgEights(fcinfo, 8 + k, n);

		for (int i = 0; i < n; i++)
			es[i].num[k] = k == 2 ? UnkeyUnixMs(DatumGetTimestampTz(v[i])) : DatumGetInt64(v[i]);
	}
	for (int i = 0; i < n; i++)
	{
		es[i].kind = UNKEY_EVENT_RATELIMIT;
		es[i].nstr = EV_R_NSTR;
		es[i].time = DatumGetTimestampTz(t[i]);
		es[i].latency_ms = DatumGetFloat8(lat[i]);
		CheckFinite(es[i].time, es[i].latency_ms);
		if (pnulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("passed must not be NULL")));
		es[i].flag = DatumGetBool(passed[i]);
	}
	if (n > 0)
		UnkeyStoreEvents(es, n);
	PG_RETURN_VOID();
}
