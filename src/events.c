/*-------------------------------------------------------------------------
 *
 * events.c
 *	  The event pipeline: verification and rate-limit events go to a ring
 *	  buffer in shared memory, and a background worker per database writes
 *	  them to the event tables in batches.
 *
 * Locking protocol.  Shared memory holds unkey.events_databases slots; a
 * slot is one database's ring of variable-length records.  The fields of
 * slot i are guarded by the i-th LWLock of the "unkey_events" tranche,
 * except the bytes of the ring itself: a writer copies its record in at
 * `head` and advances `head` while holding the lock, so the bytes between
 * `tail` and `head` are complete and no writer touches them again until
 * `tail` moves past them.  That lets the flush worker, the only reader and
 * the only one who advances `tail`, read [tail, head) without the lock:
 * it reads `head` under the lock, copies the records out, writes them in
 * its own transaction, and advances `tail` under the lock after the commit,
 * so a failed flush loses nothing.  A slot is claimed by setting its `dboid`
 * under its lock, while holding the claim lock (the tranche's last), which
 * serializes claims so that a database never gets two slots; the claim lock
 * is taken before a slot lock, never after, and no one holds two slot locks.
 * A slot is freed, under its lock, by its worker when the ring is empty, or
 * by any backend when its database no longer exists.  Writers that find the
 * ring full sleep on the slot's condition variable, which the worker
 * broadcasts after every flush; they write their event themselves only when
 * no worker has run for unkey.events_full_wait.  Nothing inside a slot lock
 * can raise an error or allocate.
 *
 * At a clean shutdown the worker exits at once (SIGTERM is die()); the
 * postmaster then writes whatever is still buffered to
 * pg_stat/unkey_events.stat, and the next start puts it back in the rings.
 * A crash loses the rings: at most unkey.events_buffer_size per database,
 * and in practice what arrived in the last unkey.events_flush_interval.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "events.h"
#include "utils.h"

#define EV_TRANCHE "unkey_events"
#define EV_DUMP_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/unkey_events.stat"
#define EV_DUMP_MAGIC 0x554b4556	/* "UKEV" */
#define EV_IDLE_EXIT_MS 2000	/* a worker with nothing to do leaves */
#define EV_RETRY_WORKER_MS 10000	/* a requested worker that never came */
#define EV_UPKEEP_EVERY_MS 60000	/* partitions ahead, retention */
#define EV_FLUSH_WAIT_MS 30000	/* unkey_flush_events gives up after this */

/* The fixed part of a record; the strings follow, each an int32 length (-1: NULL) and its bytes */
typedef struct EvRecord
{
	uint32		len;			/* the whole record, a multiple of 8 */
	uint8		kind;			/* UNKEY_EVENT_VERIFICATION or _RATELIMIT */
	uint8		flag;			/* rate limits: passed */
	uint16		nstr;
	TimestampTz time;
	double		latency_ms;
	int64		num[UNKEY_EVENT_NUMS];
} EvRecord;

typedef struct EvSlot
{
	ConditionVariable flushed;	/* broadcast after each flush; first, so a claim can clear the rest */
	Oid			dboid;			/* InvalidOid: the slot is free */
	uint64		head;			/* bytes ever appended */
	uint64		tail;			/* bytes ever flushed */
	int64		buffered;		/* records in [tail, head) */
	pid_t		worker_pid;		/* 0: no worker */
	Latch	   *worker_latch;
	TimestampTz worker_requested;	/* a backend registered a worker then */
	bool		flush_now;		/* someone wants the ring written before the interval ends */
	/* counters since the slot was claimed */
	int64		appended;
	int64		flushed_events;
	int64		inline_writes;
	int64		full_waits;
	int64		discarded;
	TimestampTz last_flush;
} EvSlot;

typedef struct EvShared
{
	LWLockPadded *locks;
	int			nslots;
	Size		ring_bytes;
	EvSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} EvShared;

int			unkey_events_databases = 4;
int			unkey_events_buffer_kb = 4096;
int			unkey_events_flush_interval = 200;
int			unkey_events_batch_size = 10000;
int			unkey_events_full_wait = 1000;

static char *unkey_request_id = NULL;	/* unkey.request_id */

static EvShared *ev = NULL;
static int	my_slot = -1;		/* this backend's slot, checked under its lock */
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* The start of slot i's ring */
static inline char *
EvRing(int i)
{
	return (char *) ev + MAXALIGN(offsetof(EvShared, slots) + sizeof(EvSlot) * ev->nslots) +
		(Size) i * ev->ring_bytes;
}

static inline LWLock *
EvLock(int i)
{
	return &ev->locks[i].lock;
}

/* Serializes the claiming of slots; the tranche's last lock */
static inline LWLock *
EvClaimLock(void)
{
	return &ev->locks[ev->nslots].lock;
}

/* Shared memory for the slots and their rings */
static Size
EvMemSize(void)
{
	return add_size(MAXALIGN(offsetof(EvShared, slots) + sizeof(EvSlot) * unkey_events_databases),
					mul_size(unkey_events_databases, (Size) unkey_events_buffer_kb * 1024));
}

/* Copy n bytes into a ring at a position, wrapping at its end */
static void
EvRingWrite(int i, uint64 pos, const char *src, Size n)
{
	char	   *ring = EvRing(i);
	Size		off = pos % ev->ring_bytes;
	Size		first = Min(n, ev->ring_bytes - off);

	memcpy(ring + off, src, first);
	memcpy(ring, src + first, n - first);
}

/* Copy n bytes out of a ring from a position, wrapping at its end */
static void
EvRingRead(int i, uint64 pos, char *dst, Size n)
{
	char	   *ring = EvRing(i);
	Size		off = pos % ev->ring_bytes;
	Size		first = Min(n, ev->ring_bytes - off);

	memcpy(dst, ring + off, first);
	memcpy(dst + first, ring, n - first);
}

/* Encode an event as one record, in the current memory context */
static EvRecord *
EvEncode(const UnkeyEvent *e)
{
	Size		len = sizeof(EvRecord);
	EvRecord   *r;
	char	   *p;

	for (int s = 0; s < e->nstr; s++)
		len += sizeof(int32) + Max(e->len[s], 0);
	len = MAXALIGN64(len);
	r = palloc0(len);
	r->len = len;
	r->kind = e->kind;
	r->flag = e->flag;
	r->nstr = e->nstr;
	r->time = e->time;
	r->latency_ms = e->latency_ms;
	memcpy(r->num, e->num, sizeof(r->num));
	p = (char *) (r + 1);
	for (int s = 0; s < e->nstr; s++)
	{
		int32		l = e->str[s] ? e->len[s] : -1;

		memcpy(p, &l, sizeof(l));
		p += sizeof(l);
		if (l > 0)
		{
			memcpy(p, e->str[s], l);
			p += l;
		}
	}
	return r;
}

/* Decode a record's strings back into an event that points into it */
static void
EvDecode(EvRecord *r, UnkeyEvent *e)
{
	char	   *p = (char *) (r + 1);

	e->kind = r->kind;
	e->flag = r->flag;
	e->nstr = r->nstr;
	e->time = r->time;
	e->latency_ms = r->latency_ms;
	memcpy(e->num, r->num, sizeof(e->num));
	for (int s = 0; s < r->nstr && s < UNKEY_EVENT_STRS; s++)
	{
		int32		l;

		memcpy(&l, p, sizeof(l));
		p += sizeof(l);
		e->len[s] = l;
		e->str[s] = l < 0 ? NULL : p;
		if (l > 0)
			p += l;
	}
}

/* A text[] of the strings at one position of every event (NULLs kept) */
static Datum
EvTextArray(UnkeyEvent *es, int n, int s)
{
	Datum	   *d = palloc(sizeof(Datum) * n);
	bool	   *nulls = palloc(sizeof(bool) * n);
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = es[i].str[s] == NULL;
		if (!nulls[i])
			d[i] = PointerGetDatum(cstring_to_text_with_len(es[i].str[s], es[i].len[s]));
	}
	return PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
}

/* An array of a fixed-size value of every event */
static Datum
EvScalarArray(Datum *d, int n, Oid type)
{
	int16		len;
	bool		byval;
	char		align;

	get_typlenbyvalalign(type, &len, &byval, &align);
	return PointerGetDatum(construct_array(d, n, type, len, byval, align));
}

/*
 * Write events of one kind with one call of unkey._store_verifications or
 * unkey._store_ratelimits of 0.2.0 or older, which insert them and update
 * the rollups.  The caller is connected to SPI, in a transaction.
 */
static void
EvStoreKind(UnkeyEvent *es, int n, uint8 kind)
{
	int			nargs = 0;
	Datum		args[13];
	Oid			types[13];
	Datum	   *d = palloc(sizeof(Datum) * n);
	const char *sql;

	if (n == 0)
		return;

#define TEXTS(s) (types[nargs] = TEXTARRAYOID, args[nargs++] = EvTextArray(es, n, (s)))
#define SCALARS(type, expr) do { \
		for (int i = 0; i < n; i++) d[i] = (expr); \
		types[nargs] = get_array_type(type); \
		args[nargs++] = EvScalarArray(d, n, (type)); \
	} while (0)

	SCALARS(TIMESTAMPTZOID, TimestampTzGetDatum(es[i].time));
	SCALARS(FLOAT8OID, Float8GetDatum(es[i].latency_ms));
	if (kind == UNKEY_EVENT_VERIFICATION)
	{
		/* the key hash is bytes, the rest text */
		Datum	   *h = palloc(sizeof(Datum) * n);

		for (int i = 0; i < n; i++)
		{
			bytea	   *b = palloc(VARHDRSZ + es[i].len[EV_V_HASH]);

			SET_VARSIZE(b, VARHDRSZ + es[i].len[EV_V_HASH]);
			memcpy(VARDATA(b), es[i].str[EV_V_HASH], es[i].len[EV_V_HASH]);
			h[i] = PointerGetDatum(b);
		}
		types[nargs] = BYTEAARRAYOID;
		args[nargs++] = EvScalarArray(h, n, BYTEAOID);
		for (int s = EV_V_HASH + 1; s < EV_V_NSTR; s++)
			TEXTS(s);
		SCALARS(INT8OID, Int64GetDatum(es[i].num[0]));	/* spent credits */
		sql = "SELECT unkey._store_verifications($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
	}
	else
	{
		for (int s = 0; s < EV_R_NSTR; s++)
			TEXTS(s);
		SCALARS(BOOLOID, BoolGetDatum(es[i].flag != 0));
		SCALARS(INT8OID, Int64GetDatum(es[i].num[0]));	/* limit */
		SCALARS(INT8OID, Int64GetDatum(es[i].num[1]));	/* remaining */
		SCALARS(TIMESTAMPTZOID, TimestampTzGetDatum(UnkeyFromUnixMs(es[i].num[2])));	/* reset */
		SCALARS(INT8OID, Int64GetDatum(es[i].num[3]));	/* cost */
		sql = "SELECT unkey._store_ratelimits($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
	}
#undef TEXTS
#undef SCALARS

	if (SPI_execute_with_args(sql, nargs, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "unkey: could not store %d events", n);
}

/*
 * Write a batch of events now, in the current transaction: set-based in C
 * (eventstore.c), or, while the database still has the SQL of 0.2.0 or
 * older (before ALTER EXTENSION UPDATE), through its unkey._store_* functions.
 */
static void
EvStore(UnkeyEvent *es, int n)
{
	UnkeyEvent *byk;

	if (OidIsValid(get_relname_relid("rollup_state", get_namespace_oid("unkey", false))))
	{
		UnkeyStoreEvents(es, n);
		return;
	}
	byk = palloc(sizeof(UnkeyEvent) * n);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	for (uint8 kind = UNKEY_EVENT_VERIFICATION; kind <= UNKEY_EVENT_RATELIMIT; kind++)
	{
		int			m = 0;

		for (int i = 0; i < n; i++)
			if (es[i].kind == kind)
				byk[m++] = es[i];
		EvStoreKind(byk, m, kind);
	}
	SPI_finish();
}

typedef struct EvBatch
{
	UnkeyEvent *es;
	int			n;
} EvBatch;

/* EvStore for EvTry and UnkeyAsOwner */
static void
EvStoreBatch(void *arg)
{
	EvStore(((EvBatch *) arg)->es, ((EvBatch *) arg)->n);
}

/* Ask the postmaster for the flush worker of a slot's database */
static void
EvStartWorker(int slot, Oid dboid)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "unkey");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "UnkeyEventWorkerMain");
	snprintf(w.bgw_name, BGW_MAXLEN, "unkey event writer for database %u", dboid);
	snprintf(w.bgw_type, BGW_MAXLEN, "unkey event writer");
	w.bgw_main_arg = Int32GetDatum(slot);
	memcpy(w.bgw_extra, &dboid, sizeof(Oid));
	/* on failure the request stays noted, so the next try is in EV_RETRY_WORKER_MS */
	if (!RegisterDynamicBackgroundWorker(&w, NULL))
		ereport(WARNING,
				(errmsg("unkey: could not start the event writer"),
				 errdetail("Events stay buffered until a writer starts."),
				 errhint("Raise max_worker_processes.")));
}

/*
 * Should a worker be asked for?  Called with the slot locked; notes the
 * request so that concurrent backends do not all ask, and so that a failed
 * request is retried only after a while.
 */
static bool
EvNeedWorker(EvSlot *s)
{
	TimestampTz now = GetCurrentTimestamp();

	if (s->worker_pid != 0 || s->head == s->tail)
		return false;
	if (s->worker_requested != 0 &&
		!TimestampDifferenceExceeds(s->worker_requested, now, EV_RETRY_WORKER_MS))
		return false;
	s->worker_requested = now;
	return true;
}

/*
 * Start writers for buffered events that have none: events put back after a
 * restart into the buffer of a database nobody has used since.  A slot of a
 * database that no longer exists is emptied (its events counted as
 * discarded) and freed.
 */
static void
EvTendOrphans(void)
{
	for (int i = 0; i < ev->nslots; i++)
	{
		EvSlot	   *s = &ev->slots[i];
		Oid			dboid = s->dboid;	/* read without the lock: checked again under it */
		bool		exists;
		bool		start = false;

		if (dboid == InvalidOid || dboid == MyDatabaseId || s->worker_pid != 0)
			continue;
		exists = SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(dboid));
		LWLockAcquire(EvLock(i), LW_EXCLUSIVE);
		if (s->dboid == dboid && s->worker_pid == 0)
		{
			if (!exists)
			{
				s->discarded += s->buffered;
				s->dboid = InvalidOid;
			}
			else
				start = EvNeedWorker(s);
		}
		LWLockRelease(EvLock(i));
		if (start)
			EvStartWorker(i, dboid);
	}
}

/*
 * This database's slot, locked in exclusive mode; when it has none and
 * claim is set, a free slot is claimed for it.  -1 (nothing locked) when it
 * has none.  Claims are serialized by the claim lock, so a database never
 * gets two slots; it is taken before a slot lock, never after.
 */
static int
EvLockMySlot(bool claim)
{
	if (my_slot >= 0)
	{
		LWLockAcquire(EvLock(my_slot), LW_EXCLUSIVE);
		if (ev->slots[my_slot].dboid == MyDatabaseId)
			return my_slot;
		LWLockRelease(EvLock(my_slot));
		my_slot = -1;
	}
	if (claim)
	{
		EvTendOrphans();		/* may free the slot of a dropped database */
		LWLockAcquire(EvClaimLock(), LW_EXCLUSIVE);
	}
	for (int pass = 0; pass < (claim ? 2 : 1); pass++)
	{
		for (int i = 0; i < ev->nslots; i++)
		{
			EvSlot	   *s = &ev->slots[i];

			LWLockAcquire(EvLock(i), LW_EXCLUSIVE);
			if (s->dboid == MyDatabaseId || (pass == 1 && s->dboid == InvalidOid))
			{
				if (s->dboid == InvalidOid)
				{
					memset((char *) s + offsetof(EvSlot, dboid), 0,
						   sizeof(EvSlot) - offsetof(EvSlot, dboid));
					s->dboid = MyDatabaseId;
				}
				if (claim)
					LWLockRelease(EvClaimLock());
				my_slot = i;
				return i;
			}
			LWLockRelease(EvLock(i));
		}
	}
	if (claim)
		LWLockRelease(EvClaimLock());
	return -1;
}

/*
 * Write one event now, in the caller's transaction: without preloading, or
 * when no buffer or writer can take it.  A read-only transaction cannot
 * write: the event is then dropped with a warning (and counted, if the
 * database has a buffer), since verification must still answer.  The write
 * runs as the extension's owner with a pinned search_path, since callers
 * such as unkey_ratelimit are not SECURITY DEFINER.
 */
static void
EvStoreNow(const UnkeyEvent *e, int slot)
{
	EvBatch		one = {(UnkeyEvent *) e, 1};

	if (XactReadOnly || RecoveryInProgress())
	{
		if (slot >= 0)
		{
			LWLockAcquire(EvLock(slot), LW_EXCLUSIVE);
			if (ev->slots[slot].dboid == MyDatabaseId)
				ev->slots[slot].discarded++;
			LWLockRelease(EvLock(slot));
		}
		ereport(WARNING,
				(errmsg("unkey: the event of this call was not recorded: the transaction is read-only"),
				 errhint("Call it in a read-write transaction on the primary to record its event.")));
		return;
	}
	if (slot >= 0)
	{
		LWLockAcquire(EvLock(slot), LW_EXCLUSIVE);
		if (ev->slots[slot].dboid == MyDatabaseId)
			ev->slots[slot].inline_writes++;
		LWLockRelease(EvLock(slot));
	}
	UnkeyAsOwner(EvStoreBatch, &one);
}

/* The request id to record with an event, if the application set one */
void
UnkeyEventRequestId(UnkeyEvent *e, int s)
{
	if (unkey_request_id != NULL && unkey_request_id[0] != '\0')
	{
		e->str[s] = unkey_request_id;
		e->len[s] = strlen(unkey_request_id);
	}
}

/*
 * Record an event.  With the pipeline it is appended to this database's
 * ring, survives the caller's rollback and costs no WAL here.  A full ring
 * applies back-pressure: the caller waits while a writer is at work
 * (interruptibly, so statement_timeout still applies).  Only when no writer
 * has been running for unkey.events_full_wait, or every buffer belongs to
 * other databases, or the library is not preloaded, is the event written by
 * the caller itself.  It is never dropped silently.
 */
void
UnkeyEmitEvent(const UnkeyEvent *e)
{
	EvRecord   *r;
	int			slot = -1;
	bool		waited = false;
	TimestampTz writerless_since = 0;

	if (ev == NULL)
	{
		EvStoreNow(e, -1);
		return;
	}

	r = EvEncode(e);
	for (;;)
	{
		EvSlot	   *s;
		bool		start_worker;
		bool		wake;
		Latch	   *latch;
		pid_t		writer;

		slot = EvLockMySlot(true);
		if (slot < 0)
			break;				/* every buffer is taken by other databases */
		s = &ev->slots[slot];
		if (r->len > ev->ring_bytes / 2)
		{
			LWLockRelease(EvLock(slot));
			break;				/* not made for a buffer this small */
		}
		if (r->len <= ev->ring_bytes - (s->head - s->tail))
		{
			EvRingWrite(slot, s->head, (char *) r, r->len);
			s->head += r->len;
			s->buffered++;
			s->appended++;
			wake = (s->head - s->tail) > ev->ring_bytes / 2;
			s->flush_now |= wake;
			start_worker = EvNeedWorker(s);
			latch = s->worker_latch;
			LWLockRelease(EvLock(slot));
			if (start_worker)
			{
				EvStartWorker(slot, MyDatabaseId);
				EvTendOrphans();
			}
			else if (wake && latch)
				SetLatch(latch);
			pfree(r);
			return;
		}

		/* full: wake the writer (or have one started) and wait for a flush */
		if (!waited)
			s->full_waits++;
		waited = true;
		s->flush_now = true;
		start_worker = EvNeedWorker(s);
		latch = s->worker_latch;
		writer = s->worker_pid;
		LWLockRelease(EvLock(slot));
		if (start_worker)
			EvStartWorker(slot, MyDatabaseId);
		else if (latch)
			SetLatch(latch);
		if (writer != 0)
			writerless_since = 0;
		else if (writerless_since == 0)
			writerless_since = GetCurrentTimestamp();
		else if (TimestampDifferenceExceeds(writerless_since, GetCurrentTimestamp(), unkey_events_full_wait))
			break;
		ConditionVariablePrepareToSleep(&s->flushed);
		(void) ConditionVariableTimedSleep(&s->flushed, 100, PG_WAIT_EXTENSION);
		ConditionVariableCancelSleep();
		CHECK_FOR_INTERRUPTS();
	}
	pfree(r);
	EvStoreNow(e, slot);
}

/* Has someone asked for a flush before the interval ends?  Clears the request */
static bool
EvTakeFlushRequest(int slot)
{
	bool		asked;

	LWLockAcquire(EvLock(slot), LW_EXCLUSIVE);
	asked = ev->slots[slot].flush_now;
	ev->slots[slot].flush_now = false;
	LWLockRelease(EvLock(slot));
	return asked;
}

/*
 * Forget this worker in its slot, whatever way it exits, and free the slot
 * if nothing is buffered in it.
 */
static void
EvWorkerExit(int code, Datum arg)
{
	EvSlot	   *s = &ev->slots[DatumGetInt32(arg)];

	LWLockAcquire(EvLock(DatumGetInt32(arg)), LW_EXCLUSIVE);
	if (s->worker_pid == MyProcPid)
	{
		s->worker_pid = 0;
		s->worker_latch = NULL;
		/* after a failure, wait a while before the next writer is started */
		s->worker_requested = code == 0 ? 0 : GetCurrentTimestamp();
		if (s->head == s->tail)
			s->dboid = InvalidOid;
	}
	LWLockRelease(EvLock(DatumGetInt32(arg)));
	ConditionVariableBroadcast(&s->flushed);
}

/*
 * Run fn(arg) in a subtransaction.  An error of the data itself (a value,
 * a constraint, a size limit), or any error when any_error is set, is
 * logged and makes it return false, having undone its work; any other error
 * (out of disk, a lock timeout) is raised again, so that the whole flush is
 * retried later and nothing is lost.
 */
static bool
EvTry(void (*fn) (void *arg), void *arg, const char *what, bool any_error)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			class;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
		if (!any_error && class != ERRCODE_DATA_EXCEPTION &&
			class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION && class != ERRCODE_PROGRAM_LIMIT_EXCEEDED)
			ReThrowError(edata);
		ereport(LOG,
				(errmsg("unkey: could not write %s: %s", what, edata->message)));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

/*
 * Write up to one batch from the slot's ring in its own transaction;
 * returns how many events it took off the ring (0 when it was empty).  If
 * the batch fails on its data, the events are written one at a time and
 * the ones that still fail are discarded and counted, so that one bad event
 * can never hold up the others.
 */
static int
EvFlushBatch(int slot)
{
	EvSlot	   *s = &ev->slots[slot];
	uint64		tail;
	uint64		head;
	uint64		pos;
	int			n = 0;
	int			bad = 0;
	int			cap = Max(unkey_events_batch_size, 1);
	UnkeyEvent *es;
	MemoryContext batchcxt;
	MemoryContext old;
	bool		extension_present;

	LWLockAcquire(EvLock(slot), LW_SHARED);
	tail = s->tail;
	head = s->head;
	LWLockRelease(EvLock(slot));
	if (head == tail)
		return 0;

	batchcxt = AllocSetContextCreate(TopMemoryContext, "unkey event batch", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(batchcxt);
	es = palloc(sizeof(UnkeyEvent) * cap);
	for (pos = tail; pos < head && n < cap;)
	{
		uint32		len;
		EvRecord   *r;

		EvRingRead(slot, pos, (char *) &len, sizeof(len));
		r = palloc(len);
		EvRingRead(slot, pos, (char *) r, len);
		EvDecode(r, &es[n++]);
		pos += len;
	}

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "unkey: writing events");
	extension_present = OidIsValid(get_extension_oid("unkey", true));
	if (extension_present)
	{
		EvBatch		all = {es, n};

		MemoryContextSwitchTo(batchcxt);
		if (!EvTry(EvStoreBatch, &all, "a batch of events", false))
		{
			for (int i = 0; i < n; i++)
			{
				EvBatch		one = {&es[i], 1};

				if (!EvTry(EvStoreBatch, &one, "an event", false))
					bad++;
			}
		}
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	pgstat_report_stat(false);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(batchcxt);

	if (!extension_present)
		bad = n;
	LWLockAcquire(EvLock(slot), LW_EXCLUSIVE);
	s->tail = pos;
	s->buffered -= n;
	s->flushed_events += n - bad;
	s->discarded += bad;
	s->last_flush = GetCurrentTimestamp();
	LWLockRelease(EvLock(slot));
	ConditionVariableBroadcast(&s->flushed);
	if (bad > 0)
		ereport(WARNING,
				(errmsg("unkey: discarded %d events that could not be written", bad),
				 extension_present ? 0 : errdetail("The extension is no longer installed in this database.")));
	return n;
}

/* The worker's upkeep, for EvTry: one statement of it (arg) */
static void
EvMaintain(void *arg)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "unkey: SPI_connect failed");
	SPI_execute((const char *) arg, false, 0);
	SPI_finish();
}

/*
 * Once a minute: create today's and tomorrow's partitions, so that crossing
 * midnight never waits for a lock, drop partitions past the retention, and
 * materialise the days and months of the rollups that have closed (in a
 * transaction of its own: a crash leaves all of it or none).  A short lock timeout
 * keeps a long reader (pg_dump) from stalling the writer; the upkeep is
 * simply tried again a minute later.
 */
static void
EvUpkeep(void)
{
	/*
	 * Two transactions: the partitions' locks are not held while a day is
	 * materialised, and a failure of one leaves the other done.  0.2.0's SQL
	 * (before ALTER EXTENSION UPDATE) has no rollups to materialise.
	 */
	static const char *const steps[] = {
		"SELECT unkey._maintain_events(pg_catalog.now())",
		"SELECT unkey._materialize_rollups(pg_catalog.now())"
	};

	for (int i = 0; i < lengthof(steps); i++)
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		if (OidIsValid(get_extension_oid("unkey", true)) &&
			(i == 0 || OidIsValid(get_relname_relid("rollup_state", get_namespace_oid("unkey", false)))))
		{
			pgstat_report_activity(STATE_RUNNING, "unkey: upkeep (partitions, retention, materialised rollups)");
			SetConfigOption("lock_timeout", "1000", PGC_SUSET, PGC_S_SESSION);
			(void) EvTry(EvMaintain, (void *) steps[i], "the event upkeep (tried again in a minute)", true);
			SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_SESSION);
		}
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_activity(STATE_IDLE, NULL);
	}
}

/*
 * The flush worker of one database: write the ring every
 * unkey.events_flush_interval (sooner when it is half full), apply the
 * retention once a minute, and leave when idle so that the database can be
 * dropped and the slot reused.
 */
void
UnkeyEventWorkerMain(Datum main_arg)
{
	int			slot = DatumGetInt32(main_arg);
	EvSlot	   *s;
	Oid			dboid;
	TimestampTz idle_since;
	TimestampTz last_flush;
	TimestampTz last_upkeep = 0;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	/* terminate at once, even in a lock wait: what is still buffered stays in the ring */
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	if (ev == NULL || slot < 0 || slot >= ev->nslots)
		proc_exit(0);
	s = &ev->slots[slot];

	/* one writer per slot, and only for the database that owns it */
	LWLockAcquire(EvLock(slot), LW_EXCLUSIVE);
	if (s->dboid != dboid || s->worker_pid != 0)
	{
		LWLockRelease(EvLock(slot));
		proc_exit(0);
	}
	s->worker_pid = MyProcPid;
	s->worker_latch = MyLatch;
	s->worker_requested = 0;
	LWLockRelease(EvLock(slot));
	before_shmem_exit(EvWorkerExit, Int32GetDatum(slot));

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/* whatever the database's own settings say: the writer must write, in UTC */
	SetConfigOption("search_path", "pg_catalog", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("TimeZone", "UTC", PGC_SUSET, PGC_S_OVERRIDE);
	/* each statement sees what committed before it: the rollups' locking relies on it */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("DateStyle", "ISO", PGC_SUSET, PGC_S_OVERRIDE);
	idle_since = GetCurrentTimestamp();
	last_flush = idle_since;
	ResetLatch(MyLatch);		/* only a real request cuts the first interval short */

	for (;;)
	{
		int			n;
		TimestampTz now;
		long		wait_ms;

		/*
		 * Wait first: a new writer leaves the events buffered for one
		 * interval too.  Wake at least every second, to notice idleness.
		 */
		wait_ms = unkey_events_flush_interval -
			(long) ((GetCurrentTimestamp() - last_flush) / 1000);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(1, Min(wait_ms, 1000)), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		now = GetCurrentTimestamp();
		if (EvTakeFlushRequest(slot) ||
			TimestampDifferenceExceeds(last_flush, now, unkey_events_flush_interval))
		{
			while ((n = EvFlushBatch(slot)) > 0)
			{
				idle_since = GetCurrentTimestamp();
				CHECK_FOR_INTERRUPTS();
			}
			last_flush = now = GetCurrentTimestamp();
		}
		if (TimestampDifferenceExceeds(last_upkeep, now, EV_UPKEEP_EVERY_MS))
		{
			EvUpkeep();
			last_upkeep = now;
		}

		/* idle and empty: give the slot back */
		if (TimestampDifferenceExceeds(idle_since, now, EV_IDLE_EXIT_MS))
		{
			bool		empty;

			LWLockAcquire(EvLock(slot), LW_EXCLUSIVE);
			empty = s->head == s->tail;
			if (empty)
				s->dboid = InvalidOid;
			LWLockRelease(EvLock(slot));
			if (empty)
				break;
		}
	}
	proc_exit(0);
}

PG_FUNCTION_INFO_V1(unkey_flush_events);

/*
 * unkey_flush_events(): wait until every event this database had buffered
 * when the call began is in the tables; returns how many were buffered.
 */
Datum
unkey_flush_events(PG_FUNCTION_ARGS)
{
	int			slot;
	EvSlot	   *s;
	uint64		target;
	int64		pending;
	bool		start_worker;
	Latch	   *latch;
	TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), EV_FLUSH_WAIT_MS);

	if (ev == NULL)
		PG_RETURN_INT64(0);		/* not preloaded: events are written at once */
	EvTendOrphans();
	slot = EvLockMySlot(false);	/* a database without a buffer has nothing to flush */
	if (slot < 0)
		PG_RETURN_INT64(0);
	s = &ev->slots[slot];
	target = s->head;
	pending = s->buffered;
	s->flush_now = true;
	start_worker = EvNeedWorker(s);
	latch = s->worker_latch;
	LWLockRelease(EvLock(slot));
	if (pending == 0)
		PG_RETURN_INT64(0);
	if (start_worker)
		EvStartWorker(slot, MyDatabaseId);
	else if (latch)
		SetLatch(latch);

	ConditionVariablePrepareToSleep(&s->flushed);
	for (;;)
	{
		uint64		tail;
		Oid			owner;

		LWLockAcquire(EvLock(slot), LW_EXCLUSIVE);
		tail = s->tail;
		owner = s->dboid;
		start_worker = tail < target && EvNeedWorker(s);
		latch = s->worker_latch;
		LWLockRelease(EvLock(slot));
		if (tail >= target || owner != MyDatabaseId)
			break;
		if (start_worker)
			EvStartWorker(slot, MyDatabaseId);
		else if (latch)
			SetLatch(latch);
		if (GetCurrentTimestamp() >= give_up)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("events were not written within %d seconds", EV_FLUSH_WAIT_MS / 1000),
					 errdetail("The event writer needs a free background worker slot."),
					 errhint("Check the server log and unkey_events_info(), and raise max_worker_processes if no writer runs.")));
		}
		(void) ConditionVariableTimedSleep(&s->flushed, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	PG_RETURN_INT64(pending);
}

PG_FUNCTION_INFO_V1(unkey_events_info);

/* unkey_events_info(): the pipeline's state and counters, per database slot */
Datum
unkey_events_info(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (ev == NULL)
		return (Datum) 0;
	for (int i = 0; i < ev->nslots; i++)
	{
		EvSlot		c;
		Datum		v[11];
		bool		nulls[11] = {false};
		char	   *dbname;

		LWLockAcquire(EvLock(i), LW_SHARED);
		memcpy(&c, &ev->slots[i], sizeof(c));
		LWLockRelease(EvLock(i));
		if (c.dboid == InvalidOid)
			continue;
		dbname = get_database_name(c.dboid);
		nulls[0] = dbname == NULL;
		if (dbname)
			v[0] = CStringGetTextDatum(dbname);
		v[1] = Int64GetDatum(c.buffered);
		v[2] = Int64GetDatum(c.head - c.tail);
		v[3] = Int64GetDatum(ev->ring_bytes);
		v[4] = Int64GetDatum(c.appended);
		v[5] = Int64GetDatum(c.flushed_events);
		v[6] = Int64GetDatum(c.inline_writes);
		v[7] = Int64GetDatum(c.full_waits);
		v[8] = Int64GetDatum(c.discarded);
		v[9] = Int32GetDatum(c.worker_pid);
		nulls[9] = c.worker_pid == 0;
		v[10] = TimestampTzGetDatum(c.last_flush);
		nulls[10] = c.last_flush == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, nulls);
	}
	return (Datum) 0;
}

/* Ask for shared memory and the slot locks (PG 15 shmem_request_hook) */
static void
EvShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(EvMemSize());
	RequestNamedLWLockTranche(EV_TRANCHE, unkey_events_databases + 1);	/* + the claim lock */
}

/* Write every non-empty ring, with its database and count; false if a write failed */
static bool
EvWrite(FILE *f, void *arg)
{
	int32		header[3] = {EV_DUMP_MAGIC, PG_VERSION_NUM / 100, *(int32 *) arg};

	if (fwrite(header, sizeof(header), 1, f) != 1)
		return false;
	for (int i = 0; i < ev->nslots; i++)
	{
		EvSlot	   *s = &ev->slots[i];
		uint64		n = s->head - s->tail;
		char	   *bytes;
		bool		ok;

		if (n == 0)
			continue;
		bytes = palloc(n);
		EvRingRead(i, s->tail, bytes, n);
		ok = fwrite(&s->dboid, sizeof(Oid), 1, f) == 1 &&
			fwrite(&s->buffered, sizeof(int64), 1, f) == 1 &&
			fwrite(&n, sizeof(n), 1, f) == 1 &&
			fwrite(bytes, 1, n, f) == n;
		pfree(bytes);
		if (!ok)
			return false;
	}
	return true;
}

/* At a clean shutdown, keep what the writers did not get to */
static void
EvShmemShutdown(int code, Datum arg)
{
	int32		rings = 0;

	if (code != 0 || ev == NULL)
		return;
	for (int i = 0; i < ev->nslots; i++)
		if (ev->slots[i].head != ev->slots[i].tail)
			rings++;
	if (rings > 0)
		UnkeySaveFile(EV_DUMP_FILE, EvWrite, &rings);
}

/* At start, put back the events saved at the last clean shutdown */
static void
EvLoad(void)
{
	FILE	   *f = AllocateFile(EV_DUMP_FILE, PG_BINARY_R);
	int32		header[3];
	int			slot = 0;

	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", EV_DUMP_FILE)));
		return;
	}
	if (fread(header, sizeof(header), 1, f) != 1 ||
		header[0] != EV_DUMP_MAGIC || header[1] != PG_VERSION_NUM / 100 || header[2] < 0)
		ereport(LOG, (errmsg("ignoring saved events in \"%s\": wrong format", EV_DUMP_FILE)));
	else
	{
		for (int i = 0; i < header[2]; i++)
		{
			Oid			dboid;
			int64		buffered;
			uint64		n;
			char	   *bytes;

			if (fread(&dboid, sizeof(Oid), 1, f) != 1 ||
				fread(&buffered, sizeof(int64), 1, f) != 1 ||
				fread(&n, sizeof(n), 1, f) != 1)
				break;
			if (slot >= ev->nslots || n > ev->ring_bytes)
			{
				ereport(LOG,
						(errmsg("unkey: %lld saved events of database %u do not fit the event buffers and are lost",
								(long long) buffered, dboid)));
				if (fseek(f, n, SEEK_CUR) != 0)
					break;
				continue;
			}
			bytes = palloc(n);
			if (fread(bytes, 1, n, f) != n)
				break;
			ev->slots[slot].dboid = dboid;
			EvRingWrite(slot, 0, bytes, n);
			ev->slots[slot].head = n;
			ev->slots[slot].buffered = buffered;
			pfree(bytes);
			slot++;
		}
	}
	FreeFile(f);
	unlink(EV_DUMP_FILE);
}

/* Create or attach the slots; the postmaster also loads the saved events */
static void
EvShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ev = ShmemInitStruct("unkey events", EvMemSize(), &found);
	if (!found)
	{
		memset(ev, 0, offsetof(EvShared, slots) + sizeof(EvSlot) * unkey_events_databases);
		ev->locks = GetNamedLWLockTranche(EV_TRANCHE);
		ev->nslots = unkey_events_databases;
		ev->ring_bytes = (Size) unkey_events_buffer_kb * 1024;
		for (int i = 0; i < ev->nslots; i++)
			ConditionVariableInit(&ev->slots[i].flushed);
	}
	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
	{
		on_shmem_exit(EvShmemShutdown, (Datum) 0);
		if (!found)
			EvLoad();
	}
}

/* Settings and hooks; without preloading, events are written synchronously */
void
EventsInit(void)
{
	DefineCustomStringVariable("unkey.request_id",
							   gettext_noop("The application's request id, recorded with each event."),
							   gettext_noop("Set it per transaction (SET LOCAL), e.g. from PostgREST's pre-request function."),
							   &unkey_request_id,
							   "",
							   PGC_USERSET,
							   GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);

	/* without preloading there is no buffer, and a postmaster setting is fatal */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("unkey.events_databases",
							gettext_noop("Databases that can buffer events at the same time."),
							gettext_noop("Each gets unkey.events_buffer_size of shared memory; others write events synchronously."),
							&unkey_events_databases,
							4, 1, 64,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("unkey.events_buffer_size",
							gettext_noop("Shared memory for buffered events, per database."),
							NULL,
							&unkey_events_buffer_kb,
							4096, 64, 1024 * 1024,
							PGC_POSTMASTER, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("unkey.events_flush_interval",
							gettext_noop("How often the event writer writes buffered events."),
							NULL,
							&unkey_events_flush_interval,
							200, 10, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("unkey.events_batch_size",
							gettext_noop("Events the event writer writes per transaction."),
							NULL,
							&unkey_events_batch_size,
							10000, 1, 1000000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("unkey.events_full_wait",
							gettext_noop("How long a full event buffer makes a verification wait before it writes its event itself."),
							NULL,
							&unkey_events_full_wait,
							1000, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = EvShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = EvShmemStartup;
}
