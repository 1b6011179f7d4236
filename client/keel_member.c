/*
 * keel_member.c — libkeel's member operations (protocol.md "Members and cluster"): public
 * arguments -> codec messages, and decoded replies -> keel_members_result,
 * keel_move_leader_result and keel_endpoint_status_result. No I/O; keel.c sends them.
 *
 * Arguments by opcode (what keel.c passes as args):
 *   MEMBER_LIST      const bool *linearizable
 *   MEMBER_ADD       const struct keel_member_add_args *
 *   MEMBER_REMOVE    const uint64_t *member_id      (and MEMBER_PROMOTE)
 *   MOVE_LEADER      const struct codec_move_leader_request *
 *   ENDPOINT_STATUS  NULL
 * Result arrays live in the result's memory chain (keel_mem_alloc), strings point into the
 * reply frame's copy, as for every other result. The public sync calls are at the end.
 */
#include "client/keel_int.h"
#include "core/assert.h"

#include <string.h>

/* ---- encoding ---------------------------------------------------------------------------- */

static int urls_build(struct buf *b, const char *field, const struct keel_str *urls, size_t n,
                      struct codec_list *list)
{
    struct codec_list_builder lb;
    if (n > 0 && urls == NULL) return KEEL_STATUS_ARG;
    if (n > CODEC_MEMBER_URLS_MAX) return KEEL_STATUS_INVALID;
    buf_reset(b);
    codec_list_begin(&lb, codec_field_find(&codec_msg_member_add_request, field), list, b);
    for (size_t i = 0; i < n; i++) {
        struct codec_url u = {.url = span_make(urls[i].ptr, urls[i].len)};
        int rc = codec_list_add(&lb, &u);
        if (rc != 0) return rc == CODEC_NO_ROOM ? KEEL_STATUS_NO_MEMORY : rc;
    }
    codec_list_end(&lb);
    return 0;
}

static int add_fill(keel_client *c, const struct keel_member_add_args *a,
                    struct codec_member_add_request *m)
{
    if (a->peer_urls_len == 0) return KEEL_STATUS_INVALID; /* protocol.md: at least one */
    if (a->name.len > CODEC_MEMBER_NAME_SIZE_MAX) return KEEL_STATUS_INVALID;
    m->flags = a->as_learner ? CODEC_MEMBER_ADD_REQUEST_AS_LEARNER : 0;
    m->name = span_make(a->name.ptr, a->name.len);
    int rc = urls_build(&c->scratch[0], "peer_urls", a->peer_urls, a->peer_urls_len, &m->peer_urls);
    if (rc != 0) return rc;
    return urls_build(&c->scratch[1], "client_urls", a->client_urls, a->client_urls_len,
                      &m->client_urls);
}

int keel_member_fill(keel_client *c, u16 opcode, const void *args, union codec_msg_any *m)
{
    ASSERT(c != NULL && m != NULL);
    switch (opcode) {
    case CODEC_OP_MEMBER_LIST:
        m->member_list_request.flags =
            *(const bool *)args ? CODEC_MEMBER_LIST_REQUEST_LINEARIZABLE : 0;
        return 0;
    case CODEC_OP_MEMBER_ADD:
        return add_fill(c, args, &m->member_add_request);
    case CODEC_OP_MEMBER_REMOVE:
        m->member_remove_request.member_id = *(const u64 *)args;
        return m->member_remove_request.member_id ? 0 : KEEL_STATUS_INVALID;
    case CODEC_OP_MEMBER_PROMOTE:
        m->member_promote_request.member_id = *(const u64 *)args;
        return m->member_promote_request.member_id ? 0 : KEEL_STATUS_INVALID;
    case CODEC_OP_MOVE_LEADER:
        m->move_leader_request = *(const struct codec_move_leader_request *)args;
        return m->move_leader_request.target_id ? 0 : KEEL_STATUS_INVALID;
    case CODEC_OP_ENDPOINT_STATUS:
        return 0;
    default:
        return KEEL_STATUS_ARG; /* an opcode libkeel does not send */
    }
}

/* ---- decoding ---------------------------------------------------------------------------- */

static struct keel_str str_of(struct span s)
{
    return (struct keel_str){(const char *)s.ptr, s.len};
}

static struct keel_str *urls_of(const struct codec_list *list, const char *field, void **mem)
{
    struct codec_iter it;
    struct codec_url u;
    struct keel_str *out = keel_mem_alloc(mem, sizeof(*out) * list->count);
    if (out == NULL) return NULL;
    codec_iter_init(&it, codec_field_find(&codec_msg_member, field), list);
    for (u32 i = 0; codec_iter_next(&it, &u); i++) {
        ASSERT(i < list->count);
        out[i] = str_of(u.url);
    }
    return out;
}

static int members_of(const struct codec_msg_desc *d, const struct codec_list *list,
                      struct keel_members_result *o, void **mem)
{
    struct codec_iter it;
    struct codec_member m;
    o->members_len = list->count;
    o->members = keel_mem_alloc(mem, sizeof(*o->members) * list->count);
    if (o->members == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(d, "members"), list);
    for (u32 i = 0; codec_iter_next(&it, &m); i++) {
        struct keel_member *x = &o->members[i];
        x->id = m.id;
        x->is_learner = m.is_learner;
        x->name = str_of(m.name);
        x->peer_urls_len = m.peer_urls.count;
        x->peer_urls = urls_of(&m.peer_urls, "peer_urls", mem);
        x->client_urls_len = m.client_urls.count;
        x->client_urls = urls_of(&m.client_urls, "client_urls", mem);
        if (x->peer_urls == NULL || x->client_urls == NULL) return KEEL_STATUS_NO_MEMORY;
    }
    return 0;
}

static int list_of(const struct codec_member_list_reply *r, struct keel_members_result *o,
                   void **mem)
{
    struct codec_iter it;
    struct codec_shard_leader s;
    o->cluster_id = r->cluster_id;
    int rc = members_of(&codec_msg_member_list_reply, &r->members, o, mem);
    if (rc != 0) return rc;
    o->shards_len = r->shards.count;
    o->shards = keel_mem_alloc(mem, sizeof(*o->shards) * r->shards.count);
    if (o->shards == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(&codec_msg_member_list_reply, "shards"), &r->shards);
    for (u32 i = 0; codec_iter_next(&it, &s); i++)
        o->shards[i] = (struct keel_shard_leader){s.shard_id, s.leader_id, s.raft_term};
    return 0;
}

static int moves_of(const struct codec_move_leader_reply *r, struct keel_move_leader_result *o,
                    void **mem)
{
    struct codec_iter it;
    struct codec_shard_move s;
    o->shards_len = r->shards.count;
    o->shards = keel_mem_alloc(mem, sizeof(*o->shards) * r->shards.count);
    if (o->shards == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(&codec_msg_move_leader_reply, "shards"), &r->shards);
    for (u32 i = 0; codec_iter_next(&it, &s); i++)
        o->shards[i] = (struct keel_shard_move){s.shard_id, s.status, s.leader_id, s.raft_term};
    return 0;
}

static int progress_of(const struct codec_shard_raft_status *s, struct keel_shard_raft *x,
                       void **mem)
{
    struct codec_iter it;
    struct codec_peer_progress p;
    x->progress_len = s->progress.count;
    x->progress = keel_mem_alloc(mem, sizeof(*x->progress) * s->progress.count);
    if (x->progress == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(&codec_msg_shard_raft_status, "progress"), &s->progress);
    for (u32 i = 0; codec_iter_next(&it, &p); i++) {
        struct keel_peer_progress *y = &x->progress[i];
        y->member_id = p.member_id;
        y->is_learner = p.is_learner;
        y->recent_active = p.recent_active;
        y->state = (enum keel_progress_state)p.state;
        y->match_index = p.match_index;
        y->next_index = p.next_index;
    }
    return 0;
}

static int endpoint_of(const struct codec_endpoint_status_reply *r,
                       struct keel_endpoint_status_result *o, void **mem)
{
    struct codec_iter it;
    struct codec_shard_raft_status s;
    o->name = str_of(r->name);
    o->is_learner = r->is_learner;
    o->shards_len = r->shards.count;
    o->shards = keel_mem_alloc(mem, sizeof(*o->shards) * r->shards.count);
    if (o->shards == NULL) return KEEL_STATUS_NO_MEMORY;
    codec_iter_init(&it, codec_field_find(&codec_msg_endpoint_status_reply, "shards"), &r->shards);
    for (u32 i = 0; codec_iter_next(&it, &s); i++) {
        struct keel_shard_raft *x = &o->shards[i];
        x->shard_id = s.shard_id;
        x->role = (enum keel_raft_role)s.role;
        x->leader_id = s.leader_id;
        x->raft_term = s.raft_term;
        x->raft_commit_index = s.raft_commit_index;
        x->raft_applied_index = s.raft_applied_index;
        x->raft_last_index = s.raft_last_index;
        x->revision = s.revision;
        int rc = progress_of(&s, x, mem);
        if (rc != 0) return rc;
    }
    return 0;
}

int keel_member_decode(u16 opcode, const struct codec_reply *r, struct keel_result *res, void **mem)
{
    ASSERT(r != NULL && res != NULL);
    ASSERT(r->header.status == CODEC_S_OK);
    struct keel_members_result *o = &res->u.members;
    switch (opcode) {
    case CODEC_OP_MEMBER_LIST:
        return list_of(&r->body.member_list_reply, o, mem);
    case CODEC_OP_MEMBER_ADD:
        o->member_id = r->body.member_add_reply.member_id;
        return members_of(&codec_msg_member_add_reply, &r->body.member_add_reply.members, o, mem);
    case CODEC_OP_MEMBER_REMOVE:
        return members_of(&codec_msg_member_remove_reply, &r->body.member_remove_reply.members, o,
                          mem);
    case CODEC_OP_MEMBER_PROMOTE:
        return members_of(&codec_msg_member_promote_reply, &r->body.member_promote_reply.members, o,
                          mem);
    case CODEC_OP_MOVE_LEADER:
        return moves_of(&r->body.move_leader_reply, &res->u.move_leader, mem);
    case CODEC_OP_ENDPOINT_STATUS:
        return endpoint_of(&r->body.endpoint_status_reply, &res->u.endpoint_status, mem);
    default:
        return 0; /* an opcode with no fields libkeel reads */
    }
}

/* ---- sync calls ---------------------------------------------------------------------------- */

int keel_member_list(keel_client *c, bool linearizable, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_MEMBER_LIST, &linearizable, out);
}

int keel_member_add(keel_client *c, const struct keel_member_add_args *a, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_MEMBER_ADD, a, out);
}

int keel_member_remove(keel_client *c, uint64_t member_id, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_MEMBER_REMOVE, &member_id, out);
}

int keel_member_promote(keel_client *c, uint64_t member_id, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_MEMBER_PROMOTE, &member_id, out);
}

int keel_move_leader(keel_client *c, uint16_t shard, uint64_t target_id, struct keel_result *out)
{
    struct codec_move_leader_request m = {.shard = shard, .target_id = target_id};
    return keel_sync_follow(c, CODEC_OP_MOVE_LEADER, &m, out);
}

int keel_endpoint_status(keel_client *c, struct keel_result *out)
{
    return keel_sync_follow(c, CODEC_OP_ENDPOINT_STATUS, NULL, out);
}
