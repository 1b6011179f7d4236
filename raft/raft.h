/*
 * raft.h — the Raft protocol as a pure state machine (etcd raft's RawNode, cowsql's raft_step).
 *
 * Contract:
 *  - Pure: no syscalls, no clock reads, no threads, no I/O. Time is raft_tick() (an abstract
 *    tick; the shard ticks every RAFT tick_ms), randomness is a PRNG seeded by config.seed, so
 *    one seed and one sequence of calls give one exact sequence of readies. The caller does all
 *    I/O: it persists, sends, applies and installs what raft_ready hands out.
 *  - Memory: every byte raft allocates comes from config.alloc/config.free (the shard's arena;
 *    a test's malloc). Entries since the last compaction are held in memory (as etcd's
 *    MemoryStorage does); raft_compact drops them. Limits: config.inflight_bytes_max per
 *    follower, config.append_bytes_max per AppendEntries message, config.uncommitted_bytes_max
 *    of proposals not yet committed (RAFT_EBUSY beyond it), RAFT_MEMBERS_MAX members.
 *  - Single-threaded; one struct raft per group member. Every call ASSERTs the invariants it
 *    relies on (term >= every term in the log, commit <= last index, applied <= commit, ...).
 *
 * The ready loop (the caller's side; docs/architecture.md "The ready loop" says why the order
 * is safe):
 *    1. Feed inputs: raft_step(received message), raft_tick(), raft_propose(), raft_read_index(),
 *       raft_persisted(durable index), ...
 *    2. If raft_has_ready(): raft_ready(r, &rd), then, in this order:
 *       a. rd.truncate_from != 0: drop the stored log from that index on.
 *          rd.snapshot_install (follower): the snapshot's chunks have all been handed out
 *          (rd.snap_chunk, in earlier readies); replace the state machine by that snapshot and
 *          the whole stored log by an empty one that continues after rd.snapshot_install->index.
 *       b. Hand rd.entries and rd.hard_state (when rd.hard_state_changed) and rd.snap_chunk to
 *          storage. This may be asynchronous (group commit): nothing has to be durable yet.
 *       c. Send rd.msgs now (the leader's AppendEntries go out before its own fdatasync: the
 *          leader appends to its log in parallel with replication, Raft thesis §10.2.1).
 *          Fill every RAFT_MSG_SNAP in rd.msgs whose snap_data is NULL with the chunk of the
 *          caller's snapshot of that index at snap_offset (<= config.snap_chunk_bytes; set
 *          snap_last on the final chunk) before it is sent. Offsets are multiples of
 *          snap_chunk_bytes: every chunk but the last holds exactly snap_chunk_bytes; raft does
 *          not know the size, so a chunk at or past the end gets snap_len 0 and snap_last (raft
 *          reads the filled chunks back at raft_advance and stops there).
 *       d. Send rd.msgs_after_persist only once everything of step b of this ready (and of
 *          every earlier ready) is durable: votes, append and snapshot acknowledgements.
 *       e. Apply rd.committed in order (entries of type RAFT_ENTRY_CONF too: raft applies the
 *          membership change itself at raft_advance; the caller connects to new members).
 *          rd.committed stops at what raft_persisted reported durable here, unless
 *          config.apply_unpersisted (then it goes up to commit; see Choices).
 *       f. Serve the reads in rd.reads once the applied index reaches each read's index.
 *       g. raft_advance(r, &rd). Everything rd points to is valid until then, and no other
 *          raft call may come between raft_ready and raft_advance.
 *    3. When an fdatasync completes, raft_persisted(r, index, term) with the last index it
 *       covers: the leader counts its own log as matched only up to there (commit is by a
 *       quorum of *durable* matches), and entries are handed out for apply only up to there.
 *  - Messages of any kind may be lost, duplicated, reordered or delayed; raft stays safe.
 *    Messages from unknown members, stale terms and older snapshots are dropped or answered as
 *    the paper says.
 *
 * Choices (docs/architecture.md gives the reasons):
 *  - Membership: one change at a time (thesis §4.1, single-server changes), not joint
 *    consensus. A change takes effect when its entry is applied (as in etcd), a leader accepts
 *    a new change only once the previous one is applied and an entry of its own term is
 *    committed (the fix of thesis §4.1 / raft-dev 2015 for single-server changes), and a
 *    change that would leave no voter is refused.
 *  - Pre-vote (thesis §9.6) and check-quorum (§6.2) are always on; a leader that has not heard
 *    from a quorum for an election timeout steps down; a follower that heard from a leader
 *    within an election timeout rejects (pre-)votes unless the candidate carries a leadership
 *    transfer (§3.10).
 *  - Linearizable reads by ReadIndex (§6.4): every raft_read_index issued before a heartbeat
 *    round shares that round; a leader answers only once an entry of its term is committed.
 *  - config.apply_unpersisted (off by default): committed entries are handed out for apply up
 *    to commit even before this member's own storage reported them durable. Safe: a committed
 *    entry is durable on a quorum; the caller's snapshots must wait for its own log to cover
 *    the applied index. Commit still counts the leader's own log only through raft_persisted.
 *    It spares a leader's reply the wait for its own fdatasync when followers were faster.
 */
#ifndef KEEL_RAFT_RAFT_H
#define KEEL_RAFT_RAFT_H

#include "core/types.h"

#define RAFT_MEMBERS_MAX 9 /* voters + learners of one group */

/* Errors of raft calls (returned as int; 0 is success). Distinct from enum keel_err: the shard
 * maps them to wire statuses (NOT_LEADER, UNAVAILABLE, ...). */
enum raft_err {
    RAFT_OK = 0,
    RAFT_ENOT_LEADER = 1,   /* only the leader proposes or changes membership */
    RAFT_EBUSY = 2,         /* uncommitted_bytes_max reached, or a transfer is under way */
    RAFT_ECONF_PENDING = 3, /* a membership change is not applied yet, or this term has no
                               committed entry yet */
    RAFT_EINVALID = 4,      /* bad argument: unknown member, a change that changes nothing,
                               a too-large proposal, the last voter removed, ... */
    RAFT_ENOMEM = 5,        /* config.alloc returned NULL; raft's state is unchanged */
    RAFT_ECORRUPT = 6,      /* raft_msg_decode / raft_conf_decode: bytes that do not decode */
};
const char *raft_err_str(int err);

enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_PRE_CANDIDATE = 1,
    RAFT_CANDIDATE = 2,
    RAFT_LEADER = 3,
};
const char *raft_role_str(enum raft_role role);

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1, /* the caller's bytes; empty for the leader's no-op of a new term */
    RAFT_ENTRY_CONF = 2,   /* a struct raft_conf_change, encoded by raft_conf_encode */
};

struct raft_entry {
    u64 term;
    u64 index;
    u8 type; /* enum raft_entry_type */
    u32 len;
    const u8 *data; /* len bytes; NULL when len == 0 */
};

/* What must be durable before a message that depends on it is sent (ready step d). */
struct raft_hard_state {
    u64 term;
    u64 vote;   /* member voted for in term; 0 = none */
    u64 commit; /* may lag after a restart; it only speeds up recovery */
};

enum raft_member_role { RAFT_VOTER = 1, RAFT_LEARNER = 2 };

struct raft_member {
    u64 id;  /* nonzero, unique in the group */
    u8 role; /* enum raft_member_role */
};

struct raft_conf {
    struct raft_member members[RAFT_MEMBERS_MAX];
    u32 count;
};

enum raft_conf_change_type {
    RAFT_CC_ADD_VOTER = 1,   /* a new member that votes at once (a learner first is safer) */
    RAFT_CC_ADD_LEARNER = 2, /* a new member that receives the log but does not vote */
    RAFT_CC_PROMOTE = 3,     /* a learner becomes a voter */
    RAFT_CC_REMOVE = 4,      /* a voter or learner leaves */
};

#define RAFT_CONF_CONTEXT_MAX 256

struct raft_conf_change {
    u8 type; /* enum raft_conf_change_type */
    u64 id;
    u32 context_len; /* opaque to raft: keel puts "name=peer-url" here */
    u8 context[RAFT_CONF_CONTEXT_MAX];
};

/* The state a snapshot stands for: the log up to index (whose entry had term) applied. */
struct raft_snapshot_meta {
    u64 index;
    u64 term;
    struct raft_conf conf;
};

enum raft_msg_type {
    RAFT_MSG_APP = 1,      /* AppendEntries: index/log_term of the entry before entries */
    RAFT_MSG_APP_RESP = 2, /* index: last index matched; reject + reject_hint on mismatch */
    RAFT_MSG_PREVOTE = 3,  /* term: the term the sender would campaign in */
    RAFT_MSG_PREVOTE_RESP = 4,
    RAFT_MSG_VOTE = 5,      /* index/log_term: the candidate's last entry */
    RAFT_MSG_VOTE_RESP = 6, /* reject: vote refused */
    RAFT_MSG_HEARTBEAT = 7, /* commit: min(leader commit, follower match); context: read round */
    RAFT_MSG_HEARTBEAT_RESP = 8, /* context echoed */
    RAFT_MSG_SNAP = 9,           /* snap + snap_offset/snap_data/snap_len/snap_last: one chunk */
    RAFT_MSG_SNAP_RESP = 10,     /* snap.index + snap_offset: the next offset the follower wants */
    RAFT_MSG_TIMEOUT_NOW = 11,   /* leadership transfer: campaign now, skipping pre-vote */
    RAFT_MSG_READ_INDEX = 12,    /* follower -> leader: context is the follower's read id */
    RAFT_MSG_READ_INDEX_RESP = 13, /* index: the read index; reject when the leader cannot */
    RAFT_MSG_TYPE_COUNT_ = 14,
};
const char *raft_msg_type_str(int type);

struct raft_msg {
    u8 type; /* enum raft_msg_type */
    u64 from;
    u64 to;
    u64 term;
    u64 log_term;
    u64 index;
    u64 commit;
    u64 context;
    bool reject;
    bool transfer;   /* VOTE of a leadership transfer (ignores the leader lease) */
    u64 reject_hint; /* APP_RESP reject: the follower's last index */
    u32 entry_count;
    const struct raft_entry *entries; /* APP only; data borrowed (valid during raft_step) */
    struct raft_snapshot_meta snap;   /* SNAP, SNAP_RESP */
    u64 snap_offset;
    u32 snap_len;
    bool snap_last;
    const u8 *snap_data; /* SNAP: NULL in a ready until the caller fills the chunk */
};

/* A chunk of an incoming snapshot for the follower to store (ready step b): bytes
 * [offset, offset + len) of the snapshot of meta.index; last on the final one. A chunk at
 * offset 0 starts a new snapshot file (drop any partial one of another index). */
struct raft_snap_chunk {
    struct raft_snapshot_meta meta;
    u64 offset;
    u32 len;
    bool last;
    const u8 *data;
};

struct raft_read_state {
    u64 context; /* the caller's id from raft_read_index */
    u64 index;   /* serve the read once applied >= index */
};

/* Reads that failed (leadership lost, no leader known): answer them with an error. */
struct raft_ready {
    bool hard_state_changed;
    struct raft_hard_state hard_state;
    u64 truncate_from; /* 0, or drop stored entries >= this index before storing entries */
    const struct raft_entry *entries; /* to store, in index order */
    u32 entry_count;
    const struct raft_msg *msgs; /* send now */
    u32 msg_count;
    struct raft_msg *msgs_mut; /* == msgs; lets the caller fill RAFT_MSG_SNAP chunks */
    const struct raft_msg *msgs_after_persist; /* send once step b is durable */
    u32 msg_after_persist_count;
    const struct raft_entry *committed; /* to apply, in index order */
    u32 committed_count;
    const struct raft_snap_chunk *snap_chunk;          /* NULL or one chunk to store */
    const struct raft_snapshot_meta *snapshot_install; /* NULL or the snapshot to install */
    const struct raft_read_state *reads;
    u32 read_count;
    const u64 *reads_failed; /* contexts of reads that will never be answered */
    u32 read_failed_count;
    bool role_changed; /* role or leader changed since the last ready (for logging) */
};

struct raft_config {
    u64 id;                    /* this member; nonzero */
    u64 seed;                  /* PRNG seed (randomized election timeouts) */
    u32 election_ticks;        /* base election timeout; a follower waits a random number of
                                  ticks in [election_ticks, 2 * election_ticks) */
    u32 heartbeat_ticks;       /* < election_ticks */
    u32 append_bytes_max;      /* entry bytes per APP message (at least one entry is sent) */
    u32 inflight_bytes_max;    /* per follower: entry bytes sent and not yet acknowledged */
    u32 inflight_msgs_max;     /* per follower: APP messages in flight */
    u64 uncommitted_bytes_max; /* proposals not yet committed; RAFT_EBUSY beyond */
    u32 entry_bytes_max;       /* largest proposal */
    u32 snap_chunk_bytes;      /* largest snapshot chunk (the caller fills chunks) */
    u32 snap_chunks_inflight;  /* snapshot chunks in flight per follower */
    bool apply_unpersisted;    /* apply committed entries before they are durable here
                                  (Choices); false by default */
    void *(*alloc)(void *ctx, size_t size_bytes); /* NULL on failure */
    void (*free)(void *ctx, void *ptr, size_t size_bytes);
    void *alloc_ctx;
};

/* Fills the defaults: election 10 ticks, heartbeat 1, 1 MiB per APP, 4 MiB and 64 messages in
 * flight per follower, 64 MiB uncommitted, 1.5 MiB entries, 1 MiB chunks, 4 chunks in flight,
 * malloc/free. id and seed are left to the caller. */
void raft_config_default(struct raft_config *config);

struct raft;

/* A restarted member's stored state: the snapshot it holds (NULL: none), its hard state, and
 * the entries it stored after the snapshot (copied; in index order, contiguous, starting at
 * snapshot->index + 1, or at 1 without one; they count as persisted). A brand-new member of a
 * new cluster passes the initial configuration in bootstrap (every member the same), no
 * snapshot and no entries; the bootstrap configuration stands at index 0, before any entry, so
 * a member restarted without a snapshot passes it again (with a snapshot it is ignored). A
 * member joining an existing cluster passes an empty bootstrap and learns the configuration
 * from the leader's snapshot. */
struct raft_restore {
    const struct raft_snapshot_meta *snapshot;
    struct raft_hard_state hard_state;
    const struct raft_entry *entries;
    u32 entry_count;
    const struct raft_conf *bootstrap; /* only for a new member with no stored state */
};

/* Creates a member: RAFT_OK with *out set, RAFT_EINVALID for a bad config or restore,
 * RAFT_ENOMEM. Starts as a follower of no leader. The hard state in restore must be durable. */
int raft_create(const struct raft_config *config, const struct raft_restore *restore,
                struct raft **out);
void raft_destroy(struct raft *r);

/* One abstract tick: election and heartbeat timeouts, check-quorum. */
void raft_tick(struct raft *r);
/* A message from a peer (m->to == this member). Unknown senders and stale terms are handled as
 * the paper says; malformed content (checked with ASSERT-free validation) is dropped. */
void raft_step(struct raft *r, const struct raft_msg *m);
/* Appends an entry (copied) of the leader's current term: RAFT_OK with *index and *term set,
 * RAFT_ENOT_LEADER, RAFT_EBUSY (uncommitted bytes or a leadership transfer), RAFT_EINVALID
 * (len > entry_bytes_max), RAFT_ENOMEM. The entry may still be lost (leadership lost before
 * commit): the caller learns its fate when an entry of that index is applied with another
 * term, or never (then a later read index passes it). */
int raft_propose(struct raft *r, const u8 *data, u32 len, u64 *index, u64 *term);
/* Proposes a membership change (leader only): RAFT_ECONF_PENDING, RAFT_EINVALID, ...
 * RAFT_CC_PROMOTE also gives RAFT_ECONF_PENDING while the learner's match is below commit. */
int raft_propose_conf(struct raft *r, const struct raft_conf_change *cc, u64 *index);
/* Asks for a linearizable read index; the answer comes in a later ready's reads (or
 * reads_failed) with this context. Works on followers too (forwarded to the leader). */
int raft_read_index(struct raft *r, u64 context);
/* Leader only: hands leadership to a voter (§3.10): the leader stops taking proposals, brings
 * the target up to date, then sends TIMEOUT_NOW. Aborted after an election timeout. */
int raft_transfer_leader(struct raft *r, u64 target);
/* Starts an election now (tests, and a member asked to take over). */
void raft_campaign(struct raft *r);

/* Storage reports that entries up to index (whose term was term) are durable. */
void raft_persisted(struct raft *r, u64 index, u64 term);

bool raft_has_ready(const struct raft *r);
/* True when the next ready truncates the stored log or installs a snapshot: a caller whose
 * storage writes are asynchronous (a group commit in flight) takes that ready only once its
 * storage is idle. */
bool raft_ready_needs_idle_storage(const struct raft *r);
void raft_ready(struct raft *r, struct raft_ready *rd);
void raft_advance(struct raft *r, const struct raft_ready *rd);

/* The meta of a snapshot of the state as applied now (index = applied index). */
void raft_snapshot_meta_applied(const struct raft *r, struct raft_snapshot_meta *meta);
/* The caller holds a durable snapshot of meta (from raft_snapshot_meta_applied): raft sends it
 * to followers that are too far behind, and drops entries up to meta->index - keep_entries.
 * A member that joined with an empty bootstrap takes nothing but a snapshot (the bootstrap
 * configuration is in no entry): it waits until the leader holds one. */
void raft_compact(struct raft *r, const struct raft_snapshot_meta *meta, u64 keep_entries);
/* Drops the entries up to index from memory without a new snapshot: they are durable in the
 * caller's log (index <= the last persisted and the last applied index), and a member that
 * still needs one of them takes a snapshot instead. The latest snapshot may be older than
 * index: then such a member waits (raft_status.snapshot_wanted) until raft_compact gives one
 * at or past the dropped entries. So that one can arrive, the caller stops calling this
 * while it writes a snapshot (whose index was the applied index when it began). */
void raft_compact_log(struct raft *r, u64 index);
/* The caller could not send a snapshot chunk (no file, I/O error): the follower goes back to
 * probing and raft retries later. */
void raft_snapshot_failed(struct raft *r, u64 peer);
/* The transport lost its connection to peer: its progress goes back to probing. */
void raft_peer_unreachable(struct raft *r, u64 peer);

/* Status for `keelctl endpoint status`, leader balancing, tests and checkers. */
enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 0,
    RAFT_PROGRESS_REPLICATE = 1,
    RAFT_PROGRESS_SNAPSHOT = 2
};

struct raft_progress_status {
    u64 id;
    u8 role;  /* enum raft_member_role */
    u8 state; /* enum raft_progress_state (leader only) */
    u64 match;
    u64 next;
    bool recent_active;
};

struct raft_status {
    u64 id;
    u8 role; /* enum raft_role */
    u64 term;
    u64 vote;
    u64 leader; /* 0: unknown */
    u64 commit;
    u64 applied;
    u64 persisted;   /* last durable index reported by raft_persisted */
    u64 first_index; /* first entry held in memory */
    u64 last_index;
    u64 snapshot_index;  /* of the latest raft_compact or installed snapshot */
    u64 transfer_target; /* 0: none */
    struct raft_conf conf;
    struct raft_progress_status progress[RAFT_MEMBERS_MAX]; /* leader only; else count 0 */
    u32 progress_count;
    /* Leader: a follower can only continue from a snapshot (it joined with an empty bootstrap,
     * or needs compacted entries) and raft_compact has given none, or only one older than the
     * entries raft_compact_log dropped: take one. */
    bool snapshot_wanted;
};
void raft_status(const struct raft *r, struct raft_status *st);
u64 raft_leader(const struct raft *r);
u64 raft_term(const struct raft *r);
enum raft_role raft_role(const struct raft *r);
/* The entry at index held in memory (first_index <= index <= last_index), or NULL. */
const struct raft_entry *raft_entry_at(const struct raft *r, u64 index);

/* Encodings (little-endian, versioned by a leading byte; raft_codec.c). Messages travel between
 * peers as opaque bytes; conf changes are the data of RAFT_ENTRY_CONF entries. Decoding borrows
 * from buf (entries and snap_data point into it); decoded entries go to an array the caller
 * provides. */
size_t raft_msg_encoded_size(const struct raft_msg *m);
size_t raft_msg_encode(const struct raft_msg *m, u8 *buf, size_t cap); /* 0 when cap is short */
int raft_msg_decode(const u8 *buf, size_t len, struct raft_msg *m, struct raft_entry *entries,
                    u32 entries_cap);
/* The entry count an encoded message declares, to size raft_msg_decode's entries array (0 for
 * bytes too short or of another version; a count the bytes cannot hold reads as 0 too). Decode
 * returns RAFT_ECORRUPT for bytes that do not decode, RAFT_ENOMEM when entries_cap is short. */
u32 raft_msg_entry_count(const u8 *buf, size_t len);
size_t raft_conf_change_encode(const struct raft_conf_change *cc, u8 *buf, size_t cap);
int raft_conf_change_decode(const u8 *buf, size_t len, struct raft_conf_change *cc);
/* Membership helpers. */
bool raft_conf_has(const struct raft_conf *c, u64 id);
u32 raft_conf_voters(const struct raft_conf *c);

#endif
