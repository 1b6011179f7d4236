/*
 * bench_stats.h — the latency histogram of keel's load generators (keelbench and the
 * drivers for other systems that share its workload model).
 *
 * Contract:
 *  - struct bench_hist is an HDR-style log-linear histogram of u64 values (keelbench
 *    records nanoseconds). Values below BENCH_HIST_SUB_COUNT * 2 land in buckets of width
 *    one (exact); above that, every power-of-two range [2^m, 2^(m+1)) is cut into
 *    BENCH_HIST_SUB_COUNT equal buckets, so a bucket is at most 1/128 of its lower bound
 *    wide. The whole u64 range is covered: nothing is clamped or dropped.
 *  - A percentile is the midpoint of the bucket holding the value of that rank, clamped to
 *    [min, max]: its relative error against the exact order statistic is below 1/256
 *    (under 0.4%, the issue asks for < 1%). The 100th percentile and the max are exact.
 *  - The struct is fixed-size (about 58 KiB): record and merge never allocate, so a
 *    generator can record on its request path. One writer at a time; merge threads'
 *    histograms after they stop.
 */
#ifndef KEEL_PERF_BENCH_STATS_H
#define KEEL_PERF_BENCH_STATS_H

#include "core/types.h"

#define BENCH_HIST_SUB_BITS  7u
#define BENCH_HIST_SUB_COUNT (1u << BENCH_HIST_SUB_BITS) /* buckets per power of two */
/* Octave 0 holds values 0..127 exactly; octave o >= 1 holds [2^(o+6), 2^(o+7)). */
#define BENCH_HIST_OCTAVES (64u - BENCH_HIST_SUB_BITS + 1u)
#define BENCH_HIST_BUCKETS (BENCH_HIST_SUB_COUNT * BENCH_HIST_OCTAVES)

struct bench_hist {
    u64 count;  /* values recorded */
    u64 min;    /* UINT64_MAX while empty */
    u64 max;    /* 0 while empty */
    double sum; /* for the mean; a double so that it never overflows */
    u64 buckets[BENCH_HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, u64 value);
/* Adds every value of from into into (from is unchanged). */
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from);
/* The value at percentile (0 .. 100): the smallest bucket value whose cumulative count
 * reaches ceil(percentile / 100 * count) (at least 1). 0 when the histogram is empty. */
u64 bench_hist_percentile(const struct bench_hist *h, double percentile);
/* The mean, 0 when empty. */
double bench_hist_mean(const struct bench_hist *h);

/* Bucket arithmetic, exposed for the tests: the bucket of a value, and a bucket's lowest
 * value and width. */
u32 bench_hist_bucket(u64 value);
u64 bench_hist_bucket_low(u32 bucket);
u64 bench_hist_bucket_width(u32 bucket);

#endif
