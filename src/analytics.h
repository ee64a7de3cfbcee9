/*-------------------------------------------------------------------------
 *
 * analytics.h
 *	  Latency histograms (analytics.c): counts per power-of-two bucket of
 *	  microseconds, stored in the rollups as a compact bytea.
 *
 *-------------------------------------------------------------------------
 */
#ifndef UNKEY_ANALYTICS_H
#define UNKEY_ANALYTICS_H

#include "postgres.h"

#define UNKEY_HIST_BUCKETS 32

/* The bucket of a latency in milliseconds */
extern int	UnkeyHistBucket(double ms);

/* counts[] as the stored form: the first non-empty bucket, then the counts up to the last one */
extern bytea *UnkeyHistEncode(const int64 *counts);

/* Add a stored histogram (NULL: nothing) to counts[] */
extern void UnkeyHistDecodeAdd(const bytea *h, int64 *counts);

#endif							/* UNKEY_ANALYTICS_H */
