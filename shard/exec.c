/*
 * exec.c — one request against the store, its reply frame, replay, error
 * replies; the contract is in exec.h, the shared pieces in exec_int.h. TXN is
 * in exec_txn.c, the router port's merge in exec_merge.c.
 *
 * Writes (PUT, DELETE_RANGE, TXN) run inside one mvcc batch and their reply is
 * encoded before the batch commits: a reply that does not fit (or a buffer
 * that cannot grow) aborts the batch, so an error reply always means nothing
 * was written. The header's revision is known before the commit: the batch
 * writes at revision + 1 exactly when one of its ops changed something.
 */
#include "shard/exec.h"

#include "core/assert.h"
#include "shard/exec_int.h"

#include <string.h>

static_assert((int)CODEC_SORT_ORDER_DESCEND == (int)MVCC_SORT_DESCEND, "same sort orders");
static_assert((int)CODEC_SORT_ORDER_ASCEND == (int)MVCC_SORT_ASCEND, "same sort orders");
static_assert((int)CODEC_SORT_TARGET_VALUE == (int)MVCC_SORT_VALUE, "same sort targets");
static_assert((int)CODEC_SORT_TARGET_MOD == (int)MVCC_SORT_MOD, "same sort targets");
static_assert((int)CODEC_SORT_TARGET_CREATE == (int)MVCC_SORT_CREATE, "same sort targets");
static_assert((int)CODEC_SORT_TARGET_VERSION == (int)MVCC_SORT_VERSION, "same sort targets");
static_assert(EXEC_REPLY_FRAME_SIZE_MIN <= CODEC_REPLY_FRAME_SIZE_MAX, "room for errors");

#define EXEC_SCRATCH_BYTES_INITIAL 4096u

void exec_init(struct exec *x, struct mvcc *m, u16 shard_id, u64 member_id,
               u32 reply_frame_size_max)
{
    ASSERT(x != NULL && m != NULL);
    ASSERT(reply_frame_size_max >= EXEC_REPLY_FRAME_SIZE_MIN);
    ASSERT(reply_frame_size_max <= CODEC_REPLY_FRAME_SIZE_MAX);
    memset(x, 0, sizeof(*x));
    x->m = m;
    x->shard_id = shard_id;
    x->member_id = member_id;
    x->shard_map_version = 1;
    x->reply_frame_size_max = reply_frame_size_max;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(x->scratch); i++)
        buf_init_dynamic(&x->scratch[i], EXEC_SCRATCH_BYTES_INITIAL);
}

void exec_deinit(struct exec *x)
{
    ASSERT(x != NULL);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(x->scratch); i++) buf_free(&x->scratch[i]);
    x->m = NULL;
}

void exec_trim(struct exec *x, size_t bytes_keep)
{
    ASSERT(x != NULL);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(x->scratch); i++) {
        if (x->scratch[i].cap <= bytes_keep) continue;
        buf_free(&x->scratch[i]);
        buf_init_dynamic(&x->scratch[i], bytes_keep); /* a failed malloc regrows on use */
        ASSERT(x->scratch[i].len == 0);
    }
}

/* ---- failures ---------------------------------------------------------------------------- */

int exec_fail_set(struct exec_fail *f, int status, u64 detail, const char *message)
{
    ASSERT(f != NULL && message != NULL);
    ASSERT(status > 0 && status <= UINT16_MAX);
    f->detail = detail;
    f->message = message;
    return status;
}

int exec_store_fail(const struct exec *x, int rc, struct exec_fail *f)
{
    ASSERT(rc > 0 && rc < KEEL_ERR_COUNT_);
    switch (rc) {
    case KEEL_ECOMPACTED:
        return exec_fail_set(f, rc, (u64)mvcc_compact_revision(x->m),
                             "revision has been compacted (detail: the compact revision)");
    case KEEL_EFUTURE_REV:
        return exec_fail_set(f, rc, (u64)mvcc_revision(x->m),
                             "revision is in the future (detail: the current revision)");
    case KEEL_EDUPLICATE_KEY:
        return exec_fail_set(f, rc, 0, "a transaction writes the same key twice");
    case KEEL_ETOO_MANY_OPS:
        return exec_fail_set(f, rc, 0, "the transaction writes more keys than a batch holds");
    case KEEL_EINVALID:
        return exec_fail_set(f, rc, 0, "invalid argument (negative revision or lease?)");
    default:
        return exec_fail_set(f, rc, 0, codec_status_message(rc));
    }
}

int exec_range_end_check(struct span key, struct span range_end, struct exec_fail *f)
{
    if (range_end.len == 0 || (range_end.len == 1 && range_end.ptr[0] == 0)) return 0;
    size_t n = KEEL_MIN(key.len, range_end.len);
    int c = n > 0 ? memcmp(range_end.ptr, key.ptr, n) : 0;
    if (c > 0 || (c == 0 && range_end.len > key.len)) return 0;
    return exec_fail_set(f, CODEC_S_INVALID, 0, "range_end must be greater than key (or \"\\0\")");
}

struct codec_kv exec_kv_to_codec(const struct mvcc_kv *kv)
{
    struct codec_kv c = {.create_revision = kv->create_revision,
                         .mod_revision = kv->mod_revision,
                         .version = kv->version,
                         .lease = kv->lease,
                         .key = kv->key,
                         .value = kv->value};
    return c;
}

/* ---- kv lists ---------------------------------------------------------------------------- */

/* A kvs list built in scratch[0], cut off with REPLY_TOO_LARGE once it alone passes the
 * reply limit (so a huge range never builds a huge list). */
struct exec_kvs {
    struct codec_list_builder lb;
    u32 bytes_max;
    int status; /* 0, a status, or EXEC_NO_ROOM */
};

static void exec_kvs_begin(struct exec_kvs *k, struct exec *x, const struct codec_msg_desc *d,
                           const char *field, struct codec_list *list)
{
    const struct codec_field_desc *fd = codec_field_find(d, field);
    ASSERT(fd != NULL);
    buf_reset(&x->scratch[0]);
    codec_list_begin(&k->lb, fd, list, &x->scratch[0]);
    k->bytes_max = x->reply_frame_size_max;
    k->status = 0;
}

/* mvcc_kv_fn: appends kv; nonzero (and k->status set) once the list cannot take it. */
static int exec_kvs_add(void *ctx, const struct mvcc_kv *kv)
{
    struct exec_kvs *k = ctx;
    struct codec_kv c = exec_kv_to_codec(kv);
    int rc = codec_list_add(&k->lb, &c);
    if (rc == 0 && k->lb.b->len - k->lb.start > k->bytes_max) rc = CODEC_S_REPLY_TOO_LARGE;
    if (rc == 0) return 0;
    k->status = rc == CODEC_NO_ROOM ? EXEC_NO_ROOM : rc;
    return 1;
}

static int exec_kvs_end(struct exec_kvs *k, struct exec_fail *f)
{
    codec_list_end(&k->lb);
    if (k->status == 0 || k->status == EXEC_NO_ROOM) return k->status;
    if (k->status == CODEC_S_REPLY_TOO_LARGE)
        return exec_fail_set(f, k->status, k->bytes_max,
                             "reply too large: narrow the request (limit, keys_only)");
    return exec_fail_set(f, k->status, 0, codec_status_message(k->status));
}

/* ---- the op runners ---------------------------------------------------------------------- */

int exec_range_run(struct exec *x, const struct codec_range_request *q, struct codec_range_reply *o,
                   struct exec_fail *f)
{
    int st = exec_range_end_check(q->key, q->range_end, f);
    if (st != 0) return st;
    struct mvcc_range_req req = {.key = q->key,
                                 .range_end = q->range_end,
                                 .revision = q->revision,
                                 .limit = q->limit,
                                 .keys_only = (q->flags & CODEC_RANGE_REQUEST_KEYS_ONLY) != 0,
                                 .count_only = (q->flags & CODEC_RANGE_REQUEST_COUNT_ONLY) != 0,
                                 .sort_order = (enum mvcc_sort_order)q->sort_order,
                                 .sort_target = (enum mvcc_sort_target)q->sort_target,
                                 .min_mod_revision = q->min_mod_revision,
                                 .max_mod_revision = q->max_mod_revision,
                                 .min_create_revision = q->min_create_revision,
                                 .max_create_revision = q->max_create_revision};
    struct mvcc_range_result res;
    int rc = mvcc_range(x->m, &req, &res);
    if (rc != KEEL_OK) return exec_store_fail(x, rc, f);
    struct exec_kvs k;
    exec_kvs_begin(&k, x, &codec_msg_range_reply, "kvs", &o->kvs);
    for (size_t i = 0; i < res.kvs_len; i++) {
        if (exec_kvs_add(&k, &res.kvs[i]) != 0) break;
    }
    o->count = res.count;
    o->more = res.more;
    ASSERT(res.kvs_len == 0 || !req.count_only);
    return exec_kvs_end(&k, f);
}

int exec_put_run(struct exec *x, const struct codec_put_request *q, struct codec_put_reply *o,
                 bool *wrote, struct exec_fail *f)
{
    u8 reserved = CODEC_PUT_REQUEST_IGNORE_VALUE | CODEC_PUT_REQUEST_IGNORE_LEASE;
    if (q->flags & reserved)
        return exec_fail_set(f, CODEC_S_UNSUPPORTED, 0,
                             "ignore_value and ignore_lease are "
                             "not supported");
    if (q->lease != 0)
        return exec_fail_set(f, CODEC_S_UNSUPPORTED, 0, "leases are not supported (lease 0)");
    struct mvcc_kv prev;
    bool had = false;
    int rc = mvcc_put(x->m, q->key, q->value, q->lease, &prev, &had);
    if (rc != KEEL_OK) return exec_store_fail(x, rc, f);
    *wrote = true;
    o->has_prev_kv = had && (q->flags & CODEC_PUT_REQUEST_PREV_KV) != 0;
    if (o->has_prev_kv) o->prev_kv = exec_kv_to_codec(&prev);
    ASSERT(!had || prev.version > 0);
    return 0;
}

int exec_delete_run(struct exec *x, const struct codec_delete_range_request *q,
                    struct codec_delete_range_reply *o, bool *wrote, struct exec_fail *f)
{
    int st = exec_range_end_check(q->key, q->range_end, f);
    if (st != 0) return st;
    struct exec_kvs k;
    exec_kvs_begin(&k, x, &codec_msg_delete_range_reply, "prev_kvs", &o->prev_kvs);
    bool prev = (q->flags & CODEC_DELETE_RANGE_REQUEST_PREV_KV) != 0;
    u64 deleted = 0;
    int rc =
        mvcc_delete_range(x->m, q->key, q->range_end, &deleted, prev ? exec_kvs_add : NULL, &k);
    st = exec_kvs_end(&k, f);
    if (rc != KEEL_OK) return exec_store_fail(x, rc, f);
    if (st != 0) return st;
    ASSERT(!prev || o->prev_kvs.count == deleted);
    o->deleted = (i64)deleted;
    *wrote = *wrote || deleted > 0;
    return 0;
}

/* ---- replies ----------------------------------------------------------------------------- */

static struct codec_reply_header exec_header(const struct exec *x, u16 status, i64 revision)
{
    struct codec_reply_header h = {.status = status,
                                   .shard = x->shard_id,
                                   .revision = revision,
                                   .raft_term = x->raft_term,
                                   .member_id = x->member_id};
    return h;
}

/* Appends the OK reply; a status (REPLY_TOO_LARGE) or EXEC_NO_ROOM when it cannot. */
static int exec_reply_ok(struct exec *x, const struct codec_frame *f, const void *body,
                         i64 revision, struct buf *out, struct exec_fail *fail)
{
    struct codec_frame head = {.opcode = f->opcode, .flags = 0, .request_id = f->request_id};
    struct codec_reply_header h = exec_header(x, CODEC_S_OK, revision);
    int rc = codec_reply_encode(out, &head, &h, body, x->reply_frame_size_max);
    if (rc == 0) return 0;
    if (rc == CODEC_NO_ROOM) return EXEC_NO_ROOM;
    if (rc == CODEC_S_REPLY_TOO_LARGE)
        return exec_fail_set(fail, rc, x->reply_frame_size_max,
                             "reply too large: narrow the request (limit, keys_only)");
    return exec_fail_set(fail, rc, 0, codec_status_message(rc));
}

static int exec_reply_fail(struct exec *x, const struct codec_frame *f, int status,
                           const struct exec_fail *fail, struct buf *out)
{
    ASSERT(status > 0 && fail->message != NULL);
    return exec_error_reply(out, f->opcode, f->request_id, x->shard_id, mvcc_revision(x->m),
                            x->member_id, (u16)status, fail->detail, fail->message);
}

/* ---- requests ---------------------------------------------------------------------------- */

static int exec_do_range(struct exec *x, const struct codec_frame *f,
                         const struct codec_range_request *q, struct buf *out,
                         struct exec_fail *fail)
{
    struct codec_range_reply body;
    memset(&body, 0, sizeof(body));
    int st = exec_range_run(x, q, &body, fail);
    if (st != 0) return st;
    return exec_reply_ok(x, f, &body, mvcc_revision(x->m), out, fail);
}

static int exec_write_run(struct exec *x, u16 opcode, const union codec_msg_any *req,
                          union codec_msg_any *body, bool *wrote, struct exec_fail *fail)
{
    switch (opcode) {
    case CODEC_OP_PUT:
        return exec_put_run(x, &req->put_request, &body->put_reply, wrote, fail);
    case CODEC_OP_DELETE_RANGE:
        return exec_delete_run(x, &req->delete_range_request, &body->delete_range_reply, wrote,
                               fail);
    case CODEC_OP_TXN:
        return exec_txn_run(x, &req->txn_request, &body->txn_reply, wrote, fail);
    default:
        UNREACHABLE();
    }
    return 0;
}

/* PUT, DELETE_RANGE, TXN: one batch, committed only once the reply is encoded. */
static int exec_do_write(struct exec *x, const struct codec_frame *f,
                         const union codec_msg_any *req, struct buf *out, struct exec_outcome *o,
                         struct exec_fail *fail)
{
    union codec_msg_any body;
    memset(&body, 0, sizeof(body));
    bool wrote = false;
    int rc = mvcc_batch_begin(x->m);
    ASSERT(rc == KEEL_OK);
    int st = exec_write_run(x, f->opcode, req, &body, &wrote, fail);
    i64 revision = mvcc_revision(x->m) + (wrote ? 1 : 0);
    if (st == 0) st = exec_reply_ok(x, f, &body, revision, out, fail);
    if (st != 0) {
        mvcc_batch_abort(x->m);
        return st;
    }
    i64 committed = 0;
    rc = mvcc_batch_commit(x->m, &committed);
    ASSERT(rc == KEEL_OK);
    ASSERT(committed == revision);
    o->wrote = wrote;
    return 0;
}

static int exec_do_compact(struct exec *x, const struct codec_frame *f,
                           const struct codec_compact_request *q, struct buf *out,
                           struct exec_outcome *o, struct exec_fail *fail)
{
    if (q->shard != x->shard_id)
        return exec_fail_set(fail, CODEC_S_WRONG_SHARD, x->shard_map_version,
                             "compact names another shard than this port's");
    bool physical = (q->flags & CODEC_COMPACT_REQUEST_PHYSICAL) != 0;
    int rc = physical ? mvcc_compact(x->m, q->revision) : mvcc_compact_start(x->m, q->revision);
    if (rc != KEEL_OK) return exec_store_fail(x, rc, fail);
    o->wrote = true; /* even if the reply below cannot be encoded: the job started */
    ASSERT(mvcc_compact_revision(x->m) == q->revision);
    struct codec_compact_reply body = {0};
    return exec_reply_ok(x, f, &body, mvcc_revision(x->m), out, fail);
}

int exec_request(struct exec *x, const struct codec_frame *f, const union codec_msg_any *req,
                 struct buf *out, struct exec_outcome *o)
{
    ASSERT(x != NULL && f != NULL && req != NULL && out != NULL && o != NULL);
    ASSERT(f->request_id != 0);
    ASSERT(!mvcc_batch_open(x->m));
    memset(o, 0, sizeof(*o));
    struct exec_fail fail = {.detail = 0, .message = NULL};
    int st = 0;
    switch (f->opcode) {
    case CODEC_OP_RANGE:
        st = exec_do_range(x, f, &req->range_request, out, &fail);
        break;
    case CODEC_OP_COMPACT:
        st = exec_do_compact(x, f, &req->compact_request, out, o, &fail);
        break;
    case CODEC_OP_PUT:
    case CODEC_OP_DELETE_RANGE:
    case CODEC_OP_TXN:
        st = exec_do_write(x, f, req, out, o, &fail);
        break;
    default:
        UNREACHABLE();
    }
    o->status = st > 0 ? (u16)st : CODEC_S_OK;
    if (st > 0) st = exec_reply_fail(x, f, st, &fail, out);
    o->revision = mvcc_revision(x->m);
    ASSERT(!mvcc_batch_open(x->m));
    ASSERT_IMPLIES(o->wrote, o->status == CODEC_S_OK || st != 0);
    return st == 0 ? 0 : -1;
}

/* ---- replay ------------------------------------------------------------------------------ */

int exec_replay(struct exec *x, u16 opcode, struct span body)
{
    ASSERT(x != NULL);
    bool is_write = opcode == CODEC_OP_PUT || opcode == CODEC_OP_DELETE_RANGE ||
                    opcode == CODEC_OP_TXN || opcode == CODEC_OP_COMPACT;
    if (!is_write) return KEEL_ECORRUPT;
    union codec_msg_any req;
    memset(&req, 0, sizeof(req));
    if (codec_decode(codec_request_desc(opcode), body, &req) != 0) return KEEL_ECORRUPT;
    if (opcode == CODEC_OP_COMPACT) req.compact_request.flags |= CODEC_COMPACT_REQUEST_PHYSICAL;
    struct codec_frame f = {.opcode = opcode, .flags = 0, .request_id = 1, .body = body};
    struct exec_outcome o;
    buf_reset(&x->scratch[2]);
    int rc = exec_request(x, &f, &req, &x->scratch[2], &o);
    buf_reset(&x->scratch[2]);
    if (rc != 0 || o.status == CODEC_S_NOMEM) return KEEL_ENOMEM;
    if (o.status != CODEC_S_OK || !o.wrote) return KEEL_ECORRUPT;
    return 0;
}

/* ---- error replies ----------------------------------------------------------------------- */

int exec_error_reply_span(struct buf *out, u16 opcode, u64 request_id, u16 shard, i64 revision,
                          u64 member_id, u16 status, u64 detail, struct span message)
{
    ASSERT(out != NULL);
    ASSERT(status != CODEC_S_OK);
    ASSERT((opcode == CODEC_OP_GOAWAY) == (request_id == 0));
    struct codec_frame head = {.opcode = opcode, .flags = 0, .request_id = request_id};
    struct codec_reply_header h = {.status = status,
                                   .shard = shard,
                                   .revision = revision,
                                   .raft_term = 0,
                                   .member_id = member_id};
    message.len = KEEL_MIN(message.len, (size_t)CODEC_MESSAGE_SIZE_MAX);
    struct codec_error_body e = {.detail = detail, .message = message};
    int rc = codec_reply_encode(out, &head, &h, &e, CODEC_REPLY_FRAME_SIZE_MAX);
    ASSERT(rc == 0 || rc == CODEC_NO_ROOM);
    return rc == 0 ? 0 : -1;
}

int exec_error_reply(struct buf *out, u16 opcode, u64 request_id, u16 shard, i64 revision,
                     u64 member_id, u16 status, u64 detail, const char *message)
{
    ASSERT(message != NULL);
    return exec_error_reply_span(out, opcode, request_id, shard, revision, member_id, status,
                                 detail, span_make(message, strlen(message)));
}
