/*
 * checksum.h — the one checksum keel stores: XXH3, 64 bits.
 *
 * Why XXH3 and not CRC32C: both detect the torn writes and bit flips a WAL
 * meets, but XXH3-64 runs at memory speed on any x86-64 or ARM core without
 * needing the SSE4.2/ARMv8 CRC instructions, and 64 bits make an accidental
 * match on garbage (a recycled segment's stale bytes) a 2^-64 event rather
 * than 2^-32. xxhash is a fixed dependency of the project already.
 *
 * Contract: pure functions, any thread. checksum.c is the only file that
 * includes xxhash.h.
 */
#ifndef KEEL_CORE_CHECKSUM_H
#define KEEL_CORE_CHECKSUM_H

#include "core/types.h"

u64 checksum64(const void *data, size_t len);
/* The checksum of data under a seed, to chain records or separate domains. */
u64 checksum64_seeded(const void *data, size_t len, u64 seed);

/* Streaming form, for data that arrives in pieces; the result equals
 * checksum64 of the concatenated pieces. The state is opaque and on-stack. */
struct checksum_stream {
    _Alignas(64) u8 state[640];
};
void checksum_stream_init(struct checksum_stream *s);
void checksum_stream_update(struct checksum_stream *s, const void *data, size_t len);
u64 checksum_stream_digest(const struct checksum_stream *s);

#endif
