/*
 * test_loop.c — the io_uring event loop (net/loop.h) and buffer ring (net/bufring.h).
 *
 *  - echo: one loop in the test thread accepts (multishot, SO_REUSEPORT port
 *    on 127.0.0.1), receives (multishot, buffer ring) and echoes with sends that
 *    re-issue the rest after a short write; a client thread drives many
 *    blocking connections with random messages up to 64 KiB and checks every
 *    byte. Run in each mode of the fallback chain.
 *  - backpressure: a ring of 4 small buffers held across turns makes the recv
 *    end with -ENOBUFS; the test recycles, re-arms, and checks that the whole
 *    stream arrives in order.
 *  - write + fdatasync on a temp file, read back; the same as a linked chain
 *    (in order; a failed write cancels the fdatasync; loop_reserve).
 *  - timeout: fires no earlier than asked.
 *  - doorbell: MSG_RING from loop A to loop B (skipped without kernel support),
 *    and the eventfd fallback, each loop on its own thread.
 *  - fallback: forced COOP_TASKRUN and PLAIN modes are reported and work.
 *  - SQ full and CQ overflow: 64 timeouts on an SQ of 4 (CQ 16) submit early, overflow
 *    the CQ, and all 64 completions arrive.
 *  - destroy: ops in flight are cancelled and reaped without done() running.
 *
 * Randomized tests take KEEL_SEED from the environment (else a fresh seed) and
 * print the seed they use.
 */
#include "net/bufring.h"
#include "net/loop.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LOCALHOST                     0x7f000001u /* 127.0.0.1 */
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* ---- seeded randomness and clocks ------------------------------------------------------- */

static u64 seed_get(const char *test)
{
    const char *env = getenv("KEEL_SEED");
    u64 seed = env ? strtoull(env, NULL, 0) : (u64)time(NULL) ^ (u64)getpid() << 20;
    if (seed == 0) seed = 1;
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
    return seed;
}

static u64 rng_next(u64 *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void rng_fill(u64 *s, u8 *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (u8)(rng_next(s) >> 24);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- a completion that records what it got ---------------------------------------------- */

struct rec {
    struct loop_completion c;
    int res;
    u32 flags;
    int calls;
};

static void rec_done(struct loop_completion *c, int res, u32 flags)
{
    struct rec *r = container_of(c, struct rec, c);
    r->res = res;
    r->flags = flags;
    r->calls++;
}

static void rec_init(struct rec *r)
{
    memset(r, 0, sizeof(*r));
    r->c.done = rec_done;
}

/* Turns until r has completed once, for at most deadline_ms. */
static void run_until(struct loop *l, struct rec *r, double deadline_ms)
{
    double end = now_ms() + deadline_ms;
    while (r->calls == 0 && now_ms() < end) {
        int n = loop_run_turn(l, 50);
        cr_assert(n >= 0, "loop_run_turn: %s", strerror(-n));
    }
    cr_assert_eq(r->calls, 1, "no completion within %.0f ms", deadline_ms);
}

static struct loop *loop_new(u32 sq_entries, u32 flags)
{
    struct loop_config config = {.sq_entries = sq_entries, .flags = flags};
    struct loop *l = NULL;
    int rc = loop_create(&config, &l);
    cr_assert_eq(rc, 0, "loop_create: %s", strerror(-rc));
    fprintf(stderr, "loop: %s\n", loop_describe(l));
    return l;
}

/* ---- blocking client helpers ---------------------------------------------------------- */

static int client_connect(u16 port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(LOCALHOST);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const u8 *p, size_t n)
{
    while (n > 0) { /* bounded by n: every pass sends at least one byte or fails */
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

static bool recv_all(int fd, u8 *p, size_t n)
{
    while (n > 0) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0) return false;
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* ---- echo server ------------------------------------------------------------------------ */

#define ECHO_CONNS     16
#define ECHO_MSG_MAX   65536u
#define ECHO_OUT_SIZE  (2 * ECHO_MSG_MAX)
#define ECHO_BUF_COUNT 64u
#define ECHO_BUF_SIZE  4096u
#define ECHO_GROUP     7

struct echo_conn {
    struct echo_server *srv;
    int fd;
    bool open;
    bool eof;
    bool sending;
    struct loop_completion recv_c;
    struct loop_completion send_c;
    u32 head; /* out[head, tail) waits to be sent */
    u32 tail;
    u8 out[ECHO_OUT_SIZE];
};

struct echo_server {
    struct loop *loop;
    struct bufring br;
    int listen_fd;
    struct loop_completion accept_c;
    int accepted;
    int open;
    u64 short_sends;
    u64 rearms;
    int errors;
    struct echo_conn conns[ECHO_CONNS];
};

static void echo_send_more(struct echo_conn *k)
{
    if (k->sending || k->head == k->tail) return;
    int rc = loop_send(k->srv->loop, &k->send_c, k->fd, k->out + k->head, k->tail - k->head);
    cr_assert_eq(rc, 0);
    k->sending = true;
}

static void echo_close_if_done(struct echo_conn *k)
{
    if (!k->eof || k->sending || k->head != k->tail) return;
    close(k->fd);
    k->open = false;
    k->srv->open--;
}

static void echo_send_done(struct loop_completion *c, int res, u32 flags)
{
    struct echo_conn *k = container_of(c, struct echo_conn, send_c);
    (void)flags;
    k->sending = false;
    if (res <= 0) {
        k->srv->errors++;
        k->head = k->tail; /* drop: the client will report the missing bytes */
    } else {
        if ((u32)res < k->tail - k->head) k->srv->short_sends++;
        k->head += (u32)res;
        if (k->head == k->tail) k->head = k->tail = 0;
    }
    echo_send_more(k);
    echo_close_if_done(k);
}

static void echo_recv_done(struct loop_completion *c, int res, u32 flags)
{
    struct echo_conn *k = container_of(c, struct echo_conn, recv_c);
    struct echo_server *s = k->srv;
    if (res > 0) {
        u8 *p = bufring_take(&s->br, flags, res);
        cr_assert(k->tail + (u32)res <= ECHO_OUT_SIZE, "client sent more than one message");
        memcpy(k->out + k->tail, p, (size_t)res);
        k->tail += (u32)res;
        bufring_recycle(&s->br, loop_cqe_buffer_id(flags));
        echo_send_more(k);
    }
    if (flags & LOOP_CQE_F_MORE) return;
    if (res == 0) {
        k->eof = true;
        echo_close_if_done(k);
    } else if (res > 0 || res == -ENOBUFS) {
        s->rearms++; /* the multishot ended: arm it again (buffers were recycled above) */
        cr_assert_eq(loop_recv_multishot(s->loop, &k->recv_c, k->fd, ECHO_GROUP), 0);
    } else {
        s->errors++;
        k->eof = true;
        echo_close_if_done(k);
    }
}

static void echo_accept_done(struct loop_completion *c, int res, u32 flags)
{
    struct echo_server *s = container_of(c, struct echo_server, accept_c);
    if (res >= 0) {
        cr_assert(s->accepted < ECHO_CONNS);
        struct echo_conn *k = &s->conns[s->accepted++];
        int sndbuf = 4096; /* small, so that short sends happen */
        setsockopt(res, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        k->srv = s;
        k->fd = res;
        k->open = true;
        k->recv_c.done = echo_recv_done;
        k->send_c.done = echo_send_done;
        s->open++;
        cr_assert_eq(loop_recv_multishot(s->loop, &k->recv_c, k->fd, ECHO_GROUP), 0);
    } else {
        s->errors++;
    }
    if (!(flags & LOOP_CQE_F_MORE))
        cr_assert_eq(loop_accept_multishot(s->loop, c, s->listen_fd), 0);
}

struct echo_client {
    u16 port;
    u64 seed;
    int rounds;
    atomic_bool done;
    u64 bytes;
    int failures;
    char failure[128];
};

static void *echo_client_main(void *arg)
{
    struct echo_client *cl = arg;
    static u8 msg[ECHO_CONNS][ECHO_MSG_MAX], back[ECHO_MSG_MAX];
    u32 len[ECHO_CONNS];
    int fds[ECHO_CONNS];
    u64 s = cl->seed;
    for (int i = 0; i < ECHO_CONNS; i++) fds[i] = client_connect(cl->port);
    for (int r = 0; r < cl->rounds && cl->failures == 0; r++) {
        for (int i = 0; i < ECHO_CONNS; i++) {
            len[i] = 1 + (u32)(rng_next(&s) % ECHO_MSG_MAX);
            rng_fill(&s, msg[i], len[i]);
            if (fds[i] < 0 || !send_all(fds[i], msg[i], len[i])) cl->failures++;
        }
        for (int i = 0; i < ECHO_CONNS && cl->failures == 0; i++) {
            if (!recv_all(fds[i], back, len[i]) || memcmp(back, msg[i], len[i]) != 0) {
                snprintf(cl->failure, sizeof(cl->failure), "round %d conn %d: %u bytes differ", r,
                         i, len[i]);
                cl->failures++;
            }
            cl->bytes += len[i];
        }
    }
    for (int i = 0; i < ECHO_CONNS; i++) {
        if (fds[i] >= 0) close(fds[i]);
    }
    atomic_store(&cl->done, true);
    return NULL;
}

static struct echo_server echo_srv;

static void echo_run(u32 loop_flags, int rounds, const char *name)
{
    struct echo_server *s = &echo_srv;
    memset(s, 0, sizeof(*s));
    s->loop = loop_new(64, loop_flags);
    cr_assert_eq(bufring_init(&s->br, s->loop, ECHO_GROUP, ECHO_BUF_COUNT, ECHO_BUF_SIZE), 0);
    u16 port = 0;
    s->listen_fd = loop_listen_tcp(LOCALHOST, 0, 64, &port);
    cr_assert(s->listen_fd >= 0, "listen: %s", strerror(-s->listen_fd));
    s->accept_c.done = echo_accept_done;
    cr_assert_eq(loop_accept_multishot(s->loop, &s->accept_c, s->listen_fd), 0);

    struct echo_client cl = {.port = port, .seed = seed_get(name), .rounds = rounds};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, echo_client_main, &cl), 0);
    double end = now_ms() + 120000;
    while (!(atomic_load(&cl.done) && s->accepted == ECHO_CONNS && s->open == 0) &&
           now_ms() < end) {
        int n = loop_run_turn(s->loop, 10);
        cr_assert(n >= 0, "loop_run_turn: %s", strerror(-n));
    }
    pthread_join(t, NULL);
    fprintf(stderr, "%s: %llu bytes echoed, %llu short sends, %llu re-arms\n", name,
            (unsigned long long)cl.bytes, (unsigned long long)s->short_sends,
            (unsigned long long)s->rearms);
    cr_assert_eq(cl.failures, 0, "client: %s", cl.failure);
    cr_assert_eq(s->errors, 0);
    cr_assert_eq(s->accepted, ECHO_CONNS);
    cr_assert_eq(s->open, 0, "connections left open after the client finished");
    cr_assert_eq(bufring_held(&s->br), 0);
    cr_assert_eq(loop_inflight(s->loop), 1, "only the multishot accept stays armed");
    close(s->listen_fd);
    bufring_deinit(&s->br);
    loop_destroy(s->loop);
}

Test(loop, echo)
{
    echo_run(0, 24, "loop::echo");
}

/* ---- backpressure: ENOBUFS, recycle, re-arm ------------------------------------------------ */

#define BP_TOTAL (4u << 20)
#define BP_BUFS  4u
#define BP_BUF   1024u
#define BP_GROUP 3

static u8 bp_stream[BP_TOTAL];

struct bp_client {
    u16 port;
    u64 seed;
    bool ok;
};

static void *bp_client_main(void *arg)
{
    struct bp_client *cl = arg;
    u64 s = cl->seed;
    int fd = client_connect(cl->port);
    cl->ok = fd >= 0;
    for (u32 at = 0; cl->ok && at < BP_TOTAL;) {    /* bounded by BP_TOTAL */
        u32 want = 1 + (u32)(rng_next(&s) % 65536); /* KEEL_MIN evaluates twice */
        u32 n = KEEL_MIN(BP_TOTAL - at, want);
        cl->ok = send_all(fd, bp_stream + at, n);
        at += n;
    }
    if (fd >= 0) close(fd);
    return NULL;
}

struct bp_server {
    struct loop *loop;
    struct bufring br;
    struct loop_completion accept_c;
    struct loop_completion recv_c;
    int fd;
    bool eof;
    bool rearm;
    int errors;
    u64 enobufs;
    u32 queued; /* held buffers in CQE order: queue[0, queued) */
    u16 queue_bid[BP_BUFS];
    u32 queue_len[BP_BUFS];
};

static void bp_accept_done(struct loop_completion *c, int res, u32 flags)
{
    struct bp_server *s = container_of(c, struct bp_server, accept_c);
    (void)flags;
    cr_assert(res >= 0 && s->fd < 0, "one connection expected (res %d)", res);
    s->fd = res;
    cr_assert_eq(loop_recv_multishot(s->loop, &s->recv_c, s->fd, BP_GROUP), 0);
}

static void bp_recv_done(struct loop_completion *c, int res, u32 flags)
{
    struct bp_server *s = container_of(c, struct bp_server, recv_c);
    if (res > 0) {
        (void)bufring_take(&s->br, flags, res);
        cr_assert(s->queued < BP_BUFS);
        s->queue_bid[s->queued] = loop_cqe_buffer_id(flags);
        s->queue_len[s->queued++] = (u32)res;
    }
    if (flags & LOOP_CQE_F_MORE) return;
    if (res == 0) {
        s->eof = true;
    } else if (res == -ENOBUFS) {
        cr_assert_eq(bufring_held(&s->br), BP_BUFS, "ENOBUFS with buffers free");
        s->enobufs++;
        s->rearm = true; /* backpressure: re-arm only after recycling */
    } else if (res > 0) {
        s->rearm = true;
    } else {
        s->errors++;
        s->eof = true;
    }
}

/* The consumer's side of a turn: check the held buffers in order, recycle, re-arm. */
static void bp_consume(struct bp_server *s, u32 *at)
{
    for (u32 i = 0; i < s->queued; i++) {
        u16 bid = s->queue_bid[i];
        u32 n = s->queue_len[i];
        const u8 *p = s->br.bufs + (size_t)bid * BP_BUF;
        cr_assert(*at + n <= BP_TOTAL);
        cr_assert(memcmp(p, bp_stream + *at, n) == 0, "bytes at %u differ", *at);
        *at += n;
        bufring_recycle(&s->br, bid);
    }
    s->queued = 0;
    if (s->rearm && !s->eof) {
        s->rearm = false;
        cr_assert_eq(loop_recv_multishot(s->loop, &s->recv_c, s->fd, BP_GROUP), 0);
    }
}

Test(loop, backpressure_enobufs)
{
    static struct bp_server srv;
    struct bp_server *s = &srv;
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    u64 seed = seed_get("loop::backpressure_enobufs");
    u64 rs = seed;
    rng_fill(&rs, bp_stream, BP_TOTAL);
    s->loop = loop_new(16, 0);
    cr_assert_eq(bufring_init(&s->br, s->loop, BP_GROUP, BP_BUFS, BP_BUF), 0);
    u16 port = 0;
    int lfd = loop_listen_tcp(LOCALHOST, 0, 4, &port);
    cr_assert(lfd >= 0);
    s->accept_c.done = bp_accept_done;
    s->recv_c.done = bp_recv_done;
    cr_assert_eq(loop_accept_multishot(s->loop, &s->accept_c, lfd), 0);
    struct bp_client cl = {.port = port, .seed = seed ^ 0x5bd1e995};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bp_client_main, &cl), 0);
    u32 at = 0;
    double end = now_ms() + 120000;
    while (!s->eof && now_ms() < end) { /* bounded by the deadline */
        cr_assert(loop_run_turn(s->loop, 50) >= 0);
        bp_consume(s, &at);
    }
    pthread_join(t, NULL);
    fprintf(stderr, "backpressure: %u bytes, %llu ENOBUFS\n", at, (unsigned long long)s->enobufs);
    cr_assert(cl.ok);
    cr_assert(s->eof);
    cr_assert_eq(s->errors, 0);
    cr_assert_eq(at, BP_TOTAL, "received %u of %u bytes", at, BP_TOTAL);
    cr_assert_gt(s->enobufs, 0, "the tiny ring never ran dry");
    close(s->fd);
    close(lfd);
    bufring_deinit(&s->br);
    loop_destroy(s->loop);
}

/* ---- write + fdatasync ------------------------------------------------------------------ */

Test(loop, write_fdatasync)
{
    u64 s = seed_get("loop::write_fdatasync");
    char path[] = "/tmp/keel_test_loop_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    struct loop *l = loop_new(8, 0);
    static u8 data[3][20000], back[20000];
    const u64 offsets[3] = {0, 20480, 45000}; /* chunks of <= 20000 bytes never overlap */
    u32 lens[3];
    for (int i = 0; i < 3; i++) {
        lens[i] = 1 + (u32)(rng_next(&s) % sizeof(data[i]));
        rng_fill(&s, data[i], lens[i]);
        struct rec w;
        rec_init(&w);
        cr_assert_eq(loop_write(l, &w.c, fd, data[i], lens[i], offsets[i]), 0);
        run_until(l, &w, 5000);
        cr_assert_eq(w.res, (int)lens[i], "write: %d", w.res);
    }
    struct rec f;
    rec_init(&f);
    cr_assert_eq(loop_fsync(l, &f.c, fd, LOOP_FSYNC_DATASYNC), 0);
    run_until(l, &f, 5000);
    cr_assert_eq(f.res, 0, "fdatasync: %s", strerror(-f.res));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pread(fd, back, lens[i], (off_t)offsets[i]), (ssize_t)lens[i]);
        cr_assert(memcmp(back, data[i], lens[i]) == 0, "chunk %d differs", i);
    }
    close(fd);
    loop_destroy(l);
}

/* ---- linked write + fdatasync ------------------------------------------------------------ */

/* A completion that also records the order in which completions arrived. */
struct seq_rec {
    struct rec r;
    int *clock;
    int at; /* the clock's value when done() ran */
};

static void seq_done(struct loop_completion *c, int res, u32 flags)
{
    struct seq_rec *s = container_of(c, struct seq_rec, r.c);
    rec_done(c, res, flags);
    s->at = ++*s->clock;
}

static void seq_init(struct seq_rec *s, int *clock)
{
    rec_init(&s->r);
    s->r.c.done = seq_done;
    s->clock = clock;
    s->at = 0;
}

Test(loop, linked_write_fdatasync)
{
    u64 s = seed_get("loop::linked_write_fdatasync");
    char path[] = "/tmp/keel_test_loop_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    unlink(path);
    struct loop *l = loop_new(4, 0);
    static u8 data[8192], back[8192];
    rng_fill(&s, data, sizeof(data));
    int clock = 0;
    struct seq_rec w, f;
    seq_init(&w, &clock);
    seq_init(&f, &clock);
    cr_assert_eq(loop_reserve(l, 2), 0);
    cr_assert_eq(loop_write(l, &w.r.c, fd, data, sizeof(data), 4096), 0);
    loop_link_next(l);
    cr_assert_eq(loop_fsync(l, &f.r.c, fd, LOOP_FSYNC_DATASYNC), 0);
    run_until(l, &f.r, 5000);
    cr_assert_eq(w.r.calls, 1);
    cr_assert_eq(w.r.res, (int)sizeof(data), "write: %d", w.r.res);
    cr_assert_eq(f.r.res, 0, "fdatasync: %s", strerror(-f.r.res));
    cr_assert_lt(w.at, f.at, "the write completes before its linked fdatasync");
    cr_assert_eq(pread(fd, back, sizeof(back), 4096), (ssize_t)sizeof(back));
    cr_assert(memcmp(back, data, sizeof(data)) == 0);

    /* A write on a closed fd fails, and the fdatasync linked after it is cancelled. */
    int bad = dup(fd);
    cr_assert(bad >= 0);
    close(bad);
    seq_init(&w, &clock);
    seq_init(&f, &clock);
    cr_assert_eq(loop_reserve(l, 2), 0);
    cr_assert_eq(loop_write(l, &w.r.c, bad, data, 16, 0), 0);
    loop_link_next(l);
    cr_assert_eq(loop_fsync(l, &f.r.c, fd, LOOP_FSYNC_DATASYNC), 0);
    run_until(l, &f.r, 5000);
    cr_assert_eq(w.r.calls, 1);
    cr_assert_eq(w.r.res, -EBADF, "write: %d", w.r.res);
    cr_assert_eq(f.r.res, -ECANCELED, "fsync after a failed link: %d", f.r.res);
    cr_assert_lt(w.at, f.at);
    cr_assert_eq(loop_inflight(l), 0);

    /* loop_reserve submits early to make room for a whole chain, and refuses more than
     * the SQ holds. */
    struct rec t[3];
    for (int i = 0; i < 3; i++) {
        rec_init(&t[i]);
        cr_assert_eq(loop_timeout(l, &t[i].c, 1), 0);
    }
    u64 early = loop_stats(l).sq_full_submits;
    cr_assert_eq(loop_reserve(l, 2), 0);
    cr_assert_eq(loop_stats(l).sq_full_submits, early + 1);
    cr_assert_eq(loop_reserve(l, 5), -EBUSY);
    seq_init(&w, &clock);
    seq_init(&f, &clock);
    cr_assert_eq(loop_write(l, &w.r.c, fd, data, 512, 0), 0);
    loop_link_next(l);
    cr_assert_eq(loop_fsync(l, &f.r.c, fd, LOOP_FSYNC_DATASYNC), 0);
    run_until(l, &f.r, 5000);
    cr_assert_eq(w.r.res, 512);
    cr_assert_eq(f.r.res, 0);
    for (int i = 0; i < 3; i++) run_until(l, &t[i], 5000);
    close(fd);
    loop_destroy(l);
}

/* ---- timeout ---------------------------------------------------------------------------- */

Test(loop, timeout)
{
    struct loop *l = loop_new(8, 0);
    const u32 asked_ms = 60;
    struct rec t;
    rec_init(&t);
    double start = now_ms();
    cr_assert_eq(loop_timeout(l, &t.c, asked_ms), 0);
    run_until(l, &t, 10000);
    double elapsed = now_ms() - start;
    cr_assert_eq(t.res, -ETIME);
    cr_assert_geq(elapsed, (double)asked_ms, "fired after %.1f ms", elapsed);
    cr_assert_lt(elapsed, 5000.0, "fired after %.1f ms", elapsed);
    /* A timeout cancelled before it fires completes with -ECANCELED. */
    struct rec t2, k;
    rec_init(&t2);
    rec_init(&k);
    cr_assert_eq(loop_timeout(l, &t2.c, 60000), 0);
    cr_assert_eq(loop_cancel(l, &k.c, &t2.c), 0);
    run_until(l, &t2, 5000);
    cr_assert_eq(t2.res, -ECANCELED);
    loop_destroy(l);
}

/* ---- doorbell: two loops, two threads ------------------------------------------------------ */

#define DOORBELL_VALUE 123456u

struct bell_target {
    u32 loop_flags;
    bool use_eventfd;
    _Atomic(struct loop *) loop;
    atomic_bool stop;
    struct rec bell;
    int got;
    atomic_int create_rc;
    atomic_bool rang; /* set by the target thread once bell and got are final */
};

static void *bell_target_main(void *arg)
{
    struct bell_target *b = arg;
    struct loop_config config = {.sq_entries = 8, .flags = b->loop_flags};
    struct loop *l = NULL;
    int rc = loop_create(&config, &l);
    atomic_store(&b->create_rc, rc);
    if (rc < 0) {
        atomic_store(&b->rang, true);
        return NULL;
    }
    rec_init(&b->bell);
    loop_doorbell_set(l, &b->bell.c);
    if (b->use_eventfd && loop_eventfd_arm(l, &b->bell.c) < 0) b->got = -1;
    atomic_store(&b->loop, l);
    double end = now_ms() + 10000;
    while (b->bell.calls == 0 && now_ms() < end) loop_run_turn(l, 20);
    if (b->bell.calls > 0) b->got = b->bell.res;
    atomic_store(&b->rang, true);
    while (!atomic_load(&b->stop)) loop_run_turn(l, 5); /* until the sender is done */
    loop_destroy(l);
    return NULL;
}

static struct loop *bell_wait_target(struct bell_target *b)
{
    double end = now_ms() + 10000;
    while (atomic_load(&b->loop) == NULL && now_ms() < end) {
        cr_assert_eq(atomic_load(&b->create_rc), 0);
        usleep(1000);
    }
    cr_assert_neq(atomic_load(&b->loop), NULL);
    return atomic_load(&b->loop);
}

Test(loop, msg_ring_doorbell)
{
    struct loop *a = loop_new(8, 0);
    if (!loop_has_msg_ring(a)) {
        loop_destroy(a);
        cr_skip_test("the kernel lacks IORING_OP_MSG_RING (5.18+); the eventfd test covers it");
    }
    static struct bell_target b;
    memset(&b, 0, sizeof(b));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bell_target_main, &b), 0);
    struct loop *target = bell_wait_target(&b);
    struct rec sent;
    rec_init(&sent);
    cr_assert_eq(loop_msg_ring(a, &sent.c, target, DOORBELL_VALUE), 0);
    run_until(a, &sent, 5000);
    cr_assert_eq(sent.res, 0, "msg_ring: %s", strerror(-sent.res));
    double end = now_ms() + 10000;
    while (!atomic_load(&b.rang) && now_ms() < end) usleep(1000);
    atomic_store(&b.stop, true);
    pthread_join(t, NULL);
    cr_assert_eq(b.bell.calls, 1);
    cr_assert_eq(b.got, (int)DOORBELL_VALUE);
    loop_destroy(a);
}

Test(loop, eventfd_doorbell)
{
    struct loop *a = loop_new(8, LOOP_CONFIG_NO_MSG_RING);
    cr_assert(!loop_has_msg_ring(a));
    cr_assert(strstr(loop_describe(a), "eventfd") != NULL, "%s", loop_describe(a));
    static struct bell_target b;
    memset(&b, 0, sizeof(b));
    b.loop_flags = LOOP_CONFIG_NO_MSG_RING;
    b.use_eventfd = true;
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bell_target_main, &b), 0);
    struct loop *target = bell_wait_target(&b);
    cr_assert_eq(loop_eventfd_signal(target, DOORBELL_VALUE), 0);
    double end = now_ms() + 10000;
    while (!atomic_load(&b.rang) && now_ms() < end) usleep(1000);
    atomic_store(&b.stop, true);
    pthread_join(t, NULL);
    cr_assert_eq(b.bell.calls, 1);
    cr_assert_eq(b.got, (int)DOORBELL_VALUE);
    loop_destroy(a);
}

/* ---- the fallback chain ------------------------------------------------------------------- */

Test(loop, mode_default)
{
    struct loop *l = loop_new(8, 0);
    /* Kernels 6.1+ have DEFER_TASKRUN; an older one must say why it fell back. */
    if (loop_mode(l) != LOOP_MODE_DEFER_TASKRUN) {
        cr_assert(strstr(loop_describe(l), "kernel fallback") != NULL, "%s", loop_describe(l));
    } else {
        cr_assert(strstr(loop_describe(l), "defer_taskrun") != NULL, "%s", loop_describe(l));
    }
    loop_destroy(l);
}

Test(loop, fallback_coop_taskrun)
{
    struct loop *l = loop_new(8, LOOP_CONFIG_NO_DEFER_TASKRUN);
    cr_assert_eq(loop_mode(l), LOOP_MODE_COOP_TASKRUN, "%s", loop_describe(l));
    cr_assert(strstr(loop_describe(l), "coop_taskrun") != NULL, "%s", loop_describe(l));
    cr_assert(strstr(loop_describe(l), "forced") != NULL, "%s", loop_describe(l));
    loop_destroy(l);
    echo_run(LOOP_CONFIG_NO_DEFER_TASKRUN, 6, "loop::fallback_coop_taskrun");
}

Test(loop, fallback_plain)
{
    const u32 flags = LOOP_CONFIG_NO_DEFER_TASKRUN | LOOP_CONFIG_NO_COOP_TASKRUN;
    struct loop *l = loop_new(8, flags);
    cr_assert_eq(loop_mode(l), LOOP_MODE_PLAIN, "%s", loop_describe(l));
    cr_assert(strstr(loop_describe(l), "plain") != NULL, "%s", loop_describe(l));
    loop_destroy(l);
    echo_run(flags, 6, "loop::fallback_plain");
}

/* ---- SQ full: preparing more ops than the SQ holds submits early ------------------------ */

Test(loop, sq_full_submits)
{
    struct loop *l = loop_new(4, 0);
    static struct rec t[64];
    for (int i = 0; i < 64; i++) {
        rec_init(&t[i]);
        cr_assert_eq(loop_timeout(l, &t[i].c, 1), 0);
    }
    cr_assert_geq(loop_stats(l).sq_full_submits, 1);
    double end = now_ms() + 10000;
    int done = 0;
    while (done < 64 && now_ms() < end) {
        int n = loop_run_turn(l, 20);
        cr_assert(n >= 0);
        done += n;
    }
    struct loop_stats st = loop_stats(l);
    fprintf(stderr, "sq_full: %llu early submits, %llu turns saw a CQ overflow\n",
            (unsigned long long)st.sq_full_submits, (unsigned long long)st.cq_overflows);
    /* 64 completions through a CQ of 16: any overflow was kept by the kernel (NODROP). */
    cr_assert_eq(done, 64, "completions lost: %d of 64", done);
    for (int i = 0; i < 64; i++) cr_assert_eq(t[i].res, -ETIME);
    loop_destroy(l);
}

/* ---- destroy with ops in flight cancels and reaps them ---------------------------------- */

Test(loop, destroy_drains_inflight)
{
    struct loop *l = loop_new(8, 0);
    struct rec t, e;
    rec_init(&t);
    rec_init(&e);
    cr_assert_eq(loop_timeout(l, &t.c, 60000), 0);
    cr_assert_eq(loop_eventfd_arm(l, &e.c), 0);
    cr_assert_eq(loop_run_turn(l, 0), 0);
    cr_assert_eq(loop_inflight(l), 2);
    double start = now_ms();
    loop_destroy(l);
    double took = now_ms() - start;
    cr_assert_lt(took, 2000.0, "destroy took %.0f ms", took);
    cr_assert_eq(t.calls, 0, "done() must not run during destroy");
    cr_assert_eq(e.calls, 0, "done() must not run during destroy");
}
