/*
 * zk_cq.h — the completion queue between the ZooKeeper client's threads and one keelbench
 * engine thread (perf/drv_zk.c). libzookeeper_mt calls completions on a thread of its own
 * per session, but bench_driver.h lets a driver call `done` only from poll() on the engine
 * thread; so a completion is pushed here and the engine thread takes it out.
 *
 * Contract:
 *  - Many producers (any thread) push entries; exactly one consumer (the thread that owns
 *    the queue) takes them. capacity bounds the entries waiting at once: the driver sizes
 *    it to the requests that can be outstanding, one entry each, and a push beyond it is
 *    a broken invariant (ASSERT).
 *  - Double-buffered: a take swaps the producers' array with the consumer's under the lock
 *    and returns the whole batch, so the lock is held for O(1) on both sides and the
 *    consumer reads its batch without it. The batch stays valid until the next take.
 *  - The consumer may wait: take(timeout_us) sleeps on a condition variable (monotonic
 *    clock) until an entry is pushed or timeout_us passed. A producer signals only when
 *    the consumer sleeps, so a busy queue costs one lock round trip per push.
 */
#ifndef KEEL_PERF_ZK_CQ_H
#define KEEL_PERF_ZK_CQ_H

#include "core/types.h"

#include <pthread.h>
#include <stdbool.h>

struct zk_cq_entry {
    void *tag;   /* the producer's request (drv_zk: its slot) */
    int status;  /* 0 or the producer's error code */
    u64 done_ns; /* when the producer saw the completion (CLOCK_MONOTONIC) */
};

struct zk_cq {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct zk_cq_entry *buf[2]; /* buf[fill] receives pushes; the other is the taken batch */
    u32 fill;
    u32 count; /* entries in buf[fill] */
    u32 capacity;
    bool sleeping; /* the consumer waits on wake */
};

/* 0, or -1 when memory or a pthread object could not be had (nothing to free then). */
int zk_cq_init(struct zk_cq *q, u32 capacity);
/* Frees the queue; no thread may push or take any more. */
void zk_cq_free(struct zk_cq *q);
/* Any thread: appends one entry and wakes a sleeping consumer. */
void zk_cq_push(struct zk_cq *q, void *tag, int status, u64 done_ns);
/* The consumer: waits up to timeout_us (0: not at all) until an entry is there, then
 * returns the number of entries and points *batch at them (valid until the next take). */
u32 zk_cq_take(struct zk_cq *q, u64 timeout_us, const struct zk_cq_entry **batch);

#endif
