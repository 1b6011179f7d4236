/*
 * test_raft_snap.c — compaction and snapshots: raft_compact, chunked snapshot transfer with a
 * window, resuming after a lost chunk, a stalled stream, old snapshots, restarts.
 */
#include "raft_cluster.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

static void tune_chunks(struct raft_config *cfg)
{
    cfg->snap_chunk_bytes = 16;
    cfg->snap_chunks_inflight = 2;
}

static void give_snapshot(struct cluster *c, u64 id, u64 size, u64 keep)
{
    struct cl_node *nd = cl_node(c, id);
    free(nd->snap_src);
    nd->snap_src = malloc(size);
    for (u64 i = 0; i < size; i++) nd->snap_src[i] = (u8)(i * 7 + 3);
    nd->snap_src_len = size;
    struct raft_snapshot_meta meta;
    raft_snapshot_meta_applied(nd->r, &meta);
    raft_compact(nd->r, &meta, keep);
}

/* Reference: §5 (thesis: log compaction) */
Test(raft_snap, compact_drops_entries_up_to_the_snapshot_minus_kept)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 last = 0;
    for (int i = 0; i < 20; i++) last = cl_propose(&c, 1, "e");
    cl_run(&c);
    struct raft_snapshot_meta meta;
    raft_snapshot_meta_applied(cl_r(&c, 1), &meta);
    cr_assert_eq(meta.index, last);
    cr_assert_eq(meta.term, raft_term(cl_r(&c, 1)));
    cr_assert_eq(meta.conf.count, 3);
    raft_compact(cl_r(&c, 1), &meta, 5);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.snapshot_index, last);
    cr_assert_eq(st.first_index, last - 5 + 1);
    cr_assert_null(raft_entry_at(cl_r(&c, 1), last - 5));
    cr_assert_not_null(raft_entry_at(cl_r(&c, 1), last - 4));
    u64 more = cl_propose(&c, 1, "after");
    cl_run(&c);
    cr_assert_eq(cl_node(&c, 2)->ap_last, more, "replication goes on after compaction");
    cl_free(&c);
}

/* Reference: §5 (thesis: InstallSnapshot in chunks) */
Test(raft_snap, lagging_follower_gets_the_snapshot_in_chunks)
{
    cl_tune = tune_chunks;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    for (int i = 0; i < 20; i++) cl_propose(&c, 1, "e");
    cl_run(&c);
    give_snapshot(&c, 1, 100, 0);
    cl_partition(&c, 3, false);
    cl_tick(&c, 1);
    cr_assert_leq(cl_count(&c, RAFT_MSG_SNAP, 3), 2, "2 chunks in flight at most");
    cl_run(&c);
    struct cl_node *n3 = cl_node(&c, 3);
    cr_assert_eq(n3->installs, 1);
    cr_assert_eq(n3->snap_chunks_stored, 7, "100 bytes in chunks of 16");
    cr_assert_eq(n3->snap_rx_len, 100);
    cr_assert_eq(memcmp(n3->snap_rx, cl_node(&c, 1)->snap_src, 100), 0);
    struct raft_status st;
    raft_status(n3->r, &st);
    cr_assert_eq(n3->installed.index, st.snapshot_index);
    cr_assert_eq(st.applied, n3->installed.index);
    cr_assert_eq(st.conf.count, 3);
    u64 more = cl_propose(&c, 1, "after");
    cl_run(&c);
    cr_assert_eq(n3->ap_last, more, "the follower's log continues after the snapshot");
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.progress[2].state, RAFT_PROGRESS_REPLICATE);
    cl_free(&c);
}

static int g_lost;

static bool drop_chunk_32_once(void *ctx, const struct raft_msg *m)
{
    (void)ctx;
    if (m->type == RAFT_MSG_SNAP && m->snap_offset == 32 && g_lost == 0) {
        g_lost++;
        return true;
    }
    return false;
}

/* Reference: §5 (thesis: InstallSnapshot resumes at the offset the follower wants) */
Test(raft_snap, snapshot_stream_resumes_after_a_lost_chunk)
{
    cl_tune = tune_chunks;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    for (int i = 0; i < 20; i++) cl_propose(&c, 1, "e");
    cl_run(&c);
    give_snapshot(&c, 1, 100, 0);
    cl_partition(&c, 3, false);
    c.drop = drop_chunk_32_once;
    cl_tick(&c, 1);
    cl_run(&c);
    cr_assert_eq(g_lost, 1);
    struct cl_node *n3 = cl_node(&c, 3);
    cr_assert_eq(n3->installs, 1);
    cr_assert_eq(n3->snap_rx_len, 100);
    cr_assert_eq(memcmp(n3->snap_rx, cl_node(&c, 1)->snap_src, 100), 0);
    cr_assert_gt(c.sent[RAFT_MSG_SNAP], 7, "the lost chunk was sent again");
    cl_free(&c);
}

static bool drop_all_snap(void *ctx, const struct raft_msg *m)
{
    (void)ctx;
    return m->type == RAFT_MSG_SNAP;
}

/* Reference: §5 */
Test(raft_snap, stalled_snapshot_stream_is_resent_after_an_election_timeout)
{
    cl_tune = tune_chunks;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    for (int i = 0; i < 20; i++) cl_propose(&c, 1, "e");
    cl_run(&c);
    give_snapshot(&c, 1, 40, 2);
    cl_partition(&c, 3, false);
    c.drop = drop_all_snap;
    cl_tick_all(&c, 3);
    cr_assert_eq(cl_node(&c, 3)->installs, 0);
    c.drop = NULL;
    cl_tick_all(&c, 12);
    cr_assert_eq(cl_node(&c, 3)->installs, 1);
    cr_assert_eq(cl_node(&c, 3)->ap_last, cl_node(&c, 1)->ap_last);
    cl_free(&c);
}

/* Reference: §5 */
Test(raft_snap, snapshot_at_or_below_commit_is_answered_with_the_commit_index)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_propose(&c, 1, "e");
    cl_run(&c);
    struct raft_status st;
    raft_status(cl_r(&c, 2), &st);
    struct raft_msg m = {0};
    m.type = RAFT_MSG_SNAP;
    m.from = 1;
    m.to = 2;
    m.term = raft_term(cl_r(&c, 1));
    m.snap.index = st.commit - 1;
    m.snap.term = 1;
    m.snap_len = 3;
    m.snap_data = (const u8 *)"abc";
    m.snap_last = true;
    raft_step(cl_r(&c, 2), &m);
    cl_ready(&c, 2);
    bool seen = false;
    for (u32 i = 0; i < c.q_count; i++) {
        const struct raft_msg *q = &c.q[i].m;
        if (q->type == RAFT_MSG_APP_RESP && q->from == 2) seen = q->index == st.commit;
    }
    cr_assert(seen);
    cr_assert_eq(cl_node(&c, 2)->snap_chunks_stored, 0, "the old snapshot is not stored");
    cl_run(&c);
    cl_free(&c);
}

/* Reference: §5 (a chunk at an unexpected offset asks for the one wanted) */
Test(raft_snap, chunk_at_the_wrong_offset_gets_the_wanted_offset)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_run(&c);
    struct raft_msg m = {0};
    m.type = RAFT_MSG_SNAP;
    m.from = 1;
    m.to = 2;
    m.term = 5;
    m.snap.index = 50;
    m.snap.term = 4;
    m.snap.conf.count = 3;
    for (u32 i = 0; i < 3; i++) {
        m.snap.conf.members[i].id = i + 1;
        m.snap.conf.members[i].role = RAFT_VOTER;
    }
    m.snap_offset = 16;
    m.snap_len = 3;
    m.snap_data = (const u8 *)"abc";
    raft_step(cl_r(&c, 2), &m);
    cl_ready(&c, 2);
    cr_assert_eq(cl_count(&c, RAFT_MSG_SNAP_RESP, 1), 1);
    const struct raft_msg *r = &c.q[c.q_count - 1].m;
    cr_assert_eq(r->type, RAFT_MSG_SNAP_RESP);
    cr_assert(r->reject);
    cr_assert_eq(r->snap_offset, 0, "a new snapshot starts at 0");
    cl_clear_queue(&c);
    m.snap_offset = 0;
    raft_step(cl_r(&c, 2), &m);
    cl_ready(&c, 2);
    r = &c.q[c.q_count - 1].m;
    cr_assert_eq(r->type, RAFT_MSG_SNAP_RESP);
    cr_assert_not(r->reject);
    cr_assert_eq(r->snap_offset, 3);
    cl_clear_queue(&c);
    m.snap_offset = 9;
    raft_step(cl_r(&c, 2), &m);
    cl_ready(&c, 2);
    r = &c.q[c.q_count - 1].m;
    cr_assert(r->reject);
    cr_assert_eq(r->snap_offset, 3, "resume where the follower stopped");
    cl_clear_queue(&c);
    cl_free(&c);
}

/* Reference: §5 (restart: the stored snapshot, hard state and entries) */
Test(raft_snap, restart_from_snapshot_and_entries_applies_up_to_commit)
{
    struct raft_config cfg;
    cl_config(&cfg, 2);
    struct cl_alloc a = {.fail_after = -1};
    cfg.alloc_ctx = &a;
    struct raft_snapshot_meta snap = {.index = 10, .term = 3};
    snap.conf.count = 3;
    for (u32 i = 0; i < 3; i++) {
        snap.conf.members[i].id = i + 1;
        snap.conf.members[i].role = RAFT_VOTER;
    }
    struct raft_entry ents[3];
    for (u32 i = 0; i < 3; i++) {
        ents[i] = (struct raft_entry){.term = 4, .index = 11 + i, .type = RAFT_ENTRY_NORMAL};
        ents[i].len = 1;
        ents[i].data = (const u8 *)"z";
    }
    struct raft_restore rs = {.snapshot = &snap, .entries = ents, .entry_count = 3};
    rs.hard_state = (struct raft_hard_state){.term = 5, .vote = 1, .commit = 12};
    struct raft *r = NULL;
    cr_assert_eq(raft_create(&cfg, &rs, &r), RAFT_OK);
    struct raft_status st;
    raft_status(r, &st);
    cr_assert_eq(st.term, 5);
    cr_assert_eq(st.vote, 1);
    cr_assert_eq(st.first_index, 11);
    cr_assert_eq(st.last_index, 13);
    cr_assert_eq(st.applied, 10);
    cr_assert_eq(st.persisted, 13, "restored entries are durable");
    cr_assert(raft_has_ready(r));
    struct raft_ready rd;
    raft_ready(r, &rd);
    cr_assert_not(rd.hard_state_changed);
    cr_assert_eq(rd.entry_count, 0, "nothing new to store");
    cr_assert_eq(rd.committed_count, 2);
    cr_assert_eq(rd.committed[0].index, 11);
    raft_advance(r, &rd);
    cr_assert_not(raft_has_ready(r));
    raft_destroy(r);
    cr_assert_eq(a.live_bytes, 0);
    /* bootstrap again with stored entries and no snapshot: the conf is at index 0 */
    struct raft_entry e1 = {.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL};
    struct raft_restore rs2 = {.entries = &e1, .entry_count = 1, .bootstrap = &snap.conf};
    rs2.hard_state = (struct raft_hard_state){.term = 1, .vote = 1, .commit = 1};
    cr_assert_eq(raft_create(&cfg, &rs2, &r), RAFT_OK);
    raft_status(r, &st);
    cr_assert_eq(st.conf.count, 3);
    cr_assert_eq(st.last_index, 1);
    raft_destroy(r);
    /* entries that do not start after the snapshot are refused */
    ents[0].index = 12;
    cr_assert_eq(raft_create(&cfg, &rs, &r), RAFT_EINVALID);
    cr_assert_eq(a.live_bytes, 0);
}

static u8 progress_state(struct raft *r, u64 id)
{
    struct raft_status st;
    raft_status(r, &st);
    for (u32 i = 0; i < st.progress_count; i++) {
        if (st.progress[i].id == id) return st.progress[i].state;
    }
    cr_assert_fail("no progress for %llu", (unsigned long long)id);
    return 0;
}

/* Reference: §5 (the caller cannot send the snapshot: raft goes back to probing, retries) */
Test(raft_snap, snapshot_failed_goes_back_to_probe_and_retries)
{
    cl_tune = tune_chunks;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_partition(&c, 3, true);
    for (int i = 0; i < 10; i++) cl_propose(&c, 1, "e");
    cl_run(&c);
    give_snapshot(&c, 1, 30, 0);
    cl_partition(&c, 3, false);
    c.drop = drop_all_snap;
    cl_tick(&c, 1);
    cl_run(&c);
    cr_assert_eq(progress_state(cl_r(&c, 1), 3), RAFT_PROGRESS_SNAPSHOT);
    raft_snapshot_failed(cl_r(&c, 1), 3);
    cr_assert_eq(progress_state(cl_r(&c, 1), 3), RAFT_PROGRESS_PROBE);
    c.drop = NULL;
    cl_tick_all(&c, 3);
    cr_assert_eq(cl_node(&c, 3)->installs, 1, "retried after the next heartbeat answer");
    cr_assert_eq(progress_state(cl_r(&c, 1), 3), RAFT_PROGRESS_REPLICATE);
    cl_free(&c);
}

/* Reference: §5.3 (a lost connection sends the follower back to probing) */
Test(raft_snap, peer_unreachable_goes_back_to_probe)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    cl_propose(&c, 1, "e");
    cl_run(&c);
    cr_assert_eq(progress_state(cl_r(&c, 1), 2), RAFT_PROGRESS_REPLICATE);
    raft_peer_unreachable(cl_r(&c, 1), 2);
    cr_assert_eq(progress_state(cl_r(&c, 1), 2), RAFT_PROGRESS_PROBE);
    u64 idx = cl_propose(&c, 1, "f");
    cl_run(&c);
    cr_assert_eq(cl_node(&c, 2)->ap_last, idx);
    cr_assert_eq(progress_state(cl_r(&c, 1), 2), RAFT_PROGRESS_REPLICATE);
    cl_free(&c);
}

/* Reference: §5 (thesis: log compaction; the in-memory log may be shorter than the snapshot
 * interval, raft_compact_log) */
Test(raft_snap, compact_log_past_the_snapshot_makes_a_laggard_wait_for_a_fresh_one)
{
    cl_tune = tune_chunks;
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    for (int i = 0; i < 5; i++) cl_propose(&c, 1, "a");
    cl_run(&c);
    give_snapshot(&c, 1, 50, 0); /* an old snapshot, at the 5 entries */
    u64 old_snap = cl_last(&c, 1);
    cl_partition(&c, 3, true);
    u64 last = 0;
    for (int i = 0; i < 20; i++) last = cl_propose(&c, 1, "b");
    cl_run(&c);
    raft_compact_log(cl_r(&c, 1), last - 2);
    struct raft_status st;
    raft_status(cl_r(&c, 1), &st);
    cr_assert_eq(st.first_index, last - 1, "entries up to last - 2 are gone from memory");
    cr_assert_eq(st.snapshot_index, old_snap, "the snapshot did not move");
    cr_assert_not(st.snapshot_wanted);
    cl_partition(&c, 3, false);
    cl_tick_all(&c, 3);
    cl_run(&c);
    raft_status(cl_r(&c, 1), &st);
    cr_assert(st.snapshot_wanted, "node 3 needs entries only a newer snapshot holds");
    cr_assert_eq(cl_node(&c, 3)->installs, 0, "the old snapshot would not bring it up to the log");
    give_snapshot(&c, 1, 70, 0); /* the fresh one, at last */
    cl_run(&c);
    cr_assert_eq(cl_node(&c, 3)->installs, 1);
    cr_assert_eq(cl_node(&c, 3)->installed.index, last);
    u64 more = cl_propose(&c, 1, "after");
    cl_run(&c);
    cr_assert_eq(cl_node(&c, 3)->ap_last, more, "the laggard's log continues after it");
    raft_status(cl_r(&c, 1), &st);
    cr_assert_not(st.snapshot_wanted);
    cl_free(&c);
}

/* raft_compact_log never drops what is not applied or not durable. */
Test(raft_snap, compact_log_stops_at_applied_and_persisted)
{
    struct cluster c;
    cl_init(&c, 3, 0);
    cl_elect(&c, 1);
    u64 last = 0;
    for (int i = 0; i < 10; i++) last = cl_propose(&c, 1, "a");
    cl_run(&c);
    raft_compact_log(cl_r(&c, 2), last + 100);
    struct raft_status st;
    raft_status(cl_r(&c, 2), &st);
    cr_assert_eq(st.first_index, KEEL_MIN(st.applied, st.persisted) + 1);
    cr_assert_leq(st.first_index - 1, st.applied);
    raft_compact_log(cl_r(&c, 2), 1); /* behind the compaction point: nothing */
    struct raft_status st2;
    raft_status(cl_r(&c, 2), &st2);
    cr_assert_eq(st2.first_index, st.first_index);
    cl_free(&c);
}
