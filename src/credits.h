/*-------------------------------------------------------------------------
 *
 * credits.h
 *	  The lazy refill rule (credits.c), for verification.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_CREDITS_H
#define UNKEY_CREDITS_H

#include "postgres.h"

#include "datatype/timestamp.h"

extern bool UnkeyRefillDue(bool last_isnull, TimestampTz last_refill,
						   bool day_isnull, int32 refill_day, TimestampTz now);
extern int64 UnkeyCreditsNow(int64 remaining, bool amount_isnull, int64 refill_amount,
							 bool last_isnull, TimestampTz last_refill,
							 bool day_isnull, int32 refill_day, TimestampTz now);

extern TimestampTz UnkeyNextRefill(bool day_isnull, int32 refill_day, TimestampTz now);

#endif							/* UNKEY_CREDITS_H */
