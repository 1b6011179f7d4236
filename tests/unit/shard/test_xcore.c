/*
 * test_xcore.c — the cross-core rings against their contract in shard/xcore.h.
 *
 * Single-threaded tests drive both ends of a pair from one thread (allowed:
 * the calls of each shard stay in order on it): the self path, the in-flight
 * cap and ring-full backpressure, the per-ring poll bound, XCORE_AGAIN,
 * borrowed payloads and xcore_consumed, and the doorbell decisions.
 *
 * Threaded tests run one thread per shard, as keeld will: every shard sends
 * requests to every shard (itself included) and answers every request; each
 * message carries its per-pair sequence number and a payload derived from it,
 * so loss, duplication, reordering and torn payloads are all caught. Idle
 * threads sleep on a futex word (an eventfd-like sticky counter) through
 * xcore_sleep_begin; the doorbell bumps the word and wakes. A sleep that
 * times out while a message waits for the sleeper is a lost wakeup and fails.
 * Borrowed payloads are poisoned by their sender as soon as xcore_consumed
 * says they are free, so a receiver that read them late would see it (and
 * TSan, under `make test-tsan`, would report the race).
 *
 * KEEL_OPS sets the number of requests of the stress tests (default 2000000,
 * 200000 under a sanitizer; each is answered, so twice as many messages cross).
 */
#include "shard/xcore.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* A check usable on any thread: Criterion's asserts belong to the main one. */
#define CHECK(x)                                                                  \
    do {                                                                          \
        if (!(x)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
            abort();                                                              \
        }                                                                         \
    } while (0)

#ifndef KEEL_TEST_NO_CRITERION
#include <criterion/criterion.h>
#else
/* Criterion cannot start under ThreadSanitizer (its process arena fails to map:
 * Snaipe/Criterion#274), so the TSan build (tests/unit/shard/CMakeLists.txt) runs these same
 * tests through this minimal runner: the tests in file order, one process, abort on failure. */
struct shim_test {
    const char *name;
    void (*fn)(void);
};
static struct shim_test shim_tests[32];
static int shim_test_count;

#define Test(suite, name, ...)                                                                 \
    static void suite##_##name(void);                                                          \
    __attribute__((constructor)) static void suite##_##name##_register(void)                   \
    {                                                                                          \
        CHECK(shim_test_count < 32);                                                           \
        shim_tests[shim_test_count++] = (struct shim_test){#suite "::" #name, suite##_##name}; \
    }                                                                                          \
    static void suite##_##name(void)
#define cr_assert(x, ...)          CHECK(x)
#define cr_assert_not(x, ...)      CHECK(!(x))
#define cr_assert_eq(a, b, ...)    CHECK((a) == (b))
#define cr_assert_null(x, ...)     CHECK((x) == NULL)
#define cr_assert_not_null(x, ...) CHECK((x) != NULL)

int main(void)
{
    for (int i = 0; i < shim_test_count; i++) {
        fprintf(stderr, "[RUN ] %s\n", shim_tests[i].name);
        shim_tests[i].fn();
        fprintf(stderr, "[PASS] %s\n", shim_tests[i].name);
    }
    fprintf(stderr, "[====] %d tests passed\n", shim_test_count);
    return 0;
}
#endif

/* Sanitizers slow the threads 5-20x: a tenth of the messages still crosses every ring
 * thousands of times. */
#if defined(KEEL_SANITIZE) || defined(KEEL_TSAN)
#define OPS_DEFAULT 200000
#else
#define OPS_DEFAULT 2000000
#endif

static u64 ops_from_env(u64 dflt)
{
    const char *env = getenv("KEEL_OPS");
    return env ? strtoull(env, NULL, 0) : dflt;
}

static struct xcore_msg msg_make(u32 target, enum xcore_dir dir, u64 cookie, u32 len)
{
    struct xcore_msg m;
    memset(&m, 0, sizeof(m));
    m.target = (u16)target;
    m.dir = (u8)dir;
    m.type = 7;
    m.cookie = cookie;
    m.len = len;
    for (u32 i = 0; i < len; i++) m.bytes[i] = (u8)(cookie + i);
    return m;
}

/* ---- single-threaded: a recorder handler ------------------------------------------------- */

struct recorder {
    u64 cookies[4096];
    u32 dirs[4096];
    u32 sources[4096];
    u32 n;
    u32 again_at; /* return AGAIN for the message with this cookie, once; UINT32_MAX: never */
    bool again_done;
    struct xcore *x;
    u32 self;
    bool reply; /* answer every request */
};

static int record(void *ctx, const struct xcore_msg *m)
{
    struct recorder *r = ctx;
    if (!r->again_done && m->cookie == r->again_at) {
        r->again_done = true;
        return XCORE_AGAIN;
    }
    struct span p = xcore_msg_payload(m);
    for (size_t i = 0; i < p.len; i++) CHECK(p.ptr[i] == (u8)(m->cookie + i));
    cr_assert(r->n < 4096);
    r->cookies[r->n] = m->cookie;
    r->dirs[r->n] = m->dir;
    r->sources[r->n] = m->source;
    r->n++;
    if (r->reply && m->dir == XCORE_REQUEST) {
        struct xcore_msg rep = msg_make(m->source, XCORE_REPLY, m->cookie, 3);
        cr_assert_eq(xcore_send(r->x, r->self, &rep, NULL), XCORE_OK);
    }
    return XCORE_OK;
}

static void recorder_init(struct recorder *r, struct xcore *x, u32 self, bool reply)
{
    memset(r, 0, sizeof(*r));
    r->again_at = UINT32_MAX;
    r->x = x;
    r->self = self;
    r->reply = reply;
}

static u32 doorbell_rings[XCORE_SHARDS_MAX][XCORE_SHARDS_MAX];

static void doorbell_count(void *ctx, u32 source, u32 target)
{
    (void)ctx;
    doorbell_rings[source][target]++;
}

static struct xcore *make(u32 shards, u32 slots, u32 in_flight, u32 per_ring)
{
    struct xcore_config c;
    xcore_config_default(&c, shards);
    c.ring_slots = slots;
    c.in_flight_max = in_flight;
    c.poll_per_ring_max = per_ring;
    c.doorbell = doorbell_count;
    memset(doorbell_rings, 0, sizeof(doorbell_rings));
    struct xcore *x = xcore_create(&c);
    cr_assert_not_null(x);
    return x;
}

/* ---- single-threaded tests ------------------------------------------------------------- */

Test(xcore, config_is_checked)
{
    struct xcore_config c;
    xcore_config_default(&c, 2);
    c.ring_slots = 12; /* not a power of two */
    cr_assert_null(xcore_create(&c));
    xcore_config_default(&c, 2);
    c.in_flight_max = c.ring_slots + 1; /* replies could then fill their ring */
    cr_assert_null(xcore_create(&c));
    xcore_config_default(&c, 2);
    c.shard_count = XCORE_SHARDS_MAX + 1;
    cr_assert_null(xcore_create(&c));
    xcore_config_default(&c, XCORE_SHARDS_MAX);
    struct xcore *x = xcore_create(&c);
    cr_assert_not_null(x);
    cr_assert_eq(xcore_shard_count(x), XCORE_SHARDS_MAX);
    xcore_destroy(x);
}

Test(xcore, self_path_is_immediate_ordered_and_silent)
{
    struct xcore *x = make(1, 8, 8, 64);
    struct recorder r;
    recorder_init(&r, x, 0, true);
    cr_assert(xcore_sleep_begin(x, 0)); /* nothing pending: may sleep */
    for (u64 i = 0; i < 5; i++) {
        struct xcore_msg m = msg_make(0, XCORE_REQUEST, i, (u32)(i * 20));
        cr_assert_eq(xcore_send(x, 0, &m, NULL), XCORE_OK);
    }
    /* Published without a flush, and no doorbell although the shard "sleeps". */
    cr_assert(xcore_pending(x, 0));
    cr_assert_eq(doorbell_rings[0][0], 0);
    xcore_sleep_end(x, 0);
    /* Replies are drained before requests, so the replies come on the next poll. */
    cr_assert_eq(xcore_poll(x, 0, record, &r), 5);
    cr_assert_eq(xcore_poll(x, 0, record, &r), 5);
    for (u32 i = 0; i < 5; i++) {
        cr_assert_eq(r.dirs[i], XCORE_REQUEST);
        cr_assert_eq(r.cookies[i], i);
        cr_assert_eq(r.dirs[5 + i], XCORE_REPLY);
        cr_assert_eq(r.cookies[5 + i], i);
    }
    cr_assert_eq(xcore_in_flight(x, 0, 0), 0);
    cr_assert_eq(xcore_flush(x, 0), 0);
    xcore_destroy(x);
}

/* Sends requests 0 -> 1 until refused; returns how many went. */
static u32 fill(struct xcore *x, u64 cookie_first)
{
    u32 n = 0;
    for (;;) {
        struct xcore_msg m = msg_make(1, XCORE_REQUEST, cookie_first + n, 8);
        if (xcore_send(x, 0, &m, NULL) == XCORE_EFULL) return n;
        n++;
        cr_assert(n <= 4096);
    }
}

static void backpressure(u32 slots, u32 in_flight)
{
    struct xcore *x = make(2, slots, in_flight, 1024);
    struct recorder r1, r0;
    recorder_init(&r1, x, 1, true);
    recorder_init(&r0, x, 0, false);
    cr_assert_eq(fill(x, 0), in_flight);
    cr_assert_eq(xcore_in_flight(x, 0, 1), in_flight);
    struct xcore_stats st;
    xcore_stats(x, 0, &st);
    cr_assert_eq(st.full, 1);
    cr_assert_eq(st.sent, in_flight);
    cr_assert_eq(xcore_poll(x, 1, record, &r1), 0); /* not flushed yet */
    cr_assert_eq(xcore_flush(x, 0), 1);
    cr_assert_eq(xcore_poll(x, 1, record, &r1), in_flight);
    /* Handled but unanswered (replies not flushed): still refused. */
    cr_assert_eq(fill(x, 1000), 0);
    cr_assert_eq(xcore_flush(x, 1), 1);
    cr_assert_eq(xcore_poll(x, 0, record, &r0), in_flight);
    for (u32 i = 0; i < in_flight; i++) cr_assert_eq(r0.cookies[i], i);
    cr_assert_eq(xcore_in_flight(x, 0, 1), 0);
    cr_assert_eq(fill(x, 1000), in_flight); /* room again */
    xcore_destroy(x);
}

Test(xcore, in_flight_cap_is_backpressure)
{
    backpressure(64, 16);
}

Test(xcore, full_ring_is_backpressure)
{
    backpressure(8, 8);
    backpressure(2, 2);
}

Test(xcore, poll_is_bounded_per_ring_and_again_redelivers)
{
    struct xcore *x = make(3, 64, 64, 4);
    struct recorder r;
    recorder_init(&r, x, 2, false);
    for (u32 src = 0; src < 2; src++) {
        for (u64 i = 0; i < 10; i++) {
            struct xcore_msg m = msg_make(2, XCORE_REQUEST, src * 100 + i, 1);
            cr_assert_eq(xcore_send(x, src, &m, NULL), XCORE_OK);
        }
        xcore_flush(x, src);
    }
    cr_assert_eq(xcore_poll(x, 2, record, &r), 8); /* 4 per ring, two rings */
    cr_assert_eq(xcore_poll(x, 2, record, &r), 8);
    r.again_at = 9; /* shard 0's last message: refused once, stops that ring */
    cr_assert_eq(xcore_poll(x, 2, record, &r), 3); /* 8; then 108 and 109 */
    cr_assert(xcore_pending(x, 2));
    cr_assert_eq(xcore_poll(x, 2, record, &r), 1); /* 9 again, accepted */
    cr_assert_not(xcore_pending(x, 2));
    cr_assert_eq(r.n, 20);
    /* Per source, order is kept. */
    u64 next[2] = {0, 100};
    for (u32 i = 0; i < r.n; i++) cr_assert_eq(r.cookies[i], next[r.sources[i]]++);
    xcore_destroy(x);
}

Test(xcore, borrowed_bytes_are_free_once_consumed)
{
    struct xcore *x = make(2, 4, 4, 64);
    struct recorder r;
    recorder_init(&r, x, 1, false);
    static u8 big[3][1000];
    u64 tickets[3];
    for (u64 i = 0; i < 3; i++) {
        for (u32 j = 0; j < sizeof(big[i]); j++) big[i][j] = (u8)(i + j);
        struct xcore_msg m = msg_make(1, XCORE_REQUEST, i, 0);
        m.flags = XCORE_MSG_BORROWED;
        m.ptr = big[i];
        m.len = sizeof(big[i]);
        cr_assert_eq(xcore_send(x, 0, &m, &tickets[i]), XCORE_OK);
        cr_assert_eq(tickets[i], i);
    }
    xcore_flush(x, 0);
    cr_assert_eq(xcore_consumed(x, 0, 1, XCORE_REQUEST), 0);
    cr_assert_eq(xcore_poll(x, 1, record, &r), 3); /* the handler checks every byte */
    cr_assert_eq(xcore_consumed(x, 0, 1, XCORE_REQUEST), 3);
    cr_assert_eq(xcore_consumed(x, 0, 1, XCORE_REPLY), 0);
    xcore_destroy(x);
}

Test(xcore, doorbell_only_when_the_target_may_sleep)
{
    struct xcore *x = make(2, 16, 16, 64);
    struct recorder r;
    recorder_init(&r, x, 1, false);
    struct xcore_msg m = msg_make(1, XCORE_REQUEST, 0, 1);
    cr_assert_eq(xcore_send(x, 0, &m, NULL), XCORE_OK);
    xcore_flush(x, 0);
    cr_assert_eq(doorbell_rings[0][1], 0);  /* awake target: no doorbell */
    cr_assert_not(xcore_sleep_begin(x, 1)); /* a message waits: do not sleep */
    xcore_poll(x, 1, record, &r);
    cr_assert(xcore_sleep_begin(x, 1));
    for (u64 i = 1; i <= 5; i++) {
        m = msg_make(1, XCORE_REQUEST, i, 1);
        cr_assert_eq(xcore_send(x, 0, &m, NULL), XCORE_OK);
    }
    cr_assert_eq(doorbell_rings[0][1], 0); /* nothing published yet */
    xcore_flush(x, 0);
    cr_assert_eq(doorbell_rings[0][1], 1); /* one per batch, not per message */
    xcore_flush(x, 0);
    cr_assert_eq(doorbell_rings[0][1], 1); /* an empty flush publishes nothing */
    xcore_sleep_end(x, 1);
    struct xcore_stats st;
    xcore_stats(x, 0, &st);
    cr_assert_eq(st.doorbells, 1);
    xcore_stats(x, 1, &st);
    cr_assert_eq(st.sleeps, 1);
    xcore_destroy(x);
}

/* ---- threaded: one thread per shard ------------------------------------------------------ */

#define PEERS_MAX    4
#define BORROW_EVERY 5 /* every 5th message carries a borrowed payload */
#define BORROW_SIZE  200
#define SLEEP_TIMEOUT \
    5 /* seconds: a sleeper still waiting this long with work queued lost a wakeup */

struct world;

struct shard_state {
    struct world *w;
    u32 self;
    u64 req_sent[PEERS_MAX];      /* next request sequence per target */
    u64 rep_recv[PEERS_MAX];      /* next reply sequence expected per target */
    u64 req_recv[PEERS_MAX];      /* next request sequence expected per source */
    u64 rep_sent[PEERS_MAX];      /* replies sent per source */
    u64 sent_count[PEERS_MAX][2]; /* messages sent per (target, dir): the next ticket */
    u8 *borrow[PEERS_MAX][2];     /* [slots][BORROW_SIZE] per (target, dir), indexed by ticket */
    u64 poisoned[PEERS_MAX][2];   /* tickets below this have been poisoned */
    u64 sleeps, timeouts;
};

struct world {
    struct xcore *x;
    u32 shards;
    u32 slots;
    u64 per_pair;       /* requests each shard sends to each shard */
    bool defer_replies; /* answer on the next turn, not in the handler (as after a commit) */
    _Atomic u32 bell[PEERS_MAX];
    _Atomic u64 doorbells;
    struct shard_state st[PEERS_MAX];
};

static void futex_wake(_Atomic u32 *word)
{
    syscall(SYS_futex, (u32 *)word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Waits while *word == seen; false on timeout. */
static bool futex_wait(_Atomic u32 *word, u32 seen, int seconds)
{
    struct timespec ts = {seconds, 0};
    long rc = syscall(SYS_futex, (u32 *)word, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
    return !(rc == -1 && errno == ETIMEDOUT);
}

static void world_doorbell(void *ctx, u32 source, u32 target)
{
    struct world *w = ctx;
    CHECK(source != target && target < w->shards);
    atomic_fetch_add_explicit(&w->doorbells, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->bell[target], 1, memory_order_release);
    futex_wake(&w->bell[target]);
}

static u8 pattern(u32 source, u32 dir, u64 seq, u32 i)
{
    return (u8)(seq * 31 + i * 7 + source * 3 + dir);
}

/* Poisons borrowed buffers of (target, dir) that the target has consumed. */
static void poison_consumed(struct shard_state *s, u32 target, u32 dir)
{
    u64 consumed = xcore_consumed(s->w->x, s->self, target, (enum xcore_dir)dir);
    u32 mask = s->w->slots - 1;
    for (; s->poisoned[target][dir] < consumed; s->poisoned[target][dir]++) {
        memset(s->borrow[target][dir] + (s->poisoned[target][dir] & mask) * BORROW_SIZE, 0xEE,
               BORROW_SIZE);
    }
}

/* Sends one message carrying seq; false on XCORE_EFULL. */
static bool send_seq(struct shard_state *s, u32 target, u32 dir, u64 seq)
{
    struct xcore_msg m;
    memset(&m, 0, sizeof(m));
    m.target = (u16)target;
    m.dir = (u8)dir;
    m.cookie = seq;
    u64 ticket_next = s->sent_count[target][dir];
    if (seq % BORROW_EVERY == 0) {
        poison_consumed(s, target, dir);
        /* The buffer of this ticket is free iff its slot is: consumed > ticket - slots. */
        if (ticket_next - s->poisoned[target][dir] >= s->w->slots) return false;
        u8 *b = s->borrow[target][dir] + (ticket_next & (s->w->slots - 1)) * BORROW_SIZE;
        for (u32 i = 0; i < BORROW_SIZE; i++) b[i] = pattern(s->self, dir, seq, i);
        m.flags = XCORE_MSG_BORROWED;
        m.ptr = b;
        m.len = BORROW_SIZE;
    } else {
        m.len = (u32)(seq % (XCORE_INLINE_SIZE_MAX + 1));
        for (u32 i = 0; i < m.len; i++) m.bytes[i] = pattern(s->self, dir, seq, i);
    }
    u64 ticket = 0;
    if (xcore_send(s->w->x, s->self, &m, &ticket) != XCORE_OK) return false;
    CHECK(ticket == ticket_next);
    s->sent_count[target][dir]++;
    return true;
}

static void check_payload(const struct xcore_msg *m)
{
    struct span p = xcore_msg_payload(m);
    bool borrowed = m->cookie % BORROW_EVERY == 0;
    CHECK(((m->flags & XCORE_MSG_BORROWED) != 0) == borrowed);
    CHECK(p.len == (borrowed ? BORROW_SIZE : m->cookie % (XCORE_INLINE_SIZE_MAX + 1)));
    for (u32 i = 0; i < p.len; i++) CHECK(p.ptr[i] == pattern(m->source, m->dir, m->cookie, i));
}

static int shard_handle(void *ctx, const struct xcore_msg *m)
{
    struct shard_state *s = ctx;
    CHECK(m->target == s->self && m->source < s->w->shards);
    check_payload(m);
    if (m->dir == XCORE_REPLY) {
        CHECK(m->cookie == s->rep_recv[m->source]); /* no loss, no duplicate, in order */
        s->rep_recv[m->source]++;
        return XCORE_OK;
    }
    CHECK(m->cookie == s->req_recv[m->source]);
    if (s->w->defer_replies) {
        s->req_recv[m->source]++; /* only the sequence number is kept: the bytes are copied */
        return XCORE_OK;
    }
    /* The contract: a reply never meets a full ring while requests are capped. Only a
     * borrowed reply can wait, for its buffer; then the request waits too. */
    if (!send_seq(s, m->source, XCORE_REPLY, m->cookie)) {
        CHECK(m->cookie % BORROW_EVERY == 0);
        return XCORE_AGAIN;
    }
    s->req_recv[m->source]++;
    s->rep_sent[m->source]++;
    return XCORE_OK;
}

static bool shard_done(const struct shard_state *s)
{
    for (u32 p = 0; p < s->w->shards; p++) {
        if (s->req_sent[p] < s->w->per_pair || s->rep_recv[p] < s->w->per_pair) return false;
        if (s->req_recv[p] < s->w->per_pair || s->rep_sent[p] < s->w->per_pair) return false;
    }
    return true;
}

/* Deferred replies: every request received on an earlier turn, in order. */
static u32 shard_send_replies(struct shard_state *s)
{
    u32 sent = 0;
    for (u32 p = 0; p < s->w->shards; p++) {
        while (s->rep_sent[p] < s->req_recv[p]) {
            if (!send_seq(s, p, XCORE_REPLY, s->rep_sent[p])) break;
            s->rep_sent[p]++;
            sent++;
        }
    }
    return sent;
}

static u32 shard_send_some(struct shard_state *s)
{
    u32 sent = 0;
    for (u32 i = 0; i < s->w->shards; i++) {
        u32 p = (s->self + i) % s->w->shards;
        for (u32 k = 0; k < 64 && s->req_sent[p] < s->w->per_pair; k++) {
            if (!send_seq(s, p, XCORE_REQUEST, s->req_sent[p])) break;
            s->req_sent[p]++;
            sent++;
        }
    }
    return sent;
}

static void shard_sleep(struct shard_state *s, u32 bell_seen)
{
    struct world *w = s->w;
    if (!xcore_sleep_begin(w->x, s->self)) return;
    s->sleeps++;
    if (!futex_wait(&w->bell[s->self], bell_seen, SLEEP_TIMEOUT)) {
        s->timeouts++;
        /* Messages published before we slept, and no doorbell since: a lost wakeup. */
        CHECK(!(xcore_pending(w->x, s->self) &&
                atomic_load_explicit(&w->bell[s->self], memory_order_acquire) == bell_seen));
    }
    xcore_sleep_end(w->x, s->self);
}

static void *shard_main(void *arg)
{
    struct shard_state *s = arg;
    struct world *w = s->w;
    while (!shard_done(s)) {
        u32 bell_seen = atomic_load_explicit(&w->bell[s->self], memory_order_acquire);
        u32 handled = xcore_poll(w->x, s->self, shard_handle, s);
        u32 sent = shard_send_replies(s) + shard_send_some(s);
        xcore_flush(w->x, s->self);
        for (u32 p = 0; p < w->shards; p++) poison_consumed(s, p, XCORE_REQUEST);
        if (handled == 0 && sent == 0 && !shard_done(s)) shard_sleep(s, bell_seen);
    }
    return NULL;
}

static void run_world(u32 shards, u64 requests, u32 slots, u32 in_flight, bool defer)
{
    struct world *w = calloc(1, sizeof(*w));
    cr_assert_not_null(w);
    struct xcore_config c;
    xcore_config_default(&c, shards);
    c.ring_slots = slots;
    c.in_flight_max = in_flight;
    c.doorbell = world_doorbell;
    c.doorbell_ctx = w;
    w->x = xcore_create(&c);
    cr_assert_not_null(w->x);
    w->shards = shards;
    w->slots = slots;
    w->per_pair = requests / ((u64)shards * shards) + 1;
    w->defer_replies = defer;
    for (u32 i = 0; i < shards; i++) {
        w->st[i].w = w;
        w->st[i].self = i;
        for (u32 p = 0; p < shards; p++) {
            for (u32 d = 0; d < 2; d++) w->st[i].borrow[p][d] = calloc(slots, BORROW_SIZE);
        }
    }
    pthread_t t[PEERS_MAX];
    for (u32 i = 0; i < shards; i++) pthread_create(&t[i], NULL, shard_main, &w->st[i]);
    for (u32 i = 0; i < shards; i++) pthread_join(t[i], NULL);
    u64 sleeps = 0, received = 0;
    for (u32 i = 0; i < shards; i++) {
        struct xcore_stats st;
        xcore_stats(w->x, i, &st);
        received += st.received;
        sleeps += w->st[i].sleeps;
        cr_assert(shard_done(&w->st[i]));
        for (u32 p = 0; p < shards; p++) cr_assert_eq(xcore_in_flight(w->x, i, p), 0);
        for (u32 p = 0; p < shards; p++) {
            for (u32 d = 0; d < 2; d++) free(w->st[i].borrow[p][d]);
        }
    }
    cr_assert_eq(received, 2 * w->per_pair * shards * shards);
    u64 timeouts = 0;
    for (u32 i = 0; i < shards; i++) timeouts += w->st[i].timeouts;
    fprintf(stderr,
            "xcore %u shards: %llu messages, %llu sleeps, %llu doorbells, %llu idle "
            "timeouts (none lost a wakeup)\n",
            shards, (unsigned long long)received, (unsigned long long)sleeps,
            (unsigned long long)atomic_load(&w->doorbells), (unsigned long long)timeouts);
    xcore_destroy(w->x);
    free(w);
}

Test(xcore_threads, stress_2_shards, .timeout = 300)
{
    run_world(2, ops_from_env(OPS_DEFAULT), 256, 128, false);
}

Test(xcore_threads, stress_3_shards_small_rings, .timeout = 300)
{
    run_world(3, ops_from_env(OPS_DEFAULT), 8, 8, false);
}

Test(xcore_threads, stress_4_shards, .timeout = 300)
{
    run_world(4, ops_from_env(OPS_DEFAULT), 64, 32, false);
}

/* One request in flight per pair: every round trip makes both threads go to sleep, so the
 * wake protocol is exercised on almost every message. */
Test(xcore_threads, ping_pong_sleeps_and_always_wakes, .timeout = 300)
{
    run_world(2, ops_from_env(OPS_DEFAULT) / 20, 2, 1, false);
}

/* Replies a turn later, as a shard will answer after its Raft commit: a sender then learns
 * that a borrowed payload is free from xcore_consumed alone, long before the reply comes, and
 * poisons it at once: a receiver still reading it would fail its byte-by-byte check. */
Test(xcore_threads, stress_deferred_replies, .timeout = 300)
{
    run_world(2, ops_from_env(OPS_DEFAULT), 16, 16, true);
    run_world(3, ops_from_env(OPS_DEFAULT) / 2, 64, 8, true);
}
