/* raft_replicate.c — log replication and commitment (Raft paper §5.3, §5.4.2; thesis §10.2).
 *
 * The leader sends AppendEntries batched to config.append_bytes_max (at least one entry) and,
 * in REPLICATE state, pipelined within the in-flight window. A follower rejects an APP whose
 * previous entry does not match, with a hint (the largest index <= its own whose term is <=
 * the leader's previous term) so the leader skips a whole term per round trip. An entry
 * commits once a quorum of voters holds it durably (the leader's own match is what
 * raft_persisted reported) and it is of the leader's current term (§5.4.2). */
#include "raft/raft_int.h"

/* ---- leader: sending ------------------------------------------------------------------- */

/* Entries from next to send in one APP: bytes up to append_bytes_max, at least one. */
static u32 raft_append_batch(const struct raft *r, u64 next, u64 *bytes_out)
{
    u64 last = raft_log_last(&r->log);
    u64 bytes = 0;
    u32 count = 0;
    for (u64 i = next; i <= last; i++) {
        u32 len = raft_log_get(&r->log, i)->len;
        if (count > 0 && bytes + len > r->cfg.append_bytes_max) break;
        bytes += len;
        count++;
        if (bytes >= r->cfg.append_bytes_max) break;
    }
    *bytes_out = bytes;
    ASSERT(count <= last + 1 - next || next > last);
    return count;
}

/* One APP from pr->next; false when nothing was sent. */
static bool raft_send_append_one(struct raft *r, struct raft_progress *pr, bool send_empty)
{
    ASSERT(pr->state != RAFT_PROGRESS_SNAPSHOT);
    ASSERT(pr->next > pr->match && pr->next <= raft_log_last(&r->log) + 1);
    u64 prev_term;
    bool known = raft_log_term(&r->log, pr->next - 1, &prev_term);
    /* Compacted away (thesis §5), or the follower needs the log from its very start, which does
     * not hold the bootstrap configuration: the latest snapshot does. */
    if (!known || (pr->next == 1 && r->snap_meta.index > 0)) {
        raft_snap_need(r, pr);
        return false;
    }
    u64 bytes = 0;
    u32 count = raft_append_batch(r, pr->next, &bytes);
    if (count == 0 && !send_empty) return false;
    struct raft_msg m;
    raft_msg_init(r, &m, RAFT_MSG_APP, pr->id);
    m.index = pr->next - 1;
    m.log_term = prev_term;
    m.commit = r->commit;
    m.entry_count = count;
    if (!raft_send(r, &m)) return false;
    pr->sent_commit = KEEL_MAX(pr->sent_commit, KEEL_MIN(r->commit, pr->next - 1 + count));
    if (pr->state == RAFT_PROGRESS_REPLICATE && count > 0) {
        pr->next += count;
        raft_progress_infl_add(pr, pr->next - 1, (u32)KEEL_MIN(bytes, UINT32_MAX));
    } else if (pr->state == RAFT_PROGRESS_PROBE) {
        pr->probe_sent = true;
    }
    return true;
}

void raft_send_append(struct raft *r, struct raft_progress *pr, bool send_empty)
{
    ASSERT(r->role == RAFT_LEADER);
    ASSERT(pr->id != r->cfg.id);
    switch (pr->state) {
    case RAFT_PROGRESS_SNAPSHOT:
        raft_snap_send(r, pr);
        return;
    case RAFT_PROGRESS_PROBE:
        if (!pr->probe_sent) raft_send_append_one(r, pr, true);
        return;
    default:
        break;
    }
    u64 last = raft_log_last(&r->log);
    bool sent = false;
    while (pr->state == RAFT_PROGRESS_REPLICATE && !raft_progress_full(r, pr) && pr->next <= last) {
        if (!raft_send_append_one(r, pr, false)) return;
        sent = true;
    }
    if (!sent && send_empty && pr->state == RAFT_PROGRESS_REPLICATE) {
        raft_send_append_one(r, pr, true); /* carries the new commit index */
    }
}

void raft_bcast_append(struct raft *r, bool send_empty)
{
    ASSERT(r->role == RAFT_LEADER);
    for (u32 i = 0; i < r->pr_count; i++) {
        if (r->prs[i].id != r->cfg.id) raft_send_append(r, &r->prs[i], send_empty);
    }
}

/* Heartbeats carry min(commit, match) (a follower may not hold the leader's commit index yet)
 * and the current read round (§6.4). */
void raft_bcast_heartbeat(struct raft *r)
{
    ASSERT(r->role == RAFT_LEADER);
    raft_read_start_round(r);
    for (u32 i = 0; i < r->pr_count; i++) {
        const struct raft_progress *pr = &r->prs[i];
        if (pr->id == r->cfg.id) continue;
        struct raft_msg m;
        raft_msg_init(r, &m, RAFT_MSG_HEARTBEAT, pr->id);
        m.commit = KEEL_MIN(r->commit, pr->match);
        m.context = r->read_round;
        if (raft_send(r, &m)) r->prs[i].sent_commit = KEEL_MAX(pr->sent_commit, m.commit);
    }
}

/* ---- leader: commit -------------------------------------------------------------------- */

bool raft_committed_in_term(const struct raft *r)
{
    return r->role == RAFT_LEADER && r->commit >= r->term_start_index;
}

static void raft_commit_to(struct raft *r, u64 index)
{
    ASSERT(index > r->commit);
    ASSERT(index <= raft_log_last(&r->log));
    bool first_in_term = r->commit < r->term_start_index && index >= r->term_start_index;
    for (u64 i = r->commit + 1; i <= index; i++) {
        if (i < r->term_start_index) continue;
        u32 len = raft_log_get(&r->log, i)->len;
        r->uncommitted_bytes -= KEEL_MIN(r->uncommitted_bytes, len);
    }
    r->commit = index;
    if (first_in_term) raft_read_advance(r);
}

/* §5.3/§5.4.2: the largest index a quorum of voters holds durably, if of the current term. */
bool raft_maybe_commit(struct raft *r)
{
    ASSERT(r->role == RAFT_LEADER);
    u64 matches[RAFT_MEMBERS_MAX];
    u32 n = 0;
    for (u32 i = 0; i < r->pr_count; i++) {
        const struct raft_progress *pr = &r->prs[i];
        if (pr->role != RAFT_VOTER) continue;
        matches[n++] = pr->id == r->cfg.id ? r->log.persisted : pr->match;
    }
    if (n == 0) return false;
    for (u32 i = 1; i < n; i++) { /* insertion sort, descending */
        u64 v = matches[i];
        u32 j = i;
        for (; j > 0 && matches[j - 1] < v; j--) matches[j] = matches[j - 1];
        matches[j] = v;
    }
    u64 q = matches[raft_quorum(r) - 1];
    if (q <= r->commit) return false;
    u64 term = 0;
    bool known = raft_log_term(&r->log, q, &term);
    ASSERT(known);
    if (term != r->term) return false; /* §5.4.2: never commit older terms by counting */
    raft_commit_to(r, q);
    ASSERT(r->commit == q);
    return true;
}

void raft_persisted(struct raft *r, u64 index, u64 term)
{
    ASSERT(!r->in_ready);
    raft_check_invariants(r);
    u64 have = 0;
    if (!raft_log_term(&r->log, index, &have) || have != term) return; /* stale report */
    u64 p = KEEL_MIN(index, r->log.unstable_from - 1);
    if (p <= r->log.persisted) return;
    r->log.persisted = p;
    if (r->role == RAFT_LEADER) {
        struct raft_progress *self = raft_progress_find(r, r->cfg.id);
        if (self != NULL) self->match = KEEL_MAX(self->match, p);
        if (raft_maybe_commit(r)) raft_bcast_append(r, true);
    }
    raft_check_invariants(r);
}

/* ---- leader: proposals ----------------------------------------------------------------- */

int raft_propose(struct raft *r, const u8 *data, u32 len, u64 *index, u64 *term)
{
    ASSERT(!r->in_ready);
    ASSERT(len == 0 || data != NULL);
    raft_check_invariants(r);
    if (r->role != RAFT_LEADER) return RAFT_ENOT_LEADER;
    if (len > r->cfg.entry_bytes_max) return RAFT_EINVALID;
    if (r->transfer_target != 0) return RAFT_EBUSY;
    if (r->uncommitted_bytes + len > r->cfg.uncommitted_bytes_max) return RAFT_EBUSY;
    struct raft_entry e = {.term = r->term, .index = raft_log_last(&r->log) + 1};
    e.type = RAFT_ENTRY_NORMAL;
    e.len = len;
    e.data = data;
    int rc = raft_log_append(r, &e);
    if (rc != RAFT_OK) return rc;
    r->uncommitted_bytes += len;
    if (index) *index = e.index;
    if (term) *term = e.term;
    raft_bcast_append(r, false);
    raft_check_invariants(r);
    return RAFT_OK;
}

/* ---- follower -------------------------------------------------------------------------- */

static void raft_send_append_resp(struct raft *r, u64 to, u64 index)
{
    struct raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, to);
    resp.index = index;
    raft_send_after(r, &resp);
}

/* Appends what the log lacks of m's entries (truncating a conflicting suffix, §5.3);
 * returns the last index now known to match the leader's log. */
static u64 raft_append_entries(struct raft *r, const struct raft_msg *m)
{
    u32 i = 0;
    for (; i < m->entry_count; i++) { /* skip what the log already holds */
        const struct raft_entry *e = &m->entries[i];
        u64 t;
        if (!raft_log_term(&r->log, e->index, &t) || t != e->term) break;
    }
    if (i < m->entry_count && m->entries[i].index <= raft_log_last(&r->log)) {
        ASSERT(m->entries[i].index > r->commit); /* a committed entry never conflicts */
        raft_log_truncate(r, m->entries[i].index);
    }
    for (; i < m->entry_count; i++) {
        if (raft_log_append(r, &m->entries[i]) != RAFT_OK) break; /* ENOMEM: take a prefix */
    }
    return i == 0 ? m->index : m->entries[i - 1].index;
}

void raft_step_append(struct raft *r, const struct raft_msg *m)
{
    ASSERT(r->role == RAFT_FOLLOWER);
    if (r->install_state != RAFT_INSTALL_NONE) return; /* a snapshot install is under way */
    if (!r->conf_base) {
        /* Joined with an empty bootstrap: the configuration must come from a snapshot, so no
         * entry is taken; a reject at index 0 tells the leader to send one. */
        struct raft_msg resp;
        raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
        resp.index = m->index;
        resp.reject = true;
        raft_send_after(r, &resp);
        return;
    }
    if (m->index < r->commit) {
        raft_send_append_resp(r, m->from, r->commit);
        return;
    }
    u64 t;
    if (raft_log_term(&r->log, m->index, &t) && t == m->log_term) {
        u64 last_new = raft_append_entries(r, m);
        u64 commit = KEEL_MIN(m->commit, last_new);
        if (commit > r->commit) r->commit = commit;
        raft_send_append_resp(r, m->from, last_new);
        return;
    }
    struct raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_APP_RESP, m->from);
    resp.index = m->index;
    resp.reject = true;
    resp.reject_hint = raft_log_conflict_hint(&r->log, m->index, m->log_term);
    bool known = raft_log_term(&r->log, resp.reject_hint, &resp.log_term);
    ASSERT(known);
    raft_send_after(r, &resp);
}

void raft_step_heartbeat(struct raft *r, const struct raft_msg *m)
{
    ASSERT(r->role == RAFT_FOLLOWER);
    u64 commit = KEEL_MIN(m->commit, raft_log_last(&r->log));
    if (commit > r->commit && r->install_state == RAFT_INSTALL_NONE) r->commit = commit;
    struct raft_msg resp;
    raft_msg_init(r, &resp, RAFT_MSG_HEARTBEAT_RESP, m->from);
    resp.context = m->context;
    raft_send(r, &resp);
}

/* ---- leader: answers ------------------------------------------------------------------- */

static void raft_step_append_reject(struct raft *r, struct raft_progress *pr,
                                    const struct raft_msg *m)
{
    if (pr->state == RAFT_PROGRESS_SNAPSHOT) return;
    if (pr->state == RAFT_PROGRESS_REPLICATE && m->index <= pr->match) return; /* stale */
    if (pr->state == RAFT_PROGRESS_PROBE && m->index != pr->next - 1) return;  /* stale */
    if (m->index == 0) {
        /* Only a member without a configuration (joined with an empty bootstrap) rejects
         * index 0: the configuration is in a snapshot only. Without one, it waits for
         * raft_compact (retried at heartbeat answers). */
        raft_snap_need(r, pr);
        return;
    }
    u64 hint = raft_log_conflict_hint(&r->log, m->reject_hint, m->log_term);
    u64 next = KEEL_MIN(m->index, hint + 1);
    raft_progress_become_probe(r, pr);
    pr->next = KEEL_MAX(next, pr->match + 1);
    raft_send_append(r, pr, true);
    ASSERT(pr->next > pr->match);
}

void raft_step_append_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *pr = raft_progress_find(r, m->from);
    ASSERT(pr != NULL);
    pr->recent_active = true;
    if (m->reject) {
        raft_step_append_reject(r, pr, m);
        return;
    }
    if (m->index > raft_log_last(&r->log)) return; /* cannot be an answer of this leader */
    bool raised = raft_progress_update(pr, m->index);
    if (pr->state == RAFT_PROGRESS_REPLICATE) raft_progress_infl_free_to(pr, m->index);
    if (pr->state == RAFT_PROGRESS_PROBE && raised) raft_progress_become_replicate(pr);
    if (pr->state == RAFT_PROGRESS_SNAPSHOT && pr->match >= pr->snap_index) {
        raft_progress_become_probe(r, pr);
        raft_progress_become_replicate(pr);
    }
    if (pr->state == RAFT_PROGRESS_PROBE) pr->probe_sent = false;
    if (raised && raft_maybe_commit(r)) {
        raft_bcast_append(r, true);
    } else {
        /* an empty APP when only the commit index is news to it */
        raft_send_append(r, pr, pr->sent_commit < KEEL_MIN(r->commit, pr->match));
    }
    raft_transfer_check(r, pr);
}

void raft_step_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *pr = raft_progress_find(r, m->from);
    ASSERT(pr != NULL);
    pr->recent_active = true;
    pr->probe_sent = false;
    if (m->context > pr->read_ack && m->context <= r->read_round) pr->read_ack = m->context;
    if (pr->state == RAFT_PROGRESS_REPLICATE && raft_progress_full(r, pr)) {
        raft_progress_infl_free_first(pr); /* a lost APP must not stall the window forever */
    }
    /* A follower that lags gets an APP even when next is past the end: in REPLICATE an empty
     * one at next - 1 is rejected by a follower that lost messages, which turns it to PROBE. */
    if (pr->match < raft_log_last(&r->log)) raft_send_append(r, pr, true);
    raft_read_advance(r);
}
