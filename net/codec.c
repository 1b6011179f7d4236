/*
 * codec.c — frames and messages over core/buf.h, driven by the field tables of
 * codec_gen.h; see codec.h for the contract and proto-spec/protocol.md for the
 * wire format.
 *
 * PLEASE KEEP THE STRUCTURE OF THIS FILE: tables, field rules, decode, encode,
 * lists, frames, requests and replies, names, describe.
 */
#define CODEC_GEN_TABLES
#include "net/codec.h"

#include "core/assert.h"
#include "net/codec_fast.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static_assert(CODEC_FRAME_HEADER_SIZE == 16, "frame header is 16 bytes");
static_assert(CODEC_REPLY_HEADER_SIZE == 28, "reply header is 28 bytes");
static_assert(CODEC_FRAME_SIZE_MAX <= CODEC_REPLY_FRAME_SIZE_MAX, "replies may be larger");
static_assert(CODEC_KEY_SIZE_MAX <= UINT16_MAX, "keys have u16 lengths");
static_assert(CODEC_VALUE_SIZE_MAX < CODEC_FRAME_SIZE_MAX, "a largest value fits a frame");
static_assert(CODEC_TXN_OPS_MAX <= UINT16_MAX, "txn lists have u16 counts");
static_assert(CODEC_SHARDS_MAX < CODEC_SHARD_NONE, "shard ids stay below shard_none");

/* ---- field rules ------------------------------------------------------------------------ */

static u8 *field_at(void *base, const struct codec_field_desc *f)
{
    ASSERT(base != NULL && f != NULL);
    return (u8 *)base + f->offset;
}

static const u8 *field_at_const(const void *base, const struct codec_field_desc *f)
{
    ASSERT(base != NULL && f != NULL);
    return (const u8 *)base + f->offset;
}

/* Whether field i of d is on the wire, given the fields before it (already in msg). */
static bool field_present(const struct codec_msg_desc *d, const struct codec_field_desc *f,
                          const void *msg)
{
    if (f->cond_field == CODEC_COND_NONE) return true;
    ASSERT(f->cond_field < d->fields_len);
    ASSERT(&d->fields[f->cond_field] < f);
    const struct codec_field_desc *dep = &d->fields[f->cond_field];
    u8 v;
    if (dep->type == CODEC_T_BOOL)
        v = *(const bool *)field_at_const(msg, dep);
    else
        v = *field_at_const(msg, dep);
    bool eq = v == f->cond_value;
    return f->cond_negate ? !eq : eq;
}

/* The rule of a one-byte field (bool, enum, flags): 0 or a status. */
static int check_byte(const struct codec_field_desc *f, u8 v)
{
    switch (f->type) {
    case CODEC_T_BOOL:
        return v <= 1 ? 0 : CODEC_S_MALFORMED;
    case CODEC_T_ENUM:
        ASSERT(f->enm != NULL);
        if (v >= f->enm->count) return CODEC_S_MALFORMED;
        return f->enm->reserved[v] ? CODEC_S_UNSUPPORTED : 0;
    case CODEC_T_FLAGS:
        ASSERT(f->enm != NULL && f->enm->count < 8);
        return (v >> f->enm->count) == 0 ? 0 : CODEC_S_MALFORMED;
    default:
        UNREACHABLE();
    }
}

/* The min/max rule of an unsigned number, a length or a count. */
static int check_unsigned(const struct codec_field_desc *f, u64 v)
{
    ASSERT(f->min >= 0);
    if (v < (u64)f->min) return f->min_status;
    if (v > f->max) return f->max_status;
    return 0;
}

static int check_signed(const struct codec_field_desc *f, i64 v)
{
    ASSERT(f->type == CODEC_T_I64);
    if (v < f->min) return f->min_status;
    if (v > (i64)f->max) return f->max_status;
    return 0;
}

/* ---- decode ----------------------------------------------------------------------------- */

static int msg_read(struct buf_reader *r, const struct codec_msg_desc *d, void *out, int depth);

static int read_number(struct buf_reader *r, const struct codec_field_desc *f, u8 *dst)
{
    u64 v;
    switch (f->type) {
    case CODEC_T_U16:
    case CODEC_T_STATUS16:
        v = buf_get_u16(r);
        if (buf_reader_ok(r)) *(u16 *)dst = (u16)v;
        break;
    case CODEC_T_U32:
        v = buf_get_u32(r);
        if (buf_reader_ok(r)) *(u32 *)dst = (u32)v;
        break;
    case CODEC_T_U64:
    case CODEC_T_I64:
        v = buf_get_u64(r);
        if (buf_reader_ok(r)) memcpy(dst, &v, sizeof(v));
        break;
    default:
        UNREACHABLE();
    }
    if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
    if (f->type == CODEC_T_I64) return check_signed(f, (i64)v);
    return check_unsigned(f, v);
}

static int read_bytes(struct buf_reader *r, const struct codec_field_desc *f, u8 *dst)
{
    u64 len = f->type == CODEC_T_BYTES16 ? buf_get_u16(r) : buf_get_u32(r);
    if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
    int rc = check_unsigned(f, len); /* the limit decides before the bytes are looked for */
    if (rc != 0) return rc;
    struct span s = buf_get_bytes(r, (size_t)len);
    if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
    memcpy(dst, &s, sizeof(s));
    return 0;
}

/* One list element: behind a u16 size (bytes past its fields ignored) or inline. */
static int read_element(struct buf_reader *r, const struct codec_field_desc *f, void *elem,
                        int depth)
{
    if (!f->sized) return msg_read(r, f->msg, elem, depth + 1);
    u16 size = buf_get_u16(r);
    struct span s = buf_get_bytes(r, size);
    if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
    struct buf_reader sub;
    buf_reader_init(&sub, s.ptr, s.len);
    return msg_read(&sub, f->msg, elem, depth + 1);
}

/* Validates every element: the count is bounded by its limit and by the bytes left (every
 * element takes at least one byte), so the loop runs at most buf_reader_left times. */
static int read_list(struct buf_reader *r, const struct codec_field_desc *f, u8 *dst, int depth)
{
    ASSERT(f->msg != NULL && f->msg->fields_len > 0);
    u32 count = f->type == CODEC_T_LIST16 ? buf_get_u16(r) : buf_get_u32(r);
    if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
    int rc = check_unsigned(f, count);
    if (rc != 0) return rc;
    if (count > buf_reader_left(r)) return CODEC_S_MALFORMED;
    size_t start = r->pos;
    union codec_msg_any elem;
    for (u32 i = 0; i < count; i++) {
        rc = read_element(r, f, &elem, depth);
        if (rc != 0) return rc;
    }
    struct codec_list list = {count, span_make(r->ptr + start, r->pos - start)};
    memcpy(dst, &list, sizeof(list));
    ASSERT(r->pos >= start + count);
    return 0;
}

static int read_sized(struct buf_reader *r, const struct codec_field_desc *f, u8 *dst, int depth)
{
    u32 size = buf_get_u32(r);
    if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
    struct span s = buf_get_bytes(r, size);
    if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
    struct buf_reader sub;
    buf_reader_init(&sub, s.ptr, s.len);
    return msg_read(&sub, f->msg, dst, depth + 1); /* bytes past its fields: ignored */
}

static int read_field(struct buf_reader *r, const struct codec_field_desc *f, void *msg, int depth)
{
    u8 *dst = field_at(msg, f);
    switch (f->type) {
    case CODEC_T_BOOL:
    case CODEC_T_ENUM:
    case CODEC_T_FLAGS: {
        u8 v = buf_get_u8(r);
        if (!buf_reader_ok(r)) return CODEC_S_MALFORMED;
        int rc = check_byte(f, v);
        if (f->type == CODEC_T_BOOL)
            *(bool *)dst = v != 0;
        else
            *dst = v;
        return rc;
    }
    case CODEC_T_BYTES16:
    case CODEC_T_BYTES32:
        return read_bytes(r, f, dst);
    case CODEC_T_LIST16:
    case CODEC_T_LIST32:
        return read_list(r, f, dst, depth);
    case CODEC_T_MSG:
        return msg_read(r, f->msg, dst, depth + 1);
    case CODEC_T_SIZED:
        return read_sized(r, f, dst, depth);
    default:
        return read_number(r, f, dst);
    }
}

static int msg_read(struct buf_reader *r, const struct codec_msg_desc *d, void *out, int depth)
{
    ASSERT(d != NULL && out != NULL);
    ASSERT(depth < CODEC_DEPTH_MAX);
    memset(out, 0, d->size);
    for (u8 i = 0; i < d->fields_len; i++) {
        const struct codec_field_desc *f = &d->fields[i];
        if (!field_present(d, f, out)) continue;
        int rc = read_field(r, f, out, depth);
        if (rc != 0) return rc;
    }
    ASSERT(buf_reader_ok(r));
    return 0;
}

int codec_decode(const struct codec_msg_desc *d, struct span body, void *out)
{
    ASSERT(d != NULL);
    ASSERT(out != NULL);
    struct buf_reader r;
    buf_reader_init(&r, body.ptr, body.len);
    int rc = msg_read(&r, d, out, 0); /* bytes after the last known field: ignored */
    ASSERT(rc >= 0);
    ASSERT_IMPLIES(rc == 0, r.pos <= body.len);
    return rc;
}

/* ---- encode ----------------------------------------------------------------------------- */

static int msg_write(struct buf *b, const struct codec_msg_desc *d, const void *msg, int depth);

static int write_number(struct buf *b, const struct codec_field_desc *f, const u8 *src)
{
    u64 v = 0;
    int rc;
    switch (f->type) {
    case CODEC_T_U16:
    case CODEC_T_STATUS16:
        v = *(const u16 *)src;
        buf_put_u16(b, (u16)v);
        break;
    case CODEC_T_U32:
        v = *(const u32 *)src;
        buf_put_u32(b, (u32)v);
        break;
    case CODEC_T_U64:
    case CODEC_T_I64:
        memcpy(&v, src, sizeof(v));
        buf_put_u64(b, v);
        break;
    default:
        UNREACHABLE();
    }
    rc = f->type == CODEC_T_I64 ? check_signed(f, (i64)v) : check_unsigned(f, v);
    return rc;
}

static int write_bytes(struct buf *b, const struct codec_field_desc *f, const u8 *src)
{
    struct span s;
    memcpy(&s, src, sizeof(s));
    int rc = check_unsigned(f, s.len);
    if (rc != 0) return rc;
    if (f->type == CODEC_T_BYTES16)
        buf_put_u16(b, (u16)s.len);
    else
        buf_put_u32(b, (u32)s.len);
    buf_put_bytes(b, s.ptr, s.len);
    return 0;
}

static int write_list(struct buf *b, const struct codec_field_desc *f, const u8 *src)
{
    struct codec_list list;
    memcpy(&list, src, sizeof(list));
    ASSERT_IMPLIES(list.count == 0, list.raw.len == 0);
    ASSERT(list.raw.len >= list.count); /* every element takes at least one byte */
    int rc = check_unsigned(f, list.count);
    if (rc != 0) return rc;
    if (f->type == CODEC_T_LIST16)
        buf_put_u16(b, (u16)list.count);
    else
        buf_put_u32(b, list.count);
    buf_put_bytes(b, list.raw.ptr, list.raw.len);
    return 0;
}

static int write_sized(struct buf *b, const struct codec_field_desc *f, const u8 *src, int depth)
{
    size_t at = b->len;
    buf_put_u32(b, 0);
    int rc = msg_write(b, f->msg, src, depth + 1);
    if (rc != 0 || !buf_ok(b)) return rc;
    ASSERT(b->len - at - 4 <= UINT32_MAX);
    store_u32_le(b->ptr + at, (u32)(b->len - at - 4));
    return 0;
}

static int write_field(struct buf *b, const struct codec_field_desc *f, const void *msg, int depth)
{
    const u8 *src = field_at_const(msg, f);
    switch (f->type) {
    case CODEC_T_BOOL:
    case CODEC_T_ENUM:
    case CODEC_T_FLAGS: {
        u8 v = f->type == CODEC_T_BOOL ? (u8)(*(const bool *)src ? 1 : 0) : *src;
        buf_put_u8(b, v);
        return check_byte(f, v);
    }
    case CODEC_T_BYTES16:
    case CODEC_T_BYTES32:
        return write_bytes(b, f, src);
    case CODEC_T_LIST16:
    case CODEC_T_LIST32:
        return write_list(b, f, src);
    case CODEC_T_MSG:
        return msg_write(b, f->msg, src, depth + 1);
    case CODEC_T_SIZED:
        return write_sized(b, f, src, depth);
    default:
        return write_number(b, f, src);
    }
}

static int msg_write(struct buf *b, const struct codec_msg_desc *d, const void *msg, int depth)
{
    ASSERT(d != NULL && msg != NULL);
    ASSERT(depth < CODEC_DEPTH_MAX);
    for (u8 i = 0; i < d->fields_len; i++) {
        const struct codec_field_desc *f = &d->fields[i];
        if (!field_present(d, f, msg)) continue;
        int rc = write_field(b, f, msg, depth);
        if (rc != 0) return rc;
    }
    return 0;
}

int codec_encode(struct buf *b, const struct codec_msg_desc *d, const void *msg)
{
    ASSERT(b != NULL && d != NULL);
    ASSERT(msg != NULL);
    size_t start = b->len;
    int rc = msg_write(b, d, msg, 0);
    if (rc == 0 && !buf_ok(b)) rc = CODEC_NO_ROOM;
    if (rc != 0) {
        b->len = start; /* leave the buffer as it was; the overflow flag stays set */
    }
    ASSERT(rc != 0 || b->len >= start);
    return rc;
}

/* ---- lists ------------------------------------------------------------------------------ */

void codec_iter_init(struct codec_iter *it, const struct codec_field_desc *field,
                     const struct codec_list *list)
{
    ASSERT(it != NULL && field != NULL && list != NULL);
    ASSERT(field->type == CODEC_T_LIST16 || field->type == CODEC_T_LIST32);
    it->field = field;
    it->left = list->count;
    buf_reader_init(&it->r, list->raw.ptr, list->raw.len);
}

bool codec_iter_next(struct codec_iter *it, void *elem)
{
    ASSERT(it != NULL && elem != NULL);
    if (it->left == 0) {
        ASSERT(buf_reader_left(&it->r) == 0); /* a validated list has no bytes past its count */
        return false;
    }
    int rc = CODEC_FAST_DECLINE;
    if (it->field->msg == &codec_msg_kv && !it->field->sized) rc = codec_fast_kv_read(&it->r, elem);
    if (rc == CODEC_FAST_DECLINE) rc = read_element(&it->r, it->field, elem, 0);
    ASSERT(rc == 0); /* the list was validated when decoded or built */
    it->left--;
    return true;
}

void codec_list_begin(struct codec_list_builder *lb, const struct codec_field_desc *field,
                      struct codec_list *list, struct buf *b)
{
    ASSERT(lb != NULL && field != NULL && list != NULL && b != NULL);
    ASSERT(field->type == CODEC_T_LIST16 || field->type == CODEC_T_LIST32);
    lb->field = field;
    lb->list = list;
    lb->b = b;
    lb->start = b->len;
    list->count = 0;
    list->raw = span_make(NULL, 0);
}

int codec_list_add(struct codec_list_builder *lb, const void *elem)
{
    ASSERT(lb != NULL && elem != NULL);
    ASSERT(lb->b->len >= lb->start);
    if ((u64)lb->list->count + 1 > lb->field->max) return lb->field->max_status;
    size_t at = lb->b->len;
    if (lb->field->sized) buf_put_u16(lb->b, 0);
    int rc = CODEC_FAST_DECLINE; /* a kv (RANGE reply) in straight-line code, else the tables */
    if (lb->field->msg == &codec_msg_kv && !lb->field->sized) rc = codec_fast_kv_write(lb->b, elem);
    if (rc == CODEC_FAST_DECLINE) rc = codec_encode(lb->b, lb->field->msg, elem);
    if (rc == 0 && !buf_ok(lb->b)) rc = CODEC_NO_ROOM;
    if (rc == 0 && lb->field->sized && lb->b->len - at - 2 > UINT16_MAX) rc = CODEC_S_MALFORMED;
    if (rc != 0) {
        lb->b->len = at;
        return rc;
    }
    if (lb->field->sized) store_u16_le(lb->b->ptr + at, (u16)(lb->b->len - at - 2));
    lb->list->count++;
    ASSERT(lb->b->len > at);
    return 0;
}

void codec_list_end(struct codec_list_builder *lb)
{
    ASSERT(lb != NULL);
    ASSERT(lb->b->len >= lb->start);
    lb->list->raw = span_make(lb->b->ptr + lb->start, lb->b->len - lb->start);
    if (lb->list->count == 0) lb->list->raw = span_make(NULL, 0);
}

const struct codec_field_desc *codec_field_find(const struct codec_msg_desc *d, const char *name)
{
    ASSERT(d != NULL && name != NULL);
    for (u8 i = 0; i < d->fields_len; i++) {
        if (strcmp(d->fields[i].name, name) == 0) return &d->fields[i];
    }
    return NULL;
}

/* ---- frames ----------------------------------------------------------------------------- */

int codec_frame_decode(struct span in, u32 frame_size_max, struct codec_frame *out,
                       size_t *frame_size)
{
    ASSERT(out != NULL && frame_size != NULL);
    ASSERT(frame_size_max >= CODEC_FRAME_HEADER_SIZE);
    if (in.len < 4) return CODEC_NEED_MORE;
    u32 length = load_u32_le(in.ptr);
    if (length < CODEC_FRAME_HEADER_SIZE - 4) return CODEC_S_FRAME_MALFORMED;
    if ((u64)length + 4 > frame_size_max) return CODEC_S_FRAME_TOO_LARGE;
    if (in.len - 4 < length) return CODEC_NEED_MORE;
    out->opcode = load_u16_le(in.ptr + 4);
    out->flags = load_u16_le(in.ptr + 6);
    out->request_id = load_u64_le(in.ptr + 8);
    out->body = span_make(in.ptr + CODEC_FRAME_HEADER_SIZE, length + 4 - CODEC_FRAME_HEADER_SIZE);
    *frame_size = (size_t)length + 4;
    ASSERT(*frame_size <= in.len);
    return 0;
}

size_t codec_frame_begin(struct buf *b, u16 opcode, u16 flags, u64 request_id)
{
    ASSERT(b != NULL);
    size_t start = b->len;
    buf_put_u32(b, 0);
    buf_put_u16(b, opcode);
    buf_put_u16(b, flags);
    buf_put_u64(b, request_id);
    ASSERT(!buf_ok(b) || b->len == start + CODEC_FRAME_HEADER_SIZE);
    return start;
}

int codec_frame_end(struct buf *b, size_t start, u32 frame_size_max, int too_large_status)
{
    ASSERT(b != NULL);
    ASSERT(too_large_status > 0);
    ASSERT(start <= b->len || !buf_ok(b));
    if (!buf_ok(b)) {
        b->len = KEEL_MIN(b->len, start);
        return CODEC_NO_ROOM;
    }
    ASSERT(b->len >= start + CODEC_FRAME_HEADER_SIZE);
    size_t size = b->len - start;
    if (size > frame_size_max) {
        b->len = start;
        return too_large_status;
    }
    store_u32_le(b->ptr + start, (u32)(size - 4));
    ASSERT(load_u32_le(b->ptr + start) + 4 == size);
    return 0;
}

/* ---- requests and replies --------------------------------------------------------------- */

/* Linear over the opcode table (9 entries), as status_find below (31): cheaper than a lookup
 * table at this size. */
static const struct codec_opcode_desc *opcode_find(u16 opcode)
{
    static_assert(KEEL_ARRAY_LEN(codec_opcodes) < 64, "opcode table small enough to scan");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_opcodes); i++) {
        if (codec_opcodes[i].code == opcode) return &codec_opcodes[i];
    }
    return NULL;
}

const struct codec_msg_desc *codec_request_desc(u16 opcode)
{
    const struct codec_opcode_desc *op = opcode_find(opcode);
    ASSERT(op == NULL || op->reply != NULL);
    return op ? op->request : NULL;
}

const struct codec_msg_desc *codec_reply_desc(u16 opcode)
{
    const struct codec_opcode_desc *op = opcode_find(opcode);
    ASSERT(op == NULL || op->reply != NULL);
    return op ? op->reply : NULL;
}

int codec_request_decode(const struct codec_frame *f, union codec_msg_any *body)
{
    ASSERT(f != NULL && body != NULL);
    ASSERT(f->body.ptr != NULL || f->body.len == 0);
    if (f->request_id == 0) return CODEC_S_FRAME_MALFORMED;
    /* The hottest requests first, in straight-line code (codec_fast.h); anything they
     * decline, errors included, is decided by the tables below. */
    if (f->opcode == CODEC_OP_PUT &&
        codec_fast_put_request_decode(f->body, &body->put_request) == 0)
        return 0;
    if (f->opcode == CODEC_OP_RANGE &&
        codec_fast_range_request_decode(f->body, &body->range_request) == 0)
        return 0;
    const struct codec_msg_desc *d = codec_request_desc(f->opcode);
    if (d == NULL) return CODEC_S_UNKNOWN_OPCODE;
    return codec_decode(d, f->body, body);
}

int codec_request_encode(struct buf *b, const struct codec_frame *head, const void *body,
                         u32 frame_size_max)
{
    ASSERT(b != NULL && head != NULL && body != NULL);
    ASSERT(head->request_id != 0);
    int rc = codec_fast_request_encode(b, head, body, frame_size_max);
    if (rc != CODEC_FAST_DECLINE) return rc;
    const struct codec_msg_desc *d = codec_request_desc(head->opcode);
    ASSERT(d != NULL);
    size_t start = codec_frame_begin(b, head->opcode, head->flags, head->request_id);
    rc = codec_encode(b, d, body);
    if (rc != 0) {
        b->len = KEEL_MIN(b->len, start);
        return rc;
    }
    return codec_frame_end(b, start, frame_size_max, CODEC_S_FRAME_TOO_LARGE);
}

/* An OK reply to PUT or RANGE in straight-line code (codec_fast.h); false: not decided. */
static bool reply_decode_fast(const struct codec_frame *f, struct codec_reply *out)
{
    if (f->request_id == 0) return false;
    if (f->opcode != CODEC_OP_PUT && f->opcode != CODEC_OP_RANGE) return false;
    if (codec_fast_reply_header_decode(f->body, &out->header) != 0) return false;
    if (out->header.status != CODEC_S_OK) return false;
    struct span rest =
        span_make(f->body.ptr + CODEC_REPLY_HEADER_SIZE, f->body.len - CODEC_REPLY_HEADER_SIZE);
    if (f->opcode == CODEC_OP_PUT)
        return codec_fast_put_reply_decode(rest, &out->body.put_reply) == 0;
    return codec_fast_range_reply_decode(rest, &out->body.range_reply) == 0;
}

int codec_reply_decode(const struct codec_frame *f, struct codec_reply *out)
{
    ASSERT(f != NULL && out != NULL);
    if (reply_decode_fast(f, out)) return 0;
    struct buf_reader r;
    buf_reader_init(&r, f->body.ptr, f->body.len);
    int rc = msg_read(&r, &codec_msg_reply_header, &out->header, 0);
    if (rc != 0) return rc;
    bool goaway = f->opcode == CODEC_OP_GOAWAY;
    if (goaway && out->header.status == CODEC_S_OK) return CODEC_S_MALFORMED;
    if (goaway != (f->request_id == 0)) return CODEC_S_MALFORMED;
    /* An error reply has the same body whatever the opcode: even one this side does not know
     * (the server echoes the opcode it refused with UNKNOWN_OPCODE). */
    const struct codec_msg_desc *d = &codec_msg_error_body;
    if (out->header.status == CODEC_S_OK) d = codec_reply_desc(f->opcode);
    if (d == NULL) return CODEC_S_UNKNOWN_OPCODE;
    rc = msg_read(&r, d, &out->body, 0);
    ASSERT(rc >= 0);
    return rc;
}

int codec_reply_encode(struct buf *b, const struct codec_frame *head,
                       const struct codec_reply_header *header, const void *body,
                       u32 frame_size_max)
{
    ASSERT(b != NULL && head != NULL && header != NULL && body != NULL);
    ASSERT((head->opcode == CODEC_OP_GOAWAY) == (head->request_id == 0));
    ASSERT(head->opcode != CODEC_OP_GOAWAY || header->status != CODEC_S_OK);
    int rc = codec_fast_reply_encode(b, head, header, body, frame_size_max);
    if (rc != CODEC_FAST_DECLINE) return rc;
    const struct codec_msg_desc *d = &codec_msg_error_body;
    if (header->status == CODEC_S_OK) d = codec_reply_desc(head->opcode);
    ASSERT(d != NULL); /* an OK reply to an opcode the codec does not know is a caller bug */
    size_t start = codec_frame_begin(b, head->opcode, head->flags, head->request_id);
    rc = codec_encode(b, &codec_msg_reply_header, header);
    if (rc == 0) rc = codec_encode(b, d, body);
    if (rc != 0) {
        b->len = KEEL_MIN(b->len, start);
        return rc;
    }
    return codec_frame_end(b, start, frame_size_max, CODEC_S_REPLY_TOO_LARGE);
}

/* ---- names ------------------------------------------------------------------------------ */

static const struct codec_status_desc *status_find(int status)
{
    static_assert(KEEL_ARRAY_LEN(codec_statuses) < 256, "status table small enough to scan");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_statuses); i++) {
        if (codec_statuses[i].code == status) return &codec_statuses[i];
    }
    return NULL;
}

const char *codec_status_name(int status)
{
    const struct codec_status_desc *s = status_find(status);
    return s ? s->name : NULL;
}

const char *codec_status_message(int status)
{
    const struct codec_status_desc *s = status_find(status);
    return s ? s->message : "unknown status";
}

bool codec_status_closes(int status)
{
    const struct codec_status_desc *s = status_find(status);
    return s ? s->closes : false;
}

const char *codec_opcode_name(u16 opcode)
{
    const struct codec_opcode_desc *op = opcode_find(opcode);
    return op ? op->name : NULL;
}

/* ---- describe --------------------------------------------------------------------------- */

#define DESCRIBE_PATH_SIZE 256 /* paths are short: names < 32 bytes, nesting < CODEC_DEPTH_MAX */

/* snprintf that must not truncate: paths and numbers always fit their buffers. */
__attribute__((format(printf, 3, 4))) static void text_format(char *dst, size_t cap,
                                                              const char *fmt, ...)
{
    ASSERT(dst != NULL && cap > 0);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, cap, fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < cap);
}

static void describe_line(struct buf *out, const char *path, const char *value)
{
    ASSERT(out != NULL && path != NULL && value != NULL);
    buf_put_bytes(out, path, strlen(path));
    buf_put_u8(out, '=');
    buf_put_bytes(out, value, strlen(value));
    buf_put_u8(out, '\n');
}

static void describe_bytes(struct buf *out, const char *path, struct span s)
{
    ASSERT(out != NULL && path != NULL);
    buf_put_bytes(out, path, strlen(path));
    buf_put_bytes(out, "=\"", 2);
    for (size_t i = 0; i < s.len; i++) {
        u8 c = s.ptr[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            buf_put_u8(out, c);
        } else {
            char hex[5];
            text_format(hex, sizeof(hex), "\\x%02x", c);
            buf_put_bytes(out, hex, 4);
        }
    }
    buf_put_bytes(out, "\"\n", 2);
}

static void describe_msg(struct buf *out, const char *prefix, const struct codec_msg_desc *d,
                         const void *msg, int depth);

static void describe_list(struct buf *out, const char *path, const struct codec_field_desc *f,
                          const void *src, int depth)
{
    struct codec_list list;
    memcpy(&list, src, sizeof(list));
    char line[DESCRIBE_PATH_SIZE];
    text_format(line, sizeof(line), "%s.count", path);
    char num[24];
    text_format(num, sizeof(num), "%" PRIu32, list.count);
    describe_line(out, line, num);
    struct codec_iter it;
    codec_iter_init(&it, f, &list);
    union codec_msg_any elem;
    for (u32 i = 0; codec_iter_next(&it, &elem); i++) { /* bounded by list.count */
        text_format(line, sizeof(line), "%s[%" PRIu32 "].", path, i);
        describe_msg(out, line, f->msg, &elem, depth + 1);
    }
}

static void describe_byte(struct buf *out, const char *prefix, const char *path,
                          const struct codec_field_desc *f, u8 v)
{
    char line[DESCRIBE_PATH_SIZE];
    if (f->type == CODEC_T_BOOL) {
        describe_line(out, path, v ? "1" : "0");
    } else if (f->type == CODEC_T_ENUM) {
        ASSERT(v < f->enm->count);
        describe_line(out, path, f->enm->names[v]);
    } else {
        ASSERT(f->type == CODEC_T_FLAGS); /* one line per bit, named, without the field name */
        for (u8 bit = 0; bit < f->enm->count; bit++) {
            text_format(line, sizeof(line), "%s%s", prefix, f->enm->names[bit]);
            describe_line(out, line, (v >> bit) & 1 ? "1" : "0");
        }
    }
}

static void describe_number(struct buf *out, const char *path, const struct codec_field_desc *f,
                            const u8 *src)
{
    char num[24];
    const char *name;
    switch (f->type) {
    case CODEC_T_U16:
        text_format(num, sizeof(num), "%" PRIu16, *(const u16 *)src);
        break;
    case CODEC_T_STATUS16:
        name = codec_status_name(*(const u16 *)src);
        if (name)
            text_format(num, sizeof(num), "%s", name);
        else
            text_format(num, sizeof(num), "%" PRIu16, *(const u16 *)src);
        break;
    case CODEC_T_U32:
        text_format(num, sizeof(num), "%" PRIu32, *(const u32 *)src);
        break;
    case CODEC_T_U64:
        text_format(num, sizeof(num), "%" PRIu64, *(const u64 *)src);
        break;
    case CODEC_T_I64:
        text_format(num, sizeof(num), "%" PRId64, *(const i64 *)src);
        break;
    default:
        UNREACHABLE();
    }
    describe_line(out, path, num);
}

static void describe_field(struct buf *out, const char *prefix, const struct codec_field_desc *f,
                           const void *msg, int depth)
{
    const u8 *src = field_at_const(msg, f);
    char path[DESCRIBE_PATH_SIZE];
    text_format(path, sizeof(path), "%s%s", prefix, f->name);
    struct span s;
    switch (f->type) {
    case CODEC_T_BOOL:
        describe_byte(out, prefix, path, f, *(const bool *)src ? 1 : 0);
        break;
    case CODEC_T_ENUM:
    case CODEC_T_FLAGS:
        describe_byte(out, prefix, path, f, *src);
        break;
    case CODEC_T_BYTES16:
    case CODEC_T_BYTES32:
        memcpy(&s, src, sizeof(s));
        describe_bytes(out, path, s);
        break;
    case CODEC_T_LIST16:
    case CODEC_T_LIST32:
        describe_list(out, path, f, src, depth);
        break;
    case CODEC_T_MSG:
    case CODEC_T_SIZED:
        text_format(path, sizeof(path), "%s%s.", prefix, f->name);
        describe_msg(out, path, f->msg, src, depth + 1);
        break;
    default:
        describe_number(out, path, f, src);
    }
}

static void describe_msg(struct buf *out, const char *prefix, const struct codec_msg_desc *d,
                         const void *msg, int depth)
{
    ASSERT(d != NULL && msg != NULL);
    ASSERT(depth < CODEC_DEPTH_MAX);
    for (u8 i = 0; i < d->fields_len; i++) {
        if (field_present(d, &d->fields[i], msg)) {
            describe_field(out, prefix, &d->fields[i], msg, depth);
        }
    }
}

void codec_describe(struct buf *out, const char *prefix, const struct codec_msg_desc *d,
                    const void *msg)
{
    ASSERT(out != NULL && prefix != NULL);
    describe_msg(out, prefix, d, msg, 0);
}

static void describe_frame(struct buf *out, const struct codec_frame *f)
{
    char num[24];
    const char *name = codec_opcode_name(f->opcode);
    if (name == NULL) text_format(num, sizeof(num), "%" PRIu16, f->opcode);
    describe_line(out, "frame.opcode", name ? name : num);
    text_format(num, sizeof(num), "%" PRIu16, f->flags);
    describe_line(out, "frame.flags", num);
    text_format(num, sizeof(num), "%" PRIu64, f->request_id);
    describe_line(out, "frame.request_id", num);
}

void codec_describe_request(struct buf *out, const struct codec_frame *f,
                            const union codec_msg_any *body)
{
    ASSERT(out != NULL && f != NULL && body != NULL);
    const struct codec_msg_desc *d = codec_request_desc(f->opcode);
    ASSERT(d != NULL);
    describe_frame(out, f);
    codec_describe(out, "", d, body);
}

void codec_describe_reply(struct buf *out, const struct codec_frame *f,
                          const struct codec_reply *reply)
{
    ASSERT(out != NULL && f != NULL && reply != NULL);
    const struct codec_msg_desc *d = &codec_msg_error_body;
    if (reply->header.status == CODEC_S_OK) d = codec_reply_desc(f->opcode);
    ASSERT(d != NULL);
    describe_frame(out, f);
    codec_describe(out, "header.", &codec_msg_reply_header, &reply->header);
    codec_describe(out, "", d, &reply->body);
}
