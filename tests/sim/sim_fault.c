/*
 * sim_fault.c — the faults of a step, by the seed's rates: partitions start and heal
 * (sim_net.c), nodes crash and restart later, leaders hand leadership over, groups change
 * membership (remove a voter; add a learner on a node the group left; promote it), members
 * snapshot their state machine and compact, and members that left the committed configuration
 * are shut down.
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <stdio.h>
#include <string.h>

/* ---- crashes ---------------------------------------------------------------------------- */

void node_crash(struct sim *s, u32 node)
{
    ASSERT(s->node_up[node]);
    s->node_up[node] = false;
    s->node_restart_ms[node] = s->now_ms + sim_range(s, 10, s->rates.down_ms_max);
    s->stat_crashes++;
    sim_trace(s, "node %u crashes, restarts at %llu ms", node,
              (unsigned long long)s->node_restart_ms[node]);
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_member *m = sim_member_on_node(s, g, node);
        if (m) member_crash(s, m);
    }
}

void node_restart(struct sim *s, u32 node)
{
    ASSERT(!s->node_up[node]);
    s->node_up[node] = true;
    sim_trace(s, "node %u restarts", node);
    for (u32 g = 0; g < s->groups && !s->failed; g++) {
        struct sim_member *m = sim_member_on_node(s, g, node);
        if (!m || m->r) continue;
        member_restart(s, m);
        member_ready_loop(s, m);
    }
}

/* A power failure: a majority of the nodes (sometimes all) crash in the same millisecond, so
 * what they acknowledged must have been durable. */
static void fault_multi_crash(struct sim *s)
{
    u32 count = sim_permille(s, 300) ? s->nodes : s->nodes / 2 + 1;
    u32 first = (u32)sim_below(s, s->nodes);
    sim_trace(s, "power failure: %u nodes from node %u", count, first);
    for (u32 i = 0; i < count && !s->failed; i++) {
        u32 n = (first + i) % s->nodes;
        if (s->node_up[n]) node_crash(s, n);
    }
}

static void fault_crashes(struct sim *s)
{
    if (sim_permille(s, s->rates.multi_crash_permille)) fault_multi_crash(s);
    for (u32 n = 0; n < s->nodes && !s->failed; n++) {
        if (s->node_up[n] && sim_permille(s, s->rates.crash_permille)) {
            node_crash(s, n);
        } else if (!s->node_up[n] && s->now_ms >= s->node_restart_ms[n]) {
            node_restart(s, n);
        }
    }
}

/* ---- leadership transfer ---------------------------------------------------------------- */

static u64 conf_pick(struct sim *s, const struct raft_conf *conf, u8 role, u64 not_id)
{
    u64 pick = 0;
    u32 seen = 0;
    for (u32 i = 0; i < conf->count; i++) {
        const struct raft_member *mb = &conf->members[i];
        if (mb->role != role || mb->id == not_id) continue;
        if (sim_below(s, ++seen) == 0) pick = mb->id;
    }
    return pick;
}

static void fault_transfer(struct sim *s)
{
    u32 g = (u32)sim_below(s, s->groups);
    struct sim_member *l = sim_leader(s, g);
    if (!l) return;
    struct raft_status st;
    raft_status(l->r, &st);
    u64 target = conf_pick(s, &st.conf, RAFT_VOTER, l->id);
    if (!target) return;
    int err = raft_transfer_leader(l->r, target);
    s->stat_transfers++;
    sim_trace(s, "g%u leader %llu transfers to %llu: %s", g, (unsigned long long)l->id,
              (unsigned long long)target, raft_err_str(err));
    member_observe(s, l);
    member_ready_loop(s, l);
}

/* ---- membership ------------------------------------------------------------------------- */

static struct sim_member *member_new(struct sim *s, u32 g, u32 node)
{
    struct sim_group *grp = &s->group[g];
    if (grp->member_count == SIM_MEMBERS_MAX) return NULL;
    struct sim_member *m = &grp->members[grp->member_count++];
    memset(m, 0, sizeof *m);
    m->id = grp->next_id++;
    m->node = node;
    m->group = g;
    member_create(s, m, false);
    return m;
}

static bool free_node(struct sim *s, u32 g, u32 *node)
{
    u32 seen = 0;
    for (u32 n = 0; n < s->nodes; n++) {
        if (!s->node_up[n] || sim_member_on_node(s, g, n)) continue;
        if (sim_below(s, ++seen) == 0) *node = n;
    }
    return seen > 0;
}

/* The next change of group g's membership: promote (or drop) a learner, else add a member on
 * a node the group left (a learner; one time in five a voter at once), else remove a voter
 * (never below 2 voters). */
static bool membership_next(struct sim *s, u32 g, const struct raft_conf *conf,
                            struct raft_conf_change *cc, struct sim_member **added)
{
    u64 learner = conf_pick(s, conf, RAFT_LEARNER, 0);
    u32 node = 0;
    if (learner) {
        struct sim_member *m = sim_member_by_id(s, g, learner);
        cc->type = m ? RAFT_CC_PROMOTE : RAFT_CC_REMOVE;
        cc->id = learner;
        return true;
    }
    if (conf->count < RAFT_MEMBERS_MAX && free_node(s, g, &node)) {
        *added = member_new(s, g, node);
        if (!*added) return false;
        cc->type = sim_permille(s, 200) ? RAFT_CC_ADD_VOTER : RAFT_CC_ADD_LEARNER;
        cc->id = (*added)->id;
        cc->context_len = (u32)snprintf((char *)cc->context, sizeof cc->context,
                                        "name=node%u=sim://%u", node, node);
        return true;
    }
    if (raft_conf_voters(conf) < 3) return false;
    cc->type = RAFT_CC_REMOVE;
    cc->id = conf_pick(s, conf, RAFT_VOTER, 0);
    return cc->id != 0;
}

static void fault_membership(struct sim *s)
{
    u32 g = (u32)sim_below(s, s->groups);
    struct sim_member *l = sim_leader(s, g);
    if (!l) return;
    struct raft_status st;
    raft_status(l->r, &st);
    struct raft_conf_change cc = {0};
    struct sim_member *added = NULL;
    if (!membership_next(s, g, &st.conf, &cc, &added)) return;
    u64 index = 0;
    int err = raft_propose_conf(l->r, &cc, &index);
    static const char *const kinds[] = {"?", "add voter", "add learner", "promote", "remove"};
    sim_trace(s, "g%u leader %llu proposes %s %llu: %s (index %llu)", g, (unsigned long long)l->id,
              kinds[cc.type], (unsigned long long)cc.id, raft_err_str(err),
              (unsigned long long)index);
    if (err && added) member_destroy(s, added);
    if (!err && added) {
        added->add_index = index;
        added->add_term = raft_term(l->r);
    }
    member_observe(s, l);
    member_ready_loop(s, l);
    if (added && added->exists) member_ready_loop(s, added);
}

/* True when the conf entry that was to add m lost its index to another entry. */
static bool member_add_lost(const struct sim_group *grp, const struct sim_member *m)
{
    const struct sim_group_check *c = &grp->check;
    if (m->add_index == 0 || c->applied_max < m->add_index) return false;
    return c->applied[m->add_index].term != m->add_term;
}

/* Members that left the committed configuration (removed), or whose add was lost, are shut
 * down and their node freed for the group. A member whose add is still pending stays. */
static void fault_member_gc(struct sim *s)
{
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 i = 0; i < grp->member_count; i++) {
            struct sim_member *m = &grp->members[i];
            if (!m->exists) continue;
            if (raft_conf_has(&grp->check.conf, m->id)) {
                m->was_member = true;
                continue;
            }
            if (m->was_member || member_add_lost(grp, m)) member_destroy(s, m);
        }
    }
}

/* ---- the step --------------------------------------------------------------------------- */

/* The leader says a follower can continue only from a snapshot and it holds none (a joiner;
 * raft_status.snapshot_wanted). */
static bool snapshot_wanted(struct sim_member *m)
{
    if (raft_role(m->r) != RAFT_LEADER) return false;
    struct raft_status st;
    raft_status(m->r, &st);
    return st.snapshot_wanted;
}

/* raft_compact_log: drops entries from memory past the latest snapshot. Under faults at
 * random, sometimes below what a reachable follower still needs (it must then wait for a
 * fresh snapshot: raft_status.snapshot_wanted); after healing as keeld does (shard_snap.c:
 * never below the match of a reachable member), so that a snapshot in flight is not
 * overtaken. */
static void trim_log(struct sim *s, struct sim_member *m, bool respectful)
{
    struct raft_status st;
    raft_status(m->r, &st);
    u64 upto = KEEL_MIN(st.applied, st.persisted);
    if (respectful || sim_permille(s, 500))
        for (u32 i = 0; i < st.progress_count; i++)
            if (st.progress[i].id != st.id && st.progress[i].recent_active)
                upto = KEEL_MIN(upto, st.progress[i].match);
    u64 keep = sim_range(s, 0, 8);
    if (upto <= keep || st.snapshot_wanted) return;
    raft_compact_log(m->r, upto - keep);
}

/* A member snapshots at random, and always once SIM_SNAP_LOG_ENTRIES entries were applied
 * since its last snapshot (a shard's log-size policy) or when a joining member needs it; it
 * trims its in-memory log at random. */
static void fault_snapshots(struct sim *s, bool healed)
{
    for (u32 g = 0; g < s->groups && !s->failed; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 i = 0; i < grp->member_count && !s->failed; i++) {
            struct sim_member *m = &grp->members[i];
            if (!m->exists || !m->r) continue;
            u64 since = m->applied - (m->has_snap ? KEEL_MIN(m->snap.index, m->applied) : 0);
            bool due = since >= SIM_SNAP_LOG_ENTRIES || snapshot_wanted(m);
            if (due || sim_permille(s, s->rates.snapshot_permille)) {
                member_take_snapshot(s, m);
            } else if (sim_permille(s, 2 * s->rates.snapshot_permille)) {
                trim_log(s, m, healed);
            }
        }
    }
}

/* After the faults heal: snapshots and shutting down removed members go on (they are not
 * faults). */
void fault_heal_step(struct sim *s)
{
    fault_snapshots(s, true);
    if (!s->failed) fault_member_gc(s);
}

void fault_step(struct sim *s)
{
    net_partition_step(s);
    fault_crashes(s);
    if (!s->failed && sim_permille(s, s->rates.transfer_permille)) fault_transfer(s);
    if (!s->failed && sim_permille(s, s->rates.membership_permille)) fault_membership(s);
    if (!s->failed) fault_snapshots(s, false);
    if (!s->failed) fault_member_gc(s);
}

void fault_heal_all(struct sim *s)
{
    net_heal(s);
    s->rates.loss_permille = 0;
    s->rates.dup_permille = 0;
    s->rates.slow_permille = 0;
    for (u32 n = 0; n < s->nodes && !s->failed; n++) {
        if (!s->node_up[n]) node_restart(s, n);
    }
    sim_trace(s, "faults healed: every node up, no partition, no loss");
}
