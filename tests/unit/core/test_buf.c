/*
 * test_buf.c — byte buffers: the fixed writer's sticky overflow, dynamic
 * growth, little-endian encodings byte for byte, LEB128 varints at every
 * size boundary and malformed, and the reader's sticky past-end error.
 */
#include "core/buf.h"

#include <criterion/criterion.h>

#include <string.h>

/* ---- fixed writer ------------------------------------------------------- */

Test(buf, fixed_overflow_is_sticky_and_writes_nothing_past_cap)
{
    u8 mem[16];
    memset(mem, 0xAA, sizeof(mem));
    struct buf b;
    buf_init_fixed(&b, mem, 8);
    buf_put_u32(&b, 0x11223344);
    cr_assert(buf_ok(&b));
    cr_assert_eq(b.len, 4);
    buf_put_u64(&b, 0x0102030405060708ull); /* 4 + 8 > 8: does not fit */
    cr_assert_not(buf_ok(&b));
    cr_assert_eq(b.len, 4, "a failed put must not advance len");
    buf_put_u32(&b, 0x55667788); /* would fit, but the flag is sticky */
    buf_put_u8(&b, 0x99);
    buf_put_bytes(&b, "xy", 2);
    cr_assert_null(buf_reserve(&b, 1));
    cr_assert_not(buf_ok(&b));
    cr_assert_eq(b.len, 4);
    for (size_t i = 4; i < sizeof(mem); i++) cr_assert_eq(mem[i], 0xAA, "byte %zu written", i);
    cr_assert_eq(load_u32_le(mem), 0x11223344);
    buf_reset(&b);
    cr_assert(buf_ok(&b));
    cr_assert_eq(b.len, 0);
    buf_put_u64(&b, 0x0102030405060708ull);
    cr_assert(buf_ok(&b), "exactly cap bytes fit");
    cr_assert_eq(b.len, 8);
    cr_assert_eq(mem[8], 0xAA);
    buf_put_u8(&b, 1);
    cr_assert_not(buf_ok(&b));
    cr_assert_eq(mem[8], 0xAA, "one byte past cap must stay untouched");
}

Test(buf, fixed_reserve_points_into_caller_memory)
{
    u8 mem[32];
    struct buf b;
    buf_init_fixed(&b, mem, sizeof(mem));
    u8 *p = buf_reserve(&b, 10);
    cr_assert_eq(p, mem);
    u8 *q = buf_reserve(&b, 22);
    cr_assert_eq(q, mem + 10);
    cr_assert_eq(b.len, 32);
    cr_assert(buf_ok(&b));
    cr_assert_not_null(buf_reserve(&b, 0), "an empty reserve at the end still fits");
    cr_assert_null(buf_reserve(&b, 1));
    cr_assert_not(buf_ok(&b));
}

Test(buf, fixed_zero_capacity_overflows_on_first_byte)
{
    struct buf b;
    buf_init_fixed(&b, NULL, 0);
    buf_put_bytes(&b, NULL, 0);
    cr_assert(buf_ok(&b), "putting nothing into nothing fits");
    buf_put_u8(&b, 7);
    cr_assert_not(buf_ok(&b));
    cr_assert_eq(b.len, 0);
}

/* ---- dynamic writer ----------------------------------------------------- */

Test(buf, dynamic_grows_and_keeps_contents)
{
    struct buf b;
    buf_init_dynamic(&b, 0);
    for (u32 i = 0; i < 5000; i++) buf_put_u8(&b, (u8)(i * 7));
    u8 chunk[3000];
    for (size_t i = 0; i < sizeof(chunk); i++) chunk[i] = (u8)(i ^ 0x5A);
    buf_put_bytes(&b, chunk, sizeof(chunk));
    for (u32 i = 0; i < 1000; i++) buf_put_u64(&b, (u64)i * 0x9E3779B97F4A7C15ull);
    cr_assert(buf_ok(&b));
    cr_assert_eq(b.len, 5000 + 3000 + 8000);
    cr_assert_geq(b.cap, b.len);
    for (u32 i = 0; i < 5000; i++) cr_assert_eq(b.ptr[i], (u8)(i * 7), "byte %u", i);
    cr_assert_eq(memcmp(b.ptr + 5000, chunk, sizeof(chunk)), 0);
    for (u32 i = 0; i < 1000; i++) {
        cr_assert_eq(load_u64_le(b.ptr + 8000 + 8 * i), (u64)i * 0x9E3779B97F4A7C15ull);
    }
    buf_free(&b);
    cr_assert_null(b.ptr);
    cr_assert_eq(b.len, 0);
}

Test(buf, dynamic_with_initial_capacity_grows_past_it)
{
    struct buf b;
    buf_init_dynamic(&b, 4);
    cr_assert(buf_ok(&b));
    cr_assert_geq(b.cap, 4);
    buf_put_u32(&b, 0xDEADBEEF);
    buf_put_u32(&b, 0xCAFEBABE); /* past the initial 4 bytes */
    u8 *p = buf_reserve(&b, 100000);
    cr_assert_not_null(p);
    memset(p, 0x3C, 100000);
    cr_assert(buf_ok(&b));
    cr_assert_eq(b.len, 100008);
    cr_assert_eq(load_u32_le(b.ptr), 0xDEADBEEF);
    cr_assert_eq(load_u32_le(b.ptr + 4), 0xCAFEBABE);
    cr_assert_eq(b.ptr[100007], 0x3C);
    buf_reset(&b);
    cr_assert_eq(b.len, 0);
    buf_put_u8(&b, 1);
    cr_assert_eq(b.ptr[0], 1);
    buf_free(&b);
}

/* ---- little-endian encodings -------------------------------------------- */

Test(buf, little_endian_puts_are_byte_exact)
{
    u8 mem[32];
    struct buf b;
    buf_init_fixed(&b, mem, sizeof(mem));
    buf_put_u8(&b, 0xFE);
    buf_put_u16(&b, 0x0102);
    buf_put_u32(&b, 0x01020304);
    buf_put_u64(&b, 0x0102030405060708ull);
    buf_put_bytes(&b, "\x10\x20", 2);
    cr_assert(buf_ok(&b));
    const u8 want[] = {0xFE, 0x02, 0x01, 0x04, 0x03, 0x02, 0x01, 0x08, 0x07,
                       0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x10, 0x20};
    cr_assert_eq(b.len, sizeof(want));
    for (size_t i = 0; i < sizeof(want); i++) {
        cr_assert_eq(mem[i], want[i], "byte %zu: %02x, want %02x", i, mem[i], want[i]);
    }
}

Test(buf, little_endian_gets_round_trip_extremes)
{
    u8 mem[64];
    struct buf b;
    buf_init_fixed(&b, mem, sizeof(mem));
    buf_put_u16(&b, 0xFFFF);
    buf_put_u16(&b, 0x8001);
    buf_put_u32(&b, 0xFFFFFFFFu);
    buf_put_u32(&b, 0x80000001u);
    buf_put_u64(&b, UINT64_MAX);
    buf_put_u64(&b, 0x8000000000000001ull);
    cr_assert(buf_ok(&b));
    struct buf_reader r;
    buf_reader_init(&r, mem, b.len);
    cr_assert_eq(buf_get_u16(&r), 0xFFFF);
    cr_assert_eq(buf_get_u16(&r), 0x8001);
    cr_assert_eq(buf_get_u32(&r), 0xFFFFFFFFu);
    cr_assert_eq(buf_get_u32(&r), 0x80000001u);
    cr_assert_eq(buf_get_u64(&r), UINT64_MAX);
    cr_assert_eq(buf_get_u64(&r), 0x8000000000000001ull);
    cr_assert(buf_reader_ok(&r));
    cr_assert_eq(buf_reader_left(&r), 0);
}

Test(buf, raw_load_store_helpers_are_little_endian)
{
    u8 p[8];
    store_u16_le(p, 0xA1B2);
    cr_assert(p[0] == 0xB2 && p[1] == 0xA1);
    cr_assert_eq(load_u16_le(p), 0xA1B2);
    store_u32_le(p, 0xA1B2C3D4u);
    cr_assert(p[0] == 0xD4 && p[3] == 0xA1);
    cr_assert_eq(load_u32_le(p), 0xA1B2C3D4u);
    store_u64_le(p, 0xA1B2C3D4E5F60718ull);
    cr_assert(p[0] == 0x18 && p[7] == 0xA1);
    cr_assert_eq(load_u64_le(p), 0xA1B2C3D4E5F60718ull);
    const u8 q[] = {1, 0, 0, 0x80}; /* high bit set: no sign extension */
    cr_assert_eq(load_u32_le(q), 0x80000001u);
}

/* ---- varints ------------------------------------------------------------ */

static void check_varint(u64 v, size_t want_size)
{
    u8 enc[BUF_VARINT_SIZE_MAX + 2];
    memset(enc, 0xEE, sizeof(enc));
    size_t n = varint_encode(enc, v);
    cr_assert_eq(n, want_size, "varint_encode(%llu) wrote %zu bytes", (unsigned long long)v, n);
    cr_assert_eq(varint_size(v), want_size, "varint_size(%llu)", (unsigned long long)v);
    cr_assert_eq(enc[n], 0xEE, "varint_encode wrote past its length");
    for (size_t i = 0; i + 1 < n; i++) cr_assert(enc[i] & 0x80, "continuation bit %zu", i);
    cr_assert_eq(enc[n - 1] & 0x80, 0, "last byte must end the varint");
    u64 got = ~v;
    cr_assert_eq(varint_decode(enc, n, &got), n);
    cr_assert_eq(got, v);
    cr_assert_eq(varint_decode(enc, sizeof(enc), &got), n, "trailing bytes are not read");
    cr_assert_eq(varint_decode(enc, n - 1, &got), 0, "one byte short must fail");
    u8 mem[16];
    struct buf b;
    buf_init_fixed(&b, mem, sizeof(mem));
    buf_put_varint(&b, v);
    buf_put_u8(&b, 0x42);
    cr_assert(buf_ok(&b));
    cr_assert_eq(b.len, n + 1);
    struct buf_reader r;
    buf_reader_init(&r, mem, b.len);
    cr_assert_eq(buf_get_varint(&r), v);
    cr_assert_eq(buf_get_u8(&r), 0x42);
    cr_assert(buf_reader_ok(&r));
}

Test(buf, varint_round_trip_at_boundaries)
{
    check_varint(0, 1);
    check_varint(1, 1);
    check_varint(127, 1);
    check_varint(128, 2);
    check_varint((1u << 14) - 1, 2);
    check_varint(1u << 14, 3);
    check_varint((1ull << 21) - 1, 3);
    check_varint(1ull << 21, 4);
    check_varint((1ull << 56) - 1, 8);
    check_varint(1ull << 56, 9);
    check_varint((1ull << 63) - 1, 9);
    check_varint(1ull << 63, 10);
    check_varint(UINT64_MAX, 10);
}

Test(buf, varint_size_at_every_bit_width)
{
    for (u32 bits = 1; bits <= 64; bits++) {
        u64 top = bits == 64 ? UINT64_MAX : ((1ull << bits) - 1);
        u64 low = 1ull << (bits - 1);
        size_t want = (bits + 6) / 7;
        check_varint(top, want);
        check_varint(low, want);
    }
}

Test(buf, varint_known_encodings)
{
    u8 enc[BUF_VARINT_SIZE_MAX];
    cr_assert_eq(varint_encode(enc, 128), 2);
    cr_assert(enc[0] == 0x80 && enc[1] == 0x01);
    cr_assert_eq(varint_encode(enc, 300), 2);
    cr_assert(enc[0] == 0xAC && enc[1] == 0x02);
    cr_assert_eq(varint_encode(enc, UINT64_MAX), 10);
    for (int i = 0; i < 9; i++) cr_assert_eq(enc[i], 0xFF);
    cr_assert_eq(enc[9], 0x01);
    cr_assert_eq(varint_encode(enc, 1ull << 63), 10);
    for (int i = 0; i < 9; i++) cr_assert_eq(enc[i], 0x80);
    cr_assert_eq(enc[9], 0x01);
}

Test(buf, varint_malformed_is_rejected)
{
    u64 v = 12345;
    u8 long11[11];
    memset(long11, 0x80, sizeof(long11));
    cr_assert_eq(varint_decode(long11, sizeof(long11), &v), 0, "11 continuation bytes");
    long11[10] = 0x00; /* ends at the 11th byte: still longer than 10 */
    cr_assert_eq(varint_decode(long11, sizeof(long11), &v), 0, "an 11-byte varint");
    u8 over[10];
    memset(over, 0xFF, sizeof(over));
    over[9] = 0x02; /* bit 64 set: overflows u64 */
    cr_assert_eq(varint_decode(over, sizeof(over), &v), 0, "10th byte 0x02 overflows");
    over[9] = 0x7F;
    cr_assert_eq(varint_decode(over, sizeof(over), &v), 0, "10th byte 0x7f overflows");
    over[9] = 0x81; /* carries bit 63 but says more follows */
    cr_assert_eq(varint_decode(over, sizeof(over), &v), 0, "10th byte with continuation");
    over[9] = 0x01;
    cr_assert_eq(varint_decode(over, sizeof(over), &v), 10, "10th byte 0x01 is the top bit");
    cr_assert_eq(v, UINT64_MAX);
    const u8 truncated[] = {0x80, 0x80};
    cr_assert_eq(varint_decode(truncated, sizeof(truncated), &v), 0, "truncated");
    cr_assert_eq(varint_decode(truncated, 0, &v), 0, "empty input");
    const u8 nine_more[] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    cr_assert_eq(varint_decode(nine_more, sizeof(nine_more), &v), 0, "9 bytes, more follows");
}

Test(buf, reader_varint_errors_are_sticky)
{
    const u8 src[] = {0x05, 0x80, 0x80};
    struct buf_reader r;
    buf_reader_init(&r, src, sizeof(src));
    cr_assert_eq(buf_get_varint(&r), 5);
    cr_assert(buf_reader_ok(&r));
    cr_assert_eq(buf_get_varint(&r), 0, "a truncated varint yields 0");
    cr_assert_not(buf_reader_ok(&r));
    cr_assert_eq(buf_get_u8(&r), 0, "after an error every get yields 0");
    cr_assert_not(buf_reader_ok(&r));
    u8 bad[11];
    memset(bad, 0x80, sizeof(bad));
    buf_reader_init(&r, bad, sizeof(bad));
    cr_assert_eq(buf_get_varint(&r), 0);
    cr_assert_not(buf_reader_ok(&r));
}

/* ---- reader ------------------------------------------------------------- */

Test(buf, reader_past_end_is_sticky_and_yields_zeros)
{
    const u8 src[] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
    struct buf_reader r;
    buf_reader_init(&r, src, sizeof(src));
    cr_assert_eq(buf_get_u16(&r), 0x2211);
    cr_assert_eq(buf_get_u64(&r), 0, "8 bytes from 5 left");
    cr_assert_not(buf_reader_ok(&r));
    cr_assert_eq(buf_get_u8(&r), 0, "one byte is left, but the error is sticky");
    cr_assert_eq(buf_get_u16(&r), 0);
    cr_assert_eq(buf_get_u32(&r), 0);
    struct span s = buf_get_bytes(&r, 1);
    cr_assert_eq(s.len, 0);
    cr_assert_not(buf_reader_ok(&r));
    buf_reader_init(&r, src, 4);
    cr_assert_eq(buf_get_u32(&r), 0x44332211, "exactly the bytes left");
    cr_assert(buf_reader_ok(&r));
    cr_assert_eq(buf_get_u8(&r), 0);
    cr_assert_not(buf_reader_ok(&r));
    buf_reader_init(&r, NULL, 0);
    cr_assert_eq(buf_get_u32(&r), 0);
    cr_assert_not(buf_reader_ok(&r));
}

Test(buf, get_bytes_borrows_without_copying)
{
    const u8 src[] = "hello, world";
    struct buf_reader r;
    buf_reader_init(&r, src, 12);
    struct span a = buf_get_bytes(&r, 5);
    cr_assert_eq(a.ptr, src, "get_bytes must point into the source");
    cr_assert_eq(a.len, 5);
    struct span empty = buf_get_bytes(&r, 0);
    cr_assert_eq(empty.len, 0);
    cr_assert(buf_reader_ok(&r));
    cr_assert_eq(buf_get_u8(&r), ',');
    struct span b = buf_get_bytes(&r, 6);
    cr_assert_eq(b.ptr, src + 6);
    cr_assert_eq(memcmp(b.ptr, " world", 6), 0);
    cr_assert_eq(buf_reader_left(&r), 0);
    cr_assert(buf_reader_ok(&r));
    struct span c = buf_get_bytes(&r, 1);
    cr_assert_eq(c.len, 0);
    cr_assert_not(buf_reader_ok(&r));
}

Test(buf, get_bytes_longer_than_left_consumes_nothing_useful)
{
    const u8 src[] = {1, 2, 3};
    struct buf_reader r;
    buf_reader_init(&r, src, sizeof(src));
    struct span s = buf_get_bytes(&r, 4);
    cr_assert_eq(s.len, 0);
    cr_assert_not(buf_reader_ok(&r));
    cr_assert_eq(buf_get_u8(&r), 0, "sticky after a failed get_bytes");
    buf_reader_init(&r, src, sizeof(src));
    s = buf_get_bytes(&r, SIZE_MAX); /* must not wrap around */
    cr_assert_eq(s.len, 0);
    cr_assert_not(buf_reader_ok(&r));
}
