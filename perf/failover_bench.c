/*
 * failover_bench — how long a keel cluster takes to accept writes again after its leader dies.
 *
 * Starts a local cluster (3 nodes x 2 shards by default, 127.0.0.1 only, tests' cluster_proc),
 * keeps one writer per shard putting keys of that shard through a client of every node, and
 * kills -9 the leader of a shard, round after round (alternating shards). A sample is the time
 * from the kill to the first acknowledged write *issued after* the kill: that write was
 * committed by a new leader. The killed node restarts and the cluster settles between rounds.
 * Prints every sample, the median and p90, and the median in election timeouts (keeld's
 * election timeout is 1 s, randomized up to 2 s).
 */
#include "tests/integration/cluster_proc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ELECTION_TIMEOUT_MS 1000.0
#define ROUNDS_MAX          64

struct writer {
    struct cluster *c;
    uint16_t shard;
    pthread_t thread;
    atomic_bool stop;
    atomic_llong watch_from_ms; /* kill time; 0: not watching */
    atomic_llong first_ack_ms;  /* first ack of a write issued after watch_from_ms */
    atomic_ullong acked;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    keel_client *k = NULL;
    char key[48], value[64];
    memset(value, 'v', sizeof(value));
    for (uint64_t n = 0; !atomic_load(&w->stop); n++) {
        if (!k) k = cluster_client(w->c, -1);
        if (!k) {
            keeld_sleep_ms(10);
            continue;
        }
        snprintf(key, sizeof(key), "%s-%llu", w->shard ? "z" : "a", (unsigned long long)n);
        struct keel_put_args a = {.key = {key, strlen(key)}, .value = {value, sizeof(value)}};
        struct keel_result r;
        int64_t issued = keeld_now_ms();
        int rc = keel_put(k, &a, &r);
        if (rc == KEEL_STATUS_OK) {
            atomic_fetch_add(&w->acked, 1);
            int64_t from = atomic_load(&w->watch_from_ms);
            if (from > 0 && issued > from && atomic_load(&w->first_ack_ms) == 0)
                atomic_store(&w->first_ack_ms, keeld_now_ms());
        } else if (rc < 0) {
            keel_close(k);
            k = NULL;
        }
    }
    if (k) keel_close(k);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t one_round(struct cluster *c, struct writer *w)
{
    int leader = cluster_leader_of(c, w->shard);
    if (leader < 0) return -1;
    atomic_store(&w->first_ack_ms, 0);
    int64_t kill_ms = keeld_now_ms();
    atomic_store(&w->watch_from_ms, kill_ms);
    cluster_kill9(c, (uint32_t)leader);
    while (atomic_load(&w->first_ack_ms) == 0 && keeld_now_ms() - kill_ms < 30000)
        keeld_sleep_ms(2);
    int64_t ack = atomic_load(&w->first_ack_ms);
    atomic_store(&w->watch_from_ms, 0);
    printf("  shard %u: leader %s killed, writes acknowledged again after %lld ms\n", w->shard,
           c->name[leader], ack ? (long long)(ack - kill_ms) : -1LL);
    fflush(stdout);
    if (cluster_restart(c, (uint32_t)leader) != 0 || cluster_wait_leaders(c, 30000) != 0) return -1;
    if (cluster_wait_caught_up(c, (uint32_t)leader, 30000) != 0) return -1;
    keeld_sleep_ms(300);
    return ack ? ack - kill_ms : -1;
}

int main(int argc, char **argv)
{
    int rounds = 6;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: failover_bench [--rounds N (default 6, at most %d)]\n"
                    "  kills -9 a shard leader of a local 3-node cluster N times and\n"
                    "  prints the time to the first write a new leader acknowledged\n",
                    ROUNDS_MAX);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (rounds < 1 || rounds > ROUNDS_MAX) rounds = 6;
    static struct cluster c;
    c.extra[0] = "--split-keys";
    c.extra[1] = "m";
    if (cluster_start(&c, 3, 2) != 0) return 1;
    struct writer w[2] = {{.c = &c, .shard = 0}, {.c = &c, .shard = 1}};
    for (int i = 0; i < 2; i++) pthread_create(&w[i].thread, NULL, writer_main, &w[i]);
    keeld_sleep_ms(1000);
    int64_t samples[ROUNDS_MAX];
    int n = 0;
    for (int r = 0; r < rounds; r++) {
        int64_t ms = one_round(&c, &w[r % 2]);
        if (ms < 0) {
            fprintf(stderr, "failover_bench: round %d failed\n", r + 1);
            break;
        }
        samples[n++] = ms;
    }
    for (int i = 0; i < 2; i++) {
        atomic_store(&w[i].stop, true);
        pthread_join(w[i].thread, NULL);
    }
    cluster_stop(&c);
    if (n == 0) return 1;
    qsort(samples, (size_t)n, sizeof(samples[0]), cmp_i64);
    int64_t median = samples[n / 2], p90 = samples[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1];
    printf("failover: %d kills, median %lld ms (%.2f election timeouts), p90 %lld ms, min %lld, "
           "max %lld\n",
           n, (long long)median, (double)median / ELECTION_TIMEOUT_MS, (long long)p90,
           (long long)samples[0], (long long)samples[n - 1]);
    printf("summary: failover_median_ms=%lld election_timeouts=%.2f samples=%d\n",
           (long long)median, (double)median / ELECTION_TIMEOUT_MS, n);
    return n == rounds ? 0 : 1;
}
