/*
 * test_snapshot_file.c — snapshot files (core/snapshot_file.h): names, the
 * synchronous write, finding and loading the newest, falling back past a
 * torn or corrupt newest file, and removing older files. Each test works in
 * its own directory under /tmp, removed at the end.
 */
#include "core/snapshot_file.h"

#include "core/snapshot.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MiB ((u64)1 << 20)

static struct span S(const char *s) {
    return span_make(s, strlen(s));
}

static struct mvcc_config
config_small(void)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    c.memory_bytes_max = 64 * MiB;
    c.key_size_max = 32;
    c.value_size_max = 64;
    return c;
}

static struct mvcc *store_with(int keys, const char *value)
{
    struct mvcc_config c = config_small();
    struct mvcc *m = mvcc_create(&c);
    cr_assert_not_null(m);
    char key[32];
    for (int i = 0; i < keys; i++) {
        snprintf(key, sizeof(key), "key%03d", i);
        cr_assert_eq(mvcc_put(m, S(key), S(value), 0, NULL, NULL), KEEL_OK);
    }
    return m;
}

static void dir_make(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/keel-test-snapfile-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    char path[SNAPSHOT_FILE_PATH_SIZE_MAX + 256];
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    cr_assert_eq(rmdir(dir), 0);
}

static bool file_exists(const char *dir, const char *name)
{
    char path[SNAPSHOT_FILE_PATH_SIZE_MAX + 256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0;
}

static void file_touch(const char *dir, const char *name)
{
    char path[SNAPSHOT_FILE_PATH_SIZE_MAX + 256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "junk", 4), 4);
    close(fd);
}

static void write_ok(struct mvcc *m, const char *dir, u64 applied_index)
{
    char err[256] = "";
    int rc = snapshot_file_write(m, dir, 5, applied_index, 3, 0, err, sizeof(err));
    cr_assert_eq(rc, KEEL_OK, "write %llu: %d %s", (unsigned long long)applied_index, rc, err);
}

static i64 store_keys(struct mvcc *m)
{
    struct mvcc_stats st;
    mvcc_stats(m, &st);
    return (i64)st.keys_live;
}

/* ---- names ------------------------------------------------------------------------ */

Test(snapshot_file, names_sort_by_index_and_parse_back)
{
    char path[SNAPSHOT_FILE_PATH_SIZE_MAX];
    cr_assert_eq(snapshot_file_final_name("/d", 42, path, sizeof(path)), KEEL_OK);
    cr_assert_str_eq(path, "/d/snap-00000000000000000042.snap");
    cr_assert_eq(strlen(path + 3), SNAPSHOT_FILE_NAME_LEN);
    cr_assert_eq(snapshot_file_tmp_name("/d", UINT64_MAX, path, sizeof(path)), KEEL_OK);
    cr_assert_str_eq(path, "/d/snap-18446744073709551615.snap.tmp");
    cr_assert_eq(snapshot_file_final_name("/d", 1, path, 20), KEEL_EINVALID, "too long");
    u64 index = 0;
    bool tmp = true;
    cr_assert(snapshot_file_parse_name("snap-00000000000000000042.snap", &index, &tmp));
    cr_assert_eq(index, 42);
    cr_assert_not(tmp);
    cr_assert(snapshot_file_parse_name("snap-18446744073709551615.snap.tmp", &index, &tmp));
    cr_assert_eq(index, UINT64_MAX);
    cr_assert(tmp);
    const char *bad[] = {"snap-42.snap",
                         "snap-00000000000000000042.snapx",
                         "snap-99999999999999999999.snap",
                         "snap-0000000000000000004a.snap",
                         "xsnap-00000000000000000042.snap",
                         "snap-00000000000000000042"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
        cr_assert_not(snapshot_file_parse_name(bad[i], &index, &tmp), "%s", bad[i]);
    }
}

/* ---- write, find, load ------------------------------------------------------------ */

Test(snapshot_file, write_then_find_and_load_the_newest)
{
    char dir[64];
    dir_make(dir, sizeof(dir));
    struct mvcc_config c = config_small();
    struct mvcc *out = NULL;
    u64 applied = 7;
    u32 skipped = 9;
    char err[512];
    cr_assert_eq(snapshot_file_load_latest(&c, dir, &out, &applied, &skipped, err, sizeof(err)),
                 KEEL_OK, "an empty directory: no snapshot, no error");
    cr_assert_null(out);
    cr_assert_eq(applied, 0);
    cr_assert_eq(skipped, 0);
    struct mvcc *m = store_with(10, "v1");
    write_ok(m, dir, 100);
    cr_assert_eq(mvcc_put(m, S("key999"), S("v2"), 0, NULL, NULL), KEEL_OK);
    write_ok(m, dir, 250);
    file_touch(dir, "snap-00000000000000000900.snap.tmp"); /* a crash mid-write */
    file_touch(dir, "notes.txt");
    bool found = false;
    cr_assert_eq(snapshot_file_find_latest(dir, UINT64_MAX, &applied, &found), KEEL_OK);
    cr_assert(found);
    cr_assert_eq(applied, 250, "the .tmp is not a snapshot");
    cr_assert_eq(snapshot_file_find_latest(dir, 250, &applied, &found), KEEL_OK);
    cr_assert_eq(applied, 100);
    cr_assert_eq(snapshot_file_find_latest(dir, 100, &applied, &found), KEEL_OK);
    cr_assert_not(found);
    cr_assert_eq(snapshot_file_load_latest(&c, dir, &out, &applied, &skipped, err, sizeof(err)),
                 KEEL_OK, "%s", err);
    cr_assert_not_null(out);
    cr_assert_eq(applied, 250);
    cr_assert_eq(skipped, 0);
    cr_assert_str_eq(err, "");
    cr_assert_eq(mvcc_revision(out), mvcc_revision(m));
    cr_assert_eq(store_keys(out), 11);
    cr_assert(mvcc_check(out));
    cr_assert_not(file_exists(dir, "snap-00000000000000000250.snap.tmp"), "renamed");
    mvcc_destroy(out);
    mvcc_destroy(m);
    dir_remove(dir);
}

Test(snapshot_file, load_reports_a_missing_file_and_large_chunks_load)
{
    char dir[64];
    dir_make(dir, sizeof(dir));
    struct mvcc_config c = config_small();
    struct mvcc *out = NULL;
    u64 applied = 0;
    char err[512], path[SNAPSHOT_FILE_PATH_SIZE_MAX];
    cr_assert_eq(snapshot_file_final_name(dir, 1, path, sizeof(path)), KEEL_OK);
    cr_assert_eq(snapshot_file_load(&c, path, &out, &applied, err, sizeof(err)), -ENOENT);
    cr_assert_not_null(strstr(err, path), "%s", err);
    struct mvcc *m = store_with(300, "a value");
    cr_assert_eq(snapshot_file_write(m, dir, 1, 1, 1000, 1 << 16, err, sizeof(err)), KEEL_OK);
    cr_assert_eq(snapshot_file_load(&c, path, &out, &applied, err, sizeof(err)), KEEL_OK, "%s",
                 err);
    cr_assert_eq(applied, 1);
    cr_assert_eq(store_keys(out), 300);
    mvcc_destroy(out);
    cr_assert_eq(snapshot_file_write(m, dir, 1, 2, 1, 10, err, sizeof(err)), KEEL_EINVALID,
                 "a chunk size below the minimum");
    cr_assert_not(file_exists(dir, "snap-00000000000000000002.snap.tmp"), "removed on failure");
    mvcc_destroy(m);
    dir_remove(dir);
}

/* ---- fallback ---------------------------------------------------------------------- */

static void file_truncate_to(const char *path, off_t keep)
{
    cr_assert_eq(truncate(path, keep), 0);
}

static void file_flip(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    u8 b;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x20;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

Test(snapshot_file, a_torn_or_corrupt_newest_falls_back_to_the_next_older)
{
    char dir[64];
    dir_make(dir, sizeof(dir));
    struct mvcc_config c = config_small();
    struct mvcc *m = store_with(5, "first");
    write_ok(m, dir, 10);
    cr_assert_eq(mvcc_put(m, S("sixth"), S("x"), 0, NULL, NULL), KEEL_OK);
    write_ok(m, dir, 20);
    cr_assert_eq(mvcc_put(m, S("seventh"), S("x"), 0, NULL, NULL), KEEL_OK);
    write_ok(m, dir, 30);
    char p20[SNAPSHOT_FILE_PATH_SIZE_MAX], p30[SNAPSHOT_FILE_PATH_SIZE_MAX], err[512];
    snapshot_file_final_name(dir, 20, p20, sizeof(p20));
    snapshot_file_final_name(dir, 30, p30, sizeof(p30));
    struct stat st;
    cr_assert_eq(stat(p30, &st), 0);
    file_truncate_to(p30, st.st_size - 5); /* torn: the trailer's end is missing */
    struct mvcc *out = NULL;
    u64 applied = 0;
    u32 skipped = 0;
    cr_assert_eq(snapshot_file_load_latest(&c, dir, &out, &applied, &skipped, err, sizeof(err)),
                 KEEL_OK);
    cr_assert_eq(applied, 20);
    cr_assert_eq(skipped, 1);
    cr_assert_not_null(strstr(err, p30), "the skip is reported: %s", err);
    cr_assert_eq(store_keys(out), 6);
    mvcc_destroy(out);
    file_flip(p20, 40); /* inside the header chunk */
    cr_assert_eq(snapshot_file_load_latest(&c, dir, &out, &applied, &skipped, err, sizeof(err)),
                 KEEL_OK);
    cr_assert_eq(applied, 10);
    cr_assert_eq(skipped, 2);
    cr_assert_eq(store_keys(out), 5);
    mvcc_destroy(out);
    char p10[SNAPSHOT_FILE_PATH_SIZE_MAX];
    snapshot_file_final_name(dir, 10, p10, sizeof(p10));
    file_truncate_to(p10, 0);
    cr_assert_eq(snapshot_file_load_latest(&c, dir, &out, &applied, &skipped, err, sizeof(err)),
                 KEEL_ECORRUPT, "snapshots exist and none loads: never an empty store");
    cr_assert_null(out);
    cr_assert_eq(skipped, 3);
    cr_assert_not_null(strstr(err, "snapshot: "), "%s", err);
    mvcc_destroy(m);
    dir_remove(dir);
}

/* ---- removal ------------------------------------------------------------------------ */

Test(snapshot_file, remove_older_keeps_the_index_and_newer)
{
    char dir[64];
    dir_make(dir, sizeof(dir));
    struct mvcc *m = store_with(3, "v");
    write_ok(m, dir, 10);
    write_ok(m, dir, 20);
    write_ok(m, dir, 30);
    file_touch(dir, "snap-00000000000000000015.snap.tmp");
    file_touch(dir, "snap-00000000000000000040.snap.tmp");
    file_touch(dir, "other");
    u32 removed = 0;
    cr_assert_eq(snapshot_file_remove_older(dir, 20, &removed), KEEL_OK);
    cr_assert_eq(removed, 2);
    cr_assert_not(file_exists(dir, "snap-00000000000000000010.snap"));
    cr_assert_not(file_exists(dir, "snap-00000000000000000015.snap.tmp"));
    cr_assert(file_exists(dir, "snap-00000000000000000020.snap"));
    cr_assert(file_exists(dir, "snap-00000000000000000030.snap"));
    cr_assert(file_exists(dir, "snap-00000000000000000040.snap.tmp"));
    cr_assert(file_exists(dir, "other"));
    cr_assert_eq(snapshot_file_remove_older(dir, 20, &removed), KEEL_OK);
    cr_assert_eq(removed, 0);
    cr_assert_lt(snapshot_file_remove_older("/nonexistent/keel", 1, &removed), 0);
    mvcc_destroy(m);
    dir_remove(dir);
}
