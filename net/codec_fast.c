/*
 * codec_fast.c — PUT and RANGE requests and replies in straight-line code; see codec_fast.h
 * for the contract (succeed exactly as the generic walker would, or decline).
 *
 * The rules below are those of proto-spec/messages.json for these messages; every limit is a
 * codec_gen.h constant and every enum is checked against its generated descriptor, so a
 * changed limit or a newly reserved value changes this file's behaviour too. A new flag bit
 * or field is not known here: flags outside the masks below decline, and the shape test in
 * tests/unit/net/test_codec_fast.c fails when a field is added.
 */
#include "net/codec_fast.h"

#include "core/assert.h"

#include <string.h>

#define PUT_FLAGS_KNOWN \
    (CODEC_PUT_REQUEST_PREV_KV | CODEC_PUT_REQUEST_IGNORE_VALUE | CODEC_PUT_REQUEST_IGNORE_LEASE)
#define RANGE_FLAGS_KNOWN                                             \
    (CODEC_RANGE_REQUEST_KEYS_ONLY | CODEC_RANGE_REQUEST_COUNT_ONLY | \
     CODEC_RANGE_REQUEST_SERIALIZABLE)
#define KV_FIXED_SIZE      32u /* create_revision, mod_revision, version, lease */
#define RANGE_I64_COUNT    6   /* revision .. max_create_revision */
#define RANGE_FIXED_SIZE   (3u + 8u * RANGE_I64_COUNT)
#define PUT_REQ_FIXED_SIZE 9u /* flags, lease */

/* ---- little-endian loads and stores: one move each on a little-endian host ---------------- */

#define FAST_INLINE static inline __attribute__((always_inline))
#define HOST_LE     (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

FAST_INLINE u16 ld16(const u8 *p)
{
    u16 v;
    memcpy(&v, p, sizeof(v));
    return HOST_LE ? v : load_u16_le(p);
}

FAST_INLINE u32 ld32(const u8 *p)
{
    u32 v;
    memcpy(&v, p, sizeof(v));
    return HOST_LE ? v : load_u32_le(p);
}

FAST_INLINE u64 ld64(const u8 *p)
{
    u64 v;
    memcpy(&v, p, sizeof(v));
    return HOST_LE ? v : load_u64_le(p);
}

FAST_INLINE u8 *put_u16(u8 *w, u16 v)
{
    if (HOST_LE)
        memcpy(w, &v, sizeof(v));
    else
        store_u16_le(w, v);
    return w + 2;
}

FAST_INLINE u8 *put_u32(u8 *w, u32 v)
{
    if (HOST_LE)
        memcpy(w, &v, sizeof(v));
    else
        store_u32_le(w, v);
    return w + 4;
}

FAST_INLINE u8 *put_u64(u8 *w, u64 v)
{
    if (HOST_LE)
        memcpy(w, &v, sizeof(v));
    else
        store_u64_le(w, v);
    return w + 8;
}

/* ---- rules ------------------------------------------------------------------------------ */

FAST_INLINE bool enum_ok(const struct codec_enum_desc *e, u8 v)
{
    return v < e->count && !e->reserved[v];
}

FAST_INLINE bool key_len_ok(size_t len)
{
    return len >= 1 && len <= CODEC_KEY_SIZE_MAX;
}

FAST_INLINE i64 load_i64(const u8 *p)
{
    u64 v = ld64(p);
    i64 s;
    memcpy(&s, &v, sizeof(s));
    return s;
}

/* ---- decode ----------------------------------------------------------------------------- */

/* A u16-length byte string at *p with len within [len_min, CODEC_KEY_SIZE_MAX]; advances *p.
 * False when it breaks its rule or runs past end. */
FAST_INLINE bool get_bytes16(const u8 **p, const u8 *end, size_t len_min, struct span *out)
{
    if (end - *p < 2) return false;
    size_t len = ld16(*p);
    if (len < len_min || len > CODEC_KEY_SIZE_MAX) return false;
    if ((size_t)(end - *p - 2) < len) return false;
    *out = span_make(*p + 2, len);
    *p += 2 + len;
    return true;
}

/* A u32-length value at *p (at most CODEC_VALUE_SIZE_MAX bytes); advances *p. */
FAST_INLINE bool get_value32(const u8 **p, const u8 *end, struct span *out)
{
    if (end - *p < 4) return false;
    size_t len = ld32(*p);
    if (len > CODEC_VALUE_SIZE_MAX) return false;
    if ((size_t)(end - *p - 4) < len) return false;
    *out = span_make(*p + 4, len);
    *p += 4 + len;
    return true;
}

/* One kv at *p; advances *p. kv may be NULL (validate only). */
FAST_INLINE bool get_kv(const u8 **p, const u8 *end, struct codec_kv *kv)
{
    if (end - *p < (ptrdiff_t)KV_FIXED_SIZE) return false;
    const u8 *fixed = *p;
    *p += KV_FIXED_SIZE;
    struct span key, value;
    if (!get_bytes16(p, end, 1, &key) || !get_value32(p, end, &value)) return false;
    if (kv != NULL) {
        kv->create_revision = load_i64(fixed);
        kv->mod_revision = load_i64(fixed + 8);
        kv->version = load_i64(fixed + 16);
        kv->lease = load_i64(fixed + 24);
        kv->key = key;
        kv->value = value;
    }
    return true;
}

int codec_fast_put_request_decode(struct span body, struct codec_put_request *out)
{
    ASSERT(out != NULL);
    const u8 *p = body.ptr;
    const u8 *end = body.ptr + body.len;
    if (body.len < PUT_REQ_FIXED_SIZE) return CODEC_FAST_DECLINE;
    u8 flags = p[0];
    i64 lease = load_i64(p + 1);
    if ((flags & ~PUT_FLAGS_KNOWN) != 0 || lease < 0) return CODEC_FAST_DECLINE;
    p += PUT_REQ_FIXED_SIZE;
    if (!get_bytes16(&p, end, 1, &out->key)) return CODEC_FAST_DECLINE;
    if (!get_value32(&p, end, &out->value)) return CODEC_FAST_DECLINE;
    out->flags = flags;
    out->lease = lease;
    return 0;
}

int codec_fast_range_request_decode(struct span body, struct codec_range_request *out)
{
    ASSERT(out != NULL);
    const u8 *p = body.ptr;
    const u8 *end = body.ptr + body.len;
    if (body.len < RANGE_FIXED_SIZE) return CODEC_FAST_DECLINE;
    if ((p[0] & ~RANGE_FLAGS_KNOWN) != 0) return CODEC_FAST_DECLINE;
    if (!enum_ok(&codec_enum_sort_order, p[1])) return CODEC_FAST_DECLINE;
    if (!enum_ok(&codec_enum_sort_target, p[2])) return CODEC_FAST_DECLINE;
    i64 v[RANGE_I64_COUNT];
    for (int i = 0; i < RANGE_I64_COUNT; i++) {
        v[i] = load_i64(p + 3 + 8 * i);
        if (v[i] < 0) return CODEC_FAST_DECLINE;
    }
    out->flags = p[0];
    out->sort_order = p[1];
    out->sort_target = p[2];
    p += RANGE_FIXED_SIZE;
    if (!get_bytes16(&p, end, 1, &out->key)) return CODEC_FAST_DECLINE;
    if (!get_bytes16(&p, end, 0, &out->range_end)) return CODEC_FAST_DECLINE;
    out->revision = v[0];
    out->limit = v[1];
    out->min_mod_revision = v[2];
    out->max_mod_revision = v[3];
    out->min_create_revision = v[4];
    out->max_create_revision = v[5];
    return 0;
}

int codec_fast_put_reply_decode(struct span body, struct codec_put_reply *out)
{
    ASSERT(out != NULL);
    const u8 *p = body.ptr;
    const u8 *end = body.ptr + body.len;
    if (body.len < 1 || p[0] > 1) return CODEC_FAST_DECLINE;
    p++;
    memset(&out->prev_kv, 0, sizeof(out->prev_kv));
    out->has_prev_kv = body.ptr[0] == 1;
    if (out->has_prev_kv && !get_kv(&p, end, &out->prev_kv)) return CODEC_FAST_DECLINE;
    return 0;
}

/* Validates the whole kvs list, as the generic decoder does, before returning it. */
int codec_fast_range_reply_decode(struct span body, struct codec_range_reply *out)
{
    ASSERT(out != NULL);
    const u8 *p = body.ptr;
    const u8 *end = body.ptr + body.len;
    if (body.len < 8 + 1 + 4 || p[8] > 1) return CODEC_FAST_DECLINE;
    i64 count = load_i64(p);
    bool more = p[8] == 1;
    u32 n = ld32(p + 9);
    p += 13;
    if (n > (size_t)(end - p)) return CODEC_FAST_DECLINE; /* every kv takes a byte at least */
    const u8 *start = p;
    for (u32 i = 0; i < n; i++) {
        if (!get_kv(&p, end, NULL)) return CODEC_FAST_DECLINE;
    }
    out->count = count;
    out->more = more;
    out->kvs.count = n;
    out->kvs.raw = span_make(start, (size_t)(p - start));
    return 0;
}

int codec_fast_kv_read(struct buf_reader *r, struct codec_kv *kv)
{
    ASSERT(r != NULL && kv != NULL && r->pos <= r->len);
    if (r->error) return CODEC_FAST_DECLINE;
    const u8 *p = r->ptr + r->pos;
    if (!get_kv(&p, r->ptr + r->len, kv)) return CODEC_FAST_DECLINE;
    r->pos = (size_t)(p - r->ptr);
    return 0;
}

int codec_fast_reply_header_decode(struct span body, struct codec_reply_header *out)
{
    ASSERT(out != NULL);
    if (body.len < CODEC_REPLY_HEADER_SIZE) return CODEC_FAST_DECLINE;
    const u8 *p = body.ptr;
    out->status = ld16(p);
    out->shard = ld16(p + 2);
    out->revision = load_i64(p + 4);
    out->raft_term = ld64(p + 12);
    out->member_id = ld64(p + 20);
    return 0;
}

/* ---- encode ----------------------------------------------------------------------------- */

FAST_INLINE u8 *put_i64(u8 *w, i64 v)
{
    u64 u;
    memcpy(&u, &v, sizeof(u));
    return put_u64(w, u);
}

FAST_INLINE u8 *put_raw(u8 *w, struct span s)
{
    if (s.len > 0) memcpy(w, s.ptr, s.len);
    return w + s.len;
}

static u8 *put_frame_header(u8 *w, const struct codec_frame *head, size_t size)
{
    ASSERT(size >= CODEC_FRAME_HEADER_SIZE && size - 4 <= UINT32_MAX);
    w = put_u32(w, (u32)(size - 4));
    w = put_u16(w, head->opcode);
    w = put_u16(w, head->flags);
    return put_u64(w, head->request_id);
}

/* The whole frame's size when msg keeps every rule; 0 when the generic path must decide. */
static size_t put_request_size(const struct codec_put_request *m)
{
    if ((m->flags & ~PUT_FLAGS_KNOWN) != 0 || m->lease < 0) return 0;
    if (!key_len_ok(m->key.len) || m->value.len > CODEC_VALUE_SIZE_MAX) return 0;
    return CODEC_FRAME_HEADER_SIZE + PUT_REQ_FIXED_SIZE + 2 + m->key.len + 4 + m->value.len;
}

static u8 *put_request_write(u8 *w, const struct codec_put_request *m)
{
    *w++ = m->flags;
    w = put_i64(w, m->lease);
    w = put_raw(put_u16(w, (u16)m->key.len), m->key);
    return put_raw(put_u32(w, (u32)m->value.len), m->value);
}

static size_t range_request_size(const struct codec_range_request *m)
{
    if ((m->flags & ~RANGE_FLAGS_KNOWN) != 0) return 0;
    if (!enum_ok(&codec_enum_sort_order, m->sort_order)) return 0;
    if (!enum_ok(&codec_enum_sort_target, m->sort_target)) return 0;
    if ((m->revision | m->limit | m->min_mod_revision | m->max_mod_revision |
         m->min_create_revision | m->max_create_revision) < 0)
        return 0;
    if (!key_len_ok(m->key.len) || m->range_end.len > CODEC_KEY_SIZE_MAX) return 0;
    return CODEC_FRAME_HEADER_SIZE + RANGE_FIXED_SIZE + 2 + m->key.len + 2 + m->range_end.len;
}

static u8 *range_request_write(u8 *w, const struct codec_range_request *m)
{
    *w++ = m->flags;
    *w++ = m->sort_order;
    *w++ = m->sort_target;
    w = put_i64(w, m->revision);
    w = put_i64(w, m->limit);
    w = put_i64(w, m->min_mod_revision);
    w = put_i64(w, m->max_mod_revision);
    w = put_i64(w, m->min_create_revision);
    w = put_i64(w, m->max_create_revision);
    w = put_raw(put_u16(w, (u16)m->key.len), m->key);
    return put_raw(put_u16(w, (u16)m->range_end.len), m->range_end);
}

/* Reserves size bytes for a frame: the start, NULL if b has no room (as the generic path:
 * overflow set, length unchanged). */
static u8 *frame_reserve(struct buf *b, size_t size, u32 frame_size_max, bool *decline)
{
    *decline = size == 0 || size > frame_size_max;
    if (*decline) return NULL;
    return buf_reserve(b, size);
}

int codec_fast_request_encode(struct buf *b, const struct codec_frame *head, const void *body,
                              u32 frame_size_max)
{
    ASSERT(b != NULL && head != NULL && body != NULL);
    bool put = head->opcode == CODEC_OP_PUT;
    if (!put && head->opcode != CODEC_OP_RANGE) return CODEC_FAST_DECLINE;
    size_t size = put ? put_request_size(body) : range_request_size(body);
    bool decline;
    u8 *w = frame_reserve(b, size, frame_size_max, &decline);
    if (decline) return CODEC_FAST_DECLINE;
    if (w == NULL) return CODEC_NO_ROOM;
    u8 *start = w;
    w = put_frame_header(w, head, size);
    w = put ? put_request_write(w, body) : range_request_write(w, body);
    ASSERT((size_t)(w - start) == size);
    return 0;
}

static size_t kv_size(const struct codec_kv *kv)
{
    if (!key_len_ok(kv->key.len) || kv->value.len > CODEC_VALUE_SIZE_MAX) return 0;
    return KV_FIXED_SIZE + 2 + kv->key.len + 4 + kv->value.len;
}

static u8 *kv_write(u8 *w, const struct codec_kv *kv)
{
    w = put_i64(w, kv->create_revision);
    w = put_i64(w, kv->mod_revision);
    w = put_i64(w, kv->version);
    w = put_i64(w, kv->lease);
    w = put_raw(put_u16(w, (u16)kv->key.len), kv->key);
    return put_raw(put_u32(w, (u32)kv->value.len), kv->value);
}

int codec_fast_kv_write(struct buf *b, const struct codec_kv *kv)
{
    ASSERT(b != NULL && kv != NULL);
    size_t size = kv_size(kv);
    if (size == 0) return CODEC_FAST_DECLINE;
    u8 *w = buf_reserve(b, size);
    if (w == NULL) return CODEC_NO_ROOM;
    u8 *end = kv_write(w, kv);
    ASSERT((size_t)(end - w) == size);
    return 0;
}

static size_t reply_body_size(u16 opcode, const void *body)
{
    if (opcode == CODEC_OP_RANGE) {
        const struct codec_range_reply *m = body;
        ASSERT_IMPLIES(m->kvs.count == 0, m->kvs.raw.len == 0);
        ASSERT(m->kvs.raw.len >= m->kvs.count);
        return 8 + 1 + 4 + m->kvs.raw.len;
    }
    ASSERT(opcode == CODEC_OP_PUT);
    const struct codec_put_reply *m = body;
    if (!m->has_prev_kv) return 1;
    size_t kv = kv_size(&m->prev_kv);
    return kv == 0 ? 0 : 1 + kv;
}

static u8 *reply_body_write(u8 *w, u16 opcode, const void *body)
{
    if (opcode == CODEC_OP_RANGE) {
        const struct codec_range_reply *m = body;
        w = put_i64(w, m->count);
        *w++ = m->more ? 1 : 0;
        return put_raw(put_u32(w, m->kvs.count), m->kvs.raw);
    }
    const struct codec_put_reply *m = body;
    *w++ = m->has_prev_kv ? 1 : 0;
    return m->has_prev_kv ? kv_write(w, &m->prev_kv) : w;
}

int codec_fast_reply_encode(struct buf *b, const struct codec_frame *head,
                            const struct codec_reply_header *header, const void *body,
                            u32 frame_size_max)
{
    ASSERT(b != NULL && head != NULL && header != NULL && body != NULL);
    if (header->status != CODEC_S_OK) return CODEC_FAST_DECLINE;
    if (head->opcode != CODEC_OP_PUT && head->opcode != CODEC_OP_RANGE) return CODEC_FAST_DECLINE;
    size_t body_size = reply_body_size(head->opcode, body);
    size_t size =
        body_size == 0 ? 0 : CODEC_FRAME_HEADER_SIZE + CODEC_REPLY_HEADER_SIZE + body_size;
    bool decline;
    u8 *w = frame_reserve(b, size, frame_size_max, &decline);
    if (decline) return CODEC_FAST_DECLINE;
    if (w == NULL) return CODEC_NO_ROOM;
    u8 *start = w;
    w = put_frame_header(w, head, size);
    w = put_u16(w, header->status);
    w = put_u16(w, header->shard);
    w = put_i64(w, header->revision);
    w = put_u64(w, header->raft_term);
    w = put_u64(w, header->member_id);
    w = reply_body_write(w, head->opcode, body);
    ASSERT((size_t)(w - start) == size);
    return 0;
}
