/* test_zk_cq.c — the ZooKeeper driver's completion queue (perf/zk_cq.h): order, batches,
 * many producers against one consumer, and a sleeping consumer woken by a push. */
#include "perf/zk_cq.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

Test(zk_cq, take_returns_pushed_entries_in_order)
{
    struct zk_cq q;
    cr_assert_eq(zk_cq_init(&q, 8), 0);
    int tags[3];
    for (int i = 0; i < 3; i++) zk_cq_push(&q, &tags[i], -i, 100u + (u64)i);
    const struct zk_cq_entry *batch = NULL;
    cr_assert_eq(zk_cq_take(&q, 0, &batch), 3u);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(batch[i].tag, &tags[i]);
        cr_assert_eq(batch[i].status, -i);
        cr_assert_eq(batch[i].done_ns, 100u + (u64)i);
    }
    cr_assert_eq(zk_cq_take(&q, 0, &batch), 0u, "a take empties the queue");
    zk_cq_free(&q);
}

Test(zk_cq, empty_take_with_timeout_returns_nothing)
{
    struct zk_cq q;
    cr_assert_eq(zk_cq_init(&q, 1), 0);
    const struct zk_cq_entry *batch = NULL;
    cr_assert_eq(zk_cq_take(&q, 0, &batch), 0u);
    cr_assert_eq(zk_cq_take(&q, 2000, &batch), 0u);
    zk_cq_free(&q);
}

Test(zk_cq, batch_survives_pushes_until_the_next_take)
{
    struct zk_cq q;
    cr_assert_eq(zk_cq_init(&q, 4), 0);
    int a, b;
    zk_cq_push(&q, &a, 1, 1);
    zk_cq_push(&q, &a, 2, 2);
    const struct zk_cq_entry *first = NULL;
    cr_assert_eq(zk_cq_take(&q, 0, &first), 2u);
    for (int i = 0; i < 4; i++) zk_cq_push(&q, &b, 10 + i, 10); /* full capacity again */
    cr_assert_eq(first[0].tag, &a);
    cr_assert_eq(first[0].status, 1);
    cr_assert_eq(first[1].status, 2);
    const struct zk_cq_entry *second = NULL;
    cr_assert_eq(zk_cq_take(&q, 0, &second), 4u);
    cr_assert_neq(second, first);
    for (int i = 0; i < 4; i++) cr_assert_eq(second[i].status, 10 + i);
    zk_cq_free(&q);
}

enum { PRODUCERS = 4, PER_PRODUCER = 20000 };

struct producer {
    struct zk_cq *q;
    uintptr_t id;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) zk_cq_push(p->q, (void *)p->id, i, 0);
    return NULL;
}

Test(zk_cq, many_producers_one_consumer_lose_nothing)
{
    struct zk_cq q;
    cr_assert_eq(zk_cq_init(&q, PRODUCERS * PER_PRODUCER), 0);
    pthread_t th[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){&q, (uintptr_t)i + 1};
        cr_assert_eq(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    int next[PRODUCERS] = {0};
    int seen = 0;
    while (seen < PRODUCERS * PER_PRODUCER) {
        const struct zk_cq_entry *batch = NULL;
        u32 n = zk_cq_take(&q, 100000, &batch);
        for (u32 i = 0; i < n; i++) {
            uintptr_t id = (uintptr_t)batch[i].tag;
            cr_assert(id >= 1 && id <= PRODUCERS);
            cr_assert_eq(batch[i].status, next[id - 1], "producer %zu out of order", (size_t)id);
            next[id - 1]++;
        }
        seen += (int)n;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(next[i], PER_PRODUCER);
    }
    const struct zk_cq_entry *batch = NULL;
    cr_assert_eq(zk_cq_take(&q, 0, &batch), 0u, "nothing beyond what was pushed");
    zk_cq_free(&q);
}

static void *push_later(void *arg)
{
    nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
    zk_cq_push(arg, arg, 7, 0);
    return NULL;
}

/* A consumer asleep in take() is woken by a push. Without the wake-up, take would sleep its
 * whole 60 s and Criterion's 30 s timeout fails the test (a liveness check, not a speed one). */
Test(zk_cq, push_wakes_a_sleeping_consumer, .timeout = 30)
{
    struct zk_cq q;
    cr_assert_eq(zk_cq_init(&q, 1), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, push_later, &q), 0);
    const struct zk_cq_entry *batch = NULL;
    u32 n = zk_cq_take(&q, 60u * 1000 * 1000, &batch);
    cr_assert_eq(n, 1u);
    cr_assert_eq(batch[0].tag, &q);
    cr_assert_eq(batch[0].status, 7);
    pthread_join(th, NULL);
    zk_cq_free(&q);
}
