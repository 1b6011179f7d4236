/*
 * shard_status.c — what a shard tells about its Raft group: the figures it publishes for the
 * other shards of its node (leader, term, indexes, members, the leader's view of each peer),
 * ENDPOINT_STATUS and MEMBER_LIST replies built from them, the leader ids of SHARD_MAP, and
 * leader balancing.
 *
 * Publication: once per tick each shard stores its figures into node->pub[shard] with relaxed
 * atomics; any shard reads every shard's to answer a status request. These are monitoring
 * figures (at most a tick old), never used to decide anything on the request path, so they
 * need no ordering; the request path still crosses cores only through the xcore rings.
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#define PUB_LEARNER         (1u << 0)
#define PUB_RECENT          (1u << 1)
#define BALANCE_EVERY_TICKS (5u * SHARD_RAFT_ELECTION_TICKS) /* 5 s between transfers */

#define STORE(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)
#define LOAD(field)     atomic_load_explicit(&(field), memory_order_relaxed)

static u8 codec_role_of(const struct raft_status *st)
{
    if (st->role == RAFT_LEADER) return CODEC_RAFT_ROLE_LEADER;
    if (st->role != RAFT_FOLLOWER) return CODEC_RAFT_ROLE_CANDIDATE;
    for (u32 i = 0; i < st->conf.count; i++)
        if (st->conf.members[i].id == st->id && st->conf.members[i].role == RAFT_LEARNER)
            return CODEC_RAFT_ROLE_LEARNER;
    return CODEC_RAFT_ROLE_FOLLOWER;
}

void shard_publish(struct shard *s)
{
    struct raft_status st;
    raft_status(s->raft, &st);
    /* A follower (a joiner) can only continue from a snapshot and none exists yet. */
    if (st.snapshot_wanted) s->snap_force = true;
    shard_snap_trim_log(s, &st);
    struct shard_pub *p = &s->node->pub[s->id];
    STORE(p->leader, st.leader);
    STORE(p->term, st.term);
    STORE(p->commit, st.commit);
    STORE(p->applied, s->applied_index);
    STORE(p->last, st.last_index);
    STORE(p->revision, mvcc_revision(s->m));
    STORE(p->role, codec_role_of(&st));
    STORE(p->conf_count, st.conf.count);
    for (u32 i = 0; i < st.conf.count; i++) {
        STORE(p->conf_id[i], st.conf.members[i].id);
        STORE(p->conf_role[i], st.conf.members[i].role);
    }
    STORE(p->progress_count, st.progress_count);
    for (u32 i = 0; i < st.progress_count; i++) {
        const struct raft_progress_status *pr = &st.progress[i];
        STORE(p->progress[i].id, pr->id);
        STORE(p->progress[i].match, pr->match);
        STORE(p->progress[i].next, pr->next);
        u32 flags = (pr->role == RAFT_LEARNER ? PUB_LEARNER : 0) |
                    (pr->recent_active ? PUB_RECENT : 0) | ((u32)pr->state << 8);
        STORE(p->progress[i].flags, flags);
    }
}

u64 shard_pub_leader(const struct node *n, u32 shard)
{
    return LOAD(n->pub[shard].leader);
}

/* ---- ENDPOINT_STATUS -------------------------------------------------------------------- */

static int progress_list(const struct shard_pub *p, u64 self, struct codec_list *out,
                         struct buf *scratch)
{
    struct codec_list_builder lb;
    codec_list_begin(&lb, codec_field_find(&codec_msg_shard_raft_status, "progress"), out, scratch);
    u32 n = LOAD(p->progress_count);
    for (u32 i = 0; i < n && i < RAFT_MEMBERS_MAX; i++) {
        u32 flags = LOAD(p->progress[i].flags);
        struct codec_peer_progress e = {.member_id = LOAD(p->progress[i].id),
                                        .is_learner = (flags & PUB_LEARNER) != 0,
                                        .state = (u8)(flags >> 8),
                                        .match_index = LOAD(p->progress[i].match),
                                        .next_index = LOAD(p->progress[i].next),
                                        .recent_active = (flags & PUB_RECENT) != 0};
        if (e.member_id == self) continue;
        int rc = codec_list_add(&lb, &e);
        if (rc != 0) return rc;
    }
    codec_list_end(&lb);
    return 0;
}

static const char *own_name(const struct shard *s)
{
    return s->node->config.name ? s->node->config.name : "default";
}

int shard_endpoint_status(struct shard *s, struct buf *out, const struct codec_frame *f)
{
    const struct node *n = s->node;
    struct codec_endpoint_status_reply o = {.name = span_make(own_name(s), strlen(own_name(s)))};
    struct codec_list_builder lb;
    buf_reset(&s->x.scratch[2]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_endpoint_status_reply, "shards"), &o.shards,
                     &s->x.scratch[2]);
    for (u32 i = 0; i < n->config.shard_count; i++) {
        const struct shard_pub *p = &n->pub[i];
        struct codec_shard_raft_status e = {.shard_id = (u16)i,
                                            .role = (u8)LOAD(p->role),
                                            .leader_id = LOAD(p->leader),
                                            .raft_term = LOAD(p->term),
                                            .raft_commit_index = LOAD(p->commit),
                                            .raft_applied_index = LOAD(p->applied),
                                            .raft_last_index = LOAD(p->last),
                                            .revision = LOAD(p->revision)};
        if (e.role == CODEC_RAFT_ROLE_LEARNER) o.is_learner = true;
        buf_reset(&s->x.scratch[1]);
        int rc = progress_list(p, n->config.member_id, &e.progress, &s->x.scratch[1]);
        if (rc == 0) rc = codec_list_add(&lb, &e);
        if (rc != 0) return CODEC_S_INTERNAL;
    }
    codec_list_end(&lb);
    struct codec_reply_header h = {.shard = CODEC_SHARD_NONE, .member_id = n->config.member_id};
    return codec_reply_encode(out, f, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX) == 0 ? 0
                                                                               : CODEC_S_INTERNAL;
}

/* ---- MEMBER_LIST ------------------------------------------------------------------------- */

/* What this shard knows of member id: its name and URLs (from --initial-cluster, or the context
 * of the change that added it). */
static const struct member_info *member_info_find(const struct shard *s, u64 id)
{
    for (u32 i = 0; i < s->minfo_count; i++)
        if (s->minfo[i].id == id) return &s->minfo[i];
    return NULL;
}

bool shard_member_known(const struct shard *s, u64 id)
{
    return member_info_find(s, id) != NULL;
}

void shard_member_info_set(struct shard *s, u64 id, const char *name, const char *peer_url)
{
    struct member_info *m = (struct member_info *)member_info_find(s, id);
    if (!m) {
        if (s->minfo_count == KEEL_ARRAY_LEN(s->minfo)) return;
        m = &s->minfo[s->minfo_count++];
    }
    *m = (struct member_info){.id = id};
    snprintf(m->name, sizeof(m->name), "%s", name);
    snprintf(m->peer_url, sizeof(m->peer_url), "%s", peer_url);
}

void shard_member_info_init(struct shard *s)
{
    const struct node_config *c = &s->node->config;
    for (u32 i = 0; i < c->member_count; i++) {
        char url[64];
        struct in_addr a = {.s_addr = htonl(c->members[i].ipv4)};
        snprintf(url, sizeof(url), "http://%s:%u", inet_ntoa(a), c->members[i].peer_port);
        shard_member_info_set(s, c->members[i].id, c->members[i].name, url);
    }
}

static int url_list(const struct codec_field_desc *field, const char *url, struct codec_list *out,
                    struct buf *scratch)
{
    struct codec_list_builder lb;
    codec_list_begin(&lb, field, out, scratch);
    if (url[0]) {
        struct codec_url u = {.url = span_make(url, strlen(url))};
        int rc = codec_list_add(&lb, &u);
        if (rc != 0) return rc;
    }
    codec_list_end(&lb);
    return 0;
}

static int member_entry(struct shard *s, const struct raft_member *rm,
                        struct codec_list_builder *lb)
{
    const struct member_info *mi = member_info_find(s, rm->id);
    char client[64] = "";
    if (rm->id == s->node->config.member_id) {
        struct in_addr a = {.s_addr = htonl(s->node->config.ipv4)};
        snprintf(client, sizeof(client), "http://%s:%u", inet_ntoa(a), s->node->client_port);
    }
    struct codec_member e = {.id = rm->id, .is_learner = rm->role == RAFT_LEARNER};
    if (mi) e.name = span_make(mi->name, strlen(mi->name));
    buf_reset(&s->x.scratch[0]);
    buf_reset(&s->x.scratch[1]);
    int rc = url_list(codec_field_find(&codec_msg_member, "peer_urls"), mi ? mi->peer_url : "",
                      &e.peer_urls, &s->x.scratch[0]);
    if (rc == 0)
        rc = url_list(codec_field_find(&codec_msg_member, "client_urls"), client, &e.client_urls,
                      &s->x.scratch[1]);
    return rc == 0 ? codec_list_add(lb, &e) : rc;
}

/* The members of this shard's configuration into list (for MEMBER_* replies). */
int shard_members_list(struct shard *s, const struct codec_field_desc *field,
                       struct codec_list *out, struct buf *scratch)
{
    struct raft_status st;
    raft_status(s->raft, &st);
    struct codec_list_builder lb;
    codec_list_begin(&lb, field, out, scratch);
    for (u32 i = 0; i < st.conf.count; i++) {
        int rc = member_entry(s, &st.conf.members[i], &lb);
        if (rc != 0) return rc;
    }
    codec_list_end(&lb);
    return 0;
}

int shard_member_list(struct shard *s, struct buf *out, const struct codec_frame *f)
{
    struct codec_member_list_reply o = {.cluster_id = shard_cluster_id(&s->node->config)};
    buf_reset(&s->x.scratch[2]);
    int rc = shard_members_list(s, codec_field_find(&codec_msg_member_list_reply, "members"),
                                &o.members, &s->x.scratch[2]);
    struct buf leaders;
    buf_init_dynamic(&leaders, 256);
    struct codec_list_builder lb;
    codec_list_begin(&lb, codec_field_find(&codec_msg_member_list_reply, "shards"), &o.shards,
                     &leaders);
    for (u32 i = 0; rc == 0 && i < s->node->config.shard_count; i++) {
        struct codec_shard_leader e = {.shard_id = (u16)i,
                                       .leader_id = LOAD(s->node->pub[i].leader),
                                       .raft_term = LOAD(s->node->pub[i].term)};
        rc = codec_list_add(&lb, &e);
    }
    codec_list_end(&lb);
    struct codec_reply_header h = {.shard = CODEC_SHARD_NONE,
                                   .member_id = s->node->config.member_id};
    if (rc == 0 && codec_reply_encode(out, f, &h, &o, CODEC_REPLY_FRAME_SIZE_MAX) != 0)
        rc = CODEC_S_INTERNAL;
    buf_free(&leaders);
    return rc;
}

/* ---- leader balancing -------------------------------------------------------------------- */

/* Groups led by member id, as this node's shards see them. */
static u32 groups_led(const struct node *n, u64 id)
{
    u32 count = 0;
    for (u32 i = 0; i < n->config.shard_count; i++) count += LOAD(n->pub[i].leader) == id;
    return count;
}

/* The caught-up, answering voter that leads the fewest groups (then the lowest id), or 0. */
static u64 balance_target(const struct node *n, const struct raft_status *st)
{
    u64 best = 0;
    u32 best_led = UINT32_MAX;
    for (u32 i = 0; i < st->progress_count; i++) {
        const struct raft_progress_status *pr = &st->progress[i];
        if (pr->id == st->id || pr->role != RAFT_VOTER || !pr->recent_active) continue;
        if (pr->match != st->last_index) continue;
        u32 led = groups_led(n, pr->id);
        if (led < best_led || (led == best_led && pr->id < best)) {
            best = pr->id;
            best_led = led;
        }
    }
    return best;
}

/* A node that leads more than its share of its node's groups (ceil(groups / voters)) hands one
 * over, at most every BALANCE_EVERY_TICKS, to the caught-up voter that leads the fewest. Only
 * the lowest-index shard of the over-loaded node acts, so one group moves at a time. Leaders so
 * spread over the nodes at start, and spread again after a failed node comes back; a balanced
 * layout (a MOVE_LEADER that kept the counts even, say) is left alone. */
void shard_balance_tick(struct shard *s)
{
    if (++s->balance_ticks < BALANCE_EVERY_TICKS || raft_role(s->raft) != RAFT_LEADER) return;
    s->balance_ticks = 0;
    const struct node *n = s->node;
    u64 self = n->config.member_id;
    for (u32 i = 0; i < s->id; i++)
        if (LOAD(n->pub[i].leader) == self) return; /* a lower shard of this node acts */
    struct raft_status st;
    raft_status(s->raft, &st);
    u32 voters = raft_conf_voters(&st.conf);
    u32 share = voters ? (n->config.shard_count + voters - 1) / voters : 0;
    if (voters <= 1 || groups_led(n, self) <= share || st.transfer_target) return;
    u64 want = balance_target(n, &st);
    if (want == 0 || groups_led(n, want) + 1 >= groups_led(n, self)) return;
    if (raft_transfer_leader(s->raft, want) == RAFT_OK && !n->config.quiet)
        node_log("raft", "shard %u: handing leadership to %016llx (leader balancing)", s->id,
                 (unsigned long long)want);
}
