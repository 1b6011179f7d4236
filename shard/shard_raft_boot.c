/*
 * shard_raft_boot.c — creating a shard's Raft member from what is on disk (the newest snapshot's
 * meta, raft.state, the WAL records after the snapshot), membership changes as they apply, and
 * role changes.
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

#define SHARD_PROPOSALS_MAX 65536u
#define ENTRY_TERM_BYTES    8u

struct boot_log {
    struct raft_entry *entries;
    u32 count;
    u32 cap;
    u8 *bytes; /* every entry's data back to back */
    size_t len;
    size_t cap_bytes;
};

static bool boot_log_add(struct boot_log *l, u64 index, u16 type, struct span payload)
{
    if (l->count == l->cap) {
        u32 cap = l->cap ? l->cap * 2 : 1024;
        struct raft_entry *e = realloc(l->entries, cap * sizeof(*e));
        if (!e) return false;
        l->entries = e;
        l->cap = cap;
    }
    size_t data_len = payload.len - ENTRY_TERM_BYTES;
    if (l->len + data_len > l->cap_bytes) {
        size_t cap = KEEL_MAX(l->cap_bytes * 2, l->len + data_len + (1u << 20));
        u8 *b = realloc(l->bytes, cap);
        if (!b) return false;
        l->bytes = b;
        l->cap_bytes = cap;
    }
    if (data_len) memcpy(l->bytes + l->len, payload.ptr + ENTRY_TERM_BYTES, data_len);
    l->entries[l->count++] = (struct raft_entry){.term = load_u64_le(payload.ptr),
                                                 .index = index,
                                                 .type = (u8)type,
                                                 .len = (u32)data_len,
                                                 .data = (const u8 *)(uintptr_t)l->len};
    l->len += data_len;
    return true;
}

/* Reads every WAL record after from - 1 into l (data offsets until the end, then pointers). */
static int boot_read_wal(struct shard *s, u64 from, struct boot_log *l)
{
    size_t len = wal_iter_buffer_size(&s->wal);
    void *buf = malloc(len);
    if (!buf) return shard_fail(s, "out of memory reading the WAL"), -1;
    struct wal_iter it;
    int rc = wal_iter_init(&it, &s->wal, KEEL_MAX(from, wal_first_index(&s->wal)), buf, len);
    while (rc == 0) {
        u16 type = 0;
        u64 index = 0;
        struct span payload;
        rc = wal_iter_next(&it, &type, &index, &payload);
        if (rc != 0) break;
        bool known = type == RAFT_ENTRY_NORMAL || type == RAFT_ENTRY_CONF;
        if (!known || payload.len < ENTRY_TERM_BYTES) {
            shard_fail(s,
                       "WAL record %llu (type %u) is not a Raft entry: this data directory was "
                       "written by an older keeld; start with a new --data-dir",
                       (unsigned long long)index, type);
            rc = -1;
            break;
        }
        if (!boot_log_add(l, index, type, payload)) {
            shard_fail(s, "out of memory reading the WAL");
            rc = -1;
            break;
        }
    }
    if (rc >= 0) wal_iter_finish(&it);
    free(buf);
    for (u32 i = 0; i < l->count; i++)
        l->entries[i].data = l->entries[i].len ? l->bytes + (uintptr_t)l->entries[i].data : NULL;
    if (rc == 1) return 0;
    if (rc > 0) shard_fail(s, "reading the WAL: %s", keel_err_str(rc));
    return -1;
}

/* The configuration a new cluster starts with: every --initial-cluster member votes. */
static void boot_conf(const struct shard *s, struct raft_conf *conf)
{
    const struct node_config *nc = &s->node->config;
    *conf = (struct raft_conf){0};
    if (nc->member_count == 0) {
        conf->members[conf->count++] = (struct raft_member){nc->member_id, RAFT_VOTER};
        return;
    }
    for (u32 i = 0; i < nc->member_count; i++)
        conf->members[conf->count++] = (struct raft_member){nc->members[i].id, RAFT_VOTER};
}

static void boot_config(const struct shard *s, struct raft_config *rc)
{
    raft_config_default(rc);
    rc->id = s->node->config.member_id;
    rc->seed = s->node->config.member_id * 0x9E3779B97F4A7C15ull + s->id;
    rc->election_ticks = SHARD_RAFT_ELECTION_TICKS;
    rc->heartbeat_ticks = SHARD_RAFT_HEARTBEAT_TICKS;
    rc->entry_bytes_max = CODEC_FRAME_SIZE_MAX + 2;
    rc->uncommitted_bytes_max = 8u << 20; /* below the WAL's batch: a ready always fits */
    /* Apply what a quorum made durable without waiting for this member's own fdatasync (the
     * leader's reply then waits for the first follower's, not for the slower of the two);
     * snapshots still wait for the WAL to cover the applied index (shard_snap.c). */
    rc->apply_unpersisted = true;
}

static int boot_alloc(struct shard *s)
{
    s->props = calloc(SHARD_PROPOSALS_MAX, sizeof(*s->props));
    s->prop_buf_cap = CODEC_FRAME_SIZE_MAX + 2;
    s->prop_buf = malloc(s->prop_buf_cap);
    s->entry_buf = malloc(s->prop_buf_cap + ENTRY_TERM_BYTES);
    buf_init_dynamic(&s->apply_scratch, 4096);
    buf_init_dynamic(&s->msg_scratch, 4096);
    buf_init_dynamic(&s->fwd_reply_scratch, 4096);
    for (u32 i = 0; i < KEEL_ARRAY_LEN(s->rb); i++) buf_init_dynamic(&s->rb[i].frames, 4096);
    if (!s->props || !s->prop_buf || !s->entry_buf) return shard_fail(s, "out of memory"), -1;
    return 0;
}

/* The only voter of its group: campaigns at once and applies everything its log holds before
 * clients are let in, so a restarted single node answers with all of its state (synchronous
 * WAL flushes: the loop does not run yet). */
static int shard_raft_settle(struct shard *s)
{
    raft_campaign(s->raft);
    for (u32 round = 0; round < 64 && raft_has_ready(s->raft); round++) {
        shard_raft_turn(s);
        u64 durable = 0;
        if (wal_last_index(&s->wal) > wal_durable_index(&s->wal) &&
            wal_flush(&s->wal, &durable) != 0)
            return shard_fail(s, "cannot write the WAL at start"), -1;
    }
    if (raft_role(s->raft) != RAFT_LEADER)
        return shard_fail(s, "the only voter did not become leader at start"), -1;
    return 0;
}

int shard_raft_boot(struct shard *s, u64 snapshot_index)
{
    if (boot_alloc(s) != 0) return -1;
    shard_member_info_init(s);
    struct raft_snapshot_meta meta;
    struct raft_restore rs = {0};
    struct raft_conf conf;
    if (snapshot_index > 0) {
        if (shard_snap_meta_load(s, snapshot_index, &meta) != 0) return -1;
        rs.snapshot = &meta;
    }
    if (shard_hs_open(s, &rs.hard_state) != 0) return -1;
    struct boot_log l = {0};
    if (boot_read_wal(s, snapshot_index + 1, &l) != 0) {
        free(l.entries);
        free(l.bytes);
        return -1;
    }
    rs.entries = l.entries;
    rs.entry_count = l.count;
    boot_conf(s, &conf);
    /* The initial configuration stands at index 0 of every log that has no snapshot (raft.h),
     * so it is passed on every start until a snapshot carries the membership. A member that
     * joins a running cluster has none: it learns the membership from the leader's snapshot. */
    if (!rs.snapshot && !s->node->config.join_existing) rs.bootstrap = &conf;
    /* commit is saved only with term and vote changes: it may name entries a crash took from
     * the WAL's unsynced tail. Lowering it is safe (the leader tells it again). */
    u64 stored_last = l.count ? l.entries[l.count - 1].index : snapshot_index;
    rs.hard_state.commit = KEEL_MAX(KEEL_MIN(rs.hard_state.commit, stored_last), snapshot_index);
    struct raft_config rc;
    boot_config(s, &rc);
    int rc_create = raft_create(&rc, &rs, &s->raft);
    u64 last = l.count ? l.entries[l.count - 1].index : snapshot_index;
    u64 last_term = l.count ? l.entries[l.count - 1].term : (rs.snapshot ? meta.term : 0);
    free(l.entries);
    free(l.bytes);
    if (rc_create != RAFT_OK)
        return shard_fail(s, "cannot start the Raft member: %s", raft_err_str(rc_create)), -1;
    s->applied_index = snapshot_index;
    s->persisted_reported = last;
    if (last > snapshot_index) raft_persisted(s->raft, last, last_term);
    shard_raft_conf_seen(s);
    if (s->single_voter) return shard_raft_settle(s); /* alone: no election timeout to wait */
    return 0;
}

void shard_raft_free(struct shard *s)
{
    if (s->raft) raft_destroy(s->raft);
    s->raft = NULL;
    free(s->props);
    free(s->prop_buf);
    free(s->entry_buf);
    buf_free(&s->apply_scratch);
    buf_free(&s->msg_scratch);
    buf_free(&s->fwd_reply_scratch);
    free(s->fwd_slots);
    s->fwd_slots = NULL;
    for (u32 i = 0; i < KEEL_ARRAY_LEN(s->rb); i++) {
        buf_free(&s->rb[i].frames);
        free(s->rb[i].items);
    }
    for (u32 i = 0; i < s->held_len; i++) free(s->held[i].bytes);
    free(s->held);
    s->props = NULL;
    s->prop_buf = s->entry_buf = NULL;
    s->held = NULL;
    shard_hs_close(s);
}

/* A membership change applied (raft applies it itself at advance): connect to a new member,
 * forget a removed one. The entry's context is "name=host:port" of the member's peer URL. */
void shard_apply_conf(struct shard *s, const struct raft_entry *e)
{
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK) {
        node_log("raft", "shard %u: membership entry %llu does not decode", s->id,
                 (unsigned long long)e->index);
        return;
    }
    shard_peer_conf_change(s, &cc);
    s->conf_dirty = true;
    if (cc.type != RAFT_CC_REMOVE && cc.context_len > 0) {
        char ctx[RAFT_CONF_CONTEXT_MAX + 1];
        memcpy(ctx, cc.context, cc.context_len);
        ctx[cc.context_len] = '\0';
        char *eq = strchr(ctx, '=');
        if (eq) *eq = '\0';
        shard_member_info_set(s, cc.id, ctx, eq ? eq + 1 : "");
    }
    if (!s->node->config.quiet)
        node_log("raft", "shard %u: membership change at index %llu: %s member %016llx", s->id,
                 (unsigned long long)e->index,
                 cc.type == RAFT_CC_ADD_VOTER     ? "add voter"
                 : cc.type == RAFT_CC_ADD_LEARNER ? "add learner"
                 : cc.type == RAFT_CC_PROMOTE     ? "promote"
                                                  : "remove",
                 (unsigned long long)cc.id);
}

/* Caches whether this member is its group's only voter (after start and after every change). */
void shard_raft_conf_seen(struct shard *s)
{
    struct raft_status st;
    raft_status(s->raft, &st);
    s->single_voter = raft_conf_voters(&st.conf) == 1 && raft_conf_has(&st.conf, st.id);
    s->conf_dirty = false;
}

void shard_raft_role_changed(struct shard *s, bool was_leader)
{
    bool leader = raft_role(s->raft) == RAFT_LEADER;
    if (!s->node->config.quiet && (leader != was_leader || !leader))
        node_log("raft", "shard %u: %s in term %llu (leader %016llx)", s->id,
                 raft_role_str(raft_role(s->raft)), (unsigned long long)raft_term(s->raft),
                 (unsigned long long)raft_leader(s->raft));
}
