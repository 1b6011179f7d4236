/* raft_cluster.c — the in-test cluster of raft_cluster.h. */
#include "raft_cluster.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- allocator ------------------------------------------------------------------------- */

static void *cl_alloc_fn(void *ctx, size_t size)
{
    struct cl_alloc *a = ctx;
    if (a->fail_after == 0) return NULL;
    if (a->fail_after > 0) a->fail_after--;
    a->live_bytes += size;
    a->allocs++;
    return malloc(size);
}

static void cl_free_fn(void *ctx, void *ptr, size_t size)
{
    struct cl_alloc *a = ctx;
    cr_assert(a->live_bytes >= size, "freeing %zu bytes with %llu live", size,
              (unsigned long long)a->live_bytes);
    a->live_bytes -= size;
    free(ptr);
}

void cl_config(struct raft_config *cfg, u64 id)
{
    raft_config_default(cfg);
    cfg->id = id;
    cfg->seed = 42 + id;
    cfg->alloc = cl_alloc_fn;
    cfg->free = cl_free_fn;
}

void (*cl_tune)(struct raft_config *cfg);

/* ---- setup ----------------------------------------------------------------------------- */

static void cl_start(struct cluster *c, u64 id, const struct raft_conf *boot)
{
    struct cl_node *nd = &c->nodes[id - 1];
    memset(nd, 0, sizeof(*nd));
    nd->id = id;
    nd->up = true;
    nd->alloc.fail_after = -1;
    struct raft_config cfg;
    cl_config(&cfg, id);
    cfg.alloc_ctx = &nd->alloc;
    if (cl_tune) cl_tune(&cfg);
    nd->chunk_bytes = cfg.snap_chunk_bytes;
    struct raft_restore rs = {0};
    rs.bootstrap = boot;
    int rc = raft_create(&cfg, &rs, &nd->r);
    cr_assert_eq(rc, RAFT_OK, "raft_create: %s", raft_err_str(rc));
    if (id > c->n) c->n = (u32)id;
}

void cl_init(struct cluster *c, u32 n, u32 learners)
{
    memset(c, 0, sizeof(*c));
    struct raft_conf boot = {0};
    for (u32 i = 0; i < n + learners; i++) {
        boot.members[i].id = i + 1;
        boot.members[i].role = i < n ? RAFT_VOTER : RAFT_LEARNER;
    }
    boot.count = n + learners;
    for (u32 i = 0; i < n + learners; i++) cl_start(c, i + 1, &boot);
}

void cl_add_empty(struct cluster *c, u64 id)
{
    cr_assert(id >= 1 && id <= CL_MAX);
    cl_start(c, id, NULL);
}

static void cl_msg_free(struct cl_msg *cm)
{
    free(cm->ents);
    free(cm->blob);
}

void cl_clear_queue(struct cluster *c)
{
    for (u32 i = 0; i < c->q_count; i++) cl_msg_free(&c->q[i]);
    c->q_count = 0;
}

void cl_free(struct cluster *c)
{
    cl_clear_queue(c);
    free(c->q);
    for (u32 i = 0; i < c->n; i++) {
        struct cl_node *nd = &c->nodes[i];
        if (nd->r == NULL) continue;
        raft_destroy(nd->r);
        cr_assert_eq(nd->alloc.live_bytes, 0, "node %u leaks %llu bytes", i + 1,
                     (unsigned long long)nd->alloc.live_bytes);
        for (u32 j = 0; j < nd->held_count; j++) cl_msg_free(&nd->held[j]);
        free(nd->held);
        free(nd->snap_src);
        free(nd->snap_rx);
    }
}

struct raft *cl_r(struct cluster *c, u64 id)
{
    cr_assert(id >= 1 && id <= c->n && c->nodes[id - 1].r);
    return c->nodes[id - 1].r;
}

struct cl_node *cl_node(struct cluster *c, u64 id)
{
    cr_assert(id >= 1 && id <= c->n);
    return &c->nodes[id - 1];
}

/* ---- messages -------------------------------------------------------------------------- */

static void cl_msg_copy(struct cl_msg *dst, const struct raft_msg *m)
{
    memset(dst, 0, sizeof(*dst));
    dst->m = *m;
    size_t bytes = m->snap_len;
    for (u32 i = 0; i < m->entry_count; i++) bytes += m->entries[i].len;
    dst->blob = malloc(bytes + 1);
    cr_assert(dst->blob);
    u8 *p = dst->blob;
    if (m->entry_count) {
        dst->ents = malloc(m->entry_count * sizeof(struct raft_entry));
        cr_assert(dst->ents);
        for (u32 i = 0; i < m->entry_count; i++) {
            dst->ents[i] = m->entries[i];
            if (m->entries[i].len) {
                memcpy(p, m->entries[i].data, m->entries[i].len);
                dst->ents[i].data = p;
                p += m->entries[i].len;
            }
        }
    }
    dst->m.entries = dst->ents;
    if (m->snap_len) {
        memcpy(p, m->snap_data, m->snap_len);
        dst->m.snap_data = p;
    }
}

static void cl_push(struct cl_msg **arr, u32 *count, u32 *cap, const struct raft_msg *m)
{
    if (*count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *arr = realloc(*arr, *cap * sizeof(struct cl_msg));
        cr_assert(*arr);
    }
    cl_msg_copy(&(*arr)[(*count)++], m);
}

static void cl_send(struct cluster *c, const struct raft_msg *m)
{
    cr_assert(m->type > 0 && m->type < RAFT_MSG_TYPE_COUNT_);
    c->sent[m->type]++;
    cl_push(&c->q, &c->q_count, &c->q_cap, m);
}

u32 cl_count(struct cluster *c, u8 type, u64 to)
{
    u32 n = 0;
    for (u32 i = 0; i < c->q_count; i++) {
        n += c->q[i].m.type == type && (to == 0 || c->q[i].m.to == to);
    }
    return n;
}

/* ---- the ready loop -------------------------------------------------------------------- */

static void cl_fill_snap(struct cl_node *nd, struct raft_msg *m)
{
    if (m->type != RAFT_MSG_SNAP || m->snap_data != NULL) return;
    cr_assert(nd->snap_src != NULL, "node %llu sends a snapshot it does not have",
              (unsigned long long)nd->id);
    u64 off = m->snap_offset;
    u64 len = off < nd->snap_src_len ? nd->snap_src_len - off : 0;
    if (len > nd->chunk_bytes) len = nd->chunk_bytes;
    m->snap_len = (u32)len;
    m->snap_data = off < nd->snap_src_len ? nd->snap_src + off : nd->snap_src;
    m->snap_last = off + len >= nd->snap_src_len;
}

static void cl_store_chunk(struct cl_node *nd, const struct raft_snap_chunk *ch)
{
    if (ch->offset == 0) nd->snap_rx_len = 0;
    cr_assert_eq(ch->offset, nd->snap_rx_len, "chunk at %llu, have %llu",
                 (unsigned long long)ch->offset, (unsigned long long)nd->snap_rx_len);
    nd->snap_rx = realloc(nd->snap_rx, nd->snap_rx_len + ch->len + 1);
    if (ch->len) memcpy(nd->snap_rx + nd->snap_rx_len, ch->data, ch->len);
    nd->snap_rx_len += ch->len;
    nd->snap_chunks_stored++;
}

static void cl_apply(struct cl_node *nd, const struct raft_ready *rd)
{
    for (u32 i = 0; i < rd->committed_count; i++) {
        const struct raft_entry *e = &rd->committed[i];
        cr_assert_eq(e->index, nd->ap_last + 1, "node %llu applies %llu after %llu",
                     (unsigned long long)nd->id, (unsigned long long)e->index,
                     (unsigned long long)nd->ap_last);
        cr_assert(e->index < CL_LOG_MAX);
        cr_assert(e->index <= nd->st_last, "applied before stored");
        nd->ap_term[e->index] = e->term;
        nd->ap_len[e->index] = e->len;
        nd->ap_last = e->index;
    }
}

static void cl_ready_one(struct cluster *c, struct cl_node *nd)
{
    struct raft_ready rd;
    bool idle = raft_ready_needs_idle_storage(nd->r);
    raft_ready(nd->r, &rd);
    cr_assert_eq(idle, rd.truncate_from != 0 || rd.snapshot_install != NULL,
                 "raft_ready_needs_idle_storage matches the ready");
    if (rd.truncate_from || rd.snapshot_install) nd->idle_readies++;
    if (rd.truncate_from) nd->st_last = rd.truncate_from - 1;
    if (rd.snapshot_install) {
        nd->installs++;
        nd->installed = *rd.snapshot_install;
        nd->st_last = rd.snapshot_install->index;
        nd->st_term[nd->st_last] = rd.snapshot_install->term;
        nd->ap_last = rd.snapshot_install->index;
        free(nd->snap_src); /* the installed snapshot is the one this node serves now */
        nd->snap_src = malloc(nd->snap_rx_len + 1);
        if (nd->snap_rx_len) memcpy(nd->snap_src, nd->snap_rx, nd->snap_rx_len);
        nd->snap_src_len = nd->snap_rx_len;
    }
    for (u32 i = 0; i < rd.entry_count; i++) {
        const struct raft_entry *e = &rd.entries[i];
        cr_assert(e->index < CL_LOG_MAX);
        cr_assert_eq(e->index, nd->st_last + 1, "entries stored out of order");
        nd->st_term[e->index] = e->term;
        nd->st_last = e->index;
    }
    if (rd.snap_chunk) cl_store_chunk(nd, rd.snap_chunk);
    for (u32 i = 0; i < rd.msg_count; i++) {
        cl_fill_snap(nd, &rd.msgs_mut[i]);
        cl_send(c, &rd.msgs[i]);
    }
    for (u32 i = 0; i < rd.msg_after_persist_count; i++) {
        if (nd->manual_persist) {
            cl_push(&nd->held, &nd->held_count, &nd->held_cap, &rd.msgs_after_persist[i]);
        } else {
            cl_send(c, &rd.msgs_after_persist[i]);
        }
    }
    cl_apply(nd, &rd);
    for (u32 i = 0; i < rd.read_count; i++) {
        cr_assert(nd->read_count < CL_READS_MAX);
        nd->read_ctx[nd->read_count] = rd.reads[i].context;
        nd->read_index[nd->read_count++] = rd.reads[i].index;
    }
    for (u32 i = 0; i < rd.read_failed_count; i++) {
        cr_assert(nd->read_failed_count < CL_READS_MAX);
        nd->read_failed[nd->read_failed_count++] = rd.reads_failed[i];
    }
    raft_advance(nd->r, &rd);
    if (!nd->manual_persist && nd->st_last > 0) {
        raft_persisted(nd->r, nd->st_last, nd->st_term[nd->st_last]);
    }
}

void cl_ready(struct cluster *c, u64 id)
{
    struct cl_node *nd = cl_node(c, id);
    if (!nd->up || nd->r == NULL) return;
    for (int guard = 0; raft_has_ready(nd->r); guard++) {
        cr_assert(guard < 1000, "node %llu never runs out of readies", (unsigned long long)id);
        cl_ready_one(c, nd);
        struct raft_status st;
        raft_status(nd->r, &st);
        if (st.role == RAFT_LEADER && st.term < 1024) {
            cr_assert(c->leaders[st.term] == 0 || c->leaders[st.term] == id,
                      "two leaders in term %llu", (unsigned long long)st.term);
            c->leaders[st.term] = id;
        }
    }
}

void cl_persist(struct cluster *c, u64 id)
{
    struct cl_node *nd = cl_node(c, id);
    cl_ready(c, id);
    for (u32 i = 0; i < nd->held_count; i++) {
        cl_send(c, &nd->held[i].m);
        cl_msg_free(&nd->held[i]);
    }
    nd->held_count = 0;
    if (nd->st_last > 0) raft_persisted(nd->r, nd->st_last, nd->st_term[nd->st_last]);
}

static void cl_ready_all(struct cluster *c)
{
    for (u64 id = 1; id <= c->n; id++) cl_ready(c, id);
}

static bool cl_deliverable(struct cluster *c, const struct raft_msg *m)
{
    if (m->to < 1 || m->to > c->n || m->from > c->n) return false;
    const struct cl_node *to = &c->nodes[m->to - 1];
    if (!to->up || to->r == NULL) return false;
    if (c->cut[m->from][m->to]) return false;
    if (c->drop && c->drop(c->drop_ctx, m)) return false;
    return true;
}

void cl_run_steps(struct cluster *c, u32 max_steps)
{
    cl_ready_all(c);
    for (u32 step = 0; step < max_steps && c->q_count > 0; step++) {
        u32 at = c->pick ? c->pick(c->drop_ctx, c->q_count) : 0;
        cr_assert(at < c->q_count);
        if (c->dup && c->dup(c->drop_ctx, &c->q[at].m)) {
            struct cl_msg copy;
            cl_msg_copy(&copy, &c->q[at].m);
            if (cl_deliverable(c, &copy.m)) {
                raft_step(c->nodes[copy.m.to - 1].r, &copy.m);
                cl_ready(c, copy.m.to);
            }
            cl_msg_free(&copy);
            continue;
        }
        struct cl_msg cm = c->q[at];
        memmove(c->q + at, c->q + at + 1, (c->q_count - at - 1) * sizeof(*c->q));
        c->q_count--;
        const char *trace = getenv("CL_TRACE"); /* CL_TRACE=<id>: print id's traffic */
        u64 tid = trace ? strtoull(trace, NULL, 10) : 0;
        if (tid != 0 && (cm.m.to == tid || cm.m.from == tid)) {
            fprintf(
                stderr,
                "%llu->%llu %s t%llu i%llu lt%llu c%llu rej%d n%u snap%llu off%llu len%u last%d\n",
                (unsigned long long)cm.m.from, (unsigned long long)cm.m.to,
                raft_msg_type_str(cm.m.type), (unsigned long long)cm.m.term,
                (unsigned long long)cm.m.index, (unsigned long long)cm.m.log_term,
                (unsigned long long)cm.m.commit, cm.m.reject, cm.m.entry_count,
                (unsigned long long)cm.m.snap.index, (unsigned long long)cm.m.snap_offset,
                cm.m.snap_len, cm.m.snap_last);
        }
        if (cl_deliverable(c, &cm.m)) {
            raft_step(c->nodes[cm.m.to - 1].r, &cm.m);
            cl_ready(c, cm.m.to);
        }
        cl_msg_free(&cm);
    }
    cl_ready_all(c);
    cl_check(c);
}

void cl_run(struct cluster *c)
{
    cl_run_steps(c, 100000);
    cr_assert_eq(c->q_count, 0, "the cluster did not go quiet");
}

void cl_tick(struct cluster *c, u64 id)
{
    struct cl_node *nd = cl_node(c, id);
    if (!nd->up || nd->r == NULL) return;
    raft_tick(nd->r);
    cl_ready(c, id);
}

void cl_tick_all(struct cluster *c, u32 ticks)
{
    for (u32 t = 0; t < ticks; t++) {
        for (u64 id = 1; id <= c->n; id++) cl_tick(c, id);
        cl_run(c);
    }
}

void cl_cut(struct cluster *c, u64 a, u64 b, bool cut)
{
    c->cut[a][b] = cut;
    c->cut[b][a] = cut;
}

void cl_partition(struct cluster *c, u64 id, bool cut)
{
    for (u64 o = 1; o <= CL_MAX; o++) {
        if (o != id) cl_cut(c, id, o, cut);
    }
}

u64 cl_leader(struct cluster *c)
{
    u64 best = 0;
    u64 best_term = 0;
    for (u64 id = 1; id <= c->n; id++) {
        struct cl_node *nd = &c->nodes[id - 1];
        if (!nd->up || nd->r == NULL || raft_role(nd->r) != RAFT_LEADER) continue;
        if (raft_term(nd->r) >= best_term) {
            best_term = raft_term(nd->r);
            best = id;
        }
    }
    return best;
}

u64 cl_elect(struct cluster *c, u64 id)
{
    raft_campaign(cl_r(c, id));
    cl_run(c);
    cr_assert_eq(raft_role(cl_r(c, id)), RAFT_LEADER, "node %llu did not win",
                 (unsigned long long)id);
    return id;
}

u64 cl_propose(struct cluster *c, u64 id, const char *data)
{
    u64 index = 0;
    u64 term = 0;
    int rc = raft_propose(cl_r(c, id), (const u8 *)data, (u32)strlen(data), &index, &term);
    cr_assert_eq(rc, RAFT_OK, "propose: %s", raft_err_str(rc));
    return index;
}

/* State machine safety (§5.4.3): no two nodes applied different entries at one index. */
void cl_check(struct cluster *c)
{
    for (u32 a = 0; a < c->n; a++) {
        for (u32 b = a + 1; b < c->n; b++) {
            const struct cl_node *x = &c->nodes[a];
            const struct cl_node *y = &c->nodes[b];
            u64 upto = x->ap_last < y->ap_last ? x->ap_last : y->ap_last;
            for (u64 i = 1; i <= upto; i++) {
                if (x->ap_term[i] == 0 || y->ap_term[i] == 0) continue; /* in a snapshot */
                cr_assert_eq(x->ap_term[i], y->ap_term[i], "nodes %u and %u differ at %llu", a + 1,
                             b + 1, (unsigned long long)i);
            }
        }
    }
}

u64 cl_last(struct cluster *c, u64 id)
{
    struct raft_status st;
    raft_status(cl_r(c, id), &st);
    return st.last_index;
}
