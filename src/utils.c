/*-------------------------------------------------------------------------
 *
 * utils.c
 *	  What every part of unkey shares: the clock, time conversions, byte
 *	  order, result rows, the shutdown save file, running as the
 *	  extension's owner, and unkey._raise.
 *
 * The clock is the one place that decides what "now" means for expiry and
 * refill.  Tests pin it with the superuser-only setting unkey.test_now, so
 * that day and month boundaries can be crossed deterministically; an
 * ordinary role can neither set it nor see it, so it cannot be used to
 * revive an expired key or to trigger a refill early.
 *
 * This file calls no other file of unkey, so that every file may call it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "utils.h"

/* the raw setting, and its parsed value when set */
static char *unkey_test_now_string = NULL;
static bool unkey_now_pinned = false;
static TimestampTz unkey_now_value = 0;

/* Parse unkey.test_now without throwing, as a GUC check hook must */
static bool
check_test_now(char **newval, void **extra, GucSource source)
{
	char		workbuf[MAXDATELEN + MAXDATEFIELDS];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_tm tt;
	fsec_t		fsec;
	int			tz;
	TimestampTz *parsed;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;

	if (strlen(*newval) >= MAXDATELEN ||
		ParseDateTime(*newval, workbuf, sizeof(workbuf), field, ftype,
					  MAXDATEFIELDS, &nf) != 0 ||
		DecodeDateTime(field, ftype, nf, &dtype, &tt, &fsec, &tz) != 0 ||
		dtype != DTK_DATE)
	{
		GUC_check_errdetail("unkey.test_now must be empty or a timestamp with time zone.");
		return false;
	}

	parsed = (TimestampTz *) malloc(sizeof(TimestampTz));
	if (parsed == NULL)
		return false;
	if (tm2timestamp(&tt, fsec, &tz, parsed) != 0)
	{
		free(parsed);
		GUC_check_errdetail("unkey.test_now is out of range.");
		return false;
	}
	*extra = parsed;
	return true;
}

/* Install the parsed value so UnkeyNow() costs nothing */
static void
assign_test_now(const char *newval, void *extra)
{
	unkey_now_pinned = (extra != NULL);
	unkey_now_value = extra ? *(TimestampTz *) extra : 0;
}

/* Define the clock's setting; called from _PG_init */
void
UtilsInit(void)
{
	DefineCustomStringVariable("unkey.test_now",
							   gettext_noop("Pins the clock unkey uses for expiry and refill (tests only)."),
							   gettext_noop("Empty means the real clock. Only superusers can set it."),
							   &unkey_test_now_string,
							   "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE | GUC_NO_SHOW_ALL,
							   check_test_now, assign_test_now, NULL);
}

/* The current time for expiry and refill decisions */
TimestampTz
UnkeyNow(void)
{
	return unkey_now_pinned ? unkey_now_value : GetCurrentTimestamp();
}

PG_FUNCTION_INFO_V1(unkey_now);

/*
 * SQL access to the clock, so SQL and C agree on "now": the start of the
 * statement, so that unkey.now() is STABLE, as Citus needs of a function in
 * a statement it distributes (the pinned test time, if any)
 */
Datum
unkey_now(PG_FUNCTION_ARGS)
{
	PG_RETURN_TIMESTAMPTZ(unkey_now_pinned ? unkey_now_value : GetCurrentStatementStartTimestamp());
}

/* Unix milliseconds of a timestamp */
int64
UnkeyUnixMs(TimestampTz ts)
{
	return ts / 1000 + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

/* The timestamp of Unix milliseconds */
TimestampTz
UnkeyFromUnixMs(int64 ms)
{
	return (ms - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000) * 1000;
}

/* An interval as whole milliseconds, months counted as 30 days */
int64
UnkeyIntervalMs(Interval *iv)
{
	if (iv->time % 1000 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("duration must be a whole number of milliseconds"),
				 errhint("Round the duration to milliseconds.")));
	return iv->time / 1000 + ((int64) iv->month * DAYS_PER_MONTH + iv->day) * (USECS_PER_DAY / 1000);
}

/* the v2 API's actor for the audit log, and the transaction it is for */
static char v2_actor[NAMEDATALEN * 2];
static LocalTransactionId v2_actor_lxid = InvalidLocalTransactionId;

PG_FUNCTION_INFO_V1(unkey_actor);

/*
 * The role that called into the extension, for the audit log.  The entry
 * points that write the audit log are SECURITY DEFINER, so current_user
 * inside them is the owner; the outer user is the caller's own
 * current_user, including a SET ROLE such as the one PostgREST issues for
 * each request.
 */
Datum
unkey_actor(PG_FUNCTION_ARGS)
{
	if (v2_actor[0] != '\0' && v2_actor_lxid == MyProc->lxid)
		PG_RETURN_TEXT_P(cstring_to_text(v2_actor));
	PG_RETURN_TEXT_P(cstring_to_text(GetUserNameFromId(GetOuterUserId(), false)));
}

PG_FUNCTION_INFO_V1(unkey_set_v2_actor);

/*
 * unkey._set_v2_actor(actor): the v2 API's root key ("root_key:key_...")
 * is the actor of this transaction's audit rows.  Kept in a static with the
 * transaction's local id, so it lapses with the transaction; executable by
 * the extension's owner only, so a caller cannot claim someone else.
 */
Datum
unkey_set_v2_actor(PG_FUNCTION_ARGS)
{
	UnkeySetV2Actor(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}

/* The same, for C callers (v2.c) */
void
UnkeySetV2Actor(const char *actor)
{
	strlcpy(v2_actor, actor, sizeof(v2_actor));
	v2_actor_lxid = MyProc->lxid;
}

/*
 * Is the text min..max characters long?  A character is at least one byte,
 * so for min <= 1 the byte length alone answers whenever it is within max;
 * only longer strings are counted.
 */
bool
UnkeyCharsBetween(const char *s, int bytes, int min, int max)
{
	int			chars;

	if (min <= 1 && bytes <= max)
		return bytes >= min;
	chars = pg_mbstrlen_with_len(s, bytes);
	return chars >= min && chars <= max;
}

/* Bytewise order of two strings, as COLLATE "C" sorts names */
int
UnkeyCompareBytes(const char *a, int alen, const char *b, int blen)
{
	int			r = memcmp(a, b, Min(alen, blen));

	return r != 0 ? r : (alen > blen) - (alen < blen);
}

/* qsort comparator for text Datums, in the same bytewise order */
int
UnkeyCompareTexts(const void *a, const void *b)
{
	text	   *x = DatumGetTextPP(*(const Datum *) a);
	text	   *y = DatumGetTextPP(*(const Datum *) b);

	return UnkeyCompareBytes(VARDATA_ANY(x), VARSIZE_ANY_EXHDR(x), VARDATA_ANY(y), VARSIZE_ANY_EXHDR(y));
}

/* The blessed result row type of a function, cached for the call site */
TupleDesc
UnkeyResultDesc(FunctionCallInfo fcinfo)
{
	TupleDesc	desc = (TupleDesc) fcinfo->flinfo->fn_extra;

	if (desc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "unkey: return type must be a row type");
		desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		fcinfo->flinfo->fn_extra = desc;
		MemoryContextSwitchTo(old);
	}
	return desc;
}

/*
 * Save state to a file atomically, as the postmaster exits: the writer fills
 * a temporary file that replaces path only when complete.  Failures are
 * logged, never raised, and leave no partial file behind.
 */
void
UnkeySaveFile(const char *path, bool (*writer) (FILE *f, void *arg), void *arg)
{
	char		tmp[MAXPGPATH];
	FILE	   *f;
	bool		ok = false;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = AllocateFile(tmp, PG_BINARY_W);
	if (f != NULL)
	{
		ok = writer(f, arg);
		if (FreeFile(f) != 0)
			ok = false;
	}
	if (ok)
	{
		(void) durable_rename(tmp, path, LOG);
		return;
	}
	ereport(LOG,
			(errcode_for_file_access(),
			 errmsg("could not write file \"%s\": %m", tmp)));
	unlink(tmp);
}

/*
 * The owner of extension unkey, read from pg_extension every time: the
 * callers below are rare, and so it is never stale (REASSIGN OWNED changes
 * it) and needs no invalidation.
 */
static Oid
ExtensionOwner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("unkey"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	if (!OidIsValid(owner))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"unkey\" is not installed in this database"),
				 errhint("Install it with CREATE EXTENSION unkey.")));
	return owner;
}

/*
 * UnkeyAsOwner: run fn(arg) as the extension's owner with search_path =
 * pg_catalog, pg_temp, exactly as the body of a SECURITY DEFINER function
 * with that SET clause runs.  C functions that are neither SECURITY DEFINER
 * nor SET (so that their common path pays no GUC save and restore on every
 * call) use it around the SQL of their rare paths: unkey_ratelimit's
 * namespace created on first use, and an event written inline.
 *
 * Both are restored on return.  On error they are restored the way fmgr
 * restores them after a SECURITY DEFINER function fails: by the abort of
 * the transaction or subtransaction that catches the error, which resets
 * the user id and pops this GUC nesting level before anything else runs
 * (a PL/pgSQL EXCEPTION block rolls its subtransaction back before its
 * handler).  SECURITY_LOCAL_USERID_CHANGE forbids SET ROLE meanwhile.
 */
void
UnkeyAsOwner(void (*fn) (void *arg), void *arg)
{
	Oid			owner = ExtensionOwner();
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	save_nestlevel = NewGUCNestLevel();
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	fn(arg);
	AtEOXact_GUC(true, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* The conditions unkey._raise knows, by their PL/pgSQL names */
static const struct
{
	const char *name;
	int			sqlstate;
}			raise_conditions[] =
{
	{"not_found", ERRCODE_UNKEY_NOT_FOUND},
	{"gone", ERRCODE_UNKEY_GONE},
	{"precondition_failed", ERRCODE_UNKEY_PRECONDITION_FAILED},
	{"invalid_parameter_value", ERRCODE_INVALID_PARAMETER_VALUE},
	{"unique_violation", ERRCODE_UNIQUE_VIOLATION},
	{"read_only_sql_transaction", ERRCODE_READ_ONLY_SQL_TRANSACTION},
	{"object_not_in_prerequisite_state", ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE},
	{"feature_not_supported", ERRCODE_FEATURE_NOT_SUPPORTED},
	{"syntax_error", ERRCODE_SYNTAX_ERROR},
};

PG_FUNCTION_INFO_V1(unkey_raise);

/*
 * unkey._raise(condition, message, hint): raise an ERROR with the SQLSTATE
 * of a condition name, so that the SQL side never spells a PTxxx code.  A
 * NULL hint means none.  Not STRICT: a NULL condition or message is our own
 * bug, and must not pass silently as a NULL result.
 */
Datum
unkey_raise(PG_FUNCTION_ARGS)
{
	char	   *condition;
	int			sqlstate = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		elog(ERROR, "unkey._raise: condition and message must not be null");
	condition = text_to_cstring(PG_GETARG_TEXT_PP(0));
	for (int i = 0; i < lengthof(raise_conditions) && sqlstate == 0; i++)
		if (strcmp(raise_conditions[i].name, condition) == 0)
			sqlstate = raise_conditions[i].sqlstate;
	if (sqlstate == 0)
		elog(ERROR, "unkey._raise: unknown condition \"%s\"", condition);

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg_internal("%s", text_to_cstring(PG_GETARG_TEXT_PP(1))),
			 PG_ARGISNULL(2) ? 0 : errhint("%s", text_to_cstring(PG_GETARG_TEXT_PP(2)))));
	PG_RETURN_VOID();
}
