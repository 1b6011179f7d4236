/*
 * router.c — the shard map, key and range routing, the cross-shard merge;
 * the contract is in router.h.
 */
#include "shard/router.h"

#include "core/assert.h"
#include "core/btree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static_assert(ROUTER_SHARDS_MAX <= 65536u, "shard ids are u16");
static_assert(ROUTER_SPLIT_SIZE_MAX <= CODEC_KEY_SIZE_MAX, "a split key is a key");

/* ---- the map ---------------------------------------------------------------------------- */

struct span router_split(const struct router_map *m, u32 i)
{
    ASSERT(m != NULL);
    ASSERT(i + 1 < m->shard_count);
    return span_make(m->split_pool + m->split_off[i], m->split_len[i]);
}

static bool router_splits_valid(u32 shard_count, const struct span *splits)
{
    size_t bytes = 0;
    for (u32 i = 0; i + 1 < shard_count; i++) {
        if (splits[i].len == 0 || splits[i].len > ROUTER_SPLIT_SIZE_MAX) return false;
        if (i > 0 && btree_key_cmp(splits[i - 1], splits[i]) >= 0) return false;
        bytes += splits[i].len;
    }
    return bytes <= ROUTER_SPLIT_BYTES_MAX;
}

static bool router_owners_valid(u32 shard_count, const u16 *shard_of)
{
    if (shard_of == NULL) return true;
    u8 seen[ROUTER_SHARDS_MAX] = {0};
    for (u32 i = 0; i < shard_count; i++) {
        if (shard_of[i] >= shard_count || seen[shard_of[i]]) return false;
        seen[shard_of[i]] = 1;
    }
    return true;
}

int router_map_init(struct router_map *m, u64 version, u32 shard_count, const struct span *splits,
                    const u16 *shard_of)
{
    ASSERT(m != NULL);
    ASSERT(splits != NULL || shard_count <= 1);
    if (shard_count < 1 || shard_count > ROUTER_SHARDS_MAX) return KEEL_EINVALID;
    if (!router_splits_valid(shard_count, splits)) return KEEL_EINVALID;
    if (!router_owners_valid(shard_count, shard_of)) return KEEL_EINVALID;
    memset(m, 0, sizeof(*m));
    m->version = version;
    m->shard_count = shard_count;
    for (u32 i = 0; i < shard_count; i++) m->shard_of[i] = shard_of ? shard_of[i] : (u16)i;
    for (u32 i = 0; i + 1 < shard_count; i++) {
        m->split_off[i] = m->split_bytes_used;
        m->split_len[i] = (u16)splits[i].len;
        memcpy(m->split_pool + m->split_bytes_used, splits[i].ptr, splits[i].len);
        m->split_bytes_used += (u32)splits[i].len;
    }
    ASSERT(router_map_check(m));
    return KEEL_OK;
}

bool router_map_check(const struct router_map *m)
{
    ASSERT(m != NULL);
    if (m->shard_count < 1 || m->shard_count > ROUTER_SHARDS_MAX) return false;
    if (m->split_bytes_used > ROUTER_SPLIT_BYTES_MAX) return false;
    for (u32 i = 0; i + 1 < m->shard_count; i++) {
        if (m->split_off[i] + m->split_len[i] > m->split_bytes_used) return false;
        if (m->split_len[i] == 0 || m->split_len[i] > ROUTER_SPLIT_SIZE_MAX) return false;
        if (i > 0 && btree_key_cmp(router_split(m, i - 1), router_split(m, i)) >= 0) return false;
    }
    return router_owners_valid(m->shard_count, m->shard_of);
}

void router_range_bounds(const struct router_map *m, u32 range, struct span *start,
                         struct span *end)
{
    ASSERT(m != NULL && start != NULL && end != NULL);
    ASSERT(range < m->shard_count);
    *start = range == 0 ? span_make(NULL, 0) : router_split(m, range - 1);
    *end = range + 1 == m->shard_count ? span_make(NULL, 0) : router_split(m, range);
}

/* ---- the default map ---------------------------------------------------------------------
 *
 * Split keys cut the key space by order, so a key shape is spread over shards only if split
 * keys fall inside the interval its keys occupy. Typical shapes occupy different intervals:
 * path-like keys ("/registry/pods/default/web-1", "/locks/leader") all start with '/' (0x2f);
 * decimal ids start with '1'..'9'; hex ids with '0'..'9' and 'a'..'f'; printable ASCII
 * spreads over 0x20..0x7e. So no single split can cut both paths and ids (with 2 shards one
 * shape stays whole), and a good default places its splits where a realistic mix of keys
 * has its quantiles.
 *
 * That is what router_map_default does: it generates a fixed reference sample (a seeded
 * generator, the same on every node and run), half path-like keys (Kubernetes'
 * /registry/<resource>/<namespace>/<name> and etcd/ZooKeeper-style /config, /locks ...)
 * and one sixth each of hex ids, decimal ids and printable ASCII, sorts it in btree_key_cmp
 * order, and takes the sample at i/N of the way for split i, shortened to the shortest
 * prefix that still sorts above its predecessor (short splits, and no key of the sample
 * changes side). Paths get half the weight because they are the convention for etcd's and
 * ZooKeeper's coordination data: with 2 shards the one split falls among the paths (and
 * ASCII), with 3 or more the ids are cut too, and with 4 and 8 every shape is spread (tests/
 * unit/shard/test_router.c shows it). Operators with other shapes configure splits.
 */

#define ROUTER_SAMPLE_COUNT    384
#define ROUTER_SAMPLE_SIZE_MAX 48
static_assert(ROUTER_SAMPLE_COUNT > ROUTER_SHARDS_MAX, "a sample key for every split");

struct router_sample {
    u8 bytes[ROUTER_SAMPLE_COUNT][ROUTER_SAMPLE_SIZE_MAX];
    struct span keys[ROUTER_SAMPLE_COUNT];
    u32 count;
    u64 rng;
};

static u64 router_sample_rand(struct router_sample *s, u64 bound)
{
    u64 z = (s->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (z ^ (z >> 31)) % bound;
}

static void router_sample_path(struct router_sample *s, char *dst)
{
    static const char *const resources[] = {"configmaps", "deployments", "endpoints",  "events",
                                            "leases",     "minions",     "namespaces", "pods",
                                            "pods",       "replicasets", "secrets",    "services"};
    static const char *const namespaces[] = {"default", "kube-system", "monitoring", "prod"};
    static const char *const roots[] = {"/app", "/config", "/election", "/locks", "/services"};
    u64 id = router_sample_rand(s, 1u << 20);
    if (router_sample_rand(s, 4) == 0) {
        snprintf(dst, ROUTER_SAMPLE_SIZE_MAX, "%s/n%05llx", roots[router_sample_rand(s, 5)],
                 (unsigned long long)id);
        return;
    }
    snprintf(dst, ROUTER_SAMPLE_SIZE_MAX, "/registry/%s/%s/x%05llx",
             resources[router_sample_rand(s, KEEL_ARRAY_LEN(resources))],
             namespaces[router_sample_rand(s, 4)], (unsigned long long)id);
}

static void router_sample_key(struct router_sample *s, u32 i, char *dst)
{
    u32 kind = i % 6; /* 0..2 paths, 3 hex, 4 decimal, 5 printable ASCII */
    if (kind < 3) {
        router_sample_path(s, dst);
    } else if (kind == 3) {
        for (int j = 0; j < 16; j++) dst[j] = "0123456789abcdef"[router_sample_rand(s, 16)];
        dst[16] = 0;
    } else if (kind == 4) {
        u64 digits = 1 + router_sample_rand(s, 12), v = 1;
        for (u64 j = 0; j < digits; j++) v *= 10;
        snprintf(dst, ROUTER_SAMPLE_SIZE_MAX, "%llu",
                 (unsigned long long)(1 + router_sample_rand(s, v - 1)));
    } else {
        for (int j = 0; j < 12; j++) dst[j] = (char)(0x20 + router_sample_rand(s, 0x5f));
        dst[12] = 0;
    }
}

static int router_sample_cmp(const void *a, const void *b)
{
    return btree_key_cmp(*(const struct span *)a, *(const struct span *)b);
}

/* Fills s with the sorted, distinct reference sample. */
static void router_sample_build(struct router_sample *s)
{
    s->rng = 0x6B65656C; /* "keel": fixed, so every node computes the same map */
    for (u32 i = 0; i < ROUTER_SAMPLE_COUNT; i++) {
        char *dst = (char *)s->bytes[i];
        router_sample_key(s, i, dst);
        s->keys[i] = span_make(dst, strlen(dst));
        ASSERT(s->keys[i].len > 0 && s->keys[i].len < ROUTER_SAMPLE_SIZE_MAX);
    }
    qsort(s->keys, ROUTER_SAMPLE_COUNT, sizeof(s->keys[0]), router_sample_cmp);
    s->count = 1;
    for (u32 i = 1; i < ROUTER_SAMPLE_COUNT; i++) {
        if (btree_key_cmp(s->keys[s->count - 1], s->keys[i]) != 0) s->keys[s->count++] = s->keys[i];
    }
    ASSERT(s->count >= ROUTER_SHARDS_MAX); /* a distinct sample key for every split */
}

/* The shortest prefix of hi that sorts above lo (lo < hi). */
static struct span router_separator(struct span lo, struct span hi)
{
    ASSERT(btree_key_cmp(lo, hi) < 0);
    size_t common = 0;
    while (common < lo.len && common < hi.len && lo.ptr[common] == hi.ptr[common]) common++;
    ASSERT(common < hi.len);
    struct span sep = span_make(hi.ptr, common + 1);
    ASSERT(btree_key_cmp(lo, sep) < 0 && btree_key_cmp(sep, hi) <= 0);
    return sep;
}

int router_map_default(struct router_map *m, u32 shard_count)
{
    ASSERT(m != NULL);
    if (shard_count < 1 || shard_count > ROUTER_SHARDS_MAX) return KEEL_EINVALID;
    struct router_sample sample; /* 24 KiB of stack, at startup only */
    struct router_sample *s = &sample;
    router_sample_build(s);
    ASSERT(s->count >= shard_count);
    struct span splits[ROUTER_SHARDS_MAX];
    for (u32 i = 1; i < shard_count; i++) {
        u32 q = (u32)((u64)i * s->count / shard_count);
        ASSERT(q >= 1 && q < s->count);
        splits[i - 1] = router_separator(s->keys[q - 1], s->keys[q]);
    }
    int rc = router_map_init(m, 1, shard_count, splits, NULL);
    ASSERT(rc == KEEL_OK);
    return rc;
}

/* ---- routing ---------------------------------------------------------------------------- */

/* The number of split keys <= key (strict: < key): the key-order index of key's range. */
static u32 router_splits_below(const struct router_map *m, struct span key, bool strict)
{
    u32 lo = 0, hi = m->shard_count - 1; /* answer in [lo, hi] */
    while (lo < hi) {
        u32 mid = lo + (hi - lo) / 2;
        int c = btree_key_cmp(router_split(m, mid), key);
        if (c < 0 || (c == 0 && !strict))
            lo = mid + 1;
        else
            hi = mid;
    }
    ASSERT(lo < m->shard_count);
    return lo;
}

u32 router_range_of_key(const struct router_map *m, struct span key)
{
    ASSERT(m != NULL);
    ASSERT(key.len > 0);
    u32 r = router_splits_below(m, key, false);
    ASSERT_IMPLIES(r > 0, btree_key_cmp(router_split(m, r - 1), key) <= 0);
    ASSERT_IMPLIES(r + 1 < m->shard_count, btree_key_cmp(key, router_split(m, r)) < 0);
    return r;
}

u32 router_shard_of_key(const struct router_map *m, struct span key)
{
    u32 shard = m->shard_of[router_range_of_key(m, key)];
    ASSERT(shard < m->shard_count);
    return shard;
}

static bool router_end_is_all(struct span range_end)
{
    return range_end.len == 1 && range_end.ptr[0] == 0;
}

int router_range_shards(const struct router_map *m, struct span key, struct span range_end,
                        struct router_shards *out)
{
    ASSERT(m != NULL && out != NULL);
    DEBUG_ASSERT(router_map_check(m));
    if (key.len == 0) return KEEL_EKEY_EMPTY;
    u32 first = router_range_of_key(m, key), last = first;
    if (router_end_is_all(range_end)) {
        last = m->shard_count - 1;
    } else if (range_end.len > 0) {
        if (btree_key_cmp(range_end, key) <= 0) return KEEL_EINVALID;
        /* The last range holding a key < range_end starts below range_end. */
        last = router_splits_below(m, range_end, true);
    }
    ASSERT(first <= last && last < m->shard_count);
    out->count = last - first + 1;
    out->range_first = first;
    for (u32 i = first; i <= last; i++) out->shard[i - first] = m->shard_of[i];
    ASSERT(out->count >= 1);
    return KEEL_OK;
}

int router_range_plan(const struct router_map *m, const struct mvcc_range_req *req,
                      struct router_shards *out)
{
    ASSERT(m != NULL && req != NULL && out != NULL);
    int rc = router_range_shards(m, req->key, req->range_end, out);
    if (rc != KEEL_OK || out->count == 1) return rc;
    if (req->revision != 0 || req->sort_target != MVCC_SORT_KEY) return CODEC_S_CROSS_SHARD;
    ASSERT(out->count > 1);
    return KEEL_OK;
}

int router_single_shard(const struct router_map *m, const struct router_key_range *ranges,
                        u32 count, u32 *shard)
{
    ASSERT(m != NULL && shard != NULL);
    ASSERT(ranges != NULL || count == 0);
    if (count == 0) return KEEL_EINVALID;
    u32 owner = ROUTER_SHARDS_MAX;
    for (u32 i = 0; i < count; i++) {
        struct router_shards s;
        int rc = router_range_shards(m, ranges[i].key, ranges[i].range_end, &s);
        if (rc != KEEL_OK) return rc;
        if (s.count > 1) return CODEC_S_CROSS_SHARD;
        if (owner != ROUTER_SHARDS_MAX && owner != s.shard[0]) return CODEC_S_CROSS_SHARD;
        owner = s.shard[0];
    }
    ASSERT(owner < m->shard_count);
    *shard = owner;
    return KEEL_OK;
}

/* ---- merge ------------------------------------------------------------------------------ */

#ifdef KEEL_DEBUG_ASSERTS
static bool router_input_sorted(const struct router_merge_input *in, bool descend)
{
    for (size_t i = 1; i < in->kvs_len; i++) {
        int c = btree_key_cmp(in->kvs[i - 1].key, in->kvs[i].key);
        if (descend ? c < 0 : c > 0) return false;
    }
    return true;
}
#endif

/* The input whose next kv comes first in the merge's order; ties go to the lower index. */
static u32 router_merge_pick(const struct router_merge_input *inputs, u32 input_count,
                             const size_t *pos, bool descend)
{
    u32 best = input_count;
    for (u32 i = 0; i < input_count; i++) {
        if (pos[i] == inputs[i].kvs_len) continue;
        if (best == input_count) {
            best = i;
            continue;
        }
        int c = btree_key_cmp(inputs[i].kvs[pos[i]].key, inputs[best].kvs[pos[best]].key);
        if (descend ? c > 0 : c < 0) best = i;
    }
    ASSERT(best < input_count);
    return best;
}

int router_merge(const struct router_merge_input *inputs, u32 input_count, i64 limit,
                 enum mvcc_sort_order order, struct mvcc_kv *out, size_t out_cap,
                 struct router_merge_result *result)
{
    ASSERT(result != NULL);
    ASSERT(inputs != NULL || input_count == 0);
    if (limit < 0 || input_count > ROUTER_MERGE_INPUTS_MAX) return KEEL_EINVALID;
    if (order > MVCC_SORT_DESCEND) return KEEL_EINVALID;
    bool descend = order == MVCC_SORT_DESCEND, more = false;
    size_t total = 0, pos[ROUTER_MERGE_INPUTS_MAX] = {0};
    i64 count = 0;
    for (u32 i = 0; i < input_count; i++) {
        DEBUG_ASSERT(router_input_sorted(&inputs[i], descend));
        total += inputs[i].kvs_len;
        count += inputs[i].count;
        more |= inputs[i].more;
    }
    size_t want = (limit > 0 && (u64)limit < total) ? (size_t)limit : total;
    if (want > out_cap) return KEEL_EINVALID;
    ASSERT(out != NULL || want == 0);
    for (size_t n = 0; n < want; n++) {
        u32 i = router_merge_pick(inputs, input_count, pos, descend);
        out[n] = inputs[i].kvs[pos[i]++];
    }
    result->kvs_len = want;
    result->count = count;
    result->more = more || want < total;
    ASSERT(result->kvs_len <= out_cap);
    return KEEL_OK;
}
