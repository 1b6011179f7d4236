/*
 * engine_bench.c — keel's MVCC store against LMDB: one program, one run, the
 * same workload on both.
 *
 * Workload (the same keys, in the same order, with the same values, on both):
 *   insert   N random keys (--key-size bytes, default 16) with --value-size
 *            byte values (default 256), one write per commit: keel's mvcc_put
 *            outside a batch is a batch of one (one revision, as etcd), so
 *            LMDB gets one write transaction per put for the ratio; LMDB with
 *            1000 puts per transaction is printed as well, for information.
 *   get      every key once, in a seeded random order: keel's mvcc_range on
 *            one key, LMDB's mdb_get (one read transaction per 1000 gets).
 *   update   every key once more, in another random order, with a new value;
 *            the same commit policy as insert.
 *   scan     every key in order, touching every key and value byte: keel's
 *            mvcc_range over ["\0", "\0") (one call, or pages of --scan-page
 *            keys), an LMDB cursor. One call is the default: each paged call
 *            counts the whole rest of the range (etcd's count; keel walks the
 *            leaves of the rest), which makes paging quadratic in N.
 *   prefix   "prefix scan of 100 keys": from a random existing key, read the
 *            next 100 keys in order. Random binary keys share no prefixes, so
 *            the scan is the range [k_i, k_i+100) over the sorted keys: keel's
 *            mvcc_range with that range_end (and limit 100), an LMDB cursor
 *            from MDB_SET_RANGE that stops at the same end key. keel's
 *            open-ended form (range_end "\0", limit 100) is printed as well:
 *            etcd's count makes it walk the leaves of the tree's tail.
 *
 * Fairness: keys, values, orders and the expected digests are made before any
 * timing; both systems run the same loops around their calls and fold every
 * byte they read into a digest that must match the expected one, so neither
 * can skip work. Values are --value-size windows at random offsets in a 1 MiB
 * random pool (per-key arrays of values would be 2.5 GiB at 10M keys); both
 * systems copy the same bytes from it.
 *
 * Order of the run: phase by phase, keel and LMDB back to back, so that both
 * see the same state of a shared machine (other builds and tests). Each read
 * phase (get, scan, prefix) runs READ_ROUNDS times, alternating which system
 * goes first, and the best round counts (noise only ever slows a round); the
 * worst round is printed too, as the spread. Writes cannot be repeated on the
 * same data, so insert and update run once each: keel first for the insert
 * (see memory), LMDB first for the update. The informational LMDB run with
 * 1000 puts per transaction uses a second, fresh environment at the end, so
 * that it pays for its own pages.
 *
 * Memory: keel's insert runs before LMDB's environment exists, so the RSS
 * growth over keel's insert (VmRSS from /proc/self/status, just before the
 * first put and just after the last) is keel's alone: overhead per key =
 * (RSS growth - N * (key_size + value_size)) / N, at one version per key,
 * with the slab's accounting (mvcc_stats). Later, LMDB's mapped tmpfs pages
 * count in VmRSS (MDB_WRITEMAP maps them into this process) but as RssShmem,
 * while keel's arena is anonymous memory: the figures after the update (two
 * versions per key) and after a full compaction, informational, are RssAnon
 * growth, which LMDB cannot pollute.
 */
#include "core/mvcc.h"
#include "core/types.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <lmdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

/* ---- constants ---------------------------------------------------------- */

#define KEYS_DEFAULT       1000000u
#define KEYS_MIN           1000u
#define KEYS_MAX           100000000u  /* key indexes are u32; 100M keys is 27 GiB of data */
#define SEED_DEFAULT       0x6b65656cu /* "keel" */
#define KEY_SIZE_DEFAULT   16u
#define KEY_SIZE_MIN       4u
#define KEY_SIZE_MAX       511u /* LMDB's default maximum key size */
#define VALUE_SIZE_DEFAULT 256u
#define VALUE_SIZE_MAX     (64u * 1024u)
#define POOL_SIZE_MIN      ((size_t)1 << 20)
#define PREFIX_KEYS        100u
#define PREFIX_SCANS_MAX   100000u
/* keel's open-ended prefix scans count the tree's whole tail (etcd's count):
 * about OPEN_SCAN_KEYS / 2 keys are counted over all of them. */
#define OPEN_SCAN_KEYS     20000000ull
#define OPEN_SCANS_MIN     10u
#define READ_ROUNDS        3u
#define LMDB_BATCH_OPS     1000u
#define LMDB_READ_TXN_OPS  1000u /* gets and prefix scans per LMDB read transaction */
#define HASH_MUL           0x100000001b3ull
#define TMPFS_MAGIC_NUMBER 0x01021994

struct bench_opts {
    u64 keys;
    u64 seed;
    u32 key_size;
    u32 value_size;
    u64 scan_page;         /* keel's full scan: keys per mvcc_range; 0 = one call for all */
    const char *lmdb_base; /* tmpfs directory that holds LMDB's environment */
};

/* Everything both systems are fed, made before any timing. */
struct workload {
    const struct bench_opts *opts;
    u8 *keys; /* keys * key_size bytes, in insert order */
    u8 *pool; /* random bytes that values are windows of */
    size_t pool_size;
    u32 *value_insert; /* per key: pool offset of its first value */
    u32 *value_update; /* per key: pool offset of its second value */
    u32 *get_order;    /* a permutation of key indexes */
    u32 *update_order; /* another one */
    u32 *sorted;       /* key indexes in key order */
    u32 *prefix_pos;   /* per prefix scan: position in sorted of its first key */
    u64 prefix_scans;
    u64 open_scans;
    u64 expect_get;    /* sum of the digests of the values read by the gets */
    u64 expect_scan;   /* order-sensitive hash of one full scan */
    u64 expect_prefix; /* order-sensitive hash of all prefix scans */
    u64 expect_open;   /* the same over the first open_scans scans */
};

/* Seconds of the best (shortest) and worst run of one phase; 0: not run. */
struct phase_time {
    double best_s;
    double worst_s;
};

/* One system's phases. */
struct timings {
    struct phase_time insert;
    struct phase_time get;
    struct phase_time update;
    struct phase_time scan;
    struct phase_time prefix;
    struct phase_time open;         /* keel only */
    struct phase_time insert_batch; /* LMDB only */
    struct phase_time update_batch; /* LMDB only */
    struct phase_time compact;      /* keel only */
};

/* Resident memory from /proc/self/status, bytes. */
struct mem_sample {
    u64 vm_rss;
    u64 rss_anon;
    u64 rss_shmem;
};

struct keel_memory {
    struct mem_sample before;
    struct mem_sample loaded;
    struct mvcc_stats loaded_stats;
    struct mem_sample updated;
    struct mvcc_stats updated_stats;
    struct mem_sample compacted;
    struct mvcc_stats compacted_stats;
};

struct lmdb_memory {
    struct mem_sample before;
    struct mem_sample loaded;
    u64 pages_used; /* branch + leaf + overflow pages after the insert */
    u64 page_size;
    u32 depth;
};

struct lmdb {
    MDB_env *env;
    MDB_dbi dbi;
};

/* Both systems, open side by side. */
struct systems {
    struct mvcc *keel;
    struct lmdb lmdb;
};

/* The tmpfs directory of the LMDB environment, removed at exit and on signals. */
static char g_lmdb_dir[96];
static char g_lmdb_data[128];
static char g_lmdb_lock[128];
static volatile sig_atomic_t g_lmdb_dir_made;

/* ---- helpers ------------------------------------------------------------ */

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("engine_bench: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1); /* runs lmdb_dir_remove through atexit */
}

static void progress(const char *what)
{
    fprintf(stderr, "engine_bench: %s\n", what);
}

static double now_s(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime: %s", strerror(errno));
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* VmRSS, RssAnon and RssShmem of this process, from /proc/self/status. */
static struct mem_sample mem_read(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) die("open /proc/self/status: %s", strerror(errno));
    struct mem_sample m = {0};
    char line[256];
    unsigned found = 0;
    while (fgets(line, sizeof(line), f) != NULL) { /* bounded by the file's ~60 lines */
        unsigned long long kib;
        if (sscanf(line, "VmRSS: %llu kB", &kib) == 1) m.vm_rss = kib << 10, found |= 1;
        if (sscanf(line, "RssAnon: %llu kB", &kib) == 1) m.rss_anon = kib << 10, found |= 2;
        if (sscanf(line, "RssShmem: %llu kB", &kib) == 1) m.rss_shmem = kib << 10, found |= 4;
    }
    fclose(f);
    if (found != 7) die("/proc/self/status lacks VmRSS, RssAnon or RssShmem");
    return m;
}

/* The 1-minute load average, to show how busy the shared machine was. */
static double load_average(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL) die("open /proc/loadavg: %s", strerror(errno));
    double load = 0;
    int n = fscanf(f, "%lf", &load);
    fclose(f);
    if (n != 1) die("cannot parse /proc/loadavg");
    return load;
}

static void phase_add(struct phase_time *p, double seconds)
{
    if (p->best_s == 0 || seconds < p->best_s) p->best_s = seconds;
    if (seconds > p->worst_s) p->worst_s = seconds;
}

static void *xcalloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count, size);
    if (p == NULL) die("out of memory allocating %s (%zu x %zu bytes)", what, count, size);
    return p;
}

static u64 splitmix64(u64 *state)
{
    u64 z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform enough below n (n <= 2^32, the bias is below 2^-32). */
static u64 rand_below(u64 *state, u64 n)
{
    return splitmix64(state) % n;
}

/* Reads every byte: the sum of the 8-byte words, then of the tail bytes. */
static inline u64 digest(const u8 *p, size_t len)
{
    u64 sum = len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        u64 w;
        memcpy(&w, p + i, 8);
        sum += w;
    }
    for (; i < len; i++) sum += p[i];
    return sum;
}

static inline u64 hash_step(u64 h, u64 d)
{
    return (h ^ d) * HASH_MUL;
}

static inline const u8 *key_at(const struct workload *w, u64 index)
{
    return w->keys + index * w->opts->key_size;
}

static inline const u8 *value_at(const struct workload *w, u32 offset)
{
    return w->pool + offset;
}

static void digest_check(const char *what, u64 got, u64 want)
{
    if (got != want) {
        die("%s read wrong data: digest %016" PRIx64 ", expected %016" PRIx64, what, got, want);
    }
}

static double per_s(u64 ops, double seconds)
{
    return seconds > 0 ? (double)ops / seconds : 0.0;
}

static double mib(u64 bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

/* ---- options ------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: engine_bench [--keys N] [--seed S] [--key-size B] [--value-size B]\n"
            "                    [--scan-page K] [--lmdb-dir DIR] [--help]\n"
            "  --keys N        keys to load (default %u; %u..%u; 10000000 for the large run)\n"
            "  --seed S        PRNG seed for keys, values and orders (default %u)\n"
            "  --key-size B    key bytes (default %u; %u..%u)\n"
            "  --value-size B  value bytes (default %u; 1..%u)\n"
            "  --scan-page K   keel's full scan reads K keys per mvcc_range (default 0:\n"
            "                  one mvcc_range over every key)\n"
            "  --lmdb-dir DIR  tmpfs directory for LMDB's environment. Default: a private\n"
            "                  tmpfs mounted with huge=always in this process's own mount\n"
            "                  namespace (root only), so LMDB gets 2 MiB pages as keel's\n"
            "                  arena does; without root, /dev/shm (4 KiB pages, said so)\n"
            "Runs insert, get, update, full scan and 100-key prefix scans on keel's store\n"
            "and on LMDB (tmpfs, MDB_NOSYNC|MDB_WRITEMAP|MDB_NOMETASYNC), prints ops/s,\n"
            "keel/LMDB ratios and keel's memory per key; the last line is a summary.\n",
            KEYS_DEFAULT, KEYS_MIN, KEYS_MAX, SEED_DEFAULT, KEY_SIZE_DEFAULT, KEY_SIZE_MIN,
            KEY_SIZE_MAX, VALUE_SIZE_DEFAULT, VALUE_SIZE_MAX);
}

static u64 parse_u64(const char *name, const char *text, u64 min, u64 max)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        die("%s: '%s' is not a number", name, text);
    }
    if (v < min || v > max) {
        die("%s: %llu is out of range [%" PRIu64 ", %" PRIu64 "]", name, v, min, max);
    }
    return (u64)v;
}

static void opts_parse(int argc, char **argv, struct bench_opts *o)
{
    static const struct option longopts[] = {
        {"keys", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"key-size", required_argument, NULL, 'k'},
        {"value-size", required_argument, NULL, 'v'},
        {"scan-page", required_argument, NULL, 'p'},
        {"lmdb-dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct bench_opts){KEYS_DEFAULT, SEED_DEFAULT, KEY_SIZE_DEFAULT, VALUE_SIZE_DEFAULT, 0,
                             NULL};
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->keys = parse_u64("--keys", optarg, KEYS_MIN, KEYS_MAX);
            break;
        case 's':
            o->seed = parse_u64("--seed", optarg, 0, UINT64_MAX);
            break;
        case 'k':
            o->key_size = (u32)parse_u64("--key-size", optarg, KEY_SIZE_MIN, KEY_SIZE_MAX);
            break;
        case 'v':
            o->value_size = (u32)parse_u64("--value-size", optarg, 1, VALUE_SIZE_MAX);
            break;
        case 'p':
            o->scan_page = parse_u64("--scan-page", optarg, 0, KEYS_MAX);
            break;
        case 'd':
            if (strlen(optarg) > 48) die("--lmdb-dir: '%s' is longer than 48 bytes", optarg);
            o->lmdb_base = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "engine_bench: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        exit(2);
    }
}

/* ---- the workload ------------------------------------------------------- */

struct sort_entry {
    u64 head; /* the key's first 8 bytes, big-endian, zero-padded */
    u32 index;
};

static int sort_entry_cmp(const void *a, const void *b, void *ctx)
{
    const struct sort_entry *x = a, *y = b;
    if (x->head != y->head) return x->head < y->head ? -1 : 1;
    const struct workload *w = ctx;
    return memcmp(key_at(w, x->index), key_at(w, y->index), w->opts->key_size);
}

/* Sorts the key indexes into key order and refuses duplicate keys (which
 * would make the two systems hold different key counts). */
static void workload_sort(struct workload *w)
{
    u64 n = w->opts->keys;
    struct sort_entry *e = xcalloc(n, sizeof(*e), "sort entries");
    for (u64 i = 0; i < n; i++) {
        u64 head = 0;
        const u8 *k = key_at(w, i);
        for (u32 b = 0; b < 8; b++) {
            head = (head << 8) | (b < w->opts->key_size ? k[b] : 0);
        }
        e[i] = (struct sort_entry){head, (u32)i};
    }
    qsort_r(e, n, sizeof(*e), sort_entry_cmp, w);
    w->sorted = xcalloc(n, sizeof(u32), "sorted order");
    for (u64 i = 0; i < n; i++) {
        if (i > 0 && sort_entry_cmp(&e[i - 1], &e[i], w) == 0) {
            die("seed %" PRIu64 " made duplicate keys at --key-size %u: use longer keys or "
                "another seed",
                w->opts->seed, w->opts->key_size);
        }
        w->sorted[i] = e[i].index;
    }
    free(e);
}

static void permutation(u32 *out, u64 n, u64 *rng)
{
    for (u64 i = 0; i < n; i++) out[i] = (u32)i;
    for (u64 i = n - 1; i > 0; i--) { /* Fisher-Yates */
        u64 j = rand_below(rng, i + 1);
        u32 t = out[i];
        out[i] = out[j];
        out[j] = t;
    }
}

/* The expected digests, computed over the same data the phases must read. */
static void workload_expect(struct workload *w)
{
    const struct bench_opts *o = w->opts;
    w->expect_get = 0;
    for (u64 i = 0; i < o->keys; i++) {
        w->expect_get += digest(value_at(w, w->value_insert[i]), o->value_size);
    }
    w->expect_scan = 0;
    for (u64 i = 0; i < o->keys; i++) {
        u32 k = w->sorted[i];
        u64 d = digest(key_at(w, k), o->key_size) +
                digest(value_at(w, w->value_update[k]), o->value_size);
        w->expect_scan = hash_step(w->expect_scan, d);
    }
    u64 h = 0;
    for (u64 s = 0; s < w->prefix_scans; s++) {
        for (u64 i = w->prefix_pos[s]; i < w->prefix_pos[s] + PREFIX_KEYS; i++) {
            u32 k = w->sorted[i];
            u64 d = digest(key_at(w, k), o->key_size) +
                    digest(value_at(w, w->value_update[k]), o->value_size);
            h = hash_step(h, d);
        }
        if (s + 1 == w->open_scans) w->expect_open = h;
    }
    w->expect_prefix = h;
}

static void workload_build(struct workload *w, const struct bench_opts *o)
{
    u64 rng = o->seed, n = o->keys;
    *w = (struct workload){.opts = o};
    w->keys = xcalloc(n, o->key_size, "keys");
    for (u64 i = 0; i < n * o->key_size; i += 8) {
        u64 r = splitmix64(&rng);
        memcpy(w->keys + i, &r, KEEL_MIN((u64)8, n * o->key_size - i));
    }
    w->pool_size = KEEL_MAX(POOL_SIZE_MIN, (size_t)16 * o->value_size) + o->value_size;
    w->pool = xcalloc(w->pool_size, 1, "value pool");
    for (size_t i = 0; i < w->pool_size; i++) w->pool[i] = (u8)splitmix64(&rng);
    w->value_insert = xcalloc(n, sizeof(u32), "insert values");
    w->value_update = xcalloc(n, sizeof(u32), "update values");
    u64 offsets = w->pool_size - o->value_size + 1;
    for (u64 i = 0; i < n; i++) w->value_insert[i] = (u32)rand_below(&rng, offsets);
    for (u64 i = 0; i < n; i++) w->value_update[i] = (u32)rand_below(&rng, offsets);
    w->get_order = xcalloc(n, sizeof(u32), "get order");
    w->update_order = xcalloc(n, sizeof(u32), "update order");
    permutation(w->get_order, n, &rng);
    permutation(w->update_order, n, &rng);
    workload_sort(w);
    w->prefix_scans = KEEL_MIN((u64)PREFIX_SCANS_MAX, KEEL_MAX(n / 10, (u64)1000));
    w->open_scans = KEEL_MIN(w->prefix_scans, KEEL_MAX(OPEN_SCAN_KEYS / n, (u64)OPEN_SCANS_MIN));
    w->prefix_pos = xcalloc(w->prefix_scans, sizeof(u32), "prefix scans");
    for (u64 s = 0; s < w->prefix_scans; s++) {
        w->prefix_pos[s] = (u32)rand_below(&rng, n - PREFIX_KEYS + 1);
    }
    workload_expect(w);
}

static void workload_free(struct workload *w)
{
    free(w->keys);
    free(w->pool);
    free(w->value_insert);
    free(w->value_update);
    free(w->get_order);
    free(w->update_order);
    free(w->sorted);
    free(w->prefix_pos);
}

/* The exclusive end of prefix scan s: the key PREFIX_KEYS positions on, or
 * "\0" (every key from the start on) when the scan ends at the last key. */
static struct span prefix_end(const struct workload *w, u64 s)
{
    u64 end = (u64)w->prefix_pos[s] + PREFIX_KEYS;
    if (end == w->opts->keys) return span_make("", 1);
    return span_make(key_at(w, w->sorted[end]), w->opts->key_size);
}

/* ---- keel --------------------------------------------------------------- */

static struct mvcc *keel_open(const struct bench_opts *o)
{
    struct mvcc_config c;
    mvcc_config_default(&c);
    /* Two versions per key plus tree and slack, three times over: a cap, not
     * a reservation (the arena takes memory as it goes). */
    u64 budget = ((u64)256 << 20) + o->keys * (o->key_size + o->value_size + 64) * 3;
    c.memory_bytes_max = KEEL_MAX(c.memory_bytes_max, budget);
    if (c.key_size_max < o->key_size) c.key_size_max = o->key_size;
    if (c.value_size_max < o->value_size) c.value_size_max = o->value_size;
    struct mvcc *m = mvcc_create(&c);
    if (m == NULL) die("keel: mvcc_create failed (budget %" PRIu64 " bytes)", budget);
    return m;
}

/* One mvcc_put per key (a batch of one: one revision each), keys in order
 * (NULL: insert order), values from value_off. */
static double keel_write(struct mvcc *m, const struct workload *w, const u32 *order,
                         const u32 *value_off, const char *what)
{
    const struct bench_opts *o = w->opts;
    double t0 = now_s();
    for (u64 i = 0; i < o->keys; i++) {
        u64 k = order ? order[i] : i;
        struct span key = span_make(key_at(w, k), o->key_size);
        struct span value = span_make(value_at(w, value_off[k]), o->value_size);
        int rc = mvcc_put(m, key, value, 0, NULL, NULL);
        if (KEEL_UNLIKELY(rc != KEEL_OK)) {
            die("keel: %s #%" PRIu64 ": mvcc_put: %s", what, i, keel_err_str(rc));
        }
    }
    return now_s() - t0;
}

static double keel_get(struct mvcc *m, const struct workload *w)
{
    const struct bench_opts *o = w->opts;
    struct mvcc_range_req req = {0};
    struct mvcc_range_result res;
    u64 sum = 0;
    double t0 = now_s();
    for (u64 i = 0; i < o->keys; i++) {
        req.key = span_make(key_at(w, w->get_order[i]), o->key_size);
        int rc = mvcc_range(m, &req, &res);
        if (KEEL_UNLIKELY(rc != KEEL_OK)) {
            die("keel: get #%" PRIu64 ": mvcc_range: %s", i, keel_err_str(rc));
        }
        if (KEEL_UNLIKELY(res.kvs_len != 1)) die("keel: get #%" PRIu64 ": key not found", i);
        sum += digest(res.kvs[0].value.ptr, res.kvs[0].value.len);
    }
    double t = now_s() - t0;
    digest_check("keel get", sum, w->expect_get);
    return t;
}

/* Folds a range result into the scan hash. */
static u64 keel_fold(u64 h, const struct mvcc_range_result *res)
{
    for (size_t i = 0; i < res->kvs_len; i++) {
        const struct mvcc_kv *kv = &res->kvs[i];
        h = hash_step(h, digest(kv->key.ptr, kv->key.len) + digest(kv->value.ptr, kv->value.len));
    }
    return h;
}

/* One full ordered scan: every key >= "\0", in pages of `page` keys (0: one
 * call). The next page starts at the last key plus a zero byte, the smallest
 * key after it. */
static u64 keel_scan_pass(struct mvcc *m, const struct workload *w, u64 page, u8 *start_buf)
{
    struct mvcc_range_req req = {0};
    struct mvcc_range_result res;
    req.key = span_make("", 1);
    req.range_end = span_make("", 1);
    req.limit = (i64)page;
    u64 h = 0, seen = 0;
    for (;;) { /* bounded: each call returns >= 1 new key or ends the pass */
        int rc = mvcc_range(m, &req, &res);
        if (rc != KEEL_OK) die("keel: scan: mvcc_range: %s", keel_err_str(rc));
        h = keel_fold(h, &res);
        seen += res.kvs_len;
        if (!res.more || res.kvs_len == 0) break;
        struct span last = res.kvs[res.kvs_len - 1].key;
        memcpy(start_buf, last.ptr, last.len);
        start_buf[last.len] = 0;
        req.key = span_make(start_buf, last.len + 1);
    }
    if (seen != w->opts->keys) {
        die("keel: scan saw %" PRIu64 " keys, expected %" PRIu64, seen, w->opts->keys);
    }
    return h;
}

static double keel_scan(struct mvcc *m, const struct workload *w)
{
    u8 *start_buf = xcalloc(w->opts->key_size + 1, 1, "scan cursor");
    double t0 = now_s();
    u64 h = keel_scan_pass(m, w, w->opts->scan_page, start_buf);
    double t = now_s() - t0;
    free(start_buf);
    digest_check("keel scan", h, w->expect_scan);
    return t;
}

/* Prefix scans 0..scans-1: bounded ([k_i, k_i+100), limit 100) or open-ended
 * ([k_i, "\0"), limit 100; etcd's count walks every key after k_i). */
static double keel_prefix(struct mvcc *m, const struct workload *w, u64 scans, bool open_ended)
{
    struct mvcc_range_req req = {0};
    struct mvcc_range_result res;
    req.limit = PREFIX_KEYS;
    u64 h = 0;
    double t0 = now_s();
    for (u64 s = 0; s < scans; s++) {
        req.key = span_make(key_at(w, w->sorted[w->prefix_pos[s]]), w->opts->key_size);
        req.range_end = open_ended ? span_make("", 1) : prefix_end(w, s);
        int rc = mvcc_range(m, &req, &res);
        if (KEEL_UNLIKELY(rc != KEEL_OK)) die("keel: prefix: mvcc_range: %s", keel_err_str(rc));
        if (KEEL_UNLIKELY(res.kvs_len != PREFIX_KEYS)) {
            die("keel: prefix scan %" PRIu64 " read %zu keys, expected %u", s, res.kvs_len,
                PREFIX_KEYS);
        }
        h = keel_fold(h, &res);
    }
    double t = now_s() - t0;
    digest_check("keel prefix scan", h, open_ended ? w->expect_open : w->expect_prefix);
    return t;
}

static double keel_prefix_bounded(struct mvcc *m, const struct workload *w)
{
    return keel_prefix(m, w, w->prefix_scans, false);
}

static double keel_compact(struct mvcc *m)
{
    double t0 = now_s();
    int rc = mvcc_compact(m, mvcc_revision(m));
    if (rc != KEEL_OK) die("keel: mvcc_compact: %s", keel_err_str(rc));
    return now_s() - t0;
}

static void keel_stats_check(struct mvcc *m, const struct workload *w, struct mvcc_stats *out)
{
    mvcc_stats(m, out);
    if (out->keys_live != w->opts->keys) {
        die("keel: %" PRIu64 " live keys, expected %" PRIu64, out->keys_live, w->opts->keys);
    }
}

/* ---- LMDB --------------------------------------------------------------- */

/* Removes the environment's files and directory; async-signal-safe. */
static void lmdb_dir_remove(void)
{
    if (!g_lmdb_dir_made) return;
    unlink(g_lmdb_data);
    unlink(g_lmdb_lock);
    rmdir(g_lmdb_dir);
    g_lmdb_dir_made = 0;
}

static void lmdb_on_signal(int sig)
{
    lmdb_dir_remove();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* keel's arena uses transparent huge pages; LMDB's map on a tmpfs gets them
 * only if the tmpfs is mounted with huge=. So that both engines run on the
 * same page size, the default mounts a private huge-page tmpfs for LMDB in a
 * mount namespace of this process alone (root only; it vanishes at exit),
 * and falls back to /dev/shm, saying so, where that is not possible. */
static char g_huge_base[64];
static char g_lmdb_pages[160];

static void lmdb_huge_unmount(void)
{
    if (g_huge_base[0] == 0) return;
    (void)umount2(g_huge_base, MNT_DETACH);
    (void)rmdir(g_huge_base);
    g_huge_base[0] = 0;
}

static const char *lmdb_base_pick(const struct bench_opts *o)
{
    if (o->lmdb_base != NULL) {
        snprintf(g_lmdb_pages, sizeof(g_lmdb_pages), "%s as given (--lmdb-dir)", o->lmdb_base);
        return o->lmdb_base;
    }
    const char *why = NULL;
    snprintf(g_huge_base, sizeof(g_huge_base), "/tmp/keel-engine-bench-XXXXXX");
    if (geteuid() != 0)
        why = "not root";
    else if (unshare(CLONE_NEWNS) != 0)
        why = strerror(errno);
    else if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        why = strerror(errno);
    else if (mkdtemp(g_huge_base) == NULL)
        why = strerror(errno);
    else if (mount("tmpfs", g_huge_base, "tmpfs", 0, "huge=always,mode=0700") != 0) {
        why = strerror(errno);
        (void)rmdir(g_huge_base);
    }
    if (why == NULL) {
        atexit(lmdb_huge_unmount);
        snprintf(g_lmdb_pages, sizeof(g_lmdb_pages),
                 "private tmpfs with huge=always (2 MiB pages, as keel's arena)");
        return g_huge_base;
    }
    g_huge_base[0] = 0;
    snprintf(g_lmdb_pages, sizeof(g_lmdb_pages),
             "/dev/shm with 4 KiB pages: no huge-page tmpfs (%s), so keel has the larger pages",
             why);
    return "/dev/shm";
}

static void lmdb_dir_make(const char *base)
{
    snprintf(g_lmdb_dir, sizeof(g_lmdb_dir), "%s/keel-engine-bench-%ld", base, (long)getpid());
    snprintf(g_lmdb_data, sizeof(g_lmdb_data), "%s/data.mdb", g_lmdb_dir);
    snprintf(g_lmdb_lock, sizeof(g_lmdb_lock), "%s/lock.mdb", g_lmdb_dir);
    if (mkdir(g_lmdb_dir, 0700) != 0) die("mkdir %s: %s", g_lmdb_dir, strerror(errno));
    g_lmdb_dir_made = 1;
    struct statfs fs;
    if (statfs(g_lmdb_dir, &fs) != 0) die("statfs %s: %s", g_lmdb_dir, strerror(errno));
    if (fs.f_type != TMPFS_MAGIC_NUMBER) die("%s is not on tmpfs", g_lmdb_dir);
}

static void lmdb_check(int rc, const char *what)
{
    if (KEEL_UNLIKELY(rc != MDB_SUCCESS)) die("lmdb: %s: %s", what, mdb_strerror(rc));
}

static void lmdb_open(struct lmdb *l, const struct bench_opts *o)
{
    /* Room for the data three times over (leaves fill to ~70% under random
     * inserts, and copy-on-write needs free pages), rounded to 1 MiB. */
    u64 map = ((u64)64 << 20) + o->keys * (o->key_size + o->value_size + 64) * 3;
    map = (map + ((u64)1 << 20) - 1) & ~(((u64)1 << 20) - 1);
    lmdb_check(mdb_env_create(&l->env), "mdb_env_create");
    lmdb_check(mdb_env_set_mapsize(l->env, (size_t)map), "mdb_env_set_mapsize");
    unsigned flags = MDB_NOSYNC | MDB_WRITEMAP | MDB_NOMETASYNC;
    lmdb_check(mdb_env_open(l->env, g_lmdb_dir, flags, 0600), "mdb_env_open");
    if ((u64)mdb_env_get_maxkeysize(l->env) < o->key_size) {
        die("lmdb: --key-size %u exceeds LMDB's maximum %d", o->key_size,
            mdb_env_get_maxkeysize(l->env));
    }
    MDB_txn *txn;
    lmdb_check(mdb_txn_begin(l->env, NULL, 0, &txn), "mdb_txn_begin");
    lmdb_check(mdb_dbi_open(txn, NULL, 0, &l->dbi), "mdb_dbi_open");
    lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
}

static void lmdb_close(struct lmdb *l)
{
    mdb_env_close(l->env);
    l->env = NULL;
    if (unlink(g_lmdb_data) != 0) die("unlink %s: %s", g_lmdb_data, strerror(errno));
    if (unlink(g_lmdb_lock) != 0) die("unlink %s: %s", g_lmdb_lock, strerror(errno));
}

static MDB_val mdb_val_make(const void *p, size_t len)
{
    return (MDB_val){len, (void *)(uintptr_t)p};
}

/* mdb_put per key, committing every ops_per_txn puts (1: a transaction per
 * put, as keel's revision per put); keys in order (NULL: insert order). */
static double lmdb_write(struct lmdb *l, const struct workload *w, const u32 *order,
                         const u32 *value_off, u64 ops_per_txn)
{
    const struct bench_opts *o = w->opts;
    MDB_txn *txn = NULL;
    double t0 = now_s();
    for (u64 i = 0; i < o->keys; i++) {
        if (txn == NULL) lmdb_check(mdb_txn_begin(l->env, NULL, 0, &txn), "mdb_txn_begin");
        u64 k = order ? order[i] : i;
        MDB_val key = mdb_val_make(key_at(w, k), o->key_size);
        MDB_val value = mdb_val_make(value_at(w, value_off[k]), o->value_size);
        lmdb_check(mdb_put(txn, l->dbi, &key, &value, 0), "mdb_put");
        if ((i + 1) % ops_per_txn == 0 || i + 1 == o->keys) {
            lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
            txn = NULL;
        }
    }
    return now_s() - t0;
}

/* A read transaction, renewed every LMDB_READ_TXN_OPS operations. */
static void lmdb_read_txn(struct lmdb *l, MDB_txn **txn, u64 op)
{
    if (*txn == NULL) {
        lmdb_check(mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn), "mdb_txn_begin(read)");
    } else if (op % LMDB_READ_TXN_OPS == 0) {
        mdb_txn_reset(*txn);
        lmdb_check(mdb_txn_renew(*txn), "mdb_txn_renew");
    }
}

static double lmdb_get(struct lmdb *l, const struct workload *w)
{
    const struct bench_opts *o = w->opts;
    MDB_txn *txn = NULL;
    u64 sum = 0;
    double t0 = now_s();
    for (u64 i = 0; i < o->keys; i++) {
        lmdb_read_txn(l, &txn, i);
        MDB_val key = mdb_val_make(key_at(w, w->get_order[i]), o->key_size), value;
        lmdb_check(mdb_get(txn, l->dbi, &key, &value), "mdb_get");
        sum += digest(value.mv_data, value.mv_size);
    }
    mdb_txn_abort(txn);
    double t = now_s() - t0;
    digest_check("lmdb get", sum, w->expect_get);
    return t;
}

static double lmdb_scan(struct lmdb *l, const struct workload *w)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val key, value;
    u64 h = 0, seen = 0;
    double t0 = now_s();
    lmdb_check(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin(read)");
    lmdb_check(mdb_cursor_open(txn, l->dbi, &cur), "mdb_cursor_open");
    int rc = mdb_cursor_get(cur, &key, &value, MDB_FIRST);
    while (rc == MDB_SUCCESS) { /* bounded by the keys in the database */
        h = hash_step(h, digest(key.mv_data, key.mv_size) + digest(value.mv_data, value.mv_size));
        seen++;
        rc = mdb_cursor_get(cur, &key, &value, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND) lmdb_check(rc, "mdb_cursor_get");
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    double t = now_s() - t0;
    if (seen != w->opts->keys) die("lmdb: scan saw %" PRIu64 " keys", seen);
    digest_check("lmdb scan", h, w->expect_scan);
    return t;
}

/* Reads [start, end) up to PREFIX_KEYS keys, as keel's bounded range does. */
static u64 lmdb_prefix_one(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *cur, MDB_val start, MDB_val end,
                           bool to_end, u64 h)
{
    MDB_val key = start, value;
    u32 seen = 0;
    int rc = mdb_cursor_get(cur, &key, &value, MDB_SET_RANGE);
    while (rc == MDB_SUCCESS && seen < PREFIX_KEYS) { /* bounded by PREFIX_KEYS */
        if (!to_end && mdb_cmp(txn, dbi, &key, &end) >= 0) break;
        h = hash_step(h, digest(key.mv_data, key.mv_size) + digest(value.mv_data, value.mv_size));
        seen++;
        rc = mdb_cursor_get(cur, &key, &value, MDB_NEXT);
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) lmdb_check(rc, "mdb_cursor_get");
    if (seen != PREFIX_KEYS) die("lmdb: a prefix scan read %u keys", seen);
    return h;
}

static double lmdb_prefix(struct lmdb *l, const struct workload *w)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    u64 h = 0;
    double t0 = now_s();
    for (u64 s = 0; s < w->prefix_scans; s++) {
        lmdb_read_txn(l, &txn, s);
        if (cur == NULL) {
            lmdb_check(mdb_cursor_open(txn, l->dbi, &cur), "mdb_cursor_open");
        } else if (s % LMDB_READ_TXN_OPS == 0) {
            lmdb_check(mdb_cursor_renew(txn, cur), "mdb_cursor_renew");
        }
        struct span end = prefix_end(w, s);
        MDB_val start = mdb_val_make(key_at(w, w->sorted[w->prefix_pos[s]]), w->opts->key_size);
        bool to_end = end.len == 1 && end.ptr[0] == 0;
        h = lmdb_prefix_one(txn, l->dbi, cur, start, mdb_val_make(end.ptr, end.len), to_end, h);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    double t = now_s() - t0;
    digest_check("lmdb prefix scan", h, w->expect_prefix);
    return t;
}

static void lmdb_usage(struct lmdb *l, struct lmdb_memory *mem)
{
    MDB_stat st;
    MDB_txn *txn;
    lmdb_check(mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn), "mdb_txn_begin(read)");
    lmdb_check(mdb_stat(txn, l->dbi, &st), "mdb_stat");
    mdb_txn_abort(txn);
    mem->pages_used = st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    mem->page_size = st.ms_psize;
    mem->depth = st.ms_depth;
}

/* The informational run: a second, fresh environment, 1000 puts per write
 * transaction, so that it pays for its own pages. */
static void lmdb_batched(const struct workload *w, struct timings *t)
{
    struct lmdb l;
    lmdb_open(&l, w->opts);
    progress("lmdb: insert (1000 puts per write txn, fresh environment)");
    phase_add(&t->insert_batch, lmdb_write(&l, w, NULL, w->value_insert, LMDB_BATCH_OPS));
    progress("lmdb: update (1000 puts per write txn)");
    phase_add(&t->update_batch,
              lmdb_write(&l, w, w->update_order, w->value_update, LMDB_BATCH_OPS));
    lmdb_close(&l);
}

/* ---- the run ------------------------------------------------------------ */

typedef double (*keel_read_fn)(struct mvcc *m, const struct workload *w);
typedef double (*lmdb_read_fn)(struct lmdb *l, const struct workload *w);

/* READ_ROUNDS rounds of one read phase on both systems, alternating which goes
 * first; the best and worst round of each are kept. */
static void read_rounds(const char *name, struct systems *sys, const struct workload *w,
                        keel_read_fn keel_fn, lmdb_read_fn lmdb_fn, struct phase_time *keel_t,
                        struct phase_time *lmdb_t)
{
    for (u32 r = 0; r < READ_ROUNDS; r++) {
        fprintf(stderr, "engine_bench: %s, round %u of %u (%s first)\n", name, r + 1, READ_ROUNDS,
                r % 2 == 0 ? "keel" : "lmdb");
        if (r % 2 == 0) phase_add(keel_t, keel_fn(sys->keel, w));
        phase_add(lmdb_t, lmdb_fn(&sys->lmdb, w));
        if (r % 2 == 1) phase_add(keel_t, keel_fn(sys->keel, w));
    }
}

/* The inserts: keel's before LMDB's environment exists, so that the RSS growth
 * over it is keel's alone. */
static void run_inserts(struct systems *sys, const struct workload *w, struct timings *k,
                        struct timings *l, struct keel_memory *km, struct lmdb_memory *lm)
{
    sys->keel = keel_open(w->opts);
    progress("keel: insert (one revision per put)");
    km->before = mem_read();
    phase_add(&k->insert, keel_write(sys->keel, w, NULL, w->value_insert, "insert"));
    km->loaded = mem_read();
    keel_stats_check(sys->keel, w, &km->loaded_stats);
    lmdb_dir_make(lmdb_base_pick(w->opts));
    lmdb_open(&sys->lmdb, w->opts);
    progress("lmdb: insert (one write txn per put)");
    lm->before = mem_read();
    phase_add(&l->insert, lmdb_write(&sys->lmdb, w, NULL, w->value_insert, 1));
    lm->loaded = mem_read();
    lmdb_usage(&sys->lmdb, lm);
}

static void bench_run(const struct workload *w, struct timings *k, struct timings *l,
                      struct keel_memory *km, struct lmdb_memory *lm)
{
    struct systems sys;
    run_inserts(&sys, w, k, l, km, lm);
    read_rounds("get", &sys, w, keel_get, lmdb_get, &k->get, &l->get);
    progress("lmdb: update (one write txn per put)");
    phase_add(&l->update, lmdb_write(&sys.lmdb, w, w->update_order, w->value_update, 1));
    progress("keel: update (one revision per put)");
    phase_add(&k->update, keel_write(sys.keel, w, w->update_order, w->value_update, "update"));
    km->updated = mem_read();
    keel_stats_check(sys.keel, w, &km->updated_stats);
    read_rounds("full scan", &sys, w, keel_scan, lmdb_scan, &k->scan, &l->scan);
    read_rounds("prefix scan", &sys, w, keel_prefix_bounded, lmdb_prefix, &k->prefix, &l->prefix);
    progress("keel: open-ended prefix scan");
    phase_add(&k->open, keel_prefix(sys.keel, w, w->open_scans, true));
    progress("keel: compaction");
    phase_add(&k->compact, keel_compact(sys.keel));
    km->compacted = mem_read();
    keel_stats_check(sys.keel, w, &km->compacted_stats);
    mvcc_destroy(sys.keel);
    lmdb_close(&sys.lmdb);
    lmdb_batched(w, l);
    lmdb_dir_remove();
}

/* ---- report ------------------------------------------------------------- */

static double ratio(double keel_rate, double lmdb_rate)
{
    return lmdb_rate > 0 ? keel_rate / lmdb_rate : 0.0;
}

/* One table row: rates from the best rounds, the ratio of those, then the
 * rates of the worst rounds (the spread; equal to best for one-shot phases). */
static void report_row(const char *name, u64 ops, const struct phase_time *k, u64 lmdb_ops,
                       const struct phase_time *l, const char *how)
{
    double kb = per_s(ops, k->best_s), lb = per_s(lmdb_ops, l->best_s);
    if (l->best_s == 0) { /* keel only */
        printf("%-26s %12.0f %12s %9s %12.0f %12s  %s\n", name, kb, "-", "-",
               per_s(ops, k->worst_s), "-", how);
        return;
    }
    printf("%-26s %12.0f %12.0f %9.2f %12.0f %12.0f  %s\n", name, kb, lb, ratio(kb, lb),
           per_s(ops, k->worst_s), per_s(lmdb_ops, l->worst_s), how);
}

static void report_ops(const struct workload *w, const struct timings *k, const struct timings *l)
{
    u64 n = w->opts->keys, ps = w->prefix_scans;
    struct phase_time none = {0};
    printf("\n%-26s %12s %12s %9s %12s %12s  %s\n", "operation (best round)", "keel ops/s",
           "LMDB ops/s", "keel/LMDB", "keel worst", "LMDB worst", "how");
    report_row("insert", n, &k->insert, n, &l->insert, "put = 1 revision / 1 write txn");
    report_row("get", n, &k->get, n, &l->get, "mvcc_range 1 key / mdb_get, read txn per 1000");
    report_row("update", n, &k->update, n, &l->update, "put = 1 revision / 1 write txn");
    report_row("scan (keys/s)", n, &k->scan, n, &l->scan,
               w->opts->scan_page ? "mvcc_range pages / cursor" : "1 mvcc_range / cursor");
    report_row("prefix 100 (scans/s)", ps, &k->prefix, ps, &l->prefix,
               "[k_i, k_i+100) / SET_RANGE + NEXT to k_i+100");
    report_row("prefix 100 (keys/s)", ps * PREFIX_KEYS, &k->prefix, ps * PREFIX_KEYS, &l->prefix,
               "");
    printf("informational:\n");
    report_row("insert, LMDB 1000/txn", n, &k->insert, n, &l->insert_batch,
               "keel still 1 revision per put");
    report_row("update, LMDB 1000/txn", n, &k->update, n, &l->update_batch,
               "keel still 1 revision per put");
    report_row("prefix open-ended (scans/s)", w->open_scans, &k->open, ps, &l->prefix,
               "keel [k_i, \"\\0\") limit 100: count walks the tail's leaves");
    report_row("keel compaction (keys/s)", n, &k->compact, 0, &none,
               "mvcc_compact(revision): frees N old versions");
}

static void report_slab(const struct mvcc_stats *s, u64 n)
{
    double dn = (double)n;
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "arena reserved", mib(s->memory.reserved_bytes),
           (double)s->memory.reserved_bytes / dn);
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "slab page bytes", mib(s->memory.page_bytes),
           (double)s->memory.page_bytes / dn);
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "slab in use (class-rounded)",
           mib(s->memory.in_use_bytes), (double)s->memory.in_use_bytes / dn);
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "slab requested", mib(s->memory.requested_bytes),
           (double)s->memory.requested_bytes / dn);
}

static double overhead_per_key(const struct keel_memory *mem, const struct bench_opts *o)
{
    double growth = (double)mem->loaded.vm_rss - (double)mem->before.vm_rss;
    double raw = (double)o->keys * (double)(o->key_size + o->value_size);
    return (growth - raw) / (double)o->keys;
}

static void report_later(const char *title, const struct mem_sample *m,
                         const struct keel_memory *mem, const struct mvcc_stats *s, u64 n)
{
    u64 growth = m->rss_anon - mem->before.rss_anon;
    printf("%s: revision %" PRIi64 ", %" PRIu64 " records\n", title, s->revision, s->records);
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "RssAnon growth over the run", mib(growth),
           (double)growth / (double)n);
    report_slab(s, n);
}

static void report_memory(const struct workload *w, const struct keel_memory *mem)
{
    const struct bench_opts *o = w->opts;
    double dn = (double)o->keys;
    u64 raw = o->keys * (o->key_size + o->value_size);
    u64 growth = mem->loaded.vm_rss - mem->before.vm_rss;
    u64 anon = mem->loaded.rss_anon - mem->before.rss_anon;
    printf("\nkeel memory after the insert (1 version per key; LMDB not yet opened):\n");
    printf("  %-30s %10.1f MiB\n", "VmRSS before the load", mib(mem->before.vm_rss));
    printf("  %-30s %10.1f MiB\n", "VmRSS after the load", mib(mem->loaded.vm_rss));
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "VmRSS growth", mib(growth), (double)growth / dn);
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "(of which RssAnon)", mib(anon), (double)anon / dn);
    printf("  %-30s %10.1f MiB %8.1f B/key\n", "raw key + value bytes", mib(raw), (double)raw / dn);
    report_slab(&mem->loaded_stats, o->keys);
    printf("  overhead per key = (RSS growth - raw bytes) / keys = %.1f B (goal <= 32)\n",
           overhead_per_key(mem, o));
    printf("  (slab requested - raw bytes) / keys = %.1f B: record headers and tree nodes\n",
           ((double)mem->loaded_stats.memory.requested_bytes - (double)raw) / dn);
    const struct mvcc_stats *ls = &mem->loaded_stats;
    double tree = (double)ls->tree_bytes;
    printf("    of which the B+tree: %.1f B/key (%" PRIu64 " leaves, %" PRIu64
           " inner nodes, %.0f%% leaf fill); records: %.1f B/key of header and rounding\n",
           tree / dn, ls->tree_leaves, ls->tree_inners,
           100.0 * dn / ((double)ls->tree_leaves * BTREE_LEAF_CAP),
           ((double)ls->memory.in_use_bytes - tree - (double)raw) / dn);
    printf("\nkeel memory, informational (RssAnon: LMDB's tmpfs map is RssShmem):\n");
    report_later("after the update (2 versions per key)", &mem->updated, mem, &mem->updated_stats,
                 o->keys);
    report_later("after compaction (1 version per key; freed objects stay in their classes)",
                 &mem->compacted, mem, &mem->compacted_stats, o->keys);
    printf("  (RssAnon after compaction also holds the full scan's result array, N x %zu B)\n",
           sizeof(struct mvcc_kv));
}

static void report_lmdb_memory(const struct workload *w, const struct lmdb_memory *lm)
{
    double dn = (double)w->opts->keys;
    double raw = dn * (double)(w->opts->key_size + w->opts->value_size);
    double used = (double)(lm->pages_used * lm->page_size);
    double shmem = (double)lm->loaded.rss_shmem - (double)lm->before.rss_shmem;
    printf("\nLMDB memory, informational: %" PRIu64 " pages of %" PRIu64 " B in use after the "
           "insert (depth %u) = %.1f B/key, %.1f B/key over raw; RssShmem growth over its load "
           "%.1f B/key\n",
           lm->pages_used, lm->page_size, lm->depth, used / dn, (used - raw) / dn, shmem / dn);
}

static void report_summary(const struct workload *w, const struct timings *k,
                           const struct timings *l, const struct keel_memory *mem)
{
    u64 n = w->opts->keys, ps = w->prefix_scans;
    printf("\nsummary: keys=%" PRIu64 " insert_ratio=%.2f get_ratio=%.2f update_ratio=%.2f "
           "scan_ratio=%.2f prefix_ratio=%.2f overhead_bytes_per_key=%.1f\n",
           n, ratio(per_s(n, k->insert.best_s), per_s(n, l->insert.best_s)),
           ratio(per_s(n, k->get.best_s), per_s(n, l->get.best_s)),
           ratio(per_s(n, k->update.best_s), per_s(n, l->update.best_s)),
           ratio(per_s(n, k->scan.best_s), per_s(n, l->scan.best_s)),
           ratio(per_s(ps, k->prefix.best_s), per_s(ps, l->prefix.best_s)),
           overhead_per_key(mem, w->opts));
}

/* ---- main --------------------------------------------------------------- */

static void signals_install(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(sigs); i++) {
        if (signal(sigs[i], lmdb_on_signal) == SIG_ERR) die("signal: %s", strerror(errno));
    }
    if (atexit(lmdb_dir_remove) != 0) die("atexit failed");
}

static void print_header(const struct workload *w, double load_start, double load_end)
{
    const struct bench_opts *o = w->opts;
    printf("engine_bench: keel mvcc store vs %s\n", mdb_version(NULL, NULL, NULL));
    printf("keys=%" PRIu64 " key_size=%u value_size=%u seed=%" PRIu64 " (--seed to repeat)\n",
           o->keys, o->key_size, o->value_size, o->seed);
    printf("get and update orders: seeded permutations; %" PRIu64 " prefix scans of %u keys "
           "(%" PRIu64 " open-ended on keel); reads: best of %u rounds, alternating first\n",
           w->prefix_scans, PREFIX_KEYS, w->open_scans, READ_ROUNDS);
    printf("keel full scan: %s\n",
           o->scan_page ? "mvcc_range pages of --scan-page keys" : "one mvcc_range over all keys");
    printf("LMDB: tmpfs, MDB_NOSYNC|MDB_WRITEMAP|MDB_NOMETASYNC, read txn per %u "
           "gets/prefix scans, one read txn per full scan\n",
           LMDB_READ_TXN_OPS);
    printf("pages: keel's arena: 2 MiB chunks with MADV_HUGEPAGE; LMDB's map: %s\n", g_lmdb_pages);
    printf("1-minute load average: %.2f at the start, %.2f at the end (%ld CPUs online)\n",
           load_start, load_end, sysconf(_SC_NPROCESSORS_ONLN));
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    struct workload w;
    struct timings keel_t = {0}, lmdb_t = {0};
    struct keel_memory keel_mem = {0};
    struct lmdb_memory lmdb_mem = {0};
    opts_parse(argc, argv, &o);
    signals_install();
    double load_start = load_average();
    progress("generating keys, values and orders");
    workload_build(&w, &o);
    bench_run(&w, &keel_t, &lmdb_t, &keel_mem, &lmdb_mem);
    print_header(&w, load_start, load_average());
    report_ops(&w, &keel_t, &lmdb_t);
    report_memory(&w, &keel_mem);
    report_lmdb_memory(&w, &lmdb_mem);
    report_summary(&w, &keel_t, &lmdb_t, &keel_mem);
    workload_free(&w);
    return 0;
}
