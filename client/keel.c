/*
 * keel.c — libkeel's connections, request table, poll loop, sync calls and routing.
 * Blocking TCP sockets with TCP_NODELAY, made non-blocking for the poll() loop; frames
 * are read as protocol.md's "Frames" says (cut whole frames off a growing buffer).
 * Output: submits encode into the connection's out buffer; only a poll sends it, so the
 * frames of one poll round leave in one send() (TCP_NODELAY makes every send a segment).
 * Polling: keel_poll_many flushes, then one poll() over every connection of every client
 * it is given; keel_poll is the one-client case.
 */
#include "client/keel_int.h"
#include "core/assert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static_assert((int)KEEL_STATUS_INTERNAL == (int)CODEC_S_INTERNAL, "mirrors codec_status");
static_assert((int)KEEL_STATUS_WRONG_SHARD == (int)CODEC_S_WRONG_SHARD, "mirrors codec_status");
static_assert((int)KEEL_STATUS_TOO_MANY_CONNECTIONS == (int)CODEC_S_TOO_MANY_CONNECTIONS,
              "mirrors codec_status");
static_assert((int)KEEL_STATUS_CORRUPT == (int)CODEC_S_CORRUPT, "mirrors codec_status");
static_assert((int)KEEL_STATUS_LEADER_CHANGED == (int)CODEC_S_LEADER_CHANGED,
              "mirrors codec_status");
static_assert((int)KEEL_STATUS_MEMBER_NOT_FOUND == (int)CODEC_S_MEMBER_NOT_FOUND,
              "mirrors codec_status");
static_assert((int)KEEL_OPCODE_ENDPOINT_STATUS == (int)CODEC_OP_ENDPOINT_STATUS,
              "mirrors codec_opcode");
static_assert((int)KEEL_OPCODE_MEMBER_LIST == (int)CODEC_OP_MEMBER_LIST, "mirrors codec_opcode");
static_assert((int)KEEL_OPCODE_SHARD_MAP == (int)CODEC_OP_SHARD_MAP, "mirrors codec_opcode");
static_assert((int)KEEL_FEATURE_MEMBER == (int)CODEC_FEATURE_MEMBER, "mirrors the feature bit");

/* ---- status text -------------------------------------------------------------------------- */

const char *keel_strerror(int status)
{
    static _Thread_local char unknown[48];
    switch (status) {
    case KEEL_STATUS_CLOSED:
        return "connection closed (outcome unknown)";
    case KEEL_STATUS_TIMEOUT:
        return "timed out waiting for the reply";
    case KEEL_STATUS_FULL:
        return "too many requests outstanding on the connection";
    case KEEL_STATUS_BAD_REPLY:
        return "reply did not decode (connection closed)";
    case KEEL_STATUS_ARG:
        return "invalid argument";
    case KEEL_STATUS_NO_MEMORY:
        return "client out of memory";
    case KEEL_STATUS_CONNECT:
        return "cannot connect";
    case KEEL_STATUS_GOAWAY:
        return "server went away before replying (not executed)";
    case KEEL_STATUS_BAD_VERSION:
        return "server speaks an unsupported protocol version";
    default:
        break;
    }
    if (status >= 0 && codec_status_name(status) != NULL) return codec_status_message(status);
    snprintf(unknown, sizeof(unknown), "unknown status %d", status);
    return unknown;
}

void keel_options_default(struct keel_options *o)
{
    ASSERT(o != NULL);
    memset(o, 0, sizeof(*o));
    o->timeout_ms = KEEL_TIMEOUT_DEF;
}

const struct keel_server_info *keel_server_info(const keel_client *c)
{
    return &c->info;
}

int keel_connection_count(const keel_client *c)
{
    int n = 0;
    for (u16 i = 0; i < c->conns_len; i++) n += c->conns[i].fd >= 0;
    return n;
}

uint32_t keel_pending(const keel_client *c)
{
    return c->pending;
}

static i64 now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (i64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- sockets ------------------------------------------------------------------------------ */

static int tcp_open(u32 host_be, u16 port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = host_be;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void pend_fail(keel_client *c, u32 slot, int status);

/* Closes connection i; its pending requests are called back with status. */
static void conn_drop(keel_client *c, u16 i, int status)
{
    struct keel_conn *k = &c->conns[i];
    if (k->fd < 0) return;
    close(k->fd);
    k->fd = -1;
    k->out.len = 0;
    k->out_sent = 0;
    k->in_len = 0;
    for (u32 s = 0; s < c->pend_cap; s++)
        if (c->pend[s].id != 0 && c->pend[s].conn == i) pend_fail(c, s, status);
    ASSERT(k->in_flight == 0);
}

static int conn_flush(keel_client *c, u16 i)
{
    struct keel_conn *k = &c->conns[i];
    while (k->fd >= 0 && k->out_sent < k->out.len) {
        ssize_t n = send(k->fd, k->out.ptr + k->out_sent, k->out.len - k->out_sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            conn_drop(c, i, KEEL_STATUS_CLOSED);
            return KEEL_STATUS_CLOSED;
        }
        k->out_sent += (size_t)n;
    }
    if (k->out_sent == k->out.len) {
        k->out.len = 0;
        k->out_sent = 0;
    }
    return 0;
}

/* ---- pending table ------------------------------------------------------------------------ */

static void pend_finish(keel_client *c, u32 slot)
{
    struct keel_pend *p = &c->pend[slot];
    ASSERT(p->id != 0);
    ASSERT(c->conns[p->conn].in_flight > 0);
    c->conns[p->conn].in_flight--;
    p->id = 0;
    c->free_slots[c->free_len++] = slot;
    c->pending--;
}

static void pend_fail(keel_client *c, u32 slot, int status)
{
    struct keel_pend p = c->pend[slot];
    struct keel_result res;
    memset(&res, 0, sizeof(res));
    res.opcode = p.opcode;
    res.header.shard = CODEC_SHARD_NONE;
    pend_finish(c, slot);
    c->callbacks_run++;
    if (p.cb != NULL) p.cb(p.ctx, p.id, status, &res);
}

static int pend_alloc(keel_client *c, u16 conn, u32 *slot_out)
{
    u32 cap = c->opt.in_flight_max;
    if (c->conns[conn].fd < 0) return KEEL_STATUS_CLOSED;
    if (c->conns[conn].in_flight >= cap || c->free_len == 0) return KEEL_STATUS_FULL;
    *slot_out = c->free_slots[--c->free_len];
    return 0;
}

/* ---- routing ------------------------------------------------------------------------------ */

static int key_cmp(const u8 *a, size_t al, const u8 *b, size_t bl)
{
    int r = memcmp(a, b, KEEL_MIN(al, bl));
    if (r != 0) return r;
    return al < bl ? -1 : al > bl;
}

int keel_route_find(const keel_client *c, const u8 *key, size_t len)
{
    for (u16 i = 0; i < c->routes_len; i++) {
        const struct keel_route *r = &c->routes[i];
        if (r->start_len > 0 && key_cmp(key, len, r->start_key, r->start_len) < 0) continue;
        if (r->end_len > 0 && key_cmp(key, len, r->end_key, r->end_len) >= 0) continue;
        return i;
    }
    return -1;
}

/* The route for [key, range_end): a shard's when one shard owns it all, else -1 (router). */
static int route_range(const keel_client *c, struct keel_bytes key, struct keel_bytes end)
{
    if (c->routes_len == 0 || key.len == 0) return -1;
    int i = keel_route_find(c, key.ptr, key.len);
    if (i < 0) return -1;
    const struct keel_route *r = &c->routes[i];
    if (end.len > 0) {
        bool all = end.len == 1 && ((const u8 *)end.ptr)[0] == 0;
        if (all && r->end_len > 0) return -1;
        if (!all && r->end_len > 0 && key_cmp(end.ptr, end.len, r->end_key, r->end_len) > 0)
            return -1;
    }
    return i;
}

static int route_txn(const keel_client *c, const struct keel_txn_args *a)
{
    /* The first key named decides; the server refuses a Txn over several shards. */
    if (a->compares_len > 0) return route_range(c, a->compares[0].key, a->compares[0].range_end);
    const struct keel_op *op = a->success_len > 0 ? a->success : a->failure;
    if (op == NULL || (a->success_len == 0 && a->failure_len == 0)) return -1;
    if (op->kind == KEEL_OP_PUT) return route_range(c, op->u.put.key, (struct keel_bytes){0});
    if (op->kind == KEEL_OP_RANGE) return route_range(c, op->u.range.key, op->u.range.range_end);
    return route_range(c, op->u.del.key, op->u.del.range_end);
}

/* The route index of a request, or -1: the router connection. */
static int route(const keel_client *c, u16 opcode, const void *args)
{
    switch (opcode) {
    case CODEC_OP_PUT: {
        const struct keel_put_args *a = args;
        return route_range(c, a->key, (struct keel_bytes){0});
    }
    case CODEC_OP_RANGE: {
        const struct keel_range_args *a = args;
        return route_range(c, a->key, a->range_end);
    }
    case CODEC_OP_DELETE_RANGE: {
        const struct keel_delete_args *a = args;
        return route_range(c, a->key, a->range_end);
    }
    case CODEC_OP_TXN:
        return route_txn(c, args);
    case CODEC_OP_COMPACT: {
        const struct keel_compact_args *a = args;
        for (u16 i = 0; i < c->routes_len; i++)
            if (c->routes[i].shard_id == a->shard) return i;
        return -1;
    }
    default:
        return -1;
    }
}

/* ---- submit ------------------------------------------------------------------------------- */

static void sync_done(void *ctx, uint64_t id, int status, const struct keel_result *res);

static int submit_on(keel_client *c, u16 conn, u16 opcode, const void *args, keel_callback cb,
                     void *ctx, u64 *id_out)
{
    u32 slot;
    int rc = pend_alloc(c, conn, &slot);
    if (rc != 0) return rc;
    u64 id = (++c->generation << KEEL_SLOT_BITS) | (slot + 1);
    rc = keel_msg_encode(c, &c->conns[conn].out, opcode, id, args);
    if (rc != 0) {
        c->free_slots[c->free_len++] = slot;
        return rc;
    }
    c->pend[slot] =
        (struct keel_pend){.id = id, .cb = cb, .ctx = ctx, .opcode = opcode, .conn = conn};
    c->conns[conn].in_flight++;
    c->pending++;
    if (id_out != NULL) *id_out = id;
    return 0;
}

int keel_submit_on(keel_client *c, u16 conn, u16 opcode, const void *args, keel_callback cb,
                   void *ctx)
{
    return submit_on(c, conn, opcode, args, cb, ctx, NULL);
}

/* The connection of a request; KEEL_STATUS_FULL (async) while its shard moves. */
static int submit_conn(keel_client *c, u16 opcode, const void *args, bool sync)
{
    int ri = route(c, opcode, args);
    if (ri < 0) return 0;
    struct keel_route *r = &c->routes[ri];
    if (r->moving) keel_routes_settle(c); /* moves it if drained and outside callbacks */
    if (r->moving) return sync ? 0 : KEEL_STATUS_FULL;
    return r->conn != 0 && c->conns[r->conn].fd < 0 ? 0 : r->conn; /* link lost: router */
}

static int submit(keel_client *c, u16 opcode, const void *args, keel_callback cb, void *ctx,
                  u64 *id_out)
{
    bool no_args = opcode == CODEC_OP_STATUS || opcode == CODEC_OP_SHARD_MAP ||
                   opcode == CODEC_OP_ENDPOINT_STATUS;
    if (c == NULL || (args == NULL && !no_args)) return KEEL_STATUS_ARG;
    int conn = submit_conn(c, opcode, args, cb == sync_done);
    if (conn < 0) return conn;
    return submit_on(c, (u16)conn, opcode, args, cb, ctx, id_out);
}

int keel_submit_put(keel_client *c, const struct keel_put_args *a, keel_callback cb, void *ctx,
                    uint64_t *request_id)
{
    return submit(c, CODEC_OP_PUT, a, cb, ctx, request_id);
}

int keel_submit_get(keel_client *c, const struct keel_range_args *a, keel_callback cb, void *ctx,
                    uint64_t *request_id)
{
    return submit(c, CODEC_OP_RANGE, a, cb, ctx, request_id);
}

int keel_submit_delete(keel_client *c, const struct keel_delete_args *a, keel_callback cb,
                       void *ctx, uint64_t *request_id)
{
    return submit(c, CODEC_OP_DELETE_RANGE, a, cb, ctx, request_id);
}

int keel_submit_txn(keel_client *c, const struct keel_txn_args *a, keel_callback cb, void *ctx,
                    uint64_t *request_id)
{
    return submit(c, CODEC_OP_TXN, a, cb, ctx, request_id);
}

int keel_submit_compact(keel_client *c, const struct keel_compact_args *a, keel_callback cb,
                        void *ctx, uint64_t *request_id)
{
    return submit(c, CODEC_OP_COMPACT, a, cb, ctx, request_id);
}

int keel_submit_status(keel_client *c, keel_callback cb, void *ctx, uint64_t *request_id)
{
    return submit(c, CODEC_OP_STATUS, NULL, cb, ctx, request_id);
}

int keel_submit_shard_map(keel_client *c, keel_callback cb, void *ctx, uint64_t *request_id)
{
    return submit(c, CODEC_OP_SHARD_MAP, NULL, cb, ctx, request_id);
}

/* ---- receive ------------------------------------------------------------------------------ */

static void hello_apply(keel_client *c, const struct codec_hello_reply *h, u64 member_id)
{
    struct keel_server_info *in = &c->info;
    in->version = h->version;
    in->features = h->features;
    in->cluster_id = h->cluster_id;
    in->shard_count = h->shard_count;
    in->shard_map_version = h->shard_map_version;
    in->frame_size_max = KEEL_MIN(h->frame_size_max, CODEC_FRAME_SIZE_MAX);
    in->reply_frame_size_max = KEEL_MIN(h->reply_frame_size_max, CODEC_REPLY_FRAME_SIZE_MAX);
    in->key_size_max = KEEL_MIN(h->key_size_max, CODEC_KEY_SIZE_MAX);
    in->value_size_max = KEEL_MIN(h->value_size_max, CODEC_VALUE_SIZE_MAX);
    in->txn_ops_max = KEEL_MIN(h->txn_ops_max, CODEC_TXN_OPS_MAX);
    in->in_flight_max = h->in_flight_max;
    in->watches_max = h->watches_max;
    in->member_id = member_id;
    if (c->ep_cur < c->eps_len) c->eps[c->ep_cur].member_id = member_id;
}

/* A HELLO reply on connection i: the member it names, and the router's limits. */
static void hello_seen(keel_client *c, u16 i, const struct codec_reply *r)
{
    struct keel_conn *k = &c->conns[i];
    k->member_id = r->header.member_id;
    for (u16 e = 0; e < c->eps_len; e++)
        if (c->eps[e].host_be == k->host_be && c->eps[e].port == k->port)
            c->eps[e].member_id = k->member_id;
    if (i == 0) hello_apply(c, &r->body.hello_reply, r->header.member_id);
}

/* Handles one reply frame of connection i; <0 when the connection must close. */
static int reply_handle(keel_client *c, u16 i, const struct codec_frame *f)
{
    if (f->opcode == CODEC_OP_GOAWAY && f->request_id == 0) return KEEL_STATUS_GOAWAY;
    u64 slot = (f->request_id & ((UINT64_C(1) << KEEL_SLOT_BITS) - 1)) - 1;
    if (slot >= c->pend_cap || c->pend[slot].id != f->request_id) return KEEL_STATUS_BAD_REPLY;
    struct keel_pend p = c->pend[slot];
    if (p.conn != i || p.opcode != f->opcode) return KEEL_STATUS_BAD_REPLY;
    void *mem = NULL;
    const u8 *copy = keel_mem_copy(&mem, f->body.ptr, f->body.len);
    if (copy == NULL) return KEEL_STATUS_NO_MEMORY;
    struct codec_frame fc = *f;
    fc.body = span_make(copy, f->body.len);
    struct codec_reply r;
    struct keel_result res;
    int rc = codec_reply_decode(&fc, &r);
    if (rc == 0) rc = keel_msg_decode(&fc, &r, &res, &mem);
    if (rc != 0) {
        keel_mem_free(mem);
        return rc == KEEL_STATUS_NO_MEMORY ? rc : KEEL_STATUS_BAD_REPLY;
    }
    if (r.header.status == CODEC_S_WRONG_SHARD && c->opt.shard_aware) c->map_stale = true;
    if (f->opcode == CODEC_OP_HELLO && r.header.status == CODEC_S_OK) hello_seen(c, i, &r);
    if (i != 0 && f->opcode != CODEC_OP_HELLO)
        keel_route_hint(c, i, r.header.status,
                        r.header.status != CODEC_S_OK ? r.body.error_body.detail : 0,
                        r.header.member_id);
    pend_finish(c, (u32)slot);
    c->callbacks_run++;
    if (p.cb != NULL) p.cb(p.ctx, p.id, r.header.status, &res);
    if (p.keep_mem) {
        keel_mem_free(c->sync_mem);
        c->sync_mem = mem;
    } else {
        keel_mem_free(mem);
    }
    return 0;
}

/* Reads what connection i has and handles every whole frame; returns callbacks run. */
static int conn_read(keel_client *c, u16 i)
{
    struct keel_conn *k = &c->conns[i];
    if (k->in_cap - k->in_len < 65536) {
        size_t cap = KEEL_MAX(k->in_cap * 2, k->in_len + 65536);
        u8 *p = realloc(k->in, cap);
        if (p == NULL) return KEEL_STATUS_NO_MEMORY;
        k->in = p;
        k->in_cap = cap;
    }
    ssize_t n = recv(k->fd, k->in + k->in_len, k->in_cap - k->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    if (n <= 0) {
        conn_drop(c, i, KEEL_STATUS_CLOSED);
        return 0;
    }
    k->in_len += (size_t)n;
    size_t off = 0;
    int done = 0;
    c->dispatching++; /* callbacks may run: no route moves, no connection closes here */
    while (k->fd >= 0) {
        struct codec_frame f;
        size_t size;
        struct span in = span_make(k->in + off, k->in_len - off);
        int rc = codec_frame_decode(in, c->info.reply_frame_size_max, &f, &size);
        if (rc == CODEC_NEED_MORE) break;
        if (rc == 0) rc = reply_handle(c, i, &f);
        if (rc != 0) {
            conn_drop(c, i, rc == KEEL_STATUS_GOAWAY ? rc : KEEL_STATUS_CLOSED);
            c->dispatching--;
            return done;
        }
        off += size;
        done++;
    }
    c->dispatching--;
    memmove(k->in, k->in + off, k->in_len - off);
    k->in_len -= off;
    return done;
}

/* One poll() entry's connection: the client's index in the caller's array and its conn. */
struct poll_owner {
    u32 client;
    u16 conn;
};

/* Callbacks run so far by every client of the array (a callback never closes a client). */
static u64 poll_callbacks(keel_client *const *clients, int count)
{
    u64 n = 0;
    for (int i = 0; i < count; i++)
        if (clients[i] != NULL) n += clients[i]->callbacks_run;
    return n;
}

/* Open connections of every client: an upper bound on the entries poll_prepare makes. */
static size_t poll_open(keel_client *const *clients, int count)
{
    size_t n = 0;
    for (int i = 0; i < count; i++)
        if (clients[i] != NULL) n += (size_t)keel_connection_count(clients[i]);
    return n;
}

/* Sends every connection's queued frames (one send per connection unless the socket is
 * full), then fills pfd/own with the connections still open; returns their number. */
static size_t poll_prepare(keel_client *const *clients, int count, struct pollfd *pfd,
                           struct poll_owner *own, size_t cap)
{
    size_t n = 0;
    for (int ci = 0; ci < count; ci++) {
        keel_client *c = clients[ci];
        if (c == NULL) continue;
        for (u16 i = 0; i < c->conns_len; i++) {
            conn_flush(c, i);
            if (c->conns[i].fd < 0) continue;
            ASSERT(n < cap);
            pfd[n] = (struct pollfd){.fd = c->conns[i].fd, .events = POLLIN};
            if (c->conns[i].out.len > 0) pfd[n].events |= POLLOUT;
            own[n++] = (struct poll_owner){.client = (u32)ci, .conn = i};
        }
    }
    return n;
}

/* Sends more where the socket has room again, reads and dispatches where replies wait. */
static void poll_dispatch(keel_client *const *clients, const struct pollfd *pfd,
                          const struct poll_owner *own, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        keel_client *c = clients[own[j].client];
        u16 i = own[j].conn;
        ASSERT(i < c->conns_len);
        if (pfd[j].revents & POLLOUT) conn_flush(c, i);
        if ((pfd[j].revents & (POLLIN | POLLHUP | POLLERR)) && c->conns[i].fd >= 0) conn_read(c, i);
    }
}

#define KEEL_POLL_STACK 256 /* poll entries on the stack; more are malloc'd per call */

int keel_poll_many(keel_client *const *clients, int count, int timeout_ms)
{
    return keel_poll_many_us(clients, count, timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000);
}

int keel_poll_many_us(keel_client *const *clients, int count, int64_t timeout_us)
{
    if (count < 0 || (clients == NULL && count > 0)) return KEEL_STATUS_ARG;
    for (int i = 0; i < count; i++) {
        if (clients[i] == NULL) continue;
        keel_routes_settle(clients[i]); /* shards whose connections drained move now */
        keel_map_poll(clients[i]);
    }
    u64 before = poll_callbacks(clients, count);
    size_t cap = poll_open(clients, count);
    struct pollfd pfd_stack[KEEL_POLL_STACK];
    struct poll_owner own_stack[KEEL_POLL_STACK];
    struct pollfd *pfd = pfd_stack;
    struct poll_owner *own = own_stack;
    if (cap > KEEL_POLL_STACK) {
        pfd = malloc(cap * sizeof(*pfd));
        own = malloc(cap * sizeof(*own));
        if (pfd == NULL || own == NULL) {
            free(pfd);
            free(own);
            return KEEL_STATUS_NO_MEMORY;
        }
    }
    size_t n = poll_prepare(clients, count, pfd, own, cap);
    int rc = n == 0 ? KEEL_STATUS_CLOSED : 0;
    struct timespec ts = {.tv_sec = timeout_us / 1000000, .tv_nsec = (timeout_us % 1000000) * 1000};
    if (n > 0 && ppoll(pfd, (nfds_t)n, timeout_us < 0 ? NULL : &ts, NULL) > 0)
        poll_dispatch(clients, pfd, own, n);
    if (pfd != pfd_stack) {
        free(pfd);
        free(own);
    }
    if (rc != 0) return rc;
    u64 run = poll_callbacks(clients, count) - before;
    return run > INT32_MAX ? INT32_MAX : (int)run;
}

int keel_poll(keel_client *c, int timeout_ms)
{
    if (c == NULL) return KEEL_STATUS_ARG;
    return keel_poll_many(&c, 1, timeout_ms);
}

/* ---- sync calls --------------------------------------------------------------------------- */

struct sync_wait {
    bool done;
    int status;
    struct keel_result *out;
};

static void sync_done(void *ctx, uint64_t id, int status, const struct keel_result *res)
{
    (void)id;
    struct sync_wait *w = ctx;
    w->done = true;
    w->status = status;
    if (w->out != NULL) *w->out = *res;
}

void keel_release(keel_client *c)
{
    if (c == NULL) return;
    keel_mem_free(c->sync_mem);
    c->sync_mem = NULL;
}

static int map_refresh(keel_client *c);
static void hello_apply(keel_client *c, const struct codec_hello_reply *h, u64 member_id);

/* Submits on conn (or routed when conn < 0) and polls until the reply or the timeout. The
 * result's memory is kept: sync_done copies the struct, the block moves to c->sync_mem. */
int keel_sync_call(keel_client *c, int conn, u16 opcode, const void *args, struct keel_result *out)
{
    if (c == NULL || out == NULL) return KEEL_STATUS_ARG;
    keel_release(c);
    if (c->map_stale && !c->map_inflight && conn < 0) map_refresh(c);
    if (conn < 0) keel_routes_settle(c);
    memset(out, 0, sizeof(*out));
    struct sync_wait w = {.out = out};
    u64 id;
    int rc = conn < 0 ? submit(c, opcode, args, sync_done, &w, &id)
                      : submit_on(c, (u16)conn, opcode, args, sync_done, &w, &id);
    if (rc != 0) return rc;
    c->pend[(id & ((UINT64_C(1) << KEEL_SLOT_BITS) - 1)) - 1].keep_mem = true;
    i64 deadline = now_ms() + c->opt.timeout_ms;
    while (!w.done) {
        i64 left = deadline - now_ms();
        if (left <= 0) break;
        if (keel_poll(c, (int)left) < 0 && !w.done) break;
    }
    if (!w.done) {
        u32 slot = (u32)((id & ((UINT64_C(1) << KEEL_SLOT_BITS) - 1)) - 1);
        if (c->pend[slot].id == id) {
            c->pend[slot].cb = NULL; /* a late reply is dropped */
            c->pend[slot].keep_mem = false;
        }
        memset(out, 0, sizeof(*out));
        return KEEL_STATUS_TIMEOUT;
    }
    return w.status;
}

int keel_put(keel_client *c, const struct keel_put_args *a, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_PUT, a, out);
}

int keel_get(keel_client *c, const struct keel_range_args *a, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_RANGE, a, out);
}

int keel_delete(keel_client *c, const struct keel_delete_args *a, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_DELETE_RANGE, a, out);
}

int keel_txn(keel_client *c, const struct keel_txn_args *a, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_TXN, a, out);
}

int keel_compact(keel_client *c, const struct keel_compact_args *a, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_COMPACT, a, out);
}

int keel_status(keel_client *c, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_STATUS, NULL, out);
}

int keel_shard_map(keel_client *c, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_SHARD_MAP, NULL, out);
}

/* ---- connect ------------------------------------------------------------------------------ */

static void routes_free(keel_client *c)
{
    for (u16 i = 0; i < c->routes_len; i++) {
        free(c->routes[i].start_key);
        free(c->routes[i].end_key);
    }
    free(c->routes);
    c->routes = NULL;
    c->routes_len = 0;
}

u8 *keel_mem_dup(const u8 *p, size_t n)
{
    u8 *d = malloc(n ? n : 1);
    if (d != NULL && n > 0) memcpy(d, p, n);
    return d;
}

/* Fetches the shard map on the router connection and gives every shard its connection (a
 * shard with requests in flight keeps its own until they finish: keel_routes_settle). */
static int map_refresh(keel_client *c)
{
    struct keel_result res;
    c->map_stale = false;
    int rc = keel_sync_call(c, 0, CODEC_OP_SHARD_MAP, NULL, &res);
    if (rc == 0) rc = keel_routes_install(c, &res.u.shard_map);
    keel_release(c); /* the map is gone from here on */
    if (rc == 0) keel_routes_settle(c);
    return rc;
}

static int hello(keel_client *c, u16 i)
{
    struct keel_result res;
    static const int no_args = 0; /* HELLO's body comes from the codec constants */
    return keel_sync_call(c, i, CODEC_OP_HELLO, &no_args, &res);
}

/* HELLO on connection i, waiting on that connection alone (no other callback runs). */
static int hello_on(keel_client *c, u16 i)
{
    static const int no_args = 0;
    struct sync_wait w = {0};
    int rc = submit_on(c, i, CODEC_OP_HELLO, &no_args, sync_done, &w, NULL);
    if (rc != 0) return rc;
    i64 deadline = now_ms() + c->opt.timeout_ms;
    while (!w.done && c->conns[i].fd >= 0) { /* bounded by the deadline */
        i64 left = deadline - now_ms();
        if (left <= 0) break;
        conn_flush(c, i);
        if (c->conns[i].fd < 0) break;
        struct pollfd p = {.fd = c->conns[i].fd, .events = POLLIN};
        if (c->conns[i].out.len > 0) p.events |= POLLOUT;
        if (poll(&p, 1, (int)left) <= 0) continue;
        if (p.revents & POLLOUT) conn_flush(c, i);
        if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && c->conns[i].fd >= 0) conn_read(c, i);
    }
    if (!w.done) conn_drop(c, i, KEEL_STATUS_TIMEOUT); /* calls sync_done */
    return w.status;
}

/* A slot for a new connection: a closed one no route names, else a new one; 0 if none. */
static u16 conn_slot(const keel_client *c)
{
    for (u16 i = 1; i < c->conns_len; i++) {
        if (c->conns[i].fd >= 0) continue;
        bool used = false;
        for (u16 r = 0; r < c->routes_len; r++) used = used || c->routes[r].conn == i;
        if (!used) return i;
    }
    return c->conns_len < KEEL_CONNS_MAX ? c->conns_len : 0;
}

u16 keel_conn_for(keel_client *c, u32 host_be, u16 port)
{
    for (u16 i = 1; i < c->conns_len; i++)
        if (c->conns[i].port == port && c->conns[i].host_be == host_be && c->conns[i].fd >= 0)
            return i;
    u16 i = conn_slot(c);
    if (i == 0) return 0;
    int fd = tcp_open(host_be, port);
    if (fd < 0) return 0;
    if (i == c->conns_len) c->conns_len++;
    struct keel_conn *k = &c->conns[i];
    k->fd = fd;
    k->host_be = host_be;
    k->port = port;
    k->member_id = 0;
    ASSERT(k->in_flight == 0 && k->in_len == 0);
    if (k->out.ptr == NULL) buf_init_dynamic(&k->out, 4096); /* after a move */
    if (hello_on(c, i) != 0) {
        conn_drop(c, i, KEEL_STATUS_CLOSED);
        return 0;
    }
    return i;
}

void keel_conn_close_idle(keel_client *c, u16 k)
{
    ASSERT(k > 0 && k < c->conns_len);
    ASSERT(c->conns[k].in_flight == 0);
    if (c->dispatching > 0) return; /* conn_read may be reading it: settle sweeps later */
    conn_drop(c, k, KEEL_STATUS_CLOSED);
}

static void info_defaults(struct keel_server_info *in)
{
    memset(in, 0, sizeof(*in));
    in->frame_size_max = CODEC_FRAME_SIZE_MAX;
    in->reply_frame_size_max = CODEC_REPLY_FRAME_SIZE_MAX;
    in->key_size_max = CODEC_KEY_SIZE_MAX;
    in->value_size_max = CODEC_VALUE_SIZE_MAX;
    in->txn_ops_max = CODEC_TXN_OPS_MAX;
    in->in_flight_max = CODEC_IN_FLIGHT_MAX;
}

/* Sizes the pending table for conns_max connections of cap requests; none may be pending. */
static int pend_size(keel_client *c, u32 cap, u32 conns_max)
{
    ASSERT(c->pending == 0);
    u32 n = cap * conns_max;
    struct keel_pend *p = calloc(n, sizeof(*p));
    u32 *f = calloc(n, sizeof(*f));
    if (p == NULL || f == NULL || n >= (1u << KEEL_SLOT_BITS)) {
        free(p);
        free(f);
        return KEEL_STATUS_NO_MEMORY;
    }
    free(c->pend);
    free(c->free_slots);
    c->pend = p;
    c->free_slots = f;
    c->pend_cap = n;
    c->free_len = n;
    for (u32 i = 0; i < n; i++) f[i] = n - 1 - i;
    c->opt.in_flight_max = cap;
    return 0;
}

/* Parses "a.b.c.d:port[,a.b.c.d:port...]" into c->eps; 0 or KEEL_STATUS_ARG. */
static int endpoints_parse(keel_client *c, const char *endpoints)
{
    const char *p = endpoints;
    c->eps_len = 0;
    /* Bounded by the string, and by KEEL_ENDPOINTS_MAX entries (more is an error). */
    while (*p != 0) {
        size_t len = strcspn(p, ",");
        if (c->eps_len == KEEL_ENDPOINTS_MAX) return KEEL_STATUS_ARG;
        struct keel_endpoint *e = &c->eps[c->eps_len];
        if (keel_addr_parse(p, len, &e->host_be, &e->port) != 0) return KEEL_STATUS_ARG;
        e->member_id = 0;
        c->eps_len++;
        p += len;
        if (*p == ',') p++;
    }
    return c->eps_len > 0 ? 0 : KEEL_STATUS_ARG;
}

/* Opens the router connection to endpoint i; 0 or KEEL_STATUS_CONNECT. */
static int router_open(keel_client *c, u16 i)
{
    ASSERT(i < c->eps_len);
    ASSERT(c->conns_len == 0 || c->conns[0].fd < 0);
    int fd = tcp_open(c->eps[i].host_be, c->eps[i].port);
    if (fd < 0) return KEEL_STATUS_CONNECT;
    c->host_be = c->eps[i].host_be;
    c->conns[0].fd = fd;
    c->conns[0].host_be = c->eps[i].host_be;
    c->conns[0].port = c->eps[i].port;
    c->conns_len = 1;
    c->ep_cur = i;
    return 0;
}

/* Tries the endpoints in order; 0 and the router connection open, or an error. */
static int connect_router(keel_client *c, const char *endpoints)
{
    int rc = endpoints_parse(c, endpoints);
    if (rc != 0) return rc;
    c->ep_cur = c->eps_len;
    for (u16 i = 0; i < c->eps_len; i++)
        if (router_open(c, i) == 0) return 0;
    return KEEL_STATUS_CONNECT;
}

/* The endpoint index of host:port, added to the list when it is not there (a member learned
 * from MEMBER_LIST); eps_len when the list is full. */
static u16 endpoint_index(keel_client *c, u32 host_be, u16 port)
{
    for (u16 i = 0; i < c->eps_len; i++)
        if (c->eps[i].host_be == host_be && c->eps[i].port == port) return i;
    if (c->eps_len == KEEL_ENDPOINTS_MAX) return c->eps_len;
    c->eps[c->eps_len] = (struct keel_endpoint){.host_be = host_be, .port = port};
    return c->eps_len++;
}

int keel_move(keel_client *c, u32 host_be, u16 port)
{
    ASSERT(c != NULL);
    ASSERT(c->pending == 0);
    keel_release(c);
    for (u16 i = 0; i < c->conns_len; i++) conn_drop(c, i, KEEL_STATUS_CLOSED);
    routes_free(c);
    c->conns_len = 0;
    c->map_stale = false;
    u16 e = endpoint_index(c, host_be, port);
    if (e == c->eps_len) return KEEL_STATUS_CONNECT;
    int rc = router_open(c, e);
    if (rc == 0) rc = hello(c, 0);
    if (rc == 0 && c->info.version != CODEC_PROTOCOL_VERSION) rc = KEEL_STATUS_BAD_VERSION;
    if (rc == 0 && c->opt.shard_aware && c->info.shard_count > 1) rc = map_refresh(c);
    if (rc != 0) {
        for (u16 i = 0; i < c->conns_len; i++) conn_drop(c, i, KEEL_STATUS_CLOSED);
        c->conns_len = 0;
    }
    return rc;
}

int keel_endpoint_current(const keel_client *c, char *buf, size_t cap)
{
    if (c == NULL || buf == NULL || c->ep_cur >= c->eps_len) return KEEL_STATUS_ARG;
    char host[INET_ADDRSTRLEN];
    struct in_addr a = {.s_addr = c->eps[c->ep_cur].host_be};
    inet_ntop(AF_INET, &a, host, sizeof(host));
    int n = snprintf(buf, cap, "%s:%u", host, (unsigned)c->eps[c->ep_cur].port);
    return n < 0 || (size_t)n >= cap ? KEEL_STATUS_ARG : n;
}

static int connect_steps(keel_client *c, const char *endpoints)
{
    u32 wanted = c->opt.in_flight_max; /* pend_size overwrites it */
    int rc = connect_router(c, endpoints);
    if (rc != 0) return rc;
    rc = pend_size(c, 1, 1);
    if (rc == 0) rc = hello(c, 0);
    if (rc != 0) return rc;
    if (c->info.version != CODEC_PROTOCOL_VERSION) return KEEL_STATUS_BAD_VERSION;
    u32 cap = wanted ? wanted : c->info.in_flight_max;
    cap = KEEL_MAX(1u, KEEL_MIN(cap, c->info.in_flight_max));
    bool shards = c->opt.shard_aware && c->info.shard_count > 1;
    /* shard connections, plus one for a HELLO probe (keel_route.c) */
    rc = pend_size(c, cap, shards ? 2u + c->info.shard_count : 1u);
    if (rc == 0 && shards) rc = map_refresh(c);
    return rc;
}

int keel_connect(const char *endpoints, const struct keel_options *options, keel_client **out)
{
    if (endpoints == NULL || out == NULL) return KEEL_STATUS_ARG;
    *out = NULL;
    keel_client *c = calloc(1, sizeof(*c));
    if (c == NULL) return KEEL_STATUS_NO_MEMORY;
    if (options != NULL)
        c->opt = *options;
    else
        keel_options_default(&c->opt);
    if (c->opt.timeout_ms <= 0) c->opt.timeout_ms = KEEL_TIMEOUT_DEF;
    info_defaults(&c->info);
    for (u16 i = 0; i < KEEL_CONNS_MAX; i++) c->conns[i].fd = -1;
    buf_init_dynamic(&c->conns[0].out, 4096);
    for (int i = 0; i < 3; i++) buf_init_dynamic(&c->scratch[i], 1024);
    int rc = connect_steps(c, endpoints);
    if (rc != 0) {
        keel_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void keel_close(keel_client *c)
{
    if (c == NULL) return;
    for (u16 i = 0; i < c->conns_len; i++) conn_drop(c, i, KEEL_STATUS_CLOSED);
    for (u16 i = 0; i < KEEL_CONNS_MAX; i++) {
        if (c->conns[i].out.ptr != NULL) buf_free(&c->conns[i].out);
        free(c->conns[i].in);
    }
    for (int i = 0; i < 3; i++) buf_free(&c->scratch[i]);
    routes_free(c);
    keel_release(c);
    free(c->members);
    free(c->pend);
    free(c->free_slots);
    free(c);
}
