/*
 * test_checksum.c — XXH3-64 against published answers, the streaming form
 * against the one-shot form over random splits, seeds, and single bit flips.
 *
 * Randomized tests take KEEL_SEED from the environment (else a fresh seed)
 * and print the seed they use.
 */
#include "core/checksum.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PRIME32 2654435761ull
#define PRIME64 0x9E3779B185EBCA8Dull

static u64 rng_state;

static u64 rng_next(void)
{
    u64 z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(const char *test)
{
    const char *env = getenv("KEEL_SEED");
    u64 seed = env ? strtoull(env, NULL, 0) : (u64)time(NULL) ^ ((u64)getpid() << 32);
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
    rng_state = seed;
}

static void fill_random(u8 *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (u8)rng_next();
}

/* ---- known answers ------------------------------------------------------ */

/* LLVM's xxh3 vectors (llvm/unittests/Support/xxhashTest.cpp): a xorshift
 * buffer, hashed at lengths that cross every XXH3 code path. */
Test(checksum, known_answers_unseeded)
{
    static const struct {
        size_t len;
        u64 want;
    } v[] = {
        {0, 0x2d06800538d394c2ull},    {1, 0xd0d496e05c553485ull},    {2, 0x84d625edb7055eacull},
        {3, 0x6ea2d59aca5c3778ull},    {4, 0xbf65290914e80242ull},    {8, 0xabc1413da6cd0209ull},
        {9, 0x8bc89400bfed51f6ull},    {16, 0x7e46916754d7c9b8ull},   {17, 0xed4be912ba5f836dull},
        {64, 0xfa5271fcce0db1c3ull},   {128, 0x06a146ee9a2da378ull},  {129, 0xbc7138129bf065daull},
        {403, 0xcefeb3ffa532ad8cull},  {512, 0xcdfa6b6268e3650full},  {2048, 0x330ce110cbb79eaeull},
        {2049, 0x3ba6afa0249fef9aull}, {2240, 0xd61d4d2a94e926a8ull}, {2243, 0x0979f786a24edde7ull},
    };
    static u8 a[2243];
    u64 x = 1;
    for (size_t i = 0; i < sizeof(a); i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        a[i] = (u8)x;
    }
    cr_assert_eq(checksum64(NULL, 0), 0x2D06800538D394C2ull, "XXH3-64 of the empty input");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(v); i++) {
        u64 got = checksum64(a, v[i].len);
        cr_assert_eq(got, v[i].want, "len %zu: %016llx, want %016llx", v[i].len,
                     (unsigned long long)got, (unsigned long long)v[i].want);
        cr_assert_eq(checksum64_seeded(a, v[i].len, 0), v[i].want, "seed 0 is XXH3's default");
    }
}

/* xxHash's own sanity vectors (cli/xsum_sanity_check.c, XSUM_XXH3_testdata). */
Test(checksum, known_answers_seeded)
{
    static const struct {
        size_t len;
        u64 seed;
        u64 want;
    } v[] = {
        {0, PRIME64, 0xA8A6B918B2F0364Aull},   {1, 0, 0xC44BDFF4074EECDBull},
        {1, PRIME64, 0x032BE332DD766EF8ull},   {6, 0, 0x27B56A84CD2D7325ull},
        {6, PRIME64, 0x84589C116AB59AB9ull},   {12, PRIME64, 0xE7303E1B2336DE0Eull},
        {24, PRIME64, 0x850E80FC35BDD690ull},  {48, PRIME64, 0xADC2CBAA44ACC616ull},
        {80, PRIME64, 0xC6DD0CB699532E73ull},  {195, 0, 0xCD94217EE362EC3Aull},
        {195, PRIME64, 0xBA68003D370CB3D9ull},
    };
    u8 buf[195];
    u64 gen = PRIME32;
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (u8)(gen >> 56);
        gen *= PRIME64;
    }
    for (size_t i = 0; i < KEEL_ARRAY_LEN(v); i++) {
        u64 got = checksum64_seeded(buf, v[i].len, v[i].seed);
        cr_assert_eq(got, v[i].want, "len %zu seed %llx: %016llx", v[i].len,
                     (unsigned long long)v[i].seed, (unsigned long long)got);
        if (v[i].seed == 0) cr_assert_eq(checksum64(buf, v[i].len), v[i].want);
    }
}

/* ---- streaming ---------------------------------------------------------- */

Test(checksum, streaming_equals_one_shot_over_random_splits)
{
    rng_seed("checksum::streaming_equals_one_shot_over_random_splits");
    static u8 data[9000];
    fill_random(data, sizeof(data));
    static const size_t lens[] = {0,   1,   3,    16,   17,   128,  129,  240,  241, 255,
                                  256, 257, 1023, 1024, 1025, 4095, 4096, 8999, 9000};
    for (size_t li = 0; li < KEEL_ARRAY_LEN(lens); li++) {
        size_t len = lens[li];
        u64 want = checksum64(data, len);
        for (int trial = 0; trial < 20; trial++) {
            struct checksum_stream s;
            checksum_stream_init(&s);
            size_t pos = 0, pieces = 0;
            while (pos < len) { /* at most len pieces */
                size_t cap = (trial % 4 == 0) ? 1 : (trial % 4 == 1) ? 64 : 700;
                size_t n = 1 + rng_next() % KEEL_MIN(cap, len - pos);
                if (rng_next() % 5 == 0) checksum_stream_update(&s, data + pos, 0);
                checksum_stream_update(&s, data + pos, n);
                pos += n;
                pieces++;
            }
            cr_assert_eq(checksum_stream_digest(&s), want, "len %zu in %zu pieces", len, pieces);
        }
    }
}

Test(checksum, stream_digest_is_repeatable_and_updates_continue)
{
    u8 data[3000];
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (u8)(i * 131 + 7);
    struct checksum_stream s;
    checksum_stream_init(&s);
    cr_assert_eq(checksum_stream_digest(&s), checksum64(NULL, 0), "empty stream");
    checksum_stream_update(&s, data, 1000);
    u64 d1 = checksum_stream_digest(&s);
    cr_assert_eq(d1, checksum64(data, 1000));
    cr_assert_eq(checksum_stream_digest(&s), d1, "digest must not change the state");
    checksum_stream_update(&s, data + 1000, 2000);
    cr_assert_eq(checksum_stream_digest(&s), checksum64(data, 3000));
    checksum_stream_init(&s); /* init resets */
    checksum_stream_update(&s, data, 10);
    cr_assert_eq(checksum_stream_digest(&s), checksum64(data, 10));
}

/* ---- sensitivity -------------------------------------------------------- */

Test(checksum, seeded_differs_from_unseeded_and_between_seeds)
{
    rng_seed("checksum::seeded_differs_from_unseeded_and_between_seeds");
    static u8 data[5000];
    fill_random(data, sizeof(data));
    static const size_t lens[] = {0, 1, 7, 64, 200, 1000, 5000};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(lens); i++) {
        u64 plain = checksum64(data, lens[i]);
        u64 s1 = checksum64_seeded(data, lens[i], 1);
        u64 s2 = checksum64_seeded(data, lens[i], 2);
        u64 big = checksum64_seeded(data, lens[i], UINT64_MAX);
        cr_assert_neq(plain, s1, "len %zu", lens[i]);
        cr_assert_neq(s1, s2, "len %zu", lens[i]);
        cr_assert_neq(plain, big, "len %zu", lens[i]);
        cr_assert_eq(s1, checksum64_seeded(data, lens[i], 1), "deterministic");
    }
}

Test(checksum, single_bit_flip_changes_the_checksum)
{
    rng_seed("checksum::single_bit_flip_changes_the_checksum");
    static u8 data[4096];
    fill_random(data, sizeof(data));
    static const size_t lens[] = {1, 8, 33, 129, 240, 241, 4096};
    for (size_t li = 0; li < KEEL_ARRAY_LEN(lens); li++) {
        size_t len = lens[li];
        u64 want = checksum64(data, len);
        size_t bits = len * 8;
        size_t step = bits <= 2048 ? 1 : 7; /* every bit of short inputs, a sample of long */
        for (size_t bit = 0; bit < bits; bit += step) {
            data[bit / 8] ^= (u8)(1u << (bit % 8));
            u64 got = checksum64(data, len);
            data[bit / 8] ^= (u8)(1u << (bit % 8));
            cr_assert_neq(got, want, "flipping bit %zu of %zu bytes went unnoticed", bit, len);
        }
        cr_assert_eq(checksum64(data, len), want, "the data was restored");
    }
}

Test(checksum, length_is_part_of_the_checksum)
{
    u8 zeros[256];
    memset(zeros, 0, sizeof(zeros));
    u64 prev = checksum64(zeros, 0);
    for (size_t n = 1; n <= sizeof(zeros); n++) {
        u64 cur = checksum64(zeros, n);
        cr_assert_neq(cur, prev, "%zu and %zu zero bytes collide", n - 1, n);
        prev = cur;
    }
}
