/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  unkey_verify_key: the hot path.
 *
 * The checks run in Unkey's order (README "Verification"): NOT_FOUND,
 * DISABLED, EXPIRED, FORBIDDEN, INSUFFICIENT_PERMISSIONS, RATE_LIMITED,
 * then credits; the first
 * failure wins and nothing after it is consumed.  A verification refused
 * for credits has consumed its rate-limit tokens, as in Unkey.  Every outcome is a result row, never an
 * error; only malformed arguments raise.
 *
 * Concurrency: the key, its API, identity, permissions and roles are read
 * by index (tables.c) with a fresh snapshot, and credits are spent by one
 * conditional UPDATE that re-checks the row's state and balance under its
 * row lock (READ COMMITTED re-evaluates the WHERE clause on the newest row
 * version).  If that UPDATE matches nothing, another transaction changed the
 * key in between; the key is read again with a new snapshot and the checks
 * run again.  So N concurrent verifications of a key with C credits give
 * exactly min(N, C) VALID, and a rolled-back transaction gives its credits
 * back.  Under REPEATABLE READ or SERIALIZABLE, a concurrent spend makes the
 * UPDATE fail with a serialization error, as any UPDATE would.
 *
 * The UPDATE and the event INSERT are planned once per backend and kept
 * (SPI_keepplan); the plan cache replans them after DDL.  The function runs
 * as SECURITY DEFINER with search_path = pg_catalog, pg_temp, and every name
 * in them is qualified.
 *
 * On Citus (README: Running on Citus) a key whose shard is on another node
 * is verified there: unkey_verify_key calls unkey_verify_key_by_hash as a
 * statement of its own, which Citus sends to that node in the caller's
 * transaction, so the reads, the spend, the rate limits and the event are
 * that node's, as when the application calls it directly.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "credits.h"
#include "events.h"
#include "keys.h"
#include "limiter.h"
#include "permissions.h"
#include "ratelimit.h"
#include "utils.h"

/* Bounds from Unkey's API (README, Verification) */
#define UNKEY_MAX_KEY_CHARS 512
#define UNKEY_MAX_TAGS 20
#define UNKEY_MAX_TAG_CHARS 512
#define UNKEY_MAX_LIMIT_ASKS 100

/* Outcome codes */
typedef enum VerifyCode
{
	VERIFY_VALID,
	VERIFY_NOT_FOUND,
	VERIFY_FORBIDDEN,
	VERIFY_INSUFFICIENT_PERMISSIONS,
	VERIFY_RATE_LIMITED,
	VERIFY_USAGE_EXCEEDED,
	VERIFY_DISABLED,
	VERIFY_EXPIRED
} VerifyCode;

static const char *const verify_code_names[] = {
	"VALID", "NOT_FOUND", "FORBIDDEN", "INSUFFICIENT_PERMISSIONS", "RATE_LIMITED", "USAGE_EXCEEDED", "DISABLED", "EXPIRED"
};

/* Everything verification knows about a key, read by index */
typedef struct KeyData
{
	Datum	   *col;			/* KeyColumn order */
	bool	   *null;
	bool		live;			/* neither the key nor its API is deleted */
	Datum		whitelist;		/* the API's inet[], if not null */
	bool		whitelist_null;
	Datum		external_id;
	bool		external_id_null;
	Datum		identity_meta;
	Datum		permissions;	/* text[], sorted, distinct */
	Datum		roles;			/* text[], sorted */
} KeyData;

/* $1 hash, $2 cost, $3 now */
static const char spend_sql[] =
"UPDATE unkey.keys"
"   SET remaining = unkey._credits_now(remaining, refill_amount, refill_day, last_refill_at, $3) - $2,"
"       last_refill_at = CASE WHEN refill_amount IS NOT NULL"
"                              AND unkey._refill_due(last_refill_at, refill_day, $3)"
"                             THEN $3 ELSE last_refill_at END"
" WHERE key_hash = $1 AND deleted_at IS NULL AND enabled"
"   AND (expires IS NULL OR expires >= $3)"
"   AND unkey._credits_now(remaining, refill_amount, refill_day, last_refill_at, $3) >= $2"
" RETURNING remaining";

static SPIPlanPtr spend_plan = NULL;

/* How often a verification re-reads a key that changed under it */
#define VERIFY_MAX_ATTEMPTS 5

/* Plan a statement once per backend and keep it */
static SPIPlanPtr
KeepPlan(SPIPlanPtr *slot, const char *sql, int nargs, Oid *argtypes)
{
	if (*slot == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL)
			elog(ERROR, "unkey: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "unkey: SPI_keepplan failed");
		*slot = plan;
	}
	return *slot;
}

/* Raise 22023 unless tags is at most 20 strings of 1..512 characters */
static void
CheckTags(ArrayType *tags)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(tags) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tags must be a one-dimensional array"),
				 errhint("Pass tags as a flat text array.")));
	deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > UNKEY_MAX_TAGS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tags must have at most %d entries", UNKEY_MAX_TAGS),
				 errhint("Pass at most %d tags.", UNKEY_MAX_TAGS)));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tags must not contain null"),
					 errhint("Remove the nulls from tags.")));
		if (!UnkeyCharsBetween(VARDATA_ANY(elems[i]), VARSIZE_ANY_EXHDR(elems[i]), 1, UNKEY_MAX_TAG_CHARS))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("each tag must be 1 to %d characters", UNKEY_MAX_TAG_CHARS),
					 errhint("Pass tags of 1 to %d characters.", UNKEY_MAX_TAG_CHARS)));
	}
}

/* Is ip inside any entry of the API's whitelist (CIDR aware)? */
static bool
IpAllowed(Datum whitelist, Datum ip)
{
	ArrayType  *arr = DatumGetArrayTypeP(whitelist);
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(arr, INETOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && DatumGetBool(DirectFunctionCall2(network_subeq, ip, elems[i])))
			return true;
	return false;
}

/* A sorted, de-duplicated text[] of the given names */
static Datum
SortedTextArray(Datum *names, int n)
{
	int			kept = 0;

	qsort(names, n, sizeof(Datum), UnkeyCompareTexts);
	for (int i = 0; i < n; i++)
		if (kept == 0 || UnkeyCompareTexts(&names[kept - 1], &names[i]) != 0)
			names[kept++] = names[i];
	return PointerGetDatum(construct_array(names, kept, TEXTOID, -1, false, TYPALIGN_INT));
}

/* The names found in table t for each of the given ids (its primary key) */
static int
NamesOf(UnkeyTable t, Datum *ids, int nids, Snapshot snap, Datum *names)
{
	int			n = 0;

	for (int i = 0; i < nids; i++)
	{
		Datum	   *v;
		bool	   *isnull;

		if (UnkeyFetch(t, ids[i], snap, &v, &isnull) == 1 && !isnull[0])
			names[n++] = v[0];
	}
	return n;
}

/* The key's roles, and its permissions: direct ones plus those of its roles */
static void
ReadGrants(Datum hash, Snapshot snap, KeyData *k)
{
	Datum	   *perm_ids;
	Datum	   *role_ids;
	bool	   *isnull;
	int			nperms = UnkeyFetch(UNKEY_KEY_PERMISSIONS, hash, snap, &perm_ids, &isnull);
	int			nroles = UnkeyFetch(UNKEY_KEY_ROLES, hash, snap, &role_ids, &isnull);
	Datum	   *names;

	/* the common case: no grants at all */
	if (nperms == 0 && nroles == 0)
	{
		k->permissions = k->roles = PointerGetDatum(construct_empty_array(TEXTOID));
		return;
	}

	for (int r = 0; r < nroles; r++)
	{
		Datum	   *v;
		int			nv = UnkeyFetch(UNKEY_ROLE_PERMISSIONS, role_ids[r], snap, &v, &isnull);

		perm_ids = repalloc(perm_ids, sizeof(Datum) * (nperms + nv + 1));
		memcpy(perm_ids + nperms, v, sizeof(Datum) * nv);
		nperms += nv;
	}

	names = palloc(sizeof(Datum) * (Max(nperms, nroles) + 1));
	k->permissions = SortedTextArray(names, NamesOf(UNKEY_PERMISSIONS, perm_ids, nperms, snap, names));
	k->roles = SortedTextArray(names, NamesOf(UNKEY_ROLES, role_ids, nroles, snap, names));
}

/* Read a key and what belongs to it; false if no key has this hash */
static bool
ReadKey(Datum hash, KeyData *k)
{
	Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());
	Datum	   *v;
	bool	   *isnull;
	bool		found = false;

	if (UnkeyFetch(UNKEY_KEYS, hash, snap, &k->col, &k->null) == 1)
	{
		found = true;
		k->live = k->null[K_DELETED_AT];
		k->whitelist_null = true;
		if (UnkeyFetch(UNKEY_APIS, k->col[K_API_ID], snap, &v, &isnull) == 1)
		{
			k->live = k->live && isnull[0];
			k->whitelist = v[1];
			k->whitelist_null = isnull[1];
		}
		k->external_id_null = true;
		if (!k->null[K_IDENTITY_ID] &&
			UnkeyFetch(UNKEY_IDENTITIES, k->col[K_IDENTITY_ID], snap, &v, &isnull) == 1)
		{
			k->external_id = v[0];
			k->external_id_null = isnull[0];
			k->identity_meta = v[1];
		}
		ReadGrants(hash, snap, k);
	}
	UnregisterSnapshot(snap);
	return found;
}

/* The key's balance after any refill that is due now */
static int64
Balance(KeyData *k, TimestampTz now)
{
	return UnkeyCreditsNow(DatumGetInt64(k->col[K_REMAINING]),
						   k->null[K_REFILL_AMOUNT],
						   k->null[K_REFILL_AMOUNT] ? 0 : DatumGetInt64(k->col[K_REFILL_AMOUNT]),
						   k->null[K_LAST_REFILL_AT],
						   k->null[K_LAST_REFILL_AT] ? 0 : DatumGetTimestampTz(k->col[K_LAST_REFILL_AT]),
						   k->null[K_REFILL_DAY],
						   k->null[K_REFILL_DAY] ? 0 : DatumGetInt32(k->col[K_REFILL_DAY]),
						   now);
}

/* A rate limit named in verification's ratelimits argument */
typedef struct LimitAsk
{
	char	   *name;
	int64		cost;
	bool		is_inline;		/* carries its own limit and duration */
	int64		limit;
	int64		duration_ms;
} LimitAsk;

/* A rate limit that this verification checks */
typedef struct LimitCheck
{
	char	   *name;
	int64		limit;
	int64		duration_ms;
	bool		auto_apply;
} LimitCheck;

/* Raise 22023 for the shape of the ratelimits argument */
static void
BadLimits(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid ratelimits: %s", detail),
			 errhint("Pass a JSON array of objects, one per rate limit, each with a name and optionally cost, limit and duration.")));
}

/* A JSON number as an int64; false unless it is an integer in bigint's range */
static bool
JsonInt(JsonbValue *v, int64 *out)
{
	char	   *str;
	char	   *end;
	long long	n;

	if (v->type != jbvNumeric)
		return false;
	str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	errno = 0;
	n = strtoll(str, &end, 10);
	if (*end != '\0' || errno != 0)
		return false;
	*out = n;
	return true;
}

/* A limit's or duration's JSON value as an int64, or 22023 */
static int64
JsonBigint(JsonbValue *v, const char *field)
{
	int64		n;

	if (!JsonInt(v, &n))
		BadLimits(psprintf("%s must be an integer in the range of bigint", field));
	return n;
}

/*
 * Parse [{"name", "cost"?, "limit"?, "duration"?}, ...]: a name with both
 * limit and duration is an inline limit; any other entry refers to a
 * configured limit by its name, as in Unkey's verifier (since 0.5.0: a lone
 * limit or duration is checked, then ignored).  A malformed entry is 22023,
 * checked before any lookup.
 */
static int
ParseLimitAsks(Jsonb *jb, LimitAsk **out)
{
	int			n;
	LimitAsk   *asks;

	if (!JB_ROOT_IS_ARRAY(jb) || JB_ROOT_IS_SCALAR(jb))
		BadLimits("must be a JSON array");
	n = JsonContainerSize(&jb->root);
	if (n > UNKEY_MAX_LIMIT_ASKS)
		BadLimits(psprintf("at most %d entries", UNKEY_MAX_LIMIT_ASKS));
	asks = palloc0(sizeof(LimitAsk) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&jb->root, i);
		JsonbContainer *obj;
		JsonbValue	v;
		int			known = 0;
		bool		has_limit,
					has_duration;

		if (item->type != jbvBinary || !JsonContainerIsObject(item->val.binary.data))
			BadLimits("each entry must be an object");
		obj = item->val.binary.data;
		if (!getKeyJsonValueFromContainer(obj, "name", 4, &v) || v.type != jbvString)
			RatelimitCheckName(NULL, 0, RATELIMIT_MAX_REQUEST_NAME_CHARS);	/* raises: a name is required */
		else
			RatelimitCheckName(v.val.string.val, v.val.string.len, RATELIMIT_MAX_REQUEST_NAME_CHARS);
		asks[i].name = pnstrdup(v.val.string.val, v.val.string.len);
		known++;
		for (int j = 0; j < i; j++)
			if (strcmp(asks[j].name, asks[i].name) == 0)
				BadLimits(psprintf("\"%s\" is named twice", asks[i].name));
		asks[i].cost = 1;
		if (getKeyJsonValueFromContainer(obj, "cost", 4, &v))
		{
			if (!JsonInt(&v, &asks[i].cost) || asks[i].cost < 0)
				BadLimits(psprintf("cost must be an integer from 0 to " INT64_FORMAT, PG_INT64_MAX));
			known++;
		}
		has_limit = getKeyJsonValueFromContainer(obj, "limit", 5, &v) != NULL;
		if (has_limit)
		{
			asks[i].limit = JsonBigint(&v, "limit");
			RatelimitCheckLimit(asks[i].limit);
			known++;
		}
		has_duration = getKeyJsonValueFromContainer(obj, "duration", 8, &v) != NULL;
		if (has_duration)
		{
			asks[i].duration_ms = JsonBigint(&v, "duration");
			RatelimitCheckDuration(asks[i].duration_ms);
			known++;
		}
		asks[i].is_inline = has_limit && has_duration;
		if (known != (int) JsonContainerSize(obj))
			BadLimits("the only fields are name, cost, limit and duration");
	}
	*out = asks;
	return n;
}

/* The configured limit of this name: the key's, else its identity's */
static LimitCheck *
FindConfig(LimitCheck *configs, int nconfigs, const char *name)
{
	for (int i = 0; i < nconfigs; i++)
		if (strcmp(configs[i].name, name) == 0)
			return &configs[i];
	return NULL;
}

/* Read n rate-limit config rows (RatelimitColumn order) into checks */
static void
ReadConfigs(Datum *v, int n, LimitCheck *checks)
{
	for (int i = 0; i < n; i++)
	{
		checks[i].name = TextDatumGetCString(v[i * R_NCOLS + R_NAME]);
		checks[i].limit = DatumGetInt64(v[i * R_NCOLS + R_LIMIT]);
		checks[i].duration_ms = DatumGetInt64(v[i * R_NCOLS + R_DURATION_MS]);
		checks[i].auto_apply = DatumGetBool(v[i * R_NCOLS + R_AUTO_APPLY]);
	}
}

/* Order configs by name, bytewise, so auto-applied limits report in a fixed order */
static int
CompareChecks(const void *a, const void *b)
{
	return strcmp(((const LimitCheck *) a)->name, ((const LimitCheck *) b)->name);
}

/* JSON values for the ratelimits column, built without printing and parsing */
static JsonbValue
JsonString(const char *str)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) str;
	v.val.string.len = strlen(str);
	return v;
}

/* An int64 as a JSON number */
static JsonbValue
JsonNumber(int64 n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(n);
	return v;
}

/* A JSON boolean */
static JsonbValue
JsonBool(bool b)
{
	JsonbValue	v;

	v.type = jbvBool;
	v.val.boolean = b;
	return v;
}

/* Push "key": value into the object being built */
static void
PushPair(JsonbParseState **st, const char *key, JsonbValue value)
{
	JsonbValue	k = JsonString(key);

	pushJsonbValue(st, WJB_KEY, &k);
	pushJsonbValue(st, WJB_VALUE, &value);
}

/*
 * Check the key's rate limits (§3.5): every autoApply config of the key and
 * of its identity (a key config shadows an identity config of the same
 * name), plus those the caller names.  All-or-nothing; fills *json with one
 * object per limit evaluated.  Raises PT412 for a name that exists on
 * neither, before any counter moves.  Returns false when rate limited.
 */
static bool
CheckKeyLimits(KeyData *k, Datum hash, LimitAsk *asks, int nasks, int64 now_ms, Datum *json)
{
	Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());
	Datum	   *v;
	bool	   *isnull;
	int			nkey = UnkeyFetch(UNKEY_KEY_RATELIMITS, hash, snap, &v, &isnull);
	int			nident = 0;
	LimitCheck *configs;
	bool	   *is_identity;
	LimitCheck *checks;
	char	  **owners;
	RLRequest  *reqs;
	int			n = 0;
	bool		passed;
	JsonbParseState *st = NULL;
	char	   *key_id = TextDatumGetCString(k->col[K_ID]);
	char	   *identity_id = k->null[K_IDENTITY_ID] ? NULL : TextDatumGetCString(k->col[K_IDENTITY_ID]);
	Datum	   *iv = NULL;

	if (identity_id)
		nident = UnkeyFetch(UNKEY_IDENTITY_RATELIMITS, k->col[K_IDENTITY_ID], snap, &iv, &isnull);
	UnregisterSnapshot(snap);

	/* the key's configs, then the identity's that no key config shadows */
	configs = palloc(sizeof(LimitCheck) * (nkey + nident + 1));
	is_identity = palloc0(sizeof(bool) * (nkey + nident + 1));
	ReadConfigs(v, nkey, configs);
	qsort(configs, nkey, sizeof(LimitCheck), CompareChecks);
	if (nident > 0)
	{
		LimitCheck *ident = palloc(sizeof(LimitCheck) * nident);
		int			kept = nkey;

		ReadConfigs(iv, nident, ident);
		qsort(ident, nident, sizeof(LimitCheck), CompareChecks);
		for (int i = 0; i < nident; i++)
			if (FindConfig(configs, nkey, ident[i].name) == NULL)
			{
				is_identity[kept] = true;
				configs[kept++] = ident[i];
			}
		nident = kept - nkey;
	}

	checks = palloc(sizeof(LimitCheck) * (nasks + nkey + nident + 1));
	owners = palloc(sizeof(char *) * (nasks + nkey + nident + 1));
	reqs = palloc0(sizeof(RLRequest) * (nasks + nkey + nident + 1));

	/* the limits named by the caller, in their order */
	for (int i = 0; i < nasks; i++)
	{
		LimitCheck *c = FindConfig(configs, nkey + nident, asks[i].name);

		if (asks[i].is_inline)
		{
			checks[n].name = asks[i].name;
			checks[n].limit = asks[i].limit;
			checks[n].duration_ms = asks[i].duration_ms;
			checks[n].auto_apply = false;
			owners[n] = key_id;
		}
		else if (c == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNKEY_PRECONDITION_FAILED),
					 errmsg("ratelimit \"%s\" was requested but does not exist for key \"%s\" %s",
							asks[i].name, key_id,
							identity_id ? psprintf("nor its identity \"%s\"", identity_id)
							: "and the key has no identity"),
					 errhint("Configure the rate limit on the key or its identity, or give its limit and duration inline.")));
		else
		{
			checks[n] = *c;
			owners[n] = is_identity[c - configs] ? identity_id : key_id;
		}
		reqs[n].cost = asks[i].cost;
		n++;
	}
	/* then every auto-applied config not named above, at cost 1 */
	for (int i = 0; i < nkey + nident; i++)
	{
		bool		named = false;

		for (int j = 0; j < nasks && !named; j++)
			named = (strcmp(asks[j].name, configs[i].name) == 0);
		if (!configs[i].auto_apply || named)
			continue;
		checks[n] = configs[i];
		owners[n] = is_identity[i] ? identity_id : key_id;
		reqs[n].cost = 1;
		n++;
	}

	*json = (Datum) 0;
	if (n == 0)
		return true;

	for (int i = 0; i < n; i++)
	{
		UnkeyRateLimitKey(&reqs[i].key, "verify", checks[i].name, strlen(checks[i].name),
						  owners[i], strlen(owners[i]), checks[i].duration_ms);
		reqs[i].limit = checks[i].limit;
	}
	passed = UnkeyRateLimit(reqs, n, now_ms);

	pushJsonbValue(&st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		PushPair(&st, "name", JsonString(checks[i].name));
		PushPair(&st, "limit", JsonNumber(checks[i].limit));
		PushPair(&st, "duration", JsonNumber(checks[i].duration_ms));
		PushPair(&st, "remaining", JsonNumber(reqs[i].remaining));
		PushPair(&st, "reset", JsonNumber(reqs[i].reset_ms));
		PushPair(&st, "exceeded", JsonBool(!reqs[i].passed));
		PushPair(&st, "autoApply", JsonBool(checks[i].auto_apply));
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
	}
	*json = JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_ARRAY, NULL)));
	return passed;
}

/* One string of an event from a text Datum */
static void
EventText(UnkeyEvent *e, int s, Datum d, bool isnull)
{
	text	   *t;

	if (isnull)
		return;
	t = DatumGetTextPP(d);
	e->str[s] = VARDATA_ANY(t);
	e->len[s] = VARSIZE_ANY_EXHDR(t);
}

/*
 * Record a verification: appended to the event buffer, so it survives the
 * caller's rollback and costs no WAL here (written at once when the
 * library is not preloaded).  NOT_FOUND carries only the presented hash.
 */
static void
EmitVerification(VerifyCode code, bytea *hash, KeyData *k, int64 spent, Datum api_id, Datum tags,
				 TimestampTz now, instr_time started)
{
	UnkeyEvent	e;
	instr_time	elapsed;

	memset(&e, 0, sizeof(e));
	e.kind = UNKEY_EVENT_VERIFICATION;
	e.nstr = EV_V_NSTR;
	e.time = now;
	e.num[0] = spent;
	e.str[EV_V_HASH] = VARDATA(hash);
	e.len[EV_V_HASH] = UNKEY_HASH_LEN;
	UnkeyEventRequestId(&e, EV_V_REQUEST_ID);
	if (code == VERIFY_NOT_FOUND)
	{
		/* the API asked about, if it can be an API id at all (it is indexed) */
		if (api_id != (Datum) 0 && VARSIZE_ANY_EXHDR(DatumGetTextPP(api_id)) <= UNKEY_MAX_ID_BYTES)
			EventText(&e, EV_V_API_ID, api_id, false);
	}
	else
	{
		EventText(&e, EV_V_API_ID, k->col[K_API_ID], false);
		EventText(&e, EV_V_KEY_ID, k->col[K_ID], false);
		EventText(&e, EV_V_IDENTITY_ID, k->col[K_IDENTITY_ID], k->null[K_IDENTITY_ID]);
		EventText(&e, EV_V_EXTERNAL_ID, k->external_id, k->external_id_null);
	}
	e.str[EV_V_OUTCOME] = verify_code_names[code];
	e.len[EV_V_OUTCOME] = strlen(verify_code_names[code]);
	if (tags != (Datum) 0)
	{
		e.str[EV_V_TAGS] = OidOutputFunctionCall(F_ARRAY_OUT, tags);
		e.len[EV_V_TAGS] = strlen(e.str[EV_V_TAGS]);
	}
	INSTR_TIME_SET_CURRENT(elapsed);
	INSTR_TIME_SUBTRACT(elapsed, started);
	e.latency_ms = INSTR_TIME_GET_MILLISEC(elapsed);
	UnkeyEmitEvent(&e);
}

/*
 * On Citus, the verification of a key whose shard another node holds: the
 * entry point keyed by the hash, called as a statement of its own, which
 * Citus sends to that node (in this transaction).  The arguments are the
 * caller's, after the hash.
 */
static Datum
VerifyElsewhere(FunctionCallInfo fcinfo, bytea *hash, TupleDesc result_desc, MemoryContext callcxt)
{
	Oid			types[8] = {BYTEAOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, JSONBOID, TEXTARRAYOID, INETOID};
	Datum		args[8];
	char		nulls[8];
	Datum		values[V_NCOLS];
	bool		isnull[V_NCOLS];
	HeapTuple	tuple;

	args[0] = PointerGetDatum(hash);
	nulls[0] = ' ';
	for (int i = 0; i < 7; i++)
	{
		args[i + 1] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
		nulls[i + 1] = PG_ARGISNULL(i) ? 'n' : ' ';
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	if (SPI_execute_with_args("SELECT * FROM unkey.unkey_verify_key_by_hash($1, $2, $3, $4, $5, $6, $7, $8)",
							  8, types, args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1 ||
		SPI_tuptable->tupdesc->natts != result_desc->natts)
		elog(ERROR, "unkey: the verification on the key's Citus node returned no result");
	heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, isnull);
	{
		MemoryContext old = MemoryContextSwitchTo(callcxt);

		for (int c = 0; c < result_desc->natts; c++)
			if (!isnull[c])
			{
				Form_pg_attribute att = TupleDescAttr(result_desc, c);

				values[c] = datumCopy(values[c], att->attbyval, att->attlen);
			}
		tuple = heap_form_tuple(result_desc, values, isnull);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return HeapTupleGetDatum(tuple);
}

/*
 * Verify: unkey_verify_key's arguments in fcinfo; a call keyed by the hash
 * (by_hash) is where Citus sent it, and is never sent on.
 */
static Datum
Verify(FunctionCallInfo fcinfo, bool by_hash)
{
	MemoryContext callcxt = CurrentMemoryContext;
	TupleDesc	result_desc;
	Datum		values[V_NCOLS];
	bool		nulls[V_NCOLS];
	text	   *key;
	int64		cost;
	bytea	   *hash;
	TimestampTz now;
	VerifyCode	code = VERIFY_NOT_FOUND;
	KeyData		k;
	int64		balance = 0;	/* credits after this call, if not unlimited */
	int64		spent = 0;
	PQItem		query[PQ_MAX_ITEMS];
	int			nquery = -1;	/* parsed once the key is found */
	LimitAsk   *asks = NULL;
	int			nasks = 0;
	bool		limits_checked = false;
	Datum		limits_json = (Datum) 0;
	Datum		args[3];
	Oid			spend_types[3] = {BYTEAOID, INT8OID, TIMESTAMPTZOID};
	Datum		result;
	instr_time	started;

	INSTR_TIME_SET_CURRENT(started);

	result_desc = UnkeyResultDesc(fcinfo);

	/* argument checks: only malformed input raises */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must not be null"),
				 errhint("Pass the key to verify.")));
	key = PG_GETARG_TEXT_PP(0);
	if (!UnkeyCharsBetween(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), 1, UNKEY_MAX_KEY_CHARS))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must be 1 to %d characters", UNKEY_MAX_KEY_CHARS),
				 errhint("Pass a key of 1 to %d characters.", UNKEY_MAX_KEY_CHARS)));
	if (PG_ARGISNULL(3) || PG_GETARG_INT64(3) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cost must be zero or more"),
				 errhint("Pass a cost of 0 or more.")));
	cost = PG_GETARG_INT64(3);
	if (!PG_ARGISNULL(4))
		nasks = ParseLimitAsks(PG_GETARG_JSONB_P(4), &asks);
	if (!PG_ARGISNULL(5))
		CheckTags(PG_GETARG_ARRAYTYPE_P(5));

	now = UnkeyNow();
	hash = palloc(VARHDRSZ + UNKEY_HASH_LEN);
	SET_VARSIZE(hash, VARHDRSZ + UNKEY_HASH_LEN);
	UnkeyHashKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), (unsigned char *) VARDATA(hash));
	if (!by_hash && UnkeyElsewhere(UNKEY_KEYS, PointerGetDatum(hash)))
		return VerifyElsewhere(fcinfo, hash, result_desc, callcxt);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");

	for (int attempt = 0; attempt < VERIFY_MAX_ATTEMPTS; attempt++)
	{
		int			ret;

		code = VERIFY_NOT_FOUND;
		if (!ReadKey(PointerGetDatum(hash), &k))
			break;
		/* every outcome with a key reports the balance after any due refill */
		if (!k.null[K_REMAINING])
			balance = Balance(&k, now);

		/* deleted key, deleted API, or a key of another API */
		if (!k.live ||
			(!PG_ARGISNULL(1) &&
			 !DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID,
												   PG_GETARG_DATUM(1), k.col[K_API_ID]))))
			break;

		/*
		 * A permission query is parsed only for a key that exists, so a bad
		 * one on a disabled key is still an error (42601), as in Unkey.
		 */
		if (!PG_ARGISNULL(2) && nquery < 0)
			nquery = UnkeyParsePermissionQuery(PG_GETARG_TEXT_PP(2), query);

		if (!DatumGetBool(k.col[K_ENABLED]))
		{
			code = VERIFY_DISABLED;
			break;
		}
		if (!k.null[K_EXPIRES] && now > DatumGetTimestampTz(k.col[K_EXPIRES]))
		{
			code = VERIFY_EXPIRED;
			break;
		}
		if (!k.whitelist_null &&
			(PG_ARGISNULL(6) || !IpAllowed(k.whitelist, PG_GETARG_DATUM(6))))
		{
			code = VERIFY_FORBIDDEN;
			break;
		}

		if (nquery > 0)
		{
			Datum	   *granted;	/* already sorted and distinct */
			int			ngranted;

			deconstruct_array(DatumGetArrayTypeP(k.permissions), TEXTOID, -1, false,
							  TYPALIGN_INT, &granted, NULL, &ngranted);
			if (!UnkeyPermissionsMatch(PG_GETARG_TEXT_PP(2), query, nquery, granted, ngranted))
			{
				code = VERIFY_INSUFFICIENT_PERMISSIONS;
				break;
			}
		}

		/*
		 * A key that would spend where nothing can be written (a standby, a
		 * read-only transaction) fails before its rate limits take a token.
		 */
		if (!k.null[K_REMAINING] && cost > 0)
		{
			if (RecoveryInProgress())
				ereport(ERROR,
						(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
						 errmsg("cannot spend credits during recovery"),
						 errhint("Verify with cost => 0 on a standby, or connect to the primary.")));
			if (XactReadOnly)
				ereport(ERROR,
						(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
						 errmsg("cannot spend credits in a read-only transaction"),
						 errhint("Verify with cost => 0 here, or in a read-write transaction (PostgREST runs GET and HEAD read-only: use POST).")));
		}

		/*
		 * Rate limits, once per verification even if the credit update below
		 * has to re-read the key: counters are not transactional.
		 */
		if (!limits_checked)
		{
			limits_checked = true;
			if (!CheckKeyLimits(&k, PointerGetDatum(hash), asks, nasks,
								UnkeyUnixMs(now), &limits_json))
			{
				code = VERIFY_RATE_LIMITED;
				break;
			}
		}

		code = VERIFY_VALID;
		if (k.null[K_REMAINING] || cost == 0)
			break;				/* unlimited, or a check that spends nothing */
		if (balance < cost)
		{
			code = VERIFY_USAGE_EXCEEDED;
			break;
		}


		args[0] = PointerGetDatum(hash);
		args[1] = Int64GetDatum(cost);
		args[2] = TimestampTzGetDatum(now);
		ret = SPI_execute_plan(KeepPlan(&spend_plan, spend_sql, 3, spend_types),
							   args, NULL, false, 1);
		if (ret != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "unkey: credit update failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == 1)
		{
			bool		isnull;

			balance = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
			spent = cost;
			break;
		}
		/* the key changed under us: read it again and redo the checks */
		code = VERIFY_USAGE_EXCEEDED;
	}

	/* record the verification; a standby cannot write, so it skips this */
	if (!RecoveryInProgress())
		EmitVerification(code, hash, &k, spent, PG_ARGISNULL(1) ? (Datum) 0 : PG_GETARG_DATUM(1),
						 PG_ARGISNULL(5) ? (Datum) 0 : PG_GETARG_DATUM(5), now, started);

	/* build the result in the caller's context; it copies every value */
	memset(nulls, true, sizeof(nulls));
	values[V_VALID] = BoolGetDatum(code == VERIFY_VALID);
	nulls[V_VALID] = false;
	values[V_CODE] = CStringGetTextDatum(verify_code_names[code]);
	nulls[V_CODE] = false;
	if (code != VERIFY_NOT_FOUND)
	{
#define COPY(v, c) (values[v] = k.col[c], nulls[v] = k.null[c])
		COPY(V_KEY_ID, K_ID);
		COPY(V_API_ID, K_API_ID);
		COPY(V_NAME, K_NAME);
		COPY(V_IDENTITY_ID, K_IDENTITY_ID);
		COPY(V_META, K_META);
		COPY(V_EXPIRES, K_EXPIRES);
		COPY(V_ENABLED, K_ENABLED);
#undef COPY
		values[V_EXTERNAL_ID] = k.external_id;
		nulls[V_EXTERNAL_ID] = k.external_id_null;
		/* identities.meta is NOT NULL, so it is there exactly when the identity is */
		values[V_IDENTITY_META] = k.identity_meta;
		nulls[V_IDENTITY_META] = k.external_id_null;
		values[V_PERMISSIONS] = k.permissions;
		nulls[V_PERMISSIONS] = false;
		values[V_ROLES] = k.roles;
		nulls[V_ROLES] = false;
		values[V_RATELIMITS] = limits_json;
		nulls[V_RATELIMITS] = (limits_json == (Datum) 0);
		/* credits after this verification; NULL for unlimited keys */
		nulls[V_CREDITS] = k.null[K_REMAINING];
	}
	{
		MemoryContext old = MemoryContextSwitchTo(callcxt);

		if (!nulls[V_CREDITS])
			values[V_CREDITS] = Int64GetDatum(balance);
		result = HeapTupleGetDatum(heap_form_tuple(result_desc, values, nulls));
		MemoryContextSwitchTo(old);
	}

	SPI_finish();
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(unkey_verify_key);

/*
 * unkey_verify_key(key, api_id, permissions, cost, ratelimits, tags, ip)
 */
Datum
unkey_verify_key(PG_FUNCTION_ARGS)
{
	return Verify(fcinfo, false);
}

PG_FUNCTION_INFO_V1(unkey_verify_key_by_hash);

/*
 * unkey_verify_key_by_hash(key_hash, key, api_id, permissions, cost,
 * ratelimits, tags, ip): unkey_verify_key with the key's stored hash first,
 * so that Citus can run it on the node that holds the key's shard (it is
 * distributed by its first argument).  The hash must be the key's: a
 * mismatch is 22023, so no key is verified by another key's hash.
 */
Datum
unkey_verify_key_by_hash(PG_FUNCTION_ARGS)
{
	LOCAL_FCINFO(inner, 7);
	unsigned char digest[UNKEY_HASH_LEN];
	text	   *key;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_hash and key must not be null"),
				 errhint("Pass decode(unkey_hash_key(key), 'base64') and the key.")));
	key = PG_GETARG_TEXT_PP(1);
	UnkeyHashKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), digest);
	if (VARSIZE_ANY_EXHDR(PG_GETARG_BYTEA_PP(0)) != UNKEY_HASH_LEN ||
		memcmp(VARDATA_ANY(PG_GETARG_BYTEA_PP(0)), digest, UNKEY_HASH_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_hash is not the hash of key"),
				 errhint("Pass decode(unkey_hash_key(key), 'base64'), the 32-byte SHA-256 of the key.")));

	/* the same call without the hash: its result type is this function's */
	InitFunctionCallInfoData(*inner, fcinfo->flinfo, 7, fcinfo->fncollation, fcinfo->context, fcinfo->resultinfo);
	for (int i = 0; i < 7; i++)
		inner->args[i] = fcinfo->args[i + 1];
	return Verify(inner, true);
}
