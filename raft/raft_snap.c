/* raft_snap.c — log compaction and snapshot transfer (thesis §5).
 *
 * Leader: a follower whose next entry was compacted away gets the latest snapshot in chunks of
 * config.snap_chunk_bytes at offsets 0, C, 2C, ... with up to config.snap_chunks_inflight of
 * them in flight. raft puts SNAP messages with snap_data NULL in the ready; the caller fills
 * each (every chunk but the last holds exactly snap_chunk_bytes; the last sets snap_last; a
 * chunk at or beyond the end is filled with snap_len 0 and snap_last). raft reads the filled
 * messages back at raft_advance to learn the snapshot's size.
 *
 * Follower: accepts the chunk at the offset it expects (its data copied; up to
 * RAFT_CHUNKS_QUEUED held, handed out one per ready as rd.snap_chunk) and acknowledges each in
 * the ready that hands it out (SNAP_RESP with the next offset wanted, after persistence). A chunk
 * at another offset gets a SNAP_RESP with reject set and the offset it wants, which resumes a
 * restarted or lossy stream. After the last chunk is handed out, the next ready carries
 * snapshot_install, the hard state with commit = the snapshot's index, and an APP_RESP of that
 * index (after persistence); raft's log, commit, applied index and configuration switch to the
 * snapshot when that ready is advanced. A snapshot at or below the follower's commit is answered
 * with an APP_RESP of its commit index (a follower's last index may hold entries the leader
 * does not have). */
#include "raft/raft_int.h"

#include <string.h>

/* ---- compaction ------------------------------------------------------------------------ */

void raft_snapshot_meta_applied(const struct raft *r, struct raft_snapshot_meta *meta)
{
    ASSERT(!r->in_ready);
    memset(meta, 0, sizeof(*meta));
    meta->index = r->applied;
    bool known = raft_log_term(&r->log, r->applied, &meta->term);
    ASSERT(known);
    meta->conf = r->conf;
    ASSERT(meta->index <= r->commit);
}

void raft_compact(struct raft *r, const struct raft_snapshot_meta *meta, u64 keep_entries)
{
    ASSERT(!r->in_ready);
    ASSERT(meta->index <= r->applied);
    raft_check_invariants(r);
    if (meta->index == 0 || meta->index < r->snap_meta.index) return; /* nothing, or older */
    r->snap_meta = *meta;
    if (meta->index > keep_entries) raft_log_compact(r, meta->index - keep_entries);
    bool usable = meta->index >= r->log.snap_index; /* raft_compact_log may have gone further */
    for (u32 i = 0; i < r->pr_count && r->role == RAFT_LEADER && usable; i++) {
        struct raft_progress *pr = &r->prs[i];
        if (!pr->snap_wanted) continue;
        raft_progress_become_snapshot(pr, meta->index); /* a joiner waited for this */
        raft_snap_send(r, pr);
    }
    raft_check_invariants(r);
}

bool raft_snap_usable(const struct raft *r)
{
    return r->snap_meta.index > 0 && r->snap_meta.index >= r->log.snap_index;
}

void raft_snap_need(struct raft *r, struct raft_progress *pr)
{
    ASSERT(r->role == RAFT_LEADER);
    if (raft_snap_usable(r)) {
        raft_progress_become_snapshot(pr, r->snap_meta.index);
        raft_snap_send(r, pr);
        return;
    }
    raft_progress_become_probe(r, pr);
    pr->probe_sent = true;
    pr->snap_wanted = true; /* raft_status tells the caller */
}

void raft_compact_log(struct raft *r, u64 index)
{
    ASSERT(!r->in_ready);
    raft_check_invariants(r);
    if (index > r->applied) index = r->applied;
    if (index > r->log.persisted) index = r->log.persisted;
    if (index >= r->log.unstable_from) index = r->log.unstable_from - 1;
    if (index <= r->log.snap_index) return;
    raft_log_compact(r, index);
    ASSERT(r->log.snap_index == index);
    raft_check_invariants(r);
}

/* ---- leader ---------------------------------------------------------------------------- */

static void raft_snap_emit(struct raft *r, struct raft_progress *pr)
{
    ASSERT(pr->state == RAFT_PROGRESS_SNAPSHOT);
    ASSERT(pr->snap_index == r->snap_meta.index);
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_SNAP, pr->id);
    m.snap = r->snap_meta;
    m.snap_offset = pr->snap_next;
    if (!raft_send(r, &m)) return;
    pr->snap_next += r->cfg.snap_chunk_bytes;
}

/* Sends chunks while the window has room and the end is not reached. */
void raft_snap_send(struct raft *r, struct raft_progress *pr)
{
    ASSERT(pr->state == RAFT_PROGRESS_SNAPSHOT);
    ASSERT(r->snap_meta.index > 0);
    if (pr->snap_index != r->snap_meta.index) {
        raft_progress_become_snapshot(pr, r->snap_meta.index); /* a newer snapshot: restart */
    }
    u64 window = (u64)r->cfg.snap_chunks_inflight * r->cfg.snap_chunk_bytes;
    while (pr->snap_next < pr->snap_end && pr->snap_next - pr->snap_acked < window) {
        u64 before = pr->snap_next;
        raft_snap_emit(r, pr);
        if (pr->snap_next == before) break; /* no memory for the message */
    }
    ASSERT(pr->snap_next >= pr->snap_acked);
}

/* A snapshot stream that made no progress for an election timeout is resent from the last
 * acknowledged offset (chunks or answers were lost). */
void raft_snap_tick(struct raft *r, struct raft_progress *pr)
{
    if (pr->state != RAFT_PROGRESS_SNAPSHOT) return;
    if (++pr->snap_idle_ticks < r->cfg.election_ticks) return;
    ASSERT(pr->snap_acked <= pr->snap_next);
    pr->snap_idle_ticks = 0;
    pr->snap_next = pr->snap_acked;
    pr->snap_nack = UINT64_MAX;
    raft_snap_send(r, pr);
}

void raft_step_snap_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *pr = raft_progress_find(r, m->from);
    ASSERT(pr != NULL);
    pr->recent_active = true;
    if (pr->state != RAFT_PROGRESS_SNAPSHOT || m->snap.index != pr->snap_index) return;
    pr->snap_idle_ticks = 0;
    u64 want = m->snap_offset;
    if (want > pr->snap_end) return;
    if (!m->reject) {
        if (want > pr->snap_acked) pr->snap_acked = want;
        if (want > pr->snap_next) pr->snap_next = want; /* it holds more than we resent */
        if (pr->snap_nack != UINT64_MAX && want > pr->snap_nack) pr->snap_nack = UINT64_MAX;
    } else if (want != pr->snap_nack || pr->snap_next == want) {
        /* go back to the offset the follower wants, once per gap */
        pr->snap_acked = want;
        pr->snap_next = want;
        pr->snap_nack = want;
    }
    raft_snap_send(r, pr);
}

void raft_snapshot_failed(struct raft *r, u64 peer)
{
    ASSERT(!r->in_ready);
    if (r->role != RAFT_LEADER) return;
    struct raft_progress *pr = raft_progress_find(r, peer);
    if (pr == NULL || pr->state != RAFT_PROGRESS_SNAPSHOT) return;
    raft_progress_become_probe(r, pr);
    pr->probe_sent = true; /* retried at the next heartbeat answer */
}

void raft_peer_unreachable(struct raft *r, u64 peer)
{
    ASSERT(!r->in_ready);
    if (r->role != RAFT_LEADER) return;
    struct raft_progress *pr = raft_progress_find(r, peer);
    if (pr == NULL || pr->id == r->cfg.id) return;
    if (pr->state == RAFT_PROGRESS_REPLICATE) raft_progress_become_probe(r, pr);
    ASSERT(pr->state != RAFT_PROGRESS_REPLICATE);
}

/* ---- follower ----------------------------------------------------------------------- */

static void raft_snap_answer(struct raft *r, u64 to, const struct raft_snapshot_meta *meta,
                             u64 offset, bool reject)
{
    struct raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_SNAP_RESP, to);
    resp.snap = *meta;
    resp.snap_offset = offset;
    resp.reject = reject;
    if (reject)
        raft_send(r, &resp);
    else
        raft_send_after(r, &resp);
}

/* The head chunk leaves in the next ready: its acknowledgement (the next offset wanted) goes
 * in that ready's msgs_after_persist. The last chunk is acknowledged by the APP_RESP that
 * follows the install. */
static void raft_snap_head_ack(struct raft *r)
{
    if (r->chunk_count == 0) return;
    const struct raft_chunk_slot *slot = &r->chunks[r->chunk_head];
    if (slot->chunk.last) return;
    u64 next = slot->chunk.offset + slot->chunk.len;
    raft_snap_answer(r, slot->from, &slot->chunk.meta, next, false);
}

static void raft_snap_accept(struct raft *r, const struct raft_msg *m)
{
    ASSERT(r->chunk_count < RAFT_CHUNKS_QUEUED);
    u8 *data = NULL;
    if (m->snap_len > 0) {
        data = raft_alloc(r, m->snap_len);
        if (data == NULL) return; /* as if lost: the leader resends */
        memcpy(data, m->snap_data, m->snap_len);
    }
    struct raft_chunk_slot *slot =
        &r->chunks[(r->chunk_head + r->chunk_count) % RAFT_CHUNKS_QUEUED];
    slot->from = m->from;
    slot->chunk.meta = m->snap;
    slot->chunk.offset = m->snap_offset;
    slot->chunk.len = m->snap_len;
    slot->chunk.last = m->snap_last;
    slot->chunk.data = data;
    r->chunk_count++;
    r->recv_next = m->snap_offset + m->snap_len;
    if (r->chunk_count == 1) raft_snap_head_ack(r);
    if (m->snap_last) {
        /* Complete. raft's state switches to the snapshot when the ready that installs it is
         * advanced; until then no APP or chunk is taken. */
        ASSERT(r->recv_meta.index > r->commit);
        r->install_meta = r->recv_meta;
        r->install_state = RAFT_INSTALL_AFTER_CHUNK;
        r->recv_active = false;
    }
}

void raft_step_snap(struct raft *r, const struct raft_msg *m)
{
    ASSERT(r->role == RAFT_FOLLOWER);
    if (r->install_state != RAFT_INSTALL_NONE) return;
    if (m->snap.index <= r->commit) {
        if (r->recv_active && r->recv_meta.index <= r->commit) r->recv_active = false;
        struct raft_msg resp;
        raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
        resp.index = r->commit;
        raft_send_after(r, &resp);
        return;
    }
    bool same =
        r->recv_active && r->recv_meta.index == m->snap.index && r->recv_meta.term == m->snap.term;
    if (m->snap_offset == 0 && !same) { /* a new snapshot starts */
        r->recv_active = true;
        r->recv_meta = m->snap;
        r->recv_next = 0;
        same = true;
    }
    bool full = r->chunk_count == RAFT_CHUNKS_QUEUED;
    if (!same || m->snap_offset != r->recv_next || full) {
        raft_snap_answer(r, m->from, &m->snap, same ? r->recv_next : 0, true);
        return;
    }
    raft_snap_accept(r, m);
}

/* The ready that installed the snapshot is advanced: raft's state becomes the snapshot's. */
static void raft_snap_installed(struct raft *r)
{
    const struct raft_snapshot_meta *meta = &r->install_meta;
    ASSERT(r->install_state == RAFT_INSTALL_READY);
    ASSERT(meta->index > r->commit);
    raft_log_reset(r, meta->index, meta->term);
    r->commit = meta->index;
    r->applied = meta->index;
    r->conf = meta->conf;
    r->conf_index = meta->index;
    r->conf_base = true;
    r->snap_meta = *meta;
    r->install_state = RAFT_INSTALL_NONE;
    ASSERT(r->log.snap_index == meta->index && r->log.persisted == meta->index);
}

void raft_snap_advance(struct raft *r, const struct raft_ready *rd)
{
    if (rd->snapshot_install != NULL) raft_snap_installed(r);
    if (rd->snap_chunk == NULL) return;
    ASSERT(r->chunk_count > 0);
    struct raft_chunk_slot *slot = &r->chunks[r->chunk_head];
    ASSERT(rd->snap_chunk == &slot->chunk);
    bool last = slot->chunk.last;
    raft_free(r, (void *)slot->chunk.data, slot->chunk.len);
    slot->chunk.data = NULL;
    r->chunk_head = (r->chunk_head + 1) % RAFT_CHUNKS_QUEUED;
    r->chunk_count--;
    raft_snap_head_ack(r);
    if (last && r->install_state == RAFT_INSTALL_AFTER_CHUNK) {
        ASSERT(r->chunk_count == 0);
        r->install_state = RAFT_INSTALL_READY;
        if (r->leader != 0) { /* acknowledged once the install is durable */
            struct raft_msg resp;
            raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, r->leader);
            resp.index = r->install_meta.index;
            raft_send_after(r, &resp);
        }
    }
}

void raft_snap_release(struct raft *r)
{
    for (u32 i = 0; i < r->chunk_count; i++) {
        struct raft_chunk_slot *slot = &r->chunks[(r->chunk_head + i) % RAFT_CHUNKS_QUEUED];
        raft_free(r, (void *)slot->chunk.data, slot->chunk.len);
        slot->chunk.data = NULL;
    }
    r->chunk_count = 0;
}
