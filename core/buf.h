/*
 * buf.h — byte buffers with little-endian put/get, shared by the wire codec,
 * the WAL and snapshots.
 *
 * Contract:
 *  - struct buf is a writer over caller memory (buf_init_fixed) or over a heap
 *    block it grows itself (buf_init_dynamic; never on the request path).
 *    A fixed writer that runs out of room sets a sticky overflow flag and
 *    writes nothing more: check buf_ok() once after a run of puts instead of
 *    after every put.
 *  - struct buf_reader reads from a borrowed span. Reading past the end sets a
 *    sticky error flag and yields zeros; check buf_reader_ok() once at the end.
 *  - All multi-byte integers are little-endian. Varints are LEB128 (7 bits per
 *    byte, low group first, high bit = more follows), at most 10 bytes for u64;
 *    a varint longer than that, or one that overflows 64 bits, is an error.
 *  - Single-threaded: a buffer belongs to whoever holds it.
 */
#ifndef KEEL_CORE_BUF_H
#define KEEL_CORE_BUF_H

#include "core/types.h"

#include <string.h>

#define BUF_VARINT_SIZE_MAX 10

struct buf {
    u8 *ptr;
    size_t len;
    size_t cap;
    bool dynamic;  /* grows with realloc; freed by buf_free */
    bool overflow; /* sticky: a put did not fit (fixed) or realloc failed */
};

struct buf_reader {
    const u8 *ptr;
    size_t len;
    size_t pos;
    bool error; /* sticky: a get ran past the end or a varint was malformed */
};

void buf_init_fixed(struct buf *b, void *mem, size_t cap);
void buf_init_dynamic(struct buf *b, size_t cap_initial);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);

static inline bool buf_ok(const struct buf *b)
{
    return !b->overflow;
}

/* Reserves n bytes at the end and returns them, or NULL (and sets overflow). */
u8 *buf_reserve(struct buf *b, size_t n);

void buf_put_bytes(struct buf *b, const void *src, size_t n);
void buf_put_u8(struct buf *b, u8 v);
void buf_put_u16(struct buf *b, u16 v);
void buf_put_u32(struct buf *b, u32 v);
void buf_put_u64(struct buf *b, u64 v);
void buf_put_varint(struct buf *b, u64 v);

/* Encodes v at dst (room for BUF_VARINT_SIZE_MAX bytes); returns bytes written. */
size_t varint_encode(u8 *dst, u64 v);
/* Decodes a varint from [src, src+len); returns bytes read, 0 if malformed or short. */
size_t varint_decode(const u8 *src, size_t len, u64 *v);
size_t varint_size(u64 v);

void buf_reader_init(struct buf_reader *r, const void *src, size_t len);

static inline bool buf_reader_ok(const struct buf_reader *r)
{
    return !r->error;
}

static inline size_t buf_reader_left(const struct buf_reader *r)
{
    return r->len - r->pos;
}

u8 buf_get_u8(struct buf_reader *r);
u16 buf_get_u16(struct buf_reader *r);
u32 buf_get_u32(struct buf_reader *r);
u64 buf_get_u64(struct buf_reader *r);
u64 buf_get_varint(struct buf_reader *r);
/* Borrows n bytes from the reader's source (no copy); empty span on error. */
struct span buf_get_bytes(struct buf_reader *r, size_t n);

/* Raw little-endian loads and stores on unaligned memory. */
static inline void store_u16_le(u8 *p, u16 v)
{
    p[0] = (u8)v;
    p[1] = (u8)(v >> 8);
}

static inline void store_u32_le(u8 *p, u32 v)
{
    for (int i = 0; i < 4; i++) p[i] = (u8)(v >> (8 * i));
}

static inline void store_u64_le(u8 *p, u64 v)
{
    for (int i = 0; i < 8; i++) p[i] = (u8)(v >> (8 * i));
}

static inline u16 load_u16_le(const u8 *p)
{
    return (u16)(p[0] | (p[1] << 8));
}

static inline u32 load_u32_le(const u8 *p)
{
    u32 v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline u64 load_u64_le(const u8 *p)
{
    u64 v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#endif
