/*
 * test_rng.h — the seeded generator of the randomized unit tests: splitmix64, seeded from
 * KEEL_SEED or from the clock, and the seed printed as "<test>: KEEL_SEED=<n>" so that a failing
 * run reproduces with that variable. One generator per test binary (Criterion runs each test in
 * its own process). Header-only; tests/ only.
 */
#ifndef KEEL_TESTS_UNIT_TEST_RNG_H
#define KEEL_TESTS_UNIT_TEST_RNG_H

#include "core/types.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static u64 rng_state;

static inline u64 rng_next(void)
{
    u64 z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline u64 rng_below(u64 n)
{
    return rng_next() % n;
}

static inline void rng_seed(const char *test)
{
    const char *env = getenv("KEEL_SEED");
    u64 seed = env ? strtoull(env, NULL, 0) : (u64)time(NULL) ^ ((u64)getpid() << 32);
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
    rng_state = seed;
}

#endif
