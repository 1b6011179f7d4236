/*
 * keel_msg.c — libkeel's messages: public argument structs -> codec messages -> frames, and
 * decoded reply frames -> public result structs. No I/O; see keel.c for the connections.
 *
 * Memory of a result: a chain of malloc'd blocks (struct keel_mem) holding a copy of the
 * reply frame (spans point into it) and the arrays of kvs, op replies and entries.
 */
#include "client/keel_int.h"
#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

struct keel_mem {
    struct keel_mem *next;
};

static void *mem_alloc(void **chain, size_t n)
{
    struct keel_mem *m = malloc(sizeof(*m) + (n ? n : 1));
    if (m == NULL) return NULL;
    m->next = *chain;
    *chain = m;
    memset(m + 1, 0, n ? n : 1);
    return m + 1;
}

void *keel_mem_alloc(void **chain, size_t n)
{
    return mem_alloc(chain, n);
}

void keel_mem_free(void *chain)
{
    struct keel_mem *m = chain;
    while (m != NULL) {
        struct keel_mem *next = m->next;
        free(m);
        m = next;
    }
}

void *keel_mem_copy(void **chain, const void *src, size_t n)
{
    void *p = mem_alloc(chain, n);
    if (p != NULL && n > 0) memcpy(p, src, n);
    return p;
}

/* ---- encoding ---------------------------------------------------------------------------- */

static struct span bytes_span(struct keel_bytes b)
{
    return span_make(b.ptr, b.len);
}

static void put_to_codec(const struct keel_put_args *a, struct codec_put_request *m)
{
    memset(m, 0, sizeof(*m));
    m->flags = a->prev_kv ? CODEC_PUT_REQUEST_PREV_KV : 0;
    m->lease = a->lease;
    m->key = bytes_span(a->key);
    m->value = bytes_span(a->value);
}

static void range_to_codec(const struct keel_range_args *a, struct codec_range_request *m)
{
    memset(m, 0, sizeof(*m));
    m->flags = (u8)((a->keys_only ? CODEC_RANGE_REQUEST_KEYS_ONLY : 0) |
                    (a->count_only ? CODEC_RANGE_REQUEST_COUNT_ONLY : 0) |
                    (a->serializable ? CODEC_RANGE_REQUEST_SERIALIZABLE : 0));
    m->sort_order = (u8)a->sort_order;
    m->sort_target = (u8)a->sort_target;
    m->revision = a->revision;
    m->limit = a->limit;
    m->min_mod_revision = a->min_mod_revision;
    m->max_mod_revision = a->max_mod_revision;
    m->min_create_revision = a->min_create_revision;
    m->max_create_revision = a->max_create_revision;
    m->key = bytes_span(a->key);
    m->range_end = bytes_span(a->range_end);
}

static void delete_to_codec(const struct keel_delete_args *a, struct codec_delete_range_request *m)
{
    memset(m, 0, sizeof(*m));
    m->flags = a->prev_kv ? CODEC_DELETE_RANGE_REQUEST_PREV_KV : 0;
    m->key = bytes_span(a->key);
    m->range_end = bytes_span(a->range_end);
}

static int ops_build(struct buf *b, const char *field, const struct keel_op *ops, size_t n,
                     struct codec_list *list)
{
    struct codec_list_builder lb;
    buf_reset(b);
    codec_list_begin(&lb, codec_field_find(&codec_msg_txn_request, field), list, b);
    for (size_t i = 0; i < n; i++) {
        struct codec_op op;
        memset(&op, 0, sizeof(op));
        op.kind = (u8)ops[i].kind;
        if (ops[i].kind == KEEL_OP_PUT)
            put_to_codec(&ops[i].u.put, &op.put);
        else if (ops[i].kind == KEEL_OP_RANGE)
            range_to_codec(&ops[i].u.range, &op.range);
        else if (ops[i].kind == KEEL_OP_DELETE)
            delete_to_codec(&ops[i].u.del, &op.delete_range);
        else
            return KEEL_STATUS_ARG;
        int rc = codec_list_add(&lb, &op);
        if (rc != 0) return rc == CODEC_NO_ROOM ? KEEL_STATUS_NO_MEMORY : rc;
    }
    codec_list_end(&lb);
    return 0;
}

static int txn_to_codec(keel_client *c, const struct keel_txn_args *a, struct codec_txn_request *m)
{
    struct codec_list_builder lb;
    size_t ops_max = c->info.txn_ops_max;
    if (a->compares_len > ops_max || a->success_len > ops_max || a->failure_len > ops_max)
        return KEEL_STATUS_TOO_MANY_OPS;
    buf_reset(&c->scratch[0]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_txn_request, "compares"), &m->compares,
                     &c->scratch[0]);
    for (size_t i = 0; i < a->compares_len; i++) {
        const struct keel_compare *k = &a->compares[i];
        struct codec_compare cmp = {.target = (u8)k->target, .result = (u8)k->result};
        cmp.key = bytes_span(k->key);
        cmp.range_end = bytes_span(k->range_end);
        cmp.value = bytes_span(k->value);
        cmp.operand = k->operand;
        int rc = codec_list_add(&lb, &cmp);
        if (rc != 0) return rc == CODEC_NO_ROOM ? KEEL_STATUS_NO_MEMORY : rc;
    }
    codec_list_end(&lb);
    int rc = ops_build(&c->scratch[1], "success", a->success, a->success_len, &m->success);
    if (rc != 0) return rc;
    return ops_build(&c->scratch[2], "failure", a->failure, a->failure_len, &m->failure);
}

static int check_key(const keel_client *c, struct keel_bytes k, bool may_be_empty)
{
    if (k.len == 0 && !may_be_empty) return KEEL_STATUS_KEY_EMPTY;
    if (k.len > c->info.key_size_max) return KEEL_STATUS_KEY_TOO_LARGE;
    return 0;
}

static int msg_fill(keel_client *c, u16 opcode, const void *args, union codec_msg_any *m)
{
    memset(m, 0, sizeof(*m));
    switch (opcode) {
    case CODEC_OP_PUT: {
        const struct keel_put_args *a = args;
        if (a->value.len > c->info.value_size_max) return KEEL_STATUS_VALUE_TOO_LARGE;
        put_to_codec(a, &m->put_request);
        return check_key(c, a->key, false);
    }
    case CODEC_OP_RANGE: {
        const struct keel_range_args *a = args;
        range_to_codec(a, &m->range_request);
        int rc = check_key(c, a->key, false);
        return rc ? rc : check_key(c, a->range_end, true);
    }
    case CODEC_OP_DELETE_RANGE: {
        const struct keel_delete_args *a = args;
        delete_to_codec(a, &m->delete_range_request);
        int rc = check_key(c, a->key, false);
        return rc ? rc : check_key(c, a->range_end, true);
    }
    case CODEC_OP_TXN:
        return txn_to_codec(c, args, &m->txn_request);
    case CODEC_OP_COMPACT: {
        const struct keel_compact_args *a = args;
        m->compact_request.flags = a->physical ? CODEC_COMPACT_REQUEST_PHYSICAL : 0;
        m->compact_request.shard = a->shard;
        m->compact_request.revision = a->revision;
        return 0;
    }
    case CODEC_OP_HELLO:
        m->hello_request.magic = CODEC_MAGIC;
        m->hello_request.version = CODEC_PROTOCOL_VERSION;
        m->hello_request.features = CODEC_FEATURE_MEMBER;
        return 0;
    case CODEC_OP_STATUS:
    case CODEC_OP_SHARD_MAP:
        return 0; /* empty bodies */
    default:
        return keel_member_fill(c, opcode, args, m);
    }
}

int keel_msg_encode(keel_client *c, struct buf *out, u16 opcode, u64 id, const void *args)
{
    ASSERT(c != NULL && out != NULL);
    ASSERT(id != 0);
    union codec_msg_any m;
    int rc = msg_fill(c, opcode, args, &m);
    if (rc != 0) return rc;
    struct codec_frame head = {.opcode = opcode, .request_id = id};
    size_t len_before = out->len;
    rc = codec_request_encode(out, &head, &m, c->info.frame_size_max);
    if (rc == 0 && !buf_ok(out)) rc = KEEL_STATUS_NO_MEMORY;
    if (rc != 0) out->len = len_before;
    return rc;
}

/* ---- decoding ---------------------------------------------------------------------------- */

static void kv_from_codec(const struct codec_kv *k, struct keel_kv *o)
{
    o->key = k->key.ptr;
    o->key_len = k->key.len;
    o->value = k->value.ptr;
    o->value_len = k->value.len;
    o->create_revision = k->create_revision;
    o->mod_revision = k->mod_revision;
    o->version = k->version;
    o->lease = k->lease;
}

static struct keel_kv *kvs_from_codec(const struct codec_msg_desc *d, const char *field,
                                      const struct codec_list *list, void **mem)
{
    struct codec_iter it;
    struct codec_kv k;
    struct keel_kv *kvs = mem_alloc(mem, sizeof(*kvs) * list->count);
    if (kvs == NULL) return NULL;
    codec_iter_init(&it, codec_field_find(d, field), list);
    for (u32 i = 0; codec_iter_next(&it, &k); i++) {
        ASSERT(i < list->count);
        kv_from_codec(&k, &kvs[i]);
    }
    return kvs;
}

static int range_from_codec(const struct codec_range_reply *r, struct keel_range_result *o,
                            void **mem)
{
    o->count = r->count;
    o->more = r->more;
    o->kvs_len = r->kvs.count;
    o->kvs = kvs_from_codec(&codec_msg_range_reply, "kvs", &r->kvs, mem);
    return o->kvs ? 0 : KEEL_STATUS_NO_MEMORY;
}

static int delete_from_codec(const struct codec_delete_range_reply *r, struct keel_delete_result *o,
                             void **mem)
{
    o->deleted = r->deleted;
    o->prev_kvs_len = r->prev_kvs.count;
    o->prev_kvs = kvs_from_codec(&codec_msg_delete_range_reply, "prev_kvs", &r->prev_kvs, mem);
    return o->prev_kvs ? 0 : KEEL_STATUS_NO_MEMORY;
}

static void put_from_codec(const struct codec_put_reply *r, struct keel_put_result *o)
{
    o->has_prev_kv = r->has_prev_kv;
    if (r->has_prev_kv) kv_from_codec(&r->prev_kv, &o->prev_kv);
}

static int txn_from_codec(const struct codec_txn_reply *r, struct keel_txn_result *o, void **mem)
{
    struct codec_iter it;
    struct codec_op_reply op;
    o->succeeded = r->succeeded;
    o->replies_len = r->replies.count;
    o->replies = mem_alloc(mem, sizeof(*o->replies) * r->replies.count);
    if (o->replies == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(&codec_msg_txn_reply, "replies"), &r->replies);
    for (u32 i = 0; codec_iter_next(&it, &op); i++) {
        struct keel_op_result *x = &o->replies[i];
        int rc = 0;
        x->kind = (enum keel_op_kind)op.kind;
        if (op.kind == CODEC_OP_KIND_PUT)
            put_from_codec(&op.put, &x->u.put);
        else if (op.kind == CODEC_OP_KIND_RANGE)
            rc = range_from_codec(&op.range, &x->u.range, mem);
        else
            rc = delete_from_codec(&op.delete_range, &x->u.del, mem);
        if (rc != 0) return rc;
    }
    return 0;
}

static int status_from_codec(const struct codec_status_reply *r, struct keel_status_result *o,
                             void **mem)
{
    struct codec_iter it;
    struct codec_shard_status s;
    o->shards_len = r->shards.count;
    o->shards = mem_alloc(mem, sizeof(*o->shards) * r->shards.count);
    if (o->shards == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(&codec_msg_status_reply, "shards"), &r->shards);
    for (u32 i = 0; codec_iter_next(&it, &s); i++) {
        struct keel_shard_status *x = &o->shards[i];
        x->shard_id = s.shard_id;
        x->revision = s.revision;
        x->compact_revision = s.compact_revision;
        x->keys = s.keys;
        x->memory_bytes = s.memory_bytes;
        x->wal_bytes = s.wal_bytes;
        x->connections = s.connections;
        x->raft_term = s.raft_term;
        x->raft_leader_id = s.raft_leader_id;
        x->raft_commit_index = s.raft_commit_index;
        x->raft_applied_index = s.raft_applied_index;
    }
    return 0;
}

static int map_from_codec(const struct codec_shard_map_reply *r, struct keel_shard_map_result *o,
                          void **mem)
{
    struct codec_iter it;
    struct codec_shard_range s;
    o->version = r->version;
    o->shards_len = r->shards.count;
    o->shards = mem_alloc(mem, sizeof(*o->shards) * r->shards.count);
    if (o->shards == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(&codec_msg_shard_map_reply, "shards"), &r->shards);
    for (u32 i = 0; codec_iter_next(&it, &s); i++) {
        struct keel_shard_range *x = &o->shards[i];
        x->shard_id = s.shard_id;
        x->port = s.port;
        x->leader_id = s.leader_id;
        x->start_key = s.start_key.ptr;
        x->start_key_len = s.start_key.len;
        x->end_key = s.end_key.ptr;
        x->end_key_len = s.end_key.len;
    }
    return 0;
}

int keel_msg_decode(const struct codec_frame *f, const struct codec_reply *r,
                    struct keel_result *res, void **mem)
{
    ASSERT(f != NULL && r != NULL && res != NULL);
    memset(res, 0, sizeof(*res));
    res->opcode = f->opcode;
    res->header.shard = r->header.shard;
    res->header.revision = r->header.revision;
    res->header.raft_term = r->header.raft_term;
    res->header.member_id = r->header.member_id;
    if (r->header.status != CODEC_S_OK) {
        res->error.detail = r->body.error_body.detail;
        res->error.message = (const char *)r->body.error_body.message.ptr;
        res->error.message_len = r->body.error_body.message.len;
        return 0;
    }
    switch (f->opcode) {
    case CODEC_OP_PUT:
        put_from_codec(&r->body.put_reply, &res->u.put);
        return 0;
    case CODEC_OP_RANGE:
        return range_from_codec(&r->body.range_reply, &res->u.range, mem);
    case CODEC_OP_DELETE_RANGE:
        return delete_from_codec(&r->body.delete_range_reply, &res->u.del, mem);
    case CODEC_OP_TXN:
        return txn_from_codec(&r->body.txn_reply, &res->u.txn, mem);
    case CODEC_OP_STATUS:
        return status_from_codec(&r->body.status_reply, &res->u.status, mem);
    case CODEC_OP_SHARD_MAP:
        return map_from_codec(&r->body.shard_map_reply, &res->u.shard_map, mem);
    case CODEC_OP_HELLO:
    case CODEC_OP_COMPACT:
        return 0; /* HELLO is read by keel.c; COMPACT has no fields */
    default:
        return keel_member_decode(f->opcode, r, res, mem);
    }
}
