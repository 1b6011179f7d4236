/*
 * node_meta.c — the node's data directory: its LOCK (one keeld per directory) and keel.meta,
 * which fixes what a directory cannot change once it holds data: the shard count and the
 * split keys (the key ranges each shard's WAL and snapshots belong to).
 *
 * keel.meta is text, written once (to a .tmp, fdatasync, rename):
 *
 *   keel-meta 1
 *   shards N
 *   split <hex bytes>        N - 1 lines, in key order
 */
#include "shard/shard_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_SPLIT_TEXT_MAX (2 * ROUTER_SPLIT_SIZE_MAX + 8)

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes hex text into dst; the byte count, or -1. */
static int hex_decode(const char *text, size_t len, u8 *dst, size_t cap)
{
    if (len % 2 != 0 || len / 2 > cap) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        dst[i] = (u8)(hi << 4 | lo);
    }
    return (int)(len / 2);
}

/* Parses --split-keys: comma-separated keys, each text or "hex:<bytes>". */
static int meta_parse_flag(const char *flag, u32 shard_count, u8 (*bytes)[ROUTER_SPLIT_SIZE_MAX],
                           struct span *splits, char *err, size_t err_len)
{
    u32 n = 0;
    const char *p = flag;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (n + 1 >= shard_count)
            return snprintf(err, err_len, "--split-keys: more than %u keys for %u shards",
                            shard_count - 1, shard_count),
                   -1;
        int got = -1;
        if (len > 4 && memcmp(p, "hex:", 4) == 0)
            got = hex_decode(p + 4, len - 4, bytes[n], ROUTER_SPLIT_SIZE_MAX);
        else if (len <= ROUTER_SPLIT_SIZE_MAX)
            got = (int)len, memcpy(bytes[n], p, len);
        if (got <= 0)
            return snprintf(err, err_len,
                            "--split-keys: key %u is empty, too long (max %u bytes) "
                            "or bad hex",
                            n + 1, ROUTER_SPLIT_SIZE_MAX),
                   -1;
        splits[n] = span_make(bytes[n], (size_t)got);
        n++;
        p += len + (end ? 1 : 0);
    }
    if (n + 1 != shard_count)
        return snprintf(err, err_len, "--split-keys: %u shards need %u split keys, got %u",
                        shard_count, shard_count - 1, n),
               -1;
    return 0;
}

/* The map the flags ask for: the default one, or the given splits. */
static int meta_map_from_flags(struct node *n, char *err, size_t err_len)
{
    u32 count = n->config.shard_count;
    if (!n->config.split_keys || count == 1) {
        if (router_map_default(&n->map, count) == KEEL_OK) return 0;
        return snprintf(err, err_len, "no default shard map for %u shards", count), -1;
    }
    static u8 bytes[ROUTER_SHARDS_MAX][ROUTER_SPLIT_SIZE_MAX]; /* main thread, once */
    struct span splits[ROUTER_SHARDS_MAX];
    if (meta_parse_flag(n->config.split_keys, count, bytes, splits, err, err_len) != 0) return -1;
    if (router_map_init(&n->map, 1, count, splits, NULL) == KEEL_OK) return 0;
    return snprintf(err, err_len, "--split-keys must be strictly increasing"), -1;
}

/* Reads keel.meta into n->map; -1 with err if it is unreadable. */
static int meta_read(struct node *n, FILE *f, const char *path, char *err, size_t err_len)
{
    unsigned version = 0, shards = 0;
    if (fscanf(f, "keel-meta %u shards %u", &version, &shards) != 2 || version != 1 || shards < 1 ||
        shards > NODE_SHARDS_MAX)
        return snprintf(err, err_len, "%s is not a keel meta file of version 1", path), -1;
    static u8 bytes[ROUTER_SHARDS_MAX][ROUTER_SPLIT_SIZE_MAX];
    struct span splits[ROUTER_SHARDS_MAX];
    for (u32 i = 0; i + 1 < shards; i++) {
        char text[META_SPLIT_TEXT_MAX + 1];
        int got = -1;
        if (fscanf(f,
                   " split %"
                   "136"
                   "s",
                   text) == 1)
            got = hex_decode(text, strlen(text), bytes[i], ROUTER_SPLIT_SIZE_MAX);
        if (got <= 0) return snprintf(err, err_len, "%s: split key %u is unreadable", path, i), -1;
        splits[i] = span_make(bytes[i], (size_t)got);
    }
    if (router_map_init(&n->map, 1, shards, splits, NULL) != KEEL_OK)
        return snprintf(err, err_len, "%s: split keys out of order", path), -1;
    return 0;
}

static int meta_write(struct node *n, const char *path, char *err, size_t err_len)
{
    char tmp[DISK_PATH_SIZE_MAX + 48];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return snprintf(err, err_len, "cannot write %s: %s", tmp, strerror(errno)), -1;
    fprintf(f, "keel-meta 1\nshards %u\n", n->map.shard_count);
    for (u32 i = 0; i + 1 < n->map.shard_count; i++) {
        struct span k = router_split(&n->map, i);
        fprintf(f, "split ");
        for (size_t j = 0; j < k.len; j++) fprintf(f, "%02x", k.ptr[j]);
        fprintf(f, "\n");
    }
    bool ok = fflush(f) == 0 && fdatasync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0)
        return snprintf(err, err_len, "cannot write %s: %s", path, strerror(errno)), -1;
    return 0;
}

static bool meta_same(const struct router_map *a, const struct router_map *b)
{
    if (a->shard_count != b->shard_count) return false;
    for (u32 i = 0; i + 1 < a->shard_count; i++) {
        struct span x = router_split(a, i), y = router_split(b, i);
        if (x.len != y.len || memcmp(x.ptr, y.ptr, x.len) != 0) return false;
    }
    return true;
}

/* Checks the stored meta against the flags: the shard count must match, and so must the
 * split keys when --split-keys was given. */
static int meta_check(struct node *n, const struct router_map *flags, const char *path, char *err,
                      size_t err_len)
{
    if (n->map.shard_count != n->config.shard_count)
        return snprintf(err, err_len,
                        "data dir %s was created with --shards %u; it cannot start with %u "
                        "(key ranges would move)",
                        n->data_dir, n->map.shard_count, n->config.shard_count),
               -1;
    if (n->config.split_keys && !meta_same(&n->map, flags))
        return snprintf(err, err_len,
                        "%s holds other split keys than --split-keys; they are "
                        "fixed when the data dir is created",
                        path),
               -1;
    return 0;
}

int node_prepare_dir(struct node *n, char *err, size_t err_len)
{
    const char *d = n->data_dir;
    if (mkdir(d, 0755) != 0 && errno != EEXIST)
        return snprintf(err, err_len, "cannot create data dir %s: %s", d, strerror(errno)), -1;
    char path[DISK_PATH_SIZE_MAX + 32];
    snprintf(path, sizeof(path), "%s/LOCK", d);
    n->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (n->lock_fd < 0 || flock(n->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return snprintf(err, err_len, "data dir %s is in use by another keeld (%s)", d,
                        strerror(errno)),
               -1;
    if (meta_map_from_flags(n, err, err_len) != 0) return -1;
    struct router_map flags = n->map;
    snprintf(path, sizeof(path), "%s/keel.meta", d);
    FILE *f = fopen(path, "r");
    if (!f) return meta_write(n, path, err, err_len);
    int rc = meta_read(n, f, path, err, err_len);
    fclose(f);
    return rc != 0 ? rc : meta_check(n, &flags, path, err, err_len);
}
