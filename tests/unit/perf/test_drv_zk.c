/*
 * test_drv_zk.c — keelbench's ZooKeeper driver (perf/drv_zk.c) against a fake ZooKeeper: a
 * server thread on 127.0.0.1 that speaks just enough of the wire protocol (the connect
 * handshake, then length-prefixed jute frames: create, getData, setData, ping, close), so
 * that no real server is needed. It answers ZNONODE for paths containing "missing",
 * ZNODEEXISTS to creates of "/kb" and of paths containing "exists", holds every request
 * while `hold` is set, and can drop its sessions and refuse them back (session expiry).
 * Checked: statuses, LOAD's create-then-set chain, done exactly once, FULL beyond the
 * slots, close calling back what is outstanding, an expired session closing the
 * connection, and check()'s refusals.
 */
#include "perf/bench_driver.h"
#include "perf/bench_workload.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

/* libzookeeper_mt neither calls nor frees the completions of requests still outstanding at
 * zookeeper_close (mt_adaptor.c: process_async() is 0), which is why drv_zk's close() calls
 * them back itself; the library's entries leak. Not ours: LeakSanitizer is told so. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libzookeeper_mt\n";
}

/* ---- the fake server ----------------------------------------------------------------- */

#define FAKE_CLIENTS_MAX 8
#define FAKE_BUF_BYTES   (1u << 20)
#define FAKE_SESSION_ID  0x1234

struct fake_client {
    int fd;
    bool primed; /* the handshake is done */
    u8 *buf;
    size_t len;
};

static struct {
    int listen_fd;
    u16 port;
    pthread_t thread;
    atomic_bool stop, hold, drop, expire;
    atomic_uint creates, sets, gets;
    struct fake_client client[FAKE_CLIENTS_MAX];
} fake;

static void put32(u8 *p, u32 v)
{
    u32 n = htonl(v);
    memcpy(p, &n, 4);
}

static u32 get32(const u8 *p)
{
    u32 n;
    memcpy(&n, p, 4);
    return ntohl(n);
}

static void send_all(int fd, const u8 *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) return;
        p += n;
        len -= (size_t)n;
    }
}

/* ConnectResponse: protocolVersion, timeOut, sessionId, passwd (16 bytes), readOnly. */
static void fake_handshake(struct fake_client *k)
{
    u8 r[4 + 37] = {0};
    put32(r, 37);
    put32(r + 8, 30000);
    u64 id = atomic_load(&fake.expire) ? 0x9999 : FAKE_SESSION_ID; /* another id: expired */
    put32(r + 12, (u32)(id >> 32));
    put32(r + 16, (u32)id);
    put32(r + 20, 16);
    send_all(k->fd, r, sizeof r);
    k->primed = true;
}

/* A reply header (xid, zxid, err) and the body a success of this request type carries. */
static void fake_reply(struct fake_client *k, int xid, int type, int err)
{
    u8 r[256] = {0};
    size_t len = 4 + 16;
    put32(r + 4, (u32)xid);
    put32(r + 16, (u32)err);
    if (err == 0 && type == ZOO_GETDATA_OP) { /* data "abc", then a zeroed Stat */
        put32(r + 20, 3);
        memcpy(r + 24, "abc", 3);
        len += 4 + 3 + 68;
    }
    if (err == 0 && type == ZOO_SETDATA_OP) len += 68; /* Stat */
    if (err == 0 && type == ZOO_CREATE_OP) {           /* the path created: "/" will do */
        put32(r + 20, 1);
        r[24] = '/';
        len += 4 + 1;
    }
    put32(r, (u32)(len - 4));
    send_all(k->fd, r, len);
}

/* One request frame (after its length): header, then the path every type we serve has. */
static void fake_request(struct fake_client *k, const u8 *p, u32 len)
{
    cr_assert(len >= 8);
    int xid = (int)get32(p), type = (int)get32(p + 4);
    char path[512] = "";
    if (len >= 12 && type != ZOO_PING_OP && type != ZOO_CLOSE_OP) {
        u32 path_len = get32(p + 8);
        cr_assert(path_len < sizeof path && 12 + path_len <= len);
        memcpy(path, p + 12, path_len);
        path[path_len] = 0;
    }
    if (type == ZOO_CREATE_OP) atomic_fetch_add(&fake.creates, 1);
    if (type == ZOO_SETDATA_OP) atomic_fetch_add(&fake.sets, 1);
    if (type == ZOO_GETDATA_OP) atomic_fetch_add(&fake.gets, 1);
    bool data_op = type == ZOO_CREATE_OP || type == ZOO_SETDATA_OP || type == ZOO_GETDATA_OP;
    if (data_op && strcmp(path, "/kb") != 0 && atomic_load(&fake.hold)) return;
    int err = 0;
    if (type == ZOO_GETDATA_OP && strstr(path, "missing") != NULL) err = ZNONODE;
    bool exists = strcmp(path, "/kb") == 0 || strstr(path, "exists") != NULL;
    if (type == ZOO_CREATE_OP && exists) err = ZNODEEXISTS;
    fake_reply(k, xid, type, err);
}

static void fake_close_client(struct fake_client *k)
{
    close(k->fd);
    free(k->buf);
    *k = (struct fake_client){.fd = -1};
}

/* Reads what k sent and serves every complete frame; false when k hung up. */
static bool fake_read(struct fake_client *k)
{
    ssize_t n = recv(k->fd, k->buf + k->len, FAKE_BUF_BYTES - k->len, 0);
    if (n <= 0) return false;
    k->len += (size_t)n;
    size_t off = 0;
    while (k->len - off >= 4) {
        u32 frame = get32(k->buf + off);
        cr_assert(frame + 4 <= FAKE_BUF_BYTES);
        if (k->len - off < 4 + (size_t)frame) break;
        if (k->primed)
            fake_request(k, k->buf + off + 4, frame);
        else
            fake_handshake(k);
        off += 4 + frame;
    }
    memmove(k->buf, k->buf + off, k->len - off);
    k->len -= off;
    return true;
}

static void fake_accept(void)
{
    int fd = accept(fake.listen_fd, NULL, NULL);
    if (fd < 0) return;
    for (int i = 0; i < FAKE_CLIENTS_MAX; i++) {
        if (fake.client[i].fd >= 0) continue;
        fake.client[i] = (struct fake_client){.fd = fd, .buf = malloc(FAKE_BUF_BYTES)};
        cr_assert_not_null(fake.client[i].buf);
        return;
    }
    close(fd);
}

static void *fake_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&fake.stop)) {
        struct pollfd p[1 + FAKE_CLIENTS_MAX];
        p[0] = (struct pollfd){.fd = fake.listen_fd, .events = POLLIN};
        for (int i = 0; i < FAKE_CLIENTS_MAX; i++)
            p[1 + i] = (struct pollfd){.fd = fake.client[i].fd, .events = POLLIN};
        if (poll(p, 1 + FAKE_CLIENTS_MAX, 10) <= 0) continue;
        if (p[0].revents & POLLIN) fake_accept();
        for (int i = 0; i < FAKE_CLIENTS_MAX; i++) {
            struct fake_client *k = &fake.client[i];
            if (k->fd >= 0 && (p[1 + i].revents != 0) && !fake_read(k)) fake_close_client(k);
            if (k->fd >= 0 && atomic_load(&fake.drop)) fake_close_client(k);
        }
        atomic_store(&fake.drop, false);
    }
    for (int i = 0; i < FAKE_CLIENTS_MAX; i++)
        if (fake.client[i].fd >= 0) fake_close_client(&fake.client[i]);
    return NULL;
}

static void fake_start(void)
{
    memset(&fake, 0, sizeof fake);
    for (int i = 0; i < FAKE_CLIENTS_MAX; i++) fake.client[i].fd = -1;
    fake.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fake.listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fake.listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fake.listen_fd, 16), 0);
    socklen_t alen = sizeof a;
    cr_assert_eq(getsockname(fake.listen_fd, (struct sockaddr *)&a, &alen), 0);
    fake.port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&fake.thread, NULL, fake_main, NULL), 0);
}

static void fake_stop(void)
{
    atomic_store(&fake.stop, true);
    pthread_join(fake.thread, NULL);
    close(fake.listen_fd);
}

/* ---- the engine's side ----------------------------------------------------------------- */

#define CTX_MAX 1024

static int done_status[CTX_MAX];
static u32 done_calls[CTX_MAX];
static u32 done_total;

static void on_done(void *ctx, int status, u64 done_ns)
{
    (void)done_ns;
    u32 i = (u32)(uintptr_t)ctx;
    cr_assert(i < CTX_MAX);
    done_calls[i]++;
    done_status[i] = status;
    done_total++;
}

static char endpoints[32];

static struct bench_config config(u32 depth)
{
    snprintf(endpoints, sizeof endpoints, "127.0.0.1:%u", (unsigned)fake.port);
    return (struct bench_config){.system = "zookeeper",
                                 .endpoints = endpoints,
                                 .conns = 1,
                                 .depth = depth,
                                 .threads = 1,
                                 .keys = 100,
                                 .key_size_bytes = 16,
                                 .value_size_bytes = 8};
}

static struct bench_dthread *open_one(const struct bench_config *c)
{
    memset(done_calls, 0, sizeof done_calls);
    done_total = 0;
    static const u32 conn0 = 0;
    struct bench_dthread *d = bench_driver_zk.open(c, 0, 1, &conn0, on_done);
    cr_assert_not_null(d);
    return d;
}

static int submit(struct bench_dthread *d, enum bench_req_op op, const char *key, u32 ctx)
{
    struct bench_request r = {op, key, (u32)strlen(key), "12345678", 8};
    return bench_driver_zk.submit(d, 0, &r, (void *)(uintptr_t)ctx);
}

/* Polls until done_total reaches want (a liveness bound, not a speed check). */
static void poll_until(struct bench_dthread *d, u32 want)
{
    for (int i = 0; i < 3000 && done_total < want; i++) bench_driver_zk.poll(d, 10000);
    cr_assert_eq(done_total, want);
}

Test(drv_zk, requests_complete_once_with_their_status, .init = fake_start, .fini = fake_stop)
{
    struct bench_config c = config(4);
    struct bench_dthread *d = open_one(&c);
    cr_assert_eq(atomic_load(&fake.creates), 1u, "open creates /kb");
    cr_assert_eq(submit(d, BENCH_REQ_PUT, "0a..............", 0), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, BENCH_REQ_GET, "0a..............", 1), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, BENCH_REQ_GET, "missing.........", 2), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, BENCH_REQ_LOAD, "0b..............", 3), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, BENCH_REQ_LOAD, "exists.0c.......", 4), BENCH_SUBMIT_OK);
    poll_until(d, 5);
    int want[5] = {0, 0, ZNONODE, 0, 0};
    for (u32 i = 0; i < 5; i++) {
        cr_assert_eq(done_calls[i], 1u, "request %u called back once", i);
        cr_assert_eq(done_status[i], want[i], "request %u: %d", i, done_status[i]);
    }
    cr_assert_eq(bench_driver_zk.pending(d, 0), 0u);
    cr_assert_eq(atomic_load(&fake.gets), 2u);
    cr_assert_eq(atomic_load(&fake.creates), 3u, "/kb and both loads");
    cr_assert_eq(atomic_load(&fake.sets), 2u, "the put and the existing key's load");
    cr_assert_str_eq(bench_driver_zk.status_name(ZNONODE), "ZNONODE");
    bench_driver_zk.close(d);
    cr_assert_eq(done_total, 5u, "close calls back nothing twice");
}

Test(drv_zk, full_beyond_the_slots_and_close_calls_back, .init = fake_start, .fini = fake_stop)
{
    struct bench_config c = config(2); /* slots: max(depth, BENCH_PRELOAD_DEPTH) */
    struct bench_dthread *d = open_one(&c);
    atomic_store(&fake.hold, true);
    u32 accepted = 0;
    while (accepted < CTX_MAX && submit(d, BENCH_REQ_GET, "0a", accepted) == BENCH_SUBMIT_OK)
        accepted++;
    cr_assert_eq(accepted, BENCH_PRELOAD_DEPTH);
    cr_assert_eq(submit(d, BENCH_REQ_PUT, "0a", accepted), BENCH_SUBMIT_FULL);
    cr_assert_eq(bench_driver_zk.pending(d, 0), accepted);
    cr_assert_eq(bench_driver_zk.poll(d, 1000), 1u, "held, not lost: still usable");
    cr_assert_eq(done_total, 0u);
    bench_driver_zk.close(d);
    cr_assert_eq(done_total, accepted);
    for (u32 i = 0; i < accepted; i++) {
        cr_assert_eq(done_calls[i], 1u);
        cr_assert_neq(done_status[i], 0, "an outstanding request fails at close");
    }
}

Test(drv_zk, an_expired_session_closes_the_connection, .init = fake_start, .fini = fake_stop)
{
    struct bench_config c = config(4);
    struct bench_dthread *d = open_one(&c);
    atomic_store(&fake.hold, true);
    cr_assert_eq(submit(d, BENCH_REQ_GET, "0a", 0), BENCH_SUBMIT_OK);
    atomic_store(&fake.expire, true);
    atomic_store(&fake.drop, true);
    u32 usable = 1;
    for (int i = 0; i < 3000 && (usable > 0 || done_total < 1); i++)
        usable = bench_driver_zk.poll(d, 10000);
    cr_assert_eq(usable, 0u);
    cr_assert_eq(done_calls[0], 1u);
    cr_assert_neq(done_status[0], 0, "the request in flight fails: %d", done_status[0]);
    cr_assert_eq(submit(d, BENCH_REQ_GET, "0a", 1), BENCH_SUBMIT_CLOSED);
    cr_assert_eq(bench_driver_zk.pending(d, 0), 0u);
    bench_driver_zk.close(d);
    cr_assert_eq(done_total, 1u);
}

Test(drv_zk, check_refuses_what_zookeeper_cannot_do)
{
    struct bench_config c = {.system = "zookeeper",
                             .endpoints = "127.0.0.1:1",
                             .conns = 1,
                             .depth = 1,
                             .threads = 1,
                             .keys = 10,
                             .key_size_bytes = 16,
                             .value_size_bytes = 256};
    FILE *err = tmpfile();
    cr_assert_not_null(err);
    cr_assert_eq(bench_driver_zk.check(&c, err), 0);
    c.shard_aware = true;
    cr_assert_eq(bench_driver_zk.check(&c, err), 1);
    c.shard_aware = false;
    c.value_size_bytes = 2u << 20;
    cr_assert_eq(bench_driver_zk.check(&c, err), 1);
    cr_assert(ftell(err) > 0, "each refusal says why");
    fclose(err);
    cr_assert_str_eq(bench_driver_zk.status_name(ZCONNECTIONLOSS), "ZCONNECTIONLOSS");
    cr_assert_str_eq(bench_driver_zk.status_name(ZCLOSING), "ZCLOSING");
}

Test(drv_zk, open_fails_on_an_endpoint_that_is_not_ipv4)
{
    struct bench_config c = {.system = "zookeeper",
                             .endpoints = "localhost:2181",
                             .conns = 1,
                             .depth = 1,
                             .threads = 1,
                             .keys = 10,
                             .key_size_bytes = 16,
                             .value_size_bytes = 8};
    static const u32 conn0 = 0;
    cr_assert_null(bench_driver_zk.open(&c, 0, 1, &conn0, on_done));
}
