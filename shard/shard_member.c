/*
 * shard_member.c — membership changes and leadership moves a client asks for.
 *
 * A node that receives MEMBER_ADD, MEMBER_REMOVE, MEMBER_PROMOTE or MOVE_LEADER (every shard)
 * fans the request out to all of its shards (a gather, as a RANGE over several shards); each
 * shard hands its part to its group's leader (shard_fwd.c when that is another node), which
 * proposes the change and answers once it is applied. The answers are merged: the first error,
 * else the first shard's reply. Each group changes on its own, one change at a time; a change
 * that is already in force in a group counts as done there, so a client that got an error
 * (say CONF_CHANGE_PENDING in one group) can repeat the request until every group agrees.
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <stdio.h>
#include <string.h>

#define LEARNER_READY_LAG_MAX 1000u /* entries: a learner this far behind is not promoted */

bool shard_is_member_op(u16 opcode)
{
    return opcode >= CODEC_OP_MEMBER_LIST && opcode <= CODEC_OP_ENDPOINT_STATUS;
}

static int reply_error(struct shard *s, struct sink *k, u16 status, u64 detail, const char *msg)
{
    shard_sink_error(s, k, status, detail, msg);
    return CONN_FRAME_DONE;
}

static const struct raft_member *conf_find(const struct raft_conf *c, u64 id)
{
    for (u32 i = 0; i < c->count; i++)
        if (c->members[i].id == id) return &c->members[i];
    return NULL;
}

/* The change a MEMBER_ADD asks for; the id is derived from the name (or the first peer URL), so
 * every group gives the new member the same id. */
static int add_change(const struct codec_member_add_request *q, struct raft_conf_change *cc)
{
    struct codec_iter it;
    struct codec_url u;
    codec_iter_init(&it, codec_field_find(&codec_msg_member_add_request, "peer_urls"),
                    &q->peer_urls);
    if (!codec_iter_next(&it, &u)) return CODEC_S_INVALID;
    char key[CODEC_URL_SIZE_MAX + 1];
    struct span from = q->name.len ? q->name : u.url;
    memcpy(key, from.ptr, from.len);
    key[from.len] = '\0';
    *cc = (struct raft_conf_change){.type = (q->flags & CODEC_MEMBER_ADD_REQUEST_AS_LEARNER)
                                                ? RAFT_CC_ADD_LEARNER
                                                : RAFT_CC_ADD_VOTER,
                                    .id = node_member_id(key)};
    int n = snprintf((char *)cc->context, sizeof(cc->context), "%.*s=%.*s", (int)q->name.len,
                     (const char *)q->name.ptr, (int)u.url.len, (const char *)u.url.ptr);
    if (n < 0 || (size_t)n >= sizeof(cc->context)) return CODEC_S_INVALID;
    cc->context_len = (u32)n;
    return 0;
}

/* The raft change for request f on this shard's group, or a status; *done: already in force. */
static int member_change(struct shard *s, const struct codec_frame *f, const union codec_msg_any *m,
                         struct raft_conf_change *cc, bool *done)
{
    struct raft_status st;
    raft_status(s->raft, &st);
    *done = false;
    if (f->opcode == CODEC_OP_MEMBER_ADD) {
        int rc = add_change(&m->member_add_request, cc);
        if (rc != 0) return rc;
        *done = conf_find(&st.conf, cc->id) != NULL;
        if (!*done && st.conf.count == RAFT_MEMBERS_MAX) return CODEC_S_TOO_MANY_MEMBERS;
        return 0;
    }
    u64 id = f->opcode == CODEC_OP_MEMBER_REMOVE ? m->member_remove_request.member_id
                                                 : m->member_promote_request.member_id;
    const struct raft_member *rm = conf_find(&st.conf, id);
    *cc = (struct raft_conf_change){.id = id};
    if (f->opcode == CODEC_OP_MEMBER_REMOVE) {
        cc->type = RAFT_CC_REMOVE;
        /* Gone already, but known: an earlier attempt removed it from this group. */
        *done = !rm && shard_member_known(s, id);
        return rm || *done ? 0 : CODEC_S_MEMBER_NOT_FOUND;
    }
    cc->type = RAFT_CC_PROMOTE;
    if (!rm) return CODEC_S_MEMBER_NOT_FOUND;
    /* A voter in this group already: an earlier attempt promoted it here. */
    *done = rm->role == RAFT_VOTER;
    if (*done) return 0;
    for (u32 i = 0; i < st.progress_count; i++)
        if (st.progress[i].id == id && st.last_index - st.progress[i].match > LEARNER_READY_LAG_MAX)
            return CODEC_S_LEARNER_NOT_READY;
    return 0;
}

/* Encodes the reply of a membership request with the members now in force. */
static void member_reply(struct shard *s, struct sink *k, u64 new_id)
{
    struct buf tmp;
    buf_init_dynamic(&tmp, 512);
    struct codec_frame head = {.opcode = k->opcode, .request_id = k->request_id};
    struct codec_reply_header h = {.shard = (u16)s->id,
                                   .revision = mvcc_revision(s->m),
                                   .member_id = s->node->config.member_id};
    union codec_msg_any o = {0};
    const struct codec_msg_desc *d = k->opcode == CODEC_OP_MEMBER_ADD ? &codec_msg_member_add_reply
                                     : k->opcode == CODEC_OP_MEMBER_REMOVE
                                         ? &codec_msg_member_remove_reply
                                         : &codec_msg_member_promote_reply;
    struct codec_list *members = k->opcode == CODEC_OP_MEMBER_ADD ? &o.member_add_reply.members
                                 : k->opcode == CODEC_OP_MEMBER_REMOVE
                                     ? &o.member_remove_reply.members
                                     : &o.member_promote_reply.members;
    o.member_add_reply.member_id = k->opcode == CODEC_OP_MEMBER_ADD ? new_id : 0;
    if (k->opcode != CODEC_OP_MEMBER_ADD) memset(&o, 0, sizeof(o));
    buf_reset(&s->x.scratch[2]);
    int rc = shard_members_list(s, codec_field_find(d, "members"), members, &s->x.scratch[2]);
    if (rc == 0) rc = codec_reply_encode(&tmp, &head, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX);
    if (rc == 0)
        shard_sink_bytes(s, k, tmp.ptr, (u32)tmp.len);
    else
        reply_error(s, k, CODEC_S_INTERNAL, 0, "encoding the member list");
    buf_free(&tmp);
}

static int member_propose(struct shard *s, struct sink *k, const struct codec_frame *f,
                          const union codec_msg_any *m, struct span raw)
{
    if (raft_role(s->raft) != RAFT_LEADER) {
        if (k->kind != SINK_PEER) return shard_forward_to_leader(s, k, raw);
        return reply_error(s, k, CODEC_S_NOT_LEADER, raft_leader(s->raft), NULL);
    }
    struct raft_conf_change cc;
    bool done = false;
    int st = member_change(s, f, m, &cc, &done);
    if (st != 0) return reply_error(s, k, (u16)st, cc.id, NULL);
    if (done) {
        member_reply(s, k, cc.id);
        return CONN_FRAME_DONE;
    }
    u64 index = 0;
    int rc = raft_propose_conf(s->raft, &cc, &index);
    if (rc == RAFT_OK && f->opcode == CODEC_OP_MEMBER_ADD) s->snap_force = true;
    if (rc == RAFT_ECONF_PENDING)
        return reply_error(s, k, CODEC_S_CONF_CHANGE_PENDING, 0,
                           "another membership change is not applied yet; retry");
    if (rc != RAFT_OK)
        return reply_error(s, k, rc == RAFT_ENOT_LEADER ? CODEC_S_NOT_LEADER : CODEC_S_INVALID,
                           raft_leader(s->raft), raft_err_str(rc));
    shard_props_push(s, index, raft_term(s->raft), k, cc.id);
    return CONN_FRAME_DONE;
}

/* A membership entry that this member proposed was applied: answer the client. */
void shard_member_applied(struct shard *s, struct sink *k, u64 member_id)
{
    member_reply(s, k, member_id);
}

/* ---- MOVE_LEADER ------------------------------------------------------------------------- */

static void move_reply(struct shard *s, struct sink *k, u16 status)
{
    struct buf tmp, list;
    buf_init_dynamic(&tmp, 256);
    buf_init_dynamic(&list, 64);
    struct codec_move_leader_reply o;
    struct codec_list_builder lb;
    codec_list_begin(&lb, codec_field_find(&codec_msg_move_leader_reply, "shards"), &o.shards,
                     &list);
    struct codec_shard_move e = {.shard_id = (u16)s->id,
                                 .status = status,
                                 .leader_id = raft_leader(s->raft),
                                 .raft_term = raft_term(s->raft)};
    codec_list_add(&lb, &e);
    codec_list_end(&lb);
    struct codec_frame head = {.opcode = CODEC_OP_MOVE_LEADER, .request_id = k->request_id};
    struct codec_reply_header h = {.shard = (u16)s->id, .member_id = s->node->config.member_id};
    if (codec_reply_encode(&tmp, &head, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX) == 0)
        shard_sink_bytes(s, k, tmp.ptr, (u32)tmp.len);
    else
        shard_sink_error(s, k, CODEC_S_INTERNAL, 0, "encoding MOVE_LEADER");
    buf_free(&tmp);
    buf_free(&list);
}

static int move_leader(struct shard *s, struct sink *k, const struct codec_move_leader_request *q,
                       struct span raw)
{
    bool leader = raft_role(s->raft) == RAFT_LEADER;
    bool all = q->shard == CODEC_SHARD_NONE;
    if (!leader && !all && k->kind != SINK_PEER) return shard_forward_to_leader(s, k, raw);
    if (!leader) return move_reply(s, k, CODEC_S_NOT_LEADER), CONN_FRAME_DONE;
    if (q->target_id == s->node->config.member_id) return move_reply(s, k, 0), CONN_FRAME_DONE;
    if (s->move.active) return CONN_FRAME_AGAIN;
    struct raft_status st;
    raft_status(s->raft, &st);
    const struct raft_member *rm = conf_find(&st.conf, q->target_id);
    if (!rm) return reply_error(s, k, CODEC_S_MEMBER_NOT_FOUND, q->target_id, NULL);
    if (rm->role != RAFT_VOTER) return reply_error(s, k, CODEC_S_MEMBER_IS_LEARNER, rm->id, NULL);
    if (raft_transfer_leader(s->raft, q->target_id) != RAFT_OK)
        return move_reply(s, k, CODEC_S_LEADER_TRANSFER_FAILED), CONN_FRAME_DONE;
    s->move = (struct pending_move){.active = true, .sink = *k, .target = q->target_id};
    shard_sink_hold(&s->move.sink);
    return CONN_FRAME_DONE;
}

/* On every tick: a transfer under way succeeded, or gave up after an election timeout. */
void shard_move_tick(struct shard *s)
{
    if (!s->move.active) return;
    bool done = raft_leader(s->raft) == s->move.target;
    if (!done && ++s->move.elapsed_ticks < 2 * SHARD_RAFT_ELECTION_TICKS) return;
    s->move.active = false;
    move_reply(s, &s->move.sink, done ? 0 : CODEC_S_LEADER_TRANSFER_FAILED);
}

int shard_member_op(struct shard *s, struct sink *k, const struct codec_frame *f,
                    const union codec_msg_any *m, struct span raw)
{
    struct buf tmp;
    switch (f->opcode) {
    case CODEC_OP_MEMBER_LIST:
    case CODEC_OP_ENDPOINT_STATUS: {
        buf_init_dynamic(&tmp, 1024);
        int rc = f->opcode == CODEC_OP_MEMBER_LIST ? shard_member_list(s, &tmp, f)
                                                   : shard_endpoint_status(s, &tmp, f);
        if (rc == 0) shard_sink_bytes(s, k, tmp.ptr, (u32)tmp.len);
        buf_free(&tmp);
        return rc == 0 ? CONN_FRAME_DONE : reply_error(s, k, (u16)rc, 0, NULL);
    }
    case CODEC_OP_MOVE_LEADER:
        return move_leader(s, k, &m->move_leader_request, raw);
    default:
        return member_propose(s, k, f, m, raw);
    }
}

/* ---- merging the shards' answers on the node that fanned out ------------------------------ */

static bool part_decode(struct span part, struct codec_reply *r)
{
    struct codec_frame f;
    size_t size = 0;
    if (part.len == 0 || codec_frame_decode(part, CODEC_REPLY_FRAME_SIZE_MAX, &f, &size) != 0)
        return false;
    return codec_reply_decode(&f, r) == 0;
}

/* MOVE_LEADER of every shard: the shards' entries in one list. */
static void merge_moves(struct shard *s, struct gather *g, struct buf *out)
{
    struct buf list;
    buf_init_dynamic(&list, 256);
    struct codec_move_leader_reply o;
    struct codec_list_builder lb;
    const struct codec_field_desc *fd = codec_field_find(&codec_msg_move_leader_reply, "shards");
    codec_list_begin(&lb, fd, &o.shards, &list);
    for (u32 i = 0; i < g->parts_total; i++) {
        struct codec_reply r;
        struct codec_shard_move e = {.shard_id = g->shard[i], .status = CODEC_S_INTERNAL};
        if (part_decode(span_make(g->part[i], g->part_len[i]), &r)) {
            struct codec_iter it;
            codec_iter_init(&it, fd, &r.body.move_leader_reply.shards);
            if (r.header.status != 0)
                e.status = r.header.status;
            else if (!codec_iter_next(&it, &e))
                e.status = CODEC_S_INTERNAL;
        }
        codec_list_add(&lb, &e);
    }
    codec_list_end(&lb);
    struct codec_frame head = {.opcode = g->opcode, .request_id = g->request_id};
    struct codec_reply_header h = {.shard = CODEC_SHARD_NONE,
                                   .member_id = s->node->config.member_id};
    codec_reply_encode(out, &head, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX);
    buf_free(&list);
}

/* Membership changes: the first shard's error, else the first shard's reply. */
void shard_member_merge(struct shard *s, struct gather *g, struct buf *out)
{
    if (g->opcode == CODEC_OP_MOVE_LEADER) return merge_moves(s, g, out);
    u32 pick = 0;
    for (u32 i = 0; i < g->parts_total; i++) {
        struct codec_reply r;
        if (!part_decode(span_make(g->part[i], g->part_len[i]), &r)) {
            exec_error_reply(out, g->opcode, g->request_id, g->shard[i], 0,
                             s->node->config.member_id, CODEC_S_INTERNAL, 0,
                             "a shard's part of a membership request was lost");
            return;
        }
        if (r.header.status != 0) {
            pick = i;
            break;
        }
    }
    buf_put_bytes(out, g->part[pick], g->part_len[pick]);
}
