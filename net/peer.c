/*
 * peer.c — the peer transport: hello codec, the peer table, outbound connections (dial, hello,
 * batched sends, failure and backoff), flush, tick and life. Inbound connections are in
 * net/peer_in.c. The contract is in net/peer.h, the private state in net/peer_int.h.
 */
#include "net/peer.h"

#include "core/assert.h"
#include "core/buf.h"
#include "net/peer_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_OUT_OF(ptr, member) \
    ((struct peer_out *)(void *)((char *)(ptr)-offsetof(struct peer_out, member)))

#define PEER_LISTEN_BACKLOG  64
#define PEER_DESTROY_ROUNDS  200 /* x PEER_DESTROY_WAIT_MS: about two seconds at most */
#define PEER_DESTROY_WAIT_MS 10

static const u8 peer_magic[8] = {'K', 'E', 'E', 'L', 'P', 'E', 'E', 'R'};

static_assert(PEER_HELLO_SIZE == 8 + 2 + 2 + 4 + 8 + 8 + 8, "hello byte table");
static_assert(PEER_STAGE_BYTES > PEER_HELLO_SIZE + PEER_FRAME_HEADER_SIZE, "stage holds a hello");

static void peer_out_connect_done(struct loop_completion *lc, int res, u32 flags);
static void peer_out_send_done(struct loop_completion *lc, int res, u32 flags);
static void peer_out_recv_done(struct loop_completion *lc, int res, u32 flags);
static void peer_out_cancel_done(struct loop_completion *lc, int res, u32 flags);

/* ---- errors, config, hello ------------------------------------------------------------------ */

const char *peer_err_str(int err)
{
    switch (err) {
    case PEER_OK:
        return "ok";
    case PEER_EUNKNOWN:
        return "unknown member";
    case PEER_ENOTCONN:
        return "member not connected";
    case PEER_EFULL:
        return "queue or table full";
    case PEER_ETOO_LARGE:
        return "message larger than message_size_max";
    case PEER_EEXISTS:
        return "member already in the table";
    case PEER_EINVALID:
        return "invalid member id (0 or this member's own)";
    case PEER_ENOMEM:
        return "out of memory";
    default:
        return "unknown peer error";
    }
}

void peer_config_default(struct peer_config *config)
{
    ASSERT(config != NULL);
    memset(config, 0, sizeof(*config));
    config->listen_ipv4 = 0x7f000001u;
    config->peers_max = 8;
    config->inbound_max = 16;
    config->queue_bytes_max = 8u << 20;
    config->message_size_max = (4u << 20) + (64u << 10);
    config->backoff_ms_min = 50;
    config->backoff_ms_max = 2000;
    config->connect_timeout_ms = 1000;
    config->user_timeout_ms = 10000;
    ASSERT(config->queue_bytes_max >= config->message_size_max + PEER_FRAME_HEADER_SIZE);
}

void peer_hello_encode(const struct peer_config *config, u64 target_member_id,
                       u8 out[PEER_HELLO_SIZE])
{
    ASSERT(config->member_id != 0);
    ASSERT(target_member_id != 0);
    struct buf b;
    buf_init_fixed(&b, out, PEER_HELLO_SIZE);
    buf_put_bytes(&b, peer_magic, sizeof(peer_magic));
    buf_put_u16(&b, (u16)PEER_VERSION);
    buf_put_u16(&b, 0); /* flags */
    buf_put_u32(&b, config->group_id);
    buf_put_u64(&b, config->cluster_id);
    buf_put_u64(&b, config->member_id);
    buf_put_u64(&b, target_member_id);
    ASSERT(buf_ok(&b));
    ASSERT(b.len == PEER_HELLO_SIZE);
}

int peer_hello_check(const struct peer_config *config, const u8 in[PEER_HELLO_SIZE],
                     u64 expect_sender, u64 *sender)
{
    ASSERT(config != NULL && sender != NULL);
    if (memcmp(in, peer_magic, sizeof(peer_magic)) != 0) return -1;
    struct buf_reader r;
    buf_reader_init(&r, in + sizeof(peer_magic), PEER_HELLO_SIZE - sizeof(peer_magic));
    u16 version = buf_get_u16(&r);
    u16 flags = buf_get_u16(&r);
    u32 group_id = buf_get_u32(&r);
    u64 cluster_id = buf_get_u64(&r);
    u64 from = buf_get_u64(&r);
    u64 target = buf_get_u64(&r);
    ASSERT(buf_reader_ok(&r));
    ASSERT(buf_reader_left(&r) == 0);
    if (version != PEER_VERSION || flags != 0) return -1;
    if (group_id != config->group_id || cluster_id != config->cluster_id) return -1;
    if (from == 0 || from == config->member_id || target != config->member_id) return -1;
    if (expect_sender != 0 && from != expect_sender) return -1;
    *sender = from;
    return 0;
}

/* ---- outbound: closing, failure, backoff ----------------------------------------------------- */

static u64 peer_rng_next(struct peer_transport *t)
{
    ASSERT(t->rng != 0);
    t->rng ^= t->rng << 13; /* xorshift64: the jitter needs no better */
    t->rng ^= t->rng >> 7;
    t->rng ^= t->rng << 17;
    return t->rng;
}

/* The delay before the next dial, in [b/2, b]; b doubles up to backoff_ms_max. */
static u32 peer_backoff_take(struct peer_out *p)
{
    struct peer_transport *t = p->t;
    u32 b = p->backoff_ms;
    ASSERT(b >= 1);
    u32 half = b / 2;
    u32 delay = b - half + (u32)(peer_rng_next(t) % ((u64)half + 1));
    p->backoff_ms = (u32)KEEL_MIN((u64)b * 2, (u64)t->config.backoff_ms_max);
    ASSERT(delay >= 1 && delay <= b);
    return delay;
}

static void peer_out_bufs_reset(struct peer_out *p, bool release)
{
    buf_reset(&p->acc);
    buf_reset(&p->wire);
    if (release || p->acc.cap > PEER_OUT_KEEP_BYTES) {
        buf_free(&p->acc);
        buf_init_dynamic(&p->acc, 0);
    }
    if (release || p->wire.cap > PEER_OUT_KEEP_BYTES) {
        buf_free(&p->wire);
        buf_init_dynamic(&p->wire, 0);
    }
    p->wire_sent = 0;
    p->acc_msgs = p->wire_msgs = 0;
    p->hello_got = 0;
}

static bool peer_out_ops_idle(const struct peer_out *p)
{
    return !p->connect_busy && !p->send_busy && !p->recv_busy && !p->cancel_busy;
}

/* A CLOSING slot whose ops have all completed closes its socket: BACKOFF, or FREE if removed. */
static void peer_out_try_finish(struct peer_out *p)
{
    if (p->state != PEER_OUT_CLOSING || !peer_out_ops_idle(p)) return;
    ASSERT(p->fd >= 0);
    close(p->fd);
    p->fd = -1;
    peer_out_bufs_reset(p, p->removed);
    p->state = p->removed ? PEER_OUT_FREE : PEER_OUT_BACKOFF;
    ASSERT(p->acc.len == 0 && p->wire.len == 0);
}

/* Cancels the op a shutdown may not end (a connect; the recv too, to be sure). */
static void peer_out_cancel(struct peer_out *p)
{
    if (p->cancel_busy) return;
    struct loop_completion *target = NULL;
    if (p->connect_busy)
        target = &p->connect_c;
    else if (p->recv_busy)
        target = &p->recv_c;
    if (target == NULL) return;
    p->cancel_c.done = peer_out_cancel_done;
    if (loop_cancel(p->t->loop, &p->cancel_c, target) == 0) {
        p->cancel_busy = true;
        peer_op_started(p->t);
    }
}

static void peer_out_cancel_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)res;
    (void)flags;
    struct peer_out *p = PEER_OUT_OF(lc, cancel_c);
    ASSERT(p->cancel_busy);
    p->cancel_busy = false;
    peer_op_ended(p->t);
    peer_out_try_finish(p);
}

/* Shuts the connection down and drops what it held (counted); CLOSING until its ops drain. */
static void peer_out_shut(struct peer_out *p)
{
    ASSERT(p->state == PEER_OUT_CONNECTING || p->state == PEER_OUT_HELLO ||
           p->state == PEER_OUT_UP);
    ASSERT(p->fd >= 0);
    struct peer_transport *t = p->t;
    t->stats.messages_dropped += (u64)p->acc_msgs + p->wire_msgs;
    p->acc_msgs = p->wire_msgs = 0;
    p->state = PEER_OUT_CLOSING;
    (void)shutdown(p->fd, SHUT_RDWR); /* wakes the recv and send; a connecting socket aborts */
    peer_out_cancel(p);
    peer_out_try_finish(p);
}

/* A dial could not start, or a connection failed or was dropped: wait, then tell Raft. */
static void peer_out_unreachable(struct peer_out *p)
{
    struct peer_transport *t = p->t;
    if (p->removed || t->destroying) return;
    p->next_dial_ms = t->now_ms + peer_backoff_take(p);
    t->stats.unreachable++;
    if (t->config.on_unreachable) t->config.on_unreachable(t->config.ctx, p->member_id);
}

static void peer_out_fail(struct peer_out *p)
{
    if (p->state != PEER_OUT_CONNECTING && p->state != PEER_OUT_HELLO && p->state != PEER_OUT_UP)
        return; /* already closing */
    peer_out_shut(p);
    peer_out_unreachable(p);
}

/* ---- outbound: dial, hello, send ------------------------------------------------------------- */

static int peer_socket(const struct peer_config *config)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1; /* we batch per turn ourselves: Nagle would only add latency */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (config->user_timeout_ms > 0) {
        unsigned int timeout_ms = config->user_timeout_ms; /* unacknowledged data fails */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout_ms, sizeof(timeout_ms));
    }
    return fd;
}

static void peer_out_dial(struct peer_out *p)
{
    ASSERT(p->state == PEER_OUT_BACKOFF);
    ASSERT(p->fd < 0 && peer_out_ops_idle(p));
    struct peer_transport *t = p->t;
    t->stats.dials++;
    p->dial_ms = t->now_ms;
    int fd = peer_socket(&t->config);
    if (fd >= 0) {
        p->connect_c.done = peer_out_connect_done;
        if (loop_connect(t->loop, &p->connect_c, fd, &p->addr, sizeof(p->addr)) == 0) {
            p->fd = fd;
            p->connect_busy = true;
            p->state = PEER_OUT_CONNECTING;
            peer_op_started(t);
            return;
        }
        close(fd);
    }
    peer_out_unreachable(p); /* no socket or no SQE: a failed attempt */
}

static void peer_out_send_wire(struct peer_out *p)
{
    ASSERT(!p->send_busy);
    ASSERT(p->wire_sent < p->wire.len);
    struct peer_transport *t = p->t;
    p->send_c.done = peer_out_send_done;
    u32 left = (u32)p->wire.len - p->wire_sent;
    if (loop_send(t->loop, &p->send_c, p->fd, p->wire.ptr + p->wire_sent, left) != 0)
        return peer_out_fail(p); /* the ring refused even after a submit */
    p->send_busy = true;
    peer_op_started(t);
    t->stats.writes++;
}

/* Arms the one recv of an outbound socket: the acceptor's hello, then an EOF watch (the
 * acceptor never sends after its hello: any byte is a protocol error). */
static void peer_out_recv_arm(struct peer_out *p)
{
    ASSERT(!p->recv_busy);
    ASSERT(p->state == PEER_OUT_HELLO || p->state == PEER_OUT_UP);
    struct peer_transport *t = p->t;
    u8 *dst = p->probe;
    u32 len = PEER_PROBE_BYTES;
    if (p->state == PEER_OUT_HELLO) {
        dst = p->hello_in + p->hello_got;
        len = PEER_HELLO_SIZE - p->hello_got;
    }
    ASSERT(len > 0);
    p->recv_c.done = peer_out_recv_done;
    if (loop_recv(t->loop, &p->recv_c, p->fd, dst, len) != 0) return peer_out_fail(p);
    p->recv_busy = true;
    peer_op_started(t);
}

static void peer_out_connect_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)flags;
    struct peer_out *p = PEER_OUT_OF(lc, connect_c);
    struct peer_transport *t = p->t;
    ASSERT(p->connect_busy);
    p->connect_busy = false;
    peer_op_ended(t);
    if (p->state != PEER_OUT_CONNECTING) return peer_out_try_finish(p);
    if (res < 0) return peer_out_fail(p);
    ASSERT(p->wire.len == 0 && p->acc.len == 0);
    p->state = PEER_OUT_HELLO;
    u8 *hello = buf_reserve(&p->wire, PEER_HELLO_SIZE);
    if (hello == NULL) return peer_out_fail(p);
    peer_hello_encode(&t->config, p->member_id, hello);
    p->wire_sent = 0;
    peer_out_send_wire(p);
    if (p->state == PEER_OUT_HELLO) peer_out_recv_arm(p);
}

static void peer_out_hello_in(struct peer_out *p)
{
    struct peer_transport *t = p->t;
    ASSERT(p->state == PEER_OUT_HELLO);
    u64 sender = 0;
    if (peer_hello_check(&t->config, p->hello_in, p->member_id, &sender) != 0) {
        t->stats.refused_handshakes++;
        return peer_out_fail(p);
    }
    ASSERT(sender == p->member_id);
    p->state = PEER_OUT_UP;
    p->backoff_ms = t->config.backoff_ms_min;
    t->stats.connects++;
    if (p->was_up) t->stats.reconnects++;
    p->was_up = true;
    peer_out_recv_arm(p);
}

static void peer_out_recv_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)flags;
    struct peer_out *p = PEER_OUT_OF(lc, recv_c);
    struct peer_transport *t = p->t;
    ASSERT(p->recv_busy);
    p->recv_busy = false;
    peer_op_ended(t);
    if (p->state != PEER_OUT_HELLO && p->state != PEER_OUT_UP) return peer_out_try_finish(p);
    if (res <= 0) return peer_out_fail(p); /* refused, restarted, reset */
    t->stats.bytes_received += (u64)res;
    if (p->state == PEER_OUT_UP) {
        t->stats.protocol_errors++;
        return peer_out_fail(p);
    }
    p->hello_got += (u32)res;
    ASSERT(p->hello_got <= PEER_HELLO_SIZE);
    if (p->hello_got == PEER_HELLO_SIZE) return peer_out_hello_in(p);
    peer_out_recv_arm(p);
}

static void peer_out_send_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)flags;
    struct peer_out *p = PEER_OUT_OF(lc, send_c);
    struct peer_transport *t = p->t;
    ASSERT(p->send_busy);
    p->send_busy = false;
    peer_op_ended(t);
    if (p->state != PEER_OUT_HELLO && p->state != PEER_OUT_UP) return peer_out_try_finish(p);
    if (res <= 0) return peer_out_fail(p);
    u32 left = (u32)p->wire.len - p->wire_sent;
    ASSERT((u32)res <= left);
    p->wire_sent += (u32)res;
    t->stats.bytes_sent += (u64)res;
    if ((u32)res < left) {
        t->stats.short_writes++;
        return peer_out_send_wire(p); /* the rest, before anything newer */
    }
    t->stats.messages_written += p->wire_msgs;
    p->wire_msgs = 0;
    p->wire_sent = 0;
    buf_reset(&p->wire);
    if (p->wire.cap > PEER_OUT_KEEP_BYTES) {
        buf_free(&p->wire);
        buf_init_dynamic(&p->wire, 0);
    }
}

/* ---- the table ------------------------------------------------------------------------------- */

static struct peer_out *peer_find(const struct peer_transport *t, u64 member_id)
{
    for (u32 i = 0; i < t->out_count; i++) { /* out_count <= 2 x PEER_MEMBERS_MAX */
        struct peer_out *p = &t->outs[i];
        if (p->state != PEER_OUT_FREE && !p->removed && p->member_id == member_id) return p;
    }
    return NULL;
}

int peer_add(struct peer_transport *t, u64 member_id, u32 ipv4, u16 port)
{
    ASSERT(!t->destroying);
    if (member_id == 0 || member_id == t->config.member_id) return PEER_EINVALID;
    if (peer_find(t, member_id) != NULL) return PEER_EEXISTS;
    u32 live = 0;
    struct peer_out *slot = NULL;
    for (u32 i = 0; i < t->out_count; i++) {
        struct peer_out *p = &t->outs[i];
        if (p->state != PEER_OUT_FREE && !p->removed) live++;
        if (p->state == PEER_OUT_FREE && slot == NULL) slot = p;
    }
    if (live >= t->config.peers_max || slot == NULL) return PEER_EFULL;
    ASSERT(slot->fd < 0 && peer_out_ops_idle(slot));
    slot->state = PEER_OUT_BACKOFF;
    slot->removed = false;
    slot->was_up = false;
    slot->member_id = member_id;
    memset(&slot->addr, 0, sizeof(slot->addr));
    slot->addr.sin_family = AF_INET;
    slot->addr.sin_port = htons(port);
    slot->addr.sin_addr.s_addr = htonl(ipv4);
    slot->next_dial_ms = 0; /* the next tick dials */
    slot->backoff_ms = t->config.backoff_ms_min;
    ASSERT(peer_find(t, member_id) == slot);
    return PEER_OK;
}

int peer_remove(struct peer_transport *t, u64 member_id)
{
    struct peer_out *p = peer_find(t, member_id);
    if (p == NULL) return PEER_EUNKNOWN;
    p->removed = true;
    if (p->state == PEER_OUT_BACKOFF) {
        peer_out_bufs_reset(p, true);
        p->state = PEER_OUT_FREE;
    } else if (p->state != PEER_OUT_CLOSING) {
        peer_out_shut(p);
    }
    ASSERT(peer_find(t, member_id) == NULL);
    return PEER_OK;
}

bool peer_connected(const struct peer_transport *t, u64 member_id)
{
    const struct peer_out *p = peer_find(t, member_id);
    return p != NULL && p->state == PEER_OUT_UP;
}

static u64 peer_out_queued(const struct peer_out *p)
{
    ASSERT(p->wire_sent <= p->wire.len);
    return p->acc.len + (p->wire.len - p->wire_sent);
}

u64 peer_queued_bytes(const struct peer_transport *t, u64 member_id)
{
    const struct peer_out *p = peer_find(t, member_id);
    return p == NULL ? 0 : peer_out_queued(p);
}

u16 peer_port(const struct peer_transport *t)
{
    return t->port;
}

struct peer_stats peer_stats(const struct peer_transport *t)
{
    return t->stats;
}

/* ---- send, flush, tick ----------------------------------------------------------------------- */

static int peer_drop(struct peer_transport *t, int err)
{
    t->stats.messages_dropped++;
    if (err == PEER_EFULL) t->stats.drops_full++;
    if (err == PEER_EUNKNOWN || err == PEER_ENOTCONN) t->stats.drops_unconnected++;
    return err;
}

int peer_send(struct peer_transport *t, u64 member_id, const u8 *bytes, u32 len)
{
    ASSERT(bytes != NULL && len > 0);
    struct peer_out *p = peer_find(t, member_id);
    if (p == NULL) return peer_drop(t, PEER_EUNKNOWN);
    if (len > t->config.message_size_max) return peer_drop(t, PEER_ETOO_LARGE);
    if (p->state != PEER_OUT_UP) return peer_drop(t, PEER_ENOTCONN);
    u64 need = (u64)PEER_FRAME_HEADER_SIZE + len;
    if (peer_out_queued(p) + need > t->config.queue_bytes_max) return peer_drop(t, PEER_EFULL);
    size_t before = p->acc.len;
    u8 *dst = buf_reserve(&p->acc, (size_t)need);
    if (dst == NULL) {
        p->acc.overflow = false; /* nothing was written: the queue stays whole */
        return peer_drop(t, PEER_ENOMEM);
    }
    store_u32_le(dst, len);
    memcpy(dst + PEER_FRAME_HEADER_SIZE, bytes, len);
    p->acc_msgs++;
    t->stats.messages_sent++;
    ASSERT(p->acc.len == before + need);
    ASSERT(peer_out_queued(p) <= t->config.queue_bytes_max);
    return PEER_OK;
}

void peer_flush(struct peer_transport *t)
{
    for (u32 i = 0; i < t->out_count; i++) { /* out_count <= 2 x PEER_MEMBERS_MAX */
        struct peer_out *p = &t->outs[i];
        if (p->state != PEER_OUT_UP || p->send_busy || p->acc.len == 0) continue;
        ASSERT(p->wire.len == 0 && p->wire_sent == 0 && p->wire_msgs == 0);
        struct buf frozen = p->wire; /* the empty one becomes the accumulator */
        p->wire = p->acc;
        p->acc = frozen;
        p->wire_msgs = p->acc_msgs;
        p->acc_msgs = 0;
        peer_out_send_wire(p);
    }
}

void peer_tick(struct peer_transport *t, u64 now_ms)
{
    ASSERT(now_ms >= t->now_ms);
    t->now_ms = now_ms;
    if (t->destroying) return;
    if (!t->accept_armed) peer_accept_arm(t);
    for (u32 i = 0; i < t->out_count; i++) { /* out_count <= 2 x PEER_MEMBERS_MAX */
        struct peer_out *p = &t->outs[i];
        bool dialling = p->state == PEER_OUT_CONNECTING || p->state == PEER_OUT_HELLO;
        if (p->state == PEER_OUT_BACKOFF && now_ms >= p->next_dial_ms) {
            peer_out_dial(p);
        } else if (dialling && now_ms - p->dial_ms >= t->config.connect_timeout_ms) {
            peer_out_fail(p);
        } else if (p->state == PEER_OUT_CLOSING) {
            peer_out_cancel(p); /* retries a cancel the ring refused */
        }
    }
    peer_in_tick(t);
}

/* ---- life ------------------------------------------------------------------------------------ */

static void peer_config_check(const struct peer_config *c)
{
    ASSERT(c->member_id != 0);
    ASSERT(c->peers_max >= 1 && c->peers_max <= PEER_MEMBERS_MAX);
    ASSERT(c->inbound_max >= 1);
    ASSERT(c->message_size_max >= 1 && c->message_size_max <= PEER_MESSAGE_SIZE_LIMIT);
    ASSERT((u64)c->queue_bytes_max >= (u64)c->message_size_max + PEER_FRAME_HEADER_SIZE);
    ASSERT(c->backoff_ms_min >= 1 && c->backoff_ms_max >= c->backoff_ms_min);
    ASSERT(c->connect_timeout_ms >= 1);
}

static void peer_free(struct peer_transport *t)
{
    if (t->outs != NULL) {
        for (u32 i = 0; i < t->out_count; i++) { /* out_count <= 2 x PEER_MEMBERS_MAX */
            buf_free(&t->outs[i].acc);
            buf_free(&t->outs[i].wire);
        }
    }
    if (t->ins != NULL) peer_in_free_all(t);
    free(t->outs);
    free(t->ins);
    free(t);
}

static struct peer_transport *peer_alloc(struct loop *l, const struct peer_config *config)
{
    struct peer_transport *t = calloc(1, sizeof(*t)); /* start-up allocations */
    if (t == NULL) return NULL;
    t->loop = l;
    t->config = *config;
    t->listen_fd = -1;
    t->rng = config->seed ^ 0x9E3779B97F4A7C15ull;
    if (t->rng == 0) t->rng = 1;
    t->out_count = 2 * config->peers_max;
    t->outs = calloc(t->out_count, sizeof(*t->outs));
    t->ins = calloc(config->inbound_max, sizeof(*t->ins));
    if (t->outs == NULL || t->ins == NULL) {
        free(t->outs);
        free(t->ins);
        free(t);
        return NULL;
    }
    for (u32 i = 0; i < t->out_count; i++) {
        t->outs[i].t = t;
        t->outs[i].fd = -1;
        buf_init_dynamic(&t->outs[i].acc, 0);
        buf_init_dynamic(&t->outs[i].wire, 0);
    }
    for (u32 i = 0; i < config->inbound_max; i++) {
        t->ins[i].t = t;
        t->ins[i].fd = -1;
    }
    return t;
}

int peer_create(struct loop *l, const struct peer_config *config, struct peer_transport **out)
{
    ASSERT(l != NULL && config != NULL && out != NULL);
    peer_config_check(config);
    struct peer_transport *t = peer_alloc(l, config);
    if (t == NULL) return -ENOMEM;
    int fd =
        loop_listen_tcp(config->listen_ipv4, config->listen_port, PEER_LISTEN_BACKLOG, &t->port);
    if (fd < 0) {
        peer_free(t);
        return fd;
    }
    t->listen_fd = fd;
    peer_accept_arm(t); /* if the ring refuses, peer_tick retries */
    *out = t;
    ASSERT(t->port != 0);
    return 0;
}

/* Shuts every connection down and cancels what a shutdown may not end. */
static void peer_shut_all(struct peer_transport *t)
{
    peer_accept_cancel(t);
    for (u32 i = 0; i < t->out_count; i++) { /* out_count <= 2 x PEER_MEMBERS_MAX */
        struct peer_out *p = &t->outs[i];
        if (p->state == PEER_OUT_FREE) continue;
        p->removed = true;
        if (p->state == PEER_OUT_BACKOFF) {
            peer_out_bufs_reset(p, true);
            p->state = PEER_OUT_FREE;
        } else if (p->state == PEER_OUT_CLOSING) {
            peer_out_cancel(p);
        } else {
            peer_out_shut(p);
        }
    }
    for (u32 i = 0; i < t->config.inbound_max; i++) peer_in_close(&t->ins[i]);
}

void peer_destroy(struct peer_transport *t)
{
    if (t == NULL) return;
    t->destroying = true;
    /* Completions must outlive their CQEs (loop.h): turn the loop until ours have all come
     * back, re-issuing cancels the ring refused. Bounded by PEER_DESTROY_ROUNDS turns. */
    for (int round = 0; round < PEER_DESTROY_ROUNDS; round++) {
        peer_shut_all(t);
        if (t->ops_inflight == 0) break;
        (void)loop_run_turn(t->loop, PEER_DESTROY_WAIT_MS);
    }
    if (t->ops_inflight > 0)
        return; /* never seen: leak rather than let the kernel write
                   into freed memory */
    for (u32 i = 0; i < t->out_count; i++) ASSERT(t->outs[i].state == PEER_OUT_FREE);
    ASSERT(!t->accept_armed);
    close(t->listen_fd);
    peer_free(t);
}
