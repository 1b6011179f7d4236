/*
 * test_exec.c — request execution (shard/exec.h) against a real store: every
 * request goes through the codec as the runtime sends it (encoded, decoded,
 * executed) and every reply frame is decoded and its fields asserted: each op
 * and option, each error status exec produces with its detail, txn atomicity,
 * outcome.wrote, replay onto a fresh store, and the router port's merge.
 *
 * Randomized tests take KEEL_SEED from the environment and print the seed
 * they use.
 */
#include "shard/exec.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/test_rng.h"

#define SHARD     3u
#define MEMBER    0xABCDu
#define KEY_MAX   16u
#define VALUE_MAX 64u

static struct span S(const char *s) {
    return span_make(s, strlen(s));
}

static const struct span ALL = {(const u8 *)"", 1}; /* range_end "\0" and the key "\0" */

static bool span_eq(struct span a, const char *s)
{
    return a.len == strlen(s) && (a.len == 0 || memcmp(a.ptr, s, a.len) == 0);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static struct mvcc *store;
static struct exec ex;
static struct buf reqb, out;
static u64 next_id = 1;

static struct mvcc *store_new(u32 batch_ops_max)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    c.memory_bytes_max = 64u << 20;
    c.key_size_max = KEY_MAX;
    c.value_size_max = VALUE_MAX;
    c.batch_ops_max = batch_ops_max;
    struct mvcc *m = mvcc_create(&c);
    cr_assert_not_null(m);
    return m;
}

static void setup_with(u32 reply_max, u32 batch_ops_max)
{
    store = store_new(batch_ops_max);
    exec_init(&ex, store, SHARD, MEMBER, reply_max);
    buf_init_dynamic(&reqb, 256);
    buf_init_dynamic(&out, 256);
}

static void setup(void)
{
    setup_with(CODEC_REPLY_FRAME_SIZE_MAX, 10000);
}

static void teardown(void)
{
    exec_deinit(&ex);
    mvcc_destroy(store);
    buf_free(&reqb);
    buf_free(&out);
}

TestSuite(exec, .init = setup, .fini = teardown);

/* ---- running requests --------------------------------------------------------------------- */

struct res {
    struct exec_outcome o;
    struct codec_frame f;
    struct codec_reply r;
};

/* Runs an already decoded request on x and decodes its reply into *res. */
static void run_decoded(struct exec *x, const struct codec_frame *f, const union codec_msg_any *m,
                        struct res *res)
{
    i64 rev_before = mvcc_revision(x->m);
    buf_reset(&out);
    cr_assert_eq(exec_request(x, f, m, &out, &res->o), 0);
    size_t size = 0;
    cr_assert_eq(
        codec_frame_decode(span_make(out.ptr, out.len), CODEC_REPLY_FRAME_SIZE_MAX, &res->f, &size),
        0);
    cr_assert_eq(size, out.len, "exactly one frame");
    cr_assert_leq(size, x->reply_frame_size_max);
    cr_assert_eq(res->f.opcode, f->opcode);
    cr_assert_eq(res->f.request_id, f->request_id);
    cr_assert_eq(codec_reply_decode(&res->f, &res->r), 0);
    const struct codec_reply_header *h = &res->r.header;
    cr_assert_eq(h->status, res->o.status);
    cr_assert_eq(h->shard, x->shard_id);
    cr_assert_eq(h->member_id, x->member_id);
    cr_assert_eq(h->raft_term, 0);
    cr_assert_eq(h->revision, mvcc_revision(x->m));
    cr_assert_eq(res->o.revision, mvcc_revision(x->m));
    cr_assert_eq(res->o.wrote && f->opcode != CODEC_OP_COMPACT,
                 mvcc_revision(x->m) == rev_before + 1, "wrote exactly when the revision moved");
    cr_assert(mvcc_check(x->m));
}

/* Encodes body as a request frame, decodes it as the runtime does, runs it on x. */
static void run_on(struct exec *x, u16 opcode, const void *body, struct res *res)
{
    struct codec_frame head = {.opcode = opcode, .request_id = next_id++};
    buf_reset(&reqb);
    cr_assert_eq(codec_request_encode(&reqb, &head, body, CODEC_FRAME_SIZE_MAX), 0);
    struct codec_frame f;
    size_t size = 0;
    cr_assert_eq(codec_frame_decode(span_make(reqb.ptr, reqb.len), CODEC_FRAME_SIZE_MAX, &f, &size),
                 0);
    static union codec_msg_any m;
    cr_assert_eq(codec_request_decode(&f, &m), 0);
    run_decoded(x, &f, &m, res);
}

static void run(u16 opcode, const void *body, struct res *res)
{
    run_on(&ex, opcode, body, res);
}

/* For requests the decoder would refuse (an empty key): straight to exec_request. */
static void run_raw(u16 opcode, const union codec_msg_any *m, struct res *res)
{
    struct codec_frame f = {.opcode = opcode, .request_id = next_id++};
    run_decoded(&ex, &f, m, res);
}

static void expect_error(const struct res *res, u16 status, u64 detail)
{
    cr_assert_eq(res->o.status, status, "status %u, want %u", res->o.status, status);
    cr_assert_eq(res->r.body.error_body.detail, detail, "detail %llu, want %llu",
                 (unsigned long long)res->r.body.error_body.detail, (unsigned long long)detail);
    cr_assert_gt(res->r.body.error_body.message.len, 0, "an error has a message");
    cr_assert_not(res->o.wrote);
}

static void expect_ok(const struct res *res)
{
    cr_assert_eq(res->o.status, CODEC_S_OK, "status %u (%s)", res->o.status,
                 res->o.status ? (const char *)res->r.body.error_body.message.ptr : "");
}

static void put_f(const char *key, const char *value, u8 flags, struct res *res)
{
    struct codec_put_request q = {.flags = flags, .key = S(key), .value = S(value)};
    run(CODEC_OP_PUT, &q, res);
}

static void put(const char *key, const char *value)
{
    struct res res;
    put_f(key, value, 0, &res);
    expect_ok(&res);
    cr_assert(res.o.wrote);
}

/* The kvs of a list (range_reply.kvs or delete_range_reply.prev_kvs). */
static size_t kvs_of(const struct codec_list *l, struct codec_kv *kvs, size_t cap)
{
    struct codec_iter it;
    size_t n = 0;
    codec_iter_init(&it, codec_field_find(&codec_msg_range_reply, "kvs"), l);
    while (n < cap && codec_iter_next(&it, &kvs[n])) n++;
    cr_assert_eq(n, l->count);
    return n;
}

/* Asserts the keys of a kvs list, in order: "a,b,c". */
static void expect_keys(const struct codec_list *l, const char *keys)
{
    struct codec_kv kvs[64];
    size_t n = kvs_of(l, kvs, 64);
    char got[512] = "";
    for (size_t i = 0; i < n; i++) {
        if (i > 0) strcat(got, ",");
        strncat(got, (const char *)kvs[i].key.ptr, kvs[i].key.len);
    }
    cr_assert_str_eq(got, keys);
}

static struct codec_range_request range_q(const char *key, struct span end)
{
    struct codec_range_request q = {.key = S(key), .range_end = end};
    return q;
}

/* ---- PUT ---------------------------------------------------------------------------------- */

Test(exec, put_writes_and_returns_prev_kv)
{
    struct res r;
    put_f("a", "1", 0, &r);
    expect_ok(&r);
    cr_assert(r.o.wrote);
    cr_assert_eq(r.r.header.revision, 2);
    cr_assert_not(r.r.body.put_reply.has_prev_kv);
    put_f("a", "22", CODEC_PUT_REQUEST_PREV_KV, &r);
    expect_ok(&r);
    cr_assert_eq(r.r.header.revision, 3);
    const struct codec_put_reply *p = &r.r.body.put_reply;
    cr_assert(p->has_prev_kv);
    cr_assert(span_eq(p->prev_kv.key, "a") && span_eq(p->prev_kv.value, "1"));
    cr_assert_eq(p->prev_kv.create_revision, 2);
    cr_assert_eq(p->prev_kv.mod_revision, 2);
    cr_assert_eq(p->prev_kv.version, 1);
    put_f("a", "333", 0, &r); /* no prev_kv asked for */
    cr_assert_not(r.r.body.put_reply.has_prev_kv);
    put_f("fresh", "", CODEC_PUT_REQUEST_PREV_KV, &r); /* asked for, but none */
    expect_ok(&r);
    cr_assert_not(r.r.body.put_reply.has_prev_kv);
    cr_assert_eq(r.r.header.revision, 5);
}

Test(exec, put_errors)
{
    struct res r;
    put("a", "1");
    put_f("a", "x", CODEC_PUT_REQUEST_IGNORE_VALUE, &r);
    expect_error(&r, CODEC_S_UNSUPPORTED, 0);
    put_f("a", "x", CODEC_PUT_REQUEST_IGNORE_LEASE, &r);
    expect_error(&r, CODEC_S_UNSUPPORTED, 0);
    struct codec_put_request q = {.lease = 5, .key = S("a"), .value = S("x")};
    run(CODEC_OP_PUT, &q, &r);
    expect_error(&r, CODEC_S_UNSUPPORTED, 0);
    put_f("0123456789abcdefX", "x", 0, &r); /* 17 > KEY_MAX */
    expect_error(&r, CODEC_S_KEY_TOO_LARGE, 0);
    char big[VALUE_MAX + 2];
    memset(big, 'v', sizeof(big) - 1);
    big[VALUE_MAX + 1] = 0;
    put_f("a", big, 0, &r);
    expect_error(&r, CODEC_S_VALUE_TOO_LARGE, 0);
    big[VALUE_MAX] = 0;
    put_f("a", big, 0, &r); /* exactly the limit */
    expect_ok(&r);
    union codec_msg_any m = {.put_request = {.key = span_make("", 0), .value = S("x")}};
    run_raw(CODEC_OP_PUT, &m, &r);
    expect_error(&r, CODEC_S_KEY_EMPTY, 0);
    cr_assert_eq(mvcc_revision(store), 3);
}

/* ---- RANGE -------------------------------------------------------------------------------- */

/* a..e at revisions 2..6, then b and d again at 7 and 8; values sort opposite to keys. */
static void fill_abcde(void)
{
    put("a", "5");
    put("b", "4");
    put("c", "3");
    put("d", "2");
    put("e", "1");
    put("b", "44");
    put("d", "22");
}

static void range(const struct codec_range_request *q, struct res *r)
{
    run(CODEC_OP_RANGE, q, r);
    expect_ok(r);
    cr_assert_not(r->o.wrote);
}

Test(exec, range_keys_and_bounds)
{
    fill_abcde();
    struct res r;
    struct codec_range_request q = range_q("b", span_make(NULL, 0));
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "b");
    struct codec_kv kv[1];
    kvs_of(&r.r.body.range_reply.kvs, kv, 1);
    cr_assert(span_eq(kv[0].value, "44"));
    cr_assert_eq(kv[0].version, 2);
    cr_assert_eq(kv[0].create_revision, 3);
    cr_assert_eq(kv[0].mod_revision, 7);
    cr_assert_eq(r.r.body.range_reply.count, 1);
    q = range_q("b", S("d"));
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "b,c");
    q = range_q("c", ALL);
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "c,d,e");
    q = range_q("", ALL);
    q.key = ALL;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "a,b,c,d,e");
    cr_assert_eq(r.r.body.range_reply.count, 5);
    cr_assert_not(r.r.body.range_reply.more);
    q = range_q("zz", span_make(NULL, 0));
    range(&q, &r);
    cr_assert_eq(r.r.body.range_reply.count, 0);
    cr_assert_eq(r.r.body.range_reply.kvs.count, 0);
    q = range_q("a", ALL);
    q.flags = CODEC_RANGE_REQUEST_SERIALIZABLE; /* single member: the same read */
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "a,b,c,d,e");
}

Test(exec, range_options)
{
    fill_abcde();
    struct res r;
    struct codec_range_request q = range_q("a", ALL);
    q.limit = 2;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "a,b");
    cr_assert(r.r.body.range_reply.more);
    cr_assert_eq(r.r.body.range_reply.count, 5);
    q = range_q("a", ALL);
    q.flags = CODEC_RANGE_REQUEST_KEYS_ONLY;
    range(&q, &r);
    struct codec_kv kv[8];
    cr_assert_eq(kvs_of(&r.r.body.range_reply.kvs, kv, 8), 5);
    for (int i = 0; i < 5; i++) cr_assert_eq(kv[i].value.len, 0);
    cr_assert_eq(kv[1].version, 2);
    q.flags = CODEC_RANGE_REQUEST_COUNT_ONLY;
    range(&q, &r);
    cr_assert_eq(r.r.body.range_reply.kvs.count, 0);
    cr_assert_eq(r.r.body.range_reply.count, 5);
    cr_assert_not(r.r.body.range_reply.more);
    q = range_q("a", ALL);
    q.sort_order = CODEC_SORT_ORDER_DESCEND;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "e,d,c,b,a");
    q.sort_order = CODEC_SORT_ORDER_ASCEND;
    q.sort_target = CODEC_SORT_TARGET_VALUE;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "e,d,c,b,a"); /* "1" < "22" < "3" < "44" < "5" */
}

Test(exec, range_sort_and_filters)
{
    fill_abcde();
    struct res r;
    struct codec_range_request q = range_q("a", ALL);
    q.sort_order = CODEC_SORT_ORDER_DESCEND;
    q.sort_target = CODEC_SORT_TARGET_MOD;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "d,b,e,c,a");
    q.sort_order = CODEC_SORT_ORDER_NONE; /* a target other than KEY: ascending */
    q.sort_target = CODEC_SORT_TARGET_VERSION;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "a,c,e,b,d");
    q.sort_order = CODEC_SORT_ORDER_ASCEND;
    q.sort_target = CODEC_SORT_TARGET_CREATE;
    q.limit = 3;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "a,b,c");
    cr_assert(r.r.body.range_reply.more);
    q = range_q("a", ALL);
    q.min_mod_revision = 5;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "b,d,e");
    cr_assert_eq(r.r.body.range_reply.count, 5, "count is before the filters");
    q.max_mod_revision = 7;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "b,e");
    q = range_q("a", ALL);
    q.min_create_revision = 3;
    q.max_create_revision = 4;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "b,c");
}

Test(exec, range_at_past_revision)
{
    fill_abcde();
    struct res r;
    struct codec_range_request q = range_q("a", ALL);
    q.revision = 4;
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "a,b,c");
    cr_assert_eq(r.r.header.revision, 8, "the header carries the current revision");
    q = range_q("b", span_make(NULL, 0));
    q.revision = 6;
    range(&q, &r);
    struct codec_kv kv[1];
    kvs_of(&r.r.body.range_reply.kvs, kv, 1);
    cr_assert(span_eq(kv[0].value, "4"));
}

Test(exec, range_errors)
{
    fill_abcde();
    struct res r;
    struct codec_range_request q = range_q("a", ALL);
    q.revision = 9;
    run(CODEC_OP_RANGE, &q, &r);
    expect_error(&r, CODEC_S_FUTURE_REV, 8);
    cr_assert_eq(mvcc_compact(store, 5), 0);
    q.revision = 4;
    run(CODEC_OP_RANGE, &q, &r);
    expect_error(&r, CODEC_S_COMPACTED, 5);
    q.revision = 5;
    range(&q, &r); /* the compact revision itself still reads */
    q = range_q("c", S("b"));
    run(CODEC_OP_RANGE, &q, &r);
    expect_error(&r, CODEC_S_INVALID, 0);
    q = range_q("c", S("c"));
    run(CODEC_OP_RANGE, &q, &r);
    expect_error(&r, CODEC_S_INVALID, 0);
    q = range_q("0123456789abcdefX", span_make(NULL, 0));
    run(CODEC_OP_RANGE, &q, &r);
    expect_error(&r, CODEC_S_KEY_TOO_LARGE, 0);
    union codec_msg_any m = {.range_request = {.key = span_make("", 0)}};
    run_raw(CODEC_OP_RANGE, &m, &r);
    expect_error(&r, CODEC_S_KEY_EMPTY, 0);
    m.range_request = range_q("a", ALL);
    m.range_request.limit = -1;
    run_raw(CODEC_OP_RANGE, &m, &r);
    expect_error(&r, CODEC_S_INVALID, 0);
}

/* ---- DELETE_RANGE ------------------------------------------------------------------------- */

static void del(const char *key, struct span end, u8 flags, struct res *r)
{
    struct codec_delete_range_request q = {.flags = flags, .key = S(key), .range_end = end};
    run(CODEC_OP_DELETE_RANGE, &q, r);
}

Test(exec, delete_range)
{
    fill_abcde();
    struct res r;
    del("a", span_make(NULL, 0), 0, &r);
    expect_ok(&r);
    cr_assert(r.o.wrote);
    cr_assert_eq(r.r.body.delete_range_reply.deleted, 1);
    cr_assert_eq(r.r.body.delete_range_reply.prev_kvs.count, 0);
    cr_assert_eq(r.r.header.revision, 9);
    del("b", S("d"), CODEC_DELETE_RANGE_REQUEST_PREV_KV, &r);
    expect_ok(&r);
    cr_assert_eq(r.r.body.delete_range_reply.deleted, 2);
    expect_keys(&r.r.body.delete_range_reply.prev_kvs, "b,c");
    struct codec_kv kv[2];
    kvs_of(&r.r.body.delete_range_reply.prev_kvs, kv, 2);
    cr_assert(span_eq(kv[0].value, "44") && kv[0].version == 2 && kv[0].mod_revision == 7);
    cr_assert_eq(r.r.header.revision, 10);
    del("a", S("d"), CODEC_DELETE_RANGE_REQUEST_PREV_KV, &r); /* nothing left there */
    expect_ok(&r);
    cr_assert_not(r.o.wrote);
    cr_assert_eq(r.r.body.delete_range_reply.deleted, 0);
    cr_assert_eq(r.r.header.revision, 10);
    del("e", S("a"), 0, &r);
    expect_error(&r, CODEC_S_INVALID, 0);
    del("0123456789abcdefX", span_make(NULL, 0), 0, &r);
    expect_error(&r, CODEC_S_KEY_TOO_LARGE, 0);
    del("d", ALL, 0, &r);
    expect_ok(&r);
    cr_assert_eq(r.r.body.delete_range_reply.deleted, 2);
    cr_assert_eq(mvcc_revision(store), 11);
}

/* ---- TXN ---------------------------------------------------------------------------------- */

struct txn_b {
    struct buf b[3];
    struct codec_list_builder lb[3];
    struct codec_txn_request q;
};

static void txn_begin(struct txn_b *t)
{
    const char *names[3] = {"compares", "success", "failure"};
    struct codec_list *lists[3] = {&t->q.compares, &t->q.success, &t->q.failure};
    for (int i = 0; i < 3; i++) {
        buf_init_dynamic(&t->b[i], 256);
        codec_list_begin(&t->lb[i], codec_field_find(&codec_msg_txn_request, names[i]), lists[i],
                         &t->b[i]);
    }
}

static void txn_cmp(struct txn_b *t, u8 target, u8 result, const char *key, struct span end,
                    const char *value, i64 operand)
{
    struct codec_compare c = {.target = target,
                              .result = result,
                              .key = S(key),
                              .range_end = end,
                              .value = value ? S(value) : span_make(NULL, 0),
                              .operand = operand};
    cr_assert_eq(codec_list_add(&t->lb[0], &c), 0);
}

static void txn_put(struct txn_b *t, bool success, const char *key, const char *value, u8 flags)
{
    struct codec_op op = {.kind = CODEC_OP_KIND_PUT};
    op.put = (struct codec_put_request){.flags = flags, .key = S(key), .value = S(value)};
    cr_assert_eq(codec_list_add(&t->lb[success ? 1 : 2], &op), 0);
}

static void txn_range(struct txn_b *t, bool success, const char *key, struct span end)
{
    struct codec_op op = {.kind = CODEC_OP_KIND_RANGE, .range = range_q(key, end)};
    cr_assert_eq(codec_list_add(&t->lb[success ? 1 : 2], &op), 0);
}

static void txn_del(struct txn_b *t, bool success, const char *key, struct span end, u8 flags)
{
    struct codec_op op = {.kind = CODEC_OP_KIND_DELETE_RANGE};
    op.delete_range = (struct codec_delete_range_request){flags, S(key), end};
    cr_assert_eq(codec_list_add(&t->lb[success ? 1 : 2], &op), 0);
}

static void txn_run_on(struct exec *x, struct txn_b *t, struct res *r)
{
    for (int i = 0; i < 3; i++) codec_list_end(&t->lb[i]);
    run_on(x, CODEC_OP_TXN, &t->q, r);
    for (int i = 0; i < 3; i++) buf_free(&t->b[i]);
}

static void txn_run(struct txn_b *t, struct res *r)
{
    txn_run_on(&ex, t, r);
}

/* The op replies of a txn reply. */
static size_t op_replies(const struct res *r, struct codec_op_reply *ops, size_t cap)
{
    struct codec_iter it;
    size_t n = 0;
    codec_iter_init(&it, codec_field_find(&codec_msg_txn_reply, "replies"),
                    &r->r.body.txn_reply.replies);
    while (n < cap && codec_iter_next(&it, &ops[n])) n++;
    return n;
}

/* One compare alone, with a put "t" in each branch: returns which branch ran. */
static bool cmp1(u8 target, u8 result, const char *key, struct span end, const char *value,
                 i64 operand)
{
    struct txn_b t;
    struct res r;
    txn_begin(&t);
    txn_cmp(&t, target, result, key, end, value, operand);
    txn_range(&t, true, "a", span_make(NULL, 0));
    txn_range(&t, false, "a", span_make(NULL, 0));
    txn_run(&t, &r);
    expect_ok(&r);
    cr_assert_not(r.o.wrote);
    cr_assert_eq(r.r.body.txn_reply.replies.count, 1);
    return r.r.body.txn_reply.succeeded;
}

Test(exec, txn_compares)
{
    fill_abcde(); /* b: version 2, create 3, mod 7, "44" */
    struct span one = span_make(NULL, 0);
    enum { V = CODEC_COMPARE_TARGET_VERSION, C = CODEC_COMPARE_TARGET_CREATE };
    enum { M = CODEC_COMPARE_TARGET_MOD, VAL = CODEC_COMPARE_TARGET_VALUE };
    enum { L = CODEC_COMPARE_TARGET_LEASE };
    enum { EQ = CODEC_COMPARE_RESULT_EQUAL, GT = CODEC_COMPARE_RESULT_GREATER };
    enum { LT = CODEC_COMPARE_RESULT_LESS, NE = CODEC_COMPARE_RESULT_NOT_EQUAL };
    cr_assert(cmp1(V, EQ, "b", one, NULL, 2));
    cr_assert_not(cmp1(V, EQ, "b", one, NULL, 1));
    cr_assert(cmp1(V, GT, "b", one, NULL, 1));
    cr_assert_not(cmp1(V, GT, "b", one, NULL, 2));
    cr_assert(cmp1(V, LT, "b", one, NULL, 3));
    cr_assert(cmp1(V, NE, "b", one, NULL, 3));
    cr_assert_not(cmp1(V, NE, "b", one, NULL, 2));
    cr_assert(cmp1(C, EQ, "b", one, NULL, 3));
    cr_assert(cmp1(M, EQ, "b", one, NULL, 7));
    cr_assert(cmp1(M, LT, "b", one, NULL, 8));
    cr_assert(cmp1(VAL, EQ, "b", one, "44", 0));
    cr_assert_not(cmp1(VAL, EQ, "b", one, "4", 0));
    cr_assert(cmp1(VAL, GT, "b", one, "4", 0));
    cr_assert(cmp1(VAL, LT, "b", one, "5", 0));
    cr_assert(cmp1(VAL, NE, "b", one, "x", 0));
    cr_assert(cmp1(L, EQ, "b", one, NULL, 0));
    bool had = false;
    cr_assert_eq(mvcc_put(store, S("l"), S("v"), 7, NULL, &had), 0);
    cr_assert(cmp1(L, EQ, "l", one, NULL, 7));
    cr_assert(cmp1(L, GT, "l", one, NULL, 6));
    /* absent keys: 0 for the numbers, a VALUE compare fails whatever its result */
    cr_assert(cmp1(V, EQ, "zz", one, NULL, 0));
    cr_assert(cmp1(C, EQ, "zz", one, NULL, 0));
    cr_assert(cmp1(M, LT, "zz", one, NULL, 1));
    cr_assert(cmp1(L, EQ, "zz", one, NULL, 0));
    cr_assert_not(cmp1(VAL, EQ, "zz", one, "", 0));
    cr_assert_not(cmp1(VAL, NE, "zz", one, "x", 0));
    /* over a range: every key must pass */
    cr_assert(cmp1(M, GT, "a", S("f"), NULL, 1));
    cr_assert_not(cmp1(M, GT, "a", S("f"), NULL, 2));
    cr_assert(cmp1(V, EQ, "b", S("c"), NULL, 2));
    cr_assert_not(cmp1(V, EQ, "a", S("c"), NULL, 2));
    cr_assert(cmp1(V, EQ, "x", S("y"), NULL, 0)); /* empty range: an absent key */
    cr_assert(cmp1(VAL, GT, "a", ALL, "0", 0));
}

Test(exec, txn_branches_and_reads_see_writes)
{
    fill_abcde();
    struct txn_b t;
    struct res r;
    txn_begin(&t);
    txn_cmp(&t, CODEC_COMPARE_TARGET_VERSION, CODEC_COMPARE_RESULT_EQUAL, "a", ALL, NULL, 1);
    txn_put(&t, true, "x", "never", 0);
    txn_put(&t, false, "a", "new", CODEC_PUT_REQUEST_PREV_KV);
    txn_range(&t, false, "a", S("b"));
    txn_del(&t, false, "c", S("e"), CODEC_DELETE_RANGE_REQUEST_PREV_KV);
    txn_range(&t, false, "a", ALL);
    txn_run(&t, &r);
    expect_ok(&r);
    cr_assert(r.o.wrote);
    cr_assert_not(r.r.body.txn_reply.succeeded);
    cr_assert_eq(r.r.header.revision, 9);
    struct codec_op_reply ops[4];
    cr_assert_eq(op_replies(&r, ops, 4), 4);
    cr_assert_eq(ops[0].kind, CODEC_OP_KIND_PUT);
    cr_assert(ops[0].put.has_prev_kv && span_eq(ops[0].put.prev_kv.value, "5"));
    struct codec_kv kv[8];
    cr_assert_eq(ops[1].kind, CODEC_OP_KIND_RANGE);
    cr_assert_eq(kvs_of(&ops[1].range.kvs, kv, 8), 1);
    cr_assert(span_eq(kv[0].value, "new"), "a read sees the txn's earlier put");
    cr_assert_eq(kv[0].mod_revision, 9);
    cr_assert_eq(ops[2].kind, CODEC_OP_KIND_DELETE_RANGE);
    cr_assert_eq(ops[2].delete_range.deleted, 2);
    expect_keys(&ops[2].delete_range.prev_kvs, "c,d");
    cr_assert_eq(ops[3].kind, CODEC_OP_KIND_RANGE);
    expect_keys(&ops[3].range.kvs, "a,b,e");
    cr_assert_eq(ops[3].range.count, 3);
    struct codec_range_request q = range_q("x", span_make(NULL, 0));
    range(&q, &r);
    cr_assert_eq(r.r.body.range_reply.count, 0, "the other branch did not run");
    q = range_q("c", ALL);
    range(&q, &r);
    expect_keys(&r.r.body.range_reply.kvs, "e");
}

Test(exec, txn_without_writes_and_empty)
{
    put("a", "1");
    struct txn_b t;
    struct res r;
    txn_begin(&t);
    txn_range(&t, true, "a", span_make(NULL, 0));
    txn_del(&t, true, "zz", span_make(NULL, 0), 0);
    txn_run(&t, &r);
    expect_ok(&r);
    cr_assert(r.r.body.txn_reply.succeeded, "no compares: success");
    cr_assert_not(r.o.wrote);
    cr_assert_eq(r.r.header.revision, 2);
    txn_begin(&t);
    txn_run(&t, &r);
    expect_ok(&r);
    cr_assert_not(r.o.wrote);
    cr_assert_eq(r.r.body.txn_reply.replies.count, 0);
}

/* A txn that writes "w1" and "w2" then fails must leave no trace. */
static void txn_expect_abort(void (*bad)(struct txn_b *), u16 status, u64 detail)
{
    i64 rev = mvcc_revision(store);
    struct txn_b t;
    struct res r;
    txn_begin(&t);
    txn_put(&t, true, "w1", "1", 0);
    txn_del(&t, true, "a", S("b"), 0);
    txn_put(&t, true, "w2", "2", 0);
    bad(&t);
    txn_run(&t, &r);
    expect_error(&r, status, detail);
    cr_assert_eq(r.r.header.revision, rev);
    cr_assert_eq(mvcc_revision(store), rev);
    struct codec_range_request q = range_q("a", ALL);
    q.flags = CODEC_RANGE_REQUEST_COUNT_ONLY;
    range(&q, &r);
    cr_assert_eq(r.r.body.range_reply.count, 3, "a b c are still there, w1 w2 are not");
}

static void bad_duplicate(struct txn_b *t)
{
    txn_put(t, true, "w1", "again", 0);
}

static void bad_value(struct txn_b *t)
{
    txn_put(t, true, "v", "0123456789012345678901234567890123456789012345678901234567890123456789",
            0);
}

static void bad_unsupported(struct txn_b *t)
{
    txn_put(t, true, "v", "x", CODEC_PUT_REQUEST_IGNORE_VALUE);
}

static void bad_compacted_read(struct txn_b *t)
{
    struct codec_op op = {.kind = CODEC_OP_KIND_RANGE, .range = range_q("a", ALL)};
    op.range.revision = 2;
    cr_assert_eq(codec_list_add(&t->lb[1], &op), 0);
}

static void bad_future_read(struct txn_b *t)
{
    struct codec_op op = {.kind = CODEC_OP_KIND_RANGE, .range = range_q("a", ALL)};
    op.range.revision = 99;
    cr_assert_eq(codec_list_add(&t->lb[1], &op), 0);
}

static void bad_key(struct txn_b *t)
{
    txn_del(t, true, "0123456789abcdefX", span_make(NULL, 0), 0);
}

static void bad_compare(struct txn_b *t)
{
    txn_cmp(t, CODEC_COMPARE_TARGET_VERSION, CODEC_COMPARE_RESULT_EQUAL, "b", S("a"), NULL, 0);
}

Test(exec, txn_errors_abort_the_batch)
{
    put("a", "1");
    put("b", "2");
    put("c", "3");
    cr_assert_eq(mvcc_compact(store, 3), 0);
    txn_expect_abort(bad_duplicate, CODEC_S_DUPLICATE_KEY, 0);
    txn_expect_abort(bad_value, CODEC_S_VALUE_TOO_LARGE, 0);
    txn_expect_abort(bad_unsupported, CODEC_S_UNSUPPORTED, 0);
    txn_expect_abort(bad_compacted_read, CODEC_S_COMPACTED, 3);
    txn_expect_abort(bad_future_read, CODEC_S_FUTURE_REV, 4);
    txn_expect_abort(bad_key, CODEC_S_KEY_TOO_LARGE, 0);
    txn_expect_abort(bad_compare, CODEC_S_INVALID, 0);
}

/* Tests that configure their own fixture. */
TestSuite(exec_cfg, .fini = teardown);

Test(exec_cfg, txn_too_many_ops)
{
    setup_with(CODEC_REPLY_FRAME_SIZE_MAX, 2);
    struct txn_b t;
    struct res r;
    txn_begin(&t);
    txn_put(&t, true, "a", "1", 0);
    txn_put(&t, true, "b", "1", 0);
    txn_put(&t, true, "c", "1", 0);
    txn_run(&t, &r);
    expect_error(&r, CODEC_S_TOO_MANY_OPS, 0);
    cr_assert_eq(mvcc_revision(store), 1);
}

/* A nested TXN op never reaches exec: the decoder refuses the reserved kind with UNSUPPORTED,
 * which the runtime sends back (exec_op_run refuses it too, for a caller that skips decoding). */
Test(exec, txn_nested_is_unsupported)
{
    const u8 body[] = {0, 0, 1, 0, CODEC_OP_KIND_TXN, 0, 0};
    union codec_msg_any m;
    cr_assert_eq(codec_decode(&codec_msg_txn_request, span_make(body, sizeof(body)), &m),
                 CODEC_S_UNSUPPORTED);
}

/* ---- REPLY_TOO_LARGE ---------------------------------------------------------------------- */

#define SMALL_REPLY 512u

Test(exec_cfg, reply_too_large)
{
    setup_with(SMALL_REPLY, 10000);
    char v[VALUE_MAX + 1];
    memset(v, 'v', VALUE_MAX);
    v[VALUE_MAX] = 0;
    char k[4] = "k0";
    for (int i = 0; i < 10; i++, k[1]++) put(k, v); /* 10 x ~110 bytes */
    struct res r;
    struct codec_range_request q = range_q("k", ALL);
    run(CODEC_OP_RANGE, &q, &r);
    expect_error(&r, CODEC_S_REPLY_TOO_LARGE, SMALL_REPLY);
    q.limit = 3;
    range(&q, &r);
    cr_assert_eq(r.r.body.range_reply.kvs.count, 3);
    q.limit = 0;
    q.flags = CODEC_RANGE_REQUEST_KEYS_ONLY;
    range(&q, &r);
    cr_assert_eq(r.r.body.range_reply.kvs.count, 10);
    /* a txn whose reads do not fit writes nothing */
    struct txn_b t;
    txn_begin(&t);
    txn_put(&t, true, "new", "1", 0);
    txn_range(&t, true, "k", ALL);
    txn_run(&t, &r);
    expect_error(&r, CODEC_S_REPLY_TOO_LARGE, SMALL_REPLY);
    cr_assert_eq(mvcc_revision(store), 11);
    /* nor one whose op replies fit but whose frame does not: 80 puts, 6 bytes each */
    txn_begin(&t);
    char pk[4] = "p00";
    for (int i = 0; i < 80; i++) {
        pk[1] = (char)('0' + i / 10);
        pk[2] = (char)('0' + i % 10);
        txn_put(&t, true, pk, "", 0);
    }
    txn_run(&t, &r);
    expect_error(&r, CODEC_S_REPLY_TOO_LARGE, SMALL_REPLY);
    cr_assert_eq(mvcc_revision(store), 11);
    /* a put whose prev_kv does not fit is not written either */
    put_f("k1", "x", CODEC_PUT_REQUEST_PREV_KV, &r);
    cr_assert_eq(r.o.status, CODEC_S_OK, "one kv fits");
    cr_assert_eq(mvcc_revision(store), 12);
}

/* ---- COMPACT ------------------------------------------------------------------------------ */

static void compact(u16 shard, i64 rev, u8 flags, struct res *r)
{
    struct codec_compact_request q = {.flags = flags, .shard = shard, .revision = rev};
    run(CODEC_OP_COMPACT, &q, r);
}

Test(exec, compact)
{
    fill_abcde();
    struct res r;
    ex.shard_map_version = 42;
    i64 compacted = mvcc_compact_revision(store);
    compact(SHARD + 1, 4, 0, &r);
    expect_error(&r, CODEC_S_WRONG_SHARD, 42);
    cr_assert_eq(mvcc_compact_revision(store), compacted);
    compact(SHARD, 4, 0, &r);
    expect_ok(&r);
    cr_assert(r.o.wrote, "a compaction that started is logged");
    cr_assert_eq(mvcc_compact_revision(store), 4);
    cr_assert_eq(r.r.header.revision, 8);
    compact(SHARD, 4, 0, &r);
    expect_error(&r, CODEC_S_COMPACTED, 4);
    compact(SHARD, 9, 0, &r);
    expect_error(&r, CODEC_S_FUTURE_REV, 8);
    compact(SHARD, 8, CODEC_COMPACT_REQUEST_PHYSICAL, &r);
    expect_ok(&r);
    cr_assert(r.o.wrote);
    struct mvcc_stats st;
    mvcc_stats(store, &st);
    cr_assert_eq(st.records, 5, "physical: superseded versions freed before the reply");
    struct codec_range_request q = range_q("a", ALL);
    q.revision = 7;
    run(CODEC_OP_RANGE, &q, &r);
    expect_error(&r, CODEC_S_COMPACTED, 8);
}

/* ---- error replies ------------------------------------------------------------------------ */

Test(exec, error_reply_and_goaway)
{
    cr_assert_eq(exec_error_reply(&out, CODEC_OP_PUT, 77, 2, 9, MEMBER, CODEC_S_NOT_LEADER, 5,
                                  "not the leader"),
                 0);
    cr_assert_eq(exec_error_reply(&out, CODEC_OP_GOAWAY, 0, CODEC_SHARD_NONE, 0, MEMBER,
                                  CODEC_S_SHUTTING_DOWN, 0, "bye"),
                 0);
    struct span in = span_make(out.ptr, out.len);
    struct codec_frame f;
    struct codec_reply r;
    size_t size = 0;
    cr_assert_eq(codec_frame_decode(in, CODEC_REPLY_FRAME_SIZE_MAX, &f, &size), 0);
    cr_assert_eq(codec_reply_decode(&f, &r), 0);
    cr_assert_eq(f.opcode, CODEC_OP_PUT);
    cr_assert_eq(f.request_id, 77);
    cr_assert_eq(r.header.status, CODEC_S_NOT_LEADER);
    cr_assert_eq(r.header.shard, 2);
    cr_assert_eq(r.header.revision, 9);
    cr_assert_eq(r.header.member_id, MEMBER);
    cr_assert_eq(r.body.error_body.detail, 5);
    cr_assert(span_eq(r.body.error_body.message, "not the leader"));
    in.ptr += size;
    in.len -= size;
    cr_assert_eq(codec_frame_decode(in, CODEC_REPLY_FRAME_SIZE_MAX, &f, &size), 0);
    cr_assert_eq(size, in.len);
    cr_assert_eq(codec_reply_decode(&f, &r), 0);
    cr_assert_eq(f.opcode, CODEC_OP_GOAWAY);
    cr_assert_eq(r.header.status, CODEC_S_SHUTTING_DOWN);
    cr_assert_eq(r.header.shard, CODEC_SHARD_NONE);
    cr_assert(span_eq(r.body.error_body.message, "bye"));
}

/* ---- replay ------------------------------------------------------------------------------- */

struct wal {
    u16 opcode[4096];
    size_t off[4096];
    size_t len[4096];
    size_t count;
    struct buf bytes;
};

static void rand_key(char *k)
{
    k[0] = 'k';
    k[1] = (char)('0' + rng_below(3));
    k[2] = (char)('0' + rng_below(8));
    k[3] = 0;
}

static void rand_put(struct codec_put_request *q, char *k, char *v)
{
    rand_key(k);
    size_t n = rng_below(24);
    for (size_t i = 0; i < n; i++) v[i] = (char)('a' + rng_below(26));
    q->flags = rng_below(2) ? CODEC_PUT_REQUEST_PREV_KV : 0;
    q->key = S(k);
    q->value = span_make(v, n);
}

static void rand_txn(struct txn_b *t, char keys[][8], char *v)
{
    txn_begin(t);
    rand_key(keys[0]);
    txn_cmp(t, (u8)rng_below(3), (u8)rng_below(4), keys[0], span_make(NULL, 0), NULL,
            (i64)rng_below(4));
    for (int i = 0; i < 4; i++) {
        bool success = i < 2;
        u64 kind = rng_below(3);
        char *k = keys[1 + i];
        rand_key(k);
        if (kind == 0) txn_put(t, success, k, v, 0);
        if (kind == 1) txn_del(t, success, k, rng_below(2) ? ALL : span_make(NULL, 0), 0);
        if (kind == 2) txn_range(t, success, k, ALL);
    }
}

/* One random request on store A; logs its body when it wrote. */
static void rand_request(struct exec *a, struct wal *w)
{
    struct codec_put_request put_q = {0};
    struct codec_delete_range_request del_q = {0};
    struct codec_compact_request cq = {.shard = SHARD};
    char k[8], end[8], v[32] = "val", keys[5][8];
    struct txn_b t;
    struct res r;
    u64 what = rng_below(50);
    if (what < 25) {
        rand_put(&put_q, k, v);
        run_on(a, CODEC_OP_PUT, &put_q, &r);
    } else if (what < 35) {
        rand_key(k);
        rand_key(end);
        del_q.key = S(k);
        del_q.range_end = rng_below(2) ? span_make(NULL, 0) : strcmp(end, k) > 0 ? S(end) : ALL;
        del_q.flags = (u8)rng_below(2);
        run_on(a, CODEC_OP_DELETE_RANGE, &del_q, &r);
    } else if (what < 49) {
        rand_txn(&t, keys, v);
        txn_run_on(a, &t, &r);
    } else {
        i64 lo = mvcc_compact_revision(a->m), hi = mvcc_revision(a->m);
        cq.revision = lo + 1 + (i64)rng_below((u64)(hi - lo + 1) / 2 + 1); /* or in the future */
        cq.flags = (u8)rng_below(2);
        run_on(a, CODEC_OP_COMPACT, &cq, &r);
    }
    if (!r.o.wrote) return;
    cr_assert_lt(w->count, KEEL_ARRAY_LEN(w->opcode));
    w->opcode[w->count] = r.f.opcode;
    w->off[w->count] = w->bytes.len;
    w->len[w->count] = reqb.len - CODEC_FRAME_HEADER_SIZE;
    buf_put_bytes(&w->bytes, reqb.ptr + CODEC_FRAME_HEADER_SIZE, w->len[w->count]);
    w->count++;
}

static void expect_same_at(struct mvcc *a, struct mvcc *b, i64 rev)
{
    struct mvcc_range_req q = {.key = ALL, .range_end = ALL, .revision = rev};
    struct mvcc_range_result ra, rb;
    cr_assert_eq(mvcc_range(a, &q, &ra), 0);
    cr_assert_eq(mvcc_range(b, &q, &rb), 0);
    cr_assert_eq(ra.count, rb.count, "count at %lld", (long long)rev);
    cr_assert_eq(ra.kvs_len, rb.kvs_len);
    for (size_t i = 0; i < ra.kvs_len; i++) {
        const struct mvcc_kv *x = &ra.kvs[i], *y = &rb.kvs[i];
        cr_assert(x->key.len == y->key.len && memcmp(x->key.ptr, y->key.ptr, x->key.len) == 0);
        cr_assert(x->value.len == y->value.len &&
                  (x->value.len == 0 || memcmp(x->value.ptr, y->value.ptr, x->value.len) == 0));
        cr_assert_eq(x->create_revision, y->create_revision);
        cr_assert_eq(x->mod_revision, y->mod_revision);
        cr_assert_eq(x->version, y->version);
        cr_assert_eq(x->lease, y->lease);
    }
}

Test(exec, replay_reaches_the_same_state)
{
    rng_seed("replay_reaches_the_same_state");
    static struct wal w;
    w.count = 0;
    buf_init_dynamic(&w.bytes, 4096);
    for (int i = 0; i < 1500; i++) rand_request(&ex, &w);
    struct mvcc *b = store_new(10000);
    struct exec xb;
    exec_init(&xb, b, SHARD, MEMBER, CODEC_REPLY_FRAME_SIZE_MAX);
    for (size_t i = 0; i < w.count; i++) {
        struct span body = span_make(w.bytes.ptr + w.off[i], w.len[i]);
        cr_assert_eq(exec_replay(&xb, w.opcode[i], body), 0, "record %zu", i);
    }
    cr_assert_eq(mvcc_revision(b), mvcc_revision(store));
    cr_assert_eq(mvcc_compact_revision(b), mvcc_compact_revision(store));
    cr_assert(mvcc_check(b));
    i64 lo = mvcc_compact_revision(store), hi = mvcc_revision(store);
    expect_same_at(store, b, 0);
    for (int i = 0; i < 8; i++) expect_same_at(store, b, lo + (i64)rng_below((u64)(hi - lo + 1)));
    fprintf(stderr, "replay: %zu records, revision %lld, compact %lld\n", w.count, (long long)hi,
            (long long)lo);
    exec_deinit(&xb);
    mvcc_destroy(b);
    buf_free(&w.bytes);
}

Test(exec, replay_refuses_what_does_not_match)
{
    put("a", "1");
    u8 junk[3] = {1, 2, 3};
    cr_assert_eq(exec_replay(&ex, CODEC_OP_PUT, span_make(junk, 3)), KEEL_ECORRUPT);
    struct codec_range_request rq = range_q("a", ALL);
    buf_reset(&reqb);
    cr_assert_eq(codec_encode(&reqb, &codec_msg_range_request, &rq), 0);
    struct span body = span_make(reqb.ptr, reqb.len);
    cr_assert_eq(exec_replay(&ex, CODEC_OP_RANGE, body), KEEL_ECORRUPT, "not a write");
    struct codec_put_request pq = {.flags = CODEC_PUT_REQUEST_IGNORE_VALUE, .key = S("a")};
    buf_reset(&reqb);
    cr_assert_eq(codec_encode(&reqb, &codec_msg_put_request, &pq), 0);
    body = span_make(reqb.ptr, reqb.len);
    cr_assert_eq(exec_replay(&ex, CODEC_OP_PUT, body), KEEL_ECORRUPT, "fails again");
    struct codec_delete_range_request dq = {.key = S("zz")};
    buf_reset(&reqb);
    cr_assert_eq(codec_encode(&reqb, &codec_msg_delete_range_request, &dq), 0);
    body = span_make(reqb.ptr, reqb.len);
    cr_assert_eq(exec_replay(&ex, CODEC_OP_DELETE_RANGE, body), KEEL_ECORRUPT, "wrote nothing");
    struct codec_compact_request cq = {.shard = SHARD, .revision = 2};
    buf_reset(&reqb);
    cr_assert_eq(codec_encode(&reqb, &codec_msg_compact_request, &cq), 0);
    body = span_make(reqb.ptr, reqb.len);
    cr_assert_eq(exec_replay(&ex, CODEC_OP_COMPACT, body), 0);
    struct mvcc_stats st;
    mvcc_stats(store, &st);
    cr_assert_eq(st.compact_revision, 2);
    cr_assert_eq(exec_replay(&ex, CODEC_OP_COMPACT, body), KEEL_ECORRUPT, "compacted already");
    pq = (struct codec_put_request){.key = S("b"), .value = S("2")};
    buf_reset(&reqb);
    cr_assert_eq(codec_encode(&reqb, &codec_msg_put_request, &pq), 0);
    body = span_make(reqb.ptr, reqb.len);
    cr_assert_eq(exec_replay(&ex, CODEC_OP_PUT, body), 0);
    cr_assert_eq(mvcc_revision(store), 3);
}

/* ---- the router port's merge -------------------------------------------------------------- */

struct shards3 {
    struct mvcc *m[3];
    struct exec x[3];
    struct buf part[3];
    struct span parts[3];
};

/* Shard i holds 3 keys: a b c | d e f | g h i, each with value = key. */
static void shards3_init(struct shards3 *s)
{
    char k[2] = "a";
    for (u16 i = 0; i < 3; i++) {
        s->m[i] = store_new(10000);
        exec_init(&s->x[i], s->m[i], i, MEMBER, CODEC_REPLY_FRAME_SIZE_MAX);
        buf_init_dynamic(&s->part[i], 256);
        for (int j = 0; j < 3; j++, k[0]++) {
            struct codec_put_request q = {.key = S(k), .value = S(k)};
            struct res r;
            run_on(&s->x[i], CODEC_OP_PUT, &q, &r);
            expect_ok(&r);
        }
    }
}

static void shards3_free(struct shards3 *s)
{
    for (int i = 0; i < 3; i++) {
        exec_deinit(&s->x[i]);
        mvcc_destroy(s->m[i]);
        buf_free(&s->part[i]);
    }
}

/* Each shard runs q; merges the parts into out and decodes it. */
static void merge(struct shards3 *s, u32 n, const struct codec_range_request *q,
                  struct codec_reply *r)
{
    for (u32 i = 0; i < n; i++) {
        struct res pr;
        run_on(&s->x[i], CODEC_OP_RANGE, q, &pr);
        buf_reset(&s->part[i]);
        buf_put_bytes(&s->part[i], out.ptr, out.len);
        s->parts[i] = span_make(s->part[i].ptr, s->part[i].len);
    }
    buf_reset(&out);
    cr_assert_eq(exec_merge_ranges(&s->x[0], 99, q, s->parts, n, &out), 0);
    struct codec_frame f;
    size_t size = 0;
    cr_assert_eq(
        codec_frame_decode(span_make(out.ptr, out.len), CODEC_REPLY_FRAME_SIZE_MAX, &f, &size), 0);
    cr_assert_eq(size, out.len);
    cr_assert_eq(f.opcode, CODEC_OP_RANGE);
    cr_assert_eq(f.request_id, 99);
    cr_assert_eq(codec_reply_decode(&f, r), 0);
    cr_assert_eq(r->header.member_id, MEMBER);
}

Test(exec, merge_ranges)
{
    static struct shards3 s;
    shards3_init(&s);
    struct codec_reply r;
    struct codec_range_request q = range_q("b", S("h"));
    merge(&s, 3, &q, &r);
    cr_assert_eq(r.header.status, CODEC_S_OK);
    cr_assert_eq(r.header.shard, CODEC_SHARD_NONE);
    cr_assert_eq(r.header.revision, 0);
    expect_keys(&r.body.range_reply.kvs, "b,c,d,e,f,g");
    cr_assert_eq(r.body.range_reply.count, 6);
    cr_assert_not(r.body.range_reply.more);
    struct codec_kv kv[8];
    kvs_of(&r.body.range_reply.kvs, kv, 8);
    cr_assert(span_eq(kv[3].value, "e") && kv[3].mod_revision == 3 && kv[3].version == 1);
    q.limit = 4;
    merge(&s, 3, &q, &r);
    expect_keys(&r.body.range_reply.kvs, "b,c,d,e");
    cr_assert_eq(r.body.range_reply.count, 6);
    cr_assert(r.body.range_reply.more);
    q.sort_order = CODEC_SORT_ORDER_DESCEND;
    merge(&s, 3, &q, &r);
    expect_keys(&r.body.range_reply.kvs, "g,f,e,d");
    cr_assert(r.body.range_reply.more);
    q = range_q("a", ALL);
    q.limit = 2; /* each shard cuts at 2; the merge keeps the first 2 */
    merge(&s, 2, &q, &r);
    expect_keys(&r.body.range_reply.kvs, "a,b");
    cr_assert_eq(r.body.range_reply.count, 6);
    cr_assert(r.body.range_reply.more);
    q.limit = 0;
    q.flags = CODEC_RANGE_REQUEST_COUNT_ONLY;
    merge(&s, 3, &q, &r);
    cr_assert_eq(r.body.range_reply.kvs.count, 0);
    cr_assert_eq(r.body.range_reply.count, 9);
    q = range_q("a", ALL);
    q.sort_target = CODEC_SORT_TARGET_VALUE; /* one shard only: its order as it is */
    q.sort_order = CODEC_SORT_ORDER_DESCEND;
    merge(&s, 1, &q, &r);
    expect_keys(&r.body.range_reply.kvs, "c,b,a");
    shards3_free(&s);
}

Test(exec, merge_ranges_error_part)
{
    static struct shards3 s;
    shards3_init(&s);
    struct codec_range_request q = range_q("a", ALL);
    q.revision = 4; /* shards 0 and 2 are at 4, but make shard 1 fail: compact past it */
    cr_assert_eq(mvcc_compact(s.m[1], 4), 0);
    q.revision = 3;
    struct codec_reply r;
    merge(&s, 3, &q, &r);
    cr_assert_eq(r.header.status, CODEC_S_COMPACTED);
    cr_assert_eq(r.header.shard, 1);
    cr_assert_eq(r.header.revision, 4);
    cr_assert_eq(r.body.error_body.detail, 4);
    cr_assert_gt(r.body.error_body.message.len, 0);
    shards3_free(&s);
}
