/* disk_mem.c — the in-memory, crashable disk of disk_mem.h. */
#include "disk_mem.h"

#include "core/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static u64 mem_rng(struct disk_mem *d)
{
    u64 z = (d->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static struct disk_mem *mem_of(struct disk *d)
{
    ASSERT(d != NULL);
    return (struct disk_mem *)d;
}

/* True when this call of op is the one set to fail. */
static bool mem_fails(struct disk_mem *d, enum disk_mem_op op)
{
    if (d->fail_op != op || d->fail_countdown == 0) return false;
    return --d->fail_countdown == 0;
}

static struct disk_mem_file *mem_fd_file(struct disk_mem *d, int fd)
{
    ASSERT(fd >= 0 && fd < DISK_MEM_FDS_MAX);
    ASSERT(d->fds[fd] >= 0);
    return &d->files[d->fds[fd]];
}

struct disk_mem_file *disk_mem_file(struct disk_mem *d, const char *path)
{
    for (int i = 0; i < DISK_MEM_FILES_MAX; i++) {
        if (d->files[i].used && strcmp(d->files[i].path, path) == 0) return &d->files[i];
    }
    return NULL;
}

static void mem_resize(struct disk_mem_file *f, u64 size)
{
    f->data = realloc(f->data, size ? size : 1);
    f->synced = realloc(f->synced, size ? size : 1);
    ASSERT(f->data != NULL && f->synced != NULL);
    if (size > f->size) {
        memset(f->data + f->size, 0, size - f->size);
        memset(f->synced + f->size, 0, size - f->size);
    }
    f->size = size;
}

static int mem_open(struct disk *disk, const char *path, bool create, int *fd)
{
    struct disk_mem *d = mem_of(disk);
    if (mem_fails(d, DISK_MEM_OP_OPEN)) return d->fail_err;
    struct disk_mem_file *f = disk_mem_file(d, path);
    if (f == NULL && !create) return -ENOENT;
    for (int i = 0; f == NULL && i < DISK_MEM_FILES_MAX; i++) {
        if (d->files[i].used) continue;
        f = &d->files[i];
        memset(f, 0, sizeof(*f));
        f->used = true;
        strncpy(f->path, path, sizeof(f->path) - 1);
    }
    if (f == NULL) return -ENOSPC;
    for (int i = 0; i < DISK_MEM_FDS_MAX; i++) {
        if (d->fds[i] >= 0) continue;
        d->fds[i] = (int)(f - d->files);
        *fd = i;
        return 0;
    }
    return -EMFILE;
}

static int mem_close(struct disk *disk, int fd)
{
    struct disk_mem *d = mem_of(disk);
    ASSERT(fd >= 0 && fd < DISK_MEM_FDS_MAX);
    if (d->fds[fd] < 0) return -EBADF; /* closed by a crash */
    d->fds[fd] = -1;
    return 0;
}

static int mem_pwrite(struct disk *disk, int fd, const void *src, size_t len, u64 offset)
{
    struct disk_mem *d = mem_of(disk);
    struct disk_mem_file *f = mem_fd_file(d, fd);
    if (mem_fails(d, DISK_MEM_OP_PWRITE)) return d->fail_err;
    d->pwrite_count++;
    if (offset + len > f->size) mem_resize(f, offset + len);
    memcpy(f->data + offset, src, len);
    return 0;
}

static int mem_pread(struct disk *disk, int fd, void *dst, size_t len, u64 offset,
                     size_t *read_bytes)
{
    struct disk_mem *d = mem_of(disk);
    struct disk_mem_file *f = mem_fd_file(d, fd);
    if (mem_fails(d, DISK_MEM_OP_PREAD)) return d->fail_err;
    size_t n = offset >= f->size ? 0 : (size_t)KEEL_MIN((u64)len, f->size - offset);
    memcpy(dst, f->data + offset, n);
    *read_bytes = n;
    return 0;
}

static int mem_fdatasync(struct disk *disk, int fd)
{
    struct disk_mem *d = mem_of(disk);
    struct disk_mem_file *f = mem_fd_file(d, fd);
    if (mem_fails(d, DISK_MEM_OP_FDATASYNC)) return d->fail_err;
    d->fdatasync_count++;
    memcpy(f->synced, f->data, f->size);
    return 0;
}

static int mem_preallocate(struct disk *disk, int fd, u64 size_bytes)
{
    struct disk_mem *d = mem_of(disk);
    struct disk_mem_file *f = mem_fd_file(d, fd);
    if (mem_fails(d, DISK_MEM_OP_PREALLOCATE)) return d->fail_err;
    if (size_bytes > f->size) mem_resize(f, size_bytes);
    return 0;
}

static int mem_ftruncate(struct disk *disk, int fd, u64 size_bytes)
{
    struct disk_mem *d = mem_of(disk);
    mem_resize(mem_fd_file(d, fd), size_bytes);
    return 0;
}

static int mem_unlink(struct disk *disk, const char *path)
{
    struct disk_mem *d = mem_of(disk);
    if (mem_fails(d, DISK_MEM_OP_UNLINK)) return d->fail_err;
    struct disk_mem_file *f = disk_mem_file(d, path);
    if (f == NULL) return -ENOENT;
    for (int i = 0; i < DISK_MEM_FDS_MAX; i++) ASSERT(d->fds[i] != (int)(f - d->files));
    free(f->data);
    free(f->synced);
    memset(f, 0, sizeof(*f));
    return 0;
}

static int mem_rename(struct disk *disk, const char *path_old, const char *path_new)
{
    struct disk_mem *d = mem_of(disk);
    struct disk_mem_file *f = disk_mem_file(d, path_old);
    if (f == NULL) return -ENOENT;
    if (disk_mem_file(d, path_new) != NULL) mem_unlink(disk, path_new);
    memset(f->path, 0, sizeof(f->path));
    strncpy(f->path, path_new, sizeof(f->path) - 1);
    return 0;
}

/* The name of f under dir/, or NULL when f is not directly inside dir. */
static const char *mem_child(const struct disk_mem_file *f, const char *dir)
{
    size_t n = strlen(dir);
    if (!f->used || strncmp(f->path, dir, n) != 0 || f->path[n] != '/') return NULL;
    const char *name = f->path + n + 1;
    return strchr(name, '/') == NULL ? name : NULL;
}

static int mem_list(struct disk *disk, const char *dir, disk_list_fn fn, void *ctx)
{
    struct disk_mem *d = mem_of(disk);
    for (int i = 0; i < DISK_MEM_FILES_MAX; i++) {
        const char *name = mem_child(&d->files[i], dir);
        if (name == NULL) continue;
        int rc = fn(ctx, name);
        if (rc != 0) return rc;
    }
    return 0;
}

static int mem_sync_dir(struct disk *disk, const char *dir)
{
    struct disk_mem *d = mem_of(disk);
    (void)dir;
    if (mem_fails(d, DISK_MEM_OP_SYNC_DIR)) return d->fail_err;
    return 0;
}

static const struct disk_ops disk_mem_ops = {
    .open = mem_open,
    .close = mem_close,
    .pwrite = mem_pwrite,
    .pread = mem_pread,
    .fdatasync = mem_fdatasync,
    .preallocate = mem_preallocate,
    .ftruncate = mem_ftruncate,
    .unlink = mem_unlink,
    .rename = mem_rename,
    .list = mem_list,
    .sync_dir = mem_sync_dir,
};

void disk_mem_init(struct disk_mem *d, u64 seed)
{
    memset(d, 0, sizeof(*d));
    d->base.ops = &disk_mem_ops;
    d->rng = seed;
    for (int i = 0; i < DISK_MEM_FDS_MAX; i++) d->fds[i] = -1;
}

void disk_mem_free(struct disk_mem *d)
{
    for (int i = 0; i < DISK_MEM_FILES_MAX; i++) {
        free(d->files[i].data);
        free(d->files[i].synced);
    }
    memset(d->files, 0, sizeof(d->files));
}

/* Settles one unsynced sector [at, at + n) of f. */
static void mem_crash_sector(struct disk_mem *d, struct disk_mem_file *f, u64 at, u64 n)
{
    switch (mem_rng(d) % 4) {
    case 0: /* the write reached the disk */
        break;
    case 1: /* it was lost */
        memcpy(f->data + at, f->synced + at, n);
        break;
    case 2: { /* torn: a prefix of it reached the disk */
        u64 keep = mem_rng(d) % n;
        memcpy(f->data + at + keep, f->synced + at + keep, n - keep);
        break;
    }
    default: { /* garbage over the changed bytes (powersafe overwrite) */
        u64 lo = 0, hi = n;
        while (f->data[at + lo] == f->synced[at + lo]) lo++;
        while (f->data[at + hi - 1] == f->synced[at + hi - 1]) hi--;
        for (u64 i = lo; i < hi; i++) f->data[at + i] = (u8)mem_rng(d);
        break;
    }
    }
    memcpy(f->synced + at, f->data + at, n);
}

void disk_mem_crash(struct disk_mem *d)
{
    for (int i = 0; i < DISK_MEM_FILES_MAX; i++) {
        struct disk_mem_file *f = &d->files[i];
        if (!f->used) continue;
        for (u64 at = 0; at < f->size; at += DISK_MEM_SECTOR_SIZE) {
            u64 n = KEEL_MIN((u64)DISK_MEM_SECTOR_SIZE, f->size - at);
            if (memcmp(f->data + at, f->synced + at, n) != 0) mem_crash_sector(d, f, at, n);
        }
    }
    for (int i = 0; i < DISK_MEM_FDS_MAX; i++) d->fds[i] = -1;
    d->fail_op = DISK_MEM_OP_NONE;
}

void disk_mem_fail(struct disk_mem *d, enum disk_mem_op op, u32 nth, int err)
{
    ASSERT(nth > 0 && err < 0);
    d->fail_op = op;
    d->fail_countdown = nth;
    d->fail_err = err;
}

u32 disk_mem_count(struct disk_mem *d, const char *dir)
{
    u32 n = 0;
    for (int i = 0; i < DISK_MEM_FILES_MAX; i++) n += mem_child(&d->files[i], dir) != NULL;
    return n;
}
