/*
 * test_wal.c — the WAL over both disks: round trips on disk_posix in a temp
 * directory; rollover, torn and garbage tails, mid-log corruption, suffix
 * truncation, prefix drop and failure injection on disk_mem; a seeded
 * crash test; the asynchronous flush (appends while a flush is in flight,
 * a failed end, a crash between begin and end after any prefix of its
 * ops) and a seeded interleaving of appends, flush ops, failures, crashes
 * and reopens. Randomized tests take KEEL_SEED (and KEEL_OPS) from the
 * environment, else a fresh seed, and print the seed they use:
 *
 *   KEEL_SEED=7 KEEL_OPS=20000 build/tests/test_wal --filter wal/crash_random
 *   KEEL_SEED=7 KEEL_OPS=20000 build/tests/test_wal --filter wal/async_random
 */
#include "core/wal.h"
#include "core/wal_format.h"

#include "disk_mem.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DIR_MEM         "/wal"
#define PAYLOAD_MAX     300
#define RECORDS_MAX     4096
#define RECORD_SIZE_MAX (16 + 304 + 8) /* wal_record_size(PAYLOAD_MAX) */

static_assert(RECORD_SIZE_MAX == 328, "16 + align8(300) + 8");

static u64 rng_state;

static u64 rng_next(void)
{
    u64 z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static u64 env_u64(const char *name, u64 fallback)
{
    const char *env = getenv(name);
    return env ? strtoull(env, NULL, 0) : fallback;
}

static u64 rng_seed(const char *test)
{
    u64 seed = env_u64("KEEL_SEED", (u64)time(NULL) ^ ((u64)getpid() << 32));
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
    rng_state = seed;
    return seed;
}

static struct wal_config config_small(void)
{
    struct wal_config c = {
        .segment_size_bytes = 4096,
        .payload_size_max = PAYLOAD_MAX,
        .batch_bytes_max = 2048,
        .segments_max = 64,
    };
    return c;
}

/* The payload of a record: its length and bytes follow from (index, salt). */
static size_t payload_make(u64 index, u64 salt, u8 *out)
{
    u64 h = index * 0x9E3779B97F4A7C15ull ^ salt;
    size_t len = (size_t)(h % (PAYLOAD_MAX + 1));
    for (size_t i = 0; i < len; i++) out[i] = (u8)((h >> (i % 56)) + i);
    return len;
}

static u64 append_one(struct wal *w, u64 salt)
{
    u8 p[PAYLOAD_MAX];
    size_t len = payload_make(w->last_index + 1, salt, p);
    u64 index = 0;
    u16 type = (u16)(1 + w->last_index % 7);
    int rc = wal_append(w, type, span_make(p, len), &index);
    if (rc == KEEL_ENOMEM) { /* the batch is full: flush first */
        u64 durable = 0;
        cr_assert_eq(wal_flush(w, &durable), 0);
        rc = wal_append(w, type, span_make(p, len), &index);
    }
    cr_assert_eq(rc, 0);
    return index;
}

static void flush_ok(struct wal *w)
{
    u64 durable = 0;
    cr_assert_eq(wal_flush(w, &durable), 0);
    cr_assert_eq(durable, w->last_index);
}

/* Appends n records, flushing every `per_flush` of them and at the end. */
static void append_n(struct wal *w, u64 n, u64 per_flush, u64 salt)
{
    for (u64 i = 0; i < n; i++) {
        append_one(w, salt);
        if ((i + 1) % per_flush == 0) flush_ok(w);
    }
    flush_ok(w);
}

/* Checks that records [from, to] read back with salt's payloads and types. */
static void expect_records(struct wal *w, u64 from, u64 to, u64 salt)
{
    struct wal_iter it;
    u8 buf[RECORD_SIZE_MAX];
    u8 want[PAYLOAD_MAX];
    cr_assert_eq(wal_iter_init(&it, w, from, buf, sizeof(buf)), 0);
    for (u64 i = from; i <= to; i++) {
        u16 type = 0;
        u64 index = 0;
        struct span p;
        cr_assert_eq(wal_iter_next(&it, &type, &index, &p), 0, "record %llu",
                     (unsigned long long)i);
        cr_assert_eq(index, i);
        cr_assert_eq(type, 1 + (i - 1) % 7);
        size_t len = payload_make(i, salt, want);
        cr_assert_eq(p.len, len, "record %llu length", (unsigned long long)i);
        cr_assert(memcmp(p.ptr, want, len) == 0, "record %llu bytes", (unsigned long long)i);
    }
    u16 type;
    u64 index;
    struct span p;
    if (to == wal_durable_index(w)) cr_assert_eq(wal_iter_next(&it, &type, &index, &p), 1);
    wal_iter_finish(&it);
}

struct cuts {
    int count;
    u64 seq, offset, last_index;
};

static void on_cut(void *ctx, u64 seq, u64 offset, u64 last_index)
{
    struct cuts *c = ctx;
    c->count++;
    c->seq = seq;
    c->offset = offset;
    c->last_index = last_index;
}

static int open_mem(struct wal *w, struct disk_mem *d, struct cuts *cuts)
{
    struct wal_config c = config_small();
    c.on_cut = on_cut;
    c.on_cut_ctx = cuts;
    return wal_open(w, &d->base, DIR_MEM, &c);
}

static struct disk_mem_file *segment_file(struct disk_mem *d, u64 seq)
{
    char path[DISK_PATH_SIZE_MAX];
    snprintf(path, sizeof(path), DIR_MEM "/" WAL_SEGMENT_NAME_FORMAT, (unsigned long long)seq);
    struct disk_mem_file *f = disk_mem_file(d, path);
    cr_assert_not_null(f, "%s", path);
    return f;
}

static void file_damage(struct disk_mem_file *f, u64 at, const u8 *bytes, u64 n)
{
    cr_assert_leq(at + n, f->size);
    memcpy(f->data + at, bytes, n);
    memcpy(f->synced + at, bytes, n);
}

/* ---- disk_posix ------------------------------------------------------------ */

static u32 dir_count(const char *dir)
{
    DIR *h = opendir(dir);
    cr_assert_not_null(h);
    u32 n = 0;
    for (struct dirent *e = readdir(h); e != NULL; e = readdir(h)) n += e->d_name[0] != '.';
    closedir(h);
    return n;
}

static void dir_remove(const char *dir)
{
    DIR *h = opendir(dir);
    char path[DISK_PATH_SIZE_MAX + 256];
    for (struct dirent *e = readdir(h); e != NULL; e = readdir(h)) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(h);
    rmdir(dir);
}

Test(wal, posix_round_trip)
{
    char dir[] = "/tmp/keel_wal_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct disk_posix disk;
    disk_posix_init(&disk, NULL);
    struct wal_config c = config_small();
    struct wal w;
    cr_assert_eq(wal_open(&w, &disk.base, dir, &c), 0);
    cr_assert_eq(wal_last_index(&w), 0);
    append_n(&w, 200, 5, 11);
    cr_assert_eq(wal_durable_index(&w), 200);
    cr_assert_gt(dir_count(dir), 1, "200 records roll over 4 KiB segments");
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &disk.base, dir, &c), 0);
    cr_assert_eq(wal_last_index(&w), 200);
    expect_records(&w, 1, 200, 11);
    expect_records(&w, 137, 200, 11);
    append_n(&w, 30, 7, 11);
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &disk.base, dir, &c), 0);
    expect_records(&w, 1, 230, 11);
    wal_close(&w);
    dir_remove(dir);
}

static int fdatasync_eio(int fd)
{
    (void)fd;
    errno = EIO;
    return -1;
}

Test(wal, posix_fdatasync_fails)
{
    char dir[] = "/tmp/keel_wal_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct disk_posix_syscalls sys = disk_posix_syscalls_default;
    struct disk_posix disk;
    disk_posix_init(&disk, &sys);
    struct wal_config c = config_small();
    struct wal w;
    cr_assert_eq(wal_open(&w, &disk.base, dir, &c), 0);
    append_n(&w, 3, 3, 5);
    sys.fdatasync = fdatasync_eio;
    append_one(&w, 5);
    u64 durable = 99;
    cr_assert_eq(wal_flush(&w, &durable), -EIO);
    cr_assert_eq(durable, 99, "untouched on failure");
    cr_assert_eq(wal_durable_index(&w), 3);
    u64 index;
    cr_assert_eq(wal_append(&w, 1, span_make("x", 1), &index), -EIO, "poisoned");
    wal_close(&w);
    sys.fdatasync = disk_posix_syscalls_default.fdatasync;
    cr_assert_eq(wal_open(&w, &disk.base, dir, &c), 0);
    cr_assert_geq(wal_last_index(&w), 3);
    expect_records(&w, 1, 3, 5);
    wal_close(&w);
    dir_remove(dir);
}

/* ---- segments and batches --------------------------------------------------- */

Test(wal, rollover_and_limits)
{
    struct disk_mem d;
    disk_mem_init(&d, 1);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    u8 big[PAYLOAD_MAX + 1] = {0};
    u64 index;
    cr_assert_eq(wal_append(&w, 1, span_make(big, sizeof(big)), &index), KEEL_EVALUE_TOO_LARGE);
    cr_assert_eq(wal_append(&w, 0, span_make(big, 1), &index), KEEL_EINVALID);
    /* The batch holds 2048 bytes: 328-byte records fit six at a time. */
    int rc = 0;
    u32 appended = 0;
    while ((rc = wal_append(&w, 1, span_make(big, PAYLOAD_MAX), &index)) == 0) appended++;
    cr_assert_eq(rc, KEEL_ENOMEM);
    cr_assert_eq(appended, 6);
    cr_assert_eq(wal_durable_index(&w), 0, "nothing durable before the flush");
    u64 syncs = d.fdatasync_count;
    flush_ok(&w);
    cr_assert_eq(d.fdatasync_count, syncs + 1, "one fdatasync per flush");
    wal_close(&w);
    disk_mem_free(&d);

    disk_mem_init(&d, 1);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 300, 3, 2);
    cr_assert_gt(w.segment_count, 5);
    cr_assert_eq(disk_mem_count(&d, DIR_MEM), w.segment_count);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(cuts.count, 0);
    expect_records(&w, 1, 300, 2);
    wal_close(&w);
    disk_mem_free(&d);
}

/* ---- torn tails and corruption ---------------------------------------------- */

/* Builds 20 records, one flush each, then record 21 alone in a flush; returns
 * the segment and offset of record 21. */
static void build_21(struct disk_mem *d, u64 *seq, u64 *offset, u64 *size)
{
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, d, &cuts), 0);
    append_n(&w, 20, 1, 3);
    append_one(&w, 3);
    *seq = w.segments[w.segment_count - 1].seq;
    const struct wal_batch *b = &w.batches[w.open];
    *offset = w.tail_offset - wal_record_size(load_u32_le(b->buf + b->last_offset));
    *size = w.tail_offset - *offset;
    flush_ok(&w);
    wal_close(&w);
}

Test(wal, torn_last_record_every_cut)
{
    u64 seq = 0, off = 0, size = 0;
    struct disk_mem probe;
    disk_mem_init(&probe, 1);
    build_21(&probe, &seq, &off, &size);
    disk_mem_free(&probe);
    for (u64 cut = 0; cut < size; cut++) {
        for (int garbage = 0; garbage < 2; garbage++) {
            struct disk_mem d;
            disk_mem_init(&d, cut);
            build_21(&d, &seq, &off, &size);
            u8 tail[RECORD_SIZE_MAX];
            for (u64 i = 0; i < size - cut; i++) tail[i] = garbage ? (u8)(i * 131 + cut) : 0;
            file_damage(segment_file(&d, seq), off + cut, tail, size - cut);
            struct cuts cuts = {0};
            struct wal w;
            cr_assert_eq(open_mem(&w, &d, &cuts), 0, "cut %llu", (unsigned long long)cut);
            cr_assert_eq(wal_last_index(&w), 20, "cut %llu", (unsigned long long)cut);
            cr_assert_eq(cuts.count, cut > 0 || garbage ? 1 : 0);
            expect_records(&w, 1, 20, 3);
            append_n(&w, 2, 1, 3);
            wal_close(&w);
            cr_assert_eq(open_mem(&w, &d, &cuts), 0);
            expect_records(&w, 1, 22, 3);
            wal_close(&w);
            disk_mem_free(&d);
        }
    }
}

Test(wal, garbage_tail)
{
    rng_seed("wal/garbage_tail");
    struct disk_mem d;
    disk_mem_init(&d, 1);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 10, 2, 4);
    u64 seq = w.segments[w.segment_count - 1].seq;
    u64 off = w.tail_offset;
    wal_close(&w);
    u8 junk[700];
    for (size_t i = 0; i < sizeof(junk); i++) junk[i] = (u8)rng_next();
    struct disk_mem_file *f = segment_file(&d, seq);
    file_damage(f, off, junk, KEEL_MIN(sizeof(junk), f->size - off));
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(cuts.count, 1);
    cr_assert_eq(cuts.seq, seq);
    cr_assert_eq(cuts.offset, off);
    cr_assert_eq(wal_last_index(&w), 10);
    expect_records(&w, 1, 10, 4);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(cuts.count, 1, "the cut zeroed the tail: the second open is clean");
    wal_close(&w);
    disk_mem_free(&d);
}

/* Flips one byte of record `target` (each record flushed alone). */
static void corrupt_record(struct disk_mem *d, u64 target, u64 *seq, u64 *offset)
{
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, d, &cuts), 0);
    for (u64 i = 1; i <= 40; i++) {
        u64 before = w.tail_offset;
        append_one(&w, 9);
        if (i == target) {
            *seq = w.segments[w.segment_count - 1].seq;
            *offset = w.tail_offset < before ? WAL_SEGMENT_HEADER_SIZE : before;
        }
        flush_ok(&w);
    }
    wal_close(&w);
    struct disk_mem_file *f = segment_file(d, *seq);
    u8 b = (u8)(f->data[*offset + 9] ^ 0x40);
    file_damage(f, *offset + 9, &b, 1);
}

Test(wal, corruption_in_the_middle)
{
    u64 targets[] = {1, 3, 17, 39};
    for (size_t t = 0; t < KEEL_ARRAY_LEN(targets); t++) {
        struct disk_mem d;
        disk_mem_init(&d, 1);
        u64 seq = 0, off = 0;
        corrupt_record(&d, targets[t], &seq, &off);
        struct cuts cuts = {0};
        struct wal w;
        cr_assert_eq(open_mem(&w, &d, &cuts), KEEL_ECORRUPT, "record %llu",
                     (unsigned long long)targets[t]);
        cr_assert_eq(w.corrupt_seq, seq);
        cr_assert_eq(w.corrupt_offset, off);
        cr_assert_eq(cuts.count, 0, "nothing cut");
        cr_assert_eq(open_mem(&w, &d, &cuts), KEEL_ECORRUPT, "files left as they were");
        disk_mem_free(&d);
    }
}

/* A damaged record inside the last flush, with whole records of that flush
 * after it, is what a torn flush looks like: cut, not corruption. */
Test(wal, damage_inside_the_last_flush_is_a_torn_tail)
{
    struct disk_mem d;
    disk_mem_init(&d, 1);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 5, 5, 6);
    append_one(&w, 6);
    u64 seq = w.segments[w.segment_count - 1].seq;
    u64 off = w.tail_offset;
    append_one(&w, 6);
    append_one(&w, 6);
    flush_ok(&w);
    wal_close(&w);
    struct disk_mem_file *f = segment_file(&d, seq);
    u8 b = (u8)(f->data[off + 9] ^ 1);
    file_damage(f, off + 9, &b, 1);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(cuts.count, 1);
    cr_assert_eq(wal_last_index(&w), 6);
    expect_records(&w, 1, 6, 6);
    wal_close(&w);
    disk_mem_free(&d);
}

/* ---- truncate and drop ------------------------------------------------------ */

Test(wal, truncate_suffix_then_append)
{
    struct disk_mem d;
    disk_mem_init(&d, 1);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 120, 3, 7);
    u32 segments = w.segment_count;
    cr_assert_eq(wal_truncate_suffix(&w, 200), KEEL_EINVALID);
    cr_assert_eq(wal_truncate_suffix(&w, 121), 0, "nothing to remove");
    cr_assert_eq(wal_truncate_suffix(&w, 30), 0);
    cr_assert_eq(wal_last_index(&w), 29);
    cr_assert_eq(wal_durable_index(&w), 29);
    cr_assert_lt(w.segment_count, segments);
    cr_assert_eq(disk_mem_count(&d, DIR_MEM), w.segment_count);
    /* Salt 8 gives different lengths, so stale bytes would misalign. */
    append_n(&w, 50, 4, 8);
    cr_assert_eq(wal_last_index(&w), 79);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(cuts.count, 0);
    cr_assert_eq(wal_last_index(&w), 79);
    expect_records(&w, 1, 29, 7);
    expect_records(&w, 30, 79, 8);
    cr_assert_eq(wal_truncate_suffix(&w, 1), 0, "everything");
    cr_assert_eq(wal_last_index(&w), 0);
    append_n(&w, 3, 1, 9);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    expect_records(&w, 1, 3, 9);
    wal_close(&w);
    disk_mem_free(&d);
}

Test(wal, drop_prefix_removes_whole_segments)
{
    struct disk_mem d;
    disk_mem_init(&d, 1);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 200, 3, 10);
    u32 segments = w.segment_count;
    cr_assert_eq(wal_drop_prefix(&w, 0), 0);
    cr_assert_eq(w.segment_count, segments);
    cr_assert_eq(wal_drop_prefix(&w, 120), 0);
    u64 first = wal_first_index(&w);
    cr_assert_gt(first, 1);
    cr_assert_leq(first, 121, "no record above 120 dropped");
    cr_assert_lt(w.segment_count, segments);
    cr_assert_eq(disk_mem_count(&d, DIR_MEM), w.segment_count);
    expect_records(&w, first, 200, 10);
    cr_assert_eq(wal_drop_prefix(&w, 1000), 0);
    cr_assert_eq(w.segment_count, 1, "the tail segment stays");
    append_n(&w, 5, 2, 10);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(wal_first_index(&w), w.segments[0].first_index);
    expect_records(&w, wal_first_index(&w), 205, 10);
    wal_close(&w);
    disk_mem_free(&d);
}

/* ---- failure injection ------------------------------------------------------ */

Test(wal, fdatasync_fails_records_not_durable)
{
    struct disk_mem d;
    disk_mem_init(&d, 5);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 4, 2, 12);
    append_one(&w, 12);
    append_one(&w, 12);
    disk_mem_fail(&d, DISK_MEM_OP_FDATASYNC, 1, -EIO);
    u64 durable = 0;
    cr_assert_eq(wal_flush(&w, &durable), -EIO);
    cr_assert_eq(wal_durable_index(&w), 4);
    cr_assert_eq(wal_flush(&w, &durable), -EIO, "sticky");
    u8 buf[RECORD_SIZE_MAX];
    struct wal_iter it;
    cr_assert_eq(wal_iter_init(&it, &w, 5, buf, sizeof(buf)), -EIO);
    disk_mem_crash(&d);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_geq(wal_last_index(&w), 4);
    expect_records(&w, 1, wal_last_index(&w), 12);
    wal_close(&w);
    disk_mem_free(&d);
}

Test(wal, pwrite_fails_on_rollover)
{
    struct disk_mem d;
    disk_mem_init(&d, 5);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    u32 segments = w.segment_count;
    while (w.segment_count == segments) append_n(&w, 1, 1, 13);
    u64 durable = wal_durable_index(&w);
    while (w.segment_count == segments + 1) append_n(&w, 1, 1, 13);
    durable = wal_durable_index(&w);
    /* Fill the tail segment so the next batch spans two segments. */
    while (w.tail_offset + wal_record_size(PAYLOAD_MAX) <= 4096) append_one(&w, 13), flush_ok(&w);
    durable = wal_durable_index(&w);
    append_one(&w, 13);
    append_one(&w, 13);
    append_one(&w, 13);
    disk_mem_fail(&d, DISK_MEM_OP_PWRITE, 2, -ENOSPC);
    u64 got = 0;
    int rc = wal_flush(&w, &got);
    cr_assert(rc == -ENOSPC || rc == 0, "rc %d", rc);
    if (rc == 0) cr_assert_eq(w.batches[w.open].run_count, 0);
    if (rc != 0) cr_assert_eq(wal_durable_index(&w), durable);
    disk_mem_crash(&d);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_geq(wal_last_index(&w), durable);
    expect_records(&w, 1, wal_last_index(&w), 13);
    wal_close(&w);
    disk_mem_free(&d);
}

/* ---- randomized crashes ----------------------------------------------------- */

struct model {
    u64 salt[RECORDS_MAX]; /* salt of record i at i % RECORDS_MAX */
    u64 last, durable, first;
};

static void crash_append(struct wal *w, struct model *m)
{
    if (m->last + 1 - m->first >= RECORDS_MAX) return;
    u64 salt = rng_next();
    u8 p[PAYLOAD_MAX];
    size_t len = payload_make(m->last + 1, salt, p);
    u64 index = 0;
    int rc = wal_append(w, (u16)(1 + m->last % 7), span_make(p, len), &index);
    if (rc == KEEL_ENOMEM) {
        flush_ok(w);
        m->durable = m->last;
        rc = wal_append(w, (u16)(1 + m->last % 7), span_make(p, len), &index);
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(index, m->last + 1);
    m->salt[index % RECORDS_MAX] = salt;
    m->last = index;
}

/* Every record from the first to the WAL's last is the model's, byte for byte. */
static void crash_verify(struct wal *w, struct model *m)
{
    u64 last = wal_last_index(w);
    cr_assert_geq(last, m->durable, "lost a durable record (last %llu, durable %llu)",
                  (unsigned long long)last, (unsigned long long)m->durable);
    cr_assert_leq(last, m->last);
    cr_assert_eq(wal_first_index(w), m->first);
    struct wal_iter it;
    u8 buf[RECORD_SIZE_MAX];
    u8 want[PAYLOAD_MAX];
    cr_assert_eq(wal_iter_init(&it, w, m->first, buf, sizeof(buf)), 0);
    for (u64 i = m->first; i <= last; i++) {
        u16 type;
        u64 index;
        struct span p;
        cr_assert_eq(wal_iter_next(&it, &type, &index, &p), 0);
        size_t len = payload_make(i, m->salt[i % RECORDS_MAX], want);
        cr_assert_eq(index, i);
        cr_assert_eq(type, 1 + (i - 1) % 7);
        cr_assert(p.len == len && memcmp(p.ptr, want, len) == 0, "record %llu altered",
                  (unsigned long long)i);
    }
    wal_iter_finish(&it);
    m->last = m->durable = last;
}

static struct {
    u64 crashes, cuts, beyond_durable;
} crash_stats;

static void crash_now(struct wal *w, struct disk_mem *d, struct model *m, bool sync_fails)
{
    if (sync_fails && w->batches[w->open].run_count > 0) {
        u64 durable;
        disk_mem_fail(d, DISK_MEM_OP_FDATASYNC, 1, -EIO);
        cr_assert_eq(wal_flush(w, &durable), -EIO);
    }
    disk_mem_crash(d);
    wal_close(w);
    struct cuts cuts = {0};
    cr_assert_eq(open_mem(w, d, &cuts), 0);
    cr_assert(wal_check(w));
    crash_stats.crashes++;
    crash_stats.cuts += (u64)cuts.count;
    crash_stats.beyond_durable += wal_last_index(w) > m->durable;
    crash_verify(w, m);
}

static void crash_step(struct wal *w, struct disk_mem *d, struct model *m)
{
    u64 r = rng_next() % 100;
    if (r < 70) {
        crash_append(w, m);
    } else if (r < 85) {
        flush_ok(w);
        m->durable = m->last;
    } else if (r < 92) {
        crash_now(w, d, m, rng_next() % 2 == 0);
    } else if (r < 96 && w->batches[w->open].run_count == 0 && m->last >= m->first) {
        u64 from = m->first + rng_next() % (m->last - m->first + 2);
        /* Sometimes the intent's or the zeroing's fdatasync fails, then a crash. */
        if (rng_next() % 4 == 0) disk_mem_fail(d, DISK_MEM_OP_FDATASYNC, 1 + rng_next() % 2, -EIO);
        int rc = wal_truncate_suffix(w, from);
        d->fail_op = DISK_MEM_OP_NONE;
        if (rc != 0) {
            cr_assert_eq(rc, -EIO);
            m->durable = KEEL_MIN(m->durable, from - 1);
            crash_now(w, d, m, false);
            return;
        }
        m->last = KEEL_MIN(m->last, from - 1);
        m->durable = KEEL_MIN(m->durable, m->last);
    } else if (r < 98) {
        u64 upto = m->durable > 20 ? m->durable - rng_next() % 20 : 0;
        cr_assert_eq(wal_drop_prefix(w, upto), 0);
        m->first = wal_first_index(w);
    }
}

Test(wal, crash_random, .timeout = 300)
{
    u64 seed = rng_seed("wal/crash_random");
    u64 ops = env_u64("KEEL_OPS", 20000);
    struct disk_mem d;
    disk_mem_init(&d, seed ^ 0xD15C);
    static struct model m;
    memset(&m, 0, sizeof(m));
    m.first = 1;
    struct wal w;
    struct cuts cuts = {0};
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    for (u64 op = 0; op < ops; op++) {
        crash_step(&w, &d, &m);
        if (m.last + 1 - m.first > RECORDS_MAX / 2) {
            flush_ok(&w);
            m.durable = m.last;
            cr_assert_eq(wal_drop_prefix(&w, m.last), 0);
            m.first = wal_first_index(&w);
            cr_assert_lt(m.last + 1 - m.first, RECORDS_MAX / 2, "one segment is small");
        }
    }
    crash_now(&w, &d, &m, false);
    fprintf(stderr,
            "wal/crash_random: %llu crashes, %llu torn tails cut, %llu kept records past "
            "the durable index\n",
            (unsigned long long)crash_stats.crashes, (unsigned long long)crash_stats.cuts,
            (unsigned long long)crash_stats.beyond_durable);
    wal_close(&w);
    disk_mem_free(&d);
}

/* A crash inside the first open leaves at most a stale "<segment>.tmp",
 * never a lone segment with a torn header. */
Test(wal, first_segment_is_created_atomically)
{
    struct disk_mem d;
    disk_mem_init(&d, 3);
    struct cuts cuts = {0};
    struct wal w;
    disk_mem_fail(&d, DISK_MEM_OP_FDATASYNC, 1, -EIO);
    cr_assert_eq(open_mem(&w, &d, &cuts), -EIO);
    disk_mem_crash(&d);
    cr_assert_null(disk_mem_file(&d, DIR_MEM "/wal-0000000000000001.log"));
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(wal_last_index(&w), 0);
    append_n(&w, 3, 2, 14);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    expect_records(&w, 1, 3, 14);
    wal_close(&w);
    disk_mem_free(&d);
}

Test(wal, config_is_checked)
{
    struct disk_mem d;
    disk_mem_init(&d, 3);
    struct wal w;
    struct wal_config c = config_small();
    c.batch_bytes_max = 8192; /* larger than a segment */
    cr_assert_eq(wal_open(&w, &d.base, DIR_MEM, &c), KEEL_EINVALID);
    c = config_small();
    c.payload_size_max = 4000; /* a record would not fit the batch */
    cr_assert_eq(wal_open(&w, &d.base, DIR_MEM, &c), KEEL_EINVALID);
    c = config_small();
    c.segment_size_bytes = 4100; /* not a multiple of 8 */
    cr_assert_eq(wal_open(&w, &d.base, DIR_MEM, &c), KEEL_EINVALID);
    cr_assert_eq(disk_mem_count(&d, DIR_MEM), 0, "nothing created");
    disk_mem_free(&d);
}

/* A damaged header of a segment in the middle is corruption, not a tail. */
Test(wal, corrupt_segment_header_in_the_middle)
{
    struct disk_mem d;
    disk_mem_init(&d, 1);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 200, 2, 15);
    cr_assert_gt(w.segment_count, 4);
    u64 seq = w.segments[2].seq;
    wal_close(&w);
    struct disk_mem_file *f = segment_file(&d, seq);
    u8 b = (u8)(f->data[20] ^ 0x80);
    file_damage(f, 20, &b, 1);
    cr_assert_eq(open_mem(&w, &d, &cuts), KEEL_ECORRUPT);
    cr_assert_eq(w.corrupt_seq, seq - 1, "reported where the chain stops");
    cr_assert_eq(cuts.count, 0);
    disk_mem_free(&d);
}

/* Names that are not segments (a stale ".tmp", an operator's notes) are
 * ignored by the scan. */
Test(wal, foreign_names_are_ignored)
{
    struct disk_mem d;
    disk_mem_init(&d, 1);
    struct cuts cuts = {0};
    struct wal w;
    int fd = -1;
    cr_assert_eq(d.base.ops->open(&d.base, DIR_MEM "/notes.txt", true, &fd), 0);
    cr_assert_eq(d.base.ops->pwrite(&d.base, fd, "hello", 5, 0), 0);
    d.base.ops->close(&d.base, fd);
    cr_assert_eq(d.base.ops->open(&d.base, DIR_MEM "/wal-zz.log", true, &fd), 0);
    d.base.ops->close(&d.base, fd);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    append_n(&w, 10, 3, 16);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    expect_records(&w, 1, 10, 16);
    wal_close(&w);
    disk_mem_free(&d);
}

/* A crash while wal_truncate_suffix zeroes old records: the intent file
 * makes the next open finish the job instead of seeing surviving old
 * records after zeroed ones (which would read as corruption). The first
 * fdatasync is the intent's, the second the zeroing's. */
Test(wal, crash_inside_truncate_suffix)
{
    for (u64 seed = 0; seed < 64; seed++) {
        u32 nth = 1 + (u32)(seed % 2);
        struct disk_mem d;
        disk_mem_init(&d, seed);
        struct cuts cuts = {0};
        struct wal w;
        cr_assert_eq(open_mem(&w, &d, &cuts), 0);
        append_n(&w, 120, 1, 17);
        u64 seg_end = w.segments[1].first_index - 1; /* the first segment's last record */
        disk_mem_fail(&d, DISK_MEM_OP_FDATASYNC, nth, -EIO);
        cr_assert_eq(wal_truncate_suffix(&w, 10), -EIO);
        disk_mem_crash(&d);
        wal_close(&w);
        cr_assert_eq(open_mem(&w, &d, &cuts), 0, "seed %llu", (unsigned long long)seed);
        u64 last = wal_last_index(&w);
        cr_assert(last == 9 || (nth == 1 && last == seg_end), "seed %llu last %llu",
                  (unsigned long long)seed, (unsigned long long)last);
        if (nth == 2) cr_assert_eq(last, 9, "the intent was synced: the redo finished it");
        expect_records(&w, 1, last, 17);
        cr_assert_null(disk_mem_file(&d, DIR_MEM "/" WAL_INTENT_NAME));
        append_n(&w, 5, 2, 17);
        wal_close(&w);
        cr_assert_eq(open_mem(&w, &d, &cuts), 0);
        expect_records(&w, 1, last + 5, 17);
        wal_close(&w);
        disk_mem_free(&d);
    }
}

/* ---- asynchronous flush: wal_flush_begin / wal_flush_end -------------------------------- */

/* A flush in flight, with its I/O done one op at a time the way the shard's
 * ring may order it: write i before sync i, the two pairs in any order. */
struct flight {
    struct wal_flush_io io;
    bool active;
    u32 done;  /* bit i: write i done; bit 2 + i: sync i done */
    int res;   /* the first failure, or 0 */
    u64 index; /* the WAL's last index at begin */
};

static void flight_begin(struct wal *w, struct flight *f)
{
    cr_assert(!wal_flush_in_flight(w));
    memset(f, 0, sizeof(*f));
    f->index = wal_last_index(w);
    cr_assert_eq(wal_flush_begin(w, &f->io), 0);
    f->active = f->io.write_count > 0;
    cr_assert_eq(wal_flush_in_flight(w), f->active);
    cr_assert_eq(f->io.sync_count, f->io.write_count);
    cr_assert_eq(f->io.durable_index, f->active ? f->index : wal_durable_index(w));
}

static bool flight_complete(const struct flight *f)
{
    u32 all = (1u << f->io.write_count) - 1;
    return f->res != 0 || f->done == (all | all << 2);
}

/* Does one op that may run now; with fail, that op fails (a write may land
 * a prefix first), and the rest of the flight is cancelled. */
static void flight_step(struct disk_mem *d, struct flight *f, bool fail)
{
    cr_assert(f->active && !flight_complete(f));
    u32 ready[4], n = 0;
    for (u32 i = 0; i < f->io.write_count; i++) {
        if (!(f->done & 1u << i))
            ready[n++] = i;
        else if (!(f->done & 1u << (2 + i)))
            ready[n++] = 2 + i;
    }
    cr_assert_gt(n, 0);
    u32 op = ready[rng_next() % n];
    f->done |= 1u << op;
    struct disk *disk = &d->base;
    if (op < 2) {
        const struct wal_flush_write *wr = &f->io.writes[op];
        u32 len = fail ? (u32)(rng_next() % wr->len) : wr->len;
        if (len > 0)
            cr_assert_eq(disk->ops->pwrite(disk, wr->fd, wr->buf, len, wr->offset_bytes), 0);
    } else if (!fail) {
        cr_assert_eq(disk->ops->fdatasync(disk, f->io.syncs[op - 2].fd), 0);
    }
    if (fail) f->res = -EIO;
}

/* Finishes the flight's I/O and ends it; returns wal_flush_end's result. */
static int flight_end(struct wal *w, struct disk_mem *d, struct flight *f)
{
    cr_assert(f->active);
    while (!flight_complete(f)) flight_step(d, f, false);
    f->active = false;
    int rc = wal_flush_end(w, f->res);
    cr_assert(!wal_flush_in_flight(w));
    if (rc == 0) cr_assert_eq(wal_durable_index(w), f->io.durable_index);
    return rc;
}

/* Begins a flush and checks that its first write starts where the previous
 * flush's last write ended, or at 0 of a new segment. */
static void flight_begin_follows(struct wal *w, struct flight *f, u64 *prev_end)
{
    flight_begin(w, f);
    cr_assert(f->active);
    const struct wal_flush_write *first = &f->io.writes[0];
    cr_assert(first->offset_bytes == *prev_end || first->offset_bytes == 0, "offset %llu",
              (unsigned long long)first->offset_bytes);
    const struct wal_flush_write *last = &f->io.writes[f->io.write_count - 1];
    *prev_end = last->offset_bytes + last->len;
}

/* The shard's pattern: a flush in flight while appends go on into the
 * other buffer, across many segment rollovers. */
Test(wal, appends_during_flush_in_flight)
{
    rng_seed("wal/appends_during_flush_in_flight");
    struct disk_mem d;
    disk_mem_init(&d, 2);
    struct cuts cuts = {0};
    struct wal w;
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    struct flight f = {0};
    u64 prev_end = w.tail_offset, rolled_in_flight = 0, appended_in_flight = 0;
    while (wal_last_index(&w) < 400) {
        u32 segments = w.segment_count;
        u64 durable = wal_durable_index(&w);
        u8 p[PAYLOAD_MAX];
        size_t len = payload_make(w.last_index + 1, 21, p);
        u64 index = 0;
        int rc = wal_append(&w, (u16)(1 + w.last_index % 7), span_make(p, len), &index);
        if (rc == KEEL_ENOMEM) { /* the open batch is full: end the flight, or start one */
            if (wal_flush_in_flight(&w))
                cr_assert_eq(flight_end(&w, &d, &f), 0);
            else
                flight_begin_follows(&w, &f, &prev_end);
            continue;
        }
        cr_assert_eq(rc, 0);
        cr_assert_eq(wal_durable_index(&w), durable, "an append makes nothing durable");
        appended_in_flight += wal_flush_in_flight(&w);
        rolled_in_flight += wal_flush_in_flight(&w) && w.segment_count > segments;
        if (rng_next() % 3 != 0) continue;
        if (wal_flush_in_flight(&w)) cr_assert_eq(flight_end(&w, &d, &f), 0);
        flight_begin_follows(&w, &f, &prev_end);
    }
    if (wal_flush_in_flight(&w)) cr_assert_eq(flight_end(&w, &d, &f), 0);
    flush_ok(&w);
    cr_assert_gt(appended_in_flight, 100);
    cr_assert_gt(rolled_in_flight, 0, "a batch rolled over while the previous was in flight");
    cr_assert_eq(disk_mem_count(&d, DIR_MEM), w.segment_count);
    u64 last = wal_last_index(&w);
    expect_records(&w, 1, last, 21);
    wal_close(&w);
    cr_assert_eq(open_mem(&w, &d, &cuts), 0);
    cr_assert_eq(cuts.count, 0);
    cr_assert_eq(wal_last_index(&w), last);
    expect_records(&w, 1, last, 21);
    wal_close(&w);
    disk_mem_free(&d);
}

/* wal_flush_end with a failure poisons the WAL; the records appended during
 * the flight are lost with it, and the reopened WAL keeps every durable one. */
Test(wal, flush_end_failure_poisons)
{
    rng_seed("wal/flush_end_failure_poisons");
    for (int short_write = 0; short_write < 2; short_write++) {
        struct disk_mem d;
        disk_mem_init(&d, 7);
        struct cuts cuts = {0};
        struct wal w;
        cr_assert_eq(open_mem(&w, &d, &cuts), 0);
        append_n(&w, 10, 4, 22);
        append_one(&w, 22);
        append_one(&w, 22);
        struct flight f;
        flight_begin(&w, &f);
        cr_assert_eq(f.io.durable_index, 12);
        append_one(&w, 22); /* into the other buffer */
        cr_assert_eq(wal_truncate_suffix(&w, 5), KEEL_EINVALID, "not while a flush is in flight");
        if (short_write) flight_step(&d, &f, true); /* a prefix of the write lands */
        f.res = -EIO;
        f.active = false;
        cr_assert_eq(wal_flush_end(&w, f.res), -EIO);
        cr_assert(!wal_flush_in_flight(&w));
        cr_assert_eq(wal_durable_index(&w), 10);
        u64 index;
        cr_assert_eq(wal_append(&w, 1, span_make("x", 1), &index), -EIO, "poisoned");
        struct wal_flush_io io;
        cr_assert_eq(wal_flush_begin(&w, &io), -EIO, "sticky");
        cr_assert_eq(io.write_count, 0);
        cr_assert_eq(wal_flush(&w, &index), -EIO);
        cr_assert_eq(wal_truncate_suffix(&w, 5), -EIO);
        disk_mem_crash(&d);
        wal_close(&w);
        cr_assert_eq(open_mem(&w, &d, &cuts), 0);
        cr_assert_eq(wal_last_index(&w), 10, "the failed flush did not survive");
        expect_records(&w, 1, 10, 22);
        wal_close(&w);
        disk_mem_free(&d);
    }
}

/* A crash between begin and end, after any prefix of the flight's ops:
 * recovery keeps every record durable before the flush, at most the
 * flush's own records, and all of them once every op had completed. */
Test(wal, crash_between_begin_and_end)
{
    u64 seed = rng_seed("wal/crash_between_begin_and_end");
    for (u64 round = 0; round < 300; round++) {
        struct disk_mem d;
        disk_mem_init(&d, seed + round);
        struct cuts cuts = {0};
        struct wal w;
        cr_assert_eq(open_mem(&w, &d, &cuts), 0);
        append_n(&w, 5 + rng_next() % 40, 1 + rng_next() % 5, 23);
        u64 durable = wal_durable_index(&w);
        for (u64 i = 1 + rng_next() % 6; i-- > 0;) append_one(&w, 23);
        struct flight f;
        flight_begin(&w, &f);
        for (u64 i = rng_next() % 3; i-- > 0;) append_one(&w, 23); /* the next batch */
        u32 steps = (u32)(rng_next() % (2 * f.io.write_count + 1));
        for (u32 i = 0; i < steps; i++) flight_step(&d, &f, false);
        disk_mem_crash(&d);
        wal_close(&w);
        cr_assert_eq(open_mem(&w, &d, &cuts), 0, "round %llu", (unsigned long long)round);
        u64 last = wal_last_index(&w);
        cr_assert_geq(last, durable, "round %llu", (unsigned long long)round);
        cr_assert_leq(last, f.io.durable_index, "round %llu", (unsigned long long)round);
        if (flight_complete(&f)) cr_assert_eq(last, f.io.durable_index);
        expect_records(&w, 1, last, 23);
        append_n(&w, 3, 2, 23);
        wal_close(&w);
        cr_assert_eq(open_mem(&w, &d, &cuts), 0);
        expect_records(&w, 1, last + 3, 23);
        wal_close(&w);
        disk_mem_free(&d);
    }
}

/* ---- randomized: appends, flights, failures, crashes, reopens ----------------------- */

struct async_run {
    struct wal w;
    struct disk_mem d;
    struct model m;
    struct flight f;
    u64 crashes, failures, acked;
};

/* Ends the flight; on success the flight's records are acknowledged. */
static void async_end(struct async_run *a)
{
    int rc = flight_end(&a->w, &a->d, &a->f);
    if (rc != 0) {
        cr_assert_eq(rc, -EIO, "rc %d", rc);
        return;
    }
    cr_assert_eq(wal_durable_index(&a->w), a->f.index);
    a->m.durable = a->f.index;
    a->acked++;
}

/* A crash (or, with clean, a close after the flight's end) and a reopen
 * that must keep every acknowledged record. */
static void async_reopen(struct async_run *a, bool clean)
{
    if (clean && a->f.active) async_end(a);
    bool poisoned = a->w.failed != 0;
    if (!clean) disk_mem_crash(&a->d);
    a->f.active = false; /* a crash ends the flight with the process */
    wal_close(&a->w);
    struct cuts cuts = {0};
    int rc = open_mem(&a->w, &a->d, &cuts);
    cr_assert_eq(rc, 0, "reopen: %d at segment %llu offset %llu", rc,
                 (unsigned long long)a->w.corrupt_seq, (unsigned long long)a->w.corrupt_offset);
    cr_assert(wal_check(&a->w));
    cr_assert(!clean || poisoned || cuts.count == 0, "a clean close leaves no tail");
    a->crashes += !clean;
    crash_verify(&a->w, &a->m);
}

static void async_append(struct async_run *a)
{
    u64 salt = rng_next();
    u8 p[PAYLOAD_MAX];
    size_t len = payload_make(a->m.last + 1, salt, p);
    u64 index = 0;
    u16 type = (u16)(1 + a->m.last % 7);
    int rc = wal_append(&a->w, type, span_make(p, len), &index);
    if (rc == KEEL_ENOMEM && a->f.active) async_end(a);
    if (rc == KEEL_ENOMEM && a->w.failed != 0) return; /* that flight failed */
    if (rc == KEEL_ENOMEM) {
        if (!a->f.active) flight_begin(&a->w, &a->f);
        rc = wal_append(&a->w, type, span_make(p, len), &index);
    }
    if (a->w.failed != 0) {
        cr_assert_eq(rc, -EIO);
        return;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(index, a->m.last + 1);
    a->m.salt[index % RECORDS_MAX] = salt;
    a->m.last = index;
}

static void async_step(struct async_run *a)
{
    u64 r = rng_next() % 100;
    bool poisoned = a->w.failed != 0;
    if (poisoned && !a->f.active) {
        async_reopen(a, r < 50);
    } else if (r < 55) {
        async_append(a);
    } else if (r < 67) {
        if (!a->f.active) flight_begin(&a->w, &a->f);
    } else if (r < 82) {
        if (a->f.active && !flight_complete(&a->f)) {
            bool fail = rng_next() % 25 == 0;
            a->failures += fail;
            flight_step(&a->d, &a->f, fail);
        }
    } else if (r < 90) {
        if (a->f.active) async_end(a);
    } else if (r < 95) {
        async_reopen(a, false);
    } else if (r < 97) {
        async_reopen(a, true);
    } else { /* with or without a flush in flight */
        u64 upto = a->m.durable > 20 ? a->m.durable - rng_next() % 20 : 0;
        cr_assert_eq(wal_drop_prefix(&a->w, upto), 0);
        a->m.first = wal_first_index(&a->w);
    }
}

Test(wal, async_random, .timeout = 300)
{
    u64 seed = rng_seed("wal/async_random");
    u64 ops = env_u64("KEEL_OPS", 20000);
    static struct async_run a;
    memset(&a, 0, sizeof(a));
    disk_mem_init(&a.d, seed ^ 0xA5);
    a.m.first = 1;
    struct cuts cuts = {0};
    cr_assert_eq(open_mem(&a.w, &a.d, &cuts), 0);
    for (u64 op = 0; op < ops; op++) {
        async_step(&a);
        if (a.m.last + 1 - a.m.first > 600 && a.w.failed == 0) { /* keep the table small */
            if (a.f.active) async_end(&a);
            if (a.w.failed != 0) continue;
            flush_ok(&a.w);
            a.m.durable = a.m.last;
            cr_assert_eq(wal_drop_prefix(&a.w, a.m.last), 0);
            a.m.first = wal_first_index(&a.w);
        }
    }
    async_reopen(&a, false);
    fprintf(stderr, "wal/async_random: %llu crashes, %llu flights acknowledged, %llu failed ops\n",
            (unsigned long long)a.crashes, (unsigned long long)a.acked,
            (unsigned long long)a.failures);
    cr_assert_gt(a.acked, 0);
    wal_close(&a.w);
    disk_mem_free(&a.d);
}
