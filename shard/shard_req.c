/*
 * shard_req.c — what a shard does with a request frame: the handshake, routing by the shard
 * map, local execution (held until the WAL covers what it may have seen), forwarding to the
 * owning shard through xcore, and gathers (a RANGE over several shards, STATUS on the router
 * port). See docs/architecture.md, "The request path".
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ----------------------------------------------------------------------------
 */

/* A reply's header.revision: the shard's on its own port, 0 on the router port (no single
 * shard speaks there; protocol.md). */
static i64 shard_header_revision(const struct shard *s, const struct conn *c)
{
    return c->port_shard == CODEC_SHARD_NONE ? 0 : mvcc_revision(s->m);
}

static int shard_error(struct shard *s, struct conn *c, const struct codec_frame *f, u16 status,
                       u64 detail, const char *message)
{
    struct buf *b = conn_reply_begin(c);
    u16 shard = c->port_shard;
    if (exec_error_reply(b, f->opcode, f->request_id, shard, shard_header_revision(s, c),
                         s->node->config.member_id, status, detail,
                         message ? message : codec_status_message(status)) != 0) {
        conn_close(c);
        return CONN_FRAME_CLOSE;
    }
    conn_reply_end(c, 0);
    return CONN_FRAME_DONE;
}

static bool shard_is_write(u16 opcode)
{
    return opcode == CODEC_OP_PUT || opcode == CODEC_OP_DELETE_RANGE || opcode == CODEC_OP_TXN ||
           opcode == CODEC_OP_COMPACT;
}

static bool lent_push(struct lent_fifo *q, u64 ticket, void *ptr)
{
    if (q->count == q->cap) {
        u32 cap = q->cap * 2;
        struct lent *items = malloc(cap * sizeof(*items));
        if (!items) return false;
        for (u32 i = 0; i < q->count; i++) items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->cap = cap;
        q->head = 0;
    }
    q->items[(q->head + q->count) % q->cap] = (struct lent){.ticket = ticket, .ptr = ptr};
    q->count++;
    return true;
}

static void lent_release(struct lent_fifo *q, u64 consumed)
{
    while (q->count > 0 && q->items[q->head].ticket < consumed) {
        free(q->items[q->head].ptr);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
}

void shard_free_lent(struct shard *s)
{
    struct xcore *x = s->node->xcore;
    for (u32 p = 0; p < s->node->config.shard_count; p++) {
        if (s->lent_req[p].count)
            lent_release(&s->lent_req[p], xcore_consumed(x, s->id, p, XCORE_REQUEST));
        if (s->lent_rep[p].count)
            lent_release(&s->lent_rep[p], xcore_consumed(x, s->id, p, XCORE_REPLY));
    }
}

/* ---- HELLO, SHARD_MAP, STATUS --------------------------------------------------------------- */

static int shard_hello(struct shard *s, struct conn *c, const struct codec_frame *f)
{
    union codec_msg_any m;
    int rc = codec_request_decode(f, &m);
    if (rc == CODEC_S_BAD_MAGIC || rc == CODEC_S_UNSUPPORTED_VERSION) {
        u64 detail = rc == CODEC_S_UNSUPPORTED_VERSION ? CODEC_PROTOCOL_VERSION : 0;
        shard_error(s, c, f, (u16)rc, detail, NULL);
        c->draining = true; /* close once the reply is out */
        return CONN_FRAME_CLOSE;
    }
    if (rc != 0) return shard_error(s, c, f, (u16)rc, 0, NULL);
    if (c->handshaken) return shard_error(s, c, f, CODEC_S_ALREADY_HANDSHAKEN, 0, NULL);
    u16 version = m.hello_request.version < CODEC_PROTOCOL_VERSION ? m.hello_request.version
                                                                   : CODEC_PROTOCOL_VERSION;
    struct codec_hello_reply o = {.version = version,
                                  .features = m.hello_request.features & CODEC_FEATURE_MEMBER,
                                  .cluster_id = shard_cluster_id(&s->node->config),
                                  .shard_count = (u16)s->node->config.shard_count,
                                  .shard_map_version = s->map.version,
                                  .frame_size_max = s->host.frame_size_max,
                                  .reply_frame_size_max = CODEC_REPLY_FRAME_SIZE_MAX,
                                  .key_size_max = CODEC_KEY_SIZE_MAX,
                                  .value_size_max = CODEC_VALUE_SIZE_MAX,
                                  .txn_ops_max = CODEC_TXN_OPS_MAX,
                                  .in_flight_max = CODEC_IN_FLIGHT_MAX,
                                  .watches_max = 0};
    struct codec_reply_header h = {.shard = c->port_shard,
                                   .revision = shard_header_revision(s, c),
                                   .member_id = s->node->config.member_id};
    if (codec_reply_encode(conn_reply_begin(c), f, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX) != 0) {
        conn_close(c);
        return CONN_FRAME_CLOSE;
    }
    conn_reply_end(c, 0);
    c->handshaken = true;
    return CONN_FRAME_DONE;
}

static int shard_map_reply(struct shard *s, struct conn *c, const struct codec_frame *f)
{
    struct buf *scratch = &s->x.scratch[2];
    struct codec_shard_map_reply o = {.version = s->map.version};
    struct codec_list_builder lb;
    buf_reset(scratch);
    codec_list_begin(&lb, codec_field_find(&codec_msg_shard_map_reply, "shards"), &o.shards,
                     scratch);
    for (u32 r = 0; r < s->map.shard_count; r++) {
        struct codec_shard_range e = {.shard_id = s->map.shard_of[r]};
        e.leader_id = shard_pub_leader(s->node, e.shard_id);
        e.port = (u16)(s->node->client_port + 1 + e.shard_id);
        router_range_bounds(&s->map, r, &e.start_key, &e.end_key);
        if (codec_list_add(&lb, &e) != 0) return shard_error(s, c, f, CODEC_S_INTERNAL, 0, NULL);
    }
    codec_list_end(&lb);
    struct codec_reply_header h = {.shard = c->port_shard,
                                   .revision = shard_header_revision(s, c),
                                   .member_id = s->node->config.member_id};
    if (codec_reply_encode(conn_reply_begin(c), f, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX) != 0)
        return shard_error(s, c, f, CODEC_S_INTERNAL, 0, "shard map reply");
    conn_reply_end(c, 0);
    return CONN_FRAME_DONE;
}

void shard_own_status(struct shard *s, struct codec_shard_status *out)
{
    struct mvcc_stats st;
    mvcc_stats(s->m, &st);
    *out = (struct codec_shard_status){.shard_id = (u16)s->id,
                                       .revision = st.revision,
                                       .compact_revision = st.compact_revision,
                                       .keys = st.keys_live,
                                       .memory_bytes = st.memory.reserved_bytes,
                                       .wal_bytes = shard_wal_bytes(s),
                                       .connections = s->host.open_count,
                                       .raft_term = raft_term(s->raft),
                                       .raft_leader_id = raft_leader(s->raft),
                                       .raft_applied_index = s->applied_index};
    struct raft_status rs;
    raft_status(s->raft, &rs);
    out->raft_commit_index = rs.commit;
}

static int shard_status_encode(struct shard *s, struct conn *c, u64 request_id,
                               const struct codec_shard_status *st, u32 count)
{
    struct buf *scratch = &s->x.scratch[2];
    struct codec_status_reply o;
    struct codec_list_builder lb;
    buf_reset(scratch);
    codec_list_begin(&lb, codec_field_find(&codec_msg_status_reply, "shards"), &o.shards, scratch);
    for (u32 i = 0; i < count; i++) codec_list_add(&lb, &st[i]);
    codec_list_end(&lb);
    struct codec_frame head = {.opcode = CODEC_OP_STATUS, .request_id = request_id};
    struct codec_reply_header h = {.shard = c->port_shard,
                                   .revision = count == 1 ? st[0].revision : 0,
                                   .member_id = s->node->config.member_id};
    if (codec_reply_encode(conn_reply_begin(c), &head, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX) != 0) {
        conn_close(c);
        return CONN_FRAME_CLOSE;
    }
    conn_reply_end(c, 0);
    return CONN_FRAME_DONE;
}

/* ---- local execution ------------------------------------------------------------------------ */

/* A request for this shard: a write is proposed to raft (answered at apply); a RANGE is served
 * now when serializable, else after a read-index round; the reply goes to k. */
int shard_submit(struct shard *s, struct sink *k, const struct codec_frame *f,
                 const union codec_msg_any *m, struct span raw)
{
    if (shard_is_member_op(f->opcode)) return shard_member_op(s, k, f, m, raw);
    if (shard_is_write(f->opcode)) {
        if (f->opcode == CODEC_OP_COMPACT && shard_snap_blocks_compaction(s))
            return CONN_FRAME_AGAIN;
        return shard_propose(s, k, f, raw);
    }
    ASSERT(f->opcode == CODEC_OP_RANGE);
    /* The only voter of its group leads it alone: every acknowledged write is applied, and no
     * other leader can exist, so its own state is linearizable without a read-index round. */
    bool alone = s->single_voter && raft_role(s->raft) == RAFT_LEADER;
    if ((m->range_request.flags & CODEC_RANGE_REQUEST_SERIALIZABLE) || alone) {
        shard_exec_now(s, k, f, m);
        return CONN_FRAME_DONE;
    }
    return shard_read_linearizable(s, k, raw);
}

static int shard_exec_local(struct shard *s, struct conn *c, const struct codec_frame *f,
                            union codec_msg_any *m, struct span raw)
{
    struct sink k = {.kind = SINK_CONN, .opcode = f->opcode, .request_id = f->request_id, .c = c};
    return shard_submit(s, &k, f, m, raw);
}

/* ---- routing -------------------------------------------------------------------------------- */

#define SHARD_TXN_RANGES_MAX (3u * CODEC_TXN_OPS_MAX)

static void txn_op_range(const struct codec_op *op, struct router_key_range *r)
{
    if (op->kind == CODEC_OP_KIND_PUT) *r = (struct router_key_range){op->put.key, {NULL, 0}};
    if (op->kind == CODEC_OP_KIND_RANGE)
        *r = (struct router_key_range){op->range.key, op->range.range_end};
    if (op->kind == CODEC_OP_KIND_DELETE_RANGE)
        *r = (struct router_key_range){op->delete_range.key, op->delete_range.range_end};
}

/* Every key range a TXN names. */
static u32 txn_ranges(const struct codec_txn_request *t, struct router_key_range *out)
{
    u32 n = 0;
    struct codec_iter it;
    struct codec_compare cmp;
    codec_iter_init(&it, codec_field_find(&codec_msg_txn_request, "compares"), &t->compares);
    while (codec_iter_next(&it, &cmp)) out[n++] = (struct router_key_range){cmp.key, cmp.range_end};
    const char *lists[2] = {"success", "failure"};
    const struct codec_list *l[2] = {&t->success, &t->failure};
    for (int i = 0; i < 2; i++) {
        struct codec_op op;
        codec_iter_init(&it, codec_field_find(&codec_msg_txn_request, lists[i]), l[i]);
        while (codec_iter_next(&it, &op))
            if (op.kind != CODEC_OP_KIND_TXN) txn_op_range(&op, &out[n++]);
    }
    return n;
}

static struct mvcc_range_req range_req_of(const struct codec_range_request *q)
{
    struct mvcc_range_req r = {.key = q->key,
                               .range_end = q->range_end,
                               .revision = q->revision,
                               .limit = q->limit,
                               .sort_order = (enum mvcc_sort_order)q->sort_order,
                               .sort_target = (enum mvcc_sort_target)q->sort_target};
    return r;
}

/* The shard(s) a request goes to: 0 with *target, or with multi->count > 1 (a RANGE to
 * gather); else a status (KEY_EMPTY, INVALID, CROSS_SHARD). */
static int shard_route(struct shard *s, u16 opcode, const union codec_msg_any *m, u32 *target,
                       struct router_shards *multi)
{
    multi->count = 0;
    *target = s->id;
    switch (opcode) {
    case CODEC_OP_PUT:
        if (m->put_request.key.len == 0) return 0; /* exec says KEY_EMPTY */
        *target = router_shard_of_key(&s->map, m->put_request.key);
        return 0;
    case CODEC_OP_RANGE: {
        if (m->range_request.key.len == 0) return 0;
        struct mvcc_range_req r = range_req_of(&m->range_request);
        int rc = router_range_plan(&s->map, &r, multi);
        if (rc != 0) return rc;
        if (multi->count == 1) *target = multi->shard[0];
        return 0;
    }
    case CODEC_OP_DELETE_RANGE: {
        if (m->delete_range_request.key.len == 0) return 0;
        struct router_key_range r = {m->delete_range_request.key,
                                     m->delete_range_request.range_end};
        return router_single_shard(&s->map, &r, 1, target);
    }
    case CODEC_OP_TXN: {
        struct router_key_range ranges[SHARD_TXN_RANGES_MAX];
        u32 n = txn_ranges(&m->txn_request, ranges);
        return n == 0 ? 0 : router_single_shard(&s->map, ranges, n, target);
    }
    case CODEC_OP_COMPACT:
        if (m->compact_request.shard >= s->node->config.shard_count) return CODEC_S_INVALID;
        *target = m->compact_request.shard;
        return 0;
    }
    return CODEC_S_UNKNOWN_OPCODE;
}

/* ---- forwarding -------------------------------------------------------------------------------
 */

#define SHARD_XCORE_IN_FLIGHT 128u /* xcore_config_default's in_flight_max */

static bool shard_can_send(const struct shard *s, u32 target, u32 count)
{
    return xcore_in_flight(s->node->xcore, s->id, target) + count <= SHARD_XCORE_IN_FLIGHT;
}

/* Lends a copy of the frame to target. false when the ring is full (retry later). */
static bool shard_forward(struct shard *s, struct conn *c, u32 target, struct span raw,
                          struct gather *g, u32 part)
{
    struct fwd *w = malloc(sizeof(*w));
    u8 *copy = malloc(raw.len);
    if (!w || !copy) {
        free(w);
        free(copy);
        return false;
    }
    memcpy(copy, raw.ptr, raw.len);
    struct xcore_msg msg = {.target = (u16)target,
                            .dir = XCORE_REQUEST,
                            .flags = XCORE_MSG_BORROWED,
                            .type = XMSG_FWD,
                            .len = (u32)raw.len,
                            .cookie = (u64)(uintptr_t)w,
                            .ptr = copy};
    u64 ticket = 0;
    if (xcore_send(s->node->xcore, s->id, &msg, &ticket) != XCORE_OK ||
        !lent_push(&s->lent_req[target], ticket, copy)) {
        free(w);
        free(copy); /* xcore refused (nothing was sent) */
        return false;
    }
    *w = (struct fwd){.c = c, .gather = g, .part = part};
    if (!g) c->pending++;
    return true;
}

/* ---- gathers -------------------------------------------------------------------------------- */

static void gather_free(struct gather *g)
{
    for (u32 i = 0; i < g->parts_total; i++) free(g->part[i]);
    free(g->frame);
    free(g);
}

static void gather_finish(struct shard *s, struct gather *g)
{
    struct conn *c = g->c;
    c->pending--;
    conn_kick(c);
    if (c->closing) return gather_free(g);
    if (g->opcode == CODEC_OP_STATUS) {
        shard_status_encode(s, c, g->request_id, g->status, g->parts_total);
        return gather_free(g);
    }
    if (shard_is_member_op(g->opcode)) {
        shard_member_merge(s, g, conn_reply_begin(c));
        if (!buf_ok(&c->acc))
            conn_close(c);
        else
            conn_reply_end(c, 0);
        return gather_free(g);
    }
    struct codec_frame f;
    size_t size;
    union codec_msg_any m;
    codec_frame_decode(span_make(g->frame, g->frame_len), CODEC_FRAME_SIZE_MAX, &f, &size);
    codec_request_decode(&f, &m);
    struct span parts[NODE_SHARDS_MAX];
    for (u32 i = 0; i < g->parts_total; i++) parts[i] = span_make(g->part[i], g->part_len[i]);
    if (exec_merge_ranges(&s->x, g->request_id, &m.range_request, parts, g->parts_total,
                          conn_reply_begin(c)) != 0)
        conn_close(c);
    else
        conn_reply_end(c, 0);
    gather_free(g);
}

static bool gather_put_part(struct gather *g, u32 part, struct span bytes)
{
    g->part[part] = malloc(bytes.len ? bytes.len : 1);
    if (!g->part[part]) return false;
    memcpy(g->part[part], bytes.ptr, bytes.len);
    g->part_len[part] = bytes.len;
    return true;
}

void shard_gather_part(struct shard *s, struct gather *g, u32 part, struct span bytes)
{
    ASSERT(g->parts_left > 0 && part < g->parts_total);
    if (bytes.len) gather_put_part(g, part, bytes); /* else NULL: the merge answers INTERNAL */
    if (--g->parts_left == 0) gather_finish(s, g);
}

/* A RANGE over several shards: the own part now, the others through xcore. */
static int shard_gather_range(struct shard *s, struct conn *c, const struct codec_frame *f,
                              union codec_msg_any *m, struct span raw,
                              const struct router_shards *rs)
{
    for (u32 i = 0; i < rs->count; i++)
        if (rs->shard[i] != s->id && !shard_can_send(s, rs->shard[i], 1)) return CONN_FRAME_AGAIN;
    struct gather *g = calloc(1, sizeof(*g));
    u8 *frame = malloc(raw.len);
    if (!g || !frame) {
        free(g);
        free(frame);
        return shard_error(s, c, f, CODEC_S_NOMEM, 0, "out of memory for a merged range");
    }
    memcpy(frame, raw.ptr, raw.len);
    *g = (struct gather){.c = c,
                         .opcode = f->opcode,
                         .request_id = f->request_id,
                         .frame = frame,
                         .frame_len = raw.len,
                         .parts_total = rs->count,
                         .parts_left = rs->count};
    c->pending++;
    for (u32 i = 0; i < rs->count; i++) {
        g->shard[i] = rs->shard[i];
        if (rs->shard[i] != s->id) {
            bool ok = shard_forward(s, c, rs->shard[i], raw, g, i);
            ASSERT(ok); /* capacity checked above */
            continue;
        }
        struct sink k = {.kind = SINK_GATHER,
                         .opcode = f->opcode,
                         .request_id = f->request_id,
                         .g = g,
                         .part = i};
        if (shard_submit(s, &k, f, m, span_make(g->frame, g->frame_len)) != CONN_FRAME_DONE)
            shard_gather_part(s, g, i, span_make(NULL, 0)); /* merge answers INTERNAL */
    }
    return CONN_FRAME_DONE;
}

/* Membership requests: MEMBER_LIST and ENDPOINT_STATUS are answered here; MOVE_LEADER of one
 * shard goes to that shard; the rest fan out to every shard (shard_member.c merges). */
static int shard_member_route(struct shard *s, struct conn *c, const struct codec_frame *f,
                              union codec_msg_any *m, struct span raw)
{
    struct sink k = {.kind = SINK_CONN, .opcode = f->opcode, .request_id = f->request_id, .c = c};
    if (f->opcode == CODEC_OP_MEMBER_LIST || f->opcode == CODEC_OP_ENDPOINT_STATUS)
        return shard_submit(s, &k, f, m, raw);
    struct router_shards all = {.count = s->node->config.shard_count};
    for (u32 i = 0; i < all.count; i++) all.shard[i] = (u16)i;
    if (f->opcode == CODEC_OP_MOVE_LEADER && m->move_leader_request.shard != CODEC_SHARD_NONE) {
        u32 target = m->move_leader_request.shard;
        if (target >= all.count) return shard_error(s, c, f, CODEC_S_INVALID, target, NULL);
        if (target == s->id) return shard_submit(s, &k, f, m, raw);
        if (!shard_can_send(s, target, 1)) return CONN_FRAME_AGAIN;
        return shard_forward(s, c, target, raw, NULL, 0) ? CONN_FRAME_DONE : CONN_FRAME_AGAIN;
    }
    if (all.count == 1) return shard_submit(s, &k, f, m, raw);
    return shard_gather_range(s, c, f, m, raw, &all);
}

static int shard_gather_status(struct shard *s, struct conn *c, const struct codec_frame *f)
{
    u32 count = s->node->config.shard_count;
    for (u32 i = 0; i < count; i++)
        if (i != s->id && !shard_can_send(s, i, 1)) return CONN_FRAME_AGAIN;
    struct gather *g = calloc(1, sizeof(*g));
    if (!g) return shard_error(s, c, f, CODEC_S_NOMEM, 0, NULL);
    *g = (struct gather){.c = c,
                         .opcode = f->opcode,
                         .request_id = f->request_id,
                         .parts_total = count,
                         .parts_left = count};
    c->pending++;
    for (u32 i = 0; i < count; i++) {
        if (i == s->id) {
            shard_own_status(s, &g->status[i]);
            g->parts_left--;
            continue;
        }
        struct fwd *w = malloc(sizeof(*w));
        ASSERT(w);
        *w = (struct fwd){.c = c, .gather = g, .part = i};
        struct xcore_msg msg = {.target = (u16)i,
                                .dir = XCORE_REQUEST,
                                .type = XMSG_STATUS,
                                .cookie = (u64)(uintptr_t)w};
        int rc = xcore_send(s->node->xcore, s->id, &msg, NULL);
        ASSERT(rc == XCORE_OK);
    }
    if (g->parts_left == 0) gather_finish(s, g);
    return CONN_FRAME_DONE;
}

/* ---- the frame handler ------------------------------------------------------------------------
 */

static int shard_kv(struct shard *s, struct conn *c, const struct codec_frame *f,
                    union codec_msg_any *m, struct span raw)
{
    u32 target = s->id;
    struct router_shards multi;
    int rc = shard_route(s, f->opcode, m, &target, &multi);
    if (rc != 0) return shard_error(s, c, f, (u16)rc, 0, NULL);
    bool own_port = c->port_shard != CODEC_SHARD_NONE;
    if (own_port && (target != s->id || multi.count > 1))
        return shard_error(s, c, f, CODEC_S_WRONG_SHARD, s->map.version,
                           "the key belongs to another shard: refresh the shard map");
    if (multi.count > 1) return shard_gather_range(s, c, f, m, raw, &multi);
    if (target == s->id) return shard_exec_local(s, c, f, m, raw);
    if (!shard_can_send(s, target, 1)) return CONN_FRAME_AGAIN;
    return shard_forward(s, c, target, raw, NULL, 0) ? CONN_FRAME_DONE : CONN_FRAME_AGAIN;
}

int shard_on_frame(void *ctx, struct conn *c, const struct codec_frame *f, struct span raw)
{
    struct shard *s = ctx;
    if (f->request_id == 0 || f->opcode == CODEC_OP_GOAWAY) {
        conn_goaway(c, CODEC_S_FRAME_MALFORMED, 0,
                    f->request_id == 0 ? "request id 0" : "GOAWAY is sent by servers only");
        return CONN_FRAME_CLOSE;
    }
    if (f->opcode == CODEC_OP_HELLO) return shard_hello(s, c, f);
    if (!c->handshaken) return shard_error(s, c, f, CODEC_S_NOT_HANDSHAKEN, 0, NULL);
    if (c->pending >= CODEC_IN_FLIGHT_MAX)
        return shard_error(s, c, f, CODEC_S_TOO_MANY_IN_FLIGHT, CODEC_IN_FLIGHT_MAX, NULL);
    union codec_msg_any m;
    int rc = codec_request_decode(f, &m);
    if (rc != 0) {
        u64 detail = rc == CODEC_S_UNKNOWN_OPCODE ? f->opcode : 0;
        return shard_error(s, c, f, (u16)rc, detail, NULL);
    }
    s->requests++;
    if (f->opcode == CODEC_OP_SHARD_MAP) return shard_map_reply(s, c, f);
    if (f->opcode == CODEC_OP_STATUS) {
        if (c->port_shard != CODEC_SHARD_NONE || s->node->config.shard_count == 1) {
            struct codec_shard_status st;
            shard_own_status(s, &st);
            return shard_status_encode(s, c, f->request_id, &st, 1);
        }
        return shard_gather_status(s, c, f);
    }
    if (shard_is_member_op(f->opcode)) return shard_member_route(s, c, f, &m, raw);
    return shard_kv(s, c, f, &m, raw);
}

void shard_on_closed(void *ctx, struct conn *c)
{
    struct shard *s = ctx;
    (void)c;
    atomic_fetch_sub(&s->node->open_conns, 1);
}

/* ---- the xcore side -----------------------------------------------------------------------------
 */

static int shard_handle_request(struct shard *s, const struct xcore_msg *msg)
{
    if (msg->type == XMSG_STATUS) {
        struct xcore_msg r = {.target = msg->source,
                              .dir = XCORE_REPLY,
                              .type = XMSG_STATUS,
                              .len = sizeof(struct codec_shard_status),
                              .cookie = msg->cookie};
        struct codec_shard_status st;
        shard_own_status(s, &st);
        memcpy(r.bytes, &st, sizeof(st));
        return xcore_send(s->node->xcore, s->id, &r, NULL) == XCORE_OK ? XCORE_OK : XCORE_AGAIN;
    }
    struct codec_frame f;
    size_t size = 0;
    union codec_msg_any m;
    struct span raw = xcore_msg_payload(msg);
    int rc = codec_frame_decode(raw, CODEC_FRAME_SIZE_MAX, &f, &size);
    ASSERT(rc == 0);
    rc = codec_request_decode(&f, &m);
    ASSERT(rc == 0); /* the origin decoded it */
    struct sink k = {.kind = SINK_XCORE,
                     .opcode = f.opcode,
                     .request_id = f.request_id,
                     .origin = msg->source,
                     .cookie = msg->cookie};
    return shard_submit(s, &k, &f, &m, raw) == CONN_FRAME_DONE ? XCORE_OK : XCORE_AGAIN;
}

void shard_remote_reply(struct shard *s, u32 origin, u64 cookie, u8 *bytes, u32 len)
{
    if (s->rr_len == s->rr_cap) {
        u32 cap = s->rr_cap ? s->rr_cap * 2 : 64;
        struct remote_reply *rr = realloc(s->rr, cap * sizeof(*rr));
        ASSERT(rr); /* a reply owed to another shard cannot be dropped */
        s->rr = rr;
        s->rr_cap = cap;
    }
    s->rr[s->rr_len++] = (struct remote_reply){
        .origin = origin, .type = XMSG_FWD, .cookie = cookie, .bytes = bytes, .len = len};
    s->rr_ready = true;
}

static void shard_handle_reply(struct shard *s, const struct xcore_msg *msg)
{
    struct fwd *w = (struct fwd *)(uintptr_t)msg->cookie;
    struct gather *g = w->gather;
    u32 w_part = w->part;
    if (g) {
        if (msg->type == XMSG_STATUS)
            memcpy(&g->status[w_part], msg->bytes, sizeof(struct codec_shard_status));
        free(w);
        if (msg->type != XMSG_STATUS)
            return shard_gather_part(s, g, w_part, xcore_msg_payload(msg));
        if (--g->parts_left == 0) gather_finish(s, g);
        return;
    }
    struct conn *c = w->c;
    free(w);
    c->pending--;
    conn_kick(c);
    if (c->closing) return;
    struct span bytes = xcore_msg_payload(msg);
    struct buf *b = conn_reply_begin(c);
    buf_put_bytes(b, bytes.ptr, bytes.len);
    if (!buf_ok(b)) return conn_close(c);
    conn_reply_end(c, 0); /* the owning shard held it until durable */
}

int shard_xcore_handler(void *ctx, const struct xcore_msg *msg)
{
    struct shard *s = ctx;
    if (msg->dir == XCORE_REQUEST) return shard_handle_request(s, msg);
    shard_handle_reply(s, msg);
    return XCORE_OK;
}

void shard_release_remote(struct shard *s)
{
    /* Replies to other shards' requests, built at apply or at once: lent back through xcore. */
    if (!s->rr_ready) return;
    s->rr_ready = false;
    u32 keep = 0;
    for (u32 i = 0; i < s->rr_len; i++) {
        struct remote_reply *r = &s->rr[i];
        u64 ticket = 0;
        struct xcore_msg msg = {.target = (u16)r->origin,
                                .dir = XCORE_REPLY,
                                .flags = XCORE_MSG_BORROWED,
                                .type = r->type,
                                .len = r->len,
                                .cookie = r->cookie,
                                .ptr = r->bytes};
        if (xcore_send(s->node->xcore, s->id, &msg, &ticket) == 0 &&
            lent_push(&s->lent_rep[r->origin], ticket, r->bytes))
            continue;
        s->rr[keep++] = *r;
        s->rr_ready = true; /* xcore refused: retry next turn */
    }
    s->rr_len = keep;
}
