/* buf.c — byte buffer writer and reader; see buf.h for the contract. */
#include "core/buf.h"
#include "core/assert.h"

#include <stdlib.h>

void buf_init_fixed(struct buf *b, void *mem, size_t cap)
{
    ASSERT(b != NULL);
    ASSERT(mem != NULL || cap == 0);
    b->ptr = mem;
    b->len = 0;
    b->cap = cap;
    b->dynamic = false;
    b->overflow = false;
}

void buf_init_dynamic(struct buf *b, size_t cap_initial)
{
    ASSERT(b != NULL);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->dynamic = true;
    b->overflow = false;
    if (cap_initial > 0) {
        b->ptr = malloc(cap_initial);
        if (b->ptr == NULL)
            b->overflow = true;
        else
            b->cap = cap_initial;
    }
}

void buf_free(struct buf *b)
{
    ASSERT(b != NULL);
    if (b->dynamic) free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

void buf_reset(struct buf *b)
{
    ASSERT(b != NULL);
    b->len = 0;
    b->overflow = false;
}

static bool buf_grow(struct buf *b, size_t need)
{
    ASSERT(b->dynamic);
    ASSERT(need > b->cap);
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need) cap *= 2;
    u8 *p = realloc(b->ptr, cap);
    if (p == NULL) return false;
    b->ptr = p;
    b->cap = cap;
    return true;
}

u8 *buf_reserve(struct buf *b, size_t n)
{
    ASSERT(b->len <= b->cap);
    if (b->overflow) return NULL;
    if (n > b->cap - b->len) {
        if (!b->dynamic || !buf_grow(b, b->len + n)) {
            b->overflow = true;
            return NULL;
        }
    }
    u8 *p = b->ptr + b->len;
    b->len += n;
    ASSERT(b->len <= b->cap);
    return p;
}

void buf_put_bytes(struct buf *b, const void *src, size_t n)
{
    u8 *p = buf_reserve(b, n);
    if (p != NULL && n > 0) memcpy(p, src, n);
}

void buf_put_u8(struct buf *b, u8 v)
{
    u8 *p = buf_reserve(b, 1);
    if (p != NULL) p[0] = v;
}

void buf_put_u16(struct buf *b, u16 v)
{
    u8 *p = buf_reserve(b, 2);
    if (p != NULL) store_u16_le(p, v);
}

void buf_put_u32(struct buf *b, u32 v)
{
    u8 *p = buf_reserve(b, 4);
    if (p != NULL) store_u32_le(p, v);
}

void buf_put_u64(struct buf *b, u64 v)
{
    u8 *p = buf_reserve(b, 8);
    if (p != NULL) store_u64_le(p, v);
}

size_t varint_size(u64 v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    ASSERT(n <= BUF_VARINT_SIZE_MAX);
    return n;
}

size_t varint_encode(u8 *dst, u64 v)
{
    ASSERT(dst != NULL);
    size_t n = 0;
    while (v >= 0x80) {
        dst[n++] = (u8)(v | 0x80);
        v >>= 7;
    }
    dst[n++] = (u8)v;
    ASSERT(n <= BUF_VARINT_SIZE_MAX);
    return n;
}

size_t varint_decode(const u8 *src, size_t len, u64 *v)
{
    ASSERT(v != NULL);
    u64 x = 0;
    for (size_t i = 0; i < len && i < BUF_VARINT_SIZE_MAX; i++) {
        u64 group = src[i] & 0x7f;
        /* The tenth byte may carry only the top bit of a u64. */
        if (i == 9 && group > 1) return 0;
        x |= group << (7 * i);
        if ((src[i] & 0x80) == 0) {
            *v = x;
            return i + 1;
        }
    }
    return 0;
}

void buf_put_varint(struct buf *b, u64 v)
{
    u8 tmp[BUF_VARINT_SIZE_MAX];
    size_t n = varint_encode(tmp, v);
    buf_put_bytes(b, tmp, n);
}

void buf_reader_init(struct buf_reader *r, const void *src, size_t len)
{
    ASSERT(r != NULL);
    ASSERT(src != NULL || len == 0);
    r->ptr = src;
    r->len = len;
    r->pos = 0;
    r->error = false;
}

static const u8 *buf_take(struct buf_reader *r, size_t n)
{
    ASSERT(r->pos <= r->len);
    if (r->error || n > r->len - r->pos) {
        r->error = true;
        return NULL;
    }
    const u8 *p = r->ptr + r->pos;
    r->pos += n;
    return p;
}

u8 buf_get_u8(struct buf_reader *r)
{
    const u8 *p = buf_take(r, 1);
    return p ? p[0] : 0;
}

u16 buf_get_u16(struct buf_reader *r)
{
    const u8 *p = buf_take(r, 2);
    return p ? load_u16_le(p) : 0;
}

u32 buf_get_u32(struct buf_reader *r)
{
    const u8 *p = buf_take(r, 4);
    return p ? load_u32_le(p) : 0;
}

u64 buf_get_u64(struct buf_reader *r)
{
    const u8 *p = buf_take(r, 8);
    return p ? load_u64_le(p) : 0;
}

u64 buf_get_varint(struct buf_reader *r)
{
    if (r->error) return 0;
    u64 v = 0;
    size_t n = varint_decode(r->ptr + r->pos, r->len - r->pos, &v);
    if (n == 0) {
        r->error = true;
        return 0;
    }
    r->pos += n;
    ASSERT(r->pos <= r->len);
    return v;
}

struct span buf_get_bytes(struct buf_reader *r, size_t n)
{
    const u8 *p = buf_take(r, n);
    return p ? span_make(p, n) : span_make(NULL, 0);
}
