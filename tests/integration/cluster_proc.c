/* cluster_proc.c — see cluster_proc.h. */
#include "cluster_proc.h"

#include "shard/shard.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cluster_peer_url(const struct cluster *c, uint32_t i, char *out, size_t len)
{
    snprintf(out, len, "http://127.0.0.1:%u", (unsigned)c->peer_port[i]);
}

/* Picks node i's name, id and peer port range (shards ports, all free now). */
static int cluster_prepare(struct cluster *c, uint32_t i)
{
    snprintf(c->name[i], sizeof(c->name[i]), "n%u", i + 1);
    c->member_id[i] = node_member_id(c->name[i]);
    for (int t = 0; t < 20; t++) {
        uint16_t p = keeld_port_range_pick(c->shards);
        bool clash = p == 0;
        for (uint32_t j = 0; j < i && !clash; j++)
            clash = p < c->peer_port[j] + c->shards && c->peer_port[j] < p + c->shards;
        if (!clash) {
            c->peer_port[i] = p;
            return 0;
        }
    }
    fprintf(stderr, "cluster_proc: no free peer port range\n");
    return -1;
}

static void cluster_initial(struct cluster *c, uint32_t count)
{
    size_t n = 0;
    c->initial[0] = '\0';
    for (uint32_t i = 0; i < count; i++)
        n += (size_t)snprintf(c->initial + n, sizeof(c->initial) - n, "%s%s=127.0.0.1:%u",
                              i ? "," : "", c->name[i], (unsigned)c->peer_port[i]);
}

static int cluster_spawn(struct cluster *c, uint32_t i)
{
    struct keeld_proc *p = &c->p[i];
    p->shards = c->shards;
    p->keep_port = true;
    char name[8];
    memcpy(name, c->name[i], sizeof(name));
    snprintf(p->log_path, sizeof(p->log_path), "%.200s/%.7s.log", c->log_dir, name);
    uint32_t n = 0;
    p->extra_args[n++] = "--name";
    p->extra_args[n++] = c->name[i];
    p->extra_args[n++] = "--initial-cluster";
    p->extra_args[n++] = c->initial;
    if (c->existing[i]) {
        p->extra_args[n++] = "--initial-cluster-state";
        p->extra_args[n++] = "existing";
    }
    for (uint32_t e = 0; e < CLUSTER_EXTRA_MAX && c->extra[e] && n + 1 < KEELD_EXTRA_ARGS_MAX; e++)
        p->extra_args[n++] = c->extra[e];
    p->extra_args[n] = NULL;
    return keeld_start(p);
}

int cluster_start(struct cluster *c, uint32_t nodes, uint32_t shards)
{
    c->nodes = nodes;
    c->shards = shards;
    snprintf(c->log_dir, sizeof(c->log_dir), "/tmp/keel-cluster-XXXXXX");
    if (!mkdtemp(c->log_dir)) return -1;
    for (uint32_t i = 0; i < nodes; i++)
        if (cluster_prepare(c, i) != 0) return -1;
    cluster_initial(c, nodes);
    size_t n = 0;
    for (uint32_t i = 0; i < nodes; i++) {
        if (cluster_spawn(c, i) != 0) return -1;
        n += (size_t)snprintf(c->endpoints + n, sizeof(c->endpoints) - n, "%s%s", i ? "," : "",
                              c->p[i].endpoint);
    }
    fprintf(stderr, "cluster: %u nodes x %u shards, clients %s, logs in %s\n", nodes, shards,
            c->endpoints, c->log_dir);
    return cluster_wait_leaders(c, 20000);
}

uint32_t cluster_add_node(struct cluster *c)
{
    uint32_t i = c->nodes;
    if (i >= CLUSTER_NODES_MAX || cluster_prepare(c, i) != 0) return UINT32_MAX;
    c->existing[i] = true;
    c->nodes++;
    cluster_initial(c, c->nodes);
    return i;
}

int cluster_restart(struct cluster *c, uint32_t i)
{
    return cluster_spawn(c, i);
}

void cluster_kill9(struct cluster *c, uint32_t i)
{
    struct keeld_proc *p = &c->p[i];
    if (p->pid <= 0) return;
    kill(p->pid, SIGKILL);
    while (keeld_alive(p)) keeld_sleep_ms(5);
    p->pid = 0;
}

void cluster_stop(struct cluster *c)
{
    for (uint32_t i = 0; i < c->nodes; i++) {
        if (c->p[i].pid > 0) keeld_stop(&c->p[i]);
        if (!getenv("KEEL_KEEP_DATA") && c->p[i].data_dir[0]) keeld_cleanup(&c->p[i]);
    }
}

keel_client *cluster_client(struct cluster *c, int node)
{
    struct keel_options o;
    keel_options_default(&o);
    o.timeout_ms = 3000;
    keel_client *k = NULL;
    const char *ep = node >= 0 ? c->p[node].endpoint : c->endpoints;
    if (keel_connect(ep, &o, &k) != 0) return NULL;
    return k;
}

/* Node i's view of shard's leader (member id), or 0. */
static uint64_t node_leader(struct cluster *c, uint32_t i, uint16_t shard)
{
    keel_client *k = cluster_client(c, (int)i);
    if (!k) return 0;
    struct keel_result r;
    uint64_t leader = 0;
    if (keel_endpoint_status(k, &r) == 0 && shard < r.u.endpoint_status.shards_len)
        leader = r.u.endpoint_status.shards[shard].leader_id;
    keel_close(k);
    return leader;
}

static int node_of_member(const struct cluster *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->nodes; i++)
        if (c->member_id[i] == id && c->p[i].pid > 0) return (int)i;
    return -1;
}

int cluster_leader_of(struct cluster *c, uint16_t shard)
{
    for (uint32_t i = 0; i < c->nodes; i++) {
        if (c->p[i].pid <= 0) continue;
        int node = node_of_member(c, node_leader(c, i, shard));
        if (node >= 0) return node;
    }
    return -1;
}

int cluster_wait_leaders(struct cluster *c, int timeout_ms)
{
    int64_t deadline = keeld_now_ms() + timeout_ms;
    while (keeld_now_ms() < deadline) {
        bool all = true;
        for (uint16_t s = 0; s < c->shards && all; s++) {
            uint64_t first = 0;
            for (uint32_t i = 0; i < c->nodes && all; i++) {
                if (c->p[i].pid <= 0) continue;
                uint64_t l = node_leader(c, i, s);
                all = l != 0 && node_of_member(c, l) >= 0 && (first == 0 || l == first);
                first = l;
            }
        }
        if (all) return 0;
        keeld_sleep_ms(50);
    }
    fprintf(stderr, "cluster_proc: no agreed leader for every shard within %d ms\n", timeout_ms);
    return -1;
}

/* shard's commit index on its leader, and applied index on node i. */
static bool indexes(struct cluster *c, uint32_t i, uint16_t shard, uint64_t *commit,
                    uint64_t *applied)
{
    int l = cluster_leader_of(c, shard);
    if (l < 0) return false;
    keel_client *k = cluster_client(c, l);
    struct keel_result r;
    bool ok = k && keel_endpoint_status(k, &r) == 0 && shard < r.u.endpoint_status.shards_len;
    if (ok) *commit = r.u.endpoint_status.shards[shard].raft_commit_index;
    if (k) keel_close(k);
    k = ok ? cluster_client(c, (int)i) : NULL;
    ok = k && keel_endpoint_status(k, &r) == 0 && shard < r.u.endpoint_status.shards_len;
    if (ok) *applied = r.u.endpoint_status.shards[shard].raft_applied_index;
    if (k) keel_close(k);
    return ok;
}

int cluster_wait_caught_up(struct cluster *c, uint32_t i, int timeout_ms)
{
    int64_t deadline = keeld_now_ms() + timeout_ms;
    for (uint16_t s = 0; s < c->shards; s++) {
        uint64_t commit = 0, applied = 0;
        while (!indexes(c, i, s, &commit, &applied) && keeld_now_ms() < deadline)
            keeld_sleep_ms(50);
        uint64_t target = commit;
        while (applied < target && keeld_now_ms() < deadline) {
            keeld_sleep_ms(50);
            indexes(c, i, s, &commit, &applied);
        }
        if (applied < target) {
            fprintf(stderr, "cluster_proc: %s shard %u applied %llu < commit %llu\n", c->name[i], s,
                    (unsigned long long)applied, (unsigned long long)target);
            return -1;
        }
    }
    return 0;
}
