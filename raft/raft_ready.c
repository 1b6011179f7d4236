/* raft_ready.c — the ready/advance loop (etcd's RawNode.Ready/Advance) and the outgoing
 * message queues.
 *
 * A ready hands out, in one struct: the hard state when it changed, a stored suffix to drop,
 * the entries not yet handed to storage, the messages to send now and those to send once the
 * ready is durable, the committed entries up to min(commit, persisted), one incoming snapshot
 * chunk, a snapshot to install, and the reads answered or failed. Everything it points to is
 * raft's memory, valid until raft_advance (no other raft call may come in between). */
#include "raft/raft_int.h"

#include <string.h>

/* ---- message queues -------------------------------------------------------------------- */

void raft_msg_init(const struct raft *r, struct raft_msg *m, u8 type, u64 to)
{
    ASSERT(type > 0 && type < RAFT_MSG_TYPE_COUNT_);
    ASSERT(to != 0 && to != r->cfg.id);
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->from = r->cfg.id;
    m->to = to;
    m->term = r->term;
}

static bool raft_queue(struct raft *r, struct raft_vec *q, const struct raft_msg *m)
{
    ASSERT(!r->in_ready);
    ASSERT(m->from == r->cfg.id && m->term > 0);
    if (raft_vec_reserve(r, q, sizeof(struct raft_msg), q->count + 1) != RAFT_OK) {
        return false; /* no memory: the message is lost, which raft tolerates */
    }
    struct raft_msg *slot = (struct raft_msg *)q->items + q->count++;
    *slot = *m;
    slot->entries = NULL; /* APP entries are resolved at raft_ready */
    return true;
}

bool raft_send(struct raft *r, const struct raft_msg *m)
{
    return raft_queue(r, &r->msgs, m);
}

bool raft_send_after(struct raft *r, const struct raft_msg *m)
{
    return raft_queue(r, &r->msgs_after, m);
}

/* Drops queued APP messages whose entries are gone: compacted (index < first_valid) or
 * truncated (index >= truncated_from, when nonzero). */
void raft_msgs_drop_app(struct raft *r, u64 first_valid, u64 truncated_from)
{
    ASSERT(!r->in_ready);
    struct raft_msg *q = r->msgs.items;
    u32 kept = 0;
    for (u32 i = 0; i < r->msgs.count; i++) {
        const struct raft_msg *m = &q[i];
        bool drop = false;
        if (m->type == RAFT_MSG_APP && m->entry_count > 0) {
            drop = m->index + 1 < first_valid;
            drop |= truncated_from != 0 && m->index + m->entry_count >= truncated_from;
        }
        if (!drop) q[kept++] = q[i];
    }
    r->msgs.count = kept;
    ASSERT(r->msgs.count <= r->msgs.cap);
}

/* ---- ready ----------------------------------------------------------------------------- */

static u64 raft_apply_limit(const struct raft *r)
{
    if (r->install_state != RAFT_INSTALL_NONE) return r->applied;
    u64 limit = r->cfg.apply_unpersisted ? r->commit : KEEL_MIN(r->commit, r->log.persisted);
    return KEEL_MAX(limit, r->applied);
}

static bool raft_hard_state_changed(const struct raft *r)
{
    return r->term != r->hs_prev.term || r->vote != r->hs_prev.vote ||
           r->commit != r->hs_prev.commit;
}

bool raft_has_ready(const struct raft *r)
{
    ASSERT(!r->in_ready);
    if (raft_hard_state_changed(r) || r->log.truncate_from != 0) return true;
    if (r->log.unstable_from <= raft_log_last(&r->log)) return true;
    if (r->msgs.count || r->msgs_after.count) return true;
    if (raft_apply_limit(r) > r->applied) return true;
    if (r->chunk_count > 0 || r->install_state == RAFT_INSTALL_READY) return true;
    if (r->reads_out.count || r->reads_failed.count) return true;
    return r->role_changed;
}

bool raft_ready_needs_idle_storage(const struct raft *r)
{
    ASSERT(!r->in_ready);
    return r->log.truncate_from != 0 || r->install_state == RAFT_INSTALL_READY;
}

static void raft_ready_msgs(struct raft *r, struct raft_ready *rd)
{
    struct raft_msg *q = r->msgs.items;
    for (u32 i = 0; i < r->msgs.count; i++) {
        struct raft_msg *m = &q[i];
        if (m->type != RAFT_MSG_APP || m->entry_count == 0) continue;
        ASSERT(m->index + m->entry_count <= raft_log_last(&r->log));
        m->entries = raft_log_get(&r->log, m->index + 1);
        ASSERT(m->entries[m->entry_count - 1].index == m->index + m->entry_count);
    }
    rd->msgs = q;
    rd->msgs_mut = q;
    rd->msg_count = r->msgs.count;
    rd->msgs_after_persist = r->msgs_after.items;
    rd->msg_after_persist_count = r->msgs_after.count;
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
    ASSERT(!r->in_ready);
    raft_check_invariants(r);
    memset(rd, 0, sizeof(*rd));
    rd->hard_state_changed = raft_hard_state_changed(r);
    rd->hard_state.term = r->term;
    rd->hard_state.vote = r->vote;
    rd->hard_state.commit = r->commit;
    rd->truncate_from = r->log.truncate_from;
    u64 last = raft_log_last(&r->log);
    if (r->log.unstable_from <= last) {
        rd->entries = raft_log_get(&r->log, r->log.unstable_from);
        rd->entry_count = (u32)(last - r->log.unstable_from + 1);
    }
    raft_ready_msgs(r, rd);
    u64 limit = raft_apply_limit(r);
    if (limit > r->applied) {
        rd->committed = raft_log_get(&r->log, r->applied + 1);
        rd->committed_count = (u32)(limit - r->applied);
    }
    rd->snap_chunk = r->chunk_count > 0 ? &r->chunks[r->chunk_head].chunk : NULL;
    if (r->install_state == RAFT_INSTALL_READY) {
        /* storage installs the snapshot (step a) before it stores this hard state (step b) */
        rd->snapshot_install = &r->install_meta;
        rd->hard_state.commit = r->install_meta.index;
        rd->hard_state_changed = true;
        rd->truncate_from = 0;
        rd->entries = NULL;
        rd->entry_count = 0;
        ASSERT(r->install_meta.index > r->commit);
    }
    rd->reads = r->reads_out.items;
    rd->read_count = r->reads_out.count;
    rd->reads_failed = r->reads_failed.items;
    rd->read_failed_count = r->reads_failed.count;
    rd->role_changed = r->role_changed;
    r->rd_entries_last = last;
    r->rd_committed_last = limit;
    r->in_ready = true;
    ASSERT(rd->committed_count == 0 || rd->committed[0].index == r->applied + 1);
}

/* The leader learns a snapshot's size from the chunk the caller marked last. */
static void raft_advance_snap_msgs(struct raft *r, const struct raft_ready *rd)
{
    ASSERT(rd->msgs == r->msgs.items);
    if (r->role != RAFT_LEADER) return;
    for (u32 i = 0; i < rd->msg_count; i++) {
        const struct raft_msg *m = &rd->msgs[i];
        if (m->type != RAFT_MSG_SNAP || !m->snap_last) continue;
        struct raft_progress *pr = raft_progress_find(r, m->to);
        if (pr == NULL || pr->state != RAFT_PROGRESS_SNAPSHOT) continue;
        if (pr->snap_index != m->snap.index) continue;
        u64 end = m->snap_offset + m->snap_len;
        if (end < pr->snap_end) pr->snap_end = end;
        if (pr->snap_next > pr->snap_end) pr->snap_next = pr->snap_end;
    }
}

static void raft_advance_apply(struct raft *r, const struct raft_ready *rd)
{
    for (u32 i = 0; i < rd->committed_count; i++) {
        const struct raft_entry *e = &rd->committed[i];
        ASSERT(e->index == r->applied + 1);
        r->applied = e->index;
        if (e->type == RAFT_ENTRY_CONF) raft_conf_apply_entry(r, e);
    }
    ASSERT(r->applied <= r->commit);
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
    ASSERT(r->in_ready);
    ASSERT(rd != NULL);
    r->in_ready = false;
    if (rd->hard_state_changed) r->hs_prev = rd->hard_state;
    r->log.truncate_from = 0;
    if (r->rd_entries_last + 1 > r->log.unstable_from) {
        r->log.unstable_from = r->rd_entries_last + 1;
    }
    raft_advance_snap_msgs(r, rd);
    r->msgs.count = 0;
    r->msgs_after.count = 0;
    r->reads_out.count = 0;
    r->reads_failed.count = 0;
    r->role_changed = false;
    ASSERT(rd->committed_count == 0 ||
           r->rd_committed_last == rd->committed[0].index + rd->committed_count - 1);
    raft_advance_apply(r, rd);
    raft_snap_advance(r, rd);
    raft_check_invariants(r);
}
