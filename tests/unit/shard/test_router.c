/*
 * test_router.c — the shard map, routing and the cross-shard merge against
 * their contract in shard/router.h, checked against naive references kept in
 * this file (a linear scan over the ranges; concatenate-and-sort for merges).
 *
 * Randomized tests take KEEL_SEED from the environment and print the seed
 * they use.
 */
#include "shard/router.h"

#include "core/btree.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static u64 rng_state;

static u64 rng_next(void)
{
    u64 z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static u64 rng_below(u64 n)
{
    return rng_next() % n;
}

static void rng_seed(const char *test)
{
    const char *env = getenv("KEEL_SEED");
    u64 seed = env ? strtoull(env, NULL, 0) : (u64)time(NULL) ^ ((u64)getpid() << 32);
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
    rng_state = seed;
}

static struct span S(const char *s) {
    return span_make(s, strlen(s));
}

static const struct span ONE = {NULL, 0};            /* range_end: the key alone */
static const struct span ALL = {(const u8 *)"", 1};  /* range_end "\0": every key >= key */
static const struct span ZERO = {(const u8 *)"", 1}; /* the key "\0", the first of all */

static struct router_map map; /* 6 KiB: keep it off the stack */

/* ---- naive references -------------------------------------------------------------------- */

/* The range of key by a linear scan: the last range whose start <= key. */
static u32 naive_range(const struct router_map *m, struct span key)
{
    u32 r = 0;
    for (u32 i = 0; i + 1 < m->shard_count; i++) {
        if (btree_key_cmp(router_split(m, i), key) <= 0) r = i + 1;
    }
    return r;
}

/* Does range r hold a key in [key, end) (end as in etcd)? */
static bool naive_touches(const struct router_map *m, u32 r, struct span key, struct span end)
{
    struct span lo, hi;
    router_range_bounds(m, r, &lo, &hi);
    if (end.len == 0) return naive_range(m, key) == r;
    bool all = end.len == 1 && end.ptr[0] == 0;
    bool below_end = all || lo.len == 0 || btree_key_cmp(lo, end) < 0;
    bool above_key = hi.len == 0 || btree_key_cmp(key, hi) < 0;
    return below_end && above_key;
}

/* ---- random keys and maps ------------------------------------------------------------------ */

#define KEY_BYTES 12

/* A short key over a small alphabet, so random keys and splits often share prefixes. */
static struct span random_key(u8 *buf)
{
    static const u8 alphabet[] = {0x00, 0x01, '/', 'a', 'b', 'c', 0x7f, 0xff};
    size_t len = 1 + rng_below(KEY_BYTES - 1);
    for (size_t i = 0; i < len; i++) buf[i] = alphabet[rng_below(sizeof(alphabet))];
    return span_make(buf, len);
}

static int span_cmp(const void *a, const void *b)
{
    return btree_key_cmp(*(const struct span *)a, *(const struct span *)b);
}

/* A random valid map of n shards; split bytes live in pool. */
static void random_map(u32 n, u8 (*pool)[KEY_BYTES], bool permute)
{
    struct span splits[64];
    u16 owner[64];
    cr_assert(n <= 64);
    u32 have = 0;
    while (have + 1 < n) {
        splits[have] = random_key(pool[have]);
        have++;
        qsort(splits, have, sizeof(splits[0]), span_cmp);
        for (u32 i = 1; i < have; i++) {
            if (btree_key_cmp(splits[i - 1], splits[i]) == 0) {
                memmove(&splits[i], &splits[i + 1], (have - i - 1) * sizeof(splits[0]));
                have--;
                break;
            }
        }
    }
    for (u32 i = 0; i < n; i++) owner[i] = (u16)i;
    for (u32 i = n; permute && i > 1; i--) {
        u32 j = (u32)rng_below(i);
        u16 t = owner[i - 1];
        owner[i - 1] = owner[j];
        owner[j] = t;
    }
    cr_assert_eq(router_map_init(&map, 7, n, splits, owner), KEEL_OK);
    cr_assert(router_map_check(&map));
}

/* ---- the map -------------------------------------------------------------------------------- */

Test(router, map_init_rejects_bad_maps)
{
    struct span ok[] = {S("b"), S("d")};
    struct span unsorted[] = {S("d"), S("b")};
    struct span dup[] = {S("b"), S("b")};
    struct span empty[] = {S(""), S("b")};
    char long_key[ROUTER_SPLIT_SIZE_MAX + 2];
    memset(long_key, 'x', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = 0;
    struct span too_long[] = {S("b"), S(long_key)};
    u16 twice[] = {0, 0, 1}, out_of_range[] = {0, 1, 3}, perm[] = {2, 0, 1};
    cr_assert_eq(router_map_init(&map, 1, 3, unsorted, NULL), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 1, 3, dup, NULL), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 1, 3, empty, NULL), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 1, 3, too_long, NULL), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 1, 3, ok, twice), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 1, 3, ok, out_of_range), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 1, 0, ok, NULL), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 1, ROUTER_SHARDS_MAX + 1, ok, NULL), KEEL_EINVALID);
    cr_assert_eq(router_map_init(&map, 9, 3, ok, perm), KEEL_OK);
    cr_assert_eq(map.version, 9);
    cr_assert_eq(router_shard_of_key(&map, S("a")), 2);
    cr_assert_eq(router_shard_of_key(&map, S("b")), 0);
    cr_assert_eq(router_shard_of_key(&map, S("c")), 0);
    cr_assert_eq(router_shard_of_key(&map, S("d")), 1);
    cr_assert_eq(router_shard_of_key(&map, S("zzz")), 1);
    struct span lo, hi;
    router_range_bounds(&map, 0, &lo, &hi);
    cr_assert(lo.len == 0 && hi.len == 1 && hi.ptr[0] == 'b');
    router_range_bounds(&map, 2, &lo, &hi);
    cr_assert(lo.len == 1 && lo.ptr[0] == 'd' && hi.len == 0);
}

Test(router, one_shard_owns_everything)
{
    cr_assert_eq(router_map_init(&map, 1, 1, NULL, NULL), KEEL_OK);
    cr_assert_eq(router_shard_of_key(&map, S("\x01")), 0);
    cr_assert_eq(router_shard_of_key(&map, S("\xff\xff")), 0);
    struct router_shards s;
    cr_assert_eq(router_range_shards(&map, ZERO, ALL, &s), KEEL_OK);
    cr_assert_eq(s.count, 1);
}

Test(router, key_to_shard_at_and_around_every_split)
{
    rng_seed("router::key_to_shard_at_and_around_every_split");
    static u8 pool[64][KEY_BYTES];
    for (u32 round = 0; round < 200; round++) {
        u32 n = 1 + (u32)rng_below(24);
        random_map(n, pool, round % 2 == 1);
        for (u32 i = 0; i + 1 < n; i++) {
            struct span sp = router_split(&map, i);
            u8 around[KEY_BYTES + 1];
            memcpy(around, sp.ptr, sp.len);
            cr_assert_eq(router_range_of_key(&map, sp), i + 1, "a split belongs to its right");
            around[sp.len] = 0;                             /* split + "\0": the next key up */
            struct span up = span_make(around, sp.len + 1); /* may itself be split i + 1 */
            cr_assert_eq(router_range_of_key(&map, up), naive_range(&map, up));
            cr_assert(router_range_of_key(&map, up) >= i + 1);
            if (sp.len > 1) { /* a proper prefix sorts below */
                struct span below = span_make(sp.ptr, sp.len - 1);
                cr_assert_eq(router_range_of_key(&map, below), naive_range(&map, below));
                cr_assert(router_range_of_key(&map, below) <= i);
            }
            if (sp.ptr[sp.len - 1] > 0) { /* the last byte one less, then 0xff: just below */
                around[sp.len - 1] = (u8)(sp.ptr[sp.len - 1] - 1);
                around[sp.len] = 0xff;
                struct span b = span_make(around, sp.len + 1);
                cr_assert_eq(router_range_of_key(&map, b), naive_range(&map, b));
                cr_assert(router_range_of_key(&map, b) <= i);
            }
        }
        for (u32 k = 0; k < 200; k++) {
            u8 buf[KEY_BYTES];
            struct span key = random_key(buf);
            u32 r = naive_range(&map, key);
            cr_assert_eq(router_range_of_key(&map, key), r);
            cr_assert_eq(router_shard_of_key(&map, key), map.shard_of[r]);
        }
    }
}

Test(router, ranges_touch_the_shards_a_linear_scan_finds)
{
    rng_seed("router::ranges_touch_the_shards_a_linear_scan_finds");
    static u8 pool[64][KEY_BYTES];
    for (u32 round = 0; round < 200; round++) {
        u32 n = 1 + (u32)rng_below(16);
        random_map(n, pool, round % 3 == 0);
        for (u32 k = 0; k < 200; k++) {
            u8 b1[KEY_BYTES], b2[KEY_BYTES];
            struct span key = random_key(b1), end = random_key(b2);
            u32 kind = (u32)rng_below(4);
            if (kind == 0) end = ONE;
            if (kind == 1) end = ALL;
            struct router_shards s;
            int rc = router_range_shards(&map, key, end, &s);
            if (kind >= 2 && btree_key_cmp(end, key) <= 0 && !(end.len == 1 && end.ptr[0] == 0)) {
                cr_assert_eq(rc, KEEL_EINVALID);
                continue;
            }
            cr_assert_eq(rc, KEEL_OK);
            u32 expect = 0;
            for (u32 r = 0; r < n; r++) {
                if (!naive_touches(&map, r, key, end)) continue;
                cr_assert_eq(r, s.range_first + expect, "contiguous, in key order");
                cr_assert_eq(s.shard[expect], map.shard_of[r]);
                expect++;
            }
            cr_assert_eq(s.count, expect);
        }
    }
}

Test(router, ranges_across_fixed_shards)
{
    struct span splits[] = {S("b"), S("m"), S("t")};
    cr_assert_eq(router_map_init(&map, 1, 4, splits, NULL), KEEL_OK);
    struct router_shards s;
    cr_assert_eq(router_range_shards(&map, S("a"), S("b"), &s), KEEL_OK); /* end excluded */
    cr_assert(s.count == 1 && s.shard[0] == 0);
    cr_assert_eq(router_range_shards(&map, S("a"), span_make("b", 2), &s), KEEL_OK);
    cr_assert(s.count == 2 && s.shard[0] == 0 && s.shard[1] == 1);
    cr_assert_eq(router_range_shards(&map, S("c"), ALL, &s), KEEL_OK);
    cr_assert(s.count == 3 && s.shard[0] == 1 && s.shard[2] == 3);
    cr_assert_eq(router_range_shards(&map, S("m"), ONE, &s), KEEL_OK);
    cr_assert(s.count == 1 && s.shard[0] == 2);
    cr_assert_eq(router_range_shards(&map, S("m"), S("m"), &s), KEEL_EINVALID);
    cr_assert_eq(router_range_shards(&map, S(""), ONE, &s), KEEL_EKEY_EMPTY);
    cr_assert_eq(router_range_shards(&map, ZERO, ALL, &s), KEEL_OK); /* every key */
    cr_assert_eq(s.count, 4);
}

Test(router, multi_shard_requests_are_cross_shard)
{
    struct span splits[] = {S("m")};
    cr_assert_eq(router_map_init(&map, 1, 2, splits, NULL), KEEL_OK);
    u32 shard = 99;
    struct router_key_range same[] = {{S("a"), ONE}, {S("b"), S("c")}, {S("l"), S("m")}};
    cr_assert_eq(router_single_shard(&map, same, 3, &shard), KEEL_OK);
    cr_assert_eq(shard, 0);
    struct router_key_range two_keys[] = {{S("a"), ONE}, {S("x"), ONE}};
    cr_assert_eq(router_single_shard(&map, two_keys, 2, &shard), CODEC_S_CROSS_SHARD);
    struct router_key_range del[] = {{S("a"), S("z")}};
    cr_assert_eq(router_single_shard(&map, del, 1, &shard), CODEC_S_CROSS_SHARD);
    struct router_key_range all[] = {{S("n"), ALL}};
    cr_assert_eq(router_single_shard(&map, all, 1, &shard), KEEL_OK);
    cr_assert_eq(shard, 1);
    struct router_key_range bad[] = {{S("n"), S("a")}};
    cr_assert_eq(router_single_shard(&map, bad, 1, &shard), KEEL_EINVALID);
    cr_assert_eq(router_single_shard(&map, NULL, 0, &shard), KEEL_EINVALID);

    struct mvcc_range_req req;
    memset(&req, 0, sizeof(req));
    req.key = S("a");
    req.range_end = S("z");
    struct router_shards s;
    cr_assert_eq(router_range_plan(&map, &req, &s), KEEL_OK);
    cr_assert_eq(s.count, 2);
    req.revision = 5; /* a past revision is per shard: refused across shards */
    cr_assert_eq(router_range_plan(&map, &req, &s), CODEC_S_CROSS_SHARD);
    req.revision = 0;
    req.sort_target = MVCC_SORT_MOD;
    cr_assert_eq(router_range_plan(&map, &req, &s), CODEC_S_CROSS_SHARD);
    req.range_end = S("b"); /* one shard: anything goes */
    req.revision = 5;
    cr_assert_eq(router_range_plan(&map, &req, &s), KEEL_OK);
    cr_assert_eq(s.count, 1);
}

/* ---- the default map ------------------------------------------------------------------------ */

enum shape { SHAPE_PATH, SHAPE_HEX, SHAPE_DECIMAL, SHAPE_ASCII, SHAPE_COUNT };
static const char *const shape_names[] = {"path", "hex", "decimal", "ascii"};

static struct span shape_key(enum shape shape, char *buf, size_t cap)
{
    static const char *const res[] = {"pods",   "services", "configmaps",  "events",
                                      "leases", "secrets",  "deployments", "nodes",
                                      "jobs",   "endpoints"};
    static const char *const roots[] = {"/registry", "/config", "/locks", "/election"};
    if (shape == SHAPE_PATH) {
        const char *root = roots[rng_below(4)];
        if (strcmp(root, "/registry") == 0 || rng_below(2) == 0)
            snprintf(buf, cap, "/registry/%s/ns%llu/%llx", res[rng_below(10)],
                     (unsigned long long)rng_below(20), (unsigned long long)rng_next());
        else
            snprintf(buf, cap, "%s/%llx", root, (unsigned long long)rng_next());
    } else if (shape == SHAPE_HEX) {
        snprintf(buf, cap, "%016llx", (unsigned long long)rng_next());
    } else if (shape == SHAPE_DECIMAL) {
        snprintf(buf, cap, "%llu", (unsigned long long)(1 + rng_below(100000000)));
    } else {
        size_t len = 1 + rng_below(20);
        for (size_t i = 0; i < len; i++) buf[i] = (char)(0x20 + rng_below(0x5f));
        buf[len] = 0;
    }
    return S(buf);
}

/* How many shards of the default map for n receive keys of shape, out of 2000. */
static u32 shards_hit(u32 n, enum shape shape)
{
    cr_assert_eq(router_map_default(&map, n), KEEL_OK);
    u32 hits[ROUTER_SHARDS_MAX] = {0}, distinct = 0;
    for (u32 i = 0; i < 2000; i++) {
        char buf[64];
        hits[router_shard_of_key(&map, shape_key(shape, buf, sizeof(buf)))]++;
    }
    for (u32 s = 0; s < n; s++) distinct += hits[s] > 0;
    fprintf(stderr, "default map, %u shards, %-7s keys:", n, shape_names[shape]);
    for (u32 s = 0; s < n; s++) fprintf(stderr, " %u", hits[s]);
    fprintf(stderr, "\n");
    return distinct;
}

Test(router, default_maps_are_sound_and_deterministic)
{
    static struct router_map again;
    u32 counts[] = {1, 2, 3, 4, 5, 8, 16, 32, 64, 128, ROUTER_SHARDS_MAX};
    for (u32 i = 0; i < KEEL_ARRAY_LEN(counts); i++) {
        cr_assert_eq(router_map_default(&map, counts[i]), KEEL_OK);
        cr_assert(router_map_check(&map));
        cr_assert_eq(map.shard_count, counts[i]);
        cr_assert_eq(map.version, 1);
        cr_assert_eq(router_map_default(&again, counts[i]), KEEL_OK);
        cr_assert_eq(memcmp(&map, &again, sizeof(map)), 0, "every node computes the same map");
    }
    cr_assert_eq(router_map_default(&map, 0), KEEL_EINVALID);
    cr_assert_eq(router_map_default(&map, ROUTER_SHARDS_MAX + 1), KEEL_EINVALID);
    cr_assert_eq(router_map_default(&map, 2), KEEL_OK);
    fprintf(stderr, "default split for 2 shards: \"%.*s\"\n", (int)router_split(&map, 0).len,
            (const char *)router_split(&map, 0).ptr);
}

/* With 4 and 8 shards every shape is spread. With 2 there is one split key, a single point in
 * key order: path-like keys (all below '0') and ids (all at or above '0') occupy disjoint
 * intervals, so no one split can cut both. The default gives that split to paths (etcd's and
 * ZooKeeper's convention), which also cuts printable ASCII; ids stay on one shard. */
Test(router, default_maps_spread_typical_key_shapes)
{
    rng_seed("router::default_maps_spread_typical_key_shapes");
    u32 counts[] = {4, 8};
    for (u32 i = 0; i < KEEL_ARRAY_LEN(counts); i++) {
        for (int shape = 0; shape < SHAPE_COUNT; shape++) {
            u32 hit = shards_hit(counts[i], (enum shape)shape);
            cr_assert_gt(hit, 1, "%u shards: %s keys land on one shard", counts[i],
                         shape_names[shape]);
        }
    }
    cr_assert_gt(shards_hit(8, SHAPE_PATH), 2, "8 shards: paths get half the splits");
    cr_assert_gt(shards_hit(2, SHAPE_PATH), 1);
    cr_assert_gt(shards_hit(2, SHAPE_ASCII), 1);
    cr_assert_eq(shards_hit(2, SHAPE_HEX), 1, "one split cannot cut paths and ids");
    cr_assert_eq(shards_hit(2, SHAPE_DECIMAL), 1);
    cr_assert_gt(shards_hit(3, SHAPE_HEX), 1, "from 3 shards on, ids are cut too");
    cr_assert_gt(shards_hit(3, SHAPE_DECIMAL), 1);
    cr_assert_gt(shards_hit(3, SHAPE_PATH), 1);
}

/* ---- merge ---------------------------------------------------------------------------------- */

#define MERGE_KEYS_MAX 512

static int kv_cmp_ascend(const void *a, const void *b)
{
    return btree_key_cmp(((const struct mvcc_kv *)a)->key, ((const struct mvcc_kv *)b)->key);
}

static int kv_cmp_descend(const void *a, const void *b)
{
    return -kv_cmp_ascend(a, b);
}

Test(router, merge_matches_a_naive_merge)
{
    rng_seed("router::merge_matches_a_naive_merge");
    static u8 keybytes[MERGE_KEYS_MAX][KEY_BYTES];
    static struct mvcc_kv all[MERGE_KEYS_MAX], per[8][MERGE_KEYS_MAX], out[MERGE_KEYS_MAX];
    static struct mvcc_kv naive[MERGE_KEYS_MAX];
    for (u32 round = 0; round < 2000; round++) {
        u32 inputs = (u32)rng_below(9), total = (u32)rng_below(200);
        if (inputs == 0) total = 0;
        /* Distinct keys, each on a random input (interleaved, unlike real shards). */
        u32 n = 0;
        for (u32 i = 0; i < total; i++) {
            struct span k = random_key(keybytes[n]);
            bool dup = false;
            for (u32 j = 0; j < n && !dup; j++) dup = btree_key_cmp(all[j].key, k) == 0;
            if (dup) continue;
            memset(&all[n], 0, sizeof(all[n]));
            all[n].key = k;
            all[n].mod_revision = (i64)n;
            n++;
        }
        enum mvcc_sort_order order = (enum mvcc_sort_order)rng_below(3);
        bool descend = order == MVCC_SORT_DESCEND;
        qsort(all, n, sizeof(all[0]), descend ? kv_cmp_descend : kv_cmp_ascend);
        struct router_merge_input in[8];
        memset(in, 0, sizeof(in));
        size_t lens[8] = {0};
        for (u32 i = 0; i < n; i++) {
            u32 to = (u32)rng_below(inputs);
            per[to][lens[to]++] = all[i];
        }
        i64 count = 0;
        bool any_more = false;
        for (u32 i = 0; i < inputs; i++) {
            in[i].kvs = per[i];
            in[i].kvs_len = lens[i];
            in[i].count = (i64)lens[i] + (i64)rng_below(3);
            in[i].more = rng_below(8) == 0;
            count += in[i].count;
            any_more |= in[i].more;
        }
        i64 limit = rng_below(3) == 0 ? 0 : (i64)rng_below(n + 5);
        struct router_merge_result res;
        cr_assert_eq(router_merge(in, inputs, limit, order, out, MERGE_KEYS_MAX, &res), KEEL_OK);
        /* The naive merge: everything, sorted, cut at the limit. */
        memcpy(naive, all, n * sizeof(all[0]));
        size_t want = (limit > 0 && (size_t)limit < n) ? (size_t)limit : n;
        cr_assert_eq(res.kvs_len, want);
        cr_assert_eq(res.count, count);
        cr_assert_eq(res.more, any_more || want < n);
        for (size_t i = 0; i < want; i++) {
            cr_assert_eq(btree_key_cmp(out[i].key, naive[i].key), 0, "round %u kv %zu", round, i);
            cr_assert_eq(out[i].mod_revision, naive[i].mod_revision);
        }
    }
}

Test(router, merge_refuses_bad_arguments)
{
    struct mvcc_kv kvs[2] = {{.key = {(const u8 *)"a", 1}}, {.key = {(const u8 *)"b", 1}}};
    struct router_merge_input in = {kvs, 2, 2, false};
    struct mvcc_kv out[2];
    struct router_merge_result res;
    cr_assert_eq(router_merge(&in, 1, -1, MVCC_SORT_ASCEND, out, 2, &res), KEEL_EINVALID);
    cr_assert_eq(router_merge(&in, 1, 0, MVCC_SORT_ASCEND, out, 1, &res), KEEL_EINVALID);
    cr_assert_eq(router_merge(&in, 1, 1, MVCC_SORT_NONE, out, 1, &res), KEEL_OK);
    cr_assert(res.kvs_len == 1 && res.more && res.count == 2);
    cr_assert_eq(out[0].key.ptr[0], 'a');
    cr_assert_eq(router_merge(NULL, 0, 0, MVCC_SORT_ASCEND, NULL, 0, &res), KEEL_OK);
    cr_assert(res.kvs_len == 0 && !res.more && res.count == 0);
}
