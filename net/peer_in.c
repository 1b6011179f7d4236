/*
 * peer_in.c — the peer transport's inbound side: multishot accept on the peer port, the
 * dialer's hello (checked, answered, or refused by closing), then frames cut from a plain recv
 * into a per-connection stage buffer, or straight into a buffer of its own for a frame larger
 * than the stage. One recv in flight per connection: what is not parsed waits in the kernel's
 * socket buffer, so memory per connection stays PEER_STAGE_BYTES plus one large frame.
 * The contract is in net/peer.h.
 */
#include "core/assert.h"
#include "core/buf.h"
#include "net/peer.h"
#include "net/peer_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_IN_OF(ptr, member) \
    ((struct peer_in *)(void *)((char *)(ptr)-offsetof(struct peer_in, member)))
#define PEER_T_OF(ptr, member) \
    ((struct peer_transport *)(void *)((char *)(ptr)-offsetof(struct peer_transport, member)))

static void peer_in_recv_done(struct loop_completion *lc, int res, u32 flags);
static void peer_in_send_done(struct loop_completion *lc, int res, u32 flags);
static void peer_in_cancel_done(struct loop_completion *lc, int res, u32 flags);
static void peer_accept_done(struct loop_completion *lc, int res, u32 flags);
static void peer_accept_cancel_done(struct loop_completion *lc, int res, u32 flags);

/* ---- accept ---------------------------------------------------------------------------------- */

void peer_accept_arm(struct peer_transport *t)
{
    ASSERT(!t->accept_armed);
    ASSERT(t->listen_fd >= 0);
    if (t->destroying) return;
    t->accept_c.done = peer_accept_done;
    if (loop_accept_multishot(t->loop, &t->accept_c, t->listen_fd) == 0) {
        t->accept_armed = true;
        peer_op_started(t);
    }
}

void peer_accept_cancel(struct peer_transport *t)
{
    if (!t->accept_armed || t->accept_cancel_busy) return;
    t->accept_cancel_c.done = peer_accept_cancel_done;
    if (loop_cancel(t->loop, &t->accept_cancel_c, &t->accept_c) == 0) {
        t->accept_cancel_busy = true;
        peer_op_started(t);
    }
}

static void peer_accept_cancel_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)res;
    (void)flags;
    struct peer_transport *t = PEER_T_OF(lc, accept_cancel_c);
    ASSERT(t->accept_cancel_busy);
    t->accept_cancel_busy = false;
    peer_op_ended(t);
}

static void peer_in_recv_arm(struct peer_in *k);

static void peer_in_open(struct peer_transport *t, int fd)
{
    ASSERT(fd >= 0);
    t->stats.accepts++;
    struct peer_in *k = NULL;
    for (u32 i = 0; i < t->config.inbound_max && k == NULL; i++) /* bounded: inbound_max */
        if (t->ins[i].state == PEER_IN_FREE) k = &t->ins[i];
    u8 *stage = k != NULL && !t->destroying ? malloc(PEER_STAGE_BYTES) : NULL;
    if (stage == NULL) {
        t->stats.inbound_rejected++;
        close(fd);
        return;
    }
    ASSERT(k->fd < 0 && !k->recv_busy && !k->send_busy && !k->cancel_busy);
    k->state = PEER_IN_HELLO;
    k->fd = fd;
    k->member_id = 0;
    k->open_ms = 0;
    k->open_stamped = false; /* peer_tick stamps it: now_ms is the tick's time */
    k->stage = stage;
    k->stage_head = k->stage_tail = 0;
    k->big = NULL;
    k->big_len = k->big_got = 0;
    k->hello_sent = 0;
    peer_in_recv_arm(k);
}

static void peer_accept_done(struct loop_completion *lc, int res, u32 flags)
{
    struct peer_transport *t = PEER_T_OF(lc, accept_c);
    ASSERT(t->accept_armed);
    if (!(flags & LOOP_CQE_F_MORE)) {
        t->accept_armed = false;
        peer_op_ended(t);
    }
    if (res >= 0) peer_in_open(t, res);
    bool fatal = res == -EBADF || res == -EINVAL;
    if (!t->accept_armed && !t->destroying && !fatal) peer_accept_arm(t);
}

/* ---- closing --------------------------------------------------------------------------------- */

static void peer_in_try_finish(struct peer_in *k)
{
    if (k->state != PEER_IN_CLOSING) return;
    if (k->recv_busy || k->send_busy || k->cancel_busy) return;
    ASSERT(k->fd >= 0);
    close(k->fd);
    k->fd = -1;
    free(k->stage);
    free(k->big);
    k->stage = k->big = NULL;
    k->stage_head = k->stage_tail = k->big_len = k->big_got = 0;
    k->state = PEER_IN_FREE;
}

static void peer_in_cancel(struct peer_in *k)
{
    if (!k->recv_busy || k->cancel_busy) return;
    k->cancel_c.done = peer_in_cancel_done;
    if (loop_cancel(k->t->loop, &k->cancel_c, &k->recv_c) == 0) {
        k->cancel_busy = true;
        peer_op_started(k->t);
    }
}

static void peer_in_cancel_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)res;
    (void)flags;
    struct peer_in *k = PEER_IN_OF(lc, cancel_c);
    ASSERT(k->cancel_busy);
    k->cancel_busy = false;
    peer_op_ended(k->t);
    peer_in_try_finish(k);
}

/* Shuts an open connection down (a closing one: re-issues the cancel); FREE once its ops are
 * back. */
void peer_in_close(struct peer_in *k)
{
    if (k->state == PEER_IN_FREE) return;
    if (k->state != PEER_IN_CLOSING) {
        k->state = PEER_IN_CLOSING;
        (void)shutdown(k->fd, SHUT_RDWR); /* ends the recv and the hello's send */
    }
    peer_in_cancel(k);
    peer_in_try_finish(k);
}

void peer_in_tick(struct peer_transport *t)
{
    for (u32 i = 0; i < t->config.inbound_max; i++) { /* bounded: inbound_max */
        struct peer_in *k = &t->ins[i];
        if (k->state == PEER_IN_HELLO && !k->open_stamped) {
            k->open_ms = t->now_ms;
            k->open_stamped = true;
        } else if (k->state == PEER_IN_HELLO &&
                   t->now_ms - k->open_ms >= t->config.connect_timeout_ms) {
            t->stats.refused_handshakes++; /* no hello in time */
            peer_in_close(k);
        } else if (k->state == PEER_IN_CLOSING) {
            peer_in_close(k); /* retries a cancel the ring refused */
        }
    }
}

void peer_in_free_all(struct peer_transport *t)
{
    for (u32 i = 0; i < t->config.inbound_max; i++) {
        struct peer_in *k = &t->ins[i];
        ASSERT(!k->recv_busy && !k->send_busy && !k->cancel_busy);
        if (k->fd >= 0) close(k->fd);
        free(k->stage);
        free(k->big);
        k->stage = k->big = NULL;
        k->fd = -1;
    }
}

/* ---- hello ----------------------------------------------------------------------------------- */

static void peer_in_send_hello(struct peer_in *k)
{
    ASSERT(!k->send_busy);
    ASSERT(k->hello_sent < PEER_HELLO_SIZE);
    struct peer_transport *t = k->t;
    k->send_c.done = peer_in_send_done;
    u32 left = PEER_HELLO_SIZE - k->hello_sent;
    if (loop_send(t->loop, &k->send_c, k->fd, k->hello_out + k->hello_sent, left) != 0)
        return peer_in_close(k);
    k->send_busy = true;
    peer_op_started(t);
    t->stats.writes++;
}

static void peer_in_send_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)flags;
    struct peer_in *k = PEER_IN_OF(lc, send_c);
    struct peer_transport *t = k->t;
    ASSERT(k->send_busy);
    k->send_busy = false;
    peer_op_ended(t);
    if (k->state != PEER_IN_UP) return peer_in_try_finish(k);
    if (res <= 0) return peer_in_close(k);
    t->stats.bytes_sent += (u64)res;
    k->hello_sent += (u32)res;
    ASSERT(k->hello_sent <= PEER_HELLO_SIZE);
    if (k->hello_sent < PEER_HELLO_SIZE) {
        t->stats.short_writes++;
        peer_in_send_hello(k);
    }
}

/* Checks the dialer's hello; answers it, or refuses (closes). False when closed. */
static bool peer_in_hello(struct peer_in *k, const u8 *hello)
{
    struct peer_transport *t = k->t;
    ASSERT(k->state == PEER_IN_HELLO);
    u64 sender = 0;
    if (peer_hello_check(&t->config, hello, 0, &sender) != 0) {
        t->stats.refused_handshakes++;
        peer_in_close(k);
        return false;
    }
    for (u32 i = 0; i < t->config.inbound_max; i++) { /* the member restarted: newest wins */
        struct peer_in *old = &t->ins[i];
        if (old != k && old->state == PEER_IN_UP && old->member_id == sender) peer_in_close(old);
    }
    k->member_id = sender;
    k->state = PEER_IN_UP;
    peer_hello_encode(&t->config, sender, k->hello_out);
    k->hello_sent = 0;
    peer_in_send_hello(k);
    return k->state == PEER_IN_UP;
}

/* ---- frames ---------------------------------------------------------------------------------- */

static void peer_in_deliver(struct peer_in *k, const u8 *bytes, u32 len)
{
    struct peer_transport *t = k->t;
    ASSERT(k->state == PEER_IN_UP);
    ASSERT(len >= 1 && len <= t->config.message_size_max);
    t->stats.messages_received++;
    if (!t->destroying && t->config.on_message)
        t->config.on_message(t->config.ctx, k->member_id, bytes, len);
}

/* A frame too large for the stage: its bytes so far move into a buffer of its own, which
 * the next recvs fill exactly (no byte of the next frame lands there). */
static void peer_in_big_start(struct peer_in *k, u32 len)
{
    u32 have = k->stage_tail - k->stage_head - PEER_FRAME_HEADER_SIZE;
    ASSERT(have < len);
    ASSERT(k->big == NULL);
    k->big = malloc(len);
    if (k->big == NULL) return peer_in_close(k);
    memcpy(k->big, k->stage + k->stage_head + PEER_FRAME_HEADER_SIZE, have);
    k->big_len = len;
    k->big_got = have;
    k->stage_head = k->stage_tail = 0;
}

/* Cuts the stage into the hello and whole frames. Bounded by the stage: every pass consumes
 * a hello or a frame, or stops. */
static void peer_in_parse(struct peer_in *k)
{
    struct peer_transport *t = k->t;
    while (k->state == PEER_IN_HELLO || k->state == PEER_IN_UP) {
        u32 avail = k->stage_tail - k->stage_head;
        const u8 *p = k->stage + k->stage_head;
        if (k->state == PEER_IN_HELLO) {
            if (avail < PEER_HELLO_SIZE || !peer_in_hello(k, p)) return;
            k->stage_head += PEER_HELLO_SIZE;
            continue;
        }
        if (avail < PEER_FRAME_HEADER_SIZE) break;
        u32 len = load_u32_le(p);
        if (len == 0 || len > t->config.message_size_max) {
            t->stats.protocol_errors++;
            return peer_in_close(k);
        }
        if (avail - PEER_FRAME_HEADER_SIZE >= len) {
            k->stage_head += PEER_FRAME_HEADER_SIZE + len;
            peer_in_deliver(k, p + PEER_FRAME_HEADER_SIZE, len);
            continue;
        }
        if (len > PEER_STAGE_BYTES - PEER_FRAME_HEADER_SIZE) peer_in_big_start(k, len);
        break;
    }
    if (k->stage_head == k->stage_tail) k->stage_head = k->stage_tail = 0;
}

static void peer_in_recv_arm(struct peer_in *k)
{
    ASSERT(!k->recv_busy);
    ASSERT(k->state == PEER_IN_HELLO || k->state == PEER_IN_UP);
    u8 *dst = k->big + k->big_got;
    u32 len = k->big_len - k->big_got;
    if (k->big == NULL) {
        u32 unparsed = k->stage_tail - k->stage_head;
        if (k->stage_head > 0) memmove(k->stage, k->stage + k->stage_head, unparsed);
        k->stage_head = 0;
        k->stage_tail = unparsed;
        dst = k->stage + unparsed;
        len = PEER_STAGE_BYTES - unparsed; /* unparsed is part of one frame that fits */
    }
    ASSERT(len > 0);
    k->recv_c.done = peer_in_recv_done;
    if (loop_recv(k->t->loop, &k->recv_c, k->fd, dst, len) != 0) return peer_in_close(k);
    k->recv_busy = true;
    peer_op_started(k->t);
}

static void peer_in_recv_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)flags;
    struct peer_in *k = PEER_IN_OF(lc, recv_c);
    struct peer_transport *t = k->t;
    ASSERT(k->recv_busy);
    k->recv_busy = false;
    peer_op_ended(t);
    if (k->state != PEER_IN_HELLO && k->state != PEER_IN_UP) return peer_in_try_finish(k);
    if (res <= 0) return peer_in_close(k); /* the dialer went away */
    t->stats.bytes_received += (u64)res;
    if (k->big != NULL) {
        k->big_got += (u32)res;
        ASSERT(k->big_got <= k->big_len);
        if (k->big_got == k->big_len) {
            u8 *frame = k->big;
            k->big = NULL;
            peer_in_deliver(k, frame, k->big_len);
            free(frame);
            k->big_len = k->big_got = 0;
        }
    } else {
        k->stage_tail += (u32)res;
        ASSERT(k->stage_tail <= PEER_STAGE_BYTES);
        peer_in_parse(k);
    }
    if (k->state == PEER_IN_HELLO || k->state == PEER_IN_UP) peer_in_recv_arm(k);
}
