/*
 * test_raft_fuzz.c — a seeded random schedule over the in-test cluster: ticks, proposals,
 * reads, transfers, compactions, partitions, lost, duplicated and reordered messages, nodes
 * that persist late. Every delivery checks election safety (one leader per term) and state
 * machine safety (no two nodes apply different terms at one index); at the end the network
 * heals and every node must catch up (liveness). KEEL_SEED reproduces a run.
 */
#include "raft_cluster.h"

#include "../test_rng.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fuzz {
    u32 drop_pct;
    u32 dup_pct;
    u32 reorder_pct;
    u32 spare; /* 0, or the id of a node that joins and leaves through membership changes */
    /* reads: the index a read must reach (the highest commit anywhere when it was asked) */
    u64 read_ctx[4096];
    u64 read_min[4096];
    u32 read_count;
};

static u64 max_commit(struct cluster *c)
{
    u64 m = 0;
    for (u64 id = 1; id <= c->n; id++) {
        struct raft_status st;
        raft_status(cl_r(c, id), &st);
        if (st.commit > m) m = st.commit;
    }
    return m;
}

static void fuzz_read(struct cluster *c, struct fuzz *f, u64 id)
{
    if (f->read_count >= 4096 || cl_node(c, id)->read_count + 8 >= CL_READS_MAX) return;
    if (cl_node(c, id)->read_failed_count + 8 >= CL_READS_MAX) return;
    u64 ctx = rng_next();
    f->read_ctx[f->read_count] = ctx;
    f->read_min[f->read_count++] = max_commit(c);
    raft_read_index(cl_r(c, id), ctx);
}

/* §6.4: a read's index covers every entry committed before it was asked. */
static void fuzz_check_reads(struct cluster *c, const struct fuzz *f)
{
    for (u64 id = 1; id <= c->n; id++) {
        const struct cl_node *nd = cl_node(c, id);
        for (u32 i = 0; i < nd->read_count; i++) {
            for (u32 j = 0; j < f->read_count; j++) {
                if (f->read_ctx[j] != nd->read_ctx[i]) continue;
                cr_assert_geq(nd->read_index[i], f->read_min[j], "stale read index");
            }
        }
    }
}

static u8 conf_role(struct raft *r, u64 id)
{
    struct raft_status st;
    raft_status(r, &st);
    for (u32 i = 0; i < st.conf.count; i++) {
        if (st.conf.members[i].id == id) return st.conf.members[i].role;
    }
    return 0;
}

static void fuzz_change(struct cluster *c, const struct fuzz *f, u64 l)
{
    if (f->spare == 0 || l == f->spare) return;
    struct raft_conf_change cc = {.id = f->spare};
    switch (conf_role(cl_r(c, l), f->spare)) {
    case 0:
        cc.type = RAFT_CC_ADD_LEARNER;
        break;
    case RAFT_LEARNER:
        cc.type = RAFT_CC_PROMOTE;
        break;
    default:
        cc.type = RAFT_CC_REMOVE;
        break;
    }
    u64 index = 0;
    raft_propose_conf(cl_r(c, l), &cc, &index);
}

static bool fuzz_drop(void *ctx, const struct raft_msg *m)
{
    (void)m;
    const struct fuzz *f = ctx;
    return rng_below(100) < f->drop_pct;
}

static bool fuzz_dup(void *ctx, const struct raft_msg *m)
{
    (void)m;
    const struct fuzz *f = ctx;
    return rng_below(100) < f->dup_pct;
}

static u32 fuzz_pick(void *ctx, u32 queued)
{
    const struct fuzz *f = ctx;
    if (queued > 1 && rng_below(100) < f->reorder_pct) return (u32)rng_below(queued);
    return 0;
}

static void fuzz_compact(struct cluster *c, u64 id)
{
    struct cl_node *nd = cl_node(c, id);
    struct raft_status st;
    raft_status(nd->r, &st);
    if (st.applied == 0 || st.applied <= st.snapshot_index) return;
    /* the snapshot of an index is the same bytes on every node */
    u64 size = 1 + st.applied % 61;
    free(nd->snap_src);
    nd->snap_src = malloc(size);
    for (u64 i = 0; i < size; i++) nd->snap_src[i] = (u8)(st.applied * 31 + i * 7);
    nd->snap_src_len = size;
    struct raft_snapshot_meta meta;
    raft_snapshot_meta_applied(nd->r, &meta);
    raft_compact(nd->r, &meta, rng_below(4));
}

static void fuzz_step(struct cluster *c, struct fuzz *f)
{
    u64 id = 1 + rng_below(c->n);
    u64 l = cl_leader(c);
    u32 what = (u32)rng_below(100);
    if (what < 40) {
        cl_tick(c, id);
    } else if (what < 60 && l != 0) {
        char data[16];
        snprintf(data, sizeof(data), "v%llu", (unsigned long long)rng_below(1000));
        u64 index = 0;
        raft_propose(cl_r(c, l), (const u8 *)data, (u32)strlen(data), &index, NULL);
    } else if (what < 65) {
        fuzz_read(c, f, id);
    } else if (what < 66 && l != 0) {
        fuzz_change(c, f, l);
    } else if (what < 68 && l != 0) {
        raft_transfer_leader(cl_r(c, l), 1 + rng_below(c->n));
    } else if (what < 71) {
        fuzz_compact(c, id);
    } else if (what < 74) {
        cl_partition(c, id, rng_below(2) == 0);
    } else if (what < 78) {
        cl_persist(c, id);
    } else if (what < 80) {
        cl_node(c, id)->manual_persist = rng_below(3) == 0;
        if (!cl_node(c, id)->manual_persist) cl_persist(c, id);
    }
    for (u64 i = 1; i <= c->n; i++) cl_ready(c, i);
    cl_run_steps(c, (u32)rng_below(8));
    fuzz_check_reads(c, f);
}

static void fuzz_settle(struct cluster *c, u32 n, struct fuzz *f)
{
    c->drop = NULL;
    c->dup = NULL;
    c->pick = NULL;
    (void)f;
    n = c->n;
    for (u64 id = 1; id <= n; id++) {
        cl_partition(c, id, false);
        cl_node(c, id)->manual_persist = false;
        cl_persist(c, id);
    }
    cl_run(c);
    u64 l = 0;
    for (u32 t = 0; t < 300; t++) {
        cl_tick_all(c, 1);
        l = cl_leader(c);
        if (l == 0) continue;
        u64 index = 0;
        if (t % 50 == 0) raft_propose(cl_r(c, l), (const u8 *)"end", 3, &index, NULL);
        bool caught_up = true;
        for (u64 id = 1; id <= n; id++) {
            if (conf_role(cl_r(c, l), id) == 0) continue;
            caught_up &= cl_node(c, id)->ap_last == cl_node(c, l)->ap_last;
        }
        struct raft_status st;
        raft_status(cl_r(c, l), &st);
        if (caught_up && st.commit == st.last_index && t > 50) break;
    }
    cr_assert_neq(l, 0, "no leader after healing");
    if (getenv("FUZZ_STATS")) {
        struct raft_status st;
        raft_status(cl_r(c, l), &st);
        for (u32 i = 0; i < st.progress_count; i++) {
            struct raft_status fs;
            raft_status(cl_r(c, st.progress[i].id), &fs);
            fprintf(stderr,
                    "pr %llu state %u match %llu next %llu | role %u term %llu lead %llu "
                    "commit %llu applied %llu last %llu first %llu snap %llu inst %u\n",
                    (unsigned long long)st.progress[i].id, st.progress[i].state,
                    (unsigned long long)st.progress[i].match,
                    (unsigned long long)st.progress[i].next, fs.role, (unsigned long long)fs.term,
                    (unsigned long long)fs.leader, (unsigned long long)fs.commit,
                    (unsigned long long)fs.applied, (unsigned long long)fs.last_index,
                    (unsigned long long)fs.first_index, (unsigned long long)fs.snapshot_index,
                    cl_node(c, st.progress[i].id)->installs);
        }
        fprintf(stderr, "leader last %llu snap %llu\n", (unsigned long long)st.last_index,
                (unsigned long long)st.snapshot_index);
    }
    for (u64 id = 1; id <= n; id++) {
        if (conf_role(cl_r(c, l), id) == 0) continue;
        cr_assert_eq(cl_node(c, id)->ap_last, cl_node(c, l)->ap_last,
                     "node %llu applied %llu, leader %llu applied %llu", (unsigned long long)id,
                     (unsigned long long)cl_node(c, id)->ap_last, (unsigned long long)l,
                     (unsigned long long)cl_node(c, l)->ap_last);
    }
}

static void fuzz_run(u32 n, u32 steps, struct fuzz *f)
{
    struct cluster c;
    cl_init(&c, n, 0);
    f->read_count = 0;
    if (f->spare) cl_add_empty(&c, f->spare = n + 1);
    c.drop = fuzz_drop;
    c.dup = fuzz_dup;
    c.pick = fuzz_pick;
    c.drop_ctx = f;
    for (u32 s = 0; s < steps; s++) fuzz_step(&c, f);
    fuzz_settle(&c, n, f);
    cl_check(&c);
    fuzz_check_reads(&c, f);
    if (getenv("FUZZ_STATS")) {
        u32 terms = 0, installs = 0;
        for (u32 t = 0; t < 1024; t++) terms += c.leaders[t] != 0;
        for (u64 id = 1; id <= n; id++) installs += cl_node(&c, id)->installs;
        fprintf(stderr, "leaders=%u installs=%u applied=%llu reads=%u snaps=%llu spare=%u\n", terms,
                installs, (unsigned long long)cl_node(&c, 1)->ap_last, cl_node(&c, 1)->read_count,
                (unsigned long long)c.sent[RAFT_MSG_SNAP],
                f->spare ? conf_role(cl_r(&c, 1), f->spare) : 9);
    }
    cl_free(&c);
}

static void tune_small(struct raft_config *cfg)
{
    cfg->snap_chunk_bytes = 8;
    cfg->snap_chunks_inflight = 2;
    cfg->append_bytes_max = 8;
    cfg->inflight_msgs_max = 3;
}

/* Reference: §5.2, §5.3, §5.4 (election safety, log matching, state machine safety) */
Test(raft_fuzz, three_nodes_with_lossy_network)
{
    rng_seed("raft_fuzz.three_nodes_with_lossy_network");
    cl_tune = tune_small;
    static struct fuzz f = {.drop_pct = 10, .dup_pct = 5, .reorder_pct = 20};
    for (int run = 0; run < 20; run++) fuzz_run(3, 1500, &f);
}

static void tune_small_mixed_apply(struct raft_config *cfg)
{
    tune_small(cfg);
    cfg->apply_unpersisted = cfg->id % 2 == 1; /* odd nodes apply before their own persist */
}

/* Reference: §5.2, §5.3, §5.4, §6.2, §9.6 */
Test(raft_fuzz, five_nodes_with_lossy_network)
{
    rng_seed("raft_fuzz.five_nodes_with_lossy_network");
    cl_tune = tune_small_mixed_apply;
    static struct fuzz f = {.drop_pct = 15, .dup_pct = 5, .reorder_pct = 30};
    for (int run = 0; run < 10; run++) fuzz_run(5, 2000, &f);
}

/* Reference: §4.1, §5 (a member joins by snapshot, is promoted and removed, under faults) */
Test(raft_fuzz, membership_changes_with_lossy_network)
{
    rng_seed("raft_fuzz.membership_changes_with_lossy_network");
    cl_tune = tune_small;
    static struct fuzz f = {.drop_pct = 10, .dup_pct = 5, .reorder_pct = 20, .spare = 1};
    for (int run = 0; run < 15; run++) fuzz_run(3, 2000, &f);
}
