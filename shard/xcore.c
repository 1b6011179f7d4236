/*
 * xcore.c — the N×N matrix of SPSC rings; the contract is in xcore.h.
 *
 * Layout of one ring: three cache lines, so the two threads never write the
 * same line.
 *
 *   line 0 (consumer writes):  head        next sequence number to read
 *   line 1 (producer writes):  tail        published end (release store)
 *                              tail_staged end including unpublished slots
 *                              head_seen   the producer's last load of head
 *                              in_flight   requests without a polled reply
 *                                          (request rings; the producer
 *                                          decrements it when it polls a reply)
 *   line 2 (read-only):        slots, mask
 *
 * Sequence numbers are u64 and never wrap in practice (2^64 messages); a slot
 * is slots[seq & mask]. Invariant: head <= tail <= tail_staged <= head +
 * slots, checked on every send and drain.
 */
#include "shard/xcore.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---- structures ------------------------------------------------------------------------- */

struct xcore_ring {
    alignas(XCORE_CACHE_LINE_SIZE) _Atomic u64 head;
    alignas(XCORE_CACHE_LINE_SIZE) _Atomic u64 tail;
    u64 tail_staged;
    u64 head_seen;
    u32 in_flight;
    alignas(XCORE_CACHE_LINE_SIZE) struct xcore_msg *slots;
    u64 mask;
};
static_assert(sizeof(struct xcore_ring) == 3 * XCORE_CACHE_LINE_SIZE, "three lines per ring");

struct xcore_shard {
    alignas(XCORE_CACHE_LINE_SIZE) _Atomic u32 sleeping; /* written by this shard */
    alignas(XCORE_CACHE_LINE_SIZE) u64 dirty;            /* targets with staged slots */
    struct xcore_stats stats;
};

struct xcore {
    struct xcore_config config;
    struct xcore_ring *rings;   /* [dir][source][target] */
    struct xcore_shard *shards; /* [shard] */
    struct xcore_msg *slots;    /* every ring's slots, one block */
};

static struct xcore_ring *xcore_ring(const struct xcore *x, u32 source, u32 target,
                                     enum xcore_dir dir)
{
    u32 n = x->config.shard_count;
    ASSERT(source < n && target < n);
    ASSERT(dir == XCORE_REQUEST || dir == XCORE_REPLY);
    return &x->rings[((size_t)dir * n + source) * n + target];
}

/* ---- setup ------------------------------------------------------------------------------ */

void xcore_config_default(struct xcore_config *c, u32 shard_count)
{
    ASSERT(c != NULL);
    ASSERT(shard_count >= 1 && shard_count <= XCORE_SHARDS_MAX);
    memset(c, 0, sizeof(*c));
    c->shard_count = shard_count;
    c->ring_slots = 256;
    c->in_flight_max = 128;
    c->poll_per_ring_max = 64;
}

static bool xcore_config_valid(const struct xcore_config *c)
{
    if (c->shard_count < 1 || c->shard_count > XCORE_SHARDS_MAX) return false;
    if (c->ring_slots < 2 || c->ring_slots > XCORE_RING_SLOTS_MAX) return false;
    if ((c->ring_slots & (c->ring_slots - 1)) != 0) return false;
    if (c->in_flight_max < 1 || c->in_flight_max > c->ring_slots) return false;
    return c->poll_per_ring_max >= 1;
}

struct xcore *xcore_create(const struct xcore_config *config)
{
    ASSERT(config != NULL);
    if (!xcore_config_valid(config)) return NULL;
    u32 n = config->shard_count;
    size_t rings = (size_t)2 * n * n;
    struct xcore *x = calloc(1, sizeof(*x));
    if (x == NULL) return NULL;
    x->config = *config;
    x->rings = aligned_alloc(XCORE_CACHE_LINE_SIZE, rings * sizeof(struct xcore_ring));
    x->shards = aligned_alloc(XCORE_CACHE_LINE_SIZE, n * sizeof(struct xcore_shard));
    x->slots = aligned_alloc(XCORE_CACHE_LINE_SIZE, rings * config->ring_slots * XCORE_SLOT_SIZE);
    if (x->rings == NULL || x->shards == NULL || x->slots == NULL) {
        xcore_destroy(x);
        return NULL;
    }
    /* Touch every slot now, so no page fault lands on the request path. */
    memset(x->slots, 0, rings * config->ring_slots * XCORE_SLOT_SIZE);
    memset(x->rings, 0, rings * sizeof(struct xcore_ring));
    memset(x->shards, 0, n * sizeof(struct xcore_shard));
    for (size_t i = 0; i < rings; i++) {
        atomic_init(&x->rings[i].head, 0);
        atomic_init(&x->rings[i].tail, 0);
        x->rings[i].slots = x->slots + i * config->ring_slots;
        x->rings[i].mask = config->ring_slots - 1;
    }
    for (u32 s = 0; s < n; s++) atomic_init(&x->shards[s].sleeping, 0);
    ASSERT(xcore_shard_count(x) == n);
    return x;
}

void xcore_destroy(struct xcore *x)
{
    if (x == NULL) return;
    free(x->slots);
    free(x->shards);
    free(x->rings);
    free(x);
}

u32 xcore_shard_count(const struct xcore *x)
{
    ASSERT(x != NULL);
    ASSERT(x->config.shard_count >= 1);
    return x->config.shard_count;
}

/* ---- producer --------------------------------------------------------------------------- */

/* Room for one more staged slot; reloads head only when the cached value says full. */
static bool xcore_ring_has_room(struct xcore_ring *r)
{
    ASSERT(r->tail_staged - r->head_seen <= r->mask + 1);
    if (r->tail_staged - r->head_seen <= r->mask) return true;
    /* Acquire: the consumer's reads of the slots it passed happen before we overwrite them. */
    r->head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
    ASSERT(r->head_seen <= r->tail_staged);
    return r->tail_staged - r->head_seen <= r->mask;
}

static void xcore_slot_write(struct xcore_msg *slot, u32 source, const struct xcore_msg *msg)
{
    bool borrowed = (msg->flags & XCORE_MSG_BORROWED) != 0;
    slot->source = (u16)source;
    slot->target = msg->target;
    slot->dir = msg->dir;
    slot->flags = msg->flags;
    slot->type = msg->type;
    slot->len = msg->len;
    slot->pad_ = 0;
    slot->cookie = msg->cookie;
    slot->ptr = borrowed ? msg->ptr : NULL;
    if (!borrowed && msg->len > 0) memcpy(slot->bytes, msg->bytes, msg->len);
    ASSERT(slot->len == msg->len);
}

int xcore_send(struct xcore *x, u32 source, const struct xcore_msg *msg, u64 *ticket)
{
    ASSERT(x != NULL && msg != NULL);
    ASSERT(source < x->config.shard_count && msg->target < x->config.shard_count);
    ASSERT(msg->dir == XCORE_REQUEST || msg->dir == XCORE_REPLY);
    ASSERT((msg->flags & ~XCORE_MSG_BORROWED) == 0);
    ASSERT_IMPLIES(!(msg->flags & XCORE_MSG_BORROWED), msg->len <= XCORE_INLINE_SIZE_MAX);
    ASSERT_IMPLIES(msg->flags & XCORE_MSG_BORROWED, msg->ptr != NULL || msg->len == 0);
    struct xcore_shard *sh = &x->shards[source];
    struct xcore_ring *r = xcore_ring(x, source, msg->target, (enum xcore_dir)msg->dir);
    bool request = msg->dir == XCORE_REQUEST;
    if ((request && r->in_flight >= x->config.in_flight_max) || !xcore_ring_has_room(r)) {
        testcase(request && r->in_flight == x->config.in_flight_max);
        sh->stats.full++;
        return XCORE_EFULL;
    }
    u64 seq = r->tail_staged;
    xcore_slot_write(&r->slots[seq & r->mask], source, msg);
    r->tail_staged = seq + 1;
    if (request) r->in_flight++;
    if (ticket != NULL) *ticket = seq;
    sh->stats.sent++;
    if (msg->target == source) {
        /* Self path: one thread on both ends, so publish at once and never ring. */
        atomic_store_explicit(&r->tail, r->tail_staged, memory_order_release);
    } else {
        sh->dirty |= (u64)1 << msg->target;
    }
    ASSERT(r->tail_staged - r->head_seen <= r->mask + 1);
    ASSERT(r->in_flight <= x->config.in_flight_max);
    return XCORE_OK;
}

/* Publishes the staged slots of one ring; true if there were any. */
static bool xcore_publish(struct xcore_ring *r)
{
    u64 tail = atomic_load_explicit(&r->tail, memory_order_relaxed); /* ours */
    ASSERT(tail <= r->tail_staged);
    if (tail == r->tail_staged) return false;
    /* Release: the slot writes happen before the consumer's acquire load of tail. */
    atomic_store_explicit(&r->tail, r->tail_staged, memory_order_release);
    return true;
}

u32 xcore_flush(struct xcore *x, u32 source)
{
    ASSERT(x != NULL);
    ASSERT(source < x->config.shard_count);
    struct xcore_shard *sh = &x->shards[source];
    u64 published = 0;
    u32 rings = 0;
    for (u64 m = sh->dirty; m != 0; m &= m - 1) {
        u32 target = (u32)__builtin_ctzll(m);
        bool any = xcore_publish(xcore_ring(x, source, target, XCORE_REQUEST));
        any |= xcore_publish(xcore_ring(x, source, target, XCORE_REPLY));
        rings += any;
        if (any) published |= (u64)1 << target;
    }
    sh->dirty = 0;
    sh->stats.flushes += rings;
    if (published == 0) return rings;
    /* Pairs with the fence in xcore_sleep_begin (store-buffering): either the target sees
     * our tail or we see its sleeping flag. */
    atomic_thread_fence(memory_order_seq_cst);
    for (u64 m = published; m != 0; m &= m - 1) {
        u32 target = (u32)__builtin_ctzll(m);
        if (atomic_load_explicit(&x->shards[target].sleeping, memory_order_relaxed) == 0) continue;
        sh->stats.doorbells++;
        if (x->config.doorbell != NULL) x->config.doorbell(x->config.doorbell_ctx, source, target);
    }
    ASSERT(sh->dirty == 0);
    return rings;
}

u64 xcore_consumed(const struct xcore *x, u32 source, u32 target, enum xcore_dir dir)
{
    struct xcore_ring *r = xcore_ring(x, source, target, dir);
    /* Acquire: the consumer's handler (and its copy of the bytes) happened before. */
    u64 head = atomic_load_explicit(&r->head, memory_order_acquire);
    ASSERT(head <= r->tail_staged);
    return head;
}

u32 xcore_in_flight(const struct xcore *x, u32 source, u32 target)
{
    struct xcore_ring *r = xcore_ring(x, source, target, XCORE_REQUEST);
    ASSERT(r->in_flight <= x->config.in_flight_max);
    return r->in_flight;
}

/* ---- consumer --------------------------------------------------------------------------- */

/* Handles at most poll_per_ring_max messages of one ring, then publishes its head once. */
static u32 xcore_drain(struct xcore *x, u32 self, struct xcore_ring *r, xcore_handler_fn handler,
                       void *ctx)
{
    u64 head = atomic_load_explicit(&r->head, memory_order_relaxed); /* ours */
    u64 tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    ASSERT(head <= tail && tail - head <= r->mask + 1);
    u32 n = 0;
    while (head != tail && n < x->config.poll_per_ring_max) {
        const struct xcore_msg *m = &r->slots[head & r->mask];
        ASSERT(m->target == self && m->source < x->config.shard_count);
        struct xcore_ring *req = NULL;
        if (m->dir == XCORE_REPLY) {
            /* A reply frees its request's place before the handler may send again. */
            req = xcore_ring(x, self, m->source, XCORE_REQUEST);
            ASSERT(req->in_flight > 0);
            req->in_flight--;
        }
        int rc = handler(ctx, m);
        ASSERT(rc == XCORE_OK || rc == XCORE_AGAIN);
        if (rc == XCORE_AGAIN) {
            if (req != NULL) req->in_flight++;
            break;
        }
        head++;
        n++;
    }
    /* Release: our reads of the slots (and the handler's copies) happen before the
     * producer reuses them or frees borrowed bytes. */
    if (n > 0) atomic_store_explicit(&r->head, head, memory_order_release);
    x->shards[self].stats.received += n;
    return n;
}

u32 xcore_poll(struct xcore *x, u32 self, xcore_handler_fn handler, void *ctx)
{
    ASSERT(x != NULL && handler != NULL);
    ASSERT(self < x->config.shard_count);
    u32 n = x->config.shard_count, handled = 0;
    /* Peers first (rotating from self + 1), then self; each peer's replies before its
     * requests, so in-flight places free up before new work arrives. */
    for (u32 i = 1; i <= n; i++) {
        u32 peer = (self + i) % n;
        handled += xcore_drain(x, self, xcore_ring(x, peer, self, XCORE_REPLY), handler, ctx);
        handled += xcore_drain(x, self, xcore_ring(x, peer, self, XCORE_REQUEST), handler, ctx);
    }
    ASSERT(handled <= 2 * n * x->config.poll_per_ring_max);
    return handled;
}

bool xcore_pending(const struct xcore *x, u32 self)
{
    ASSERT(x != NULL);
    ASSERT(self < x->config.shard_count);
    for (u32 s = 0; s < x->config.shard_count; s++) {
        for (int d = XCORE_REQUEST; d <= XCORE_REPLY; d++) {
            struct xcore_ring *r = xcore_ring(x, s, self, (enum xcore_dir)d);
            u64 head = atomic_load_explicit(&r->head, memory_order_relaxed); /* ours */
            if (atomic_load_explicit(&r->tail, memory_order_acquire) != head) return true;
        }
    }
    return false;
}

bool xcore_sleep_begin(struct xcore *x, u32 self)
{
    ASSERT(x != NULL);
    ASSERT(self < x->config.shard_count && x->shards[self].dirty == 0);
    struct xcore_shard *sh = &x->shards[self];
    atomic_store_explicit(&sh->sleeping, 1, memory_order_relaxed);
    /* Pairs with the fence in xcore_flush; see the wake protocol in xcore.h. */
    atomic_thread_fence(memory_order_seq_cst);
    if (xcore_pending(x, self)) {
        atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
        return false;
    }
    sh->stats.sleeps++;
    return true;
}

void xcore_sleep_end(struct xcore *x, u32 self)
{
    ASSERT(x != NULL);
    ASSERT(self < x->config.shard_count);
    atomic_store_explicit(&x->shards[self].sleeping, 0, memory_order_relaxed);
}

void xcore_stats(const struct xcore *x, u32 self, struct xcore_stats *out)
{
    ASSERT(x != NULL && out != NULL);
    ASSERT(self < x->config.shard_count);
    *out = x->shards[self].stats;
}
