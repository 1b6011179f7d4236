/*
 * trace_env.c — the golden-trace environment: members, their storage (volatile and durable),
 * the in-memory network, the ready loop of raft.h done step by step, and the safety checks
 * that print "SAFETY:" lines.
 */
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- bytes ------------------------------------------------------------------------------- */

void bytes_append(struct trace_bytes *b, const void *src, u32 len)
{
    if (b->len + len > b->cap) {
        u32 cap = b->cap ? b->cap : 64;
        while (cap < b->len + len) cap *= 2;
        b->ptr = realloc(b->ptr, cap);
        if (!b->ptr) abort();
        b->cap = cap;
    }
    if (len) memcpy(b->ptr + b->len, src, len);
    b->len += len;
}

void bytes_set(struct trace_bytes *b, const void *src, u32 len)
{
    b->len = 0;
    bytes_append(b, src, len);
}

void bytes_free(struct trace_bytes *b)
{
    free(b->ptr);
    memset(b, 0, sizeof(*b));
}

/* ---- stored logs ------------------------------------------------------------------------- */

static void entry_copy(struct raft_entry *dst, const struct raft_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len) {
        u8 *p = malloc(src->len);
        if (!p) abort();
        memcpy(p, src->data, src->len);
        dst->data = p;
    }
}

static void log_truncate(struct trace_log *l, u64 from)
{
    while (l->count > 0 && l->entries[l->count - 1].index >= from) {
        free((void *)l->entries[l->count - 1].data);
        l->count--;
    }
}

/* Drops the entries up to index (they are in a snapshot now). */
void log_drop_prefix(struct trace_log *l, u64 index)
{
    u32 n = 0;
    while (n < l->count && l->entries[n].index <= index) free((void *)l->entries[n++].data);
    memmove(l->entries, l->entries + n, (l->count - n) * sizeof(l->entries[0]));
    l->count -= n;
}

static void log_append(struct trace_log *l, const struct raft_entry *e)
{
    if (l->count == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->entries = realloc(l->entries, l->cap * sizeof(l->entries[0]));
        if (!l->entries) abort();
    }
    entry_copy(&l->entries[l->count++], e);
}

void log_free(struct trace_log *l)
{
    log_truncate(l, 0);
    free(l->entries);
    bytes_free(&l->snap_blob);
    bytes_free(&l->partial);
    memset(l, 0, sizeof(*l));
}

void log_copy(struct trace_log *dst, const struct trace_log *src)
{
    log_free(dst);
    *dst = *src;
    dst->entries = NULL;
    dst->count = dst->cap = 0;
    memset(&dst->snap_blob, 0, sizeof(dst->snap_blob));
    memset(&dst->partial, 0, sizeof(dst->partial));
    bytes_set(&dst->snap_blob, src->snap_blob.ptr, src->snap_blob.len);
    bytes_set(&dst->partial, src->partial.ptr, src->partial.len);
    for (u32 i = 0; i < src->count; i++) log_append(dst, &src->entries[i]);
}

u64 log_last_index(const struct trace_log *l)
{
    if (l->count) return l->entries[l->count - 1].index;
    return l->has_snap ? l->snap.index : 0;
}

u64 log_last_term(const struct trace_log *l)
{
    if (l->count) return l->entries[l->count - 1].term;
    return l->has_snap ? l->snap.term : 0;
}

/* The term of the stored entry at index (the snapshot's at its index); false if not stored. */
static bool log_term_at(const struct trace_log *l, u64 index, u64 *term)
{
    if (l->has_snap && index == l->snap.index) {
        *term = l->snap.term;
        return true;
    }
    for (u32 i = 0; i < l->count; i++) {
        if (l->entries[i].index != index) continue;
        *term = l->entries[i].term;
        return true;
    }
    return false;
}

/* ---- network ----------------------------------------------------------------------------- */

void wires_push(struct trace_wires *w, const struct raft_msg *m)
{
    if (w->count == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 32;
        w->items = realloc(w->items, w->cap * sizeof(w->items[0]));
        if (!w->items) abort();
    }
    size_t len = raft_msg_encoded_size(m);
    u8 *bytes = malloc(len);
    if (!bytes || raft_msg_encode(m, bytes, len) != len) abort();
    w->items[w->count++] = (struct trace_wire){m->from, m->to, bytes, len};
}

void wires_remove(struct trace_wires *w, u32 at)
{
    free(w->items[at].bytes);
    memmove(w->items + at, w->items + at + 1, (w->count - at - 1) * sizeof(w->items[0]));
    w->count--;
}

void wires_clear(struct trace_wires *w)
{
    while (w->count) wires_remove(w, w->count - 1);
}

bool env_link_up(const struct trace_env *env, u64 from, u64 to)
{
    if (from >= TRACE_NODES_MAX || to >= TRACE_NODES_MAX) return false;
    return env->group[from] == env->group[to];
}

/* ---- environment ------------------------------------------------------------------------- */

void env_init(struct trace_env *env)
{
    memset(env, 0, sizeof(*env));
    for (u64 id = 0; id < TRACE_NODES_MAX; id++) env->nodes[id].id = id;
}

static void node_free(struct trace_node *n)
{
    if (n->r) raft_destroy(n->r);
    log_free(&n->durable);
    log_free(&n->vol);
    wires_clear(&n->held);
    free(n->held.items);
    bytes_free(&n->sm);
    memset(n, 0, sizeof(*n));
}

void env_free(struct trace_env *env)
{
    for (u32 i = 0; i < TRACE_NODES_MAX; i++) node_free(&env->nodes[i]);
    wires_clear(&env->net);
    free(env->net.items);
    for (u64 i = 0; i < env->applied_cap; i++) bytes_free(&env->applied[i].data);
    free(env->applied);
}

struct trace_node *env_node_any(struct trace_env *env, const char *arg)
{
    u64 id;
    if (!arg) {
        out_printf(env->out, "error: a member id is missing\n");
        return NULL;
    }
    if (!parse_u64(env, arg, &id)) return NULL;
    if (id == 0 || id >= TRACE_NODES_MAX || !env->nodes[id].exists) {
        out_printf(env->out, "error: no member %s\n", arg);
        return NULL;
    }
    return &env->nodes[id];
}

struct trace_node *env_node(struct trace_env *env, const char *arg)
{
    struct trace_node *n = env_node_any(env, arg);
    if (n && n->down) {
        out_printf(env->out, "error: member %s is down\n", arg);
        return NULL;
    }
    return n;
}

/* Creates n's raft from its durable storage (a restart) and, while it holds no snapshot, its
 * bootstrap configuration (the configuration at index 0, passed again on every restart). */
void env_create_raft(struct trace_env *env, struct trace_node *n)
{
    const struct trace_log *d = &n->durable;
    struct raft_restore restore = {
        .snapshot = d->has_snap ? &d->snap : NULL,
        .hard_state = d->hs,
        .entries = d->count ? d->entries : NULL,
        .entry_count = d->count,
        .bootstrap = !d->has_snap && n->has_bootstrap ? &n->bootstrap : NULL,
    };
    int rc = raft_create(&n->cfg, &restore, &n->r);
    if (rc != RAFT_OK) {
        out_printf(env->out, "error: raft_create of %llu: %s\n", (unsigned long long)n->id,
                   raft_err_str(rc));
        n->r = NULL;
        n->down = true;
        return;
    }
    log_copy(&n->vol, &n->durable);
    n->dirty = n->log_dirty = false;
    bytes_set(&n->sm, d->snap_blob.ptr, d->snap_blob.len);
    n->applied = d->has_snap ? d->snap.index : 0;
    n->snap_failed_count = 0;
    n->down = false;
}

/* ---- safety ------------------------------------------------------------------------------ */

static bool entry_same(const struct raft_entry *a, const struct raft_entry *b)
{
    return a->term == b->term && a->type == b->type && a->len == b->len &&
           (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Log Matching (§5.3): if two logs hold an entry of the same index and term, they are
 * identical up to it (compared over the entries both hold in memory). */
static void check_log_matching(struct trace_env *env, const struct trace_node *a,
                               const struct trace_node *b)
{
    struct raft_status sa, sb;
    raft_status(a->r, &sa);
    raft_status(b->r, &sb);
    u64 lo = KEEL_MAX(KEEL_MAX(sa.first_index, sb.first_index), 1);
    u64 hi = KEEL_MIN(sa.last_index, sb.last_index);
    bool matched = false;
    for (u64 i = hi; i >= lo && i > 0; i--) {
        const struct raft_entry *ea = raft_entry_at(a->r, i), *eb = raft_entry_at(b->r, i);
        if (!ea || !eb) continue;
        if (!matched && ea->term == eb->term) matched = true;
        if (matched && !entry_same(ea, eb)) {
            out_printf(env->out,
                       "SAFETY: logs of %llu and %llu match at a later index but "
                       "differ at %llu\n",
                       (unsigned long long)a->id, (unsigned long long)b->id, (unsigned long long)i);
            return;
        }
    }
}

/* Leader Completeness (§5.4): an entry committed in term T is in the log of every leader of a
 * later term (checked over what the leader has not compacted away). The entry was committed
 * at the latest in the term its first applier was in when it applied it. */
static void check_leader_complete(struct trace_env *env, const struct trace_node *n)
{
    struct raft_status st;
    raft_status(n->r, &st);
    for (u64 i = KEEL_MAX(st.first_index, 1); i < env->applied_cap; i++) {
        const struct trace_applied *a = &env->applied[i];
        if (a->by == 0 || a->term_seen >= st.term) continue;
        const struct raft_entry *e = raft_entry_at(n->r, i);
        if (!e || e->term != a->term) {
            out_printf(env->out, "SAFETY: leader %llu lacks %llu/%llu, which %llu applied\n",
                       (unsigned long long)n->id, (unsigned long long)a->term,
                       (unsigned long long)i, (unsigned long long)a->by);
            return;
        }
    }
}

void env_check_safety(struct trace_env *env)
{
    for (u32 a = 1; a < TRACE_NODES_MAX; a++) {
        struct trace_node *na = &env->nodes[a];
        if (!na->exists || na->down) continue;
        if (raft_role(na->r) == RAFT_LEADER) check_leader_complete(env, na);
        for (u32 b = a + 1; b < TRACE_NODES_MAX; b++)
            if (env->nodes[b].exists && !env->nodes[b].down)
                check_log_matching(env, na, &env->nodes[b]);
    }
    for (u32 id = 1; id < TRACE_NODES_MAX; id++) {
        struct trace_node *n = &env->nodes[id];
        if (!n->exists || n->down || raft_role(n->r) != RAFT_LEADER) continue;
        u64 term = raft_term(n->r);
        if (term >= TRACE_TERMS_MAX) continue;
        if (env->leader_of_term[term] == 0) env->leader_of_term[term] = id;
        if (env->leader_of_term[term] != id)
            out_printf(env->out, "SAFETY: two leaders in term %llu: %llu and %u\n",
                       (unsigned long long)term, (unsigned long long)env->leader_of_term[term], id);
    }
}

void env_report_changes(struct trace_env *env)
{
    for (u32 id = 1; id < TRACE_NODES_MAX; id++) {
        struct trace_node *n = &env->nodes[id];
        if (!n->exists || n->down) continue;
        u8 role = (u8)raft_role(n->r);
        u64 term = raft_term(n->r), leader = raft_leader(n->r);
        if (role == n->seen_role && term == n->seen_term && leader == n->seen_leader) continue;
        n->seen_role = role;
        n->seen_term = term;
        n->seen_leader = leader;
        out_printf(env->out, "%u: ", id);
        print_summary(env->out, n->r);
        out_printf(env->out, "\n");
    }
}

static struct trace_applied *applied_slot(struct trace_env *env, u64 index)
{
    if (index >= env->applied_cap) {
        u64 cap = env->applied_cap ? env->applied_cap : 64;
        while (cap <= index) cap *= 2;
        env->applied = realloc(env->applied, cap * sizeof(env->applied[0]));
        if (!env->applied) abort();
        memset(env->applied + env->applied_cap, 0,
               (cap - env->applied_cap) * sizeof(env->applied[0]));
        env->applied_cap = cap;
    }
    return &env->applied[index];
}

/* Applies a committed entry to n's state machine, checking order, durability, and that every
 * member applies the same entry at the same index (State Machine Safety, §5.4.3). */
void env_apply(struct trace_env *env, struct trace_node *n, const struct raft_entry *e,
               const char *indent)
{
    struct trace_out *o = env->out;
    unsigned long long id = n->id, index = e->index, term = e->term;
    u64 stored_term = 0;
    if (e->index != n->applied + 1)
        out_printf(o, "%sSAFETY: %llu applies index %llu after %llu\n", indent, id, index,
                   (unsigned long long)n->applied);
    /* An entry is applied once durable here, or (apply_unpersisted) once stored here. */
    const struct trace_log *l = n->cfg.apply_unpersisted ? &n->vol : &n->durable;
    if (!log_term_at(l, e->index, &stored_term) || stored_term != e->term)
        out_printf(o, "%sSAFETY: %llu applies %llu/%llu, not %s in its log\n", indent, id, term,
                   index, n->cfg.apply_unpersisted ? "stored" : "durable");
    struct trace_applied *a = applied_slot(env, e->index);
    if (a->by == 0) {
        a->by = n->id;
        a->term_seen = raft_term(n->r);
        a->term = e->term;
        a->type = e->type;
        bytes_set(&a->data, e->data, e->len);
    } else if (a->term != e->term || a->type != e->type || a->data.len != e->len ||
               (e->len && memcmp(a->data.ptr, e->data, e->len) != 0)) {
        out_printf(o, "%sSAFETY: %llu applies %llu/%llu, %llu applied %llu/%llu there\n", indent,
                   id, term, index, (unsigned long long)a->by, (unsigned long long)a->term, index);
    }
    if (e->type == RAFT_ENTRY_NORMAL && e->len > 0) {
        if (n->sm.len) bytes_append(&n->sm, ",", 1);
        bytes_append(&n->sm, e->data, e->len);
    }
    n->applied = e->index;
}

/* Records a read index just issued at n, with the highest commit index any member knows. */
void env_read_issued(struct trace_env *env, const struct trace_node *n, u64 context)
{
    u64 floor = 0;
    for (u32 id = 1; id < TRACE_NODES_MAX; id++) {
        const struct trace_node *m = &env->nodes[id];
        if (!m->exists || m->down) continue;
        struct raft_status st;
        raft_status(m->r, &st);
        floor = KEEL_MAX(floor, st.commit);
    }
    if (env->read_count == TRACE_READS_MAX) return; /* not checked beyond the cap */
    env->reads[env->read_count++] = (struct trace_read){n->id, context, floor};
}

/* Takes the read (n, context) off the in-flight list; its commit floor, or 0 if unknown. */
static u64 read_done(struct trace_env *env, const struct trace_node *n, u64 context)
{
    for (u32 i = 0; i < env->read_count; i++) {
        if (env->reads[i].id != n->id || env->reads[i].context != context) continue;
        u64 floor = env->reads[i].commit_floor;
        env->reads[i] = env->reads[--env->read_count];
        return floor;
    }
    return 0;
}

/* Linearizable reads (thesis §6.4): a read is answered with an index at or past everything
 * committed before it was issued. */
static void ready_check_reads(struct trace_env *env, struct trace_node *n,
                              const struct raft_ready *rd, const char *indent)
{
    for (u32 i = 0; i < rd->read_count; i++) {
        u64 floor = read_done(env, n, rd->reads[i].context);
        if (rd->reads[i].index < floor)
            out_printf(env->out,
                       "%sSAFETY: read %llu answered at %llu, but %llu was committed before it "
                       "was issued\n",
                       indent, (unsigned long long)rd->reads[i].context,
                       (unsigned long long)rd->reads[i].index, (unsigned long long)floor);
    }
    for (u32 i = 0; i < rd->read_failed_count; i++) read_done(env, n, rd->reads_failed[i]);
}

/* ---- the ready loop ---------------------------------------------------------------------- */

/* Fills the SNAP chunks of rd from n's durable snapshot (ready step c): every chunk but the
 * last holds snap_chunk_bytes; a chunk at or past the end (raft pipelines offsets without
 * knowing the size) gets snap_len 0 and snap_last. A chunk of a snapshot n does not hold stays
 * unfilled, is not sent, and is reported by raft_snapshot_failed after advance. */
static void ready_fill_chunks(struct trace_node *n, struct raft_ready *rd)
{
    static const u8 empty[1];
    for (u32 i = 0; i < rd->msg_count; i++) {
        struct raft_msg *m = &rd->msgs_mut[i];
        if (m->type != RAFT_MSG_SNAP || m->snap_data != NULL) continue;
        const struct trace_log *d = &n->durable;
        if (!d->has_snap || d->snap.index != m->snap.index) {
            if (n->snap_failed_count < RAFT_MEMBERS_MAX)
                n->snap_failed[n->snap_failed_count++] = m->to;
            continue;
        }
        u64 left = m->snap_offset < d->snap_blob.len ? d->snap_blob.len - m->snap_offset : 0;
        m->snap_len = (u32)KEEL_MIN(left, (u64)n->cfg.snap_chunk_bytes);
        m->snap_data = m->snap_len ? d->snap_blob.ptr + m->snap_offset : empty;
        m->snap_last = m->snap_len == left;
    }
}

/* Ready steps a and b: truncation, snapshot install, entries, hard state, chunk. */
static void ready_store(struct trace_env *env, struct trace_node *n, const struct raft_ready *rd,
                        const char *indent)
{
    struct trace_log *v = &n->vol;
    if (rd->truncate_from) {
        log_truncate(v, rd->truncate_from);
        n->dirty = n->log_dirty = true;
    }
    if (rd->snapshot_install) {
        const struct raft_snapshot_meta *s = rd->snapshot_install;
        if (!v->has_partial || !v->partial_last || v->partial_meta.index != s->index)
            out_printf(env->out, "%sSAFETY: install of snapshot %llu without all its chunks\n",
                       indent, (unsigned long long)s->index);
        log_truncate(v, 0);
        v->has_snap = true;
        v->snap = *s;
        bytes_set(&v->snap_blob, v->partial.ptr, v->partial.len);
        v->has_partial = false;
        bytes_set(&n->sm, v->partial.ptr, v->partial.len);
        n->applied = s->index;
        n->dirty = n->log_dirty = true;
    }
    for (u32 i = 0; i < rd->entry_count; i++) {
        const struct raft_entry *e = &rd->entries[i];
        if (e->index != log_last_index(v) + 1) {
            out_printf(env->out, "%sSAFETY: entry %llu stored after %llu\n", indent,
                       (unsigned long long)e->index, (unsigned long long)log_last_index(v));
            log_truncate(v, e->index);
        }
        log_append(v, e);
        n->dirty = n->log_dirty = true;
    }
    if (rd->hard_state_changed) {
        v->hs = rd->hard_state;
        n->dirty = true;
    }
    const struct raft_snap_chunk *c = rd->snap_chunk;
    if (c) {
        if (c->offset == 0) {
            v->has_partial = true;
            v->partial_meta = c->meta;
            v->partial.len = 0;
        } else if (!v->has_partial || v->partial_meta.index != c->meta.index ||
                   v->partial.len != c->offset) {
            out_printf(env->out, "%sSAFETY: chunk at %llu does not continue the partial one\n",
                       indent, (unsigned long long)c->offset);
        }
        bytes_append(&v->partial, c->data, c->len);
        v->partial_last = c->last;
        n->dirty = true;
    }
}

bool env_process_ready(struct trace_env *env, struct trace_node *n, const char *indent)
{
    if (!raft_has_ready(n->r)) return false;
    if (n->dirty && raft_ready_needs_idle_storage(n->r)) {
        out_printf(env->out, "%s> %llu Ready waits for idle storage (persist first)\n", indent,
                   (unsigned long long)n->id);
        return false;
    }
    struct raft_ready rd;
    raft_ready(n->r, &rd);
    out_printf(env->out, "%s> %llu handling Ready\n", indent, (unsigned long long)n->id);
    char sub[64];
    snprintf(sub, sizeof(sub), "%s  ", indent);
    ready_fill_chunks(n, &rd);
    if (rd.role_changed) {
        out_printf(env->out, "%s", sub);
        print_summary(env->out, n->r);
        out_printf(env->out, "\n");
    }
    print_ready(env->out, &rd, sub);
    ready_store(env, n, &rd, sub);
    for (u32 i = 0; i < rd.msg_count; i++)
        if (rd.msgs[i].type != RAFT_MSG_SNAP || rd.msgs[i].snap_data)
            wires_push(&env->net, &rd.msgs[i]);
    for (u32 i = 0; i < rd.msg_after_persist_count; i++)
        wires_push(n->dirty ? &n->held : &env->net, &rd.msgs_after_persist[i]);
    for (u32 i = 0; i < rd.committed_count; i++) env_apply(env, n, &rd.committed[i], sub);
    ready_check_reads(env, n, &rd, sub);
    raft_advance(n->r, &rd);
    for (u32 i = 0; i < n->snap_failed_count; i++) {
        out_printf(env->out, "%sno snapshot to send to %llu: raft_snapshot_failed\n", sub,
                   (unsigned long long)n->snap_failed[i]);
        raft_snapshot_failed(n->r, n->snap_failed[i]);
    }
    n->snap_failed_count = 0;
    return true;
}

/* Makes everything handed to n's storage durable, releases the held messages and reports the
 * durable log to raft. */
bool env_persist(struct trace_env *env, struct trace_node *n, const char *indent)
{
    if (!n->dirty && n->held.count == 0) return false;
    log_copy(&n->durable, &n->vol);
    const struct trace_log *d = &n->durable;
    out_printf(env->out,
               "%s> %llu persisting: log %llu/%llu, hard state term=%llu vote=%llu "
               "commit=%llu",
               indent, (unsigned long long)n->id, (unsigned long long)log_last_term(d),
               (unsigned long long)log_last_index(d), (unsigned long long)d->hs.term,
               (unsigned long long)d->hs.vote, (unsigned long long)d->hs.commit);
    if (n->held.count) out_printf(env->out, ", %u message(s) released", n->held.count);
    out_printf(env->out, "\n");
    for (u32 i = 0; i < n->held.count; i++) {
        struct trace_wire *w = &n->held.items[i];
        if (env->net.count == env->net.cap) {
            env->net.cap = env->net.cap ? env->net.cap * 2 : 32;
            env->net.items = realloc(env->net.items, env->net.cap * sizeof(env->net.items[0]));
            if (!env->net.items) abort();
        }
        env->net.items[env->net.count++] = *w;
    }
    n->held.count = 0;
    /* A restart hands raft this hard state with this log: its commit must be in the log. */
    if (d->hs.commit > log_last_index(d))
        out_printf(env->out, "%sSAFETY: durable commit %llu is past the durable log (last %llu)\n",
                   indent, (unsigned long long)d->hs.commit, (unsigned long long)log_last_index(d));
    bool log_dirty = n->log_dirty;
    n->dirty = n->log_dirty = false;
    if (log_dirty) raft_persisted(n->r, log_last_index(d), log_last_term(d));
    return true;
}

/* Delivers (or drops) the message at position at of the network. */
bool env_deliver(struct trace_env *env, u32 at, const char *indent)
{
    struct trace_wire w = env->net.items[at];
    env->net.items[at].bytes = NULL;
    wires_remove(&env->net, at);
    u32 count = raft_msg_entry_count(w.bytes, w.len);
    struct raft_entry *entries = malloc((count + 1) * sizeof(*entries));
    struct raft_msg m;
    int rc = raft_msg_decode(w.bytes, w.len, &m, entries, count);
    out_printf(env->out, "%s", indent);
    if (rc != RAFT_OK) {
        out_printf(env->out, "error: a message from %llu does not decode: %s\n",
                   (unsigned long long)w.from, raft_err_str(rc));
        goto out;
    }
    print_msg(env->out, &m);
    struct trace_node *to = m.to < TRACE_NODES_MAX ? &env->nodes[m.to] : NULL;
    if (!to || !to->exists)
        out_printf(env->out, " (dropped: no member %llu)\n", (unsigned long long)m.to);
    else if (to->down)
        out_printf(env->out, " (dropped: %llu is down)\n", (unsigned long long)m.to);
    else if (!env_link_up(env, m.from, m.to))
        out_printf(env->out, " (dropped: partition)\n");
    else {
        out_printf(env->out, "\n");
        raft_step(to->r, &m);
    }
out:
    free(entries);
    free(w.bytes);
    return true;
}
