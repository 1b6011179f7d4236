/*
 * sim_run.c — one run of one seed: set up the cluster, run `steps` steps with every fault kind
 * at the seed's rates, then heal every fault and require that each group elects a leader and
 * commits a final proposal within SIM_HEAL_STEPS_MAX steps, then check the client history.
 *
 * A step is one tick period (SIM_TICK_MS) of simulated time: millisecond by millisecond the
 * messages due are delivered and the fdatasyncs due complete (each input runs its member's
 * ready loop at once); then every live member ticks, faults and clients act, and the per-step
 * checkers run.
 */
#include "tests/sim/sim.h"

#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sim *volatile sim_current;

/* ---- lookups ---------------------------------------------------------------------------- */

struct sim_member *sim_member_by_id(struct sim *s, u32 group, u64 id)
{
    struct sim_group *grp = &s->group[group];
    for (u32 i = 0; i < grp->member_count; i++) {
        if (grp->members[i].exists && grp->members[i].id == id) return &grp->members[i];
    }
    return NULL;
}

struct sim_member *sim_member_on_node(struct sim *s, u32 group, u32 node)
{
    struct sim_group *grp = &s->group[group];
    for (u32 i = 0; i < grp->member_count; i++) {
        if (grp->members[i].exists && grp->members[i].node == node) return &grp->members[i];
    }
    return NULL;
}

const struct sim_image *sim_durable_by_id(struct sim *s, u32 group, u64 id)
{
    struct sim_group *grp = &s->group[group];
    for (u32 i = 0; i < grp->member_count; i++) {
        if (grp->members[i].id == id) return &grp->members[i].store.durable;
    }
    return NULL;
}

/* The live leader of the highest term, or NULL. */
struct sim_member *sim_leader(struct sim *s, u32 group)
{
    struct sim_group *grp = &s->group[group];
    struct sim_member *best = NULL;
    for (u32 i = 0; i < grp->member_count; i++) {
        struct sim_member *m = &grp->members[i];
        if (!m->exists || !m->r || raft_role(m->r) != RAFT_LEADER) continue;
        if (!best || raft_term(m->r) > raft_term(best->r)) best = m;
    }
    return best;
}

/* ---- setup ------------------------------------------------------------------------------ */

void sim_rates_draw(struct sim *s)
{
    struct sim_rates *r = &s->rates;
    r->delay_ms_min = (u32)sim_range(s, 1, 5);
    r->delay_ms_max = r->delay_ms_min + (u32)sim_range(s, 0, 40);
    r->slow_permille = (u32)sim_range(s, 0, 50);
    r->loss_permille = (u32)sim_range(s, 0, 100);
    r->dup_permille = (u32)sim_range(s, 0, 50);
    r->partition_permille = (u32)sim_range(s, 1, 10);
    r->partition_ms_max = (u32)sim_range(s, 100, 4000);
    r->crash_permille = (u32)sim_range(s, 1, 4);
    r->multi_crash_permille = (u32)sim_range(s, 0, 3);
    r->down_ms_max = (u32)sim_range(s, 20, 3000);
    r->sync_ms_max = (u32)sim_range(s, 1, 25);
    r->snapshot_permille = (u32)sim_range(s, 1, 20);
    r->transfer_permille = (u32)sim_range(s, 1, 15);
    r->membership_permille = (u32)sim_range(s, 1, 15);
    r->op_permille = (u32)sim_range(s, 50, 400);
    r->lose_all_permille = (u32)sim_range(s, 0, 500);
    r->torn_permille = (u32)sim_range(s, 0, 500);
    if (sim_permille(s, 100)) { /* one seed in ten is a storm */
        r->loss_permille = (u32)sim_range(s, 100, 300);
        r->dup_permille = (u32)sim_range(s, 50, 150);
        r->slow_permille = (u32)sim_range(s, 50, 200);
        r->partition_permille = (u32)sim_range(s, 10, 40);
        r->crash_permille = (u32)sim_range(s, 4, 10);
        r->sync_ms_max = (u32)sim_range(s, 25, 100);
        sim_trace(s, "storm: loss %u, duplication %u, crashes %u per mille", r->loss_permille,
                  r->dup_permille, r->crash_permille);
    }
}

static void sim_raft_config(struct sim *s)
{
    struct raft_config *c = &s->raft_base;
    raft_config_default(c);
    c->election_ticks = 10;
    c->heartbeat_ticks = (u32)sim_range(s, 1, 3);
    c->append_bytes_max = (u32)sim_range(s, 64, 2048);
    c->inflight_msgs_max = (u32)sim_range(s, 1, 16);
    c->inflight_bytes_max = (u32)sim_range(s, c->append_bytes_max, 16384);
    c->uncommitted_bytes_max = sim_range(s, 1024, 65536);
    c->entry_bytes_max = 256;
    c->snap_chunk_bytes = (u32)sim_range(s, 16, 160);
    c->snap_chunks_inflight = (u32)sim_range(s, 1, 4);
    c->apply_unpersisted = sim_permille(s, 500);
}

static void sim_setup(struct sim *s, const struct sim_options *opt)
{
    memset(s, 0, sizeof *s);
    s->opt = *opt;
    s->rng = opt->seed ^ 0x6b65656c73696d00ull;
    s->nodes = opt->nodes ? opt->nodes : (sim_permille(s, 500) ? 3 : 5);
    s->groups = opt->groups ? opt->groups : (u32)sim_range(s, 2, 3);
    ASSERT(s->nodes >= 1 && s->nodes <= SIM_NODES_MAX);
    ASSERT(s->groups >= 1 && s->groups <= SIM_GROUPS_MAX);
    sim_rates_draw(s);
    sim_raft_config(s);
    s->decode_entries = sim_xmalloc(sizeof(struct raft_entry) * SIM_DECODE_ENTRIES);
    for (u32 n = 0; n < s->nodes; n++) s->node_up[n] = true;
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 n = 0; n < s->nodes; n++) {
            grp->initial_conf.members[n] = (struct raft_member){.id = n + 1, .role = RAFT_VOTER};
        }
        grp->initial_conf.count = s->nodes;
        grp->next_id = s->nodes + 1;
    }
    check_init(s);
    client_init(s);
    sim_trace(s, "seed %llu: %u nodes, %u groups, %u clients", (unsigned long long)opt->seed,
              s->nodes, s->groups, s->client_count);
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 n = 0; n < s->nodes; n++) {
            struct sim_member *m = &grp->members[grp->member_count++];
            m->id = n + 1;
            m->node = n;
            m->group = g;
            m->initial = true;
            m->was_member = true;
            member_create(s, m, true);
        }
    }
}

static void sim_teardown(struct sim *s)
{
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 i = 0; i < grp->member_count; i++) {
            if (grp->members[i].exists) member_destroy(s, &grp->members[i]);
            store_free(&grp->members[i].store);
        }
    }
    net_free(s);
    check_free(s);
    free(s->ops);
    free(s->decode_entries);
}

/* ---- steps ------------------------------------------------------------------------------ */

static void sim_each_member(struct sim *s, void (*fn)(struct sim *, struct sim_member *))
{
    for (u32 g = 0; g < s->groups && !s->failed; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 i = 0; i < grp->member_count && !s->failed; i++) {
            if (grp->members[i].exists && grp->members[i].r) fn(s, &grp->members[i]);
        }
    }
}

static void member_tick(struct sim *s, struct sim_member *m)
{
    raft_tick(m->r);
    member_observe(s, m);
    member_ready_loop(s, m);
}

static void sim_step(struct sim *s)
{
    for (u32 ms = 0; ms < SIM_TICK_MS && !s->failed; ms++) {
        s->now_ms++;
        net_deliver_due(s);
        sim_each_member(s, member_sync_check);
    }
    sim_each_member(s, member_tick);
    if (!s->failed) s->healing ? fault_heal_step(s) : fault_step(s);
    if (!s->failed) client_step(s);
    if (!s->failed) check_step(s);
}

/* ---- liveness --------------------------------------------------------------------------- */

static void final_propose(struct sim *s, u32 g)
{
    struct sim_group *grp = &s->group[g];
    struct sim_member *l = sim_leader(s, g);
    if (!l) return;
    u8 buf[64];
    u32 len = client_encode_put(buf, SIM_OP_MAGIC_FINAL, 0, ++s->op_value_next, UINT32_MAX, 0);
    u64 index, term;
    if (raft_propose(l->r, buf, len, &index, &term) != RAFT_OK) return;
    grp->final_member = l->id;
    grp->final_index = index;
    grp->final_term = term;
    sim_trace(s, "g%u final proposal at %llu term %llu on %llu", g, (unsigned long long)index,
              (unsigned long long)term, (unsigned long long)l->id);
    member_ready_loop(s, l);
}

/* True once every group committed (applied somewhere) a final proposal. A proposal whose
 * leader lost its leadership before that is proposed again on the next leader. */
static bool sim_final_done(struct sim *s)
{
    bool all = true;
    for (u32 g = 0; g < s->groups && !s->failed; g++) {
        struct sim_group *grp = &s->group[g];
        const struct sim_group_check *c = &grp->check;
        if (grp->final_done) continue;
        if (grp->final_member && c->applied_max >= grp->final_index) {
            grp->final_done = c->applied[grp->final_index].term == grp->final_term;
            grp->final_member = 0;
        } else if (grp->final_member) {
            struct sim_member *m = sim_member_by_id(s, g, grp->final_member);
            bool leads =
                m && m->r && raft_role(m->r) == RAFT_LEADER && raft_term(m->r) == grp->final_term;
            if (!leads) grp->final_member = 0;
        }
        if (!grp->final_done && grp->final_member == 0) final_propose(s, g);
        all = all && grp->final_done;
    }
    return all;
}

static void sim_liveness_report(struct sim *s)
{
    char groups[128] = "";
    size_t at = 0;
    for (u32 g = 0; g < s->groups; g++) {
        if (s->group[g].final_done) continue;
        int n = snprintf(groups + at, sizeof groups - at, "%s%u", at ? ", " : "", g);
        if (n > 0 && (size_t)n < sizeof groups - at) at += (size_t)n;
    }
    sim_fail(s, "liveness",
             "after every fault healed, group(s) %s did not elect a leader and "
             "commit a proposal within %u steps (%u ms)",
             groups, SIM_HEAL_STEPS_MAX, SIM_HEAL_STEPS_MAX * SIM_TICK_MS);
    for (u32 g = 0; g < s->groups; g++) {
        struct sim_group *grp = &s->group[g];
        for (u32 i = 0; i < grp->member_count; i++) {
            struct sim_member *m = &grp->members[i];
            if (!m->exists || !m->r) continue;
            struct raft_status st;
            raft_status(m->r, &st);
            fprintf(stderr,
                    "  g%u member %llu node %u: %s term %llu leader %llu commit %llu "
                    "applied %llu last %llu, members",
                    g, (unsigned long long)m->id, m->node, raft_role_str(st.role),
                    (unsigned long long)st.term, (unsigned long long)st.leader,
                    (unsigned long long)st.commit, (unsigned long long)st.applied,
                    (unsigned long long)st.last_index);
            for (u32 k = 0; k < st.conf.count; k++) {
                fprintf(stderr, " %llu%s", (unsigned long long)st.conf.members[k].id,
                        st.conf.members[k].role == RAFT_VOTER ? "" : "(learner)");
            }
            fputc('\n', stderr);
        }
    }
}

/* ---- the run ---------------------------------------------------------------------------- */

static void sim_finish_clients(struct sim *s)
{
    for (u32 i = 0; i < s->client_count; i++) {
        struct sim_client *c = &s->clients[i];
        if (!c->busy) continue;
        struct sim_op *op = &s->ops[c->op];
        op->outcome = op->kind == SIM_OP_PUT ? SIM_UNKNOWN : SIM_FAILED;
        c->busy = false;
    }
}

static void sim_result(struct sim *s, struct sim_result *res)
{
    memset(res, 0, sizeof *res);
    res->failed = s->failed;
    res->step = s->step;
    res->nodes = s->nodes;
    res->groups = s->groups;
    res->trace_hash = s->trace_hash;
    res->checker = s->fail_checker;
    snprintf(res->msg, sizeof res->msg, "%s", s->fail_msg);
    u32 ok = 0, unknown = 0;
    for (u32 i = 0; i < s->op_count; i++) {
        ok += s->ops[i].outcome == SIM_OK;
        unknown += s->ops[i].outcome == SIM_UNKNOWN;
    }
    snprintf(res->stats, sizeof res->stats,
             "%u nodes %u groups, %llu ms: ops %u (ok %u, unknown %u), elections %llu, "
             "crashes %llu, partitions %llu, snapshots %llu/%llu installed, conf changes %llu, "
             "msgs %llu (dropped %llu)",
             s->nodes, s->groups, (unsigned long long)s->now_ms, s->op_count, ok, unknown,
             (unsigned long long)s->stat_elections, (unsigned long long)s->stat_crashes,
             (unsigned long long)s->stat_partitions, (unsigned long long)s->stat_snapshots,
             (unsigned long long)s->stat_installs, (unsigned long long)s->stat_conf_changes,
             (unsigned long long)s->net.sent, (unsigned long long)s->net.dropped);
}

int sim_run(const struct sim_options *opt, struct sim_result *res)
{
    struct sim *s = sim_xmalloc(sizeof *s);
    sim_setup(s, opt);
    sim_current = s;
    for (s->step = 0; s->step < opt->steps && !s->failed; s->step++) sim_step(s);
    if (!s->failed) {
        s->healing = true;
        fault_heal_all(s);
        u32 heal = 0;
        while (!s->failed && !sim_final_done(s) && heal < SIM_HEAL_STEPS_MAX) {
            sim_step(s);
            s->step++;
            heal++;
        }
        if (!s->failed && heal == SIM_HEAL_STEPS_MAX) sim_liveness_report(s);
    }
    if (!s->failed) {
        sim_finish_clients(s);
        check_linearizable(s);
    }
    sim_result(s, res);
    sim_current = NULL;
    sim_teardown(s);
    free(s);
    return res->failed ? 1 : 0;
}
