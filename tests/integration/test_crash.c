/*
 * test_crash.c — crash safety of a real keeld (2 shards) under a pipelined write load
 * (crash_load.h): kill -9 and restart, a torn record appended to a WAL tail, a flipped byte
 * in the middle of a WAL, SIGTERM under load, kill -9 during SIGTERM's drain, kill -9 during
 * recovery (while it cuts a torn tail).
 *
 * Every test is seeded: it prints "KEEL_SEED=n" and KEEL_SEED=n repeats its choices (kill
 * delays, garbage bytes, which shard). The server's timing is not under the seed, so a
 * replay hits another interleaving of the same plan. KEEL_ROUNDS (default 5, at most 64)
 * lengthens the kill -9 test, whose odd rounds send through the router port (half the writes
 * forwarded across cores); KEEL_OPS caps the ops one client sends in a round (default 65536).
 *
 *   KEEL_SEED=7 KEEL_ROUNDS=20 build/tests/test_crash --filter crash/kill9_under_load
 *
 * keeld_proc.h starts keeld --quiet; the tests that read keeld's log or expect it to refuse
 * to start spawn it themselves (crash_spawn: no --quiet, stderr to a file in the data dir).
 */
#include "crash_load.h"
#include "keeld_proc.h"

#include "core/checksum.h"
#include "core/wal_format.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CRASH_SHARDS           2u
#define CRASH_ROUNDS_DEFAULT   5u
#define CRASH_OPS_DEFAULT      65536u
#define CRASH_DELAY_MS_MIN     200u
#define CRASH_DELAY_MS_MAX     1500u
#define CRASH_EXIT_WAIT_MS     30000
#define CRASH_CORRUPT_ACKS_MIN 500u
#define CRASH_LOG_SIZE_MAX     (1u << 20)
#define CRASH_WAL_SEGMENT_SIZE (64ull << 20) /* shard/shard_io.c's segment size */

/* ---- seeds and knobs ---------------------------------------------------------------------- */

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 10) : fallback;
}

static uint64_t crash_seed(const char *test)
{
    uint64_t seed = env_u64("KEEL_SEED", (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32));
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
    return seed;
}

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t rng_between(uint64_t *state, uint32_t lo, uint32_t hi)
{
    return lo + (uint32_t)(rng_next(state) % (hi - lo + 1));
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static uint32_t crash_ops_max(void)
{
    uint64_t ops = env_u64("KEEL_OPS", CRASH_OPS_DEFAULT);
    return ops == 0 || ops > (1u << 24) ? CRASH_OPS_DEFAULT : (uint32_t)ops;
}

/* ---- the server --------------------------------------------------------------------------- */

static bool crash_wait_ready(struct keeld_proc *p, int *status);

static void crash_start(struct keeld_proc *p)
{
    p->shards = CRASH_SHARDS;
    cr_assert(keeld_start(p) == 0, "keeld did not start on %s", p->data_dir);
    int st = 0;
    cr_assert(crash_wait_ready(p, &st), "keeld exited during recovery (status 0x%x)", st);
}

static void crash_kill9(struct keeld_proc *p)
{
    cr_assert(p->pid > 0);
    cr_assert(kill(p->pid, SIGKILL) == 0);
    int st = 0;
    cr_assert(waitpid(p->pid, &st, 0) == p->pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "keeld died before the SIGKILL (status 0x%x)", st);
    p->pid = 0;
}

/* A fresh free port range for p (a killed keeld's ports linger in TIME_WAIT). */
static void crash_pick_ports(struct keeld_proc *p)
{
    uint16_t port = keeld_port_range_pick(p->shards);
    cr_assert(port != 0, "no free port range of %u ports", p->shards + 1);
    p->port = port;
    snprintf(p->endpoint, sizeof(p->endpoint), "127.0.0.1:%u", (unsigned)port);
}

/* keeld without --quiet, stderr (and stdout) to log_path, on a fresh port range. */
static pid_t crash_spawn(struct keeld_proc *p, const char *log_path)
{
    crash_pick_ports(p);
    char bin[512], listen[48], shards[16];
    snprintf(bin, sizeof(bin), "%s/keeld", KEEL_BIN_DIR);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)p->port);
    snprintf(shards, sizeof(shards), "%u", (unsigned)p->shards);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(fd >= 0, "open %s: %s", log_path, strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "--data-dir", p->data_dir, "--listen-client", listen, "--shards", shards,
              (char *)NULL);
        _exit(127);
    }
    close(fd);
    return pid;
}

/* Waits until keeld answers a handshake (its ports accept before recovery ends, the HELLO
 * reply comes after); false if keeld exited first (*status set). */
static bool crash_wait_ready(struct keeld_proc *p, int *status)
{
    int64_t deadline = keeld_now_ms() + CRASH_EXIT_WAIT_MS;
    struct keel_options o;
    keel_options_default(&o);
    o.timeout_ms = 500;
    while (keeld_now_ms() < deadline) {
        pid_t r = waitpid(p->pid, status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            return false;
        }
        keel_client *c = NULL;
        if (keel_connect(p->endpoint, &o, &c) == KEEL_STATUS_OK) {
            keel_close(c);
            return true;
        }
        sleep_ms(20);
    }
    cr_assert_fail("keeld %d neither ready nor exited after %d ms", (int)p->pid,
                   CRASH_EXIT_WAIT_MS);
    return false;
}

static void crash_log_path(const struct keeld_proc *p, const char *name, char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%s", p->data_dir, name);
    cr_assert(n > 0 && (size_t)n < size);
}

/* The whole log file, NUL-terminated (caller frees). */
static char *crash_read_log(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert(f != NULL, "open %s", path);
    char *text = calloc(CRASH_LOG_SIZE_MAX + 1, 1);
    cr_assert(text != NULL);
    size_t n = fread(text, 1, CRASH_LOG_SIZE_MAX, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* ---- the WAL on disk (core/wal_format.h) -------------------------------------------------- */

/* The first or the last segment file of shard's WAL. */
static void crash_wal_segment(const struct keeld_proc *p, uint32_t shard, bool last, char *out,
                              size_t size)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/shard-%u/wal", p->data_dir, shard);
    DIR *d = opendir(dir);
    cr_assert(d != NULL, "opendir %s: %s", dir, strerror(errno));
    unsigned long long best = 0;
    bool found = false;
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
        unsigned long long seq = 0;
        int used = 0;
        if (sscanf(e->d_name, "wal-%16llx.log%n", &seq, &used) != 1 || e->d_name[used] != 0)
            continue;
        if (!found || (last ? seq > best : seq < best)) best = seq;
        found = true;
    }
    closedir(d);
    cr_assert(found, "no WAL segment in %s", dir);
    int n = snprintf(out, size, "%s/" WAL_SEGMENT_NAME_FORMAT, dir, best);
    cr_assert(n > 0 && (size_t)n < size);
}

#define CRASH_RECORDS_KEPT 256u

/* What a segment holds: its valid chain of records from the header on. */
struct crash_segment {
    uint64_t end_offset; /* just past the last valid record */
    uint64_t last_index;
    uint16_t last_type;
    uint64_t records, flushes;            /* flushes: records flagged BATCH_END */
    uint64_t last_flush_first;            /* record number of the last BATCH_START */
    uint64_t offsets[CRASH_RECORDS_KEPT]; /* of the first records */
    uint32_t payload_lens[CRASH_RECORDS_KEPT];
};

static void crash_segment_scan(const char *path, struct crash_segment *out)
{
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    uint8_t *buf = malloc(CRASH_WAL_SEGMENT_SIZE);
    cr_assert(buf != NULL);
    ssize_t got = pread(fd, buf, CRASH_WAL_SEGMENT_SIZE, 0);
    close(fd);
    cr_assert(got >= (ssize_t)WAL_SEGMENT_HEADER_SIZE, "%s: %zd bytes", path, got);
    struct wal_segment_header sh;
    cr_assert(wal_segment_header_decode(buf, &sh), "%s: bad segment header", path);
    uint64_t pos = WAL_SEGMENT_HEADER_SIZE;
    for (;;) { /* bounded: each turn consumes a record of the segment */
        struct wal_record_header h;
        uint64_t size =
            wal_record_check(buf + pos, (uint64_t)got - pos, CRASH_WAL_SEGMENT_SIZE, &h);
        if (size == 0) break;
        cr_assert(h.index == sh.first_index + out->records, "%s: index %llu at %llu", path,
                  (unsigned long long)h.index, (unsigned long long)pos);
        if (out->records < CRASH_RECORDS_KEPT) {
            out->offsets[out->records] = pos;
            out->payload_lens[out->records] = h.payload_len;
        }
        out->records++;
        out->flushes += (h.flags & WAL_FLAG_BATCH_END) != 0;
        if ((h.flags & WAL_FLAG_BATCH_START) != 0) out->last_flush_first = out->records - 1;
        out->last_index = h.index;
        out->last_type = h.type;
        pos += size;
    }
    out->end_offset = pos;
    free(buf);
}

static void crash_pwrite(const char *path, const void *bytes, size_t len, uint64_t offset)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
    cr_assert(pwrite(fd, bytes, len, (off_t)offset) == (ssize_t)len, "pwrite %s", path);
    cr_assert(fsync(fd) == 0);
    close(fd);
}

/* A record header that claims payload_len bytes, followed by fewer (a torn write). */
static size_t crash_torn_record(uint8_t *out, const struct crash_segment *s, uint64_t *rng)
{
    uint32_t claimed = rng_between(rng, 512, 4096);
    uint32_t written = rng_between(rng, 1, claimed - 1);
    store_u32_le(out + 0, claimed);
    store_u16_le(out + 4, s->last_type != 0 ? s->last_type : 1);
    store_u16_le(out + 6, WAL_FLAG_BATCH_START);
    store_u64_le(out + 8, s->last_index + 1);
    for (uint32_t i = 0; i < written; i++) out[WAL_RECORD_HEADER_SIZE + i] = (uint8_t)rng_next(rng);
    return WAL_RECORD_HEADER_SIZE + written;
}

static size_t crash_random_run(uint8_t *out, uint64_t *rng)
{
    size_t len = rng_between(rng, 8, 600);
    for (size_t i = 0; i < len; i++) out[i] = (uint8_t)rng_next(rng);
    out[0] |= 1; /* a nonzero first byte, so the run is not mistaken for zeroed space */
    return len;
}

/* ---- fixture ------------------------------------------------------------------------------ */

struct crash {
    struct keeld_proc p;
    struct load_history h;
    struct load_run run;
    uint64_t rng;
    uint32_t ops_max;
    bool router_only; /* the load's clients use the router port only */
};

/* One per test process (Criterion runs each test in its own): static, so what a failed
 * assertion leaves behind stays reachable and LeakSanitizer does not bury the failure. */
static struct crash crash_fixture;

static struct crash *crash_new(const char *test)
{
    struct crash *f = &crash_fixture;
    memset(f, 0, sizeof(*f));
    f->rng = crash_seed(test);
    f->ops_max = crash_ops_max();
    load_history_init(&f->h);
    return f;
}

static void crash_free(struct crash *f)
{
    keeld_cleanup(&f->p);
    load_history_free(&f->h);
}

/* After every test, passed or failed: stop keeld and remove the data dir (128 MiB of
 * preallocated WAL), unless KEEL_KEEP_DATA is set to look at it. */
static void crash_fini(void)
{
    struct crash *f = &crash_fixture;
    if (f->p.pid > 0) keeld_stop(&f->p);
    if (f->p.data_dir[0] != 0 && getenv("KEEL_KEEP_DATA") != NULL) {
        fprintf(stderr, "test_crash: kept the data dir %s\n", f->p.data_dir);
        return;
    }
    crash_free(f);
}

TestSuite(crash, .fini = crash_fini);

/* Shard 0 must own LOAD_PREFIX0's keys and shard 1 LOAD_PREFIX1's (the default split). */
static void crash_check_split(const struct keeld_proc *p)
{
    keel_client *c = NULL;
    cr_assert(keel_connect(p->endpoint, NULL, &c) == KEEL_STATUS_OK);
    struct keel_result res;
    cr_assert(keel_shard_map(c, &res) == KEEL_STATUS_OK);
    const struct keel_shard_map_result *m = &res.u.shard_map;
    cr_assert(m->shards_len == CRASH_SHARDS);
    const struct keel_shard_range *s0 = &m->shards[0];
    cr_assert(s0->shard_id == 0 && s0->end_key_len > 0);
    size_t n0 = strlen(LOAD_PREFIX0), n1 = strlen(LOAD_PREFIX1);
    int lo = memcmp(s0->end_key, LOAD_PREFIX0, s0->end_key_len < n0 ? s0->end_key_len : n0);
    int hi = memcmp(s0->end_key, LOAD_PREFIX1, s0->end_key_len < n1 ? s0->end_key_len : n1);
    cr_assert(lo > 0 && hi < 0, "the split '%.*s' must fall between %s and %s",
              (int)s0->end_key_len, (const char *)s0->end_key, LOAD_PREFIX0, LOAD_PREFIX1);
    keel_close(c);
}

/* Runs the load for delay_ms; the caller then stops the server and calls crash_load_end. */
static void crash_load_begin(struct crash *f, uint32_t delay_ms)
{
    int rc = load_start(&f->run, &f->h, f->p.port, f->ops_max, f->router_only);
    cr_assert(rc == KEEL_STATUS_OK, "load clients: %s", keel_strerror(rc));
    sleep_ms(delay_ms);
}

static void crash_load_end(struct crash *f, const char *how)
{
    load_finish(&f->run);
    const struct load_round *r = f->run.r;
    cr_log_info("round %u: %s after %llu acknowledged (shard 0: %llu, shard 1: %llu), %llu "
                "refused (GOAWAY %llu, SHUTTING_DOWN replies %llu), %llu without reply; counter "
                "acknowledged %llu",
                f->run.round, how, (unsigned long long)r->acked,
                (unsigned long long)atomic_load(&f->run.acks[0]),
                (unsigned long long)atomic_load(&f->run.acks[1]), (unsigned long long)r->refused,
                (unsigned long long)atomic_load(&f->run.goaways),
                (unsigned long long)atomic_load(&f->run.shutting_downs),
                (unsigned long long)r->closed, (unsigned long long)f->h.counter_acked);
    cr_assert(f->h.unexpected_count == 0, "%llu replies with an unexpected status, first: %s",
              (unsigned long long)f->h.unexpected_count,
              f->h.unexpected_status == 1000 ? "a txn without compares that did not succeed"
                                             : keel_strerror(f->h.unexpected_status));
    cr_assert(r->acked > 0, "round %u: no op was acknowledged before %s", f->run.round, how);
}

static void crash_check(struct crash *f, const char *when)
{
    uint64_t problems = load_check(&f->h, f->p.port);
    cr_assert(problems == 0,
              "%s: %llu problems (see the log above; KEEL_KEEP_DATA=1 keeps data dir %s)", when,
              (unsigned long long)problems, f->p.data_dir);
}

static void crash_stop_clean(struct crash *f)
{
    int st = keeld_stop(&f->p);
    cr_assert(keeld_exited_cleanly(st), "keeld did not exit 0 on SIGTERM (status 0x%x)", st);
}

/* ---- 1. kill -9 under load, restart, repeat ----------------------------------------------- */

Test(crash, kill9_under_load)
{
    struct crash *f = crash_new("crash/kill9_under_load");
    uint64_t rounds = env_u64("KEEL_ROUNDS", CRASH_ROUNDS_DEFAULT);
    if (rounds == 0) rounds = CRASH_ROUNDS_DEFAULT;
    if (rounds > LOAD_ROUNDS_MAX) rounds = LOAD_ROUNDS_MAX;
    crash_start(&f->p);
    crash_check_split(&f->p);
    for (uint32_t round = 0; round < rounds; round++) {
        f->router_only = round % 2 == 1; /* odd rounds: forwarded writes must be durable too */
        crash_load_begin(f, rng_between(&f->rng, CRASH_DELAY_MS_MIN, CRASH_DELAY_MS_MAX));
        crash_kill9(&f->p);
        crash_load_end(f, "SIGKILL");
        crash_start(&f->p);
        char when[64];
        snprintf(when, sizeof(when), "after kill -9 number %u", round + 1);
        crash_check(f, when);
    }
    crash_stop_clean(f);
    crash_free(f);
}

/* ---- 2. a torn record, then a run of random bytes, after the tail ------------------------- */

/* Where crash_tear_tail wrote its garbage. */
struct crash_tear {
    char path[600];
    uint64_t offset;
    size_t len;
};

/* After the restart the cut must have zeroed the garbage (core/wal.h, recovery). */
static void crash_tear_gone(const struct crash_tear *t)
{
    uint8_t bytes[WAL_RECORD_HEADER_SIZE + 4096];
    int fd = open(t->path, O_RDONLY | O_CLOEXEC);
    cr_assert(fd >= 0, "open %s: %s", t->path, strerror(errno));
    cr_assert(pread(fd, bytes, t->len, (off_t)t->offset) == (ssize_t)t->len);
    close(fd);
    /* Since replication, a restarted single node appends a no-op entry of its new term at once:
     * valid records may already cover part of the cut range. The rest must be zeros. */
    struct crash_segment *seg = calloc(1, sizeof(*seg));
    cr_assert(seg != NULL);
    crash_segment_scan(t->path, seg);
    for (size_t i = 0; i < t->len; i++) {
        if (t->offset + i < seg->end_offset) continue;
        cr_assert(bytes[i] == 0, "%s: byte %llu is 0x%02x after the cut, want 0", t->path,
                  (unsigned long long)(t->offset + i), bytes[i]);
    }
    free(seg);
}

/* Appends garbage after the last record of shard's tail segment; true: a torn record. */
static void crash_tear_tail(struct crash *f, uint32_t shard, bool torn_record, struct crash_tear *t)
{
    char path[600];
    crash_wal_segment(&f->p, shard, true, path, sizeof(path));
    struct crash_segment *s = calloc(1, sizeof(*s));
    cr_assert(s != NULL);
    crash_segment_scan(path, s);
    uint8_t garbage[WAL_RECORD_HEADER_SIZE + 4096];
    size_t len =
        torn_record ? crash_torn_record(garbage, s, &f->rng) : crash_random_run(garbage, &f->rng);
    cr_assert(s->end_offset + len <= CRASH_WAL_SEGMENT_SIZE);
    cr_log_info("shard %u: %zu bytes of %s at offset %llu of %s (last index %llu)", shard, len,
                torn_record ? "torn record" : "random bytes", (unsigned long long)s->end_offset,
                path, (unsigned long long)s->last_index);
    crash_pwrite(path, garbage, len, s->end_offset);
    snprintf(t->path, sizeof(t->path), "%s", path);
    t->offset = s->end_offset;
    t->len = len;
    free(s);
}

/* Restarts keeld with its log in name and wants the cut of shard's tail reported. */
static void crash_restart_logged(struct crash *f, uint32_t shard, const char *name)
{
    char log_path[600];
    crash_log_path(&f->p, name, log_path, sizeof(log_path));
    f->p.pid = crash_spawn(&f->p, log_path);
    int st = 0;
    bool ready = crash_wait_ready(&f->p, &st);
    char *log = crash_read_log(log_path);
    cr_assert(ready, "keeld refused to start after a torn tail (status 0x%x); its log:\n%s", st,
              log);
    char want[64];
    snprintf(want, sizeof(want), "shard %u: cut a torn tail", shard);
    cr_assert(strstr(log, want) != NULL, "keeld's log does not say '%s':\n%s", want, log);
    free(log);
}

Test(crash, torn_tail)
{
    struct crash *f = crash_new("crash/torn_tail");
    uint32_t shard = (uint32_t)(rng_next(&f->rng) % CRASH_SHARDS);
    crash_start(&f->p);
    for (uint32_t variant = 0; variant < 2; variant++) {
        crash_load_begin(f, rng_between(&f->rng, CRASH_DELAY_MS_MIN, CRASH_DELAY_MS_MAX / 2));
        crash_kill9(&f->p);
        crash_load_end(f, "SIGKILL");
        struct crash_tear t;
        crash_tear_tail(f, shard, variant == 0, &t);
        crash_restart_logged(f, shard, variant == 0 ? "keeld-torn.log" : "keeld-random.log");
        crash_tear_gone(&t);
        crash_check(f, variant == 0 ? "after a torn record" : "after random bytes");
        shard = (shard + 1) % CRASH_SHARDS;
    }
    crash_stop_clean(f);
    crash_free(f);
}

/* ---- 3. a flipped byte in an early record: refuse to start -------------------------------- */

/* Flips one bit of an early record of shard's first segment that later flushes follow. */
static void crash_flip_early(struct crash *f, uint32_t shard, char *path, size_t path_size)
{
    crash_wal_segment(&f->p, shard, false, path, path_size);
    struct crash_segment *s = calloc(1, sizeof(*s));
    cr_assert(s != NULL);
    crash_segment_scan(path, s);
    cr_assert(s->flushes >= 3 && s->last_flush_first > 1,
              "%s: %llu records in %llu flushes: not a multi-flush log", path,
              (unsigned long long)s->records, (unsigned long long)s->flushes);
    uint64_t early =
        s->last_flush_first < CRASH_RECORDS_KEPT ? s->last_flush_first : CRASH_RECORDS_KEPT;
    uint32_t j = (uint32_t)(rng_next(&f->rng) % (early / 2 + 1));
    uint64_t at = s->offsets[j] + WAL_RECORD_HEADER_SIZE +
                  (s->payload_lens[j] > 0 ? rng_next(&f->rng) % s->payload_lens[j] : 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint8_t byte = 0;
    cr_assert(fd >= 0 && pread(fd, &byte, 1, (off_t)at) == 1);
    close(fd);
    byte ^= (uint8_t)(1u << (rng_next(&f->rng) % 8));
    cr_log_info("shard %u: flip a bit at offset %llu (record %u of %llu, %llu flushes) of %s",
                shard, (unsigned long long)at, j, (unsigned long long)s->records,
                (unsigned long long)s->flushes, path);
    crash_pwrite(path, &byte, 1, at);
    free(s);
}

Test(crash, corrupt_middle)
{
    struct crash *f = crash_new("crash/corrupt_middle");
    uint32_t shard = (uint32_t)(rng_next(&f->rng) % CRASH_SHARDS);
    crash_start(&f->p);
    crash_load_begin(f, rng_between(&f->rng, CRASH_DELAY_MS_MIN, CRASH_DELAY_MS_MAX / 2));
    /* A multi-flush log on the shard: enough acknowledged ops there (a slow fdatasync under
     * a sanitizer can hold a shard's first acks back past the delay). */
    cr_assert(load_wait_acks(&f->run, shard, CRASH_CORRUPT_ACKS_MIN, CRASH_EXIT_WAIT_MS),
              "shard %u acknowledged %llu ops in %d ms", shard,
              (unsigned long long)atomic_load(&f->run.acks[shard]), CRASH_EXIT_WAIT_MS);
    crash_kill9(&f->p);
    crash_load_end(f, "SIGKILL");
    char path[600], log_path[600];
    crash_flip_early(f, shard, path, sizeof(path));
    crash_log_path(&f->p, "keeld-corrupt.log", log_path, sizeof(log_path));
    f->p.pid = crash_spawn(&f->p, log_path);
    int st = 0;
    bool ready = crash_wait_ready(&f->p, &st);
    char *log = crash_read_log(log_path);
    cr_assert(!ready, "keeld started on a WAL with a corrupt record in the middle; its log:\n%s",
              log);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "keeld's exit status 0x%x; its log:\n%s", st,
              log);
    char want[64];
    snprintf(want, sizeof(want), "shard-%u/wal", shard);
    cr_assert(strstr(log, want) != NULL && strstr(log, "corrupt") != NULL,
              "keeld's log names neither the WAL (%s) nor the corruption:\n%s", want, log);
    cr_assert(strstr(log, "Sanitizer") == NULL && strstr(log, "runtime error") == NULL,
              "keeld's log:\n%s", log);
    free(log);
    crash_free(f);
}

/* ---- 4. SIGTERM under load ---------------------------------------------------------------- */

Test(crash, sigterm_under_load)
{
    struct crash *f = crash_new("crash/sigterm_under_load");
    crash_start(&f->p);
    crash_load_begin(f, rng_between(&f->rng, CRASH_DELAY_MS_MIN, CRASH_DELAY_MS_MAX));
    int st = keeld_stop(&f->p); /* the clients keep submitting meanwhile */
    crash_load_end(f, "SIGTERM");
    cr_assert(keeld_exited_cleanly(st), "keeld did not exit 0 on SIGTERM under load (0x%x)", st);
    crash_start(&f->p);
    crash_check(f, "after SIGTERM under load");
    crash_stop_clean(f);
    crash_free(f);
}

/* SIGTERM under a load that goes through the router port (half of it forwarded to the other
 * shard): a forwarded request answered after the GOAWAY would be executed yet reported as not
 * executed. */
Test(crash, sigterm_under_router_load)
{
    struct crash *f = crash_new("crash/sigterm_under_router_load");
    f->router_only = true;
    crash_start(&f->p);
    crash_load_begin(f, rng_between(&f->rng, CRASH_DELAY_MS_MIN, CRASH_DELAY_MS_MAX));
    int st = keeld_stop(&f->p);
    crash_load_end(f, "SIGTERM");
    cr_assert(keeld_exited_cleanly(st), "keeld did not exit 0 on SIGTERM under load (0x%x)", st);
    crash_start(&f->p);
    crash_check(f, "after SIGTERM under a router-port load");
    crash_stop_clean(f);
    crash_free(f);
}

/* ---- 5. kill -9 while SIGTERM drains ------------------------------------------------------ */

/* SIGTERM, then SIGKILL 0-40 ms later (if keeld is still draining): replies sent during the
 * drain were durable, and a GOAWAY'd op was not executed. */
static void crash_term_then_kill(struct crash *f)
{
    cr_assert(kill(f->p.pid, SIGTERM) == 0);
    uint32_t delay_ms = rng_between(&f->rng, 0, 40);
    sleep_ms(delay_ms);
    kill(f->p.pid, SIGKILL); /* may have exited already: then this is a no-op on a zombie */
    int st = 0;
    cr_assert(waitpid(f->p.pid, &st, 0) == f->p.pid);
    cr_assert((WIFEXITED(st) && WEXITSTATUS(st) == 0) ||
                  (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL),
              "keeld's status 0x%x after SIGTERM", st);
    cr_log_info("SIGKILL %u ms after SIGTERM: %s", delay_ms,
                WIFSIGNALED(st) ? "killed during the drain" : "keeld had exited 0");
    f->p.pid = 0;
}

Test(crash, kill9_while_draining)
{
    struct crash *f = crash_new("crash/kill9_while_draining");
    crash_start(&f->p);
    for (uint32_t round = 0; round < 3; round++) {
        crash_load_begin(f, rng_between(&f->rng, CRASH_DELAY_MS_MIN, CRASH_DELAY_MS_MAX / 2));
        crash_term_then_kill(f);
        crash_load_end(f, "SIGTERM then SIGKILL");
        crash_start(&f->p);
        crash_check(f, "after a kill -9 during the drain");
    }
    crash_stop_clean(f);
    crash_free(f);
}

/* ---- 6. kill -9 during recovery (and its cut of a torn tail) ------------------------------ */

/* Starts keeld (log in name) and kills it 0-30 ms later, likely inside recovery. */
static void crash_kill_starting(struct crash *f, const char *name)
{
    char log_path[600];
    crash_log_path(&f->p, name, log_path, sizeof(log_path));
    f->p.pid = crash_spawn(&f->p, log_path);
    uint32_t delay_ms = rng_between(&f->rng, 0, 400);
    sleep_ms(delay_ms);
    kill(f->p.pid, SIGKILL);
    int st = 0;
    cr_assert(waitpid(f->p.pid, &st, 0) == f->p.pid);
    f->p.pid = 0;
    char *log = crash_read_log(log_path);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "keeld exited by itself during recovery (0x%x); its log:\n%s", st, log);
    size_t len = strlen(log);
    while (len > 0 && log[len - 1] == '\n') log[--len] = 0;
    const char *last = strrchr(log, '\n');
    cr_log_info("killed %u ms into a start, after: %s", delay_ms,
                last != NULL  ? last + 1
                : log[0] != 0 ? log
                              : "(no log line)");
    free(log);
}

Test(crash, kill9_during_recovery)
{
    struct crash *f = crash_new("crash/kill9_during_recovery");
    uint32_t shard = (uint32_t)(rng_next(&f->rng) % CRASH_SHARDS);
    crash_start(&f->p);
    crash_load_begin(f, rng_between(&f->rng, CRASH_DELAY_MS_MIN, CRASH_DELAY_MS_MAX / 2));
    crash_kill9(&f->p);
    crash_load_end(f, "SIGKILL");
    struct crash_tear t;
    crash_tear_tail(f, shard, true, &t);
    for (uint32_t i = 0; i < 4; i++) crash_kill_starting(f, "keeld-killed.log");
    crash_start(&f->p);
    crash_tear_gone(&t);
    crash_check(f, "after kills during recovery");
    crash_stop_clean(f);
    crash_free(f);
}
