/*-------------------------------------------------------------------------
 *
 * ratelimit.c
 *	  unkey_ratelimit: namespaces, overrides and the standalone limiter;
 *	  and the checks of Unkey's bounds for a rate limit (ratelimit.h).
 *
 * A call names a namespace (by name or rlns_ id, created on first use) and an
 * identifier.  An override for that identifier, exact first, else the most
 * specific matching wildcard pattern, replaces the caller's limit and
 * duration.  The decision itself is made in shared memory (limiter.c).
 *
 * Each backend caches the namespaces and the overrides it has used, in
 * backend-local memory (see limit_cxt for the one rule that keeps this
 * safe).  The functions that change either table send a relcache
 * invalidation for it when they commit; this file's relcache callback then
 * drops these caches, so a change applies from the next transaction of
 * every session (and from the next statement of the session that made it).
 * On Citus an invalidation reaches only the node that sent it: there each
 * call also compares unkey.config_version with the value it last saw
 * (UnkeyConfigChanged, tables.c).
 *
 * unkey_ratelimit runs as its caller: it is neither SECURITY DEFINER nor
 * SET search_path, which PostgreSQL 15 would charge as a GUC save and
 * restore on every call.  That is safe because its common path runs no SQL
 * and resolves no name through the search_path: it reads the namespaces and
 * overrides through tables.c (index scans by OID, resolved in schema unkey),
 * counts in shared memory and appends its event to the ring.  Its two rare
 * paths that do run SQL, the INSERT of a namespace on first use and an
 * event written inline (events.c), run as the extension's owner with a
 * pinned search_path (UnkeyAsOwner).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "events.h"
#include "keys.h"
#include "limiter.h"
#include "ratelimit.h"
#include "utils.h"
#include "wildcard.h"

/* namespaces and identifiers of standalone limits are 1..512 characters */
#define MAX_NAME_CHARS 512
#define NS_KEY_BYTES (MAX_NAME_CHARS * MAX_MULTIBYTE_CHAR_LEN + 1)
#define ID_BYTES UNKEY_MAX_ID_BYTES

typedef struct Override
{
	char	   *identifier;
	int			len;
	int			literal;		/* characters other than '*' */
	int			stars;
	int64		limit;
	int64		duration_ms;
	char	   *id;
} Override;

typedef struct NamespaceEntry
{
	char		name[NS_KEY_BYTES]; /* hash key: the name or id used */
	char		id[ID_BYTES];
	bool		deleted;
} NamespaceEntry;

typedef struct OverrideSet
{
	char		nsid[ID_BYTES]; /* hash key: the namespace id */
	int			nexact;			/* exact overrides, sorted bytewise */
	int			nwild;			/* then wildcards, most specific first */
	Override   *overrides;
} OverrideSet;

/*
 * Both caches live in limit_cxt.  The relcache callback can reset it during
 * any table access (opening a relation processes invalidations), so no
 * pointer into a cache is ever held across one: each lookup reads the tables
 * first, and only then touches the cache.
 */
static MemoryContext limit_cxt = NULL;
static HTAB *namespaces = NULL;
static HTAB *override_sets = NULL;

/* Drop the namespace and override caches */
static void
ResetCaches(void)
{
	if (limit_cxt != NULL)
		MemoryContextReset(limit_cxt);
	namespaces = NULL;
	override_sets = NULL;
}

/*
 * A change to namespaces or overrides (or to every relation) drops both
 * caches; tables.c knows the two tables' OIDs, since the caches are filled
 * only from what it has read.
 */
static void
ResetOnRelcache(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) ||
		relid == UnkeyTableRelid(UNKEY_NAMESPACES_BY_NAME) ||
		relid == UnkeyTableRelid(UNKEY_OVERRIDES))
		ResetCaches();
}

/*
 * A namespace created (or seen) by a transaction that then rolls back must
 * not stay cached: drop both caches at every abort, top-level or not.
 */
static void
ResetOnAbort(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		ResetCaches();
}

/* The same, for a rolled-back savepoint */
static void
ResetOnSubAbort(SubXactEvent event, SubTransactionId mySubid,
				SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		ResetCaches();
}

/* A cache table in limit_cxt, created if it was reset */
static HTAB *
CacheTable(HTAB **table, const char *name, Size keysize, Size entrysize, int flags)
{
	if (*table == NULL)
	{
		HASHCTL		ctl;

		if (limit_cxt == NULL)
		{
			limit_cxt = AllocSetContextCreate(CacheMemoryContext, "unkey rate-limit cache",
											  ALLOCSET_DEFAULT_SIZES);
			RegisterXactCallback(ResetOnAbort, NULL);
			RegisterSubXactCallback(ResetOnSubAbort, NULL);
			CacheRegisterRelcacheCallback(ResetOnRelcache, (Datum) 0);
		}
		ctl.keysize = keysize;
		ctl.entrysize = entrysize;
		ctl.hcxt = limit_cxt;
		*table = hash_create(name, 64, &ctl, HASH_ELEM | HASH_CONTEXT | flags);
	}
	return *table;
}

/* Exact overrides bytewise; wildcards by specificity, then bytewise */
static int
CompareOverrides(const void *x, const void *y)
{
	const Override *a = x;
	const Override *b = y;

	if ((a->stars > 0) != (b->stars > 0))
		return a->stars > 0 ? 1 : -1;
	if (a->stars > 0 && a->literal != b->literal)
		return b->literal - a->literal; /* more literal characters first */
	if (a->stars > 0 && a->stars != b->stars)
		return a->stars - b->stars; /* then fewer stars */
	return UnkeyCompareBytes(a->identifier, a->len, b->identifier, b->len);
}

/* The overrides of a namespace, from the cache or read and cached */
static OverrideSet *
Overrides(const char *nsid)
{
	OverrideSet *set;
	OverrideSet fresh;
	Snapshot	snap;
	Datum	   *v;
	bool	   *isnull;
	int			n;
	bool		found;
	MemoryContext old;

	if (override_sets != NULL &&
		(set = hash_search(override_sets, nsid, HASH_FIND, NULL)) != NULL)
		return set;

	/*
	 * Read, and detoast, first: both may open relations and so reset the
	 * caches.  Then build the set in limit_cxt, and only then enter it.
	 */
	snap = RegisterSnapshot(GetTransactionSnapshot());
	n = UnkeyFetch(UNKEY_OVERRIDES, CStringGetTextDatum(nsid), snap, &v, &isnull);
	for (int i = 0; i < n; i++)
	{
		v[i * 4 + 0] = CStringGetDatum(TextDatumGetCString(v[i * 4 + 0]));
		v[i * 4 + 1] = CStringGetDatum(TextDatumGetCString(v[i * 4 + 1]));
	}
	UnregisterSnapshot(snap);

	CacheTable(&override_sets, "unkey overrides", ID_BYTES, sizeof(OverrideSet), HASH_STRINGS);
	old = MemoryContextSwitchTo(limit_cxt);
	fresh.overrides = palloc0(sizeof(Override) * (n + 1));
	fresh.nexact = fresh.nwild = 0;
	for (int i = 0; i < n; i++)
	{
		Override   *o = &fresh.overrides[i];

		o->id = pstrdup(DatumGetCString(v[i * 4 + 0]));
		o->identifier = pstrdup(DatumGetCString(v[i * 4 + 1]));
		o->len = strlen(o->identifier);
		o->limit = DatumGetInt64(v[i * 4 + 2]);
		o->duration_ms = DatumGetInt64(v[i * 4 + 3]);
		for (int c = 0; c < o->len; c++)
			o->stars += (o->identifier[c] == '*');
		o->literal = o->len - o->stars;
		if (o->stars > 0)
			fresh.nwild++;
		else
			fresh.nexact++;
	}
	qsort(fresh.overrides, n, sizeof(Override), CompareOverrides);
	MemoryContextSwitchTo(old);

	set = hash_search(override_sets, nsid, HASH_ENTER, &found);
	set->nexact = fresh.nexact;
	set->nwild = fresh.nwild;
	set->overrides = fresh.overrides;
	return set;
}

/* The override for an identifier: exact, else the most specific wildcard */
static Override *
MatchOverride(OverrideSet *set, const char *id, int idlen)
{
	int			lo = 0,
				hi = set->nexact - 1;

	/*
	 * An exact match compares the identifier with every override string,
	 * patterns included, so an identifier that literally is "*@x.com"
	 * matches that row exactly (Unkey does the same).
	 */
	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;
		Override   *o = &set->overrides[mid];
		int			c = UnkeyCompareBytes(o->identifier, o->len, id, idlen);

		if (c == 0)
			return o;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	for (int i = set->nexact; i < set->nexact + set->nwild; i++)
	{
		Override   *o = &set->overrides[i];

		if (o->len == idlen && memcmp(o->identifier, id, idlen) == 0)
			return o;
	}
	for (int i = set->nexact; i < set->nexact + set->nwild; i++)
	{
		Override   *o = &set->overrides[i];

		if (UnkeyWildcardMatch(o->identifier, o->len, id, idlen))
			return o;
	}
	return NULL;
}

/* Read a namespace by name, else (for rlns_ ids) by id; false if neither */
static bool
ReadNamespace(const char *name, NamespaceEntry *ns)
{
	Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());
	Datum	   *v;
	bool	   *isnull;
	bool		found = (UnkeyFetch(UNKEY_NAMESPACES_BY_NAME, CStringGetTextDatum(name),
									snap, &v, &isnull) == 1);

	if (!found && strncmp(name, "rlns_", 5) == 0)
		found = (UnkeyFetch(UNKEY_NAMESPACES_BY_ID, CStringGetTextDatum(name),
							snap, &v, &isnull) == 1);
	UnregisterSnapshot(snap);
	if (found)
	{
		strlcpy(ns->id, TextDatumGetCString(v[0]), ID_BYTES);
		ns->deleted = !isnull[1];
	}
	return found;
}

/* The INSERT of a new namespace, for UnkeyAsOwner: arg is the name */
static void
InsertNamespace(void *arg)
{
	Oid			types[2] = {TEXTOID, TIMESTAMPTZOID};
	Datum		args[2];

	args[0] = CStringGetTextDatum((const char *) arg);
	args[1] = TimestampTzGetDatum(UnkeyNow());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	if (SPI_execute_with_args("INSERT INTO unkey.ratelimit_namespaces (id, name, created_at)"
							  " VALUES (unkey._new_id('rlns'::pg_catalog.text), $1, $2)"
							  " ON CONFLICT (name) DO NOTHING",
							  2, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "unkey: could not create a rate-limit namespace");
	SPI_finish();
}

/*
 * Create a namespace on first use; a concurrent creator wins harmlessly.
 * unkey_ratelimit is not SECURITY DEFINER (its common path runs no SQL), so
 * this, its one statement, runs as the extension's owner with a pinned
 * search_path: the caller needs no right on the table or on _new_id.
 */
static void
CreateNamespace(const char *name)
{
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot create rate-limit namespace \"%s\" during recovery", name),
				 errhint("Connect to the primary, where a namespace is created on first use.")));
	UnkeyAsOwner(InsertNamespace, (void *) name);
	CommandCounterIncrement();
}

/* The id of a namespace (by name or id) into id, created on first use; PT410 if deleted */
static void
NamespaceId(const char *name, char *id)
{
	NamespaceEntry *ns = NULL;
	NamespaceEntry fresh;
	static int64 config_seen = 0;

	/* on Citus, a change made on another node: forget both caches */
	if (UnkeyConfigChanged(&config_seen))
		ResetCaches();
	if (namespaces != NULL)
		ns = hash_search(namespaces, name, HASH_FIND, NULL);
	if (ns == NULL)
	{
		/* read (and perhaps create) first: this may reset the caches */
		if (!ReadNamespace(name, &fresh))
		{
			CreateNamespace(name);
			if (!ReadNamespace(name, &fresh))
				elog(ERROR, "unkey: rate-limit namespace \"%s\" vanished", name);
		}
		ns = hash_search(CacheTable(&namespaces, "unkey namespaces", NS_KEY_BYTES,
									sizeof(NamespaceEntry), HASH_STRINGS),
						 name, HASH_ENTER, NULL);
		strlcpy(ns->id, fresh.id, ID_BYTES);
		ns->deleted = fresh.deleted;
	}
	if (ns->deleted)
		ereport(ERROR,
				(errcode(ERRCODE_UNKEY_GONE),
				 errmsg("rate-limit namespace \"%s\" has been deleted", name),
				 errhint("Use another namespace name.")));
	strlcpy(id, ns->id, ID_BYTES);
}

/* Raise 22023 unless a namespace or identifier is 1..512 characters */
static void
CheckName(const char *what, text *t)
{
	if (!UnkeyCharsBetween(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), 1, MAX_NAME_CHARS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be 1 to %d characters", what, MAX_NAME_CHARS),
				 errhint("Give the %s 1 to %d characters.", what, MAX_NAME_CHARS)));
}

/* Raise 22023 unless a rate limit's name (NULL: missing) is 3..max_chars characters */
void
RatelimitCheckName(const char *name, int bytes, int max_chars)
{
	if (name == NULL ||
		!UnkeyCharsBetween(name, bytes, RATELIMIT_MIN_NAME_CHARS, max_chars))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ratelimit name must be %d to %d characters",
						RATELIMIT_MIN_NAME_CHARS, max_chars),
				 errhint("Pass a name of %d to %d characters.",
						 RATELIMIT_MIN_NAME_CHARS, max_chars)));
}

/* Raise 22023 unless a rate limit's limit is at least 1 */
void
RatelimitCheckLimit(int64 limit)
{
	if (limit < RATELIMIT_MIN_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ratelimit limit must be at least %d", RATELIMIT_MIN_LIMIT),
				 errhint("Pass a limit of %d or more.", RATELIMIT_MIN_LIMIT)));
}

/* Raise 22023 unless a rate limit's duration is 1 second to 30 days */
void
RatelimitCheckDuration(int64 duration_ms)
{
	if (duration_ms < RATELIMIT_MIN_DURATION_MS || duration_ms > RATELIMIT_MAX_DURATION_MS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ratelimit duration must be %d to " INT64_FORMAT " milliseconds",
						RATELIMIT_MIN_DURATION_MS, RATELIMIT_MAX_DURATION_MS),
				 errhint("Pass a duration between 1 second and 30 days.")));
}

PG_FUNCTION_INFO_V1(unkey_check_ratelimit_config);

/*
 * unkey._check_ratelimit_config(name, limit, duration_ms): the SQL side's
 * check of a named rate-limit config, so that SQL and verification enforce
 * the same bounds with the same errors.  Not STRICT: a NULL name or limit
 * is an error like any value out of bounds, while a NULL duration_ms means
 * "not given here", for callers that take the duration as an interval and
 * check it with unkey._duration_ms.
 */
Datum
unkey_check_ratelimit_config(PG_FUNCTION_ARGS)
{
	text	   *name = PG_ARGISNULL(0) ? NULL : PG_GETARG_TEXT_PP(0);

	RatelimitCheckName(name ? VARDATA_ANY(name) : NULL, name ? VARSIZE_ANY_EXHDR(name) : 0,
					   RATELIMIT_MAX_NAME_CHARS);
	RatelimitCheckLimit(PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1));
	if (!PG_ARGISNULL(2))
		RatelimitCheckDuration(PG_GETARG_INT64(2));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(unkey_duration_ms);

/*
 * unkey._duration_ms(duration): a duration argument of the SQL side as
 * milliseconds, within the same bounds as every other rate limit's (NULL is
 * out of bounds, not a NULL answer)
 */
Datum
unkey_duration_ms(PG_FUNCTION_ARGS)
{
	int64		ms = PG_ARGISNULL(0) ? 0 : UnkeyIntervalMs(PG_GETARG_INTERVAL_P(0));

	RatelimitCheckDuration(ms);
	PG_RETURN_INT64(ms);
}

/*
 * Validate one standalone limit, resolve its namespace and override, and
 * fill the request.  Returns the override's id, or NULL.
 */
static char *
PrepareLimit(text *nst, text *idt, int64 limit, int64 duration_ms, int64 cost,
			 RLRequest *r, int64 *limit_out, char *nsid)
{
	char	   *name;
	Override   *o;

	CheckName("namespace", nst);
	CheckName("identifier", idt);
	if (limit < RATELIMIT_MIN_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("limit must be at least 1"),
				 errhint("Pass a limit of 1 or more.")));
	if (duration_ms < RATELIMIT_MIN_DURATION_MS || duration_ms > RATELIMIT_MAX_DURATION_MS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("duration must be between 1 second and 30 days"),
				 errhint("Pass a duration between 1 second and 30 days.")));
	if (cost < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cost must be zero or more"),
				 errhint("Pass a cost of 0 or more.")));

	name = text_to_cstring(nst);
	NamespaceId(name, nsid);
	o = MatchOverride(Overrides(nsid), VARDATA_ANY(idt), VARSIZE_ANY_EXHDR(idt));
	if (o != NULL)
	{
		limit = o->limit;
		duration_ms = o->duration_ms;
	}
	UnkeyRateLimitKey(&r->key, "ns", nsid, strlen(nsid),
					  VARDATA_ANY(idt), VARSIZE_ANY_EXHDR(idt), duration_ms);
	r->limit = limit;
	r->cost = cost;
	*limit_out = limit;
	return o ? pstrdup(o->id) : NULL;
}

/* Record the event of one standalone limit (not on a standby, which cannot write it) */
static void
EmitLimitEvent(const char *nsid, text *nst, text *idt, RLRequest *r, int64 limit,
			   const char *override_id, TimestampTz now, instr_time started)
{
	UnkeyEvent	e;
	instr_time	elapsed;

	if (RecoveryInProgress())
		return;
	memset(&e, 0, sizeof(e));
	e.kind = UNKEY_EVENT_RATELIMIT;
	e.nstr = EV_R_NSTR;
	e.time = now;
	e.flag = r->passed;
	e.num[0] = limit;
	e.num[1] = r->remaining;
	e.num[2] = r->reset_ms;
	e.num[3] = r->cost;
	UnkeyEventRequestId(&e, EV_R_REQUEST_ID);
	e.str[EV_R_NAMESPACE_ID] = nsid;
	e.len[EV_R_NAMESPACE_ID] = strlen(nsid);
	e.str[EV_R_NAMESPACE] = VARDATA_ANY(nst);
	e.len[EV_R_NAMESPACE] = VARSIZE_ANY_EXHDR(nst);
	e.str[EV_R_IDENTIFIER] = VARDATA_ANY(idt);
	e.len[EV_R_IDENTIFIER] = VARSIZE_ANY_EXHDR(idt);
	e.str[EV_R_OVERRIDE_ID] = override_id;
	e.len[EV_R_OVERRIDE_ID] = override_id ? strlen(override_id) : 0;
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, started);
	e.latency_ms = INSTR_TIME_GET_MILLISEC(elapsed);
	UnkeyEmitEvent(&e);
}

/* The (success, limit, remaining, reset, override_id) row of one limit */
static HeapTuple
ResultRow(TupleDesc desc, RLRequest *r, int64 limit, char *override_id)
{
	Datum		values[5];
	bool		nulls[5] = {false};

	values[0] = BoolGetDatum(r->passed);
	values[1] = Int64GetDatum(limit);
	values[2] = Int64GetDatum(r->remaining);
	values[3] = TimestampTzGetDatum(UnkeyFromUnixMs(r->reset_ms));
	values[4] = override_id ? CStringGetTextDatum(override_id) : (Datum) 0;
	nulls[4] = (override_id == NULL);
	return heap_form_tuple(desc, values, nulls);
}

/* Raise 22023 naming the argument that is NULL */
static void
NotNull(FunctionCallInfo fcinfo, int n, const char *const *names)
{
	for (int i = 0; i < n; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not be null", names[i]),
					 errhint("Pass a value for %s.", names[i])));
}

PG_FUNCTION_INFO_V1(unkey_ratelimit);

/* unkey_ratelimit(namespace, identifier, limit, duration, cost) */
Datum
unkey_ratelimit(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"namespace", "identifier", "limit", "duration", "cost"};
	RLRequest	r;
	int64		limit;
	char	   *override_id;
	char		nsid[ID_BYTES];
	TimestampTz now;
	instr_time	started;

	INSTR_TIME_SET_CURRENT(started);
	NotNull(fcinfo, 5, names);
	UnkeyRequireLimiter();

	override_id = PrepareLimit(PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), PG_GETARG_INT64(2),
							   UnkeyIntervalMs(PG_GETARG_INTERVAL_P(3)), PG_GETARG_INT64(4),
							   &r, &limit, nsid);
	now = UnkeyNow();
	UnkeyRateLimit(&r, 1, UnkeyUnixMs(now));
	EmitLimitEvent(nsid, PG_GETARG_TEXT_PP(0), PG_GETARG_TEXT_PP(1), &r, limit, override_id, now, started);
	PG_RETURN_DATUM(HeapTupleGetDatum(ResultRow(UnkeyResultDesc(fcinfo), &r, limit, override_id)));
}

PG_FUNCTION_INFO_V1(unkey_ratelimit_batch);

/*
 * unkey._ratelimit_batch(namespaces, identifiers, limits, durations_ms, costs)
 *
 * All-or-nothing over every element (§5.4); one result row per element, in
 * order.  unkey_ratelimit_many parses its JSON into these arrays.
 */
Datum
unkey_ratelimit_batch(PG_FUNCTION_ARGS)
{
	static const char *const names[] = {"namespaces", "identifiers", "limits", "durations", "costs"};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum	   *cols[5];
	bool	   *colnulls[5];
	int			counts[5];
	Oid			types[5] = {TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID};
	RLRequest  *reqs;
	int64	   *limits;
	char	  **overrides;
	char	  (*nsids)[ID_BYTES];
	int			n;
	TimestampTz now;
	instr_time	started;

	INSTR_TIME_SET_CURRENT(started);
	NotNull(fcinfo, 5, names);
	UnkeyRequireLimiter();
	for (int a = 0; a < 5; a++)
	{
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(a), types[a],
						  types[a] == TEXTOID ? -1 : 8, types[a] != TEXTOID,
						  types[a] == TEXTOID ? TYPALIGN_INT : TYPALIGN_DOUBLE,
						  &cols[a], &colnulls[a], &counts[a]);
		if (counts[a] != counts[0])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the arrays must have the same length"),
					 errhint("Pass one element in each array per limit.")));
		for (int i = 0; i < counts[a]; i++)
			if (colnulls[a][i])
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s must not contain null", names[a]),
						 errhint("Remove the nulls from %s.", names[a])));
	}
	n = counts[0];
	reqs = palloc0(sizeof(RLRequest) * Max(n, 1));
	limits = palloc(sizeof(int64) * Max(n, 1));
	overrides = palloc(sizeof(char *) * Max(n, 1));
	nsids = palloc(ID_BYTES * Max(n, 1));
	for (int i = 0; i < n; i++)
		overrides[i] = PrepareLimit(DatumGetTextPP(cols[0][i]), DatumGetTextPP(cols[1][i]),
									DatumGetInt64(cols[2][i]), DatumGetInt64(cols[3][i]),
									DatumGetInt64(cols[4][i]), &reqs[i], &limits[i], nsids[i]);

	now = UnkeyNow();
	UnkeyRateLimit(reqs, n, UnkeyUnixMs(now));
	for (int i = 0; i < n; i++)
		EmitLimitEvent(nsids[i], DatumGetTextPP(cols[0][i]), DatumGetTextPP(cols[1][i]), &reqs[i],
					   limits[i], overrides[i], now, started);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
		tuplestore_puttuple(rsinfo->setResult,
							ResultRow(rsinfo->setDesc, &reqs[i], limits[i], overrides[i]));
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(unkey_wildcard_match);

/* unkey._wildcard_match(pattern, identifier): the override matcher, for tests */
Datum
unkey_wildcard_match(PG_FUNCTION_ARGS)
{
	text	   *p = PG_GETARG_TEXT_PP(0);
	text	   *s = PG_GETARG_TEXT_PP(1);

	PG_RETURN_BOOL(UnkeyWildcardMatch(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p),
								 VARDATA_ANY(s), VARSIZE_ANY_EXHDR(s)));
}

PG_FUNCTION_INFO_V1(unkey_invalidate);

/*
 * unkey._invalidate(rel regclass): at commit, tell every backend that rel
 * changed, so they drop the caches built from it.
 */
Datum
unkey_invalidate(PG_FUNCTION_ARGS)
{
	CacheInvalidateRelcacheByRelid(PG_GETARG_OID(0));
	PG_RETURN_VOID();
}
