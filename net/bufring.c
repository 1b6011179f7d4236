/*
 * bufring.c — net/bufring.h: a provided-buffer ring on our own mapping.
 */
#include "net/bufring.h"

#include "core/assert.h"

#include <liburing.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static_assert(sizeof(struct io_uring_buf) == 16, "a ring slot is 16 bytes");

static size_t bufring_page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

static void bufring_unmap(struct bufring *br)
{
    if (br->ring != NULL) munmap(br->ring, br->ring_size_bytes);
    if (br->bufs != NULL) munmap(br->bufs, br->bufs_size_bytes);
    free(br->held);
    br->ring = NULL;
    br->bufs = NULL;
    br->held = NULL;
}

static int bufring_map(struct bufring *br)
{
    br->ring_size_bytes = bufring_page_round((size_t)br->count * sizeof(struct io_uring_buf));
    br->bufs_size_bytes = bufring_page_round((size_t)br->count * br->buffer_size_bytes);
    void *ring =
        mmap(NULL, br->ring_size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *bufs =
        mmap(NULL, br->bufs_size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    br->ring = ring == MAP_FAILED ? NULL : ring;
    br->bufs = bufs == MAP_FAILED ? NULL : bufs;
    br->held = calloc(br->count, 1); /* start-up allocation */
    if (br->ring == NULL || br->bufs == NULL || br->held == NULL) {
        bufring_unmap(br);
        return -ENOMEM;
    }
    return 0;
}

int bufring_init(struct bufring *br, struct loop *l, u16 group_id, u32 count, u32 buffer_size_bytes)
{
    ASSERT(br != NULL && l != NULL);
    ASSERT(count >= 1 && count <= BUFRING_COUNT_MAX && (count & (count - 1)) == 0);
    ASSERT(buffer_size_bytes > 0);
    memset(br, 0, sizeof(*br));
    br->loop = l;
    br->count = count;
    br->buffer_size_bytes = buffer_size_bytes;
    br->group_id = group_id;
    int rc = bufring_map(br);
    if (rc < 0) return rc;
    struct io_uring_buf_ring *ring = br->ring;
    io_uring_buf_ring_init(ring);
    int mask = io_uring_buf_ring_mask(count);
    for (u32 bid = 0; bid < count; bid++) { /* count <= BUFRING_COUNT_MAX */
        io_uring_buf_ring_add(ring, br->bufs + (size_t)bid * buffer_size_bytes, buffer_size_bytes,
                              (u16)bid, mask, (int)bid);
    }
    io_uring_buf_ring_advance(ring, (int)count);
    rc = loop_buf_ring_register(l, br->ring, count, group_id);
    if (rc < 0) {
        bufring_unmap(br);
        return rc;
    }
    ASSERT(br->held_count == 0);
    return 0;
}

void bufring_deinit(struct bufring *br)
{
    ASSERT(br != NULL && br->ring != NULL);
    int rc = loop_buf_ring_unregister(br->loop, br->group_id);
    ASSERT(rc == 0);
    bufring_unmap(br);
    ASSERT(br->ring == NULL);
}

u8 *bufring_take(struct bufring *br, u32 cqe_flags, int res)
{
    ASSERT(cqe_flags & LOOP_CQE_F_BUFFER);
    ASSERT(res > 0 && (u32)res <= br->buffer_size_bytes);
    u16 bid = loop_cqe_buffer_id(cqe_flags);
    ASSERT(bid < br->count);
    ASSERT(br->held[bid] == 0);
    br->held[bid] = 1;
    br->held_count++;
    ASSERT(br->held_count <= br->count);
    return br->bufs + (size_t)bid * br->buffer_size_bytes;
}

void bufring_recycle(struct bufring *br, u16 bid)
{
    ASSERT(bid < br->count);
    ASSERT(br->held[bid] != 0);
    ASSERT(br->held_count > 0);
    br->held[bid] = 0;
    br->held_count--;
    struct io_uring_buf_ring *ring = br->ring;
    io_uring_buf_ring_add(ring, br->bufs + (size_t)bid * br->buffer_size_bytes,
                          br->buffer_size_bytes, bid, io_uring_buf_ring_mask(br->count), 0);
    io_uring_buf_ring_advance(ring, 1);
}

u32 bufring_held(const struct bufring *br)
{
    ASSERT(br->held_count <= br->count);
    return br->held_count;
}
