/* disk_posix.c — core/disk.h on plain POSIX syscalls, each called through
 * the table in struct disk_posix so tests can fail any of them. */
#include "core/disk.h"
#include "core/assert.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h> /* rename */
#include <string.h>
#include <unistd.h>

const struct disk_posix_syscalls disk_posix_syscalls_default = {
    .open = open,
    .close = close,
    .pwrite = pwrite,
    .pread = pread,
    .fdatasync = fdatasync,
    .fallocate = fallocate,
    .ftruncate = ftruncate,
    .unlink = unlink,
    .rename = rename,
};

static const struct disk_posix_syscalls *posix_sys(struct disk *d)
{
    ASSERT(d != NULL);
    const struct disk_posix_syscalls *sys = ((struct disk_posix *)d)->sys;
    ASSERT(sys != NULL);
    return sys;
}

static int posix_err(void)
{
    int e = errno;
    ASSERT(e > 0);
    return -e;
}

static int posix_open(struct disk *d, const char *path, bool create, int *fd)
{
    ASSERT(path != NULL && fd != NULL);
    ASSERT(strlen(path) < DISK_PATH_SIZE_MAX);
    int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0);
    int got = posix_sys(d)->open(path, flags, 0644);
    if (got < 0) return posix_err();
    *fd = got;
    return 0;
}

static int posix_close(struct disk *d, int fd)
{
    ASSERT(fd >= 0);
    return posix_sys(d)->close(fd) == 0 ? 0 : posix_err();
}

/* Loops on short writes; a write that makes no progress is -EIO. */
static int posix_pwrite(struct disk *d, int fd, const void *src, size_t len, u64 offset)
{
    ASSERT(fd >= 0);
    ASSERT(src != NULL || len == 0);
    const u8 *p = src;
    while (len > 0) { /* bounded: each turn writes at least one byte */
        ssize_t n = posix_sys(d)->pwrite(fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return posix_err();
        if (n == 0) return -EIO;
        p += n, len -= (size_t)n, offset += (u64)n;
    }
    return 0;
}

/* Loops on short reads until len bytes or the end of the file. */
static int posix_pread(struct disk *d, int fd, void *dst, size_t len, u64 offset,
                       size_t *read_bytes)
{
    ASSERT(fd >= 0 && read_bytes != NULL);
    ASSERT(dst != NULL || len == 0);
    size_t done = 0;
    while (done < len) { /* bounded: each turn reads at least one byte or stops */
        ssize_t n = posix_sys(d)->pread(fd, (u8 *)dst + done, len - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return posix_err();
        if (n == 0) break;
        done += (size_t)n;
    }
    *read_bytes = done;
    return 0;
}

static int posix_fdatasync(struct disk *d, int fd)
{
    ASSERT(fd >= 0);
    return posix_sys(d)->fdatasync(fd) == 0 ? 0 : posix_err();
}

/* Zeros written for real, 64 KiB at a time: a later fdatasync of data written
 * over them is a pure data write, while data written into a fallocated
 * (unwritten) extent makes the fdatasync commit the extent conversion to the
 * journal too (about twice as slow on ext4 here, docs/architecture.md). */
static int posix_write_zeros(struct disk *d, int fd, u64 size_bytes)
{
    static const u8 zeros[64 << 10];
    for (u64 off = 0; off < size_bytes;) { /* bounded: off grows every turn */
        size_t len = (size_t)KEEL_MIN((u64)sizeof(zeros), size_bytes - off);
        ssize_t n = posix_sys(d)->pwrite(fd, zeros, len, (off_t)off);
        if (n <= 0) return n < 0 ? posix_err() : -EIO;
        off += (u64)n;
    }
    return 0;
}

/* fallocate(2) mode 0 reserves the blocks first, so running out of space
 * fails here and not at a later write; file systems without it (some FUSE
 * ones) skip that step. Then the zeros are written (see above). */
static int posix_preallocate(struct disk *d, int fd, u64 size_bytes)
{
    ASSERT(fd >= 0);
    ASSERT(size_bytes > 0);
    if (posix_sys(d)->fallocate(fd, 0, 0, (off_t)size_bytes) != 0 && errno != EOPNOTSUPP)
        return posix_err();
    return posix_write_zeros(d, fd, size_bytes);
}

static int posix_ftruncate(struct disk *d, int fd, u64 size_bytes)
{
    ASSERT(fd >= 0);
    return posix_sys(d)->ftruncate(fd, (off_t)size_bytes) == 0 ? 0 : posix_err();
}

static int posix_unlink(struct disk *d, const char *path)
{
    ASSERT(path != NULL);
    return posix_sys(d)->unlink(path) == 0 ? 0 : posix_err();
}

static int posix_rename(struct disk *d, const char *path_old, const char *path_new)
{
    ASSERT(path_old != NULL && path_new != NULL);
    return posix_sys(d)->rename(path_old, path_new) == 0 ? 0 : posix_err();
}

/* Bounded by the directory's entries; the callback may stop early. */
static int posix_list(struct disk *d, const char *dir, disk_list_fn fn, void *ctx)
{
    ASSERT(d != NULL && dir != NULL);
    ASSERT(fn != NULL);
    DIR *handle = opendir(dir);
    if (handle == NULL) return posix_err();
    int rc = 0;
    /* readdir reports an error only through errno, which the callback may
     * also set: clear it before each call. */
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(handle);
        if (e == NULL) {
            if (errno != 0) rc = posix_err();
            break;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        rc = fn(ctx, e->d_name);
        if (rc != 0) break;
    }
    closedir(handle);
    return rc;
}

static int posix_sync_dir(struct disk *d, const char *dir)
{
    ASSERT(dir != NULL);
    int fd = posix_sys(d)->open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return posix_err();
    int rc = posix_sys(d)->fdatasync(fd) == 0 ? 0 : posix_err();
    posix_sys(d)->close(fd);
    return rc;
}

static const struct disk_ops disk_posix_ops = {
    .open = posix_open,
    .close = posix_close,
    .pwrite = posix_pwrite,
    .pread = posix_pread,
    .fdatasync = posix_fdatasync,
    .preallocate = posix_preallocate,
    .ftruncate = posix_ftruncate,
    .unlink = posix_unlink,
    .rename = posix_rename,
    .list = posix_list,
    .sync_dir = posix_sync_dir,
};

void disk_posix_init(struct disk_posix *d, const struct disk_posix_syscalls *sys)
{
    ASSERT(d != NULL);
    d->base.ops = &disk_posix_ops;
    d->sys = sys != NULL ? sys : &disk_posix_syscalls_default;
    ASSERT((void *)d == (void *)&d->base);
}
