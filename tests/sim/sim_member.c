/*
 * sim_member.c — one member of one group on one node: its raft, its state machine (a small
 * KV map), its disk, and the ready loop of raft.h (steps a-g) run after every input.
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <stdlib.h>
#include <string.h>

/* ---- snapshots of the state machine ----------------------------------------------------- */

/* Layout: magic u64 | index u64 | term u64 | key count u32 | pad u32 | kv u64[SIM_KEYS_MAX]. */
static u32 snap_encode(const struct sim_member *m, const struct raft_snapshot_meta *meta, u8 *buf)
{
    u64 head[3] = {SIM_SNAP_MAGIC, meta->index, meta->term};
    u32 keys[2] = {SIM_KEYS_MAX, 0};
    memcpy(buf, head, sizeof head);
    memcpy(buf + 24, keys, sizeof keys);
    memcpy(buf + 32, m->kv, sizeof m->kv);
    return 32 + (u32)sizeof m->kv;
}

static bool snap_decode(struct sim_member *m, const struct raft_snapshot_meta *meta, const u8 *buf,
                        u32 len)
{
    u64 head[3];
    u32 keys[2];
    if (len != 32 + sizeof m->kv) return false;
    memcpy(head, buf, sizeof head);
    memcpy(keys, buf + 24, sizeof keys);
    if (head[0] != SIM_SNAP_MAGIC || head[1] != meta->index || head[2] != meta->term) {
        return false;
    }
    if (keys[0] != SIM_KEYS_MAX) return false;
    memcpy(m->kv, buf + 32, sizeof m->kv);
    return true;
}

static void member_set_snap(struct sim_member *m, const struct raft_snapshot_meta *meta,
                            const u8 *data, u32 len)
{
    free(m->snap_data);
    m->has_snap = true;
    m->snap = *meta;
    m->snap_data = sim_xmemdup(data, len);
    m->snap_len = len;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static void member_raft_create(struct sim *s, struct sim_member *m,
                               const struct raft_restore *restore)
{
    struct raft_config cfg = s->raft_base;
    cfg.id = m->id;
    cfg.seed = sim_rand(s);
    int err = raft_create(&cfg, restore, &m->r);
    if (err) {
        m->r = NULL;
        sim_fail(s, "restart", "raft_create of member %llu (group %u): %s",
                 (unsigned long long)m->id, m->group, raft_err_str(err));
    }
    m->lead_term = m->lead_last = 0;
    m->commit_seen = 0;
}

/* A brand-new member: of the bootstrap configuration, or joining (learns from a snapshot). */
void member_create(struct sim *s, struct sim_member *m, bool bootstrap)
{
    store_init(&m->store);
    memset(m->kv, 0, sizeof m->kv);
    m->applied = 0;
    m->created_ms = s->now_ms;
    m->exists = true;
    struct raft_restore restore = {0};
    if (bootstrap) restore.bootstrap = &s->group[m->group].initial_conf;
    sim_trace(s, "g%u member %llu created on node %u%s", m->group, (unsigned long long)m->id,
              m->node, bootstrap ? " (bootstrap)" : " (joining)");
    member_raft_create(s, m, &restore);
    if (!bootstrap || !m->r) return;
    /* raft writes the bootstrap configuration as CONF entries (committed by every initial
     * member alike); a node syncs them before it starts, as etcd's bootstrap does. */
    member_ready_loop(s, m);
    m->store.sync_done_ms = s->now_ms;
    member_sync_check(s, m);
}

void member_restart(struct sim *s, struct sim_member *m)
{
    ASSERT(m->exists && !m->r);
    store_reload(&m->store);
    const struct sim_image *img = &m->store.written;
    memset(m->kv, 0, sizeof m->kv);
    m->applied = 0;
    free(m->snap_data);
    m->snap_data = NULL;
    m->has_snap = false;
    if (img->has_snap) {
        if (!snap_decode(m, &img->snap, img->snap_data, img->snap_len)) {
            sim_fail(s, "restart", "member %llu: durable snapshot %llu does not decode",
                     (unsigned long long)m->id, (unsigned long long)img->snap.index);
            return;
        }
        m->applied = img->snap.index;
        member_set_snap(m, &img->snap, img->snap_data, img->snap_len);
    }
    struct raft_restore restore = {.snapshot = img->has_snap ? &img->snap : NULL,
                                   .hard_state = img->hs,
                                   .entries = img->entries,
                                   .entry_count = img->count};
    u64 last = image_last_index(img);
    /* Without a snapshot, the bootstrap configuration stands at index 0 under the log. */
    if (m->initial && !img->has_snap) restore.bootstrap = &s->group[m->group].initial_conf;
    sim_trace(s,
              "g%u member %llu restarts: snapshot %llu, term %llu vote %llu commit %llu, "
              "entries %u (last %llu)",
              m->group, (unsigned long long)m->id,
              (unsigned long long)(img->has_snap ? img->snap.index : 0),
              (unsigned long long)img->hs.term, (unsigned long long)img->hs.vote,
              (unsigned long long)restore.hard_state.commit, img->count, (unsigned long long)last);
    member_raft_create(s, m, &restore);
    if (!m->r) return;
    struct raft_status st;
    raft_status(m->r, &st);
    sim_trace(s,
              "g%u member %llu restarted: term %llu commit %llu applied %llu, %u members, %u "
              "voters",
              m->group, (unsigned long long)m->id, (unsigned long long)st.term,
              (unsigned long long)st.commit, (unsigned long long)st.applied, st.conf.count,
              raft_conf_voters(&st.conf));
    check_snapshot_installed(s, m);
}

static void member_drop_volatile(struct sim *s, struct sim_member *m)
{
    if (m->r) raft_destroy(m->r);
    m->r = NULL;
    for (u32 i = 0; i < m->held_count; i++) free(m->held[i].bytes);
    m->held_count = 0;
    free(m->compact_data);
    m->compact_data = NULL;
    m->compact_pending = false;
    m->snap_failed_count = 0;
    m->incarnation++;
    client_member_lost(s, m);
}

void member_crash(struct sim *s, struct sim_member *m)
{
    if (!m->r) return;
    member_drop_volatile(s, m);
    store_crash(s, &m->store, m->id);
}

void member_destroy(struct sim *s, struct sim_member *m)
{
    ASSERT(m->exists);
    sim_trace(s, "g%u member %llu destroyed (node %u)", m->group, (unsigned long long)m->id,
              m->node);
    member_drop_volatile(s, m);
    store_retire(&m->store); /* the durability checker may still count what it held */
    free(m->held);
    m->held = NULL;
    m->held_cap = 0;
    free(m->snap_data);
    m->snap_data = NULL;
    m->has_snap = false;
    m->exists = false;
}

void member_observe(struct sim *s, struct sim_member *m)
{
    if (!m->r) return;
    check_role(s, m, raft_role(m->r), raft_term(m->r));
}

/* ---- the ready loop --------------------------------------------------------------------- */

static void member_install(struct sim *s, struct sim_member *m,
                           const struct raft_snapshot_meta *meta)
{
    if (meta->index < m->applied) {
        sim_fail(s, "state-machine",
                 "member %llu: snapshot_install of index %llu below its "
                 "applied index %llu",
                 (unsigned long long)m->id, (unsigned long long)meta->index,
                 (unsigned long long)m->applied);
        return;
    }
    if (!store_install(s, &m->store, meta)) return;
    const struct sim_image *img = &m->store.written;
    if (!snap_decode(m, meta, img->snap_data, img->snap_len)) {
        sim_fail(s, "snapshot",
                 "member %llu: the installed snapshot of index %llu (%u bytes) "
                 "is not the snapshot of that index and term",
                 (unsigned long long)m->id, (unsigned long long)meta->index, img->snap_len);
        return;
    }
    m->applied = meta->index;
    member_set_snap(m, meta, img->snap_data, img->snap_len);
    s->stat_installs++;
    sim_trace(s, "g%u member %llu installs snapshot %llu term %llu (%u members, %u voters)",
              m->group, (unsigned long long)m->id, (unsigned long long)meta->index,
              (unsigned long long)meta->term, meta->conf.count, raft_conf_voters(&meta->conf));
    check_snapshot_installed(s, m);
    client_snapshot_installed(s, m);
}

static void member_store(struct sim *s, struct sim_member *m, const struct raft_ready *rd)
{
    store_batch_begin(&m->store);
    if (rd->hard_state_changed) store_hard_state(&m->store, &rd->hard_state);
    if (rd->truncate_from) store_truncate(s, &m->store, rd->truncate_from);
    if (rd->snapshot_install) member_install(s, m, rd->snapshot_install);
    for (u32 i = 0; i < rd->entry_count && !s->failed; i++) {
        const struct raft_entry *e = &rd->entries[i];
        if (!store_entry(s, &m->store, e)) return;
        check_entry_written(s, m, e);
    }
    if (rd->snap_chunk) store_chunk(s, &m->store, rd->snap_chunk);
}

/* Step c: fills the SNAP chunks from the member's snapshot and sends. */
static void member_send(struct sim *s, struct sim_member *m, const struct raft_ready *rd)
{
    for (u32 i = 0; i < rd->msg_count && !s->failed; i++) {
        struct raft_msg *msg = &rd->msgs_mut[i];
        if (msg->type == RAFT_MSG_SNAP && msg->snap_data == NULL) {
            if (!m->has_snap || m->snap.index != msg->snap.index) {
                if (m->snap_failed_count < RAFT_MEMBERS_MAX) {
                    m->snap_failed[m->snap_failed_count++] = msg->to;
                }
                continue;
            }
            /* raft pipelines chunks without knowing the size: one at or past the end gets
             * snap_len 0 and snap_last (raft.h step c). */
            u64 offset = KEEL_MIN(msg->snap_offset, m->snap_len);
            u32 left = m->snap_len - (u32)offset;
            msg->snap_len = KEEL_MIN(left, s->raft_base.snap_chunk_bytes);
            msg->snap_data = m->snap_data ? m->snap_data + offset : (const u8 *)"";
            msg->snap_last = offset + msg->snap_len == m->snap_len;
        }
        net_send(s, m->group, m->node, msg);
    }
}

/* Step d: held until the records written so far are durable. */
static void member_hold(struct sim *s, struct sim_member *m, const struct raft_ready *rd)
{
    for (u32 i = 0; i < rd->msg_after_persist_count && !s->failed; i++) {
        const struct raft_msg *msg = &rd->msgs_after_persist[i];
        u8 *bytes;
        u32 len;
        if (!net_encode(s, msg, &bytes, &len)) return;
        bool early = s->opt.inject == SIM_INJECT_EARLY_ACK;
        if (early || m->store.seq_durable >= m->store.seq_written) {
            net_send_bytes(s, m->group, m->node, msg->to, bytes, len);
            free(bytes);
            continue;
        }
        if (m->held_count == m->held_cap) {
            m->held_cap = m->held_cap ? m->held_cap * 2 : 16;
            m->held = sim_xrealloc(m->held, sizeof(struct sim_held) * m->held_cap);
        }
        m->held[m->held_count++] = (struct sim_held){
            .seq = m->store.seq_written, .to = msg->to, .bytes = bytes, .len = len};
    }
}

/* Step e: apply in order, only what is durable here. */
static void member_apply(struct sim *s, struct sim_member *m, const struct raft_ready *rd)
{
    const struct sim_image *dur = &m->store.durable;
    for (u32 i = 0; i < rd->committed_count && !s->failed; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->index != m->applied + 1) {
            sim_fail(s, "state-machine", "member %llu applies index %llu after %llu",
                     (unsigned long long)m->id, (unsigned long long)e->index,
                     (unsigned long long)m->applied);
            return;
        }
        bool durable = (dur->has_snap && dur->snap.index >= e->index) ||
                       image_term_at(dur, e->index) == e->term;
        if (!durable && !s->raft_base.apply_unpersisted) {
            sim_fail(s, "committed-durable",
                     "member %llu applies index %llu (term %llu) that "
                     "is not durable on it (durable last index %llu)",
                     (unsigned long long)m->id, (unsigned long long)e->index,
                     (unsigned long long)e->term, (unsigned long long)image_last_index(dur));
            return;
        }
        u32 magic, key;
        u64 value;
        if (e->type == RAFT_ENTRY_NORMAL &&
            client_decode_put(e->data, e->len, &magic, &value, &key)) {
            if (magic == SIM_OP_MAGIC_PUT && key < SIM_KEYS_MAX) m->kv[key] = value;
        }
        m->applied = e->index;
        s->stat_applied++;
        u64 trace[4] = {m->group, m->id, e->index, e->term};
        sim_trace_bytes(s, trace, sizeof trace);
        check_apply(s, m, e);
        client_applied(s, m, e);
    }
}

static void member_ready_one(struct sim *s, struct sim_member *m)
{
    struct raft_status st;
    raft_status(m->r, &st);
    check_role(s, m, st.role, st.term);
    struct raft_ready rd;
    raft_ready(m->r, &rd);
    check_ready(s, m, &st, &rd);
    member_store(s, m, &rd);
    member_send(s, m, &rd);
    member_hold(s, m, &rd);
    member_apply(s, m, &rd);
    for (u32 i = 0; i < rd.read_count; i++) client_read_state(s, m, &rd.reads[i]);
    for (u32 i = 0; i < rd.read_failed_count; i++) client_read_failed(s, m, rd.reads_failed[i]);
    client_serve_reads(s, m);
    raft_advance(m->r, &rd);
    if (st.role == RAFT_LEADER) {
        if (m->lead_term != st.term) check_new_leader(s, m, st.term);
        m->lead_term = st.term;
        m->lead_last = image_last_index(&m->store.written);
    } else {
        m->lead_term = 0;
    }
    for (u32 i = 0; i < m->snap_failed_count; i++) raft_snapshot_failed(m->r, m->snap_failed[i]);
    m->snap_failed_count = 0;
    member_observe(s, m);
}

void member_ready_loop(struct sim *s, struct sim_member *m)
{
    u32 rounds = 0;
    while (!s->failed && m->r && raft_has_ready(m->r)) {
        /* A truncating or installing ready waits until the disk is idle (raft.h), as the
         * shard's group commit does; the fdatasync completion runs this loop again. */
        if (m->store.rec_count && raft_ready_needs_idle_storage(m->r)) break;
        member_ready_one(s, m);
        if (++rounds > 10000) {
            sim_fail(s, "liveness", "member %llu: raft_has_ready stays true after 10000 readies",
                     (unsigned long long)m->id);
        }
    }
    if (m->r) store_sync_start(s, &m->store);
}

/* ---- fdatasync completion --------------------------------------------------------------- */

static void member_release_held(struct sim *s, struct sim_member *m)
{
    u32 n = 0;
    while (n < m->held_count && m->held[n].seq <= m->store.seq_durable) {
        net_send_bytes(s, m->group, m->node, m->held[n].to, m->held[n].bytes, m->held[n].len);
        free(m->held[n].bytes);
        n++;
    }
    if (n) memmove(m->held, m->held + n, sizeof(struct sim_held) * (m->held_count - n));
    m->held_count -= n;
}

static void member_compact_done(struct sim *s, struct sim_member *m)
{
    if (!m->compact_pending || m->compact_seq > m->store.seq_durable) return;
    m->compact_pending = false;
    if (!m->has_snap || m->compact_meta.index > m->snap.index) {
        member_set_snap(m, &m->compact_meta, m->compact_data, m->compact_len);
        raft_compact(m->r, &m->compact_meta, m->compact_keep);
        sim_trace(s, "g%u member %llu compacts at %llu keeping %llu (%u members, %u voters)",
                  m->group, (unsigned long long)m->id, (unsigned long long)m->compact_meta.index,
                  (unsigned long long)m->compact_keep, m->compact_meta.conf.count,
                  raft_conf_voters(&m->compact_meta.conf));
    }
    free(m->compact_data);
    m->compact_data = NULL;
}

void member_sync_check(struct sim *s, struct sim_member *m)
{
    if (!m->r || !store_sync_due(s, &m->store)) return;
    store_sync_complete(&m->store);
    const struct sim_image *dur = &m->store.durable;
    u64 last = image_last_index(dur);
    if (last) {
        raft_persisted(m->r, last, image_term_at(dur, last));
        member_observe(s, m);
    }
    member_release_held(s, m);
    member_compact_done(s, m);
    member_ready_loop(s, m);
}

void member_take_snapshot(struct sim *s, struct sim_member *m)
{
    if (!m->r || m->compact_pending) return;
    if (m->applied == 0 || (m->has_snap && m->snap.index >= m->applied)) return;
    struct raft_snapshot_meta meta;
    raft_snapshot_meta_applied(m->r, &meta);
    if (meta.index != m->applied) {
        sim_fail(s, "snapshot",
                 "member %llu: raft_snapshot_meta_applied says index %llu, the "
                 "state machine applied %llu",
                 (unsigned long long)m->id, (unsigned long long)meta.index,
                 (unsigned long long)m->applied);
        return;
    }
    u8 buf[SIM_SNAP_BYTES_MAX];
    u32 len = snap_encode(m, &meta, buf);
    store_batch_begin(&m->store);
    store_snapshot(&m->store, &meta, buf, len);
    m->compact_pending = true;
    m->compact_seq = m->store.seq_written;
    m->compact_meta = meta;
    m->compact_data = sim_xmemdup(buf, len);
    m->compact_len = len;
    m->compact_keep = sim_below(s, 6);
    s->stat_snapshots++;
    store_sync_start(s, &m->store);
}
