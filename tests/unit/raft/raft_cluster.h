/*
 * raft_cluster.h — a small in-test cluster for the Raft core's unit tests.
 *
 * Nodes 1..n each run a struct raft over a counting allocator that can be told to fail. The
 * driver runs each node's ready loop (storing entries in a per-node term array, filling SNAP
 * chunks from the node's snapshot bytes, recording applied entries and reads), deep-copies
 * messages into a FIFO network with partitions and a drop filter, and persists either at once
 * (raft_persisted right after raft_advance, msgs_after_persist sent at once) or on demand
 * (cl_persist). cl_check asserts that no two nodes applied different terms at one index and
 * that no term had two leaders.
 */
#ifndef KEEL_TESTS_UNIT_RAFT_CLUSTER_H
#define KEEL_TESTS_UNIT_RAFT_CLUSTER_H

#include "raft/raft.h"

#define CL_MAX       9
#define CL_LOG_MAX   8192
#define CL_READS_MAX 256

struct cl_alloc {
    i64 fail_after; /* < 0: never; else that many more allocations succeed */
    u64 live_bytes;
    u64 allocs;
};

struct cl_msg {
    struct raft_msg m;
    struct raft_entry *ents;
    u8 *blob; /* entry data and snapshot chunk bytes */
};

struct cl_node {
    struct raft *r;
    u64 id;
    bool up;
    bool manual_persist;
    struct cl_alloc alloc;
    /* storage */
    u64 st_term[CL_LOG_MAX];
    u64 st_last;
    /* applied */
    u64 ap_term[CL_LOG_MAX];
    u32 ap_len[CL_LOG_MAX];
    u64 ap_last;
    /* msgs_after_persist waiting for cl_persist */
    struct cl_msg *held;
    u32 held_count;
    u32 held_cap;
    /* reads */
    u64 read_ctx[CL_READS_MAX];
    u64 read_index[CL_READS_MAX];
    u32 read_count;
    u64 read_failed[CL_READS_MAX];
    u32 read_failed_count;
    /* snapshots: the bytes this node serves, and the bytes it receives */
    u8 *snap_src;
    u64 snap_src_len;
    u8 *snap_rx;
    u64 snap_rx_len;
    u32 installs;
    struct raft_snapshot_meta installed;
    u32 snap_chunks_stored;
    u32 chunk_bytes;
    u32 idle_readies; /* readies that truncated or installed */
};

typedef bool (*cl_filter_fn)(void *ctx, const struct raft_msg *m);

struct cluster {
    u32 n;
    struct cl_node nodes[CL_MAX];
    struct cl_msg *q;
    u32 q_count;
    u32 q_cap;
    bool cut[CL_MAX + 1][CL_MAX + 1];
    cl_filter_fn drop; /* true: the message is lost */
    void *drop_ctx;
    u32 (*pick)(void *ctx, u32 queued); /* NULL: FIFO; else the index to deliver next */
    cl_filter_fn dup;                   /* true: deliver the message and keep a copy queued */
    u64 sent[RAFT_MSG_TYPE_COUNT_];     /* messages put on the network, by type */
    u64 leaders[1024];                  /* leader of each term seen, 0 none */
};

void cl_config(struct raft_config *cfg, u64 id);
/* Called on every node's config before raft_create (set it before cl_init). */
extern void (*cl_tune)(struct raft_config *cfg);
/* n voters (ids 1..n) bootstrapped together; learners extra learner ids (n+1..). */
void cl_init(struct cluster *c, u32 n, u32 learners);
/* A node with no state (joins later through a membership change). */
void cl_add_empty(struct cluster *c, u64 id);
void cl_free(struct cluster *c);
struct raft *cl_r(struct cluster *c, u64 id);
struct cl_node *cl_node(struct cluster *c, u64 id);
/* Runs every node's ready loop and delivers messages until quiet (or max_steps messages). */
void cl_run(struct cluster *c);
void cl_run_steps(struct cluster *c, u32 max_steps);
void cl_ready(struct cluster *c, u64 id);
void cl_tick(struct cluster *c, u64 id);
void cl_tick_all(struct cluster *c, u32 ticks);
/* Persists what node id stored: raft_persisted, then its held msgs_after_persist go out. */
void cl_persist(struct cluster *c, u64 id);
void cl_partition(struct cluster *c, u64 id, bool cut); /* isolate id from everyone */
void cl_cut(struct cluster *c, u64 a, u64 b, bool cut);
u64 cl_leader(struct cluster *c); /* the single leader of the highest term, or 0 */
u64 cl_elect(struct cluster *c, u64 id);
u64 cl_propose(struct cluster *c, u64 id, const char *data);
void cl_check(struct cluster *c);
u64 cl_last(struct cluster *c, u64 id);           /* last index in node id's log */
u32 cl_count(struct cluster *c, u8 type, u64 to); /* queued messages of type to id */
void cl_clear_queue(struct cluster *c);

#endif
