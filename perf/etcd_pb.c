/*
 * etcd_pb.c — etcd v3 KV messages and gRPC framing by hand (contract and field table in
 * etcd_pb.h).
 *
 * Layout: the writer (counting or writing), then one writer per message; the reader (one
 * field at a time, every length checked), then one decoder per message; gRPC framing last.
 */
#include "perf/etcd_pb.h"

#include "core/assert.h"

#include <string.h>

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_LEN = 2, WIRE_FIXED32 = 5 };

/* ---- writer ------------------------------------------------------------------------------ */

/* dst NULL: count only. Past cap, bytes are counted but not written, and overflow is set. */
struct pbw {
    u8 *dst;
    size_t cap, len;
    bool overflow;
};

static void pbw_put(struct pbw *w, const void *src, size_t n)
{
    if (w->dst != NULL && !w->overflow) {
        if (n > w->cap - w->len) {
            w->overflow = true;
        } else if (n > 0) {
            memcpy(w->dst + w->len, src, n);
        }
    }
    w->len += n;
}

static void pbw_varint(struct pbw *w, u64 v)
{
    u8 b[ETCD_PB_VARINT_BYTES_MAX];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (u8)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (u8)v;
    ASSERT(n <= ETCD_PB_VARINT_BYTES_MAX);
    pbw_put(w, b, n);
}

static void pbw_tag(struct pbw *w, u32 field, u32 wire)
{
    ASSERT(field >= 1 && field < (1u << 29));
    pbw_varint(w, ((u64)field << 3) | wire);
}

/* A varint field; proto3 leaves out zero unless always (a oneof member). */
static void pbw_uint(struct pbw *w, u32 field, u64 v, bool always)
{
    if (v == 0 && !always) return;
    pbw_tag(w, field, WIRE_VARINT);
    pbw_varint(w, v);
}

static void pbw_bytes(struct pbw *w, u32 field, struct span s, bool always)
{
    if (s.len == 0 && !always) return;
    pbw_tag(w, field, WIRE_LEN);
    pbw_varint(w, s.len);
    pbw_put(w, s.ptr, s.len);
}

/* The header of an embedded message of len bytes; its fields follow. */
static void pbw_message(struct pbw *w, u32 field, size_t len)
{
    pbw_tag(w, field, WIRE_LEN);
    pbw_varint(w, len);
}

static size_t pbw_done(const struct pbw *w)
{
    ASSERT_IMPLIES(!w->overflow, w->len <= w->cap);
    return w->overflow ? 0 : w->len;
}

/* ---- message writers --------------------------------------------------------------------- */

static void put_request_write(struct pbw *w, const struct etcd_put_request *r)
{
    pbw_bytes(w, 1, r->key, false);
    pbw_bytes(w, 2, r->value, false);
    pbw_uint(w, 3, (u64)r->lease, false);
    pbw_uint(w, 4, r->prev_kv, false);
}

static void range_request_write(struct pbw *w, const struct etcd_range_request *r)
{
    pbw_bytes(w, 1, r->key, false);
    pbw_bytes(w, 2, r->range_end, false);
    pbw_uint(w, 3, (u64)r->limit, false);
    pbw_uint(w, 4, (u64)r->revision, false);
    pbw_uint(w, 7, r->serializable, false);
    pbw_uint(w, 8, r->keys_only, false);
    pbw_uint(w, 9, r->count_only, false);
}

static void compare_write(struct pbw *w, const struct etcd_compare *c)
{
    pbw_uint(w, 1, c->result, false);
    pbw_uint(w, 2, c->target, false);
    pbw_bytes(w, 3, c->key, false);
    if (c->which == ETCD_UNION_VALUE) {
        pbw_bytes(w, ETCD_UNION_VALUE, c->value, true);
    } else if (c->which != ETCD_UNION_NONE) {
        ASSERT(c->which >= ETCD_UNION_VERSION && c->which <= ETCD_UNION_LEASE);
        pbw_uint(w, c->which, (u64)c->number, true);
    }
    pbw_bytes(w, 64, c->range_end, false);
}

static void request_op_write(struct pbw *w, const struct etcd_request_op *op)
{
    ASSERT(op->kind == ETCD_OP_RANGE || op->kind == ETCD_OP_PUT);
    struct pbw count = {0};
    if (op->kind == ETCD_OP_RANGE) {
        range_request_write(&count, &op->range);
        pbw_message(w, ETCD_OP_RANGE, count.len);
        range_request_write(w, &op->range);
    } else {
        put_request_write(&count, &op->put);
        pbw_message(w, ETCD_OP_PUT, count.len);
        put_request_write(w, &op->put);
    }
}

static void request_ops_write(struct pbw *w, u32 field, const struct etcd_request_op *ops, u32 n)
{
    for (u32 i = 0; i < n; i++) {
        struct pbw count = {0};
        request_op_write(&count, &ops[i]);
        pbw_message(w, field, count.len);
        request_op_write(w, &ops[i]);
    }
}

static void txn_request_write(struct pbw *w, const struct etcd_txn_request *t)
{
    for (u32 i = 0; i < t->compare_count; i++) {
        struct pbw count = {0};
        compare_write(&count, &t->compare[i]);
        pbw_message(w, 1, count.len);
        compare_write(w, &t->compare[i]);
    }
    request_ops_write(w, 2, t->success, t->success_count);
    request_ops_write(w, 3, t->failure, t->failure_count);
}

static void header_write(struct pbw *w, u32 field, const struct etcd_response_header *h)
{
    struct pbw count = {0};
    for (int pass = 0; pass < 2; pass++) {
        struct pbw *to = pass == 0 ? &count : w;
        if (pass == 1) pbw_message(w, field, count.len);
        pbw_uint(to, 1, h->cluster_id, false);
        pbw_uint(to, 2, h->member_id, false);
        pbw_uint(to, 3, (u64)h->revision, false);
        pbw_uint(to, 4, h->raft_term, false);
    }
}

static void kv_write(struct pbw *w, u32 field, const struct etcd_kv *kv)
{
    struct pbw count = {0};
    for (int pass = 0; pass < 2; pass++) {
        struct pbw *to = pass == 0 ? &count : w;
        if (pass == 1) pbw_message(w, field, count.len);
        pbw_bytes(to, 1, kv->key, false);
        pbw_uint(to, 2, (u64)kv->create_revision, false);
        pbw_uint(to, 3, (u64)kv->mod_revision, false);
        pbw_uint(to, 4, (u64)kv->version, false);
        pbw_bytes(to, 5, kv->value, false);
        pbw_uint(to, 6, (u64)kv->lease, false);
    }
}

/* ---- public encoders --------------------------------------------------------------------- */

size_t etcd_pb_put_request_size(const struct etcd_put_request *r)
{
    struct pbw w = {0};
    put_request_write(&w, r);
    return w.len;
}

size_t etcd_pb_put_request_encode(const struct etcd_put_request *r, u8 *dst, size_t cap)
{
    ASSERT(dst != NULL);
    struct pbw w = {.dst = dst, .cap = cap};
    put_request_write(&w, r);
    return pbw_done(&w);
}

size_t etcd_pb_range_request_size(const struct etcd_range_request *r)
{
    struct pbw w = {0};
    range_request_write(&w, r);
    return w.len;
}

size_t etcd_pb_range_request_encode(const struct etcd_range_request *r, u8 *dst, size_t cap)
{
    ASSERT(dst != NULL);
    struct pbw w = {.dst = dst, .cap = cap};
    range_request_write(&w, r);
    return pbw_done(&w);
}

size_t etcd_pb_compare_encode(const struct etcd_compare *c, u8 *dst, size_t cap)
{
    ASSERT(dst != NULL);
    struct pbw w = {.dst = dst, .cap = cap};
    compare_write(&w, c);
    return pbw_done(&w);
}

size_t etcd_pb_txn_request_size(const struct etcd_txn_request *t)
{
    struct pbw w = {0};
    txn_request_write(&w, t);
    return w.len;
}

size_t etcd_pb_txn_request_encode(const struct etcd_txn_request *t, u8 *dst, size_t cap)
{
    ASSERT(dst != NULL);
    struct pbw w = {.dst = dst, .cap = cap};
    txn_request_write(&w, t);
    return pbw_done(&w);
}

size_t etcd_pb_put_response_encode(const struct etcd_put_response *r, u8 *dst, size_t cap)
{
    ASSERT(dst != NULL);
    struct pbw w = {.dst = dst, .cap = cap};
    header_write(&w, 1, &r->header);
    if (r->has_prev_kv) kv_write(&w, 2, &r->prev_kv);
    return pbw_done(&w);
}

size_t etcd_pb_range_response_encode(const struct etcd_range_response *r, u8 *dst, size_t cap)
{
    ASSERT(dst != NULL);
    ASSERT(r->kv_count <= r->kvs_cap);
    struct pbw w = {.dst = dst, .cap = cap};
    header_write(&w, 1, &r->header);
    for (u32 i = 0; i < r->kv_count; i++) kv_write(&w, 2, &r->kvs[i]);
    pbw_uint(&w, 3, r->more, false);
    pbw_uint(&w, 4, (u64)r->count, false);
    return pbw_done(&w);
}

size_t etcd_pb_txn_response_encode(const struct etcd_txn_response *r, u8 *dst, size_t cap)
{
    ASSERT(dst != NULL);
    ASSERT(r->response_count <= r->responses_cap);
    struct pbw w = {.dst = dst, .cap = cap};
    header_write(&w, 1, &r->header);
    pbw_uint(&w, 2, r->succeeded, false);
    for (u32 i = 0; i < r->response_count; i++) {
        const struct etcd_response_op *op = &r->responses[i];
        ASSERT(op->kind >= ETCD_OP_RANGE && op->kind <= ETCD_OP_TXN);
        struct pbw count = {0};
        pbw_bytes(&count, op->kind, op->body, true);
        pbw_message(&w, 3, count.len);
        pbw_bytes(&w, op->kind, op->body, true);
    }
    return pbw_done(&w);
}

/* ---- reader ------------------------------------------------------------------------------ */

struct pbr {
    const u8 *p;
    size_t len, off;
};

struct pbf {
    u32 number, wire;
    u64 v;            /* WIRE_VARINT, WIRE_FIXED64, WIRE_FIXED32 */
    struct span data; /* WIRE_LEN */
};

static int pbr_varint(struct pbr *r, u64 *v)
{
    u64 out = 0;
    for (u32 i = 0; i < ETCD_PB_VARINT_BYTES_MAX; i++) {
        if (r->off >= r->len) return -1; /* truncated */
        u8 b = r->p[r->off++];
        if (i == ETCD_PB_VARINT_BYTES_MAX - 1 && b > 1) return -1; /* beyond 64 bits */
        out |= (u64)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = out;
            return 0;
        }
    }
    return -1; /* an 11th byte would follow */
}

static u64 pbr_fixed(const u8 *p, u32 n)
{
    u64 v = 0;
    for (u32 i = 0; i < n; i++) v |= (u64)p[i] << (8 * i);
    return v;
}

/* The next field: 1, 0 at the end of the message, -1 when malformed. */
static int pbr_next(struct pbr *r, struct pbf *f)
{
    ASSERT(r->off <= r->len);
    if (r->off == r->len) return 0;
    u64 tag = 0;
    if (pbr_varint(r, &tag) != 0 || tag > UINT32_MAX || (tag >> 3) == 0) return -1;
    f->number = (u32)(tag >> 3);
    f->wire = (u32)(tag & 7);
    size_t left = r->len - r->off;
    if (f->wire == WIRE_VARINT) return pbr_varint(r, &f->v) == 0 ? 1 : -1;
    if (f->wire == WIRE_FIXED64 || f->wire == WIRE_FIXED32) {
        u32 n = f->wire == WIRE_FIXED64 ? 8 : 4;
        if (left < n) return -1;
        f->v = pbr_fixed(r->p + r->off, n);
        r->off += n;
        return 1;
    }
    if (f->wire != WIRE_LEN) return -1; /* groups (3, 4) and 6, 7 */
    u64 n = 0;
    if (pbr_varint(r, &n) != 0 || n > r->len - r->off) return -1;
    f->data = span_make(r->p + r->off, (size_t)n);
    r->off += (size_t)n;
    ASSERT(r->off <= r->len);
    return 1;
}

static struct pbr pbr_make(struct span in)
{
    ASSERT(in.ptr != NULL || in.len == 0);
    struct pbr r = {in.ptr, in.len, 0};
    return r;
}

/* Known fields must carry their wire type. */
#define WANT(f, w)                       \
    do {                                 \
        if ((f)->wire != (w)) return -1; \
    } while (0)

/* ---- message decoders -------------------------------------------------------------------- */

static int header_decode(struct span in, struct etcd_response_header *h)
{
    memset(h, 0, sizeof(*h));
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number >= 1 && f.number <= 4) WANT(&f, WIRE_VARINT);
        if (f.number == 1) h->cluster_id = f.v;
        if (f.number == 2) h->member_id = f.v;
        if (f.number == 3) h->revision = (i64)f.v;
        if (f.number == 4) h->raft_term = f.v;
    }
    return rc;
}

static int kv_decode(struct span in, struct etcd_kv *kv)
{
    memset(kv, 0, sizeof(*kv));
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number > 6) continue;
        WANT(&f, (f.number == 1 || f.number == 5) ? WIRE_LEN : WIRE_VARINT);
        if (f.number == 1) kv->key = f.data;
        if (f.number == 2) kv->create_revision = (i64)f.v;
        if (f.number == 3) kv->mod_revision = (i64)f.v;
        if (f.number == 4) kv->version = (i64)f.v;
        if (f.number == 5) kv->value = f.data;
        if (f.number == 6) kv->lease = (i64)f.v;
    }
    return rc;
}

int etcd_pb_put_response_decode(struct span in, struct etcd_put_response *out)
{
    memset(out, 0, sizeof(*out));
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number == 1) {
            WANT(&f, WIRE_LEN);
            if (header_decode(f.data, &out->header) != 0) return -1;
        } else if (f.number == 2) {
            WANT(&f, WIRE_LEN);
            if (kv_decode(f.data, &out->prev_kv) != 0) return -1;
            out->has_prev_kv = true;
        }
    }
    return rc;
}

int etcd_pb_range_response_decode(struct span in, struct etcd_range_response *out)
{
    ASSERT(out->kvs != NULL || out->kvs_cap == 0);
    memset(&out->header, 0, sizeof(out->header));
    out->kv_count = 0;
    out->more = false;
    out->count = 0;
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number > 4) continue;
        WANT(&f, f.number <= 2 ? WIRE_LEN : WIRE_VARINT);
        if (f.number == 1 && header_decode(f.data, &out->header) != 0) return -1;
        if (f.number == 2) {
            struct etcd_kv scratch;
            struct etcd_kv *kv = out->kv_count < out->kvs_cap ? &out->kvs[out->kv_count] : &scratch;
            if (kv_decode(f.data, kv) != 0 || out->kv_count == UINT32_MAX) return -1;
            out->kv_count++;
        }
        if (f.number == 3) out->more = f.v != 0;
        if (f.number == 4) out->count = (i64)f.v;
    }
    return rc;
}

/* A ResponseOp: the last oneof member wins (protobuf's rule); none is allowed. */
static int response_op_decode(struct span in, struct etcd_response_op *op)
{
    op->kind = ETCD_OP_NONE;
    op->body = span_make(NULL, 0);
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number < ETCD_OP_RANGE || f.number > ETCD_OP_TXN) continue;
        WANT(&f, WIRE_LEN);
        op->kind = f.number;
        op->body = f.data;
    }
    return rc;
}

int etcd_pb_txn_response_decode(struct span in, struct etcd_txn_response *out)
{
    ASSERT(out->responses != NULL || out->responses_cap == 0);
    memset(&out->header, 0, sizeof(out->header));
    out->succeeded = false;
    out->response_count = 0;
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number > 3) continue;
        WANT(&f, f.number == 2 ? WIRE_VARINT : WIRE_LEN);
        if (f.number == 1 && header_decode(f.data, &out->header) != 0) return -1;
        if (f.number == 2) out->succeeded = f.v != 0;
        if (f.number == 3) {
            struct etcd_response_op scratch;
            struct etcd_response_op *op = out->response_count < out->responses_cap
                                              ? &out->responses[out->response_count]
                                              : &scratch;
            if (response_op_decode(f.data, op) != 0 || out->response_count == UINT32_MAX) return -1;
            out->response_count++;
        }
    }
    return rc;
}

int etcd_pb_put_request_decode(struct span in, struct etcd_put_request *out)
{
    memset(out, 0, sizeof(*out));
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number > 4) continue;
        WANT(&f, f.number <= 2 ? WIRE_LEN : WIRE_VARINT);
        if (f.number == 1) out->key = f.data;
        if (f.number == 2) out->value = f.data;
        if (f.number == 3) out->lease = (i64)f.v;
        if (f.number == 4) out->prev_kv = f.v != 0;
    }
    return rc;
}

int etcd_pb_range_request_decode(struct span in, struct etcd_range_request *out)
{
    memset(out, 0, sizeof(*out));
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number > 9) continue;
        WANT(&f, f.number <= 2 ? WIRE_LEN : WIRE_VARINT);
        if (f.number == 1) out->key = f.data;
        if (f.number == 2) out->range_end = f.data;
        if (f.number == 3) out->limit = (i64)f.v;
        if (f.number == 4) out->revision = (i64)f.v;
        if (f.number == 7) out->serializable = f.v != 0;
        if (f.number == 8) out->keys_only = f.v != 0;
        if (f.number == 9) out->count_only = f.v != 0;
    }
    return rc;
}

int etcd_pb_compare_decode(struct span in, struct etcd_compare *out)
{
    memset(out, 0, sizeof(*out));
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        bool is_bytes = f.number == 3 || f.number == ETCD_UNION_VALUE || f.number == 64;
        if (f.number > ETCD_UNION_LEASE && f.number != 64) continue;
        WANT(&f, is_bytes ? WIRE_LEN : WIRE_VARINT);
        if (f.number == 1) out->result = (u32)f.v;
        if (f.number == 2) out->target = (u32)f.v;
        if (f.number == 3) out->key = f.data;
        if (f.number == 64) out->range_end = f.data;
        if (f.number >= ETCD_UNION_VERSION && f.number <= ETCD_UNION_LEASE) {
            out->which = f.number; /* a oneof: the last member wins */
            out->number = f.number == ETCD_UNION_VALUE ? 0 : (i64)f.v;
            out->value = f.number == ETCD_UNION_VALUE ? f.data : span_make(NULL, 0);
        }
    }
    return rc;
}

int etcd_pb_request_op_decode(struct span in, struct etcd_request_op *out)
{
    memset(out, 0, sizeof(*out));
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number < ETCD_OP_RANGE || f.number > ETCD_OP_TXN) continue;
        WANT(&f, WIRE_LEN);
        out->kind = f.number;
        memset(&out->range, 0, sizeof(out->range));
        memset(&out->put, 0, sizeof(out->put));
        if (f.number == ETCD_OP_RANGE && etcd_pb_range_request_decode(f.data, &out->range) != 0)
            return -1;
        if (f.number == ETCD_OP_PUT && etcd_pb_put_request_decode(f.data, &out->put) != 0)
            return -1;
    }
    return rc;
}

/* One RequestOp of a txn into ops[*count] when it fits. */
static int txn_op_add(struct span in, struct etcd_request_op *ops, u32 cap, u32 *count)
{
    struct etcd_request_op scratch;
    struct etcd_request_op *op = *count < cap ? &ops[*count] : &scratch;
    if (etcd_pb_request_op_decode(in, op) != 0 || *count == UINT32_MAX) return -1;
    (*count)++;
    return 0;
}

int etcd_pb_txn_request_decode(struct span in, struct etcd_txn_request_dec *t)
{
    ASSERT(t->compare != NULL || t->compare_cap == 0);
    t->compare_count = t->success_count = t->failure_count = 0;
    struct pbr r = pbr_make(in);
    struct pbf f;
    int rc;
    while ((rc = pbr_next(&r, &f)) == 1) {
        if (f.number > 3) continue;
        WANT(&f, WIRE_LEN);
        if (f.number == 1) {
            struct etcd_compare scratch;
            struct etcd_compare *c =
                t->compare_count < t->compare_cap ? &t->compare[t->compare_count] : &scratch;
            if (etcd_pb_compare_decode(f.data, c) != 0 || t->compare_count == UINT32_MAX) return -1;
            t->compare_count++;
        }
        if (f.number == 2 && txn_op_add(f.data, t->success, t->success_cap, &t->success_count))
            return -1;
        if (f.number == 3 && txn_op_add(f.data, t->failure, t->failure_cap, &t->failure_count))
            return -1;
    }
    return rc;
}

/* ---- gRPC framing ------------------------------------------------------------------------ */

void etcd_grpc_prefix_write(u8 *dst, u32 message_len)
{
    ASSERT(dst != NULL);
    dst[0] = 0;
    dst[1] = (u8)(message_len >> 24);
    dst[2] = (u8)(message_len >> 16);
    dst[3] = (u8)(message_len >> 8);
    dst[4] = (u8)message_len;
}

int etcd_grpc_message_parse(const u8 *buf, size_t len, size_t len_max, struct span *msg,
                            size_t *used)
{
    ASSERT(buf != NULL || len == 0);
    if (len < ETCD_GRPC_PREFIX_BYTES) return 0;
    if (buf[0] != 0) return -1; /* compressed: never asked for */
    size_t n = ((size_t)buf[1] << 24) | ((size_t)buf[2] << 16) | ((size_t)buf[3] << 8) | buf[4];
    if (n > len_max) return -1;
    if (len - ETCD_GRPC_PREFIX_BYTES < n) return 0;
    *msg = span_make(buf + ETCD_GRPC_PREFIX_BYTES, n);
    *used = ETCD_GRPC_PREFIX_BYTES + n;
    ASSERT(*used <= len);
    return 1;
}
