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
 * Stored form (0.3.0): a bytea holding the index of the first non-empty
 * bucket in one byte, then the counts from there to the last non-empty
 * bucket, each 8 bytes little-endian; no bytes at all for no latency.  A
 * rollup of one event costs 9 bytes instead of the 280 of the bigint[32]
 * that 0.2.0 stored; its functions (bigint[]) stay for 0.2.0's SQL until
 * ALTER EXTENSION UPDATE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "analytics.h"

/* The bucket of a latency in milliseconds */
int
UnkeyHistBucket(double ms)
{
	double		us = ms * 1000.0;
	int			b;

	if (!(us >= 1.0))			/* also NaN */
		return 0;
	if (us >= ldexp(1.0, UNKEY_HIST_BUCKETS - 2))	/* also infinity: log2 would not fit an int */
		return UNKEY_HIST_BUCKETS - 1;
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
			counts[UnkeyHistBucket(DatumGetFloat8(d[i]))]++;
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

/* The q-quantile (0..1) of counts[] in ms, interpolated in its bucket; false if empty */
static bool
HistQuantile(const int64 *c, double q, double *ms)
{
	int64		total = 0;
	double		rank;
	double		before = 0;

	if (!(q >= 0.0 && q <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quantile must be between 0 and 1"),
				 errhint("Pass a quantile such as 0.5 or 0.99.")));
	for (int i = 0; i < UNKEY_HIST_BUCKETS; i++)
		total += c[i];
	if (total == 0)
		return false;
	rank = q * total;
	for (int i = 0; i < UNKEY_HIST_BUCKETS; i++)
	{
		if (c[i] > 0 && before + c[i] >= rank)
		{
			double		lo = i == 0 ? 0.0 : ldexp(1.0, i - 1);
			double		hi = ldexp(1.0, i);

			*ms = (lo + (hi - lo) * (rank - before) / c[i]) / 1000.0;
			return true;
		}
		before += c[i];
	}
	*ms = ldexp(1.0, UNKEY_HIST_BUCKETS - 1) / 1000.0;
	return true;
}

PG_FUNCTION_INFO_V1(unkey_hist_quantile);

/* unkey._latency_quantile(hist bigint[], q) (0.2.0): the q-quantile (0..1) of a histogram, in ms; NULL if empty */
Datum
unkey_hist_quantile(PG_FUNCTION_ARGS)
{
	int64		c[UNKEY_HIST_BUCKETS];
	double		ms;

	HistRead(PG_GETARG_ARRAYTYPE_P(0), c);
	if (!HistQuantile(c, PG_GETARG_FLOAT8(1), &ms))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(ms);
}

/* The stored form of counts[] */
bytea *
UnkeyHistEncode(const int64 *counts)
{
	int			lo = 0;
	int			hi = UNKEY_HIST_BUCKETS - 1;
	bytea	   *h;
	unsigned char *p;

	while (lo <= hi && counts[lo] == 0)
		lo++;
	while (hi >= lo && counts[hi] == 0)
		hi--;
	h = palloc(VARHDRSZ + (lo <= hi ? 1 + 8 * (hi - lo + 1) : 0));
	SET_VARSIZE(h, VARHDRSZ + (lo <= hi ? 1 + 8 * (hi - lo + 1) : 0));
	if (lo > hi)
		return h;
	p = (unsigned char *) VARDATA(h);
	*p++ = (unsigned char) lo;
	for (int b = lo; b <= hi; b++)
		for (int byte = 0; byte < 8; byte++)
			*p++ = (unsigned char) ((uint64) counts[b] >> (8 * byte));
	return h;
}

/* Add a stored histogram to counts[]; a malformed one is an error, never a guess */
void
UnkeyHistDecodeAdd(const bytea *h, int64 *counts)
{
	const unsigned char *p;
	int			len;
	int			lo;

	if (h == NULL)
		return;
	p = (const unsigned char *) VARDATA_ANY(h);
	len = VARSIZE_ANY_EXHDR(h);
	if (len == 0)
		return;
	lo = p[0];
	if ((len - 1) % 8 != 0 || lo + (len - 1) / 8 > UNKEY_HIST_BUCKETS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("malformed latency histogram of %d bytes", len)));
	p++;
	for (int b = lo; b < lo + (len - 1) / 8; b++)
	{
		uint64		c = 0;

		for (int byte = 0; byte < 8; byte++)
			c |= (uint64) p[byte] << (8 * byte);
		counts[b] += (int64) c;
		p += 8;
	}
}

PG_FUNCTION_INFO_V1(unkey_hist_of);

/* unkey._latency_hist(latencies float8[]) (0.3.0): the stored histogram of some latencies (ms) */
Datum
unkey_hist_of(PG_FUNCTION_ARGS)
{
	int64		counts[UNKEY_HIST_BUCKETS] = {0};
	Datum	   *d;
	bool	   *nulls;
	int			n;

	deconstruct_array(PG_GETARG_ARRAYTYPE_P(0), FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &d, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			counts[UnkeyHistBucket(DatumGetFloat8(d[i]))]++;
	PG_RETURN_BYTEA_P(UnkeyHistEncode(counts));
}

PG_FUNCTION_INFO_V1(unkey_hist_merge);

/* unkey._hist_add(a bytea, b bytea) (0.3.0): two stored histograms merged; the state function of _latency_hist_sum */
Datum
unkey_hist_merge(PG_FUNCTION_ARGS)
{
	int64		counts[UNKEY_HIST_BUCKETS] = {0};

	UnkeyHistDecodeAdd(PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_PP(0), counts);
	UnkeyHistDecodeAdd(PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_PP(1), counts);
	PG_RETURN_BYTEA_P(UnkeyHistEncode(counts));
}

PG_FUNCTION_INFO_V1(unkey_hist_quantile_stored);

/* unkey._latency_quantile(hist bytea, q) (0.3.0): the q-quantile in ms; NULL if empty */
Datum
unkey_hist_quantile_stored(PG_FUNCTION_ARGS)
{
	int64		counts[UNKEY_HIST_BUCKETS] = {0};
	double		ms;

	UnkeyHistDecodeAdd(PG_GETARG_BYTEA_PP(0), counts);
	if (!HistQuantile(counts, PG_GETARG_FLOAT8(1), &ms))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(ms);
}

PG_FUNCTION_INFO_V1(unkey_hist_from_counts);

/* unkey._hist_from_counts(bigint[]): 0.2.0's histogram in the stored form (the upgrade uses it) */
Datum
unkey_hist_from_counts(PG_FUNCTION_ARGS)
{
	int64		counts[UNKEY_HIST_BUCKETS];

	HistRead(PG_GETARG_ARRAYTYPE_P(0), counts);
	PG_RETURN_BYTEA_P(UnkeyHistEncode(counts));
}

PG_FUNCTION_INFO_V1(unkey_hist_subtract);

/* unkey._hist_sub(a, b): the latencies of histogram a beyond those of b, a part of it (NULL b: none) */
Datum
unkey_hist_subtract(PG_FUNCTION_ARGS)
{
	int64		a[UNKEY_HIST_BUCKETS] = {0};
	int64		b[UNKEY_HIST_BUCKETS] = {0};

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	UnkeyHistDecodeAdd(PG_GETARG_BYTEA_PP(0), a);
	UnkeyHistDecodeAdd(PG_ARGISNULL(1) ? NULL : PG_GETARG_BYTEA_PP(1), b);
	for (int i = 0; i < UNKEY_HIST_BUCKETS; i++)
		a[i] = Max(a[i] - b[i], 0);
	PG_RETURN_BYTEA_P(UnkeyHistEncode(a));
}
