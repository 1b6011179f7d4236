/* raft_read.c — linearizable reads by ReadIndex (thesis §6.4).
 *
 * The leader records commit as a read's index, then confirms it is still the leader with a
 * heartbeat round: every read requested before a round starts rides that round's context, and
 * the round is confirmed once a quorum of voters (the leader included) echoed a context at
 * least as new. A leader answers only once an entry of its own term is committed (§6.4 step 1);
 * a single-voter leader answers at once. A follower forwards READ_INDEX to the leader and
 * hands the answer out when READ_INDEX_RESP comes back; reads that can no longer be answered
 * (leadership or leader lost, no answer within an election timeout) go to reads_failed. */
#include "raft/raft_int.h"

#include <string.h>

static struct raft_read_req *raft_reqs(const struct raft *r)
{
    return r->read_reqs.items;
}

static struct raft_fwd_read *raft_fwds(const struct raft *r)
{
    return r->fwd_reads.items;
}

/* Room in reads_out and reads_failed for every read raft holds plus one: handing a read out
 * never allocates. */
static int raft_read_reserve(struct raft *r)
{
    u32 need = r->read_reqs.count + r->fwd_reads.count + 1;
    int rc = raft_vec_reserve(r, &r->reads_out, sizeof(struct raft_read_state),
                              r->reads_out.count + need);
    if (rc == RAFT_OK) {
        rc = raft_vec_reserve(r, &r->reads_failed, sizeof(u64), r->reads_failed.count + need);
    }
    return rc;
}

static void raft_read_done(struct raft *r, u64 context, u64 index)
{
    ASSERT(r->reads_out.count < r->reads_out.cap);
    struct raft_read_state *rs = r->reads_out.items;
    rs[r->reads_out.count].context = context;
    rs[r->reads_out.count].index = index;
    r->reads_out.count++;
}

static void raft_read_failed(struct raft *r, u64 context)
{
    ASSERT(r->reads_failed.count < r->reads_failed.cap);
    u64 *f = r->reads_failed.items;
    f[r->reads_failed.count++] = context;
}

static void raft_read_answer(struct raft *r, const struct raft_read_req *q, bool reject)
{
    ASSERT_IMPLIES(!reject, r->role == RAFT_LEADER);
    ASSERT_IMPLIES(!reject, q->index >= r->term_start_index);
    if (q->from == 0) {
        if (reject)
            raft_read_failed(r, q->context);
        else
            raft_read_done(r, q->context, q->index);
        return;
    }
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_READ_INDEX_RESP, q->from);
    m.context = q->context;
    m.index = q->index;
    m.reject = reject;
    raft_send(r, &m);
}

/* Assigns the reads waiting for a round to a new one (called as a heartbeat round starts). */
void raft_read_start_round(struct raft *r)
{
    if (!raft_committed_in_term(r)) return;
    struct raft_read_req *q = raft_reqs(r);
    bool any = false;
    for (u32 i = 0; i < r->read_reqs.count; i++) any |= q[i].round == 0;
    if (!any) return;
    r->read_round++;
    for (u32 i = 0; i < r->read_reqs.count; i++) {
        if (q[i].round != 0) continue;
        q[i].round = r->read_round;
        q[i].index = r->commit;
    }
    ASSERT(r->read_round > r->read_round_done);
}

/* The newest round context a quorum of voters acknowledged (the leader acks its own). */
static u64 raft_read_quorum_ack(const struct raft *r)
{
    u64 acks[RAFT_MEMBERS_MAX];
    u32 n = 0;
    for (u32 i = 0; i < r->pr_count; i++) {
        const struct raft_progress *pr = &r->prs[i];
        if (pr->role != RAFT_VOTER) continue;
        acks[n++] = pr->id == r->cfg.id ? r->read_round : pr->read_ack;
    }
    for (u32 i = 1; i < n; i++) {
        u64 v = acks[i];
        u32 j = i;
        for (; j > 0 && acks[j - 1] < v; j--) acks[j] = acks[j - 1];
        acks[j] = v;
    }
    ASSERT(n >= raft_quorum(r));
    return acks[raft_quorum(r) - 1];
}

/* Answers the reads whose round a quorum confirmed; starts the next round when reads wait and
 * no round is out. */
void raft_read_advance(struct raft *r)
{
    if (!raft_committed_in_term(r) || r->read_reqs.count == 0) return;
    struct raft_read_req *q = raft_reqs(r);
    bool single = raft_quorum(r) == 1 && raft_is_voter(r, r->cfg.id);
    u64 acked = single ? UINT64_MAX : raft_read_quorum_ack(r);
    if (!single && acked > r->read_round_done) r->read_round_done = acked;
    u32 kept = 0;
    for (u32 i = 0; i < r->read_reqs.count; i++) {
        if (single) q[i].index = r->commit;
        if (single || (q[i].round != 0 && q[i].round <= acked)) {
            raft_read_answer(r, &q[i], false);
        } else {
            q[kept++] = q[i];
        }
    }
    r->read_reqs.count = kept;
    if (kept > 0 && r->read_round_done == r->read_round) raft_bcast_heartbeat(r);
    ASSERT(r->read_round_done <= r->read_round);
}

static int raft_read_add(struct raft *r, u64 context, u64 from)
{
    ASSERT(r->role == RAFT_LEADER);
    int rc = raft_read_reserve(r);
    if (rc == RAFT_OK) {
        rc = raft_vec_reserve(r, &r->read_reqs, sizeof(struct raft_read_req),
                              r->read_reqs.count + 1);
    }
    if (rc != RAFT_OK) return rc;
    struct raft_read_req *q = &raft_reqs(r)[r->read_reqs.count++];
    memset(q, 0, sizeof(*q));
    q->context = context;
    q->from = from;
    raft_read_advance(r);
    return RAFT_OK;
}

int raft_read_index(struct raft *r, u64 context)
{
    ASSERT(!r->in_ready);
    raft_check_invariants(r);
    if (r->role == RAFT_LEADER) return raft_read_add(r, context, 0);
    int rc = raft_read_reserve(r);
    if (rc != RAFT_OK) return rc;
    if (r->leader == 0) {
        raft_read_failed(r, context);
        return RAFT_OK;
    }
    rc = raft_vec_reserve(r, &r->fwd_reads, sizeof(struct raft_fwd_read), r->fwd_reads.count + 1);
    if (rc != RAFT_OK) return rc;
    struct raft_fwd_read *f = &raft_fwds(r)[r->fwd_reads.count++];
    f->context = context;
    f->elapsed_ticks = 0;
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_READ_INDEX, r->leader);
    m.context = context;
    raft_send(r, &m);
    return RAFT_OK;
}

/* Every read raft holds fails: the leader lost its leadership, or a follower its leader. */
void raft_read_fail_all(struct raft *r)
{
    struct raft_read_req *q = raft_reqs(r);
    for (u32 i = 0; i < r->read_reqs.count; i++) raft_read_answer(r, &q[i], true);
    r->read_reqs.count = 0;
    r->read_round_done = r->read_round;
    struct raft_fwd_read *f = raft_fwds(r);
    for (u32 i = 0; i < r->fwd_reads.count; i++) raft_read_failed(r, f[i].context);
    r->fwd_reads.count = 0;
    ASSERT(r->read_reqs.count == 0 && r->fwd_reads.count == 0);
}

/* A forwarded read that got no answer within an election timeout fails. */
void raft_read_tick(struct raft *r)
{
    struct raft_fwd_read *f = raft_fwds(r);
    u32 kept = 0;
    for (u32 i = 0; i < r->fwd_reads.count; i++) {
        if (++f[i].elapsed_ticks >= r->cfg.election_ticks) {
            raft_read_failed(r, f[i].context);
        } else {
            f[kept++] = f[i];
        }
    }
    r->fwd_reads.count = kept;
}

void raft_step_read_index(struct raft *r, const struct raft_msg *m)
{
    struct raft_read_req q = {.context = m->context, .from = m->from};
    if (r->role != RAFT_LEADER || raft_read_add(r, m->context, m->from) != RAFT_OK) {
        raft_read_answer(r, &q, true);
    }
}

void raft_step_read_index_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_fwd_read *f = raft_fwds(r);
    for (u32 i = 0; i < r->fwd_reads.count; i++) {
        if (f[i].context != m->context) continue;
        if (m->reject)
            raft_read_failed(r, m->context);
        else
            raft_read_done(r, m->context, m->index);
        memmove(&f[i], &f[i + 1], (r->fwd_reads.count - i - 1) * sizeof(*f));
        r->fwd_reads.count--;
        return;
    }
}
