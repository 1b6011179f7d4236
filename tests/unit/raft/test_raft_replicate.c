/*
 * test_raft_replicate.c — replication and commitment: log conflict repair, the commit rule for
 * entries of earlier terms, commit waiting for the leader's own persistence, flow control,
 * and allocation failures.
 */
#include "raft_cluster.h"

#include <criterion/criterion.h>

#include <string.h>

static u64 tick_pair_until_leader(struct cluster *c, u64 a, u64 b)
{
    for (u32 t = 0; t < 200; t++) {
        u64 l = cl_leader(c);
        if ((l == a || l == b) && raft_role(cl_r(c, l)) == RAFT_LEADER) return l;
        cl_tick(c, a);
        cl_tick(c, b);
        cl_run(c);
    }
    cr_assert_fail("no leader among %llu and %llu", (unsigned long long)a, (unsigned long long)b);
    return 0;
}

/* Reference: §5.3 */
Test(raft_replicate, followers_apply_the_leaders_entries_in_order)
{
    struct cluster c;
    cl_init(&c, 5, 0);
    cl_elect(&c, 2);
    u64 last = 0;
    for (int i = 0; i < 20; i++) last = cl_propose(&c, 2, "entry");
    cl_run(&c);
    for (u64 id = 1; id <= 5; id++) {
        cr_assert_eq(cl_node(&c, id)->ap_last, last);
        struct raft_status st;
        raft_status(cl_r(&c, id), &st);
        cr_assert_eq(st.commit, last);
    }
    cl_free(&c);
}

/* Reference: §5.3 */
Test(raft_replicate, conflicting_follower_suffix_is_truncated_and_repaired)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 committed = cl_node(&c, 1)->ap_last;
    cl_partition(&c, 1, true);
    for (int i = 0; i < 5; i++) cl_propose(&c, 1, "lost");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.last_index, committed + 5);
    cr_assert_eq(st.commit, committed);
    u64 l = tick_pair_until_leader(&c, 2, 3);
    u64 kept = 0;
    for (int i = 0; i < 3; i++) kept = cl_propose(&c, l, "kept");
    cl_run(&c);
    cl_partition(&c, 1, false);
    cl_tick_all(&c, 3);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.role, RAFT_FOLLOWER);
    cr_assert_eq(st.last_index, kept, "the 5 uncommitted entries are gone");
    cr_assert_eq(st.commit, kept);
    for (u64 i = committed + 1; i <= kept; i++) {
        cr_assert_eq(raft_entry_at(cl_r(&c, 1), i)->term, raft_entry_at(cl_r(&c, l), i)->term);
        cr_assert_eq(cl_node(&c, 1)->st_term[i], raft_term(cl_r(&c, l)), "storage truncated");
    }
    cr_assert_eq(cl_node(&c, 1)->ap_last, kept);
    cr_assert_eq(cl_node(&c, 1)->idle_readies, 1, "one ready truncated the stored log");
    cl_free(&c);
}

/* Reference: §5.3 */
Test(raft_replicate, lagging_follower_catches_up_over_many_terms)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    for (int round = 0; round < 3; round++) {
        u64 l = cl_leader(&c);
        for (int i = 0; i < 4; i++) cl_propose(&c, l, "t");
        cl_run(&c);
        u64 other = l == 1 ? 2 : 1;
        cr_assert_eq(raft_transfer_leader(cl_r(&c, l), other), RAFT_OK);
        cl_run(&c);
        cr_assert_eq(cl_leader(&c), other);
    }
    cl_partition(&c, 3, false);
    cl_tick_all(&c, 5);
    u64 l = cl_leader(&c);
    cr_assert_eq(cl_node(&c, 3)->ap_last, cl_node(&c, l)->ap_last);
    cl_free(&c);
}

static u64 g_block_index;
static u64 g_block_from;

/* Drops g_block_from's acknowledgements of g_block_index and later. */
static bool drop_ack_from(void *ctx, const struct raft_msg *m)
{
    (void)ctx;
    return m->type == RAFT_MSG_APP_RESP && m->from == g_block_from && !m->reject &&
           m->index >= g_block_index;
}

static bool drop_app_from(void *ctx, const struct raft_msg *m)
{
    (void)ctx;
    return m->type == RAFT_MSG_APP && m->from == g_block_from;
}

/* Raft paper figure 8: an entry of an earlier term stored on a majority is not committed by
 * counting; it commits once an entry of the leader's term does.
 * Reference: §5.4.2 */
static void tune_one_entry_per_app(struct raft_config *cfg)
{
    cfg->append_bytes_max = 1;
}

Test(raft_replicate, entries_of_earlier_terms_are_not_committed_by_counting)
{
    cl_tune = tune_one_entry_per_app;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 base = cl_node(&c, 1)->ap_last;
    cl_partition(&c, 1, true);
    u64 x = cl_propose(&c, 1, "x"); /* term 2, only on node 1 */
    cl_run(&c);
    cr_assert_eq(x, base + 1);
    c.drop = drop_app_from; /* whoever wins among 2 and 3 never replicates */
    g_block_from = 2;
    u64 l = 0;
    for (u32 t = 0; t < 200 && l == 0; t++) {
        cl_tick(&c, 2);
        cl_tick(&c, 3);
        g_block_from = raft_role(cl_r(&c, 3)) >= RAFT_CANDIDATE ? 3 : 2;
        cl_run(&c);
        if (raft_role(cl_r(&c, 2)) == RAFT_LEADER) l = 2;
        if (raft_role(cl_r(&c, 3)) == RAFT_LEADER) l = 3;
    }
    cr_assert_neq(l, 0);
    u64 o = l == 2 ? 3 : 2;
    cr_assert_eq(cl_last(&c, o), base, "the new leader's no-op did not reach %llu",
                 (unsigned long long)o);
    /* Node 1 comes back, l goes away; node 1 wins a later term with x in its log. */
    for (u32 t = 0; t < 25; t++) cl_tick(&c, 1); /* check-quorum: 1 steps down alone */
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_FOLLOWER);
    cl_partition(&c, l, true);
    cl_partition(&c, 1, false);
    for (u32 i = 1; i <= 3; i++) cl_cut(&c, l, i, true);
    g_block_from = o;
    g_block_index = x + 1; /* the leader never learns that o holds its no-op */
    c.drop = drop_ack_from;
    for (u32 t = 0; t < 300 && raft_role(cl_r(&c, 1)) != RAFT_LEADER; t++) {
        cl_tick(&c, 1);
        cl_tick(&c, o);
        cl_run(&c);
    }
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_LEADER);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.progress_count, 3);
    for (u32 i = 0; i < 3; i++) {
        if (st.progress[i].id == o) cr_assert_eq(st.progress[i].match, x, "x is on 1 and o");
    }
    cr_assert_eq(st.commit, base, "x is of an earlier term: not committed by counting");
    c.drop = NULL;
    cl_tick_all(&c, 2);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, x + 1, "x commits with the leader's no-op");
    cl_free(&c);
}

/* Reference: §5.4.2 */
Test(raft_replicate, commit_waits_for_the_leaders_own_persistence)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    cl_node(&c, 1)->manual_persist = true;
    u64 idx = cl_propose(&c, 1, "p");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, idx - 1, "node 2 matched, but the leader's copy is not durable");
    cr_assert_eq(st.persisted, idx - 1);
    cl_persist(&c, 1);
    cl_run(&c);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, idx);
    cr_assert_eq(st.applied, idx);
    cl_free(&c);
}

/* Reference: §5.3 */
Test(raft_replicate, committed_entries_are_applied_only_once_persisted)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_node(&c, 2)->manual_persist = true;
    u64 idx = cl_propose(&c, 1, "q");
    cl_run(&c);
    cl_tick_all(&c, 1); /* the heartbeat tells 2 the commit index */
    struct raft_status st;
    raft_status(cl_r(&c, 2), &st);
    cr_assert_eq(st.commit, idx);
    cr_assert_lt(st.applied, idx, "not applied before it is durable on node 2");
    cl_persist(&c, 2);
    cl_run(&c);
    raft_status(cl_r(&c, 2), &st);
    cr_assert_eq(st.applied, idx);
    cl_free(&c);
}

static void tune_window(struct raft_config *cfg)
{
    cfg->inflight_msgs_max = 4;
    cfg->append_bytes_max = 16;
    cfg->inflight_bytes_max = 1u << 20;
}

static bool drop_to_2(void *ctx, const struct raft_msg *m)
{
    (void)ctx;
    return m->to == 2;
}

/* Reference: §10.2 (thesis: pipelining and flow control) */
Test(raft_replicate, inflight_message_window_caps_unacknowledged_appends)
{
    cl_tune = tune_window;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_propose(&c, 1, "warm");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.progress[1].state, RAFT_PROGRESS_REPLICATE);
    c.drop = drop_to_2;
    u64 before = c.sent[RAFT_MSG_APP];
    u64 to3_before = 0;
    (void)to3_before;
    u64 last = 0;
    for (int i = 0; i < 40; i++) last = cl_propose(&c, 1, "0123456789abcdef");
    /* count the APPs queued to 2 before delivery */
    cl_ready(&c, 1);
    u32 to2 = cl_count(&c, RAFT_MSG_APP, 2);
    cr_assert_eq(to2, 4, "4 messages in flight at most, got %u", to2);
    cl_run(&c);
    cr_assert_gt(c.sent[RAFT_MSG_APP], before);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, last, "1 and 3 commit without 2");
    c.drop = NULL;
    cl_tick_all(&c, 10);
    cr_assert_eq(cl_node(&c, 2)->ap_last, last, "2 catches up once messages flow again");
    cl_free(&c);
}

static void tune_bytes(struct raft_config *cfg)
{
    cfg->inflight_msgs_max = 64;
    cfg->append_bytes_max = 16;
    cfg->inflight_bytes_max = 48;
}

/* Reference: §10.2 */
Test(raft_replicate, inflight_byte_window_caps_unacknowledged_bytes)
{
    cl_tune = tune_bytes;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_propose(&c, 1, "warm");
    cl_run(&c);
    c.drop = drop_to_2;
    for (int i = 0; i < 40; i++) cl_propose(&c, 1, "0123456789abcdef");
    cl_ready(&c, 1);
    u32 to2 = cl_count(&c, RAFT_MSG_APP, 2);
    cr_assert_eq(to2, 3, "48 bytes = 3 messages of 16 bytes, got %u", to2);
    for (u32 i = 0; i < c.q_count; i++) {
        if (c.q[i].m.type == RAFT_MSG_APP) cr_assert_eq(c.q[i].m.entry_count, 1);
    }
    cl_run(&c);
    c.drop = NULL;
    cl_tick_all(&c, 20);
    cr_assert_eq(cl_node(&c, 2)->ap_last, cl_node(&c, 1)->ap_last);
    cl_free(&c);
}

static void tune_uncommitted(struct raft_config *cfg)
{
    cfg->uncommitted_bytes_max = 10;
    cfg->entry_bytes_max = 8;
}

/* Reference: §10.2 (limits on uncommitted proposals) */
Test(raft_replicate, proposals_beyond_limits_are_refused)
{
    cl_tune = tune_uncommitted;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 1, true);
    u64 idx = 0;
    cr_assert_eq(raft_propose(cl_r(&c, 1), (const u8 *)"123456789", 9, &idx, NULL), RAFT_EINVALID);
    cr_assert_eq(raft_propose(cl_r(&c, 1), (const u8 *)"123456", 6, &idx, NULL), RAFT_OK);
    cr_assert_eq(raft_propose(cl_r(&c, 1), (const u8 *)"123456", 6, &idx, NULL), RAFT_EBUSY);
    cr_assert_eq(raft_propose(cl_r(&c, 2), (const u8 *)"1", 1, &idx, NULL), RAFT_ENOT_LEADER);
    cl_partition(&c, 1, false);
    cl_tick_all(&c, 2);
    cr_assert_eq(raft_propose(cl_r(&c, 1), (const u8 *)"123456", 6, &idx, NULL), RAFT_OK,
                 "committed bytes no longer count");
    cl_free(&c);
}

/* Reference: §5.3 (state unchanged on allocation failure) */
Test(raft_replicate, enomem_leaves_state_unchanged)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    struct cl_node *nd = cl_node(&c, 1);
    for (i64 k = 0; k < 4; k++) {
        struct raft_status a;
        raft_status(nd->r, &a);
        nd->alloc.fail_after = k;
        u8 big[300];
        memset(big, 7, sizeof(big));
        u64 idx = 0;
        /* enough entries to need a bigger log array */
        int rc = RAFT_OK;
        for (int i = 0; i < 200 && rc == RAFT_OK; i++) {
            rc = raft_propose(nd->r, big, sizeof(big), &idx, NULL);
            if (rc == RAFT_OK) raft_status(nd->r, &a);
        }
        cr_assert_eq(rc, RAFT_ENOMEM);
        struct raft_status b;
        raft_status(nd->r, &b);
        cr_assert_eq(b.last_index, a.last_index);
        cr_assert_eq(b.commit, a.commit);
        cr_assert_eq(b.term, a.term);
        nd->alloc.fail_after = -1;
        cl_run(&c);
    }
    struct raft_config cfg;
    cl_config(&cfg, 7);
    struct cl_alloc fail = {.fail_after = 0};
    cfg.alloc_ctx = &fail;
    struct raft_conf boot = {.count = 1, .members = {{.id = 7, .role = RAFT_VOTER}}};
    struct raft_restore rs = {.bootstrap = &boot};
    struct raft *r = NULL;
    cr_assert_eq(raft_create(&cfg, &rs, &r), RAFT_ENOMEM);
    cr_assert_null(r);
    for (i64 k = 1; k < 8; k++) {
        fail.fail_after = k;
        int rc = raft_create(&cfg, &rs, &r);
        cr_assert(rc == RAFT_OK || rc == RAFT_ENOMEM);
        if (rc == RAFT_OK) raft_destroy(r);
        cr_assert_eq(fail.live_bytes, 0, "no leak after a failed create (k=%lld)", (long long)k);
    }
    cl_free(&c);
}

/* Reference: §5.4.2 (apply_unpersisted: a committed entry is durable on a quorum) */
Test(raft_replicate, commit_applies_before_the_leaders_own_fdatasync_only_with_apply_unpersisted)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_node(&c, 1)->manual_persist = true;
    u64 idx = cl_propose(&c, 1, "slow-disk");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, idx, "both followers acknowledged");
    cr_assert_lt(st.persisted, idx);
    cr_assert_lt(st.applied, idx, "by default the leader applies only what it persisted");
    cl_persist(&c, 1);
    cl_run(&c);
    cl_free(&c);
}

static void tune_apply_unpersisted(struct raft_config *cfg)
{
    cfg->apply_unpersisted = true;
}

/* Reference: §5.4.2 */
Test(raft_replicate, apply_unpersisted_hands_out_entries_up_to_commit)
{
    cl_tune = tune_apply_unpersisted;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_node(&c, 1)->manual_persist = true;
    u64 idx = cl_propose(&c, 1, "slow-disk");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, idx);
    cr_assert_lt(st.persisted, idx, "the leader's own fdatasync has not finished");
    cr_assert_eq(st.applied, idx, "applied once the followers made it committed");
    cr_assert_eq(cl_node(&c, 1)->ap_last, idx);
    /* commit still counts the leader only through raft_persisted */
    cl_partition(&c, 2, true);
    cl_partition(&c, 3, true);
    u64 idx2 = cl_propose(&c, 1, "alone");
    cl_run(&c);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_lt(st.commit, idx2);
    cr_assert_lt(st.applied, idx2);
    cl_free(&c);
}
