/*-------------------------------------------------------------------------
 *
 * verify.c
 *	  unkey_verify_key: the hot path.
 *
 * The checks run in Unkey's order (README "Verification"): NOT_FOUND,
 * DISABLED, EXPIRED, FORBIDDEN, then credits; the first failure wins and
 * nothing after it is consumed.  Every outcome is a result row, never an
 * error; only malformed arguments raise.
 *
 * Concurrency: the key is read with the statement's snapshot, and credits
 * are spent by one conditional UPDATE that re-checks the row's state and
 * balance under its row lock (READ COMMITTED re-evaluates the WHERE clause
 * on the newest row version).  If that UPDATE matches nothing, another
 * transaction changed the key in between; the key is read again with a
 * fresh snapshot and the checks run again.  So N concurrent verifications
 * of a key with C credits give exactly min(N, C) VALID, and a rolled-back
 * transaction gives its credits back.
 *
 * The three statements are planned once per backend and kept (SPI_keepplan);
 * the plan cache replans them after DDL.  The function runs as SECURITY
 * DEFINER with search_path = pg_catalog, pg_temp, and every name in them is
 * qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/inet.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "unkey.h"

/* Outcome codes, in the order of the checks */
typedef enum VerifyCode
{
	VERIFY_VALID,
	VERIFY_NOT_FOUND,
	VERIFY_FORBIDDEN,
	VERIFY_USAGE_EXCEEDED,
	VERIFY_DISABLED,
	VERIFY_EXPIRED
} VerifyCode;

static const char *const verify_code_names[] = {
	"VALID", "NOT_FOUND", "FORBIDDEN", "USAGE_EXCEEDED", "DISABLED", "EXPIRED"
};

/* Columns of the lookup statement */
enum
{
	L_ID, L_API_ID, L_NAME, L_EXTERNAL_ID, L_IDENTITY_ID, L_META, L_EXPIRES,
	L_ENABLED, L_REMAINING, L_REFILL_AMOUNT, L_REFILL_DAY, L_LAST_REFILL_AT,
	L_LIVE, L_IP_WHITELIST, L_PERMISSIONS, L_ROLES, L_NCOLS
};

/* Columns of unkey.verification */
enum
{
	V_VALID, V_CODE, V_KEY_ID, V_API_ID, V_NAME, V_EXTERNAL_ID, V_IDENTITY_ID,
	V_META, V_EXPIRES, V_ENABLED, V_CREDITS, V_PERMISSIONS, V_ROLES,
	V_RATELIMITS, V_NCOLS
};

static const char lookup_sql[] =
"SELECT k.id, k.api_id, k.name, i.external_id, k.identity_id, k.meta, k.expires,"
"       k.enabled, k.remaining, k.refill_amount, k.refill_day, k.last_refill_at,"
"       k.deleted_at IS NULL AND a.deleted_at IS NULL, a.ip_whitelist,"
"       ARRAY(SELECT p.slug FROM unkey.permissions p"
"              WHERE p.id IN (SELECT kp.permission_id FROM unkey.key_permissions kp"
"                              WHERE kp.key_hash = $1"
"                             UNION"
"                             SELECT rp.permission_id FROM unkey.key_roles kr"
"                               JOIN unkey.role_permissions rp ON rp.role_id = kr.role_id"
"                              WHERE kr.key_hash = $1)"
"              ORDER BY p.slug COLLATE \"C\"),"
"       ARRAY(SELECT r.name FROM unkey.key_roles kr JOIN unkey.roles r ON r.id = kr.role_id"
"              WHERE kr.key_hash = $1 ORDER BY r.name COLLATE \"C\")"
"  FROM unkey.keys k"
"  JOIN unkey.apis a ON a.id = k.api_id"
"  LEFT JOIN unkey.identities i ON i.id = k.identity_id"
" WHERE k.key_hash = $1";

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

static const char event_sql[] =
"INSERT INTO unkey.verification_events"
"  (time, key_hash, key_id, api_id, identity_id, outcome, spent_credits, tags)"
"  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

static SPIPlanPtr lookup_plan = NULL;
static SPIPlanPtr spend_plan = NULL;
static SPIPlanPtr event_plan = NULL;

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

/* Raise 22023 unless tags is NULL or at most 20 strings of 1..512 characters */
static void
CheckTags(ArrayType *tags)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (ARR_NDIM(tags) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tags must be a one-dimensional array")));
	deconstruct_array(tags, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > UNKEY_MAX_TAGS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tags must have at most %d entries", UNKEY_MAX_TAGS)));
	for (int i = 0; i < n; i++)
	{
		int			len;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tags must not contain null")));
		len = pg_mbstrlen_with_len(VARDATA_ANY(elems[i]), VARSIZE_ANY_EXHDR(elems[i]));
		if (len < 1 || len > UNKEY_MAX_TAG_CHARS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("each tag must be 1 to %d characters", UNKEY_MAX_TAG_CHARS)));
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

/* Copy a column of the current SPI row into the caller's memory context */
static void
TakeColumn(HeapTuple row, TupleDesc desc, int col, MemoryContext cxt,
		   Datum *value, bool *isnull)
{
	Form_pg_attribute att = TupleDescAttr(desc, col);
	Datum		d = SPI_getbinval(row, desc, col + 1, isnull);

	if (*isnull)
		*value = (Datum) 0;
	else
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		*value = datumCopy(d, att->attbyval, att->attlen);
		MemoryContextSwitchTo(old);
	}
}

PG_FUNCTION_INFO_V1(unkey_verify_key);

/*
 * unkey_verify_key(key, api_id, permissions, cost, ratelimits, tags, ip)
 */
Datum
unkey_verify_key(PG_FUNCTION_ARGS)
{
	MemoryContext callcxt = CurrentMemoryContext;
	TupleDesc	result_desc;
	Datum		values[V_NCOLS];
	bool		nulls[V_NCOLS];
	text	   *key;
	int64		cost;
	unsigned char digest[UNKEY_HASH_LEN];
	bytea	   *hash;
	TimestampTz now;
	VerifyCode	code = VERIFY_NOT_FOUND;
	int64		spent = 0;
	int64		balance = 0;	/* credits after this call, if not unlimited */
	Datum		row[L_NCOLS];
	bool		rownull[L_NCOLS];
	Datum		args[8];
	char		argnulls[8];
	Oid			lookup_types[1] = {BYTEAOID};
	Oid			spend_types[3] = {BYTEAOID, INT8OID, TIMESTAMPTZOID};
	Oid			event_types[8] = {TIMESTAMPTZOID, BYTEAOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, INT8OID, TEXTARRAYOID};

	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "unkey_verify_key must return unkey.verification");
	result_desc = BlessTupleDesc(result_desc);

	/* argument checks: only malformed input raises */
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key must not be null")));
	key = PG_GETARG_TEXT_PP(0);
	{
		int			chars = pg_mbstrlen_with_len(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));

		if (chars < 1 || chars > UNKEY_MAX_KEY_CHARS)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key must be 1 to %d characters", UNKEY_MAX_KEY_CHARS)));
	}
	if (PG_ARGISNULL(3) || PG_GETARG_INT64(3) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cost must be zero or more")));
	cost = PG_GETARG_INT64(3);
	if (!PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("permission queries are not supported yet")));
	if (!PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("rate limits in verification are not supported yet")));
	if (!PG_ARGISNULL(5))
		CheckTags(PG_GETARG_ARRAYTYPE_P(5));

	now = UnkeyNow();
	UnkeyHashKey(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), digest);
	hash = palloc(VARHDRSZ + UNKEY_HASH_LEN);
	SET_VARSIZE(hash, VARHDRSZ + UNKEY_HASH_LEN);
	memcpy(VARDATA(hash), digest, UNKEY_HASH_LEN);

	memset(values, 0, sizeof(values));
	memset(nulls, true, sizeof(nulls));
	memset(rownull, true, sizeof(rownull));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");

	for (int attempt = 0; attempt < VERIFY_MAX_ATTEMPTS; attempt++)
	{
		int			ret;

		args[0] = PointerGetDatum(hash);
		ret = SPI_execute_plan(KeepPlan(&lookup_plan, lookup_sql, 1, lookup_types),
							   args, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "unkey: key lookup failed: %s", SPI_result_code_string(ret));

		code = VERIFY_NOT_FOUND;
		if (SPI_processed == 0)
			break;
		for (int c = 0; c < L_NCOLS; c++)
			TakeColumn(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, c, callcxt,
					   &row[c], &rownull[c]);

		/* every outcome with a key reports the balance after any due refill */
		if (!rownull[L_REMAINING])
			balance = UnkeyCreditsNow(DatumGetInt64(row[L_REMAINING]),
									  rownull[L_REFILL_AMOUNT],
									  rownull[L_REFILL_AMOUNT] ? 0 : DatumGetInt64(row[L_REFILL_AMOUNT]),
									  rownull[L_LAST_REFILL_AT],
									  rownull[L_LAST_REFILL_AT] ? 0 : DatumGetTimestampTz(row[L_LAST_REFILL_AT]),
									  rownull[L_REFILL_DAY],
									  rownull[L_REFILL_DAY] ? 0 : DatumGetInt32(row[L_REFILL_DAY]),
									  now);

		/* deleted key, deleted API, or a key of another API */
		if (!DatumGetBool(row[L_LIVE]) ||
			(!PG_ARGISNULL(1) &&
			 !DatumGetBool(DirectFunctionCall2Coll(texteq, C_COLLATION_OID,
												   PG_GETARG_DATUM(1), row[L_API_ID]))))
			break;

		if (!DatumGetBool(row[L_ENABLED]))
		{
			code = VERIFY_DISABLED;
			break;
		}
		if (!rownull[L_EXPIRES] && now > DatumGetTimestampTz(row[L_EXPIRES]))
		{
			code = VERIFY_EXPIRED;
			break;
		}
		if (!rownull[L_IP_WHITELIST] &&
			(PG_ARGISNULL(6) || !IpAllowed(row[L_IP_WHITELIST], PG_GETARG_DATUM(6))))
		{
			code = VERIFY_FORBIDDEN;
			break;
		}

		code = VERIFY_VALID;
		if (rownull[L_REMAINING])
			break;				/* unlimited */

		if (cost == 0)
			break;				/* a check: spends nothing, writes nothing */
		if (balance < cost)
		{
			code = VERIFY_USAGE_EXCEEDED;
			break;
		}

		if (RecoveryInProgress())
			ereport(ERROR,
					(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
					 errmsg("cannot spend credits during recovery"),
					 errhint("Verify with cost => 0 on a standby, or connect to the primary.")));

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
	{
		bool		found = (code != VERIFY_NOT_FOUND);

		memset(argnulls, ' ', sizeof(argnulls));
		args[0] = TimestampTzGetDatum(now);
		args[1] = PointerGetDatum(hash);
		args[2] = row[L_ID];
		args[3] = row[L_API_ID];
		args[4] = row[L_IDENTITY_ID];
		argnulls[2] = (found && !rownull[L_ID]) ? ' ' : 'n';
		argnulls[3] = (found && !rownull[L_API_ID]) ? ' ' : 'n';
		argnulls[4] = (found && !rownull[L_IDENTITY_ID]) ? ' ' : 'n';
		args[5] = CStringGetTextDatum(verify_code_names[code]);
		args[6] = Int64GetDatum(spent);
		args[7] = PG_ARGISNULL(5) ? (Datum) 0 : PG_GETARG_DATUM(5);
		argnulls[7] = PG_ARGISNULL(5) ? 'n' : ' ';
		if (SPI_execute_plan(KeepPlan(&event_plan, event_sql, 8, event_types),
							 args, argnulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "unkey: could not record the verification event");
	}

	/* build the result in the caller's context before SPI memory goes away */
	{
		MemoryContext old = MemoryContextSwitchTo(callcxt);

		values[V_VALID] = BoolGetDatum(code == VERIFY_VALID);
		nulls[V_VALID] = false;
		values[V_CODE] = CStringGetTextDatum(verify_code_names[code]);
		nulls[V_CODE] = false;
		if (code != VERIFY_NOT_FOUND)
		{
#define COPY(v, l) (values[v] = row[l], nulls[v] = rownull[l])
			COPY(V_KEY_ID, L_ID);
			COPY(V_API_ID, L_API_ID);
			COPY(V_NAME, L_NAME);
			COPY(V_EXTERNAL_ID, L_EXTERNAL_ID);
			COPY(V_IDENTITY_ID, L_IDENTITY_ID);
			COPY(V_META, L_META);
			COPY(V_EXPIRES, L_EXPIRES);
			COPY(V_ENABLED, L_ENABLED);
			COPY(V_PERMISSIONS, L_PERMISSIONS);
			COPY(V_ROLES, L_ROLES);
#undef COPY
			/* credits after this verification; NULL for unlimited keys */
			values[V_CREDITS] = Int64GetDatum(balance);
			nulls[V_CREDITS] = rownull[L_REMAINING];
		}
		MemoryContextSwitchTo(old);
	}

	SPI_finish();

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(result_desc, values, nulls)));
}
