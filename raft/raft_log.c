/* raft_log.c — the in-memory log since the last compaction (Raft paper §5.3, thesis §5).
 *
 * Entries are held in one array (ents[start .. start + count)); each entry's data is a copy
 * allocated through config.alloc and owned by the log. unstable_from marks what a ready has
 * not handed to storage yet, truncate_from a stored suffix the next ready must drop, persisted
 * what storage reported durable. */
#include "raft/raft_int.h"

#include <string.h>

void raft_log_init(struct raft_log *log, u64 snap_index, u64 snap_term)
{
    ASSERT(log->count == 0);
    log->start = 0;
    log->snap_index = snap_index;
    log->snap_term = snap_term;
    log->unstable_from = snap_index + 1;
    log->truncate_from = 0;
    log->persisted = snap_index;
    ASSERT(raft_log_last(log) == snap_index);
}

static void raft_log_free_entry(struct raft *r, struct raft_entry *e)
{
    if (e->len > 0) raft_free(r, (void *)e->data, e->len);
    e->data = NULL;
    e->len = 0;
}

void raft_log_release(struct raft *r)
{
    struct raft_log *log = &r->log;
    for (u64 i = 0; i < log->count; i++) raft_log_free_entry(r, &log->ents[log->start + i]);
    raft_free(r, log->ents, log->cap * sizeof(struct raft_entry));
    log->ents = NULL;
    log->count = 0;
    log->cap = 0;
    log->start = 0;
}

u64 raft_log_last(const struct raft_log *log)
{
    return log->snap_index + log->count;
}

u64 raft_log_last_term(const struct raft_log *log)
{
    if (log->count == 0) return log->snap_term;
    return log->ents[log->start + log->count - 1].term;
}

bool raft_log_term(const struct raft_log *log, u64 index, u64 *term)
{
    if (index == log->snap_index) {
        *term = log->snap_term;
        return true;
    }
    if (index < log->snap_index || index > raft_log_last(log)) return false;
    *term = raft_log_get(log, index)->term;
    return true;
}

struct raft_entry *raft_log_get(const struct raft_log *log, u64 index)
{
    ASSERT(index > log->snap_index);
    ASSERT(index <= raft_log_last(log));
    struct raft_entry *e = &log->ents[log->start + (index - log->snap_index - 1)];
    ASSERT(e->index == index);
    return e;
}

/* Room for one more entry at the end: slides the live entries down or doubles the array. */
static int raft_log_reserve(struct raft *r)
{
    struct raft_log *log = &r->log;
    if (log->start + log->count < log->cap) return RAFT_OK;
    if (log->start > 0 && log->count < log->cap / 2) {
        memmove(log->ents, log->ents + log->start, log->count * sizeof(struct raft_entry));
        log->start = 0;
        return RAFT_OK;
    }
    u64 cap = log->cap ? log->cap * 2 : 64;
    struct raft_entry *ents = raft_alloc(r, cap * sizeof(struct raft_entry));
    if (ents == NULL) return RAFT_ENOMEM;
    if (log->count) memcpy(ents, log->ents + log->start, log->count * sizeof(struct raft_entry));
    raft_free(r, log->ents, log->cap * sizeof(struct raft_entry));
    log->ents = ents;
    log->cap = cap;
    log->start = 0;
    ASSERT(log->count < log->cap);
    return RAFT_OK;
}

/* Appends a copy of e at the end (e->index must be last + 1). ENOMEM leaves the log as it was. */
int raft_log_append(struct raft *r, const struct raft_entry *e)
{
    struct raft_log *log = &r->log;
    ASSERT(e->index == raft_log_last(log) + 1);
    ASSERT(e->term >= raft_log_last_term(log));
    ASSERT(e->len == 0 || e->data != NULL);
    u8 *data = NULL;
    if (e->len > 0) {
        data = raft_alloc(r, e->len);
        if (data == NULL) return RAFT_ENOMEM;
        memcpy(data, e->data, e->len);
    }
    if (raft_log_reserve(r) != RAFT_OK) {
        raft_free(r, data, e->len);
        return RAFT_ENOMEM;
    }
    struct raft_entry *dst = &log->ents[log->start + log->count];
    *dst = *e;
    dst->data = data;
    log->count++;
    ASSERT(raft_log_last(log) == e->index);
    return RAFT_OK;
}

/* Drops the entries >= from (a conflict with the leader's log, §5.3). */
void raft_log_truncate(struct raft *r, u64 from)
{
    struct raft_log *log = &r->log;
    ASSERT(from > log->snap_index);
    ASSERT(from > r->commit);
    u64 last = raft_log_last(log);
    if (from > last) return;
    for (u64 i = from; i <= last; i++) raft_log_free_entry(r, raft_log_get(log, i));
    log->count = from - log->snap_index - 1;
    if (from < log->unstable_from) {
        if (log->truncate_from == 0 || from < log->truncate_from) log->truncate_from = from;
        log->unstable_from = from;
    }
    if (log->persisted >= from) log->persisted = from - 1;
    raft_msgs_drop_app(r, 0, from);
    ASSERT(raft_log_last(log) == from - 1);
}

/* Drops the entries <= upto (they are in a snapshot the caller holds). */
void raft_log_compact(struct raft *r, u64 upto)
{
    struct raft_log *log = &r->log;
    ASSERT(upto <= r->applied);
    if (upto <= log->snap_index) return;
    ASSERT(upto <= raft_log_last(log));
    u64 term = raft_log_get(log, upto)->term;
    u64 n = upto - log->snap_index;
    for (u64 i = 0; i < n; i++) raft_log_free_entry(r, &log->ents[log->start + i]);
    log->start += n;
    log->count -= n;
    log->snap_index = upto;
    log->snap_term = term;
    if (log->unstable_from < upto + 1) log->unstable_from = upto + 1;
    raft_msgs_drop_app(r, upto + 1, 0);
    ASSERT(log->snap_index == upto);
}

/* Empties the log so that it continues after (index, term): a snapshot was installed. */
void raft_log_reset(struct raft *r, u64 index, u64 term)
{
    struct raft_log *log = &r->log;
    for (u64 i = 0; i < log->count; i++) raft_log_free_entry(r, &log->ents[log->start + i]);
    log->count = 0;
    raft_log_init(log, index, term);
    raft_msgs_drop_app(r, 0, 1);
    ASSERT(raft_log_last(log) == index);
}

/* The largest index <= index whose term is <= term (etcd's findConflictByTerm): where an
 * AppendEntries rejected at (index, term) should probe next. */
u64 raft_log_conflict_hint(const struct raft_log *log, u64 index, u64 term)
{
    u64 i = KEEL_MIN(index, raft_log_last(log));
    while (i > log->snap_index && raft_log_get(log, i)->term > term) i--;
    ASSERT(i <= index);
    return i;
}

/* §5.4.1: a log ending at (index, term) is at least as up to date as this one. */
bool raft_log_up_to_date(const struct raft_log *log, u64 index, u64 term)
{
    u64 last_term = raft_log_last_term(log);
    if (term != last_term) return term > last_term;
    return index >= raft_log_last(log);
}
