/*
 * test_server_ops.c — a real keeld (2 shards) driven through libkeel: every operation and
 * option on the router port and in shard-aware mode, ranges merged across shards, the
 * cross-shard and wrong-shard refusals, and a restart on the same data dir.
 *
 * Keys: "!..." belong to shard 0 and "~..." to shard 1 under the default split (the setup
 * asserts it from the shard map). Each test runs against its own keeld (keeld_proc.h).
 */
#include "client/keel.h"
#include "keeld_proc.h"
#include "raw_conn.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct keeld_proc kp;
static keel_client *router; /* the router port only */
static keel_client *aware;  /* shard_aware: shard ports */

/* ---- helpers ---------------------------------------------------------------------------- */

/* Asserts a libkeel call's status, naming both statuses when it differs. */
#define ASSERT_STATUS(call, want)                                                                 \
    do {                                                                                          \
        int st_ = (call);                                                                         \
        cr_assert_eq(st_, (want), "%s: got %s (%d), expected %s", #call, keel_strerror(st_), st_, \
                     keel_strerror(want));                                                        \
    } while (0)

#define EXPECT_STATUS(call, want)                                                                 \
    do {                                                                                          \
        int st_ = (call);                                                                         \
        cr_expect_eq(st_, (want), "%s: got %s (%d), expected %s", #call, keel_strerror(st_), st_, \
                     keel_strerror(want));                                                        \
    } while (0)

static struct keel_bytes B(const char *s) {
    struct keel_bytes b = {s, strlen(s)};
    return b;
}

static bool
span_is(const uint8_t *p, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(p, s, len) == 0;
}

static keel_client *connect_to(uint16_t port, bool shard_aware)
{
    char ep[48];
    snprintf(ep, sizeof(ep), "127.0.0.1:%u", (unsigned)port);
    struct keel_options o;
    keel_options_default(&o);
    o.timeout_ms = 10000;
    o.shard_aware = shard_aware;
    keel_client *c = NULL;
    int rc = keel_connect(ep, &o, &c);
    cr_assert_eq(rc, KEEL_STATUS_OK, "connect %s: %s", ep, keel_strerror(rc));
    return c;
}

/* The shard owning key per the server's map (-1 if no range holds it). */
static int map_shard_of(const struct keel_shard_map_result *m, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < m->shards_len; i++) {
        const struct keel_shard_range *r = &m->shards[i];
        size_t sl = r->start_key_len, el = r->end_key_len;
        int ge = sl == 0 || memcmp(key, r->start_key, n < sl ? n : sl) > 0 ||
                 (memcmp(key, r->start_key, n < sl ? n : sl) == 0 && n >= sl);
        int lt = el == 0 || memcmp(key, r->end_key, n < el ? n : el) < 0 ||
                 (memcmp(key, r->end_key, n < el ? n : el) == 0 && n < el);
        if (ge && lt) return r->shard_id;
    }
    return -1;
}

static void start_server(void)
{
    memset(&kp, 0, sizeof(kp));
    kp.shards = 2;
    cr_assert_eq(keeld_start(&kp), 0, "keeld did not start");
    router = connect_to(kp.port, false);
    aware = connect_to(kp.port, true);
    struct keel_result r;
    ASSERT_STATUS(keel_shard_map(router, &r), KEEL_STATUS_OK);
    cr_assert_eq(map_shard_of(&r.u.shard_map, "!x"), 0, "'!' keys must be on shard 0");
    cr_assert_eq(map_shard_of(&r.u.shard_map, "~x"), 1, "'~' keys must be on shard 1");
}

static void stop_server(void)
{
    if (router) keel_close(router);
    if (aware) keel_close(aware);
    router = aware = NULL;
    int st = keeld_stop(&kp);
    keeld_cleanup(&kp);
    cr_assert(keeld_exited_cleanly(st), "keeld did not exit 0 on SIGTERM (wait status 0x%x)", st);
}

static int64_t put_ok(keel_client *c, const char *key, const char *value)
{
    struct keel_put_args a = {.key = B(key), .value = B(value)};
    struct keel_result r;
    int rc = keel_put(c, &a, &r);
    cr_assert_eq(rc, KEEL_STATUS_OK, "put %s: %s", key, keel_strerror(rc));
    return r.header.revision;
}

static struct keel_range_args range_of(const char *key, const char *end)
{
    struct keel_range_args a;
    memset(&a, 0, sizeof(a));
    a.key = B(key);
    a.range_end = end ? B(end) : B("");
    return a;
}

/* Single-key get; returns the kv count (0 or 1) and fills *kv when 1. */
static size_t get_one(keel_client *c, const char *key, struct keel_kv *kv)
{
    struct keel_range_args a = range_of(key, NULL);
    struct keel_result r;
    int rc = keel_get(c, &a, &r);
    cr_assert_eq(rc, KEEL_STATUS_OK, "get %s: %s", key, keel_strerror(rc));
    cr_assert_leq(r.u.range.kvs_len, 1);
    if (r.u.range.kvs_len == 1 && kv) *kv = r.u.range.kvs[0];
    return r.u.range.kvs_len;
}

static bool get_value_is(keel_client *c, const char *key, const char *value)
{
    struct keel_kv kv;
    if (get_one(c, key, &kv) != 1) return false;
    return span_is(kv.value, kv.value_len, value);
}

/* The keys of a range result joined by ',' into out. */
static const char *keys_of(const struct keel_range_result *r, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = 0;
    for (size_t i = 0; i < r->kvs_len && n + r->kvs[i].key_len + 2 < cap; i++) {
        if (i > 0) out[n++] = ',';
        memcpy(out + n, r->kvs[i].key, r->kvs[i].key_len);
        n += r->kvs[i].key_len;
        out[n] = 0;
    }
    return out;
}

static int64_t shard_revision(keel_client *c, uint16_t shard)
{
    struct keel_result r;
    ASSERT_STATUS(keel_status(c, &r), KEEL_STATUS_OK);
    for (size_t i = 0; i < r.u.status.shards_len; i++)
        if (r.u.status.shards[i].shard_id == shard) return r.u.status.shards[i].revision;
    cr_assert_fail("shard %u missing from STATUS", shard);
    return -1;
}

/* No Criterion .timeout: its watchdog leaks under ASan with --jobs 2; ctest's TIMEOUT bounds
 * the binary, and every wait in these tests has its own bound (libkeel's timeout_ms). */
TestSuite(ops, .init = start_server, .fini = stop_server);

/* ---- put ---------------------------------------------------------------------------------- */

static void check_put(keel_client *c, const char *key, int shard)
{
    struct keel_put_args a = {.key = B(key), .value = B("v1"), .prev_kv = true};
    struct keel_result r;
    ASSERT_STATUS(keel_put(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_not(r.u.put.has_prev_kv, "a new key has no prev_kv");
    cr_assert_eq(r.header.shard, shard, "put executed on shard %u", r.header.shard);
    int64_t rev1 = r.header.revision;
    cr_assert_gt(rev1, 1);

    a.value = B("v2");
    ASSERT_STATUS(keel_put(c, &a, &r), KEEL_STATUS_OK);
    int64_t rev2 = r.header.revision;
    cr_assert_eq(rev2, rev1 + 1, "each put takes the next revision of its shard");
    cr_assert(r.u.put.has_prev_kv);
    struct keel_kv *p = &r.u.put.prev_kv;
    cr_assert(span_is(p->key, p->key_len, key));
    cr_assert(span_is(p->value, p->value_len, "v1"));
    cr_assert_eq(p->create_revision, rev1);
    cr_assert_eq(p->mod_revision, rev1);
    cr_assert_eq(p->version, 1);

    a.prev_kv = false;
    a.value = B("v3");
    ASSERT_STATUS(keel_put(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_not(r.u.put.has_prev_kv, "prev_kv not asked for");
    struct keel_kv kv;
    cr_assert_eq(get_one(c, key, &kv), 1);
    cr_assert(span_is(kv.value, kv.value_len, "v3"));
    cr_assert_eq(kv.create_revision, rev1);
    cr_assert_eq(kv.mod_revision, rev2 + 1);
    cr_assert_eq(kv.version, 3);
    cr_assert_eq(kv.lease, 0);

    a.value = B(""); /* an empty value is allowed */
    ASSERT_STATUS(keel_put(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(get_one(c, key, &kv), 1);
    cr_assert_eq(kv.value_len, 0);
    cr_assert_eq(kv.version, 4);
}

Test(ops, put_prev_kv_both_modes)
{
    check_put(router, "!put/r", 0);
    check_put(router, "~put/r", 1);
    check_put(aware, "!put/a", 0);
    check_put(aware, "~put/a", 1);
}

/* ---- get ---------------------------------------------------------------------------------- */

/* Three keys under pfx whose order differs by every sort target:
 *   key  value  version  created  last modified
 *   a    "c"    1        3rd      1st
 *   b    "a"    3        1st      3rd
 *   c    "b"    2        2nd      2nd
 */
static void load_sort_data(keel_client *c, const char *pfx)
{
    char a[32], b[32], k3[32];
    snprintf(a, sizeof(a), "%sa", pfx);
    snprintf(b, sizeof(b), "%sb", pfx);
    snprintf(k3, sizeof(k3), "%sc", pfx);
    put_ok(c, b, "x");  /* b created 1st */
    put_ok(c, k3, "x"); /* c created 2nd */
    put_ok(c, a, "c");  /* a created 3rd, version 1, mod 3rd */
    put_ok(c, b, "x");  /* b version 2 */
    put_ok(c, k3, "b"); /* c version 2, value b */
    put_ok(c, b, "a");  /* b version 3, value a, mod last */
}

struct sort_case {
    enum keel_sort_order order;
    enum keel_sort_target target;
    const char *keys; /* suffixes, in the expected order */
};

static void check_sorts(keel_client *c, const char *pfx, const char *end)
{
    static const struct sort_case cases[] = {
        {KEEL_SORT_NONE, KEEL_SORT_KEY, "abc"},        {KEEL_SORT_ASCEND, KEEL_SORT_KEY, "abc"},
        {KEEL_SORT_DESCEND, KEEL_SORT_KEY, "cba"},     {KEEL_SORT_ASCEND, KEEL_SORT_VERSION, "acb"},
        {KEEL_SORT_DESCEND, KEEL_SORT_VERSION, "bca"}, {KEEL_SORT_ASCEND, KEEL_SORT_CREATE, "bca"},
        {KEEL_SORT_DESCEND, KEEL_SORT_CREATE, "acb"},  {KEEL_SORT_ASCEND, KEEL_SORT_MOD, "acb"},
        {KEEL_SORT_DESCEND, KEEL_SORT_MOD, "bca"},     {KEEL_SORT_ASCEND, KEEL_SORT_VALUE, "bca"},
        {KEEL_SORT_DESCEND, KEEL_SORT_VALUE, "acb"},   {KEEL_SORT_NONE, KEEL_SORT_VALUE, "bca"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct keel_range_args a = range_of(pfx, end);
        a.sort_order = cases[i].order;
        a.sort_target = cases[i].target;
        struct keel_result r;
        ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
        char want[64], got[64];
        snprintf(want, sizeof(want), "%s%c,%s%c,%s%c", pfx, cases[i].keys[0], pfx, cases[i].keys[1],
                 pfx, cases[i].keys[2]);
        keys_of(&r.u.range, got, sizeof(got));
        cr_assert_str_eq(got, want, "sort order %d target %d", cases[i].order, cases[i].target);
    }
}

static void check_get_options(keel_client *c, const char *pfx, const char *end)
{
    char k[32], got[128];
    struct keel_result r;
    struct keel_range_args a = range_of(pfx, end);
    snprintf(k, sizeof(k), "%sa", pfx);
    int64_t rev_before = shard_revision(c, pfx[0] == '!' ? 0 : 1);
    put_ok(c, k, "new");
    /* at a revision: the old value */
    struct keel_range_args ar = range_of(k, NULL);
    ar.revision = rev_before;
    ASSERT_STATUS(keel_get(c, &ar, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 1);
    cr_assert(span_is(r.u.range.kvs[0].value, r.u.range.kvs[0].value_len, "c"));
    cr_assert(get_value_is(c, k, "new"));
    /* limit with more */
    a.limit = 2;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 2);
    cr_assert(r.u.range.more);
    cr_assert_eq(r.u.range.count, 3);
    a.limit = 3;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 3);
    cr_assert_not(r.u.range.more);
    a.limit = 0;
    /* keys_only */
    a.keys_only = true;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 3);
    for (size_t i = 0; i < 3; i++) cr_assert_eq(r.u.range.kvs[i].value_len, 0);
    cr_assert_gt(r.u.range.kvs[0].version, 0, "keys_only keeps the metadata");
    a.keys_only = false;
    /* count_only */
    a.count_only = true;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 0);
    cr_assert_eq(r.u.range.count, 3);
    a.count_only = false;
    /* serializable reads the same thing on one node */
    a.serializable = true;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 3);
    a.serializable = false;
    /* min/max mod revision: only the key just written */
    a.min_mod_revision = rev_before + 1;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), k);
    cr_assert_eq(r.u.range.count, 3, "count is before the filters");
    a.min_mod_revision = 0;
    a.max_mod_revision = rev_before;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 2);
    a.max_mod_revision = 0;
    /* create revision filters: p/b was created first */
    struct keel_kv kvb;
    snprintf(k, sizeof(k), "%sb", pfx);
    cr_assert_eq(get_one(c, k, &kvb), 1);
    a.max_create_revision = kvb.create_revision;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), k);
    a.max_create_revision = 0;
    a.min_create_revision = kvb.create_revision + 1;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 2);
}

static void check_get_shapes(keel_client *c, const char *pfx)
{
    char k[32], from[32], got[128], end[32];
    struct keel_result r;
    /* single key, missing key */
    snprintf(k, sizeof(k), "%sc", pfx);
    cr_assert(get_value_is(c, k, "b"));
    snprintf(k, sizeof(k), "%szz", pfx);
    cr_assert_eq(get_one(c, k, NULL), 0);
    /* [a, c) */
    snprintf(k, sizeof(k), "%sa", pfx);
    snprintf(end, sizeof(end), "%sc", pfx);
    struct keel_range_args a = range_of(k, end);
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    snprintf(from, sizeof(from), "%sa,%sb", pfx, pfx);
    cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), from);
    cr_assert_eq(r.u.range.count, 2);
    /* from key b: every key >= b ("\0"); the prefix is the only data of its shard above b */
    snprintf(k, sizeof(k), "%sb", pfx);
    struct keel_range_args af = range_of(k, NULL);
    af.range_end.ptr = "";
    af.range_end.len = 1;
    ASSERT_STATUS(keel_get(c, &af, &r), KEEL_STATUS_OK);
    cr_assert_geq(r.u.range.kvs_len, 2);
    snprintf(from, sizeof(from), "%sb", pfx);
    cr_assert(span_is(r.u.range.kvs[0].key, r.u.range.kvs[0].key_len, from));
    snprintf(from, sizeof(from), "%sc", pfx);
    cr_assert(span_is(r.u.range.kvs[1].key, r.u.range.kvs[1].key_len, from));
}

/* The prefix range end of pfx: its last byte incremented. */
static void prefix_end(const char *pfx, char *end, size_t cap)
{
    snprintf(end, cap, "%s", pfx);
    end[strlen(end) - 1]++;
}

static void check_get(keel_client *c, const char *pfx)
{
    char end[32];
    prefix_end(pfx, end, sizeof(end));
    load_sort_data(c, pfx);
    check_sorts(c, pfx, end);
    check_get_shapes(c, pfx);
    check_get_options(c, pfx, end);
}

Test(ops, get_every_option_router)
{
    check_get(router, "!gr/");
    check_get(router, "~gr/");
}

Test(ops, get_every_option_shard_aware)
{
    check_get(aware, "!ga/");
    check_get(aware, "~ga/");
}

Test(ops, get_all_keys_and_revision_errors)
{
    put_ok(router, "!all1", "1");
    put_ok(router, "~all2", "2");
    struct keel_range_args a;
    memset(&a, 0, sizeof(a));
    a.key.ptr = "";
    a.key.len = 1;
    a.range_end.ptr = "";
    a.range_end.len = 1;
    struct keel_result r;
    for (int m = 0; m < 2; m++) {
        keel_client *c = m ? aware : router;
        cr_assert_eq(keel_get(c, &a, &r), KEEL_STATUS_OK, "all keys (mode %d)", m);
        char got[64];
        cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), "!all1,~all2");
        cr_assert_eq(r.u.range.count, 2);
        cr_assert_eq(r.header.shard, 65535, "a merged range is answered by the router");
    }
    /* FUTURE_REV: detail = current revision */
    int64_t cur = shard_revision(router, 0);
    struct keel_range_args f = range_of("!all1", NULL);
    f.revision = cur + 100;
    for (int m = 0; m < 2; m++) {
        keel_client *c = m ? aware : router;
        ASSERT_STATUS(keel_get(c, &f, &r), KEEL_STATUS_FUTURE_REV);
        cr_assert_eq(r.error.detail, (uint64_t)cur);
    }
}

/* ---- delete -------------------------------------------------------------------------------- */

static void check_delete(keel_client *c, const char *pfx, int shard)
{
    char k[32], k2[32], k3[32], end[32];
    snprintf(k, sizeof(k), "%s1", pfx);
    snprintf(k2, sizeof(k2), "%s2", pfx);
    snprintf(k3, sizeof(k3), "%s3", pfx);
    put_ok(c, k, "one");
    put_ok(c, k2, "two");
    int64_t rev = put_ok(c, k3, "three");
    struct keel_result r;
    /* single, no prev_kv */
    struct keel_delete_args d = {.key = B(k)};
    ASSERT_STATUS(keel_delete(c, &d, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.del.deleted, 1);
    cr_assert_eq(r.u.del.prev_kvs_len, 0);
    cr_assert_eq(r.header.revision, rev + 1);
    cr_assert_eq(r.header.shard, shard);
    cr_assert_eq(get_one(c, k, NULL), 0);
    /* missing key: nothing deleted, revision unchanged */
    ASSERT_STATUS(keel_delete(c, &d, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.del.deleted, 0);
    cr_assert_eq(r.header.revision, rev + 1);
    /* range with prev_kv */
    prefix_end(pfx, end, sizeof(end));
    struct keel_delete_args dr = {.key = B(pfx), .range_end = B(end), .prev_kv = true};
    ASSERT_STATUS(keel_delete(c, &dr, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.del.deleted, 2);
    cr_assert_eq(r.u.del.prev_kvs_len, 2);
    cr_assert(span_is(r.u.del.prev_kvs[0].key, r.u.del.prev_kvs[0].key_len, k2));
    cr_assert(span_is(r.u.del.prev_kvs[0].value, r.u.del.prev_kvs[0].value_len, "two"));
    cr_assert(span_is(r.u.del.prev_kvs[1].key, r.u.del.prev_kvs[1].key_len, k3));
    cr_assert_eq(r.u.del.prev_kvs[1].mod_revision, rev);
    cr_assert_eq(r.header.revision, rev + 2, "one delete, one revision");
    struct keel_range_args a = range_of(pfx, end);
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.count, 0);
    /* a deleted key comes back at version 1 */
    put_ok(c, k2, "again");
    struct keel_kv kv;
    cr_assert_eq(get_one(c, k2, &kv), 1);
    cr_assert_eq(kv.version, 1);
}

Test(ops, delete_single_range_prev_kv)
{
    check_delete(router, "!dr/", 0);
    check_delete(router, "~dr/", 1);
    check_delete(aware, "!da/", 0);
    check_delete(aware, "~da/", 1);
}

/* ---- txn ----------------------------------------------------------------------------------- */

static struct keel_compare cmp_int(enum keel_compare_target t, enum keel_compare_result res,
                                   const char *key, int64_t operand)
{
    struct keel_compare c;
    memset(&c, 0, sizeof(c));
    c.target = t;
    c.result = res;
    c.key = B(key);
    c.operand = operand;
    return c;
}

static struct keel_op op_put(const char *key, const char *value)
{
    struct keel_op o;
    memset(&o, 0, sizeof(o));
    o.kind = KEEL_OP_PUT;
    o.u.put.key = B(key);
    o.u.put.value = B(value);
    return o;
}

static struct keel_op op_get(const char *key)
{
    struct keel_op o;
    memset(&o, 0, sizeof(o));
    o.kind = KEEL_OP_RANGE;
    o.u.range = range_of(key, NULL);
    return o;
}

/* Runs a txn with one compare and a put per branch; returns whether it succeeded. */
static bool txn_branch(keel_client *c, struct keel_compare cmp, const char *mark_key)
{
    struct keel_op s = op_put(mark_key, "success"), f = op_put(mark_key, "failure");
    struct keel_txn_args t = {.compares = &cmp,
                              .compares_len = 1,
                              .success = &s,
                              .success_len = 1,
                              .failure = &f,
                              .failure_len = 1};
    struct keel_result r;
    int rc = keel_txn(c, &t, &r);
    cr_assert_eq(rc, KEEL_STATUS_OK, "txn: %s", keel_strerror(rc));
    cr_assert_eq(r.u.txn.replies_len, 1);
    cr_assert_eq(r.u.txn.replies[0].kind, KEEL_OP_PUT);
    cr_assert(get_value_is(c, mark_key, r.u.txn.succeeded ? "success" : "failure"),
              "the branch that ran wrote its value");
    return r.u.txn.succeeded;
}

static void check_txn_compares(keel_client *c, const char *k, const char *mark)
{
    struct keel_kv kv;
    put_ok(c, k, "m");
    put_ok(c, k, "m"); /* version 2 */
    cr_assert_eq(get_one(c, k, &kv), 1);
    const int64_t vals[3] = {kv.version, kv.create_revision, kv.mod_revision};
    const enum keel_compare_target tg[3] = {KEEL_CMP_VERSION, KEEL_CMP_CREATE, KEEL_CMP_MOD};
    for (int i = 0; i < 3; i++) {
        int64_t v = vals[i];
        cr_assert(txn_branch(c, cmp_int(tg[i], KEEL_CMP_EQUAL, k, v), mark));
        cr_assert_not(txn_branch(c, cmp_int(tg[i], KEEL_CMP_EQUAL, k, v + 1), mark));
        cr_assert(txn_branch(c, cmp_int(tg[i], KEEL_CMP_GREATER, k, v - 1), mark));
        cr_assert_not(txn_branch(c, cmp_int(tg[i], KEEL_CMP_GREATER, k, v), mark));
        cr_assert(txn_branch(c, cmp_int(tg[i], KEEL_CMP_LESS, k, v + 1), mark));
        cr_assert_not(txn_branch(c, cmp_int(tg[i], KEEL_CMP_LESS, k, v), mark));
        cr_assert(txn_branch(c, cmp_int(tg[i], KEEL_CMP_NOT_EQUAL, k, v + 1), mark));
        cr_assert_not(txn_branch(c, cmp_int(tg[i], KEEL_CMP_NOT_EQUAL, k, v), mark));
    }
    /* lease 0 */
    cr_assert(txn_branch(c, cmp_int(KEEL_CMP_LEASE, KEEL_CMP_EQUAL, k, 0), mark));
    cr_assert_not(txn_branch(c, cmp_int(KEEL_CMP_LEASE, KEEL_CMP_NOT_EQUAL, k, 0), mark));
    /* value: "m" */
    struct keel_compare cv = cmp_int(KEEL_CMP_VALUE, KEEL_CMP_EQUAL, k, 0);
    cv.value = B("m");
    cr_assert(txn_branch(c, cv, mark));
    cv.value = B("n");
    cr_assert_not(txn_branch(c, cv, mark));
    cv.result = KEEL_CMP_LESS;
    cr_assert(txn_branch(c, cv, mark));
    cv.result = KEEL_CMP_GREATER;
    cr_assert_not(txn_branch(c, cv, mark));
    cv.value = B("a");
    cr_assert(txn_branch(c, cv, mark));
    cv.result = KEEL_CMP_NOT_EQUAL;
    cr_assert(txn_branch(c, cv, mark));
}

static void check_txn_absent_and_range(keel_client *c, const char *pfx, const char *mark)
{
    char absent[32], k1[32], k2[32], end[32];
    snprintf(absent, sizeof(absent), "%sabsent", pfx);
    /* absent key: version/create/mod read 0, a VALUE compare fails */
    cr_assert(txn_branch(c, cmp_int(KEEL_CMP_VERSION, KEEL_CMP_EQUAL, absent, 0), mark));
    cr_assert(txn_branch(c, cmp_int(KEEL_CMP_CREATE, KEEL_CMP_EQUAL, absent, 0), mark));
    cr_assert(txn_branch(c, cmp_int(KEEL_CMP_MOD, KEEL_CMP_EQUAL, absent, 0), mark));
    struct keel_compare cv = cmp_int(KEEL_CMP_VALUE, KEEL_CMP_NOT_EQUAL, absent, 0);
    cv.value = B("x");
    cr_assert_not(txn_branch(c, cv, mark));
    /* a compare over a range: every key must pass */
    snprintf(k1, sizeof(k1), "%sr/1", pfx);
    snprintf(k2, sizeof(k2), "%sr/2", pfx);
    snprintf(end, sizeof(end), "%sr0", pfx);
    put_ok(c, k1, "x");
    put_ok(c, k2, "x");
    struct keel_compare cr = cmp_int(KEEL_CMP_VERSION, KEEL_CMP_EQUAL, k1, 1);
    char start[32];
    snprintf(start, sizeof(start), "%sr/", pfx);
    cr.key = B(start);
    cr.range_end = B(end);
    cr_assert(txn_branch(c, cr, mark));
    put_ok(c, k2, "y");
    cr_assert_not(txn_branch(c, cr, mark));
}

/* Reads inside a txn see its earlier writes; all writes share one revision. */
static void check_txn_reads_own_writes(keel_client *c, const char *pfx)
{
    char k1[32], k2[32];
    snprintf(k1, sizeof(k1), "%sown1", pfx);
    snprintf(k2, sizeof(k2), "%sown2", pfx);
    struct keel_op ops[5] = {op_put(k1, "a"), op_get(k1), op_put(k2, "b"), op_get(k2), op_get(k1)};
    ops[4].u.range.count_only = true;
    char k0[32];
    snprintf(k0, sizeof(k0), "%sown0", pfx);
    put_ok(c, k0, "zero");
    struct keel_delete_args dd = {.key = B(k0), .prev_kv = true};
    struct keel_op del = {.kind = KEEL_OP_DELETE, .u.del = dd};
    struct keel_op all[6];
    memcpy(all, ops, sizeof(ops));
    all[5] = del;
    struct keel_txn_args t = {.success = all, .success_len = 6};
    struct keel_result r;
    ASSERT_STATUS(keel_txn(c, &t, &r), KEEL_STATUS_OK);
    cr_assert(r.u.txn.succeeded, "no compares: success");
    cr_assert_eq(r.u.txn.replies_len, 6);
    struct keel_op_result *rep = r.u.txn.replies;
    cr_assert_eq(rep[1].kind, KEEL_OP_RANGE);
    cr_assert_eq(rep[1].u.range.kvs_len, 1, "the txn's read sees its own put");
    cr_assert(span_is(rep[1].u.range.kvs[0].value, rep[1].u.range.kvs[0].value_len, "a"));
    cr_assert_eq(rep[1].u.range.kvs[0].mod_revision, r.header.revision,
                 "every write of a txn is at the txn's revision");
    cr_assert_eq(rep[3].u.range.kvs_len, 1);
    cr_assert_eq(rep[3].u.range.kvs[0].mod_revision, r.header.revision);
    cr_assert_eq(rep[4].u.range.count, 1);
    cr_assert_eq(rep[5].kind, KEEL_OP_DELETE);
    cr_assert_eq(rep[5].u.del.deleted, 1);
    cr_assert_eq(rep[5].u.del.prev_kvs_len, 1);
    cr_assert(span_is(rep[5].u.del.prev_kvs[0].value, rep[5].u.del.prev_kvs[0].value_len, "zero"));
    cr_assert_eq(get_one(c, k0, NULL), 0);
    cr_assert(get_value_is(c, k1, "a"));
    cr_assert(get_value_is(c, k2, "b"));
}

/* A txn refused by the server leaves nothing written. */
static void check_txn_atomic(keel_client *c, const char *pfx, int shard)
{
    char k1[32], k2[32];
    snprintf(k1, sizeof(k1), "%satom1", pfx);
    snprintf(k2, sizeof(k2), "%satom2", pfx);
    int64_t rev = shard_revision(c, (uint16_t)shard);
    struct keel_result r;
    /* a put, then a read at a future revision */
    struct keel_op ops[2] = {op_put(k1, "a"), op_get(k2)};
    ops[1].u.range.revision = rev + 1000;
    struct keel_txn_args t = {.success = ops, .success_len = 2};
    ASSERT_STATUS(keel_txn(c, &t, &r), KEEL_STATUS_FUTURE_REV);
    /* a put, then a read with range_end before its key */
    ops[1] = op_get(k2);
    ops[1].u.range.range_end = B(k1);
    ASSERT_STATUS(keel_txn(c, &t, &r), KEEL_STATUS_INVALID);
    /* a put, a second put of one key */
    struct keel_op dup[3] = {op_put(k1, "a"), op_put(k2, "b"), op_put(k1, "c")};
    struct keel_txn_args td = {.success = dup, .success_len = 3};
    ASSERT_STATUS(keel_txn(c, &td, &r), KEEL_STATUS_DUPLICATE_KEY);
    cr_assert_eq(get_one(c, k1, NULL), 0, "a refused txn wrote nothing");
    cr_assert_eq(get_one(c, k2, NULL), 0, "a refused txn wrote nothing");
    cr_assert_eq(shard_revision(c, (uint16_t)shard), rev, "a refused txn takes no revision");
}

static void check_txn(keel_client *c, const char *pfx, int shard)
{
    char k[32], mark[32];
    snprintf(k, sizeof(k), "%sk", pfx);
    snprintf(mark, sizeof(mark), "%smark", pfx);
    check_txn_compares(c, k, mark);
    check_txn_absent_and_range(c, pfx, mark);
    check_txn_reads_own_writes(c, pfx);
    check_txn_atomic(c, pfx, shard);
}

Test(ops, txn_router)
{
    check_txn(router, "!tr/", 0);
    check_txn(router, "~tr/", 1);
}

Test(ops, txn_shard_aware)
{
    check_txn(aware, "!ta/", 0);
    check_txn(aware, "~ta/", 1);
}

/* ---- compact ------------------------------------------------------------------------------- */

static void check_compact(keel_client *c, const char *key, uint16_t shard)
{
    int64_t r1 = put_ok(c, key, "1");
    int64_t r2 = put_ok(c, key, "2");
    int64_t r3 = put_ok(c, key, "3");
    struct keel_result r;
    struct keel_compact_args ca = {.shard = shard, .revision = r2};
    ASSERT_STATUS(keel_compact(c, &ca, &r), KEEL_STATUS_OK);
    struct keel_range_args a = range_of(key, NULL);
    a.revision = r1;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_COMPACTED);
    cr_assert_eq(r.error.detail, (uint64_t)r2, "COMPACTED detail is the compact revision");
    a.revision = r2;
    ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK); /* the compact revision stays readable */
    cr_assert(span_is(r.u.range.kvs[0].value, r.u.range.kvs[0].value_len, "2"));
    cr_assert(get_value_is(c, key, "3"));
    /* again at the same revision, below, and in the future */
    ASSERT_STATUS(keel_compact(c, &ca, &r), KEEL_STATUS_COMPACTED);
    cr_assert_eq(r.error.detail, (uint64_t)r2);
    ca.revision = r3 + 50;
    ASSERT_STATUS(keel_compact(c, &ca, &r), KEEL_STATUS_FUTURE_REV);
    cr_assert_eq(r.error.detail, (uint64_t)r3);
    /* physical */
    ca.revision = r3;
    ca.physical = true;
    ASSERT_STATUS(keel_compact(c, &ca, &r), KEEL_STATUS_OK);
    struct keel_result s;
    ASSERT_STATUS(keel_status(c, &s), KEEL_STATUS_OK);
    bool seen = false;
    for (size_t i = 0; i < s.u.status.shards_len; i++) {
        if (s.u.status.shards[i].shard_id != shard) continue;
        cr_assert_eq(s.u.status.shards[i].compact_revision, r3);
        seen = true;
    }
    cr_assert(seen);
    /* a txn reading below the compaction is COMPACTED too */
    struct keel_op o = op_get(key);
    o.u.range.revision = r1;
    struct keel_txn_args t = {.success = &o, .success_len = 1};
    ASSERT_STATUS(keel_txn(c, &t, &r), KEEL_STATUS_COMPACTED);
}

Test(ops, compact)
{
    check_compact(router, "!cmp", 0);
    check_compact(aware, "~cmp", 1);
    struct keel_result r;
    struct keel_compact_args bad = {.shard = 7, .revision = 1};
    ASSERT_STATUS(keel_compact(router, &bad, &r), KEEL_STATUS_INVALID); /* no shard 7 */
    bad.shard = 0;
    bad.revision = 0;
    ASSERT_STATUS(keel_compact(router, &bad, &r), KEEL_STATUS_INVALID); /* revision 0 */
}

/* ---- status and shard map ------------------------------------------------------------------ */

Test(ops, status_and_shard_map)
{
    int64_t r0 = 0, r1 = 0;
    for (int i = 0; i < 5; i++) r0 = put_ok(router, i % 2 ? "!s1" : "!s2", "v");
    for (int i = 0; i < 3; i++) r1 = put_ok(router, i % 2 ? "~s1" : "~s2", "v");
    r1 = put_ok(router, "~s3", "v");
    struct keel_result r;
    for (int m = 0; m < 2; m++) {
        ASSERT_STATUS(keel_status(m ? aware : router, &r), KEEL_STATUS_OK);
        cr_assert_eq(r.u.status.shards_len, 2, "every shard is listed");
        bool seen[2] = {false, false};
        for (size_t i = 0; i < 2; i++) {
            struct keel_shard_status *s = &r.u.status.shards[i];
            cr_assert_lt(s->shard_id, 2);
            seen[s->shard_id] = true;
            cr_assert_eq(s->revision, s->shard_id ? r1 : r0);
            cr_assert_eq(s->keys, s->shard_id ? 3u : 2u);
            cr_assert_gt(s->memory_bytes, 0);
        }
        cr_assert(seen[0] && seen[1]);
    }
    ASSERT_STATUS(keel_shard_map(router, &r), KEEL_STATUS_OK);
    struct keel_shard_map_result *m = &r.u.shard_map;
    cr_assert_geq(m->version, 1);
    cr_assert_eq(m->shards_len, 2);
    cr_assert_eq(m->shards[0].start_key_len, 0, "the first range starts the key space");
    cr_assert_eq(m->shards[1].end_key_len, 0, "the last range ends it");
    cr_assert_gt(m->shards[0].end_key_len, 0);
    cr_assert_eq(m->shards[0].end_key_len, m->shards[1].start_key_len, "ranges are contiguous");
    cr_assert_eq(memcmp(m->shards[0].end_key, m->shards[1].start_key, m->shards[0].end_key_len), 0);
    for (size_t i = 0; i < 2; i++) {
        uint16_t id = m->shards[i].shard_id;
        cr_assert_eq(m->shards[i].port, kp.port + 1 + id, "shard %u port", id);
    }
    cr_assert_eq(keel_server_info(router)->shard_count, 2);
    cr_assert_eq(keel_server_info(router)->shard_map_version, m->version);
    cr_assert_eq(keel_connection_count(aware), 3, "router + one connection per shard");
}

/* ---- across shards ------------------------------------------------------------------------- */

Test(ops, router_merges_ranges_across_shards)
{
    const char *keys[] = {"!m1", "!m3", "!m5", "~m2", "~m4"};
    for (size_t i = 0; i < 5; i++) put_ok(router, keys[i], keys[i]);
    struct keel_range_args a = range_of("!m", "~n");
    struct keel_result r;
    char got[128];
    for (int m = 0; m < 2; m++) {
        keel_client *c = m ? aware : router;
        ASSERT_STATUS(keel_get(c, &a, &r), KEEL_STATUS_OK);
        cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), "!m1,!m3,!m5,~m2,~m4");
        cr_assert_eq(r.u.range.count, 5, "count is the sum over shards");
        cr_assert_eq(r.header.shard, 65535);
        cr_assert_eq(r.header.revision, 0);
        cr_assert(span_is(r.u.range.kvs[3].value, r.u.range.kvs[3].value_len, "~m2"));
    }
    a.limit = 4;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_OK);
    cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), "!m1,!m3,!m5,~m2");
    cr_assert(r.u.range.more);
    cr_assert_eq(r.u.range.count, 5);
    a.limit = 2;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_OK);
    cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), "!m1,!m3");
    cr_assert(r.u.range.more);
    a.limit = 0;
    a.count_only = true;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 0);
    cr_assert_eq(r.u.range.count, 5);
    a.count_only = false;
    a.keys_only = true;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 5);
    cr_assert_eq(r.u.range.kvs[4].value_len, 0);
    a.keys_only = false;
    /* descending by key is still "sorted by the key": merged */
    a.sort_order = KEEL_SORT_DESCEND;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_OK);
    cr_assert_str_eq(keys_of(&r.u.range, got, sizeof(got)), "~m4,~m2,!m5,!m3,!m1");
    /* other sort targets and past revisions are CROSS_SHARD */
    a.sort_order = KEEL_SORT_ASCEND;
    a.sort_target = KEEL_SORT_VERSION;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_CROSS_SHARD);
    a.sort_order = KEEL_SORT_NONE;
    a.sort_target = KEEL_SORT_KEY;
    a.revision = 2;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_CROSS_SHARD);
}

Test(ops, cross_shard_writes_refused)
{
    put_ok(router, "!x", "0");
    put_ok(router, "~x", "1");
    struct keel_result r;
    for (int m = 0; m < 2; m++) {
        keel_client *c = m ? aware : router;
        struct keel_delete_args d = {.key = B("!x"), .range_end = B("~y")};
        ASSERT_STATUS(keel_delete(c, &d, &r), KEEL_STATUS_CROSS_SHARD);
        struct keel_op ops[2] = {op_put("!x", "a"), op_put("~x", "b")};
        struct keel_txn_args t = {.success = ops, .success_len = 2};
        ASSERT_STATUS(keel_txn(c, &t, &r), KEEL_STATUS_CROSS_SHARD);
        struct keel_compare cmp = cmp_int(KEEL_CMP_VERSION, KEEL_CMP_GREATER, "~x", 0);
        struct keel_txn_args t2 = {
            .compares = &cmp, .compares_len = 1, .success = ops, .success_len = 1};
        ASSERT_STATUS(keel_txn(c, &t2, &r), KEEL_STATUS_CROSS_SHARD); /* compare on another shard */
        struct keel_op fail = op_put("~x", "f");
        struct keel_txn_args t3 = {
            .success = ops, .success_len = 1, .failure = &fail, .failure_len = 1};
        ASSERT_STATUS(keel_txn(c, &t3, &r), KEEL_STATUS_CROSS_SHARD); /* failure branch elsewhere */
    }
    cr_assert(get_value_is(router, "!x", "0"), "nothing was executed");
    cr_assert(get_value_is(router, "~x", "1"), "nothing was executed");
}

Test(ops, wrong_shard_port)
{
    keel_client *s0 = connect_to((uint16_t)(kp.port + 1), false);
    keel_client *s1 = connect_to((uint16_t)(kp.port + 2), false);
    struct keel_result r, map;
    EXPECT_STATUS(keel_shard_map(router, &map), KEEL_STATUS_OK);
    uint64_t version = map.u.shard_map.version;
    put_ok(s0, "!own", "0");
    put_ok(s1, "~own", "1");
    struct keel_put_args p = {.key = B("~own"), .value = B("x")};
    EXPECT_STATUS(keel_put(s0, &p, &r), KEEL_STATUS_WRONG_SHARD);
    cr_assert_eq(r.error.detail, version, "WRONG_SHARD detail is the map version");
    struct keel_range_args g = range_of("!own", NULL);
    EXPECT_STATUS(keel_get(s1, &g, &r), KEEL_STATUS_WRONG_SHARD);
    struct keel_delete_args d = {.key = B("!own")};
    EXPECT_STATUS(keel_delete(s1, &d, &r), KEEL_STATUS_WRONG_SHARD);
    struct keel_op o = op_put("~own", "t");
    struct keel_txn_args t = {.success = &o, .success_len = 1};
    EXPECT_STATUS(keel_txn(s0, &t, &r), KEEL_STATUS_WRONG_SHARD);
    struct keel_range_args all = range_of("!", "~~");
    EXPECT_STATUS(keel_get(s0, &all, &r), KEEL_STATUS_WRONG_SHARD); /* a range beyond the shard */
    /* a shard port's STATUS lists its own shard only */
    EXPECT_STATUS(keel_status(s1, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.status.shards_len, 1);
    cr_assert_eq(r.u.status.shards[0].shard_id, 1);
    cr_assert_eq(r.header.shard, 1);
    cr_expect(get_value_is(router, "~own", "1"), "the refused put and txn did not run");
    cr_expect(get_value_is(router, "!own", "0"), "the refused delete did not run");
    struct keel_compact_args ca = {.shard = 1, .revision = 1};
    EXPECT_STATUS(keel_compact(s0, &ca, &r), KEEL_STATUS_WRONG_SHARD);
    keel_close(s0);
    keel_close(s1);
}

/* ---- restart ------------------------------------------------------------------------------- */

struct saved_kv {
    char key[16];
    char value[16];
    int64_t create, mod, version;
};

static struct keel_range_args all_keys(void)
{
    struct keel_range_args all;
    memset(&all, 0, sizeof(all));
    all.key.ptr = "";
    all.key.len = 1;
    all.range_end.ptr = "";
    all.range_end.len = 1;
    return all;
}

/* Every key with its value and revisions, in key order; returns the count. */
static size_t save_all(struct saved_kv *out, size_t cap)
{
    struct keel_range_args all = all_keys();
    struct keel_result r;
    ASSERT_STATUS(keel_get(router, &all, &r), KEEL_STATUS_OK);
    size_t n = r.u.range.kvs_len;
    cr_assert_leq(n, cap);
    for (size_t i = 0; i < n; i++) {
        struct keel_kv *kv = &r.u.range.kvs[i];
        snprintf(out[i].key, sizeof(out[i].key), "%.*s", (int)kv->key_len, kv->key);
        snprintf(out[i].value, sizeof(out[i].value), "%.*s", (int)kv->value_len, kv->value);
        out[i].create = kv->create_revision;
        out[i].mod = kv->mod_revision;
        out[i].version = kv->version;
    }
    return n;
}

static void restart_same_dir(void)
{
    keel_close(router);
    keel_close(aware);
    router = aware = NULL;
    int st = keeld_stop(&kp);
    cr_assert(keeld_exited_cleanly(st), "keeld exit on SIGTERM: wait status 0x%x", st);
    cr_assert_eq(keeld_start(&kp), 0, "keeld did not restart on %s", kp.data_dir);
    router = connect_to(kp.port, false);
    aware = connect_to(kp.port, true);
}

/* puts writes over keys_distinct keys (both shards, both clients), a delete, a restart: every
 * key, value and revision is back and revisions continue. */
static void check_restart(int puts, int keys_distinct)
{
    char k[16], v[16];
    for (int i = 0; i < puts; i++) {
        int id = i % keys_distinct;
        snprintf(k, sizeof(k), "%c%05d", id % 2 ? '~' : '!', id);
        snprintf(v, sizeof(v), "v%d", i);
        put_ok(i % 3 ? router : aware, k, v);
    }
    struct keel_delete_args d = {.key = B("!00000")};
    struct keel_result r;
    ASSERT_STATUS(keel_delete(router, &d, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.del.deleted, 1);
    int64_t rev0 = shard_revision(router, 0), rev1 = shard_revision(router, 1);
    size_t cap = (size_t)keys_distinct;
    struct saved_kv *before = calloc(cap, sizeof(*before));
    struct saved_kv *after = calloc(cap, sizeof(*after));
    cr_assert(before && after);
    size_t n = save_all(before, cap);
    cr_assert_eq(n, cap - 1, "every key but the deleted one");
    restart_same_dir();
    cr_assert_eq(shard_revision(router, 0), rev0, "shard 0 revision survives");
    cr_assert_eq(shard_revision(router, 1), rev1, "shard 1 revision survives");
    cr_assert_eq(save_all(after, cap), n, "same keys after restart");
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(after[i].key, before[i].key);
        cr_assert_str_eq(after[i].value, before[i].value, "%s", before[i].key);
        cr_assert_eq(after[i].create, before[i].create, "%s", before[i].key);
        cr_assert_eq(after[i].mod, before[i].mod, "%s", before[i].key);
        cr_assert_eq(after[i].version, before[i].version, "%s", before[i].key);
    }
    free(before);
    free(after);
    cr_assert_eq(get_one(router, "!00000", NULL), 0, "a deleted key stays deleted");
    cr_assert_eq(put_ok(aware, "!after", "x"), rev0 + 1, "revisions continue");
    cr_assert_eq(put_ok(router, "~after", "x"), rev1 + 1, "revisions continue");
}

Test(ops, restart_keeps_every_key_and_revision)
{
    check_restart(40, 26);
}

/* Enough writes to pass a small --snapshot-wal-bytes many times: recovery from snapshots plus
 * the WAL after them gives the same state. */
Test(ops, restart_after_many_writes_small_snapshot_threshold)
{
    keel_close(router);
    keel_close(aware);
    router = aware = NULL;
    cr_assert(keeld_exited_cleanly(keeld_stop(&kp)));
    keeld_cleanup(&kp);
    kp.extra_args[0] = "--snapshot-wal-bytes";
    kp.extra_args[1] = "64K";
    kp.extra_args[2] = NULL;
    cr_assert_eq(keeld_start(&kp), 0);
    router = connect_to(kp.port, false);
    aware = connect_to(kp.port, true);
    check_restart(3000, 500);
    restart_same_dir(); /* a second restart recovers from what the first one left */
    cr_assert(get_value_is(router, "!after", "x"));
    cr_assert(get_value_is(router, "~after", "x"));
}

/* ---- statuses only a raw client can provoke (libkeel checks these before sending) ---------- */

static struct buf rb; /* request bytes of the raw tests */

/* Sends rb (one request with id), reads its reply, checks id, opcode and status; the
 * connection must stay open: a GET on it still works. Returns the error detail. */
static uint64_t raw_expect(struct raw_conn *c, u16 opcode, u64 id, int status)
{
    cr_assert(buf_ok(&rb));
    cr_assert(raw_send(c, rb.ptr, rb.len), "send");
    buf_reset(&rb);
    struct raw_reply r;
    int rc = raw_read_reply(c, RAW_READ_MS, &r);
    cr_assert_eq(rc, RAW_OK, "no reply to request %llu (rc %d)", (unsigned long long)id, rc);
    cr_assert_eq(r.frame.request_id, id);
    cr_assert_eq(r.frame.opcode, opcode);
    cr_assert_eq(r.reply.header.status, status, "request %llu: status %u, expected %d",
                 (unsigned long long)id, r.reply.header.status, status);
    uint64_t detail = status ? r.reply.body.error_body.detail : 0;
    raw_get(&rb, id + 1000000, "!probe");
    cr_assert(raw_send(c, rb.ptr, rb.len));
    buf_reset(&rb);
    rc = raw_read_reply(c, RAW_READ_MS, &r);
    cr_assert_eq(rc, RAW_OK, "connection unusable after status %d", status);
    cr_assert_eq(r.frame.request_id, id + 1000000);
    cr_assert_eq(r.reply.header.status, 0);
    return detail;
}

static void raw_put_flags(u64 id, u8 flags, u64 lease, size_t key_len, size_t value_len)
{
    size_t s = raw_frame_begin(&rb, CODEC_OP_PUT, id);
    buf_put_u8(&rb, flags);
    buf_put_u64(&rb, lease);
    buf_put_u16(&rb, (u16)key_len);
    u8 *k = buf_reserve(&rb, key_len);
    if (k) memset(k, '!', key_len);
    buf_put_u32(&rb, (u32)value_len);
    u8 *v = buf_reserve(&rb, value_len);
    if (v) memset(v, 'v', value_len);
    raw_frame_end(&rb, s);
}

static void raw_range_full(u64 id, u64 revision, const char *key, size_t end_len)
{
    size_t s = raw_frame_begin(&rb, CODEC_OP_RANGE, id);
    buf_put_u8(&rb, 0);
    buf_put_u8(&rb, 0);
    buf_put_u8(&rb, 0);
    buf_put_u64(&rb, revision);
    for (int i = 0; i < 5; i++) buf_put_u64(&rb, 0);
    buf_put_u16(&rb, (u16)strlen(key));
    buf_put_bytes(&rb, key, strlen(key));
    buf_put_u16(&rb, (u16)end_len);
    u8 *e = buf_reserve(&rb, end_len);
    if (e) memset(e, '~', end_len);
    raw_frame_end(&rb, s);
}

/* A TXN with ncompares VERSION compares on "!c" and a success list of one op of kind. */
static void raw_txn(u64 id, u16 ncompares, u8 op_kind)
{
    size_t s = raw_frame_begin(&rb, CODEC_OP_TXN, id);
    buf_put_u16(&rb, ncompares);
    for (u16 i = 0; i < ncompares; i++) {
        buf_put_u8(&rb, 0);
        buf_put_u8(&rb, 0);
        buf_put_u16(&rb, 2);
        buf_put_bytes(&rb, "!c", 2);
        buf_put_u16(&rb, 0);
        buf_put_u64(&rb, 0);
    }
    buf_put_u16(&rb, 1);
    buf_put_u8(&rb, op_kind); /* TXN (3): no body follows */
    buf_put_u16(&rb, 0);      /* failure */
    raw_frame_end(&rb, s);
}

static void check_raw_statuses(uint16_t port)
{
    struct raw_conn c;
    cr_assert(raw_connect(&c, port));
    buf_init_dynamic(&rb, 4096);
    raw_put(&rb, 5, "!early", "x");
    cr_assert(raw_send(&c, rb.ptr, rb.len));
    buf_reset(&rb);
    struct raw_reply r;
    cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
    cr_assert_eq(r.reply.header.status, CODEC_S_NOT_HANDSHAKEN);
    cr_assert(raw_handshake(&c), "HELLO after NOT_HANDSHAKEN works");
    raw_hello(&rb, 6, CODEC_MAGIC, 1);
    raw_expect(&c, CODEC_OP_HELLO, 6, CODEC_S_ALREADY_HANDSHAKEN);
    raw_put_flags(10, 0, 0, 0, 1);
    raw_expect(&c, CODEC_OP_PUT, 10, CODEC_S_KEY_EMPTY);
    raw_put_flags(11, 0, 0, CODEC_KEY_SIZE_MAX + 1, 1);
    raw_expect(&c, CODEC_OP_PUT, 11, CODEC_S_KEY_TOO_LARGE);
    raw_range_full(12, 0, "!a", CODEC_KEY_SIZE_MAX + 1);
    raw_expect(&c, CODEC_OP_RANGE, 12, CODEC_S_KEY_TOO_LARGE);
    raw_put_flags(13, 0, 0, 4, CODEC_VALUE_SIZE_MAX + 1);
    raw_expect(&c, CODEC_OP_PUT, 13, CODEC_S_VALUE_TOO_LARGE);
    raw_put_flags(14, 1u << 1, 0, 4, 1); /* ignore_value */
    raw_expect(&c, CODEC_OP_PUT, 14, CODEC_S_UNSUPPORTED);
    raw_put_flags(15, 1u << 2, 0, 4, 1); /* ignore_lease */
    raw_expect(&c, CODEC_OP_PUT, 15, CODEC_S_UNSUPPORTED);
    raw_put_flags(16, 0, 7, 4, 1); /* a lease without the LEASE feature */
    raw_expect(&c, CODEC_OP_PUT, 16, CODEC_S_UNSUPPORTED);
    raw_put_flags(17, 0, (u64)-1, 4, 1); /* negative lease */
    raw_expect(&c, CODEC_OP_PUT, 17, CODEC_S_INVALID);
    raw_put_flags(18, 1u << 3, 0, 4, 1); /* reserved bit */
    raw_expect(&c, CODEC_OP_PUT, 18, CODEC_S_MALFORMED);
    raw_range_full(19, (u64)-5, "!a", 0); /* negative revision */
    raw_expect(&c, CODEC_OP_RANGE, 19, CODEC_S_INVALID);
    raw_txn(20, CODEC_TXN_OPS_MAX + 1, 1);
    raw_expect(&c, CODEC_OP_TXN, 20, CODEC_S_TOO_MANY_OPS);
    raw_txn(21, 1, 3); /* nested txn */
    raw_expect(&c, CODEC_OP_TXN, 21, CODEC_S_UNSUPPORTED);
    raw_txn(22, 1, 4); /* op kind past the last */
    raw_expect(&c, CODEC_OP_TXN, 22, CODEC_S_MALFORMED);
    size_t s = raw_frame_begin(&rb, 0x0002, 23); /* reserved CONN opcode */
    raw_frame_end(&rb, s);
    cr_assert_eq(raw_expect(&c, 0x0002, 23, CODEC_S_UNKNOWN_OPCODE), 2, "detail = opcode");
    s = raw_frame_begin(&rb, 0x7777, 24);
    buf_put_u32(&rb, 1);
    raw_frame_end(&rb, s);
    cr_assert_eq(raw_expect(&c, 0x7777, 24, CODEC_S_UNKNOWN_OPCODE), 0x7777);
    s = raw_frame_begin(&rb, CODEC_OP_PUT, 25); /* body cut inside the key */
    buf_put_u8(&rb, 0);
    buf_put_u64(&rb, 0);
    buf_put_u16(&rb, 10);
    buf_put_bytes(&rb, "!ab", 3);
    raw_frame_end(&rb, s);
    raw_expect(&c, CODEC_OP_PUT, 25, CODEC_S_MALFORMED);
    raw_close(&c);
    buf_free(&rb);
}

Test(ops, every_client_input_status_raw)
{
    check_raw_statuses(kp.port);
    check_raw_statuses((uint16_t)(kp.port + 1));
    struct keel_result r;
    ASSERT_STATUS(keel_status(router, &r), KEEL_STATUS_OK);
    for (size_t i = 0; i < r.u.status.shards_len; i++)
        cr_assert_eq(r.u.status.shards[i].keys, 0, "no refused request wrote a key");
}

Test(ops, client_side_statuses_through_libkeel)
{
    struct keel_result r;
    /* KEY_EMPTY and INVALID that libkeel passes to the server */
    struct keel_range_args a = range_of("!b", "!a");
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_INVALID); /* range_end before key */
    ASSERT_STATUS(keel_get(aware, &a, &r), KEEL_STATUS_INVALID);  /* range_end before key */
    struct keel_delete_args d = {.key = B("~b"), .range_end = B("~a")};
    ASSERT_STATUS(keel_delete(router, &d, &r), KEEL_STATUS_INVALID);
    struct keel_op dup[2] = {op_put("~d", "1"), op_put("~d", "2")};
    struct keel_txn_args t = {.success = dup, .success_len = 2};
    ASSERT_STATUS(keel_txn(router, &t, &r), KEEL_STATUS_DUPLICATE_KEY);
    ASSERT_STATUS(keel_txn(aware, &t, &r), KEEL_STATUS_DUPLICATE_KEY);
    struct keel_range_args neg = range_of("!a", NULL);
    neg.limit = -1;
    ASSERT_STATUS(keel_get(router, &neg, &r), KEEL_STATUS_INVALID); /* negative limit */
    cr_assert_eq(get_one(router, "~d", NULL), 0);
}

Test(ops, reply_too_large)
{
    /* 22 + 21 values of value_size_max: each shard's part fits in a reply, the merge does not */
    size_t vlen = keel_server_info(router)->value_size_max;
    uint32_t reply_max = keel_server_info(router)->reply_frame_size_max;
    cr_assert_eq(reply_max, CODEC_REPLY_FRAME_SIZE_MAX);
    size_t per_shard[2] = {22, 21};
    cr_assert_gt((per_shard[0] + per_shard[1]) * vlen, reply_max);
    cr_assert_lt(per_shard[0] * vlen + 65536, reply_max);
    char *value = malloc(vlen);
    cr_assert_not_null(value);
    memset(value, 'L', vlen);
    char key[40];
    struct keel_result r;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < per_shard[s]; i++) {
            snprintf(key, sizeof(key), "%clarge/%02zu", s ? '~' : '!', i);
            struct keel_put_args a = {.key = B(key), .value = {value, vlen}};
            ASSERT_STATUS(keel_put(aware, &a, &r), KEEL_STATUS_OK);
        }
    }
    free(value);
    struct keel_range_args one = range_of("!large/", "!large0");
    ASSERT_STATUS(keel_get(aware, &one, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, per_shard[0]);
    struct keel_range_args all = range_of("!large/", "~large0");
    ASSERT_STATUS(keel_get(router, &all, &r), KEEL_STATUS_REPLY_TOO_LARGE);
    cr_assert_eq(r.error.detail, reply_max, "detail is the reply limit");
    all.keys_only = true;
    ASSERT_STATUS(keel_get(router, &all, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, per_shard[0] + per_shard[1]);
    all.keys_only = false;
    all.limit = 10;
    ASSERT_STATUS(keel_get(router, &all, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 10);
    cr_assert(r.u.range.more);
    /* a txn whose reads add up past the limit, with a write first: the write does not run */
    struct keel_op ops[3] = {op_put("!large/mark", "x"), op_get("!large/"), op_get("!large/")};
    ops[1].u.range = one;
    ops[2].u.range = one;
    struct keel_txn_args t = {.success = ops, .success_len = 3};
    ASSERT_STATUS(keel_txn(aware, &t, &r), KEEL_STATUS_REPLY_TOO_LARGE);
    cr_assert_eq(get_one(router, "!large/mark", NULL), 0, "the txn's write was not executed");
}

Test(ops, restart_keeps_compaction)
{
    int64_t r1 = put_ok(router, "!c", "1");
    int64_t r2 = put_ok(router, "!c", "2");
    put_ok(router, "!c", "3");
    struct keel_result r;
    struct keel_compact_args ca = {.shard = 0, .revision = r2};
    ASSERT_STATUS(keel_compact(router, &ca, &r), KEEL_STATUS_OK);
    restart_same_dir();
    ASSERT_STATUS(keel_status(router, &r), KEEL_STATUS_OK);
    for (size_t i = 0; i < r.u.status.shards_len; i++)
        if (r.u.status.shards[i].shard_id == 0)
            cr_assert_eq(r.u.status.shards[i].compact_revision, r2, "compaction survives");
    struct keel_range_args a = range_of("!c", NULL);
    a.revision = r1;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_COMPACTED);
    cr_assert_eq(r.error.detail, (uint64_t)r2);
    a.revision = r2;
    ASSERT_STATUS(keel_get(router, &a, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 1);
    cr_assert(span_is(r.u.range.kvs[0].value, r.u.range.kvs[0].value_len, "2"));
    cr_assert(get_value_is(aware, "!c", "3"));
}

/* ---- handshake and async ------------------------------------------------------------------- */

Test(ops, hello_reply_on_every_port)
{
    uint64_t cluster_id = 0;
    for (uint32_t i = 0; i <= kp.shards; i++) {
        struct raw_conn c;
        cr_assert(raw_connect(&c, (uint16_t)(kp.port + i)));
        struct buf b;
        buf_init_dynamic(&b, 64);
        raw_hello(&b, 3, CODEC_MAGIC, 1);
        cr_assert(raw_send(&c, b.ptr, b.len));
        buf_free(&b);
        struct raw_reply r;
        cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
        cr_assert_eq(r.reply.header.status, CODEC_S_OK);
        uint16_t shard_want = i == 0 ? CODEC_SHARD_NONE : (uint16_t)(i - 1);
        cr_assert_eq(r.reply.header.shard, shard_want, "port +%u: header.shard", i);
        if (shard_want == CODEC_SHARD_NONE)
            cr_expect_eq(r.reply.header.revision, 0, "header.shard 65535 has revision 0, got %lld",
                         (long long)r.reply.header.revision);
        struct codec_hello_reply *h = &r.reply.body.hello_reply;
        cr_assert_eq(h->version, 1);
        cr_assert_eq(h->features, 0, "a version 1 server grants no feature");
        cr_assert_eq(h->shard_count, 2);
        cr_assert_geq(h->shard_map_version, 1);
        cr_assert_eq(h->frame_size_max, CODEC_FRAME_SIZE_MAX);
        cr_assert_eq(h->reply_frame_size_max, CODEC_REPLY_FRAME_SIZE_MAX);
        cr_assert_leq(h->key_size_max, CODEC_KEY_SIZE_MAX);
        cr_assert_gt(h->key_size_max, 0);
        cr_assert_leq(h->value_size_max, CODEC_VALUE_SIZE_MAX);
        cr_assert_leq(h->txn_ops_max, CODEC_TXN_OPS_MAX);
        cr_assert_leq(h->in_flight_max, CODEC_IN_FLIGHT_MAX);
        cr_assert_gt(h->in_flight_max, 0);
        if (i == 0) cluster_id = h->cluster_id;
        cr_assert_eq(h->cluster_id, cluster_id, "one cluster id on every port");
        raw_close(&c);
    }
    /* of every feature bit asked for, only MEMBER is granted (WATCH and LEASE are reserved) */
    struct raw_conn c;
    cr_assert(raw_connect(&c, kp.port));
    struct buf b;
    buf_init_dynamic(&b, 64);
    size_t s = raw_frame_begin(&b, CODEC_OP_HELLO, 4);
    buf_put_u32(&b, CODEC_MAGIC);
    buf_put_u16(&b, 1);
    buf_put_u64(&b, UINT64_MAX);
    raw_frame_end(&b, s);
    cr_assert(raw_send(&c, b.ptr, b.len));
    buf_free(&b);
    struct raw_reply r;
    cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
    cr_assert_eq(r.reply.header.status, CODEC_S_OK);
    cr_assert_eq(r.reply.body.hello_reply.features, CODEC_FEATURE_MEMBER);
    raw_close(&c);
}

struct async_tally {
    int ok, failed, calls;
};

static void async_done(void *ctx, uint64_t request_id, int status, const struct keel_result *result)
{
    (void)request_id;
    (void)result;
    struct async_tally *t = ctx;
    t->calls++;
    if (status == KEEL_STATUS_OK)
        t->ok++;
    else
        t->failed++;
}

/* Pipelined async puts over both shards, in both modes: every one acknowledged and readable. */
Test(ops, async_pipelined_puts_both_modes)
{
    enum { N = 600 };
    char key[N][32], val[N][16];
    for (int m = 0; m < 2; m++) {
        keel_client *c = m ? aware : router;
        struct async_tally t = {0, 0, 0};
        int submitted = 0;
        int64_t deadline = keeld_now_ms() + 30000;
        while (t.calls < N && keeld_now_ms() < deadline) {
            while (submitted < N) {
                int i = submitted;
                snprintf(key[i], sizeof(key[i]), "%casync%d/%03d", i % 2 ? '~' : '!', m, i);
                snprintf(val[i], sizeof(val[i]), "a%d", i);
                struct keel_put_args a = {.key = B(key[i]), .value = B(val[i])};
                int rc = keel_submit_put(c, &a, async_done, &t, NULL);
                if (rc == KEEL_STATUS_FULL) break;
                cr_assert_eq(rc, KEEL_STATUS_OK, "submit: %s", keel_strerror(rc));
                submitted++;
            }
            cr_assert_geq(keel_poll(c, 100), 0);
        }
        cr_assert_eq(t.calls, N, "every request called back once");
        cr_assert_eq(t.ok, N, "%d async puts failed", t.failed);
        cr_assert_eq(keel_pending(c), 0);
        for (int i = 0; i < N; i += 37) cr_assert(get_value_is(c, key[i], val[i]), "%s", key[i]);
        int64_t count = 0;
        for (int sh = 0; sh < 2; sh++) {
            char pfx[16], end[16];
            snprintf(pfx, sizeof(pfx), "%casync%d/", sh ? '~' : '!', m);
            snprintf(end, sizeof(end), "%casync%d0", sh ? '~' : '!', m);
            struct keel_range_args one = range_of(pfx, end);
            one.count_only = true;
            struct keel_result r;
            ASSERT_STATUS(keel_get(c, &one, &r), KEEL_STATUS_OK);
            count += r.u.range.count;
        }
        cr_assert_eq(count, N);
    }
}
