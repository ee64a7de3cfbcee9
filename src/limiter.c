/*-------------------------------------------------------------------------
 *
 * limiter.c
 *	  The sliding-window rate limiter in shared memory.
 *
 * Locking protocol.  The counters live in one shared hash table, split into
 * RL_PARTITIONS partitions by the low bits of each entry's hash code, the
 * way PostgreSQL's lock manager splits its tables.  Partition p is guarded by
 * the p-th LWLock of the "unkey_ratelimit" tranche; whoever reads or changes
 * an entry holds its partition's lock in exclusive mode (the critical section
 * is a hash probe and a few additions, so shared mode would buy nothing).  A
 * call that checks several limits at once takes the locks of every partition
 * it touches, always in ascending partition order, so two such calls cannot
 * deadlock; it decides all-or-nothing while holding them.  Eviction, and the
 * scans that need the whole table (the info function, the shutdown dump),
 * take every partition lock, again in ascending order.  The eviction
 * counters are guarded by the spinlock in RLShared.  Nothing inside a
 * partition lock can raise an error, allocate memory or check for
 * interrupts.
 *
 * An entry is keyed by a 128-bit BLAKE2b digest of (domain, namespace,
 * identifier) and the window duration, and holds the counts of the current
 * window and the one before it: that is all the sliding window needs, and
 * it takes one probe per limit.  Windows are aligned to the Unix epoch.
 *
 * When the table is full, entries whose windows have both ended are evicted;
 * a counter whose window is still open is never forgotten (forgetting it
 * would let anyone who can send new identifiers reset another's limit).
 * When no entry has expired, a request that needs a new counter is decided
 * by unkey.ratelimit_when_full: refused (deny, the default) or an error.
 * Until the earliest time an entry can expire (next_expiry_ms, guarded by
 * the spinlock) nothing is scanned again.  Evictions and refusals are
 * counted and shown by unkey_ratelimit_info().  At a clean shutdown the
 * postmaster writes the counters to pg_stat/unkey_ratelimit.stat and the next
 * start reads them back; after a crash they start from zero.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sodium.h>
#include <unistd.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "common/int.h"
#include "utils/hsearch.h"

#include "limiter.h"
#include "ratelimit.h"
#include "utils.h"

#define RL_PARTITIONS 16		/* a power of two */
#define RL_TRANCHE "unkey_ratelimit"
#define RL_DUMP_FILE PGSTAT_STAT_PERMANENT_DIRECTORY "/unkey_ratelimit.stat"
#define RL_DUMP_MAGIC 0x554b524c	/* "UKRL" */
#define RL_MAX_BATCH 256		/* limits checked together: verification needs 100 + 50 + 50 */

enum
{
	RL_WHEN_FULL_DENY,
	RL_WHEN_FULL_ERROR
};

static const struct config_enum_entry rl_when_full_options[] = {
	{"deny", RL_WHEN_FULL_DENY, false},
	{"error", RL_WHEN_FULL_ERROR, false},
	{NULL, 0, false}
};

static int	unkey_ratelimit_when_full = RL_WHEN_FULL_DENY;

typedef struct RLEntry
{
	RLKey		key;			/* hash key: must be first */
	int64		seq;			/* the window "cur" counts */
	int64		cur;			/* count of window seq */
	int64		prev;			/* count of window seq - 1 */
	int64		last_ms;		/* last use, for eviction */
} RLEntry;

typedef struct RLShared
{
	LWLockPadded *locks;
	slock_t		mutex;			/* protects the counters below */
	int64		evicted_expired;
	int64		evicted_live;	/* none since 0.4.0: live counters are kept */
	int64		eviction_runs;
	int64		refused_full;	/* requests refused (or failed) for want of room */
	int64		next_expiry_ms; /* no entry can expire before this ... */
	int64		scanned_ms;		/* ... as of this time (a clock that goes back scans again) */
} RLShared;

int			unkey_ratelimit_max_entries = 100000;
bool		unkey_ratelimit_save = true;

static RLShared *rl_shared = NULL;
static HTAB *rl_hash = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * The counter key of a limit: a digest of the database and three
 * length-prefixed strings.  The database keeps a restored or templated copy
 * of a database, whose ids are the same, from sharing the original's counters.
 */
void
UnkeyRateLimitKey(RLKey *key, const char *domain, const char *ns, int nslen,
				  const char *id, int idlen, int64 duration_ms)
{
	crypto_generichash_state st;
	uint32		len;
	Oid			db = MyDatabaseId;

	memset(key, 0, sizeof(RLKey));	/* padding is hashed too */
	crypto_generichash_init(&st, NULL, 0, sizeof(key->digest));
	crypto_generichash_update(&st, (unsigned char *) &db, sizeof(db));
	len = strlen(domain);
	crypto_generichash_update(&st, (unsigned char *) &len, sizeof(len));
	crypto_generichash_update(&st, (const unsigned char *) domain, len);
	len = nslen;
	crypto_generichash_update(&st, (unsigned char *) &len, sizeof(len));
	crypto_generichash_update(&st, (const unsigned char *) ns, len);
	len = idlen;
	crypto_generichash_update(&st, (unsigned char *) &len, sizeof(len));
	crypto_generichash_update(&st, (const unsigned char *) id, len);
	crypto_generichash_final(&st, key->digest, sizeof(key->digest));
	key->duration_ms = duration_ms;
}

/* Raise 55000 unless the limiter's shared memory exists */
void
UnkeyRequireLimiter(void)
{
	if (rl_hash == NULL || rl_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the unkey rate limiter needs shared memory"),
				 errhint("Add unkey to shared_preload_libraries and restart the server.")));
}

/* Shared memory for the table and the shared struct */
static Size
RLMemSize(void)
{
	return add_size(MAXALIGN(sizeof(RLShared)),
					hash_estimate_size(unkey_ratelimit_max_entries, sizeof(RLEntry)));
}

/* Ask for shared memory and the partition locks (PG 15 shmem_request_hook) */
static void
RLShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(RLMemSize());
	RequestNamedLWLockTranche(RL_TRANCHE, RL_PARTITIONS);
}

/* Which partition, and so which lock, an entry belongs to */
static inline int
RLPartition(uint32 hashcode)
{
	return hashcode % RL_PARTITIONS;
}

/* Take every partition lock, in order */
static void
RLLockAll(void)
{
	for (int p = 0; p < RL_PARTITIONS; p++)
		LWLockAcquire(&rl_shared->locks[p].lock, LW_EXCLUSIVE);
}

/* Release every partition lock */
static void
RLUnlockAll(void)
{
	for (int p = RL_PARTITIONS - 1; p >= 0; p--)
		LWLockRelease(&rl_shared->locks[p].lock);
}

/* Read the counters saved at the last clean shutdown, then remove the file */
static void
RLLoad(void)
{
	FILE	   *f;
	int32		header[3];
	RLEntry		e;

	f = AllocateFile(RL_DUMP_FILE, PG_BINARY_R);
	if (f == NULL)
	{
		if (errno != ENOENT)
			ereport(LOG,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", RL_DUMP_FILE)));
		return;
	}
	if (fread(header, sizeof(header), 1, f) != 1 ||
		header[0] != RL_DUMP_MAGIC || header[1] != PG_VERSION_NUM / 100 || header[2] < 0)
		ereport(LOG,
				(errmsg("ignoring rate-limit counters in \"%s\": wrong format", RL_DUMP_FILE)));
	else
	{
		for (int i = 0; i < header[2] && fread(&e, sizeof(e), 1, f) == 1; i++)
		{
			bool		found;
			RLEntry    *entry;

			if (e.key.duration_ms < RATELIMIT_MIN_DURATION_MS || e.key.duration_ms > RATELIMIT_MAX_DURATION_MS)
				continue;		/* not written by us: never divide by it */
			entry = hash_search(rl_hash, &e.key, HASH_ENTER_NULL, &found);

			if (entry == NULL)
				break;			/* the table is smaller than it was */
			*entry = e;
		}
	}
	FreeFile(f);
	unlink(RL_DUMP_FILE);
}

/* Write the header and every counter; false if a write failed */
static bool
RLWrite(FILE *f, void *arg)
{
	HASH_SEQ_STATUS hs;
	RLEntry    *e;
	int32		header[3] = {RL_DUMP_MAGIC, PG_VERSION_NUM / 100, hash_get_num_entries(rl_hash)};

	if (fwrite(header, sizeof(header), 1, f) != 1)
		return false;
	hash_seq_init(&hs, rl_hash);
	while ((e = hash_seq_search(&hs)) != NULL)
	{
		if (fwrite(e, sizeof(*e), 1, f) != 1)
		{
			hash_seq_term(&hs);
			return false;
		}
	}
	return true;
}

/* At a clean shutdown of the postmaster, write the counters out */
static void
RLShmemShutdown(int code, Datum arg)
{
	if (code != 0 || !unkey_ratelimit_save || rl_hash == NULL)
		return;
	UnkeySaveFile(RL_DUMP_FILE, RLWrite, NULL);
}

/* Create or attach to the table; the postmaster also loads the saved counters */
static void
RLShmemStartup(void)
{
	bool		found;
	HASHCTL		info;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	rl_shared = NULL;
	rl_hash = NULL;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	rl_shared = ShmemInitStruct("unkey rate limiter", sizeof(RLShared), &found);
	if (!found)
	{
		rl_shared->locks = GetNamedLWLockTranche(RL_TRANCHE);
		SpinLockInit(&rl_shared->mutex);
		rl_shared->evicted_expired = rl_shared->evicted_live = rl_shared->eviction_runs = 0;
		rl_shared->refused_full = rl_shared->next_expiry_ms = rl_shared->scanned_ms = 0;
	}
	info.keysize = sizeof(RLKey);
	info.entrysize = sizeof(RLEntry);
	info.num_partitions = RL_PARTITIONS;
	rl_hash = ShmemInitHash("unkey rate-limit counters",
							unkey_ratelimit_max_entries, unkey_ratelimit_max_entries,
							&info, HASH_ELEM | HASH_BLOBS | HASH_PARTITION | HASH_FIXED_SIZE);
	LWLockRelease(AddinShmemInitLock);

	if (!IsUnderPostmaster)
	{
		on_shmem_exit(RLShmemShutdown, (Datum) 0);
		if (!found)
			RLLoad();
	}
}

/* Define the limiter's settings and hooks; called from _PG_init */
void
LimiterInit(void)
{
	/* without preloading there is no limiter, and a postmaster setting is fatal */
	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomIntVariable("unkey.ratelimit_max_entries",
							gettext_noop("Maximum number of rate-limit counters kept in shared memory."),
							NULL,
							&unkey_ratelimit_max_entries,
							100000, 1000, INT_MAX / 2,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("unkey.ratelimit_when_full",
							 gettext_noop("What a rate-limit check that needs a new counter does when every counter's window is open."),
							 gettext_noop("deny refuses it (fail closed); error raises 53200. No open counter is ever forgotten."),
							 &unkey_ratelimit_when_full,
							 RL_WHEN_FULL_DENY, rl_when_full_options,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("unkey.ratelimit_save",
							 gettext_noop("Save rate-limit counters across clean server restarts."),
							 NULL,
							 &unkey_ratelimit_save,
							 true,
							 PGC_SIGHUP, 0,
							 NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = RLShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = RLShmemStartup;
}

/* Both windows of an entry have ended: it no longer affects any decision */
static inline bool
RLExpired(const RLEntry *e, int64 now_ms)
{
	return e->seq < now_ms / e->key.duration_ms - 1;
}

/*
 * Make room: evict every entry whose windows have both ended, and note
 * when the first of the others can; returns how many were evicted.  Takes
 * every partition lock; the caller holds none.  Skipped until then when
 * the last run found nothing to evict.
 */
static int64
RLEvict(int64 now_ms)
{
	HASH_SEQ_STATUS hs;
	RLEntry    *e;
	int64		expired = 0;
	int64		next = PG_INT64_MAX;
	bool		skip;

	SpinLockAcquire(&rl_shared->mutex);
	skip = now_ms >= rl_shared->scanned_ms && now_ms < rl_shared->next_expiry_ms;
	SpinLockRelease(&rl_shared->mutex);
	if (skip)
		return 0;

	RLLockAll();
	hash_seq_init(&hs, rl_hash);
	while ((e = hash_seq_search(&hs)) != NULL)
	{
		if (RLExpired(e, now_ms))
		{
			hash_search(rl_hash, &e->key, HASH_REMOVE, NULL);
			expired++;
		}
		else
			next = Min(next, (e->seq + 2) * e->key.duration_ms);
	}
	RLUnlockAll();

	SpinLockAcquire(&rl_shared->mutex);
	rl_shared->evicted_expired += expired;
	rl_shared->eviction_runs++;
	rl_shared->next_expiry_ms = expired > 0 ? 0 : next;
	rl_shared->scanned_ms = now_ms;
	SpinLockRelease(&rl_shared->mutex);
	return expired;
}

/* a + b, saturating at INT64_MAX: counts and costs are never negative */
static inline int64
AddSat(int64 a, int64 b)
{
	int64		r;

	return pg_add_s64_overflow(a, b, &r) ? PG_INT64_MAX : r;
}

/* Compare partitions, for locking them in order */
static int
RLCompareInt(const void *a, const void *b)
{
	return *(const int *) a - *(const int *) b;
}

/* Check and, if every limit passes, count: one attempt under the locks */
static bool
RLTry(RLRequest *reqs, int n, int64 now_ms, bool *all_passed)
{
	uint32		hashes[RL_MAX_BATCH];
	int			parts[RL_MAX_BATCH];
	int			nparts = 0;
	bool		passed = true;
	bool		stored = true;

	for (int i = 0; i < n; i++)
	{
		hashes[i] = get_hash_value(rl_hash, &reqs[i].key);
		parts[nparts++] = RLPartition(hashes[i]);
	}
	qsort(parts, nparts, sizeof(int), RLCompareInt);
	for (int i = 0; i < nparts; i++)
		if (i == 0 || parts[i] != parts[i - 1])
			LWLockAcquire(&rl_shared->locks[parts[i]].lock, LW_EXCLUSIVE);

	/*
	 * Decide every limit on its current counts (§5.2).  A counter's time
	 * never goes back: a call whose clock reads earlier than the counter's
	 * last use (it read the clock before a call that got the lock first, or
	 * the system clock stepped back) is decided as of that last use.
	 */
	for (int i = 0; i < n; i++)
	{
		RLRequest  *r = &reqs[i];
		int64		d = r->key.duration_ms;
		RLEntry    *e = hash_search_with_hash_value(rl_hash, &r->key, hashes[i], HASH_FIND, NULL);
		int64		t = (e != NULL && e->last_ms > now_ms) ? e->last_ms : now_ms;
		int64		seq = t / d;
		int64		cur = 0;
		int64		prev = 0;
		double		elapsed = (double) (t - seq * d) / (double) d;
		double		weighted;

		r->is_new = e == NULL;

		if (e != NULL && e->seq == seq)
		{
			cur = e->cur;
			prev = e->prev;
		}
		else if (e != NULL && e->seq == seq - 1)
			prev = e->cur;

		weighted = (double) prev * (1.0 - elapsed);
		if (weighted >= 9.2e18)
			weighted = 9.2e18;	/* the cast below must stay defined */
		r->effective = AddSat(AddSat(cur, (int64) weighted), r->cost);
		r->passed = r->limit > 0 && r->effective <= r->limit;
		r->reset_ms = (seq + 1) * d;
		passed = passed && r->passed;
	}

	/* count them only if all passed; a denied request counts nowhere */
	for (int i = 0; passed && i < n; i++)
	{
		RLRequest  *r = &reqs[i];
		int64		t = now_ms;
		int64		seq;
		bool		found;
		RLEntry    *e;

		if (r->cost == 0)
			continue;
		e = hash_search_with_hash_value(rl_hash, &r->key, hashes[i], HASH_ENTER_NULL, &found);
		if (e != NULL && found && e->last_ms > t)
			t = e->last_ms;
		seq = t / r->key.duration_ms;
		if (e == NULL)
		{
			stored = false;		/* the table is full: undo, evict, retry */
			for (int j = 0; j < i; j++)
			{
				RLEntry    *u = hash_search_with_hash_value(rl_hash, &reqs[j].key, hashes[j],
															HASH_FIND, NULL);

				if (u != NULL && reqs[j].cost > 0)
					u->cur -= reqs[j].cost;
			}
			break;
		}
		if (!found)
		{
			e->seq = seq;
			e->cur = e->prev = 0;
			e->last_ms = t;
		}
		else if (e->seq == seq - 1)
		{
			e->prev = e->cur;
			e->cur = 0;
		}
		else if (e->seq != seq)
			e->prev = e->cur = 0;
		e->seq = seq;
		e->cur = AddSat(e->cur, r->cost);
		e->last_ms = t;
	}

	for (int i = nparts - 1; i >= 0; i--)
		if (i == 0 || parts[i] != parts[i - 1])
			LWLockRelease(&rl_shared->locks[parts[i]].lock);

	*all_passed = passed;
	return stored;
}

/*
 * UnkeyRateLimit: check n limits all-or-nothing and count them if all pass.
 *
 * Fills each request's passed, remaining and reset_ms.  remaining follows
 * §5.2 and §5.4: limit - effective when counted, the room that was left when
 * the batch failed but this limit alone would have passed, 0 when denied.
 */
bool
UnkeyRateLimit(RLRequest *reqs, int n, int64 now_ms)
{
	bool		passed = false;

	UnkeyRequireLimiter();
	if (n > RL_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at most %d rate limits can be checked at once", RL_MAX_BATCH),
				 errhint("Split the limits into calls of at most %d.", RL_MAX_BATCH)));
	if (n == 0)
		return true;
	/* one counter twice in a batch would be checked once and counted twice */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < i; j++)
			if (memcmp(&reqs[i].key, &reqs[j].key, sizeof(RLKey)) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the same rate limit is given twice in one call"),
						 errhint("Give each rate limit once, with the sum of its costs.")));

	for (int attempt = 0; !RLTry(reqs, n, now_ms, &passed); attempt++)
	{
		if (attempt < 3 && RLEvict(now_ms) > 0)
			continue;
		/* full of open windows: no counter is forgotten; the new ones are refused, or it is an error */
		SpinLockAcquire(&rl_shared->mutex);
		rl_shared->refused_full++;
		SpinLockRelease(&rl_shared->mutex);
		if (unkey_ratelimit_when_full == RL_WHEN_FULL_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("the rate-limit table is full of counters whose windows are open"),
					 errhint("Raise unkey.ratelimit_max_entries (needs a restart); none of them is forgotten to make room.")));
		for (int i = 0; i < n; i++)
			if (reqs[i].is_new && reqs[i].cost > 0)
				reqs[i].passed = false;
		passed = false;
		break;
	}

	for (int i = 0; i < n; i++)
	{
		RLRequest  *r = &reqs[i];

		if (!r->passed)
			r->remaining = 0;
		else if (passed)
			r->remaining = Max(0, r->limit - r->effective);
		else
			r->remaining = Max(0, AddSat(r->limit - r->effective, r->cost));
	}
	return passed;
}

PG_FUNCTION_INFO_V1(unkey_ratelimit_info);

/* unkey_ratelimit_info(): the table's size and what eviction has done */
Datum
unkey_ratelimit_info(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false};
	long		entries;

	UnkeyRequireLimiter();
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	RLLockAll();
	entries = hash_get_num_entries(rl_hash);
	RLUnlockAll();

	values[0] = Int64GetDatum(entries);
	values[1] = Int64GetDatum(unkey_ratelimit_max_entries);
	SpinLockAcquire(&rl_shared->mutex);
	values[2] = Int64GetDatum(rl_shared->evicted_expired);
	values[3] = Int64GetDatum(rl_shared->evicted_live);
	values[4] = Int64GetDatum(rl_shared->eviction_runs);
	values[5] = Int64GetDatum(rl_shared->refused_full);
	SpinLockRelease(&rl_shared->mutex);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
