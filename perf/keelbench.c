/*
 * keelbench.c — keel's load generator: the keel driver and main.
 *
 *   keelbench --endpoints HOST:PORT[,HOST:PORT...] --op put|get|mixed --conns N --depth N
 *             --keys N --key-size B --value-size B --duration S   (or --requests N)
 *
 * Workload model (bench_workload.h has it in full; drivers for ZooKeeper and etcd are to
 * share it, so every system sees the same load):
 *  - Closed loop: conns connections, each keeping depth requests in flight; a completed
 *    request is replaced at once. Connection i belongs to load-generator thread
 *    i % threads; a thread owns its libkeel clients (libkeel is not thread-safe per
 *    client), so threads share nothing on the request path.
 *  - Keys: keys distinct printable keys of key_size bytes, a bijective scramble of the key
 *    index printed in hex (then '.' padding), picked uniformly. Hex keys spread over
 *    keel's range shards; a fixed prefix with zero-padded decimals would all fall into
 *    one shard. Values: value_size random printable bytes (a random window of a
 *    per-thread pool made at start).
 *  - put: PUT key value. get: a linearizable single-key RANGE. mixed: a get with
 *    probability read_ratio (default 0.9), else a put.
 *  - Phases: connect (every client, before any load; a failure exits 1), --fsync-probe,
 *    preload (get and mixed, unless --no-preload: each thread puts its slice of the key
 *    space, up to KB_PRELOAD_DEPTH requests in flight per connection, not measured),
 *    warmup (warmup_s of load, not measured), the measured run (duration_s, or
 *    requests in total), then a drain of what is still in flight (measured, up to
 *    KB_DRAIN_TIMEOUT_S; what is left then counts as errors).
 *  - Latency: CLOCK_MONOTONIC just before keel_submit_* to the start of the request's
 *    callback (inside keel_poll), per request, into per-thread bench_hist histograms
 *    (no allocation per request), merged at the end. A request is measured when it was
 *    submitted after the warmup. Failed requests are errors, not latencies.
 *  - Several endpoints (--endpoints a,b,c): connection i connects to endpoint i first (the
 *    list rotated), so connections spread over the members. A NOT_LEADER reply (counted as
 *    an error: it was not executed) names the leader; the connection then stops
 *    submitting, drains, and keel_follow_leader moves it to that member before it takes
 *    load again ("leader moves" in the report). With --shard-aware, libkeel routes each
 *    shard's connection to the shard port of its leader's node itself (leader routing,
 *    client/keel.h), and moves that shard alone after NOT_LEADER; the whole-client move
 *    above is then not used. The report counts the shard connections that went to their
 *    leaders, after connecting and before closing.
 *  - Waiting: a thread waits on all its live clients at once in keel_poll_many (one
 *    poll() over every connection, up to KB_POLL_TIMEOUT_MS), so a thread with nothing to
 *    read sleeps in the kernel instead of taking CPU from a server on the same cores; the
 *    requests a round submits leave in one send() per connection at the next wait.
 *
 * Output: the settings line; a progress line per second on a terminal; ops/s, errors
 * (one line per distinct status, keel_strerror), latency percentiles in ms; the last line
 * is "summary: op=... ops_s=... p50_ms=... p99_ms=... p999_ms=... max_ms=... errors=N"
 * (+ " fsync_p50_ms=... put_p50_vs_fdatasync=..." with --fsync-probe). Exit 0 when the
 * run measured successful requests, 1 otherwise or on a setup error.
 */
#include "client/keel.h"
#include "core/assert.h"
#include "core/types.h"
#include "perf/bench_fsync.h"
#include "perf/bench_stats.h"
#include "perf/bench_workload.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KB_PRELOAD_DEPTH    256u   /* puts in flight per connection while preloading */
#define KB_POLL_TIMEOUT_MS  100    /* a blocked thread rechecks its deadline this often */
#define KB_DRAIN_TIMEOUT_S  10u    /* wait for in-flight requests after the run */
#define KB_STATUSES_MAX     16u    /* distinct error statuses listed; more count as other */
#define KB_POOL_EXTRA_BYTES 65536u /* value pool = value_size + this: random windows */

/* ---- state ------------------------------------------------------------------------------ */

struct kb_thread;
struct kb_conn;

struct kb_slot { /* one request in flight: the callback's ctx */
    struct kb_conn *conn;
    u64 submit_ns;
    u32 index; /* in conn->slots */
    u8 kind;   /* enum bench_kind */
    bool measured;
};

struct kb_conn {
    keel_client *client;
    struct kb_thread *thread;
    struct kb_slot *slots; /* depth of them */
    u32 *free;             /* indexes of free slots, a stack of depth entries */
    u32 free_len;
    bool dead;
    bool shard_routing; /* libkeel moves shards to their leaders: no whole-client moves */
    u64 leader_hint;    /* NOT_LEADER's detail: move there once drained; 0: none */
};

struct kb_status_count {
    int status;
    u64 count;
};

struct kb_errors {
    u64 total;
    struct kb_status_count statuses[KB_STATUSES_MAX];
    u32 statuses_len;
    u64 other; /* statuses past KB_STATUSES_MAX distinct ones */
};

struct kb_shared {
    pthread_barrier_t start; /* threads (after preload) and main */
    atomic_uint threads_done;
};

struct kb_thread {
    pthread_t tid;
    const struct bench_config *cfg;
    struct kb_shared *shared;
    struct kb_conn *conns;
    keel_client **polled; /* the live clients, for keel_poll_many: conns_len entries */
    u32 conns_len, alive, preload_depth;
    struct bench_rng rng;
    char *key;  /* key_size bytes of scratch */
    char *pool; /* random printable bytes for values */
    size_t pool_len;
    struct bench_hist *hist[BENCH_KINDS];
    u64 budget;             /* --requests: measured submits of this thread */
    u64 submitted_measured; /* measured submits so far */
    u64 measure_start_ns, last_ns, ops_measured;
    u64 preload_next, preload_end, preload_left;
    u64 unanswered, conns_lost, leader_moves;
    u64 shard_conns_end, shard_conns_leader_end; /* keel_shard_routes before closing */
    u64 shard_moves;                             /* keel_shard_moves before closing */
    bool closing;                                /* after the drain: callbacks only count errors */
    struct kb_errors errors;
    atomic_ullong ops_progress; /* successful completions, read by main for progress */
};

struct kb_bench {
    struct bench_config cfg;
    struct kb_shared shared;
    struct kb_thread *threads;
    struct bench_hist *fsync;
    u64 shard_conns, shard_conns_leader; /* keel_shard_routes after connecting */
};

static u64 kb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u64)ts.tv_sec * 1000000000u + (u64)ts.tv_nsec;
}

/* ---- callbacks -------------------------------------------------------------------------- */

static void kb_error(struct kb_errors *e, int status, u64 count)
{
    ASSERT(status != KEEL_STATUS_OK);
    e->total += count;
    for (u32 i = 0; i < e->statuses_len; i++) {
        if (e->statuses[i].status != status) continue;
        e->statuses[i].count += count;
        return;
    }
    if (e->statuses_len == KB_STATUSES_MAX) {
        e->other += count;
        return;
    }
    e->statuses[e->statuses_len++] = (struct kb_status_count){.status = status, .count = count};
}

static void kb_done(void *ctx, uint64_t request_id, int status, const struct keel_result *result)
{
    (void)request_id;
    u64 now_ns = kb_now_ns();
    struct kb_slot *s = ctx;
    struct kb_conn *k = s->conn;
    struct kb_thread *t = k->thread;
    ASSERT(k->free_len < t->cfg->depth);
    k->free[k->free_len++] = s->index;
    if (t->closing) t->unanswered++;
    if (status != KEEL_STATUS_OK) {
        if (status == KEEL_STATUS_NOT_LEADER && result->error.detail != 0 && !k->shard_routing)
            k->leader_hint = result->error.detail;
        kb_error(&t->errors, status, 1);
        return;
    }
    atomic_fetch_add_explicit(&t->ops_progress, 1, memory_order_relaxed);
    if (!s->measured) return;
    ASSERT(now_ns >= s->submit_ns);
    bench_hist_record(t->hist[s->kind], now_ns - s->submit_ns);
    t->ops_measured++;
    t->last_ns = now_ns;
}

static void kb_preload_done(void *ctx, uint64_t request_id, int status,
                            const struct keel_result *result)
{
    (void)request_id;
    struct kb_conn *k = ctx;
    struct kb_thread *t = k->thread;
    ASSERT(t->preload_left > 0);
    t->preload_left--;
    if (status == KEEL_STATUS_NOT_LEADER && result->error.detail != 0 && !k->shard_routing)
        k->leader_hint = result->error.detail;
    if (status != KEEL_STATUS_OK) kb_error(&t->errors, status, 1);
}

/* ---- load-generator thread -------------------------------------------------------------- */

static void kb_conn_dead(struct kb_thread *t, struct kb_conn *k)
{
    if (k->dead) return;
    ASSERT(t->alive > 0);
    k->dead = true;
    t->alive--;
    t->conns_lost++;
}

/* Sends what every live client queued and waits (up to timeout_ms) in one keel_poll_many
 * for replies on any of them; a client whose connections are all lost is marked dead. */
static void kb_poll_all(struct kb_thread *t, int timeout_ms)
{
    u32 n = 0;
    for (u32 i = 0; i < t->conns_len; i++)
        if (!t->conns[i].dead) t->polled[n++] = t->conns[i].client;
    ASSERT(n == t->alive);
    if (n == 0) return;
    int rc = keel_poll_many(t->polled, (int)n, timeout_ms);
    ASSERT(rc >= 0 || rc == KEEL_STATUS_CLOSED || rc == KEEL_STATUS_NO_MEMORY);
    for (u32 i = 0; i < t->conns_len; i++) {
        struct kb_conn *k = &t->conns[i];
        if (!k->dead && keel_connection_count(k->client) == 0) kb_conn_dead(t, k);
    }
}

/* True when k may take requests: no leader move waits for it, or the move is done (a
 * connection told NOT_LEADER drains, then moves to the member named, then resumes). */
static bool kb_conn_ready(struct kb_thread *t, struct kb_conn *k)
{
    if (k->dead) return false;
    if (k->leader_hint == 0) return true;
    if (keel_pending(k->client) > 0) return false;
    u64 leader = k->leader_hint;
    k->leader_hint = 0;
    int rc = keel_follow_leader(k->client, leader);
    t->leader_moves++;
    if (rc != KEEL_STATUS_OK) kb_error(&t->errors, rc, 1);
    if (keel_connection_count(k->client) == 0) kb_conn_dead(t, k);
    return !k->dead;
}

static const char *kb_value(struct kb_thread *t)
{
    u32 size = t->cfg->value_size_bytes;
    ASSERT(t->pool_len >= size);
    return t->pool + bench_rng_below(&t->rng, t->pool_len - size + 1);
}

/* Submits one request on k into its top free slot; the keel_submit_* status. */
static int kb_submit(struct kb_thread *t, struct kb_conn *k, u64 warm_end_ns)
{
    const struct bench_config *c = t->cfg;
    ASSERT(k->free_len > 0);
    struct kb_slot *s = &k->slots[k->free[k->free_len - 1]];
    s->kind = (u8)bench_next_kind(c, &t->rng);
    bench_key(c, bench_rng_below(&t->rng, c->keys), t->key);
    struct keel_bytes key = {.ptr = t->key, .len = c->key_size_bytes};
    struct keel_put_args put = {.key = key};
    if (s->kind == BENCH_KIND_PUT)
        put.value = (struct keel_bytes){kb_value(t), c->value_size_bytes};
    struct keel_range_args get = {.key = key};
    s->submit_ns = kb_now_ns();
    s->measured = s->submit_ns >= warm_end_ns;
    int rc = s->kind == BENCH_KIND_PUT ? keel_submit_put(k->client, &put, kb_done, s, NULL)
                                       : keel_submit_get(k->client, &get, kb_done, s, NULL);
    if (rc != KEEL_STATUS_OK) return rc;
    k->free_len--;
    if (s->measured) t->submitted_measured++;
    return rc;
}

/* Refills every live connection to depth requests in flight (or to the budget). */
static void kb_fill(struct kb_thread *t, u64 warm_end_ns)
{
    for (u32 i = 0; i < t->conns_len; i++) {
        struct kb_conn *k = &t->conns[i];
        while (kb_conn_ready(t, k) && k->free_len > 0) {
            if (t->cfg->requests > 0 && t->submitted_measured >= t->budget) return;
            int rc = kb_submit(t, k, warm_end_ns);
            if (rc == KEEL_STATUS_OK) continue;
            if (rc == KEEL_STATUS_CLOSED)
                kb_conn_dead(t, k);
            else if (rc != KEEL_STATUS_FULL)
                kb_error(&t->errors, rc, 1); /* refused locally: try again next round */
            break;
        }
    }
}

/* Puts keys [preload_next, preload_end) through every live connection. */
static void kb_preload(struct kb_thread *t)
{
    const struct bench_config *c = t->cfg;
    while (t->alive > 0 && t->preload_left > 0) {
        for (u32 i = 0; i < t->conns_len; i++) {
            struct kb_conn *k = &t->conns[i];
            while (kb_conn_ready(t, k) && t->preload_next < t->preload_end &&
                   keel_pending(k->client) < t->preload_depth) {
                bench_key(c, t->preload_next, t->key);
                struct keel_put_args a = {
                    .key = {.ptr = t->key, .len = c->key_size_bytes},
                    .value = {.ptr = kb_value(t), .len = c->value_size_bytes},
                };
                int rc = keel_submit_put(k->client, &a, kb_preload_done, k, NULL);
                if (rc == KEEL_STATUS_OK || (rc != KEEL_STATUS_CLOSED && rc != KEEL_STATUS_FULL))
                    t->preload_next++;
                if (rc == KEEL_STATUS_OK) continue;
                if (rc == KEEL_STATUS_CLOSED) {
                    kb_conn_dead(t, k);
                } else if (rc != KEEL_STATUS_FULL) {
                    kb_error(&t->errors, rc, 1); /* refused locally: that key is skipped */
                    t->preload_left--;
                }
                break;
            }
        }
        kb_poll_all(t, KB_POLL_TIMEOUT_MS);
    }
}

static u64 kb_pending(const struct kb_thread *t)
{
    u64 n = 0;
    for (u32 i = 0; i < t->conns_len; i++)
        if (!t->conns[i].dead) n += keel_pending(t->conns[i].client);
    return n;
}

static void kb_run(struct kb_thread *t)
{
    const struct bench_config *c = t->cfg;
    u64 start_ns = kb_now_ns();
    u64 warm_end_ns = start_ns + (u64)(c->warmup_s * 1e9);
    u64 end_ns = c->requests > 0 ? UINT64_MAX : warm_end_ns + (u64)(c->duration_s * 1e9);
    t->measure_start_ns = warm_end_ns;
    t->last_ns = warm_end_ns;
    while (t->alive > 0 && kb_now_ns() < end_ns) {
        if (c->requests > 0 && t->submitted_measured >= t->budget) break;
        kb_fill(t, warm_end_ns);
        kb_poll_all(t, KB_POLL_TIMEOUT_MS);
    }
}

/* Waits (bounded) for what is in flight, then closes the clients: requests still without
 * a reply are called back with an error status by keel_close and counted. */
static void kb_drain(struct kb_thread *t)
{
    u64 deadline_ns = kb_now_ns() + (u64)KB_DRAIN_TIMEOUT_S * 1000000000u;
    while (t->alive > 0 && kb_pending(t) > 0 && kb_now_ns() < deadline_ns)
        kb_poll_all(t, KB_POLL_TIMEOUT_MS);
    t->closing = true;
    for (u32 i = 0; i < t->conns_len; i++) {
        int leaders = 0;
        t->shard_conns_end += (u64)keel_shard_routes(t->conns[i].client, &leaders);
        t->shard_conns_leader_end += (u64)leaders;
        t->shard_moves += keel_shard_moves(t->conns[i].client);
        keel_close(t->conns[i].client);
        t->conns[i].client = NULL;
    }
}

static void *kb_thread_main(void *arg)
{
    struct kb_thread *t = arg;
    if (t->cfg->op != BENCH_OP_PUT && t->cfg->preload) kb_preload(t);
    pthread_barrier_wait(&t->shared->start);
    kb_run(t);
    kb_drain(t);
    atomic_fetch_add(&t->shared->threads_done, 1);
    return NULL;
}

/* ---- setup ------------------------------------------------------------------------------ */

/* endpoints rotated to start at entry `first` (mod count), into dst (strlen + 2 bytes). */
static void kb_endpoints_rotate(const char *endpoints, u32 first, char *dst)
{
    u32 count = 1;
    for (const char *p = endpoints; *p != 0; p++) count += *p == ',';
    const char *start = endpoints;
    for (u32 i = 0; i < first % count; i++) start = strchr(start, ',') + 1;
    size_t head = strlen(start);
    memcpy(dst, start, head);
    if (start == endpoints) {
        dst[head] = 0;
        return;
    }
    dst[head] = ',';
    size_t tail = (size_t)(start - endpoints) - 1; /* without the comma before start */
    memcpy(dst + head + 1, endpoints, tail);
    dst[head + 1 + tail] = 0;
}

static int kb_connect_one(const struct bench_config *c, u32 index, keel_client **out)
{
    char *list = malloc(strlen(c->endpoints) + 2);
    if (list == NULL) return KEEL_STATUS_NO_MEMORY;
    kb_endpoints_rotate(c->endpoints, index, list);
    struct keel_options o;
    keel_options_default(&o);
    o.in_flight_max = 0; /* the server's limit: the preload goes deeper than --depth */
    o.shard_aware = c->shard_aware;
    errno = 0;
    int rc = keel_connect(list, &o, out);
    int saved = errno;
    free(list);
    if (rc == KEEL_STATUS_ARG) {
        fprintf(stderr,
                "keelbench: --endpoints %s: expected HOST:PORT[,HOST:PORT...] with numeric "
                "IPv4 hosts and ports 1..65535\n",
                c->endpoints);
    } else if (rc == KEEL_STATUS_CONNECT && saved != 0) {
        fprintf(stderr, "keelbench: cannot connect to %s: %s\n", c->endpoints, strerror(saved));
    } else if (rc != KEEL_STATUS_OK) {
        fprintf(stderr, "keelbench: cannot connect to %s: %s\n", c->endpoints, keel_strerror(rc));
    }
    return rc;
}

/* The server's limits against the settings; 0 or 1 after a message. */
static int kb_check_limits(const struct bench_config *c, const keel_client *client)
{
    const struct keel_server_info *in = keel_server_info(client);
    if (c->depth > in->in_flight_max) {
        fprintf(stderr,
                "keelbench: --depth %u exceeds the server's in-flight limit per "
                "connection (%u)\n",
                c->depth, in->in_flight_max);
        return 1;
    }
    if (c->key_size_bytes > in->key_size_max) {
        fprintf(stderr, "keelbench: --key-size %u exceeds the server's key size limit (%u)\n",
                c->key_size_bytes, in->key_size_max);
        return 1;
    }
    if (c->value_size_bytes > in->value_size_max) {
        fprintf(stderr,
                "keelbench: --value-size %u exceeds the server's value size limit "
                "(%u)\n",
                c->value_size_bytes, in->value_size_max);
        return 1;
    }
    return 0;
}

/* Memory of thread t for its n connections; 0 or 1 after a message. */
static int kb_thread_alloc(struct kb_bench *b, struct kb_thread *t, u32 index, u32 n)
{
    const struct bench_config *c = &b->cfg;
    t->cfg = c;
    t->shared = &b->shared;
    t->conns_len = n;
    t->conns = calloc(n, sizeof(*t->conns));
    t->polled = calloc(n, sizeof(*t->polled));
    t->key = malloc(c->key_size_bytes);
    t->pool_len = (size_t)c->value_size_bytes + KB_POOL_EXTRA_BYTES;
    t->pool = malloc(t->pool_len);
    bool ok = t->conns != NULL && t->polled != NULL && t->key != NULL && t->pool != NULL;
    for (u32 k = 0; k < BENCH_KINDS; k++) {
        t->hist[k] = malloc(sizeof(struct bench_hist));
        ok = ok && t->hist[k] != NULL;
        if (t->hist[k] != NULL) bench_hist_init(t->hist[k]);
    }
    for (u32 i = 0; ok && i < n; i++) {
        struct kb_conn *k = &t->conns[i];
        k->thread = t;
        k->slots = calloc(c->depth, sizeof(*k->slots));
        k->free = calloc(c->depth, sizeof(*k->free));
        ok = k->slots != NULL && k->free != NULL;
        for (u32 s = 0; ok && s < c->depth; s++) {
            k->slots[s] = (struct kb_slot){.conn = k, .index = s};
            k->free[k->free_len++] = c->depth - 1 - s;
        }
    }
    if (!ok) {
        fprintf(stderr, "keelbench: out of memory setting up thread %u\n", index);
        return 1;
    }
    bench_rng_init(&t->rng, c->seed, index);
    bench_fill_printable(&t->rng, t->pool, t->pool_len);
    atomic_init(&t->ops_progress, 0);
    return 0;
}

/* Thread t's share of [0, total) for a share proportional to its connections (thread t
 * holds the connections i with i % threads == t): [*lo, *hi). */
static void kb_share(const struct bench_config *c, u32 t, u64 total, u64 *lo, u64 *hi)
{
    u64 conns_before = 0;
    for (u32 j = 0; j < t; j++) conns_before += (c->conns - j + c->threads - 1) / c->threads;
    u64 n = (c->conns - t + c->threads - 1) / c->threads;
    *lo = (u64)((unsigned __int128)total * conns_before / c->conns);
    *hi = (u64)((unsigned __int128)total * (conns_before + n) / c->conns);
    ASSERT(*lo <= *hi && *hi <= total);
}

/* Allocates the threads and connects every client; 0 or 1 after a message. */
static int kb_setup(struct kb_bench *b)
{
    const struct bench_config *c = &b->cfg;
    b->threads = calloc(c->threads, sizeof(*b->threads));
    if (b->threads == NULL) return 1;
    for (u32 t = 0; t < c->threads; t++) {
        struct kb_thread *th = &b->threads[t];
        if (kb_thread_alloc(b, th, t, (c->conns - t + c->threads - 1) / c->threads) != 0) return 1;
        u64 lo, hi;
        kb_share(c, t, c->requests, &lo, &hi);
        th->budget = hi - lo;
        kb_share(c, t, c->keys, &th->preload_next, &th->preload_end);
        th->preload_left = th->preload_end - th->preload_next;
    }
    for (u32 i = 0; i < c->conns; i++) {
        struct kb_thread *th = &b->threads[i % c->threads];
        struct kb_conn *k = &th->conns[i / c->threads];
        if (kb_connect_one(c, i, &k->client) != KEEL_STATUS_OK) return 1;
        th->alive++;
        int leaders = 0;
        int routes = keel_shard_routes(k->client, &leaders);
        k->shard_routing = routes > 0 && strchr(c->endpoints, ',') != NULL;
        b->shard_conns += (u64)routes;
        b->shard_conns_leader += (u64)leaders;
        if (i == 0 && kb_check_limits(c, k->client) != 0) return 1;
        u32 limit = keel_server_info(k->client)->in_flight_max;
        th->preload_depth = limit < KB_PRELOAD_DEPTH ? limit : KB_PRELOAD_DEPTH;
    }
    return 0;
}

/* ---- run and report --------------------------------------------------------------------- */

static int kb_fsync_probe(struct kb_bench *b)
{
    b->fsync = malloc(sizeof(*b->fsync));
    if (b->fsync == NULL) return 1;
    bench_hist_init(b->fsync);
    char err[512];
    if (bench_fsync_probe(b->cfg.fsync_probe_dir, b->fsync, err, sizeof(err)) != 0) {
        fprintf(stderr, "keelbench: %s\n", err);
        return 1;
    }
    bench_fsync_print(stdout, b->fsync, b->cfg.fsync_probe_dir);
    return 0;
}

static u64 kb_ops_progress(const struct kb_bench *b)
{
    u64 ops = 0;
    for (u32 t = 0; t < b->cfg.threads; t++)
        ops += atomic_load_explicit(&b->threads[t].ops_progress, memory_order_relaxed);
    return ops;
}

/* Until every thread is done: on a terminal, a progress line every second. */
static void kb_watch(struct kb_bench *b)
{
    bool tty = isatty(STDOUT_FILENO) == 1;
    u64 start_ns = kb_now_ns(), last_ns = start_ns, last_ops = 0;
    const struct timespec step = {.tv_sec = 0, .tv_nsec = 50 * 1000000};
    while (atomic_load(&b->shared.threads_done) < b->cfg.threads) {
        nanosleep(&step, NULL);
        u64 now_ns = kb_now_ns();
        if (!tty || now_ns - last_ns < 1000000000u) continue;
        u64 ops = kb_ops_progress(b);
        double ops_s = (double)(ops - last_ops) * 1e9 / (double)(now_ns - last_ns);
        bench_progress_print(stdout, (double)(now_ns - start_ns) / 1e9, ops, ops_s);
        last_ns = now_ns;
        last_ops = ops;
    }
    if (tty && last_ns != start_ns) fputc('\n', stdout);
}

static int kb_start(struct kb_bench *b)
{
    const struct bench_config *c = &b->cfg;
    if (pthread_barrier_init(&b->shared.start, NULL, c->threads + 1) != 0) return 1;
    atomic_init(&b->shared.threads_done, 0);
    if (c->op != BENCH_OP_PUT && c->preload) {
        printf("preloading %" PRIu64 " keys\n", c->keys);
        fflush(stdout);
    }
    for (u32 t = 0; t < c->threads; t++) {
        int rc = pthread_create(&b->threads[t].tid, NULL, kb_thread_main, &b->threads[t]);
        if (rc != 0) {
            fprintf(stderr, "keelbench: cannot start thread %u: %s\n", t, strerror(rc));
            exit(1);
        }
    }
    u64 preload_ns = kb_now_ns();
    pthread_barrier_wait(&b->shared.start);
    if (c->op != BENCH_OP_PUT && c->preload) {
        printf("preload done in %.3f s\n", (double)(kb_now_ns() - preload_ns) / 1e9);
        fflush(stdout);
    }
    kb_watch(b);
    for (u32 t = 0; t < c->threads; t++) pthread_join(b->threads[t].tid, NULL);
    return 0;
}

/* The threads' errors merged: their total, and with out, one line per distinct status. */
static u64 kb_errors_report(const struct kb_bench *b, FILE *out)
{
    struct kb_errors all = {0};
    u64 unanswered = 0, lost = 0, moves = 0;
    for (u32 t = 0; t < b->cfg.threads; t++) {
        const struct kb_thread *th = &b->threads[t];
        for (u32 i = 0; i < th->errors.statuses_len; i++)
            kb_error(&all, th->errors.statuses[i].status, th->errors.statuses[i].count);
        all.other += th->errors.other;
        all.total += th->errors.other;
        unanswered += th->unanswered;
        lost += th->conns_lost;
        moves += th->leader_moves;
    }
    if (out == NULL) return all.total;
    for (u32 i = 0; i < all.statuses_len; i++)
        fprintf(out, "  status %d (%s): %" PRIu64 "\n", all.statuses[i].status,
                keel_strerror(all.statuses[i].status), all.statuses[i].count);
    if (all.other > 0) fprintf(out, "  other statuses: %" PRIu64 "\n", all.other);
    if (unanswered > 0)
        fprintf(out, "  no reply %u s after the run (closed): %" PRIu64 "\n", KB_DRAIN_TIMEOUT_S,
                unanswered);
    if (lost > 0) fprintf(out, "  connections lost: %" PRIu64 "\n", lost);
    if (moves > 0) fprintf(out, "  leader moves (NOT_LEADER followed): %" PRIu64 "\n", moves);
    return all.total;
}

/* With --shard-aware: the shard connections, and how many went to their shard's leader. */
static void kb_shard_report(const struct kb_bench *b, FILE *out)
{
    if (!b->cfg.shard_aware) return;
    u64 end = 0, end_leader = 0, moves = 0;
    for (u32 t = 0; t < b->cfg.threads; t++) {
        moves += b->threads[t].shard_moves;
        end += b->threads[t].shard_conns_end;
        end_leader += b->threads[t].shard_conns_leader_end;
    }
    fprintf(out,
            "shard connections to their leader: %" PRIu64 " of %" PRIu64
            " after connecting, %" PRIu64 " of %" PRIu64
            " at the end; moved to a new leader: %" PRIu64 "\n",
            b->shard_conns_leader, b->shard_conns, end_leader, end, moves);
}

static int kb_report(struct kb_bench *b)
{
    struct bench_result r = {.fsync = b->fsync};
    for (u32 k = 0; k < BENCH_KINDS; k++) r.hist[k] = b->threads[0].hist[k];
    u64 start_ns = UINT64_MAX, end_ns = 0;
    for (u32 t = 0; t < b->cfg.threads; t++) {
        struct kb_thread *th = &b->threads[t];
        for (u32 k = 0; t > 0 && k < BENCH_KINDS; k++) bench_hist_merge(r.hist[k], th->hist[k]);
        r.ops += th->ops_measured;
        start_ns = KEEL_MIN(start_ns, th->measure_start_ns);
        end_ns = KEEL_MAX(end_ns, th->last_ns);
    }
    r.all = malloc(sizeof(*r.all));
    if (r.all == NULL) return 1;
    bench_hist_init(r.all);
    for (u32 k = 0; k < BENCH_KINDS; k++) bench_hist_merge(r.all, r.hist[k]);
    ASSERT(r.all->count == r.ops);
    r.elapsed_s = end_ns > start_ns ? (double)(end_ns - start_ns) / 1e9 : 0.0;
    r.errors = kb_errors_report(b, NULL);
    if (r.ops == 0) fprintf(stderr, "keelbench: no measured request succeeded\n");
    bench_report_ops(&r, stdout);
    kb_shard_report(b, stdout);
    kb_errors_report(b, stdout);
    bench_report_latency(&b->cfg, &r, stdout);
    free(r.all);
    return r.ops == 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    static struct kb_bench b;
    int rc = bench_config_parse(&b.cfg, argc, argv, stdout, stderr);
    if (rc != 0) return rc == 2 ? 0 : 1;
    bench_config_print(&b.cfg, stdout);
    fflush(stdout);
    if (kb_setup(&b) != 0) return 1;
    if (b.cfg.fsync_probe_dir != NULL && kb_fsync_probe(&b) != 0) return 1;
    if (kb_start(&b) != 0) return 1;
    return kb_report(&b);
}
