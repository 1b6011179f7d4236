/* wal_int.h — what wal.c and wal_recover.c share; private to core/. */
#ifndef KEEL_CORE_WAL_INT_H
#define KEEL_CORE_WAL_INT_H

#include "core/wal.h"
#include "core/wal_format.h"

/* Writes dir/wal-<seq>.log into out (DISK_PATH_SIZE_MAX bytes). */
void wal_segment_path(const struct wal *w, u64 seq, char *out);
/* Records a sticky error; returns it. */
int wal_poison(struct wal *w, int err);
/* Writes zeros over [from, to) of fd, in batch-sized pieces (the batch must
 * be empty: its memory is the zero source), then fdatasyncs. */
int wal_zero_range(struct wal *w, int fd, u64 from, u64 to);
/* Unlinks segments [keep, segment_count) newest first, closing their
 * handles, syncs the directory and sets segment_count = keep. */
int wal_unlink_from(struct wal *w, u32 keep);

/* The truncation intent of wal_format.h: write and sync it, unlink it
 * (synced), or redo a valid one found at open. */
int wal_intent_write(struct wal *w, u64 seq, u64 offset, u64 end);
int wal_intent_clear(struct wal *w);
int wal_intent_redo(struct wal *w);

/* Scans the segments listed in w->segments (headers not yet read) with the
 * segment-sized buffer scan; sets the tail, last and durable indexes, and
 * leaves the last segment's handle open. See wal.h for the rules. */
int wal_recover(struct wal *w, u8 *scan);

#endif
