/*
 * conn.h — one client connection on a shard's loop: framing in, replies out,
 * replies held back until the WAL says they are durable, backpressure both
 * ways.
 *
 * Receive: a multishot recv fills buffers of the host's provided-buffer ring
 * (net/bufring.h). Whole frames are handed to host->on_frame straight from the
 * kernel's buffer when they lie in one; the bytes of a frame that spans
 * buffers are copied into the connection's own input buffer (grown up to one
 * frame, frame_size_max). The buffer goes back to the kernel before the turn
 * ends, so one slow connection never starves the ring.
 *
 * Frames: codec_frame_decode decides. FRAME_TOO_LARGE or FRAME_MALFORMED end
 * the stream: the connection answers GOAWAY with that status (after the
 * replies it owes) and closes. on_frame returns CONN_FRAME_DONE (handled),
 * CONN_FRAME_AGAIN (not handled now: the connection stops parsing, keeps the
 * frame and every later byte, and the host calls conn_resume later), or
 * CONN_FRAME_CLOSE (the host queued a GOAWAY; close after it is sent).
 *
 * Send: replies are appended to the accumulating buffer between
 * conn_reply_begin and conn_reply_end. Each reply names the WAL index that
 * must be durable before it may leave (0: none); since replies on one
 * connection leave in the order they were appended, a reply also waits for
 * every earlier one. At most one send is in flight per socket; its bytes sit
 * in a second, frozen buffer (the first one may grow, and so move, while the
 * kernel reads the second); a short send re-issues the rest.
 *
 * Backpressure: while the bytes a client has not read pass out_limit_bytes,
 * the connection stops parsing (its requests wait in the kernel's socket
 * buffer and then in the input buffer); while the unparsed input passes
 * in_limit_bytes, the recv is cancelled and re-armed once parsing caught up.
 * Memory per connection is therefore bounded by about
 * out_limit_bytes + max(in_limit_bytes, frame_size_max) plus one reply.
 *
 * Close: conn_close shuts the socket down; the connection is freed (host's
 * on_closed, then free) once no op of it is in flight in the ring.
 *
 * Contract: the owner thread of the loop only; the host outlives its
 * connections; a conn pointer is valid until on_closed returns.
 */
#ifndef KEEL_NET_CONN_H
#define KEEL_NET_CONN_H

#include "core/buf.h"
#include "core/types.h"
#include "net/bufring.h"
#include "net/codec.h"
#include "net/loop.h"

enum conn_frame_result { CONN_FRAME_DONE = 0, CONN_FRAME_AGAIN = 1, CONN_FRAME_CLOSE = 2 };

#define CONN_GATES_MAX 4u

struct conn;

struct conn_host {
    struct loop *loop;
    struct bufring *br;
    u32 frame_size_max;
    u32 out_limit_bytes;
    u32 in_limit_bytes;
    u64 durable_index; /* the host's WAL durable index, kept current by the host */
    /* f's body (and raw, the whole frame) borrow connection memory until return. */
    int (*on_frame)(void *ctx, struct conn *c, const struct codec_frame *f, struct span raw);
    void (*on_closed)(void *ctx, struct conn *c);
    void *ctx;
    /* Connections with output waiting (to send, or held for durability) or parsing
     * paused: the host walks them with conn_host_pump once per turn. */
    struct conn *active_head;
    struct conn *held_head; /* connections whose output waits only for the WAL */
    struct conn *all_head;  /* every open connection */
    u32 open_count;
    u64 frames_in;
    u64 bytes_in;
    u64 bytes_out;
};

struct conn_gate {
    u32 start; /* acc bytes [start, end) wait for index (and for every earlier gate) */
    u32 end;
    u64 index; /* WAL index that must be durable */
};

struct conn {
    struct loop_completion recv_c;
    struct loop_completion send_c;
    struct conn_host *host;
    int fd;
    u32 id;          /* the host's handle (slot) */
    u32 generation;  /* the host's handle (reuse count) */
    u16 port_shard;  /* the shard whose port accepted it, or CODEC_SHARD_NONE (router) */
    bool handshaken; /* HELLO done (kept by the host) */
    bool recv_armed;
    bool recv_stopped; /* cancelled for backpressure; re-arm when input drains */
    bool send_busy;
    bool paused;      /* on_frame said AGAIN, or output over the limit */
    bool closing;     /* shut down; freed when no op is in flight */
    bool draining;    /* close once every owed byte is sent */
    bool eof;         /* the peer closed its side; no more input */
    bool goaway_owed; /* conn_goaway waits for the forwarded requests' replies (pending) */
    bool goaway_sent;
    u16 goaway_status;
    u64 goaway_detail;
    const char *goaway_message; /* static */
    bool cancel_busy;
    bool in_active;
    bool in_held;
    u8 *in; /* unparsed input [in_off, in_len) */
    u32 in_off;
    u32 in_len;
    u32 in_cap;
    struct buf acc;  /* replies appended, not yet handed to a send */
    struct buf wire; /* the send in flight (frozen) */
    u32 wire_sent;
    struct conn_gate gates[CONN_GATES_MAX];
    u32 gate_count;
    u32 reply_start; /* acc.len at conn_reply_begin */
    u32 pending;     /* requests the host is still executing elsewhere (forwarded) */
    struct loop_completion cancel_c;
    struct conn *active_next;
    struct conn *held_next;
    struct conn *held_prev;
    struct conn *all_next;
    struct conn *all_prev;
    void *user; /* the host's */
};

/* Allocates a connection for socket fd and arms its recv. NULL on ENOMEM (fd closed). */
struct conn *conn_open(struct conn_host *h, int fd, u16 port_shard);

/* The buffer to append one whole reply frame to; then conn_reply_end with the WAL index
 * the reply must wait for (0: none beyond earlier replies). */
struct buf *conn_reply_begin(struct conn *c);
void conn_reply_end(struct conn *c, u64 durable_index_needed);

/* Puts the connection on the active list (the host changed something the pump must see, such
 * as pending). */
void conn_kick(struct conn *c);

/* Parses what the connection holds again (after CONN_FRAME_AGAIN). */
void conn_resume(struct conn *c);

/* Sends what may leave now, re-arms what backpressure stopped, resumes parsing when the
 * output drained; drops from the active list the connections with nothing to do, and parks
 * those whose output waits for the WAL on the held list. Once per turn. */
void conn_host_pump(struct conn_host *h);
/* The host's durable index moved: every held connection is pumped again. */
void conn_host_durable(struct conn_host *h, u64 durable_index);

/* Stops parsing and queues GOAWAY(status, detail, message) after every reply owed, the replies
 * of requests still executing elsewhere (pending) included; closes once it is sent. message
 * must be static. */
void conn_goaway(struct conn *c, u16 status, u64 detail, const char *message);
/* Closes at once (bytes not yet sent are dropped). */
void conn_close(struct conn *c);

/* Bytes the connection holds for output (not yet sent), and whether it owes nothing. */
u64 conn_output_bytes(const struct conn *c);
bool conn_idle(const struct conn *c);

#endif
