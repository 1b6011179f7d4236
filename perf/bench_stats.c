/*
 * bench_stats.c — the log-linear latency histogram (bench_stats.h states the contract).
 */
#include "perf/bench_stats.h"

#include "core/assert.h"

#include <math.h>
#include <string.h>

static_assert(BENCH_HIST_BUCKETS == 128u * 58u, "128 sub-buckets for octaves 0..57");

u32 bench_hist_bucket(u64 value)
{
    if (value < 2u * BENCH_HIST_SUB_COUNT) return (u32)value; /* octaves 0 and 1: width 1 */
    u32 msb = 63u - (u32)__builtin_clzll(value);              /* >= 8 */
    u32 octave = msb - BENCH_HIST_SUB_BITS + 1u;              /* value in [2^msb, 2^(msb+1)) */
    u32 sub = (u32)(value >> (msb - BENCH_HIST_SUB_BITS)) & (BENCH_HIST_SUB_COUNT - 1u);
    u32 bucket = octave * BENCH_HIST_SUB_COUNT + sub;
    ASSERT(bucket < BENCH_HIST_BUCKETS);
    return bucket;
}

u64 bench_hist_bucket_low(u32 bucket)
{
    ASSERT(bucket < BENCH_HIST_BUCKETS);
    u32 octave = bucket / BENCH_HIST_SUB_COUNT;
    u64 sub = bucket % BENCH_HIST_SUB_COUNT;
    if (octave == 0) return sub;
    return (BENCH_HIST_SUB_COUNT + sub) << (octave - 1u);
}

u64 bench_hist_bucket_width(u32 bucket)
{
    ASSERT(bucket < BENCH_HIST_BUCKETS);
    u32 octave = bucket / BENCH_HIST_SUB_COUNT;
    return octave == 0 ? 1u : (u64)1 << (octave - 1u);
}

void bench_hist_init(struct bench_hist *h)
{
    ASSERT(h != NULL);
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void bench_hist_record(struct bench_hist *h, u64 value)
{
    u32 b = bench_hist_bucket(value);
    DEBUG_ASSERT(value >= bench_hist_bucket_low(b));
    DEBUG_ASSERT(value - bench_hist_bucket_low(b) < bench_hist_bucket_width(b));
    h->buckets[b]++;
    h->count++;
    h->sum += (double)value;
    if (value < h->min) h->min = value;
    if (value > h->max) h->max = value;
}

void bench_hist_merge(struct bench_hist *into, const struct bench_hist *from)
{
    ASSERT(into != NULL && from != NULL);
    ASSERT(into != from);
    u64 count_before = into->count;
    for (u32 b = 0; b < BENCH_HIST_BUCKETS; b++) into->buckets[b] += from->buckets[b];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
    ASSERT(into->count >= count_before);
}

u64 bench_hist_percentile(const struct bench_hist *h, double percentile)
{
    ASSERT(h != NULL);
    ASSERT(percentile >= 0.0 && percentile <= 100.0);
    if (h->count == 0) return 0;
    if (percentile >= 100.0) return h->max;
    u64 rank = (u64)ceil(percentile / 100.0 * (double)h->count);
    if (rank < 1) rank = 1;
    if (rank > h->count) rank = h->count;
    u64 seen = 0;
    for (u32 b = 0; b < BENCH_HIST_BUCKETS; b++) {
        seen += h->buckets[b];
        if (seen < rank) continue;
        u64 mid = bench_hist_bucket_low(b) + (bench_hist_bucket_width(b) - 1u) / 2u;
        if (mid < h->min) mid = h->min;
        if (mid > h->max) mid = h->max;
        return mid;
    }
    UNREACHABLE(); /* the buckets sum to count */
}

double bench_hist_mean(const struct bench_hist *h)
{
    ASSERT(h != NULL);
    return h->count == 0 ? 0.0 : h->sum / (double)h->count;
}
