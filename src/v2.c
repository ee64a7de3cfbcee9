/*-------------------------------------------------------------------------
 *
 * v2.c
 *	  The parts of Unkey's v2 API written in C: POST /v2/keys.verifyKey,
 *	  and the sandbox of the analytics endpoints (below).
 *
 * Every other endpoint of the v2 API is SQL (src/sql/v2.sql, run by
 * unkey._v2_call).  This one runs on every request of every application,
 * so it does in C what the SQL endpoints do through their helpers: check
 * the body as Unkey's schema does (the same messages as unkey._v2_body and
 * the others), authenticate the root key (two index reads, as
 * unkey._v2_root does), let the root key's verify_key permission for the
 * key's API decide whether the key is found at all, verify through
 * unkey_verify_key as SQL would call it, and answer Unkey's envelope.
 * Every outcome is 200, as in Unkey.
 *
 * An error is Unkey's error body, built by unkey._v2_error as for every
 * endpoint.  The body and the root key are checked without raising; the
 * verification runs in a subtransaction, as unkey._v2_call's exception
 * block does, so that an error it raises (a bad ratelimits entry, a
 * permission query that does not parse, a limit that does not exist) is
 * answered in Unkey's shape and anything it wrote is undone.
 *
 * Locking: none of its own.  Rows are read by index with a fresh snapshot
 * (tables.c); the verification does its own locking.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/md5.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/tlist.h"
#include "parser/analyze.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "parser/parsetree.h"
#include "parser/parser.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timeout.h"

#include "gateway.h"
#include "keys.h"
#include "limiter.h"
#include "utils.h"

/* the API of the root keys: unkey.root_api_id() in src/sql/v2.sql */
#define V2_ROOT_API_ID "api_unkey_root_keys"

/* An answer that is an error: Unkey's status, code, message and location */
typedef struct V2Error
{
	int			status;
	const char *code;
	char	   *message;
	const char *location;
} V2Error;

/* Fill in an error and return false, so that checks read as "if (!Check(...)) return false" */
static bool
V2Fail(V2Error *err, int status, const char *code, char *message, const char *location)
{
	err->status = status;
	err->code = code;
	err->message = message;
	err->location = location;
	return false;
}

#define V2_INVALID "unkey/application/invalid_input"

/* A field of a JSON object, or NULL when absent */
static JsonbValue *
V2Field(Jsonb *obj, const char *name)
{
	JsonbValue	k = {.type = jbvString, .val.string = {strlen(name), (char *) name}};

	return findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &k);
}

/* The jsonb of a container value (an object or array field) */
static Jsonb *
V2Container(JsonbValue *v)
{
	return JsonbValueToJsonb(v);
}

/* Is the field a JSON object (JB_ROOT_IS_OBJECT of a binary value)? */
static bool
V2IsObject(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data);
}

static bool
V2IsArray(JsonbValue *v)
{
	return v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data);
}

/* The first field (in byte order) of obj that fields does not name, or NULL (additionalProperties: false) */
static char *
V2UnknownField(Jsonb *obj, const char *const *fields, int nfields)
{
	JsonbIterator *it = JsonbIteratorInit(&obj->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *first = NULL;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		for (int i = 0; i < nfields && !known; i++)
			known = strcmp(name, fields[i]) == 0;
		if (!known && (first == NULL || strcmp(name, first) < 0))
			first = name;
	}
	return first;
}

/* A string field within Unkey's bounds (unkey._v2_string): *out NULL when absent */
static bool
V2String(Jsonb *body, const char *field, int min, int max, char **out, V2Error *err)
{
	JsonbValue *v = V2Field(body, field);

	*out = NULL;
	if (v == NULL)
		return true;
	if (v->type != jbvString)
		return V2Fail(err, 400, V2_INVALID, psprintf("%s must be a string.", field), psprintf("body.%s", field));
	if (!UnkeyCharsBetween(v->val.string.val, v->val.string.len, min, max))
		return V2Fail(err, 400, V2_INVALID, psprintf("%s must be %d to %d characters.", field, min, max),
					  psprintf("body.%s", field));
	*out = pnstrdup(v->val.string.val, v->val.string.len);
	return true;
}

/* An array of strings within Unkey's bounds (unkey._v2_strings), as text[]: *out NULL when absent */
static bool
V2Strings(Jsonb *body, const char *field, int max_items, int min, int max, ArrayType **out, V2Error *err)
{
	JsonbValue *v = V2Field(body, field);
	Jsonb	   *arr;
	int			n;
	Datum	   *elems;

	*out = NULL;
	if (v == NULL)
		return true;
	if (!V2IsArray(v) || (n = JsonContainerSize(v->val.binary.data)) > max_items)
		goto bad;
	arr = V2Container(v);
	elems = palloc(sizeof(Datum) * (n + 1));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&arr->root, i);

		if (e->type != jbvString || !UnkeyCharsBetween(e->val.string.val, e->val.string.len, min, max))
			goto bad;
		elems[i] = PointerGetDatum(cstring_to_text_with_len(e->val.string.val, e->val.string.len));
	}
	*out = construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
	return true;
bad:
	return V2Fail(err, 400, V2_INVALID,
				  psprintf("%s must be an array of at most %d strings of %d to %d characters.", field, max_items, min, max),
				  psprintf("body.%s", field));
}

/* credits: {cost: <integer 0..10^12>}; *cost stays 1 when absent */
static bool
V2Cost(Jsonb *body, int64 *cost, V2Error *err)
{
	JsonbValue *v = V2Field(body, "credits");
	const char *const fields[] = {"cost"};
	Jsonb	   *credits;
	JsonbValue *c;
	Numeric		n;

	if (v == NULL)
		return true;
	if (!V2IsObject(v) || V2UnknownField(credits = V2Container(v), fields, 1) != NULL ||
		(c = V2Field(credits, "cost")) == NULL)
		return V2Fail(err, 400, V2_INVALID, "credits must be {\"cost\": <integer>}.", "body.credits");
	n = c->val.numeric;
	if (c->type != jbvNumeric ||
		!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
										  DirectFunctionCall2(numeric_trunc, NumericGetDatum(n), Int32GetDatum(0)))) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n), NumericGetDatum(int64_to_numeric(0)))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  NumericGetDatum(int64_to_numeric(INT64CONST(1000000000000))))) > 0)
		return V2Fail(err, 400, V2_INVALID, "cost must be an integer from 0 to 1000000000000.", "body.credits.cost");
	*cost = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
	return true;
}

/* The token of "Bearer <token>" ([Bb]earer, spaces, no whitespace in the token, trailing whitespace allowed), or NULL */
static char *
V2BearerToken(const char *header)
{
	const char *p = header;
	const char *start;
	const char *end;

	if ((p[0] != 'B' && p[0] != 'b') || strncmp(p + 1, "earer ", 6) != 0)
		return NULL;
	p += 6;
	while (*p == ' ')
		p++;
	start = p;
	while (*p && !isspace((unsigned char) *p))
		p++;
	end = p;
	while (*p && isspace((unsigned char) *p))
		p++;
	if (end == start || *p != '\0')
		return NULL;
	return pnstrdup(start, end - start);
}

/* The 32-byte stored hash of a key, as a bytea Datum */
static Datum
V2Hash(const char *key)
{
	bytea	   *hash = palloc(VARHDRSZ + UNKEY_HASH_LEN);

	SET_VARSIZE(hash, VARHDRSZ + UNKEY_HASH_LEN);
	UnkeyHashKey(key, strlen(key), (unsigned char *) VARDATA(hash));
	return PointerGetDatum(hash);
}

/*
 * Authenticate the root key of the request, as unkey._v2_root does: missing
 * or malformed 400, unknown 401, disabled or expired 403.  Its permissions
 * in *granted; it becomes the actor of the transaction's audit rows.
 */
static bool
V2Root(const char *header, Snapshot snap, ArrayType **granted, V2Error *err)
{
	char	   *token;
	Datum		hash;
	Datum	   *k;
	bool	   *kn;
	Datum	   *r;
	bool	   *rn;

	if (header == NULL)
		return V2Fail(err, 400, "unkey/authentication/missing",
					  "Authorization header is missing: send \"Authorization: Bearer <root key>\".", "header.Authorization");
	if ((token = V2BearerToken(header)) == NULL)
		return V2Fail(err, 400, "unkey/authentication/malformed",
					  "You must provide a valid root key in the Authorization header in the format 'Bearer ROOT_KEY'.",
					  "header.Authorization");
	hash = V2Hash(token);
	if (UnkeyFetch(UNKEY_KEYS, hash, snap, &k, &kn) != 1 || !kn[K_DELETED_AT] ||
		strcmp(TextDatumGetCString(k[K_API_ID]), V2_ROOT_API_ID) != 0 ||
		UnkeyFetch(UNKEY_ROOT_KEYS, hash, snap, &r, &rn) != 1)
		return V2Fail(err, 401, "unkey/authentication/key_not_found",
					  "The provided root key is invalid. We could not find the requested key.", NULL);
	if (!DatumGetBool(k[K_ENABLED]) || !DatumGetBool(r[1]))
		return V2Fail(err, 403, "unkey/authorization/key_disabled", "The root key is disabled.", NULL);
	if (!kn[K_EXPIRES] && DatumGetTimestampTz(k[K_EXPIRES]) <= UnkeyNow())
		return V2Fail(err, 403, "unkey/authorization/forbidden", "The root key has expired.", NULL);
	UnkeySetV2Actor(psprintf("root_key:%s", TextDatumGetCString(k[K_ID])));
	*granted = DatumGetArrayTypeP(r[0]);
	return true;
}

/* Does the root key hold api.*.verify_key or api.<api>.verify_key (matched literally, as Unkey does)? */
static bool
V2MayVerify(ArrayType *granted, const char *api)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char	   *own = psprintf("api.%s.verify_key", api);

	deconstruct_array(granted, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		char	   *g = nulls[i] ? "" : TextDatumGetCString(elems[i]);

		if (strcmp(g, "api.*.verify_key") == 0 || strcmp(g, own) == 0)
			return true;
	}
	return false;
}

/* The request's id: unkey.request_id, else its X-Request-Id (printable, 1 to 128 characters), else a new one */
static char *
V2RequestId(const char *header)
{
	const char *id = GetConfigOption("unkey.request_id", true, false);
	bool		printable = header != NULL && header[0] != '\0' && strlen(header) <= 128;

	if (id != NULL && id[0] != '\0')
		return pstrdup(id);
	for (const char *c = header; printable && *c; c++)
		printable = *c >= '!' && *c <= '~';
	return printable ? pstrdup(header) : UnkeyNewId("req");
}

/* Unix milliseconds, rounded as unkey._v2_ms rounds */
static int64
V2Ms(TimestampTz ts)
{
	int64		us = ts + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	return us >= 0 ? (us + 500) / 1000 : -((-us + 500) / 1000);
}

/* Push a key, then a value of each kind, into the object being built */
static void
PushKey(JsonbParseState **st, const char *key)
{
	JsonbValue	k = {.type = jbvString, .val.string = {strlen(key), (char *) key}};

	pushJsonbValue(st, WJB_KEY, &k);
}

static void
PushString(JsonbParseState **st, const char *key, const char *value)
{
	JsonbValue	v = {.type = jbvString, .val.string = {strlen(value), (char *) value}};

	PushKey(st, key);
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
PushText(JsonbParseState **st, const char *key, Datum value)
{
	PushString(st, key, TextDatumGetCString(value));
}

static void
PushBool(JsonbParseState **st, const char *key, bool value)
{
	JsonbValue	v = {.type = jbvBool, .val.boolean = value};

	PushKey(st, key);
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
PushInt(JsonbParseState **st, const char *key, int64 value)
{
	JsonbValue	v = {.type = jbvNumeric, .val.numeric = int64_to_numeric(value)};

	PushKey(st, key);
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
PushJsonb(JsonbParseState **st, const char *key, Datum value)
{
	Jsonb	   *jb = DatumGetJsonbP(value);
	JsonbValue	v = {.type = jbvBinary, .val.binary = {VARSIZE(jb) - VARHDRSZ, &jb->root}};

	PushKey(st, key);
	pushJsonbValue(st, WJB_VALUE, &v);
}

/* A text[] as a JSON array, only when it has entries (absent, never empty, as the SQL endpoints answer) */
static void
PushTexts(JsonbParseState **st, const char *key, Datum value)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(value), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		return;
	PushKey(st, key);
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		char	   *s = TextDatumGetCString(elems[i]);
		JsonbValue	v = {.type = jbvString, .val.string = {strlen(s), s}};

		pushJsonbValue(st, WJB_ELEM, &v);
	}
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/* The rate limits checked, each with its id: rl_ and 22 hex digits of md5(key id/name), as the SQL endpoints name it */
static void
PushRatelimits(JsonbParseState **st, Datum limits, const char *key_id)
{
	Jsonb	   *arr = DatumGetJsonbP(limits);
	int			n = JB_ROOT_COUNT(arr);

	if (!JB_ROOT_IS_ARRAY(arr) || n == 0)
		return;
	PushKey(st, "ratelimits");
	pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		Jsonb	   *e = V2Container(getIthJsonbValueFromContainer(&arr->root, i));
		JsonbValue *name = V2Field(e, "name");
		JsonbIterator *it = JsonbIteratorInit(&e->root);
		JsonbValue	v;
		JsonbIteratorToken tok;
		char		hex[33];
		char	   *owned;
		const char *errstr;

		pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			if (tok == WJB_KEY || tok == WJB_VALUE)
				pushJsonbValue(st, tok, &v);
		owned = psprintf("%s/%.*s", key_id, name ? name->val.string.len : 0, name ? name->val.string.val : "");
		if (!pg_md5_hash(owned, strlen(owned), hex, &errstr))
			elog(ERROR, "unkey: md5 failed: %s", errstr);
		hex[22] = '\0';
		PushString(st, "id", psprintf("rl_%s", hex));
		pushJsonbValue(st, WJB_END_OBJECT, NULL);
	}
	pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/* data of a verification: {valid, code, and what is known of the key}, as unkey.verification's row says */
static void
PushVerification(JsonbParseState **st, Datum *v, bool *vn)
{
	PushKey(st, "data");
	pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	PushBool(st, "valid", DatumGetBool(v[V_VALID]));
	PushText(st, "code", v[V_CODE]);
	if (!vn[V_KEY_ID])
	{
		char	   *key_id = TextDatumGetCString(v[V_KEY_ID]);

		PushString(st, "keyId", key_id);
		if (!vn[V_NAME])
			PushText(st, "name", v[V_NAME]);
		/* user meta keeps its nulls */
		if (!vn[V_META])
			PushJsonb(st, "meta", v[V_META]);
		PushBool(st, "enabled", DatumGetBool(v[V_ENABLED]));
		/* no credits: unlimited */
		if (!vn[V_CREDITS])
			PushInt(st, "credits", DatumGetInt64(v[V_CREDITS]));
		if (!vn[V_EXPIRES])
			PushInt(st, "expires", V2Ms(DatumGetTimestampTz(v[V_EXPIRES])));
		PushTexts(st, "permissions", v[V_PERMISSIONS]);
		PushTexts(st, "roles", v[V_ROLES]);
		if (!vn[V_IDENTITY_ID])
		{
			Jsonb	   *meta = vn[V_IDENTITY_META] ? NULL : DatumGetJsonbP(v[V_IDENTITY_META]);

			PushKey(st, "identity");
			pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
			PushText(st, "id", v[V_IDENTITY_ID]);
			PushText(st, "externalId", v[V_EXTERNAL_ID]);
			if (meta && !(JB_ROOT_IS_OBJECT(meta) && JB_ROOT_COUNT(meta) == 0))
				PushJsonb(st, "meta", v[V_IDENTITY_META]);
			pushJsonbValue(st, WJB_END_OBJECT, NULL);
		}
		if (!vn[V_RATELIMITS])
			PushRatelimits(st, v[V_RATELIMITS], key_id);
	}
	pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/* Unkey's error body, from unkey._v2_error (which also sets response.status and the content type) */
static Datum
V2ErrorBody(const char *state, const char *message, const char *detail, const char *hint)
{
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID};
	Oid			fn = LookupFuncName(list_make2(makeString("unkey"), makeString("_v2_error")), 5, argtypes, false);
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 5);
	const char *args[4] = {state, message, detail, hint};
	Datum		result;

	fmgr_info(fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 5, InvalidOid, NULL, NULL);
	for (int i = 0; i < 4; i++)
	{
		fcinfo->args[i].value = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		fcinfo->args[i].isnull = args[i] == NULL;
	}
	fcinfo->args[4].value = BoolGetDatum(false);
	fcinfo->args[4].isnull = false;
	result = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		elog(ERROR, "unkey: unkey._v2_error returned NULL");
	return result;
}

/*
 * Run unkey_verify_key in a subtransaction: true with its row, or false
 * with the error it raised (copied), everything it did undone
 */
static bool
V2VerifyCaught(Datum *args, bool *argnull, Datum *v, bool *vn, ErrorData **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		UnkeyCallVerify(args, argnull, v, vn);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		*edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

/* The fields of keys.verifyKey's body (Unkey's V2KeysVerifyKeyRequestBody) */
static const char *const verify_fields[] = {"key", "tags", "permissions", "credits", "ratelimits", "migrationId"};

/*
 * The body checked and the verification run; false with *err, or with
 * *edata when the verification raised
 */
static bool
V2VerifyKey(Jsonb *body, char **headers, Datum *v, bool *vn, V2Error *err, ErrorData **edata)
{
	char	   *unknown;
	char	   *key;
	char	   *query;
	char	   *migration;
	ArrayType  *tags;
	int64		cost = 1;
	JsonbValue *limits;
	ArrayType  *granted;
	Snapshot	snap;
	Datum	   *k;
	bool	   *kn;
	char	   *api = NULL;
	Datum		args[7];
	bool		argnull[7] = {false};

	/* the body, in the order unkey._v2_body and the SQL endpoints check it */
	if (!JB_ROOT_IS_OBJECT(body))
		return V2Fail(err, 400, V2_INVALID, "The request body must be a JSON object.", "body");
	if ((unknown = V2UnknownField(body, verify_fields, lengthof(verify_fields))) != NULL)
		return V2Fail(err, 400, V2_INVALID,
					  psprintf("The request body has a property %s that the schema does not allow.", unknown),
					  psprintf("body.%s", unknown));
	if (V2Field(body, "key") == NULL || V2Field(body, "key")->type == jbvNull)
		return V2Fail(err, 400, V2_INVALID, "The request body is missing the required property key.", "body.key");
	if (!V2String(body, "key", 1, 512, &key, err) ||
		!V2String(body, "permissions", 1, 1000, &query, err) ||
		!V2Strings(body, "tags", 20, 1, 512, &tags, err) ||
		!V2String(body, "migrationId", 0, 256, &migration, err) ||
		!V2Cost(body, &cost, err))
		return false;
	limits = V2Field(body, "ratelimits");
	if (limits && !V2IsArray(limits))
		return V2Fail(err, 400, V2_INVALID, "ratelimits must be an array.", "body.ratelimits");

	/* the root key, then the key's API: outside the root key's scope the key is not found */
	snap = RegisterSnapshot(GetTransactionSnapshot());
	if (!V2Root(headers[0], snap, &granted, err))
	{
		UnregisterSnapshot(snap);
		return false;
	}
	if (UnkeyFetch(UNKEY_KEYS, V2Hash(key), snap, &k, &kn) == 1)
		api = TextDatumGetCString(k[K_API_ID]);
	UnregisterSnapshot(snap);
	if (api == NULL || strcmp(api, V2_ROOT_API_ID) == 0 || !V2MayVerify(granted, api))
	{
		memset(vn, true, sizeof(bool) * V_NCOLS);
		v[V_VALID] = BoolGetDatum(false);
		v[V_CODE] = CStringGetTextDatum("NOT_FOUND");
		vn[V_VALID] = vn[V_CODE] = false;
		return true;
	}

	args[0] = CStringGetTextDatum(key);
	args[1] = CStringGetTextDatum(api);
	args[2] = query ? CStringGetTextDatum(query) : (Datum) 0;
	argnull[2] = query == NULL;
	args[3] = Int64GetDatum(cost);
	args[4] = limits ? JsonbPGetDatum(V2Container(limits)) : (Datum) 0;
	argnull[4] = limits == NULL;
	args[5] = PointerGetDatum(tags);
	argnull[5] = tags == NULL;
	/* the client's address, for the API's IP whitelist, as the proxy says it */
	args[6] = UnkeyClientAddress(headers[2], headers[3], &argnull[6]);
	return V2VerifyCaught(args, argnull, v, vn, edata);
}

PG_FUNCTION_INFO_V1(unkey_v2_verify_key);

/* unkey_v2."keys.verifyKey"(body jsonb): Unkey's envelope of one verification, or Unkey's error body */
Datum
unkey_v2_verify_key(PG_FUNCTION_ARGS)
{
	const char *names[4] = {"x-unkey-root-key", "x-request-id", "x-forwarded-for", "x-real-ip"};
	char	   *headers[4];
	Datum		v[V_NCOLS];
	bool		vn[V_NCOLS];
	V2Error		err = {0};
	ErrorData  *edata = NULL;
	JsonbParseState *st = NULL;
	char	   *request_id;

	/* headers that are not a JSON object are no headers, as unkey._v2_root reads them */
	if (!UnkeyScanFields(GetConfigOption("request.headers", true, false), 4, names, headers))
		memset(headers, 0, sizeof(headers));
	request_id = V2RequestId(headers[1]);

	if (PG_ARGISNULL(0))
		V2Fail(&err, 400, V2_INVALID, "The request body must be a JSON object.", "body");
	else if (V2VerifyKey(PG_GETARG_JSONB_P(0), headers, v, vn, &err, &edata))
	{
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		PushKey(&st, "meta");
		pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
		PushString(&st, "requestId", request_id);
		pushJsonbValue(&st, WJB_END_OBJECT, NULL);
		PushVerification(&st, v, vn);
		PG_RETURN_JSONB_P(JsonbValueToJsonb(pushJsonbValue(&st, WJB_END_OBJECT, NULL)));
	}
	if (edata)
		PG_RETURN_DATUM(V2ErrorBody(unpack_sql_state(edata->sqlerrcode), edata->message, edata->detail, edata->hint));
	PG_RETURN_DATUM(V2ErrorBody(psprintf("PT%d", err.status), err.message, err.code, err.location ? err.location : ""));
}

/*
 * The analytics sandbox: analytics.getVerifications and getRatelimits run
 * the caller's SQL, as Unkey runs it on ClickHouse, over views with Unkey's
 * table names (src/sql/v2.sql), which are security barriers filtered by
 * unkey._analytics_allows, so no condition of the caller's sees a row
 * outside its scope.  The query runs as the extension's owner, so what it
 * may do is checked twice before it runs:
 *
 * - its raw parse tree: one SELECT, and every type it names a built-in one
 *   of a short list (parse analysis runs a type's input function on a
 *   literal, and a domain's checks with it);
 * - its analysed tree (search_path = pg_catalog, unkey, pg_temp): every
 *   relation one of the endpoint's five views (or its own CTEs and
 *   subqueries), every function a built-in one of a short list, every
 *   operator a built-in comparison, arithmetic or pattern match, every value
 *   of an allowed type, no ARRAY(subquery), at most 64 columns a SELECT.
 *   Nothing in them makes a value or a state grow with the rows or the
 *   nesting (no concatenation, no array or string aggregate), and all of
 *   them check for interrupts or work on values no larger than the inputs.
 *
 * It then runs read-only in a subtransaction, so that whatever it does is
 * undone, under a timer of its own (statement_timeout is armed only per
 * client statement), with work_mem 4 MB and temp_file_limit 256 MB (when
 * the owner may set it), and its rows are fetched through a cursor, one by
 * one, as JSON text, until unkey.analytics_max_rows or 4 MiB.
 */

/* Settings */
static int	analytics_timeout_ms = 10000;
static int	analytics_max_rows = 10000;
static int	analytics_queries_per_hour = 1000;

#define ANALYTICS_MAX_QUERY_BYTES 16384
#define ANALYTICS_MAX_RESULT_BYTES (4 << 20)
#define ANALYTICS_MAX_COLUMNS 64

/* The scope of the query running now: the ids it may read, or every one */
static bool scope_active = false;
static bool scope_all = false;
static char **scope_ids = NULL;
static int	scope_n = 0;

/* The sandbox's timer */
static TimeoutId sandbox_timeout = MAX_TIMEOUTS;
static volatile sig_atomic_t sandbox_timed_out = false;

/* whether the query got as far as running (else what it raised was its checking) */
static bool sandbox_ran = false;

/* Functions a query may call, by name (built-in, in pg_catalog) */
static const char *const sandbox_functions[] = {
	/* aggregates whose state does not grow with the rows (sorts spill to disk) */
	"count", "sum", "avg", "min", "max", "bool_and", "bool_or", "every", "percentile_cont", "percentile_disc", "mode",
	/* date and time */
	"now", "date_trunc", "date_part", "extract", "to_timestamp", "to_char", "date_bin", "timezone", "make_interval",
	/* strings, none longer than its input */
	"lower", "upper", "substring", "substr", "length", "char_length", "btrim", "ltrim", "rtrim", "starts_with",
	"left", "right", "split_part", "strpos", "position",
	/* numbers */
	"round", "floor", "ceil", "ceiling", "abs", "trunc",
	/* arrays (of a row's tags, or written in the query) */
	"array_length", "cardinality", "unnest", "array_position",
	/* window functions */
	"row_number", "rank", "dense_rank", "lag", "lead"
};

/* Operators a query may use, by name (built-in): comparisons, arithmetic, patterns, containment */
static const char *const sandbox_operators[] = {
	"=", "<>", "<", ">", "<=", ">=", "+", "-", "*", "/", "%", "^", "~~", "!~~", "~~*", "!~~*", "~", "!~", "~*", "!~*",
	"@>", "<@", "&&"
};

/* Types a query may use, and arrays of them */
static const Oid sandbox_types[] = {
	BOOLOID, INT2OID, INT4OID, INT8OID, NUMERICOID, FLOAT4OID, FLOAT8OID, TEXTOID, VARCHAROID, TIMESTAMPOID,
	TIMESTAMPTZOID, DATEOID, TIMEOID, INTERVALOID, UUIDOID, RECORDOID, UNKNOWNOID
};

/* The type names a query may write, as the parser sees them (pg_catalog's, or unqualified) */
static const char *const sandbox_type_names[] = {
	"bool", "boolean", "int2", "smallint", "int4", "int", "integer", "int8", "bigint", "numeric", "decimal", "float4",
	"real", "float8", "float", "text", "varchar", "timestamp", "timestamptz", "date", "time", "interval", "uuid"
};

/* Arm the sandbox's timer: ask for a query cancel, as statement_timeout does */
static void
SandboxTimeout(void)
{
	sandbox_timed_out = true;
	QueryCancelPending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/* Raise one of Unkey's analytics errors: its status, code, detail and location */
static void
SandboxFail(int status, const char *code, const char *detail)
{
	char		state[6];

	snprintf(state, sizeof(state), "PT%d", status);
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4])),
			 errmsg_internal("%s", detail),
			 errdetail_internal("%s", code),
			 errhint("%s", status == 400 ? "body.query" : "")));
}

typedef struct SandboxCheck
{
	Oid			tables[5];
	const char *names[5];
} SandboxCheck;

/* Is name one of the list? */
static bool
SandboxListed(const char *name, const char *const *list, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

/* Is this built-in function one a query may call (by name, or as a cast between allowed types)? */
static bool
SandboxFunction(Oid fn, bool cast)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		ok = false;

	if (fn >= FirstNormalObjectId)
		return false;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	/* of the set-returning functions, only unnest */
	if (proc->pronamespace == PG_CATALOG_NAMESPACE &&
		(!proc->proretset || strcmp(NameStr(proc->proname), "unnest") == 0))
		ok = cast || SandboxListed(NameStr(proc->proname), sandbox_functions, lengthof(sandbox_functions));
	ReleaseSysCache(tup);
	return ok;
}

/*
 * Is this built-in operator one a query may use?  Not numeric's *, /, % and
 * ^: a product of numbers of thousands of digits takes long and checks for
 * no interrupt, and products double the digits (cast to double precision)
 */
static bool
SandboxOperator(Oid op)
{
	char	   *name = get_opname(op);
	RegProcedure fn = get_opcode(op);

	return op < FirstNormalObjectId && name != NULL &&
		SandboxListed(name, sandbox_operators, lengthof(sandbox_operators)) &&
		fn != F_NUMERIC_MUL && fn != F_NUMERIC_DIV && fn != F_NUMERIC_MOD && fn != F_NUMERIC_POWER &&
		fn != F_NUMERIC_DIV_TRUNC;
}

/* Is this a type a query may use: one of the list, or an array of one? */
static bool
SandboxType(Oid type)
{
	Oid			elem = get_element_type(type);

	if (OidIsValid(elem))
		type = elem;
	for (int i = 0; i < lengthof(sandbox_types); i++)
		if (type == sandbox_types[i])
			return true;
	return false;
}

/* Is this name, as the parser sees it (pg_catalog's or unqualified), one of the list? */
static bool
SandboxName(List *names, const char *const *list, int n)
{
	int			len = list_length(names);

	return (len == 1 || (len == 2 && strcmp(strVal(linitial(names)), "pg_catalog") == 0)) &&
		SandboxListed(strVal(llast(names)), list, n);
}

/*
 * Raise unless every type and function the raw parse tree names is one a
 * query may use: parse analysis resolves both, and runs the input function
 * of a type (a function-style cast such as regclass('x') included) on a
 * literal before any other check could refuse it
 */
static bool
SandboxRawWalker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	/* their clauses' type names are not walked (PostgreSQL 15), and recursion is refused anyway */
	if (IsA(node, CommonTableExpr) &&
		(((CommonTableExpr *) node)->search_clause != NULL || ((CommonTableExpr *) node)->cycle_clause != NULL))
		SandboxFail(400, "user/bad_request/invalid_analytics_query", "Recursive queries are not allowed");
	if (IsA(node, WithClause) && ((WithClause *) node)->recursive)
		SandboxFail(400, "user/bad_request/invalid_analytics_query", "Recursive queries are not allowed");
	/* the planner copies an inlined CTE into every reference, without checking for interrupts */
	if (IsA(node, CommonTableExpr) && ((CommonTableExpr *) node)->ctematerialized == CTEMaterializeNever)
		SandboxFail(400, "user/bad_request/invalid_analytics_query", "NOT MATERIALIZED is not allowed: a CTE used more than once is materialised");
	if (IsA(node, FuncCall))
	{
		List	   *names = ((FuncCall *) node)->funcname;

		if (!SandboxName(names, sandbox_functions, lengthof(sandbox_functions)) &&
			!SandboxName(names, sandbox_type_names, lengthof(sandbox_type_names)))
			SandboxFail(400, "user/bad_request/invalid_analytics_function",
						psprintf("Function '%s' is not allowed", NameListToString(names)));
	}
	if (IsA(node, TypeName))
	{
		TypeName   *tn = (TypeName *) node;

		if (tn->names == NIL || !SandboxName(tn->names, sandbox_type_names, lengthof(sandbox_type_names)) || tn->pct_type)
			SandboxFail(400, "user/bad_request/invalid_analytics_query",
						psprintf("Type %s is not allowed in analytics queries", TypeNameToString(tn)));
		return false;
	}
	return raw_expression_tree_walker(node, SandboxRawWalker, context);
}

/* Walk an analysed query: raise at the first thing the sandbox does not allow */
static bool
SandboxWalker(Node *node, SandboxCheck *c)
{
	Oid			fn = InvalidOid;
	bool		cast = false;
	List	   *ops = NIL;

	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *q = (Query *) node;
		ListCell   *lc;
		int			columns = 0;

		if (q->commandType != CMD_SELECT || q->utilityStmt != NULL || q->rowMarks != NIL || q->hasModifyingCTE)
			SandboxFail(400, "user/bad_request/invalid_analytics_query_type", "Only SELECT queries are allowed");
		if (q->hasRecursive)
			SandboxFail(400, "user/bad_request/invalid_analytics_query", "Recursive queries are not allowed");
		foreach(lc, q->targetList)
			columns += !lfirst_node(TargetEntry, lc)->resjunk;
		if (columns > ANALYTICS_MAX_COLUMNS)
			SandboxFail(400, "user/bad_request/invalid_analytics_query",
						psprintf("Analytics query projects too many columns (at most %d a SELECT)", ANALYTICS_MAX_COLUMNS));
		foreach(lc, q->rtable)
		{
			RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
			/* a function in FROM is walked as any other: of the set-returning ones, unnest */
			bool		ok = rte->rtekind != RTE_TABLEFUNC;

			if (rte->rtekind == RTE_RELATION)
			{
				ok = false;
				for (int i = 0; i < lengthof(c->tables) && !ok; i++)
					ok = rte->relid == c->tables[i];
				if (!ok)
					SandboxFail(400, "user/bad_request/invalid_analytics_table",
								psprintf("Access to this table is not allowed: query %s, %s, %s, %s or %s",
										 c->names[0], c->names[1], c->names[2], c->names[3], c->names[4]));
			}
			if (!ok)
				SandboxFail(400, "user/bad_request/invalid_analytics_function",
							"Table functions are not allowed for security reasons");
		}
		/* the operators that sort, group and make distinct (ORDER BY ... USING), windows' included */
		(void) SandboxWalker((Node *) list_concat(list_concat(list_copy(q->sortClause), q->groupClause), q->distinctClause), c);
		foreach(lc, q->windowClause)
		{
			(void) SandboxWalker((Node *) lfirst_node(WindowClause, lc)->partitionClause, c);
			(void) SandboxWalker((Node *) lfirst_node(WindowClause, lc)->orderClause, c);
		}
		return query_tree_walker(q, SandboxWalker, c, 0);
	}
	switch (nodeTag(node))
	{
		case T_FuncExpr:
			fn = ((FuncExpr *) node)->funcid;
			cast = ((FuncExpr *) node)->funcformat == COERCE_EXPLICIT_CAST ||
				((FuncExpr *) node)->funcformat == COERCE_IMPLICIT_CAST;
			break;
		case T_Aggref:
			fn = ((Aggref *) node)->aggfnoid;
			break;
		case T_WindowFunc:
			fn = ((WindowFunc *) node)->winfnoid;
			break;
		case T_OpExpr:
		case T_DistinctExpr:
		case T_NullIfExpr:
			ops = list_make1_oid(((OpExpr *) node)->opno);
			break;
		case T_ScalarArrayOpExpr:
			ops = list_make1_oid(((ScalarArrayOpExpr *) node)->opno);
			break;
		case T_RowCompareExpr:
			ops = ((RowCompareExpr *) node)->opnos;
			break;
		case T_SortGroupClause:
			/* a sort of the query, a window or an aggregate's ORDER BY */
			if ((OidIsValid(((SortGroupClause *) node)->sortop) && !SandboxOperator(((SortGroupClause *) node)->sortop)) ||
				(OidIsValid(((SortGroupClause *) node)->eqop) && !SandboxOperator(((SortGroupClause *) node)->eqop)))
				SandboxFail(400, "user/bad_request/invalid_analytics_function", "This sort operator is not allowed");
			return false;
		case T_SubLink:
			if (((SubLink *) node)->subLinkType == ARRAY_SUBLINK)
				SandboxFail(400, "user/bad_request/invalid_analytics_query", "ARRAY(subquery) is not allowed in analytics queries");
			break;
		case T_SQLValueFunction:
			switch (((SQLValueFunction *) node)->op)
			{
				case SVFOP_CURRENT_DATE:
				case SVFOP_CURRENT_TIME:
				case SVFOP_CURRENT_TIME_N:
				case SVFOP_CURRENT_TIMESTAMP:
				case SVFOP_CURRENT_TIMESTAMP_N:
				case SVFOP_LOCALTIME:
				case SVFOP_LOCALTIME_N:
				case SVFOP_LOCALTIMESTAMP:
				case SVFOP_LOCALTIMESTAMP_N:
					break;
				default:
					SandboxFail(400, "user/bad_request/invalid_analytics_function",
								"Only the current date and time are allowed of the SQL value functions");
			}
			break;
		case T_Param:
			/* a subquery's own (x IN (SELECT ...)) is fine; a client's is not */
			if (((Param *) node)->paramkind != PARAM_EXTERN)
				break;
			/* FALLTHROUGH */
		case T_XmlExpr:
		case T_CoerceToDomain:
		case T_NextValueExpr:
			SandboxFail(400, "user/bad_request/invalid_analytics_query", "This expression is not allowed in analytics queries");
			break;
		default:
			break;
	}
	if (OidIsValid(fn) && !SandboxFunction(fn, cast))
		SandboxFail(400, "user/bad_request/invalid_analytics_function",
					psprintf("Function '%s' is not allowed", get_func_name(fn) ? get_func_name(fn) : "?"));
	{
		ListCell   *lc;

		foreach(lc, ops)
			if (!SandboxOperator(lfirst_oid(lc)))
				SandboxFail(400, "user/bad_request/invalid_analytics_function",
							psprintf("Operator %s is not allowed%s", get_opname(lfirst_oid(lc)) ? get_opname(lfirst_oid(lc)) : "?",
									 get_opcode(lfirst_oid(lc)) == F_NUMERIC_DIV || get_opcode(lfirst_oid(lc)) == F_NUMERIC_MUL ?
									 " on numeric: use double precision (1000.0::float8) or integers (time / 1000)" : ""));
	}
	/* every value: the nodes that make one of a type of their own */
	if ((IsA(node, Var) || IsA(node, Const) || IsA(node, FuncExpr) || IsA(node, OpExpr) || IsA(node, Aggref) ||
		 IsA(node, WindowFunc) || IsA(node, CoerceViaIO) || IsA(node, RelabelType) || IsA(node, ArrayCoerceExpr) ||
		 IsA(node, SubscriptingRef) || IsA(node, CaseExpr) || IsA(node, CoalesceExpr) || IsA(node, MinMaxExpr) ||
		 IsA(node, ArrayExpr) || IsA(node, FieldSelect) || IsA(node, NullIfExpr)) &&
		!SandboxType(exprType(node)))
		SandboxFail(400, "user/bad_request/invalid_analytics_query",
					psprintf("Type %s is not allowed in analytics queries", format_type_be(exprType(node))));
	return expression_tree_walker(node, SandboxWalker, c);
}

/*
 * The size an analysed query would have once the planner pulls its
 * subqueries and CTEs up into it, where each reference to a subquery's
 * column becomes a copy of the column's expression: nested subqueries that
 * refer to a column twice double it at each level, and the planner does
 * that work without checking for interrupts.  An upper bound, memoised per
 * column, so that counting is itself cheap.
 */
#define ANALYTICS_MAX_EXPANDED 100000

typedef struct ExpandMemo
{
	const void *owner;			/* a subquery or CTE (its column), a join (its alias), a query (0: all of it) */
	AttrNumber	attno;
	double		size;
} ExpandMemo;

typedef struct SizeWalk
{
	List	   *stack;			/* the Query of each lexical level, innermost first */
	List	   *memo;
	double		sum;
} SizeWalk;

static double SandboxQuerySize(Query *q, List *parents, SizeWalk *w);
static bool SandboxSizeWalker(Node *node, SizeWalk *w);

/* The size of an expression, in the query innermost on the stack */
static double
SandboxExprSize(Node *node, SizeWalk *w)
{
	double		outer = w->sum;
	double		size;

	w->sum = 0;
	(void) SandboxSizeWalker(node, w);
	size = w->sum;
	w->sum = outer;
	return size;
}

/* A size already counted, or -1 */
static double
SandboxMemo(SizeWalk *w, const void *owner, AttrNumber attno)
{
	ListCell   *lc;

	foreach(lc, w->memo)
	{
		ExpandMemo *m = lfirst(lc);

		if (m->owner == owner && m->attno == attno)
			return m->size;
	}
	return -1;
}

static double
SandboxRemember(SizeWalk *w, const void *owner, AttrNumber attno, double size)
{
	ExpandMemo *m = palloc(sizeof(ExpandMemo));

	m->owner = owner;
	m->attno = attno;
	m->size = size;
	w->memo = lappend(w->memo, m);
	return size;
}

/* The CTE an RTE of the query levelsup levels up names, or NULL */
static Query *
SandboxCte(RangeTblEntry *rte, int levelsup, SizeWalk *w)
{
	ListCell   *lc;

	if (levelsup + rte->ctelevelsup >= list_length(w->stack))
		return NULL;
	foreach(lc, ((Query *) list_nth(w->stack, levelsup + rte->ctelevelsup))->cteList)
		if (strcmp(lfirst_node(CommonTableExpr, lc)->ctename, rte->ctename) == 0 &&
			IsA(lfirst_node(CommonTableExpr, lc)->ctequery, Query))
			return (Query *) lfirst_node(CommonTableExpr, lc)->ctequery;
	return NULL;
}

/*
 * The size a Var stands for once the planner has replaced it: a subquery's
 * or CTE's column expression, a join's alias (COALESCE of a FULL JOIN's
 * merged column), else 1
 */
static double
SandboxVarSize(Var *v, SizeWalk *w)
{
	Query	   *q;
	RangeTblEntry *rte;
	Query	   *sub = NULL;
	TargetEntry *te;
	double		size;

	if (v->varlevelsup >= list_length(w->stack) || v->varattno <= 0)
		return 1;
	q = list_nth(w->stack, v->varlevelsup);
	if (v->varno < 1 || v->varno > list_length(q->rtable))
		return 1;
	rte = rt_fetch(v->varno, q->rtable);
	if (rte->rtekind == RTE_JOIN && v->varattno <= list_length(rte->joinaliasvars))
	{
		Node	   *alias = list_nth(rte->joinaliasvars, v->varattno - 1);

		if ((size = SandboxMemo(w, rte, v->varattno)) >= 0)
			return size;
		/* the alias's Vars are of the join's own query level */
		if (v->varlevelsup == 0 && alias != NULL)
			return SandboxRemember(w, rte, v->varattno, SandboxExprSize(alias, w));
		return 1;
	}
	if (rte->rtekind == RTE_SUBQUERY)
		sub = rte->subquery;
	else if (rte->rtekind == RTE_CTE)
		sub = SandboxCte(rte, v->varlevelsup, w);
	if (sub == NULL || (te = get_tle_by_resno(sub->targetList, v->varattno)) == NULL)
		return 1;
	if ((size = SandboxMemo(w, sub, v->varattno)) >= 0)
		return size;
	{
		/* the column's expression, in its query's own lexical place: a CTE's is below the WITH's query */
		List	   *saved = w->stack;
		int			parent = v->varlevelsup + (rte->rtekind == RTE_CTE ? rte->ctelevelsup : 0);

		w->stack = lcons(sub, list_copy_tail(saved, parent));
		size = SandboxExprSize((Node *) te->expr, w);
		w->stack = saved;
	}
	return SandboxRemember(w, sub, v->varattno, size);
}

static bool
SandboxSizeWalker(Node *node, SizeWalk *w)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
	{
		w->sum += SandboxVarSize((Var *) node, w);
		return false;
	}
	if (IsA(node, Query))
	{
		/* a sublink's query, below the current one */
		w->sum += SandboxQuerySize((Query *) node, w->stack, w);
		return false;
	}
	w->sum += 1;
	return expression_tree_walker(node, SandboxSizeWalker, w);
}

/*
 * A query's size: its columns, conditions and subqueries, a subquery's
 * columns counted where they are used, and a CTE's whole query once for
 * every reference to it (the planner inlines a CTE into each)
 */
static double
SandboxQuerySize(Query *q, List *parents, SizeWalk *w)
{
	double		size;
	ListCell   *lc;
	List	   *saved = w->stack;

	if ((size = SandboxMemo(w, q, 0)) >= 0)
		return size;
	w->stack = lcons(q, parents);
	size = SandboxExprSize((Node *) q->targetList, w) + SandboxExprSize((Node *) q->jointree, w) +
		SandboxExprSize(q->havingQual, w);
	foreach(lc, q->rtable)
	{
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		Query	   *cte;

		if (rte->rtekind == RTE_SUBQUERY)
			size += SandboxQuerySize(rte->subquery, w->stack, w);
		else if (rte->rtekind == RTE_CTE && (cte = SandboxCte(rte, 0, w)) != NULL)
			size += SandboxQuerySize(cte, list_copy_tail(w->stack, rte->ctelevelsup), w);
	}
	w->stack = saved;
	return SandboxRemember(w, q, 0, size);
}

/* Parse and analyse the query, and raise unless the sandbox allows all of it */
static void
SandboxCheckQuery(const char *query, SandboxCheck *c)
{
	List	   *raw = raw_parser(query, RAW_PARSE_DEFAULT);
	RawStmt    *stmt;
	Query	   *analysed;
	SizeWalk	size = {NIL, NIL, 0};

	if (list_length(raw) != 1)
		SandboxFail(400, "user/bad_request/invalid_analytics_query",
					raw == NIL ? "No SQL statements found" : "Analytics queries must contain exactly one statement");
	stmt = linitial_node(RawStmt, raw);
	if (!IsA(stmt->stmt, SelectStmt) || ((SelectStmt *) stmt->stmt)->intoClause != NULL)
		SandboxFail(400, "user/bad_request/invalid_analytics_query_type", "Only SELECT queries are allowed");
	(void) raw_expression_tree_walker(stmt->stmt, SandboxRawWalker, NULL);
	analysed = parse_analyze_fixedparams(stmt, query, NULL, 0, NULL);
	(void) SandboxWalker((Node *) analysed, c);
	if (SandboxQuerySize(analysed, NIL, &size) > ANALYTICS_MAX_EXPANDED)
		SandboxFail(400, "user/bad_request/invalid_analytics_query",
					"Analytics query is too complex: its subqueries repeat their columns too often");
}

/* Set a setting until the end of the sandbox's GUC nest level */
static void
SandboxSet(const char *name, const char *value)
{
	(void) set_config_option(name, value, superuser() ? PGC_SUSET : PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/* Check and run the query, with the scope set; its rows as a jsonb array */
static Datum
SandboxRun(const char *query, SandboxCheck *c)
{
	int			nestlevel = NewGUCNestLevel();
	StringInfoData rows;
	int64		nrows = 0;
	Portal		portal;
	SPIPlanPtr	plan;

	SandboxSet("search_path", "pg_catalog, unkey, pg_temp");
	SandboxSet("work_mem", "4MB");
	SandboxSet("hash_mem_multiplier", "1");
	SandboxSet("max_parallel_workers_per_gather", "0");
	/* LLVM compiles without checking for interrupts, or limiting its memory */
	SandboxSet("jit", "off");
	if (superuser())
		SandboxSet("temp_file_limit", "256MB");
	SandboxCheckQuery(query, c);

	initStringInfo(&rows);
	appendStringInfoChar(&rows, '[');
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	sandbox_ran = true;
	enable_timeout_after(sandbox_timeout, analytics_timeout_ms);
	scope_active = true;
	PG_TRY();
	{
		/* each row as JSON text, fetched one at a time, until a limit */
		plan = SPI_prepare(psprintf("SELECT to_jsonb(q.*)::text FROM (\n%s\n) q", query), 0, NULL);
		if (plan == NULL)
			elog(ERROR, "unkey: could not plan the analytics query: %s", SPI_result_code_string(SPI_result));
		portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
		for (;;)
		{
			char	   *row;

			SPI_cursor_fetch(portal, true, 1);
			if (SPI_processed == 0)
				break;
			if (++nrows > analytics_max_rows)
				SandboxFail(422, "user/unprocessable_entity/query_rows_limit_exceeded",
							psprintf("Query result exceeds the maximum row count (%d, unkey.analytics_max_rows).", analytics_max_rows));
			row = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			if (rows.len + strlen(row) + 2 > ANALYTICS_MAX_RESULT_BYTES)
				SandboxFail(422, "user/unprocessable_entity/query_memory_limit_exceeded",
							"Query result exceeds the maximum response size.");
			if (nrows > 1)
				appendStringInfoChar(&rows, ',');
			appendStringInfoString(&rows, row);
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_cursor_close(portal);
	}
	PG_FINALLY();
	{
		scope_active = false;
		disable_timeout(sandbox_timeout, false);
	}
	PG_END_TRY();
	/* the query finished as the timer fired: the cancel it asked for is for no one */
	if (sandbox_timed_out)
		QueryCancelPending = false;
	SPI_finish();
	AtEOXact_GUC(true, nestlevel);
	appendStringInfoChar(&rows, ']');
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(rows.data));
}

/* Unkey's error for what a query raised while it was checked or run */
static void
SandboxRethrow(ErrorData *edata)
{
	char	   *state = unpack_sql_state(edata->sqlerrcode);

	if (strncmp(state, "PT", 2) == 0)
		ReThrowError(edata);
	if (sandbox_timed_out && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		SandboxFail(422, "user/unprocessable_entity/query_execution_timeout",
					psprintf("Query execution time limit exceeded (%d ms, unkey.analytics_timeout). "
							 "Try simplifying your query or reducing the time range.", analytics_timeout_ms));
	if (edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY || edata->sqlerrcode == ERRCODE_CONFIGURATION_LIMIT_EXCEEDED ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_PROGRAM_LIMIT_EXCEEDED)
		SandboxFail(422, "user/unprocessable_entity/query_memory_limit_exceeded",
					"Query memory limit exceeded. Try simplifying your query or reducing the result set size.");
	if (edata->sqlerrcode == ERRCODE_UNDEFINED_TABLE)
		SandboxFail(400, "user/bad_request/invalid_analytics_table", edata->message);
	if (edata->sqlerrcode == ERRCODE_UNDEFINED_FUNCTION)
		SandboxFail(400, "user/bad_request/invalid_analytics_function", edata->message);
	if (edata->sqlerrcode == ERRCODE_SYNTAX_ERROR)
		SandboxFail(400, "user/bad_request/invalid_analytics_query", psprintf("Invalid SQL syntax: %s", edata->message));
	/* anything its parsing and analysis raised is the query's fault, as is bad data */
	if (!sandbox_ran || ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_DATA_EXCEPTION ||
		ERRCODE_TO_CATEGORY(edata->sqlerrcode) == ERRCODE_SYNTAX_ERROR_OR_ACCESS_RULE_VIOLATION)
		SandboxFail(400, "user/bad_request/invalid_analytics_query", edata->message);
	ReThrowError(edata);
}

PG_FUNCTION_INFO_V1(unkey_v2_analytics_run);

/*
 * unkey._v2_analytics_run(query, resource, scope, quota_id): the rows of an
 * analytics query over the views of resource ('api': key_verifications_*,
 * 'ratelimit': ratelimits_*) limited to the ids in scope (NULL: all), as a
 * jsonb array; quota_id (the root key) counts against the hourly quota
 */
Datum
unkey_v2_analytics_run(PG_FUNCTION_ARGS)
{
	text	   *query_t = PG_GETARG_TEXT_PP(0);
	char	   *resource = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *quota_id = text_to_cstring(PG_GETARG_TEXT_PP(3));
	char	   *query;
	const char *prefix = strcmp(resource, "ratelimit") == 0 ? "ratelimits" : "key_verifications";
	const char *const grains[5] = {"", "_per_minute", "_per_hour", "_per_day", "_per_month"};
	SandboxCheck c;
	RLRequest	quota;
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Datum		result = (Datum) 0;
	ErrorData  *edata = NULL;

	if (VARSIZE_ANY_EXHDR(query_t) > ANALYTICS_MAX_QUERY_BYTES)
		SandboxFail(400, "user/bad_request/invalid_analytics_query",
					psprintf("Analytics query exceeds the maximum length of %d bytes", ANALYTICS_MAX_QUERY_BYTES));
	query = text_to_cstring(query_t);
	for (int i = 0; i < 5; i++)
	{
		c.names[i] = psprintf("%s%s_v1", prefix, grains[i]);
		c.tables[i] = get_relname_relid(c.names[i], get_namespace_oid("unkey", false));
	}

	/*
	 * On Citus the views' scope filter would run on the workers, where no
	 * query is running: refused, rather than answered from some nodes only.
	 */
	if (UnkeyDistributed(get_relname_relid(strcmp(resource, "ratelimit") == 0 ? "ratelimit_events" : "verification_events",
										   get_namespace_oid("unkey", false))))
		SandboxFail(501, "unkey/application/not_implemented",
					"Analytics queries are not available on Citus: read the analytics with unkey_get_verifications and the "
					"unkey.verifications_* and unkey.ratelimits_* views on the coordinator (README: Running on Citus).");

	/* the quota: queries per hour per root key, counted like a rate limit */
	memset(&quota, 0, sizeof(quota));
	UnkeyRateLimitKey(&quota.key, "analytics", resource, strlen(resource), quota_id, strlen(quota_id), 3600000);
	quota.limit = analytics_queries_per_hour;
	quota.cost = 1;
	if (!UnkeyRateLimit(&quota, 1, UnkeyUnixMs(UnkeyNow())))
		SandboxFail(429, "user/too_many_requests/query_quota_exceeded",
					psprintf("Query quota exceeded for the current time window (%d queries an hour, unkey.analytics_queries_per_hour). "
							 "Please try again later.", analytics_queries_per_hour));

	/* the scope, for unkey._analytics_allows */
	scope_all = PG_ARGISNULL(2);
	scope_n = 0;
	if (!scope_all)
	{
		Datum	   *elems;
		bool	   *nulls;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &scope_n);
		scope_ids = palloc(sizeof(char *) * (scope_n + 1));
		for (int i = 0; i < scope_n; i++)
			scope_ids[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	}

	if (sandbox_timeout == MAX_TIMEOUTS)
		sandbox_timeout = RegisterTimeout(USER_TIMEOUT, SandboxTimeout);

	/* the rows as one jsonb array, and how many there were, up to one past the limit */
	sandbox_ran = false;
	sandbox_timed_out = false;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		result = SandboxRun(query, &c);
		/* copy out of the subtransaction's memory before it ends */
		MemoryContextSwitchTo(cxt);
		result = PointerGetDatum(PG_DETOAST_DATUM_COPY(result));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	/* a cancel the timer asked for in code that raised something else is for no one */
	if (sandbox_timed_out)
		QueryCancelPending = false;
	if (edata)
		SandboxRethrow(edata);
	PG_RETURN_DATUM(result);
}

PG_FUNCTION_INFO_V1(unkey_analytics_allows);

/* unkey._analytics_allows(id): may the analytics query running now read this API or namespace? */
Datum
unkey_analytics_allows(PG_FUNCTION_ARGS)
{
	char	   *id;

	if (!scope_active)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("Unkey's analytics tables are read only by the v2 API's analytics endpoints"),
				 errhint("Read unkey.verifications_hourly, _daily, _monthly or unkey.ratelimits_hourly, _daily, _monthly.")));
	if (scope_all)
		PG_RETURN_BOOL(true);
	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	id = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (int i = 0; i < scope_n; i++)
		if (strcmp(scope_ids[i], id) == 0)
			PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(false);
}

/* The sandbox's settings; called from _PG_init */
void
V2Init(void)
{
	DefineCustomIntVariable("unkey.analytics_timeout",
							gettext_noop("How long a v2 analytics query may run."),
							NULL,
							&analytics_timeout_ms,
							10000, 100, 60000,
							PGC_SUSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("unkey.analytics_max_rows",
							gettext_noop("How many rows a v2 analytics query may return."),
							NULL,
							&analytics_max_rows,
							10000, 1, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("unkey.analytics_queries_per_hour",
							gettext_noop("How many v2 analytics queries a root key may run an hour."),
							NULL,
							&analytics_queries_per_hour,
							1000, 1, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}
