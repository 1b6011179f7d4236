/*
 * shard_int.h — the shard runtime's internals, shared by shard.c (life and the turn),
 * shard_req.c (requests: handshake, routing, forwarding, gathers), shard_io.c (WAL: recovery,
 * group commit through the loop) and shard_snap.c (snapshots in the background).
 *
 * One struct shard per shard thread; it alone touches its members. The struct node holds
 * what the threads share read-only after start (config, listen fds, the xcore matrix, the
 * loops' doorbell targets) and the start/stop handshake.
 */
#ifndef KEEL_SHARD_SHARD_INT_H
#define KEEL_SHARD_SHARD_INT_H

#include "core/disk.h"
#include "core/mvcc.h"
#include "core/wal.h"
#include "net/bufring.h"
#include "net/conn.h"
#include "net/loop.h"
#include "net/peer.h"
#include "raft/raft.h"
#include "shard/exec.h"
#include "shard/router.h"
#include "shard/shard.h"
#include "shard/xcore.h"

#include <pthread.h>
#include <stdatomic.h>

/* Raft timing, in shard ticks (SHARD_TICK_MS = 50 ms): heartbeats every 100 ms, elections after
 * 1 to 2 s without a leader (etcd's defaults). */
#define SHARD_RAFT_HEARTBEAT_TICKS 2u
#define SHARD_RAFT_ELECTION_TICKS  20u
#define SHARD_SNAP_CHUNK_BYTES     (1u << 20)

/* xcore message types (struct xcore_msg.type). */
enum shard_xmsg {
    XMSG_FWD = 1,    /* request: a whole request frame (borrowed); reply: a whole reply frame */
    XMSG_STATUS = 2, /* request: empty; reply: struct codec_shard_status inline */
};

/* XMSG_STATUS replies carry the shard's codec_shard_status inline in the slot. */
static_assert(sizeof(struct codec_shard_status) <= XCORE_INLINE_SIZE_MAX, "inline in a slot");

/* A request this shard forwarded (cookie of the xcore message). */
struct fwd {
    struct conn *c;        /* holds c->pending until the reply */
    struct gather *gather; /* a part of a gather, or NULL for a single forward */
    u32 part;              /* index in the gather */
};

/* A request answered from several shards: a RANGE over several shards, or STATUS on the
 * router port. */
struct gather {
    struct conn *c;
    u16 opcode;
    u64 request_id;
    u8 *frame; /* own copy of the request frame (RANGE) */
    size_t frame_len;
    u32 parts_total;
    u32 parts_left;
    u16 shard[NODE_SHARDS_MAX];
    u8 *part[NODE_SHARDS_MAX]; /* reply frame bytes (RANGE) */
    size_t part_len[NODE_SHARDS_MAX];
    struct codec_shard_status status[NODE_SHARDS_MAX];
};

/* Heap bytes lent to another shard through xcore, freed once consumed. */
struct lent {
    u64 ticket;
    void *ptr;
};

struct lent_fifo {
    struct lent *items; /* ring of cap */
    u32 cap;
    u32 head;
    u32 count;
};

/* A reply to another shard's forwarded request, waiting for room in the xcore ring. */
struct remote_reply {
    u32 origin;
    u16 type;
    u64 cookie;
    u8 *bytes;
    u32 len;
};

/* One op of a group commit: which one, for its completion. */
struct shard_flush_op {
    struct loop_completion c; /* first: the completion's address is the op's */
    struct shard *s;
    u32 index; /* < WAL_FLUSH_OPS_MAX: write i; else fdatasync i - WAL_FLUSH_OPS_MAX */
};

/* Where the reply of a request answered later (at apply, or after its read index) goes. */
enum sink_kind { SINK_CONN = 1, SINK_XCORE = 2, SINK_GATHER = 3, SINK_PEER = 4 };

/* The first byte of every peer message (shard_fwd.c has the table). */
enum peer_kind { PEER_KIND_RAFT = 1, PEER_KIND_FWD_REQ = 2, PEER_KIND_FWD_REP = 3 };

struct sink {
    u8 kind;
    u16 opcode;
    u64 request_id;
    struct conn *c;   /* SINK_CONN: holds c->pending until the reply */
    struct gather *g; /* SINK_GATHER */
    u32 part;
    u32 origin; /* SINK_XCORE: the shard that forwarded it */
    u64 cookie; /* SINK_XCORE: the origin's; SINK_PEER: the follower's token */
    u64 member; /* SINK_PEER: the follower that forwarded it */
    bool held;  /* SINK_CONN: counted in c->pending while stored (shard_sink_hold) */
};

/* A write proposed to raft, answered when the entry (index, term) is applied. */
struct proposal {
    u64 index;
    u64 term;
    struct sink sink;
    u64 member_id; /* a membership change: the member it changes */
};

/* Linearizable reads that share one read-index round. */
enum read_batch_state { RB_FREE = 0, RB_OPEN = 1, RB_WAITING = 2, RB_CONFIRMED = 3 };

struct read_item {
    struct sink sink;
    u32 off; /* the request frame in frames */
    u32 len;
};

struct read_batch {
    u8 state;
    u64 ctx;
    u64 index; /* serve once applied >= index */
    struct read_item *items;
    u32 count;
    u32 cap;
    struct buf frames;
};

/* A message for a peer held until the WAL is durable up to need_index (ready step d). */
struct held_msg {
    u64 need_index;
    u64 to;
    u8 *bytes;
    u32 len;
};

/* A member's name and peer URL, as this shard learned them (shard_status.c). */
struct member_info {
    u64 id;
    char name[64];
    char peer_url[96];
};

/* A leadership transfer a client asked for (MOVE_LEADER), answered once it is done. */
struct pending_move {
    bool active;
    struct sink sink;
    u64 target;
    u32 elapsed_ticks;
};

/* Figures a shard publishes for the other shards of its node (shard_status.c). */
struct shard_pub {
    _Atomic u64 leader, term, commit, applied, last;
    _Atomic i64 revision;
    _Atomic u32 role; /* enum codec_raft_role */
    _Atomic u32 conf_count;
    _Atomic u64 conf_id[RAFT_MEMBERS_MAX];
    _Atomic u32 conf_role[RAFT_MEMBERS_MAX];
    _Atomic u32 progress_count;
    struct {
        _Atomic u64 id, match, next;
        _Atomic u32 flags;
    } progress[RAFT_MEMBERS_MAX];
};

struct shard {
    struct node *node;
    u32 id;
    pthread_t thread;
    bool thread_started;
    char dir[DISK_PATH_SIZE_MAX];
    struct loop *loop;
    struct bufring br;
    bool br_ready;
    struct conn_host host;
    struct loop_completion accept_c[2]; /* router port, shard port */
    bool accept_armed[2];
    struct loop_completion tick_c;
    bool tick_armed;
    struct loop_completion doorbell_c; /* MSG_RING target, or the eventfd read */
    bool efd_armed;
    struct loop_completion ring_c; /* our MSG_RING sends */
    /* store */
    struct mvcc *m;
    struct exec x;
    struct router_map map;
    bool compacting;
    /* WAL */
    struct disk_posix disk;
    struct wal wal;
    bool wal_open;
    bool flush_busy;
    u32 flush_ops_left;
    int flush_res;
    u64 flushes;
    u64 flush_slow;
    u64 flush_ns_total;
    u64 flush_records_total;
    u64 flush_durable_before;
    u64 flush_started_ns;
    struct shard_flush_op flush_ops[2 * WAL_FLUSH_OPS_MAX]; /* writes, then fdatasyncs */
    struct wal_flush_io flush_io;
    /* the spare WAL segment, zero-filled in the background (shard_io.c) */
    int spare_fd;
    u64 spare_off;
    bool spare_busy;
    bool spare_syncing;
    bool spare_ready;
    bool spare_off_switch; /* preparing failed once: segments are created in place */
    int spare_res;
    u8 *spare_zeros;
    struct loop_completion spare_c;
    char spare_path[DISK_PATH_SIZE_MAX];
    /* cross-core */
    struct lent_fifo lent_req[NODE_SHARDS_MAX];
    struct lent_fifo lent_rep[NODE_SHARDS_MAX];
    struct remote_reply *rr; /* waiting for the WAL */
    u32 rr_len;
    u32 rr_cap;
    bool rr_ready; /* an entry may be releasable now */
    /* life */
    bool draining;
    bool drained;
    u64 drain_started_ns;
    u64 requests;
    u64 snapshot_wal_mark; /* WAL bytes at the last snapshot */
    u64 last_snap_index;   /* applied_index of the newest snapshot on disk */
    u64 last_snap_bytes;   /* its size */
    struct shard_snap *snap;
    /* raft (shard_raft.c, shard_raft_boot.c, shard_hs.c, shard_peer.c) */
    struct raft *raft;
    u64 applied_index;
    u64 persisted_reported;
    bool storage_wait;
    int hs_fd;
    u64 hs_seq;
    struct raft_hard_state hs_saved;
    struct proposal *props; /* ring of SHARD_PROPOSALS_MAX */
    u32 props_head;
    u32 props_count;
    u8 *prop_buf; /* [prop_buf_cap]: [opcode][body] of a proposal */
    u32 prop_buf_cap;
    u8 *entry_buf; /* [prop_buf_cap + 8]: a WAL record's payload */
    struct buf apply_scratch;
    struct read_batch rb[64];
    struct read_batch *rb_open;
    u64 read_ctx;
    struct held_msg *held;
    u32 held_len;
    u32 held_cap;
    struct peer_transport *peer;   /* NULL for a single-member cluster without peers */
    struct raft_entry *rx_entries; /* a received message's entries */
    u32 rx_entries_cap;
    u64 peer_bad_msgs;
    u64 leader_seen;            /* raft's leader at the end of the last turn */
    bool single_voter;          /* this member is its group's only voter (shard_raft_conf_seen) */
    bool conf_dirty;            /* a membership change was applied this turn */
    struct fwd_slot *fwd_slots; /* requests forwarded to the leader (shard_fwd.c) */
    u32 fwd_count;
    u32 fwd_next;
    struct buf fwd_reply_scratch;
    struct member_info minfo[RAFT_MEMBERS_MAX];
    u32 minfo_count;
    u32 balance_ticks;
    struct pending_move move;
    bool snap_force; /* take a snapshot now (a member joins: it needs one) */
    struct buf msg_scratch;
    u8 *chunk_buf; /* [SHARD_SNAP_CHUNK_BYTES]: a snapshot chunk read for a follower */
    int recv_fd;   /* a snapshot being received, or -1 */
    u64 recv_index;
};

struct node {
    struct node_config config;
    char data_dir[DISK_PATH_SIZE_MAX];
    u16 client_port;
    int client_fd[NODE_SHARDS_MAX];
    int shard_fd[NODE_SHARDS_MAX];
    struct xcore *xcore;
    struct router_map map; /* from keel.meta; copied by every shard */
    struct shard *shards;  /* [shard_count] */
    struct shard_pub pub[NODE_SHARDS_MAX];
    struct loop *loops[NODE_SHARDS_MAX];
    atomic_bool no_msg_ring; /* some loop lacks MSG_RING: every doorbell is an eventfd */
    int lock_fd;
    atomic_int stop;
    atomic_uint open_conns;
    atomic_uint drained;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    u32 ready;
    u32 failed;
    char err[256];
};

/* node_meta.c */
int node_prepare_dir(struct node *n, char *err, size_t err_len);

/* shard.c */
void shard_fail(struct shard *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
u64 shard_now_ns(void);

/* shard_req.c */
int shard_on_frame(void *ctx, struct conn *c, const struct codec_frame *f, struct span raw);
void shard_on_closed(void *ctx, struct conn *c);
int shard_xcore_handler(void *ctx, const struct xcore_msg *msg);
void shard_release_remote(struct shard *s);
void shard_free_lent(struct shard *s);
void shard_own_status(struct shard *s, struct codec_shard_status *out);
void shard_gather_part(struct shard *s, struct gather *g, u32 part, struct span bytes);
int shard_submit(struct shard *s, struct sink *k, const struct codec_frame *f,
                 const union codec_msg_any *m, struct span raw);
#define shard_submit_forwarded shard_submit
void shard_remote_reply(struct shard *s, u32 origin, u64 cookie, u8 *bytes, u32 len);

/* shard_io.c */
int shard_wal_recover(struct shard *s);
u64 shard_wal_append(struct shard *s, u16 opcode, struct span body);
void shard_wal_kick(struct shard *s);
u64 shard_wal_durable(const struct shard *s);
u64 shard_wal_pending(const struct shard *s); /* last index if not durable, else 0 */
u64 shard_wal_bytes(const struct shard *s);
void shard_wal_close(struct shard *s);
void shard_wal_restart(struct shard *s, u64 first_index);
_Noreturn void shard_wal_fatal(struct shard *s, const char *what, int rc);
void shard_spare_step(struct shard *s);
void shard_spare_free(struct shard *s);

/* shard_fwd.c */
int shard_forward_to_leader(struct shard *s, struct sink *k, struct span raw);
void shard_fwd_on_request(struct shard *s, u64 from, const u8 *bytes, u32 len);
void shard_fwd_reply(struct shard *s, const struct sink *k, const u8 *frame, u32 len);
void shard_fwd_on_reply(struct shard *s, u64 from, const u8 *bytes, u32 len);
void shard_fwd_tick(struct shard *s);
void shard_fwd_fail_all(struct shard *s);
void shard_fwd_fail_to(struct shard *s, u64 member, bool unreachable);

/* shard_status.c */
void shard_publish(struct shard *s);
u64 shard_pub_leader(const struct node *n, u32 shard);
int shard_endpoint_status(struct shard *s, struct buf *out, const struct codec_frame *f);
int shard_member_list(struct shard *s, struct buf *out, const struct codec_frame *f);
int shard_members_list(struct shard *s, const struct codec_field_desc *field,
                       struct codec_list *out, struct buf *scratch);
void shard_member_info_set(struct shard *s, u64 id, const char *name, const char *peer_url);
void shard_member_info_init(struct shard *s);
bool shard_member_known(const struct shard *s, u64 id);
void shard_balance_tick(struct shard *s);

/* shard_member.c */
bool shard_is_member_op(u16 opcode);
int shard_member_op(struct shard *s, struct sink *k, const struct codec_frame *f,
                    const union codec_msg_any *m, struct span raw);
void shard_member_applied(struct shard *s, struct sink *k, u64 member_id);
void shard_move_tick(struct shard *s);
void shard_member_merge(struct shard *s, struct gather *g, struct buf *out);

/* shard_hs.c */
int shard_hs_open(struct shard *s, struct raft_hard_state *hs);
void shard_hs_store(struct shard *s, const struct raft_hard_state *hs);
void shard_hs_close(struct shard *s);

/* shard_raft.c */
int shard_propose(struct shard *s, struct sink *k, const struct codec_frame *f, struct span raw);
void shard_sink_bytes(struct shard *s, struct sink *k, const u8 *frame, u32 len);
void shard_props_push(struct shard *s, u64 index, u64 term, const struct sink *k, u64 member_id);
void shard_exec_now(struct shard *s, struct sink *k, const struct codec_frame *f,
                    const union codec_msg_any *m);
int shard_read_linearizable(struct shard *s, struct sink *k, struct span raw);
void shard_sink_hold(struct sink *k);
void shard_sink_error(struct shard *s, struct sink *k, u16 status, u64 detail, const char *msg);
bool shard_storage_idle(const struct shard *s);
void shard_raft_turn(struct shard *s);
void shard_raft_tick(struct shard *s);
bool shard_raft_busy(const struct shard *s);
bool shard_raft_owes(const struct shard *s);
void shard_raft_fail_owed(struct shard *s);

/* shard_raft_boot.c */
int shard_raft_boot(struct shard *s, u64 snapshot_index);
void shard_raft_free(struct shard *s);
void shard_apply_conf(struct shard *s, const struct raft_entry *e);
void shard_raft_role_changed(struct shard *s, bool was_leader);
void shard_raft_conf_seen(struct shard *s);

/* shard_peer.c */
int shard_peer_start(struct shard *s);
u64 shard_cluster_id(const struct node_config *c);
void shard_peer_send(struct shard *s, const struct raft_msg *m, u64 need_index);
void shard_peer_release(struct shard *s);
void shard_peer_tick(struct shard *s);
void shard_peer_stop(struct shard *s);
void shard_peer_conf_change(struct shard *s, const struct raft_conf_change *cc);

/* shard_snap.c */
int shard_snap_load(struct shard *s, u64 *applied_index);
void shard_snap_step(struct shard *s);
/* Drops Raft entries from memory that no reachable member needs (each tick, with st). */
void shard_snap_trim_log(struct shard *s, const struct raft_status *st);
bool shard_snap_blocks_compaction(const struct shard *s);
bool shard_snap_io_busy(const struct shard *s);
void shard_snap_teardown(struct shard *s);
void shard_snap_free(struct shard *s);
int shard_snap_meta_store(struct shard *s, const struct raft_snapshot_meta *m);
void shard_snap_meta_remove_older(struct shard *s, u64 index);
void shard_snap_abandon(struct shard *s);
int shard_snap_meta_load(struct shard *s, u64 index, struct raft_snapshot_meta *meta);
void shard_snap_fill_chunk(struct shard *s, struct raft_msg *m);
void shard_snap_recv_chunk(struct shard *s, const struct raft_snap_chunk *chunk);
void shard_snap_install_received(struct shard *s, const struct raft_snapshot_meta *meta);

#endif
