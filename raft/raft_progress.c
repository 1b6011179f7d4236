/* raft_progress.c — a leader's view of each member (etcd's Progress, thesis §10.2).
 *
 * PROBE: one APP at a time until the follower's match is found. REPLICATE: APP messages are
 * pipelined, next moves optimistically, and a window of at most config.inflight_msgs_max
 * messages and config.inflight_bytes_max entry bytes is in flight. SNAPSHOT: the follower
 * needs entries that were compacted away; chunks of the snapshot are sent instead. */
#include "raft/raft_int.h"

#include <stdint.h>
#include <string.h>

struct raft_progress *raft_progress_find(struct raft *r, u64 id)
{
    for (u32 i = 0; i < r->pr_count; i++) {
        if (r->prs[i].id == id) return &r->prs[i];
    }
    return NULL;
}

static void raft_progress_infl_clear(struct raft_progress *pr)
{
    pr->infl_head = 0;
    pr->infl_count = 0;
    pr->infl_bytes = 0;
}

/* A fresh progress when this member becomes leader: next after the last entry, nothing
 * matched yet, probing. */
void raft_progress_reset(struct raft *r, struct raft_progress *pr)
{
    u64 id = pr->id;
    u8 role = pr->role;
    memset(pr, 0, offsetof(struct raft_progress, infl_last));
    pr->id = id;
    pr->role = role;
    pr->state = RAFT_PROGRESS_PROBE;
    pr->next = raft_log_last(&r->log) + 1;
    pr->snap_end = UINT64_MAX;
    if (id == r->cfg.id) {
        pr->match = r->log.persisted;
        pr->recent_active = true;
    }
    ASSERT(pr->next > pr->match);
}

/* Makes the progress array follow r->conf: drops members that left, adds new ones (probing
 * from the end of the log), updates roles. */
void raft_progress_sync(struct raft *r)
{
    u32 kept = 0;
    for (u32 i = 0; i < r->pr_count; i++) {
        if (!raft_conf_has(&r->conf, r->prs[i].id)) continue;
        if (kept != i) r->prs[kept] = r->prs[i];
        kept++;
    }
    r->pr_count = kept;
    for (u32 i = 0; i < r->conf.count; i++) {
        const struct raft_member *m = &r->conf.members[i];
        struct raft_progress *pr = raft_progress_find(r, m->id);
        if (pr == NULL) {
            ASSERT(r->pr_count < RAFT_MEMBERS_MAX);
            pr = &r->prs[r->pr_count++];
            pr->id = m->id;
            pr->role = m->role;
            raft_progress_reset(r, pr);
            if (m->id != r->cfg.id) pr->match = 0;
        }
        pr->role = m->role;
    }
    ASSERT(r->pr_count == r->conf.count);
}

void raft_progress_become_probe(struct raft *r, struct raft_progress *pr)
{
    if (pr->state == RAFT_PROGRESS_SNAPSHOT) {
        u64 after = KEEL_MAX(pr->match + 1, pr->snap_index + 1);
        pr->next = KEEL_MIN(after, raft_log_last(&r->log) + 1);
        pr->next = KEEL_MAX(pr->next, pr->match + 1);
    } else {
        pr->next = pr->match + 1;
    }
    pr->state = RAFT_PROGRESS_PROBE;
    pr->probe_sent = false;
    raft_progress_infl_clear(pr);
    ASSERT(pr->next > pr->match);
}

void raft_progress_become_replicate(struct raft_progress *pr)
{
    pr->state = RAFT_PROGRESS_REPLICATE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    raft_progress_infl_clear(pr);
    ASSERT(pr->infl_count == 0);
}

void raft_progress_become_snapshot(struct raft_progress *pr, u64 snap_index)
{
    ASSERT(snap_index > 0);
    pr->state = RAFT_PROGRESS_SNAPSHOT;
    pr->probe_sent = false;
    pr->snap_wanted = false;
    raft_progress_infl_clear(pr);
    pr->snap_index = snap_index;
    pr->snap_next = 0;
    pr->snap_acked = 0;
    pr->snap_end = UINT64_MAX;
    pr->snap_nack = UINT64_MAX;
    pr->snap_idle_ticks = 0;
    ASSERT(pr->state == RAFT_PROGRESS_SNAPSHOT);
}

bool raft_progress_full(const struct raft *r, const struct raft_progress *pr)
{
    if (pr->infl_count >= r->cfg.inflight_msgs_max) return true;
    return pr->infl_bytes >= r->cfg.inflight_bytes_max;
}

void raft_progress_infl_add(struct raft_progress *pr, u64 last, u32 bytes)
{
    ASSERT(pr->infl_count < RAFT_INFLIGHT_CAP);
    ASSERT(pr->infl_count == 0 ||
           last > pr->infl_last[(pr->infl_head + pr->infl_count - 1) % RAFT_INFLIGHT_CAP]);
    u32 slot = (pr->infl_head + pr->infl_count) % RAFT_INFLIGHT_CAP;
    pr->infl_last[slot] = last;
    pr->infl_size[slot] = bytes;
    pr->infl_count++;
    pr->infl_bytes += bytes;
}

/* The follower acknowledged everything up to index: frees the messages it covers. */
void raft_progress_infl_free_to(struct raft_progress *pr, u64 index)
{
    while (pr->infl_count > 0 && pr->infl_last[pr->infl_head] <= index) {
        raft_progress_infl_free_first(pr);
    }
    ASSERT(pr->infl_count == 0 || pr->infl_last[pr->infl_head] > index);
}

void raft_progress_infl_free_first(struct raft_progress *pr)
{
    if (pr->infl_count == 0) return;
    ASSERT(pr->infl_bytes >= pr->infl_size[pr->infl_head]);
    pr->infl_bytes -= pr->infl_size[pr->infl_head];
    pr->infl_head = (pr->infl_head + 1) % RAFT_INFLIGHT_CAP;
    pr->infl_count--;
}

/* An acknowledgement of index: true when it raised match. */
bool raft_progress_update(struct raft_progress *pr, u64 index)
{
    bool raised = false;
    if (index > pr->match) {
        pr->match = index;
        raised = true;
        pr->probe_sent = false;
        pr->snap_wanted = false;
    }
    if (pr->next < index + 1) pr->next = index + 1;
    ASSERT(pr->next > pr->match);
    return raised;
}
