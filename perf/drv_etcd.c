/*
 * drv_etcd.c — keelbench's etcd driver (bench_driver.h): etcd v3's real gRPC API, HTTP/2
 * over plain TCP with prior knowledge (h2c, what etcd's client port speaks without TLS),
 * through Debian's libnghttp2; the protobuf messages are encoded by hand (etcd_pb.h).
 *
 * Requests: BENCH_REQ_PUT and BENCH_REQ_LOAD are POST /etcdserverpb.KV/Put (PutRequest
 * key, value); BENCH_REQ_GET is POST /etcdserverpb.KV/Range (RangeRequest key, and
 * serializable when c->serializable; linearizable otherwise). Headers: content-type
 * application/grpc, te: trailers. Each request is one HTTP/2 stream; a connection carries
 * up to depth streams at once, never more than the server's SETTINGS_MAX_CONCURRENT_STREAMS
 * (submit says BENCH_SUBMIT_FULL at that limit).
 *
 * Completion: a stream's status is its grpc-status (trailers, or a trailers-only reply);
 * 0 with HTTP :status 200 and a response that decodes is success. Other outcomes have
 * their own status codes (etcd_status_name): grpc 1..16, RST_STREAM (with the HTTP/2
 * error code), GOAWAY (a stream the server refused as it went away), CONNECTION_LOST,
 * HTTP status, bad response, no grpc-status, CLOSED (close() with requests in flight).
 * A get that finds no key is a success (etcd executed it) but is counted and reported.
 *
 * I/O: each connection is a non-blocking socket with one nghttp2 client session.
 * nghttp2 never touches the socket: poll() moves bytes with nghttp2_session_mem_send into
 * an output buffer (one send() per connection per turn) and feeds what recv() read to
 * nghttp2_session_mem_recv. Completions are queued inside nghttp2's callbacks and
 * delivered (done) after it returns, so done may submit again without re-entering it.
 * One epoll_pwait2() over the thread's sockets waits, with microsecond resolution: epoll
 * rather than ppoll because a thread may hold hundreds of connections at depth 1, where
 * ppoll's cost per wakeup grows with the connection count (etcdctl check perf --load xl
 * uses 1000 connections) and epoll's with the number of ready ones.
 */
#include "perf/bench_driver.h"
#include "perf/etcd_pb.h"

#include "core/assert.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- limits and status codes ------------------------------------------------------------- */

#define EC_CONNECT_TIMEOUT_MS   5000u
#define EC_HANDSHAKE_TIMEOUT_MS 5000u
#define EC_RECV_BYTES           (256u << 10) /* one recv() */
#define EC_RECVS_PER_TURN       16u          /* recv() calls per connection per poll turn */
#define EC_OUT_SOFT_BYTES       (64u << 10)  /* stop asking nghttp2 for more above this */
#define EC_OUT_BYTES_INITIAL    (32u << 10)  /* an output buffer grows when a frame needs it */
#define EC_RESPONSE_BYTES_MAX   ((size_t)BENCH_VALUE_SIZE_MAX + BENCH_KEY_SIZE_MAX + 4096u)
#define EC_STREAM_WINDOW_BYTES  (1 << 20)
#define EC_CONN_WINDOW_BYTES    (1 << 26)
#define EC_MESSAGE_BYTES        160u /* the first grpc-message kept for the report */

enum {
    EC_ST_GRPC_LAST = 16,  /* 1..16: gRPC status codes */
    EC_ST_GRPC_OTHER = 17, /* a grpc-status beyond 16, or not a number */
    EC_ST_GOAWAY = 40,
    EC_ST_CONN_LOST = 41,
    EC_ST_HTTP_STATUS = 42,
    EC_ST_BAD_RESPONSE = 43,
    EC_ST_NO_GRPC_STATUS = 44,
    EC_ST_CLOSED = 45,
    EC_ST_RST_BASE = 100, /* 100 + HTTP/2 error code (0..13; 14 and above as 114) */
    EC_ST_RST_LAST = 114,
};

enum ec_slot_state { EC_SLOT_FREE = 0, EC_SLOT_ACTIVE = 1, EC_SLOT_QUEUED = 2 };

/* ---- state ------------------------------------------------------------------------------- */

struct ec_slot { /* one request in flight */
    void *ctx;
    u8 *body; /* gRPC prefix + request message */
    size_t body_cap, body_len, body_off;
    u8 *resp; /* response DATA */
    size_t resp_cap, resp_len;
    int http_status, grpc_status; /* -1: not seen */
    int status;                   /* once QUEUED */
    u8 state;                     /* enum ec_slot_state */
    u8 op;                        /* enum bench_req_op */
    bool resp_overflow;
};

struct ec_conn {
    struct bench_dthread *d;
    u32 index; /* global connection index */
    int fd;    /* -1 once dead */
    nghttp2_session *session;
    bool goaway, settings_seen;
    bool dirty;      /* on the thread's dirty list: nghttp2 may have frames to send */
    bool registered; /* in the thread's epoll set */
    bool polled_out; /* EPOLLOUT asked for: the socket did not take all output */
    char endpoint[64];
    nghttp2_nv nva_put[6], nva_range[6];
    struct ec_slot *slots;
    u32 slots_len;
    u32 *free; /* free slot indexes */
    u32 free_len;
    u32 *queue; /* completed slot indexes, not yet called back */
    u32 queue_len;
    u8 *out;
    size_t out_cap, out_len, out_off;
};

struct bench_dthread {
    const struct bench_config *cfg;
    bench_done_fn done;
    struct ec_conn *conns;
    u32 conns_len;
    int epfd;
    struct epoll_event *events;
    u32 *dirty; /* connections to flush before waiting */
    u32 dirty_len;
    u8 *rbuf;
    u64 completed;    /* callbacks made, for poll's "at least one reply" */
    u64 gets_missing; /* gets that found no key */
    char message[EC_MESSAGE_BYTES];
};

static const char path_put[] = "/etcdserverpb.KV/Put";
static const char path_range[] = "/etcdserverpb.KV/Range";

/* ---- status names ------------------------------------------------------------------------ */

static const char *const grpc_names[EC_ST_GRPC_LAST + 1] = {
    "grpc 0 OK",
    "grpc 1 CANCELLED",
    "grpc 2 UNKNOWN",
    "grpc 3 INVALID_ARGUMENT",
    "grpc 4 DEADLINE_EXCEEDED",
    "grpc 5 NOT_FOUND",
    "grpc 6 ALREADY_EXISTS",
    "grpc 7 PERMISSION_DENIED",
    "grpc 8 RESOURCE_EXHAUSTED",
    "grpc 9 FAILED_PRECONDITION",
    "grpc 10 ABORTED",
    "grpc 11 OUT_OF_RANGE",
    "grpc 12 UNIMPLEMENTED",
    "grpc 13 INTERNAL",
    "grpc 14 UNAVAILABLE",
    "grpc 15 DATA_LOSS",
    "grpc 16 UNAUTHENTICATED",
};

static const char *const rst_names[EC_ST_RST_LAST - EC_ST_RST_BASE + 1] = {
    "RST_STREAM NO_ERROR",
    "RST_STREAM PROTOCOL_ERROR",
    "RST_STREAM INTERNAL_ERROR",
    "RST_STREAM FLOW_CONTROL_ERROR",
    "RST_STREAM SETTINGS_TIMEOUT",
    "RST_STREAM STREAM_CLOSED",
    "RST_STREAM FRAME_SIZE_ERROR",
    "RST_STREAM REFUSED_STREAM",
    "RST_STREAM CANCEL",
    "RST_STREAM COMPRESSION_ERROR",
    "RST_STREAM CONNECT_ERROR",
    "RST_STREAM ENHANCE_YOUR_CALM",
    "RST_STREAM INADEQUATE_SECURITY",
    "RST_STREAM HTTP_1_1_REQUIRED",
    "RST_STREAM (other code)",
};

static const char *etcd_status_name(int status)
{
    if (status >= 0 && status <= EC_ST_GRPC_LAST) return grpc_names[status];
    if (status >= EC_ST_RST_BASE && status <= EC_ST_RST_LAST)
        return rst_names[status - EC_ST_RST_BASE];
    switch (status) {
    case EC_ST_GRPC_OTHER:
        return "grpc status out of range";
    case EC_ST_GOAWAY:
        return "GOAWAY (stream refused)";
    case EC_ST_CONN_LOST:
        return "CONNECTION_LOST";
    case EC_ST_HTTP_STATUS:
        return "HTTP status not 200";
    case EC_ST_BAD_RESPONSE:
        return "BAD_RESPONSE (malformed gRPC/protobuf)";
    case EC_ST_NO_GRPC_STATUS:
        return "NO_GRPC_STATUS";
    case EC_ST_CLOSED:
        return "CLOSED (in flight at close)";
    default:
        return "unknown etcd driver status";
    }
}

/* ---- completions ------------------------------------------------------------------------- */

static void ec_slot_queue(struct ec_conn *k, struct ec_slot *s, int status)
{
    ASSERT(s->state == EC_SLOT_ACTIVE);
    ASSERT(k->queue_len < k->slots_len);
    s->state = EC_SLOT_QUEUED;
    s->status = status;
    k->queue[k->queue_len++] = (u32)(s - k->slots);
}

/* Calls back every queued completion; each slot is free again before its done runs. */
static void ec_conn_complete(struct ec_conn *k, u64 done_ns)
{
    struct bench_dthread *d = k->d;
    for (u32 i = 0; i < k->queue_len; i++) {
        struct ec_slot *s = &k->slots[k->queue[i]];
        ASSERT(s->state == EC_SLOT_QUEUED);
        void *ctx = s->ctx;
        int status = s->status;
        s->state = EC_SLOT_FREE;
        s->ctx = NULL;
        ASSERT(k->free_len < k->slots_len);
        k->free[k->free_len++] = k->queue[i];
        d->completed++;
        d->done(ctx, status, done_ns);
    }
    k->queue_len = 0;
}

/* The connection is gone: what is in flight completes with status, the socket closes. */
static void ec_conn_fail(struct ec_conn *k, int status)
{
    if (k->fd < 0) return;
    for (u32 i = 0; i < k->slots_len; i++)
        if (k->slots[i].state == EC_SLOT_ACTIVE) ec_slot_queue(k, &k->slots[i], status);
    nghttp2_session_del(k->session); /* calls no callback */
    k->session = NULL;
    close(k->fd);
    k->fd = -1;
    ec_conn_complete(k, 0);
    ASSERT(k->free_len == k->slots_len);
}

/* ---- nghttp2 callbacks ------------------------------------------------------------------- */

static bool ec_name_is(const u8 *name, size_t len, const char *want)
{
    size_t n = strlen(want);
    return len == n && memcmp(name, want, n) == 0;
}

/* A small decimal header value; -1 when it is not one. */
static int ec_header_int(const u8 *value, size_t len)
{
    if (len == 0 || len > 4) return -1;
    int v = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9') return -1;
        v = v * 10 + (value[i] - '0');
    }
    return v;
}

static int ec_on_header(nghttp2_session *session, const nghttp2_frame *frame, const u8 *name,
                        size_t namelen, const u8 *value, size_t valuelen, u8 flags, void *user)
{
    (void)flags;
    struct ec_conn *k = user;
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    struct ec_slot *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (s == NULL || s->state != EC_SLOT_ACTIVE) return 0;
    if (ec_name_is(name, namelen, ":status")) {
        s->http_status = ec_header_int(value, valuelen);
    } else if (ec_name_is(name, namelen, "grpc-status")) {
        int v = ec_header_int(value, valuelen);
        s->grpc_status = v < 0 ? EC_ST_GRPC_OTHER : v;
    } else if (ec_name_is(name, namelen, "grpc-message") && k->d->message[0] == 0) {
        size_t n = valuelen < EC_MESSAGE_BYTES - 1 ? valuelen : EC_MESSAGE_BYTES - 1;
        memcpy(k->d->message, value, n);
        k->d->message[n] = 0;
    }
    return 0;
}

static int ec_on_data(nghttp2_session *session, u8 flags, i32 stream_id, const u8 *data, size_t len,
                      void *user)
{
    (void)flags;
    (void)user;
    struct ec_slot *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s == NULL || s->state != EC_SLOT_ACTIVE || s->resp_overflow) return 0;
    if (len > EC_RESPONSE_BYTES_MAX - s->resp_len) {
        s->resp_overflow = true;
        return 0;
    }
    if (s->resp_len + len > s->resp_cap) {
        size_t cap = s->resp_cap * 2 > s->resp_len + len ? s->resp_cap * 2 : s->resp_len + len;
        if (cap < 512) cap = 512;
        u8 *p = realloc(s->resp, cap);
        if (p == NULL) {
            s->resp_overflow = true;
            return 0;
        }
        s->resp = p;
        s->resp_cap = cap;
    }
    memcpy(s->resp + s->resp_len, data, len);
    s->resp_len += len;
    return 0;
}

/* The status of a stream whose grpc-status was 0: the message must be whole and decode. */
static int ec_response_status(struct bench_dthread *d, struct ec_slot *s)
{
    struct span msg;
    size_t used = 0;
    if (s->resp_overflow) return EC_ST_BAD_RESPONSE;
    if (etcd_grpc_message_parse(s->resp, s->resp_len, EC_RESPONSE_BYTES_MAX, &msg, &used) != 1 ||
        used != s->resp_len)
        return EC_ST_BAD_RESPONSE;
    if (s->op != BENCH_REQ_GET) {
        struct etcd_put_response pr;
        return etcd_pb_put_response_decode(msg, &pr) == 0 ? 0 : EC_ST_BAD_RESPONSE;
    }
    struct etcd_kv kv;
    struct etcd_range_response rr = {.kvs = &kv, .kvs_cap = 1};
    if (etcd_pb_range_response_decode(msg, &rr) != 0) return EC_ST_BAD_RESPONSE;
    if (rr.kv_count == 0) d->gets_missing++;
    return 0;
}

static int ec_stream_status(struct ec_conn *k, struct ec_slot *s, u32 error_code)
{
    if (s->grpc_status > 0)
        return s->grpc_status <= EC_ST_GRPC_LAST ? s->grpc_status : EC_ST_GRPC_OTHER;
    if (s->grpc_status == 0) {
        if (s->http_status != 200) return EC_ST_HTTP_STATUS;
        return ec_response_status(k->d, s);
    }
    if (error_code != NGHTTP2_NO_ERROR) {
        if (k->goaway && error_code == NGHTTP2_REFUSED_STREAM) return EC_ST_GOAWAY;
        return EC_ST_RST_BASE + (int)(error_code < 14 ? error_code : 14);
    }
    if (s->http_status > 0 && s->http_status != 200) return EC_ST_HTTP_STATUS;
    return EC_ST_NO_GRPC_STATUS;
}

static int ec_on_stream_close(nghttp2_session *session, i32 stream_id, u32 error_code, void *user)
{
    struct ec_conn *k = user;
    struct ec_slot *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (s == NULL || s->state != EC_SLOT_ACTIVE) return 0;
    ec_slot_queue(k, s, ec_stream_status(k, s, error_code));
    return 0;
}

static int ec_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    struct ec_conn *k = user;
    if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0)
        k->settings_seen = true;
    if (frame->hd.type == NGHTTP2_GOAWAY) k->goaway = true;
    return 0;
}

static ssize_t ec_read_body(nghttp2_session *session, i32 stream_id, u8 *buf, size_t length,
                            u32 *data_flags, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)stream_id;
    (void)user;
    struct ec_slot *s = source->ptr;
    ASSERT(s->body_off <= s->body_len);
    size_t n = s->body_len - s->body_off < length ? s->body_len - s->body_off : length;
    memcpy(buf, s->body + s->body_off, n);
    s->body_off += n;
    if (s->body_off == s->body_len) *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* ---- socket I/O -------------------------------------------------------------------------- */

/* Asks epoll for EPOLLOUT while output waits for room in the socket, and stops asking
 * once it is sent. 0, or -1 after failing the connection. */
static int ec_conn_want_out(struct ec_conn *k, bool want)
{
    if (!k->registered || k->polled_out == want) return 0;
    struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0),
                             .data.u32 = (u32)(k - k->d->conns)};
    if (epoll_ctl(k->d->epfd, EPOLL_CTL_MOD, k->fd, &ev) != 0) {
        ec_conn_fail(k, EC_ST_CONN_LOST);
        return -1;
    }
    k->polled_out = want;
    return 0;
}

/* Sends what nghttp2 has queued: fills the output buffer, one send() per round, until
 * nothing is left or the socket is full. 0, or -1 after failing the connection. */
static int ec_conn_flush(struct ec_conn *k)
{
    for (;;) {
        if (k->out_off > 0 && k->out_off == k->out_len) k->out_off = k->out_len = 0;
        while (k->out_len - k->out_off < EC_OUT_SOFT_BYTES) {
            const u8 *p = NULL;
            ssize_t n = nghttp2_session_mem_send(k->session, &p);
            if (n < 0) goto fail;
            if (n == 0) break;
            if ((size_t)n > k->out_cap - k->out_len) {
                memmove(k->out, k->out + k->out_off, k->out_len - k->out_off);
                k->out_len -= k->out_off;
                k->out_off = 0;
                size_t cap = k->out_cap;
                while ((size_t)n > cap - k->out_len) cap *= 2;
                u8 *q = realloc(k->out, cap);
                if (q == NULL) goto fail;
                k->out = q;
                k->out_cap = cap;
            }
            memcpy(k->out + k->out_len, p, (size_t)n);
            k->out_len += (size_t)n;
        }
        ec_conn_complete(k, 0); /* a stream nghttp2 refused while sending */
        if (k->out_off == k->out_len) return ec_conn_want_out(k, false);
        ssize_t sent = send(k->fd, k->out + k->out_off, k->out_len - k->out_off, MSG_NOSIGNAL);
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return ec_conn_want_out(k, true);
        if (sent < 0 && errno == EINTR) continue;
        if (sent <= 0) goto fail;
        k->out_off += (size_t)sent;
        if (k->out_off < k->out_len) return ec_conn_want_out(k, true); /* the socket is full */
    }
fail:
    ec_conn_fail(k, k->goaway ? EC_ST_GOAWAY : EC_ST_CONN_LOST);
    return -1;
}

/* Reads what the socket holds into nghttp2; completions are called back at once. */
static void ec_conn_read(struct ec_conn *k)
{
    struct bench_dthread *d = k->d;
    for (u32 round = 0; round < EC_RECVS_PER_TURN && k->fd >= 0; round++) {
        ssize_t n = recv(k->fd, d->rbuf, EC_RECV_BYTES, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            ec_conn_fail(k, k->goaway ? EC_ST_GOAWAY : EC_ST_CONN_LOST);
            return;
        }
        u64 now_ns = bench_now_ns();
        ssize_t used = nghttp2_session_mem_recv(k->session, d->rbuf, (size_t)n);
        ec_conn_complete(k, now_ns);
        if (used < 0) {
            ec_conn_fail(k, EC_ST_CONN_LOST); /* an HTTP/2 protocol error: unusable */
            return;
        }
        if ((size_t)n < EC_RECV_BYTES) return;
    }
}

/* A session that wants neither to read nor to write is over (after a GOAWAY). */
static void ec_conn_check_over(struct ec_conn *k)
{
    if (k->fd < 0) return;
    if (nghttp2_session_want_read(k->session) || nghttp2_session_want_write(k->session)) return;
    ec_conn_fail(k, EC_ST_GOAWAY);
}

static bool ec_conn_usable(const struct ec_conn *k)
{
    return k->fd >= 0 && !k->goaway;
}

/* ---- connecting -------------------------------------------------------------------------- */

static u64 ec_ms_now(void)
{
    return bench_now_ns() / 1000000u;
}

/* A connected non-blocking TCP socket, or -1 after a message. */
static int ec_connect(const char *host, u16 port, const char *endpoint)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "keelbench: etcd %s: not a numeric IPv4 address\n", endpoint);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "keelbench: etcd %s: socket: %s\n", endpoint, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int err = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int n = poll(&p, 1, (int)EC_CONNECT_TIMEOUT_MS);
            socklen_t len = sizeof(err);
            err = n == 1 ? 0 : ETIMEDOUT;
            if (n == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        }
    }
    if (err != 0) {
        fprintf(stderr, "keelbench: etcd %s: connect: %s\n", endpoint, strerror(err));
        close(fd);
        return -1;
    }
    return fd;
}

static nghttp2_nv ec_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(u8 *)name, (u8 *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    return nv;
}

static void ec_conn_headers(struct ec_conn *k)
{
    nghttp2_nv common[5] = {ec_nv(":method", "POST"), ec_nv(":scheme", "http"),
                            ec_nv(":authority", k->endpoint),
                            ec_nv("content-type", "application/grpc"), ec_nv("te", "trailers")};
    k->nva_put[0] = k->nva_range[0] = common[0];
    k->nva_put[1] = k->nva_range[1] = common[1];
    k->nva_put[2] = ec_nv(":path", path_put);
    k->nva_range[2] = ec_nv(":path", path_range);
    for (u32 i = 2; i < 5; i++) k->nva_put[i + 1] = k->nva_range[i + 1] = common[i];
}

static int ec_session_new(struct ec_conn *k)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0) return -1;
    nghttp2_session_callbacks_set_on_header_callback(cb, ec_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, ec_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, ec_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, ec_on_frame_recv);
    int rc = nghttp2_session_client_new(&k->session, cb, k);
    nghttp2_session_callbacks_del(cb);
    if (rc != 0) return -1;
    nghttp2_settings_entry iv[2] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, EC_STREAM_WINDOW_BYTES}};
    if (nghttp2_submit_settings(k->session, NGHTTP2_FLAG_NONE, iv, 2) != 0) return -1;
    if (nghttp2_session_set_local_window_size(k->session, NGHTTP2_FLAG_NONE, 0,
                                              EC_CONN_WINDOW_BYTES) != 0)
        return -1;
    return 0;
}

/* Sends the preface and SETTINGS and waits for the server's SETTINGS. 0, or -1 after a
 * message. */
static int ec_handshake(struct ec_conn *k)
{
    u64 deadline_ms = ec_ms_now() + EC_HANDSHAKE_TIMEOUT_MS;
    while (!k->settings_seen) {
        if (ec_conn_flush(k) != 0 || k->fd < 0) break;
        u64 now_ms = ec_ms_now();
        if (now_ms >= deadline_ms) break;
        struct pollfd p = {.fd = k->fd, .events = POLLIN};
        if (k->out_off < k->out_len) p.events |= POLLOUT;
        int n = poll(&p, 1, (int)(deadline_ms - now_ms));
        if (n < 0 && errno != EINTR) break;
        if (n > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR))) ec_conn_read(k);
    }
    if (k->settings_seen && k->fd >= 0) return 0;
    fprintf(stderr,
            "keelbench: etcd %s: no HTTP/2 SETTINGS from the server within %u ms "
            "(is it etcd's client port, plain http?)\n",
            k->endpoint, EC_HANDSHAKE_TIMEOUT_MS);
    return -1;
}

static int ec_conn_alloc(struct ec_conn *k, u32 slots_len)
{
    k->slots = calloc(slots_len, sizeof(*k->slots));
    k->free = calloc(slots_len, sizeof(*k->free));
    k->queue = calloc(slots_len, sizeof(*k->queue));
    k->out_cap = EC_OUT_BYTES_INITIAL;
    k->out = malloc(k->out_cap);
    if (k->slots == NULL || k->free == NULL || k->queue == NULL || k->out == NULL) return -1;
    k->slots_len = slots_len;
    for (u32 i = 0; i < slots_len; i++) k->free[i] = slots_len - 1 - i;
    k->free_len = slots_len;
    return 0;
}

static int ec_conn_open(struct bench_dthread *d, struct ec_conn *k, u32 index)
{
    const struct bench_config *c = d->cfg;
    k->d = d;
    k->index = index;
    k->fd = -1;
    char host[48];
    u16 port = 0;
    if (bench_endpoint(c->endpoints, index, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "keelbench: etcd: bad endpoint list '%s'\n", c->endpoints);
        return -1;
    }
    snprintf(k->endpoint, sizeof(k->endpoint), "%s:%u", host, (unsigned)port);
    u32 slots_len = c->depth > BENCH_PRELOAD_DEPTH ? c->depth : BENCH_PRELOAD_DEPTH;
    if (ec_conn_alloc(k, slots_len) != 0) {
        fprintf(stderr, "keelbench: etcd %s: out of memory\n", k->endpoint);
        return -1;
    }
    ec_conn_headers(k);
    k->fd = ec_connect(host, port, k->endpoint);
    if (k->fd < 0) return -1;
    if (ec_session_new(k) != 0) {
        fprintf(stderr, "keelbench: etcd %s: nghttp2 session setup failed\n", k->endpoint);
        return -1;
    }
    return ec_handshake(k);
}

/* ---- the driver -------------------------------------------------------------------------- */

static void ec_conn_free(struct ec_conn *k)
{
    ec_conn_fail(k, EC_ST_CLOSED);
    if (k->session != NULL) nghttp2_session_del(k->session);
    for (u32 i = 0; i < k->slots_len; i++) {
        free(k->slots[i].body);
        free(k->slots[i].resp);
    }
    free(k->slots);
    free(k->free);
    free(k->queue);
    free(k->out);
}

static void etcd_close(struct bench_dthread *d)
{
    ASSERT(d != NULL);
    for (u32 i = 0; i < d->conns_len; i++) ec_conn_free(&d->conns[i]);
    free(d->conns);
    if (d->epfd >= 0) close(d->epfd);
    free(d->events);
    free(d->dirty);
    free(d->rbuf);
    free(d);
}

/* Adds an open connection to the thread's epoll set. */
static int ec_conn_register(struct bench_dthread *d, struct ec_conn *k, u32 i)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, k->fd, &ev) != 0) {
        fprintf(stderr, "keelbench: etcd %s: epoll_ctl: %s\n", k->endpoint, strerror(errno));
        return -1;
    }
    k->registered = true;
    return 0;
}

static struct bench_dthread *etcd_open(const struct bench_config *c, u32 thread, u32 conns,
                                       const u32 *conn_index, bench_done_fn done)
{
    (void)thread;
    ASSERT(conns > 0 && done != NULL);
    struct bench_dthread *d = calloc(1, sizeof(*d));
    if (d == NULL) return NULL;
    d->cfg = c;
    d->done = done;
    d->conns = calloc(conns, sizeof(*d->conns));
    d->events = calloc(conns, sizeof(*d->events));
    d->dirty = calloc(conns, sizeof(*d->dirty));
    d->rbuf = malloc(EC_RECV_BYTES);
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->conns == NULL || d->events == NULL || d->dirty == NULL || d->rbuf == NULL ||
        d->epfd < 0) {
        fprintf(stderr, "keelbench: etcd: out of memory\n");
        etcd_close(d);
        return NULL;
    }
    for (u32 i = 0; i < conns; i++) {
        d->conns_len = i + 1;
        if (ec_conn_open(d, &d->conns[i], conn_index[i]) != 0 ||
            ec_conn_register(d, &d->conns[i], i) != 0) {
            etcd_close(d);
            return NULL;
        }
    }
    return d;
}

/* The request's gRPC message in the slot's body buffer; 0, or -1 when out of memory. */
static int ec_encode(const struct bench_config *c, struct ec_slot *s, const struct bench_request *r)
{
    struct etcd_put_request put = {.key = span_make(r->key, r->key_len),
                                   .value = span_make(r->value, r->value_len)};
    struct etcd_range_request get = {.key = span_make(r->key, r->key_len),
                                     .serializable = c->serializable};
    bool is_get = r->op == BENCH_REQ_GET;
    size_t size = is_get ? etcd_pb_range_request_size(&get) : etcd_pb_put_request_size(&put);
    size_t need = ETCD_GRPC_PREFIX_BYTES + size;
    if (need > s->body_cap) {
        u8 *p = realloc(s->body, need);
        if (p == NULL) return -1;
        s->body = p;
        s->body_cap = need;
    }
    u8 *msg = s->body + ETCD_GRPC_PREFIX_BYTES;
    size_t n = is_get ? etcd_pb_range_request_encode(&get, msg, size)
                      : etcd_pb_put_request_encode(&put, msg, size);
    ASSERT(n == size);
    etcd_grpc_prefix_write(s->body, (u32)size);
    s->body_len = need;
    s->body_off = 0;
    return 0;
}

static int etcd_submit(struct bench_dthread *d, u32 conn, const struct bench_request *r, void *ctx)
{
    ASSERT(conn < d->conns_len);
    struct ec_conn *k = &d->conns[conn];
    if (!ec_conn_usable(k)) return BENCH_SUBMIT_CLOSED;
    u32 in_flight = k->slots_len - k->free_len;
    u32 streams_max =
        nghttp2_session_get_remote_settings(k->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (k->free_len == 0 || in_flight >= streams_max) return BENCH_SUBMIT_FULL;
    struct ec_slot *s = &k->slots[k->free[k->free_len - 1]];
    ASSERT(s->state == EC_SLOT_FREE);
    if (ec_encode(d->cfg, s, r) != 0) return BENCH_SUBMIT_FULL;
    s->ctx = ctx;
    s->op = (u8)r->op;
    s->http_status = s->grpc_status = -1;
    s->resp_len = 0;
    s->resp_overflow = false;
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = ec_read_body};
    const nghttp2_nv *nva = r->op == BENCH_REQ_GET ? k->nva_range : k->nva_put;
    i32 id = nghttp2_submit_request(k->session, NULL, nva, 6, &prd, s);
    if (id < 0) {
        k->goaway = true; /* stream ids used up, or nghttp2 out of memory: no new streams */
        return BENCH_SUBMIT_CLOSED;
    }
    s->state = EC_SLOT_ACTIVE;
    k->free_len--;
    if (!k->dirty) {
        ASSERT(d->dirty_len < d->conns_len);
        k->dirty = true;
        d->dirty[d->dirty_len++] = conn;
    }
    return BENCH_SUBMIT_OK;
}

/* One epoll_pwait2() over the live sockets; reads and flushes what it reports. -1 on an
 * epoll error. */
static int ec_wait(struct bench_dthread *d, u64 wait_us)
{
    struct timespec ts = {(time_t)(wait_us / 1000000u), (long)(wait_us % 1000000u) * 1000};
    int n = epoll_pwait2(d->epfd, d->events, (int)d->conns_len, &ts, NULL);
    if (n < 0) return errno == EINTR ? 0 : -1;
    for (int e = 0; e < n; e++) {
        u32 i = d->events[e].data.u32;
        ASSERT(i < d->conns_len);
        struct ec_conn *k = &d->conns[i];
        if (k->fd < 0) continue; /* failed earlier in this turn */
        if (d->events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ec_conn_read(k);
        if (k->fd >= 0) ec_conn_flush(k);
        ec_conn_check_over(k);
    }
    return 0;
}

/* Flushes the connections that had requests submitted since the last flush (a connection
 * with bytes the socket did not take waits for POLLOUT; one that read flushes at once). */
static void ec_flush_dirty(struct bench_dthread *d)
{
    for (u32 i = 0; i < d->dirty_len; i++) {
        struct ec_conn *k = &d->conns[d->dirty[i]];
        ASSERT(k->dirty);
        k->dirty = false;
        if (k->fd >= 0) ec_conn_flush(k);
    }
    d->dirty_len = 0;
}

static u32 etcd_poll(struct bench_dthread *d, u64 timeout_us)
{
    u64 start_completed = d->completed;
    u64 deadline_ns = bench_now_ns() + timeout_us * 1000u;
    for (;;) {
        ec_flush_dirty(d);
        u32 live = 0;
        for (u32 i = 0; i < d->conns_len; i++) live += d->conns[i].fd >= 0;
        if (live == 0) break;
        u64 now_ns = bench_now_ns();
        bool any = d->completed != start_completed;
        u64 wait_us = any || now_ns >= deadline_ns ? 0 : (deadline_ns - now_ns + 999) / 1000;
        if (ec_wait(d, wait_us) != 0) break;
        if (d->completed != start_completed || bench_now_ns() >= deadline_ns) break;
    }
    u32 usable = 0;
    for (u32 i = 0; i < d->conns_len; i++) usable += ec_conn_usable(&d->conns[i]);
    return usable;
}

static u32 etcd_pending(const struct bench_dthread *d, u32 conn)
{
    ASSERT(conn < d->conns_len);
    const struct ec_conn *k = &d->conns[conn];
    return k->slots_len - k->free_len;
}

static int etcd_check(const struct bench_config *c, FILE *err)
{
    if (c->shard_aware) {
        fprintf(err, "keelbench: --shard-aware is keel's option: etcd has no shards "
                     "(drop it with --system etcd)\n");
        return 1;
    }
    char host[48];
    u16 port = 0;
    if (c->endpoints == NULL || bench_endpoint(c->endpoints, 0, host, sizeof(host), &port) != 0) {
        fprintf(err, "keelbench: etcd needs --endpoints HOST:PORT[,...] (numeric IPv4), "
                     "e.g. 127.0.0.1:2379\n");
        return 1;
    }
    return 0;
}

static void etcd_report(struct bench_dthread *const *threads, u32 count, FILE *out)
{
    u64 missing = 0;
    const char *message = NULL;
    for (u32 i = 0; i < count; i++) {
        missing += threads[i]->gets_missing;
        if (message == NULL && threads[i]->message[0] != 0) message = threads[i]->message;
    }
    if (missing > 0) fprintf(out, "etcd: %llu gets found no key\n", (unsigned long long)missing);
    if (message != NULL) fprintf(out, "etcd: first grpc-message: %s\n", message);
}

const struct bench_driver bench_driver_etcd = {
    .name = "etcd",
    .check = etcd_check,
    .open = etcd_open,
    .submit = etcd_submit,
    .poll = etcd_poll,
    .pending = etcd_pending,
    .close = etcd_close,
    .status_name = etcd_status_name,
    .report = etcd_report,
};
