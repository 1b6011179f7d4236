/*
 * cluster_proc.h — a local keel cluster of real keeld processes for integration tests.
 *
 * Contract:
 *  - cluster_start picks a free peer port range per node (shard s of node i listens on
 *    peer_port[i] + s), builds --initial-cluster n1=127.0.0.1:P1,..., and starts every node
 *    through keeld_proc (its own data dir, client port range, log file <dir>/nI.log) with the
 *    extra flags in c->extra. It returns once every shard has a leader that every node knows.
 *  - Nodes are numbered 0 .. nodes-1; names n1 .. nN. cluster_kill9 and cluster_restart keep a
 *    node's data dir and client port (keep_port), so c->endpoints stays valid.
 *  - cluster_add_node prepares node index nodes (name n<nodes+1>) for --initial-cluster-state
 *    existing; the caller adds it with keel_member_add first, then starts it.
 *  - Every server binds 127.0.0.1 only and is stopped by pid (cluster_stop: SIGTERM; data dirs
 *    removed unless KEEL_KEEP_DATA is set).
 */
#ifndef KEEL_TESTS_INTEGRATION_CLUSTER_PROC_H
#define KEEL_TESTS_INTEGRATION_CLUSTER_PROC_H

#include "keeld_proc.h"

#include "client/keel.h"

#define CLUSTER_NODES_MAX 5
#define CLUSTER_EXTRA_MAX 8

struct cluster {
    uint32_t nodes; /* started so far (an added node counts once prepared) */
    uint32_t shards;
    struct keeld_proc p[CLUSTER_NODES_MAX];
    uint16_t peer_port[CLUSTER_NODES_MAX];
    char name[CLUSTER_NODES_MAX][8];
    uint64_t member_id[CLUSTER_NODES_MAX];
    bool existing[CLUSTER_NODES_MAX]; /* started with --initial-cluster-state existing */
    char initial[512];
    char endpoints[256]; /* "127.0.0.1:P,..." of the nodes started with cluster_start */
    char log_dir[256];
    const char *extra[CLUSTER_EXTRA_MAX]; /* flags for every node, NULL-terminated */
};

/* 0, or -1 (a message on stderr). */
int cluster_start(struct cluster *c, uint32_t nodes, uint32_t shards);
int cluster_restart(struct cluster *c, uint32_t i);
void cluster_kill9(struct cluster *c, uint32_t i);
void cluster_stop(struct cluster *c);
/* Prepares one more node (index c->nodes); returns its index. Its peer URL: cluster_peer_url. */
uint32_t cluster_add_node(struct cluster *c);
void cluster_peer_url(const struct cluster *c, uint32_t i, char *out, size_t len);

/* Waits (up to timeout_ms) until every running node names the same leader, a running node, for
 * every shard. 0, or -1. */
int cluster_wait_leaders(struct cluster *c, int timeout_ms);
/* The node index leading shard (as the node asked first sees it), or -1. */
int cluster_leader_of(struct cluster *c, uint16_t shard);
/* Waits until node i has applied everything shard's leader had committed when it was asked. */
int cluster_wait_caught_up(struct cluster *c, uint32_t i, int timeout_ms);
/* A client of node i alone (its router port), or of every running node. NULL on failure. */
keel_client *cluster_client(struct cluster *c, int node);

#endif
