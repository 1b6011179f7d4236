/*
 * shard.c — the node's life (start, stop) and each shard thread's loop turn. See shard.h.
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SHARD_OF(ptr, member) \
    ((struct shard *)(void *)((char *)(ptr)-offsetof(struct shard, member)))

#define SHARD_SQ_ENTRIES      1024u
#define SHARD_RECV_BUFFERS    512u
#define SHARD_RECV_BUF_BYTES  (16u << 10)
#define SHARD_TICK_MS         50u
#define SHARD_DRAIN_MAX_MS    5000u
#define SHARD_OUT_LIMIT_BYTES (8u << 20)
#define SHARD_IN_LIMIT_BYTES  (4u << 20)
#define SHARD_COMPACT_KEYS    2048u

/* ---- logging -------------------------------------------------------------------------------- */

void node_log(const char *component, const char *fmt, ...)
{
    char line[512];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ keeld %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, component);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line)) vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}

u64 shard_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (u64)ts.tv_sec * 1000000000ull + (u64)ts.tv_nsec;
}

void shard_fail(struct shard *s, const char *fmt, ...)
{
    struct node *n = s->node;
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&n->mu);
    if (n->err[0] == 0) snprintf(n->err, sizeof(n->err), "shard %u: %.200s", s->id, msg);
    n->failed++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
}

void node_config_default(struct node_config *c)
{
    memset(c, 0, sizeof(*c));
    c->data_dir = "data";
    c->shard_count = 1;
    c->ipv4 = 0x7F000001u;
    c->client_port = 2379;
    c->member_id = 1;
}

/* ---- completions ------------------------------------------------------------------------------
 */

static void shard_accept_done(struct shard *s, int which, int res, u32 flags)
{
    if (!(flags & LOOP_CQE_F_MORE)) s->accept_armed[which] = false;
    if (res < 0) return;
    struct node *n = s->node;
    int one = 1;
    setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    u16 port_shard = which == 0 ? CODEC_SHARD_NONE : (u16)s->id;
    struct conn *c = conn_open(&s->host, res, port_shard);
    if (!c) return;
    u32 open = atomic_fetch_add(&n->open_conns, 1) + 1;
    u32 max = n->config.connections_max ? n->config.connections_max : CODEC_CONNECTIONS_MAX;
    if (open > max || s->draining) {
        u16 st = s->draining ? CODEC_S_SHUTTING_DOWN : CODEC_S_TOO_MANY_CONNECTIONS;
        conn_goaway(c, st, max, codec_status_message(st));
    }
}

static void shard_accept0_done(struct loop_completion *c, int res, u32 flags)
{
    shard_accept_done(SHARD_OF(c, accept_c[0]), 0, res, flags);
}

static void shard_accept1_done(struct loop_completion *c, int res, u32 flags)
{
    shard_accept_done(SHARD_OF(c, accept_c[1]), 1, res, flags);
}

static void shard_arm_accepts(struct shard *s)
{
    int fds[2] = {s->node->client_fd[s->id], s->node->shard_fd[s->id]};
    s->accept_c[0].done = shard_accept0_done;
    s->accept_c[1].done = shard_accept1_done;
    for (int i = 0; i < 2; i++) {
        if (s->accept_armed[i] || s->draining) continue;
        if (loop_accept_multishot(s->loop, &s->accept_c[i], fds[i]) == 0) s->accept_armed[i] = true;
    }
}

static void shard_tick_done(struct loop_completion *c, int res, u32 flags)
{
    (void)res;
    (void)flags;
    struct shard *s = SHARD_OF(c, tick_c);
    s->tick_armed = false;
    if (s->raft) shard_raft_tick(s);
    if (s->peer) shard_peer_tick(s);
}

static void shard_doorbell_done(struct loop_completion *c, int res, u32 flags)
{
    (void)res;
    (void)flags;
    struct shard *s = SHARD_OF(c, doorbell_c);
    s->efd_armed = false; /* eventfd mode re-arms at the end of the turn; MSG_RING needs nothing */
}

static void shard_ring_done(struct loop_completion *c, int res, u32 flags)
{
    (void)c;
    (void)flags;
    if (res < 0) fprintf(stderr, "DEBUG msg_ring res %d\n", res);
}

/* xcore's doorbell, on the producer's thread. */
static void shard_doorbell(void *ctx, u32 source, u32 target)
{
    struct node *n = ctx;
    if (!atomic_load(&n->no_msg_ring) &&
        loop_msg_ring(n->loops[source], &n->shards[source].ring_c, n->loops[target], 1) == 0)
        return;
    loop_eventfd_signal(n->loops[target], 1);
}

/* ---- the turn -----------------------------------------------------------------------------------
 */

static void shard_begin_drain(struct shard *s);

static bool shard_busy(const struct shard *s)
{
    if (s->compacting) return true;
    if (s->snap) return true;
    if (shard_raft_busy(s)) return true;
    if (!s->flush_busy && shard_wal_pending(s) > wal_durable_index(&s->wal) && !s->wal.failed)
        return true;
    return xcore_pending(s->node->xcore, s->id);
}

static void shard_after_io(struct shard *s)
{
    struct node *n = s->node;
    xcore_poll(n->xcore, s->id, shard_xcore_handler, s);
    if (s->compacting) s->compacting = !mvcc_compact_step(s->m, SHARD_COMPACT_KEYS);
    shard_raft_turn(s);
    shard_snap_step(s);
    shard_spare_step(s);
    shard_wal_kick(s);
    if (shard_wal_durable(s) != s->host.durable_index)
        conn_host_durable(&s->host, shard_wal_durable(s));
    shard_release_remote(s);
    conn_host_pump(&s->host);
    shard_raft_turn(s); /* what the pump's resumed connections proposed */
    shard_wal_kick(s);
    shard_free_lent(s);
    xcore_flush(n->xcore, s->id);
    if (!s->tick_armed && loop_timeout(s->loop, &s->tick_c, SHARD_TICK_MS) == 0)
        s->tick_armed = true;
    if (atomic_load(&n->no_msg_ring) && !s->efd_armed &&
        loop_eventfd_arm(s->loop, &s->doorbell_c) == 0)
        s->efd_armed = true;
    shard_arm_accepts(s);
}

static void shard_turn(struct shard *s)
{
    struct node *n = s->node;
    int wait_ms = shard_busy(s) || (atomic_load(&n->stop) && !s->draining) ? 0 : -1;
    bool slept = false;
    if (wait_ms != 0) {
        slept = xcore_sleep_begin(n->xcore, s->id);
        if (!slept) wait_ms = 0;
    }
    int rc = loop_run_turn(s->loop, wait_ms);
    if (slept) xcore_sleep_end(n->xcore, s->id);
    if (rc < 0) node_log("shard", "shard %u: io_uring turn failed: %s", s->id, strerror(-rc));
    if (atomic_load(&n->stop) && !s->draining) shard_begin_drain(s);
    shard_after_io(s);
}

/* ---- drain ------------------------------------------------------------------------------------
 */

static void shard_begin_drain(struct shard *s)
{
    s->draining = true;
    for (int i = 0; i < 2; i++)
        if (s->accept_armed[i]) {
            static struct loop_completion ignore = {.done = shard_ring_done};
            loop_cancel(s->loop, &ignore, &s->accept_c[i]);
        }
    s->drain_started_ns = shard_now_ns();
}

/* True once this shard owes nothing to anyone. */
static bool shard_drain_done(struct shard *s)
{
    if (s->host.open_count > 0 || s->rr_len > 0 || s->flush_busy || shard_snap_io_busy(s))
        return false;
    if (shard_raft_owes(s)) return false;
    if (shard_wal_pending(s) > shard_wal_durable(s) && !s->wal.failed) return false;
    for (u32 i = 0; i < s->node->config.shard_count; i++)
        if (s->lent_req[i].count || s->lent_rep[i].count) return false;
    return true;
}

static void shard_drain_conns(struct shard *s, bool force);

static void shard_run(struct shard *s)
{
    struct node *n = s->node;
    u32 total = n->config.shard_count;
    for (;;) {
        shard_turn(s);
        if (!s->draining) continue;
        bool force = shard_now_ns() - s->drain_started_ns > SHARD_DRAIN_MAX_MS * 1000000ull;
        shard_drain_conns(s, force);
        if (!s->drained && shard_drain_done(s)) {
            s->drained = true;
            atomic_fetch_add(&n->drained, 1);
        }
        if (s->drained && atomic_load(&n->drained) == total && shard_drain_done(s)) break;
    }
}

/* ---- set-up and teardown ----------------------------------------------------------------------
 */

static int shard_setup_loop(struct shard *s)
{
    struct loop_config lc = {.sq_entries = SHARD_SQ_ENTRIES, .flags = s->node->config.loop_flags};
    int rc = loop_create(&lc, &s->loop);
    if (rc < 0) return shard_fail(s, "io_uring: %s", strerror(-rc)), -1;
    rc = bufring_init(&s->br, s->loop, 1, SHARD_RECV_BUFFERS, SHARD_RECV_BUF_BYTES);
    if (rc < 0) return shard_fail(s, "provided buffer ring: %s", strerror(-rc)), -1;
    s->br_ready = true;
    s->host = (struct conn_host){.loop = s->loop,
                                 .br = &s->br,
                                 .frame_size_max = CODEC_FRAME_SIZE_MAX,
                                 .out_limit_bytes = SHARD_OUT_LIMIT_BYTES,
                                 .in_limit_bytes = SHARD_IN_LIMIT_BYTES,
                                 .on_frame = shard_on_frame,
                                 .on_closed = shard_on_closed,
                                 .ctx = s};
    s->tick_c.done = shard_tick_done;
    s->doorbell_c.done = shard_doorbell_done;
    s->ring_c.done = shard_ring_done;
    if (!s->node->config.quiet) node_log("shard", "shard %u: %s", s->id, loop_describe(s->loop));
    return 0;
}

static int shard_setup_store(struct shard *s)
{
    struct mvcc_config mc;
    mvcc_config_default(&mc);
    if (s->node->config.memory_bytes_max) mc.memory_bytes_max = s->node->config.memory_bytes_max;
    s->m = mvcc_create(&mc);
    if (!s->m) return shard_fail(s, "out of memory creating the store"), -1;
    exec_init(&s->x, s->m, (u16)s->id, s->node->config.member_id, CODEC_REPLY_FRAME_SIZE_MAX);
    s->map = s->node->map; /* each shard reads its own copy */
    s->x.shard_map_version = s->map.version;
    for (u32 i = 0; i < s->node->config.shard_count; i++) {
        u32 cap = 1024;
        s->lent_req[i].items = calloc(cap, sizeof(struct lent));
        s->lent_rep[i].items = calloc(cap, sizeof(struct lent));
        if (!s->lent_req[i].items || !s->lent_rep[i].items)
            return shard_fail(s, "out of memory"), -1;
        s->lent_req[i].cap = s->lent_rep[i].cap = cap;
    }
    s->hs_fd = s->recv_fd = -1;
    if (shard_wal_recover(s) != 0) return -1;
    return shard_peer_start(s);
}

static void shard_teardown(struct shard *s)
{
    shard_peer_stop(s); /* turns the loop until its ops are reaped: before anything else goes */
    if (s->br_ready) bufring_deinit(&s->br);
    if (s->loop) loop_destroy(s->loop); /* cancels and reaps every op in flight */
    shard_snap_teardown(s);
    shard_spare_free(s);
    shard_wal_close(s);
    shard_raft_free(s);
    exec_deinit(&s->x);
    if (s->m) mvcc_destroy(s->m);
    for (u32 i = 0; i < NODE_SHARDS_MAX; i++) {
        free(s->lent_req[i].items);
        free(s->lent_rep[i].items);
    }
    free(s->rr);
}

static void shard_pin(struct shard *s)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus <= 0 || getenv("KEEL_NO_PIN")) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)(s->id % (u32)cpus), &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* Tells the node this shard is ready and waits until every shard is (or one failed). */
static bool shard_wait_all(struct shard *s)
{
    struct node *n = s->node;
    pthread_mutex_lock(&n->mu);
    n->ready++;
    pthread_cond_broadcast(&n->cv);
    while (n->ready < n->config.shard_count && n->failed == 0) pthread_cond_wait(&n->cv, &n->mu);
    bool ok = n->failed == 0;
    pthread_mutex_unlock(&n->mu);
    return ok;
}

static void *shard_main(void *arg)
{
    struct shard *s = arg;
    shard_pin(s);
    if (shard_setup_loop(s) == 0) {
        s->node->loops[s->id] = s->loop;
        if (loop_has_msg_ring(s->loop))
            loop_doorbell_set(s->loop, &s->doorbell_c);
        else
            atomic_store(&s->node->no_msg_ring, true);
        if (shard_setup_store(s) == 0 && shard_wait_all(s)) {
            shard_arm_accepts(s);
            if (loop_timeout(s->loop, &s->tick_c, SHARD_TICK_MS) == 0) s->tick_armed = true;
            shard_run(s);
        }
    }
    shard_teardown(s);
    return NULL;
}

/* ---- the node ------------------------------------------------------------------------------- */

static void shard_drain_conns(struct shard *s, bool force)
{
    /* Every connection: say GOAWAY after what it is owed (or close at once when forced). */
    if (force) shard_raft_fail_owed(s); /* leadership may never come back */
    for (struct conn *c = s->host.all_head; c; c = c->all_next) {
        if (force)
            conn_close(c);
        else
            conn_goaway(c, CODEC_S_SHUTTING_DOWN, 0, "the server is stopping");
    }
}

/* SO_REUSEPORT would let a second keeld bind the same ports and silently share the traffic:
 * a plain bind first tells whether anyone listens there already. */
static bool node_port_free(u32 ipv4, u16 port)
{
    if (port == 0) return true;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return true;
    int one = 1; /* connections in TIME_WAIT from an earlier keeld do not count */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(ipv4)};
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno != EADDRINUSE;
    close(fd);
    return ok;
}

static int node_listen(struct node *n, char *err, size_t err_len)
{
    u32 count = n->config.shard_count;
    u16 port = n->config.client_port;
    for (u32 i = 0; i <= count && port != 0; i++) {
        u32 p = (u32)port + (i == 0 ? 0 : i);
        if (p > 65535 || !node_port_free(n->config.ipv4, (u16)p))
            return snprintf(err, err_len, "port %u is in use (another keeld?)", p), -1;
    }
    for (u32 i = 0; i < count; i++) {
        u16 bound = 0;
        int fd = loop_listen_tcp(n->config.ipv4, port, 1024, &bound);
        if (fd < 0)
            return snprintf(err, err_len, "cannot listen on client port %u: %s", port,
                            strerror(-fd)),
                   -1;
        n->client_fd[i] = fd;
        port = bound;
    }
    n->client_port = port;
    for (u32 i = 0; i < count; i++) {
        u32 p = (u32)port + 1 + i;
        u16 bound = 0;
        int fd = p > 65535 ? -EINVAL : loop_listen_tcp(n->config.ipv4, (u16)p, 1024, &bound);
        if (fd < 0)
            return snprintf(err, err_len, "cannot listen on shard %u's port %u: %s", i, p,
                            strerror(-fd)),
                   -1;
        n->shard_fd[i] = fd;
    }
    return 0;
}

static void node_free(struct node *n)
{
    for (u32 i = 0; i < n->config.shard_count; i++) {
        if (n->client_fd[i] >= 0) close(n->client_fd[i]);
        if (n->shard_fd[i] >= 0) close(n->shard_fd[i]);
    }
    if (n->xcore) xcore_destroy(n->xcore);
    if (n->lock_fd >= 0) close(n->lock_fd);
    free(n->shards);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

static struct node *node_new(const struct node_config *config)
{
    struct node *n = calloc(1, sizeof(*n));
    if (!n) return NULL;
    n->config = *config;
    n->lock_fd = -1;
    for (u32 i = 0; i < NODE_SHARDS_MAX; i++) n->client_fd[i] = n->shard_fd[i] = -1;
    snprintf(n->data_dir, sizeof(n->data_dir), "%s", config->data_dir);
    n->config.data_dir = n->data_dir;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    n->shards = calloc(config->shard_count, sizeof(struct shard));
    if (!n->shards) {
        node_free(n);
        return NULL;
    }
    return n;
}

static int node_spawn(struct node *n, char *err, size_t err_len)
{
    struct xcore_config xc;
    xcore_config_default(&xc, n->config.shard_count);
    xc.doorbell = shard_doorbell;
    xc.doorbell_ctx = n;
    n->xcore = xcore_create(&xc);
    if (!n->xcore) return snprintf(err, err_len, "out of memory for the xcore rings"), -1;
    for (u32 i = 0; i < n->config.shard_count; i++) {
        struct shard *s = &n->shards[i];
        s->node = n;
        s->id = i;
        s->spare_fd = -1;
        if ((size_t)snprintf(s->dir, sizeof(s->dir), "%.200s/shard-%u", n->data_dir, i) >=
            sizeof(s->dir))
            return snprintf(err, err_len, "data dir path too long"), -1;
        if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
            return snprintf(err, err_len, "cannot create %s: %s", s->dir, strerror(errno)), -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals go to the main thread */
    for (u32 i = 0; i < n->config.shard_count; i++) {
        struct shard *s = &n->shards[i];
        if (pthread_create(&s->thread, NULL, shard_main, s) == 0) {
            s->thread_started = true;
            continue;
        }
        shard_fail(s, "cannot start its thread");
        break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

static void node_join(struct node *n)
{
    for (u32 i = 0; i < n->config.shard_count; i++)
        if (n->shards[i].thread_started) pthread_join(n->shards[i].thread, NULL);
}

int node_start(const struct node_config *config, struct node **out, char *err, size_t err_len)
{
    if (config->shard_count < 1 || config->shard_count > NODE_SHARDS_MAX)
        return snprintf(err, err_len, "--shards must be 1..%u", NODE_SHARDS_MAX), -1;
    struct node *n = node_new(config);
    if (!n) return snprintf(err, err_len, "out of memory"), -1;
    if (node_prepare_dir(n, err, err_len) != 0 || node_listen(n, err, err_len) != 0 ||
        node_spawn(n, err, err_len) != 0) {
        atomic_store(&n->stop, 1);
        node_join(n);
        node_free(n);
        return -1;
    }
    pthread_mutex_lock(&n->mu);
    while (n->ready < n->config.shard_count && n->failed == 0) pthread_cond_wait(&n->cv, &n->mu);
    bool failed = n->failed != 0;
    pthread_mutex_unlock(&n->mu);
    if (failed) {
        snprintf(err, err_len, "%s", n->err);
        atomic_store(&n->stop, 1);
        node_join(n);
        node_free(n);
        return -1;
    }
    *out = n;
    return 0;
}

u16 node_client_port(const struct node *n)
{
    return n->client_port;
}

void node_stop(struct node *n)
{
    atomic_store(&n->stop, 1);
    node_join(n);
    node_free(n);
}
