/*
 * test_raft_read.c — linearizable reads by ReadIndex: a single voter, batching into heartbeat
 * rounds, waiting for an entry of the leader's term, reads forwarded by followers, and reads
 * failed when leadership is lost.
 */
#include "raft_cluster.h"

#include <criterion/criterion.h>

static bool has_read(const struct cl_node *nd, u64 ctx, u64 *index)
{
    for (u32 i = 0; i < nd->read_count; i++) {
        if (nd->read_ctx[i] == ctx) {
            if (index) *index = nd->read_index[i];
            return true;
        }
    }
    return false;
}

static bool has_failed(const struct cl_node *nd, u64 ctx)
{
    for (u32 i = 0; i < nd->read_failed_count; i++) {
        if (nd->read_failed[i] == ctx) return true;
    }
    return false;
}

/* Reference: §6.4 */
Test(raft_read, single_voter_leader_answers_at_once)
{
    struct cluster c;
    cl_init(&c, 1, 0);
    cl_elect(&c, 1);
    u64 idx = cl_propose(&c, 1, "v");
    cl_run(&c);
    cr_assert_eq(raft_read_index(cl_r(&c, 1), 7), RAFT_OK);
    cl_ready(&c, 1);
    u64 ri = 0;
    cr_assert(has_read(cl_node(&c, 1), 7, &ri));
    cr_assert_eq(ri, idx);
    cl_free(&c);
}

/* Reference: §6.4 */
Test(raft_read, reads_requested_together_share_heartbeat_rounds)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 idx = cl_propose(&c, 1, "v");
    cl_run(&c);
    u64 hb = c.sent[RAFT_MSG_HEARTBEAT];
    for (u64 ctx = 1; ctx <= 5; ctx++) cr_assert_eq(raft_read_index(cl_r(&c, 1), ctx), RAFT_OK);
    cl_ready(&c, 1);
    cr_assert_eq(cl_count(&c, RAFT_MSG_HEARTBEAT, 0), 2, "one round (2 followers) for read 1");
    cr_assert_eq(cl_node(&c, 1)->read_count, 0, "no answer before a quorum confirms");
    cl_run(&c);
    for (u64 ctx = 1; ctx <= 5; ctx++) {
        u64 ri = 0;
        cr_assert(has_read(cl_node(&c, 1), ctx, &ri), "read %llu answered",
                  (unsigned long long)ctx);
        cr_assert_eq(ri, idx);
    }
    cr_assert_eq(c.sent[RAFT_MSG_HEARTBEAT] - hb, 4, "reads 2..5 rode one second round");
    cl_free(&c);
}

/* Reference: §6.4 */
Test(raft_read, reads_ride_the_periodic_heartbeat_round)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    cl_partition(&c, 2, true); /* the first round cannot complete */
    cr_assert_eq(raft_read_index(cl_r(&c, 1), 1), RAFT_OK);
    cl_run(&c);
    cr_assert_eq(raft_read_index(cl_r(&c, 1), 2), RAFT_OK);
    cr_assert_eq(raft_read_index(cl_r(&c, 1), 3), RAFT_OK);
    cl_partition(&c, 2, false);
    cl_tick(&c, 1); /* the periodic heartbeat carries reads 2 and 3 */
    cl_run(&c);
    for (u64 ctx = 1; ctx <= 3; ctx++) cr_assert(has_read(cl_node(&c, 1), ctx, NULL));
    cl_free(&c);
}

static bool drop_app_resp(void *ctx, const struct raft_msg *m)
{
    (void)ctx;
    return m->type == RAFT_MSG_APP_RESP;
}

/* Reference: §6.4 */
Test(raft_read, leader_answers_only_once_an_entry_of_its_term_is_committed)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    c.drop = drop_app_resp;
    cl_elect(&c, 1);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_lt(st.commit, st.last_index, "the no-op is not committed");
    cr_assert_eq(raft_read_index(cl_r(&c, 1), 9), RAFT_OK);
    cl_tick_all(&c, 2);
    cr_assert_not(has_read(cl_node(&c, 1), 9, NULL));
    c.drop = NULL;
    cl_tick_all(&c, 2);
    u64 ri = 0;
    cr_assert(has_read(cl_node(&c, 1), 9, &ri));
    raft_status(cl_r(&c, 1), &st);
    cr_assert_geq(ri, st.last_index, "the read index covers the leader's no-op");
    cl_free(&c);
}

/* Reference: §6.4 */
Test(raft_read, follower_forwards_read_index_to_the_leader)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 idx = cl_propose(&c, 1, "v");
    cl_run(&c);
    cr_assert_eq(raft_read_index(cl_r(&c, 2), 42), RAFT_OK);
    cl_run(&c);
    u64 ri = 0;
    cr_assert(has_read(cl_node(&c, 2), 42, &ri));
    cr_assert_eq(ri, idx);
    cr_assert_eq(c.sent[RAFT_MSG_READ_INDEX], 1);
    cr_assert_eq(c.sent[RAFT_MSG_READ_INDEX_RESP], 1);
    cr_assert_not(has_read(cl_node(&c, 1), 42, NULL), "the leader does not serve it itself");
    cl_free(&c);
}

/* Reference: §6.4 */
Test(raft_read, reads_fail_when_leadership_is_lost_or_no_leader_is_known)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cr_assert_eq(raft_read_index(cl_r(&c, 2), 5), RAFT_OK);
    cl_ready(&c, 2);
    cr_assert(has_failed(cl_node(&c, 2), 5), "no leader known: fails at once");
    cl_elect(&c, 1);
    cl_partition(&c, 1, true);
    cr_assert_eq(raft_read_index(cl_r(&c, 1), 6), RAFT_OK);
    cr_assert_eq(raft_read_index(cl_r(&c, 3), 7), RAFT_OK); /* forwarded, never answered */
    for (u32 t = 0; t < 25; t++) cl_tick(&c, 1);
    cl_tick_all(&c, 12);
    cr_assert(has_failed(cl_node(&c, 1), 6), "failed when the leader stepped down");
    cr_assert(has_failed(cl_node(&c, 3), 7), "failed after an election timeout");
    cr_assert_not(has_read(cl_node(&c, 1), 6, NULL));
    cl_free(&c);
}
