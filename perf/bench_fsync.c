/*
 * bench_fsync.c — the raw write+fdatasync latency probe (bench_fsync.h).
 */
#include "perf/bench_fsync.h"

#include "core/assert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FSYNC_FILE_BYTES (BENCH_FSYNC_SAMPLES_MAX * BENCH_FSYNC_WRITE_BYTES)

static u64 probe_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u64)ts.tv_sec * 1000000000u + (u64)ts.tv_nsec;
}

/* Writes the whole file once and syncs it, so the timed writes overwrite allocated,
 * written blocks and fdatasync has no metadata to flush (a preallocated WAL's case). */
static int probe_prefill(int fd)
{
    static const char zeros[4096];
    for (u32 off = 0; off < FSYNC_FILE_BYTES; off += sizeof(zeros)) {
        size_t n = FSYNC_FILE_BYTES - off < sizeof(zeros) ? FSYNC_FILE_BYTES - off : sizeof(zeros);
        if (pwrite(fd, zeros, n, off) != (ssize_t)n) return -1;
    }
    return fsync(fd);
}

static int probe_run(int fd, struct bench_hist *h)
{
    char block[BENCH_FSYNC_WRITE_BYTES];
    memset(block, 'k', sizeof(block));
    u64 start_ns = probe_now_ns();
    u64 end_ns = start_ns + (u64)BENCH_FSYNC_TIME_MAX_S * 1000000000u;
    for (u32 i = 0; i < BENCH_FSYNC_SAMPLES_MAX; i++) {
        block[0] = (char)('a' + i % 26);
        u64 t0 = probe_now_ns();
        if (pwrite(fd, block, sizeof(block), (off_t)i * BENCH_FSYNC_WRITE_BYTES) !=
            (ssize_t)sizeof(block))
            return -1;
        if (fdatasync(fd) != 0) return -1;
        u64 t1 = probe_now_ns();
        bench_hist_record(h, t1 - t0);
        if (t1 >= end_ns) break;
    }
    ASSERT(h->count >= 1);
    return 0;
}

int bench_fsync_probe(const char *dir, struct bench_hist *h, char *err, size_t err_size)
{
    ASSERT(dir != NULL && h != NULL && err != NULL);
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/.keelbench-fsync-probe.%ld", dir, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(path)) {
        snprintf(err, err_size, "--fsync-probe %s: path too long", dir);
        return -1;
    }
    int fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, err_size, "--fsync-probe: cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    const char *step = "write/fsync (prefill)";
    int rc = probe_prefill(fd);
    if (rc == 0) {
        step = "write/fdatasync";
        rc = probe_run(fd, h);
    }
    int saved = errno;
    close(fd);
    unlink(path);
    if (rc != 0) {
        snprintf(err, err_size, "--fsync-probe: %s of %s failed: %s", step, path, strerror(saved));
        return -1;
    }
    return 0;
}
