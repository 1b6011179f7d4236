/*
 * xcore.h — cross-core messaging: an N×N matrix of single-producer
 * single-consumer rings between shard threads (Seastar's smp_message_queue).
 *
 * Shape: for every ordered pair (source, target) of shards there are two rings,
 * one for requests (source asks target) and one for replies (source answers a
 * request target sent it). Each ring is a power-of-two array of fixed-size
 * slots (struct xcore_msg, XCORE_SLOT_SIZE bytes) allocated by xcore_create;
 * nothing is allocated after that. The diagonal (source == target) is the self
 * path: same slots and order, but published at once, with no doorbell.
 *
 * Threads:
 *  - xcore_create and xcore_destroy: one thread, before the shard threads start
 *    and after they stopped.
 *  - xcore_send, xcore_flush, xcore_consumed: only the thread of shard `source`
 *    (it is the single producer of its rings).
 *  - xcore_poll, xcore_sleep_begin, xcore_sleep_end, xcore_stats: only the
 *    thread of shard `self` (the single consumer of the rings into it).
 *
 * Batched publish: xcore_send writes a message into the next free slot but
 * does not publish it; xcore_flush publishes every ring the shard wrote since
 * its last flush with one release store of the ring's tail, then rings the
 * doorbell of each target that may be sleeping, once per target per flush.
 * A shard calls xcore_flush once at the end of its loop turn (and must before
 * it sleeps). Self-path messages are published by xcore_send itself.
 *
 * Backpressure: a pair has at most in_flight_max requests that have been sent
 * and whose reply has not yet been polled by the sender. Past the cap, or when
 * the ring has no free slot, xcore_send returns XCORE_EFULL and changes
 * nothing: the caller keeps the work and retries on a later turn. Every request
 * must be answered by exactly one reply; because in_flight_max <= ring
 * capacity, a reply ring then never fills, so a reply never sees XCORE_EFULL
 * while peers keep that contract.
 *
 * Polling: xcore_poll(self) drains, for every peer (peers first, then self),
 * the reply ring and then the request ring into a handler, at most
 * poll_per_ring_max messages per ring per call, and publishes each ring's head
 * once. A handler may send (replies, or new requests); it may return
 * XCORE_AGAIN to leave the message in its ring (delivered again next poll) and
 * stop draining that ring for this call, e.g. when it cannot send now.
 *
 * Payloads and ownership (nothing is ever freed by another thread):
 *  - Inline (XCORE_INLINE_SIZE_MAX bytes at most) live in the slot.
 *  - Borrowed: msg.ptr points at bytes the sender owns, in its own memory.
 *  - Either way the bytes are valid for the receiver only during the handler
 *    call that gets the message: the receiver copies what it keeps into its own
 *    memory (its arena) before the handler returns. The slot is reused once the
 *    head passes it.
 *  - The sender keeps borrowed bytes alive, unchanged, until the message has
 *    been consumed: xcore_consumed(source, target, dir) > the ticket
 *    xcore_send returned. Then the sender, on its own thread, frees them. The
 *    reply to a request implies nothing: the target may reply before its poll
 *    publishes the head, so only xcore_consumed says the bytes are free.
 *
 * Wake protocol (the doorbell is a callback the shard runtime implements with
 * IORING_OP_MSG_RING, or an eventfd; it must be "sticky": a ring that arrives
 * before the target blocks still wakes it, as an eventfd count or a CQE does):
 *  - Consumer, before it blocks: xcore_sleep_begin stores sleeping = 1,
 *    issues a seq_cst fence, then loads every incoming ring's tail. If any ring
 *    holds a message it clears the flag and returns false (poll instead).
 *    Otherwise it returns true and the shard blocks; after waking it calls
 *    xcore_sleep_end (clears the flag).
 *  - Producer, in xcore_flush: store-release the tail, seq_cst fence, load the
 *    target's sleeping flag; if 1, ring the doorbell.
 *  - Why no wakeup is lost: the two fences order "store flag; load tail" and
 *    "store tail; load flag" (the store-buffering litmus). At least one side
 *    sees the other's store: either the consumer sees the new tail and does not
 *    sleep, or the producer sees the flag and rings; the sticky doorbell then
 *    wakes the consumer whether it has blocked yet or not. A spurious ring (the
 *    consumer saw the message and did not sleep) costs one empty wakeup.
 *
 * Errors: XCORE_EFULL (backpressure). Misuse (wrong thread aside, which cannot
 * be checked cheaply) fails an ASSERT.
 */
#ifndef KEEL_SHARD_XCORE_H
#define KEEL_SHARD_XCORE_H

#include "core/assert.h"
#include "core/types.h"

#define XCORE_SHARDS_MAX      64u  /* shards per node: one u64 bit mask each */
#define XCORE_SLOT_SIZE       128u /* bytes per message slot: two cache lines */
#define XCORE_HEADER_SIZE     32u  /* the fixed header at the front of a slot */
#define XCORE_INLINE_SIZE_MAX (XCORE_SLOT_SIZE - XCORE_HEADER_SIZE)
#define XCORE_RING_SLOTS_MAX  65536u /* slots per ring */
#define XCORE_CACHE_LINE_SIZE 64u

enum xcore_status {
    XCORE_OK = 0,
    XCORE_EFULL = -1, /* xcore_send: in-flight cap reached or ring full; retry later */
    XCORE_AGAIN = 1,  /* handler: keep this message in its ring, stop draining the ring */
};

enum xcore_dir { XCORE_REQUEST = 0, XCORE_REPLY = 1 };

#define XCORE_MSG_BORROWED 1u /* flags: payload at ptr (sender's memory), not inline */

/* One slot. The header is 32 bytes; the inline payload fills the rest. */
struct xcore_msg {
    u16 source; /* set by xcore_send */
    u16 target;
    u8 dir;        /* enum xcore_dir */
    u8 flags;      /* XCORE_MSG_* */
    u16 type;      /* the caller's message type (opcode) */
    u32 len;       /* payload bytes */
    u32 pad_;      /* zero */
    u64 cookie;    /* the caller's correlation (request id, completion index) */
    const u8 *ptr; /* borrowed payload (XCORE_MSG_BORROWED), else NULL */
    u8 bytes[XCORE_INLINE_SIZE_MAX];
};
static_assert(sizeof(struct xcore_msg) == XCORE_SLOT_SIZE, "a message fills one slot");

/* The payload of a message as the receiver sees it (valid during the handler). */
static inline struct span xcore_msg_payload(const struct xcore_msg *m)
{
    return (m->flags & XCORE_MSG_BORROWED) ? span_make(m->ptr, m->len)
                                           : span_make(m->bytes, m->len);
}

struct xcore_config {
    u32 shard_count;       /* 1 .. XCORE_SHARDS_MAX */
    u32 ring_slots;        /* power of two, 2 .. XCORE_RING_SLOTS_MAX; default 256 */
    u32 in_flight_max;     /* requests per pair awaiting reply, 1 .. ring_slots; default 128 */
    u32 poll_per_ring_max; /* messages per ring per xcore_poll; default 64 */
    /* Rung on the producer's thread by xcore_flush when target may sleep. */
    void (*doorbell)(void *ctx, u32 source, u32 target);
    void *doorbell_ctx;
};

void xcore_config_default(struct xcore_config *c, u32 shard_count);

struct xcore_stats {
    u64 sent;      /* messages accepted by xcore_send from this shard */
    u64 received;  /* messages handled (not AGAIN) by this shard */
    u64 full;      /* xcore_send calls refused with XCORE_EFULL */
    u64 flushes;   /* rings published by xcore_flush */
    u64 doorbells; /* doorbells this shard rang */
    u64 sleeps;    /* xcore_sleep_begin calls that allowed sleeping */
};

struct xcore;

/* Allocates the whole matrix (2 * N * N rings). NULL on a bad config or ENOMEM. */
struct xcore *xcore_create(const struct xcore_config *config);
void xcore_destroy(struct xcore *x);
u32 xcore_shard_count(const struct xcore *x);

/* Copies msg (header and, unless borrowed, msg->len inline bytes) into the next
 * slot of ring (source -> msg->target, msg->dir). *ticket (nullable) gets the
 * message's sequence number in its ring, for xcore_consumed. XCORE_OK or
 * XCORE_EFULL. Not visible to the target until xcore_flush (self: at once). */
int xcore_send(struct xcore *x, u32 source, const struct xcore_msg *msg, u64 *ticket);

/* Publishes every ring written since the last flush and rings doorbells.
 * Returns the number of rings published. */
u32 xcore_flush(struct xcore *x, u32 source);

/* Messages of ring (source -> target, dir) that the target has finished
 * handling: a message whose ticket is below this may have its borrowed bytes
 * freed by the source. */
u64 xcore_consumed(const struct xcore *x, u32 source, u32 target, enum xcore_dir dir);

/* Requests source sent to target whose reply source has not yet polled. */
u32 xcore_in_flight(const struct xcore *x, u32 source, u32 target);

/* Called once per message; returns XCORE_OK or XCORE_AGAIN. */
typedef int (*xcore_handler_fn)(void *ctx, const struct xcore_msg *msg);

/* Drains the rings into self (bounded: poll_per_ring_max per ring), peers
 * first, replies before requests. Returns the messages handled. */
u32 xcore_poll(struct xcore *x, u32 self, xcore_handler_fn handler, void *ctx);

/* True if any ring into self holds a published message. */
bool xcore_pending(const struct xcore *x, u32 self);

/* The wake protocol above. self must have flushed (nothing staged). */
bool xcore_sleep_begin(struct xcore *x, u32 self);
void xcore_sleep_end(struct xcore *x, u32 self);

void xcore_stats(const struct xcore *x, u32 self, struct xcore_stats *out);

#endif
