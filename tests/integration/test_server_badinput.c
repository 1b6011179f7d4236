/*
 * test_server_badinput.c — a real keeld (2 shards) fed bytes no good client sends, over raw
 * sockets (raw_conn.h): cut frames, garbage, frame lengths out of bounds, request id 0, bad
 * HELLOs, a stalled half frame, a client that never reads, and thousands of connections
 * opened and dropped. Through all of it a normal libkeel client keeps writing; at the end
 * every write it saw acknowledged is read back and keeld must stop cleanly on SIGTERM.
 *
 * Randomized parts print their seed and take KEEL_SEED.
 */
#include "client/keel.h"
#include "keeld_proc.h"
#include "raw_conn.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct keeld_proc kp;
static keel_client *good;       /* the well-behaved client */
static uint64_t good_acked;     /* puts it saw acknowledged: keys good/0 .. good/acked-1 */
static int stopped_status = -1; /* wait status when the test itself stopped keeld */

/* ---- fixture ------------------------------------------------------------------------------ */

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static void start_server(void)
{
    raise_fd_limit(); /* before the fork: keeld inherits it */
    memset(&kp, 0, sizeof(kp));
    kp.shards = 2;
    cr_assert_eq(keeld_start(&kp), 0, "keeld did not start");
    struct keel_options o;
    keel_options_default(&o);
    o.timeout_ms = 10000;
    o.shard_aware = true; /* its keys go to the shard ports: it meets every shard thread */
    int rc = keel_connect(kp.endpoint, &o, &good);
    cr_assert_eq(rc, KEEL_STATUS_OK, "connect: %s", keel_strerror(rc));
    good_acked = 0;
    stopped_status = -1;
}

/* The good client writes n more keys (alternating shards) and reads the last one back. */
static void good_round(int n)
{
    char key[32], val[32];
    for (int i = 0; i < n; i++) {
        uint64_t k = good_acked;
        snprintf(key, sizeof(key), "%cgood/%06llu", k % 2 ? '~' : '!', (unsigned long long)k);
        snprintf(val, sizeof(val), "v%llu", (unsigned long long)k);
        struct keel_put_args a = {.key = {key, strlen(key)}, .value = {val, strlen(val)}};
        struct keel_result r;
        int rc = keel_put(good, &a, &r);
        cr_assert_eq(rc, KEEL_STATUS_OK, "the good client's put %llu failed: %s",
                     (unsigned long long)k, keel_strerror(rc));
        good_acked++;
        struct keel_range_args g;
        memset(&g, 0, sizeof(g));
        g.key = a.key;
        rc = keel_get(good, &g, &r);
        cr_assert_eq(rc, KEEL_STATUS_OK, "the good client's get failed: %s", keel_strerror(rc));
        cr_assert_eq(r.u.range.kvs_len, 1);
    }
}

/* Every acknowledged write of the good client is there, through a fresh connection. */
static void check_acked_writes(void)
{
    keel_client *c = NULL;
    cr_assert_eq(keel_connect(kp.endpoint, NULL, &c), KEEL_STATUS_OK, "server answers");
    char key[32], val[32];
    for (uint64_t k = 0; k < good_acked; k++) {
        snprintf(key, sizeof(key), "%cgood/%06llu", k % 2 ? '~' : '!', (unsigned long long)k);
        snprintf(val, sizeof(val), "v%llu", (unsigned long long)k);
        struct keel_range_args g;
        memset(&g, 0, sizeof(g));
        g.key.ptr = key;
        g.key.len = strlen(key);
        struct keel_result r;
        cr_assert_eq(keel_get(c, &g, &r), KEEL_STATUS_OK);
        cr_assert_eq(r.u.range.kvs_len, 1, "acknowledged key %s is missing", key);
        cr_assert_eq(r.u.range.kvs[0].value_len, strlen(val));
        cr_assert_eq(memcmp(r.u.range.kvs[0].value, val, strlen(val)), 0);
    }
    keel_close(c);
}

static void stop_server(void)
{
    bool stopped = stopped_status != -1;
    bool alive = stopped || keeld_alive(&kp);
    if (alive && !stopped && good) check_acked_writes();
    if (good) keel_close(good);
    good = NULL;
    int st = stopped ? stopped_status : keeld_stop(&kp);
    keeld_cleanup(&kp);
    cr_assert(alive, "keeld died during the test");
    cr_assert(keeld_exited_cleanly(st), "keeld did not exit 0 on SIGTERM (wait status 0x%x)", st);
}

/* No Criterion .timeout: its watchdog leaks under ASan with --jobs 2; ctest's TIMEOUT bounds
 * the binary, and every wait in these tests has its own bound. */
TestSuite(bad, .init = start_server, .fini = stop_server);

/* ---- helpers ------------------------------------------------------------------------------ */

static struct raw_conn raw_open_on(uint16_t port, bool handshake)
{
    struct raw_conn c;
    cr_assert(raw_connect(&c, port), "connect to %u", port);
    if (handshake) cr_assert(raw_handshake(&c), "HELLO on port %u", port);
    return c;
}

/* Opens on the router port and the shard ports in turn, so every refusal is checked on each
 * kind of port (and on every shard thread). */
static struct raw_conn raw_open(bool handshake)
{
    static uint32_t next;
    uint16_t port = (uint16_t)(kp.port + next++ % (kp.shards + 1));
    return raw_open_on(port, handshake);
}

static void raw_send_buf(struct raw_conn *c, struct buf *b)
{
    cr_assert(buf_ok(b));
    cr_assert(raw_send(c, b->ptr, b->len), "send");
    buf_reset(b);
}

/* Expects a GOAWAY with status (and detail when detail_want != UINT64_MAX), then the close. */
static void expect_goaway_close(struct raw_conn *c, int status, uint64_t detail_want)
{
    struct raw_reply r;
    int rc = raw_read_reply(c, RAW_READ_MS, &r);
    cr_assert_eq(rc, RAW_OK, "expected GOAWAY %d, got read result %d", status, rc);
    cr_assert_eq(r.frame.opcode, CODEC_OP_GOAWAY, "opcode 0x%x", r.frame.opcode);
    cr_assert_eq(r.frame.request_id, 0);
    cr_assert_eq(r.reply.header.status, status, "GOAWAY status %u, expected %d",
                 r.reply.header.status, status);
    cr_assert_eq(r.reply.header.shard, CODEC_SHARD_NONE);
    if (detail_want != UINT64_MAX) cr_assert_eq(r.reply.body.error_body.detail, detail_want);
    cr_assert(raw_wait_closed(c, RAW_READ_MS), "the server must close after GOAWAY %d", status);
}

/* Sends a STATUS (valid on every port) and expects an OK reply: the connection is usable. */
static void expect_usable(struct raw_conn *c, u64 id)
{
    struct buf b;
    buf_init_dynamic(&b, 256);
    raw_frame_end(&b, raw_frame_begin(&b, CODEC_OP_STATUS, id));
    raw_send_buf(c, &b);
    buf_free(&b);
    struct raw_reply r;
    cr_assert_eq(raw_read_reply(c, RAW_READ_MS, &r), RAW_OK, "connection unusable");
    cr_assert_eq(r.frame.request_id, id);
    cr_assert_eq(r.reply.header.status, CODEC_S_OK);
}

/* ---- framing ------------------------------------------------------------------------------ */

Test(bad, truncated_frames_then_close)
{
    static const size_t cuts[] = {1, 3, 4, 10, 16, 20, 30};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        for (int hs = 0; hs < 2; hs++) {
            struct raw_conn c = raw_open(hs == 1);
            struct buf b;
            buf_init_dynamic(&b, 256);
            raw_put(&b, 9, "!cut-key", "cut-value");
            cr_assert_lt(cuts[i], b.len);
            cr_assert(raw_send(&c, b.ptr, cuts[i]));
            buf_free(&b);
            raw_close(&c);
        }
        good_round(2);
    }
    cr_assert(keeld_alive(&kp));
    struct keel_range_args g;
    memset(&g, 0, sizeof(g));
    g.key.ptr = "!cut-key";
    g.key.len = 8;
    struct keel_result r;
    cr_assert_eq(keel_get(good, &g, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 0, "a cut frame is never executed");
}

Test(bad, oversized_frame_length)
{
    static const u32 lengths[] = {0xFFFFFFFFu, CODEC_FRAME_SIZE_MAX - 3, 0x20544547u /* "GET " */};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        for (int hs = 0; hs < 2; hs++) {
            struct raw_conn c = raw_open(hs == 1);
            /* the length alone must be refused; sending no more keeps the close clean (no
             * unread bytes in the server, so no reset racing the GOAWAY) */
            u8 head[4];
            store_u32_le(head, lengths[i]);
            cr_assert(raw_send(&c, head, sizeof(head)));
            expect_goaway_close(&c, CODEC_S_FRAME_TOO_LARGE, CODEC_FRAME_SIZE_MAX);
            raw_close(&c);
        }
    }
    /* exactly at the limit is accepted (and refused for its body, not its size) */
    struct raw_conn c = raw_open_on(kp.port, true);
    struct buf b;
    buf_init_dynamic(&b, CODEC_FRAME_SIZE_MAX);
    size_t s = raw_frame_begin(&b, CODEC_OP_PUT, 4);
    buf_put_u8(&b, 0);
    buf_put_u64(&b, 0);
    buf_put_u16(&b, 4);
    buf_put_bytes(&b, "!big", 4);
    size_t value_len = CODEC_FRAME_SIZE_MAX - b.len - 4;
    buf_put_u32(&b, (u32)value_len);
    u8 *v = buf_reserve(&b, value_len);
    cr_assert_not_null(v);
    memset(v, 'x', value_len);
    raw_frame_end(&b, s);
    cr_assert_eq(b.len, CODEC_FRAME_SIZE_MAX);
    raw_send_buf(&c, &b);
    buf_free(&b);
    struct raw_reply r;
    cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
    cr_assert_eq(r.frame.request_id, 4);
    cr_assert_eq(r.reply.header.status, CODEC_S_VALUE_TOO_LARGE);
    expect_usable(&c, 5);
    raw_close(&c);
    good_round(5);
}

Test(bad, frame_length_below_12)
{
    static const u32 lengths[] = {0, 1, 11};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        for (int hs = 0; hs < 2; hs++) {
            struct raw_conn c = raw_open(hs == 1);
            u8 head[4];
            store_u32_le(head, lengths[i]);
            cr_assert(raw_send(&c, head, sizeof(head)));
            expect_goaway_close(&c, CODEC_S_FRAME_MALFORMED, UINT64_MAX);
            raw_close(&c);
        }
    }
    good_round(5);
}

static void check_request_id_zero(bool handshake)
{
    struct raw_conn c = raw_open(handshake);
    struct buf b;
    buf_init_dynamic(&b, 256);
    if (handshake)
        raw_put(&b, 0, "!zero-id", "x");
    else
        raw_hello(&b, 0, CODEC_MAGIC, 1);
    raw_send_buf(&c, &b);
    buf_free(&b);
    expect_goaway_close(&c, CODEC_S_FRAME_MALFORMED, UINT64_MAX);
    raw_close(&c);
    struct keel_range_args g;
    memset(&g, 0, sizeof(g));
    g.key.ptr = "!zero-id";
    g.key.len = 8;
    struct keel_result r;
    cr_assert_eq(keel_get(good, &g, &r), KEEL_STATUS_OK);
    cr_assert_eq(r.u.range.kvs_len, 0, "a request with id 0 is not executed");
    good_round(3);
}

Test(bad, request_id_zero_put)
{
    check_request_id_zero(true);
}

Test(bad, request_id_zero_hello)
{
    check_request_id_zero(false);
}

/* Opcode 0 (GOAWAY) is the server's alone: a client frame with it is FRAME_MALFORMED, sent as
 * GOAWAY, and the connection is closed (protocol.md's status table). It is not executed. */
Test(bad, opcode_goaway_from_client)
{
    for (int hs = 0; hs < 2; hs++) {
        struct raw_conn c = raw_open(hs == 1);
        struct buf b;
        buf_init_dynamic(&b, 256);
        size_t s = raw_frame_begin(&b, CODEC_OP_GOAWAY, 77);
        buf_put_u64(&b, 0);
        raw_frame_end(&b, s);
        raw_send_buf(&c, &b);
        buf_free(&b);
        expect_goaway_close(&c, CODEC_S_FRAME_MALFORMED, UINT64_MAX);
        raw_close(&c);
    }
    good_round(3);
}

Test(bad, unknown_opcode_and_malformed_body_keep_the_connection)
{
    struct raw_conn c = raw_open(true);
    struct buf b;
    buf_init_dynamic(&b, 256);
    static const u16 opcodes[] = {0x0003, 0x0015, 0x0100, 0x0200, 0x0306, 0xF000, 0x4242};
    for (size_t i = 0; i < sizeof(opcodes) / sizeof(opcodes[0]); i++) {
        size_t s = raw_frame_begin(&b, opcodes[i], 100 + i);
        buf_put_u64(&b, 0x1234);
        raw_frame_end(&b, s);
        raw_send_buf(&c, &b);
        struct raw_reply r;
        cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
        cr_assert_eq(r.frame.request_id, 100 + i);
        cr_assert_eq(r.frame.opcode, opcodes[i]);
        cr_assert_eq(r.reply.header.status, CODEC_S_UNKNOWN_OPCODE, "opcode 0x%x", opcodes[i]);
        cr_assert_eq(r.reply.body.error_body.detail, opcodes[i]);
        expect_usable(&c, 200 + i);
    }
    /* bodies that do not decode: empty PUT, bad bool/enum, count past the end */
    size_t s = raw_frame_begin(&b, CODEC_OP_PUT, 300);
    raw_frame_end(&b, s);
    s = raw_frame_begin(&b, CODEC_OP_RANGE, 301);
    buf_put_u8(&b, 0);
    buf_put_u8(&b, 9); /* sort_order past the last */
    raw_frame_end(&b, s);
    s = raw_frame_begin(&b, CODEC_OP_TXN, 302);
    buf_put_u16(&b, 5); /* five compares announced, none there */
    raw_frame_end(&b, s);
    s = raw_frame_begin(&b, CODEC_OP_DELETE_RANGE, 303);
    buf_put_u8(&b, 0x80); /* reserved flag bit */
    buf_put_u16(&b, 2);
    buf_put_bytes(&b, "!x", 2);
    buf_put_u16(&b, 0);
    raw_frame_end(&b, s);
    s = raw_frame_begin(&b, CODEC_OP_COMPACT, 304);
    buf_put_u8(&b, 0);
    raw_frame_end(&b, s);
    raw_send_buf(&c, &b);
    bool seen[5] = {false};
    for (int i = 0; i < 5; i++) {
        struct raw_reply r;
        cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
        cr_assert(r.frame.request_id >= 300 && r.frame.request_id < 305);
        cr_assert_eq(r.reply.header.status, CODEC_S_MALFORMED, "request %llu",
                     (unsigned long long)r.frame.request_id);
        seen[r.frame.request_id - 300] = true;
    }
    for (int i = 0; i < 5; i++) cr_assert(seen[i]);
    expect_usable(&c, 400);
    buf_free(&b);
    raw_close(&c);
    good_round(3);
}

Test(bad, bad_magic_and_version_close)
{
    static const u32 magics[] = {0, 0x4C45454Cu, 0x4B45454Cu /* byte-swapped */};
    struct buf b;
    buf_init_dynamic(&b, 256);
    for (size_t i = 0; i < 3; i++) {
        struct raw_conn c = raw_open(false);
        raw_hello(&b, 7, magics[i], 1);
        raw_send_buf(&c, &b);
        struct raw_reply r;
        cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
        cr_assert_eq(r.frame.opcode, CODEC_OP_HELLO);
        cr_assert_eq(r.frame.request_id, 7);
        cr_assert_eq(r.reply.header.status, CODEC_S_BAD_MAGIC);
        cr_assert(raw_wait_closed(&c, RAW_READ_MS), "BAD_MAGIC closes the connection");
        raw_close(&c);
    }
    struct raw_conn c = raw_open(false);
    raw_hello(&b, 8, CODEC_MAGIC, 0);
    raw_send_buf(&c, &b);
    struct raw_reply r;
    cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
    cr_assert_eq(r.reply.header.status, CODEC_S_UNSUPPORTED_VERSION);
    cr_assert_eq(r.reply.body.error_body.detail, CODEC_PROTOCOL_VERSION);
    cr_assert(raw_wait_closed(&c, RAW_READ_MS), "UNSUPPORTED_VERSION closes the connection");
    raw_close(&c);
    /* a newer client version is answered with the server's */
    c = raw_open(false);
    raw_hello(&b, 9, CODEC_MAGIC, 7);
    raw_send_buf(&c, &b);
    cr_assert_eq(raw_read_reply(&c, RAW_READ_MS, &r), RAW_OK);
    cr_assert_eq(r.reply.header.status, CODEC_S_OK);
    cr_assert_eq(r.reply.body.hello_reply.version, CODEC_PROTOCOL_VERSION);
    expect_usable(&c, 10);
    raw_close(&c);
    buf_free(&b);
    good_round(3);
}

Test(bad, garbage_bytes)
{
    const char *env = getenv("KEEL_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)keeld_now_ms();
    fprintf(stderr, "bad::garbage_bytes: KEEL_SEED=%u\n", seed);
    srand(seed);
    u8 junk[4096];
    for (int round = 0; round < 40; round++) {
        struct raw_conn c = raw_open(round % 2 == 0);
        size_t n = 1 + (size_t)rand() % sizeof(junk);
        for (size_t i = 0; i < n; i++) junk[i] = (u8)rand();
        raw_send(&c, junk, n); /* the server may close before it all arrives */
        /* whatever comes back must be well-formed frames; then we hang up */
        for (;;) {
            struct raw_reply r;
            int rc = raw_read_reply(&c, 200, &r);
            cr_assert_neq(rc, RAW_BAD, "seed %u round %d: a reply that does not decode", seed,
                          round);
            if (rc != RAW_OK) break;
        }
        raw_close(&c);
        if (round % 8 == 0) good_round(2);
    }
    cr_assert(keeld_alive(&kp), "seed %u", seed);
    good_round(3);
}

/* ---- slow and greedy clients -------------------------------------------------------------- */

Test(bad, half_frame_stall_does_not_block_others)
{
    /* one stalled half frame on every port, so one sits on every shard thread */
    enum { PORTS = 3 };
    cr_assert_eq(kp.shards + 1, PORTS);
    static const char *keys[PORTS] = {"!stalled", "!stalled0", "~stalled1"};
    struct raw_conn c[PORTS];
    struct buf b[PORTS];
    for (int i = 0; i < PORTS; i++) {
        c[i] = raw_open_on((uint16_t)(kp.port + i), true);
        buf_init_dynamic(&b[i], 256);
        raw_put(&b[i], 11, keys[i], "finally");
        cr_assert(raw_send(&c[i], b[i].ptr, b[i].len / 2));
    }
    /* the good client works while the half frames sit in the server */
    good_round(100);
    for (int i = 0; i < PORTS; i++) {
        struct raw_reply r;
        cr_assert_eq(raw_read_reply(&c[i], 50, &r), RAW_TIMEOUT, "half a frame gets no reply");
    }
    /* the rest arrives: the requests run */
    for (int i = 0; i < PORTS; i++) {
        size_t half = b[i].len / 2;
        cr_assert(raw_send(&c[i], b[i].ptr + half, b[i].len - half));
        struct raw_reply r;
        cr_assert_eq(raw_read_reply(&c[i], RAW_READ_MS, &r), RAW_OK);
        cr_assert_eq(r.frame.request_id, 11);
        cr_assert_eq(r.reply.header.status, CODEC_S_OK, "port %d: status %u", i,
                     r.reply.header.status);
        buf_free(&b[i]);
        raw_close(&c[i]);
    }
}

/* Writes frames of req while the socket takes them without blocking, at most frames_max whole
 * frames (a frame cut by a full socket is finished by the next call); returns frames sent. */
static size_t flood_some(int fd, const u8 *req, size_t req_len, size_t *partial, size_t frames_max)
{
    size_t sent = 0;
    while (sent < frames_max) {
        ssize_t n = send(fd, req + *partial, req_len - *partial, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return sent;
        *partial += (size_t)n;
        if (*partial == req_len) {
            *partial = 0;
            sent++;
        }
    }
    return sent;
}

/* Reads replies until want arrived (or 60 s passed): each must be OK or TOO_MANY_IN_FLIGHT.
 * Returns how many came. */
static size_t drain_replies(struct raw_conn *c, size_t want, size_t *too_many)
{
    size_t got = 0;
    uint32_t in_flight_max = keel_server_info(good)->in_flight_max;
    int64_t deadline = keeld_now_ms() + 60000;
    while (got < want && keeld_now_ms() < deadline) {
        struct raw_reply r;
        int rc = raw_read_reply(c, 10000, &r);
        cr_assert_eq(rc, RAW_OK, "reply %zu of %zu: read result %d", got, want, rc);
        cr_assert_eq(r.frame.request_id, 1);
        u16 st = r.reply.header.status;
        cr_assert(st == CODEC_S_OK || st == CODEC_S_TOO_MANY_IN_FLIGHT, "status %u", st);
        if (st == CODEC_S_TOO_MANY_IN_FLIGHT) {
            cr_assert_eq(r.reply.body.error_body.detail, in_flight_max);
            (*too_many)++;
        }
        got++;
    }
    return got;
}

Test(bad, pipelining_client_that_never_reads)
{
    /* a value large enough that unread replies would add up fast: 20000 x 32 KiB = 640 MiB */
    enum { VALUE_BYTES = 32 * 1024, REQUESTS = 20000 };
    char *value = malloc(VALUE_BYTES);
    cr_assert_not_null(value);
    memset(value, 'f', VALUE_BYTES);
    struct keel_put_args a = {.key = {"!fat", 4}, .value = {value, VALUE_BYTES}};
    struct keel_result res;
    cr_assert_eq(keel_put(good, &a, &res), KEEL_STATUS_OK);
    free(value);
    good_round(20);
    long rss_before = keeld_rss_kib(kp.pid);
    cr_assert_gt(rss_before, 0);

    struct raw_conn c = raw_open_on(kp.port, true);
    struct buf b;
    buf_init_dynamic(&b, 256);
    raw_get(&b, 1, "!fat");
    size_t partial = 0, sent = 0;
    int64_t deadline = keeld_now_ms() + 15000;
    /* every frame carries id 1: the server does not check ids, and no reply is read yet */
    while ((sent < REQUESTS || partial > 0) && keeld_now_ms() < deadline) {
        size_t n = flood_some(c.fd, b.ptr, b.len, &partial, partial ? 1 : REQUESTS - sent);
        sent += n;
        good_round(1);
        if (n == 0) {
            struct pollfd p = {.fd = c.fd, .events = POLLOUT};
            poll(&p, 1, 20);
        }
    }
    fprintf(stderr, "bad::pipelining: %zu requests sent, none read\n", sent);
    cr_assert_geq(sent, 2000, "the server takes thousands of requests before pushing back");
    good_round(50);
    long rss_after = keeld_rss_kib(kp.pid);
    fprintf(stderr, "bad::pipelining: keeld VmRSS %ld -> %ld KiB\n", rss_before, rss_after);
    cr_assert_lt(rss_after - rss_before, 256L * 1024, "keeld grew by %ld KiB",
                 rss_after - rss_before);
    /* the client reads at last: every whole request gets exactly one reply */
    size_t too_many = 0;
    size_t got = drain_replies(&c, sent, &too_many);
    fprintf(stderr, "bad::pipelining: %zu replies, %zu TOO_MANY_IN_FLIGHT\n", got, too_many);
    cr_assert_eq(got, sent, "every request gets one reply");
    struct raw_reply r;
    cr_assert_eq(raw_read_reply(&c, 200, &r), RAW_TIMEOUT, "and no more");
    buf_free(&b);
    raw_close(&c);
    good_round(10);
}

/* ---- connection churn --------------------------------------------------------------------- */

static uint32_t server_connections(void)
{
    struct keel_result r;
    cr_assert_eq(keel_status(good, &r), KEEL_STATUS_OK);
    uint32_t n = 0;
    for (size_t i = 0; i < r.u.status.shards_len; i++) n += r.u.status.shards[i].connections;
    return n;
}

Test(bad, thousands_of_connections_opened_and_dropped)
{
    enum { CONNS = 2100, ROUNDS = 3 };
    static int fds[CONNS];
    u8 hello[64];
    struct buf b;
    buf_init_fixed(&b, hello, sizeof(hello));
    raw_hello(&b, 1, CODEC_MAGIC, 1);
    uint32_t base = server_connections();
    for (int round = 0; round < ROUNDS; round++) {
        int open = 0;
        for (int i = 0; i < CONNS; i++) {
            fds[i] = keeld_tcp_connect(kp.port);
            cr_assert_geq(fds[i], 0, "connect %d of round %d: %s", i, round, strerror(errno));
            open++;
            cr_assert_eq(send(fds[i], b.ptr, b.len, MSG_NOSIGNAL), (ssize_t)b.len);
            if (i % 500 == 0) good_round(1);
        }
        good_round(5);
        for (int i = 0; i < open; i++) {
            if (i % 3 == 0) { /* a third leave with a reset */
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            }
            close(fds[i]);
        }
        good_round(5);
    }
    /* the server lets go of every dropped connection */
    int64_t deadline = keeld_now_ms() + 10000;
    uint32_t now = server_connections();
    while (now > base && keeld_now_ms() < deadline) {
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
        now = server_connections();
    }
    cr_assert_leq(now, base, "%u connections still held (was %u)", now, base);
    good_round(10);
}

/* ---- shutdown ----------------------------------------------------------------------------- */

Test(bad, sigterm_says_goaway_shutting_down)
{
    struct raw_conn idle = raw_open(true);
    struct raw_conn fresh = raw_open(false); /* connected, no HELLO yet */
    good_round(5);
    int64_t t0 = keeld_now_ms();
    cr_assert_eq(kill(kp.pid, SIGTERM), 0);
    expect_goaway_close(&idle, CODEC_S_SHUTTING_DOWN, UINT64_MAX);
    cr_assert(raw_wait_closed(&fresh, RAW_READ_MS), "every connection is closed on SIGTERM");
    int st = 0;
    while (waitpid(kp.pid, &st, WNOHANG) == 0 && keeld_now_ms() - t0 < KEELD_STOP_MS) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert(keeld_exited_cleanly(st), "keeld exit on SIGTERM: wait status 0x%x", st);
    kp.pid = 0;
    stopped_status = st;
    raw_close(&idle);
    raw_close(&fresh);
    /* the data survives: every acknowledged write is there after a restart */
    cr_assert_eq(keeld_start(&kp), 0);
    keel_close(good);
    good = NULL;
    check_acked_writes();
    stopped_status = keeld_stop(&kp);
}

/* ---- connection limit --------------------------------------------------------------------- */

/* With --max-connections, a connection past the limit gets GOAWAY TOO_MANY_CONNECTIONS right
 * after accept and is closed; the ones held keep working, and a slot freed is usable again. */
Test(bad, connection_limit_goaway)
{
    enum { MAX = 6 };
    keel_close(good);
    good = NULL;
    cr_assert(keeld_exited_cleanly(keeld_stop(&kp)));
    keeld_cleanup(&kp);
    kp.extra_args[0] = "--max-connections";
    kp.extra_args[1] = "6";
    kp.extra_args[2] = NULL;
    cr_assert_eq(keeld_start(&kp), 0);
    cr_assert_eq(keel_connect(kp.endpoint, NULL, &good), KEEL_STATUS_OK);
    /* keeld_start's readiness probes closed their connections: wait until they are let go */
    struct raw_conn held[MAX];
    int n_held = 0;
    int64_t deadline = keeld_now_ms() + 10000;
    while (n_held < MAX - 1 && keeld_now_ms() < deadline) {
        held[n_held] = raw_open(false);
        if (raw_handshake(&held[n_held])) {
            n_held++;
            continue;
        }
        raw_close(&held[n_held]); /* a probe's slot not yet freed: try again */
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    cr_assert_eq(n_held, MAX - 1, "the limit leaves room for %d connections", MAX);
    /* the limit is reached: the next connection is refused at once */
    struct raw_conn extra = raw_open(false);
    expect_goaway_close(&extra, CODEC_S_TOO_MANY_CONNECTIONS, UINT64_MAX);
    raw_close(&extra);
    good_round(3);
    for (int i = 0; i < n_held; i++) expect_usable(&held[i], 50 + (u64)i);
    /* a slot freed is usable again (the server notices the close) */
    raw_close(&held[--n_held]);
    bool admitted = false;
    deadline = keeld_now_ms() + 10000;
    while (!admitted && keeld_now_ms() < deadline) {
        struct raw_conn again = raw_open(false);
        admitted = raw_handshake(&again);
        raw_close(&again);
        if (!admitted) {
            struct timespec ts = {0, 20 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    cr_assert(admitted, "a freed slot takes a new connection");
    for (int i = 0; i < n_held; i++) raw_close(&held[i]);
    good_round(3);
}
