/*-------------------------------------------------------------------------
 *
 * utils.h
 *	  What every part of unkey shares: our SQLSTATEs, the clock, time
 *	  conversions, byte order, result rows, the shutdown save file and
 *	  running as the extension's owner.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_UTILS_H
#define UNKEY_UTILS_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "fmgr.h"

/*
 * Our own SQLSTATEs, in class PT so that PostgREST answers with the HTTP
 * status of the same number.  SQL raises them through unkey._raise, so each
 * is spelled only here.
 */
#define ERRCODE_UNKEY_NOT_FOUND				MAKE_SQLSTATE('P','T','4','0','4')
#define ERRCODE_UNKEY_GONE					MAKE_SQLSTATE('P','T','4','1','0')
#define ERRCODE_UNKEY_PRECONDITION_FAILED	MAKE_SQLSTATE('P','T','4','1','2')

/* The settings of this file (unkey.test_now); called from _PG_init */
extern void UtilsInit(void);

/* The clock: the current time, unless a test pinned it */
extern TimestampTz UnkeyNow(void);

/* Time conversions to and from Unkey's units (Unix milliseconds, ms durations) */
extern int64 UnkeyUnixMs(TimestampTz ts);
extern TimestampTz UnkeyFromUnixMs(int64 ms);
extern int64 UnkeyIntervalMs(Interval *iv);

/* Strings: character counts, and the bytewise order COLLATE "C" uses */
extern bool UnkeyCharsBetween(const char *s, int bytes, int min, int max);
extern int	UnkeyCompareBytes(const char *a, int alen, const char *b, int blen);
extern int	UnkeyCompareTexts(const void *a, const void *b);

/* The v2 API's root key as the actor of this transaction's audit rows */
extern void UnkeySetV2Actor(const char *actor);

/* The blessed row type of a function's result */
extern TupleDesc UnkeyResultDesc(FunctionCallInfo fcinfo);

/* Run fn(arg) as the extension's owner with a pinned search_path (rare SQL of non-definer functions) */
extern void UnkeyAsOwner(void (*fn) (void *arg), void *arg);

/* Shared state saved at shutdown (the limiter's counters, the buffered events) */
extern void UnkeySaveFile(const char *path, bool (*writer) (FILE *f, void *arg), void *arg);

#endif							/* UNKEY_UTILS_H */
