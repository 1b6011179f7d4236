/* raft_step.c — one incoming message: validation, the term rules of §5.1 (with the pre-vote
 * and lease exceptions of thesis §9.6 and §6.2), then dispatch by type and role. */
#include "raft/raft_int.h"

static bool raft_entries_valid(const struct raft_msg *m)
{
    if (m->entry_count > 0 && m->entries == NULL) return false;
    if (m->log_term > m->term) return false;
    if (m->index + m->entry_count < m->index) return false; /* wraps */
    u64 prev_term = m->log_term;
    for (u32 i = 0; i < m->entry_count; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->index != m->index + 1 + i) return false;
        if (e->term < prev_term || e->term > m->term) return false;
        if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_CONF) return false;
        if (e->len > 0 && e->data == NULL) return false;
        prev_term = e->term;
    }
    return true;
}

static bool raft_snap_msg_valid(const struct raft_msg *m)
{
    if (m->snap.conf.count > RAFT_MEMBERS_MAX || m->snap.index == 0) return false;
    if (m->snap.term > m->term) return false;
    if (m->type == RAFT_MSG_SNAP) {
        if (m->snap_len > 0 && m->snap_data == NULL) return false;
        if (m->snap_offset + m->snap_len < m->snap_offset) return false;
    }
    return true;
}

/* ASSERT-free validation of what a peer sent: malformed messages are dropped. */
static bool raft_msg_valid(const struct raft *r, const struct raft_msg *m)
{
    if (m->type == 0 || m->type >= RAFT_MSG_TYPE_COUNT_) return false;
    if (m->to != r->cfg.id || m->from == 0 || m->from == r->cfg.id) return false;
    if (m->term == 0) return false;
    if (m->type == RAFT_MSG_APP) return raft_entries_valid(m);
    if (m->type == RAFT_MSG_SNAP || m->type == RAFT_MSG_SNAP_RESP) return raft_snap_msg_valid(m);
    return true;
}

/* m->term > r->term: returns false when the message is to be ignored. */
static bool raft_step_higher_term(struct raft *r, const struct raft_msg *m)
{
    if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
        /* §6.2/§9.6: a member that heard from a leader within an election timeout ignores
         * (pre-)votes, unless the candidate carries a leadership transfer. */
        bool in_lease = r->leader != 0 && r->election_elapsed < r->cfg.election_ticks;
        if (in_lease && !m->transfer) return false;
    }
    if (m->type == RAFT_MSG_PREVOTE) return true; /* a pre-vote never changes our term */
    if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) return true;
    bool from_leader =
        m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_SNAP;
    raft_become_follower(r, m->term, from_leader ? m->from : 0);
    ASSERT(r->term == m->term);
    return true;
}

/* m->term < r->term: tell a stale leader or pre-candidate about the newer term. */
static void raft_step_lower_term(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg resp;
    if (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_SNAP) {
        raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
        raft_send(r, &resp);
    } else if (m->type == RAFT_MSG_PREVOTE) {
        raft_msg_init(r, &resp, RAFT_MSG_PREVOTE_RESP, m->from);
        resp.reject = true;
        raft_send(r, &resp);
    }
    ASSERT(m->term < r->term);
}

/* A message of the current leader: returns false when it is to be ignored. */
static bool raft_accept_leader(struct raft *r, const struct raft_msg *m)
{
    if (r->role == RAFT_LEADER) return false; /* two leaders in one term cannot happen */
    if (r->role != RAFT_FOLLOWER || r->leader != m->from) {
        raft_become_follower(r, r->term, m->from);
    }
    r->election_elapsed = 0;
    ASSERT(r->leader == m->from);
    return true;
}

static void raft_step_leader_msg(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER) return;
    if (raft_progress_find(r, m->from) == NULL) return; /* not a member */
    switch (m->type) {
    case RAFT_MSG_APP_RESP:
        raft_step_append_resp(r, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        raft_step_heartbeat_resp(r, m);
        break;
    case RAFT_MSG_SNAP_RESP:
        raft_step_snap_resp(r, m);
        break;
    default:
        UNREACHABLE();
    }
}

static void raft_step_dispatch(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APP:
        if (raft_accept_leader(r, m)) raft_step_append(r, m);
        break;
    case RAFT_MSG_HEARTBEAT:
        if (raft_accept_leader(r, m)) raft_step_heartbeat(r, m);
        break;
    case RAFT_MSG_SNAP:
        if (raft_accept_leader(r, m)) raft_step_snap(r, m);
        break;
    case RAFT_MSG_APP_RESP:
    case RAFT_MSG_HEARTBEAT_RESP:
    case RAFT_MSG_SNAP_RESP:
        raft_step_leader_msg(r, m);
        break;
    case RAFT_MSG_PREVOTE:
    case RAFT_MSG_VOTE:
        raft_step_vote(r, m);
        break;
    case RAFT_MSG_PREVOTE_RESP:
    case RAFT_MSG_VOTE_RESP:
        raft_step_vote_resp(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        raft_step_timeout_now(r, m);
        break;
    case RAFT_MSG_READ_INDEX:
        raft_step_read_index(r, m);
        break;
    case RAFT_MSG_READ_INDEX_RESP:
        raft_step_read_index_resp(r, m);
        break;
    default:
        break;
    }
}

void raft_step(struct raft *r, const struct raft_msg *m)
{
    ASSERT(r != NULL && m != NULL);
    ASSERT(!r->in_ready);
    raft_check_invariants(r);
    if (!raft_msg_valid(r, m)) return;
    if (m->term > r->term) {
        if (!raft_step_higher_term(r, m)) return;
    } else if (m->term < r->term) {
        raft_step_lower_term(r, m);
        return;
    }
    raft_step_dispatch(r, m);
    raft_check_invariants(r);
}
