/* zk_cq.c — the double-buffered completion queue of zk_cq.h. */
#include "perf/zk_cq.h"

#include "core/assert.h"

#include <stdlib.h>
#include <time.h>

int zk_cq_init(struct zk_cq *q, u32 capacity)
{
    ASSERT(q != NULL && capacity > 0);
    *q = (struct zk_cq){.capacity = capacity};
    q->buf[0] = calloc(capacity, sizeof(struct zk_cq_entry));
    q->buf[1] = calloc(capacity, sizeof(struct zk_cq_entry));
    pthread_condattr_t attr;
    bool attr_ok = pthread_condattr_init(&attr) == 0;
    bool cond_ok = attr_ok && pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
                   pthread_cond_init(&q->wake, &attr) == 0;
    if (attr_ok) pthread_condattr_destroy(&attr);
    bool lock_ok = pthread_mutex_init(&q->lock, NULL) == 0;
    if (q->buf[0] != NULL && q->buf[1] != NULL && cond_ok && lock_ok) return 0;
    if (cond_ok) pthread_cond_destroy(&q->wake);
    if (lock_ok) pthread_mutex_destroy(&q->lock);
    free(q->buf[0]);
    free(q->buf[1]);
    *q = (struct zk_cq){0};
    return -1;
}

void zk_cq_free(struct zk_cq *q)
{
    ASSERT(q != NULL && q->capacity > 0);
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    free(q->buf[0]);
    free(q->buf[1]);
    *q = (struct zk_cq){0};
}

void zk_cq_push(struct zk_cq *q, void *tag, int status, u64 done_ns)
{
    pthread_mutex_lock(&q->lock);
    ASSERT(q->count < q->capacity);
    q->buf[q->fill][q->count++] = (struct zk_cq_entry){tag, status, done_ns};
    bool wake = q->sleeping;
    q->sleeping = false;
    pthread_mutex_unlock(&q->lock);
    if (wake) pthread_cond_signal(&q->wake);
}

/* The absolute CLOCK_MONOTONIC time timeout_us from now. */
static struct timespec deadline_after(u64 timeout_us)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    u64 ns = (u64)t.tv_nsec + (timeout_us % 1000000u) * 1000u;
    t.tv_sec += (time_t)(timeout_us / 1000000u + ns / 1000000000u);
    t.tv_nsec = (long)(ns % 1000000000u);
    return t;
}

u32 zk_cq_take(struct zk_cq *q, u64 timeout_us, const struct zk_cq_entry **batch)
{
    ASSERT(q != NULL && batch != NULL);
    pthread_mutex_lock(&q->lock);
    if (q->count == 0 && timeout_us > 0) {
        struct timespec deadline = deadline_after(timeout_us);
        while (q->count == 0) {
            q->sleeping = true;
            if (pthread_cond_timedwait(&q->wake, &q->lock, &deadline) != 0) break;
        }
        q->sleeping = false;
    }
    u32 n = q->count;
    *batch = q->buf[q->fill];
    q->fill ^= 1u;
    q->count = 0;
    pthread_mutex_unlock(&q->lock);
    ASSERT(n <= q->capacity);
    return n;
}
