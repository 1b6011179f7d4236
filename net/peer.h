/*
 * peer.h — the Raft peer transport of one shard: opaque messages between the members of one
 * Raft group (shard i of every node), over TCP connections of its own.
 *
 * Each shard runs one struct peer_transport on its own loop and listens on its own peer port.
 * Raft bytes are opaque here: net/ never includes raft/; the shard encodes and decodes them.
 *
 * Connections: for every member in the peer table this side dials one outbound TCP connection
 * and sends on it only; the other side's messages arrive on the connection it dialled (an
 * inbound one, read only). Two connections per pair, so neither side has to break ties.
 *
 * Handshake (both directions; the dialer sends first, the acceptor answers only if it accepts,
 * else it closes): one hello of PEER_HELLO_SIZE bytes, little-endian:
 *
 *    OFFSET SIZE DESCRIPTION
 *    0      8    magic "KEELPEER"
 *    8      2    version, PEER_VERSION (1)
 *    10     2    flags, 0 (refused otherwise in version 1)
 *    12     4    group id (the shard index); must equal the receiver's
 *    16     8    cluster id; must equal the receiver's
 *    24     8    sender member id; not 0, not the receiver's own; the dialer also checks it
 *                is the member it dialled
 *    32     8    target member id: the member the sender means to reach; must be the
 *                receiver's own id (a wrong address in a peer table is refused, not used)
 *
 * A hello that fails any check is refused: the connection closes, counted in
 * stats.refused_handshakes. An acceptor that sees a good hello from a member that already has
 * an inbound connection closes the older one (the member restarted).
 *
 * Frames after the hello (dialer to acceptor only): [u32 len, little-endian][len bytes], with
 * 1 <= len <= message_size_max; any other len closes the connection (stats.protocol_errors).
 * A frame may span reads and be several MiB (a snapshot chunk and its header).
 *
 * Sending: peer_send copies one framed message into the peer's accumulating buffer; peer_flush,
 * once at the end of every loop turn, hands each peer's whole accumulation to one send (every
 * message of the turn in one write). One send is in flight per socket; a short write re-issues
 * the rest at once (bytes never reorder); the buffer in flight is frozen while new messages
 * accumulate in the other one. A message is dropped (counted, and reported by the return code;
 * Raft tolerates loss) when the peer is unknown or not connected (handshake not complete), or
 * when its queue (accumulated plus unsent bytes) would pass queue_bytes_max. Messages queued on
 * a connection that fails are dropped too (counted).
 *
 * Reconnect: time is an input. peer_tick(now_ms) dials members that are not connected once
 * their backoff has passed: the first dial at the first tick after peer_add, then after each
 * failure a delay in [b/2, b] (jitter from a PRNG seeded by config.seed) where b starts at
 * backoff_ms_min and doubles up to backoff_ms_max; a completed handshake resets b. A dial
 * or an inbound hello that takes longer than connect_timeout_ms fails. Every failure or drop of
 * an outbound connection calls on_unreachable (not peer_remove, not peer_destroy).
 *
 * Limits and memory: at most peers_max members; at most inbound_max inbound connections (more
 * are closed at accept, counted); per member at most queue_bytes_max queued plus one frozen
 * send buffer of at most the same; per inbound connection one PEER_STAGE_BYTES read buffer and,
 * while a frame larger than it arrives, one buffer of exactly that frame. Buffers grow on
 * demand up to those bounds and shrink back when idle.
 *
 * Callbacks run on the owner thread inside loop_run_turn (or peer_tick). They may call
 * peer_send, peer_add and peer_remove; never peer_destroy. on_message's bytes are borrowed
 * until it returns.
 *
 * Contract: the owner thread of the loop only. peer_destroy is called outside loop_run_turn
 * and before loop_destroy; it shuts every connection down, cancels its ops and turns the loop
 * (at most about two seconds) until none is in flight, so other modules' completions may run
 * meanwhile.
 */
#ifndef KEEL_NET_PEER_H
#define KEEL_NET_PEER_H

#include "core/types.h"
#include "net/loop.h"

#define PEER_VERSION            1u
#define PEER_HELLO_SIZE         40u
#define PEER_FRAME_HEADER_SIZE  4u
#define PEER_MEMBERS_MAX        16u         /* peers_max cap (raft allows 9 per group) */
#define PEER_STAGE_BYTES        (64u << 10) /* inbound read buffer per connection */
#define PEER_MESSAGE_SIZE_LIMIT (64u << 20) /* the largest message_size_max accepted */

/* Results of peer_add, peer_remove and peer_send (0 is success). */
enum peer_err {
    PEER_OK = 0,
    PEER_EUNKNOWN = 1,   /* no such member in the table */
    PEER_ENOTCONN = 2,   /* the member's connection is not up (dropped; Raft retries) */
    PEER_EFULL = 3,      /* send: queue_bytes_max reached; add: peers_max members already */
    PEER_ETOO_LARGE = 4, /* the message is longer than message_size_max */
    PEER_EEXISTS = 5,    /* add: the member is already in the table */
    PEER_EINVALID = 6,   /* add: member id 0 or this member's own id */
    PEER_ENOMEM = 7,     /* send: the queue could not grow (dropped) */
};
const char *peer_err_str(int err);

struct peer_config {
    u64 member_id;          /* this member; not 0 */
    u64 cluster_id;         /* hellos of another cluster are refused */
    u32 group_id;           /* the shard index; hellos of another group are refused */
    u32 listen_ipv4;        /* host order, e.g. 0x7f000001 */
    u16 listen_port;        /* 0: any (peer_port tells) */
    u32 peers_max;          /* 1..PEER_MEMBERS_MAX */
    u32 inbound_max;        /* inbound connections at once, >= 1 */
    u32 queue_bytes_max;    /* per member: accumulated + unsent bytes, frame headers included */
    u32 message_size_max;   /* 1..PEER_MESSAGE_SIZE_LIMIT; queue_bytes_max holds one at least */
    u32 backoff_ms_min;     /* first reconnect delay, >= 1 */
    u32 backoff_ms_max;     /* >= backoff_ms_min */
    u32 connect_timeout_ms; /* dial + hello, and an inbound hello; >= 1 */
    u32 user_timeout_ms;    /* TCP_USER_TIMEOUT of dialled sockets; 0: the kernel's */
    u64 seed;               /* the backoff jitter's PRNG */
    void (*on_message)(void *ctx, u64 from_member_id, const u8 *bytes, u32 len);
    void (*on_unreachable)(void *ctx, u64 member_id);
    void *ctx;
};

struct peer_stats {
    u64 bytes_sent;         /* written to sockets, hellos included */
    u64 bytes_received;     /* read from sockets, hellos included */
    u64 messages_sent;      /* accepted by peer_send (queued) */
    u64 messages_written;   /* whole in the kernel's socket buffer */
    u64 messages_received;  /* handed to on_message */
    u64 messages_dropped;   /* refused by peer_send, or lost with a failed connection */
    u64 drops_full;         /* of which: queue_bytes_max */
    u64 drops_unconnected;  /* of which: unknown member or connection not up */
    u64 writes;             /* sends issued (hello, batches, re-issued rests) */
    u64 short_writes;       /* sends that wrote less than asked */
    u64 dials;              /* connect attempts */
    u64 connects;           /* outbound handshakes completed */
    u64 reconnects;         /* of which: a member that had been connected before */
    u64 unreachable;        /* on_unreachable calls (outbound failures and drops) */
    u64 accepts;            /* inbound connections accepted */
    u64 inbound_rejected;   /* closed at accept: inbound_max reached */
    u64 refused_handshakes; /* hellos that failed a check (or timed out), either side */
    u64 protocol_errors;    /* bad frame lengths, bytes on a send-only connection */
};

struct peer_transport;

/* Fills defaults: peers_max 8, inbound_max 16, queue 8 MiB, message 4 MiB + 64 KiB, backoff
 * 50..2000 ms, connect timeout 1000 ms, user timeout 10000 ms, listen 127.0.0.1 port 0. The
 * caller sets member_id, cluster_id, group_id, seed and the callbacks. */
void peer_config_default(struct peer_config *config);

/* Listens on the peer port and arms the accept. Returns 0 and *out, or -errno (bind failed:
 * -EADDRINUSE; -ENOMEM), leaving nothing behind. */
int peer_create(struct loop *l, const struct peer_config *config, struct peer_transport **out);
void peer_destroy(struct peer_transport *t);
u16 peer_port(const struct peer_transport *t);

/* The peer table. peer_add dials at the next peer_tick; peer_remove closes the member's outbound
 * connection (no on_unreachable) and drops what was queued. */
int peer_add(struct peer_transport *t, u64 member_id, u32 ipv4, u16 port);
int peer_remove(struct peer_transport *t, u64 member_id);
bool peer_connected(const struct peer_transport *t, u64 member_id);
/* Bytes queued for member_id (accumulated + unsent); 0 for an unknown member. */
u64 peer_queued_bytes(const struct peer_transport *t, u64 member_id);

/* Queues one message (len >= 1) for member_id; PEER_OK, or the reason it was dropped. */
int peer_send(struct peer_transport *t, u64 member_id, const u8 *bytes, u32 len);
/* Once at the end of every loop turn: one send per member with queued bytes and none in flight. */
void peer_flush(struct peer_transport *t);
/* On the shard's tick: dials (backoff), times out dials and hellos, re-arms the accept. */
void peer_tick(struct peer_transport *t, u64 now_ms);

struct peer_stats peer_stats(const struct peer_transport *t);

#endif
