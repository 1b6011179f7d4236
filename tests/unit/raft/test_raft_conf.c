/*
 * test_raft_conf.c — membership changes: one at a time, learners that neither vote nor count,
 * add + promote + remove, removing the leader, the conf change encoding.
 */
#include "raft_cluster.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

static int change(struct cluster *c, u64 leader, u8 type, u64 id, u64 *index)
{
    struct raft_conf_change cc = {.type = type, .id = id};
    memcpy(cc.context, "name=x", 6);
    cc.context_len = 6;
    return raft_propose_conf(cl_r(c, leader), &cc, index);
}

static u8 role_of(struct raft *r, u64 id)
{
    struct raft_status st;
    raft_status(r, &st);
    for (u32 i = 0; i < st.conf.count; i++) {
        if (st.conf.members[i].id == id) return st.conf.members[i].role;
    }
    return 0;
}

/* Reference: §4.1 */
Test(raft_conf, encode_decode_round_trip_and_corrupt_bytes)
{
    struct raft_conf_change cc = {.type = RAFT_CC_PROMOTE, .id = 0x0102030405060708ull};
    cc.context_len = 3;
    memcpy(cc.context, "abc", 3);
    u8 buf[300];
    size_t n = raft_conf_change_encode(&cc, buf, sizeof(buf));
    cr_assert_eq(n, 17);
    cr_assert_eq(buf[0], 1);
    cr_assert_eq(buf[2], 0x08, "little-endian id");
    struct raft_conf_change out;
    cr_assert_eq(raft_conf_change_decode(buf, n, &out), RAFT_OK);
    cr_assert_eq(out.type, cc.type);
    cr_assert_eq(out.id, cc.id);
    cr_assert_eq(out.context_len, 3);
    cr_assert_eq(memcmp(out.context, "abc", 3), 0);
    cr_assert_eq(raft_conf_change_encode(&cc, buf, n - 1), 0);
    for (size_t len = 0; len < n; len++) {
        cr_assert_eq(raft_conf_change_decode(buf, len, &out), RAFT_ECORRUPT);
    }
    buf[1] = 9;
    cr_assert_eq(raft_conf_change_decode(buf, n, &out), RAFT_ECORRUPT);
}

/* Reference: §4.1 */
Test(raft_conf, one_change_at_a_time_and_invalid_changes_are_refused)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 idx = 0;
    cr_assert_eq(change(&c, 2, RAFT_CC_ADD_LEARNER, 4, &idx), RAFT_ENOT_LEADER);
    cr_assert_eq(change(&c, 1, RAFT_CC_REMOVE, 7, &idx), RAFT_EINVALID);
    cr_assert_eq(change(&c, 1, RAFT_CC_PROMOTE, 2, &idx), RAFT_EINVALID);
    cr_assert_eq(change(&c, 1, RAFT_CC_ADD_VOTER, 2, &idx), RAFT_EINVALID);
    cl_partition(&c, 1, true);
    cr_assert_eq(change(&c, 1, RAFT_CC_ADD_LEARNER, 4, &idx), RAFT_OK);
    cr_assert_eq(change(&c, 1, RAFT_CC_ADD_LEARNER, 5, &idx), RAFT_ECONF_PENDING);
    cl_partition(&c, 1, false);
    cl_tick_all(&c, 2);
    cr_assert_eq(role_of(cl_r(&c, 1), 4), RAFT_LEARNER);
    cr_assert_eq(role_of(cl_r(&c, 2), 4), RAFT_LEARNER, "applied on followers too");
    cr_assert_eq(change(&c, 1, RAFT_CC_ADD_LEARNER, 5, &idx), RAFT_OK);
    cl_free(&c);
}

/* Reference: §4.1 */
Test(raft_conf, no_change_before_an_entry_of_the_term_commits)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    for (u64 id = 1; id <= 3; id++) cl_node(&c, id)->manual_persist = true;
    raft_campaign(cl_r(&c, 1));
    cl_run(&c);
    /* pre-votes, the candidate's own vote, granted votes: each waits for a persist */
    for (u32 round = 0; round < 6 && raft_role(cl_r(&c, 1)) != RAFT_LEADER; round++) {
        for (u64 id = 1; id <= 3; id++) cl_persist(&c, id);
        cl_run(&c);
    }
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_LEADER);
    u64 idx = 0;
    cr_assert_eq(change(&c, 1, RAFT_CC_ADD_LEARNER, 4, &idx), RAFT_ECONF_PENDING,
                 "the no-op of this term is not committed yet");
    cl_persist(&c, 2);
    cl_persist(&c, 3);
    cl_run(&c);
    cr_assert_eq(change(&c, 1, RAFT_CC_ADD_LEARNER, 4, &idx), RAFT_OK);
    cl_free(&c);
}

static void join_learner(struct cluster *c, u64 leader, u64 id)
{
    struct cl_node *ld = cl_node(c, leader);
    free(ld->snap_src);
    ld->snap_src = malloc(8);
    memcpy(ld->snap_src, "snapshot", 8);
    ld->snap_src_len = 8;
    struct raft_snapshot_meta meta;
    raft_snapshot_meta_applied(ld->r, &meta);
    raft_compact(ld->r, &meta, 100);
    cl_add_empty(c, id);
    u64 idx = 0;
    cr_assert_eq(change(c, leader, RAFT_CC_ADD_LEARNER, id, &idx), RAFT_OK);
    cl_run(c);
    cl_tick_all(c, 3);
}

/* Reference: §4.1 (thesis §4.2.1: new servers join as non-voting members) */
Test(raft_conf, learner_is_added_promoted_and_removed)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    join_learner(&c, 1, 4);
    struct cl_node *n4 = cl_node(&c, 4);
    cr_assert_eq(n4->installs, 1, "the joining member learns the configuration by snapshot");
    cr_assert_eq(role_of(n4->r, 4), RAFT_LEARNER);
    cr_assert_eq(role_of(n4->r, 1), RAFT_VOTER);
    u64 last = cl_propose(&c, 1, "to-learner");
    cl_run(&c);
    cr_assert_eq(n4->ap_last, last, "a learner receives the log");
    /* a learner never campaigns */
    for (u32 t = 0; t < 50; t++) cl_tick(&c, 4);
    cl_run(&c);
    cr_assert_eq(raft_role(n4->r), RAFT_FOLLOWER);
    u64 idx = 0;
    cr_assert_eq(change(&c, 1, RAFT_CC_PROMOTE, 4, &idx), RAFT_OK);
    cl_run(&c);
    cl_tick_all(&c, 2);
    cr_assert_eq(role_of(cl_r(&c, 1), 4), RAFT_VOTER);
    cr_assert_eq(role_of(n4->r, 4), RAFT_VOTER);
    /* 4 voters: quorum 3; with 2 and 3 away, 1 and 4 cannot commit */
    cl_partition(&c, 2, true);
    cl_partition(&c, 3, true);
    u64 stuck = cl_propose(&c, 1, "needs-3");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_lt(st.commit, stuck, "4 voters need 3 matches");
    cl_partition(&c, 2, false);
    cl_tick_all(&c, 2);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, stuck);
    cl_partition(&c, 3, false);
    cl_tick_all(&c, 2);
    cr_assert_eq(change(&c, 1, RAFT_CC_REMOVE, 4, &idx), RAFT_OK);
    cl_run(&c);
    cl_tick_all(&c, 2);
    cr_assert_eq(role_of(cl_r(&c, 1), 4), 0);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.progress_count, 3);
    cl_free(&c);
}

/* Reference: §4.1 (learners do not count toward commitment) */
Test(raft_conf, learners_do_not_count_in_a_quorum)
{
    struct cluster c;
    cl_init(&c, 2, 1); /* voters 1 and 2, learner 3 */
    cl_elect(&c, 1);
    cl_partition(&c, 2, true);
    u64 idx = cl_propose(&c, 1, "x");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_lt(st.commit, idx, "voter 1 and learner 3 are not a quorum of 2 voters");
    cr_assert_eq(cl_last(&c, 3), idx, "the learner has the entry");
    cr_assert_neq(raft_role(cl_r(&c, 3)), RAFT_LEADER);
    raft_campaign(cl_r(&c, 3));
    cl_run(&c);
    cr_assert_eq(raft_role(cl_r(&c, 3)), RAFT_FOLLOWER, "a learner never campaigns");
    cl_free(&c);
}

/* Reference: §4.1 (thesis §4.2.2: removing the current leader) */
Test(raft_conf, removed_leader_steps_down_once_the_change_is_applied)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 idx = 0;
    cr_assert_eq(change(&c, 1, RAFT_CC_REMOVE, 1, &idx), RAFT_OK);
    cl_run(&c);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_FOLLOWER);
    cr_assert_eq(role_of(cl_r(&c, 1), 1), 0);
    cl_tick_all(&c, 1); /* 2 and 3 apply the change with the next commit index */
    u64 l = 0;
    for (u32 t = 0; t < 100 && l == 0; t++) {
        cl_tick_all(&c, 1);
        l = cl_leader(&c);
    }
    cr_assert(l == 2 || l == 3, "a remaining member leads");
    cr_assert_eq(role_of(cl_r(&c, l), 1), 0);
    u64 e = cl_propose(&c, l, "after");
    cl_run(&c);
    cr_assert_eq(cl_node(&c, 2)->ap_last, e);
    cr_assert_eq(cl_node(&c, 3)->ap_last, e);
    for (u32 t = 0; t < 50; t++) cl_tick(&c, 1);
    cl_run(&c);
    cr_assert_eq(cl_leader(&c), l, "the removed member does not disrupt");
    cl_free(&c);
}

/* Reference: §4.1 */
Test(raft_conf, removing_the_last_voter_is_refused)
{
    struct cluster c;
    cl_init(&c, 1, 1);
    cl_elect(&c, 1);
    u64 idx = 0;
    cr_assert_eq(change(&c, 1, RAFT_CC_REMOVE, 1, &idx), RAFT_EINVALID);
    cr_assert_eq(change(&c, 1, RAFT_CC_REMOVE, 2, &idx), RAFT_OK);
    cl_run(&c);
    cr_assert_eq(role_of(cl_r(&c, 1), 2), 0);
    cl_free(&c);
}

/* Reference: §4.1, §5 (a joining member's configuration comes from a snapshot) */
Test(raft_conf, joining_member_waits_for_a_snapshot_and_promotion_waits_for_catch_up)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_propose(&c, 1, "before");
    cl_run(&c);
    cl_add_empty(&c, 4);
    u64 idx = 0;
    cr_assert_eq(change(&c, 1, RAFT_CC_ADD_LEARNER, 4, &idx), RAFT_OK);
    cl_run(&c);
    cl_tick_all(&c, 3);
    struct cl_node *n4 = cl_node(&c, 4);
    cr_assert_eq(cl_last(&c, 4), 0, "no entry without the configuration at index 0");
    cr_assert_eq(n4->installs, 0);
    cr_assert_eq(change(&c, 1, RAFT_CC_PROMOTE, 4, &idx), RAFT_ECONF_PENDING,
                 "a learner that has not caught up is not promoted");
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert(st.snapshot_wanted, "the leader's caller is told to take a snapshot");
    struct cl_node *ld = cl_node(&c, 1);
    ld->snap_src = malloc(4);
    memcpy(ld->snap_src, "snap", 4);
    ld->snap_src_len = 4;
    struct raft_snapshot_meta meta;
    raft_snapshot_meta_applied(ld->r, &meta);
    raft_compact(ld->r, &meta, 1000);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_not(st.snapshot_wanted);
    cl_run(&c);
    cr_assert_eq(n4->installs, 1, "raft_compact starts the snapshot at once");
    cl_tick_all(&c, 3);
    cr_assert_eq(role_of(n4->r, 1), RAFT_VOTER, "the snapshot brought the whole configuration");
    cr_assert_eq(n4->ap_last, cl_node(&c, 1)->ap_last);
    cr_assert_eq(change(&c, 1, RAFT_CC_PROMOTE, 4, &idx), RAFT_OK);
    cl_run(&c);
    cl_tick_all(&c, 2);
    cr_assert_eq(role_of(n4->r, 4), RAFT_VOTER);
    cl_free(&c);
}
