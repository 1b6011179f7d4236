/*
 * test_cluster.c — a 3-node keel cluster of real processes on loopback (cluster_proc.h):
 *  - failover: while writers put, kill -9 the leader of each group in turn; writes resume (the
 *    time from the kill to the first write acknowledged by a new leader is printed); the killed
 *    node restarts and catches up; every acknowledged write is then on every node;
 *  - catch-up of a restarted node by the log, then by a snapshot (compaction forced with a small
 *    --snapshot-wal-bytes and --snapshot-catchup-entries);
 *  - a node added (learner, then promoted) and another removed, under load.
 * Keys below "m" live on shard 0, the rest on shard 1 (--split-keys m).
 */
#include "cluster_proc.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WRITERS     4
#define ACKED_MAX   200000
#define VALUE_BYTES 64
#define WAIT_MS     30000
static const char *const shard_prefix[2] = {"a", "z"};

/* ---- writers -------------------------------------------------------------------------------- */

struct load {
    struct cluster *c;
    atomic_bool stop;
    pthread_t threads[WRITERS];
    /* acknowledged writes: key numbers, per writer */
    uint32_t acked[WRITERS][ACKED_MAX];
    atomic_uint acked_count[WRITERS];
    atomic_uint failed;
    /* per shard: (issue time, ack time) of the last acknowledged write, ms */
    atomic_llong last_issue_ms[2];
    atomic_llong first_ack_after_ms[2]; /* of a write issued after watch_from_ms */
    atomic_llong watch_from_ms[2];
};

struct writer_arg {
    struct load *l;
    uint32_t id;
};

static void key_of(uint32_t writer, uint32_t n, char *key, size_t len)
{
    snprintf(key, len, "%s-w%u-%07u", shard_prefix[n % 2], writer, n);
}

static void note_ack(struct load *l, uint32_t shard, int64_t issued_ms)
{
    int64_t now = keeld_now_ms();
    int64_t from = atomic_load(&l->watch_from_ms[shard]);
    if (from > 0 && issued_ms > from && atomic_load(&l->first_ack_after_ms[shard]) == 0)
        atomic_store(&l->first_ack_after_ms[shard], now);
    atomic_store(&l->last_issue_ms[shard], issued_ms);
}

static void *writer_main(void *arg)
{
    struct writer_arg *w = arg;
    struct load *l = w->l;
    keel_client *k = NULL;
    char key[48], value[VALUE_BYTES];
    memset(value, 'v', sizeof(value));
    for (uint32_t n = 0; !atomic_load(&l->stop) && n < ACKED_MAX; n++) {
        if (!k) k = cluster_client(l->c, -1);
        if (!k) {
            keeld_sleep_ms(20);
            continue;
        }
        key_of(w->id, n, key, sizeof(key));
        struct keel_put_args a = {.key = {key, strlen(key)}, .value = {value, sizeof(value)}};
        struct keel_result r;
        int64_t issued = keeld_now_ms();
        int rc = keel_put(k, &a, &r);
        if (rc == KEEL_STATUS_OK) {
            uint32_t i = atomic_load(&w->l->acked_count[w->id]);
            l->acked[w->id][i] = n;
            atomic_store(&l->acked_count[w->id], i + 1);
            note_ack(l, n % 2, issued);
        } else {
            atomic_fetch_add(&l->failed, 1);
            if (rc < 0) { /* the connection: start over with a fresh client */
                keel_close(k);
                k = NULL;
            }
            keeld_sleep_ms(5);
        }
    }
    if (k) keel_close(k);
    return NULL;
}

static struct writer_arg wargs[WRITERS];

static struct load *load_start(struct cluster *c)
{
    struct load *l = calloc(1, sizeof(*l));
    cr_assert(l != NULL);
    l->c = c;
    for (uint32_t i = 0; i < WRITERS; i++) {
        wargs[i] = (struct writer_arg){l, i};
        cr_assert(pthread_create(&l->threads[i], NULL, writer_main, &wargs[i]) == 0);
    }
    return l;
}

static uint32_t load_stop(struct load *l)
{
    atomic_store(&l->stop, true);
    uint32_t total = 0;
    for (uint32_t i = 0; i < WRITERS; i++) {
        pthread_join(l->threads[i], NULL);
        total += atomic_load(&l->acked_count[i]);
    }
    return total;
}

/* Waits until writers acknowledged more writes on both shards. */
static void load_progress(struct load *l, int64_t after_ms)
{
    int64_t deadline = keeld_now_ms() + WAIT_MS;
    while (keeld_now_ms() < deadline) {
        if (atomic_load(&l->last_issue_ms[0]) > after_ms &&
            atomic_load(&l->last_issue_ms[1]) > after_ms)
            return;
        keeld_sleep_ms(10);
    }
    cr_assert_fail("writes did not resume on both shards");
}

/* Every acknowledged key is on node i (serializable reads on that node alone). */
static void check_acked_on(struct cluster *c, struct load *l, uint32_t i)
{
    keel_client *k = cluster_client(c, (int)i);
    cr_assert(k != NULL, "connect to %s", c->name[i]);
    uint32_t checked = 0;
    for (uint32_t w = 0; w < WRITERS; w++) {
        uint32_t n = atomic_load(&l->acked_count[w]);
        for (uint32_t j = 0; j < n; j++) {
            char key[48];
            key_of(w, l->acked[w][j], key, sizeof(key));
            struct keel_range_args a = {.key = {key, strlen(key)}, .serializable = true};
            struct keel_result r;
            int rc = keel_get(k, &a, &r);
            cr_assert_eq(rc, KEEL_STATUS_OK, "get %s on %s: %d", key, c->name[i], rc);
            cr_assert_eq(r.u.range.kvs_len, 1, "acknowledged key %s missing on %s", key,
                         c->name[i]);
            checked++;
        }
    }
    keel_close(k);
    fprintf(stderr, "cluster: %s holds all %u acknowledged writes\n", c->name[i], checked);
}

static void start3(struct cluster *c, const char *const *extra)
{
    memset(c, 0, sizeof(*c));
    uint32_t n = 0;
    c->extra[n++] = "--split-keys";
    c->extra[n++] = "m";
    for (uint32_t i = 0; extra && extra[i] && n + 1 < CLUSTER_EXTRA_MAX; i++)
        c->extra[n++] = extra[i];
    cr_assert_eq(cluster_start(c, 3, 2), 0, "cluster did not start");
}

/* ---- failover --------------------------------------------------------------------------- */

Test(cluster, failover_of_each_group)
{
    static struct cluster c;
    start3(&c, NULL);
    struct load *l = load_start(&c);
    load_progress(l, keeld_now_ms());
    for (uint16_t g = 0; g < 2; g++) {
        int leader = cluster_leader_of(&c, g);
        cr_assert(leader >= 0, "shard %u has a leader", g);
        int64_t kill_ms = keeld_now_ms();
        atomic_store(&l->first_ack_after_ms[g], 0);
        atomic_store(&l->watch_from_ms[g], kill_ms);
        cluster_kill9(&c, (uint32_t)leader);
        int64_t deadline = kill_ms + WAIT_MS;
        while (atomic_load(&l->first_ack_after_ms[g]) == 0 && keeld_now_ms() < deadline)
            keeld_sleep_ms(5);
        int64_t acked = atomic_load(&l->first_ack_after_ms[g]);
        cr_assert(acked > 0, "no write on shard %u was acknowledged after killing its leader", g);
        printf("failover: shard %u, leader %s killed: first write acknowledged by a new leader "
               "after %lld ms\n",
               g, c.name[leader], (long long)(acked - kill_ms));
        fflush(stdout);
        cr_assert_eq(cluster_restart(&c, (uint32_t)leader), 0, "restart %s", c.name[leader]);
        cr_assert_eq(cluster_wait_leaders(&c, WAIT_MS), 0);
        load_progress(l, keeld_now_ms());
    }
    uint32_t acked = load_stop(l);
    fprintf(stderr, "cluster: %u writes acknowledged, %u failed or unknown\n", acked,
            atomic_load(&l->failed));
    cr_assert(acked > 100);
    for (uint32_t i = 0; i < c.nodes; i++) {
        cr_assert_eq(cluster_wait_caught_up(&c, i, WAIT_MS), 0, "%s catches up", c.name[i]);
        check_acked_on(&c, l, i);
    }
    free(l);
    cluster_stop(&c);
}

/* ---- catch-up by log, then by snapshot --------------------------------------------------- */

static bool log_has(const struct cluster *c, uint32_t i, const char *text)
{
    FILE *f = fopen(c->p[i].log_path, "r");
    if (!f) return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f)) found = strstr(line, text) != NULL;
    fclose(f);
    return found;
}

/* A node that leads no shard (so that killing it moves no leader), or node 0. */
static uint32_t pick_follower(struct cluster *c)
{
    for (uint32_t i = 0; i < c->nodes; i++) {
        bool leads = false;
        for (uint16_t g = 0; g < c->shards; g++) leads |= cluster_leader_of(c, g) == (int)i;
        if (!leads) return i;
    }
    return 0;
}

static void write_keys(struct cluster *c, const char *tag, uint32_t count, size_t value_bytes)
{
    keel_client *k = cluster_client(c, -1);
    cr_assert(k != NULL);
    char *value = malloc(value_bytes);
    memset(value, 'x', value_bytes);
    for (uint32_t n = 0; n < count; n++) {
        char key[48];
        snprintf(key, sizeof(key), "%s-%s-%06u", shard_prefix[n % 2], tag, n);
        struct keel_put_args a = {.key = {key, strlen(key)}, .value = {value, value_bytes}};
        struct keel_result r;
        int rc = -1;
        /* A put of the same value is safe to repeat: retried through leader changes (leader
         * balancing moves leaders while these writes run). */
        for (int t = 0; t < 100 && rc != KEEL_STATUS_OK; t++) {
            rc = keel_put(k, &a, &r);
            if (rc == KEEL_STATUS_OK) break;
            cr_assert(rc < 0 || rc == KEEL_STATUS_UNAVAILABLE || rc == KEEL_STATUS_NOT_LEADER ||
                          rc == KEEL_STATUS_LEADER_CHANGED,
                      "put %s: %d", key, rc);
            if (rc < 0) {
                keel_close(k);
                k = cluster_client(c, -1);
                cr_assert(k != NULL);
            }
            keeld_sleep_ms(20);
        }
        cr_assert_eq(rc, KEEL_STATUS_OK, "put %s: %d", key, rc);
    }
    free(value);
    keel_close(k);
}

static void check_keys_on(struct cluster *c, uint32_t i, const char *tag, uint32_t count)
{
    keel_client *k = cluster_client(c, (int)i);
    cr_assert(k != NULL);
    for (uint32_t n = 0; n < count; n++) {
        char key[48];
        snprintf(key, sizeof(key), "%s-%s-%06u", shard_prefix[n % 2], tag, n);
        struct keel_range_args a = {.key = {key, strlen(key)}, .serializable = true};
        struct keel_result r;
        cr_assert_eq(keel_get(k, &a, &r), KEEL_STATUS_OK);
        cr_assert_eq(r.u.range.kvs_len, 1, "%s missing on %s", key, c->name[i]);
    }
    keel_close(k);
}

Test(cluster, catch_up_by_log_then_by_snapshot)
{
    static struct cluster c;
    static const char *const extra[] = {"--snapshot-wal-bytes", "256K",
                                        "--snapshot-catchup-entries", "50", NULL};
    start3(&c, extra);
    uint32_t f = pick_follower(&c);
    cluster_kill9(&c, f);
    write_keys(&c, "log", 40, 64); /* fewer than the catch-up entries: the log is kept */
    cr_assert_eq(cluster_restart(&c, f), 0);
    cr_assert_eq(cluster_wait_caught_up(&c, f, WAIT_MS), 0);
    check_keys_on(&c, f, "log", 40);
    cr_assert(!log_has(&c, f, "installed a snapshot from the leader"),
              "%s caught up by log, not by snapshot", c.name[f]);
    printf("catch-up: %s restarted and caught up by the log\n", c.name[f]);

    f = pick_follower(&c);
    cluster_kill9(&c, f);
    write_keys(&c, "snap", 4000, 256); /* ~1 MB of WAL: several snapshots, log compacted */
    cr_assert_eq(cluster_restart(&c, f), 0);
    cr_assert_eq(cluster_wait_caught_up(&c, f, WAIT_MS), 0);
    check_keys_on(&c, f, "snap", 4000);
    check_keys_on(&c, f, "log", 40);
    cr_assert(log_has(&c, f, "installed a snapshot from the leader"),
              "%s caught up by a snapshot (see %s)", c.name[f], c.p[f].log_path);
    printf("catch-up: %s restarted and caught up by a snapshot\n", c.name[f]);
    fflush(stdout);
    cluster_stop(&c);
}

/* ---- membership under load ----------------------------------------------------------------- */

static void member_add(struct cluster *c, uint32_t i)
{
    keel_client *k = cluster_client(c, -1);
    cr_assert(k != NULL);
    char url[64];
    cluster_peer_url(c, i, url, sizeof(url));
    struct keel_str u = {url, strlen(url)};
    struct keel_member_add_args a = {.name = {c->name[i], strlen(c->name[i])},
                                     .peer_urls = &u,
                                     .peer_urls_len = 1,
                                     .as_learner = true};
    struct keel_result r;
    int rc = KEEL_STATUS_CONF_CHANGE_PENDING;
    for (int t = 0; t < 50 && rc == KEEL_STATUS_CONF_CHANGE_PENDING; t++) {
        rc = keel_member_add(k, &a, &r);
        if (rc == KEEL_STATUS_CONF_CHANGE_PENDING) keeld_sleep_ms(100);
    }
    cr_assert_eq(rc, KEEL_STATUS_OK, "member add %s: %d", c->name[i], rc);
    cr_assert_eq(r.u.members.member_id, c->member_id[i], "the new member's id is its name's");
    keel_close(k);
}

static void member_change(struct cluster *c, bool promote, uint64_t id)
{
    keel_client *k = cluster_client(c, -1);
    cr_assert(k != NULL);
    struct keel_result r;
    int rc = -1;
    for (int t = 0; t < 100; t++) {
        rc = promote ? keel_member_promote(k, id, &r) : keel_member_remove(k, id, &r);
        /* What an operator retries: a change still in flight, a learner still catching up,
         * a group electing a leader (removing a leader moves its leadership). */
        bool again = rc < 0 || rc == KEEL_STATUS_CONF_CHANGE_PENDING ||
                     rc == KEEL_STATUS_LEARNER_NOT_READY || rc == KEEL_STATUS_UNAVAILABLE ||
                     rc == KEEL_STATUS_NOT_LEADER || rc == KEEL_STATUS_LEADER_CHANGED;
        if (!again) break;
        if (rc < 0) {
            keel_close(k);
            k = cluster_client(c, -1);
            cr_assert(k != NULL);
        }
        keeld_sleep_ms(100);
    }
    cr_assert_eq(rc, KEEL_STATUS_OK, "member %s %016llx: %d", promote ? "promote" : "remove",
                 (unsigned long long)id, rc);
    keel_close(k);
}

Test(cluster, add_and_remove_a_node_under_load)
{
    static struct cluster c;
    start3(&c, NULL);
    struct load *l = load_start(&c);
    load_progress(l, keeld_now_ms());
    uint32_t added = cluster_add_node(&c);
    cr_assert(added != UINT32_MAX);
    member_add(&c, added);
    cr_assert_eq(cluster_restart(&c, added), 0, "start the added node");
    cr_assert_eq(cluster_wait_caught_up(&c, added, WAIT_MS), 0, "the added node catches up");
    member_change(&c, true, c.member_id[added]);
    printf("membership: %s added as a learner, caught up, promoted\n", c.name[added]);
    member_change(&c, false, c.member_id[0]);
    keeld_stop(&c.p[0]);
    printf("membership: %s removed and stopped\n", c.name[0]);
    fflush(stdout);
    load_progress(l, keeld_now_ms());
    uint32_t acked = load_stop(l);
    cr_assert(acked > 100);
    for (uint32_t i = 1; i < c.nodes; i++) {
        cr_assert_eq(cluster_wait_caught_up(&c, i, WAIT_MS), 0, "%s catches up", c.name[i]);
        check_acked_on(&c, l, i);
    }
    free(l);
    cluster_stop(&c);
}

/* ---- leadership moves and status --------------------------------------------------------- */

Test(cluster, move_leader_and_endpoint_status)
{
    static struct cluster c;
    start3(&c, NULL);
    keel_client *k = cluster_client(&c, -1);
    cr_assert(k != NULL);
    struct keel_put_args p = {.key = {"a-term", 6}, .value = {"v", 1}};
    struct keel_result r;
    cr_assert_eq(keel_put(k, &p, &r), KEEL_STATUS_OK);
    cr_assert(r.header.raft_term > 0, "a reply carries the group's term");
    cr_assert_neq(r.header.member_id, 0);
    int from = cluster_leader_of(&c, 0);
    cr_assert(from >= 0);
    uint32_t to = ((uint32_t)from + 1) % c.nodes;
    int rc = keel_move_leader(k, 0, c.member_id[to], &r);
    cr_assert_eq(rc, KEEL_STATUS_OK, "move-leader: %d", rc);
    cr_assert_eq(r.u.move_leader.shards_len, 1);
    cr_assert_eq(r.u.move_leader.shards[0].status, 0);
    cr_assert_eq(r.u.move_leader.shards[0].leader_id, c.member_id[to]);
    printf("move-leader: shard 0 moved from %s to %s\n", c.name[from], c.name[to]);
    keel_close(k);
    /* the new leader's own view: leader of shard 0, with both peers' progress, caught up */
    k = cluster_client(&c, (int)to);
    cr_assert(k != NULL);
    /* status figures are published once per tick (50 ms): give them a moment */
    const struct keel_shard_raft *sr = NULL;
    for (int t = 0; t < 40; t++) {
        cr_assert_eq(keel_endpoint_status(k, &r), KEEL_STATUS_OK);
        cr_assert_eq(r.u.endpoint_status.shards_len, 2);
        sr = &r.u.endpoint_status.shards[0];
        if (sr->leader_id == c.member_id[to] && sr->progress_len == 2) break;
        keeld_sleep_ms(25);
    }
    cr_assert_eq(sr->leader_id, c.member_id[to]);
    cr_assert_eq(sr->role, KEEL_ROLE_LEADER);
    cr_assert_eq(sr->progress_len, 2, "the leader reports both followers");
    cr_assert(sr->raft_commit_index >= 1 && sr->raft_applied_index <= sr->raft_commit_index);
    keel_close(k);
    cluster_stop(&c);
}
