/*
 * shard.h — a node: one pinned shard thread per core, each owning an io_uring loop, a store,
 * a WAL and its client connections; the thin router between them (xcore rings); start-up
 * recovery; drain on stop. tools/keeld.c is a thin main around this.
 *
 * Per shard, on disk: <data_dir>/shard-<i>/wal/ (core/wal.h) and <data_dir>/shard-<i>/snap/
 * (core/snapshot_file.h). <data_dir>/keel.meta records the shard count the directory was
 * created with; starting with another count is refused (the key ranges would move).
 *
 * Ports: every shard accepts on the client (router) port with SO_REUSEPORT, and on its own
 * shard port, client port + 1 + index (proto-spec/protocol.md, "Connections and ports").
 *
 * The request path, the durability rule (a reply leaves only once every write it may have
 * observed is durable) and the thread model are described in docs/architecture.md.
 *
 * Contract: node_start and node_stop are called by one (main) thread; everything else runs
 * on the shard threads. node_start returns once every shard has recovered and listens, or
 * with an error message and nothing left running.
 */
#ifndef KEEL_SHARD_SHARD_H
#define KEEL_SHARD_SHARD_H

#include "core/types.h"

#define NODE_SHARDS_MAX 64u

#define NODE_MEMBERS_MAX 9u /* RAFT_MEMBERS_MAX */
#define NODE_NAME_MAX    64u

/* A member of the initial cluster (--initial-cluster name=host:port,...). */
struct node_member {
    u64 id; /* node_member_id(name) */
    char name[NODE_NAME_MAX];
    u32 ipv4;      /* host order */
    u16 peer_port; /* shard s listens on peer_port + s */
};

struct node_config {
    const char *data_dir;
    u32 shard_count;              /* 1 .. NODE_SHARDS_MAX */
    u32 ipv4;                     /* host order */
    u16 client_port;              /* 0: any free port (the shard ports follow it) */
    u64 member_id;                /* in every reply header */
    u64 memory_bytes_max;         /* per shard store budget; 0: default */
    u64 snapshot_wal_bytes;       /* WAL bytes after which a shard snapshots; 0: default 64 MiB */
    u64 snapshot_catchup_entries; /* Raft entries kept after a snapshot; 0: default 10000 */
    u32 connections_max;          /* per node; 0: the protocol's 16384 */
    const char *split_keys;       /* shard_count - 1 split keys, comma-separated, each text or
                                   * "hex:<bytes>"; NULL: the default map. Fixed at creation. */
    u32 loop_flags; /* LOOP_CONFIG_* (net/loop.h): start the io_uring fallbacks lower */
    bool quiet;     /* no log lines (tests) */
    /* replication: members[] empty means a single-member cluster of this node alone */
    const char *name; /* this member's name; NULL: "default" */
    struct node_member members[NODE_MEMBERS_MAX];
    u32 member_count;
    u16 peer_port;      /* this node's peer port (shard s: + s); from members[] by name */
    bool join_existing; /* --initial-cluster-state existing: learn the members from a leader */
    const char *cluster_token; /* --initial-cluster-token; NULL: "keel-cluster" */
};

void node_config_default(struct node_config *c);
/* "host:port", with an optional "http://", host a numeric IPv4 address: 0, or -1. */
int node_parse_peer_url(const char *url, u32 *ipv4, u16 *port);
/* A member's id, derived from its name (stable across restarts, the same on every node). */
u64 node_member_id(const char *name);
/* Parses --initial-cluster "n1=127.0.0.1:2380,n2=..." into c->members and sets c->member_id and
 * c->peer_port from c->name. 0, or -1 with a message in err. */
int node_config_cluster(struct node_config *c, const char *initial_cluster, char *err,
                        size_t err_len);

struct node;

/* Recovers and starts every shard. 0, or -1 with a message in err. */
int node_start(const struct node_config *config, struct node **out, char *err, size_t err_len);
/* The client port actually bound. */
u16 node_client_port(const struct node *n);
/* Drains: stops reading requests, answers every request it executed once durable, says
 * GOAWAY(SHUTTING_DOWN) to every client, syncs, joins the threads and frees everything. */
void node_stop(struct node *n);

/* One log line on stderr: time, component, message (printf format). */
void node_log(const char *component, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
