/* raft.c — creating and destroying a member, status, accessors, config defaults, memory. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

static void *raft_malloc_default(void *ctx, size_t size_bytes)
{
    (void)ctx;
    return malloc(size_bytes);
}

static void raft_free_default(void *ctx, void *ptr, size_t size_bytes)
{
    (void)ctx;
    (void)size_bytes;
    free(ptr);
}

void raft_config_default(struct raft_config *config)
{
    ASSERT(config != NULL);
    memset(config, 0, sizeof(*config));
    config->election_ticks = 10;
    config->heartbeat_ticks = 1;
    config->append_bytes_max = 1u << 20;
    config->inflight_bytes_max = 4u << 20;
    config->inflight_msgs_max = 64;
    config->uncommitted_bytes_max = 64ull << 20;
    config->entry_bytes_max = 3u << 19; /* 1.5 MiB */
    config->snap_chunk_bytes = 1u << 20;
    config->snap_chunks_inflight = 4;
    config->alloc = raft_malloc_default;
    config->free = raft_free_default;
    ASSERT(config->heartbeat_ticks < config->election_ticks);
}

/* ---- memory ---------------------------------------------------------------------------- */

void *raft_alloc(struct raft *r, size_t size_bytes)
{
    ASSERT(size_bytes > 0);
    return r->cfg.alloc(r->cfg.alloc_ctx, size_bytes);
}

void raft_free(struct raft *r, void *ptr, size_t size_bytes)
{
    if (ptr == NULL) return;
    ASSERT(size_bytes > 0);
    r->cfg.free(r->cfg.alloc_ctx, ptr, size_bytes);
}

int raft_vec_reserve(struct raft *r, struct raft_vec *v, size_t item_bytes, u32 need)
{
    ASSERT(v->count <= v->cap);
    if (need <= v->cap) return RAFT_OK;
    u32 cap = v->cap ? v->cap : 8;
    while (cap < need) cap *= 2;
    void *items = raft_alloc(r, (size_t)cap * item_bytes);
    if (items == NULL) return RAFT_ENOMEM;
    if (v->count) memcpy(items, v->items, (size_t)v->count * item_bytes);
    raft_free(r, v->items, (size_t)v->cap * item_bytes);
    v->items = items;
    v->cap = cap;
    ASSERT(v->cap >= need);
    return RAFT_OK;
}

void raft_vec_release(struct raft *r, struct raft_vec *v, size_t item_bytes)
{
    raft_free(r, v->items, (size_t)v->cap * item_bytes);
    v->items = NULL;
    v->count = 0;
    v->cap = 0;
}

/* ---- membership helpers ---------------------------------------------------------------- */

/* A member that joined with an empty bootstrap and has not installed a snapshot knows only the
 * changes in its log, not the whole configuration: it never campaigns. */
bool raft_can_campaign(const struct raft *r)
{
    return r->conf_base && raft_is_voter(r, r->cfg.id);
}

bool raft_is_voter(const struct raft *r, u64 id)
{
    for (u32 i = 0; i < r->conf.count; i++) {
        if (r->conf.members[i].id == id) return r->conf.members[i].role == RAFT_VOTER;
    }
    return false;
}

u32 raft_quorum(const struct raft *r)
{
    return raft_conf_voters(&r->conf) / 2 + 1;
}

void raft_check_invariants(const struct raft *r)
{
    u64 last = raft_log_last(&r->log);
    ASSERT(r->commit <= last);
    ASSERT(r->applied <= r->commit);
    ASSERT(r->log.snap_index <= r->applied);
    ASSERT(r->chunk_count <= RAFT_CHUNKS_QUEUED);
    ASSERT(r->log.persisted <= last);
    ASSERT(raft_log_last_term(&r->log) <= r->term);
    ASSERT(r->log.unstable_from >= r->log.snap_index + 1);
    ASSERT(r->log.unstable_from <= last + 1);
    ASSERT(r->conf.count <= RAFT_MEMBERS_MAX);
    ASSERT_IMPLIES(r->role == RAFT_LEADER, r->leader == r->cfg.id);
    ASSERT_IMPLIES(r->role == RAFT_LEADER, r->pr_count == r->conf.count);
    ASSERT_IMPLIES(r->role == RAFT_LEADER, r->term_start_index > 0);
    ASSERT_IMPLIES(r->role == RAFT_CANDIDATE, r->vote == r->cfg.id);
    ASSERT_IMPLIES(r->transfer_target != 0, r->role == RAFT_LEADER);
}

/* ---- create / destroy ------------------------------------------------------------------ */

static bool raft_config_valid(const struct raft_config *c)
{
    if (c->id == 0 || c->alloc == NULL || c->free == NULL) return false;
    if (c->election_ticks < 2 || c->heartbeat_ticks == 0) return false;
    if (c->heartbeat_ticks >= c->election_ticks) return false;
    if (c->append_bytes_max == 0 || c->inflight_bytes_max == 0) return false;
    if (c->inflight_msgs_max == 0 || c->inflight_msgs_max > RAFT_INFLIGHT_CAP) return false;
    if (c->entry_bytes_max == 0 || c->snap_chunk_bytes == 0) return false;
    return c->snap_chunks_inflight > 0;
}

static bool raft_conf_valid(const struct raft_conf *conf)
{
    if (conf->count > RAFT_MEMBERS_MAX) return false;
    for (u32 i = 0; i < conf->count; i++) {
        const struct raft_member *m = &conf->members[i];
        if (m->id == 0) return false;
        if (m->role != RAFT_VOTER && m->role != RAFT_LEARNER) return false;
        for (u32 j = 0; j < i; j++) {
            if (conf->members[j].id == m->id) return false;
        }
    }
    return true;
}

static bool raft_restore_valid(const struct raft_restore *rs)
{
    u64 first = rs->snapshot ? rs->snapshot->index + 1 : 1;
    u64 prev_term = rs->snapshot ? rs->snapshot->term : 0;
    if (rs->snapshot && !raft_conf_valid(&rs->snapshot->conf)) return false;
    if (rs->entry_count > 0 && rs->entries == NULL) return false;
    for (u32 i = 0; i < rs->entry_count; i++) {
        const struct raft_entry *e = &rs->entries[i];
        if (e->index != first + i || e->term < prev_term || e->term > rs->hard_state.term)
            return false;
        if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF) return false;
        if (e->len > 0 && e->data == NULL) return false;
        prev_term = e->term;
    }
    if (prev_term > rs->hard_state.term) return false;
    if (rs->hard_state.commit > first - 1 + rs->entry_count) return false;
    if (rs->snapshot || rs->bootstrap == NULL || rs->bootstrap->count == 0) return true;
    if (!raft_conf_valid(rs->bootstrap)) return false;
    return raft_conf_voters(rs->bootstrap) > 0;
}

/* Rebuilds the configuration of a restarted member: its snapshot's (or, without one, the
 * bootstrap configuration, which stands at index 0 before any entry), then every committed CONF
 * entry after it (they were applied before the restart). */
static void raft_restore_conf(struct raft *r)
{
    for (u64 i = r->log.snap_index + 1; i <= r->commit; i++) {
        const struct raft_entry *e = raft_log_get(&r->log, i);
        if (e->type == RAFT_ENTRY_CONF) raft_conf_apply_entry(r, e);
    }
}

static int raft_restore_state(struct raft *r, const struct raft_restore *rs)
{
    if (rs->snapshot) {
        raft_log_init(&r->log, rs->snapshot->index, rs->snapshot->term);
        r->snap_meta = *rs->snapshot;
        r->conf = rs->snapshot->conf;
        r->conf_index = rs->snapshot->index;
        r->conf_base = rs->snapshot->conf.count > 0; /* an empty one is no base */
    } else if (rs->bootstrap != NULL && rs->bootstrap->count > 0) {
        r->conf = *rs->bootstrap;
        r->conf_base = true;
    }
    for (u32 i = 0; i < rs->entry_count; i++) {
        int rc = raft_log_append(r, &rs->entries[i]);
        if (rc != RAFT_OK) return rc;
    }
    r->log.unstable_from = raft_log_last(&r->log) + 1;
    r->log.persisted = raft_log_last(&r->log);
    r->term = rs->hard_state.term;
    r->vote = rs->hard_state.vote;
    r->commit = KEEL_MAX(rs->hard_state.commit, r->log.snap_index);
    r->applied = r->log.snap_index;
    raft_restore_conf(r);
    return RAFT_OK;
}

int raft_create(const struct raft_config *config, const struct raft_restore *restore,
                struct raft **out)
{
    ASSERT(config != NULL && restore != NULL && out != NULL);
    *out = NULL;
    if (!raft_config_valid(config) || !raft_restore_valid(restore)) return RAFT_EINVALID;
    struct raft *r = config->alloc(config->alloc_ctx, sizeof(*r));
    if (r == NULL) return RAFT_ENOMEM;
    memset(r, 0, sizeof(*r));
    r->cfg = *config;
    raft_log_init(&r->log, 0, 0);
    r->rng = config->seed ^ (config->id * 0x9e3779b97f4a7c15ull);
    int rc = raft_restore_state(r, restore);
    if (rc == RAFT_OK) rc = raft_vec_reserve(r, &r->msgs, sizeof(struct raft_msg), 16);
    if (rc == RAFT_OK) rc = raft_vec_reserve(r, &r->msgs_after, sizeof(struct raft_msg), 16);
    if (rc != RAFT_OK) {
        raft_destroy(r);
        return rc;
    }
    r->hs_prev.term = restore->hard_state.term;
    r->hs_prev.vote = restore->hard_state.vote;
    r->hs_prev.commit = restore->hard_state.commit;
    r->role = RAFT_FOLLOWER;
    raft_reset_timeout(r);
    raft_check_invariants(r);
    *out = r;
    return RAFT_OK;
}

void raft_destroy(struct raft *r)
{
    if (r == NULL) return;
    raft_log_release(r);
    raft_vec_release(r, &r->read_reqs, sizeof(struct raft_read_req));
    raft_vec_release(r, &r->fwd_reads, sizeof(struct raft_fwd_read));
    raft_vec_release(r, &r->reads_out, sizeof(struct raft_read_state));
    raft_vec_release(r, &r->reads_failed, sizeof(u64));
    raft_vec_release(r, &r->msgs, sizeof(struct raft_msg));
    raft_vec_release(r, &r->msgs_after, sizeof(struct raft_msg));
    raft_snap_release(r);
    r->cfg.free(r->cfg.alloc_ctx, r, sizeof(*r));
}

/* ---- status and accessors -------------------------------------------------------------- */

void raft_status(const struct raft *r, struct raft_status *st)
{
    ASSERT(r != NULL && st != NULL);
    memset(st, 0, sizeof(*st));
    st->id = r->cfg.id;
    st->role = r->role;
    st->term = r->term;
    st->vote = r->vote;
    st->leader = r->leader;
    st->commit = r->commit;
    st->applied = r->applied;
    st->persisted = r->log.persisted;
    st->first_index = r->log.snap_index + 1;
    st->last_index = raft_log_last(&r->log);
    st->snapshot_index = r->snap_meta.index;
    st->transfer_target = r->transfer_target;
    st->conf = r->conf;
    if (r->role != RAFT_LEADER) return;
    for (u32 i = 0; i < r->pr_count; i++) {
        const struct raft_progress *pr = &r->prs[i];
        struct raft_progress_status *ps = &st->progress[i];
        ps->id = pr->id;
        ps->role = pr->role;
        ps->state = pr->state;
        ps->match = pr->match;
        ps->next = pr->next;
        ps->recent_active = pr->recent_active;
        st->snapshot_wanted |= pr->snap_wanted && !raft_snap_usable(r);
        if (pr->id == r->cfg.id) { /* the leader itself: its durable log */
            ps->state = RAFT_PROGRESS_REPLICATE;
            ps->match = r->log.persisted;
            ps->next = raft_log_last(&r->log) + 1;
        }
    }
    st->progress_count = r->pr_count;
    ASSERT(st->progress_count <= RAFT_MEMBERS_MAX);
}

u64 raft_leader(const struct raft *r)
{
    return r->leader;
}

u64 raft_term(const struct raft *r)
{
    return r->term;
}

enum raft_role raft_role(const struct raft *r)
{
    return (enum raft_role)r->role;
}

const struct raft_entry *raft_entry_at(const struct raft *r, u64 index)
{
    if (index <= r->log.snap_index || index > raft_log_last(&r->log)) return NULL;
    const struct raft_entry *e = raft_log_get(&r->log, index);
    ASSERT(e->index == index);
    return e;
}
