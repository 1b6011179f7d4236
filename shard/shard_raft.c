/*
 * shard_raft.c — a shard's Raft group member: the ready loop (docs/architecture.md, "The ready
 * loop"), proposals of client writes and their replies at apply, linearizable reads by read
 * index, and the apply path that feeds committed entries to the store.
 *
 * The WAL is the Raft log: WAL record index = Raft index, WAL record type = entry type, payload
 * = [u64 term][entry data]. A NORMAL entry's data is [u16 opcode][request body] (the body as it
 * came off the wire); an empty one is a leader's no-op. The hard state lives in raft.state
 * (shard_hs.c).
 *
 * Every request that changes the store is proposed; the reply is built when the entry is
 * applied, which raft allows only once it is committed (durable on a quorum) and durable here.
 * So a client never sees a write that could be lost.
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SHARD_PROPOSALS_MAX 65536u /* proposals waiting for apply, per shard */
#define SHARD_READ_BATCHES  64u    /* read-index rounds in flight */
#define SHARD_READY_ROUNDS  4u     /* readies taken per turn */
#define ENTRY_TERM_BYTES    8u

/* ---- sinks: where a reply built later goes -------------------------------------------------- */

/* A request whose reply is built later (stored as a proposal, a read, a forward, a move) keeps
 * its connection from being freed under it: counted in c->pending until the reply
 * (sink_begin). A reply built at once needs no count. */
void shard_sink_hold(struct sink *k)
{
    if (k->kind != SINK_CONN || k->held) return;
    k->c->pending++;
    k->held = true;
}

/* The buffer to build a sink's reply in: the connection's, or tmp (dropped: closed, or not a
 * connection). */
static struct buf *sink_begin(struct sink *k, struct buf *tmp)
{
    buf_init_dynamic(tmp, 256);
    if (k->kind == SINK_CONN) {
        struct conn *c = k->c;
        if (k->held) {
            c->pending--;
            conn_kick(c);
            k->held = false;
        }
        if (c->closing) return tmp;
        return conn_reply_begin(c);
    }
    return tmp;
}

static void sink_end(struct shard *s, struct sink *k, struct buf *tmp)
{
    if (k->kind == SINK_CONN) {
        if (!k->c->closing) {
            struct buf *b = &k->c->acc;
            if (!buf_ok(b))
                conn_close(k->c);
            else
                conn_reply_end(k->c, 0);
        }
        buf_free(tmp);
        return;
    }
    if (k->kind == SINK_PEER) {
        if (buf_ok(tmp)) shard_fwd_reply(s, k, tmp->ptr, (u32)tmp->len);
        buf_free(tmp);
        return;
    }
    if (k->kind == SINK_GATHER) {
        shard_gather_part(s, k->g, k->part,
                          buf_ok(tmp) ? span_make(tmp->ptr, tmp->len) : span_make(NULL, 0));
        buf_free(tmp);
        return;
    }
    ASSERT(k->kind == SINK_XCORE);
    if (!buf_ok(tmp)) {
        buf_free(tmp);
        tmp->ptr = NULL;
        tmp->len = 0;
    }
    shard_remote_reply(s, k->origin, k->cookie, tmp->ptr, (u32)tmp->len);
}

/* Sends a whole reply frame built elsewhere (the leader's, for a forwarded request) to k. */
void shard_sink_bytes(struct shard *s, struct sink *k, const u8 *frame, u32 len)
{
    struct buf tmp;
    struct buf *b = sink_begin(k, &tmp);
    buf_put_bytes(b, frame, len);
    sink_end(s, k, &tmp);
}

void shard_sink_error(struct shard *s, struct sink *k, u16 status, u64 detail, const char *msg)
{
    struct buf tmp;
    struct buf *b = sink_begin(k, &tmp);
    exec_error_reply(b, k->opcode, k->request_id, (u16)s->id, mvcc_revision(s->m),
                     s->node->config.member_id, status, detail,
                     msg ? msg : codec_status_message(status));
    sink_end(s, k, &tmp);
}

/* Runs request f (decoded into m) and sends its reply to k. */
static void sink_exec(struct shard *s, struct sink *k, const struct codec_frame *f,
                      const union codec_msg_any *m, struct exec_outcome *o)
{
    struct buf tmp;
    struct buf *b = sink_begin(k, &tmp);
    if (exec_request(&s->x, f, m, b, o) != 0) b->overflow = true;
    sink_end(s, k, &tmp);
}

/* Runs a request now (a serializable read) and sends its reply to k. */
void shard_exec_now(struct shard *s, struct sink *k, const struct codec_frame *f,
                    const union codec_msg_any *m)
{
    struct exec_outcome o;
    sink_exec(s, k, f, m, &o);
}

/* ---- proposals --------------------------------------------------------------------------------
 */

static struct proposal *prop_head(struct shard *s)
{
    return s->props_count ? &s->props[s->props_head] : NULL;
}

static void prop_pop(struct shard *s)
{
    ASSERT(s->props_count > 0);
    s->props_head = (s->props_head + 1) % SHARD_PROPOSALS_MAX;
    s->props_count--;
}

static u16 shard_not_leader_status(const struct shard *s)
{
    return raft_leader(s->raft) ? CODEC_S_NOT_LEADER : CODEC_S_UNAVAILABLE;
}

/* Proposes a write: its reply goes to k once applied. CONN_FRAME_DONE, or CONN_FRAME_AGAIN
 * when this member cannot take it now (too many proposals waiting, raft busy). */
int shard_propose(struct shard *s, struct sink *k, const struct codec_frame *f, struct span raw)
{
    ASSERT(k->kind != 0);
    u16 opcode = f->opcode;
    struct span body = f->body;
    if (s->props_count == SHARD_PROPOSALS_MAX) return CONN_FRAME_AGAIN;
    if (raft_role(s->raft) != RAFT_LEADER) {
        if (k->kind != SINK_PEER) return shard_forward_to_leader(s, k, raw);
        shard_sink_error(s, k, shard_not_leader_status(s), raft_leader(s->raft),
                         "not the leader of this shard");
        return CONN_FRAME_DONE;
    }
    u8 *data = s->prop_buf;
    ASSERT(body.len + 2 <= s->prop_buf_cap);
    store_u16_le(data, opcode);
    if (body.len) memcpy(data + 2, body.ptr, body.len);
    u64 index = 0, term = 0;
    int rc = raft_propose(s->raft, data, (u32)body.len + 2, &index, &term);
    if (rc == RAFT_EBUSY || rc == RAFT_ENOMEM) return CONN_FRAME_AGAIN;
    if (rc != RAFT_OK) {
        u16 status = rc == RAFT_EINVALID ? CODEC_S_VALUE_TOO_LARGE : shard_not_leader_status(s);
        shard_sink_error(s, k, status, raft_leader(s->raft), raft_err_str(rc));
        return CONN_FRAME_DONE;
    }
    shard_props_push(s, index, term, k, 0);
    return CONN_FRAME_DONE;
}

void shard_props_push(struct shard *s, u64 index, u64 term, const struct sink *k, u64 member_id)
{
    ASSERT(s->props_count < SHARD_PROPOSALS_MAX);
    u32 at = (s->props_head + s->props_count) % SHARD_PROPOSALS_MAX;
    s->props[at] =
        (struct proposal){.index = index, .term = term, .sink = *k, .member_id = member_id};
    shard_sink_hold(&s->props[at].sink);
    s->props_count++;
}

/* Proposals whose index passed without their entry: another leader's entry took the index, so
 * the write was not executed; the client may retry. */
static void props_fail_before(struct shard *s, u64 index, u64 term)
{
    struct proposal *p;
    while ((p = prop_head(s)) != NULL &&
           (p->index < index || (p->index == index && p->term != term))) {
        struct sink k = p->sink;
        prop_pop(s);
        shard_sink_error(s, &k, shard_not_leader_status(s), raft_leader(s->raft),
                         "leadership changed before the write committed; it was not executed");
    }
}

/* ---- apply ------------------------------------------------------------------------------------
 */

static void shard_apply_normal(struct shard *s, const struct raft_entry *e)
{
    props_fail_before(s, e->index, e->term);
    if (e->len < 2) return; /* a leader's no-op */
    struct codec_frame f = {.opcode = load_u16_le(e->data),
                            .request_id = 1,
                            .body = span_make(e->data + 2, e->len - 2)};
    union codec_msg_any m;
    if (codec_request_decode(&f, &m) != 0) {
        node_log("raft", "shard %u: entry %llu does not decode; skipped on every member", s->id,
                 (unsigned long long)e->index);
        return;
    }
    struct exec_outcome o = {0};
    struct proposal *p = prop_head(s);
    if (p && p->index == e->index) {
        struct sink k = p->sink;
        prop_pop(s);
        f.request_id = k.request_id;
        sink_exec(s, &k, &f, &m, &o);
    } else {
        buf_reset(&s->apply_scratch);
        exec_request(&s->x, &f, &m, &s->apply_scratch, &o);
    }
    if (f.opcode == CODEC_OP_COMPACT && o.wrote) s->compacting = true;
}

static void shard_apply(struct shard *s, const struct raft_ready *rd)
{
    for (u32 i = 0; i < rd->committed_count; i++) {
        const struct raft_entry *e = &rd->committed[i];
        ASSERT(e->index == s->applied_index + 1);
        if (e->type == RAFT_ENTRY_NORMAL) {
            shard_apply_normal(s, e);
        } else {
            props_fail_before(s, e->index, e->term);
            shard_apply_conf(s, e);
            struct proposal *p = prop_head(s);
            if (p && p->index == e->index) {
                struct sink k = p->sink;
                u64 id = p->member_id;
                prop_pop(s);
                shard_member_applied(s, &k, id);
            }
        }
        s->applied_index = e->index;
    }
}

/* ---- reads -------------------------------------------------------------------------------------
 */

static struct read_batch *reads_open(struct shard *s)
{
    if (s->rb_open) return s->rb_open;
    for (u32 i = 0; i < SHARD_READ_BATCHES; i++) {
        struct read_batch *b = &s->rb[i];
        if (b->state != RB_FREE) continue;
        b->state = RB_OPEN;
        b->count = 0;
        buf_reset(&b->frames);
        s->rb_open = b;
        return b;
    }
    return NULL;
}

/* Queues a linearizable read (a whole request frame, copied) for the next read-index round. */
int shard_read_linearizable(struct shard *s, struct sink *k, struct span raw)
{
    struct read_batch *b = reads_open(s);
    if (!b) return CONN_FRAME_AGAIN;
    if (b->count == b->cap) {
        u32 cap = b->cap ? b->cap * 2 : 64;
        struct read_item *items = realloc(b->items, cap * sizeof(*items));
        if (!items) return CONN_FRAME_AGAIN;
        b->items = items;
        b->cap = cap;
    }
    u64 off = b->frames.len;
    buf_put_bytes(&b->frames, raw.ptr, raw.len);
    if (!buf_ok(&b->frames)) return CONN_FRAME_AGAIN;
    b->items[b->count] = (struct read_item){.sink = *k, .off = (u32)off, .len = (u32)raw.len};
    shard_sink_hold(&b->items[b->count++].sink);
    return CONN_FRAME_DONE;
}

static void reads_fail(struct shard *s, struct read_batch *b)
{
    for (u32 i = 0; i < b->count; i++)
        shard_sink_error(s, &b->items[i].sink, shard_not_leader_status(s), raft_leader(s->raft),
                         "no leader could confirm the read");
    b->state = RB_FREE;
}

static void reads_issue(struct shard *s)
{
    struct read_batch *b = s->rb_open;
    if (!b) return;
    s->rb_open = NULL;
    b->ctx = ++s->read_ctx;
    b->state = RB_WAITING;
    if (raft_read_index(s->raft, b->ctx) != RAFT_OK) reads_fail(s, b);
}

static struct read_batch *reads_find(struct shard *s, u64 ctx)
{
    for (u32 i = 0; i < SHARD_READ_BATCHES; i++)
        if (s->rb[i].state == RB_WAITING && s->rb[i].ctx == ctx) return &s->rb[i];
    return NULL;
}

static void reads_ready(struct shard *s, const struct raft_ready *rd)
{
    for (u32 i = 0; i < rd->read_count; i++) {
        struct read_batch *b = reads_find(s, rd->reads[i].context);
        if (!b) continue;
        b->index = rd->reads[i].index;
        b->state = RB_CONFIRMED;
    }
    for (u32 i = 0; i < rd->read_failed_count; i++) {
        struct read_batch *b = reads_find(s, rd->reads_failed[i]);
        if (b) reads_fail(s, b);
    }
}

static void reads_serve_batch(struct shard *s, struct read_batch *b)
{
    for (u32 i = 0; i < b->count; i++) {
        struct read_item *it = &b->items[i];
        struct codec_frame f;
        size_t size = 0;
        union codec_msg_any m;
        int rc = codec_frame_decode(span_make(b->frames.ptr + it->off, it->len),
                                    CODEC_FRAME_SIZE_MAX, &f, &size);
        ASSERT(rc == 0);
        rc = codec_request_decode(&f, &m);
        ASSERT(rc == 0); /* it decoded when it arrived */
        struct exec_outcome o;
        sink_exec(s, &it->sink, &f, &m, &o);
    }
    b->state = RB_FREE;
}

static void reads_serve(struct shard *s)
{
    for (u32 i = 0; i < SHARD_READ_BATCHES; i++) {
        struct read_batch *b = &s->rb[i];
        if (b->state == RB_CONFIRMED && s->applied_index >= b->index) reads_serve_batch(s, b);
    }
}

/* ---- the ready loop ----------------------------------------------------------------------------
 */

/* Appends the ready's entries to the WAL batch (the group commit at the end of the turn makes
 * them durable). */
static void shard_store_entries(struct shard *s, const struct raft_entry *e, u32 count)
{
    for (u32 i = 0; i < count; i++) {
        size_t len = ENTRY_TERM_BYTES + e[i].len;
        ASSERT(len <= s->prop_buf_cap + ENTRY_TERM_BYTES);
        u8 *p = s->entry_buf;
        store_u64_le(p, e[i].term);
        if (e[i].len) memcpy(p + ENTRY_TERM_BYTES, e[i].data, e[i].len);
        u64 index = shard_wal_append(s, e[i].type, span_make(p, len));
        ASSERT(index == e[i].index);
    }
}

static void shard_ready_store(struct shard *s, const struct raft_ready *rd)
{
    if (rd->hard_state_changed) {
        const struct raft_hard_state *hs = &rd->hard_state;
        /* term and vote must be durable before a message that depends on them is sent; commit
         * may lag (it only speeds up a restart), so it rides along with the next change. */
        if (hs->term != s->hs_saved.term || hs->vote != s->hs_saved.vote) shard_hs_store(s, hs);
    }
    if (rd->truncate_from) {
        ASSERT(shard_storage_idle(s));
        int rc = wal_truncate_suffix(&s->wal, rd->truncate_from);
        if (rc != 0) shard_wal_fatal(s, "truncate", rc);
    }
    shard_store_entries(s, rd->entries, rd->entry_count);
    if (rd->snap_chunk) shard_snap_recv_chunk(s, rd->snap_chunk);
    if (rd->snapshot_install) shard_snap_install_received(s, rd->snapshot_install);
}

/* True when a ready that truncates the log or installs a snapshot can be taken: no flush in
 * flight and nothing appended that is not durable (wal_truncate_suffix needs both). */
bool shard_storage_idle(const struct shard *s)
{
    return !s->flush_busy && wal_last_index(&s->wal) == wal_durable_index(&s->wal) &&
           !shard_snap_io_busy(s);
}

static void shard_ready_send(struct shard *s, const struct raft_ready *rd)
{
    for (u32 i = 0; i < rd->msg_count; i++) {
        struct raft_msg *m = &rd->msgs_mut[i];
        if (m->type == RAFT_MSG_SNAP && m->snap_data == NULL) shard_snap_fill_chunk(s, m);
        shard_peer_send(s, m, 0);
    }
    u64 need = wal_last_index(&s->wal);
    if (need <= wal_durable_index(&s->wal)) need = 0;
    for (u32 i = 0; i < rd->msg_after_persist_count; i++)
        shard_peer_send(s, &rd->msgs_after_persist[i], need);
}

/* Reports durability to raft (the leader counts its own match only up to here). */
static void shard_report_persisted(struct shard *s)
{
    u64 durable = wal_durable_index(&s->wal);
    if (durable <= s->persisted_reported) return;
    const struct raft_entry *e = raft_entry_at(s->raft, durable);
    if (e) raft_persisted(s->raft, durable, e->term);
    s->persisted_reported = durable;
}

/* One step of the ready loop, once per turn (after the loop's completions, before the pump). */
void shard_raft_turn(struct shard *s)
{
    s->x.raft_term = raft_term(s->raft);
    shard_report_persisted(s);
    reads_issue(s);
    for (u32 round = 0; round < SHARD_READY_ROUNDS && raft_has_ready(s->raft); round++) {
        if (s->storage_wait) {
            if (!shard_storage_idle(s)) break;
            s->storage_wait = false;
        }
        if (raft_ready_needs_idle_storage(s->raft) && !shard_storage_idle(s)) {
            s->storage_wait = true; /* the group commit in flight ends first */
            break;
        }
        struct raft_ready rd;
        bool was_leader = raft_role(s->raft) == RAFT_LEADER;
        raft_ready(s->raft, &rd);
        shard_ready_store(s, &rd);
        shard_ready_send(s, &rd);
        s->x.raft_term = raft_term(s->raft);
        shard_apply(s, &rd);
        reads_ready(s, &rd);
        raft_advance(s->raft, &rd);
        if (s->conf_dirty || rd.snapshot_install) shard_raft_conf_seen(s);
        if (rd.role_changed) shard_raft_role_changed(s, was_leader);
    }
    reads_serve(s);
    u64 leader = raft_leader(s->raft);
    if (leader != s->leader_seen) {
        if (s->leader_seen)
            shard_fwd_fail_to(s, s->leader_seen, false); /* it lost the leadership */
        s->leader_seen = leader;
    }
    shard_peer_release(s);
}

void shard_raft_tick(struct shard *s)
{
    raft_tick(s->raft);
    shard_fwd_tick(s);
    shard_move_tick(s);
    shard_balance_tick(s);
    shard_publish(s);
}

bool shard_raft_busy(const struct shard *s)
{
    return raft_has_ready(s->raft) || s->rb_open != NULL;
}

/* Everything this member still owes clients: proposals and reads not answered yet. */
bool shard_raft_owes(const struct shard *s)
{
    if (s->props_count || s->fwd_count) return true;
    for (u32 i = 0; i < SHARD_READ_BATCHES; i++)
        if (s->rb[i].state != RB_FREE) return true;
    return false;
}

/* Draining too long: answer what is left (leadership may never come back). */
void shard_raft_fail_owed(struct shard *s)
{
    while (s->props_count) {
        struct sink k = prop_head(s)->sink;
        prop_pop(s);
        shard_sink_error(s, &k, CODEC_S_UNAVAILABLE, 0,
                         "the server stopped before the write "
                         "committed; it may or may not be applied");
    }
    for (u32 i = 0; i < SHARD_READ_BATCHES; i++)
        if (s->rb[i].state != RB_FREE) reads_fail(s, &s->rb[i]);
    s->rb_open = NULL;
    shard_fwd_fail_all(s);
}
