/*
 * drv_keel.c — keelbench's keel driver (bench_driver.h): libkeel's pipelined API, the
 * native binary protocol.
 *
 *  - One keel_client per connection, connected to the endpoint list rotated to start at
 *    entry i % count, so that connections spread over the members. --shard-aware sets
 *    libkeel's shard_aware: the client opens one connection per shard and routes each
 *    shard's requests to the shard port of its leader's node (leader routing).
 *  - PUT and LOAD are PUT; GET is a single-key RANGE, serializable with --serializable.
 *  - Leaders: a NOT_LEADER reply (an error: it was not executed) names the leader. Without
 *    shard routing and with several endpoints, the connection then takes no new request
 *    (submit says FULL) until it drained, moves to that member (keel_follow_leader) and
 *    resumes: "leader moves" in the report. With shard routing libkeel moves the shard
 *    itself.
 *  - poll: one keel_poll_many_us over the thread's live clients.
 *  - Status codes are libkeel's (keel_strerror names them); a request libkeel refuses
 *    locally at submit (other than FULL or CLOSED) completes at the next poll with that
 *    status.
 */
#include "client/keel.h"
#include "core/assert.h"
#include "perf/bench_driver.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define DK_DEFERRED_MAX 1024u /* local refusals waiting for the next poll */

struct dk_conn;

struct dk_req { /* libkeel's callback ctx */
    struct dk_conn *conn;
    void *ctx; /* the engine's */
    u32 index;
};

struct dk_conn {
    struct bench_dthread *d;
    keel_client *client;
    struct dk_req *reqs;
    u32 *free;
    u32 free_len, cap;
    bool dead;
    bool shard_routing; /* libkeel moves shards to their leaders: no whole-client moves */
    u64 leader_hint;    /* NOT_LEADER's detail: move there once drained; 0: none */
};

struct dk_deferred {
    void *ctx;
    int status;
};

struct bench_dthread {
    const struct bench_config *cfg;
    bench_done_fn done;
    struct dk_conn *conns;
    keel_client **polled;
    u32 conns_len, alive;
    struct dk_deferred deferred[DK_DEFERRED_MAX];
    u32 deferred_len;
    u64 leader_moves, move_errors;
    u64 shard_conns, shard_conns_leader; /* keel_shard_routes after connecting */
};

/* ---- connecting ------------------------------------------------------------------------- */

/* endpoints rotated to start at entry `first` (mod count), into dst (strlen + 2 bytes). */
static void dk_endpoints_rotate(const char *endpoints, u32 first, char *dst)
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

static int dk_connect_one(const struct bench_config *c, u32 index, keel_client **out)
{
    char *list = malloc(strlen(c->endpoints) + 2);
    if (list == NULL) return KEEL_STATUS_NO_MEMORY;
    dk_endpoints_rotate(c->endpoints, index, list);
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
static int dk_check_limits(const struct bench_config *c, const keel_client *client)
{
    const struct keel_server_info *in = keel_server_info(client);
    u32 depth = c->op == BENCH_OP_LOAD ? c->depth : KEEL_MAX(c->depth, BENCH_PRELOAD_DEPTH);
    if (depth > in->in_flight_max) {
        fprintf(stderr,
                "keelbench: %u requests in flight per connection (--depth, or the preload's "
                "%u) exceed the server's limit (%u)\n",
                depth, BENCH_PRELOAD_DEPTH, in->in_flight_max);
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

static bool dk_conn_init(struct bench_dthread *d, struct dk_conn *k, u32 cap)
{
    k->d = d;
    k->cap = cap;
    k->reqs = calloc(cap, sizeof(*k->reqs));
    k->free = calloc(cap, sizeof(*k->free));
    if (k->reqs == NULL || k->free == NULL) return false;
    for (u32 i = 0; i < cap; i++) {
        k->reqs[i] = (struct dk_req){.conn = k, .index = i};
        k->free[k->free_len++] = cap - 1 - i;
    }
    return true;
}

static void dk_free(struct bench_dthread *d)
{
    for (u32 i = 0; d->conns != NULL && i < d->conns_len; i++) {
        if (d->conns[i].client != NULL) keel_close(d->conns[i].client);
        free(d->conns[i].reqs);
        free(d->conns[i].free);
    }
    free(d->conns);
    free(d->polled);
    free(d);
}

static struct bench_dthread *dk_open(const struct bench_config *c, u32 thread, u32 conns,
                                     const u32 *conn_index, bench_done_fn done)
{
    struct bench_dthread *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    d->cfg = c;
    d->done = done;
    d->conns_len = conns;
    d->conns = calloc(conns, sizeof(*d->conns));
    d->polled = calloc(conns, sizeof(*d->polled));
    u32 cap = KEEL_MAX(c->depth, BENCH_PRELOAD_DEPTH);
    bool ok = d->conns != NULL && d->polled != NULL;
    for (u32 i = 0; ok && i < conns; i++) {
        struct dk_conn *k = &d->conns[i];
        ok = dk_conn_init(d, k, cap) && dk_connect_one(c, conn_index[i], &k->client) == 0;
        if (!ok) break;
        if (thread == 0 && i == 0 && dk_check_limits(c, k->client) != 0) ok = false;
        int leaders = 0;
        int routes = keel_shard_routes(k->client, &leaders);
        k->shard_routing = routes > 0 && strchr(c->endpoints, ',') != NULL;
        d->shard_conns += (u64)routes;
        d->shard_conns_leader += (u64)leaders;
        d->alive++;
    }
    if (ok) return d;
    dk_free(d);
    return NULL;
}

static int dk_check(const struct bench_config *c, FILE *err)
{
    (void)c;
    (void)err;
    return 0;
}

/* ---- requests --------------------------------------------------------------------------- */

static void dk_callback(void *ctx, uint64_t request_id, int status,
                        const struct keel_result *result)
{
    (void)request_id;
    struct dk_req *q = ctx;
    struct dk_conn *k = q->conn;
    ASSERT(k->free_len < k->cap);
    k->free[k->free_len++] = q->index;
    if (status == KEEL_STATUS_NOT_LEADER && result->error.detail != 0 && !k->shard_routing)
        k->leader_hint = result->error.detail;
    k->d->done(q->ctx, status, 0);
}

static void dk_conn_dead(struct bench_dthread *d, struct dk_conn *k)
{
    if (k->dead) return;
    ASSERT(d->alive > 0);
    k->dead = true;
    d->alive--;
}

/* True when k may take requests: no leader move waits for it, or the move is done. */
static bool dk_conn_ready(struct bench_dthread *d, struct dk_conn *k)
{
    if (k->dead) return false;
    if (k->leader_hint == 0) return true;
    if (keel_pending(k->client) > 0) return false;
    u64 leader = k->leader_hint;
    k->leader_hint = 0;
    int rc = keel_follow_leader(k->client, leader);
    d->leader_moves++;
    if (rc != KEEL_STATUS_OK) d->move_errors++;
    if (keel_connection_count(k->client) == 0) dk_conn_dead(d, k);
    return !k->dead;
}

static int dk_submit(struct bench_dthread *d, u32 conn, const struct bench_request *r, void *ctx)
{
    ASSERT(conn < d->conns_len);
    struct dk_conn *k = &d->conns[conn];
    if (k->dead) return BENCH_SUBMIT_CLOSED;
    if (!dk_conn_ready(d, k)) return k->dead ? BENCH_SUBMIT_CLOSED : BENCH_SUBMIT_FULL;
    if (k->free_len == 0 || d->deferred_len == DK_DEFERRED_MAX) return BENCH_SUBMIT_FULL;
    struct dk_req *q = &k->reqs[k->free[k->free_len - 1]];
    q->ctx = ctx;
    struct keel_bytes key = {.ptr = r->key, .len = r->key_len};
    int rc;
    if (r->op == BENCH_REQ_GET) {
        struct keel_range_args a = {.key = key, .serializable = d->cfg->serializable};
        rc = keel_submit_get(k->client, &a, dk_callback, q, NULL);
    } else {
        struct keel_put_args a = {.key = key, .value = {.ptr = r->value, .len = r->value_len}};
        rc = keel_submit_put(k->client, &a, dk_callback, q, NULL);
    }
    if (rc == KEEL_STATUS_FULL) return BENCH_SUBMIT_FULL;
    if (rc == KEEL_STATUS_CLOSED) {
        dk_conn_dead(d, k);
        return BENCH_SUBMIT_CLOSED;
    }
    if (rc != KEEL_STATUS_OK)
        d->deferred[d->deferred_len++] = (struct dk_deferred){ctx, rc};
    else
        k->free_len--;
    return BENCH_SUBMIT_OK;
}

static u32 dk_poll(struct bench_dthread *d, u64 timeout_us)
{
    u32 deferred = d->deferred_len;
    d->deferred_len = 0;
    for (u32 i = 0; i < deferred; i++) d->done(d->deferred[i].ctx, d->deferred[i].status, 0);
    u32 n = 0;
    for (u32 i = 0; i < d->conns_len; i++) {
        struct dk_conn *k = &d->conns[i];
        if (!k->dead) dk_conn_ready(d, k); /* a drained connection moves to its leader */
        if (!k->dead) d->polled[n++] = k->client;
    }
    if (n == 0) return 0;
    int rc = keel_poll_many_us(d->polled, (int)n, deferred > 0 ? 0 : (int64_t)timeout_us);
    ASSERT(rc >= 0 || rc == KEEL_STATUS_CLOSED || rc == KEEL_STATUS_NO_MEMORY);
    for (u32 i = 0; i < d->conns_len; i++) {
        struct dk_conn *k = &d->conns[i];
        if (!k->dead && keel_connection_count(k->client) == 0) dk_conn_dead(d, k);
    }
    return d->alive;
}

static u32 dk_pending(const struct bench_dthread *d, u32 conn)
{
    ASSERT(conn < d->conns_len);
    const struct dk_conn *k = &d->conns[conn];
    return k->cap - k->free_len;
}

/* keel_close calls back what is still unanswered (with an error status). */
static void dk_close(struct bench_dthread *d)
{
    for (u32 i = 0; i < d->deferred_len; i++) d->done(d->deferred[i].ctx, d->deferred[i].status, 0);
    d->deferred_len = 0;
    dk_free(d);
}

/* Shard connections on their leaders (with --shard-aware) and leader moves. */
static void dk_report(struct bench_dthread *const *threads, u32 count, FILE *out)
{
    u64 begin = 0, begin_leader = 0, end = 0, end_leader = 0, moves = 0, follows = 0, errs = 0;
    for (u32 t = 0; t < count; t++) {
        const struct bench_dthread *d = threads[t];
        if (d == NULL) continue;
        begin += d->shard_conns;
        begin_leader += d->shard_conns_leader;
        follows += d->leader_moves;
        errs += d->move_errors;
        for (u32 i = 0; i < d->conns_len; i++) {
            int leaders = 0;
            end += (u64)keel_shard_routes(d->conns[i].client, &leaders);
            end_leader += (u64)leaders;
            moves += keel_shard_moves(d->conns[i].client);
        }
    }
    if (follows > 0)
        fprintf(out, "leader moves (NOT_LEADER followed): %" PRIu64 " (%" PRIu64 " failed)\n",
                follows, errs);
    if (!threads[0]->cfg->shard_aware) return;
    fprintf(out,
            "shard connections to their leader: %" PRIu64 " of %" PRIu64
            " after connecting, %" PRIu64 " of %" PRIu64
            " at the end; moved to a new leader: %" PRIu64 "\n",
            begin_leader, begin, end_leader, end, moves);
}

static const char *dk_status_name(int status)
{
    return keel_strerror(status);
}

const struct bench_driver bench_driver_keel = {
    .name = "keel",
    .check = dk_check,
    .open = dk_open,
    .submit = dk_submit,
    .poll = dk_poll,
    .pending = dk_pending,
    .close = dk_close,
    .status_name = dk_status_name,
    .report = dk_report,
};
