/* wal_recover.c — wal_open's scan: validate segments in order, tell a torn
 * tail (cut and reported) from mid-log corruption (KEEL_ECORRUPT). The rules
 * are in wal.h and the reasons in wal_format.h ("Why the BATCH flags"). */
#include "core/wal_int.h"
#include "core/assert.h"

#include <stdio.h>
#include <string.h>

/* Reads segment k whole into scan (zeros past the file's end). */
static int recover_read(struct wal *w, u32 k, u8 *scan, int *fd)
{
    ASSERT(k < w->segment_count && fd != NULL);
    char path[DISK_PATH_SIZE_MAX];
    u64 size = w->config.segment_size_bytes;
    wal_segment_path(w, w->segments[k].seq, path);
    int rc = w->disk->ops->open(w->disk, path, false, fd);
    if (rc != 0) return rc;
    size_t got = 0;
    rc = w->disk->ops->pread(w->disk, *fd, scan, size, 0, &got);
    if (rc == 0) memset(scan + got, 0, size - got);
    ASSERT(rc != 0 || got <= size);
    return rc;
}

static int recover_corrupt(struct wal *w, u32 k, u64 offset)
{
    ASSERT(k < w->segment_count);
    w->corrupt_seq = w->segments[k].seq;
    w->corrupt_offset = offset;
    ASSERT(w->corrupt_seq > 0);
    return KEEL_ECORRUPT;
}

/* True when segment k+1 exists, has a valid header and starts at `expected`:
 * then segment k ended cleanly where its records stop. */
static bool recover_next_follows(struct wal *w, u32 k, u64 expected)
{
    ASSERT(k < w->segment_count);
    if (k + 1 == w->segment_count) return false;
    char path[DISK_PATH_SIZE_MAX];
    u8 head[WAL_SEGMENT_HEADER_SIZE];
    int fd = -1;
    size_t got = 0;
    wal_segment_path(w, w->segments[k + 1].seq, path);
    if (w->disk->ops->open(w->disk, path, false, &fd) != 0) return false;
    int rc = w->disk->ops->pread(w->disk, fd, head, sizeof(head), 0, &got);
    w->disk->ops->close(w->disk, fd);
    struct wal_segment_header h;
    if (rc != 0 || got != sizeof(head) || !wal_segment_header_decode(head, &h)) return false;
    ASSERT(h.seq > 0);
    return h.seq == w->segments[k + 1].seq && h.first_index == expected;
}

/* Scans one segment's bytes in scan from `from` at 8-byte steps for valid
 * records; any that could not belong to the torn flush is corruption.
 * *ended carries "a BATCH_END was seen" across segments. */
static bool recover_tail_segment(const struct wal *w, const u8 *scan, u64 from, u64 last_good,
                                 bool *ended)
{
    ASSERT(from % WAL_RECORD_ALIGN == 0);
    u64 size = w->config.segment_size_bytes;
    u64 pos = from;
    while (pos + wal_record_size(0) <= size) { /* bounded: pos grows every turn */
        struct wal_record_header h;
        u64 got = wal_record_check(scan + pos, size - pos, w->config.payload_size_max, &h);
        if (got == 0) {
            pos += WAL_RECORD_ALIGN;
            continue;
        }
        if (*ended || h.index <= last_good || (h.flags & WAL_FLAG_BATCH_START) != 0) return false;
        if ((h.flags & WAL_FLAG_BATCH_END) != 0) *ended = true;
        pos += got;
    }
    ASSERT(pos <= size + WAL_RECORD_ALIGN);
    return true;
}

/* The first bad position is (k, off), last_good the index before it. Scans
 * the rest of segment k (in scan) and every later segment. */
static int recover_tail(struct wal *w, u32 k, u64 off, u8 *scan, u64 last_good)
{
    ASSERT(k < w->segment_count);
    ASSERT(off >= WAL_SEGMENT_HEADER_SIZE);
    bool ended = false;
    if (!recover_tail_segment(w, scan, off + WAL_RECORD_ALIGN, last_good, &ended))
        return recover_corrupt(w, k, off);
    for (u32 j = k + 1; j < w->segment_count; j++) { /* bounded by segments_max */
        int fd = -1;
        int rc = recover_read(w, j, scan, &fd);
        if (fd >= 0) w->disk->ops->close(w->disk, fd);
        if (rc != 0) return rc;
        if (!recover_tail_segment(w, scan, 0, last_good, &ended)) return recover_corrupt(w, k, off);
    }
    return 0;
}

/* Cuts the log at (k, off): later segments unlinked, [off, dirty_end) of
 * segment k zeroed and synced, the cut reported. */
static int recover_cut(struct wal *w, u32 k, u64 off, u64 dirty_end, u64 last_good)
{
    ASSERT(k < w->segment_count && w->segments[k].fd >= 0);
    ASSERT(off <= dirty_end);
    u64 seq = w->segments[k].seq;
    int rc = wal_unlink_from(w, k + 1);
    if (rc == 0) rc = wal_zero_range(w, w->segments[k].fd, off, dirty_end);
    if (rc != 0) return rc;
    if (w->config.on_cut != NULL) {
        w->config.on_cut(w->config.on_cut_ctx, seq, off, last_good);
    } else {
        fprintf(stderr, "wal: %s: torn tail cut at segment %llu offset %llu, last index %llu\n",
                w->dir, (unsigned long long)seq, (unsigned long long)off,
                (unsigned long long)last_good);
    }
    ASSERT(w->segment_count == k + 1);
    return 0;
}

/* Validates segment k's header; sets its first index (and *expected for the
 * first segment). */
static int recover_header(struct wal *w, u32 k, const u8 *scan, u64 *expected)
{
    ASSERT(k < w->segment_count && expected != NULL);
    struct wal_segment_header h;
    if (!wal_segment_header_decode(scan, &h)) return recover_corrupt(w, k, 0);
    if (h.seq != w->segments[k].seq) return recover_corrupt(w, k, 0);
    if (h.size_bytes != w->config.segment_size_bytes) return KEEL_EINVALID;
    if (k > 0 && w->segments[k].seq != w->segments[k - 1].seq + 1) return recover_corrupt(w, k, 0);
    if (k == 0) *expected = h.first_index;
    /* Segment k > 0 was reached only through recover_next_follows. */
    ASSERT(h.first_index == *expected);
    w->segments[k].first_index = h.first_index;
    return 0;
}

/* Walks the valid chain of records in scan from the first record; returns
 * the offset where it stops and advances *expected past each record. */
static int recover_chain(struct wal *w, u32 k, const u8 *scan, u64 *expected, u64 *off)
{
    ASSERT(k < w->segment_count);
    u64 size = w->config.segment_size_bytes;
    u64 pos = WAL_SEGMENT_HEADER_SIZE;
    for (;;) { /* bounded: each turn consumes a record of the segment */
        struct wal_record_header h;
        u64 got = wal_record_check(scan + pos, size - pos, w->config.payload_size_max, &h);
        if (got == 0) break;
        if (h.index != *expected) return recover_corrupt(w, k, pos);
        (*expected)++;
        pos += got;
    }
    *off = pos;
    ASSERT(pos <= size);
    return 0;
}

static u64 recover_dirty_end(const u8 *scan, u64 off, u64 size)
{
    ASSERT(off <= size);
    u64 end = size;
    /* Word by word first (a preallocated segment is mostly zeros), then bytes. */
    for (; end >= off + 8; end -= 8) {
        u64 word;
        memcpy(&word, scan + end - 8, sizeof(word)); /* zero in any byte order */
        if (word != 0) break;
    }
    while (end > off && scan[end - 1] == 0) end--; /* bounded by the segment */
    return wal_align8(end);
}

int wal_recover(struct wal *w, u8 *scan)
{
    ASSERT(w->segment_count > 0 && scan != NULL);
    u64 size = w->config.segment_size_bytes;
    u64 expected = 0;
    for (u32 k = 0; k < w->segment_count; k++) { /* bounded by segments_max */
        struct wal_segment *s = &w->segments[k];
        int rc = recover_read(w, k, scan, &s->fd);
        /* What was read counts as durable after open: sync it, in case it
         * was written (by the last flush before a process crash) but never
         * synced. A clean file syncs at the cost of the call. */
        if (rc == 0) rc = w->disk->ops->fdatasync(w->disk, s->fd);
        if (rc == 0) rc = recover_header(w, k, scan, &expected);
        u64 off = 0;
        if (rc == 0) rc = recover_chain(w, k, scan, &expected, &off);
        if (rc != 0) return rc;
        u64 dirty_end = recover_dirty_end(scan, off, size);
        if (dirty_end == off && recover_next_follows(w, k, expected)) {
            w->disk->ops->close(w->disk, s->fd);
            s->fd = -1;
            continue;
        }
        /* The log ends in segment k. */
        if (dirty_end != off || k + 1 < w->segment_count) {
            rc = recover_tail(w, k, off, scan, expected - 1);
            if (rc == 0) rc = recover_cut(w, k, off, dirty_end, expected - 1);
            if (rc != 0) return rc;
        }
        w->tail_offset = off;
        w->last_index = w->durable_index = expected - 1;
        ASSERT(w->segment_count == k + 1);
        return 0;
    }
    UNREACHABLE();
}
