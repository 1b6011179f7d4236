/*
 * exec_txn.c — TXN: the compares, then the ops of the branch they pick, each
 * through the op runners of exec.c, inside the batch exec.c opened.
 *
 * Compares follow etcd (applyCompare): a compare reads its key, or every key
 * of [key, range_end), at the current revision; all of them must pass. An
 * empty range reads as one absent key: VERSION, CREATE, MOD and LEASE are 0
 * and a VALUE compare fails. Every compare is evaluated (not only up to the
 * first that fails) so a malformed one is always reported.
 *
 * The op replies are built in scratch[1] (each op's own kvs list in scratch[0]
 * first); they are cut off with REPLY_TOO_LARGE once they alone pass the reply
 * limit, and exec.c aborts the batch on any failure.
 */
#include "core/assert.h"
#include "shard/exec_int.h"

#include <string.h>

static i64 exec_value_cmp(struct span a, struct span b)
{
    size_t n = KEEL_MIN(a.len, b.len);
    int c = n > 0 ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0) return c;
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

/* Whether kv passes compare c. */
static bool exec_compare_kv(const struct codec_compare *c, const struct mvcc_kv *kv)
{
    i64 a = 0, b = c->operand;
    switch (c->target) {
    case CODEC_COMPARE_TARGET_VERSION:
        a = kv->version;
        break;
    case CODEC_COMPARE_TARGET_CREATE:
        a = kv->create_revision;
        break;
    case CODEC_COMPARE_TARGET_MOD:
        a = kv->mod_revision;
        break;
    case CODEC_COMPARE_TARGET_LEASE:
        a = kv->lease;
        break;
    case CODEC_COMPARE_TARGET_VALUE:
        a = exec_value_cmp(kv->value, c->value);
        b = 0;
        break;
    default:
        UNREACHABLE();
    }
    switch (c->result) {
    case CODEC_COMPARE_RESULT_EQUAL:
        return a == b;
    case CODEC_COMPARE_RESULT_GREATER:
        return a > b;
    case CODEC_COMPARE_RESULT_LESS:
        return a < b;
    case CODEC_COMPARE_RESULT_NOT_EQUAL:
        return a != b;
    default:
        UNREACHABLE();
    }
    return false;
}

static int exec_compare_one(struct exec *x, const struct codec_compare *c, bool *ok,
                            struct exec_fail *f)
{
    int st = exec_range_end_check(c->key, c->range_end, f);
    if (st != 0) return st;
    bool by_value = c->target == CODEC_COMPARE_TARGET_VALUE;
    struct mvcc_range_req req = {.key = c->key, .range_end = c->range_end, .keys_only = !by_value};
    struct mvcc_range_result res;
    int rc = mvcc_range(x->m, &req, &res);
    if (rc != KEEL_OK) return exec_store_fail(x, rc, f);
    if (res.kvs_len == 0) {
        struct mvcc_kv absent;
        memset(&absent, 0, sizeof(absent));
        *ok = !by_value && exec_compare_kv(c, &absent);
        return 0;
    }
    *ok = true;
    for (size_t i = 0; i < res.kvs_len && *ok; i++) *ok = exec_compare_kv(c, &res.kvs[i]);
    return 0;
}

static int exec_compares(struct exec *x, const struct codec_txn_request *q, bool *ok,
                         struct exec_fail *f)
{
    struct codec_iter it;
    struct codec_compare c;
    *ok = true;
    codec_iter_init(&it, codec_field_find(&codec_msg_txn_request, "compares"), &q->compares);
    while (codec_iter_next(&it, &c)) {
        bool pass = false;
        int st = exec_compare_one(x, &c, &pass, f);
        if (st != 0) return st;
        *ok = *ok && pass;
    }
    return 0;
}

static int exec_op_run(struct exec *x, const struct codec_op *op, struct codec_op_reply *r,
                       bool *wrote, struct exec_fail *f)
{
    memset(r, 0, sizeof(*r));
    r->kind = op->kind;
    switch (op->kind) {
    case CODEC_OP_KIND_RANGE:
        return exec_range_run(x, &op->range, &r->range, f);
    case CODEC_OP_KIND_PUT:
        return exec_put_run(x, &op->put, &r->put, wrote, f);
    case CODEC_OP_KIND_DELETE_RANGE:
        return exec_delete_run(x, &op->delete_range, &r->delete_range, wrote, f);
    default:
        return exec_fail_set(f, CODEC_S_UNSUPPORTED, 0, "nested transactions are not supported");
    }
}

static int exec_op_add(struct exec *x, struct codec_list_builder *lb,
                       const struct codec_op_reply *r, struct exec_fail *f)
{
    int rc = codec_list_add(lb, r);
    if (rc == CODEC_NO_ROOM) return EXEC_NO_ROOM;
    if (rc == 0 && lb->b->len - lb->start > x->reply_frame_size_max) rc = CODEC_S_REPLY_TOO_LARGE;
    if (rc == CODEC_S_REPLY_TOO_LARGE)
        return exec_fail_set(f, rc, x->reply_frame_size_max,
                             "reply too large: the transaction was not executed");
    if (rc != 0) return exec_fail_set(f, rc, 0, codec_status_message(rc));
    return 0;
}

static int exec_ops_run(struct exec *x, const struct codec_list *ops, const char *field,
                        struct codec_list *replies, bool *wrote, struct exec_fail *f)
{
    struct codec_list_builder lb;
    struct codec_iter it;
    struct codec_op op;
    struct codec_op_reply r;
    buf_reset(&x->scratch[1]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_txn_reply, "replies"), replies,
                     &x->scratch[1]);
    codec_iter_init(&it, codec_field_find(&codec_msg_txn_request, field), ops);
    int st = 0;
    while (st == 0 && codec_iter_next(&it, &op)) {
        st = exec_op_run(x, &op, &r, wrote, f);
        if (st == 0) st = exec_op_add(x, &lb, &r, f);
    }
    codec_list_end(&lb);
    ASSERT(st != 0 || replies->count == ops->count);
    return st;
}

int exec_txn_run(struct exec *x, const struct codec_txn_request *q, struct codec_txn_reply *o,
                 bool *wrote, struct exec_fail *f)
{
    ASSERT(x != NULL && q != NULL && o != NULL);
    ASSERT(mvcc_batch_open(x->m));
    bool ok = true;
    int st = exec_compares(x, q, &ok, f);
    if (st != 0) return st;
    o->succeeded = ok;
    return exec_ops_run(x, ok ? &q->success : &q->failure, ok ? "success" : "failure", &o->replies,
                        wrote, f);
}
