/*-------------------------------------------------------------------------
 *
 * gateway.c
 *	  unkey.pre_request(), PostgREST's db-pre-request: verify the key of the
 *	  request PostgREST is running, and answer with PostgREST's error
 *	  contract (SQLSTATE PGRST, a JSON message and a JSON detail with the
 *	  status and headers) when it does not pass.  The rules are in the
 *	  README (PostgREST, How the gateway decides).
 *
 * It costs one verification: the request's settings (request.headers and
 * the others) are parsed without building JSON values, the gateway's
 * settings and routes are cached in each backend, and the verification is
 * unkey_verify_key itself, called through fmgr as SQL would call it (it
 * switches to the extension's owner as any SECURITY DEFINER function does).
 * pre_request() is neither SECURITY DEFINER nor SET, so that it can switch
 * the request's role, and runs SQL only as the owner (UnkeyAsOwner): to
 * load the cache.  The read-only checks read the key by its hash through
 * tables.c.
 *
 * Locking: none of its own.  The cache is per backend; it is reloaded when
 * a relcache invalidation names unkey.gateway or unkey.gateway_routes (the
 * functions that change them send one at commit), or all relations, and on
 * Citus when unkey.config_version moved (a change made on another node).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "credits.h"
#include "gateway.h"
#include "keys.h"
#include "utils.h"

#define ERRCODE_PGRST MAKE_SQLSTATE('P','G','R','S','T')
#define GW_MAX_KEY_CHARS 512

typedef struct GatewayRoute
{
	char	   *method;			/* GET ... or * */
	char	   *path;
	char	   *permissions;	/* NULL: none */
	bool		has_cost;
	int64		cost;
	char	   *role;
} GatewayRoute;

/* unkey.gateway and unkey.gateway_routes, as this backend last read them */
static struct
{
	bool		loaded;
	bool		configured;
	Oid			gateway_relid;
	Oid			routes_relid;
	char	   *api_id;
	char	   *header;
	char	   *cookie;
	bool		derive;
	int64		read_cost;
	int64		write_cost;
	int			nroles;
	char	  **roles;
	char	   *role_field;
	int			nroutes;
	GatewayRoute *routes;
} gw;
static MemoryContext gw_cxt = NULL;
static Oid	verify_oid = InvalidOid;

/* Forget the cache when its tables change */
static void
GatewayInvalidate(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == gw.gateway_relid || relid == gw.routes_relid)
		gw.loaded = false;
}

/* Forget unkey_verify_key's OID when a function changes (DROP EXTENSION) */
static void
VerifyOidInvalidate(Datum arg, int cacheid, uint32 hashvalue)
{
	verify_oid = InvalidOid;
}

static char *
CxtText(HeapTuple tup, TupleDesc desc, int col)
{
	char	   *s = SPI_getvalue(tup, desc, col);

	return s ? MemoryContextStrdup(gw_cxt, s) : NULL;
}

/*
 * Run a query of the settings with the latest snapshot, not the statement's
 * (nor a REPEATABLE READ transaction's): the invalidation that made us read
 * again was sent after its change became visible to new snapshots.
 */
static bool
GatewayRead(const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);

	return plan != NULL &&
		SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 0) == SPI_OK_SELECT;
}

/* Read the settings and the routes (as the owner: UnkeyAsOwner) */
static void
GatewayLoad(void *arg)
{
	Oid			nsp = get_namespace_oid("unkey", false);

	MemoryContextReset(gw_cxt);
	memset(&gw, 0, sizeof(gw));
	gw.gateway_relid = get_relname_relid("gateway", nsp);
	gw.routes_relid = get_relname_relid("gateway_routes", nsp);
	gw.header = "x-api-key";
	/* loaded before reading: an invalidation that arrives while we read undoes it */
	gw.loaded = true;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	if (!GatewayRead("SELECT api_id, header, cookie, derive_permissions, read_cost, write_cost, roles, role_field "
					 "FROM unkey.gateway"))
		elog(ERROR, "unkey: cannot read unkey.gateway");
	if (SPI_processed == 1)
	{
		HeapTuple	t = SPI_tuptable->vals[0];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		roles = SPI_getbinval(t, d, 7, &isnull);
		Datum	   *elems;
		int			n;

		gw.configured = true;
		gw.api_id = CxtText(t, d, 1);
		gw.header = CxtText(t, d, 2);
		gw.cookie = CxtText(t, d, 3);
		gw.derive = DatumGetBool(SPI_getbinval(t, d, 4, &isnull));
		gw.read_cost = DatumGetInt64(SPI_getbinval(t, d, 5, &isnull));
		gw.write_cost = DatumGetInt64(SPI_getbinval(t, d, 6, &isnull));
		deconstruct_array(DatumGetArrayTypeP(roles), TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, &n);
		gw.nroles = n;
		gw.roles = MemoryContextAlloc(gw_cxt, sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			gw.roles[i] = MemoryContextStrdup(gw_cxt, TextDatumGetCString(elems[i]));
		gw.role_field = CxtText(t, d, 8);
	}
	if (!GatewayRead("SELECT method, path, permissions, cost, role FROM unkey.gateway_routes"))
		elog(ERROR, "unkey: cannot read unkey.gateway_routes");
	gw.nroutes = SPI_processed;
	gw.routes = MemoryContextAllocZero(gw_cxt, sizeof(GatewayRoute) * Max(gw.nroutes, 1));
	for (int i = 0; i < gw.nroutes; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		TupleDesc	d = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		cost = SPI_getbinval(t, d, 4, &isnull);

		gw.routes[i].method = CxtText(t, d, 1);
		gw.routes[i].path = CxtText(t, d, 2);
		gw.routes[i].permissions = CxtText(t, d, 3);
		gw.routes[i].has_cost = !isnull;
		gw.routes[i].cost = isnull ? 0 : DatumGetInt64(cost);
		gw.routes[i].role = CxtText(t, d, 5);
	}
	SPI_finish();
}

/* The cached settings, read again after a change */
static void
GatewaySettings(void)
{
	static bool registered = false;
	static int64 config_seen = 0;

	if (!registered)
	{
		gw_cxt = AllocSetContextCreate(TopMemoryContext, "unkey gateway", ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(GatewayInvalidate, (Datum) 0);
		registered = true;
	}
	/* on Citus, a change made on another node */
	if (UnkeyConfigChanged(&config_seen))
		gw.loaded = false;
	if (!gw.loaded)
		UnkeyAsOwner(GatewayLoad, NULL);
}

/* Refuse the request: PostgREST answers with this status, headers and JSON body */
static void
GatewayRefuse(int status, const char *code, const char *message, const char *hint, const char *headers)
{
	StringInfoData body;
	StringInfoData detail;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"code\": ");
	escape_json(&body, code);
	appendStringInfoString(&body, ", \"message\": ");
	escape_json(&body, message);
	appendStringInfoString(&body, ", \"details\": null, \"hint\": ");
	if (hint)
		escape_json(&body, hint);
	else
		appendStringInfoString(&body, "null");
	appendStringInfoChar(&body, '}');
	initStringInfo(&detail);
	appendStringInfo(&detail, "{\"status\": %d, \"status_text\": \"%s\", \"headers\": %s}", status,
					 status == 400 ? "Bad Request" : status == 401 ? "Unauthorized" : status == 403 ? "Forbidden" :
					 status == 429 ? "Too Many Requests" : "Internal Server Error",
					 headers ? headers : "{}");
	ereport(ERROR, (errcode(ERRCODE_PGRST), errmsg_internal("%s", body.data), errdetail_internal("%s", detail.data)));
}

/*
 * Top-level string fields of a JSON object, found in one pass of the
 * parser without building a value: names[i] -> values[i] (the last one
 * when a name repeats, as PostgREST keeps the last header).
 */
typedef struct FieldScan
{
	int			n;
	const char **names;
	char	  **values;
	int			depth;
	int			current;		/* index of the field being read at depth 1, or -1 */
	bool		not_object;
} FieldScan;

static void
ScanObjectStart(void *state)
{
	((FieldScan *) state)->depth++;
}

static void
ScanObjectEnd(void *state)
{
	((FieldScan *) state)->depth--;
}

static void
ScanArrayStart(void *state)
{
	FieldScan  *s = state;

	if (s->depth == 0)
		s->not_object = true;
	s->depth++;
}

static void
ScanFieldStart(void *state, char *fname, bool isnull)
{
	FieldScan  *s = state;

	s->current = -1;
	if (s->depth == 1)
		for (int i = 0; i < s->n; i++)
			if (s->names[i] && strcmp(fname, s->names[i]) == 0)
				s->current = i;
}

static void
ScanScalar(void *state, char *token, JsonTokenType type)
{
	FieldScan  *s = state;

	if (s->depth == 0)
		s->not_object = true;
	else if (s->depth == 1 && s->current >= 0 && type == JSON_TOKEN_STRING)
		s->values[s->current] = token;
}

/* Find the named fields of a JSON object's text; false if it is not a JSON object */
bool
UnkeyScanFields(const char *json, int n, const char **names, char **values)
{
	JsonLexContext *lex;
	JsonSemAction sem = {0};
	FieldScan	s = {n, names, values, 0, -1, false};

	for (int i = 0; i < n; i++)
		values[i] = NULL;
	if (json == NULL || json[0] == '\0')
		return true;			/* absent: no fields */
	lex = makeJsonLexContextCstringLen(pstrdup(json), strlen(json), GetDatabaseEncoding(), true);
	sem.semstate = &s;
	sem.object_start = ScanObjectStart;
	sem.object_end = ScanObjectEnd;
	sem.array_start = ScanArrayStart;
	sem.array_end = ScanObjectEnd;
	sem.object_field_start = ScanFieldStart;
	sem.scalar = ScanScalar;
	return pg_parse_json(lex, &sem) == JSON_SUCCESS && !s.not_object;
}

/* A path with its %XX escapes decoded, as PostgREST routes it; NULL if an escape is bad or decodes to NUL */
static int
hex_value(char c)
{
	return isdigit((unsigned char) c) ? c - '0' : pg_tolower((unsigned char) c) - 'a' + 10;
}

static char *
DecodePath(const char *raw)
{
	char	   *out = palloc(strlen(raw) + 1);
	char	   *o = out;

	for (const char *p = raw; *p; p++)
	{
		if (*p != '%')
		{
			*o++ = *p;
			continue;
		}
		if (!isxdigit((unsigned char) p[1]) || !isxdigit((unsigned char) p[2]))
			return NULL;
		*o = (char) ((hex_value(p[1]) << 4) | hex_value(p[2]));
		if (*o++ == '\0')
			return NULL;
		p += 2;
	}
	*o = '\0';
	return out;
}

/* The permission a route needs when no route says: GET /rpc/report -> rpc.report.read; NULL if not nameable */
static char *
DerivedPermission(const char *method, const char *path)
{
	StringInfoData perm;
	const char *p = path;
	int			segments = 0;

	initStringInfo(&perm);
	while (*p)
	{
		const char *start;
		int			len;

		while (*p == '/')
			p++;
		start = p;
		while (*p && *p != '/')
		{
			if (!isalnum((unsigned char) *p) && *p != '_' && *p != ':' && *p != '-')
				return NULL;
			p++;
		}
		len = p - start;
		if (len == 0)
			continue;
		if (len > 128)
			return NULL;
		if (segments++ > 0)
			appendStringInfoChar(&perm, '.');
		appendBinaryStringInfo(&perm, start, len);
	}
	if (segments == 0)
		return NULL;
	appendStringInfoString(&perm, strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? ".read" :
						   strcmp(method, "DELETE") == 0 ? ".delete" : ".write");
	return perm.data;
}

/*
 * The client's address as the proxy in front of PostgREST says it: its
 * X-Real-IP, else the last X-Forwarded-For address (the one the proxy
 * appended; those before it are the client's to write); NULL when there is
 * none or it is not an address.
 */
Datum
UnkeyClientAddress(char *forwarded, char *real_ip, bool *isnull)
{
	char	   *addr = real_ip ? real_ip : forwarded;
	char	   *end;
	unsigned char buf[16];

	*isnull = true;
	if (addr == NULL)
		return (Datum) 0;
	addr = pstrdup(addr);
	if (real_ip == NULL && (end = strrchr(addr, ',')) != NULL)
		addr = end + 1;
	while (isspace((unsigned char) *addr))
		addr++;
	for (end = addr + strlen(addr); end > addr && isspace((unsigned char) end[-1]); end--)
		;
	*end = '\0';
	if (pg_inet_net_pton(PGSQL_AF_INET, addr, buf, -1) < 0 && pg_inet_net_pton(PGSQL_AF_INET6, addr, buf, -1) < 0)
		return (Datum) 0;
	*isnull = false;
	return DirectFunctionCall1(inet_in, CStringGetDatum(addr));
}

/* unkey.unkey_verify_key(text, text, text, bigint, jsonb, text[], inet), found again after DROP EXTENSION */
static Oid
VerifyOid(void)
{
	static bool callback_registered = false;

	if (!callback_registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, VerifyOidInvalidate, (Datum) 0);
		callback_registered = true;
	}
	if (!OidIsValid(verify_oid))
	{
		Oid			argtypes[7] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, JSONBOID, TEXTARRAYOID, INETOID};

		verify_oid = LookupFuncName(list_make2(makeString("unkey"), makeString("unkey_verify_key")),
									7, argtypes, false);
	}
	return verify_oid;
}

/*
 * Call unkey_verify_key(args) through fmgr, as SQL would (it switches to the
 * extension's owner as any SECURITY DEFINER function does), and split its
 * row into v and vn (VerificationColumn order)
 */
void
UnkeyCallVerify(Datum *args, bool *argnull, Datum *v, bool *vn)
{
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 7);
	Datum		result;
	HeapTupleHeader td;
	TupleDesc	desc;
	HeapTupleData tup;

	fmgr_info(VerifyOid(), &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 7, InvalidOid, NULL, NULL);
	for (int i = 0; i < 7; i++)
	{
		fcinfo->args[i].value = argnull[i] ? (Datum) 0 : args[i];
		fcinfo->args[i].isnull = argnull[i];
	}
	result = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		elog(ERROR, "unkey: unkey_verify_key returned NULL");
	td = DatumGetHeapTupleHeader(result);
	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(td), HeapTupleHeaderGetTypMod(td));
	if (desc->natts != V_NCOLS)
		elog(ERROR, "unkey: unkey.verification has %d columns, unkey knows %d", desc->natts, V_NCOLS);
	tup.t_len = HeapTupleHeaderGetDatumLength(td);
	tup.t_data = td;
	heap_deform_tuple(&tup, desc, v, vn);
	ReleaseTupleDesc(desc);
}

/* A number field of a JSON object, or -1 */
static int64
JsonbInt(Jsonb *obj, const char *key)
{
	JsonbValue	k = {.type = jbvString, .val.string = {strlen(key), (char *) key}};
	JsonbValue *v = findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &k);

	if (v == NULL || v->type != jbvNumeric)
		return -1;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
}

/* A string field of a JSON object, or NULL */
static char *
JsonbString(Jsonb *obj, const char *key)
{
	JsonbValue	k = {.type = jbvString, .val.string = {strlen(key), (char *) key}};
	JsonbValue *v;

	if (obj == NULL || !JB_ROOT_IS_OBJECT(obj))
		return NULL;
	v = findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &k);
	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/*
 * Of the rate limits a verification checked: the exceeded one that resets
 * last (refused), or the one with the least left (passed); NULL if none.
 */
static Jsonb *
PickRatelimit(Jsonb *limits, bool exceeded)
{
	Jsonb	   *best = NULL;
	int64		best_value = 0;
	int			n;

	if (limits == NULL || !JB_ROOT_IS_ARRAY(limits))
		return NULL;
	n = JB_ROOT_COUNT(limits);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(&limits->root, i);
		Jsonb	   *obj;
		JsonbValue	k = {.type = jbvString, .val.string = {8, "exceeded"}};
		JsonbValue *ex;
		int64		value;

		if (e == NULL || e->type != jbvBinary)
			continue;
		obj = JsonbValueToJsonb(e);
		ex = findJsonbValueFromContainer(&obj->root, JB_FOBJECT, &k);
		if (exceeded && !(ex && ex->type == jbvBool && ex->val.boolean))
			continue;
		value = JsonbInt(obj, exceeded ? "reset" : "remaining");
		if (best == NULL || (exceeded ? value > best_value : value < best_value))
		{
			best = obj;
			best_value = value;
		}
	}
	return best;
}

/* The row of the key with this plaintext (KeyColumn order); false if there is none */
static bool
GatewayKeyRow(const char *key, Datum **kv, bool **kn)
{
	bytea	   *hash = palloc(VARHDRSZ + UNKEY_HASH_LEN);
	Snapshot	snap = RegisterSnapshot(GetTransactionSnapshot());
	bool		found;

	SET_VARSIZE(hash, VARHDRSZ + UNKEY_HASH_LEN);
	UnkeyHashKey(key, strlen(key), (unsigned char *) VARDATA(hash));
	found = UnkeyFetch(UNKEY_KEYS, PointerGetDatum(hash), snap, kv, kn) == 1;
	UnregisterSnapshot(snap);
	return found;
}

/* Set a setting for the rest of the transaction, as set_config(name, value, true) does */
static void
SetLocal(const char *name, const char *value)
{
	(void) set_config_option(name, value ? value : "", superuser() ? PGC_SUSET : PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
}

static const char *
TextOrNull(Datum *values, bool *nulls, int col)
{
	return nulls[col] ? NULL : TextDatumGetCString(values[col]);
}

/* Verify the request PostgREST is running; the role to switch to, or NULL.  Refuses with PGRST. */
static char *
GatewayCheck(void)
{
	const char *method = GetConfigOption("request.method", true, false);
	const char *path = GetConfigOption("request.path", true, false);
	const char *header_names[3];
	char	   *header_values[3];
	const char *cookie_names[1];
	char	   *cookie_values[1];
	char	   *key;
	char		challenge[128];
	GatewayRoute *route = NULL;
	const char *perm = NULL;
	int64		cost;
	char	   *m;
	Datum		args[7];
	bool		argnull[7] = {false};
	Datum		v[V_NCOLS];
	bool		vn[V_NCOLS];
	char	   *code;
	Jsonb	   *limits;
	Jsonb	   *lim;
	char	   *role = NULL;
	StringInfoData headers;
	TimestampTz now = UnkeyNow();

	GatewaySettings();
	m = pstrdup(method ? method : "");
	for (char *c = m; *c; c++)
		*c = pg_toupper((unsigned char) *c);
	/* HEAD runs what GET runs: the same routes and permissions */
	if (strcmp(m, "HEAD") == 0)
		m = "GET";

	/* the key: from the header, else the cookie; nothing else is read before one is found */
	snprintf(challenge, sizeof(challenge), "{\"WWW-Authenticate\": \"ApiKey header=\\\"%s\\\"\"}", gw.header);
	header_names[0] = gw.header;
	header_names[1] = "x-forwarded-for";
	header_names[2] = "x-real-ip";
	cookie_names[0] = gw.cookie;
	if (!UnkeyScanFields(GetConfigOption("request.headers", true, false), 3, header_names, header_values) ||
		!UnkeyScanFields(GetConfigOption("request.cookies", true, false), 1, cookie_names, cookie_values))
		GatewayRefuse(400, "BAD_REQUEST", "request.headers and request.cookies must be JSON objects",
					  "Call unkey.pre_request() from PostgREST's db-pre-request.", NULL);
	key = header_values[0] ? header_values[0] : cookie_values[0];
	if (key == NULL || key[0] == '\0')
	{
		char		hint[128];

		snprintf(hint, sizeof(hint), "Send it in the %s header.", gw.header);
		GatewayRefuse(401, "MISSING_KEY", "this API needs a key", hint, challenge);
	}
	/* too long, or with spaces, commas or control characters: it matches nothing */
	if (strlen(key) > GW_MAX_KEY_CHARS * MAX_MULTIBYTE_CHAR_LEN ||
		pg_mbstrlen(key) > GW_MAX_KEY_CHARS || strpbrk(key, ", \t\r\n\v\f") != NULL)
		GatewayRefuse(401, "NOT_FOUND", "the key is not valid", NULL, challenge);
	for (const char *c = key; *c; c++)
		if (iscntrl((unsigned char) *c))
			GatewayRefuse(401, "NOT_FOUND", "the key is not valid", NULL, challenge);
	if (!gw.configured)
		GatewayRefuse(500, "GATEWAY_NOT_CONFIGURED", "the gateway has no API",
					  "Run unkey_gateway_configure(api_id) first.", NULL);
	/* PostgREST routes on the decoded path: so do we */
	path = DecodePath(path ? path : "");
	if (path == NULL)
		GatewayRefuse(400, "BAD_REQUEST", "the path is not validly percent-encoded", NULL, NULL);

	/* the route's permission query and cost, its method before * */
	for (int i = 0; i < gw.nroutes; i++)
		if (strcmp(gw.routes[i].path, path) == 0 &&
			(strcmp(gw.routes[i].method, m) == 0 || (route == NULL && strcmp(gw.routes[i].method, "*") == 0)))
			route = &gw.routes[i];
	if (route)
		perm = route->permissions;
	else if (gw.derive && (perm = DerivedPermission(m, path)) == NULL)
		GatewayRefuse(400, "BAD_REQUEST", "this path cannot be named as a permission",
					  "The gateway's administrator can add the route to unkey.gateway_routes.", NULL);
	cost = route && route->has_cost ? route->cost :
		(strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) ? gw.read_cost : gw.write_cost;

	/* a route that spends cannot run in PostgREST's READ ONLY transaction: 25006 (405) for a key of the API */
	if (cost > 0 && XactReadOnly)
	{
		Datum	   *kv;
		bool	   *kn;
		bool		found = GatewayKeyRow(key, &kv, &kn) && kn[K_DELETED_AT] &&
			strcmp(TextDatumGetCString(kv[K_API_ID]), gw.api_id) == 0;

		/* the key's own state first, as verification would answer it */
		if (!found)
			GatewayRefuse(401, "NOT_FOUND", "the key is not valid", NULL, challenge);
		if (!DatumGetBool(kv[K_ENABLED]))
			GatewayRefuse(401, "DISABLED", "the key is disabled", NULL, challenge);
		if (!kn[K_EXPIRES] && DatumGetTimestampTz(kv[K_EXPIRES]) < now)
			GatewayRefuse(401, "EXPIRED", "the key has expired", NULL, challenge);
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("this route spends credits, which a read-only request cannot"),
				 errhint("PostgREST runs GET, HEAD, and POST of a STABLE or IMMUTABLE function read-only: "
						 "spend by POST of a VOLATILE function, or give the route a cost of 0.")));
	}

	/* the verification, as SQL would call it */
	args[0] = CStringGetTextDatum(key);
	args[1] = CStringGetTextDatum(gw.api_id);
	args[2] = perm ? CStringGetTextDatum(perm) : (Datum) 0;
	args[3] = Int64GetDatum(cost);
	args[6] = UnkeyClientAddress(header_values[1], header_values[2], &argnull[6]);
	argnull[2] = perm == NULL;
	argnull[4] = argnull[5] = true;
	UnkeyCallVerify(args, argnull, v, vn);
	code = TextDatumGetCString(v[V_CODE]);
	limits = vn[V_RATELIMITS] ? NULL : DatumGetJsonbP(v[V_RATELIMITS]);

	if (strcmp(code, "NOT_FOUND") == 0 || strcmp(code, "DISABLED") == 0 || strcmp(code, "EXPIRED") == 0)
		GatewayRefuse(401, code, code[0] == 'N' ? "the key is not valid" :
					  code[0] == 'D' ? "the key is disabled" : "the key has expired", NULL, challenge);
	if (strcmp(code, "FORBIDDEN") == 0)
		GatewayRefuse(403, code, "the key may not be used from this address", NULL, NULL);
	if (strcmp(code, "INSUFFICIENT_PERMISSIONS") == 0)
		GatewayRefuse(403, code, "the key may not do this", NULL, NULL);
	if (strcmp(code, "RATE_LIMITED") == 0)
	{
		int64		reset;
		int64		now_ms = UnkeyUnixMs(now);

		lim = PickRatelimit(limits, true);
		reset = lim ? JsonbInt(lim, "reset") : now_ms;
		initStringInfo(&headers);
		appendStringInfo(&headers, "{\"Retry-After\": \"" INT64_FORMAT "\", \"X-RateLimit-Limit\": \"" INT64_FORMAT
						 "\", \"X-RateLimit-Remaining\": \"0\", \"X-RateLimit-Reset\": \"" INT64_FORMAT "\"}",
						 Max((reset - now_ms + 999) / 1000, 1), lim ? JsonbInt(lim, "limit") : 0, (reset + 999) / 1000);
		GatewayRefuse(429, code, "too many requests", NULL, headers.data);
	}
	if (strcmp(code, "USAGE_EXCEEDED") == 0)
	{
		/* 429 as well; a key that refills says when */
		Datum	   *kv;
		bool	   *kn;

		initStringInfo(&headers);
		if (GatewayKeyRow(key, &kv, &kn) && !kn[K_REFILL_AMOUNT])
		{
			TimestampTz next = UnkeyNextRefill(kn[K_REFILL_DAY], kn[K_REFILL_DAY] ? 0 : DatumGetInt32(kv[K_REFILL_DAY]), now);
			int64		next_s = (UnkeyUnixMs(next) + 999) / 1000;

			appendStringInfo(&headers, "{\"Retry-After\": \"" INT64_FORMAT "\", \"X-RateLimit-Limit\": \"" INT64_FORMAT
							 "\", \"X-RateLimit-Remaining\": \"0\", \"X-RateLimit-Reset\": \"" INT64_FORMAT "\"}",
							 Max(next_s - UnkeyUnixMs(now) / 1000, 1), DatumGetInt64(kv[K_REFILL_AMOUNT]), next_s);
		}
		else
			appendStringInfoString(&headers, "{\"X-RateLimit-Remaining\": \"0\"}");
		GatewayRefuse(429, code, "the key has no credits left", NULL, headers.data);
	}
	if (!DatumGetBool(v[V_VALID]))
		GatewayRefuse(401, code, "the key is not valid", NULL, challenge);	/* a code this gateway does not know */

	/* who called, for row-level security and the application */
	SetLocal("request.unkey.key_id", TextOrNull(v, vn, V_KEY_ID));
	SetLocal("request.unkey.api_id", TextOrNull(v, vn, V_API_ID));
	SetLocal("request.unkey.name", TextOrNull(v, vn, V_NAME));
	SetLocal("request.unkey.meta", vn[V_META] ? NULL : JsonbToCString(NULL, &DatumGetJsonbP(v[V_META])->root, -1));
	SetLocal("request.unkey.identity_id", TextOrNull(v, vn, V_IDENTITY_ID));
	SetLocal("request.unkey.external_id", TextOrNull(v, vn, V_EXTERNAL_ID));
	SetLocal("request.unkey.identity_meta", vn[V_IDENTITY_META] ? NULL :
			 JsonbToCString(NULL, &DatumGetJsonbP(v[V_IDENTITY_META])->root, -1));
	SetLocal("request.unkey.credits", vn[V_CREDITS] ? NULL :
			 DatumGetCString(DirectFunctionCall1(int8out, v[V_CREDITS])));

	/* the tightest rate limit checked, and the credits left, as response headers */
	lim = PickRatelimit(limits, false);
	if (lim || !vn[V_CREDITS])
	{
		initStringInfo(&headers);
		appendStringInfoChar(&headers, '[');
		if (lim)
			appendStringInfo(&headers, "{\"X-RateLimit-Limit\": \"" INT64_FORMAT "\"}, {\"X-RateLimit-Remaining\": \""
							 INT64_FORMAT "\"}, {\"X-RateLimit-Reset\": \"" INT64_FORMAT "\"}",
							 JsonbInt(lim, "limit"), JsonbInt(lim, "remaining"), (JsonbInt(lim, "reset") + 999) / 1000);
		if (!vn[V_CREDITS])
			appendStringInfo(&headers, "%s{\"X-Credits-Remaining\": \"" INT64_FORMAT "\"}", lim ? ", " : "",
							 DatumGetInt64(v[V_CREDITS]));
		appendStringInfoChar(&headers, ']');
		SetLocal("response.headers", headers.data);
	}

	/* the role: the key's own (in its meta), else the route's; only one the gateway lists */
	if (gw.role_field && !vn[V_META])
		role = JsonbString(DatumGetJsonbP(v[V_META]), gw.role_field);
	if (role == NULL && route && route->role)
		role = route->role;
	if (role)
	{
		bool		allowed = false;

		for (int i = 0; i < gw.nroles && !allowed; i++)
			allowed = strcmp(gw.roles[i], role) == 0;
		if (!allowed)
			GatewayRefuse(403, "ROLE_NOT_ALLOWED", "the key names a role the gateway may not switch to", NULL, NULL);
	}
	return role;
}

PG_FUNCTION_INFO_V1(unkey_gateway_check);

/* unkey.gateway_check(): verify the request, return the role to switch to (or NULL) */
Datum
unkey_gateway_check(PG_FUNCTION_ARGS)
{
	char	   *role = GatewayCheck();

	if (role == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(role));
}

PG_FUNCTION_INFO_V1(unkey_pre_request);

/* unkey.pre_request(): verify the request and switch to its role, as set_config('role', r, true) */
Datum
unkey_pre_request(PG_FUNCTION_ARGS)
{
	char	   *role = GatewayCheck();

	if (role)
		SetLocal("role", role);
	PG_RETURN_VOID();
}
