/*
 * bench_engine.c — keelbench's engine: threads, phases, closed and fixed-rate loops, and
 * the report, over any driver (bench_engine.h states the contract).
 */
#include "perf/bench_engine.h"

#include "core/assert.h"
#include "perf/bench_fsync.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BE_STATUSES_MAX     16u    /* distinct error statuses listed; more count as other */
#define BE_POOL_EXTRA_BYTES 65536u /* value pool = value_size + this: random windows */

/* ---- state ------------------------------------------------------------------------------ */

struct be_thread;
struct be_conn;

struct be_slot { /* one request in flight: the driver's ctx */
    struct be_conn *conn;
    u64 submit_ns; /* closed loop: just before submit; fixed rate: the scheduled time */
    u32 index;     /* in conn->slots */
    u8 kind;       /* enum bench_kind */
    bool load;     /* a preload request */
    bool measured;
};

struct be_conn {
    struct be_thread *thread;
    struct be_slot *slots; /* cap of them */
    u32 *free;             /* indexes of free slots, a stack */
    u32 free_len, cap;
    bool dead;
};

struct be_status_count {
    int status;
    u64 count;
};

struct be_errors {
    u64 total;
    struct be_status_count statuses[BE_STATUSES_MAX];
    u32 statuses_len;
    u64 other; /* statuses past BE_STATUSES_MAX distinct ones */
};

struct be_shared {
    pthread_barrier_t opened, start, drained, reported;
    atomic_uint open_failures;
    atomic_uint threads_done;
};

struct be_thread {
    pthread_t tid;
    u32 index;
    const struct bench_config *cfg;
    const struct bench_driver *drv;
    const struct bench_zipf *zipf; /* NULL: uniform */
    struct be_shared *shared;
    struct bench_dthread *d;
    struct be_conn *conns;
    u32 *conn_index; /* global index of each connection */
    u32 conns_len, alive;
    struct bench_rng rng;
    char *key;  /* key_size bytes of scratch */
    char *pool; /* random printable bytes for values */
    size_t pool_len;
    struct bench_hist *hist[BENCH_KINDS];
    u64 budget;             /* --requests: measured submits of this thread */
    u64 submitted_measured; /* measured submits so far */
    u64 measure_start_ns, last_ns, ops_measured;
    u64 preload_next, preload_end, preload_left;
    u64 unanswered;
    u64 behind; /* fixed rate: measured requests of the schedule never sent */
    u32 rr;     /* fixed rate: the next connection to try */
    bool closing;
    struct be_errors errors;
    atomic_ullong ops_progress; /* successful completions, read by main for progress */
};

struct be_bench {
    const struct bench_config *cfg;
    const struct bench_driver *drv;
    struct bench_zipf zipf;
    struct be_shared shared;
    struct be_thread *threads;
    struct bench_hist *fsync;
    double cpu0_s, cpu_s;
};

u64 bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u64)ts.tv_sec * 1000000000u + (u64)ts.tv_nsec;
}

/* ---- completions ------------------------------------------------------------------------ */

static void be_error(struct be_errors *e, int status, u64 count)
{
    ASSERT(status != 0);
    e->total += count;
    for (u32 i = 0; i < e->statuses_len; i++) {
        if (e->statuses[i].status != status) continue;
        e->statuses[i].count += count;
        return;
    }
    if (e->statuses_len == BE_STATUSES_MAX) {
        e->other += count;
        return;
    }
    e->statuses[e->statuses_len++] = (struct be_status_count){.status = status, .count = count};
}

static void be_done(void *ctx, int status, u64 done_ns)
{
    struct be_slot *s = ctx;
    struct be_conn *k = s->conn;
    struct be_thread *t = k->thread;
    if (done_ns == 0) done_ns = bench_now_ns();
    ASSERT(k->free_len < k->cap);
    k->free[k->free_len++] = s->index;
    if (s->load) {
        ASSERT(t->preload_left > 0);
        t->preload_left--;
    }
    if (t->closing) t->unanswered++;
    if (status != 0) {
        be_error(&t->errors, status, 1);
        return;
    }
    atomic_fetch_add_explicit(&t->ops_progress, 1, memory_order_relaxed);
    if (!s->measured) return;
    bench_hist_record(t->hist[s->kind], done_ns > s->submit_ns ? done_ns - s->submit_ns : 0);
    t->ops_measured++;
    if (done_ns > t->last_ns) t->last_ns = done_ns;
}

/* ---- submitting ------------------------------------------------------------------------- */

static u32 be_in_flight(const struct be_conn *k)
{
    return k->cap - k->free_len;
}

static const char *be_value(struct be_thread *t)
{
    u32 size = t->cfg->value_size_bytes;
    ASSERT(t->pool_len >= size);
    return t->pool + bench_rng_below(&t->rng, t->pool_len - size + 1);
}

static void be_conn_dead(struct be_thread *t, struct be_conn *k)
{
    if (k->dead) return;
    ASSERT(t->alive > 0);
    k->dead = true;
    t->alive--;
}

/* Submits one request on connection i: op, key index, the time its latency counts from.
 * The driver's BENCH_SUBMIT_* result; a CLOSED connection is marked dead. */
static int be_submit(struct be_thread *t, u32 i, enum bench_req_op op, u64 index, u64 from_ns,
                     bool measured)
{
    const struct bench_config *c = t->cfg;
    struct be_conn *k = &t->conns[i];
    ASSERT(!k->dead && k->free_len > 0);
    struct be_slot *s = &k->slots[k->free[k->free_len - 1]];
    bench_key(c, index, t->key);
    struct bench_request r = {.op = op, .key = t->key, .key_len = c->key_size_bytes};
    if (op != BENCH_REQ_GET) {
        r.value = be_value(t);
        r.value_len = c->value_size_bytes;
    }
    s->kind = op == BENCH_REQ_GET ? BENCH_KIND_GET : BENCH_KIND_PUT;
    s->load = op == BENCH_REQ_LOAD;
    s->measured = measured;
    s->submit_ns = from_ns != 0 ? from_ns : bench_now_ns();
    int rc = t->drv->submit(t->d, i, &r, s);
    if (rc == BENCH_SUBMIT_CLOSED) be_conn_dead(t, k);
    if (rc != BENCH_SUBMIT_OK) return rc;
    k->free_len--;
    if (measured && !s->load) t->submitted_measured++;
    return rc;
}

static void be_poll(struct be_thread *t, u64 timeout_us)
{
    u32 usable = t->drv->poll(t->d, timeout_us);
    if (usable == 0)
        for (u32 i = 0; i < t->conns_len; i++) be_conn_dead(t, &t->conns[i]);
}

static enum bench_req_op be_next_op(struct be_thread *t)
{
    return bench_next_kind(t->cfg, &t->rng) == BENCH_KIND_GET ? BENCH_REQ_GET : BENCH_REQ_PUT;
}

static bool be_budget_left(const struct be_thread *t)
{
    return t->cfg->requests == 0 || t->submitted_measured < t->budget;
}

/* ---- phases ----------------------------------------------------------------------------- */

/* Writes keys [preload_next, preload_end) through every live connection, up to depth in
 * flight on each; measured when the preload is the run (--op load). */
static void be_preload(struct be_thread *t, u32 depth, bool measured)
{
    t->measure_start_ns = bench_now_ns();
    t->last_ns = t->measure_start_ns;
    while (t->alive > 0 && t->preload_left > 0) {
        for (u32 i = 0; i < t->conns_len; i++) {
            struct be_conn *k = &t->conns[i];
            while (!k->dead && t->preload_next < t->preload_end && be_in_flight(k) < depth) {
                int rc = be_submit(t, i, BENCH_REQ_LOAD, t->preload_next, 0, measured);
                if (rc != BENCH_SUBMIT_OK) break;
                t->preload_next++;
            }
        }
        be_poll(t, BENCH_POLL_MAX_US);
    }
}

/* Closed loop: refills every live connection to depth requests in flight. */
static void be_fill(struct be_thread *t, u64 warm_end_ns)
{
    for (u32 i = 0; i < t->conns_len; i++) {
        struct be_conn *k = &t->conns[i];
        while (!k->dead && be_in_flight(k) < t->cfg->depth && be_budget_left(t)) {
            u64 index = bench_next_index(t->cfg, t->zipf, &t->rng);
            u64 now_ns = bench_now_ns();
            if (be_submit(t, i, be_next_op(t), index, now_ns, now_ns >= warm_end_ns) != 0) break;
        }
    }
}

static void be_run_closed(struct be_thread *t, u64 warm_end_ns, u64 end_ns)
{
    while (t->alive > 0 && bench_now_ns() < end_ns && be_budget_left(t)) {
        be_fill(t, warm_end_ns);
        be_poll(t, BENCH_POLL_MAX_US);
    }
}

/* Fixed rate: the next live connection below depth, round-robin; -1 when none. */
static int be_rate_conn(struct be_thread *t)
{
    for (u32 n = 0; n < t->conns_len; n++) {
        u32 i = (t->rr + n) % t->conns_len;
        struct be_conn *k = &t->conns[i];
        if (k->dead || be_in_flight(k) >= t->cfg->depth) continue;
        t->rr = i + 1;
        return (int)i;
    }
    return -1;
}

/* Requests of the schedule due in [start_ns, until_ns) (the first is due at start_ns). */
static u64 be_rate_due(u64 start_ns, u64 until_ns, double interval_ns)
{
    if (until_ns <= start_ns) return 0;
    return (u64)ceil((double)(until_ns - start_ns) / interval_ns);
}

/* Fixed rate: the schedule runs up to end_ns; a system that fell behind gets a grace of one
 * more measured duration (at least BENCH_RATE_GRACE_MIN_S) to take what the schedule still
 * owes it, sent late and measured from its scheduled time. What is still unsent then is
 * counted as behind: a system that cannot keep the rate does not stretch the run further. */
static void be_run_rate(struct be_thread *t, u64 start_ns, u64 warm_end_ns, u64 end_ns)
{
    const struct bench_config *c = t->cfg;
    double share = c->rate_ops_s * (double)t->conns_len / (double)c->conns;
    double interval_ns = 1e9 / share;
    u64 grace_ns = KEEL_MAX(end_ns - warm_end_ns, (u64)BENCH_RATE_GRACE_MIN_S * 1000000000u);
    u64 stop_ns = end_ns == UINT64_MAX ? UINT64_MAX : end_ns + grace_ns;
    u64 due_warm = be_rate_due(start_ns, warm_end_ns, interval_ns);
    u64 sent = 0, now_ns = bench_now_ns();
    while (t->alive > 0 && be_budget_left(t) && now_ns < stop_ns) {
        /* The warmup's unsent backlog is dropped when the warmup ends: it would not be
         * measured, and sending it first would keep a slow system from ever reaching the
         * measured schedule (its in-flight requests still load the system). */
        if (now_ns >= warm_end_ns && sent < due_warm) sent = due_warm;
        u64 next_ns = start_ns + (u64)((double)sent * interval_ns);
        if (next_ns >= end_ns) break;
        bool blocked = false;
        while (next_ns <= now_ns && be_budget_left(t)) {
            int i = be_rate_conn(t);
            enum bench_req_op op = be_next_op(t);
            u64 index = bench_next_index(c, t->zipf, &t->rng);
            if (i < 0 || be_submit(t, (u32)i, op, index, next_ns, next_ns >= warm_end_ns) != 0) {
                blocked = true; /* behind schedule: wait for a reply, keep the schedule */
                break;
            }
            sent++;
            next_ns = start_ns + (u64)((double)sent * interval_ns);
        }
        u64 wait_us = blocked || next_ns <= now_ns ? BENCH_POLL_MAX_US : (next_ns - now_ns) / 1000;
        be_poll(t, wait_us < BENCH_POLL_MAX_US ? wait_us : BENCH_POLL_MAX_US);
        now_ns = bench_now_ns();
    }
    if (c->requests > 0 || t->alive == 0) return;
    u64 due = be_rate_due(start_ns, end_ns, interval_ns);
    u64 unsent_from = KEEL_MAX(sent, due_warm); /* only measured ones count */
    t->behind = due > unsent_from ? due - unsent_from : 0;
}

static u64 be_pending(const struct be_thread *t)
{
    u64 n = 0;
    for (u32 i = 0; i < t->conns_len; i++)
        if (!t->conns[i].dead) n += be_in_flight(&t->conns[i]);
    return n;
}

static void be_drain(struct be_thread *t)
{
    u64 deadline_ns = bench_now_ns() + (u64)BENCH_DRAIN_TIMEOUT_S * 1000000000u;
    while (t->alive > 0 && be_pending(t) > 0 && bench_now_ns() < deadline_ns)
        be_poll(t, BENCH_POLL_MAX_US);
}

static void be_measure(struct be_thread *t)
{
    const struct bench_config *c = t->cfg;
    u64 start_ns = bench_now_ns();
    u64 warm_end_ns = start_ns + (u64)(c->warmup_s * 1e9);
    u64 end_ns = c->requests > 0 ? UINT64_MAX : warm_end_ns + (u64)(c->duration_s * 1e9);
    t->measure_start_ns = warm_end_ns;
    t->last_ns = warm_end_ns;
    if (c->rate_ops_s > 0)
        be_run_rate(t, start_ns, warm_end_ns, end_ns);
    else
        be_run_closed(t, warm_end_ns, end_ns);
}

static void *be_thread_main(void *arg)
{
    struct be_thread *t = arg;
    const struct bench_config *c = t->cfg;
    t->d = t->drv->open(c, t->index, t->conns_len, t->conn_index, be_done);
    if (t->d == NULL) atomic_fetch_add(&t->shared->open_failures, 1);
    t->alive = t->d != NULL ? t->conns_len : 0;
    pthread_barrier_wait(&t->shared->opened);
    bool go = atomic_load(&t->shared->open_failures) == 0;
    if (go && c->op != BENCH_OP_LOAD && c->preload) be_preload(t, BENCH_PRELOAD_DEPTH, false);
    pthread_barrier_wait(&t->shared->start);
    if (go && c->op == BENCH_OP_LOAD) be_preload(t, c->depth, true);
    if (go && c->op != BENCH_OP_LOAD) be_measure(t);
    if (go) be_drain(t);
    atomic_fetch_add(&t->shared->threads_done, 1);
    pthread_barrier_wait(&t->shared->drained);
    pthread_barrier_wait(&t->shared->reported); /* main ran driver->report */
    t->closing = true;
    if (t->d != NULL) t->drv->close(t->d);
    t->d = NULL;
    return NULL;
}

/* ---- setup ------------------------------------------------------------------------------ */

/* Thread t's share of [0, total), proportional to its connections: [*lo, *hi). */
static void be_share(const struct bench_config *c, u32 t, u64 total, u64 *lo, u64 *hi)
{
    u64 conns_before = 0;
    for (u32 j = 0; j < t; j++) conns_before += (c->conns - j + c->threads - 1) / c->threads;
    u64 n = (c->conns - t + c->threads - 1) / c->threads;
    *lo = (u64)((unsigned __int128)total * conns_before / c->conns);
    *hi = (u64)((unsigned __int128)total * (conns_before + n) / c->conns);
    ASSERT(*lo <= *hi && *hi <= total);
}

static bool be_conn_alloc(struct be_conn *k, struct be_thread *t, u32 cap)
{
    k->thread = t;
    k->cap = cap;
    k->slots = calloc(cap, sizeof(*k->slots));
    k->free = calloc(cap, sizeof(*k->free));
    if (k->slots == NULL || k->free == NULL) return false;
    for (u32 s = 0; s < cap; s++) {
        k->slots[s] = (struct be_slot){.conn = k, .index = s};
        k->free[k->free_len++] = cap - 1 - s;
    }
    return true;
}

/* Memory of thread index for its connections; 0 or 1 after a message. */
static int be_thread_alloc(struct be_bench *b, struct be_thread *t, u32 index)
{
    const struct bench_config *c = b->cfg;
    u32 n = (c->conns - index + c->threads - 1) / c->threads;
    u32 cap = c->depth > BENCH_PRELOAD_DEPTH ? c->depth : BENCH_PRELOAD_DEPTH;
    *t = (struct be_thread){.index = index, .cfg = c, .drv = b->drv, .shared = &b->shared};
    t->zipf = c->dist == BENCH_DIST_ZIPFIAN ? &b->zipf : NULL;
    t->conns_len = n;
    t->conns = calloc(n, sizeof(*t->conns));
    t->conn_index = calloc(n, sizeof(*t->conn_index));
    t->key = malloc(c->key_size_bytes);
    t->pool_len = (size_t)c->value_size_bytes + BE_POOL_EXTRA_BYTES;
    t->pool = malloc(t->pool_len);
    bool ok = t->conns != NULL && t->conn_index != NULL && t->key != NULL && t->pool != NULL;
    for (u32 k = 0; k < BENCH_KINDS; k++) {
        t->hist[k] = malloc(sizeof(struct bench_hist));
        ok = ok && t->hist[k] != NULL;
        if (t->hist[k] != NULL) bench_hist_init(t->hist[k]);
    }
    for (u32 i = 0; ok && i < n; i++) {
        t->conn_index[i] = index + i * c->threads;
        ok = be_conn_alloc(&t->conns[i], t, cap);
    }
    if (!ok) {
        fprintf(stderr, "keelbench: out of memory setting up thread %u\n", index);
        return 1;
    }
    bench_rng_init(&t->rng, c->seed, index);
    bench_fill_printable(&t->rng, t->pool, t->pool_len);
    u64 lo, hi;
    be_share(c, index, c->requests, &lo, &hi);
    t->budget = hi - lo;
    be_share(c, index, c->keys, &t->preload_next, &t->preload_end);
    t->preload_left = t->preload_end - t->preload_next;
    atomic_init(&t->ops_progress, 0);
    return 0;
}

static void be_thread_free(struct be_thread *t)
{
    for (u32 i = 0; t->conns != NULL && i < t->conns_len; i++) {
        free(t->conns[i].slots);
        free(t->conns[i].free);
    }
    for (u32 k = 0; k < BENCH_KINDS; k++) free(t->hist[k]);
    free(t->conns);
    free(t->conn_index);
    free(t->key);
    free(t->pool);
}

/* ---- /proc and the CDF file ------------------------------------------------------------- */

double bench_pids_cpu_s(const char *pids)
{
    ASSERT(pids != NULL);
    double total = 0;
    long ticks = sysconf(_SC_CLK_TCK);
    for (const char *p = pids; *p != 0;) {
        char *end = NULL;
        long pid = strtol(p, &end, 10);
        char path[64], buf[1024];
        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f == NULL) return -1;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *q = strrchr(buf, ')'); /* the command name may hold spaces */
        unsigned long long utime = 0, stime = 0;
        if (q == NULL || sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                                &utime, &stime) != 2)
            return -1;
        total += (double)(utime + stime) / (double)ticks;
        p = *end == ',' ? end + 1 : end;
    }
    return total;
}

int bench_cdf_write(const struct bench_hist *h, const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "# percentile latency_ms (%" PRIu64 " samples)\n", h->count);
    for (u32 i = 0; i <= 100; i++) { /* 1 - p from 1 down to 1e-5, 20 steps a decade */
        double p = 100.0 * (1.0 - pow(10.0, -(double)i / 20.0));
        fprintf(f, "%.5f %.4f\n", p, (double)bench_hist_percentile(h, p) / 1e6);
    }
    fprintf(f, "100 %.4f\n", (double)h->max / 1e6);
    int rc = fclose(f);
    return rc == 0 ? 0 : -1;
}

/* ---- run and report --------------------------------------------------------------------- */

static u64 be_ops_progress(const struct be_bench *b)
{
    u64 ops = 0;
    for (u32 t = 0; t < b->cfg->threads; t++)
        ops += atomic_load_explicit(&b->threads[t].ops_progress, memory_order_relaxed);
    return ops;
}

/* Until every thread is done: on a terminal, a progress line every second; the servers'
 * CPU time is first read once the warmup is over. */
static void be_watch(struct be_bench *b)
{
    const struct bench_config *c = b->cfg;
    bool tty = isatty(STDOUT_FILENO) == 1;
    u64 start_ns = bench_now_ns(), last_ns = start_ns, last_ops = 0;
    u64 warm_end_ns = start_ns + (c->op == BENCH_OP_LOAD ? 0 : (u64)(c->warmup_s * 1e9));
    bool cpu_read = false;
    const struct timespec step = {.tv_sec = 0, .tv_nsec = 20 * 1000000};
    while (atomic_load(&b->shared.threads_done) < c->threads) {
        u64 now_ns = bench_now_ns();
        if (!cpu_read && now_ns >= warm_end_ns) {
            cpu_read = true;
            if (c->server_pids != NULL) b->cpu0_s = bench_pids_cpu_s(c->server_pids);
        }
        nanosleep(&step, NULL);
        if (!tty || now_ns - last_ns < 1000000000u) continue;
        u64 ops = be_ops_progress(b);
        double ops_s = (double)(ops - last_ops) * 1e9 / (double)(now_ns - last_ns);
        bench_progress_print(stdout, (double)(now_ns - start_ns) / 1e9, ops, ops_s);
        last_ns = now_ns;
        last_ops = ops;
    }
    if (tty && last_ns != start_ns) fputc('\n', stdout);
    if (c->server_pids == NULL) return;
    if (!cpu_read) b->cpu0_s = bench_pids_cpu_s(c->server_pids);
    double cpu1_s = bench_pids_cpu_s(c->server_pids);
    b->cpu_s = b->cpu0_s >= 0 && cpu1_s >= 0 ? cpu1_s - b->cpu0_s : -1;
    if (b->cpu_s < 0) fprintf(stderr, "keelbench: cannot read /proc of %s\n", c->server_pids);
}

/* The threads' errors merged: their total, and with out, one line per distinct status. */
static u64 be_errors_report(const struct be_bench *b, FILE *out)
{
    struct be_errors all = {0};
    u64 unanswered = 0, lost = 0;
    for (u32 t = 0; t < b->cfg->threads; t++) {
        const struct be_thread *th = &b->threads[t];
        for (u32 i = 0; i < th->errors.statuses_len; i++)
            be_error(&all, th->errors.statuses[i].status, th->errors.statuses[i].count);
        all.other += th->errors.other;
        all.total += th->errors.other;
        unanswered += th->unanswered;
        for (u32 i = 0; i < th->conns_len; i++) lost += th->conns[i].dead;
    }
    if (out == NULL) return all.total;
    for (u32 i = 0; i < all.statuses_len; i++)
        fprintf(out, "  status %d (%s): %" PRIu64 "\n", all.statuses[i].status,
                b->drv->status_name(all.statuses[i].status), all.statuses[i].count);
    if (all.other > 0) fprintf(out, "  other statuses: %" PRIu64 "\n", all.other);
    if (unanswered > 0)
        fprintf(out, "  no reply %u s after the run (closed): %" PRIu64 "\n", BENCH_DRAIN_TIMEOUT_S,
                unanswered);
    if (lost > 0) fprintf(out, "  connections lost: %" PRIu64 "\n", lost);
    return all.total;
}

/* Merges the threads' histograms into thread 0's and fills r. */
static void be_merge(struct be_bench *b, struct bench_result *r)
{
    for (u32 k = 0; k < BENCH_KINDS; k++) r->hist[k] = b->threads[0].hist[k];
    u64 start_ns = UINT64_MAX, end_ns = 0;
    for (u32 t = 0; t < b->cfg->threads; t++) {
        struct be_thread *th = &b->threads[t];
        for (u32 k = 0; t > 0 && k < BENCH_KINDS; k++) bench_hist_merge(r->hist[k], th->hist[k]);
        r->ops += th->ops_measured;
        start_ns = KEEL_MIN(start_ns, th->measure_start_ns);
        end_ns = KEEL_MAX(end_ns, th->last_ns);
    }
    for (u32 k = 0; k < BENCH_KINDS; k++) bench_hist_merge(r->all, r->hist[k]);
    ASSERT(r->all->count == r->ops);
    r->elapsed_s = end_ns > start_ns ? (double)(end_ns - start_ns) / 1e9 : 0.0;
    for (u32 t = 0; t < b->cfg->threads; t++) r->behind += b->threads[t].behind;
}

static int be_report(struct be_bench *b)
{
    const struct bench_config *c = b->cfg;
    struct bench_result r = {.fsync = b->fsync, .server_cpu_s = b->cpu_s};
    r.all = malloc(sizeof(*r.all));
    if (r.all == NULL) return 1;
    bench_hist_init(r.all);
    be_merge(b, &r);
    r.errors = be_errors_report(b, NULL);
    if (r.ops == 0) fprintf(stderr, "keelbench: no measured request succeeded\n");
    bench_report_ops(&r, stdout);
    be_errors_report(b, stdout);
    bench_report_latency(c, &r, stdout);
    int rc = r.ops == 0 ? 1 : 0;
    if (c->cdf_out != NULL && bench_cdf_write(r.all, c->cdf_out) != 0) {
        fprintf(stderr, "keelbench: --cdf-out %s: %s\n", c->cdf_out, strerror(errno));
        rc = 1;
    }
    free(r.all);
    return rc;
}

static int be_fsync_probe(struct be_bench *b)
{
    b->fsync = malloc(sizeof(*b->fsync));
    if (b->fsync == NULL) return 1;
    bench_hist_init(b->fsync);
    char err[512];
    if (bench_fsync_probe(b->cfg->fsync_probe_dir, b->fsync, err, sizeof(err)) != 0) {
        fprintf(stderr, "keelbench: %s\n", err);
        return 1;
    }
    bench_fsync_print(stdout, b->fsync, b->cfg->fsync_probe_dir);
    return 0;
}

static int be_barriers_init(struct be_shared *s, u32 threads)
{
    atomic_init(&s->open_failures, 0);
    atomic_init(&s->threads_done, 0);
    return pthread_barrier_init(&s->opened, NULL, threads + 1) != 0 ||
                   pthread_barrier_init(&s->start, NULL, threads + 1) != 0 ||
                   pthread_barrier_init(&s->drained, NULL, threads + 1) != 0 ||
                   pthread_barrier_init(&s->reported, NULL, threads + 1) != 0
               ? 1
               : 0;
}

/* Runs the phases from the main thread's side; false when a connection failed to open. */
static bool be_phases(struct be_bench *b)
{
    const struct bench_config *c = b->cfg;
    pthread_barrier_wait(&b->shared.opened);
    bool ok = atomic_load(&b->shared.open_failures) == 0;
    bool preload = ok && c->op != BENCH_OP_LOAD && c->preload;
    if (preload) printf("preloading %" PRIu64 " keys\n", c->keys);
    fflush(stdout);
    u64 preload_ns = bench_now_ns();
    pthread_barrier_wait(&b->shared.start);
    if (preload) printf("preload done in %.3f s\n", (double)(bench_now_ns() - preload_ns) / 1e9);
    fflush(stdout);
    be_watch(b);
    pthread_barrier_wait(&b->shared.drained);
    if (ok && b->drv->report != NULL) {
        struct bench_dthread **d = calloc(c->threads, sizeof(*d));
        for (u32 t = 0; d != NULL && t < c->threads; t++) d[t] = b->threads[t].d;
        if (d != NULL) b->drv->report(d, c->threads, stdout);
        free(d);
    }
    pthread_barrier_wait(&b->shared.reported);
    return ok;
}

int bench_engine_run(const struct bench_config *c, const struct bench_driver *drv)
{
    ASSERT(c != NULL && drv != NULL && c->threads >= 1 && c->threads <= c->conns);
    static struct be_bench b; /* one run per process */
    b = (struct be_bench){.cfg = c, .drv = drv, .cpu_s = -1};
    if (drv->check(c, stderr) != 0) return 1;
    if (c->dist == BENCH_DIST_ZIPFIAN) bench_zipf_init(&b.zipf, c->keys, c->zipf_theta);
    if (c->fsync_probe_dir != NULL && be_fsync_probe(&b) != 0) return 1;
    b.threads = calloc(c->threads, sizeof(*b.threads));
    if (b.threads == NULL || be_barriers_init(&b.shared, c->threads) != 0) return 1;
    for (u32 t = 0; t < c->threads; t++)
        if (be_thread_alloc(&b, &b.threads[t], t) != 0) return 1;
    for (u32 t = 0; t < c->threads; t++) {
        int rc = pthread_create(&b.threads[t].tid, NULL, be_thread_main, &b.threads[t]);
        if (rc != 0) {
            fprintf(stderr, "keelbench: cannot start thread %u: %s\n", t, strerror(rc));
            exit(1);
        }
    }
    bool ok = be_phases(&b);
    for (u32 t = 0; t < c->threads; t++) pthread_join(b.threads[t].tid, NULL);
    int rc = ok ? be_report(&b) : 1;
    for (u32 t = 0; t < c->threads; t++) be_thread_free(&b.threads[t]);
    free(b.threads);
    free(b.fsync);
    return rc;
}
