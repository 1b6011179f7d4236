/*
 * disk_mem.h — an in-memory core/disk.h for tests, with crashes and faults.
 *
 * Contract:
 *  - Files live in memory under their full path (a flat table of
 *    DISK_MEM_FILES_MAX names; directories are implicit: list(dir) returns
 *    the names under "dir/"). File creation, removal, renaming and size
 *    changes (preallocate, ftruncate) are durable at once; sync_dir is a
 *    no-op. Only data is volatile.
 *  - Each file keeps its current bytes (what pread sees) and its synced
 *    bytes (as of the last successful fdatasync). disk_mem_crash() decides,
 *    per 512-byte sector where the two differ, from the seeded generator:
 *    keep the new bytes, keep the old ones (the write was lost), tear (a
 *    random prefix of the new bytes, then the old ones) or garbage (random
 *    bytes from the first to the last changed byte of the sector). Bytes a
 *    write did not change are never damaged: SQLite's "powersafe overwrite",
 *    which the WAL relies on since a flush starts mid-sector after the
 *    previous one. Afterwards both copies hold the outcome and every handle is
 *    closed, as after a power cut.
 *  - disk_mem_fail() makes the nth next call of one op return an error,
 *    without doing anything (a failed fdatasync leaves the data unsynced).
 */
#ifndef KEEL_TESTS_DISK_MEM_H
#define KEEL_TESTS_DISK_MEM_H

#include "core/disk.h"

#define DISK_MEM_FILES_MAX   64
#define DISK_MEM_FDS_MAX     64
#define DISK_MEM_SECTOR_SIZE 512

enum disk_mem_op {
    DISK_MEM_OP_NONE,
    DISK_MEM_OP_OPEN,
    DISK_MEM_OP_PWRITE,
    DISK_MEM_OP_PREAD,
    DISK_MEM_OP_FDATASYNC,
    DISK_MEM_OP_PREALLOCATE,
    DISK_MEM_OP_UNLINK,
    DISK_MEM_OP_SYNC_DIR,
};

struct disk_mem_file {
    char path[DISK_PATH_SIZE_MAX];
    bool used;
    u8 *data;   /* current bytes, size of them */
    u8 *synced; /* bytes as of the last fdatasync, size of them */
    u64 size;
};

struct disk_mem {
    struct disk base; /* always first */
    struct disk_mem_file files[DISK_MEM_FILES_MAX];
    int fds[DISK_MEM_FDS_MAX]; /* file slot of each open handle, or -1 */
    u64 rng;
    enum disk_mem_op fail_op;
    u32 fail_countdown; /* the call that brings it to 0 fails */
    int fail_err;
    u64 fdatasync_count;
    u64 pwrite_count;
};

void disk_mem_init(struct disk_mem *d, u64 seed);
void disk_mem_free(struct disk_mem *d);
void disk_mem_crash(struct disk_mem *d);
void disk_mem_fail(struct disk_mem *d, enum disk_mem_op op, u32 nth, int err);
/* The file at path, or NULL; for tests that damage bytes on purpose (both
 * copies are changed). */
struct disk_mem_file *disk_mem_file(struct disk_mem *d, const char *path);
/* The number of files whose path starts with dir/. */
u32 disk_mem_count(struct disk_mem *d, const char *dir);

#endif
