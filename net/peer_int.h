/*
 * peer_int.h — the peer transport's private state, shared by net/peer.c (table, outbound
 * connections, tick, flush, life) and net/peer_in.c (accept, inbound hello and frames).
 * Only net/peer*.c include it.
 *
 * Op accounting: every op a peer_* file prepares successfully adds one to ops_inflight, and
 * its final CQE takes it off; peer_destroy turns the loop until it is 0 (loop.h: completions
 * stay alive until their last CQE). A slot (peer_out, peer_in) is freed or reused only when
 * none of its ops is in flight (its *_busy flags are all false).
 */
#ifndef KEEL_NET_PEER_INT_H
#define KEEL_NET_PEER_INT_H

#include "core/assert.h"
#include "core/buf.h"
#include "core/types.h"
#include "net/loop.h"
#include "net/peer.h"

#include <netinet/in.h>

#define PEER_OUT_KEEP_BYTES (256u << 10) /* send buffer capacity kept while idle */
#define PEER_PROBE_BYTES    16u          /* the outbound socket's EOF-watch recv */

enum peer_out_state {
    PEER_OUT_FREE = 0,       /* slot unused */
    PEER_OUT_BACKOFF = 1,    /* not connected: dial once now_ms >= next_dial_ms */
    PEER_OUT_CONNECTING = 2, /* connect in flight */
    PEER_OUT_HELLO = 3,      /* connected; our hello out, waiting for the acceptor's */
    PEER_OUT_UP = 4,         /* messages flow */
    PEER_OUT_CLOSING = 5,    /* shut down; BACKOFF (or FREE if removed) once no op is in flight */
};

struct peer_out {
    struct peer_transport *t;
    struct loop_completion connect_c;
    struct loop_completion send_c;
    struct loop_completion recv_c;
    struct loop_completion cancel_c;
    enum peer_out_state state;
    bool removed; /* peer_remove'd: FREE after CLOSING */
    bool connect_busy;
    bool send_busy;
    bool recv_busy;
    bool cancel_busy;
    bool was_up; /* a handshake completed before (reconnect statistics) */
    int fd;
    u64 member_id;
    struct sockaddr_in addr; /* read by the kernel until the connect's CQE */
    u64 dial_ms;             /* when the current attempt started */
    u64 next_dial_ms;
    u32 backoff_ms;  /* b: the next failure waits [b/2, b] */
    struct buf acc;  /* frames queued by peer_send since the last flush */
    struct buf wire; /* the send in flight (frozen), or the hello */
    u32 wire_sent;
    u32 acc_msgs;
    u32 wire_msgs;
    u32 hello_got;
    u8 hello_in[PEER_HELLO_SIZE];
    u8 probe[PEER_PROBE_BYTES];
};

enum peer_in_state {
    PEER_IN_FREE = 0,
    PEER_IN_HELLO = 1,   /* reading the dialer's hello */
    PEER_IN_UP = 2,      /* reading frames */
    PEER_IN_CLOSING = 3, /* shut down; FREE once no op is in flight */
};

struct peer_in {
    struct peer_transport *t;
    struct loop_completion recv_c;
    struct loop_completion send_c;
    struct loop_completion cancel_c;
    enum peer_in_state state;
    bool recv_busy;
    bool send_busy;
    bool cancel_busy;
    int fd;
    u64 member_id; /* the sender, once the hello passed */
    u64 open_ms;   /* the first peer_tick after the accept (hello timeout) */
    bool open_stamped;
    u8 *stage; /* PEER_STAGE_BYTES; unparsed bytes [stage_head, stage_tail) */
    u32 stage_head;
    u32 stage_tail;
    u8 *big; /* a frame larger than the stage: big_got of big_len bytes so far */
    u32 big_len;
    u32 big_got;
    u32 hello_sent;
    u8 hello_out[PEER_HELLO_SIZE];
};

struct peer_transport {
    struct loop *loop;
    struct peer_config config;
    int listen_fd;
    u16 port;
    bool accept_armed;
    bool accept_cancel_busy;
    bool destroying; /* no callbacks, no re-arms, no dials */
    struct loop_completion accept_c;
    struct loop_completion accept_cancel_c;
    u64 now_ms; /* the last peer_tick's */
    u64 rng;
    u32 ops_inflight;
    struct peer_out *outs; /* out_count = 2 x peers_max: removed slots drain while re-added */
    u32 out_count;
    struct peer_in *ins; /* inbound_max */
    struct peer_stats stats;
};

/* The hello this side sends to target (byte table in peer.h). */
void peer_hello_encode(const struct peer_config *config, u64 target_member_id,
                       u8 out[PEER_HELLO_SIZE]);
/* 0 and *sender when hello passes every check (expect_sender 0: any member), else -1. */
int peer_hello_check(const struct peer_config *config, const u8 in[PEER_HELLO_SIZE],
                     u64 expect_sender, u64 *sender);

static inline void peer_op_started(struct peer_transport *t)
{
    t->ops_inflight++;
}

static inline void peer_op_ended(struct peer_transport *t)
{
    ASSERT(t->ops_inflight > 0);
    t->ops_inflight--;
}

/* peer_in.c */
void peer_accept_arm(struct peer_transport *t);
void peer_accept_cancel(struct peer_transport *t);
void peer_in_close(struct peer_in *k);
void peer_in_tick(struct peer_transport *t);
void peer_in_free_all(struct peer_transport *t);

#endif
