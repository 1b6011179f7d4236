/*
 * test_mvcc.c — the MVCC store against its contract in core/mvcc.h, which is
 * etcd v3's model per shard: revisions, create/mod revision and version,
 * tombstones, ranges at a revision with etcd's options, atomic batches, and
 * compaction in bounded steps.
 *
 * Expected answers are written out by hand, or (random_history_matches_a_model)
 * come from a small history model kept in this file. Randomized tests take
 * KEEL_SEED (and KEEL_OPS) from the environment and print the seed they use.
 */
#include "core/mvcc.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB ((u64)1 << 20)

static struct mvcc *m;
static u64 rng_state;

/* ---- helpers ------------------------------------------------------------ */

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

static struct span S(const char *s) {
    return span_make(s, strlen(s));
}

static const struct span NONE = {NULL, 0};          /* range_end: the key alone */
static const struct span ALL = {(const u8 *)"", 1}; /* range_end "\0": every key >= key */

static bool span_is(struct span a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

static struct mvcc *store_new(u32 key_max, u32 value_max, u32 ops_max)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    c.memory_bytes_max = 256 * MiB;
    if (key_max) c.key_size_max = key_max;
    if (value_max) c.value_size_max = value_max;
    if (ops_max) c.batch_ops_max = ops_max;
    struct mvcc *s = mvcc_create(&c);
    cr_assert_not_null(s);
    return s;
}

static void mvcc_setup(void)
{
    m = store_new(0, 0, 0);
}

static void mvcc_teardown(void)
{
    mvcc_destroy(m);
}

TestSuite(mvcc, .init = mvcc_setup, .fini = mvcc_teardown);

/* Puts key = value outside a batch; returns the store's revision after. */
static i64 put(const char *key, const char *value)
{
    bool had = false;
    int rc = mvcc_put(m, S(key), S(value), 0, NULL, &had);
    cr_assert_eq(rc, KEEL_OK, "put %s: %s", key, keel_err_str(rc));
    return mvcc_revision(m);
}

static u64 del(const char *key, struct span end)
{
    u64 n = 12345;
    int rc = mvcc_delete_range(m, S(key), end, &n, NULL, NULL);
    cr_assert_eq(rc, KEEL_OK, "delete %s: %s", key, keel_err_str(rc));
    return n;
}

static struct mvcc_range_req req_of(struct span key, struct span end, i64 rev)
{
    struct mvcc_range_req q;
    memset(&q, 0, sizeof(q));
    q.key = key;
    q.range_end = end;
    q.revision = rev;
    return q;
}

static struct mvcc_range_result range_q(const struct mvcc_range_req *q)
{
    struct mvcc_range_result r;
    int rc = mvcc_range(m, q, &r);
    cr_assert_eq(rc, KEEL_OK, "range: %s", keel_err_str(rc));
    cr_assert_eq(r.revision, mvcc_revision(m), "a result carries the store's revision");
    cr_assert_geq(r.count, (i64)r.kvs_len);
    return r;
}

static struct mvcc_range_result range(const char *key, struct span end, i64 rev)
{
    struct mvcc_range_req q = req_of(S(key), end, rev);
    return range_q(&q);
}

/* The single key at rev (0: current); false if absent. */
static bool get(const char *key, i64 rev, struct mvcc_kv *kv)
{
    struct mvcc_range_result r = range(key, NONE, rev);
    cr_assert_leq(r.kvs_len, 1);
    cr_assert_eq(r.count, (i64)r.kvs_len);
    if (r.kvs_len == 0) return false;
    *kv = r.kvs[0];
    cr_assert(span_is(kv->key, key));
    return true;
}

static void assert_kv(const struct mvcc_kv *kv, const char *key, const char *value, i64 create,
                      i64 mod, i64 version)
{
    cr_assert(span_is(kv->key, key), "key %.*s, want %s", (int)kv->key.len,
              (const char *)kv->key.ptr, key);
    cr_assert(span_is(kv->value, value), "%s: value %.*s, want %s", key, (int)kv->value.len,
              (const char *)kv->value.ptr, value);
    cr_assert_eq(kv->create_revision, create, "%s: create_revision", key);
    cr_assert_eq(kv->mod_revision, mod, "%s: mod_revision", key);
    cr_assert_eq(kv->version, version, "%s: version", key);
}

static void assert_get(const char *key, i64 rev, const char *value, i64 create, i64 mod,
                       i64 version)
{
    struct mvcc_kv kv;
    cr_assert(get(key, rev, &kv), "%s is absent at revision %lld", key, (long long)rev);
    assert_kv(&kv, key, value, create, mod, version);
}

static void assert_absent(const char *key, i64 rev)
{
    struct mvcc_kv kv;
    cr_assert_not(get(key, rev, &kv), "%s is present at revision %lld", key, (long long)rev);
}

/* The keys of a result, joined with ',' for easy comparison. */
static const char *keys_of(const struct mvcc_range_result *r)
{
    static char out[4096];
    size_t n = 0;
    for (size_t i = 0; i < r->kvs_len; i++) {
        if (i > 0) out[n++] = ',';
        cr_assert_lt(n + r->kvs[i].key.len, sizeof(out) - 2);
        memcpy(out + n, r->kvs[i].key.ptr, r->kvs[i].key.len);
        n += r->kvs[i].key.len;
    }
    out[n] = 0;
    return out;
}

static void assert_keys(struct mvcc_range_result r, const char *want)
{
    cr_assert_str_eq(keys_of(&r), want);
}

static struct mvcc_stats stats(void)
{
    struct mvcc_stats st;
    mvcc_stats(m, &st);
    return st;
}

/* ---- revisions, versions, prev ------------------------------------------ */

Test(mvcc, config_defaults_are_as_documented)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    cr_assert_eq(c.memory_bytes_max, (u64)8 << 30);
    cr_assert_eq(c.key_size_max, 4096);
    cr_assert_eq(c.value_size_max, 3 * MiB / 2);
    cr_assert_eq(c.batch_ops_max, 10000);
}

Test(mvcc, starts_empty_at_revision_1)
{
    cr_assert_eq(mvcc_revision(m), 1);
    struct mvcc_stats st = stats();
    cr_assert_eq(st.revision, 1);
    cr_assert_eq(st.keys_live + st.keys_tree + st.records, 0);
    cr_assert_eq(st.key_bytes + st.value_bytes, 0);
    struct mvcc_range_result r = range("\x01", ALL, 0);
    cr_assert_eq(r.kvs_len, 0);
    cr_assert_eq(r.count, 0);
    cr_assert_not(r.more);
    cr_assert_eq(range("a", NONE, 1).kvs_len, 0, "reading at revision 1 works");
    cr_assert_not(mvcc_batch_open(m));
    cr_assert(mvcc_check(m));
}

Test(mvcc, puts_get_increasing_revisions)
{
    cr_assert_eq(put("a", "1"), 2, "the first write gets revision 2, as in etcd");
    cr_assert_eq(put("b", "1"), 3);
    cr_assert_eq(put("a", "2"), 4);
    cr_assert_eq(put("a", "2"), 5, "a put of the same value is still a write");
    assert_get("a", 0, "2", 2, 5, 3);
    assert_get("b", 0, "1", 3, 3, 1);
    cr_assert_eq(stats().revision, 5);
    cr_assert(mvcc_check(m));
}

Test(mvcc, version_semantics_as_etcd)
{
    put("k", "v1"); /* rev 2 */
    put("k", "v2"); /* rev 3 */
    put("k", "v3"); /* rev 4 */
    assert_get("k", 0, "v3", 2, 4, 3);
    cr_assert_eq(del("k", NONE), 1); /* rev 5 */
    cr_assert_eq(mvcc_revision(m), 5);
    assert_absent("k", 0);
    put("k", "again"); /* rev 6: created anew */
    assert_get("k", 0, "again", 6, 6, 1);
    put("k", "again2"); /* rev 7 */
    assert_get("k", 0, "again2", 6, 7, 2);
    assert_get("k", 2, "v1", 2, 2, 1);
    assert_get("k", 3, "v2", 2, 3, 2);
    assert_get("k", 4, "v3", 2, 4, 3);
    assert_absent("k", 5);
    assert_get("k", 6, "again", 6, 6, 1);
    assert_absent("k", 1);
    bool had;
    cr_assert_eq(mvcc_put(m, S("leased"), S("x"), 77, NULL, &had), KEEL_OK);
    struct mvcc_kv kv;
    cr_assert(get("leased", 0, &kv));
    cr_assert_eq(kv.lease, 77);
    cr_assert(get("k", 0, &kv));
    cr_assert_eq(kv.lease, 0);
    cr_assert(mvcc_check(m));
}

Test(mvcc, prev_kv_on_put)
{
    struct mvcc_kv prev;
    bool had = true;
    cr_assert_eq(mvcc_put(m, S("p"), S("one"), 5, &prev, &had), KEEL_OK);
    cr_assert_not(had, "no previous version of a new key");
    cr_assert_eq(mvcc_put(m, S("p"), S("two"), 0, &prev, &had), KEEL_OK);
    cr_assert(had);
    assert_kv(&prev, "p", "one", 2, 2, 1);
    cr_assert_eq(prev.lease, 5);
    cr_assert_eq(mvcc_put(m, S("p"), S("three"), 0, &prev, &had), KEEL_OK);
    cr_assert(had);
    assert_kv(&prev, "p", "two", 2, 3, 2);
    del("p", NONE);
    had = true;
    cr_assert_eq(mvcc_put(m, S("p"), S("four"), 0, &prev, &had), KEEL_OK);
    cr_assert_not(had, "a tombstone is not a previous live version");
    cr_assert_eq(mvcc_put(m, S("q"), S("x"), 0, NULL, &had), KEEL_OK, "prev is nullable");
    cr_assert_eq(mvcc_put(m, S("q"), S("y"), 0, NULL, &had), KEEL_OK);
    cr_assert(had);
    cr_assert(mvcc_check(m));
}

struct collected {
    int calls, stop_after;
    char keys[256];
    i64 mod[16];
};

static int collect(void *ctx, const struct mvcc_kv *kv)
{
    struct collected *c = ctx;
    cr_assert_lt(c->calls, 16);
    size_t n = strlen(c->keys);
    if (n > 0) c->keys[n++] = ',';
    snprintf(c->keys + n, sizeof(c->keys) - n, "%.*s=%.*s", (int)kv->key.len,
             (const char *)kv->key.ptr, (int)kv->value.len, (const char *)kv->value.ptr);
    c->mod[c->calls++] = kv->mod_revision;
    return c->stop_after > 0 && c->calls >= c->stop_after;
}

Test(mvcc, delete_range_reports_previous_versions)
{
    put("a", "1");
    put("b", "2"); /* rev 3 */
    put("c", "3"); /* rev 4 */
    put("d", "4");
    put("b", "22"); /* rev 6 */
    struct collected c = {0};
    u64 n = 0;
    cr_assert_eq(mvcc_delete_range(m, S("b"), S("d"), &n, collect, &c), KEEL_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(c.keys, "b=22,c=3");
    cr_assert(c.mod[0] == 6 && c.mod[1] == 4);
    cr_assert_eq(mvcc_revision(m), 7, "one revision for the whole delete");
    assert_absent("b", 0);
    assert_absent("c", 0);
    assert_get("a", 0, "1", 2, 2, 1);
    assert_get("d", 0, "4", 5, 5, 1);
    assert_get("b", 6, "22", 3, 6, 2);
    struct collected stop = {.stop_after = 1};
    cr_assert_eq(mvcc_delete_range(m, S("a"), ALL, &n, collect, &stop), KEEL_OK);
    cr_assert_eq(n, 2, "a nonzero return stops reporting, not deleting");
    cr_assert_eq(stop.calls, 1);
    cr_assert_str_eq(stop.keys, "a=1");
    assert_absent("d", 0);
    cr_assert_eq(stats().keys_live, 0);
    cr_assert(mvcc_check(m));
}

Test(mvcc, delete_of_nothing_consumes_no_revision)
{
    put("a", "1");
    put("b", "1");
    cr_assert_eq(del("b", NONE), 1);
    i64 rev = mvcc_revision(m);
    cr_assert_eq(del("zzz", NONE), 0, "absent key");
    cr_assert_eq(del("b", NONE), 0, "already deleted");
    cr_assert_eq(del("c", S("d")), 0, "empty interval");
    cr_assert_eq(del("b", S("b\x01")), 0, "interval holding only a tombstone");
    cr_assert_eq(mvcc_revision(m), rev);
    assert_get("a", 0, "1", 2, 2, 1);
    cr_assert(mvcc_check(m));
}

/* ---- ranges ------------------------------------------------------------- */

Test(mvcc, range_single_interval_prefix_and_from_key)
{
    const char *ks[] = {"a", "b", "c", "d", "e", "fo", "foo", "foo/1", "foo/2", "fop", "g"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(ks); i++) put(ks[i], ks[i]);
    assert_keys(range("c", NONE, 0), "c");
    assert_keys(range("cc", NONE, 0), "");
    assert_keys(range("b", S("d"), 0), "b,c");
    assert_keys(range("b", S("b"), 0), "");
    assert_keys(range("bb", S("cc"), 0), "c");
    assert_keys(range("foo", ALL, 0), "foo,foo/1,foo/2,fop,g");
    assert_keys(range("\x01", ALL, 0), "a,b,c,d,e,fo,foo,foo/1,foo/2,fop,g");
    u8 end[8];
    assert_keys(range("foo", mvcc_prefix_end(S("foo"), end), 0), "foo,foo/1,foo/2");
    assert_keys(range("foo/", mvcc_prefix_end(S("foo/"), end), 0), "foo/1,foo/2");
    struct mvcc_range_result r = range("a", S("e"), 0);
    cr_assert_eq(r.count, 4);
    cr_assert_not(r.more);
    assert_kv(&r.kvs[1], "b", "b", 3, 3, 1);
    cr_assert(mvcc_check(m));
}

Test(mvcc, prefix_end_as_etcd)
{
    u8 dst[8];
    struct span e = mvcc_prefix_end(S("abc"), dst);
    cr_assert(span_is(e, "abd"));
    e = mvcc_prefix_end(S("ab\xff"), dst);
    cr_assert(span_is(e, "ac"), "trailing 0xff bytes are dropped");
    e = mvcc_prefix_end(S("a\xff\xff"), dst);
    cr_assert(span_is(e, "b"));
    e = mvcc_prefix_end(S("\xff\xff"), dst);
    cr_assert_eq(e.len, 1, "all 0xff: every key");
    cr_assert_eq(e.ptr[0], 0);
    e = mvcc_prefix_end(span_make("a\0", 2), dst);
    cr_assert(e.len == 2 && e.ptr[0] == 'a' && e.ptr[1] == 1);
    e = mvcc_prefix_end(S("\xfe"), dst);
    cr_assert(e.len == 1 && e.ptr[0] == 0xff);
}

Test(mvcc, range_at_older_revisions)
{
    put("a", "1");  /* 2 */
    put("b", "1");  /* 3 */
    put("a", "2");  /* 4 */
    del("b", NONE); /* 5 */
    put("c", "1");  /* 6 */
    static const char *want[] = {"", "a", "a,b", "a,b", "a", "a,c"};
    for (i64 rev = 1; rev <= 6; rev++) {
        struct mvcc_range_result r = range("a", ALL, rev);
        cr_assert_str_eq(keys_of(&r), want[rev - 1], "at revision %lld", (long long)rev);
        cr_assert_eq(r.count, (i64)r.kvs_len);
        cr_assert_eq(r.revision, 6);
    }
    assert_get("a", 3, "1", 2, 2, 1);
    assert_get("a", 4, "2", 2, 4, 2);
    assert_get("b", 4, "1", 3, 3, 1);
    assert_keys(range("a", ALL, 0), "a,c");
    cr_assert(mvcc_check(m));
}

static void put_ten(void)
{
    char k[8];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        put(k, "v");
    }
}

Test(mvcc, range_limit_and_more)
{
    put_ten();
    struct mvcc_range_req q = req_of(S("k"), ALL, 0);
    q.limit = 3;
    struct mvcc_range_result r = range_q(&q);
    assert_keys(r, "k0,k1,k2");
    cr_assert(r.more);
    cr_assert_eq(r.count, 10, "count ignores the limit");
    q.limit = 10;
    r = range_q(&q);
    cr_assert_eq(r.kvs_len, 10);
    cr_assert_not(r.more, "a limit equal to the matches cuts nothing");
    q.limit = 11;
    r = range_q(&q);
    cr_assert_not(r.more);
    q.limit = 0;
    r = range_q(&q);
    cr_assert_eq(r.kvs_len, 10);
    q = req_of(S("k3"), S("k6"), 0);
    q.limit = 2;
    r = range_q(&q);
    assert_keys(r, "k3,k4");
    cr_assert(r.more);
    cr_assert_eq(r.count, 3);
}

Test(mvcc, range_keys_only_and_count_only)
{
    put_ten();
    put("k4", "vv");
    struct mvcc_range_req q = req_of(S("k"), ALL, 0);
    q.keys_only = true;
    struct mvcc_range_result r = range_q(&q);
    cr_assert_eq(r.kvs_len, 10);
    for (size_t i = 0; i < r.kvs_len; i++) cr_assert_eq(r.kvs[i].value.len, 0);
    cr_assert_eq(r.kvs[4].version, 2, "keys_only keeps the metadata");
    cr_assert_eq(r.kvs[4].mod_revision, 12);
    cr_assert_eq(r.kvs[4].create_revision, 6);
    q = req_of(S("k"), ALL, 0);
    q.count_only = true;
    r = range_q(&q);
    cr_assert_eq(r.kvs_len, 0);
    cr_assert_eq(r.count, 10);
    q.revision = 5;
    r = range_q(&q);
    cr_assert_eq(r.count, 4, "count at an older revision");
    cr_assert_eq(r.kvs_len, 0);
}

/* a: create 3, mod 7, version 3, "mmm"   b: create 4, mod 4, version 1, "a"
 * c: create 2, mod 2, version 1, "zz"    d: create 6, mod 8, version 2, "bb" */
static void put_sortable(void)
{
    put("c", "zz");  /* 2 */
    put("a", "m");   /* 3 */
    put("b", "a");   /* 4 */
    put("a", "mm");  /* 5 */
    put("d", "b");   /* 6 */
    put("a", "mmm"); /* 7 */
    put("d", "bb");  /* 8 */
}

static const char *sorted_keys(enum mvcc_sort_target target, enum mvcc_sort_order order, i64 limit,
                               bool *more)
{
    struct mvcc_range_req q = req_of(S("a"), ALL, 0);
    q.sort_target = target;
    q.sort_order = order;
    q.limit = limit;
    struct mvcc_range_result r = range_q(&q);
    cr_assert_eq(r.count, 4);
    if (more) *more = r.more;
    return keys_of(&r);
}

Test(mvcc, range_sort_by_each_target_both_orders)
{
    put_sortable();
    cr_assert_str_eq(sorted_keys(MVCC_SORT_KEY, MVCC_SORT_NONE, 0, NULL), "a,b,c,d");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_KEY, MVCC_SORT_ASCEND, 0, NULL), "a,b,c,d");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_KEY, MVCC_SORT_DESCEND, 0, NULL), "d,c,b,a");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_CREATE, MVCC_SORT_ASCEND, 0, NULL), "c,a,b,d");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_CREATE, MVCC_SORT_DESCEND, 0, NULL), "d,b,a,c");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_MOD, MVCC_SORT_ASCEND, 0, NULL), "c,b,a,d");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_MOD, MVCC_SORT_DESCEND, 0, NULL), "d,a,b,c");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_VALUE, MVCC_SORT_ASCEND, 0, NULL), "b,d,a,c");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_VALUE, MVCC_SORT_DESCEND, 0, NULL), "c,a,d,b");
    /* order NONE sorts a target other than KEY ascending, as etcd does */
    cr_assert_str_eq(sorted_keys(MVCC_SORT_CREATE, MVCC_SORT_NONE, 0, NULL), "c,a,b,d");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_VALUE, MVCC_SORT_NONE, 0, NULL), "b,d,a,c");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_VERSION, MVCC_SORT_NONE, 0, NULL), "b,c,d,a");
    cr_assert(mvcc_check(m));
}

/* mvcc.h: "ties in any target are broken by key, ascending" - in both orders. */
Test(mvcc, range_sort_ties_go_by_key_ascending)
{
    put_sortable(); /* b and c tie on version 1 */
    cr_assert_str_eq(sorted_keys(MVCC_SORT_VERSION, MVCC_SORT_ASCEND, 0, NULL), "b,c,d,a");
    cr_assert_str_eq(sorted_keys(MVCC_SORT_VERSION, MVCC_SORT_DESCEND, 0, NULL), "a,d,b,c");
    put("e", "a"); /* e ties with b on value "a" */
    struct mvcc_range_req q = req_of(S("a"), ALL, 0);
    q.sort_target = MVCC_SORT_VALUE;
    q.sort_order = MVCC_SORT_DESCEND;
    assert_keys(range_q(&q), "c,a,d,b,e");
}

/* As etcd: sort all matching keys, then cut at the limit. */
Test(mvcc, range_sort_applies_before_the_limit)
{
    put_sortable();
    bool more = false;
    cr_assert_str_eq(sorted_keys(MVCC_SORT_KEY, MVCC_SORT_DESCEND, 2, &more), "d,c");
    cr_assert(more);
    cr_assert_str_eq(sorted_keys(MVCC_SORT_CREATE, MVCC_SORT_ASCEND, 2, &more), "c,a");
    cr_assert(more);
    cr_assert_str_eq(sorted_keys(MVCC_SORT_MOD, MVCC_SORT_DESCEND, 4, &more), "d,a,b,c");
    cr_assert_not(more);
    struct mvcc_range_req q = req_of(S("a"), ALL, 0);
    q.sort_target = MVCC_SORT_VALUE;
    q.keys_only = true;
    q.limit = 3;
    struct mvcc_range_result r = range_q(&q);
    assert_keys(r, "b,d,a"); /* sorted on the values that keys_only leaves out */
    cr_assert(r.more);
    for (size_t i = 0; i < r.kvs_len; i++) cr_assert_eq(r.kvs[i].value.len, 0);
}

static struct mvcc_range_result filtered(i64 min_mod, i64 max_mod, i64 min_create, i64 max_create,
                                         i64 limit)
{
    struct mvcc_range_req q = req_of(S("a"), ALL, 0);
    q.min_mod_revision = min_mod;
    q.max_mod_revision = max_mod;
    q.min_create_revision = min_create;
    q.max_create_revision = max_create;
    q.limit = limit;
    struct mvcc_range_result r = range_q(&q);
    cr_assert_eq(r.count, 4, "filters apply after the count");
    return r;
}

Test(mvcc, range_min_max_mod_and_create_filters)
{
    put_sortable();
    assert_keys(filtered(5, 0, 0, 0, 0), "a,d");
    assert_keys(filtered(0, 4, 0, 0, 0), "b,c");
    assert_keys(filtered(4, 7, 0, 0, 0), "a,b");
    assert_keys(filtered(0, 0, 4, 0, 0), "b,d");
    assert_keys(filtered(0, 0, 0, 3, 0), "a,c");
    assert_keys(filtered(0, 0, 3, 4, 0), "a,b");
    assert_keys(filtered(3, 0, 0, 4, 0), "a,b");
    assert_keys(filtered(9, 0, 0, 0, 0), "");
    struct mvcc_range_result r = filtered(3, 0, 0, 0, 2); /* matches a, b, d */
    assert_keys(r, "a,b");
    cr_assert(r.more, "the limit cut d off");
    r = filtered(3, 0, 0, 0, 3);
    assert_keys(r, "a,b,d");
    cr_assert_not(r.more);
}

/* ---- errors ------------------------------------------------------------- */

Test(mvcc, errors_on_key_and_value_sizes_change_nothing)
{
    mvcc_destroy(m);
    m = store_new(16, 64, 0);
    char key[18], val[66];
    memset(key, 'k', sizeof(key));
    memset(val, 'v', sizeof(val));
    bool had;
    cr_assert_eq(mvcc_put(m, span_make(key, 16), span_make(val, 64), 0, NULL, &had), KEEL_OK);
    struct mvcc_stats before = stats();
    i64 rev = mvcc_revision(m);
    cr_assert_eq(mvcc_put(m, S(""), S("v"), 0, NULL, &had), KEEL_EKEY_EMPTY);
    cr_assert_eq(mvcc_put(m, span_make(key, 17), S("v"), 0, NULL, &had), KEEL_EKEY_TOO_LARGE);
    cr_assert_eq(mvcc_put(m, S("k"), span_make(val, 65), 0, NULL, &had), KEEL_EVALUE_TOO_LARGE);
    cr_assert_eq(mvcc_put(m, span_make(key, 16), span_make(val, 65), 0, NULL, &had),
                 KEEL_EVALUE_TOO_LARGE, "an existing key keeps its value");
    cr_assert_eq(mvcc_revision(m), rev);
    struct mvcc_stats after = stats();
    cr_assert_eq(after.records, before.records);
    cr_assert_eq(after.keys_tree, before.keys_tree);
    cr_assert_eq(after.value_bytes, before.value_bytes);
    cr_assert_eq(after.memory.in_use_bytes, before.memory.in_use_bytes);
    struct mvcc_range_result r = range("k", ALL, 0);
    cr_assert_eq(r.kvs_len, 1);
    cr_assert_eq(r.kvs[0].value.len, 64);
    cr_assert_eq(r.kvs[0].version, 1);
    cr_assert(mvcc_check(m));
}

Test(mvcc, errors_on_compacted_and_future_revisions)
{
    for (int i = 0; i < 5; i++) put("a", "x"); /* revisions 2..6 */
    struct mvcc_range_result r;
    struct mvcc_range_req q = req_of(S("a"), NONE, 7);
    cr_assert_eq(mvcc_range(m, &q, &r), KEEL_EFUTURE_REV);
    cr_assert_eq(mvcc_compact(m, 7), KEEL_EFUTURE_REV);
    cr_assert_eq(mvcc_compact_start(m, 100), KEEL_EFUTURE_REV);
    cr_assert_eq(mvcc_compact(m, 4), KEEL_OK);
    cr_assert_eq(mvcc_compact_revision(m), 4);
    cr_assert_eq(stats().compact_revision, 4);
    q.revision = 3;
    cr_assert_eq(mvcc_range(m, &q, &r), KEEL_ECOMPACTED);
    q.revision = 1;
    cr_assert_eq(mvcc_range(m, &q, &r), KEEL_ECOMPACTED);
    assert_get("a", 4, "x", 2, 4, 3);
    cr_assert_eq(mvcc_compact(m, 4), KEEL_ECOMPACTED, "rev must be above compact_revision");
    cr_assert_eq(mvcc_compact(m, 3), KEEL_ECOMPACTED);
    cr_assert_eq(mvcc_compact_start(m, 2), KEEL_ECOMPACTED);
    cr_assert_eq(mvcc_compact_revision(m), 4, "a refused compaction changes nothing");
    cr_assert_eq(mvcc_compact(m, 6), KEEL_OK, "compacting up to the current revision");
    assert_get("a", 6, "x", 2, 6, 5);
    cr_assert(mvcc_check(m));
}

static int range_rc(struct span key, i64 rev, i64 limit, int sort_order, int sort_target)
{
    struct mvcc_range_req q = req_of(key, NONE, rev);
    q.limit = limit;
    q.sort_order = (enum mvcc_sort_order)sort_order;
    q.sort_target = (enum mvcc_sort_target)sort_target;
    struct mvcc_range_result r;
    return mvcc_range(m, &q, &r);
}

/* Errors of mvcc_range, checked in the contract's order: empty key, key too
 * large, invalid argument, future revision, compacted revision. */
Test(mvcc, range_errors_in_the_documented_order)
{
    mvcc_destroy(m);
    m = store_new(8, 0, 0);
    for (int i = 0; i < 4; i++) put("a", "x"); /* revisions 2..5 */
    cr_assert_eq(mvcc_compact(m, 3), KEEL_OK);
    struct span big = S("123456789"); /* key_size_max + 1 */
    cr_assert_eq(range_rc(S("a"), 0, 0, 0, 0), KEEL_OK);
    cr_assert_eq(range_rc(S("12345678"), 0, 0, 0, 0), KEEL_OK, "key_size_max itself");
    cr_assert_eq(range_rc(S(""), 0, 0, 0, 0), KEEL_EKEY_EMPTY);
    cr_assert_eq(range_rc(big, 0, 0, 0, 0), KEEL_EKEY_TOO_LARGE);
    cr_assert_eq(range_rc(S("a"), -1, 0, 0, 0), KEEL_EINVALID, "negative revision");
    cr_assert_eq(range_rc(S("a"), 0, -1, 0, 0), KEEL_EINVALID, "negative limit");
    cr_assert_eq(range_rc(S("a"), 0, 0, 3, 0), KEEL_EINVALID, "unknown sort order");
    cr_assert_eq(range_rc(S("a"), 0, 0, 0, 5), KEEL_EINVALID, "unknown sort target");
    cr_assert_eq(range_rc(S("a"), 6, 0, 0, 0), KEEL_EFUTURE_REV);
    cr_assert_eq(range_rc(S("a"), 2, 0, 0, 0), KEEL_ECOMPACTED);
    cr_assert_eq(range_rc(S(""), 6, -1, 0, 0), KEEL_EKEY_EMPTY, "empty key first");
    cr_assert_eq(range_rc(big, 2, -1, 0, 0), KEEL_EKEY_TOO_LARGE, "then the key's size");
    cr_assert_eq(range_rc(S("a"), 6, -1, 0, 0), KEEL_EINVALID, "then the arguments");
    cr_assert_eq(range_rc(S("a"), -1, 0, 0, 0), KEEL_EINVALID, "not compacted: invalid");
    cr_assert_eq(range_rc(S("a"), 6, 0, 9, 0), KEEL_EINVALID);
    cr_assert(mvcc_check(m));
}

/* ---- batches ------------------------------------------------------------ */

Test(mvcc, batch_begin_twice_and_commit_without_begin)
{
    i64 rev = 0;
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_ENO_BATCH);
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    cr_assert(mvcc_batch_open(m));
    cr_assert_eq(mvcc_batch_begin(m), KEEL_ENO_BATCH);
    cr_assert(mvcc_batch_open(m), "the first batch stays open");
    bool had;
    cr_assert_eq(mvcc_put(m, S("a"), S("1"), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, 2);
    cr_assert_not(mvcc_batch_open(m));
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_ENO_BATCH);
    assert_get("a", 0, "1", 2, 2, 1);
    cr_assert(mvcc_check(m));
}

Test(mvcc, batch_writes_share_one_revision)
{
    put("c", "old");
    put("e", "old"); /* rev 3 */
    bool had;
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("a"), S("1"), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("b"), S("2"), 0, NULL, &had), KEEL_OK);
    u64 n = 0;
    cr_assert_eq(mvcc_delete_range(m, S("c"), NONE, &n, NULL, NULL), KEEL_OK);
    cr_assert_eq(n, 1);
    cr_assert_eq(mvcc_put(m, S("e"), S("new"), 0, NULL, &had), KEEL_OK);
    cr_assert(had);
    i64 rev = 0;
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, 4, "one revision for the whole batch");
    cr_assert_eq(mvcc_revision(m), 4);
    assert_get("a", 0, "1", 4, 4, 1);
    assert_get("b", 0, "2", 4, 4, 1);
    assert_get("e", 0, "new", 3, 4, 2);
    assert_absent("c", 0);
    assert_get("c", 3, "old", 2, 2, 1);
    assert_keys(range("a", ALL, 3), "c,e");
    cr_assert(mvcc_check(m));
}

Test(mvcc, batch_duplicate_key_is_refused)
{
    put("c", "old");
    bool had;
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("a"), S("first"), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("a"), S("second"), 0, NULL, &had), KEEL_EDUPLICATE_KEY);
    cr_assert_eq(mvcc_put(m, S("b"), S("1"), 0, NULL, &had), KEEL_OK, "the batch goes on");
    u64 n = 99;
    cr_assert_eq(mvcc_delete_range(m, S("a"), NONE, &n, NULL, NULL), KEEL_EDUPLICATE_KEY,
                 "deleting a key put in the same batch writes it twice");
    cr_assert_eq(n, 0, "*deleted is 0 after an error");
    cr_assert_eq(mvcc_delete_range(m, S("c"), NONE, &n, NULL, NULL), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("c"), S("new"), 0, NULL, &had), KEEL_EDUPLICATE_KEY,
                 "putting a key deleted in the same batch writes it twice");
    i64 rev = 0;
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, 3);
    assert_get("a", 0, "first", 3, 3, 1);
    assert_get("b", 0, "1", 3, 3, 1);
    assert_absent("c", 0);
    cr_assert(mvcc_check(m));
}

Test(mvcc, batch_ops_max_is_enforced)
{
    mvcc_destroy(m);
    m = store_new(0, 0, 4);
    bool had;
    char k[8];
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    for (int i = 0; i < 4; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        cr_assert_eq(mvcc_put(m, S(k), S("v"), 0, NULL, &had), KEEL_OK);
    }
    cr_assert_eq(mvcc_put(m, S("k4"), S("v"), 0, NULL, &had), KEEL_ETOO_MANY_OPS);
    i64 rev = 0;
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, 2);
    assert_keys(range("k", ALL, 0), "k0,k1,k2,k3");
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("x1"), S("v"), 0, NULL, &had), KEEL_OK);
    u64 n = 99;
    cr_assert_eq(mvcc_delete_range(m, S("k"), S("l"), &n, NULL, NULL), KEEL_ETOO_MANY_OPS,
                 "1 put + 4 deletes > 4");
    cr_assert_eq(n, 0, "*deleted is 0 after an error");
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, 3);
    assert_keys(range("k", ALL, 0), "k0,k1,k2,k3,x1");
    cr_assert_eq(mvcc_delete_range(m, S("a"), ALL, &n, NULL, NULL), KEEL_ETOO_MANY_OPS,
                 "outside a batch: a batch of one delete of 5 keys");
    cr_assert_eq(mvcc_revision(m), 3);
    assert_keys(range("k", ALL, 0), "k0,k1,k2,k3,x1");
    cr_assert_eq(mvcc_delete_range(m, S("k"), S("l"), &n, NULL, NULL), KEEL_OK);
    cr_assert_eq(n, 4, "exactly batch_ops_max keys");
    cr_assert(mvcc_check(m));
}

/* Inside a batch, a range at revision 0 sees the batch's own writes (as later
 * ops of an etcd transaction see earlier ones); the result's revision stays
 * the committed one, and older revisions do not see the batch. */
Test(mvcc, ranges_inside_a_batch_see_its_writes)
{
    put("a", "1");
    put("b", "1"); /* 3 */
    bool had;
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("a"), S("2"), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("c"), S("new"), 0, NULL, &had), KEEL_OK);
    u64 n;
    cr_assert_eq(mvcc_delete_range(m, S("b"), NONE, &n, NULL, NULL), KEEL_OK);
    struct mvcc_range_result r = range("a", ALL, 0);
    cr_assert_eq(r.revision, 3, "the committed revision");
    assert_keys(r, "a,c");
    assert_kv(&r.kvs[0], "a", "2", 2, 4, 2);
    assert_kv(&r.kvs[1], "c", "new", 4, 4, 1);
    assert_keys(range("a", ALL, 3), "a,b");
    assert_get("a", 3, "1", 2, 2, 1);
    mvcc_batch_abort(m);
    assert_keys(range("a", ALL, 0), "a,b");
    assert_get("a", 0, "1", 2, 2, 1);
    cr_assert(mvcc_check(m));
}

/* mvcc.h: "*deleted gets how many (0 after an error)" - outside a batch too,
 * where the failed delete runs as a batch of one and is undone. */
Test(mvcc, delete_range_error_outside_a_batch_reports_zero_deleted)
{
    mvcc_destroy(m);
    m = store_new(0, 0, 3);
    put_ten();
    u64 n = 99;
    cr_assert_eq(mvcc_delete_range(m, S("k"), ALL, &n, NULL, NULL), KEEL_ETOO_MANY_OPS);
    cr_assert_eq(mvcc_revision(m), 11, "the failed delete consumed no revision");
    cr_assert_eq(stats().keys_live, 10, "and deleted nothing");
    cr_assert(mvcc_check(m));
    cr_assert_eq(n, 0, "*deleted must be 0 after an error, was %llu", (unsigned long long)n);
}

static void batch_abort_writes(void)
{
    bool had;
    u64 n;
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("a"), S("changed"), 9, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("new"), S("fresh"), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_delete_range(m, S("b"), NONE, &n, NULL, NULL), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("gone"), S("back"), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_delete_range(m, S("c"), S("d"), &n, NULL, NULL), KEEL_OK);
    mvcc_batch_abort(m);
    cr_assert_not(mvcc_batch_open(m));
}

Test(mvcc, batch_abort_restores_everything)
{
    put("a", "1");
    put("a", "2"); /* 3 */
    put("b", "1"); /* 4 */
    put("c", "1"); /* 5 */
    put("gone", "x");
    del("gone", NONE); /* 7 */
    struct mvcc_stats before = stats();
    batch_abort_writes();
    cr_assert_eq(mvcc_revision(m), 7);
    assert_get("a", 0, "2", 2, 3, 2);
    assert_get("b", 0, "1", 4, 4, 1);
    assert_get("c", 0, "1", 5, 5, 1);
    assert_absent("new", 0);
    assert_absent("gone", 0);
    assert_keys(range("a", ALL, 0), "a,b,c");
    struct mvcc_stats after = stats();
    cr_assert_eq(after.keys_live, before.keys_live);
    cr_assert_eq(after.keys_tree, before.keys_tree);
    cr_assert_eq(after.records, before.records);
    cr_assert_eq(after.key_bytes, before.key_bytes);
    cr_assert_eq(after.value_bytes, before.value_bytes);
    cr_assert_eq(after.memory.in_use_bytes, before.memory.in_use_bytes, "abort leaks nothing");
    cr_assert(mvcc_check(m));
    cr_assert_eq(put("a", "3"), 8, "the next write takes the next revision");
    assert_get("a", 0, "3", 2, 8, 3);
    cr_assert_eq(put("new", "n"), 9);
    assert_get("new", 0, "n", 9, 9, 1);
    cr_assert(mvcc_check(m));
}

Test(mvcc, batch_without_writes_consumes_no_revision)
{
    put("a", "1");
    i64 rev = 0;
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, 2, "the unchanged current revision");
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    u64 n = 7;
    cr_assert_eq(mvcc_delete_range(m, S("x"), S("z"), &n, NULL, NULL), KEEL_OK);
    cr_assert_eq(n, 0);
    bool had;
    cr_assert_eq(mvcc_put(m, S(""), S("v"), 0, NULL, &had), KEEL_EKEY_EMPTY);
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, 2);
    cr_assert_eq(mvcc_revision(m), 2);
    cr_assert_eq(put("b", "1"), 3);
    cr_assert(mvcc_check(m));
}

/* ---- compaction --------------------------------------------------------- */

static void put_history(void)
{
    put("a", "v1"); /* 2 */
    put("a", "v2"); /* 3 */
    put("a", "v3"); /* 4 */
    put("b", "b1"); /* 5 */
    del("b", NONE); /* 6 */
    put("c", "c1"); /* 7 */
}

Test(mvcc, compaction_frees_superseded_versions)
{
    put_history();
    struct mvcc_stats s0 = stats();
    cr_assert_eq(s0.records, 6, "five versions and a tombstone");
    cr_assert_eq(s0.keys_tree, 3);
    cr_assert_eq(s0.keys_live, 2);
    cr_assert_eq(mvcc_compact(m, 4), KEEL_OK);
    cr_assert(mvcc_check(m));
    struct mvcc_stats s1 = stats();
    cr_assert_eq(s1.records, 4, "a's v1 and v2 are freed; v3 (mod 4) stays");
    cr_assert_lt(s1.memory.in_use_bytes, s0.memory.in_use_bytes);
    cr_assert_eq(s1.keys_tree, 3);
    cr_assert_eq(s1.keys_live, 2);
    struct mvcc_range_result r;
    struct mvcc_range_req q = req_of(S("a"), NONE, 3);
    cr_assert_eq(mvcc_range(m, &q, &r), KEEL_ECOMPACTED);
    assert_get("a", 4, "v3", 2, 4, 3);
    assert_keys(range("a", ALL, 4), "a");
    assert_keys(range("a", ALL, 5), "a,b");
    assert_keys(range("a", ALL, 6), "a");
    assert_keys(range("a", ALL, 7), "a,c");
    cr_assert_eq(mvcc_compact(m, 5), KEEL_OK);
    cr_assert_eq(stats().records, 4, "b's live version at 5 is the newest <= 5");
    assert_get("b", 5, "b1", 5, 5, 1);
    cr_assert(mvcc_check(m));
}

Test(mvcc, compaction_past_a_tombstone_removes_the_key)
{
    put_history();
    put("d", "d1"); /* 8 */
    del("d", NONE); /* 9 */
    put("d", "d2"); /* 10: recreated */
    struct mvcc_stats s0 = stats();
    cr_assert_eq(s0.keys_tree, 4);
    cr_assert_eq(mvcc_compact(m, 9), KEEL_OK);
    cr_assert(mvcc_check(m));
    struct mvcc_stats s1 = stats();
    cr_assert_eq(s1.keys_tree, 3, "b's tombstone (6 <= 9) went, and with it b");
    cr_assert_eq(s1.records, 3, "a v3, c1 and d2; d's tombstone went too");
    cr_assert_eq(s1.keys_live, 3);
    cr_assert_lt(s1.memory.in_use_bytes, s0.memory.in_use_bytes);
    assert_keys(range("a", ALL, 9), "a,c");
    assert_keys(range("a", ALL, 0), "a,c,d");
    assert_get("d", 10, "d2", 10, 10, 1);
    assert_absent("b", 0);
    cr_assert_eq(del("b", NONE), 0, "nothing left to delete");
    put("b", "b2");
    assert_get("b", 0, "b2", 11, 11, 1);
    cr_assert(mvcc_check(m));
}

/* A deterministic history over 40 keys: puts and single-key deletes. */
static void build_history(struct mvcc *s, u64 seed, int ops)
{
    u64 saved = rng_state;
    rng_state = seed;
    char k[16], v[48];
    for (int i = 0; i < ops; i++) {
        u64 r = rng_next();
        snprintf(k, sizeof(k), "key%02u", (unsigned)(r % 40));
        snprintf(v, sizeof(v), "val%d-%.*s", i, (int)(r >> 40) % 20, "xxxxxxxxxxxxxxxxxxxx");
        bool had;
        u64 n;
        if ((r >> 8) % 5 == 0) {
            cr_assert_eq(mvcc_delete_range(s, S(k), NONE, &n, NULL, NULL), KEEL_OK);
        } else {
            cr_assert_eq(mvcc_put(s, S(k), S(v), 0, NULL, &had), KEEL_OK);
        }
    }
    rng_state = saved;
}

static void assert_same_stats(struct mvcc *a, struct mvcc *b)
{
    struct mvcc_stats x, y;
    mvcc_stats(a, &x);
    mvcc_stats(b, &y);
    cr_assert_eq(x.revision, y.revision);
    cr_assert_eq(x.compact_revision, y.compact_revision);
    cr_assert_eq(x.keys_live, y.keys_live);
    cr_assert_eq(x.keys_tree, y.keys_tree);
    cr_assert_eq(x.records, y.records);
    cr_assert_eq(x.key_bytes, y.key_bytes);
    cr_assert_eq(x.value_bytes, y.value_bytes);
    cr_assert_eq(x.memory.in_use_bytes, y.memory.in_use_bytes);
}

static void assert_same_range(struct mvcc *a, struct mvcc *b, i64 rev)
{
    struct mvcc_range_req q = req_of(S("\x01"), ALL, rev);
    struct mvcc_range_result x, y;
    cr_assert_eq(mvcc_range(a, &q, &x), KEEL_OK);
    cr_assert_eq(mvcc_range(b, &q, &y), KEEL_OK);
    cr_assert_eq(x.kvs_len, y.kvs_len, "at revision %lld", (long long)rev);
    for (size_t i = 0; i < x.kvs_len; i++) {
        cr_assert_eq(x.kvs[i].key.len, y.kvs[i].key.len);
        cr_assert_eq(memcmp(x.kvs[i].key.ptr, y.kvs[i].key.ptr, x.kvs[i].key.len), 0);
        cr_assert_eq(x.kvs[i].value.len, y.kvs[i].value.len);
        cr_assert_eq(memcmp(x.kvs[i].value.ptr, y.kvs[i].value.ptr, x.kvs[i].value.len), 0);
        cr_assert_eq(x.kvs[i].mod_revision, y.kvs[i].mod_revision);
        cr_assert_eq(x.kvs[i].create_revision, y.kvs[i].create_revision);
        cr_assert_eq(x.kvs[i].version, y.kvs[i].version);
    }
}

Test(mvcc, compact_in_small_steps_equals_one_shot)
{
    rng_seed("mvcc::compact_in_small_steps_equals_one_shot");
    u64 seed = rng_next();
    struct mvcc *one = store_new(0, 0, 0), *ref = store_new(0, 0, 0);
    build_history(m, seed, 600);
    build_history(one, seed, 600);
    build_history(ref, seed, 600); /* never compacted: the answers */
    i64 rev = mvcc_revision(m), at = 2 + (i64)(rng_next() % (u64)(rev - 2));
    cr_assert_eq(mvcc_compact(one, at), KEEL_OK);
    cr_assert_eq(mvcc_compact_start(m, at), KEEL_OK);
    cr_assert_eq(mvcc_compact_revision(m), at, "the compact revision is set at once");
    struct mvcc_range_result r;
    struct mvcc_range_req q = req_of(S("key00"), NONE, at - 1);
    cr_assert_eq(mvcc_range(m, &q, &r), KEEL_ECOMPACTED);
    u64 steps = 0;
    while (!mvcc_compact_step(m, 1 + steps % 3)) { /* bounded: 40 keys, >= 1 per step */
        cr_assert_lt(++steps, 200, "compaction does not finish");
        cr_assert(mvcc_check(m));
        assert_same_range(m, ref, at);
        assert_same_range(m, ref, rev);
    }
    cr_assert(mvcc_check(m));
    cr_assert(mvcc_check(one));
    assert_same_stats(m, one);
    for (i64 v = at; v <= rev; v++) {
        assert_same_range(m, one, v);
        assert_same_range(m, ref, v);
    }
    mvcc_destroy(one);
    mvcc_destroy(ref);
}

Test(mvcc, compaction_steps_interleave_with_writes)
{
    rng_seed("mvcc::compaction_steps_interleave_with_writes");
    build_history(m, rng_next(), 400);
    i64 at = mvcc_revision(m) - 10;
    cr_assert_eq(mvcc_compact_start(m, at), KEEL_OK);
    char k[16];
    for (int i = 0; !mvcc_compact_step(m, 2); i++) {
        cr_assert_lt(i, 200);
        snprintf(k, sizeof(k), "key%02d", i % 40);
        put(k, "during");
        snprintf(k, sizeof(k), "new%03d", i);
        put(k, "n");
        cr_assert(mvcc_check(m));
    }
    cr_assert(mvcc_check(m));
    struct mvcc_kv kv;
    cr_assert(get("key00", 0, &kv));
    cr_assert(span_is(kv.value, "during"));
    cr_assert(get("new000", 0, &kv));
    cr_assert_eq(kv.version, 1);
    cr_assert_eq(mvcc_compact(m, mvcc_revision(m)), KEEL_OK);
    struct mvcc_stats st = stats();
    cr_assert_eq(st.records, st.keys_live, "fully compacted: one version per live key");
    cr_assert_eq(st.keys_tree, st.keys_live);
    cr_assert(mvcc_check(m));
}

/* Starting a job while one runs replaces it; the new job covers whatever the
 * old one left. */
Test(mvcc, compaction_restarted_midway_equals_one_shot)
{
    rng_seed("mvcc::compaction_restarted_midway_equals_one_shot");
    u64 seed = rng_next();
    struct mvcc *one = store_new(0, 0, 0);
    build_history(m, seed, 600);
    build_history(one, seed, 600);
    i64 rev = mvcc_revision(m), first = rev / 3, second = 2 * rev / 3;
    cr_assert_eq(mvcc_compact_start(m, first), KEEL_OK);
    cr_assert_not(mvcc_compact_step(m, 5), "40 keys take more than one step of 5");
    cr_assert(mvcc_check(m));
    cr_assert_eq(mvcc_compact_start(m, second), KEEL_OK);
    cr_assert_eq(mvcc_compact_revision(m), second);
    for (int i = 0; !mvcc_compact_step(m, 4); i++) cr_assert_lt(i, 100);
    cr_assert_eq(mvcc_compact(one, second), KEEL_OK);
    cr_assert(mvcc_check(m));
    assert_same_stats(m, one);
    for (i64 v = second; v <= rev; v++) assert_same_range(m, one, v);
    mvcc_destroy(one);
}

/* ---- stats and values --------------------------------------------------- */

Test(mvcc, stats_count_live_keys_and_their_bytes)
{
    put("ab", "xyz");
    struct mvcc_stats st = stats();
    cr_assert(st.keys_live == 1 && st.key_bytes == 2 && st.value_bytes == 3);
    put("ab", "x");
    st = stats();
    cr_assert(st.keys_live == 1 && st.key_bytes == 2 && st.value_bytes == 1,
              "only the newest version counts");
    cr_assert_eq(st.records, 2);
    put("cde", "");
    st = stats();
    cr_assert(st.keys_live == 2 && st.key_bytes == 5 && st.value_bytes == 1);
    del("ab", NONE);
    st = stats();
    cr_assert_eq(st.keys_live, 1);
    cr_assert_eq(st.keys_tree, 2, "the deleted key waits for compaction");
    cr_assert_eq(st.key_bytes, 3);
    cr_assert_eq(st.value_bytes, 0);
    cr_assert_eq(st.records, 4);
    cr_assert_eq(st.revision, 5);
    cr_assert_gt(st.memory.in_use_bytes, 0);
    cr_assert_geq(st.memory.requested_bytes, 5 + 4);
    cr_assert(mvcc_check(m));
}

Test(mvcc, large_values_round_trip)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    size_t max = c.value_size_max, mid = SLAB_SIZE_MAX + 12345;
    u8 *v = malloc(max + 1);
    for (size_t i = 0; i <= max; i++) v[i] = (u8)(i * 2654435761u >> 13);
    bool had;
    cr_assert_eq(mvcc_put(m, S("big"), span_make(v, mid), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("max"), span_make(v, max), 0, NULL, &had), KEEL_OK);
    cr_assert_eq(mvcc_put(m, S("over"), span_make(v, max + 1), 0, NULL, &had),
                 KEEL_EVALUE_TOO_LARGE);
    struct mvcc_kv kv;
    cr_assert(get("big", 0, &kv));
    cr_assert_eq(kv.value.len, mid);
    cr_assert_eq(memcmp(kv.value.ptr, v, mid), 0);
    cr_assert(get("max", 0, &kv));
    cr_assert_eq(kv.value.len, max);
    cr_assert_eq(memcmp(kv.value.ptr, v, max), 0);
    cr_assert_eq(stats().value_bytes, mid + max);
    put("big", "small");
    cr_assert_eq(mvcc_compact(m, mvcc_revision(m)), KEEL_OK);
    cr_assert_lt(stats().memory.in_use_bytes, mid + max, "the big old version is freed");
    cr_assert(mvcc_check(m));
    free(v);
}

/* ---- random history against a model ------------------------------------- */

#define MK      24   /* keys */
#define MOPS    4000 /* operations at most; each adds at most one version per key */
#define MVAL_SZ 48

struct mver {
    i64 rev, create, ver;
    u32 val;
    bool tomb;
};

static struct mver hist[MK][MOPS + 1];
static size_t hist_len[MK];
static i64 m_rev = 1, m_compact = 0;

static struct span m_key(size_t k, char *buf)
{
    snprintf(buf, 16, "/m/%02zu", k);
    return S(buf);
}

static struct span m_value(u32 id, char *buf)
{
    int n = snprintf(buf, MVAL_SZ, "v%u-%.*s", id, (int)(id % 13), "ppppppppppppp");
    return span_make(buf, (size_t)n);
}

/* The version of key k visible at rev, or NULL if absent. */
static const struct mver *m_at(size_t k, i64 rev)
{
    for (size_t i = hist_len[k]; i-- > 0;) {
        if (hist[k][i].rev <= rev) return hist[k][i].tomb ? NULL : &hist[k][i];
    }
    return NULL;
}

static void m_write(size_t k, bool tomb, u32 val)
{
    const struct mver *cur = m_at(k, m_rev);
    struct mver v = {m_rev + 1, cur ? cur->create : m_rev + 1, cur ? cur->ver + 1 : 1, val, tomb};
    cr_assert_lt(hist_len[k], MOPS + 1);
    hist[k][hist_len[k]++] = v;
}

static void m_op_puts(bool abort)
{
    size_t n = 1 + rng_next() % 4, first = rng_next() % MK;
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
    for (size_t i = 0; i < n; i++) { /* distinct keys: first, first+5, ... */
        size_t k = (first + 5 * i) % MK;
        u32 val = (u32)rng_next();
        char kb[16], vb[MVAL_SZ];
        bool had;
        cr_assert_eq(mvcc_put(m, m_key(k, kb), m_value(val, vb), 0, NULL, &had), KEEL_OK);
        cr_assert_eq(had, m_at(k, m_rev) != NULL, "had_prev for key %zu", k);
        if (!abort) m_write(k, false, val);
    }
    if (abort) {
        mvcc_batch_abort(m);
        return;
    }
    i64 rev = 0;
    cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
    cr_assert_eq(rev, ++m_rev);
}

static void m_op_delete(void)
{
    size_t lo = rng_next() % MK, hi = lo + rng_next() % 4, live = 0;
    char kb[16], eb[16];
    struct span end = hi == lo ? NONE : m_key(hi, eb); /* hi may be MK: past the keys */
    for (size_t k = lo; k < KEEL_MAX(hi, lo + 1) && k < MK; k++) {
        if (m_at(k, m_rev) == NULL) continue;
        m_write(k, true, 0);
        live++;
    }
    u64 n = 99;
    cr_assert_eq(mvcc_delete_range(m, m_key(lo, kb), end, &n, NULL, NULL), KEEL_OK);
    cr_assert_eq(n, live);
    if (live > 0) m_rev++;
    cr_assert_eq(mvcc_revision(m), m_rev);
}

static void m_op_compact(void)
{
    if (m_compact >= m_rev) return;
    i64 c = m_compact + 1 + (i64)(rng_next() % (u64)(m_rev - m_compact));
    if (rng_next() % 2) {
        cr_assert_eq(mvcc_compact(m, c), KEEL_OK);
    } else {
        cr_assert_eq(mvcc_compact_start(m, c), KEEL_OK);
        for (int i = 0; !mvcc_compact_step(m, 3); i++) cr_assert_lt(i, MK);
    }
    m_compact = c;
}

static void m_check_range(i64 rev)
{
    struct mvcc_range_result r = range("/m/", ALL, rev);
    size_t j = 0;
    for (size_t k = 0; k < MK; k++) {
        const struct mver *v = m_at(k, rev);
        if (v == NULL) continue;
        char kb[16], vb[MVAL_SZ];
        cr_assert_lt(j, r.kvs_len, "key %zu missing at revision %lld", k, (long long)rev);
        const struct mvcc_kv *kv = &r.kvs[j++];
        struct span key = m_key(k, kb), val = m_value(v->val, vb);
        cr_assert(kv->key.len == key.len && !memcmp(kv->key.ptr, key.ptr, key.len));
        cr_assert(kv->value.len == val.len && !memcmp(kv->value.ptr, val.ptr, val.len));
        cr_assert_eq(kv->mod_revision, v->rev);
        cr_assert_eq(kv->create_revision, v->create);
        cr_assert_eq(kv->version, v->ver);
    }
    cr_assert_eq(j, r.kvs_len, "extra keys at revision %lld", (long long)rev);
    cr_assert_eq(r.count, (i64)j);
}

static void m_check_stats(void)
{
    u64 records = 0, tree = 0, live = 0;
    for (size_t k = 0; k < MK; k++) {
        size_t kept = 0;
        for (size_t i = 0; i < hist_len[k]; i++) {
            bool newer = hist[k][i].rev > m_compact;
            bool last_old = !newer && (i + 1 == hist_len[k] || hist[k][i + 1].rev > m_compact);
            if (newer || (last_old && !hist[k][i].tomb)) kept++;
        }
        records += kept;
        tree += kept > 0;
        live += m_at(k, m_rev) != NULL;
    }
    struct mvcc_stats st = stats();
    cr_assert_eq(st.records, records, "records after compaction at %lld", (long long)m_compact);
    cr_assert_eq(st.keys_tree, tree);
    cr_assert_eq(st.keys_live, live);
    cr_assert_eq(st.revision, m_rev);
    cr_assert_eq(st.compact_revision, m_compact);
}

Test(mvcc, random_history_matches_a_model)
{
    rng_seed("mvcc::random_history_matches_a_model");
    const char *env = getenv("KEEL_OPS");
    size_t ops = env ? strtoull(env, NULL, 0) : 3000;
    if (ops > MOPS) ops = MOPS;
    m_compact = mvcc_compact_revision(m);
    for (size_t i = 0; i < ops; i++) {
        u64 r = rng_next() % 100;
        i64 lo = KEEL_MAX(m_compact, 1);
        if (r < 55)
            m_op_puts(false);
        else if (r < 60)
            m_op_puts(true);
        else if (r < 80)
            m_op_delete();
        else if (r < 82)
            m_op_compact();
        else
            m_check_range(lo + (i64)(rng_next() % (u64)(m_rev - lo + 1)));
        if (i % 250 == 0) {
            cr_assert(mvcc_check(m), "after %zu ops", i);
            m_check_stats();
        }
    }
    for (i64 rev = KEEL_MAX(m_compact, 1); rev <= m_rev; rev++) m_check_range(rev);
    m_check_stats();
    cr_assert(mvcc_check(m));
}

/* ---- memory budget ------------------------------------------------------ */

static struct mvcc *store_tight(u64 bytes)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    c.memory_bytes_max = bytes;
    struct mvcc *s = mvcc_create(&c);
    cr_assert_not_null(s, "a store with a %llu-byte budget", (unsigned long long)bytes);
    return s;
}

/* Puts 1 KiB values under new keys until the budget is spent; returns how
 * many fit. A failed put changes nothing. */
static int fill_until_enomem(char *val, size_t val_len)
{
    char k[16];
    for (int i = 0; i < 100000; i++) { /* bounded: 4 MiB / 1 KiB puts */
        snprintf(k, sizeof(k), "fill%05d", i);
        struct mvcc_stats before = stats();
        bool had;
        int rc = mvcc_put(m, S(k), span_make(val, val_len), 0, NULL, &had);
        if (rc == KEEL_OK) continue;
        cr_assert_eq(rc, KEEL_ENOMEM);
        struct mvcc_stats after = stats();
        cr_assert_eq(after.revision, before.revision);
        cr_assert_eq(after.records, before.records);
        cr_assert_eq(after.keys_tree, before.keys_tree);
        cr_assert_eq(after.memory.in_use_bytes, before.memory.in_use_bytes);
        assert_absent(k, 0);
        return i;
    }
    cr_assert_fail("the budget never ran out");
    return 0;
}

Test(mvcc, enomem_leaves_the_store_as_it_was)
{
    mvcc_destroy(m);
    m = store_tight(4 * MiB);
    static char val[1024];
    memset(val, 'v', sizeof(val));
    bool had;
    cr_assert_eq(mvcc_batch_begin(m), KEEL_OK); /* in a batch: earlier writes stay */
    int rc = KEEL_OK, i;
    char k[16];
    for (i = 0; rc == KEEL_OK && i < 10000; i++) { /* bounded: 4 MiB / 1 KiB puts */
        snprintf(k, sizeof(k), "more%04d", i);
        rc = mvcc_put(m, S(k), span_make(val, sizeof(val)), 0, NULL, &had);
    }
    cr_assert_eq(rc, KEEL_ENOMEM);
    cr_assert(mvcc_batch_open(m), "a failed write keeps the batch open");
    mvcc_batch_abort(m);
    cr_assert_eq(mvcc_revision(m), 1);
    cr_assert_eq(stats().records, 0);
    cr_assert(mvcc_check(m));
    int n = fill_until_enomem(val, sizeof(val));
    cr_assert_gt(n, 100);
    cr_assert_geq(n, i - 2, "the aborted batch gave its memory back");
    cr_assert(mvcc_check(m));
    cr_assert_eq(stats().keys_live, (u64)n);
    cr_assert_eq(mvcc_revision(m), 1 + n);
    struct mvcc_kv kv;
    cr_assert(get("fill00000", 0, &kv));
    cr_assert_eq(kv.value.len, sizeof(val));
    u64 deleted = 0;
    rc = mvcc_delete_range(m, S("fill"), S("film"), &deleted, NULL, NULL);
    if (rc == KEEL_ENOMEM) { /* tombstones need memory too: then nothing is deleted */
        cr_assert_eq(stats().keys_live, (u64)n);
        cr_assert_eq(mvcc_revision(m), 1 + n);
        cr_assert_eq(deleted, 0, "*deleted is 0 after an error");
    } else {
        cr_assert_eq(rc, KEEL_OK);
        cr_assert_eq(deleted, (u64)n);
        cr_assert_eq(stats().keys_live, 0);
    }
    cr_assert(mvcc_check(m));
}

/* ---- the single-key fast path against the general walk -------------------- */

#define PK     400 /* keys in the pool */
#define PK_MAX 64  /* the store's key_size_max: longer probes are KEY_TOO_LARGE */

static u8 pool[PK][PK_MAX + 2];
static size_t pool_len[PK];

/* Keys that tie often in the tree's 8-byte heads: a few byte values, shared
 * prefixes, keys that are prefixes of others and keys with trailing zeros. */
static void pool_fill(void)
{
    static const u8 alphabet[] = {0x00, 0x01, 'a', 'b', 0xff};
    for (size_t i = 0; i < PK; i++) {
        u64 r = rng_next();
        if (i > 0 && r % 4 == 0) { /* a neighbour: another key, cut or extended */
            size_t j = (size_t)(r >> 8) % i, len = pool_len[j];
            memcpy(pool[i], pool[j], len);
            if ((r >> 20) % 2 && len > 1)
                len -= 1 + (size_t)(r >> 24) % (len - 1);
            else if (len < PK_MAX)
                pool[i][len++] = alphabet[(r >> 28) % sizeof(alphabet)];
            pool_len[i] = len;
            continue;
        }
        size_t len = 1 + (size_t)(r % 3 == 0 ? (r >> 8) % PK_MAX : (r >> 8) % 20);
        for (size_t b = 0; b < len; b++) pool[i][b] = alphabet[rng_next() % sizeof(alphabet)];
        pool_len[i] = len;
    }
}

static struct span pool_key(void)
{
    size_t i = (size_t)(rng_next() % PK);
    return span_make(pool[i], pool_len[i]);
}

/* A probe: mostly pool keys, some absent neighbours, empty and too long keys. */
static struct span probe_key(u8 *buf)
{
    u64 r = rng_next() % 100;
    if (r == 0) return span_make(buf, 0);
    if (r == 1) {
        memset(buf, 'a', PK_MAX + 1);
        return span_make(buf, PK_MAX + 1);
    }
    struct span k = pool_key();
    memcpy(buf, k.ptr, k.len);
    if (r < 10) return span_make(buf, k.len - 1); /* maybe empty, maybe another key */
    if (r < 20) {
        buf[k.len] = (u8)(rng_next() % 3);
        return span_make(buf, k.len + 1); /* maybe too long */
    }
    return span_make(buf, k.len);
}

static i64 probe_rev(void)
{
    i64 cur = mvcc_revision(m), comp = mvcc_compact_revision(m);
    switch (rng_next() % 8) {
    case 0:
        return 0;
    case 1:
        return cur + 1 + (i64)(rng_next() % 3); /* future; inside a batch maybe not */
    case 2:
        return comp > 0 ? comp - (i64)(rng_next() % 2) : -1; /* compacted or negative */
    case 3:
        return cur;
    default:
        return comp + (i64)(rng_next() % (u64)(cur - comp + 1));
    }
}

static i64 probe_filter(i64 rev)
{
    return rng_next() % 3 ? 0 : (i64)(rng_next() % (u64)(rev + 3));
}

static struct mvcc_range_req probe_req(u8 *buf)
{
    struct mvcc_range_req q = req_of(probe_key(buf), NONE, probe_rev());
    i64 cur = mvcc_revision(m);
    u64 r = rng_next();
    q.limit = (i64)(r % 4) - (r % 23 == 0); /* -1 .. 3 */
    q.keys_only = (r >> 4) % 2;
    q.count_only = (r >> 5) % 4 == 0;
    q.sort_order = (enum mvcc_sort_order)((r >> 8) % 4);    /* 3: invalid */
    q.sort_target = (enum mvcc_sort_target)((r >> 12) % 6); /* 5: invalid */
    q.min_mod_revision = probe_filter(cur);
    q.max_mod_revision = probe_filter(cur);
    q.min_create_revision = probe_filter(cur);
    q.max_create_revision = probe_filter(cur);
    return q;
}

/* Runs q on both paths and asserts equal results (the fast path's kvs are
 * copied first: both paths fill the same scratch array). */
static void assert_fast_equals_general(const struct mvcc_range_req *q, u64 seed, size_t op)
{
    struct mvcc_range_result f, g;
    int rc_f = mvcc_range(m, q, &f);
    struct mvcc_kv kv_f = {0};
    if (f.kvs_len == 1) kv_f = f.kvs[0];
    int rc_g = mvcc_range_general(m, q, &g);
    cr_assert_eq(rc_f, rc_g, "seed %llu op %zu: rc %s vs %s", (unsigned long long)seed, op,
                 keel_err_str(rc_f), keel_err_str(rc_g));
    cr_assert_eq(f.count, g.count, "seed %llu op %zu: count", (unsigned long long)seed, op);
    cr_assert_eq(f.more, g.more, "seed %llu op %zu: more", (unsigned long long)seed, op);
    cr_assert_eq(f.revision, g.revision);
    cr_assert_eq(f.kvs_len, g.kvs_len, "seed %llu op %zu: kvs", (unsigned long long)seed, op);
    cr_assert_eq(f.kvs == NULL, g.kvs == NULL);
    if (g.kvs_len == 0) return;
    cr_assert_eq(g.kvs_len, 1);
    const struct mvcc_kv *kv_g = &g.kvs[0];
    cr_assert(kv_f.key.ptr == kv_g->key.ptr && kv_f.key.len == kv_g->key.len);
    cr_assert(kv_f.value.ptr == kv_g->value.ptr && kv_f.value.len == kv_g->value.len,
              "seed %llu op %zu: value", (unsigned long long)seed, op);
    cr_assert(btree_key_cmp(kv_f.key, q->key) == 0);
    cr_assert_eq(kv_f.create_revision, kv_g->create_revision);
    cr_assert_eq(kv_f.mod_revision, kv_g->mod_revision);
    cr_assert_eq(kv_f.version, kv_g->version);
    cr_assert_eq(kv_f.lease, kv_g->lease);
}

static void fast_op_write(void)
{
    u64 r = rng_next();
    char vb[MVAL_SZ];
    bool had;
    u64 n;
    struct span k = pool_key();
    int rc;
    if (r % 5 == 0) {
        struct span end = r % 20 == 0 ? pool_key() : NONE; /* few ranges: they clear a lot */
        rc = mvcc_delete_range(m, k, end, &n, NULL, NULL);
    } else {
        i64 lease = (r >> 8) % 4 == 0 ? (i64)(r >> 32) : 0;
        rc = mvcc_put(m, k, m_value((u32)(r >> 16), vb), lease, NULL, &had);
    }
    /* Inside a batch a key is written once and the batch is bounded (64). */
    cr_assert(rc == KEEL_OK || rc == KEEL_EDUPLICATE_KEY || rc == KEEL_ETOO_MANY_OPS, "write: %s",
              keel_err_str(rc));
}

static void fast_op_compact(void)
{
    i64 cur = mvcc_revision(m), comp = mvcc_compact_revision(m);
    if (comp >= cur) return;
    i64 c = comp + 1 + (i64)(rng_next() % (u64)(cur - comp));
    if (rng_next() % 2) {
        cr_assert_eq(mvcc_compact(m, c), KEEL_OK);
        return;
    }
    cr_assert_eq(mvcc_compact_start(m, c), KEEL_OK);
    for (int i = 0; i < 5 && !mvcc_compact_step(m, 7); i++) continue; /* left running */
}

Test(mvcc, point_get_equals_general)
{
    rng_seed("mvcc::point_get_equals_general");
    u64 seed = rng_state;
    const char *env = getenv("KEEL_OPS");
    size_t ops = env ? strtoull(env, NULL, 0) : 6000;
    mvcc_destroy(m);
    m = store_new(PK_MAX, 0, 64);
    pool_fill();
    u8 buf[PK_MAX + 2];
    u64 keys_tree_max = 0;
    for (size_t i = 0; i < ops; i++) {
        u64 r = rng_next() % 100;
        if (i % 64 == 0) keys_tree_max = KEEL_MAX(keys_tree_max, stats().keys_tree);
        if (r < 40) {
            fast_op_write();
        } else if (r < 44 && !mvcc_batch_open(m)) {
            cr_assert_eq(mvcc_batch_begin(m), KEEL_OK);
        } else if (r < 47 && mvcc_batch_open(m)) {
            i64 rev;
            if (r % 2)
                mvcc_batch_abort(m);
            else
                cr_assert_eq(mvcc_batch_commit(m, &rev), KEEL_OK);
        } else if (r < 49 && !mvcc_batch_open(m)) {
            fast_op_compact();
        } else {
            struct mvcc_range_req q = probe_req(buf);
            assert_fast_equals_general(&q, seed, i);
        }
    }
    if (mvcc_batch_open(m)) mvcc_batch_abort(m);
    cr_assert(mvcc_check(m));
    cr_assert_gt(keys_tree_max, 2 * BTREE_LEAF_CAP, "the workload built a tree of several levels");
}
