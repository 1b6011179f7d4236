/*
 * wal.h — a shard's write-ahead log: checksummed records with increasing
 * indexes (LSNs) in preallocated segment files, group commit, recovery.
 * The byte layouts are in core/wal_format.h.
 *
 * Contract:
 *  - Owns: the segment files of one directory (named by wal_format.h), the
 *    file handles of the tail segment, and two blocks allocated at wal_open
 *    and freed at wal_close (the batch and the segment table), plus a
 *    segment-sized scan buffer that wal_open frees before it returns.
 *    Nothing is allocated after wal_open.
 *  - Single-threaded: the shard's thread calls everything.
 *  - Indexes: records carry index first_index, first_index + 1, ... with no
 *    gap across segments. wal_last_index() is the index of the last appended
 *    record (pending ones included); wal_durable_index() that of the last
 *    record whose fdatasync completed. first - 1 when there are none.
 *  - Group commit: wal_append copies a record into the in-memory batch and
 *    returns its index at once; nothing reaches the disk until wal_flush,
 *    which writes the whole batch with one pwrite per segment it touches (at
 *    most two, since config requires batch_bytes_max + header <= segment
 *    size) and then one fdatasync per segment touched. A record may be
 *    acknowledged only once wal_durable_index() >= its index.
 *  - Errors: functions return 0, a positive enum keel_err, or a negative
 *    errno from the disk. KEEL_ENOMEM from wal_append means "the batch (or
 *    the segment table) is full: flush first"; KEEL_EVALUE_TOO_LARGE a
 *    payload over payload_size_max; KEEL_EINVALID a bad argument or config;
 *    KEEL_ECORRUPT a checksum or index failure that is not a torn tail.
 *  - A failed disk write or fdatasync poisons the WAL: the kernel may have
 *    dropped the dirty pages, so no later success could prove them durable
 *    (PostgreSQL's fsyncgate). Every later call returns the same error;
 *    the shard must close and reopen (recovery decides what survived).
 *  - Recovery (wal_open): segments are read in order and records validated
 *    one by one. At the first invalid record the rest of the log is scanned
 *    at 8-byte alignment for valid records: none, or only records that may
 *    belong to the same (last, unsynced) flush, make it a torn tail, which is
 *    cut — the rest of that segment is zeroed, later segments unlinked — and
 *    reported through config.on_cut (or a line on stderr when NULL). Any
 *    other valid record later is mid-log corruption: KEEL_ECORRUPT, with the
 *    segment and offset in wal_corrupt_seq / wal_corrupt_offset, and the
 *    files are left untouched for an operator. A segment header that
 *    records another segment size than config.segment_size_bytes is
 *    KEEL_EINVALID: the size is fixed for the life of a WAL directory.
 */
#ifndef KEEL_CORE_WAL_H
#define KEEL_CORE_WAL_H

#include "core/disk.h"
#include "core/types.h"

#define WAL_SEGMENT_SIZE_DEFAULT (64ull << 20)

/* Reports the torn tail that recovery cut: where, and the last good index. */
typedef void (*wal_cut_fn)(void *ctx, u64 seq, u64 offset, u64 last_index);

struct wal_config {
    u64 segment_size_bytes; /* 0: WAL_SEGMENT_SIZE_DEFAULT */
    u32 payload_size_max;   /* largest payload of one record; > 0 */
    u32 batch_bytes_max;    /* batch capacity, encoded records + one segment header */
    u32 segments_max;       /* cap on live segment files */
    u64 first_index;        /* index of the first record of an empty WAL; 0 means 1 */
    wal_cut_fn on_cut;      /* may be NULL: a line on stderr instead */
    void *on_cut_ctx;
};

struct wal_segment {
    u64 seq;
    u64 first_index;
    int fd; /* -1 unless this is one of the (at most two) open tail segments */
};

struct wal_run {      /* one pwrite of a flush: batch bytes to one segment */
    u32 segment;      /* position in the segment table */
    u32 batch_offset; /* where the run's bytes start in the batch */
    u64 file_offset;
    u64 len;
};

struct wal {
    struct disk *disk;
    struct wal_config config;
    char dir[DISK_PATH_SIZE_MAX];
    struct wal_segment *segments; /* [segments_max]; segments[0] is the oldest */
    u32 segment_count;
    u64 tail_offset;   /* where the next record goes in the last segment */
    u64 last_index;    /* pending records included */
    u64 durable_index; /* covered by a completed fdatasync */
    u8 *batch;         /* [batch_bytes_max] encoded records (and a header) */
    u32 batch_len;
    struct wal_run runs[2];
    u32 run_count;         /* 0 when the batch is empty */
    u32 batch_last_offset; /* of the batch's last record, flagged BATCH_END at flush */
    int failed;            /* the sticky error that poisoned the WAL, or 0 */
    u64 corrupt_seq;       /* where KEEL_ECORRUPT was found */
    u64 corrupt_offset;
};

/* Opens (creating if empty) the WAL in dir, which must exist, and recovers:
 * on success the WAL's last index and durable index are the last good record.
 * The config is copied; w is unusable after a failure (no wal_close needed). */
int wal_open(struct wal *w, struct disk *disk, const char *dir, const struct wal_config *config);
void wal_close(struct wal *w);

/* Copies a record into the batch and sets *index; see the contract above. */
int wal_append(struct wal *w, u16 type, struct span payload, u64 *index);
/* Writes and syncs the batch; on success *durable_index = wal_durable_index(). */
int wal_flush(struct wal *w, u64 *durable_index);

u64 wal_first_index(const struct wal *w);
u64 wal_last_index(const struct wal *w);
u64 wal_durable_index(const struct wal *w);

/* Removes the records from from_index on (Raft replacing uncommitted
 * entries): zeroes them on disk, syncs, unlinks later segments. The batch
 * must be empty; first_index <= from_index <= last_index + 1. */
int wal_truncate_suffix(struct wal *w, u64 from_index);
/* Unlinks every segment whose records all have index <= upto_index (a
 * snapshot covers them). The tail segment always stays. */
int wal_drop_prefix(struct wal *w, u64 upto_index);

/* Reads durable records in index order from a starting index. An iterator
 * holds its own file handle; it is invalid after wal_truncate_suffix or
 * wal_drop_prefix (finish it first) and must not outlive the WAL. */
struct wal_iter {
    struct wal *w;
    u64 index_next; /* the index the next call returns */
    u32 segment;    /* position in the segment table */
    int fd;         /* the iterator's own handle of that segment, or -1 */
    u64 offset;     /* of the next record in that segment */
    u8 *buf;        /* caller memory, wal_record_size(payload_size_max) bytes */
};

size_t wal_iter_buffer_size(const struct wal *w);
/* from_index in [wal_first_index, wal_durable_index + 1]. */
int wal_iter_init(struct wal_iter *it, struct wal *w, u64 from_index, void *buf, size_t buf_len);
/* 0 with the next record (payload borrowed from buf until the next call);
 * 1 when no durable record is left; else an error. */
int wal_iter_next(struct wal_iter *it, u16 *type, u64 *index, struct span *payload);
void wal_iter_finish(struct wal_iter *it);

/* Walks the in-memory state and returns false if an invariant fails; used
 * from asserts and tests only. */
bool wal_check(const struct wal *w);

#endif
