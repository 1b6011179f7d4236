/*
 * raft_int.h — private state of the Raft core (struct raft) and the helpers its files share.
 * Only the .c files of raft/ include this header.
 *
 * Layout of the core (one file per concern, canonical/raft's habit):
 *   raft.c           create/destroy, status, accessors, config defaults
 *   raft_log.c       the in-memory log since the last compaction (entries own copies of data)
 *   raft_progress.c  per-member progress of a leader: probe/replicate/snapshot, in-flight window
 *   raft_election.c  tick, pre-vote, vote, check-quorum, role transitions, leadership transfer
 *   raft_step.c      raft_step: validation, term rules, dispatch by message type
 *   raft_replicate.c APP/APP_RESP/HEARTBEAT, proposals, commit by quorum of durable matches
 *   raft_read.c      ReadIndex (§6.4), local and forwarded
 *   raft_snap.c      compaction, chunked snapshot send/receive/install
 *   raft_conf.c      membership changes (one at a time, effective when applied)
 *   raft_ready.c     raft_has_ready/raft_ready/raft_advance and the outgoing message queues
 *
 * Invariants (checked by raft_check_invariants at the edges of every public call):
 *   log.snap_index <= applied <= commit <= last index; persisted <= last index;
 *   every entry's term <= term; vote == 0 or a member id; a leader's progress covers its conf.
 */
#ifndef KEEL_RAFT_RAFT_INT_H
#define KEEL_RAFT_RAFT_INT_H

#include "raft/raft.h"

#include "core/assert.h"

#define RAFT_INFLIGHT_CAP 256 /* largest config.inflight_msgs_max */

/* A growable array whose memory comes from config.alloc. */
struct raft_vec {
    void *items;
    u32 count;
    u32 cap;
};

/* The log since the last compaction: entries ents[start .. start + count) hold the indices
 * snap_index + 1 .. snap_index + count. Each entry's data is a copy owned by the log. */
struct raft_log {
    struct raft_entry *ents;
    u64 start;
    u64 count;
    u64 cap;
    u64 snap_index;    /* index of the entry before the first held one (0: none) */
    u64 snap_term;     /* its term */
    u64 unstable_from; /* first index not yet handed to storage in a ready */
    u64 truncate_from; /* 0, or the stored suffix to drop in the next ready */
    u64 persisted;     /* last index reported durable (raft_persisted) */
};

struct raft_progress {
    u64 id;
    u8 role;  /* enum raft_member_role */
    u8 state; /* enum raft_progress_state */
    bool recent_active;
    bool probe_sent;  /* PROBE: one APP out, wait for its answer or a heartbeat answer */
    bool snap_wanted; /* PROBE: it needs a snapshot and the leader has none yet */
    u64 match;
    u64 next;
    u64 read_ack;    /* highest read round context acknowledged */
    u64 sent_commit; /* highest commit index sent to it */
    /* SNAPSHOT: the snapshot being sent and its chunk window. */
    u64 snap_index;
    u64 snap_next;  /* next offset to send */
    u64 snap_acked; /* the follower has everything before this offset */
    u64 snap_end;   /* size once the caller marked the last chunk; UINT64_MAX: unknown */
    u64 snap_nack;  /* offset of the last rewind (ignore repeated NACKs for it) */
    u32 snap_idle_ticks;
    /* In-flight APP messages (REPLICATE): a ring of (last index, bytes). Last in the struct:
     * raft_progress_reset clears everything before infl_last. */
    u32 infl_head;
    u32 infl_count;
    u64 infl_bytes;
    u64 infl_last[RAFT_INFLIGHT_CAP];
    u32 infl_size[RAFT_INFLIGHT_CAP];
};

struct raft_read_req {
    u64 context;
    u64 from;  /* 0: this member's own read; else the follower that forwarded it */
    u64 round; /* 0: waits for a round; else the round context it rides */
    u64 index; /* commit when its round started */
};

struct raft_fwd_read {
    u64 context;
    u32 elapsed_ticks;
};

#define RAFT_CHUNKS_QUEUED 8 /* incoming snapshot chunks a follower holds before a ready */

struct raft_chunk_slot {
    struct raft_snap_chunk chunk;
    u64 from; /* the leader that sent it (its acknowledgement goes there) */
};

enum raft_install_state {
    RAFT_INSTALL_NONE = 0,
    RAFT_INSTALL_AFTER_CHUNK = 1, /* last chunk accepted; not handed out and advanced yet */
    RAFT_INSTALL_READY = 2,       /* the next ready carries snapshot_install; raft's state
                                     switches to the snapshot when that ready is advanced */
};

struct raft {
    struct raft_config cfg;
    /* Hard state, and the one last handed out. */
    u64 term;
    u64 vote;
    u64 commit;
    struct raft_hard_state hs_prev;
    /* Volatile state. */
    u8 role; /* enum raft_role */
    u64 leader;
    u64 applied;
    struct raft_conf conf;
    u64 conf_index; /* index of the last applied CONF entry (or snapshot) */
    bool conf_base; /* the conf started from a bootstrap or a snapshot, not only from entries */
    struct raft_log log;
    bool role_changed;
    /* Elections. */
    u32 election_elapsed;
    u32 heartbeat_elapsed;
    u32 timeout_ticks; /* randomized election timeout */
    u64 rng;
    u64 granted[RAFT_MEMBERS_MAX];
    u32 granted_count;
    u64 rejected[RAFT_MEMBERS_MAX];
    u32 rejected_count;
    u64 transfer_target;
    u32 transfer_elapsed;
    /* Leader. */
    u64 term_start_index; /* index of the leader's no-op entry of this term */
    u64 uncommitted_bytes;
    struct raft_progress prs[RAFT_MEMBERS_MAX];
    u32 pr_count;
    /* Reads. */
    struct raft_vec read_reqs; /* leader: struct raft_read_req */
    u64 read_round;            /* last round context started */
    u64 read_round_done;       /* last round context confirmed by a quorum */
    struct raft_vec fwd_reads; /* follower: struct raft_fwd_read */
    struct raft_vec reads_out; /* struct raft_read_state for the next ready */
    struct raft_vec reads_failed;
    /* Outgoing messages (struct raft_msg). APP entries are resolved at raft_ready. */
    struct raft_vec msgs;
    struct raft_vec msgs_after;
    /* Snapshots. */
    struct raft_snapshot_meta snap_meta; /* latest raft_compact or installed snapshot */
    bool recv_active;
    struct raft_snapshot_meta recv_meta;
    u64 recv_next; /* next offset wanted */
    /* Accepted chunks waiting to be handed out, one per ready (the head is the next); the
     * head's acknowledgement is queued when it becomes the head, so it leaves with its ready. */
    struct raft_chunk_slot chunks[RAFT_CHUNKS_QUEUED];
    u32 chunk_head;
    u32 chunk_count;
    u8 install_state; /* enum raft_install_state */
    struct raft_snapshot_meta install_meta;
    /* Between raft_ready and raft_advance. */
    bool in_ready;
    u64 rd_entries_last;
    u64 rd_committed_last;
};

/* raft.c */
void *raft_alloc(struct raft *r, size_t size_bytes);
void raft_free(struct raft *r, void *ptr, size_t size_bytes);
int raft_vec_reserve(struct raft *r, struct raft_vec *v, size_t item_bytes, u32 need);
void raft_vec_release(struct raft *r, struct raft_vec *v, size_t item_bytes);
bool raft_is_voter(const struct raft *r, u64 id);
bool raft_can_campaign(const struct raft *r);
u32 raft_quorum(const struct raft *r);
void raft_check_invariants(const struct raft *r);

/* raft_log.c */
void raft_log_init(struct raft_log *log, u64 snap_index, u64 snap_term);
void raft_log_release(struct raft *r);
u64 raft_log_last(const struct raft_log *log);
u64 raft_log_last_term(const struct raft_log *log);
bool raft_log_term(const struct raft_log *log, u64 index, u64 *term);
struct raft_entry *raft_log_get(const struct raft_log *log, u64 index);
int raft_log_append(struct raft *r, const struct raft_entry *e);
void raft_log_truncate(struct raft *r, u64 from);
void raft_log_compact(struct raft *r, u64 upto);
void raft_log_reset(struct raft *r, u64 index, u64 term);
u64 raft_log_conflict_hint(const struct raft_log *log, u64 index, u64 term);
bool raft_log_up_to_date(const struct raft_log *log, u64 index, u64 term);

/* raft_progress.c */
struct raft_progress *raft_progress_find(struct raft *r, u64 id);
void raft_progress_reset(struct raft *r, struct raft_progress *pr);
void raft_progress_sync(struct raft *r);
void raft_progress_become_probe(struct raft *r, struct raft_progress *pr);
void raft_progress_become_replicate(struct raft_progress *pr);
void raft_progress_become_snapshot(struct raft_progress *pr, u64 snap_index);
bool raft_progress_full(const struct raft *r, const struct raft_progress *pr);
void raft_progress_infl_add(struct raft_progress *pr, u64 last, u32 bytes);
void raft_progress_infl_free_to(struct raft_progress *pr, u64 index);
void raft_progress_infl_free_first(struct raft_progress *pr);
bool raft_progress_update(struct raft_progress *pr, u64 index);

/* raft_election.c */
void raft_become_follower(struct raft *r, u64 term, u64 leader);
void raft_campaign_pre(struct raft *r);
void raft_campaign_vote(struct raft *r, bool transfer);
void raft_step_vote(struct raft *r, const struct raft_msg *m);
void raft_step_vote_resp(struct raft *r, const struct raft_msg *m);
void raft_reset_timeout(struct raft *r);
void raft_step_timeout_now(struct raft *r, const struct raft_msg *m);
void raft_transfer_check(struct raft *r, const struct raft_progress *pr);

/* raft_replicate.c */
void raft_send_append(struct raft *r, struct raft_progress *pr, bool send_empty);
void raft_bcast_append(struct raft *r, bool send_empty);
void raft_bcast_heartbeat(struct raft *r);
void raft_step_append(struct raft *r, const struct raft_msg *m);
void raft_step_append_resp(struct raft *r, const struct raft_msg *m);
void raft_step_heartbeat(struct raft *r, const struct raft_msg *m);
void raft_step_heartbeat_resp(struct raft *r, const struct raft_msg *m);
bool raft_maybe_commit(struct raft *r);
bool raft_committed_in_term(const struct raft *r);

/* raft_read.c */
void raft_read_start_round(struct raft *r);
void raft_read_advance(struct raft *r);
void raft_read_fail_all(struct raft *r);
void raft_read_tick(struct raft *r);
void raft_step_read_index(struct raft *r, const struct raft_msg *m);
void raft_step_read_index_resp(struct raft *r, const struct raft_msg *m);

/* raft_snap.c */
void raft_snap_send(struct raft *r, struct raft_progress *pr);
/* The latest snapshot can bring a member up to the log: it exists and is not older than the
 * entries dropped from memory. */
bool raft_snap_usable(const struct raft *r);
/* pr needs what only a snapshot holds: send the latest when usable, else mark pr as waiting
 * for one (raft_status.snapshot_wanted) and probe again later. */
void raft_snap_need(struct raft *r, struct raft_progress *pr);
void raft_snap_tick(struct raft *r, struct raft_progress *pr);
void raft_step_snap(struct raft *r, const struct raft_msg *m);
void raft_step_snap_resp(struct raft *r, const struct raft_msg *m);
void raft_snap_advance(struct raft *r, const struct raft_ready *rd);
void raft_snap_release(struct raft *r);

/* raft_conf.c */
bool raft_conf_apply(struct raft_conf *conf, const struct raft_conf_change *cc);
void raft_conf_apply_entry(struct raft *r, const struct raft_entry *e);
bool raft_conf_pending(const struct raft *r);

/* raft_ready.c */
void raft_msg_init(const struct raft *r, struct raft_msg *m, u8 type, u64 to);
bool raft_send(struct raft *r, const struct raft_msg *m);
bool raft_send_after(struct raft *r, const struct raft_msg *m);
void raft_msgs_drop_app(struct raft *r, u64 first_valid, u64 truncated_from);

#endif
