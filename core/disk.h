/*
 * disk.h — the disk seam: the file operations the WAL (and later snapshots)
 * need, behind a small vtable so a real and a simulated disk can be swapped.
 *
 * Contract:
 *  - struct disk is embedded first in each implementation; its ops pointer is
 *    its first member (SQLite's pMethod habit), so a struct disk * can be cast
 *    back to the implementation inside its own functions.
 *  - Every op is synchronous and returns 0 or a negative errno (-EIO,
 *    -ENOSPC, ...). Paths are absolute or relative to the process's working
 *    directory; a path is at most DISK_PATH_SIZE_MAX - 1 bytes.
 *  - File handles are small non-negative ints owned by the caller until close.
 *  - pread returns the bytes read through *read_bytes; fewer than asked means
 *    the file ends there (the rest of the buffer is left as it was).
 *  - Durability: data written with pwrite is durable only after fdatasync on
 *    the same file returns 0. A file's existence (create, unlink, rename) is
 *    durable only after sync_dir on its directory returns 0.
 *  - list calls fn once per entry name of a directory ("." and ".." excluded),
 *    in no particular order; fn returns 0 to go on or nonzero to stop, which
 *    list then returns.
 *  - Implementations: core/disk_posix.c (plain syscalls, through a table
 *    tests can replace) and tests/unit/core/disk_mem.c (in memory, with
 *    crashes that drop or tear unsynced sectors). shard/disk_uring.c will add
 *    io_uring completions later; the WAL only sees this header.
 *  - Single-threaded: a disk belongs to one shard.
 */
#ifndef KEEL_CORE_DISK_H
#define KEEL_CORE_DISK_H

#include "core/types.h"

#include <sys/types.h> /* ssize_t, off_t */

#define DISK_PATH_SIZE_MAX 256

struct disk;

typedef int (*disk_list_fn)(void *ctx, const char *name);

struct disk_ops {
    /* Opens path read-write; with create, creates it when it does not exist. */
    int (*open)(struct disk *d, const char *path, bool create, int *fd);
    int (*close)(struct disk *d, int fd);
    int (*pwrite)(struct disk *d, int fd, const void *src, size_t len, u64 offset);
    int (*pread)(struct disk *d, int fd, void *dst, size_t len, u64 offset, size_t *read_bytes);
    int (*fdatasync)(struct disk *d, int fd);
    /* Reserves [0, size_bytes) so later writes there do not fail for space;
     * the file grows to size_bytes and new bytes read as zeros. */
    int (*preallocate)(struct disk *d, int fd, u64 size_bytes);
    int (*ftruncate)(struct disk *d, int fd, u64 size_bytes);
    int (*unlink)(struct disk *d, const char *path);
    int (*rename)(struct disk *d, const char *path_old, const char *path_new);
    int (*list)(struct disk *d, const char *dir, disk_list_fn fn, void *ctx);
    /* Makes the creation, removal and renaming of entries in dir durable. */
    int (*sync_dir)(struct disk *d, const char *dir);
};

struct disk {
    const struct disk_ops *ops; /* always first */
};

/* ---- the POSIX implementation (disk_posix.c) ------------------------------ */

/* The syscalls disk_posix makes, one table, so a test can fail any of them
 * (SQLite's aSyscall[]). Each has the libc signature and errno convention. */
struct disk_posix_syscalls {
    int (*open)(const char *path, int flags, ...);
    int (*close)(int fd);
    ssize_t (*pwrite)(int fd, const void *src, size_t len, off_t offset);
    ssize_t (*pread)(int fd, void *dst, size_t len, off_t offset);
    int (*fdatasync)(int fd);
    int (*fallocate)(int fd, int mode, off_t offset, off_t len);
    int (*ftruncate)(int fd, off_t len);
    int (*unlink)(const char *path);
    int (*rename)(const char *path_old, const char *path_new);
};

extern const struct disk_posix_syscalls disk_posix_syscalls_default;

struct disk_posix {
    struct disk base; /* always first */
    const struct disk_posix_syscalls *sys;
};

/* sys NULL means disk_posix_syscalls_default. */
void disk_posix_init(struct disk_posix *d, const struct disk_posix_syscalls *sys);

#endif
