/*-------------------------------------------------------------------------
 *
 * credits.c
 *	  The lazy refill rule, shared by verification, listings and the batch.
 *
 * Unkey refills from a cron job at 00:00 UTC: daily, or monthly on
 * refill_day clamped to the month's last day, setting remaining to the
 * refill amount when it is lower.  We apply the same rule lazily: a
 * boundary has passed if the latest boundary at or before "now" is after
 * last_refill_at.  Since nothing changes remaining between two of our own
 * reads, the state at that boundary is the state we see, so refilling at
 * the first read after it gives exactly the cron's answer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "credits.h"

/* The latest refill boundary at or before now, in UTC */
static TimestampTz
RefillBoundary(bool day_isnull, int32 refill_day, TimestampTz now)
{
	struct pg_tm tm;
	fsec_t		fsec;
	TimestampTz boundary;

	if (timestamp2tm(now, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	tm.tm_hour = tm.tm_min = tm.tm_sec = 0;

	if (!day_isnull)
	{
		int			last = day_tab[isleap(tm.tm_year)][tm.tm_mon - 1];
		int			day = Min(refill_day, last);

		if (day > tm.tm_mday)
		{
			/* this month's boundary is still ahead: use last month's */
			if (--tm.tm_mon == 0)
			{
				tm.tm_mon = 12;
				tm.tm_year--;
			}
			last = day_tab[isleap(tm.tm_year)][tm.tm_mon - 1];
			day = Min(refill_day, last);
		}
		tm.tm_mday = day;
	}

	if (tm2timestamp(&tm, 0, NULL, &boundary) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	return boundary;
}

/* Has a refill boundary passed since the last refill? */
bool
UnkeyRefillDue(bool last_isnull, TimestampTz last_refill,
			   bool day_isnull, int32 refill_day, TimestampTz now)
{
	return last_isnull || last_refill < RefillBoundary(day_isnull, refill_day, now);
}

PG_FUNCTION_INFO_V1(unkey_refill_due);

/*
 * unkey._refill_due(last_refill_at, refill_day, now) returns boolean
 *
 * refill_day NULL means daily.  Exposed to SQL so that the deduction
 * UPDATE, the batch refill and the listings use the C rule above.
 */
Datum
unkey_refill_due(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(2))
		PG_RETURN_NULL();
	PG_RETURN_BOOL(UnkeyRefillDue(PG_ARGISNULL(0),
								  PG_ARGISNULL(0) ? 0 : PG_GETARG_TIMESTAMPTZ(0),
								  PG_ARGISNULL(1),
								  PG_ARGISNULL(1) ? 0 : PG_GETARG_INT32(1),
								  PG_GETARG_TIMESTAMPTZ(2)));
}

/* remaining after any refill that is due: the balance a caller can spend */
int64
UnkeyCreditsNow(int64 remaining, bool amount_isnull, int64 refill_amount,
				bool last_isnull, TimestampTz last_refill,
				bool day_isnull, int32 refill_day, TimestampTz now)
{
	if (!amount_isnull && remaining < refill_amount &&
		UnkeyRefillDue(last_isnull, last_refill, day_isnull, refill_day, now))
		return refill_amount;
	return remaining;
}

PG_FUNCTION_INFO_V1(unkey_credits_now);

/*
 * unkey._credits_now(remaining, refill_amount, refill_day, last_refill_at, now)
 *
 * NULL remaining means unlimited and stays NULL.
 */
Datum
unkey_credits_now(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(4))
		PG_RETURN_NULL();
	PG_RETURN_INT64(UnkeyCreditsNow(PG_GETARG_INT64(0),
									PG_ARGISNULL(1),
									PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
									PG_ARGISNULL(3),
									PG_ARGISNULL(3) ? 0 : PG_GETARG_TIMESTAMPTZ(3),
									PG_ARGISNULL(2),
									PG_ARGISNULL(2) ? 0 : PG_GETARG_INT32(2),
									PG_GETARG_TIMESTAMPTZ(4)));
}

/* The first refill boundary after now: the boundary at or before a day that moves forward passes now within 32 days */
TimestampTz
UnkeyNextRefill(bool day_isnull, int32 refill_day, TimestampTz now)
{
	TimestampTz t = now;

	for (int i = 0; i < 32; i++)
	{
		TimestampTz b;

		t += USECS_PER_DAY;
		b = RefillBoundary(day_isnull, refill_day, t);
		if (b > now)
			return b;
	}
	elog(ERROR, "unkey: no refill boundary within 32 days");
	return now;
}
