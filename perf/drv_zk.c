/*
 * drv_zk.c — keelbench's ZooKeeper driver (bench_driver.h): ZooKeeper's official C client,
 * libzookeeper_mt (Debian libzookeeper-mt-dev), asynchronous API.
 *
 *  - One session (zhandle_t) per connection, on the single member connection i prefers
 *    (bench_endpoint); open() waits until every session is connected (ZK_CONNECT_MS).
 *    zoo_set_servers_resolution_delay(-1): the 3.8 client otherwise resolves its host list
 *    again on every turn of its I/O loop, which halves its throughput.
 *  - Keys are znodes /kb/<key bytes> (printable hex, '.' padding: valid znode names, as a
 *    key never is "." or ".."); every thread's open() creates /kb (ZNODEEXISTS is fine).
 *    PUT = zoo_aset(version -1); GET = zoo_aget (no watch; served by the session's member:
 *    sequential consistency, not a linearizable read — ZooKeeper's own reads, which is
 *    what get_vs_zk compares with; --serializable changes nothing here); LOAD =
 *    zoo_acreate, and on ZNODEEXISTS a zoo_aset chained in the completion (done once).
 *  - Threads: the client calls completions on its own completion thread (one per session).
 *    They only push (slot, rc, bench_now_ns()) onto the engine thread's zk_cq; poll()
 *    takes the batch and calls done on the engine thread, as bench_driver.h requires.
 *  - Depth: ZooKeeper has no per-session limit, so each connection has
 *    max(depth, BENCH_PRELOAD_DEPTH) request slots; submit() says FULL when none is free.
 *  - Status codes are ZooKeeper's own (ZCONNECTIONLOSS, ZNONODE, ...; never 0 for an
 *    error); close() fails what is still outstanding with ZCLOSING. A session that expires
 *    (the watcher sees ZOO_EXPIRED_SESSION_STATE) makes its connection CLOSED for good; a
 *    connection loss fails the requests in flight and the client reconnects by itself.
 */
#include "perf/bench_driver.h"
#include "perf/zk_cq.h"

#include "core/assert.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zookeeper/zookeeper.h>

#define ZK_ROOT              "/kb"
#define ZK_ROOT_PREFIX_BYTES 4u /* "/kb/" */
#define ZK_CONNECT_MS        10000
#define ZK_SESSION_MS        30000
#define ZK_PACKET_BYTES_MAX  0xfffffu /* the server's default jute.maxbuffer */
#define ZK_PACKET_SLACK      128u     /* request header, path length, version */
#define ZK_SLOT_NONE         UINT32_MAX

struct zk_conn;

struct zk_slot {
    struct zk_conn *conn;
    void *ctx;
    char *path;  /* "/kb/<key>", NUL-terminated */
    char *value; /* LOAD: the value again for a chained zoo_aset (grown as needed) */
    u32 value_len, value_cap;
    u32 next_free;
    bool busy;
};

struct zk_conn {
    struct bench_dthread *d;
    zhandle_t *zh;
    struct zk_slot *slots;
    u32 slot_count;
    u32 free_head;
    u32 pending;
    atomic_bool expired; /* set by the session watcher (client thread) */
    char host[64];       /* "HOST:PORT" */
};

struct bench_dthread {
    const struct bench_config *c;
    bench_done_fn done;
    struct zk_conn *conn;
    u32 conns;
    atomic_uint expired_conns;
    struct zk_cq cq;
};

/* ---- client callbacks (the client's threads) ---------------------------------------- */

static void zk_finish(struct zk_slot *s, int rc)
{
    zk_cq_push(&s->conn->d->cq, s, rc, bench_now_ns());
}

static void zk_on_stat(int rc, const struct Stat *stat, const void *data)
{
    (void)stat;
    zk_finish((struct zk_slot *)data, rc);
}

static void zk_on_data(int rc, const char *value, int value_len, const struct Stat *stat,
                       const void *data)
{
    (void)value;
    (void)value_len;
    (void)stat;
    zk_finish((struct zk_slot *)data, rc);
}

/* LOAD: the znode exists already, so set it instead (the request completes once). */
static void zk_on_created(int rc, const char *name, const void *data)
{
    (void)name;
    struct zk_slot *s = (struct zk_slot *)data;
    if (rc == ZNODEEXISTS) {
        rc = zoo_aset(s->conn->zh, s->path, s->value, (int)s->value_len, -1, zk_on_stat, s);
        if (rc == ZOK) return;
    }
    zk_finish(s, rc);
}

static void zk_on_session(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    (void)zh;
    (void)path;
    struct zk_conn *k = ctx;
    if (type != ZOO_SESSION_EVENT || k == NULL) return;
    if (state != ZOO_EXPIRED_SESSION_STATE && state != ZOO_AUTH_FAILED_STATE) return;
    if (!atomic_exchange(&k->expired, true)) atomic_fetch_add(&k->d->expired_conns, 1);
}

/* ---- settings ------------------------------------------------------------------------ */

static int zk_check(const struct bench_config *c, FILE *err)
{
    if (c->shard_aware) {
        fprintf(err, "keelbench: --shard-aware is a keel option; ZooKeeper has no shards\n");
        return 1;
    }
    u64 packet_bytes = (u64)c->value_size_bytes + c->key_size_bytes + ZK_PACKET_SLACK;
    if (packet_bytes > ZK_PACKET_BYTES_MAX) {
        fprintf(err,
                "keelbench: zookeeper: --value-size %u with --key-size %u exceeds the "
                "server's 1 MiB request limit (jute.maxbuffer)\n",
                c->value_size_bytes, c->key_size_bytes);
        return 1;
    }
    return 0;
}

static void zk_log_init(void)
{
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
}

static u32 zk_slot_count(const struct bench_config *c)
{
    return c->depth > BENCH_PRELOAD_DEPTH ? c->depth : BENCH_PRELOAD_DEPTH;
}

/* ---- open ---------------------------------------------------------------------------- */

/* The connection's slots and host string; the session is started by zk_conn_start. */
static int zk_conn_init(struct bench_dthread *d, struct zk_conn *k, u32 index)
{
    const struct bench_config *c = d->c;
    k->d = d;
    k->slot_count = zk_slot_count(c);
    k->free_head = 0;
    char host[48];
    u16 port = 0;
    if (bench_endpoint(c->endpoints, index, host, sizeof host, &port) != 0) {
        fprintf(stderr, "keelbench: zookeeper: endpoint %u of %s is not IPv4 HOST:PORT\n", index,
                c->endpoints);
        return -1;
    }
    snprintf(k->host, sizeof k->host, "%s:%u", host, (unsigned)port);
    k->slots = calloc(k->slot_count, sizeof *k->slots);
    if (k->slots == NULL) return -1;
    size_t path_bytes = ZK_ROOT_PREFIX_BYTES + c->key_size_bytes + 1;
    for (u32 i = 0; i < k->slot_count; i++) {
        struct zk_slot *s = &k->slots[i];
        s->conn = k;
        s->next_free = i + 1 < k->slot_count ? i + 1 : ZK_SLOT_NONE;
        s->path = malloc(path_bytes);
        if (s->path == NULL) return -1;
        memcpy(s->path, ZK_ROOT "/", ZK_ROOT_PREFIX_BYTES);
    }
    return 0;
}

static int zk_conn_start(struct zk_conn *k)
{
    k->zh = zookeeper_init(k->host, zk_on_session, ZK_SESSION_MS, NULL, k, 0);
    if (k->zh == NULL) {
        fprintf(stderr, "keelbench: zookeeper: cannot start a session to %s\n", k->host);
        return -1;
    }
    /* -1: no routine re-resolution of the host list (see the file comment). */
    int rc = zoo_set_servers_resolution_delay(k->zh, -1);
    ASSERT(rc == ZOK);
    return 0;
}

static u64 zk_mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (u64)t.tv_sec * 1000u + (u64)t.tv_nsec / 1000000u;
}

/* Waits until every session of d is connected: 0, or -1 after a message. */
static int zk_wait_connected(struct bench_dthread *d)
{
    u64 deadline_ms = zk_mono_ms() + ZK_CONNECT_MS;
    for (u32 i = 0; i < d->conns; i++) {
        struct zk_conn *k = &d->conn[i];
        int state;
        while ((state = zoo_state(k->zh)) != ZOO_CONNECTED_STATE) {
            bool dead = state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE;
            if (dead || zk_mono_ms() >= deadline_ms) {
                fprintf(stderr, "keelbench: zookeeper: no session with %s within %d ms (%s)\n",
                        k->host, ZK_CONNECT_MS, dead ? "session refused" : "not connected");
                return -1;
            }
            nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        }
    }
    return 0;
}

/* Creates the keys' parent znode (a no-op when it exists). */
static int zk_create_root(struct zk_conn *k)
{
    int rc = zoo_create(k->zh, ZK_ROOT, NULL, -1, &ZOO_OPEN_ACL_UNSAFE, 0, NULL, 0);
    if (rc == ZOK || rc == ZNODEEXISTS) return 0;
    fprintf(stderr, "keelbench: zookeeper: cannot create %s on %s: %s\n", ZK_ROOT, k->host,
            zerror(rc));
    return -1;
}

static void zk_free(struct bench_dthread *d)
{
    for (u32 i = 0; i < d->conns; i++) {
        struct zk_conn *k = &d->conn[i];
        for (u32 j = 0; k->slots != NULL && j < k->slot_count; j++) {
            free(k->slots[j].path);
            free(k->slots[j].value);
        }
        free(k->slots);
    }
    free(d->conn);
    zk_cq_free(&d->cq);
    free(d);
}

static void zk_close_sessions(struct bench_dthread *d)
{
    for (u32 i = 0; i < d->conns; i++) {
        if (d->conn[i].zh != NULL) zookeeper_close(d->conn[i].zh);
        d->conn[i].zh = NULL;
    }
}

static struct bench_dthread *zk_open(const struct bench_config *c, u32 thread, u32 conns,
                                     const u32 *conn_index, bench_done_fn done)
{
    static pthread_once_t log_once = PTHREAD_ONCE_INIT;
    pthread_once(&log_once, zk_log_init);
    (void)thread;
    ASSERT(c != NULL && conns > 0 && conn_index != NULL && done != NULL);
    struct bench_dthread *d = calloc(1, sizeof *d);
    if (d == NULL) return NULL;
    d->c = c;
    d->done = done;
    if (zk_cq_init(&d->cq, conns * zk_slot_count(c)) != 0) {
        free(d);
        return NULL;
    }
    d->conn = calloc(conns, sizeof *d->conn);
    if (d->conn == NULL) {
        zk_free(d);
        return NULL;
    }
    d->conns = conns;
    int rc = 0;
    for (u32 i = 0; i < conns && rc == 0; i++) rc = zk_conn_init(d, &d->conn[i], conn_index[i]);
    for (u32 i = 0; i < conns && rc == 0; i++) rc = zk_conn_start(&d->conn[i]);
    if (rc == 0) rc = zk_wait_connected(d);
    if (rc == 0) rc = zk_create_root(&d->conn[0]);
    if (rc != 0) {
        zk_close_sessions(d);
        zk_free(d);
        return NULL;
    }
    return d;
}

/* ---- requests ------------------------------------------------------------------------ */

static int zk_issue(struct zk_slot *s, const struct bench_request *r)
{
    zhandle_t *zh = s->conn->zh;
    switch (r->op) {
    case BENCH_REQ_PUT:
        return zoo_aset(zh, s->path, r->value, (int)r->value_len, -1, zk_on_stat, s);
    case BENCH_REQ_GET:
        return zoo_aget(zh, s->path, 0, zk_on_data, s);
    case BENCH_REQ_LOAD:
        return zoo_acreate(zh, s->path, r->value, (int)r->value_len, &ZOO_OPEN_ACL_UNSAFE, 0,
                           zk_on_created, s);
    }
    UNREACHABLE();
}

/* LOAD keeps the value for the set it may chain; 0, or -1 without memory. */
static int zk_keep_value(struct zk_slot *s, const struct bench_request *r)
{
    if (r->value_len > s->value_cap) {
        char *grown = realloc(s->value, r->value_len);
        if (grown == NULL) return -1;
        s->value = grown;
        s->value_cap = r->value_len;
    }
    if (r->value_len > 0) memcpy(s->value, r->value, r->value_len);
    s->value_len = r->value_len;
    return 0;
}

static void zk_slot_put(struct zk_conn *k, struct zk_slot *s)
{
    ASSERT(s->busy && k->pending > 0);
    s->busy = false;
    s->ctx = NULL;
    s->next_free = k->free_head;
    k->free_head = (u32)(s - k->slots);
    k->pending--;
}

static int zk_submit(struct bench_dthread *d, u32 conn, const struct bench_request *r, void *ctx)
{
    ASSERT(conn < d->conns && r != NULL);
    ASSERT(r->key_len > 0 && r->key_len <= d->c->key_size_bytes);
    struct zk_conn *k = &d->conn[conn];
    if (atomic_load_explicit(&k->expired, memory_order_relaxed)) return BENCH_SUBMIT_CLOSED;
    if (k->free_head == ZK_SLOT_NONE) return BENCH_SUBMIT_FULL;
    struct zk_slot *s = &k->slots[k->free_head];
    ASSERT(!s->busy);
    if (r->op == BENCH_REQ_LOAD && zk_keep_value(s, r) != 0) return BENCH_SUBMIT_FULL;
    memcpy(s->path + ZK_ROOT_PREFIX_BYTES, r->key, r->key_len);
    s->path[ZK_ROOT_PREFIX_BYTES + r->key_len] = 0;
    k->free_head = s->next_free;
    s->busy = true;
    s->ctx = ctx;
    k->pending++;
    int rc = zk_issue(s, r);
    if (rc == ZOK) return BENCH_SUBMIT_OK;
    if (rc == ZINVALIDSTATE) { /* the session expired: nothing was queued */
        zk_slot_put(k, s);
        if (!atomic_exchange(&k->expired, true)) atomic_fetch_add(&d->expired_conns, 1);
        return BENCH_SUBMIT_CLOSED;
    }
    zk_cq_push(&d->cq, s, rc, 0); /* refused at once (ZBADARGUMENTS, ...): done from poll */
    return BENCH_SUBMIT_OK;
}

static void zk_complete(struct bench_dthread *d, const struct zk_cq_entry *e)
{
    struct zk_slot *s = e->tag;
    void *ctx = s->ctx;
    zk_slot_put(s->conn, s); /* first: done may submit again on the same connection */
    d->done(ctx, e->status, e->done_ns);
}

static u32 zk_poll(struct bench_dthread *d, u64 timeout_us)
{
    const struct zk_cq_entry *batch = NULL;
    u32 n = zk_cq_take(&d->cq, timeout_us, &batch);
    for (u32 i = 0; i < n; i++) zk_complete(d, &batch[i]);
    u32 expired = atomic_load_explicit(&d->expired_conns, memory_order_relaxed);
    ASSERT(expired <= d->conns);
    return d->conns - expired;
}

static u32 zk_pending(const struct bench_dthread *d, u32 conn)
{
    ASSERT(conn < d->conns);
    return d->conn[conn].pending;
}

static void zk_close(struct bench_dthread *d)
{
    ASSERT(d != NULL);
    /* zookeeper_close joins the client's threads: no completion comes after it. The mt client
     * never calls the completions of requests still outstanding then (mt_adaptor.c:
     * process_async() is 0), so the loop below calls them back with ZCLOSING. */
    zk_close_sessions(d);
    const struct zk_cq_entry *batch = NULL;
    u32 n;
    while ((n = zk_cq_take(&d->cq, 0, &batch)) > 0) {
        for (u32 i = 0; i < n; i++) zk_complete(d, &batch[i]);
    }
    for (u32 i = 0; i < d->conns; i++) {
        struct zk_conn *k = &d->conn[i];
        for (u32 j = 0; j < k->slot_count && k->pending > 0; j++) {
            struct zk_slot *s = &k->slots[j];
            if (!s->busy) continue;
            void *ctx = s->ctx;
            zk_slot_put(k, s);
            d->done(ctx, ZCLOSING, 0);
        }
        ASSERT(k->pending == 0);
    }
    zk_free(d);
}

/* ZooKeeper's error codes by name (zerror() gives a description for the others). */
static const char *zk_status_name(int status)
{
    switch (status) {
    case ZOK:
        return "OK";
    case ZSYSTEMERROR:
        return "ZSYSTEMERROR";
    case ZRUNTIMEINCONSISTENCY:
        return "ZRUNTIMEINCONSISTENCY";
    case ZDATAINCONSISTENCY:
        return "ZDATAINCONSISTENCY";
    case ZCONNECTIONLOSS:
        return "ZCONNECTIONLOSS";
    case ZMARSHALLINGERROR:
        return "ZMARSHALLINGERROR";
    case ZOPERATIONTIMEOUT:
        return "ZOPERATIONTIMEOUT";
    case ZBADARGUMENTS:
        return "ZBADARGUMENTS";
    case ZINVALIDSTATE:
        return "ZINVALIDSTATE";
    case ZNONODE:
        return "ZNONODE";
    case ZNOAUTH:
        return "ZNOAUTH";
    case ZBADVERSION:
        return "ZBADVERSION";
    case ZNODEEXISTS:
        return "ZNODEEXISTS";
    case ZSESSIONEXPIRED:
        return "ZSESSIONEXPIRED";
    case ZCLOSING:
        return "ZCLOSING";
    case ZSESSIONMOVED:
        return "ZSESSIONMOVED";
    case ZNOTREADONLY:
        return "ZNOTREADONLY";
    default:
        return zerror(status);
    }
}

const struct bench_driver bench_driver_zk = {
    .name = "zookeeper",
    .check = zk_check,
    .open = zk_open,
    .submit = zk_submit,
    .poll = zk_poll,
    .pending = zk_pending,
    .close = zk_close,
    .status_name = zk_status_name,
    .report = NULL,
};
