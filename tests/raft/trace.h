/*
 * trace.h — the golden-trace harness of the Raft core (tests/raft/raft_trace), in the style of
 * etcd-io/raft's interaction tests (rafttest/interaction_env_*.go and the testdata directory).
 *
 * A testdata file is a sequence of blocks:
 *
 *     # comments and blank lines (kept as they are on --rewrite)
 *     command arg key=value ...
 *     ----
 *     the exact output of the command (no blank lines; "ok" when it prints nothing)
 *
 * raft_trace runs every command against an environment of raft members (struct trace_env)
 * wired by an in-memory network that carries messages as raft_msg_encode bytes, with a storage
 * per member that has a volatile part (what a ready handed out) and a durable part (what
 * `persist` made durable; `crash` loses the rest). It compares each output with the file, or
 * regenerates the file with --rewrite (KEEL_REWRITE=1) for a human to review the diff.
 *
 * The harness checks as it goes and prints a line starting with "SAFETY:" on any violation
 * (trace_env.c): two leaders in one term (Election Safety); two logs that agree at an index and
 * term but differ before it (Log Matching); a leader missing an entry applied in an earlier
 * term (Leader Completeness); a member applying other contents than another applied at that
 * index, applying out of order, or applying what it has not stored durably (State Machine
 * Safety); a read answered below a commit index known when it was issued (linearizable reads);
 * entries that do not continue the stored log, snapshot chunks out of order, an install without
 * all chunks; a durable hard state whose commit is past the durable log (no restart possible).
 * A golden file must never contain such a line.
 *
 * Commands (one handler file per group, trace_cmd_*.c; trace_cmd_table in trace_main.c):
 *   add-nodes COUNT [voters=1,2,3] [learners=4] [join] [snapshot=INDEX] [election=10]
 *             [heartbeat=1] [snap-chunk=BYTES] [inflight=MSGS] [append-bytes=BYTES]
 *             [apply-unpersisted]
 *   crash ID | restart ID | status ID | raft-log ID | compact ID [keep=N]
 *   campaign ID | tick ID [COUNT] | tick-heartbeat ID | tick-election ID
 *   transfer-leader ID TARGET
 *   propose ID DATA | propose-conf-change ID add-voter|add-learner|promote|remove TARGET
 *   read-index ID CONTEXT
 *   process-ready ID... | persist ID... | deliver-msgs [ID...] [type=T] [drop=ID,...]
 *   drop-msgs [ID...] [from=ID,...] [type=T] | stabilize [ID...] | partition IDS IDS... | heal
 *   snapshot-failed ID PEER | unreachable ID PEER
 * add-nodes bootstraps the new members with the configuration (every new member a voter unless
 * voters=/learners= say otherwise), or starts them from a snapshot of an empty state at INDEX,
 * or (join) with nothing. The state machine is the applied NORMAL entries joined by ','; compact
 * snapshots it at the applied index (durable at once; it is the blob SNAP chunks are cut from)
 * and calls raft_compact. tick-election ticks until the role or term changes (at most 2 *
 * election_ticks). persist makes everything handed out durable, releases the held
 * msgs_after_persist and calls raft_persisted; crash keeps only what persist made durable.
 * deliver-msgs, drop-msgs and stabilize are described in trace_cmd_ready.c.
 */
#ifndef KEEL_TESTS_RAFT_TRACE_H
#define KEEL_TESTS_RAFT_TRACE_H

#include "raft/raft.h"

#include <stdarg.h>

#define TRACE_NODES_MAX 10 /* ids 1..9 */
#define TRACE_ARGS_MAX  32
#define TRACE_TERMS_MAX 4096

/* ---- output ------------------------------------------------------------------------------ */

struct trace_out {
    char *ptr;
    size_t len;
    size_t cap;
};

void out_printf(struct trace_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void out_free(struct trace_out *o);

/* ---- storage, network, members ----------------------------------------------------------- */

struct trace_bytes {
    u8 *ptr;
    u32 len;
    u32 cap;
};

void bytes_append(struct trace_bytes *b, const void *src, u32 len);
void bytes_set(struct trace_bytes *b, const void *src, u32 len);
void bytes_free(struct trace_bytes *b);

/* What one member has stored: a snapshot, the entries after it, the hard state, and the
 * partial incoming snapshot it is receiving chunk by chunk. */
struct trace_log {
    bool has_snap;
    struct raft_snapshot_meta snap;
    struct trace_bytes snap_blob;
    struct raft_hard_state hs;
    struct raft_entry *entries; /* data owned (malloc); index snap.index + 1 + i */
    u32 count;
    u32 cap;
    bool has_partial;
    struct raft_snapshot_meta partial_meta;
    struct trace_bytes partial;
    bool partial_last;
};

void log_copy(struct trace_log *dst, const struct trace_log *src);
void log_free(struct trace_log *l);
void log_drop_prefix(struct trace_log *l, u64 index); /* entries <= index */
u64 log_last_index(const struct trace_log *l);
u64 log_last_term(const struct trace_log *l);

/* A message on the wire: raft_msg_encode bytes. */
struct trace_wire {
    u64 from;
    u64 to;
    u8 *bytes;
    size_t len;
};

struct trace_wires {
    struct trace_wire *items;
    u32 count;
    u32 cap;
};

void wires_push(struct trace_wires *w, const struct raft_msg *m);
void wires_remove(struct trace_wires *w, u32 at); /* keeps the order */
void wires_clear(struct trace_wires *w);

struct trace_node {
    u64 id;
    bool exists;
    bool down;
    struct raft *r;
    struct raft_config cfg;
    bool has_bootstrap;
    struct raft_conf bootstrap;
    struct trace_log durable;
    struct trace_log vol;    /* durable + everything readies handed out since */
    bool dirty;              /* vol differs from durable */
    bool log_dirty;          /* vol's log changed: persist reports raft_persisted */
    struct trace_wires held; /* msgs_after_persist waiting for persist */
    struct trace_bytes sm;   /* the state machine: applied NORMAL data joined by ',' */
    u64 applied;
    u64 snap_failed[RAFT_MEMBERS_MAX]; /* peers whose chunk could not be filled */
    u32 snap_failed_count;
    /* Last printed summary, for the change lines after each command. */
    u8 seen_role;
    u64 seen_term;
    u64 seen_leader;
};

struct trace_applied {
    u64 term;
    struct trace_bytes data;
    u8 type;
    u64 by;        /* the first member that applied it */
    u64 term_seen; /* its term then: the entry was committed in this term or before */
};

/* A read index in flight, for the linearizability check: the index it is answered with must be
 * at least every commit index some member knew when the read was issued. */
struct trace_read {
    u64 id;
    u64 context;
    u64 commit_floor;
};

#define TRACE_READS_MAX 256

struct trace_env {
    struct trace_node nodes[TRACE_NODES_MAX];
    struct trace_read reads[TRACE_READS_MAX];
    u32 read_count;
    struct trace_wires net;
    u32 group[TRACE_NODES_MAX]; /* partition group per id; 0 = the default group */
    u64 leader_of_term[TRACE_TERMS_MAX];
    struct trace_applied *applied; /* by index: what the first member applied there */
    u64 applied_cap;
    struct trace_out *out;
};

void env_init(struct trace_env *env);
void env_free(struct trace_env *env);
/* The live member with this id, or NULL after printing an error line. */
struct trace_node *env_node(struct trace_env *env, const char *arg);
struct trace_node *env_node_any(struct trace_env *env, const char *arg); /* down ones too */
void env_create_raft(struct trace_env *env, struct trace_node *n);
bool env_process_ready(struct trace_env *env, struct trace_node *n, const char *indent);
bool env_persist(struct trace_env *env, struct trace_node *n, const char *indent);
bool env_deliver(struct trace_env *env, u32 at, const char *indent);
bool env_link_up(const struct trace_env *env, u64 from, u64 to);
void env_check_safety(struct trace_env *env);
void env_report_changes(struct trace_env *env);
void env_read_issued(struct trace_env *env, const struct trace_node *n, u64 context);
void env_apply(struct trace_env *env, struct trace_node *n, const struct raft_entry *e,
               const char *indent);

/* ---- printing ---------------------------------------------------------------------------- */

void print_entry(struct trace_out *o, const struct raft_entry *e);
void print_msg(struct trace_out *o, const struct raft_msg *m);
void print_conf(struct trace_out *o, const struct raft_conf *c);
void print_ready(struct trace_out *o, const struct raft_ready *rd, const char *indent);
void print_status(struct trace_out *o, const struct raft *r);
void print_summary(struct trace_out *o, const struct raft *r);
void print_data(struct trace_out *o, const u8 *data, u32 len);

/* ---- commands ---------------------------------------------------------------------------- */

struct trace_cmd {
    const char *name;
    u32 argc;
    char *argv[TRACE_ARGS_MAX];
};

/* The index-th positional argument (not key=value), or NULL. */
const char *cmd_pos(const struct trace_cmd *c, u32 index);
u32 cmd_pos_count(const struct trace_cmd *c);
/* The value of key=value, or NULL. */
const char *cmd_kv(const struct trace_cmd *c, const char *key);
bool cmd_flag(const struct trace_cmd *c, const char *flag);
/* Parses an unsigned number; prints an error line and returns false when it is not one. */
bool parse_u64(struct trace_env *env, const char *s, u64 *v);
/* Parses "1,2,3" into ids; returns the count, or -1 after an error line. */
int parse_ids(struct trace_env *env, const char *s, u64 *ids, int cap);

typedef void (*trace_handler)(struct trace_env *env, const struct trace_cmd *c);

void cmd_add_nodes(struct trace_env *env, const struct trace_cmd *c);
void cmd_crash(struct trace_env *env, const struct trace_cmd *c);
void cmd_restart(struct trace_env *env, const struct trace_cmd *c);
void cmd_status(struct trace_env *env, const struct trace_cmd *c);
void cmd_raft_log(struct trace_env *env, const struct trace_cmd *c);
void cmd_compact(struct trace_env *env, const struct trace_cmd *c);
void cmd_campaign(struct trace_env *env, const struct trace_cmd *c);
void cmd_tick(struct trace_env *env, const struct trace_cmd *c);
void cmd_tick_heartbeat(struct trace_env *env, const struct trace_cmd *c);
void cmd_tick_election(struct trace_env *env, const struct trace_cmd *c);
void cmd_transfer_leader(struct trace_env *env, const struct trace_cmd *c);
void cmd_propose(struct trace_env *env, const struct trace_cmd *c);
void cmd_propose_conf_change(struct trace_env *env, const struct trace_cmd *c);
void cmd_read_index(struct trace_env *env, const struct trace_cmd *c);
void cmd_process_ready(struct trace_env *env, const struct trace_cmd *c);
void cmd_persist(struct trace_env *env, const struct trace_cmd *c);
void cmd_deliver_msgs(struct trace_env *env, const struct trace_cmd *c);
void cmd_drop_msgs(struct trace_env *env, const struct trace_cmd *c);
void cmd_stabilize(struct trace_env *env, const struct trace_cmd *c);
void cmd_partition(struct trace_env *env, const struct trace_cmd *c);
void cmd_heal(struct trace_env *env, const struct trace_cmd *c);
void cmd_snapshot_failed(struct trace_env *env, const struct trace_cmd *c);
void cmd_unreachable(struct trace_env *env, const struct trace_cmd *c);

#endif
