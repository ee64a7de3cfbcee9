/*-------------------------------------------------------------------------
 *
 * analytics.c
 *	  Latency histograms for the verification rollups.
 *
 * A rollup row keeps its latencies as UNKEY_HIST_BUCKETS counts: bucket 0
 * holds latencies under 1 microsecond, bucket b (1..) those in
 * [2^(b-1), 2^b) microseconds, and the last bucket everything above.  Two
 * histograms add bucket by bucket, so rollups of any size merge exactly;
 * a quantile is read from the cumulative counts and interpolated linearly
 * inside its bucket, so it is within a factor of two of the true value.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#define UNKEY_HIST_BUCKETS 32

/* The bucket of a latency in milliseconds */
static int
HistBucket(double ms)
{
	double		us = ms * 1000.0;
	int			b;

	if (!(us >= 1.0))			/* also NaN */
		return 0;
	b = (int) floor(log2(us)) + 1;
	return Min(b, UNKEY_HIST_BUCKETS - 1);
}

/* The counts of a histogram argument, zeros for NULL or a wrong shape */
static void
HistRead(ArrayType *a, int64 *counts)
{
	Datum	   *d;
	bool	   *nulls;
	int			n;

	memset(counts, 0, sizeof(int64) * UNKEY_HIST_BUCKETS);
	if (a == NULL)
		return;
	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, &n);
	for (int i = 0; i < n && i < UNKEY_HIST_BUCKETS; i++)
		if (!nulls[i])
			counts[i] = DatumGetInt64(d[i]);
}

/* A histogram as bigint[] */
static ArrayType *
HistMake(const int64 *counts)
{
	Datum		d[UNKEY_HIST_BUCKETS];

	for (int i = 0; i < UNKEY_HIST_BUCKETS; i++)
		d[i] = Int64GetDatum(counts[i]);
	return construct_array(d, UNKEY_HIST_BUCKETS, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

PG_FUNCTION_INFO_V1(unkey_latency_hist);

/* unkey._latency_hist(latencies float8[]): the histogram of some latencies (ms) */
Datum
unkey_latency_hist(PG_FUNCTION_ARGS)
{
	int64		counts[UNKEY_HIST_BUCKETS] = {0};
	Datum	   *d;
	bool	   *nulls;
	int			n;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &d, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			counts[HistBucket(DatumGetFloat8(d[i]))]++;
	PG_RETURN_ARRAYTYPE_P(HistMake(counts));
}

PG_FUNCTION_INFO_V1(unkey_hist_add);

/* unkey._hist_add(a, b): two histograms merged; also the state function of unkey.latency_hist_sum */
Datum
unkey_hist_add(PG_FUNCTION_ARGS)
{
	int64		a[UNKEY_HIST_BUCKETS];
	int64		b[UNKEY_HIST_BUCKETS];

	HistRead(PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0), a);
	HistRead(PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1), b);
	for (int i = 0; i < UNKEY_HIST_BUCKETS; i++)
		a[i] += b[i];
	PG_RETURN_ARRAYTYPE_P(HistMake(a));
}

PG_FUNCTION_INFO_V1(unkey_hist_quantile);

/* unkey.latency_quantile(hist, q): the q-quantile (0..1) of a histogram, in ms; NULL if empty */
Datum
unkey_hist_quantile(PG_FUNCTION_ARGS)
{
	int64		c[UNKEY_HIST_BUCKETS];
	double		q = PG_GETARG_FLOAT8(1);
	int64		total = 0;
	double		rank;
	double		before = 0;

	if (!(q >= 0.0 && q <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantile must be between 0 and 1"),
				 errhint("Pass a quantile such as 0.5 or 0.99.")));
	HistRead(PG_GETARG_ARRAYTYPE_P(0), c);
	for (int i = 0; i < UNKEY_HIST_BUCKETS; i++)
		total += c[i];
	if (total == 0)
		PG_RETURN_NULL();
	rank = q * total;
	for (int i = 0; i < UNKEY_HIST_BUCKETS; i++)
	{
		if (c[i] > 0 && before + c[i] >= rank)
		{
			double		lo = i == 0 ? 0.0 : ldexp(1.0, i - 1);
			double		hi = ldexp(1.0, i);

			PG_RETURN_FLOAT8((lo + (hi - lo) * (rank - before) / c[i]) / 1000.0);
		}
		before += c[i];
	}
	PG_RETURN_FLOAT8(ldexp(1.0, UNKEY_HIST_BUCKETS - 1) / 1000.0);
}
