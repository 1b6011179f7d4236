/*
 * wal.h — a shard's write-ahead log: checksummed records with increasing
 * indexes (LSNs) in preallocated segment files, group commit, recovery.
 * The byte layouts are in core/wal_format.h.
 *
 * Contract:
 *  - Owns: the segment files of one directory (named by wal_format.h), the
 *    file handles of the tail segments, and two blocks allocated at wal_open
 *    and freed at wal_close (the two batch buffers, and the segment table),
 *    plus a segment-sized scan buffer that wal_open frees before it returns.
 *    Nothing is allocated after wal_open.
 *  - Single-threaded: the shard's thread calls everything.
 *  - Indexes: records carry index first_index, first_index + 1, ... with no
 *    gap across segments. wal_last_index() is the index of the last appended
 *    record (pending ones included); wal_durable_index() that of the last
 *    record whose fdatasync completed. first - 1 when there are none.
 *  - Group commit: wal_append copies a record into the open batch and
 *    returns its index at once; nothing reaches the disk until a flush,
 *    which writes the whole batch with one write per segment it touches (at
 *    most two, since config requires batch_bytes_max + header <= segment
 *    size) and then one fdatasync per segment touched. A record may be
 *    acknowledged only once wal_durable_index() >= its index.
 *  - Asynchronous flush: wal_flush_begin seals the open batch and returns
 *    the I/O to do (struct wal_flush_io) without doing it; the caller issues
 *    it (the shard through io_uring: write[i] linked to sync[i]) and reports
 *    the outcome with wal_flush_end. At most one flush is in flight
 *    (ASSERTed; wal_flush_in_flight tells). Meanwhile wal_append fills the
 *    other of two batch buffers (double buffering), so the shard keeps
 *    taking writes during the fdatasync; that batch's file offsets follow
 *    the in-flight one's, rolling to a new segment if needed. The buffers
 *    and file handles named by the io stay valid until wal_flush_end.
 *    wal_flush does begin, the I/O through the disk seam, and end.
 *  - Synchronous I/O that stays inside the WAL: creating a segment that a
 *    batch rolled over to (open, preallocate, sync the directory) happens
 *    in wal_flush_begin, once per segment_size_bytes of log; open,
 *    truncation, prefix drop and iteration are synchronous throughout.
 *  - Errors: functions return 0, a positive enum keel_err, or a negative
 *    errno from the disk. KEEL_ENOMEM from wal_append means "the batch (or
 *    the segment table) is full: flush first"; KEEL_EVALUE_TOO_LARGE a
 *    payload over payload_size_max; KEEL_EINVALID a bad argument or config;
 *    KEEL_ECORRUPT a checksum or index failure that is not a torn tail.
 *  - A failed disk write or fdatasync (or wal_flush_end with res != 0)
 *    poisons the WAL: the kernel may have dropped the dirty pages, so no
 *    later success could prove them durable (PostgreSQL's fsyncgate). Every
 *    later call returns the same error; the shard must close and reopen
 *    (recovery decides what survived).
 *  - Recovery (wal_open): segments are read in order (and fdatasynced: what
 *    recovery finds counts as durable) and records validated one by one. At
 *    the first invalid record the rest of the log is scanned
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

/* Hands the WAL a prepared segment file: the caller renames its spare (a file of
 * segment_size_bytes, written with zeros and synced) to path and sets *fd to a read-write
 * handle of it; 0, or nonzero when it has none ready (the WAL then creates and preallocates
 * the segment itself). Written zeros matter: an fdatasync of data written into a fallocated
 * (unwritten) extent must also commit the extent conversion to the file system's journal,
 * which made it about twice as slow here (docs/architecture.md, WAL). */
typedef int (*wal_spare_fn)(void *ctx, const char *path, int *fd);

struct wal_config {
    u64 segment_size_bytes; /* 0: WAL_SEGMENT_SIZE_DEFAULT */
    u32 payload_size_max;   /* largest payload of one record; > 0 */
    u32 batch_bytes_max;    /* batch capacity, encoded records + one segment header */
    u32 segments_max;       /* cap on live segment files */
    u64 first_index;        /* index of the first record of an empty WAL; 0 means 1 */
    wal_cut_fn on_cut;      /* may be NULL: a line on stderr instead */
    void *on_cut_ctx;
    wal_spare_fn take_spare; /* may be NULL; used for segments after the first */
    void *take_spare_ctx;
};

struct wal_segment {
    u64 seq;
    u64 first_index;
    int fd; /* -1 unless this is one of the (at most two) open tail segments */
};

struct wal_run {      /* one write of a flush: batch bytes to one segment */
    u32 segment;      /* position in the segment table */
    u32 batch_offset; /* where the run's bytes start in the batch */
    u64 file_offset;
    u64 len;
};

/* One of the two batch buffers: records encoded back to back, with a
 * segment header before the records of a segment it rolled over to. */
struct wal_batch {
    u8 *buf; /* [batch_bytes_max] */
    u32 len;
    u32 run_count;   /* 0 when the batch is empty */
    u32 last_offset; /* of the last record, flagged BATCH_END when sealed */
    struct wal_run runs[2];
    u64 last_index; /* of the last record */
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
    struct wal_batch batches[2];
    u32 open;        /* batches[open] takes appends */
    bool in_flight;  /* batches[open ^ 1] is sealed and being written */
    int failed;      /* the sticky error that poisoned the WAL, or 0 */
    u64 corrupt_seq; /* where KEEL_ECORRUPT was found */
    u64 corrupt_offset;
};

/* The I/O of one flush, filled by wal_flush_begin. fds are the disk seam's
 * handles (kernel fds with disk_posix). Every write must write its whole
 * len; sync i (an fdatasync) must start after write i has completed, and
 * the two write+sync pairs (two segments) may run in any order or at once.
 * The flush succeeded when every op did; then durable_index is durable. */
#define WAL_FLUSH_OPS_MAX 2

struct wal_flush_write {
    int fd;
    const void *buf; /* inside a batch buffer, valid until wal_flush_end */
    u32 len;
    u64 offset_bytes;
};

struct wal_flush_sync {
    int fd;
};

struct wal_flush_io {
    struct wal_flush_write writes[WAL_FLUSH_OPS_MAX];
    u32 write_count; /* 0: nothing to flush (and nothing in flight) */
    struct wal_flush_sync syncs[WAL_FLUSH_OPS_MAX];
    u32 sync_count;    /* == write_count */
    u64 durable_index; /* wal_durable_index() after a successful end */
};

/* Opens (creating if empty) the WAL in dir, which must exist, and recovers:
 * on success the WAL's last index and durable index are the last good record.
 * The config is copied; w is unusable after a failure (no wal_close needed). */
int wal_open(struct wal *w, struct disk *disk, const char *dir, const struct wal_config *config);
/* Closes the files and frees the WAL. With a flush in flight (a crash
 * test, or a shard giving up) the caller makes sure no I/O still uses its
 * buffers. */
void wal_close(struct wal *w);

/* True when wal_append of a payload of this size would succeed now (the open batch has room
 * and the WAL is not poisoned): the shard checks before it executes a write it must log. */
bool wal_can_append(const struct wal *w, size_t payload_len);
/* Copies a record into the open batch and sets *index; see the contract
 * above. KEEL_ENOMEM: the open batch (or the segment table) is full; flush
 * it, after ending the flush in flight if there is one. */
int wal_append(struct wal *w, u16 type, struct span payload, u64 *index);

/* Seals the open batch (BATCH_END on its last record), creates a segment it
 * rolled over to, and fills *io with the writes and syncs to issue; the
 * other buffer becomes the open batch. 0 with io->write_count == 0 when the
 * batch is empty (nothing in flight then), else 0 with a flush in flight,
 * or the sticky error. Requires !wal_flush_in_flight(w). */
int wal_flush_begin(struct wal *w, struct wal_flush_io *io);
/* Ends the flush in flight. res: 0 when every write wrote its whole length
 * and every sync returned 0; else the first -errno (-EIO for a short
 * write). 0 moves wal_durable_index() to io->durable_index and returns 0;
 * res != 0 poisons the WAL and returns the sticky error. */
int wal_flush_end(struct wal *w, int res);
bool wal_flush_in_flight(const struct wal *w);
/* begin, the I/O through the disk seam (writes, then syncs), end; on
 * success *durable_index = wal_durable_index(). Not while a flush is in
 * flight. */
int wal_flush(struct wal *w, u64 *durable_index);

u64 wal_first_index(const struct wal *w);
u64 wal_last_index(const struct wal *w);
u64 wal_durable_index(const struct wal *w);

/* Removes the records from from_index on (Raft replacing uncommitted
 * entries): zeroes them on disk, syncs, unlinks later segments. The batch
 * must be empty and no flush in flight (else KEEL_EINVALID);
 * first_index <= from_index <= last_index + 1. */
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
