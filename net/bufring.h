/*
 * bufring.h — a provided-buffer ring: the buffers a loop's multishot recvs fill.
 *
 * The kernel picks a free buffer of the group for each received chunk and
 * names it in the CQE (LOOP_CQE_F_BUFFER, loop_cqe_buffer_id()). The consumer
 * takes it, reads the bytes, and recycles it; only then can the kernel fill it
 * again. When every buffer is held, a recv on the group completes with
 * -ENOBUFS and without LOOP_CQE_F_MORE: that is backpressure. The owner stops
 * reading that socket until it has recycled buffers, then re-arms the recv.
 * Nothing is buffered beyond the ring: memory is count x buffer_size_bytes,
 * fixed at start-up.
 *
 * Contract:
 *  - Owner thread of the loop only; one bufring per group id per loop.
 *  - Memory: bufring_init maps the ring (16 bytes a slot, page aligned) and the
 *    buffers (count x buffer_size_bytes) and allocates a held-flag per buffer;
 *    nothing after. liburing 2.3 has no io_uring_setup_buf_ring, so the ring is
 *    our own anonymous mapping, registered with io_uring_register_buf_ring.
 *  - A buffer is either the kernel's or held by the consumer (bufring_take to
 *    bufring_recycle); taking a held buffer or recycling a free one ASSERTs.
 *  - Recycled buffers go back at the ring's tail, so the kernel hands buffers
 *    out in the order they were returned; bytes are never reordered because
 *    each CQE names its buffer and CQEs of one recv arrive in stream order.
 *  - Errors: bufring_init returns 0 or -errno (the kernel lacks buffer rings:
 *    -EINVAL; out of memory: -ENOMEM), leaving nothing mapped or registered.
 */
#ifndef KEEL_NET_BUFRING_H
#define KEEL_NET_BUFRING_H

#include "core/types.h"
#include "net/loop.h"

#define BUFRING_COUNT_MAX 32768u /* the kernel's limit on ring entries */

struct bufring {
    struct loop *loop;
    void *ring; /* struct io_uring_buf_ring, count slots */
    size_t ring_size_bytes;
    u8 *bufs; /* count x buffer_size_bytes */
    size_t bufs_size_bytes;
    u8 *held;  /* held[bid] != 0: the consumer has it */
    u32 count; /* power of two, 1..BUFRING_COUNT_MAX */
    u32 buffer_size_bytes;
    u32 held_count;
    u16 group_id;
};

/* Maps, fills and registers count buffers of buffer_size_bytes as group_id on l. */
int bufring_init(struct bufring *br, struct loop *l, u16 group_id, u32 count,
                 u32 buffer_size_bytes);
/* Unregisters and unmaps. No recv on the group may be in flight. */
void bufring_deinit(struct bufring *br);

/* The buffer a recv CQE names (cqe_flags has LOOP_CQE_F_BUFFER; 0 < res <= buffer size);
 * marks it held. */
u8 *bufring_take(struct bufring *br, u32 cqe_flags, int res);
/* Gives a held buffer back to the kernel. */
void bufring_recycle(struct bufring *br, u16 bid);
/* Buffers the consumer holds now (count - held_count are the kernel's). */
u32 bufring_held(const struct bufring *br);

#endif
