/*
 * test_raft_election.c — elections: a single node, three nodes, a split vote, stale terms,
 * pre-vote against a partitioned node's term inflation, check-quorum, leadership transfer.
 */
#include "raft_cluster.h"

#include <criterion/criterion.h>

#include <string.h>

static void tick_until_leader(struct cluster *c, u32 max_ticks)
{
    for (u32 t = 0; t < max_ticks && cl_leader(c) == 0; t++) cl_tick_all(c, 1);
    cr_assert_neq(cl_leader(c), 0, "no leader after %u ticks", max_ticks);
}

/* Reference: §5.2 */
Test(raft_election, single_node_elects_itself_and_commits)
{
    struct cluster c;
    cl_init(&c, 1, 0);
    cl_run(&c);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_FOLLOWER);
    tick_until_leader(&c, 30);
    cr_assert_eq(cl_leader(&c), 1);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.term, 1, "the bootstrap configuration is at index 0, term 0");
    cr_assert_eq(st.commit, st.last_index, "the no-op commits once persisted");
    u64 idx = cl_propose(&c, 1, "hello");
    cl_run(&c);
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.commit, idx);
    cr_assert_eq(st.applied, idx);
    cr_assert_eq(cl_node(&c, 1)->ap_len[idx], 5);
    cl_free(&c);
}

/* Reference: §5.2 */
Test(raft_election, three_nodes_elect_one_leader_by_timeout)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    tick_until_leader(&c, 60);
    u64 l = cl_leader(&c);
    u64 term = raft_term(cl_r(&c, l));
    for (u64 id = 1; id <= 3; id++) {
        cr_assert_eq(raft_term(cl_r(&c, id)), term);
        cr_assert_eq(raft_leader(cl_r(&c, id)), l, "node %llu follows %llu", (unsigned long long)id,
                     (unsigned long long)l);
    }
    u64 idx = cl_propose(&c, l, "x");
    cl_run(&c);
    for (u64 id = 1; id <= 3; id++) cr_assert_eq(cl_node(&c, id)->ap_last, idx);
    cl_free(&c);
}

/* Reference: §5.2 */
Test(raft_election, campaign_wins_with_a_quorum_and_the_vote_is_durable_first)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_node(&c, 1)->manual_persist = true;
    raft_campaign(cl_r(&c, 1));
    cl_run(&c);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_CANDIDATE,
                 "the VOTE requests wait for the candidate's own vote to be durable");
    cl_persist(&c, 1);
    cl_run(&c);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_LEADER);
    cl_free(&c);
}

/* Reference: §5.2 */
Test(raft_election, split_vote_is_resolved_by_randomized_timeouts)
{
    struct cluster c;
    cl_init(&c, 4, 0);
    cl_run(&c);
    cl_cut(&c, 1, 4, true);
    cl_cut(&c, 2, 3, true);
    raft_campaign(cl_r(&c, 1));
    raft_campaign(cl_r(&c, 2));
    cl_run(&c);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_CANDIDATE);
    cr_assert_eq(raft_role(cl_r(&c, 2)), RAFT_CANDIDATE);
    cr_assert_eq(cl_leader(&c), 0, "each candidate has 2 of 4 votes");
    u64 split_term = raft_term(cl_r(&c, 1));
    cl_cut(&c, 1, 4, false);
    cl_cut(&c, 2, 3, false);
    tick_until_leader(&c, 100);
    cr_assert_gt(raft_term(cl_r(&c, cl_leader(&c))), split_term);
    cl_free(&c);
}

/* Reference: §5.1 */
Test(raft_election, stale_term_messages_are_rejected_and_old_leader_steps_down)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 old_term = raft_term(cl_r(&c, 1));
    cl_partition(&c, 1, true);
    for (u32 t = 0; t < 100 && (cl_leader(&c) == 1 || cl_leader(&c) == 0); t++) {
        cl_tick(&c, 2);
        cl_tick(&c, 3);
        cl_run(&c);
    }
    u64 l = cl_leader(&c);
    cr_assert(l == 2 || l == 3);
    cr_assert_gt(raft_term(cl_r(&c, l)), old_term);
    /* A stale APP straight to the new leader: dropped, answered with the newer term. */
    struct raft_msg m = {0};
    m.type = RAFT_MSG_APP;
    m.from = 1;
    m.to = l;
    m.term = old_term;
    m.index = 1;
    m.log_term = 1;
    u64 before = raft_term(cl_r(&c, l));
    raft_step(cl_r(&c, l), &m);
    cr_assert_eq(raft_term(cl_r(&c, l)), before);
    cr_assert_eq(raft_role(cl_r(&c, l)), RAFT_LEADER);
    cl_clear_queue(&c);
    cl_ready(&c, l);
    bool answered = false;
    for (u32 i = 0; i < c.q_count; i++) {
        if (c.q[i].m.type == RAFT_MSG_APP_RESP && c.q[i].m.to == 1) {
            answered = c.q[i].m.term == before;
        }
    }
    cr_assert(answered, "the stale leader is told the newer term");
    cl_clear_queue(&c);
    cl_partition(&c, 1, false);
    cl_tick_all(&c, 3);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_FOLLOWER);
    cr_assert_eq(raft_term(cl_r(&c, 1)), raft_term(cl_r(&c, l)));
    cl_free(&c);
}

/* Reference: §9.6 */
Test(raft_election, prevote_keeps_a_partitioned_node_from_inflating_its_term)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 term = raft_term(cl_r(&c, 1));
    cl_partition(&c, 3, true);
    cl_tick_all(&c, 200);
    cr_assert_eq(raft_term(cl_r(&c, 3)), term, "pre-vote never bumps the term");
    cr_assert_neq(raft_role(cl_r(&c, 3)), RAFT_LEADER);
    cl_partition(&c, 3, false);
    cl_tick_all(&c, 5);
    cr_assert_eq(cl_leader(&c), 1, "the rejoining node does not disrupt the leader");
    cr_assert_eq(raft_term(cl_r(&c, 1)), term);
    cr_assert_eq(raft_leader(cl_r(&c, 3)), 1);
    cl_free(&c);
}

/* Reference: §6.2 */
Test(raft_election, leader_lease_rejects_votes_while_the_leader_is_heard)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 term = raft_term(cl_r(&c, 1));
    raft_campaign(cl_r(&c, 3)); /* a disruptive node: its pre-votes are ignored */
    cl_run(&c);
    cr_assert_eq(cl_leader(&c), 1);
    cr_assert_eq(raft_term(cl_r(&c, 1)), term);
    cr_assert_neq(raft_role(cl_r(&c, 3)), RAFT_LEADER);
    cl_free(&c);
}

/* Reference: §6.2 */
Test(raft_election, check_quorum_makes_an_isolated_leader_step_down)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 1, true);
    for (u32 t = 0; t < 25; t++) cl_tick(&c, 1);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_FOLLOWER);
    cr_assert_eq(raft_leader(cl_r(&c, 1)), 0);
    cl_free(&c);
}

/* Reference: §6.2 */
Test(raft_election, check_quorum_keeps_a_leader_that_hears_a_quorum)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    for (u32 t = 0; t < 50; t++) {
        cl_tick(&c, 1);
        cl_tick(&c, 2);
        cl_run(&c);
    }
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_LEADER);
    cl_free(&c);
}

/* Reference: §3.10 */
Test(raft_election, leadership_transfer_hands_over_to_an_up_to_date_voter)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 term = raft_term(cl_r(&c, 1));
    cl_cut(&c, 1, 3, true);
    cl_propose(&c, 1, "a");
    cl_run(&c);
    cr_assert_eq(raft_transfer_leader(cl_r(&c, 1), 3), RAFT_OK);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.transfer_target, 3);
    u64 idx = 0;
    cr_assert_eq(raft_propose(cl_r(&c, 1), (const u8 *)"b", 1, &idx, NULL), RAFT_EBUSY);
    cl_cut(&c, 1, 3, false);
    cl_tick_all(&c, 2); /* the heartbeat answer brings 3 up to date, then TIMEOUT_NOW */
    cr_assert_eq(cl_leader(&c), 3);
    cr_assert_eq(raft_term(cl_r(&c, 3)), term + 1);
    cr_assert_eq(raft_role(cl_r(&c, 1)), RAFT_FOLLOWER);
    cr_assert_eq(raft_transfer_leader(cl_r(&c, 1), 2), RAFT_ENOT_LEADER);
    cl_free(&c);
}

/* Reference: §3.10 */
Test(raft_election, leadership_transfer_is_aborted_after_an_election_timeout)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    cr_assert_eq(raft_transfer_leader(cl_r(&c, 1), 3), RAFT_OK);
    cr_assert_eq(raft_transfer_leader(cl_r(&c, 1), 9), RAFT_EINVALID);
    for (u32 t = 0; t < 12; t++) {
        cl_tick(&c, 1);
        cl_tick(&c, 2);
        cl_run(&c);
    }
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.role, RAFT_LEADER);
    cr_assert_eq(st.transfer_target, 0, "aborted");
    u64 idx = 0;
    cr_assert_eq(raft_propose(cl_r(&c, 1), (const u8 *)"b", 1, &idx, NULL), RAFT_OK);
    cl_free(&c);
}
