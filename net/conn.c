/*
 * conn.c — a client connection: recv into the buffer ring, framing, held replies, one send in
 * flight, backpressure, close. The contract is in conn.h.
 */
#include "net/conn.h"

#include "core/assert.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_OF(ptr, member) ((struct conn *)(void *)((char *)(ptr)-offsetof(struct conn, member)))

#define CONN_IN_KEEP_BYTES  (64u << 10) /* input capacity kept while idle */
#define CONN_OUT_KEEP_BYTES (256u << 10)

static void conn_recv_done(struct loop_completion *lc, int res, u32 flags);
static void conn_send_done(struct loop_completion *lc, int res, u32 flags);
static void conn_cancel_done(struct loop_completion *lc, int res, u32 flags);

/* ---- the active list ---------------------------------------------------------------------- */

static void conn_unhold(struct conn *c)
{
    struct conn_host *h = c->host;
    if (c->held_prev)
        c->held_prev->held_next = c->held_next;
    else
        h->held_head = c->held_next;
    if (c->held_next) c->held_next->held_prev = c->held_prev;
    c->held_next = c->held_prev = NULL;
    c->in_held = false;
}

static void conn_hold(struct conn *c)
{
    struct conn_host *h = c->host;
    ASSERT(!c->in_active && !c->in_held);
    c->in_held = true;
    c->held_prev = NULL;
    c->held_next = h->held_head;
    if (h->held_head) h->held_head->held_prev = c;
    h->held_head = c;
}

static void conn_activate(struct conn *c)
{
    if (c->in_held) conn_unhold(c);
    if (c->in_active) return;
    c->in_active = true;
    c->active_next = c->host->active_head;
    c->host->active_head = c;
}

void conn_kick(struct conn *c)
{
    conn_activate(c);
}

/* ---- input -------------------------------------------------------------------------------- */

static u32 conn_in_unparsed(const struct conn *c)
{
    return c->in_len - c->in_off;
}

/* Makes room for n more input bytes; false on ENOMEM. */
static bool conn_in_reserve(struct conn *c, u32 n)
{
    if (c->in_off > 0 && (c->in_off == c->in_len || c->in_len + n > c->in_cap)) {
        memmove(c->in, c->in + c->in_off, conn_in_unparsed(c));
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len + n <= c->in_cap) return true;
    u32 cap = c->in_cap ? c->in_cap : 16384u;
    while (cap < c->in_len + n) cap *= 2;
    u8 *p = realloc(c->in, cap);
    if (!p) return false;
    c->in = p;
    c->in_cap = cap;
    return true;
}

static bool conn_out_over(const struct conn *c)
{
    return conn_output_bytes(c) > c->host->out_limit_bytes;
}

static bool conn_may_parse(const struct conn *c)
{
    return !c->paused && !c->closing && !c->draining;
}

/* Hands whole frames of data to on_frame; returns the bytes consumed. */
static size_t conn_parse(struct conn *c, const u8 *data, size_t len)
{
    struct conn_host *h = c->host;
    size_t off = 0;
    while (conn_may_parse(c)) {
        struct codec_frame f;
        size_t size = 0;
        int rc = codec_frame_decode(span_make(data + off, len - off), h->frame_size_max, &f, &size);
        if (rc == CODEC_NEED_MORE) break;
        if (rc != 0) {
            u64 detail = rc == CODEC_S_FRAME_TOO_LARGE ? h->frame_size_max : 0;
            conn_goaway(c, (u16)rc, detail, codec_status_message(rc));
            return len;
        }
        int r = h->on_frame(h->ctx, c, &f, span_make(data + off, size));
        if (r == CONN_FRAME_AGAIN) {
            c->paused = true;
            conn_activate(c);
            break;
        }
        off += size;
        h->frames_in++;
        if (conn_out_over(c)) {
            c->paused = true;
            conn_activate(c);
        }
    }
    if (c->closing || c->draining) return len; /* what follows a GOAWAY is dropped */
    return off;
}

static void conn_stop_recv(struct conn *c)
{
    if (!c->recv_armed || c->cancel_busy) return;
    c->cancel_c.done = conn_cancel_done;
    if (loop_cancel(c->host->loop, &c->cancel_c, &c->recv_c) == 0) c->cancel_busy = true;
}

/* Takes received bytes: parses them in place when nothing is buffered, keeps the rest. */
static void conn_take_bytes(struct conn *c, const u8 *data, u32 len)
{
    if (conn_in_unparsed(c) == 0) {
        size_t used = conn_parse(c, data, len);
        data += used;
        len -= (u32)used;
        if (len == 0) return;
    }
    if (!conn_in_reserve(c, len)) {
        conn_close(c);
        return;
    }
    memcpy(c->in + c->in_len, data, len);
    c->in_len += len;
    conn_resume(c);
    if (conn_in_unparsed(c) > c->host->in_limit_bytes + c->host->frame_size_max / 4) {
        c->recv_stopped = true;
        conn_stop_recv(c);
        conn_activate(c);
    }
}

void conn_resume(struct conn *c)
{
    if (conn_in_unparsed(c) == 0) return;
    size_t used = conn_parse(c, c->in + c->in_off, conn_in_unparsed(c));
    c->in_off += (u32)used;
    if (c->in_off == c->in_len) {
        c->in_off = c->in_len = 0;
        if (c->in_cap > CONN_IN_KEEP_BYTES) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
}

static void conn_recv_done(struct loop_completion *lc, int res, u32 flags)
{
    struct conn *c = CONN_OF(lc, recv_c);
    struct conn_host *h = c->host;
    if (!(flags & LOOP_CQE_F_MORE)) c->recv_armed = false;
    if (res > 0) {
        u8 *data = bufring_take(h->br, flags, res);
        h->bytes_in += (u64)res;
        if (!c->closing && !c->eof) conn_take_bytes(c, data, (u32)res);
        bufring_recycle(h->br, loop_cqe_buffer_id(flags));
    } else if (res == 0) {
        c->eof = true; /* answer what was sent, then close */
        c->draining = true;
    } else if (res != -ENOBUFS && res != -ECANCELED) {
        conn_close(c);
    }
    if (!c->recv_armed) conn_activate(c);
}

static void conn_cancel_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)res;
    (void)flags;
    struct conn *c = CONN_OF(lc, cancel_c);
    c->cancel_busy = false;
    conn_activate(c);
}

static void conn_arm_recv(struct conn *c)
{
    c->recv_c.done = conn_recv_done;
    if (loop_recv_multishot(c->host->loop, &c->recv_c, c->fd, c->host->br->group_id) == 0)
        c->recv_armed = true;
}

/* ---- output ------------------------------------------------------------------------------- */

struct buf *conn_reply_begin(struct conn *c)
{
    ASSERT(!c->closing);
    c->reply_start = (u32)c->acc.len;
    return &c->acc;
}

void conn_reply_end(struct conn *c, u64 durable_index_needed)
{
    u32 end = (u32)c->acc.len;
    struct conn_gate *last = c->gate_count ? &c->gates[c->gate_count - 1] : NULL;
    if (durable_index_needed > c->host->durable_index) {
        if (last && (last->index == durable_index_needed || c->gate_count == CONN_GATES_MAX)) {
            last->end = end;
            last->index = KEEL_MAX(last->index, durable_index_needed);
        } else {
            c->gates[c->gate_count++] = (struct conn_gate){
                .start = c->reply_start, .end = end, .index = durable_index_needed};
        }
    } else if (last) {
        last->end = end; /* behind an earlier held reply */
    }
    conn_activate(c);
}

/* Bytes at the front of acc that may leave now: up to the first gate not yet durable. */
static u32 conn_sendable(struct conn *c)
{
    u64 durable = c->host->durable_index;
    u32 n = 0;
    while (n < c->gate_count && c->gates[n].index <= durable) n++;
    if (n > 0) {
        memmove(c->gates, c->gates + n, (c->gate_count - n) * sizeof(c->gates[0]));
        c->gate_count -= n;
    }
    return c->gate_count ? c->gates[0].start : (u32)c->acc.len;
}

static void conn_send_wire(struct conn *c)
{
    c->send_c.done = conn_send_done;
    u32 left = (u32)c->wire.len - c->wire_sent;
    if (loop_send(c->host->loop, &c->send_c, c->fd, c->wire.ptr + c->wire_sent, left) == 0)
        c->send_busy = true;
    else
        conn_activate(c); /* SQ busy: the pump retries */
}

static void conn_start_send(struct conn *c)
{
    if (c->send_busy || c->closing) return;
    if (c->wire_sent < c->wire.len) return conn_send_wire(c);
    u32 s = conn_sendable(c);
    if (s == 0) return;
    buf_reset(&c->wire);
    c->wire_sent = 0;
    if (s == c->acc.len) {
        struct buf t = c->wire;
        c->wire = c->acc;
        c->acc = t;
    } else {
        buf_put_bytes(&c->wire, c->acc.ptr, s);
        if (!buf_ok(&c->wire)) return conn_close(c);
        memmove(c->acc.ptr, c->acc.ptr + s, c->acc.len - s);
        c->acc.len -= s;
        for (u32 i = 0; i < c->gate_count; i++) {
            c->gates[i].start -= s;
            c->gates[i].end -= s;
        }
    }
    conn_send_wire(c);
}

static void conn_send_done(struct loop_completion *lc, int res, u32 flags)
{
    (void)flags;
    struct conn *c = CONN_OF(lc, send_c);
    c->send_busy = false;
    if (c->closing) return conn_activate(c);
    if (res <= 0) return conn_close(c);
    c->wire_sent += (u32)res;
    c->host->bytes_out += (u64)res;
    if (c->wire_sent == c->wire.len) {
        buf_reset(&c->wire);
        c->wire_sent = 0;
        if (c->wire.cap > CONN_OUT_KEEP_BYTES) {
            buf_free(&c->wire);
            buf_init_dynamic(&c->wire, 4096);
        }
    }
    conn_start_send(c);
    conn_activate(c);
}

u64 conn_output_bytes(const struct conn *c)
{
    return c->acc.len + (c->wire.len - c->wire_sent);
}

bool conn_idle(const struct conn *c)
{
    return conn_output_bytes(c) == 0 && c->gate_count == 0 && c->pending == 0;
}

static void conn_goaway_emit(struct conn *c)
{
    ASSERT(c->goaway_owed && c->pending == 0);
    c->goaway_owed = false;
    c->goaway_sent = true;
    const char *m = c->goaway_message;
    struct codec_frame head = {.opcode = CODEC_OP_GOAWAY, .request_id = 0};
    struct codec_reply_header rh = {.status = c->goaway_status, .shard = CODEC_SHARD_NONE};
    struct codec_error_body e = {.detail = c->goaway_detail,
                                 .message = span_make(m, m ? strlen(m) : 0)};
    struct buf *b = conn_reply_begin(c);
    if (codec_reply_encode(b, &head, &rh, &e, CODEC_REPLY_FRAME_SIZE_MAX) != 0)
        return conn_close(c);
    conn_reply_end(c, 0);
}

void conn_goaway(struct conn *c, u16 status, u64 detail, const char *message)
{
    if (c->closing || c->goaway_owed || c->goaway_sent) return;
    c->draining = true; /* no more parsing; close once everything owed is sent */
    c->goaway_owed = true;
    c->goaway_status = status;
    c->goaway_detail = detail;
    c->goaway_message = message;
    if (c->pending == 0)
        conn_goaway_emit(c);
    else
        conn_activate(c); /* the pump emits it once the last forwarded reply is in */
}

/* ---- life --------------------------------------------------------------------------------- */

struct conn *conn_open(struct conn_host *h, int fd, u16 port_shard)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->host = h;
    c->fd = fd;
    c->port_shard = port_shard;
    buf_init_dynamic(&c->acc, 4096);
    buf_init_dynamic(&c->wire, 4096);
    h->open_count++;
    c->all_next = h->all_head;
    if (h->all_head) h->all_head->all_prev = c;
    h->all_head = c;
    conn_arm_recv(c);
    if (!c->recv_armed) conn_activate(c);
    return c;
}

void conn_close(struct conn *c)
{
    if (c->closing) return;
    c->closing = true;
    c->paused = true;
    shutdown(c->fd, SHUT_RDWR);
    conn_stop_recv(c);
    conn_activate(c);
}

static bool conn_try_free(struct conn *c)
{
    if (c->recv_armed || c->send_busy || c->cancel_busy || c->pending > 0) return false;
    struct conn_host *h = c->host;
    close(c->fd);
    h->open_count--;
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        h->all_head = c->all_next;
    if (c->all_next) c->all_next->all_prev = c->all_prev;
    if (h->on_closed) h->on_closed(h->ctx, c);
    free(c->in);
    buf_free(&c->acc);
    buf_free(&c->wire);
    free(c);
    return true;
}

enum conn_next { CONN_DROP = 0, CONN_ACTIVE = 1, CONN_HELD = 2 };

/* One connection's turn work: stay active (something to retry next turn), wait on the held list
 * (only the WAL can make its output sendable), or leave the lists. */
static enum conn_next conn_pump_one(struct conn *c)
{
    if (c->closing) return true;
    if (c->goaway_owed && c->pending == 0) conn_goaway_emit(c);
    conn_start_send(c);
    if (c->paused && !conn_out_over(c)) {
        c->paused = false;
        conn_resume(c);
    }
    bool input_low = conn_in_unparsed(c) <= c->host->in_limit_bytes / 2;
    if (c->recv_stopped && input_low && !c->cancel_busy && !c->recv_armed) c->recv_stopped = false;
    if (!c->recv_armed && !c->recv_stopped && !c->eof && !c->cancel_busy) conn_arm_recv(c);
    if (c->draining && !c->goaway_owed && conn_idle(c)) conn_close(c);
    if (c->closing) return CONN_ACTIVE;
    bool unsent = c->wire_sent < c->wire.len || (c->gate_count == 0 && c->acc.len > 0);
    if (c->paused || (!c->recv_armed && !c->eof) || (unsent && !c->send_busy)) return CONN_ACTIVE;
    if (c->gate_count > 0) return CONN_HELD;
    return c->draining && !c->send_busy ? CONN_ACTIVE : CONN_DROP;
}

void conn_host_pump(struct conn_host *h)
{
    struct conn *list = h->active_head;
    h->active_head = NULL;
    while (list) {
        struct conn *c = list;
        list = c->active_next;
        c->in_active = false;
        if (c->closing) {
            if (!conn_try_free(c)) conn_activate(c);
            continue;
        }
        enum conn_next next = conn_pump_one(c);
        if (next == CONN_ACTIVE) conn_activate(c);
        if (next == CONN_HELD && !c->in_active) conn_hold(c);
    }
}

void conn_host_durable(struct conn_host *h, u64 durable_index)
{
    ASSERT(durable_index >= h->durable_index);
    h->durable_index = durable_index;
    while (h->held_head) conn_activate(h->held_head);
}
