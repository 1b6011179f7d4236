/*
 * snapshot_file.c — snapshot files in a directory (contract, names and the
 * write protocol in core/snapshot_file.h).
 *
 * Plain libc, blocking: this runs at start-up and in tools and tests. Load
 * reads one chunk at a time (frame first, then the rest), so memory is one
 * chunk, bounded by the bytes left in the file: a corrupt length field
 * cannot make it allocate more than the file holds.
 */
#include "core/snapshot_file.h"

#include "core/assert.h"
#include "core/mvcc_int.h" /* the store's config, for the default chunk size */
#include "core/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_FILE_PREFIX     "snap-"
#define SNAP_FILE_SUFFIX     ".snap"
#define SNAP_FILE_TMP_SUFFIX ".snap.tmp"
#define SNAP_FILE_DIGITS     20u

static_assert(sizeof(SNAP_FILE_PREFIX) - 1 + SNAP_FILE_DIGITS + sizeof(SNAP_FILE_SUFFIX) - 1 ==
                  SNAPSHOT_FILE_NAME_LEN,
              "name length in snapshot_file.h");

/* Formats a message into err (nullable) and returns rc. */
static int snap_file_err(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int snap_file_err(char *err, size_t err_len, int rc, const char *fmt, ...)
{
    ASSERT(rc != KEEL_OK);
    if (err != NULL && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- names ------------------------------------------------------------------ */

static int snap_file_name(const char *dir, u64 applied_index, const char *suffix, char *path,
                          size_t path_size)
{
    ASSERT(dir != NULL && path != NULL);
    ASSERT(path_size > 0);
    int n = snprintf(path, path_size, "%s/" SNAP_FILE_PREFIX "%020" PRIu64 "%s", dir, applied_index,
                     suffix);
    if (n < 0 || (size_t)n >= path_size || (size_t)n >= SNAPSHOT_FILE_PATH_SIZE_MAX) {
        path[0] = 0;
        return KEEL_EINVALID;
    }
    return KEEL_OK;
}

int snapshot_file_final_name(const char *dir, u64 applied_index, char *path, size_t path_size)
{
    return snap_file_name(dir, applied_index, SNAP_FILE_SUFFIX, path, path_size);
}

int snapshot_file_tmp_name(const char *dir, u64 applied_index, char *path, size_t path_size)
{
    return snap_file_name(dir, applied_index, SNAP_FILE_TMP_SUFFIX, path, path_size);
}

bool snapshot_file_parse_name(const char *name, u64 *applied_index, bool *is_tmp)
{
    ASSERT(name != NULL && applied_index != NULL && is_tmp != NULL);
    size_t prefix = sizeof(SNAP_FILE_PREFIX) - 1;
    if (strncmp(name, SNAP_FILE_PREFIX, prefix) != 0) return false;
    u64 v = 0;
    for (size_t i = 0; i < SNAP_FILE_DIGITS; i++) {
        char c = name[prefix + i];
        if (c < '0' || c > '9') return false;
        u64 d = (u64)(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false; /* more than 2^64 - 1 */
        v = v * 10 + d;
    }
    const char *rest = name + prefix + SNAP_FILE_DIGITS;
    if (strcmp(rest, SNAP_FILE_SUFFIX) == 0) {
        *is_tmp = false;
    } else if (strcmp(rest, SNAP_FILE_TMP_SUFFIX) == 0) {
        *is_tmp = true;
    } else {
        return false;
    }
    *applied_index = v;
    return true;
}

/* ---- listing ------------------------------------------------------------------ */

/* Calls fn for every snapshot name in dir; bounded by the directory. */
typedef void (*snap_file_fn)(void *ctx, const char *name, u64 applied_index, bool is_tmp);

static int snap_file_list(const char *dir, snap_file_fn fn, void *ctx)
{
    DIR *d = opendir(dir);
    if (d == NULL) return -errno;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (e == NULL) break;
        u64 index;
        bool is_tmp;
        if (snapshot_file_parse_name(e->d_name, &index, &is_tmp)) fn(ctx, e->d_name, index, is_tmp);
    }
    int rc = errno != 0 ? -errno : KEEL_OK;
    closedir(d);
    return rc;
}

struct snap_file_latest {
    u64 below;
    u64 best;
    bool found;
};

static void snap_file_latest_fn(void *ctx, const char *name, u64 applied_index, bool is_tmp)
{
    struct snap_file_latest *l = ctx;
    (void)name;
    if (is_tmp || applied_index >= l->below) return;
    if (!l->found || applied_index > l->best) l->best = applied_index;
    l->found = true;
}

int snapshot_file_find_latest(const char *dir, u64 below, u64 *applied_index, bool *found)
{
    ASSERT(dir != NULL && applied_index != NULL && found != NULL);
    struct snap_file_latest l = {.below = below};
    int rc = snap_file_list(dir, snap_file_latest_fn, &l);
    *found = rc == KEEL_OK && l.found;
    *applied_index = *found ? l.best : 0;
    ASSERT_IMPLIES(*found, *applied_index < below);
    return rc;
}

static int snap_file_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int rc = fsync(fd) == 0 ? KEEL_OK : -errno;
    close(fd);
    return rc;
}

struct snap_file_remove {
    const char *dir;
    u64 keep;
    u32 removed;
    int rc;
};

static void snap_file_remove_fn(void *ctx, const char *name, u64 applied_index, bool is_tmp)
{
    struct snap_file_remove *r = ctx;
    (void)is_tmp;
    if (applied_index >= r->keep) return;
    char path[SNAPSHOT_FILE_PATH_SIZE_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", r->dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        r->rc = KEEL_EINVALID;
        return;
    }
    if (unlink(path) == 0) {
        r->removed++;
    } else if (errno != ENOENT && r->rc == KEEL_OK) {
        r->rc = -errno;
    }
}

int snapshot_file_remove_older(const char *dir, u64 keep_applied_index, u32 *removed)
{
    ASSERT(dir != NULL);
    struct snap_file_remove r = {.dir = dir, .keep = keep_applied_index};
    int rc = snap_file_list(dir, snap_file_remove_fn, &r);
    if (rc == KEEL_OK) rc = r.rc;
    if (rc == KEEL_OK && r.removed > 0) rc = snap_file_sync_dir(dir);
    if (removed != NULL) *removed = r.removed;
    return rc;
}

/* ---- load ---------------------------------------------------------------------- */

/* Reads exactly len bytes at the file's position; short = end of file. */
static int snap_file_read(int fd, u8 *dst, size_t len, size_t *got)
{
    *got = 0;
    while (*got < len) { /* bounded: each pass reads >= 1 byte or stops */
        ssize_t n = read(fd, dst + *got, len - *got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n == 0) break;
        *got += (size_t)n;
    }
    ASSERT(*got <= len);
    return KEEL_OK;
}

struct snap_file_reader {
    int fd;
    u64 left; /* bytes of the file not read yet */
    u8 *buf;
    size_t cap;
};

/* Reads the next chunk into r->buf; *len 0 at the end of the file. A torn
 * chunk is KEEL_ECORRUPT with *why set. */
static int snap_file_next_chunk(struct snap_file_reader *r, size_t *len, const char **why)
{
    *len = 0;
    if (r->left == 0) return KEEL_OK;
    size_t got;
    if (r->left < SNAPSHOT_FRAME_SIZE) {
        *why = "snapshot: truncated inside a chunk frame";
        return KEEL_ECORRUPT;
    }
    int rc = snap_file_read(r->fd, r->buf, SNAPSHOT_FRAME_SIZE, &got);
    if (rc != KEEL_OK) return rc;
    size_t n = snapshot_chunk_size(r->buf, got);
    if (got < SNAPSHOT_FRAME_SIZE || n > r->left) {
        *why = "snapshot: truncated inside a chunk";
        return KEEL_ECORRUPT;
    }
    if (n > r->cap) {
        u8 *p = realloc(r->buf, n);
        if (p == NULL) return KEEL_ENOMEM;
        r->buf = p;
        r->cap = n;
    }
    rc = snap_file_read(r->fd, r->buf + SNAPSHOT_FRAME_SIZE, n - SNAPSHOT_FRAME_SIZE, &got);
    if (rc != KEEL_OK) return rc;
    if (got != n - SNAPSHOT_FRAME_SIZE) {
        *why = "snapshot: the file shrank while read";
        return KEEL_ECORRUPT;
    }
    r->left -= n;
    *len = n;
    return KEEL_OK;
}

/* Feeds every chunk of the open file to the loader. */
static int snap_file_feed_all(struct snap_file_reader *r, struct snapshot_loader *l,
                              const char **why)
{
    for (;;) { /* bounded by the file: every chunk consumes >= 24 bytes of it */
        size_t n = 0;
        int rc = snap_file_next_chunk(r, &n, why);
        if (rc != KEEL_OK || n == 0) return rc;
        rc = snapshot_loader_feed(l, span_make(r->buf, n));
        if (rc != KEEL_OK) {
            *why = snapshot_loader_error(l);
            return rc;
        }
    }
}

static int snap_file_load_fd(const struct mvcc_config *config, int fd, u64 size, struct mvcc **out,
                             u64 *applied_index, const char **why)
{
    struct snap_file_reader r = {.fd = fd, .left = size, .cap = SNAPSHOT_FRAME_SIZE};
    r.buf = malloc(r.cap);
    struct snapshot_loader l;
    int rc = snapshot_loader_init(&l, config);
    if (r.buf == NULL) rc = KEEL_ENOMEM;
    if (rc != KEEL_OK) *why = "snapshot: cannot allocate the store or a chunk buffer";
    if (rc == KEEL_OK) rc = snap_file_feed_all(&r, &l, why);
    if (rc == KEEL_OK) {
        rc = snapshot_loader_finish(&l, out);
        if (rc != KEEL_OK) *why = snapshot_loader_error(&l);
    }
    if (rc == KEEL_OK) *applied_index = l.applied_index;
    snapshot_loader_deinit(&l);
    free(r.buf);
    ASSERT((rc == KEEL_OK) == (*out != NULL));
    return rc;
}

int snapshot_file_load(const struct mvcc_config *config, const char *path, struct mvcc **out,
                       u64 *applied_index, char *err, size_t err_len)
{
    ASSERT(config != NULL && path != NULL);
    ASSERT(out != NULL && applied_index != NULL);
    *out = NULL;
    *applied_index = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return snap_file_err(err, err_len, -e, "%s: open: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return snap_file_err(err, err_len, -e, "%s: fstat: %s", path, strerror(e));
    }
    const char *why = NULL;
    int rc = snap_file_load_fd(config, fd, (u64)st.st_size, out, applied_index, &why);
    close(fd);
    if (rc < 0) return snap_file_err(err, err_len, rc, "%s: read: %s", path, strerror(-rc));
    if (rc != KEEL_OK) return snap_file_err(err, err_len, rc, "%s: %s", path, why);
    return KEEL_OK;
}

int snapshot_file_load_latest(const struct mvcc_config *config, const char *dir, struct mvcc **out,
                              u64 *applied_index, u32 *skipped, char *err, size_t err_len)
{
    ASSERT(config != NULL && dir != NULL);
    ASSERT(out != NULL && applied_index != NULL);
    *out = NULL;
    *applied_index = 0;
    if (err != NULL && err_len > 0) err[0] = 0;
    u32 bad = 0;
    int rc = KEEL_OK;
    /* Bounded by the snapshot files in dir: `below` falls with every pass. */
    for (u64 below = UINT64_MAX;;) {
        bool found = false;
        u64 index = 0;
        rc = snapshot_file_find_latest(dir, below, &index, &found);
        if (rc != KEEL_OK) {
            rc = snap_file_err(err, err_len, rc, "%s: list: %s", dir, strerror(-rc));
            break;
        }
        if (!found) {
            if (bad > 0) rc = KEEL_ECORRUPT; /* err says why the last one failed */
            break;
        }
        char path[SNAPSHOT_FILE_PATH_SIZE_MAX];
        rc = snapshot_file_final_name(dir, index, path, sizeof(path));
        if (rc == KEEL_OK) rc = snapshot_file_load(config, path, out, applied_index, err, err_len);
        if (rc != KEEL_ECORRUPT) break;
        fprintf(stderr, "snapshot_file: skipping %s\n", err != NULL ? err : path);
        bad++;
        below = index;
    }
    if (skipped != NULL) *skipped = bad;
    ASSERT((rc == KEEL_OK) || *out == NULL);
    return rc;
}

/* ---- write ------------------------------------------------------------------------ */

static int snap_file_write_all(int fd, const u8 *src, size_t len)
{
    size_t done = 0;
    while (done < len) { /* bounded: each pass writes >= 1 byte or fails */
        ssize_t n = write(fd, src + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        done += (size_t)n;
    }
    ASSERT(done == len);
    return KEEL_OK;
}

/* Steps 1, 3 and 4 of the protocol into the open .tmp. */
static int snap_file_write_chunks(struct mvcc *m, int fd, u64 shard_id, u64 applied_index,
                                  u32 keys_per_chunk_max, u8 *buf, size_t bytes_max)
{
    struct snapshot_writer w;
    int rc = snapshot_writer_init(&w, m, shard_id, applied_index, keys_per_chunk_max);
    /* Bounded by the store: every call moves the writer's cursor on. */
    while (rc == KEEL_OK && !snapshot_writer_done(&w)) {
        size_t n = 0;
        rc = snapshot_writer_next(&w, buf, bytes_max, &n);
        if (rc == KEEL_OK) rc = snap_file_write_all(fd, buf, n);
    }
    snapshot_writer_deinit(&w);
    if (rc == KEEL_OK && fdatasync(fd) != 0) rc = -errno;
    return rc;
}

int snapshot_file_write(struct mvcc *m, const char *dir, u64 shard_id, u64 applied_index,
                        u32 keys_per_chunk_max, size_t chunk_bytes_max, char *err, size_t err_len)
{
    ASSERT(m != NULL && dir != NULL);
    ASSERT(keys_per_chunk_max >= 1);
    char tmp[SNAPSHOT_FILE_PATH_SIZE_MAX], final[SNAPSHOT_FILE_PATH_SIZE_MAX];
    if (snapshot_file_tmp_name(dir, applied_index, tmp, sizeof(tmp)) != KEEL_OK ||
        snapshot_file_final_name(dir, applied_index, final, sizeof(final)) != KEEL_OK) {
        return snap_file_err(err, err_len, KEEL_EINVALID, "%s: directory path too long", dir);
    }
    if (chunk_bytes_max == 0) chunk_bytes_max = snapshot_chunk_size_min(&m->config);
    u8 *buf = malloc(chunk_bytes_max);
    if (buf == NULL) return snap_file_err(err, err_len, KEEL_ENOMEM, "%s: chunk buffer", tmp);
    int fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(buf);
        return snap_file_err(err, err_len, -e, "%s: create: %s", tmp, strerror(e));
    }
    int rc = snap_file_write_chunks(m, fd, shard_id, applied_index, keys_per_chunk_max, buf,
                                    chunk_bytes_max);
    free(buf);
    if (close(fd) != 0 && rc == KEEL_OK) rc = -errno;
    if (rc == KEEL_OK && rename(tmp, final) != 0) rc = -errno;
    if (rc == KEEL_OK) rc = snap_file_sync_dir(dir);
    if (rc == KEEL_OK) return KEEL_OK;
    unlink(tmp);
    if (rc < 0) return snap_file_err(err, err_len, rc, "%s: %s", tmp, strerror(-rc));
    return snap_file_err(err, err_len, rc, "%s: %s", tmp, keel_err_str(rc));
}
