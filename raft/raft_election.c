/* raft_election.c — timeouts, elections and leadership (Raft paper §5.2, §5.4.1; thesis §3.10
 * leadership transfer, §6.2 check-quorum, §9.6 pre-vote).
 *
 * A voter that hears nothing from a leader for a randomized timeout in
 * [election_ticks, 2 * election_ticks) first runs a pre-vote in term + 1 without changing its
 * own term; only a quorum of pre-votes makes it a candidate that bumps the term. A leader that
 * did not hear from a quorum within an election timeout steps down (check-quorum). */
#include "raft/raft_int.h"

/* splitmix64: the PRNG behind the randomized election timeouts, seeded by config.seed. */
static u64 raft_rand(struct raft *r)
{
    u64 z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void raft_reset_timeout(struct raft *r)
{
    u32 base = r->cfg.election_ticks;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    r->timeout_ticks = base + (u32)(raft_rand(r) % base);
    ASSERT(r->timeout_ticks >= base && r->timeout_ticks < 2 * base);
}

static void raft_votes_reset(struct raft *r)
{
    r->granted_count = 0;
    r->rejected_count = 0;
}

static void raft_set_role(struct raft *r, u8 role, u64 leader)
{
    if (r->role != role || r->leader != leader) r->role_changed = true;
    if (r->leader != leader || role == RAFT_LEADER) raft_read_fail_all(r);
    r->role = role;
    r->leader = leader;
    r->transfer_target = 0;
    r->transfer_elapsed = 0;
    raft_votes_reset(r);
    raft_reset_timeout(r);
    ASSERT(r->role == role && r->leader == leader);
    ASSERT(r->transfer_target == 0);
}

void raft_become_follower(struct raft *r, u64 term, u64 leader)
{
    ASSERT(term >= r->term);
    if (r->role == RAFT_LEADER) raft_read_fail_all(r);
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
    }
    raft_set_role(r, RAFT_FOLLOWER, leader);
    r->uncommitted_bytes = 0;
    ASSERT(r->role == RAFT_FOLLOWER && r->term == term);
}

/* Records a (pre-)vote answer; returns true when a quorum granted. */
static bool raft_votes_record(struct raft *r, u64 id, bool granted)
{
    u64 *list = granted ? r->granted : r->rejected;
    u32 *count = granted ? &r->granted_count : &r->rejected_count;
    for (u32 i = 0; i < r->granted_count; i++) {
        if (r->granted[i] == id) return r->granted_count >= raft_quorum(r);
    }
    for (u32 i = 0; i < r->rejected_count; i++) {
        if (r->rejected[i] == id) return r->granted_count >= raft_quorum(r);
    }
    ASSERT(*count < RAFT_MEMBERS_MAX);
    list[(*count)++] = id;
    return r->granted_count >= raft_quorum(r);
}

static void raft_become_leader(struct raft *r)
{
    ASSERT(r->role == RAFT_CANDIDATE);
    ASSERT(r->vote == r->cfg.id);
    raft_set_role(r, RAFT_LEADER, r->cfg.id);
    r->pr_count = 0;
    raft_progress_sync(r);
    for (u32 i = 0; i < r->pr_count; i++) raft_progress_reset(r, &r->prs[i]);
    r->uncommitted_bytes = 0;
    struct raft_entry noop = {.term = r->term, .index = raft_log_last(&r->log) + 1};
    noop.type = RAFT_ENTRY_NORMAL;
    if (raft_log_append(r, &noop) != RAFT_OK) {
        raft_become_follower(r, r->term, 0); /* no memory for the no-op: let another lead */
        return;
    }
    r->term_start_index = noop.index;
    raft_bcast_append(r, true);
    raft_maybe_commit(r);
    ASSERT(r->role == RAFT_LEADER);
}

/* Becomes a candidate of term + 1 and asks every voter (§5.2). The VOTE requests wait for the
 * durability of this member's own vote (msgs_after_persist): a candidate that crashed before
 * its vote was durable could otherwise vote for another candidate of the same term. */
void raft_campaign_vote(struct raft *r, bool transfer)
{
    if (!raft_can_campaign(r)) return;
    u64 term = r->term + 1;
    raft_set_role(r, RAFT_CANDIDATE, 0);
    r->term = term;
    r->vote = r->cfg.id;
    if (raft_votes_record(r, r->cfg.id, true)) {
        raft_become_leader(r);
        return;
    }
    for (u32 i = 0; i < r->conf.count; i++) {
        const struct raft_member *mb = &r->conf.members[i];
        if (mb->id == r->cfg.id || mb->role != RAFT_VOTER) continue;
        struct raft_msg m;
        raft_msg_init(r, &m, RAFT_MSG_VOTE, mb->id);
        m.index = raft_log_last(&r->log);
        m.log_term = raft_log_last_term(&r->log);
        m.transfer = transfer;
        raft_send_after(r, &m);
    }
    ASSERT(r->role == RAFT_CANDIDATE && r->term == term);
}

/* Thesis §9.6: a pre-candidate asks for votes in term + 1 without bumping its own term. */
void raft_campaign_pre(struct raft *r)
{
    if (!raft_can_campaign(r) || r->role == RAFT_LEADER) return;
    if (r->install_state != RAFT_INSTALL_NONE) return;
    raft_set_role(r, RAFT_PRE_CANDIDATE, 0);
    if (raft_votes_record(r, r->cfg.id, true)) {
        raft_campaign_vote(r, false);
        return;
    }
    for (u32 i = 0; i < r->conf.count; i++) {
        const struct raft_member *mb = &r->conf.members[i];
        if (mb->id == r->cfg.id || mb->role != RAFT_VOTER) continue;
        struct raft_msg m;
        raft_msg_init(r, &m, RAFT_MSG_PREVOTE, mb->id);
        m.term = r->term + 1;
        m.index = raft_log_last(&r->log);
        m.log_term = raft_log_last_term(&r->log);
        raft_send(r, &m);
    }
    ASSERT(r->role == RAFT_PRE_CANDIDATE);
}

void raft_campaign(struct raft *r)
{
    ASSERT(!r->in_ready);
    raft_campaign_pre(r);
    raft_check_invariants(r);
}

/* A (pre-)vote request of this term (or of term + 1 for a pre-vote): §5.2, §5.4.1, §9.6. */
void raft_step_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    /* Any sender gets an answer by the log comparison (as etcd): a member whose configuration
     * is stale or not known yet must still vote for a legitimate candidate. */
    bool can_vote =
        r->vote == m->from || (r->vote == 0 && r->leader == 0) || (pre && m->term > r->term);
    bool grant = can_vote && raft_log_up_to_date(&r->log, m->index, m->log_term);
    struct raft_msg resp;
    raft_msg_init(r, &resp, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
    if (grant) {
        resp.term = m->term;
        if (!pre) {
            ASSERT(m->term == r->term);
            r->vote = m->from;
            r->election_elapsed = 0;
        }
        raft_send_after(r, &resp);
        return;
    }
    resp.reject = true;
    raft_send(r, &resp);
}

void raft_step_vote_resp(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
    ASSERT(pre || m->type == RAFT_MSG_VOTE_RESP);
    ASSERT(m->term >= r->term);
    if (pre && r->role != RAFT_PRE_CANDIDATE) return;
    if (!pre && r->role != RAFT_CANDIDATE) return;
    if (!raft_is_voter(r, m->from)) return;
    if (pre && !m->reject && m->term != r->term + 1) return; /* a grant of an older round */
    bool won = raft_votes_record(r, m->from, !m->reject);
    if (won) {
        if (pre)
            raft_campaign_vote(r, false);
        else
            raft_become_leader(r);
        return;
    }
    u32 voters = raft_conf_voters(&r->conf);
    if (r->rejected_count >= voters - raft_quorum(r) + 1) raft_become_follower(r, r->term, 0);
}

/* ---- ticks ----------------------------------------------------------------------------- */

/* §6.2: counts the voters heard from since the last check; steps down without a quorum. */
static void raft_check_quorum(struct raft *r)
{
    ASSERT(r->role == RAFT_LEADER);
    u32 active = 0;
    for (u32 i = 0; i < r->pr_count; i++) {
        struct raft_progress *pr = &r->prs[i];
        bool self = pr->id == r->cfg.id;
        if (pr->role == RAFT_VOTER && (pr->recent_active || self)) active++;
        if (!self) pr->recent_active = false;
    }
    if (active < raft_quorum(r)) raft_become_follower(r, r->term, 0);
    ASSERT_IMPLIES(r->role == RAFT_LEADER, active >= raft_quorum(r));
}

static void raft_tick_leader(struct raft *r)
{
    ASSERT(r->role == RAFT_LEADER);
    ASSERT(r->heartbeat_elapsed < r->cfg.heartbeat_ticks);
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    for (u32 i = 0; i < r->pr_count; i++) raft_snap_tick(r, &r->prs[i]);
    if (r->transfer_target != 0 && ++r->transfer_elapsed >= r->cfg.election_ticks) {
        r->transfer_target = 0; /* §3.10: abort a transfer that did not finish in time */
        r->transfer_elapsed = 0;
    }
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        raft_check_quorum(r);
        if (r->role != RAFT_LEADER) return;
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        raft_bcast_heartbeat(r);
    }
}

void raft_tick(struct raft *r)
{
    ASSERT(!r->in_ready);
    raft_check_invariants(r);
    if (r->role == RAFT_LEADER) {
        raft_tick_leader(r);
    } else if (++r->election_elapsed >= r->timeout_ticks) {
        r->election_elapsed = 0;
        if (raft_can_campaign(r)) {
            raft_campaign_pre(r);
        } else {
            raft_reset_timeout(r);
        }
    }
    raft_read_tick(r);
    raft_check_invariants(r);
}

/* ---- leadership transfer (thesis §3.10) ------------------------------------------------ */

int raft_transfer_leader(struct raft *r, u64 target)
{
    ASSERT(!r->in_ready);
    if (r->role != RAFT_LEADER) return RAFT_ENOT_LEADER;
    if (target == r->cfg.id) return RAFT_OK;
    struct raft_progress *pr = raft_progress_find(r, target);
    if (pr == NULL || pr->role != RAFT_VOTER) return RAFT_EINVALID;
    if (r->transfer_target == target) return RAFT_OK;
    r->transfer_target = target;
    r->transfer_elapsed = 0;
    if (pr->match == raft_log_last(&r->log))
        raft_transfer_check(r, pr);
    else
        raft_send_append(r, pr, false);
    raft_check_invariants(r);
    return RAFT_OK;
}

/* Sends TIMEOUT_NOW once the transfer target holds the leader's whole log. */
void raft_transfer_check(struct raft *r, const struct raft_progress *pr)
{
    if (r->transfer_target == 0 || pr->id != r->transfer_target) return;
    if (pr->match != raft_log_last(&r->log)) return;
    ASSERT(r->role == RAFT_LEADER);
    ASSERT(pr->role == RAFT_VOTER);
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_TIMEOUT_NOW, pr->id);
    raft_send(r, &m);
}

void raft_step_timeout_now(struct raft *r, const struct raft_msg *m)
{
    ASSERT(m->type == RAFT_MSG_TIMEOUT_NOW);
    ASSERT(m->term == r->term);
    if (r->role == RAFT_LEADER || !raft_can_campaign(r)) return;
    if (r->install_state != RAFT_INSTALL_NONE) return;
    raft_campaign_vote(r, true); /* §3.10: skips pre-vote, carries the transfer flag */
}
