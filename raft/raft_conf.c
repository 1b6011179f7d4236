/* raft_conf.c — membership changes (thesis §4.1, single-server changes).
 *
 * One change at a time: a leader accepts a change only once the previous one is applied and
 * an entry of its own term is committed. A change takes effect when its entry is applied (at
 * raft_advance). Learners receive the log but never vote nor count in a quorum. A leader that
 * removed itself steps down once the change is applied.
 *
 * Encoding of a struct raft_conf_change (the data of a RAFT_ENTRY_CONF entry), little-endian:
 *   OFFSET SIZE DESCRIPTION
 *   0      1    version (1)
 *   1      1    type (enum raft_conf_change_type)
 *   2      8    id
 *   10     4    context_len (<= RAFT_CONF_CONTEXT_MAX)
 *   14     n    context
 */
#include "raft/raft_int.h"

#include <string.h>

#define RAFT_CONF_VERSION     1
#define RAFT_CONF_HEADER_SIZE 14

static void raft_put_le(u8 *p, u64 v, u32 n)
{
    for (u32 i = 0; i < n; i++) p[i] = (u8)(v >> (8 * i));
}

static u64 raft_get_le(const u8 *p, u32 n)
{
    u64 v = 0;
    for (u32 i = 0; i < n; i++) v |= (u64)p[i] << (8 * i);
    return v;
}

size_t raft_conf_change_encode(const struct raft_conf_change *cc, u8 *buf, size_t cap)
{
    ASSERT(cc != NULL);
    ASSERT(cc->context_len <= RAFT_CONF_CONTEXT_MAX);
    size_t size = RAFT_CONF_HEADER_SIZE + (size_t)cc->context_len;
    if (cap < size) return 0;
    buf[0] = RAFT_CONF_VERSION;
    buf[1] = cc->type;
    raft_put_le(buf + 2, cc->id, 8);
    raft_put_le(buf + 10, cc->context_len, 4);
    if (cc->context_len) memcpy(buf + RAFT_CONF_HEADER_SIZE, cc->context, cc->context_len);
    ASSERT(raft_get_le(buf + 2, 8) == cc->id);
    return size;
}

int raft_conf_change_decode(const u8 *buf, size_t len, struct raft_conf_change *cc)
{
    ASSERT(cc != NULL);
    memset(cc, 0, sizeof(*cc));
    if (buf == NULL || len < RAFT_CONF_HEADER_SIZE || buf[0] != RAFT_CONF_VERSION) {
        return RAFT_ECORRUPT;
    }
    if (buf[1] < RAFT_CC_ADD_VOTER || buf[1] > RAFT_CC_REMOVE) return RAFT_ECORRUPT;
    u64 ctx_len = raft_get_le(buf + 10, 4);
    if (ctx_len > RAFT_CONF_CONTEXT_MAX || len != RAFT_CONF_HEADER_SIZE + ctx_len) {
        return RAFT_ECORRUPT;
    }
    cc->type = buf[1];
    cc->id = raft_get_le(buf + 2, 8);
    if (cc->id == 0) return RAFT_ECORRUPT;
    cc->context_len = (u32)ctx_len;
    if (ctx_len) memcpy(cc->context, buf + RAFT_CONF_HEADER_SIZE, ctx_len);
    ASSERT(cc->context_len <= RAFT_CONF_CONTEXT_MAX);
    return RAFT_OK;
}

bool raft_conf_has(const struct raft_conf *c, u64 id)
{
    ASSERT(c->count <= RAFT_MEMBERS_MAX);
    for (u32 i = 0; i < c->count; i++) {
        if (c->members[i].id == id) return true;
    }
    return false;
}

u32 raft_conf_voters(const struct raft_conf *c)
{
    ASSERT(c->count <= RAFT_MEMBERS_MAX);
    u32 n = 0;
    for (u32 i = 0; i < c->count; i++) n += c->members[i].role == RAFT_VOTER;
    return n;
}

static i32 raft_conf_find(const struct raft_conf *c, u64 id)
{
    for (u32 i = 0; i < c->count; i++) {
        if (c->members[i].id == id) return (i32)i;
    }
    return -1;
}

/* Applies cc to conf; false (conf unchanged) when it would change nothing or is invalid. */
bool raft_conf_apply(struct raft_conf *conf, const struct raft_conf_change *cc)
{
    ASSERT(conf->count <= RAFT_MEMBERS_MAX);
    ASSERT(cc != NULL);
    i32 at = raft_conf_find(conf, cc->id);
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
    case RAFT_CC_ADD_LEARNER:
        if (at >= 0 || conf->count >= RAFT_MEMBERS_MAX || cc->id == 0) return false;
        conf->members[conf->count].id = cc->id;
        conf->members[conf->count].role = cc->type == RAFT_CC_ADD_VOTER ? RAFT_VOTER : RAFT_LEARNER;
        conf->count++;
        return true;
    case RAFT_CC_PROMOTE:
        if (at < 0 || conf->members[at].role != RAFT_LEARNER) return false;
        conf->members[at].role = RAFT_VOTER;
        return true;
    case RAFT_CC_REMOVE:
        if (at < 0) return false;
        if (conf->members[at].role == RAFT_VOTER && raft_conf_voters(conf) == 1) return false;
        for (u32 i = (u32)at; i + 1 < conf->count; i++) conf->members[i] = conf->members[i + 1];
        conf->count--;
        return true;
    default:
        return false;
    }
}

/* A committed CONF entry is applied (raft_advance, or a restart replaying its log). */
void raft_conf_apply_entry(struct raft *r, const struct raft_entry *e)
{
    ASSERT(e->type == RAFT_ENTRY_CONF);
    if (e->index <= r->conf_index) return; /* already part of the configuration */
    r->conf_index = e->index;
    struct raft_conf_change cc;
    if (raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK) return;
    if (!raft_conf_apply(&r->conf, &cc)) return;
    if (r->role != RAFT_LEADER) return;
    if (!raft_is_voter(r, r->cfg.id)) {
        raft_become_follower(r, r->term, 0); /* removed: step down (§4.2.2) */
        return;
    }
    raft_progress_sync(r);
    if (r->transfer_target != 0 && !raft_is_voter(r, r->transfer_target)) r->transfer_target = 0;
    raft_bcast_append(r, false);
    raft_maybe_commit(r);
    ASSERT(r->pr_count == r->conf.count);
}

/* A CONF entry in the log that is not applied yet. */
bool raft_conf_pending(const struct raft *r)
{
    u64 last = raft_log_last(&r->log);
    for (u64 i = KEEL_MAX(r->applied, r->log.snap_index) + 1; i <= last; i++) {
        if (raft_log_get(&r->log, i)->type == RAFT_ENTRY_CONF) return true;
    }
    return false;
}

int raft_propose_conf(struct raft *r, const struct raft_conf_change *cc, u64 *index)
{
    ASSERT(!r->in_ready);
    ASSERT(cc != NULL);
    raft_check_invariants(r);
    if (r->role != RAFT_LEADER) return RAFT_ENOT_LEADER;
    if (r->transfer_target != 0) return RAFT_EBUSY;
    if (!raft_committed_in_term(r) || raft_conf_pending(r)) return RAFT_ECONF_PENDING;
    if (cc->context_len > RAFT_CONF_CONTEXT_MAX || cc->id == 0) return RAFT_EINVALID;
    struct raft_conf next = r->conf;
    if (!raft_conf_apply(&next, cc)) return RAFT_EINVALID;
    if (cc->type == RAFT_CC_PROMOTE) {
        /* etcd's rule: only a learner in sync with the leader becomes a voter (a voter that
         * cannot catch up would stall commitment). */
        const struct raft_progress *pr = raft_progress_find(r, cc->id);
        ASSERT(pr != NULL);
        if (pr->match < r->commit) return RAFT_ECONF_PENDING;
    }
    u8 buf[RAFT_CONF_HEADER_SIZE + RAFT_CONF_CONTEXT_MAX];
    size_t n = raft_conf_change_encode(cc, buf, sizeof(buf));
    ASSERT(n > 0);
    struct raft_entry e = {.term = r->term, .index = raft_log_last(&r->log) + 1};
    e.type = RAFT_ENTRY_CONF;
    e.len = (u32)n;
    e.data = buf;
    int rc = raft_log_append(r, &e);
    if (rc != RAFT_OK) return rc;
    if (index) *index = e.index;
    raft_bcast_append(r, false);
    raft_check_invariants(r);
    return RAFT_OK;
}
