/*
 * sim.h — keel_sim: whole Raft clusters simulated in one process, one thread, from one seed.
 *
 * Contract:
 *  - One run (sim_run) is a pure function of struct sim_options: every random choice comes from
 *    one splitmix64 stream seeded by options.seed (the rafts get their seeds from it too), time
 *    is simulated (now_ms, advanced by the scheduler), and nothing depends on addresses, the
 *    clock or the environment. The trace hash (sim.trace_hash) covers every message sent and
 *    every fault, client operation, election and apply; two runs of one seed give one hash.
 *  - A cluster has `nodes` nodes; each node hosts one member of each of `groups` Raft groups
 *    (independent rafts sharing the node's network links and crash fate). Members of group g
 *    talk only to members of group g. Membership changes may move a group's member off a
 *    node (remove) and later put a new member (new id) there (add learner, promote).
 *  - Each member has a simulated disk (sim_store.c): what raft hands out is written at once
 *    and becomes durable when a simulated fdatasync completes; a crash keeps the durable state
 *    and a prefix of the unsynced writes (one write per ready; a torn one is cut, as the WAL's
 *    recovery does). A restart rebuilds the raft from the durable state only.
 *  - Checkers (check_*.c) run on every ready, apply and step; the first violation stops the
 *    run with sim.fail_checker and sim.fail_msg set. README.md describes the fault model.
 *  - Single-threaded; tests/ only.
 */
#ifndef KEEL_TESTS_SIM_SIM_H
#define KEEL_TESTS_SIM_SIM_H

#include "core/types.h"
#include "raft/raft.h"

#define SIM_NODES_MAX        7
#define SIM_GROUPS_MAX       4
#define SIM_MEMBERS_MAX      32 /* member slots per group over a run (destroyed ones stay) */
#define SIM_KEYS_MAX         48 /* keys per group; each takes SIM_KEY_OPS_MAX ops at most */
#define SIM_KEY_OPS_MAX      10 /* ops per key: keeps each linearizability check small */
#define SIM_KEY_WINDOW       3  /* keys in use at once per group */
#define SIM_CLIENTS_MAX      6
#define SIM_TICK_MS          10 /* one step = one tick period of simulated time */
#define SIM_SNAP_BYTES_MAX   (64 + 8 * SIM_KEYS_MAX)
#define SIM_SNAP_LOG_ENTRIES 64 /* a member snapshots at the latest this many applies after */
#define SIM_DECODE_ENTRIES   8192
#define SIM_HEAL_STEPS_MAX   1500 /* liveness bound after the faults heal: 15 s simulated */
#define SIM_MEMBER_GC_MS     3000 /* a member outside the committed configuration this long goes */
#define SIM_PUT_TIMEOUT_MS   4000
#define SIM_GET_TIMEOUT_MS   2000
#define SIM_STEPS_DEFAULT    2000
#define SIM_OP_MAGIC_PUT     0x5455504du /* "MPUT" */
#define SIM_OP_MAGIC_FINAL   0x4c4e4946u /* "FINL" */
#define SIM_SNAP_MAGIC       0x50414e534d49534bull

/* ---- options and per-seed rates ------------------------------------------------------- */

/* Bugs planted on purpose (--inject), so that a test can see each checker fire. */
enum sim_inject {
    SIM_INJECT_NONE = 0,
    SIM_INJECT_EARLY_ACK = 1,  /* msgs_after_persist go out before their writes are durable */
    SIM_INJECT_STALE_READ = 2, /* a get is served before the member applied the read index */
    SIM_INJECT_VOTE_GRANT = 3, /* every (pre-)vote answer arrives as granted */
};

struct sim_options {
    u64 seed;
    u32 steps;
    u32 nodes;  /* 0: 3 or 5, chosen by the seed */
    u32 groups; /* 0: 2 or 3, chosen by the seed */
    bool verbose;
    u8 inject; /* enum sim_inject */
};

/* Fault rates, drawn per seed (sim_rates_draw); probabilities are per message, per step or
 * per member and step as named. */
struct sim_rates {
    u32 delay_ms_min, delay_ms_max; /* one-way message delay: uniform in [min, max] */
    u32 slow_permille;              /* a message takes up to 10x delay_ms_max (reordering) */
    u32 loss_permille;
    u32 dup_permille;
    u32 partition_permille; /* per step, when none is active */
    u32 partition_ms_max;
    u32 crash_permille;       /* per node and step */
    u32 multi_crash_permille; /* per step: a majority of the nodes (or all) crash at once */
    u32 down_ms_max;
    u32 sync_ms_max;         /* fdatasync latency: uniform in [1, max] */
    u32 snapshot_permille;   /* per member and step */
    u32 transfer_permille;   /* per group and step */
    u32 membership_permille; /* per group and step */
    u32 op_permille;         /* per idle client and step */
    u32 lose_all_permille;   /* a crash loses every unsynced record (else a prefix survives) */
    u32 torn_permille;       /* of the surviving prefixes, the next record is torn and cut */
};

/* ---- simulated disk (sim_store.c) ----------------------------------------------------- */

enum sim_rec_kind {
    SIM_REC_HARD_STATE = 1,
    SIM_REC_TRUNCATE = 2,
    SIM_REC_INSTALL = 3, /* the incoming snapshot replaces snapshot and log */
    SIM_REC_ENTRY = 4,
    SIM_REC_CHUNK = 5,    /* a chunk of an incoming snapshot */
    SIM_REC_SNAPSHOT = 6, /* a local snapshot of the state machine */
};

struct sim_rec {
    u8 kind;
    u64 seq;
    u64 batch; /* the records of one ready form one WAL write: they survive a crash together */
    u64 index; /* TRUNCATE: from */
    struct raft_entry entry;        /* ENTRY; data owned */
    struct raft_hard_state hs;      /* HARD_STATE */
    struct raft_snapshot_meta meta; /* INSTALL, CHUNK, SNAPSHOT */
    u64 offset;                     /* CHUNK */
    bool last;                      /* CHUNK */
    u32 len;                        /* CHUNK, SNAPSHOT */
    u8 *data;                       /* CHUNK, SNAPSHOT; owned */
};

/* One view of a member's storage: snapshot, hard state, log after the snapshot, and the
 * incoming snapshot being received. */
struct sim_image {
    bool has_snap;
    struct raft_snapshot_meta snap;
    u8 *snap_data;
    u32 snap_len;
    struct raft_hard_state hs;
    struct raft_entry *entries; /* entries[i].index == first + i; data owned */
    u32 count, cap;
    u64 first;
    bool in_has, in_complete;
    struct raft_snapshot_meta in_meta;
    u8 *in_data;
    u32 in_len, in_cap;
};

struct sim_store {
    struct sim_image written; /* everything handed out: what raft believes it stored */
    struct sim_image durable; /* what survives a crash for sure */
    struct sim_rec *recs;     /* written, not yet durable, in order */
    u32 rec_count, rec_cap;
    u64 seq_written, seq_durable;
    u64 batch; /* of the records being written */
    bool syncing;
    u64 sync_seq, sync_done_ms;
};

/* ---- members, nodes, groups ----------------------------------------------------------- */

struct sim_held { /* a message of msgs_after_persist waiting for its writes */
    u64 seq;
    u64 to;
    u8 *bytes;
    u32 len;
};

struct sim_member {
    bool exists;  /* false once destroyed (removed from the group) */
    bool initial; /* of the bootstrap configuration */
    u64 id;
    u32 node, group;
    u64 created_ms;
    bool was_member;         /* seen in the committed configuration */
    u64 add_index, add_term; /* the conf entry that adds it (0: none yet) */
    u32 incarnation;         /* bumped by every crash */
    struct raft *r;          /* NULL while the node is down */
    struct sim_store store;
    u64 kv[SIM_KEYS_MAX]; /* the state machine */
    u64 applied;
    bool has_snap; /* the snapshot raft knows (compacted or installed): SNAP chunks come here */
    struct raft_snapshot_meta snap;
    u8 *snap_data;
    u32 snap_len;
    bool compact_pending; /* a local snapshot waits for its fdatasync before raft_compact */
    u64 compact_seq, compact_keep;
    struct raft_snapshot_meta compact_meta;
    u8 *compact_data;
    u32 compact_len;
    struct sim_held *held;
    u32 held_count, held_cap;
    u64 lead_term, lead_last; /* leader append-only: the term led, the last index written */
    u64 commit_seen;
    u64 snap_failed[RAFT_MEMBERS_MAX];
    u32 snap_failed_count;
};

struct sim_apply_rec { /* what was applied at one index, first seen */
    u64 term, entry_hash, state_hash;
};

struct sim_lm_slot { /* log matching registry: (index, term) -> content, previous term */
    u64 index, term, hash, prev_term;
};

struct sim_group_check {
    u64 *leader_of_term; /* election safety: member that led each term */
    u64 terms_cap;
    struct sim_lm_slot *lm; /* open addressing, index == 0 is empty */
    u64 lm_cap, lm_count;
    struct sim_apply_rec *applied; /* [index] */
    u64 applied_cap, applied_max;
    struct raft_conf conf, conf_prev; /* committed configuration (by first apply) and before */
};

struct sim_group {
    struct sim_member members[SIM_MEMBERS_MAX];
    u32 member_count;
    u64 next_id;
    struct raft_conf initial_conf;
    struct sim_group_check check;
    u32 key_base;              /* keys [key_base, key_base + SIM_KEY_WINDOW) are in use */
    u32 key_ops[SIM_KEYS_MAX]; /* ops issued per key */
    bool final_done;           /* liveness: the final proposal was applied */
    u64 final_member, final_index, final_term;
};

/* ---- network (sim_net.c) ---------------------------------------------------------------- */

struct sim_packet {
    u64 deliver_ms, seq;
    u32 group;
    u64 from, to;
    u32 from_node, to_node;
    u8 *bytes;
    u32 len;
};

struct sim_net {
    struct sim_packet *heap; /* min-heap by (deliver_ms, seq) */
    u32 count, cap;
    u64 seq;
    bool blocked[SIM_NODES_MAX][SIM_NODES_MAX]; /* [from][to] */
    bool partitioned;
    u64 heal_ms;
    u64 sent, delivered, dropped;
};

/* ---- clients and history (sim_client.c) ------------------------------------------------ */

enum sim_op_kind { SIM_OP_PUT = 1, SIM_OP_GET = 2 };
enum sim_outcome { SIM_PENDING = 0, SIM_OK = 1, SIM_FAILED = 2, SIM_UNKNOWN = 3 };

struct sim_op {
    u8 kind, outcome;
    u32 group, key, client;
    u64 value;           /* put: the value written (unique); get: the value read */
    u64 invoke, respond; /* event clock; respond == UINT64_MAX while unknown */
};

struct sim_client {
    bool busy;
    u32 op; /* index in sim.ops */
    u32 group;
    u64 member;
    u32 incarnation;
    u64 index, term, entry_hash; /* put */
    u64 ctx;                     /* get */
    bool read_ready;
    u64 read_index;
    u64 deadline_ms;
};

/* ---- the simulation -------------------------------------------------------------------- */

struct sim {
    struct sim_options opt;
    struct sim_rates rates;
    u64 rng;
    u32 nodes, groups;
    u64 now_ms;
    u32 step;
    u64 clock; /* event counter: the real-time order of client operations */
    bool healing;
    bool node_up[SIM_NODES_MAX];
    u64 node_restart_ms[SIM_NODES_MAX];
    struct raft_config raft_base; /* per-seed limits; id and seed set per member */
    struct sim_group group[SIM_GROUPS_MAX];
    struct sim_net net;
    struct sim_client clients[SIM_CLIENTS_MAX];
    u32 client_count;
    struct sim_op *ops;
    u32 op_count, op_cap;
    u64 op_value_next;
    struct raft_entry *decode_entries; /* SIM_DECODE_ENTRIES */
    u64 trace_hash;
    u64 stat_crashes, stat_partitions, stat_snapshots, stat_installs, stat_transfers;
    u64 stat_conf_changes, stat_elections, stat_applied;
    bool failed;
    const char *fail_checker;
    char fail_msg[1024];
};

/* sim_rng: splitmix64 over sim.rng. */
u64 sim_rand(struct sim *s);
u64 sim_below(struct sim *s, u64 n); /* uniform in [0, n); n > 0 */
bool sim_permille(struct sim *s, u32 permille);
u64 sim_range(struct sim *s, u64 lo, u64 hi); /* uniform in [lo, hi] */

/* sim_trace.c */
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Printed with --verbose only, not hashed (the bytes it shows are hashed where sent). */
void sim_log(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_trace_bytes(struct sim *s, const void *bytes, size_t len);
void sim_fail(struct sim *s, const char *checker, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
u64 sim_hash_bytes(u64 h, const void *bytes, size_t len);
u64 sim_hash_u64(u64 h, u64 v);
void *sim_xmalloc(size_t size_bytes);
void *sim_xrealloc(void *ptr, size_t size_bytes);
void *sim_xmemdup(const void *src, size_t len);

/* sim_run.c */
struct sim_result {
    bool failed;
    u32 step; /* of the failure; steps + heal steps when the run passed */
    u32 nodes, groups;
    u64 trace_hash;
    const char *checker;
    char msg[1024];
    char stats[256];
};
/* One run of opt.seed; 0 when every checker passed, 1 with res->failed set otherwise. */
int sim_run(const struct sim_options *opt, struct sim_result *res);
void sim_rates_draw(struct sim *s);
struct sim_member *sim_member_by_id(struct sim *s, u32 group, u64 id);
struct sim_member *sim_member_on_node(struct sim *s, u32 group, u32 node);
/* The durable image of member id, destroyed members included (what they held when they left);
 * NULL for an id the group never had. */
const struct sim_image *sim_durable_by_id(struct sim *s, u32 group, u64 id);
struct sim_member *sim_leader(struct sim *s, u32 group);
/* For the abort handler: the run in progress (NULL between runs). */
extern struct sim *volatile sim_current;

/* sim_store.c */
void store_init(struct sim_store *st);
void store_free(struct sim_store *st);
void store_retire(struct sim_store *st);      /* a destroyed member: keeps the durable image only */
void store_batch_begin(struct sim_store *st); /* the records up to the next call: one write */
void store_hard_state(struct sim_store *st, const struct raft_hard_state *hs);
void store_truncate(struct sim *s, struct sim_store *st, u64 from);
bool store_entry(struct sim *s, struct sim_store *st, const struct raft_entry *e);
bool store_chunk(struct sim *s, struct sim_store *st, const struct raft_snap_chunk *c);
bool store_install(struct sim *s, struct sim_store *st, const struct raft_snapshot_meta *meta);
void store_snapshot(struct sim_store *st, const struct raft_snapshot_meta *meta, const u8 *data,
                    u32 len);
void store_sync_start(struct sim *s, struct sim_store *st);
bool store_sync_due(const struct sim *s, const struct sim_store *st);
void store_sync_complete(struct sim_store *st);
void store_crash(struct sim *s, struct sim_store *st, u64 member);
void store_reload(struct sim_store *st); /* written := durable, after a crash */
u64 image_last_index(const struct sim_image *img);
u64 image_term_at(const struct sim_image *img, u64 index); /* 0: unknown */
const struct raft_entry *image_entry_at(const struct sim_image *img, u64 index);
void image_free(struct sim_image *img);

/* sim_net.c */
void net_send(struct sim *s, u32 group, u32 from_node, const struct raft_msg *m);
void net_send_bytes(struct sim *s, u32 group, u32 from_node, u64 to, const u8 *b, u32 len);
bool net_encode(struct sim *s, const struct raft_msg *m, u8 **bytes, u32 *len);
void net_deliver_due(struct sim *s);
void net_partition_step(struct sim *s);
void net_heal(struct sim *s);
void net_free(struct sim *s);

/* sim_member.c */
void member_create(struct sim *s, struct sim_member *m, bool bootstrap);
void member_crash(struct sim *s, struct sim_member *m);
void member_restart(struct sim *s, struct sim_member *m);
void member_destroy(struct sim *s, struct sim_member *m);
void member_ready_loop(struct sim *s, struct sim_member *m);
void member_sync_check(struct sim *s, struct sim_member *m);
void member_take_snapshot(struct sim *s, struct sim_member *m);
void member_observe(struct sim *s, struct sim_member *m);

/* sim_fault.c */
void fault_step(struct sim *s);
void fault_heal_step(struct sim *s);
void fault_heal_all(struct sim *s);
void node_crash(struct sim *s, u32 node);
void node_restart(struct sim *s, u32 node);

/* sim_client.c */
void client_init(struct sim *s);
void client_step(struct sim *s);
void client_applied(struct sim *s, struct sim_member *m, const struct raft_entry *e);
void client_read_state(struct sim *s, struct sim_member *m, const struct raft_read_state *rs);
void client_read_failed(struct sim *s, struct sim_member *m, u64 ctx);
void client_serve_reads(struct sim *s, struct sim_member *m);
void client_member_lost(struct sim *s, struct sim_member *m);
void client_snapshot_installed(struct sim *s, struct sim_member *m);
u32 client_encode_put(u8 *buf, u32 magic, u32 client, u64 value, u32 key, u32 pad);
bool client_decode_put(const u8 *data, u32 len, u32 *magic, u64 *value, u32 *key);

/* check_safety.c */
void check_init(struct sim *s);
void check_free(struct sim *s);
void check_role(struct sim *s, struct sim_member *m, enum raft_role role, u64 term);
void check_ready(struct sim *s, struct sim_member *m, const struct raft_status *st,
                 const struct raft_ready *rd);
void check_new_leader(struct sim *s, struct sim_member *m, u64 term);
void check_entry_written(struct sim *s, struct sim_member *m, const struct raft_entry *e);
void check_apply(struct sim *s, struct sim_member *m, const struct raft_entry *e);
void check_snapshot_installed(struct sim *s, struct sim_member *m);
void check_step(struct sim *s);
u64 check_entry_hash(const struct raft_entry *e);
u64 check_state_hash(const struct sim_member *m);
void check_conf_apply(struct raft_conf *conf, const struct raft_conf_change *cc);

/* check_linear.c */
void check_linearizable(struct sim *s);

#endif
