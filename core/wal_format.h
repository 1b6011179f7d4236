/*
 * wal_format.h — the on-disk bytes of the WAL: segment header and record.
 *
 * A shard's WAL is a directory of segment files named "wal-%016llx.log" by
 * segment sequence number (hex, zero-padded, so names sort by number). Each
 * segment is preallocated to segment_size_bytes and filled with zeros; it
 * holds a header and then records back to back, each starting at an 8-byte
 * aligned offset. The bytes after the last record are zero: a record's type
 * is never 0, so a zero header is "no record here". All integers are
 * little-endian.
 *
 * Segment header (WAL_SEGMENT_HEADER_SIZE = 48 bytes, at offset 0):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    8 magic WAL_MAGIC ("KEELWAL1" read as a little-endian u64)
 *        8    4 format version, WAL_FORMAT_VERSION
 *       12    4 reserved, 0
 *       16    8 segment sequence number (1 for the first segment ever; +1 each)
 *       24    8 first index: the index of the first record in this segment
 *       32    8 segment size in bytes, as preallocated
 *       40    8 checksum64 of bytes 0..39
 *
 * Record (at an 8-byte aligned offset; size wal_record_size(payload_len)):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    4 payload length in bytes (at most the configured payload max)
 *        4    2 type, 1..65535 (0 is never written: it marks zeroed space)
 *        6    2 flags: bit 0 WAL_FLAG_BATCH_END (last record of a flush),
 *                     bit 1 WAL_FLAG_BATCH_START (first record of a flush);
 *                     other bits 0 in this version
 *        8    8 index (LSN): the previous record's index + 1, across segments
 *       16    n payload
 *     16+n    p zero padding to the next multiple of 8 (p = 0..7)
 *   16+n+p    8 checksum64 of bytes 0 .. 16+n-1 (header and payload)
 *
 * Why the checksum trails: header and payload are contiguous, so one
 * checksum64 call covers both, and a write torn anywhere in the record
 * (header, payload or the checksum itself) fails the check.
 *
 * Why the BATCH flags: only the last flush can be unsynced at a crash, and
 * its sectors may reach the disk in any order, so a torn record may be
 * followed by whole records of the same flush. After a bad record, recovery
 * accepts later valid records only while they can belong to the bad record's
 * flush: none may carry BATCH_START, and none may follow one carrying
 * BATCH_END. Either proves that a later flush was written, so the bad
 * record's flush had completed its fdatasync and was damaged afterwards:
 * corruption, never cut.
 *
 * Truncation intent ("wal-truncate.intent", WAL_INTENT_SIZE = 40 bytes):
 * wal_truncate_suffix zeroes old records in place, and a crash halfway
 * would leave surviving old records after zeroed ones, which recovery would
 * call corruption. So it first writes and syncs this small file, zeroes,
 * then unlinks it (synced before any later flush); wal_open redoes the
 * zeroing when it finds a valid intent, and ignores a torn one (the zeroing
 * had not started).
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    8 magic WAL_INTENT_MAGIC ("KEELWTRN")
 *        8    8 segment sequence number
 *       16    8 first byte to zero (a record's offset)
 *       24    8 end of the bytes to zero
 *       32    8 checksum64 of bytes 0..31
 */
#ifndef KEEL_CORE_WAL_FORMAT_H
#define KEEL_CORE_WAL_FORMAT_H

#include "core/assert.h"
#include "core/buf.h"
#include "core/checksum.h"
#include "core/types.h"

#define WAL_MAGIC                0x314C41574C45454Bull /* "KEELWAL1" */
#define WAL_FORMAT_VERSION       1u
#define WAL_SEGMENT_HEADER_SIZE  48u
#define WAL_RECORD_HEADER_SIZE   16u
#define WAL_RECORD_CHECKSUM_SIZE 8u
#define WAL_RECORD_ALIGN         8u
#define WAL_FLAG_BATCH_END       0x0001u
#define WAL_FLAG_BATCH_START     0x0002u
#define WAL_FLAGS_KNOWN          (WAL_FLAG_BATCH_END | WAL_FLAG_BATCH_START)
#define WAL_SEGMENT_NAME_FORMAT  "wal-%016llx.log"
#define WAL_SEGMENT_NAME_SIZE    (4 + 16 + 4) /* without the terminating NUL */
#define WAL_INTENT_NAME          "wal-truncate.intent"
#define WAL_INTENT_MAGIC         0x4E5254574C45454Bull /* "KEELWTRN" */
#define WAL_INTENT_SIZE          40u

static_assert(WAL_SEGMENT_HEADER_SIZE % WAL_RECORD_ALIGN == 0, "records start aligned");
static_assert(WAL_RECORD_HEADER_SIZE % WAL_RECORD_ALIGN == 0, "payload starts aligned");

struct wal_segment_header {
    u64 seq;
    u64 first_index;
    u64 size_bytes;
};

struct wal_record_header {
    u32 payload_len;
    u16 type;
    u16 flags;
    u64 index;
};

static inline u64 wal_align8(u64 n)
{
    return (n + WAL_RECORD_ALIGN - 1) & ~(u64)(WAL_RECORD_ALIGN - 1);
}

static inline u64 wal_record_size(u64 payload_len)
{
    return WAL_RECORD_HEADER_SIZE + wal_align8(payload_len) + WAL_RECORD_CHECKSUM_SIZE;
}

static inline void wal_segment_header_encode(u8 *dst, const struct wal_segment_header *h)
{
    ASSERT(h->seq > 0 && h->first_index > 0);
    store_u64_le(dst + 0, WAL_MAGIC);
    store_u32_le(dst + 8, WAL_FORMAT_VERSION);
    store_u32_le(dst + 12, 0);
    store_u64_le(dst + 16, h->seq);
    store_u64_le(dst + 24, h->first_index);
    store_u64_le(dst + 32, h->size_bytes);
    store_u64_le(dst + 40, checksum64(dst, 40));
}

/* True when src holds a well-formed header (magic, version, checksum). */
static inline bool wal_segment_header_decode(const u8 *src, struct wal_segment_header *h)
{
    ASSERT(src != NULL && h != NULL);
    if (load_u64_le(src + 0) != WAL_MAGIC) return false;
    if (load_u32_le(src + 8) != WAL_FORMAT_VERSION) return false;
    if (load_u64_le(src + 40) != checksum64(src, 40)) return false;
    h->seq = load_u64_le(src + 16);
    h->first_index = load_u64_le(src + 24);
    h->size_bytes = load_u64_le(src + 32);
    return h->seq > 0 && h->first_index > 0;
}

/* Writes a whole record (header, payload, padding, checksum) at dst, which has
 * room for wal_record_size(payload.len) bytes; returns that size. */
static inline u64 wal_record_encode(u8 *dst, const struct wal_record_header *h, struct span payload)
{
    ASSERT(h->type != 0 && h->index > 0);
    ASSERT(h->payload_len == payload.len);
    store_u32_le(dst + 0, h->payload_len);
    store_u16_le(dst + 4, h->type);
    store_u16_le(dst + 6, h->flags);
    store_u64_le(dst + 8, h->index);
    if (payload.len > 0) memcpy(dst + WAL_RECORD_HEADER_SIZE, payload.ptr, payload.len);
    u64 body = WAL_RECORD_HEADER_SIZE + payload.len;
    u64 padded = WAL_RECORD_HEADER_SIZE + wal_align8(payload.len);
    memset(dst + body, 0, padded - body);
    store_u64_le(dst + padded, checksum64(dst, body));
    return padded + WAL_RECORD_CHECKSUM_SIZE;
}

/* Decodes the header at src (room_bytes readable) and checks the record's
 * shape and checksum; payload_len_max bounds the length before it is trusted.
 * Returns the record's size, or 0 when no valid record starts at src. */
static inline u64 wal_record_check(const u8 *src, u64 room_bytes, u64 payload_len_max,
                                   struct wal_record_header *h)
{
    ASSERT(src != NULL && h != NULL);
    if (room_bytes < wal_record_size(0)) return 0;
    h->payload_len = load_u32_le(src + 0);
    h->type = load_u16_le(src + 4);
    h->flags = load_u16_le(src + 6);
    h->index = load_u64_le(src + 8);
    if (h->type == 0 || h->index == 0 || (h->flags & ~WAL_FLAGS_KNOWN) != 0) return 0;
    if (h->payload_len > payload_len_max) return 0;
    u64 size = wal_record_size(h->payload_len);
    if (size > room_bytes) return 0;
    u64 body = WAL_RECORD_HEADER_SIZE + h->payload_len;
    if (load_u64_le(src + size - WAL_RECORD_CHECKSUM_SIZE) != checksum64(src, body)) return 0;
    return size;
}

#endif
