/*
 * test_bench_engine.c — perf/bench_engine.h over an in-process mock driver: every key is
 * loaded exactly once, --requests is exact, depth limits hold, the mix is followed,
 * errors are counted, the fixed-rate loop sends its budget, an open failure stops the run;
 * plus the zipfian generator, endpoint parsing, the CDF file and /proc CPU reading.
 */
#include "perf/bench_driver.h"
#include "perf/bench_engine.h"
#include "perf/bench_workload.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the mock driver: completes everything submitted at the next poll ------------------- */

#define MOCK_KEYS_MAX  4096u
#define MOCK_QUEUE_MAX 65536u

static pthread_mutex_t mock_lock = PTHREAD_MUTEX_INITIALIZER;
static u64 mock_ops[3];                /* per enum bench_req_op, all threads */
static u64 mock_loaded[MOCK_KEYS_MAX]; /* the hex part of every LOAD's key */
static u32 mock_loaded_len;
static u32 mock_max_in_flight_run, mock_max_in_flight_load;
static u32 mock_error_every; /* > 0: every n-th request fails with status 7 */
static int mock_fail_thread = -1;
static bool mock_slow; /* poll completes one request per call, after 1 ms */
static u32 mock_closed;

struct mock_item {
    void *ctx;
    u32 conn;
    int status;
};

struct bench_dthread {
    const struct bench_config *cfg;
    bench_done_fn done;
    u32 conns;
    u32 *in_flight;
    struct mock_item *queue;
    u32 queue_len;
    u64 seen;
};

static int mock_check(const struct bench_config *c, FILE *err)
{
    (void)c;
    (void)err;
    return 0;
}

static struct bench_dthread *mock_open(const struct bench_config *c, u32 thread, u32 conns,
                                       const u32 *conn_index, bench_done_fn done)
{
    for (u32 i = 0; i < conns; i++) cr_assert_eq(conn_index[i] % c->threads, thread);
    if ((int)thread == mock_fail_thread) return NULL;
    struct bench_dthread *d = calloc(1, sizeof(*d));
    d->cfg = c;
    d->done = done;
    d->conns = conns;
    d->in_flight = calloc(conns, sizeof(u32));
    d->queue = calloc(MOCK_QUEUE_MAX, sizeof(*d->queue));
    return d;
}

static u64 mock_key_hex(const struct bench_request *r)
{
    char hex[17] = {0};
    u32 n = 0;
    while (n < r->key_len && n < 16 && r->key[n] != '.') {
        hex[n] = r->key[n];
        n++;
    }
    return strtoull(hex, NULL, 16);
}

static int mock_submit(struct bench_dthread *d, u32 conn, const struct bench_request *r, void *ctx)
{
    cr_assert_lt(conn, d->conns);
    cr_assert_eq(r->key_len, d->cfg->key_size_bytes);
    if (r->op != BENCH_REQ_GET) cr_assert_eq(r->value_len, d->cfg->value_size_bytes);
    cr_assert_lt(d->queue_len, MOCK_QUEUE_MAX);
    d->seen++;
    int status = mock_error_every > 0 && d->seen % mock_error_every == 0 ? 7 : 0;
    d->queue[d->queue_len++] = (struct mock_item){ctx, conn, status};
    u32 n = ++d->in_flight[conn];
    pthread_mutex_lock(&mock_lock);
    mock_ops[r->op]++;
    if (r->op == BENCH_REQ_LOAD) {
        cr_assert_lt(mock_loaded_len, MOCK_KEYS_MAX);
        mock_loaded[mock_loaded_len++] = mock_key_hex(r);
        if (n > mock_max_in_flight_load) mock_max_in_flight_load = n;
    } else if (n > mock_max_in_flight_run) {
        mock_max_in_flight_run = n;
    }
    pthread_mutex_unlock(&mock_lock);
    return BENCH_SUBMIT_OK;
}

static u32 mock_poll(struct bench_dthread *d, u64 timeout_us)
{
    if (d->queue_len == 0 && timeout_us > 0)
        usleep(timeout_us < 1000 ? (useconds_t)timeout_us : 1000);
    u32 n = d->queue_len;
    if (mock_slow && n > 0) {
        usleep(1000);
        n = 1;
    }
    struct mock_item first = d->queue[0];
    struct mock_item *done = n == 1 ? &first : malloc(n * sizeof(*done));
    memcpy(done, d->queue, n * sizeof(*done));
    d->queue_len -= n;
    memmove(d->queue, d->queue + n, d->queue_len * sizeof(*d->queue));
    for (u32 i = 0; i < n; i++) {
        d->in_flight[done[i].conn]--;
        d->done(done[i].ctx, done[i].status, 0);
    }
    if (done != &first) free(done);
    return d->conns;
}

static u32 mock_pending(const struct bench_dthread *d, u32 conn)
{
    return d->in_flight[conn];
}

static void mock_close(struct bench_dthread *d)
{
    cr_assert_eq(d->queue_len, 0, "the engine drained before closing");
    pthread_mutex_lock(&mock_lock);
    mock_closed++;
    pthread_mutex_unlock(&mock_lock);
    free(d->in_flight);
    free(d->queue);
    free(d);
}

static const char *mock_status_name(int status)
{
    return status == 7 ? "mock-7" : "mock-other";
}

static const struct bench_driver mock_driver = {
    .name = "mock",
    .check = mock_check,
    .open = mock_open,
    .submit = mock_submit,
    .poll = mock_poll,
    .pending = mock_pending,
    .close = mock_close,
    .status_name = mock_status_name,
};

static struct bench_config mock_config(enum bench_op op, u64 keys)
{
    return (struct bench_config){
        .system = "mock",
        .endpoints = "127.0.0.1:1",
        .op = op,
        .conns = 5,
        .depth = 3,
        .threads = 2,
        .keys = keys,
        .key_size_bytes = 16,
        .value_size_bytes = 100,
        .read_ratio = 0.9,
        .duration_s = 0.2,
        .warmup_s = 0,
        .seed = 1,
        .zipf_theta = 0.99,
        .preload = true,
    };
}

static void quiet(void)
{
    cr_assert_not_null(freopen("/dev/null", "w", stdout));
}

static int u64_cmp(const void *a, const void *b)
{
    u64 x = *(const u64 *)a, y = *(const u64 *)b;
    return x < y ? -1 : x > y;
}

/* A temporary path for --cdf-out. */
static void temp_path(char *path)
{
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
}

/* The sample count in a --cdf-out file's first line. */
static unsigned long long cdf_samples(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    unsigned long long n = 0;
    cr_assert_eq(fscanf(f, "# percentile latency_ms (%llu samples)", &n), 1);
    fclose(f);
    unlink(path);
    return n;
}

/* ---- the engine ------------------------------------------------------------------------- */

Test(bench_engine, load_writes_every_key_once_at_depth, .init = quiet)
{
    struct bench_config c = mock_config(BENCH_OP_LOAD, 3000);
    cr_assert_eq(bench_engine_run(&c, &mock_driver), 0);
    cr_assert_eq(mock_ops[BENCH_REQ_LOAD], 3000);
    cr_assert_eq(mock_ops[BENCH_REQ_PUT] + mock_ops[BENCH_REQ_GET], 0);
    cr_assert_eq(mock_loaded_len, 3000);
    qsort(mock_loaded, mock_loaded_len, sizeof(u64), u64_cmp);
    for (u32 i = 1; i < mock_loaded_len; i++)
        cr_assert_neq(mock_loaded[i], mock_loaded[i - 1], "a key was loaded twice");
    cr_assert_leq(mock_max_in_flight_load, c.depth, "--op load runs at --depth");
    cr_assert_eq(mock_closed, 2, "every thread closed its handle");
}

Test(bench_engine, requests_are_exact_after_the_preload, .init = quiet)
{
    struct bench_config c = mock_config(BENCH_OP_PUT, 1000);
    c.requests = 777;
    c.warmup_s = 0.05; /* warmup requests come on top of the measured 777 */
    char path[] = "/tmp/keel-test-cdf-XXXXXX";
    temp_path(path);
    c.cdf_out = path;
    cr_assert_eq(bench_engine_run(&c, &mock_driver), 0);
    cr_assert_eq(mock_ops[BENCH_REQ_LOAD], 1000, "the preload puts every key once");
    cr_assert_geq(mock_ops[BENCH_REQ_PUT], 777);
    cr_assert_eq(cdf_samples(path), 777, "exactly --requests are measured");
    cr_assert_leq(mock_max_in_flight_run, c.depth);
    cr_assert_leq(mock_max_in_flight_load, BENCH_PRELOAD_DEPTH);
}

Test(bench_engine, mixed_follows_the_read_ratio, .init = quiet)
{
    struct bench_config c = mock_config(BENCH_OP_MIXED, 1000);
    c.requests = 20000;
    c.preload = false;
    cr_assert_eq(bench_engine_run(&c, &mock_driver), 0);
    cr_assert_eq(mock_ops[BENCH_REQ_LOAD], 0, "--no-preload");
    cr_assert_eq(mock_ops[BENCH_REQ_PUT] + mock_ops[BENCH_REQ_GET], 20000);
    cr_assert(mock_ops[BENCH_REQ_GET] > 17600 && mock_ops[BENCH_REQ_GET] < 18400, "gets %llu",
              (unsigned long long)mock_ops[BENCH_REQ_GET]);
}

Test(bench_engine, errors_are_counted_not_measured, .init = quiet)
{
    struct bench_config c = mock_config(BENCH_OP_GET, 100);
    c.requests = 1000;
    c.preload = false;
    c.threads = 1;
    mock_error_every = 10;
    char path[] = "/tmp/keel-test-cdf-XXXXXX";
    temp_path(path);
    c.cdf_out = path;
    cr_assert_eq(bench_engine_run(&c, &mock_driver), 0);
    cr_assert_eq(mock_ops[BENCH_REQ_GET], 1000);
    cr_assert_eq(cdf_samples(path), 900, "only successes are measured");
}

Test(bench_engine, fixed_rate_sends_its_budget_within_depth, .init = quiet)
{
    struct bench_config c = mock_config(BENCH_OP_PUT, 100);
    c.preload = false;
    c.rate_ops_s = 20000;
    c.requests = 400;
    cr_assert_eq(bench_engine_run(&c, &mock_driver), 0);
    cr_assert_eq(mock_ops[BENCH_REQ_PUT], 400);
    cr_assert_leq(mock_max_in_flight_run, c.depth);
}

Test(bench_engine, fixed_rate_stops_on_time_when_the_system_falls_behind, .init = quiet)
{
    struct bench_config c = mock_config(BENCH_OP_PUT, 100);
    c.preload = false;
    c.rate_ops_s = 100000; /* the slow mock does about 1,000/s per thread */
    c.duration_s = 0.3;
    mock_slow = true;
    u64 start_ns = bench_now_ns();
    cr_assert_eq(bench_engine_run(&c, &mock_driver), 0);
    double took_s = (double)(bench_now_ns() - start_ns) / 1e9;
    cr_assert_lt(mock_ops[BENCH_REQ_PUT], 30000 / 2, "most of the schedule was never sent");
    /* Not a timing assertion on the system: the run must end at its duration plus the drain
     * of at most depth x conns requests, not after the whole schedule (30,000 requests). */
    cr_assert_lt(took_s, 10.0, "took %.1f s", took_s);
}

Test(bench_engine, an_open_failure_stops_before_any_load, .init = quiet)
{
    struct bench_config c = mock_config(BENCH_OP_PUT, 100);
    mock_fail_thread = 1;
    cr_assert_eq(bench_engine_run(&c, &mock_driver), 1);
    cr_assert_eq(mock_ops[BENCH_REQ_LOAD] + mock_ops[BENCH_REQ_PUT], 0);
    cr_assert_eq(mock_closed, 1, "the thread that opened closes");
}

/* ---- pieces ----------------------------------------------------------------------------- */

Test(bench_engine, zipfian_ranks_follow_the_power_law)
{
    struct bench_zipf z;
    bench_zipf_init(&z, 1000, 0.99);
    struct bench_rng r;
    bench_rng_init(&r, 42, 0);
    u32 *count = calloc(1000, sizeof(u32));
    for (u32 i = 0; i < 1000000; i++) {
        u64 v = bench_zipf_next(&z, &r);
        cr_assert_lt(v, 1000);
        count[v]++;
    }
    /* P(0) = 1/zeta(1000, 0.99) ~ 0.133; P(0)/P(1) = 2^0.99. */
    cr_assert(count[0] > 125000 && count[0] < 142000, "rank 0: %u", count[0]);
    double ratio = (double)count[0] / (double)count[1];
    cr_assert(fabs(ratio - pow(2.0, 0.99)) < 0.1, "rank 0 / rank 1 = %f", ratio);
    cr_assert_gt(count[0], count[10]);
    cr_assert_gt(count[10], count[500]);
    free(count);
}

Test(bench_engine, endpoints_parse)
{
    char host[64];
    u16 port = 0;
    cr_assert_eq(bench_endpoint("127.0.0.1:2379,127.0.0.2:2380", 3, host, sizeof(host), &port), 0);
    cr_assert_str_eq(host, "127.0.0.2");
    cr_assert_eq(port, 2380);
    cr_assert_eq(bench_endpoint("127.0.0.1:2379", 7, host, sizeof(host), &port), 0);
    cr_assert_eq(port, 2379);
    cr_assert_eq(bench_endpoint("localhost:2379", 0, host, sizeof(host), &port), -1);
    cr_assert_eq(bench_endpoint("127.0.0.1:0", 0, host, sizeof(host), &port), -1);
    cr_assert_eq(bench_endpoint("127.0.0.1:65536", 0, host, sizeof(host), &port), -1);
    cr_assert_eq(bench_endpoint("127.0.0.1", 0, host, sizeof(host), &port), -1);
    cr_assert_eq(bench_endpoint("127.0.0.1:12a", 0, host, sizeof(host), &port), -1);
}

Test(bench_engine, proc_cpu_of_this_process)
{
    char pids[32];
    snprintf(pids, sizeof(pids), "%d", (int)getpid());
    volatile double x = 0;
    for (u32 i = 0; i < 20000000; i++) x += i;
    cr_assert_geq(bench_pids_cpu_s(pids), 0.0);
    snprintf(pids, sizeof(pids), "%d,%d", (int)getpid(), (int)getpid());
    cr_assert_geq(bench_pids_cpu_s(pids), 0.0);
    cr_assert_lt(bench_pids_cpu_s("999999999"), 0.0, "a missing pid is an error");
}
