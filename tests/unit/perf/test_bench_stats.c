/*
 * test_bench_stats.c — perf/bench_stats.h: bucket arithmetic, percentiles of known
 * distributions within the promised relative error, merge, min/max/mean.
 * Randomized tests print their seed and take KEEL_SEED.
 */
#include "perf/bench_stats.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static u64 seed_get(void)
{
    const char *s = getenv("KEEL_SEED");
    u64 seed = s != NULL ? strtoull(s, NULL, 0) : 0x6b65656c62656e63ull;
    fprintf(stderr, "test_bench_stats: KEEL_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}

static u64 rng_next(u64 *s)
{
    u64 z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int u64_cmp(const void *a, const void *b)
{
    u64 x = *(const u64 *)a, y = *(const u64 *)b;
    return x < y ? -1 : x > y;
}

/* The exact order statistic with the histogram's rank rule. */
static u64 exact_percentile(const u64 *sorted, u64 n, double p)
{
    u64 rank = (u64)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return sorted[rank - 1];
}

static struct bench_hist *hist_new(void)
{
    struct bench_hist *h = malloc(sizeof(*h));
    cr_assert_not_null(h);
    bench_hist_init(h);
    return h;
}

static void check_percentiles(const struct bench_hist *h, u64 *values, u64 n)
{
    static const double ps[] = {0.0, 1.0, 10.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0};
    qsort(values, n, sizeof(values[0]), u64_cmp);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        u64 want = exact_percentile(values, n, ps[i]);
        u64 got = bench_hist_percentile(h, ps[i]);
        double err = fabs((double)got - (double)want) / (double)(want > 0 ? want : 1);
        cr_assert(err < 0.01, "p%g: got %llu, exact %llu (relative error %g)", ps[i],
                  (unsigned long long)got, (unsigned long long)want, err);
    }
    cr_assert_eq(bench_hist_percentile(h, 100.0), values[n - 1]);
    cr_assert_eq(h->max, values[n - 1]);
    cr_assert_eq(h->min, values[0]);
}

Test(bench_stats, buckets_tile_the_u64_range)
{
    /* Every bucket starts where the previous one ends, and values map back into them. */
    u64 next = 0;
    for (u32 b = 0; b < BENCH_HIST_BUCKETS; b++) {
        cr_assert_eq(bench_hist_bucket_low(b), next, "bucket %u", b);
        u64 w = bench_hist_bucket_width(b);
        cr_assert_eq(bench_hist_bucket(next), b);
        cr_assert_eq(bench_hist_bucket(next + (w - 1)), b);
        if (b >= 2 * BENCH_HIST_SUB_COUNT)
            cr_assert_leq(w * 128, bench_hist_bucket_low(b), "bucket %u too wide", b);
        next += w; /* wraps to 0 after the last bucket */
    }
    cr_assert_eq(next, 0);
    cr_assert_eq(bench_hist_bucket(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
}

Test(bench_stats, empty_and_single)
{
    struct bench_hist *h = hist_new();
    cr_assert_eq(bench_hist_percentile(h, 50.0), 0);
    cr_assert_eq(h->count, 0);
    bench_hist_record(h, 1234567);
    cr_assert_eq(bench_hist_percentile(h, 0.0), 1234567);
    cr_assert_eq(bench_hist_percentile(h, 50.0), 1234567, "clamped to [min, max]");
    cr_assert_eq(bench_hist_percentile(h, 100.0), 1234567);
    cr_assert_eq(h->max, 1234567);
    cr_assert_float_eq(bench_hist_mean(h), 1234567.0, 1e-6);
    free(h);
}

Test(bench_stats, uniform_1_to_10000_exact_small_values)
{
    struct bench_hist *h = hist_new();
    u64 *v = malloc(10000 * sizeof(u64));
    for (u64 i = 0; i < 10000; i++) {
        v[i] = i + 1;
        bench_hist_record(h, i + 1);
    }
    cr_assert_eq(h->count, 10000);
    check_percentiles(h, v, 10000);
    cr_assert_eq(bench_hist_percentile(h, 1.0), 100, "values below 256 are exact");
    cr_assert_float_eq(bench_hist_mean(h), 5000.5, 1e-6);
    free(v);
    free(h);
}

Test(bench_stats, lognormal_like_latencies)
{
    u64 s = seed_get();
    enum { N = 200000 };
    struct bench_hist *h = hist_new();
    u64 *v = malloc(N * sizeof(u64));
    for (u64 i = 0; i < N; i++) {
        /* 50 us .. ~50 ms, heavy right tail: exp of a sum of uniforms. */
        double x = 0;
        for (int k = 0; k < 4; k++) x += (double)(rng_next(&s) >> 11) / 9007199254740992.0;
        v[i] = (u64)(50000.0 * exp(x * 1.7)) + rng_next(&s) % 1000;
        bench_hist_record(h, v[i]);
    }
    check_percentiles(h, v, N);
    free(v);
    free(h);
}

Test(bench_stats, huge_values_are_not_clamped)
{
    struct bench_hist *h = hist_new();
    u64 v[] = {UINT64_MAX, 1ull << 63, 3, (1ull << 40) + 12345};
    for (int i = 0; i < 4; i++) bench_hist_record(h, v[i]);
    check_percentiles(h, v, 4);
    cr_assert_eq(bench_hist_percentile(h, 100.0), UINT64_MAX);
    free(h);
}

Test(bench_stats, merge_equals_recording_into_one)
{
    u64 s = seed_get() ^ 0x55;
    enum { N = 50000, PARTS = 4 };
    struct bench_hist *parts[PARTS], *all = hist_new(), *merged = hist_new();
    for (int p = 0; p < PARTS; p++) parts[p] = hist_new();
    u64 *v = malloc(N * sizeof(u64));
    for (u64 i = 0; i < N; i++) {
        v[i] = 1000 + rng_next(&s) % (10000000u * (1 + i % PARTS)); /* parts differ */
        bench_hist_record(parts[i % PARTS], v[i]);
        bench_hist_record(all, v[i]);
    }
    for (int p = 0; p < PARTS; p++) bench_hist_merge(merged, parts[p]);
    cr_assert_eq(merged->count, all->count);
    cr_assert_eq(merged->min, all->min);
    cr_assert_eq(merged->max, all->max);
    cr_assert_float_eq(merged->sum, all->sum, 1e-3 * all->sum / N);
    for (u32 b = 0; b < BENCH_HIST_BUCKETS; b++) cr_assert_eq(merged->buckets[b], all->buckets[b]);
    check_percentiles(merged, v, N);
    /* Merging an empty histogram changes nothing, min included. */
    struct bench_hist *empty = hist_new();
    bench_hist_merge(merged, empty);
    cr_assert_eq(merged->min, all->min);
    cr_assert_eq(merged->count, all->count);
    for (int p = 0; p < PARTS; p++) free(parts[p]);
    free(empty);
    free(v);
    free(all);
    free(merged);
}

Test(bench_stats, bimodal_tail)
{
    /* 99% at ~1 ms, 1% at ~100 ms: p99 is in the fast mode, p99.9 and max in the slow. */
    struct bench_hist *h = hist_new();
    enum { N = 100000 };
    u64 *v = malloc(N * sizeof(u64));
    for (u64 i = 0; i < N; i++) {
        v[i] = (i % 100 == 0) ? 100000000 + i : 1000000 + i % 977;
        bench_hist_record(h, v[i]);
    }
    check_percentiles(h, v, N);
    cr_assert_lt(bench_hist_percentile(h, 99.0), 2000000);
    cr_assert_gt(bench_hist_percentile(h, 99.9), 99000000);
    free(v);
    free(h);
}
