/*
 * snapshot_file.h — snapshot files of one shard in a directory: their names,
 * finding and loading the newest good one, removing old ones, and a
 * synchronous writer for tests and tools. The stream inside a file is
 * exactly the chunks of core/snapshot.h, back to back, nothing else.
 *
 * Names: snap-<applied_index as 20 decimal digits>.snap, so names sort as
 * their indexes do; snap-<...>.snap.tmp while the file is being written. Any
 * other name in the directory is ignored.
 *
 * Write protocol (the shard does exactly this through io_uring, and
 * snapshot_file_write does it with plain syscalls):
 *   1. snapshot_writer_init(w, m, shard_id, applied_index, keys_per_chunk)
 *      where applied_index is the last WAL record applied to m. Compaction
 *      is deferred until step 6 (a compaction start voids the writer:
 *      KEEL_ECOMPACTED; then unlink the .tmp and start again later).
 *   2. Create snapshot_file_tmp_name(dir, applied_index) with
 *      O_CREAT|O_TRUNC|O_WRONLY (a .tmp left by a crash is overwritten).
 *   3. One snapshot_writer_next per loop turn; loop_write the chunk at the
 *      running offset (resubmitting the rest of a short write) before the
 *      chunk buffer is reused, until snapshot_writer_done.
 *   4. fdatasync the .tmp, then close it.
 *   5. rename the .tmp to snapshot_file_final_name(dir, applied_index).
 *   6. fsync the directory. Only now does the snapshot exist: a crash before
 *      this leaves, at worst, a .tmp that nothing reads.
 *   7. Keep the two newest snapshots: snapshot_file_remove_older(dir, prev)
 *      with prev the applied_index of the snapshot before this one, and drop
 *      WAL records only up to prev's applied_index. Then a newest snapshot
 *      that later reads as corrupt still has an older one to fall back to,
 *      with the WAL after it.
 *
 * Recovery: snapshot_file_load_latest, then replay the WAL records with
 * index > applied_index (none found: an empty store, replay everything).
 *
 * Fallback rule: the newest file (by name) is loaded first. If it fails with
 * KEEL_ECORRUPT (torn, flipped, truncated, a chunk of another snapshot), the
 * reason is reported (stderr and err) and the next older file is tried, and
 * so on. If files exist and none loads, the result is KEEL_ECORRUPT, never
 * an empty store: the WAL before those snapshots may be gone. Any other
 * error (memory, I/O) is returned at once: it says nothing about the file.
 *
 * Errors: KEEL_OK (0), a keel_err (> 0: KEEL_ECORRUPT, KEEL_ENOMEM,
 * KEEL_EINVALID for a path longer than SNAPSHOT_FILE_PATH_SIZE_MAX - 1) or
 * a negative errno from the file system. err (nullable, err_len bytes)
 * gets a message naming the path.
 *
 * Contract: synchronous, blocking file I/O; call from the shard thread at
 * start-up or from tools and tests, never on the request path.
 */
#ifndef KEEL_CORE_SNAPSHOT_FILE_H
#define KEEL_CORE_SNAPSHOT_FILE_H

#include "core/mvcc.h"
#include "core/types.h"

#define SNAPSHOT_FILE_PATH_SIZE_MAX 512
/* "snap-" + 20 digits + ".snap" */
#define SNAPSHOT_FILE_NAME_LEN 30u

/* The paths of a snapshot of applied_index in dir, into path (path_size
 * bytes). KEEL_EINVALID if it does not fit. */
int snapshot_file_final_name(const char *dir, u64 applied_index, char *path, size_t path_size);
int snapshot_file_tmp_name(const char *dir, u64 applied_index, char *path, size_t path_size);

/* Parses a directory entry's name: true for a final name (*is_tmp false) or
 * a .tmp name (*is_tmp true), with its index in *applied_index. */
bool snapshot_file_parse_name(const char *name, u64 *applied_index, bool *is_tmp);

/* The newest final snapshot file in dir with applied_index < below (pass
 * UINT64_MAX for the newest of all); *found false if there is none. Lists
 * the directory; does not open the file. */
int snapshot_file_find_latest(const char *dir, u64 below, u64 *applied_index, bool *found);

/* Reads the whole file at path in chunks, verifying each, and builds a store
 * with config. *applied_index gets the header's. Errors as above. */
int snapshot_file_load(const struct mvcc_config *config, const char *path, struct mvcc **out,
                       u64 *applied_index, char *err, size_t err_len);

/* Loads the newest snapshot of dir that verifies (fallback rule above).
 * *out NULL and *applied_index 0 with KEEL_OK when dir holds no snapshot.
 * *skipped (nullable) counts the corrupt files passed over; on success err
 * holds the last skip's reason ("" if none). */
int snapshot_file_load_latest(const struct mvcc_config *config, const char *dir, struct mvcc **out,
                              u64 *applied_index, u32 *skipped, char *err, size_t err_len);

/* Removes every snapshot file (final or .tmp) of dir with applied_index <
 * keep_applied_index, then fsyncs dir. *removed (nullable) counts them. */
int snapshot_file_remove_older(const char *dir, u64 keep_applied_index, u32 *removed);

/* Writes a whole snapshot of m with the protocol above, synchronously
 * (write, fdatasync, rename, fsync of dir). chunk_bytes_max 0 means
 * snapshot_chunk_size_min; keys_per_chunk_max >= 1. The .tmp is removed on
 * failure. KEEL_ECOMPACTED cannot happen (nothing runs in between). */
int snapshot_file_write(struct mvcc *m, const char *dir, u64 shard_id, u64 applied_index,
                        u32 keys_per_chunk_max, size_t chunk_bytes_max, char *err, size_t err_len);

#endif
