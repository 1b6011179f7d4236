/*
 * test_drv_etcd.c — perf/drv_etcd.c against a fake etcd: an nghttp2 server on 127.0.0.1 in
 * a thread that answers KV.Put and KV.Range like etcd, and misbehaves on request, by key:
 *
 *   e14...    a trailers-only reply with grpc-status 14 (UNAVAILABLE) and a grpc-message
 *   rst...    RST_STREAM CANCEL
 *   bad...    grpc-status 0 with a body that is no gRPC message
 *   hold...   no reply (the stream stays open)
 *   goaway... GOAWAY with last stream id 0 (every stream refused)
 *   close...  the server closes the connection
 *   missing   a Range that finds no key
 *
 * Checks: success, each error outcome's distinct status and name, the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS (submit says FULL), close() calling back what is in
 * flight, check() refusing --shard-aware, open() failing on a closed port.
 */
#include "perf/bench_driver.h"
#include "perf/etcd_pb.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <nghttp2/nghttp2.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the fake server ------------------------------------------------------------------- */

struct fake_stream {
    bool used;
    char path[64];
    u8 req[1024];
    size_t req_len;
    u8 resp[1024];
    size_t resp_len, resp_off;
};

struct fake {
    int listen_fd;
    u16 port;
    u32 max_streams;
    atomic_int stop;
    pthread_t thread;
    int conn_fd;
    bool close_now;
};

static struct fake fake;
static struct fake_stream fake_streams[64]; /* a pool: nothing leaks when a connection drops */

static nghttp2_nv nv(const char *name, const char *value)
{
    nghttp2_nv v = {(u8 *)name, (u8 *)value, strlen(name), strlen(value), NGHTTP2_NV_FLAG_NONE};
    return v;
}

static int fk_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    struct fake_stream *st = NULL;
    for (u32 i = 0; i < 64 && st == NULL; i++)
        if (!fake_streams[i].used) st = &fake_streams[i];
    cr_assert_not_null(st);
    memset(st, 0, sizeof(*st));
    st->used = true;
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, st);
    return 0;
}

static int fk_header(nghttp2_session *s, const nghttp2_frame *frame, const u8 *name, size_t namelen,
                     const u8 *value, size_t valuelen, u8 flags, void *user)
{
    (void)flags;
    (void)user;
    struct fake_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (st == NULL || namelen != 5 || memcmp(name, ":path", 5) != 0) return 0;
    if (valuelen >= sizeof(st->path)) valuelen = sizeof(st->path) - 1;
    memcpy(st->path, value, valuelen);
    return 0;
}

static int fk_data(nghttp2_session *s, u8 flags, i32 id, const u8 *data, size_t len, void *user)
{
    (void)flags;
    (void)user;
    struct fake_stream *st = nghttp2_session_get_stream_user_data(s, id);
    cr_assert(st != NULL && st->req_len + len <= sizeof(st->req));
    memcpy(st->req + st->req_len, data, len);
    st->req_len += len;
    return 0;
}

static ssize_t fk_read(nghttp2_session *s, i32 id, u8 *buf, size_t length, u32 *flags,
                       nghttp2_data_source *src, void *user)
{
    (void)user;
    struct fake_stream *st = src->ptr;
    size_t n = st->resp_len - st->resp_off < length ? st->resp_len - st->resp_off : length;
    memcpy(buf, st->resp + st->resp_off, n);
    st->resp_off += n;
    if (st->resp_off == st->resp_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv trailer = nv("grpc-status", "0");
        cr_assert_eq(nghttp2_submit_trailer(s, id, &trailer, 1), 0);
    }
    return (ssize_t)n;
}

static bool key_is(struct span key, const char *prefix)
{
    return key.len >= strlen(prefix) && memcmp(key.ptr, prefix, strlen(prefix)) == 0;
}

/* The reply of an OK request: a PutResponse or a RangeResponse, gRPC-framed. */
static void fk_reply_ok(nghttp2_session *s, i32 id, struct fake_stream *st, bool is_put,
                        struct span key)
{
    struct etcd_kv kv = {.key = key, .value = span_make("v", 1), .version = 1};
    struct etcd_range_response rr = {.header = {.revision = 7}, .kvs = &kv, .kvs_cap = 1};
    rr.kv_count = key_is(key, "missing") ? 0 : 1;
    struct etcd_put_response pr = {.header = {.revision = 7}};
    u8 *msg = st->resp + ETCD_GRPC_PREFIX_BYTES;
    size_t cap = sizeof(st->resp) - ETCD_GRPC_PREFIX_BYTES;
    size_t n = is_put ? etcd_pb_put_response_encode(&pr, msg, cap)
                      : etcd_pb_range_response_encode(&rr, msg, cap);
    cr_assert_gt(n, 0);
    etcd_grpc_prefix_write(st->resp, (u32)n);
    st->resp_len = ETCD_GRPC_PREFIX_BYTES + n;
    if (key_is(key, "bad")) st->resp[0] = 9; /* no valid compressed flag */
    nghttp2_nv hdrs[2] = {nv(":status", "200"), nv("content-type", "application/grpc")};
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = fk_read};
    cr_assert_eq(nghttp2_submit_response(s, id, hdrs, 2, &prd), 0);
}

static void fk_request(nghttp2_session *s, i32 id, struct fake_stream *st)
{
    struct span msg;
    size_t used = 0;
    cr_assert_eq(etcd_grpc_message_parse(st->req, st->req_len, 1024, &msg, &used), 1);
    bool is_put = strcmp(st->path, "/etcdserverpb.KV/Put") == 0;
    struct span key;
    if (is_put) {
        struct etcd_put_request p;
        cr_assert_eq(etcd_pb_put_request_decode(msg, &p), 0);
        key = p.key;
    } else {
        cr_assert_str_eq(st->path, "/etcdserverpb.KV/Range");
        struct etcd_range_request r;
        cr_assert_eq(etcd_pb_range_request_decode(msg, &r), 0);
        key = r.key;
    }
    if (key_is(key, "hold")) return;
    if (key_is(key, "close")) fake.close_now = true;
    if (key_is(key, "rst")) nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    if (key_is(key, "goaway")) nghttp2_submit_goaway(s, NGHTTP2_FLAG_NONE, 0, 0, NULL, 0);
    if (key_is(key, "e14")) {
        nghttp2_nv hdrs[4] = {nv(":status", "200"), nv("content-type", "application/grpc"),
                              nv("grpc-status", "14"), nv("grpc-message", "fake: unavailable")};
        cr_assert_eq(nghttp2_submit_response(s, id, hdrs, 4, NULL), 0);
    }
    bool plain = !key_is(key, "close") && !key_is(key, "rst") && !key_is(key, "goaway") &&
                 !key_is(key, "e14");
    if (plain) fk_reply_ok(s, id, st, is_put, key);
}

static int fk_frame(nghttp2_session *s, const nghttp2_frame *frame, void *user)
{
    (void)user;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (!end || (frame->hd.type != NGHTTP2_DATA && frame->hd.type != NGHTTP2_HEADERS)) return 0;
    struct fake_stream *st = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (st != NULL) fk_request(s, frame->hd.stream_id, st);
    return 0;
}

static int fk_close(nghttp2_session *s, i32 id, u32 code, void *user)
{
    (void)code;
    (void)user;
    struct fake_stream *st = nghttp2_session_get_stream_user_data(s, id);
    if (st != NULL) st->used = false;
    return 0;
}

static nghttp2_session *fk_session(void)
{
    nghttp2_session_callbacks *cb;
    cr_assert_eq(nghttp2_session_callbacks_new(&cb), 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, fk_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, fk_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, fk_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, fk_frame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, fk_close);
    nghttp2_session *s;
    cr_assert_eq(nghttp2_session_server_new(&s, cb, NULL), 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, fake.max_streams};
    cr_assert_eq(nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, &iv, 1), 0);
    return s;
}

/* Serves one connection until the client leaves, close_now, or stop. */
static void fk_serve(int fd)
{
    nghttp2_session *s = fk_session();
    u8 buf[16384];
    fake.close_now = false;
    while (!atomic_load(&fake.stop) && !fake.close_now) {
        const u8 *out;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(s, &out)) > 0)
            if (send(fd, out, (size_t)n, MSG_NOSIGNAL) != n) goto done;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0 || nghttp2_session_mem_recv(s, buf, (size_t)n) < 0) break;
    }
done:
    nghttp2_session_del(s); /* fk_close is not called here: free the pool by hand */
    close(fd);
    for (u32 i = 0; i < 64; i++) fake_streams[i].used = false;
}

static void *fk_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&fake.stop)) {
        struct pollfd p = {.fd = fake.listen_fd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int fd = accept(fake.listen_fd, NULL, NULL);
        if (fd >= 0) fk_serve(fd);
    }
    return NULL;
}

static void fake_start(u32 max_streams)
{
    memset(&fake, 0, sizeof(fake));
    fake.max_streams = max_streams;
    fake.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fake.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fake.listen_fd, 8), 0);
    socklen_t len = sizeof(sa);
    cr_assert_eq(getsockname(fake.listen_fd, (struct sockaddr *)&sa, &len), 0);
    fake.port = ntohs(sa.sin_port);
    cr_assert_eq(pthread_create(&fake.thread, NULL, fk_main, NULL), 0);
}

static void fake_stop(void)
{
    atomic_store(&fake.stop, 1);
    pthread_join(fake.thread, NULL);
    close(fake.listen_fd);
}

/* ---- the client side ------------------------------------------------------------------- */

#define RESULTS_MAX 64

static int results[RESULTS_MAX]; /* status by request number; -1 until called back */
static u32 results_done;
static char endpoints[32];

static void on_done(void *ctx, int status, u64 done_ns)
{
    (void)done_ns;
    int *r = ctx;
    cr_assert_eq(*r, -1, "done called twice");
    *r = status;
    results_done++;
}

static struct bench_config config(u32 depth)
{
    snprintf(endpoints, sizeof(endpoints), "127.0.0.1:%u", (unsigned)fake.port);
    struct bench_config c = {.system = "etcd",
                             .endpoints = endpoints,
                             .conns = 1,
                             .depth = depth,
                             .threads = 1,
                             .key_size_bytes = 8,
                             .value_size_bytes = 4};
    for (u32 i = 0; i < RESULTS_MAX; i++) results[i] = -1;
    results_done = 0;
    return c;
}

static struct bench_dthread *open_one(const struct bench_config *c)
{
    u32 index = 0;
    struct bench_dthread *d = bench_driver_etcd.open(c, 0, 1, &index, on_done);
    cr_assert_not_null(d);
    return d;
}

static int submit(struct bench_dthread *d, u32 n, enum bench_req_op op, const char *key)
{
    struct bench_request r = {
        .op = op, .key = key, .key_len = (u32)strlen(key), .value = "vvvv", .value_len = 4};
    return bench_driver_etcd.submit(d, 0, &r, &results[n]);
}

/* Polls until want requests were called back (bounded, so a bug fails instead of hanging). */
static u32 poll_until(struct bench_dthread *d, u32 want)
{
    u32 usable = 1;
    for (int i = 0; i < 200 && results_done < want; i++) usable = bench_driver_etcd.poll(d, 50000);
    cr_assert_eq(results_done, want);
    return usable;
}

static const char *name(int status)
{
    return bench_driver_etcd.status_name(status);
}

Test(drv_etcd, puts_and_gets_succeed)
{
    fake_start(100);
    struct bench_config c = config(8);
    struct bench_dthread *d = open_one(&c);
    for (u32 i = 0; i < 8; i++)
        cr_assert_eq(submit(d, i, i % 2 ? BENCH_REQ_GET : BENCH_REQ_PUT, "okokokok"),
                     BENCH_SUBMIT_OK);
    cr_assert_eq(bench_driver_etcd.pending(d, 0), 8);
    cr_assert_eq(poll_until(d, 8), 1);
    for (u32 i = 0; i < 8; i++) cr_assert_eq(results[i], 0, "request %u: %s", i, name(results[i]));
    cr_assert_eq(bench_driver_etcd.pending(d, 0), 0);
    cr_assert_eq(submit(d, 8, BENCH_REQ_GET, "missing"), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, 9, BENCH_REQ_LOAD, "loadload"), BENCH_SUBMIT_OK);
    poll_until(d, 10);
    cr_assert_eq(results[8], 0, "a get of no key is executed successfully");
    cr_assert_eq(results[9], 0);
    char out[256] = {0};
    FILE *f = fmemopen(out, sizeof(out) - 1, "w");
    bench_driver_etcd.report(&d, 1, f);
    fclose(f);
    cr_assert(strstr(out, "1 gets found no key") != NULL, "report: %s", out);
    bench_driver_etcd.close(d);
    fake_stop();
}

Test(drv_etcd, errors_have_distinct_statuses)
{
    fake_start(100);
    struct bench_config c = config(8);
    struct bench_dthread *d = open_one(&c);
    cr_assert_eq(submit(d, 0, BENCH_REQ_PUT, "e14e14e1"), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, 1, BENCH_REQ_GET, "rstrstrs"), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, 2, BENCH_REQ_PUT, "badbadba"), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, 3, BENCH_REQ_PUT, "okokokok"), BENCH_SUBMIT_OK);
    cr_assert_eq(poll_until(d, 4), 1, "stream errors leave the connection usable");
    cr_assert_str_eq(name(results[0]), "grpc 14 UNAVAILABLE");
    cr_assert_str_eq(name(results[1]), "RST_STREAM CANCEL");
    cr_assert(strstr(name(results[2]), "BAD_RESPONSE") != NULL, "%s", name(results[2]));
    cr_assert_eq(results[3], 0);
    char out[256] = {0};
    FILE *f = fmemopen(out, sizeof(out) - 1, "w");
    bench_driver_etcd.report(&d, 1, f);
    fclose(f);
    cr_assert(strstr(out, "fake: unavailable") != NULL, "report: %s", out);
    bench_driver_etcd.close(d);
    fake_stop();
}

Test(drv_etcd, max_concurrent_streams_and_close)
{
    fake_start(2);
    struct bench_config c = config(8);
    struct bench_dthread *d = open_one(&c);
    cr_assert_eq(submit(d, 0, BENCH_REQ_PUT, "holdhold"), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, 1, BENCH_REQ_GET, "holdhold"), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, 2, BENCH_REQ_PUT, "okokokok"), BENCH_SUBMIT_FULL,
                 "the server allows 2 streams");
    cr_assert_eq(bench_driver_etcd.poll(d, 20000), 1);
    cr_assert_eq(results_done, 0);
    bench_driver_etcd.close(d);
    cr_assert_eq(results_done, 2, "close calls back what is in flight");
    cr_assert(strstr(name(results[0]), "CLOSED") != NULL, "%s", name(results[0]));
    fake_stop();
}

Test(drv_etcd, goaway_refuses_streams_and_ends_the_connection)
{
    fake_start(100);
    struct bench_config c = config(8);
    struct bench_dthread *d = open_one(&c);
    cr_assert_eq(submit(d, 0, BENCH_REQ_PUT, "goawaygo"), BENCH_SUBMIT_OK);
    cr_assert_eq(poll_until(d, 1), 0, "no usable connection after GOAWAY");
    cr_assert(strstr(name(results[0]), "GOAWAY") != NULL, "%s", name(results[0]));
    cr_assert_eq(submit(d, 1, BENCH_REQ_PUT, "okokokok"), BENCH_SUBMIT_CLOSED);
    bench_driver_etcd.close(d);
    fake_stop();
}

Test(drv_etcd, connection_loss_fails_what_is_in_flight)
{
    fake_start(100);
    struct bench_config c = config(8);
    struct bench_dthread *d = open_one(&c);
    cr_assert_eq(submit(d, 0, BENCH_REQ_PUT, "holdhold"), BENCH_SUBMIT_OK);
    cr_assert_eq(submit(d, 1, BENCH_REQ_PUT, "closeclo"), BENCH_SUBMIT_OK);
    cr_assert_eq(poll_until(d, 2), 0);
    cr_assert_str_eq(name(results[0]), "CONNECTION_LOST");
    cr_assert_str_eq(name(results[1]), "CONNECTION_LOST");
    cr_assert_eq(submit(d, 2, BENCH_REQ_PUT, "okokokok"), BENCH_SUBMIT_CLOSED);
    bench_driver_etcd.close(d);
    cr_assert_eq(results_done, 2, "nothing is called back twice");
    fake_stop();
}

Test(drv_etcd, check_and_open_failures)
{
    fake_start(100);
    struct bench_config c = config(1);
    char err[256] = {0};
    FILE *f = fmemopen(err, sizeof(err) - 1, "w");
    c.shard_aware = true;
    cr_assert_eq(bench_driver_etcd.check(&c, f), 1);
    fclose(f);
    cr_assert(strstr(err, "--shard-aware") != NULL, "%s", err);
    c.shard_aware = false;
    cr_assert_eq(bench_driver_etcd.check(&c, stderr), 0);
    fake_stop(); /* the port is closed now */
    u32 index = 0;
    cr_assert_null(bench_driver_etcd.open(&c, 0, 1, &index, on_done));
}
