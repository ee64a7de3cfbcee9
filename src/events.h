/*-------------------------------------------------------------------------
 *
 * events.h
 *	  The event pipeline (events.c): verification and rate-limit events,
 *	  buffered in shared memory and written by a worker per database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_EVENTS_H
#define UNKEY_EVENTS_H

#include "postgres.h"

#include "datatype/timestamp.h"

#define UNKEY_EVENT_VERIFICATION 1
#define UNKEY_EVENT_RATELIMIT 2
#define UNKEY_EVENT_NUMS 4
#define UNKEY_EVENT_STRS 8

/* the strings of a verification event, in the order unkey._store_verifications takes them */
enum
{
	EV_V_HASH, EV_V_REQUEST_ID, EV_V_API_ID, EV_V_KEY_ID, EV_V_IDENTITY_ID,
	EV_V_EXTERNAL_ID, EV_V_OUTCOME, EV_V_TAGS, EV_V_NSTR
};

/* the strings of a rate-limit event; num[] holds limit, remaining, reset (Unix ms), cost */
enum
{
	EV_R_REQUEST_ID, EV_R_NAMESPACE_ID, EV_R_NAMESPACE, EV_R_IDENTIFIER, EV_R_OVERRIDE_ID,
	EV_R_NSTR
};

/* An event as its emitter fills it; the strings are copied when it is emitted */
typedef struct UnkeyEvent
{
	uint8		kind;
	uint8		flag;			/* rate limits: passed */
	int			nstr;
	TimestampTz time;
	double		latency_ms;
	int64		num[UNKEY_EVENT_NUMS];	/* verification: spent credits */
	const char *str[UNKEY_EVENT_STRS];	/* NULL for SQL NULL */
	int			len[UNKEY_EVENT_STRS];
} UnkeyEvent;

extern void EventsInit(void);
extern void UnkeyEventRequestId(UnkeyEvent *e, int s);
extern void UnkeyEmitEvent(const UnkeyEvent *e);

/* Write events to the tables now, in the current transaction (eventstore.c) */
extern void UnkeyStoreEvents(const UnkeyEvent *es, int n);
extern PGDLLEXPORT void UnkeyEventWorkerMain(Datum main_arg);

#endif							/* UNKEY_EVENTS_H */
