/*
 * check_safety.c — the Raft safety checkers, run incrementally on every input, ready and apply
 * (Raft paper §5.2-§5.4, Figure 3):
 *  - election-safety: at most one leader per term, over the whole run (leader_of_term).
 *  - leader-append-only: a leader never truncates, installs over or rewrites its log during
 *    its term (every ready it hands out while leading appends after what it wrote before).
 *  - log-matching: an (index, term) always names the same entry content and the same
 *    previous term, on every member (by induction: same index and term => same prefix).
 *  - leader-completeness: a new leader's log holds every entry applied anywhere so far.
 *  - state-machine-safety: every member applies the same entry at an index, and reaches the
 *    same state (KV map hash) there; an installed snapshot has that state too.
 *  - committed-durable: an entry applied for the first time is durable on a quorum of the
 *    voters of the configuration in force (the committed one, or the one before it: a change
 *    takes effect when applied, so entries right after it may commit under either), and a
 *    member applies only what is durable on itself. A member removed and shut down counts with
 *    what it held when it left (a leader that had not applied the removal yet counted it).
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* ---- hashes ----------------------------------------------------------------------------- */

u64 check_entry_hash(const struct raft_entry *e)
{
    u64 h = sim_hash_u64(0x6b65656c, e->type);
    return sim_hash_bytes(h, e->data, e->len);
}

u64 check_state_hash(const struct sim_member *m)
{
    return sim_hash_bytes(0x73746174, m->kv, sizeof m->kv);
}

void check_init(struct sim *s)
{
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_group_check *c = &s->group[g].check;
        memset(c, 0, sizeof *c);
        c->conf = s->group[g].initial_conf;
        c->conf_prev = c->conf;
    }
}

void check_free(struct sim *s)
{
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_group_check *c = &s->group[g].check;
        free(c->leader_of_term);
        free(c->lm);
        free(c->applied);
        memset(c, 0, sizeof *c);
    }
}

/* ---- election safety, leader append-only, leader completeness --------------------------- */

void check_role(struct sim *s, struct sim_member *m, enum raft_role role, u64 term)
{
    if (role != RAFT_LEADER) return;
    struct sim_group_check *c = &s->group[m->group].check;
    if (term >= c->terms_cap) {
        u64 cap = KEEL_MAX(term + 1, c->terms_cap * 2);
        c->leader_of_term = sim_xrealloc(c->leader_of_term, sizeof(u64) * cap);
        memset(c->leader_of_term + c->terms_cap, 0, sizeof(u64) * (cap - c->terms_cap));
        c->terms_cap = cap;
    }
    if (c->leader_of_term[term] == 0) {
        c->leader_of_term[term] = m->id;
        s->stat_elections++;
        sim_trace(s, "g%u member %llu (node %u) leads term %llu", m->group,
                  (unsigned long long)m->id, m->node, (unsigned long long)term);
    } else if (c->leader_of_term[term] != m->id) {
        sim_fail(s, "election-safety", "group %u term %llu has two leaders: %llu and %llu",
                 m->group, (unsigned long long)term, (unsigned long long)c->leader_of_term[term],
                 (unsigned long long)m->id);
    }
}

void check_ready(struct sim *s, struct sim_member *m, const struct raft_status *st,
                 const struct raft_ready *rd)
{
    if (st->commit < m->commit_seen) {
        sim_fail(s, "commit-monotonic", "member %llu: commit went from %llu back to %llu",
                 (unsigned long long)m->id, (unsigned long long)m->commit_seen,
                 (unsigned long long)st->commit);
    }
    m->commit_seen = st->commit;
    if (st->role != RAFT_LEADER || m->lead_term != st->term) return;
    const char *what = NULL;
    if (rd->truncate_from) what = "truncates its log";
    if (rd->snapshot_install) what = "installs a snapshot";
    if (rd->entry_count && rd->entries[0].index <= m->lead_last) what = "rewrites entries";
    if (what) {
        sim_fail(s, "leader-append-only",
                 "member %llu, leader of term %llu, %s (written last "
                 "index %llu, truncate_from %llu, first entry %llu)",
                 (unsigned long long)m->id, (unsigned long long)st->term, what,
                 (unsigned long long)m->lead_last, (unsigned long long)rd->truncate_from,
                 (unsigned long long)(rd->entry_count ? rd->entries[0].index : 0));
    }
}

void check_new_leader(struct sim *s, struct sim_member *m, u64 term)
{
    const struct sim_group_check *c = &s->group[m->group].check;
    const struct sim_image *img = &m->store.written;
    u64 from = img->has_snap ? img->snap.index + 1 : 1;
    for (u64 i = from; i <= c->applied_max; i++) {
        u64 have = image_term_at(img, i);
        if (have != c->applied[i].term) {
            sim_fail(s, "leader-completeness",
                     "member %llu leads term %llu but its log has "
                     "term %llu at index %llu, where term %llu was committed (applied)",
                     (unsigned long long)m->id, (unsigned long long)term, (unsigned long long)have,
                     (unsigned long long)i, (unsigned long long)c->applied[i].term);
            return;
        }
    }
}

/* ---- log matching ----------------------------------------------------------------------- */

static u64 lm_slot_of(const struct sim_group_check *c, u64 index, u64 term)
{
    return sim_hash_u64(index, term) & (c->lm_cap - 1);
}

static struct sim_lm_slot *lm_find(struct sim_group_check *c, u64 index, u64 term)
{
    if (c->lm_count * 2 >= c->lm_cap) {
        struct sim_lm_slot *old = c->lm;
        u64 old_cap = c->lm_cap;
        c->lm_cap = old_cap ? old_cap * 2 : 1024;
        c->lm = sim_xmalloc(sizeof(struct sim_lm_slot) * c->lm_cap);
        memset(c->lm, 0, sizeof(struct sim_lm_slot) * c->lm_cap);
        for (u64 i = 0; i < old_cap; i++) {
            if (old[i].index == 0) continue;
            u64 j = lm_slot_of(c, old[i].index, old[i].term);
            while (c->lm[j].index) j = (j + 1) & (c->lm_cap - 1);
            c->lm[j] = old[i];
        }
        free(old);
    }
    u64 j = lm_slot_of(c, index, term);
    while (c->lm[j].index && (c->lm[j].index != index || c->lm[j].term != term)) {
        j = (j + 1) & (c->lm_cap - 1);
    }
    return &c->lm[j];
}

void check_entry_written(struct sim *s, struct sim_member *m, const struct raft_entry *e)
{
    struct sim_group_check *c = &s->group[m->group].check;
    u64 hash = check_entry_hash(e);
    u64 prev = image_term_at(&m->store.written, e->index - 1);
    if (prev == 0 && e->index > 1) prev = UINT64_MAX; /* compacted away: unknown */
    struct sim_lm_slot *slot = lm_find(c, e->index, e->term);
    if (slot->index == 0) {
        *slot = (struct sim_lm_slot){e->index, e->term, hash, prev};
        c->lm_count++;
        return;
    }
    bool prev_differs =
        prev != UINT64_MAX && slot->prev_term != UINT64_MAX && prev != slot->prev_term;
    if (slot->hash != hash || prev_differs) {
        sim_fail(s, "log-matching",
                 "group %u: entry (index %llu, term %llu) written by member "
                 "%llu differs from an earlier one with that index and term (%s)",
                 m->group, (unsigned long long)e->index, (unsigned long long)e->term,
                 (unsigned long long)m->id, prev_differs ? "previous term" : "content");
        return;
    }
    if (slot->prev_term == UINT64_MAX) slot->prev_term = prev;
}

/* ---- applies ---------------------------------------------------------------------------- */

void check_conf_apply(struct raft_conf *conf, const struct raft_conf_change *cc)
{
    u32 at = conf->count;
    for (u32 i = 0; i < conf->count; i++) {
        if (conf->members[i].id == cc->id) at = i;
    }
    if (cc->type == RAFT_CC_REMOVE) {
        if (at == conf->count) return;
        conf->members[at] = conf->members[--conf->count];
        return;
    }
    u8 role = cc->type == RAFT_CC_ADD_LEARNER ? RAFT_LEARNER : RAFT_VOTER;
    if (at == conf->count) {
        if (conf->count == RAFT_MEMBERS_MAX || cc->type == RAFT_CC_PROMOTE) return;
        conf->members[conf->count++] = (struct raft_member){.id = cc->id, .role = role};
        return;
    }
    if (cc->type != RAFT_CC_ADD_LEARNER) conf->members[at].role = RAFT_VOTER;
}

static bool durable_on(const struct sim_image *dur, u64 index, u64 term)
{
    if (dur->has_snap && dur->snap.index >= index) return true;
    return image_term_at(dur, index) == term;
}

static bool quorum_durable(struct sim *s, u32 group, const struct raft_conf *conf, u64 index,
                           u64 term, u32 *have, u32 *need)
{
    u32 voters = 0, durable = 0;
    for (u32 i = 0; i < conf->count; i++) {
        if (conf->members[i].role != RAFT_VOTER) continue;
        voters++;
        const struct sim_image *dur = sim_durable_by_id(s, group, conf->members[i].id);
        if (dur && durable_on(dur, index, term)) durable++;
    }
    *have = durable;
    *need = voters / 2 + 1;
    return durable >= *need;
}

static void check_first_apply(struct sim *s, struct sim_member *m, const struct raft_entry *e)
{
    struct sim_group_check *c = &s->group[m->group].check;
    u32 have, need, have_prev, need_prev;
    bool now = quorum_durable(s, m->group, &c->conf, e->index, e->term, &have, &need);
    bool before =
        quorum_durable(s, m->group, &c->conf_prev, e->index, e->term, &have_prev, &need_prev);
    if (!now && !before) {
        char who[256] = "";
        size_t at = 0;
        for (u32 i = 0; i < c->conf.count; i++) {
            const struct sim_image *d = sim_durable_by_id(s, m->group, c->conf.members[i].id);
            int n = snprintf(who + at, sizeof who - at, " %llu:%s%llu/%llu",
                             (unsigned long long)c->conf.members[i].id,
                             c->conf.members[i].role == RAFT_VOTER ? "" : "learner:",
                             (unsigned long long)(d ? image_last_index(d) : 0),
                             (unsigned long long)(d ? image_term_at(d, e->index) : 0));
            if (n > 0 && (size_t)n < sizeof who - at) at += (size_t)n;
        }
        sim_fail(s, "committed-durable",
                 "group %u: index %llu (term %llu) is applied by member "
                 "%llu but durable on only %u voters (quorum %u; %u of %u in the previous "
                 "configuration); member:durable last index/term at %llu:%s",
                 m->group, (unsigned long long)e->index, (unsigned long long)e->term,
                 (unsigned long long)m->id, have, need, have_prev, need_prev,
                 (unsigned long long)e->index, who);
        return;
    }
    if (e->type != RAFT_ENTRY_CONF) return;
    struct raft_conf_change cc;
    int err = raft_conf_change_decode(e->data, e->len, &cc);
    if (err) {
        sim_fail(s, "codec", "group %u: the conf entry at %llu does not decode: %s", m->group,
                 (unsigned long long)e->index, raft_err_str(err));
        return;
    }
    c->conf_prev = c->conf;
    check_conf_apply(&c->conf, &cc);
    s->stat_conf_changes++;
    static const char *const kinds[] = {"?", "add voter", "add learner", "promote", "remove"};
    const char *kind = cc.type < KEEL_ARRAY_LEN(kinds) ? kinds[cc.type] : "?";
    sim_trace(s, "g%u conf change committed at %llu: %s %llu (now %u members, %u voters)", m->group,
              (unsigned long long)e->index, kind, (unsigned long long)cc.id, c->conf.count,
              raft_conf_voters(&c->conf));
}

void check_apply(struct sim *s, struct sim_member *m, const struct raft_entry *e)
{
    struct sim_group_check *c = &s->group[m->group].check;
    if (e->index >= c->applied_cap) {
        u64 cap = KEEL_MAX(e->index + 1, c->applied_cap * 2);
        c->applied = sim_xrealloc(c->applied, sizeof(struct sim_apply_rec) * cap);
        memset(c->applied + c->applied_cap, 0,
               sizeof(struct sim_apply_rec) * (cap - c->applied_cap));
        c->applied_cap = cap;
    }
    struct sim_apply_rec now = {e->term, check_entry_hash(e), check_state_hash(m)};
    struct sim_apply_rec *rec = &c->applied[e->index];
    if (e->index > c->applied_max) {
        *rec = now;
        c->applied_max = e->index;
        check_first_apply(s, m, e);
        return;
    }
    if (rec->term != now.term || rec->entry_hash != now.entry_hash ||
        rec->state_hash != now.state_hash) {
        sim_fail(s, "state-machine-safety",
                 "group %u index %llu: member %llu applies term "
                 "%llu (entry %016llx, state %016llx), earlier term %llu (entry %016llx, "
                 "state %016llx)",
                 m->group, (unsigned long long)e->index, (unsigned long long)m->id,
                 (unsigned long long)now.term, (unsigned long long)now.entry_hash,
                 (unsigned long long)now.state_hash, (unsigned long long)rec->term,
                 (unsigned long long)rec->entry_hash, (unsigned long long)rec->state_hash);
    }
}

void check_snapshot_installed(struct sim *s, struct sim_member *m)
{
    const struct sim_group_check *c = &s->group[m->group].check;
    u64 i = m->applied;
    if (i == 0 || i > c->applied_max) return;
    if (c->applied[i].state_hash != check_state_hash(m)) {
        sim_fail(s, "state-machine-safety",
                 "member %llu: the snapshot of index %llu holds "
                 "another state than the members that applied that index",
                 (unsigned long long)m->id, (unsigned long long)i);
    }
}

/* ---- every step ------------------------------------------------------------------------- */

void check_step(struct sim *s)
{
    for (u32 g = 0; g < s->groups && !s->failed; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 i = 0; i < grp->member_count; i++) {
            struct sim_member *m = &grp->members[i];
            if (!m->exists || !m->r) continue;
            struct raft_status st;
            raft_status(m->r, &st);
            if (st.applied != m->applied || st.applied > st.commit) {
                sim_fail(s, "state-machine",
                         "member %llu: raft says applied %llu (commit "
                         "%llu), the state machine applied %llu",
                         (unsigned long long)m->id, (unsigned long long)st.applied,
                         (unsigned long long)st.commit, (unsigned long long)m->applied);
                return;
            }
        }
    }
}
