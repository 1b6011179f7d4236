/*
 * test_client.c — libkeel against an in-test server.
 *
 * The server is one thread with a poll() loop on 127.0.0.1: a router port plus one port per
 * shard, each shard a real core/mvcc store, frames decoded and encoded with net/codec. It
 * pipelines (answers every frame of a read, holding every delay_every-th reply back until
 * the end of the batch so replies come out of order) and misbehaves on request: close in the
 * middle of a reply frame, answer with an unknown status, never answer, send GOAWAY.
 * Randomized parts read KEEL_SEED (printed).
 */
#include "client/keel.h"
#include "core/mvcc.h"
#include "net/codec.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the in-test server ------------------------------------------------------------------ */

#define SRV_CONNS_MAX   32
#define SRV_SHARDS_MAX  2
#define SRV_MAP_VERSION 7

struct srv_conn {
    int fd;
    int port_index; /* 0: router; 1 + i: shard i */
    u8 *in;
    size_t in_len, in_cap;
    struct buf out, held;
    u32 replies;
};

struct srv {
    pthread_t thread;
    atomic_bool stop;
    int listen_fd[1 + SRV_SHARDS_MAX];
    u16 port[1 + SRV_SHARDS_MAX];
    int shards;
    struct mvcc *store[SRV_SHARDS_MAX];
    struct srv_conn conns[SRV_CONNS_MAX];
    struct buf scratch[5]; /* [2] holds the reply being built; [3], [4] member URL lists */
    u32 in_flight_max;
    /* cluster: this server is member member_id; leader_id nonzero and not member_id makes it
     * a follower that answers NOT_LEADER; roster is its MEMBER_LIST (feature MEMBER only) */
    u64 member_id;
    u64 leader_id;
    bool grant_member;
    bool unavailable; /* every non-HELLO request but the member ones: UNAVAILABLE */
    int roster_len;
    struct {
        u64 id;
        char url[32];
    } roster[4];
    /* misbehaviour, set before the client connects */
    u32 delay_every;     /* hold every n-th reply back to the end of its batch; 0: never */
    u32 close_mid_after; /* after this many replies on a conn, send half a frame and close */
    u16 unknown_status;  /* nonzero: every non-HELLO reply gets this status */
    bool never_answer;   /* non-HELLO requests get no reply */
    u32 goaway_after;    /* after this many replies on a conn, GOAWAY SHUTTING_DOWN */
    bool wrong_id;       /* non-HELLO replies carry an id the client never sent */
    /* per shard, settable while the server runs: the leader it names (0: leader_id as a
     * whole, 42 in SHARD_MAP), refusing writes as a follower when another member leads; and
     * changed_to nonzero: the next PUT there is answered LEADER_CHANGED naming it (once) */
    atomic_ullong shard_leader[SRV_SHARDS_MAX];
    atomic_ullong changed_to[SRV_SHARDS_MAX];
    atomic_ullong relayed_from[SRV_SHARDS_MAX]; /* nonzero: shard port replies name it (a
                                                 * follower relaying its leader's reply) */
    atomic_uint requests[1 + SRV_SHARDS_MAX];   /* non-HELLO requests per port */
    atomic_uint frames_per_read_max;            /* most request frames one recv() brought */
};

static const u8 split_key[] = "m"; /* shard 0: [, "m"), shard 1: ["m", ) */

static int shard_of(const struct srv *s, struct span key)
{
    if (s->shards == 1) return 0;
    int r = memcmp(key.ptr, split_key, key.len < 1 ? key.len : 1);
    return (r < 0 || (r == 0 && key.len == 0)) ? 0 : 1;
}

static int listen_on(u16 *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    cr_assert(listen(fd, 64) == 0);
    socklen_t len = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* A listening socket on 127.0.0.1:port, or -1 when the port is taken. */
static int listen_at(u16 port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The router port and the shard ports P + 1 + i, as keeld lays them out (retried until the
 * ports after an ephemeral one are free). */
static void listen_layout(struct srv *s)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        s->listen_fd[0] = listen_on(&s->port[0]);
        int i = 1;
        for (; i <= s->shards && s->port[0] + i <= 65535; i++) {
            s->port[i] = (u16)(s->port[0] + i);
            s->listen_fd[i] = listen_at(s->port[i]);
            if (s->listen_fd[i] < 0) break;
        }
        if (i > s->shards) return;
        for (int k = 0; k < i; k++) close(s->listen_fd[k]);
    }
    cr_assert_fail("no free run of %d ports", s->shards + 1);
}

static void send_all(int fd, const u8 *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

static void conn_close(struct srv_conn *k)
{
    close(k->fd);
    k->fd = -1;
    free(k->in);
    k->in = NULL;
    k->in_len = k->in_cap = 0;
    buf_free(&k->out);
    buf_free(&k->held);
}

/* ---- request handlers: each appends one reply frame to out -------------------------------- */

struct reply_ctx {
    struct srv *s;
    struct srv_conn *k;
    struct codec_frame head;
    struct codec_reply_header h;
    struct buf *out;
};

static void reply_error(struct reply_ctx *r, int status, u64 detail, const char *msg)
{
    struct codec_error_body e = {.detail = detail, .message = span_make(msg, strlen(msg))};
    r->h.status = (u16)status;
    int rc = codec_reply_encode(r->out, &r->head, &r->h, &e, CODEC_REPLY_FRAME_SIZE_MAX);
    cr_assert_eq(rc, 0);
}

static void reply_ok(struct reply_ctx *r, const void *body)
{
    r->h.status = 0;
    int rc = codec_reply_encode(r->out, &r->head, &r->h, body, CODEC_REPLY_FRAME_SIZE_MAX);
    cr_assert_eq(rc, 0, "reply encode %d", rc);
}

static struct codec_kv kv_to_codec(const struct mvcc_kv *kv)
{
    struct codec_kv c = {kv->create_revision, kv->mod_revision, kv->version,
                         kv->lease,           kv->key,          kv->value};
    return c;
}

struct kvs_ctx {
    struct codec_list_builder lb;
};

static int kvs_add(void *ctx, const struct mvcc_kv *kv)
{
    struct kvs_ctx *x = ctx;
    struct codec_kv c = kv_to_codec(kv);
    cr_assert_eq(codec_list_add(&x->lb, &c), 0);
    return 0;
}

static int do_range(struct srv *s, struct mvcc *m, const struct codec_range_request *q,
                    struct buf *b, struct codec_range_reply *out)
{
    struct mvcc_range_req req = {.key = q->key,
                                 .range_end = q->range_end,
                                 .revision = q->revision,
                                 .limit = q->limit,
                                 .keys_only = q->flags & CODEC_RANGE_REQUEST_KEYS_ONLY,
                                 .count_only = q->flags & CODEC_RANGE_REQUEST_COUNT_ONLY,
                                 .sort_order = q->sort_order,
                                 .sort_target = q->sort_target,
                                 .min_mod_revision = q->min_mod_revision,
                                 .max_mod_revision = q->max_mod_revision,
                                 .min_create_revision = q->min_create_revision,
                                 .max_create_revision = q->max_create_revision};
    struct mvcc_range_result res;
    (void)s;
    int rc = mvcc_range(m, &req, &res);
    if (rc != 0) return rc;
    struct kvs_ctx x;
    buf_reset(b);
    codec_list_begin(&x.lb, codec_field_find(&codec_msg_range_reply, "kvs"), &out->kvs, b);
    for (size_t i = 0; i < res.kvs_len; i++) kvs_add(&x, &res.kvs[i]);
    codec_list_end(&x.lb);
    out->count = res.count;
    out->more = res.more;
    return 0;
}

static int do_put(struct mvcc *m, const struct codec_put_request *q, struct codec_put_reply *o)
{
    struct mvcc_kv prev;
    bool had = false;
    int rc = mvcc_put(m, q->key, q->value, q->lease, &prev, &had);
    if (rc != 0) return rc;
    memset(o, 0, sizeof(*o));
    if (had && (q->flags & CODEC_PUT_REQUEST_PREV_KV)) {
        o->has_prev_kv = true;
        o->prev_kv = kv_to_codec(&prev);
    }
    return 0;
}

static int do_delete(struct mvcc *m, const struct codec_delete_range_request *q, struct buf *b,
                     struct codec_delete_range_reply *o)
{
    struct kvs_ctx x;
    u64 deleted = 0;
    buf_reset(b);
    codec_list_begin(&x.lb, codec_field_find(&codec_msg_delete_range_reply, "prev_kvs"),
                     &o->prev_kvs, b);
    bool prev = q->flags & CODEC_DELETE_RANGE_REQUEST_PREV_KV;
    int rc = mvcc_delete_range(m, q->key, q->range_end, &deleted, prev ? kvs_add : NULL, &x);
    codec_list_end(&x.lb);
    o->deleted = (i64)deleted;
    return rc;
}

static bool compare_one(struct mvcc *m, const struct codec_compare *c)
{
    struct mvcc_range_req req = {.key = c->key, .range_end = c->range_end};
    struct mvcc_range_result res;
    cr_assert_eq(mvcc_range(m, &req, &res), 0);
    struct mvcc_kv absent = {0};
    size_t n = res.kvs_len ? res.kvs_len : 1;
    for (size_t i = 0; i < n; i++) {
        const struct mvcc_kv *kv = res.kvs_len ? &res.kvs[i] : &absent;
        if (c->target == CODEC_COMPARE_TARGET_VALUE && res.kvs_len == 0) return false;
        i64 a = 0, b = c->operand;
        if (c->target == CODEC_COMPARE_TARGET_VERSION) a = kv->version;
        if (c->target == CODEC_COMPARE_TARGET_CREATE) a = kv->create_revision;
        if (c->target == CODEC_COMPARE_TARGET_MOD) a = kv->mod_revision;
        if (c->target == CODEC_COMPARE_TARGET_LEASE) a = kv->lease;
        if (c->target == CODEC_COMPARE_TARGET_VALUE) {
            size_t l = kv->value.len < c->value.len ? kv->value.len : c->value.len;
            int r = memcmp(kv->value.ptr, c->value.ptr, l);
            a = r != 0 ? r : (i64)kv->value.len - (i64)c->value.len;
            b = 0;
        }
        bool ok = c->result == CODEC_COMPARE_RESULT_EQUAL     ? a == b
                  : c->result == CODEC_COMPARE_RESULT_GREATER ? a > b
                  : c->result == CODEC_COMPARE_RESULT_LESS    ? a < b
                                                              : a != b;
        if (!ok) return false;
    }
    return true;
}

static int txn_ops(struct srv *s, struct mvcc *m, const struct codec_list *ops, const char *fname,
                   struct codec_list *replies)
{
    struct codec_list_builder lb;
    struct codec_iter it;
    struct codec_op op;
    buf_reset(&s->scratch[1]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_txn_reply, "replies"), replies,
                     &s->scratch[1]);
    codec_iter_init(&it, codec_field_find(&codec_msg_txn_request, fname), ops);
    while (codec_iter_next(&it, &op)) {
        struct codec_op_reply r;
        memset(&r, 0, sizeof(r));
        r.kind = op.kind;
        int rc = 0;
        if (op.kind == CODEC_OP_KIND_PUT) rc = do_put(m, &op.put, &r.put);
        if (op.kind == CODEC_OP_KIND_RANGE)
            rc = do_range(s, m, &op.range, &s->scratch[0], &r.range);
        if (op.kind == CODEC_OP_KIND_DELETE_RANGE)
            rc = do_delete(m, &op.delete_range, &s->scratch[0], &r.delete_range);
        if (rc != 0) return rc;
        cr_assert_eq(codec_list_add(&lb, &r), 0);
    }
    codec_list_end(&lb);
    return 0;
}

static int do_txn(struct srv *s, struct mvcc *m, const struct codec_txn_request *q,
                  struct codec_txn_reply *o, i64 *revision)
{
    struct codec_iter it;
    struct codec_compare c;
    bool ok = true;
    codec_iter_init(&it, codec_field_find(&codec_msg_txn_request, "compares"), &q->compares);
    while (codec_iter_next(&it, &c)) ok = ok && compare_one(m, &c);
    cr_assert_eq(mvcc_batch_begin(m), 0);
    o->succeeded = ok;
    int rc = txn_ops(s, m, ok ? &q->success : &q->failure, ok ? "success" : "failure", &o->replies);
    if (rc != 0) {
        mvcc_batch_abort(m);
        return rc;
    }
    return mvcc_batch_commit(m, revision);
}

static void do_status(struct reply_ctx *r)
{
    struct codec_list_builder lb;
    struct codec_status_reply o;
    struct srv *s = r->s;
    buf_reset(&s->scratch[0]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_status_reply, "shards"), &o.shards,
                     &s->scratch[0]);
    for (int i = 0; i < s->shards; i++) {
        if (r->k->port_index != 0 && r->k->port_index != 1 + i) continue;
        struct mvcc_stats st;
        mvcc_stats(s->store[i], &st);
        struct codec_shard_status e = {.shard_id = (u16)i,
                                       .revision = st.revision,
                                       .compact_revision = st.compact_revision,
                                       .keys = st.keys_live,
                                       .memory_bytes = 4096,
                                       .connections = 1};
        cr_assert_eq(codec_list_add(&lb, &e), 0);
    }
    codec_list_end(&lb);
    reply_ok(r, &o);
}

static void do_shard_map(struct reply_ctx *r)
{
    struct codec_list_builder lb;
    struct codec_shard_map_reply o = {.version = SRV_MAP_VERSION};
    struct srv *s = r->s;
    buf_reset(&s->scratch[0]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_shard_map_reply, "shards"), &o.shards,
                     &s->scratch[0]);
    for (int i = 0; i < s->shards; i++) {
        u64 leader = atomic_load(&s->shard_leader[i]);
        struct codec_shard_range e = {
            .shard_id = (u16)i, .port = s->port[1 + i], .leader_id = leader ? leader : 42};
        if (s->shards > 1 && i == 1) e.start_key = span_make(split_key, 1);
        if (s->shards > 1 && i == 0) e.end_key = span_make(split_key, 1);
        cr_assert_eq(codec_list_add(&lb, &e), 0);
    }
    codec_list_end(&lb);
    reply_ok(r, &o);
}

static void do_hello(struct reply_ctx *r)
{
    struct codec_hello_reply o = {.version = 1,
                                  .cluster_id = 0xC1,
                                  .shard_count = (u16)r->s->shards,
                                  .shard_map_version = SRV_MAP_VERSION,
                                  .frame_size_max = CODEC_FRAME_SIZE_MAX,
                                  .reply_frame_size_max = CODEC_REPLY_FRAME_SIZE_MAX,
                                  .key_size_max = 256,
                                  .value_size_max = 65536,
                                  .txn_ops_max = 16,
                                  .in_flight_max = r->s->in_flight_max,
                                  .watches_max = 0};
    if (r->s->grant_member) o.features = CODEC_FEATURE_MEMBER;
    reply_ok(r, &o);
}

/* The key a request names, for routing; .len 0 when it names none. */
static struct span request_key(u16 opcode, const union codec_msg_any *m, struct span *end)
{
    *end = span_make(NULL, 0);
    if (opcode == CODEC_OP_PUT) return m->put_request.key;
    if (opcode == CODEC_OP_RANGE) {
        *end = m->range_request.range_end;
        return m->range_request.key;
    }
    if (opcode == CODEC_OP_DELETE_RANGE) {
        *end = m->delete_range_request.range_end;
        return m->delete_range_request.key;
    }
    if (opcode == CODEC_OP_TXN && m->txn_request.compares.count > 0) {
        struct codec_iter it;
        struct codec_compare c;
        codec_iter_init(&it, codec_field_find(&codec_msg_txn_request, "compares"),
                        &m->txn_request.compares);
        codec_iter_next(&it, &c);
        return c.key;
    }
    return span_make(NULL, 0);
}

/* A range over both shards on the router port: both read at their current revision, kvs
 * concatenated (shard 0's keys sort first). Limit and sort are ignored: tests use neither. */
static void do_range_merged(struct reply_ctx *r, const struct codec_range_request *q)
{
    struct codec_list_builder lb;
    struct codec_range_reply o = {0};
    struct srv *s = r->s;
    buf_reset(&s->scratch[1]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_range_reply, "kvs"), &o.kvs, &s->scratch[1]);
    for (int i = 0; i < s->shards; i++) {
        struct codec_range_reply part;
        cr_assert_eq(do_range(s, s->store[i], q, &s->scratch[0], &part), 0);
        struct codec_iter it;
        struct codec_kv kv;
        codec_iter_init(&it, codec_field_find(&codec_msg_range_reply, "kvs"), &part.kvs);
        while (codec_iter_next(&it, &kv)) cr_assert_eq(codec_list_add(&lb, &kv), 0);
        o.count += part.count;
    }
    codec_list_end(&lb);
    r->h.shard = CODEC_SHARD_NONE;
    r->h.revision = 0;
    reply_ok(r, &o);
}

static void dispatch_kv(struct reply_ctx *r, int shard, const union codec_msg_any *m)
{
    struct srv *s = r->s;
    struct mvcc *st = s->store[shard];
    union codec_msg_any o;
    int rc = 0;
    i64 rev = 0;
    memset(&o, 0, sizeof(o));
    switch (r->head.opcode) {
    case CODEC_OP_PUT:
        rc = do_put(st, &m->put_request, &o.put_reply);
        break;
    case CODEC_OP_RANGE:
        rc = do_range(s, st, &m->range_request, &s->scratch[0], &o.range_reply);
        break;
    case CODEC_OP_DELETE_RANGE:
        rc = do_delete(st, &m->delete_range_request, &s->scratch[0], &o.delete_range_reply);
        break;
    case CODEC_OP_TXN:
        rc = do_txn(s, st, &m->txn_request, &o.txn_reply, &rev);
        break;
    case CODEC_OP_COMPACT:
        rc = mvcc_compact(st, m->compact_request.revision);
        break;
    }
    r->h.shard = (u16)shard;
    r->h.revision = mvcc_revision(st);
    if (rc == KEEL_ECOMPACTED) return reply_error(r, rc, (u64)mvcc_compact_revision(st), "old");
    if (rc == KEEL_EFUTURE_REV) return reply_error(r, rc, (u64)mvcc_revision(st), "future");
    if (rc != 0) return reply_error(r, rc, 0, keel_err_str(rc));
    reply_ok(r, &o);
}

/* ---- the in-test server's member operations (a canned cluster: roster, leader_id) ------- */

static bool srv_leads(const struct srv *s)
{
    return s->leader_id == 0 || s->leader_id == s->member_id;
}

static u64 srv_leader(const struct srv *s)
{
    return srv_leads(s) ? s->member_id : s->leader_id;
}

/* The roster as a members list in scratch[0], leaving out skip_id; extra_id > 0 appends a
 * learner with that id and name (MEMBER_ADD's new member). */
static void roster_build(struct srv *s, const struct codec_msg_desc *d, struct codec_list *list,
                         u64 skip_id, u64 extra_id, struct span extra_name)
{
    struct codec_list_builder lb, ub;
    buf_reset(&s->scratch[0]);
    codec_list_begin(&lb, codec_field_find(d, "members"), list, &s->scratch[0]);
    for (int i = 0; i <= s->roster_len; i++) {
        struct codec_member m = {.id = i < s->roster_len ? s->roster[i].id : extra_id};
        if (m.id == 0 || m.id == skip_id) continue;
        struct codec_url peer = {.url = span_make("http://127.0.0.1:1", 18)};
        buf_reset(&s->scratch[3]);
        codec_list_begin(&ub, codec_field_find(&codec_msg_member, "peer_urls"), &m.peer_urls,
                         &s->scratch[3]);
        cr_assert_eq(codec_list_add(&ub, &peer), 0);
        codec_list_end(&ub);
        buf_reset(&s->scratch[4]);
        codec_list_begin(&ub, codec_field_find(&codec_msg_member, "client_urls"), &m.client_urls,
                         &s->scratch[4]);
        if (i < s->roster_len) {
            struct codec_url u = {.url = span_make(s->roster[i].url, strlen(s->roster[i].url))};
            cr_assert_eq(codec_list_add(&ub, &u), 0);
            m.name = span_make("n", 1);
        } else {
            m.is_learner = true;
            m.name = extra_name;
        }
        codec_list_end(&ub);
        cr_assert_eq(codec_list_add(&lb, &m), 0);
    }
    codec_list_end(&lb);
}

static void do_member_list(struct reply_ctx *r)
{
    struct srv *s = r->s;
    struct codec_member_list_reply o = {.cluster_id = 0xC1};
    struct codec_list_builder lb;
    roster_build(s, &codec_msg_member_list_reply, &o.members, 0, 0, span_make(NULL, 0));
    buf_reset(&s->scratch[1]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_member_list_reply, "shards"), &o.shards,
                     &s->scratch[1]);
    for (int i = 0; i < s->shards; i++) {
        struct codec_shard_leader e = {
            .shard_id = (u16)i, .leader_id = srv_leader(s), .raft_term = 2};
        cr_assert_eq(codec_list_add(&lb, &e), 0);
    }
    codec_list_end(&lb);
    reply_ok(r, &o);
}

static void do_endpoint_status(struct reply_ctx *r)
{
    struct srv *s = r->s;
    struct codec_endpoint_status_reply o = {.name = span_make("srv", 3)};
    struct codec_list_builder lb, pb;
    buf_reset(&s->scratch[0]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_endpoint_status_reply, "shards"), &o.shards,
                     &s->scratch[0]);
    for (int i = 0; i < s->shards; i++) {
        struct codec_shard_raft_status e = {.shard_id = (u16)i,
                                            .role = srv_leads(s) ? CODEC_RAFT_ROLE_LEADER
                                                                 : CODEC_RAFT_ROLE_FOLLOWER,
                                            .leader_id = srv_leader(s),
                                            .raft_term = 2,
                                            .raft_commit_index = 10,
                                            .raft_applied_index = 9,
                                            .raft_last_index = 11,
                                            .revision = mvcc_revision(s->store[i])};
        buf_reset(&s->scratch[1]);
        codec_list_begin(&pb, codec_field_find(&codec_msg_shard_raft_status, "progress"),
                         &e.progress, &s->scratch[1]);
        for (int k = 0; k < s->roster_len && srv_leads(s); k++) {
            if (s->roster[k].id == s->member_id) continue;
            struct codec_peer_progress p = {.member_id = s->roster[k].id,
                                            .state = CODEC_PROGRESS_STATE_REPLICATE,
                                            .match_index = 11 - (u64)k,
                                            .next_index = 12,
                                            .recent_active = true};
            cr_assert_eq(codec_list_add(&pb, &p), 0);
        }
        codec_list_end(&pb);
        cr_assert_eq(codec_list_add(&lb, &e), 0);
    }
    codec_list_end(&lb);
    reply_ok(r, &o);
}

static void do_move_leader(struct reply_ctx *r, const struct codec_move_leader_request *q)
{
    struct srv *s = r->s;
    struct codec_move_leader_reply o;
    struct codec_list_builder lb;
    buf_reset(&s->scratch[0]);
    codec_list_begin(&lb, codec_field_find(&codec_msg_move_leader_reply, "shards"), &o.shards,
                     &s->scratch[0]);
    for (int i = 0; i < s->shards; i++) {
        if (q->shard != CODEC_SHARD_NONE && q->shard != i) continue;
        struct codec_shard_move e = {.shard_id = (u16)i, .leader_id = q->target_id, .raft_term = 3};
        cr_assert_eq(codec_list_add(&lb, &e), 0);
    }
    codec_list_end(&lb);
    reply_ok(r, &o);
}

static bool roster_has(const struct srv *s, u64 id)
{
    for (int i = 0; i < s->roster_len; i++)
        if (s->roster[i].id == id) return true;
    return false;
}

static void do_member(struct reply_ctx *r, const union codec_msg_any *m)
{
    struct srv *s = r->s;
    u16 op = r->head.opcode;
    if (!s->grant_member) return reply_error(r, CODEC_S_UNKNOWN_OPCODE, op, "unknown opcode");
    if (op == CODEC_OP_ENDPOINT_STATUS) return do_endpoint_status(r);
    bool local = op == CODEC_OP_MEMBER_LIST &&
                 !(m->member_list_request.flags & CODEC_MEMBER_LIST_REQUEST_LINEARIZABLE);
    if (!local && !srv_leads(s))
        return reply_error(r, CODEC_S_NOT_LEADER, s->leader_id, "follower");
    if (op == CODEC_OP_MEMBER_LIST) return do_member_list(r);
    if (op == CODEC_OP_MOVE_LEADER) return do_move_leader(r, &m->move_leader_request);
    union codec_msg_any o;
    memset(&o, 0, sizeof(o));
    if (op == CODEC_OP_MEMBER_ADD) {
        o.member_add_reply.member_id = 0x99;
        roster_build(s, &codec_msg_member_add_reply, &o.member_add_reply.members, 0, 0x99,
                     m->member_add_request.name);
        return reply_ok(r, &o);
    }
    u64 id = m->member_remove_request.member_id; /* remove and promote: the same layout */
    if (!roster_has(s, id)) return reply_error(r, CODEC_S_MEMBER_NOT_FOUND, id, "no member");
    u64 skip = op == CODEC_OP_MEMBER_REMOVE ? id : 0;
    roster_build(s, &codec_msg_member_remove_reply, &o.member_remove_reply.members, skip, 0,
                 span_make(NULL, 0));
    reply_ok(r, &o);
}

/* A follower refuses what only a leader serves: writes and linearizable reads. */
static bool srv_refuses(const struct srv *s, u16 op, const union codec_msg_any *m)
{
    if (srv_leads(s) || op == CODEC_OP_STATUS || op == CODEC_OP_SHARD_MAP) return false;
    return !(op == CODEC_OP_RANGE && (m->range_request.flags & CODEC_RANGE_REQUEST_SERIALIZABLE));
}

/* What a follower of one shard refuses: writes and linearizable reads. */
static bool srv_refuses_shard(u16 op, const union codec_msg_any *m)
{
    return !(op == CODEC_OP_RANGE && (m->range_request.flags & CODEC_RANGE_REQUEST_SERIALIZABLE));
}

static void dispatch(struct reply_ctx *r, const union codec_msg_any *m)
{
    struct srv *s = r->s;
    int port_shard = r->k->port_index - 1;
    u16 op = r->head.opcode;
    if (op == CODEC_OP_HELLO) return do_hello(r);
    atomic_fetch_add(&s->requests[r->k->port_index], 1);
    if (s->unknown_status) return reply_error(r, s->unknown_status, 9, "from the future");
    if (op >= CODEC_OP_MEMBER_LIST && op <= CODEC_OP_ENDPOINT_STATUS) return do_member(r, m);
    if (s->unavailable) return reply_error(r, CODEC_S_UNAVAILABLE, 0, "no quorum");
    if (srv_refuses(s, op, m)) return reply_error(r, CODEC_S_NOT_LEADER, s->leader_id, "follower");
    if (op == CODEC_OP_STATUS) return do_status(r);
    if (op == CODEC_OP_SHARD_MAP) return do_shard_map(r);
    struct span end;
    struct span key = request_key(op, m, &end);
    int shard = key.len ? shard_of(s, key) : 0;
    if (op == CODEC_OP_COMPACT) shard = m->compact_request.shard;
    if (shard >= s->shards) return reply_error(r, CODEC_S_INVALID, 0, "no such shard");
    u64 changed = op == CODEC_OP_PUT ? atomic_exchange(&s->changed_to[shard], 0) : 0;
    if (changed != 0) return reply_error(r, CODEC_S_LEADER_CHANGED, changed, "outcome unknown");
    u64 leader = atomic_load(&s->shard_leader[shard]);
    if (leader != 0 && leader != s->member_id && srv_refuses_shard(op, m))
        return reply_error(r, CODEC_S_NOT_LEADER, leader, "shard follower");
    bool multi = s->shards > 1 && shard == 0 && end.len > 0 &&
                 ((end.len == 1 && end.ptr[0] == 0) || memcmp(end.ptr, split_key, 1) > 0 ||
                  (end.len > 1 && end.ptr[0] == split_key[0]));
    if (port_shard >= 0 && (shard != port_shard || multi))
        return reply_error(r, CODEC_S_WRONG_SHARD, SRV_MAP_VERSION, "wrong shard");
    if (multi && op == CODEC_OP_RANGE) return do_range_merged(r, &m->range_request);
    if (multi) return reply_error(r, CODEC_S_CROSS_SHARD, 0, "cross shard");
    dispatch_kv(r, shard, m);
}

static void send_goaway(struct srv_conn *k, int status)
{
    struct buf b;
    buf_init_dynamic(&b, 128);
    struct codec_frame head = {.opcode = CODEC_OP_GOAWAY, .request_id = 0};
    struct codec_reply_header h = {.status = (u16)status, .shard = CODEC_SHARD_NONE};
    struct codec_error_body e = {.detail = 0, .message = span_make("bye", 3)};
    cr_assert_eq(codec_reply_encode(&b, &head, &h, &e, CODEC_REPLY_FRAME_SIZE_MAX), 0);
    send_all(k->fd, b.ptr, b.len);
    buf_free(&b);
}

/* Handles one request frame; false when the connection was closed. */
static bool srv_frame(struct srv *s, struct srv_conn *k, const struct codec_frame *f)
{
    struct buf *one = &s->scratch[2];
    union codec_msg_any m;
    struct reply_ctx r = {.s = s, .k = k, .head = *f, .out = one};
    r.head.flags = 0;
    r.h.shard = CODEC_SHARD_NONE;
    r.h.member_id = s->member_id;
    if (k->port_index > 0 && f->opcode != CODEC_OP_HELLO) {
        u64 relayed = atomic_load(&s->relayed_from[k->port_index - 1]);
        if (relayed != 0) r.h.member_id = relayed;
    }
    buf_reset(one);
    int rc = codec_request_decode(f, &m);
    if (rc == 0 && s->never_answer && f->opcode != CODEC_OP_HELLO) {
        atomic_fetch_add(&s->requests[k->port_index], 1);
        return true;
    }
    if (s->wrong_id && f->opcode != CODEC_OP_HELLO) r.head.request_id ^= UINT64_C(0xABC) << 40;
    if (rc != 0)
        reply_error(&r, rc, 0, "bad request");
    else
        dispatch(&r, &m);
    if (f->opcode != CODEC_OP_HELLO && s->goaway_after && k->replies == s->goaway_after) {
        send_all(k->fd, k->out.ptr, k->out.len);
        send_goaway(k, CODEC_S_SHUTTING_DOWN);
        conn_close(k);
        return false;
    }
    if (f->opcode != CODEC_OP_HELLO && s->close_mid_after && k->replies == s->close_mid_after) {
        send_all(k->fd, k->out.ptr, k->out.len);
        send_all(k->fd, one->ptr, one->len / 2);
        conn_close(k);
        return false;
    }
    bool hold = s->delay_every && k->replies % s->delay_every == s->delay_every - 1;
    buf_put_bytes(hold ? &k->held : &k->out, one->ptr, one->len);
    k->replies += f->opcode != CODEC_OP_HELLO; /* the misbehaviours count requests after it */
    return true;
}

static void srv_read(struct srv *s, struct srv_conn *k)
{
    if (k->in_cap - k->in_len < 65536) {
        k->in_cap = k->in_cap * 2 + 65536;
        k->in = realloc(k->in, k->in_cap);
    }
    ssize_t n = recv(k->fd, k->in + k->in_len, k->in_cap - k->in_len, 0);
    if (n <= 0) return conn_close(k);
    k->in_len += (size_t)n;
    size_t off = 0;
    u32 frames = 0;
    for (;;) {
        struct codec_frame f;
        size_t size;
        int rc = codec_frame_decode(span_make(k->in + off, k->in_len - off), CODEC_FRAME_SIZE_MAX,
                                    &f, &size);
        if (rc == CODEC_NEED_MORE) break;
        cr_assert_eq(rc, 0);
        if (!srv_frame(s, k, &f)) return;
        off += size;
        frames++;
    }
    if (frames > atomic_load(&s->frames_per_read_max))
        atomic_store(&s->frames_per_read_max, frames);
    memmove(k->in, k->in + off, k->in_len - off);
    k->in_len -= off;
    send_all(k->fd, k->out.ptr, k->out.len);
    send_all(k->fd, k->held.ptr, k->held.len);
    buf_reset(&k->out);
    buf_reset(&k->held);
}

static void srv_accept(struct srv *s, int port_index)
{
    int fd = accept(s->listen_fd[port_index], NULL, NULL);
    if (fd < 0) return;
    for (int i = 0; i < SRV_CONNS_MAX; i++) {
        struct srv_conn *k = &s->conns[i];
        if (k->fd >= 0) continue;
        memset(k, 0, sizeof(*k));
        k->fd = fd;
        k->port_index = port_index;
        buf_init_dynamic(&k->out, 65536);
        buf_init_dynamic(&k->held, 65536);
        return;
    }
    close(fd);
}

static void *srv_main(void *arg)
{
    struct srv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd[1 + SRV_SHARDS_MAX + SRV_CONNS_MAX];
        int who[1 + SRV_SHARDS_MAX + SRV_CONNS_MAX];
        nfds_t n = 0;
        for (int i = 0; i <= s->shards; i++) {
            pfd[n] = (struct pollfd){.fd = s->listen_fd[i], .events = POLLIN};
            who[n++] = -1 - i;
        }
        for (int i = 0; i < SRV_CONNS_MAX; i++) {
            if (s->conns[i].fd < 0) continue;
            pfd[n] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
            who[n++] = i;
        }
        if (poll(pfd, n, 10) <= 0) continue;
        for (nfds_t j = 0; j < n; j++) {
            if (!pfd[j].revents) continue;
            if (who[j] < 0)
                srv_accept(s, -1 - who[j]);
            else if (s->conns[who[j]].fd >= 0)
                srv_read(s, &s->conns[who[j]]);
        }
    }
    return NULL;
}

static struct srv *srv_new(int shards)
{
    struct srv *s = calloc(1, sizeof(*s));
    s->shards = shards;
    s->in_flight_max = 1024;
    for (int i = 0; i < SRV_CONNS_MAX; i++) s->conns[i].fd = -1;
    for (int i = 0; i < 5; i++) buf_init_dynamic(&s->scratch[i], 65536);
    s->member_id = 0x31;
    struct mvcc_config cfg;
    mvcc_config_default(&cfg);
    cfg.memory_bytes_max = 64u << 20;
    for (int i = 0; i < shards; i++) s->store[i] = mvcc_create(&cfg);
    listen_layout(s);
    return s;
}

static void srv_start(struct srv *s)
{
    cr_assert_eq(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

/* Closes every server-side connection (from the test thread: only while the server is
 * stopped). */
static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < SRV_CONNS_MAX; i++)
        if (s->conns[i].fd >= 0) conn_close(&s->conns[i]);
}

static void srv_free(struct srv *s)
{
    for (int i = 0; i <= s->shards; i++) close(s->listen_fd[i]);
    for (int i = 0; i < s->shards; i++) mvcc_destroy(s->store[i]);
    for (int i = 0; i < 5; i++) buf_free(&s->scratch[i]);
    free(s);
}

static keel_client *connect_to(struct srv *s, const struct keel_options *o)
{
    char ep[64];
    keel_client *c = NULL;
    snprintf(ep, sizeof(ep), "127.0.0.1:%u", s->port[0]);
    int rc = keel_connect(ep, o, &c);
    cr_assert_eq(rc, 0, "connect: %s", keel_strerror(rc));
    return c;
}

static struct keel_bytes B(const char *s) {
    return (struct keel_bytes){s, strlen(s)};
}

static bool
kv_is(const struct keel_kv *kv, const char *k, const char *v)
{
    return kv->key_len == strlen(k) && memcmp(kv->key, k, kv->key_len) == 0 &&
           (v == NULL || (kv->value_len == strlen(v) && memcmp(kv->value, v, kv->value_len) == 0));
}

static u64 seed_get(void)
{
    const char *e = getenv("KEEL_SEED");
    u64 seed = e ? strtoull(e, NULL, 0) : (u64)time(NULL);
    fprintf(stderr, "test_client: KEEL_SEED=%llu\n", (unsigned long long)seed);
    return seed;
}

static u64 rng_next(u64 *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* ---- sync API ---------------------------------------------------------------------------- */

static void put_ok(keel_client *c, const char *k, const char *v)
{
    struct keel_result res;
    struct keel_put_args a = {.key = B(k), .value = B(v)};
    int rc = keel_put(c, &a, &res);
    cr_assert_eq(rc, 0, "put %s: %s", k, keel_strerror(rc));
}

Test(client, sync_put_get_delete)
{
    struct srv *s = srv_new(1);
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    const struct keel_server_info *in = keel_server_info(c);
    cr_assert_eq(in->cluster_id, 0xC1);
    cr_assert_eq(in->key_size_max, 256);
    cr_assert_eq(in->member_id, 0x31);
    struct keel_result res;
    struct keel_put_args p = {.key = B("a"), .value = B("1"), .prev_kv = true};
    cr_assert_eq(keel_put(c, &p, &res), 0);
    cr_assert_not(res.u.put.has_prev_kv);
    i64 rev1 = res.header.revision;
    cr_assert_eq(res.header.shard, 0);
    p.value = B("2");
    cr_assert_eq(keel_put(c, &p, &res), 0);
    cr_assert(res.u.put.has_prev_kv);
    cr_assert(kv_is(&res.u.put.prev_kv, "a", "1"));
    cr_assert_eq(res.u.put.prev_kv.version, 1);
    struct keel_range_args g = {.key = B("a")};
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 1);
    cr_assert(kv_is(&res.u.range.kvs[0], "a", "2"));
    cr_assert_eq(res.u.range.kvs[0].version, 2);
    cr_assert_eq(res.u.range.kvs[0].create_revision, rev1);
    g.revision = rev1; /* history */
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert(kv_is(&res.u.range.kvs[0], "a", "1"));
    struct keel_delete_args d = {.key = B("a"), .prev_kv = true};
    cr_assert_eq(keel_delete(c, &d, &res), 0);
    cr_assert_eq(res.u.del.deleted, 1);
    cr_assert_eq(res.u.del.prev_kvs_len, 1);
    cr_assert(kv_is(&res.u.del.prev_kvs[0], "a", "2"));
    g.revision = 0;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 0);
    cr_assert_eq(res.u.range.count, 0);
    keel_release(c);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

Test(client, sync_range_options)
{
    struct srv *s = srv_new(1);
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    const char *keys[] = {"k1", "k2", "k3", "k4", "k5"};
    const char *vals[] = {"e", "d", "c", "b", "a"};
    for (int i = 0; i < 5; i++) put_ok(c, keys[i], vals[i]);
    put_ok(c, "k2", "dd"); /* k2: version 2, newest mod */
    put_ok(c, "other", "x");
    struct keel_result res;
    struct keel_range_args g = {.key = B("k"), .range_end = B("l")};
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.count, 5);
    cr_assert_eq(res.u.range.kvs_len, 5);
    cr_assert(kv_is(&res.u.range.kvs[4], "k5", "a"));
    g.limit = 2;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 2);
    cr_assert(res.u.range.more);
    cr_assert_eq(res.u.range.count, 5);
    g.limit = 0;
    g.keys_only = true;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs[0].value_len, 0);
    g.keys_only = false;
    g.count_only = true;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 0);
    cr_assert_eq(res.u.range.count, 5);
    g.count_only = false;
    g.sort_order = KEEL_SORT_DESCEND;
    g.sort_target = KEEL_SORT_VALUE;
    g.serializable = true;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert(kv_is(&res.u.range.kvs[0], "k1", "e"));
    cr_assert(kv_is(&res.u.range.kvs[4], "k5", "a"));
    g.sort_target = KEEL_SORT_MOD;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert(kv_is(&res.u.range.kvs[0], "k2", "dd"));
    i64 k2_mod = res.u.range.kvs[0].mod_revision;
    i64 k1_create = res.u.range.kvs[4].create_revision;
    g.sort_order = KEEL_SORT_NONE;
    g.sort_target = KEEL_SORT_KEY;
    g.min_mod_revision = k2_mod;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 1);
    g.min_mod_revision = 0;
    g.max_mod_revision = k2_mod - 1;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 4);
    g.max_mod_revision = 0;
    g.min_create_revision = k1_create + 1;
    g.max_create_revision = k1_create + 2;
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 2);
    struct keel_range_args all = {.key = {"\0", 1}, .range_end = {"\0", 1}};
    cr_assert_eq(keel_get(c, &all, &res), 0);
    cr_assert_eq(res.u.range.kvs_len, 6);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

Test(client, sync_errors)
{
    struct srv *s = srv_new(1);
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct keel_result res;
    struct keel_range_args g = {.key = B("")};
    cr_assert_eq(keel_get(c, &g, &res), KEEL_STATUS_KEY_EMPTY); /* refused locally */
    char big[300];
    memset(big, 'x', sizeof(big));
    g.key = (struct keel_bytes){big, sizeof(big)};
    cr_assert_eq(keel_get(c, &g, &res), KEEL_STATUS_KEY_TOO_LARGE);
    struct keel_put_args p = {.key = B("v"), .value = {big, 70000}};
    char *huge = calloc(1, 70000);
    p.value.ptr = huge;
    cr_assert_eq(keel_put(c, &p, &res), KEEL_STATUS_VALUE_TOO_LARGE);
    free(huge);
    g.key = B("b");
    g.limit = -1; /* the encoder applies the decoder's rules: INVALID */
    int rc = keel_get(c, &g, &res);
    cr_assert_eq(rc, KEEL_STATUS_INVALID, "%s", keel_strerror(rc));
    g.limit = 0;
    put_ok(c, "a", "1");
    g.range_end = B("");
    g.revision = 1000;
    cr_assert_eq(keel_get(c, &g, &res), KEEL_STATUS_FUTURE_REV);
    cr_assert_eq((i64)res.error.detail, res.header.revision);
    cr_assert_eq(res.error.message_len, strlen("future"));
    cr_assert_eq(memcmp(res.error.message, "future", 6), 0);
    cr_assert_eq(keel_get(NULL, &g, &res), KEEL_STATUS_ARG);
    keel_close(c);
    keel_client *c2 = NULL;
    cr_assert_eq(keel_connect("nonsense", NULL, &c2), KEEL_STATUS_ARG);
    cr_assert_eq(keel_connect("127.0.0.1:1", NULL, &c2), KEEL_STATUS_CONNECT);
    cr_assert_null(c2);
    srv_stop(s);
    srv_free(s);
}

Test(client, sync_txn_compact_status_map)
{
    struct srv *s = srv_new(1);
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    put_ok(c, "lock", "free");
    struct keel_result res;
    struct keel_compare cmp = {
        .target = KEEL_CMP_VALUE, .result = KEEL_CMP_EQUAL, .key = B("lock"), .value = B("free")};
    struct keel_op ok_ops[2] = {
        {.kind = KEEL_OP_PUT, .u.put = {.key = B("lock"), .value = B("held")}},
        {.kind = KEEL_OP_RANGE, .u.range = {.key = B("lock")}}};
    struct keel_op fail_ops[1] = {{.kind = KEEL_OP_DELETE, .u.del = {.key = B("nothing")}}};
    struct keel_txn_args t = {&cmp, 1, ok_ops, 2, fail_ops, 1};
    cr_assert_eq(keel_txn(c, &t, &res), 0);
    cr_assert(res.u.txn.succeeded);
    cr_assert_eq(res.u.txn.replies_len, 2);
    cr_assert_eq(res.u.txn.replies[0].kind, KEEL_OP_PUT);
    cr_assert_eq(res.u.txn.replies[1].kind, KEEL_OP_RANGE);
    cr_assert(kv_is(&res.u.txn.replies[1].u.range.kvs[0], "lock", "held"));
    i64 rev = res.header.revision;
    cr_assert_eq(keel_txn(c, &t, &res), 0); /* value is "held" now: failure branch */
    cr_assert_not(res.u.txn.succeeded);
    cr_assert_eq(res.u.txn.replies_len, 1);
    cr_assert_eq(res.u.txn.replies[0].kind, KEEL_OP_DELETE);
    cr_assert_eq(res.u.txn.replies[0].u.del.deleted, 0);
    struct keel_compare ver = {
        .target = KEEL_CMP_VERSION, .result = KEEL_CMP_GREATER, .key = B("lock"), .operand = 1};
    t.compares = &ver;
    cr_assert_eq(keel_txn(c, &t, &res), 0);
    cr_assert(res.u.txn.succeeded);
    struct keel_op dup[2] = {{.kind = KEEL_OP_PUT, .u.put = {.key = B("d"), .value = B("1")}},
                             {.kind = KEEL_OP_PUT, .u.put = {.key = B("d"), .value = B("2")}}};
    struct keel_txn_args td = {NULL, 0, dup, 2, NULL, 0};
    cr_assert_eq(keel_txn(c, &td, &res), KEEL_STATUS_DUPLICATE_KEY);
    struct keel_op many[17];
    for (int i = 0; i < 17; i++)
        many[i] = (struct keel_op){.kind = KEEL_OP_RANGE, .u.range = {.key = B("x")}};
    struct keel_txn_args tm = {NULL, 0, many, 17, NULL, 0};
    cr_assert_eq(keel_txn(c, &tm, &res), KEEL_STATUS_TOO_MANY_OPS); /* server said 16 */
    struct keel_compact_args ca = {.shard = 0, .revision = rev, .physical = true};
    cr_assert_eq(keel_compact(c, &ca, &res), 0);
    struct keel_range_args g = {.key = B("lock"), .revision = rev - 1};
    cr_assert_eq(keel_get(c, &g, &res), KEEL_STATUS_COMPACTED);
    cr_assert_eq((i64)res.error.detail, rev);
    cr_assert_eq(keel_compact(c, &ca, &res), KEEL_STATUS_COMPACTED);
    ca.shard = 5;
    cr_assert_eq(keel_compact(c, &ca, &res), KEEL_STATUS_INVALID);
    cr_assert_eq(keel_status(c, &res), 0);
    cr_assert_eq(res.u.status.shards_len, 1);
    cr_assert_eq(res.u.status.shards[0].compact_revision, rev);
    cr_assert_eq(res.u.status.shards[0].keys, 1);
    cr_assert_eq(keel_shard_map(c, &res), 0);
    cr_assert_eq(res.u.shard_map.version, SRV_MAP_VERSION);
    cr_assert_eq(res.u.shard_map.shards_len, 1);
    cr_assert_eq(res.u.shard_map.shards[0].leader_id, 42);
    cr_assert_eq(res.u.shard_map.shards[0].start_key_len, 0);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

/* ---- async API --------------------------------------------------------------------------- */

#define ASYNC_N 5000

struct async_rec {
    u32 calls;
    int status;
    u64 id;
    char value[24];
    i64 revision;
    u32 order; /* position among all callbacks */
};

static u32 callbacks_run;

static void async_cb(void *ctx, uint64_t id, int status, const struct keel_result *res)
{
    struct async_rec *r = ctx;
    r->calls++;
    r->status = status;
    r->order = ++callbacks_run;
    cr_assert_eq(id, r->id ? r->id : id);
    r->revision = res->header.revision;
    if (status == 0 && res->opcode == 0x0011 && res->u.range.kvs_len == 1) {
        size_t n = res->u.range.kvs[0].value_len;
        cr_assert_lt(n, sizeof(r->value));
        memcpy(r->value, res->u.range.kvs[0].value, n);
        r->value[n] = 0;
    }
}

/* Polls until nothing is pending or timeout_ms passes. */
static void drain(keel_client *c, int timeout_ms)
{
    for (int waited = 0; keel_pending(c) > 0 && waited < timeout_ms; waited += 10) keel_poll(c, 10);
}

/* Submits n requests with submit(i) through backpressure: on FULL, poll and retry. */
static void submit_all(keel_client *c, int n, int (*submit)(keel_client *, int, void *), void *arg)
{
    for (int i = 0; i < n; i++) {
        int rc;
        while ((rc = submit(c, i, arg)) == KEEL_STATUS_FULL) keel_poll(c, 10);
        cr_assert_eq(rc, 0, "submit %d: %s", i, keel_strerror(rc));
    }
}

struct async_set {
    struct async_rec *recs;
    char (*keys)[16];
    char (*vals)[24];
};

static int submit_put_i(keel_client *c, int i, void *arg)
{
    struct async_set *a = arg;
    struct keel_put_args p = {.key = B(a->keys[i]), .value = B(a->vals[i])};
    uint64_t id;
    int rc = keel_submit_put(c, &p, async_cb, &a->recs[i], &id);
    if (rc == 0) a->recs[i].id = id;
    return rc;
}

static int submit_get_i(keel_client *c, int i, void *arg)
{
    struct async_set *a = arg;
    struct keel_range_args g = {.key = B(a->keys[i])};
    uint64_t id;
    int rc = keel_submit_get(c, &g, async_cb, &a->recs[i], &id);
    if (rc == 0) a->recs[i].id = id;
    return rc;
}

Test(client, async_pipelined_out_of_order)
{
    u64 seed = seed_get();
    struct srv *s = srv_new(1);
    s->delay_every = 3;
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct async_set a = {calloc(ASYNC_N, sizeof(struct async_rec)),
                          calloc(ASYNC_N, sizeof(*a.keys)), calloc(ASYNC_N, sizeof(*a.vals))};
    for (int i = 0; i < ASYNC_N; i++) {
        snprintf(a.keys[i], sizeof(a.keys[i]), "key%05d", i);
        snprintf(a.vals[i], sizeof(a.vals[i]), "v%llu", (unsigned long long)rng_next(&seed));
    }
    submit_all(c, ASYNC_N, submit_put_i, &a);
    drain(c, 20000);
    cr_assert_eq(keel_pending(c), 0);
    int out_of_order = 0;
    for (int i = 0; i < ASYNC_N; i++) {
        cr_assert_eq(a.recs[i].calls, 1, "put %d called %u times", i, a.recs[i].calls);
        cr_assert_eq(a.recs[i].status, 0);
        cr_assert_gt(a.recs[i].revision, 1);
        out_of_order += i > 0 && a.recs[i].order < a.recs[i - 1].order;
    }
    cr_assert_gt(out_of_order, 0, "the server held replies back: callbacks out of order");
    memset(a.recs, 0, ASYNC_N * sizeof(struct async_rec));
    submit_all(c, ASYNC_N, submit_get_i, &a);
    drain(c, 20000);
    for (int i = 0; i < ASYNC_N; i++) {
        cr_assert_eq(a.recs[i].calls, 1);
        cr_assert_str_eq(a.recs[i].value, a.vals[i], "get %d got another request's value", i);
    }
    free(a.recs);
    free(a.keys);
    free(a.vals);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

static void count_cb(void *ctx, uint64_t id, int status, const struct keel_result *res)
{
    (void)id;
    (void)res;
    struct async_rec *r = ctx;
    r->calls++;
    r->status = status;
}

Test(client, backpressure_and_connection_loss)
{
    struct srv *s = srv_new(1);
    s->never_answer = true;
    srv_start(s);
    struct keel_options o;
    keel_options_default(&o);
    o.in_flight_max = 64;
    o.timeout_ms = 200;
    keel_client *c = connect_to(s, &o);
    struct async_rec recs[64] = {0};
    struct keel_range_args g = {.key = B("a")};
    for (int i = 0; i < 64; i++) cr_assert_eq(keel_submit_get(c, &g, count_cb, &recs[i], NULL), 0);
    struct async_rec extra = {0};
    cr_assert_eq(keel_submit_get(c, &g, count_cb, &extra, NULL), KEEL_STATUS_FULL);
    cr_assert_eq(keel_pending(c), 64);
    for (int i = 0; i < 400 && atomic_load(&s->requests[0]) < 64; i++) keel_poll(c, 5);
    cr_assert_eq(keel_pending(c), 64);
    cr_assert_eq(atomic_load(&s->requests[0]), 64);
    srv_stop(s); /* closes the server's side: every pending request fails, once */
    drain(c, 5000);
    cr_assert_eq(keel_pending(c), 0);
    for (int i = 0; i < 64; i++) {
        cr_assert_eq(recs[i].calls, 1);
        cr_assert_eq(recs[i].status, KEEL_STATUS_CLOSED);
    }
    cr_assert_eq(extra.calls, 0);
    struct keel_result res;
    cr_assert_eq(keel_get(c, &g, &res), KEEL_STATUS_CLOSED);
    cr_assert_lt(keel_poll(c, 0), 0);
    keel_close(c);
    srv_free(s);
}

Test(client, sync_timeout_when_never_answered)
{
    struct srv *s = srv_new(1);
    s->never_answer = true;
    srv_start(s);
    struct keel_options o;
    keel_options_default(&o);
    o.timeout_ms = 150;
    keel_client *c = connect_to(s, &o);
    struct keel_result res;
    struct keel_put_args p = {.key = B("a"), .value = B("1")};
    cr_assert_eq(keel_put(c, &p, &res), KEEL_STATUS_TIMEOUT);
    cr_assert_eq(keel_pending(c), 1); /* still outstanding; a late reply would be dropped */
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

Test(client, close_mid_frame)
{
    struct srv *s = srv_new(1);
    s->close_mid_after = 10;
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct async_rec recs[30] = {0};
    struct keel_put_args p = {.key = B("a"), .value = B("1")};
    for (int i = 0; i < 30; i++) cr_assert_eq(keel_submit_put(c, &p, count_cb, &recs[i], NULL), 0);
    drain(c, 5000);
    cr_assert_eq(keel_pending(c), 0);
    int ok = 0, closed = 0;
    for (int i = 0; i < 30; i++) {
        cr_assert_eq(recs[i].calls, 1);
        ok += recs[i].status == 0;
        closed += recs[i].status == KEEL_STATUS_CLOSED;
    }
    cr_assert_eq(ok, 10);
    cr_assert_eq(closed, 20);
    struct keel_result res;
    cr_assert_eq(keel_put(c, &p, &res), KEEL_STATUS_CLOSED);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

Test(client, goaway_fails_pending_as_not_executed)
{
    struct srv *s = srv_new(1);
    s->goaway_after = 5;
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct async_rec recs[12] = {0};
    struct keel_put_args p = {.key = B("a"), .value = B("1")};
    for (int i = 0; i < 12; i++) cr_assert_eq(keel_submit_put(c, &p, count_cb, &recs[i], NULL), 0);
    drain(c, 5000);
    int ok = 0, gone = 0;
    for (int i = 0; i < 12; i++) {
        cr_assert_eq(recs[i].calls, 1);
        ok += recs[i].status == 0;
        gone += recs[i].status == KEEL_STATUS_GOAWAY;
    }
    cr_assert_eq(ok, 5);
    cr_assert_eq(gone, 7);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

Test(client, unknown_status)
{
    struct srv *s = srv_new(1);
    s->unknown_status = 200;
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct keel_result res;
    struct keel_put_args p = {.key = B("a"), .value = B("1")};
    cr_assert_eq(keel_put(c, &p, &res), 200);
    cr_assert_eq(res.error.detail, 9);
    cr_assert_eq(res.error.message_len, strlen("from the future"));
    cr_assert_str_eq(keel_strerror(200), "unknown status 200");
    cr_assert_eq(keel_put(c, &p, &res), 200); /* the connection stays usable */
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

Test(client, strerror_every_status)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(codec_statuses); i++) {
        int code = codec_statuses[i].code;
        cr_assert_str_eq(keel_strerror(code), codec_statuses[i].message, "status %d", code);
    }
    const char *seen[16] = {0};
    for (int code = -9; code <= -1; code++) {
        const char *m = keel_strerror(code);
        cr_assert(m != NULL && strncmp(m, "unknown", 7) != 0, "status %d", code);
        for (int j = 0; j < 16; j++) cr_assert(seen[j] == NULL || strcmp(seen[j], m) != 0);
        seen[-code] = m;
    }
    cr_assert_str_eq(keel_strerror(-100), "unknown status -100");
    cr_assert_str_eq(keel_strerror(65535), "unknown status 65535");
}

Test(client, shard_routing)
{
    struct srv *s = srv_new(2);
    srv_start(s);
    struct keel_options o;
    keel_options_default(&o);
    o.shard_aware = true;
    keel_client *c = connect_to(s, &o);
    cr_assert_eq(keel_connection_count(c), 3);
    put_ok(c, "apple", "1"); /* shard 0 */
    put_ok(c, "zebra", "2"); /* shard 1 */
    put_ok(c, "m", "3");     /* shard 1: the split key */
    cr_assert_eq(atomic_load(&s->requests[1]), 1);
    cr_assert_eq(atomic_load(&s->requests[2]), 2);
    cr_assert_eq(atomic_load(&s->requests[0]), 1); /* the shard map */
    struct keel_result res;
    struct keel_range_args g = {.key = B("zebra")};
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.header.shard, 1);
    struct keel_range_args all = {.key = {"\0", 1}, .range_end = {"\0", 1}};
    cr_assert_eq(keel_get(c, &all, &res), 0); /* both shards: the router merges */
    cr_assert_eq(res.header.shard, 65535);
    cr_assert_eq(res.u.range.kvs_len, 3);
    cr_assert(kv_is(&res.u.range.kvs[0], "apple", "1"));
    cr_assert(kv_is(&res.u.range.kvs[2], "zebra", "2"));
    cr_assert_eq(atomic_load(&s->requests[0]), 2);
    struct keel_range_args in0 = {.key = B("a"), .range_end = B("b")};
    cr_assert_eq(keel_get(c, &in0, &res), 0);
    cr_assert_eq(res.header.shard, 0);
    cr_assert_eq(atomic_load(&s->requests[1]), 2);
    struct keel_compact_args ca = {.shard = 1, .revision = 2};
    cr_assert_eq(keel_compact(c, &ca, &res), 0);
    cr_assert_eq(atomic_load(&s->requests[2]), 4);
    struct keel_delete_args d = {.key = B("a"), .range_end = {"\0", 1}};
    cr_assert_eq(keel_delete(c, &d, &res), KEEL_STATUS_CROSS_SHARD);
    cr_assert_eq(keel_status(c, &res), 0);
    cr_assert_eq(res.u.status.shards_len, 2);
    keel_close(c);
    /* A client that is not shard-aware sends everything to the router port. */
    keel_client *plain = connect_to(s, NULL);
    cr_assert_eq(keel_connection_count(plain), 1);
    put_ok(plain, "zebra", "4");
    cr_assert_eq(atomic_load(&s->requests[2]), 4);
    keel_close(plain);
    srv_stop(s);
    srv_free(s);
}

Test(client, reply_with_unknown_id_closes)
{
    struct srv *s = srv_new(1);
    s->wrong_id = true;
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct async_rec recs[3] = {0};
    struct keel_range_args g = {.key = B("a")};
    for (int i = 0; i < 3; i++) cr_assert_eq(keel_submit_get(c, &g, count_cb, &recs[i], NULL), 0);
    drain(c, 5000);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recs[i].calls, 1);
        cr_assert_eq(recs[i].status, KEEL_STATUS_CLOSED); /* the stream cannot be trusted */
    }
    cr_assert_eq(keel_connection_count(c), 0);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

static void result_cb(void *ctx, uint64_t id, int status, const struct keel_result *res)
{
    (void)id;
    struct async_rec *r = ctx;
    r->calls++;
    r->status = status;
    r->revision = res->header.revision;
    if (res->opcode == 0x0013) r->order = (u32)res->u.txn.replies_len;
    if (res->opcode == 0x0020) r->order = (u32)res->u.status.shards_len;
    if (res->opcode == 0x0021) r->order = (u32)res->u.shard_map.shards_len;
    if (res->opcode == 0x0012) r->order = (u32)res->u.del.deleted;
}

Test(client, async_every_submit)
{
    struct srv *s = srv_new(1);
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct async_rec r[7] = {0};
    struct keel_put_args p = {.key = B("a"), .value = B("1")};
    cr_assert_eq(keel_submit_put(c, &p, result_cb, &r[0], NULL), 0);
    drain(c, 5000);
    struct keel_op op = {.kind = KEEL_OP_RANGE, .u.range = {.key = B("a")}};
    struct keel_txn_args t = {NULL, 0, &op, 1, NULL, 0};
    struct keel_range_args g = {.key = B("a")};
    struct keel_compact_args ca = {.shard = 0, .revision = 2};
    cr_assert_eq(keel_submit_get(c, &g, result_cb, &r[1], NULL), 0);
    cr_assert_eq(keel_submit_txn(c, &t, result_cb, &r[2], NULL), 0);
    cr_assert_eq(keel_submit_status(c, result_cb, &r[3], NULL), 0);
    cr_assert_eq(keel_submit_shard_map(c, result_cb, &r[4], NULL), 0);
    cr_assert_eq(keel_submit_compact(c, &ca, result_cb, &r[5], NULL), 0);
    drain(c, 5000);
    struct keel_delete_args d = {.key = B("a")};
    cr_assert_eq(keel_submit_delete(c, &d, result_cb, &r[6], NULL), 0);
    drain(c, 5000);
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(r[i].calls, 1, "request %d", i);
        cr_assert_eq(r[i].status, 0, "request %d: %s", i, keel_strerror(r[i].status));
    }
    cr_assert_eq(r[0].revision, 2);
    cr_assert_eq(r[2].order, 1);
    cr_assert_eq(r[3].order, 1);
    cr_assert_eq(r[4].order, 1);
    cr_assert_eq(r[6].order, 1);
    cr_assert_eq(keel_submit_put(NULL, &p, result_cb, NULL, NULL), KEEL_STATUS_ARG);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

/* ---- keel_poll_many ---------------------------------------------------------------------- */

#define MANY_CLIENTS 5
#define MANY_N       1500

static i64 mono_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (i64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static u32 pending_all(keel_client *const *cl, int n)
{
    u32 p = 0;
    for (int i = 0; i < n; i++) p += keel_pending(cl[i]);
    return p;
}

/* Submits n requests on every client, round-robin, waiting in keel_poll_many on FULL. */
static void many_submit(keel_client **cl, struct async_set *sets, int n,
                        int (*submit)(keel_client *, int, void *))
{
    int next[MANY_CLIENTS] = {0};
    for (bool more = true; more;) {
        more = false;
        for (int i = 0; i < MANY_CLIENTS; i++) {
            while (next[i] < n) {
                int rc = submit(cl[i], next[i], &sets[i]);
                if (rc == KEEL_STATUS_FULL) break;
                cr_assert_eq(rc, 0, "client %d submit %d: %s", i, next[i], keel_strerror(rc));
                next[i]++;
            }
            more = more || next[i] < n;
        }
        if (more) cr_assert_geq(keel_poll_many(cl, MANY_CLIENTS, 10), 0);
    }
}

static void many_drain(keel_client **cl)
{
    for (int i = 0; i < 2000 && pending_all(cl, MANY_CLIENTS) > 0; i++) {
        int rc = keel_poll_many(cl, MANY_CLIENTS, 100);
        cr_assert_geq(rc, 0, "poll_many: %s", keel_strerror(rc));
    }
    cr_assert_eq(pending_all(cl, MANY_CLIENTS), 0);
}

Test(client, poll_many_every_reply)
{
    u64 seed = seed_get();
    struct srv *one = srv_new(1), *two = srv_new(2);
    one->delay_every = 3; /* replies out of order */
    srv_start(one);
    srv_start(two);
    struct keel_options o;
    keel_options_default(&o);
    o.in_flight_max = 64; /* backpressure: submits meet FULL and wait in keel_poll_many */
    o.shard_aware = true;
    keel_client *cl[MANY_CLIENTS];
    struct async_set sets[MANY_CLIENTS];
    for (int i = 0; i < MANY_CLIENTS; i++) {
        cl[i] = connect_to(i < 3 ? one : two, &o); /* two's clients: 3 connections each */
        cr_assert_eq(keel_connection_count(cl[i]), i < 3 ? 1 : 3);
        struct async_set a = {calloc(MANY_N, sizeof(struct async_rec)),
                              calloc(MANY_N, sizeof(*a.keys)), calloc(MANY_N, sizeof(*a.vals))};
        for (int j = 0; j < MANY_N; j++) {
            snprintf(a.keys[j], sizeof(a.keys[j]), "%c%d-%05d", 'a' + j % 26, i, j);
            snprintf(a.vals[j], sizeof(a.vals[j]), "v%llu", (unsigned long long)rng_next(&seed));
        }
        sets[i] = a;
    }
    many_submit(cl, sets, MANY_N, submit_put_i);
    many_drain(cl);
    for (int i = 0; i < MANY_CLIENTS; i++) {
        for (int j = 0; j < MANY_N; j++) {
            cr_assert_eq(sets[i].recs[j].calls, 1, "client %d put %d", i, j);
            cr_assert_eq(sets[i].recs[j].status, 0);
        }
        memset(sets[i].recs, 0, MANY_N * sizeof(struct async_rec));
    }
    many_submit(cl, sets, MANY_N, submit_get_i);
    many_drain(cl);
    for (int i = 0; i < MANY_CLIENTS; i++) {
        for (int j = 0; j < MANY_N; j++) {
            cr_assert_eq(sets[i].recs[j].calls, 1);
            cr_assert_str_eq(sets[i].recs[j].value, sets[i].vals[j], "client %d get %d", i, j);
        }
        free(sets[i].recs);
        free(sets[i].keys);
        free(sets[i].vals);
        keel_close(cl[i]);
    }
    cr_assert_gt(atomic_load(&two->requests[1]), 0); /* the shard-aware clients routed */
    cr_assert_gt(atomic_load(&two->requests[2]), 0);
    srv_stop(one);
    srv_stop(two);
    srv_free(one);
    srv_free(two);
}

Test(client, poll_many_timeout_and_arguments)
{
    struct srv *s = srv_new(1);
    s->never_answer = true;
    srv_start(s);
    keel_client *cl[3] = {connect_to(s, NULL), NULL, connect_to(s, NULL)}; /* NULL: skipped */
    struct async_rec recs[2] = {0};
    struct keel_range_args g = {.key = B("a")};
    cr_assert_eq(keel_submit_get(cl[0], &g, count_cb, &recs[0], NULL), 0);
    cr_assert_eq(keel_submit_get(cl[2], &g, count_cb, &recs[1], NULL), 0);
    cr_assert_eq(keel_poll_many(cl, 3, 0), 0); /* sends both, does not wait */
    for (int i = 0; i < 400 && atomic_load(&s->requests[0]) < 2; i++) keel_poll_many(cl, 3, 5);
    cr_assert_eq(atomic_load(&s->requests[0]), 2);
    i64 t0 = mono_ms(CLOCK_MONOTONIC);
    cr_assert_eq(keel_poll_many(cl, 3, 120), 0);
    cr_assert_geq(mono_ms(CLOCK_MONOTONIC) - t0, 119, "returned before the timeout");
    cr_assert_eq(recs[0].calls + recs[1].calls, 0);
    cr_assert_eq(keel_pending(cl[0]) + keel_pending(cl[2]), 2);
    cr_assert_eq(keel_poll_many(NULL, 1, 0), KEEL_STATUS_ARG);
    cr_assert_eq(keel_poll_many(cl, -1, 0), KEEL_STATUS_ARG);
    cr_assert_eq(keel_poll_many(NULL, 0, -1), KEEL_STATUS_CLOSED); /* nothing to wait on */
    keel_close(cl[0]);
    keel_close(cl[2]);
    cr_assert_eq(recs[0].status, KEEL_STATUS_CLOSED);
    srv_stop(s);
    srv_free(s);
}

Test(client, poll_many_closed_client_does_not_spin)
{
    struct srv *gone = srv_new(1), *silent = srv_new(1);
    gone->never_answer = silent->never_answer = true;
    srv_start(gone);
    srv_start(silent);
    keel_client *cl[2] = {connect_to(gone, NULL), connect_to(silent, NULL)};
    struct async_rec recs[2] = {0};
    struct keel_range_args g = {.key = B("a")};
    for (int i = 0; i < 2; i++)
        cr_assert_eq(keel_submit_get(cl[i], &g, count_cb, &recs[i], NULL), 0);
    for (int i = 0;
         i < 400 && atomic_load(&silent->requests[0]) + atomic_load(&gone->requests[0]) < 2; i++)
        keel_poll_many(cl, 2, 5);
    cr_assert_eq(recs[0].calls + recs[1].calls, 0);
    srv_stop(gone); /* closes the server side of cl[0] */
    for (int i = 0; i < 100 && recs[0].calls == 0; i++) keel_poll_many(cl, 2, 50);
    cr_assert_eq(recs[0].calls, 1);
    cr_assert_eq(recs[0].status, KEEL_STATUS_CLOSED);
    cr_assert_eq(keel_connection_count(cl[0]), 0);
    /* cl[0] is closed, cl[1] idle: the call sleeps the whole timeout (no hang-up event
     * left to report over and over) and burns no CPU doing it. */
    i64 t0 = mono_ms(CLOCK_MONOTONIC), cpu0 = mono_ms(CLOCK_THREAD_CPUTIME_ID);
    cr_assert_eq(keel_poll_many(cl, 2, 200), 0);
    i64 waited_ms = mono_ms(CLOCK_MONOTONIC) - t0;
    cr_assert_geq(waited_ms, 199, "returned after %lld ms", (long long)waited_ms);
    cr_assert_lt(mono_ms(CLOCK_THREAD_CPUTIME_ID) - cpu0, 100, "busy while waiting");
    srv_stop(silent); /* now every connection is lost */
    for (int i = 0; i < 100 && recs[1].calls == 0; i++) keel_poll_many(cl, 2, 50);
    cr_assert_eq(recs[1].status, KEEL_STATUS_CLOSED);
    /* Nothing open: returns at once even with timeout -1 (a wait would hang the test). */
    cr_assert_eq(keel_poll_many(cl, 2, -1), KEEL_STATUS_CLOSED);
    cr_assert_eq(keel_poll(cl[0], -1), KEEL_STATUS_CLOSED);
    keel_close(cl[0]);
    keel_close(cl[1]);
    srv_free(gone);
    srv_free(silent);
}

Test(client, poll_coalesces_a_round_into_one_send)
{
    struct srv *s = srv_new(1);
    s->never_answer = true;
    srv_start(s);
    keel_client *cl[1] = {connect_to(s, NULL)};
    struct async_rec recs[200] = {0};
    struct keel_range_args g = {.key = B("coalesce")};
    for (int i = 0; i < 200; i++)
        cr_assert_eq(keel_submit_get(cl[0], &g, count_cb, &recs[i], NULL), 0);
    cr_assert_eq(atomic_load(&s->requests[0]), 0); /* a submit only queues */
    keel_poll_many(cl, 1, 0);
    for (int i = 0; i < 400 && atomic_load(&s->requests[0]) < 200; i++) keel_poll_many(cl, 1, 5);
    cr_assert_eq(atomic_load(&s->requests[0]), 200);
    /* 200 small frames (a few KiB) in one send() reach the server's one recv() together. */
    cr_assert_eq(atomic_load(&s->frames_per_read_max), 200);
    keel_close(cl[0]);
    srv_stop(s);
    srv_free(s);
}

/* ---- clusters: leader following, retries, member operations ------------------------------- */

/* Two in-test servers as members 0xA (a follower of 0xB) and 0xB (the leader). */
struct pair {
    struct srv *a, *b;
    char eps[64]; /* "127.0.0.1:A,127.0.0.1:B" */
};

static void pair_start(struct pair *p, bool grant_member)
{
    p->a = srv_new(1);
    p->b = srv_new(1);
    p->a->member_id = 0xA;
    p->a->leader_id = 0xB;
    p->b->member_id = 0xB;
    struct srv *both[2] = {p->a, p->b};
    for (int i = 0; i < 2; i++) {
        both[i]->grant_member = grant_member;
        both[i]->roster_len = 2;
        for (int k = 0; k < 2; k++) {
            both[i]->roster[k].id = both[k]->member_id;
            snprintf(both[i]->roster[k].url, sizeof(both[i]->roster[k].url), "http://127.0.0.1:%u",
                     both[k]->port[0]);
        }
    }
    snprintf(p->eps, sizeof(p->eps), "127.0.0.1:%u,127.0.0.1:%u", p->a->port[0], p->b->port[0]);
    srv_start(p->a);
    srv_start(p->b);
}

static void pair_free(struct pair *p)
{
    srv_stop(p->a);
    srv_stop(p->b);
    srv_free(p->a);
    srv_free(p->b);
}

static keel_client *connect_eps(const char *eps, const struct keel_options *o)
{
    keel_client *c = NULL;
    int rc = keel_connect(eps, o, &c);
    cr_assert_eq(rc, 0, "connect %s: %s", eps, keel_strerror(rc));
    return c;
}

static int port_of(const keel_client *c)
{
    char ep[32];
    cr_assert_gt(keel_endpoint_current(c, ep, sizeof(ep)), 0);
    return atoi(strchr(ep, ':') + 1);
}

Test(client, not_leader_redirect_via_member_list)
{
    struct pair p;
    pair_start(&p, true);
    /* B is reachable only through A's member list: the second endpoint is a closed port. */
    u16 dead = 0;
    int fd = listen_on(&dead);
    close(fd);
    char eps[64];
    snprintf(eps, sizeof(eps), "127.0.0.1:%u,127.0.0.1:%u", p.a->port[0], dead);
    keel_client *c = connect_eps(eps, NULL);
    cr_assert_eq(keel_server_info(c)->member_id, 0xA);
    cr_assert(keel_server_info(c)->features & KEEL_FEATURE_MEMBER);
    struct keel_result res;
    struct keel_put_args put = {.key = B("k"), .value = B("v")};
    cr_assert_eq(keel_put(c, &put, &res), 0, "put: %s", keel_strerror(keel_put(c, &put, &res)));
    cr_assert_eq(res.header.member_id, 0xB);
    cr_assert_eq(port_of(c), p.b->port[0]);
    cr_assert_eq(atomic_load(&p.a->requests[0]), 2); /* the put, then MEMBER_LIST */
    struct keel_range_args g = {.key = B("k")};
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert(kv_is(&res.u.range.kvs[0], "k", "v"));
    cr_assert_eq(atomic_load(&p.b->requests[0]), 2);
    keel_close(c);
    pair_free(&p);
}

Test(client, not_leader_redirect_by_hello_probe)
{
    struct pair p;
    pair_start(&p, false); /* no MEMBER feature: the client probes the endpoints' HELLOs */
    keel_client *c = connect_eps(p.eps, NULL);
    cr_assert_eq(keel_server_info(c)->features & KEEL_FEATURE_MEMBER, 0);
    struct keel_result res;
    struct keel_put_args put = {.key = B("k"), .value = B("v")};
    cr_assert_eq(keel_put(c, &put, &res), 0);
    cr_assert_eq(res.header.member_id, 0xB);
    cr_assert_eq(atomic_load(&p.a->requests[0]), 1);
    cr_assert_eq(atomic_load(&p.b->requests[0]), 1);
    /* Back on A (async users move by hand), a redirect now finds B by its known HELLO. */
    cr_assert_eq(keel_follow_leader(c, 0xA), 0);
    cr_assert_eq(port_of(c), p.a->port[0]);
    cr_assert_eq(keel_follow_leader(c, 0x77), KEEL_STATUS_MEMBER_NOT_FOUND);
    cr_assert_eq(keel_follow_leader(c, 0xA), 0);
    cr_assert_eq(keel_put(c, &put, &res), 0);
    cr_assert_eq(atomic_load(&p.b->requests[0]), 2);
    keel_close(c);
    pair_free(&p);
}

Test(client, redirects_are_bounded_and_single_endpoint_never_moves)
{
    struct pair p;
    pair_start(&p, true);
    p.b->leader_id = 0xA; /* each names the other: a loop the client must cut */
    struct keel_options o;
    keel_options_default(&o);
    o.redirects_max = 2;
    keel_client *c = connect_eps(p.eps, &o);
    struct keel_result res;
    struct keel_put_args put = {.key = B("k"), .value = B("v")};
    cr_assert_eq(keel_put(c, &put, &res), KEEL_STATUS_NOT_LEADER);
    cr_assert(res.error.detail == 0xA || res.error.detail == 0xB);
    cr_assert_eq(res.error.message_len, strlen("follower")); /* kept across the moves */
    cr_assert_eq(memcmp(res.error.message, "follower", 8), 0);
    u32 sent = atomic_load(&p.a->requests[0]) + atomic_load(&p.b->requests[0]);
    cr_assert_leq(sent, 3 + 2, "%u requests", sent); /* 3 puts, at most 2 member lists */
    keel_close(c);
    keel_client *one = connect_to(p.a, NULL);
    cr_assert_eq(keel_put(one, &put, &res), KEEL_STATUS_NOT_LEADER);
    cr_assert_eq(res.error.detail, 0xB);
    cr_assert_eq(port_of(one), p.a->port[0]);
    keel_close(one);
    pair_free(&p);
}

Test(client, reads_retry_other_endpoints_writes_do_not)
{
    struct pair p;
    pair_start(&p, true);
    p.a->leader_id = 0; /* both lead (two clusters' worth), A refuses with UNAVAILABLE */
    p.a->unavailable = true;
    keel_client *cb = connect_to(p.b, NULL);
    put_ok(cb, "k", "from-b");
    keel_close(cb);
    struct keel_options o;
    keel_options_default(&o);
    o.backoff_ms = 1;
    keel_client *c = connect_eps(p.eps, &o);
    struct keel_result res;
    struct keel_put_args put = {.key = B("k"), .value = B("again")};
    cr_assert_eq(keel_put(c, &put, &res), KEEL_STATUS_UNAVAILABLE); /* a write: reported */
    cr_assert_eq(atomic_load(&p.b->requests[0]), 1);
    struct keel_range_args g = {.key = B("k")};
    cr_assert_eq(keel_get(c, &g, &res), 0); /* a read: re-sent on B */
    cr_assert(kv_is(&res.u.range.kvs[0], "k", "from-b"));
    cr_assert_eq(port_of(c), p.b->port[0]);
    keel_close(c);
    pair_free(&p);
}

Test(client, lost_connection_write_reported_read_resent)
{
    struct pair p;
    pair_start(&p, true);
    p.a->leader_id = 0;
    p.a->close_mid_after = 1; /* every connection to A dies in its second reply */
    struct keel_options o;
    keel_options_default(&o);
    o.backoff_ms = 1;
    keel_client *c = connect_eps(p.eps, &o);
    struct keel_result res;
    struct keel_put_args put = {.key = B("k"), .value = B("v")};
    cr_assert_eq(keel_put(c, &put, &res), 0);
    cr_assert_eq(keel_put(c, &put, &res), KEEL_STATUS_CLOSED); /* outcome unknown: reported */
    cr_assert_eq(atomic_load(&p.b->requests[0]), 0);
    struct keel_range_args g = {.key = B("k")};
    cr_assert_eq(keel_get(c, &g, &res), 0); /* the lost client reconnects to A first */
    cr_assert_eq(res.header.member_id, 0xA);
    cr_assert_eq(res.u.range.count, 1);
    cr_assert_eq(keel_get(c, &g, &res), 0); /* A dies in the reply: re-sent on B */
    cr_assert_eq(res.header.member_id, 0xB);
    cr_assert_eq(res.u.range.count, 0);
    cr_assert_eq(atomic_load(&p.b->requests[0]), 1);
    keel_close(c);
    pair_free(&p);
}

Test(client, member_operations)
{
    struct pair p;
    pair_start(&p, true);
    keel_client *c = connect_eps(p.eps, NULL);
    struct keel_result res;
    cr_assert_eq(keel_member_list(c, false, &res), 0); /* local: A answers */
    cr_assert_eq(res.header.member_id, 0xA);
    cr_assert_eq(res.u.members.cluster_id, 0xC1);
    cr_assert_eq(res.u.members.members_len, 2);
    const struct keel_member *m = &res.u.members.members[1];
    cr_assert_eq(m->id, 0xB);
    cr_assert_eq(m->client_urls_len, 1);
    cr_assert_eq(strncmp(m->client_urls[0].ptr, "http://127.0.0.1:", 17), 0);
    cr_assert_eq(m->peer_urls_len, 1);
    cr_assert_eq(res.u.members.shards_len, 1);
    cr_assert_eq(res.u.members.shards[0].leader_id, 0xB);
    cr_assert_eq(keel_member_list(c, true, &res), 0); /* linearizable: followed to B */
    cr_assert_eq(res.header.member_id, 0xB);
    struct keel_str url = {"http://127.0.0.1:9", 18};
    struct keel_member_add_args add = {
        .name = {"n3", 2}, .peer_urls = &url, .peer_urls_len = 1, .as_learner = true};
    cr_assert_eq(keel_member_add(c, &add, &res), 0);
    cr_assert_eq(res.u.members.member_id, 0x99);
    cr_assert_eq(res.u.members.members_len, 3);
    cr_assert(res.u.members.members[2].is_learner);
    cr_assert_eq(res.u.members.members[2].name.len, 2);
    add.peer_urls_len = 0;
    cr_assert_eq(keel_member_add(c, &add, &res), KEEL_STATUS_INVALID); /* refused locally */
    cr_assert_eq(keel_member_remove(c, 0xA, &res), 0);
    cr_assert_eq(res.u.members.members_len, 1);
    cr_assert_eq(res.u.members.members[0].id, 0xB);
    cr_assert_eq(keel_member_remove(c, 0x55, &res), KEEL_STATUS_MEMBER_NOT_FOUND);
    cr_assert_eq(res.error.detail, 0x55);
    cr_assert_eq(keel_member_promote(c, 0xA, &res), 0);
    cr_assert_eq(keel_member_remove(c, 0, &res), KEEL_STATUS_INVALID);
    cr_assert_eq(keel_move_leader(c, 65535, 0xA, &res), 0);
    cr_assert_eq(res.u.move_leader.shards_len, 1);
    cr_assert_eq(res.u.move_leader.shards[0].status, 0);
    cr_assert_eq(res.u.move_leader.shards[0].leader_id, 0xA);
    cr_assert_eq(keel_endpoint_status(c, &res), 0);
    const struct keel_endpoint_status_result *e = &res.u.endpoint_status;
    cr_assert_eq(e->name.len, 3);
    cr_assert_eq(e->shards_len, 1);
    cr_assert_eq(e->shards[0].role, KEEL_ROLE_LEADER);
    cr_assert_eq(e->shards[0].raft_last_index, 11);
    cr_assert_eq(e->shards[0].progress_len, 1);
    cr_assert_eq(e->shards[0].progress[0].member_id, 0xA);
    cr_assert_eq(e->shards[0].progress[0].match_index, 11);
    cr_assert_eq(e->shards[0].progress[0].state, KEEL_PROGRESS_REPLICATE);
    keel_close(c);
    keel_client *a = connect_to(p.a, NULL); /* one endpoint: the follower's own view */
    cr_assert_eq(keel_endpoint_status(a, &res), 0);
    cr_assert_eq(res.u.endpoint_status.shards[0].role, KEEL_ROLE_FOLLOWER);
    cr_assert_eq(res.u.endpoint_status.shards[0].leader_id, 0xB);
    cr_assert_eq(res.u.endpoint_status.shards[0].progress_len, 0);
    cr_assert_eq(keel_member_add(a, &add, &res), KEEL_STATUS_INVALID);
    add.peer_urls_len = 1;
    cr_assert_eq(keel_member_add(a, &add, &res), KEEL_STATUS_NOT_LEADER);
    cr_assert_eq(res.error.detail, 0xB);
    keel_close(a);
    pair_free(&p);
}

Test(client, member_operations_without_the_feature)
{
    struct srv *s = srv_new(1);
    srv_start(s);
    keel_client *c = connect_to(s, NULL);
    struct keel_result res;
    cr_assert_eq(keel_member_list(c, false, &res), KEEL_STATUS_UNKNOWN_OPCODE);
    cr_assert_eq(res.error.detail, 0x0300);
    cr_assert_eq(keel_endpoint_status(c, &res), KEEL_STATUS_UNKNOWN_OPCODE);
    char url[64]; /* endpoints may be written as client URLs, as MEMBER_LIST gives them */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s->port[0]);
    keel_client *u = connect_eps(url, NULL);
    char ep[32];
    cr_assert_gt(keel_endpoint_current(u, ep, sizeof(ep)), 0);
    cr_assert_eq(atoi(strchr(ep, ':') + 1), s->port[0]);
    keel_close(u);
    keel_client *bad = NULL;
    cr_assert_eq(keel_connect("127.0.0.1:1,nonsense", NULL, &bad), KEEL_STATUS_ARG);
    cr_assert_eq(keel_connect("http://127.0.0.1", NULL, &bad), KEEL_STATUS_ARG);
    cr_assert_eq(keel_connect("127.0.0.1:70000", NULL, &bad), KEEL_STATUS_ARG);
    cr_assert_eq(keel_connect("host.example:2379", NULL, &bad), KEEL_STATUS_ARG);
    cr_assert_eq(keel_connect("127.0.0.1:0", NULL, &bad), KEEL_STATUS_ARG);
    cr_assert_null(bad);
    keel_close(c);
    srv_stop(s);
    srv_free(s);
}

/* ---- leader routing: each shard's connection on its leader's node ------------------------- */

/* Two servers of two shards each, members 0xA and 0xB; shard 0 led by A, shard 1 by B. */
static void split_start(struct srv *sv[2], char *eps, size_t cap)
{
    for (int i = 0; i < 2; i++) {
        sv[i] = srv_new(2);
        sv[i]->member_id = 0xA + (u64)i;
    }
    for (int i = 0; i < 2; i++) {
        atomic_store(&sv[i]->shard_leader[0], 0xA);
        atomic_store(&sv[i]->shard_leader[1], 0xB);
        srv_start(sv[i]);
    }
    snprintf(eps, cap, "127.0.0.1:%u,127.0.0.1:%u", sv[0]->port[0], sv[1]->port[0]);
}

static void shard1_leader(struct srv *sv[2], u64 id)
{
    for (int i = 0; i < 2; i++) atomic_store(&sv[i]->shard_leader[1], id);
}

static struct keel_put_args put_args(const char *k, const char *v)
{
    return (struct keel_put_args){.key = B(k), .value = B(v)};
}

/* Sync: each shard goes to its leader's shard port (B's member id learned by a HELLO probe);
 * after NOT_LEADER the shard moves and the write (not executed) is sent again there. */
Test(client, leader_routing_sync_follows_not_leader)
{
    struct srv *sv[2];
    char eps[64];
    split_start(sv, eps, sizeof(eps));
    struct keel_options o;
    keel_options_default(&o);
    o.shard_aware = true;
    keel_client *c = connect_eps(eps, &o);
    int leaders = -1;
    cr_assert_eq(keel_shard_routes(c, &leaders), 2);
    cr_assert_eq(leaders, 2);
    put_ok(c, "apple", "1"); /* shard 0: A's shard port */
    put_ok(c, "zebra", "2"); /* shard 1: B's shard port */
    cr_assert_eq(atomic_load(&sv[0]->requests[1]), 1);
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), 1);
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 0);
    cr_assert_eq(atomic_load(&sv[1]->requests[1]), 0);
    struct keel_result res;
    struct keel_range_args g = {.key = B("zebra")};
    cr_assert_eq(keel_get(c, &g, &res), 0);
    cr_assert_eq(res.header.member_id, 0xB);
    shard1_leader(sv, 0xA); /* B now refuses shard 1's writes: NOT_LEADER naming A */
    struct keel_put_args p = put_args("zebra", "3");
    int rc = keel_put(c, &p, &res);
    cr_assert_eq(rc, 0, "put: %s", keel_strerror(rc));
    cr_assert_eq(res.header.member_id, 0xA);
    cr_assert_eq(res.header.shard, 1);
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), 3); /* put, get, the refused put */
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 1); /* the put, sent again, once */
    cr_assert_eq(keel_shard_moves(c), 1);
    cr_assert_eq(keel_shard_routes(c, &leaders), 2);
    cr_assert_eq(leaders, 2);
    put_ok(c, "apple", "4"); /* shard 0 stayed on A */
    cr_assert_eq(atomic_load(&sv[0]->requests[1]), 2);
    keel_close(c);
    for (int i = 0; i < 2; i++) {
        srv_stop(sv[i]);
        srv_free(sv[i]);
    }
}

/* Async: NOT_LEADER callbacks as they are; the shard moves once drained, later submits go to
 * the new leader. A write answered LEADER_CHANGED (outcome unknown) is reported, never
 * sent again, and the shard moves to the leader it names. */
Test(client, leader_routing_async_and_unknown_outcome)
{
    struct srv *sv[2];
    char eps[64];
    split_start(sv, eps, sizeof(eps));
    struct keel_options o;
    keel_options_default(&o);
    o.shard_aware = true;
    keel_client *c = connect_eps(eps, &o);
    shard1_leader(sv, 0xA);
    struct async_rec recs[4] = {0};
    struct keel_put_args p = put_args("zebra", "v");
    for (int i = 0; i < 3; i++) cr_assert_eq(keel_submit_put(c, &p, count_cb, &recs[i], NULL), 0);
    for (int i = 0; i < 200 && keel_pending(c) > 0; i++) keel_poll(c, 50);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(recs[i].calls, 1);
        cr_assert_eq(recs[i].status, KEEL_STATUS_NOT_LEADER); /* the callback sees it */
    }
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), 3);
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 0); /* nothing re-sent by libkeel */
    cr_assert_eq(keel_submit_put(c, &p, count_cb, &recs[3], NULL), 0); /* moves, drained */
    for (int i = 0; i < 200 && keel_pending(c) > 0; i++) keel_poll(c, 50);
    cr_assert_eq(recs[3].status, 0);
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 1);
    int leaders = -1;
    cr_assert_eq(keel_shard_routes(c, &leaders), 2);
    cr_assert_eq(leaders, 2);
    /* A answers the next shard-1 put LEADER_CHANGED naming B: unknown outcome, reported. */
    shard1_leader(sv, 0xB);
    atomic_store(&sv[0]->changed_to[1], 0xB);
    struct keel_result res;
    u32 b_before = atomic_load(&sv[1]->requests[2]);
    cr_assert_eq(keel_put(c, &p, &res), KEEL_STATUS_LEADER_CHANGED);
    cr_assert_eq(res.error.detail, 0xB);
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 2);
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), b_before); /* not sent again */
    put_ok(c, "zebra", "w"); /* the next write goes to B's shard port */
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), b_before + 1);
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 2);
    keel_close(c);
    for (int i = 0; i < 2; i++) {
        srv_stop(sv[i]);
        srv_free(sv[i]);
    }
}

/* A lost shard connection: the write in flight is reported CLOSED, not sent elsewhere; one
 * endpoint or a client that is not shard-aware never routes by leader. */
Test(client, leader_routing_lost_write_reported_and_single_endpoint)
{
    struct srv *sv[2];
    char eps[64];
    split_start(sv, eps, sizeof(eps));
    sv[1]->close_mid_after = 1; /* B's connections die in their second reply */
    struct keel_options o;
    keel_options_default(&o);
    o.shard_aware = true;
    keel_client *c = connect_eps(eps, &o);
    put_ok(c, "zebra", "1");
    struct keel_result res;
    struct keel_put_args p = put_args("zebra", "2");
    cr_assert_eq(keel_put(c, &p, &res), KEEL_STATUS_CLOSED);
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), 2);
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 0);
    cr_assert_eq(atomic_load(&sv[0]->requests[0]), 1); /* the map only: no re-send */
    keel_close(c);
    keel_client *one = connect_to(sv[0], &o); /* one endpoint: A's own shard ports */
    int leaders = -1;
    cr_assert_eq(keel_shard_routes(one, &leaders), 2);
    cr_assert_eq(leaders, 0);
    cr_assert_eq(keel_put(one, &p, &res), KEEL_STATUS_NOT_LEADER);
    cr_assert_eq(res.error.detail, 0xB);
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 1);
    keel_close(one);
    for (int i = 0; i < 2; i++) {
        srv_stop(sv[i]);
        srv_free(sv[i]);
    }
}

/* keeld's followers forward writes and relay the leader's reply (its member id in the
 * header): the shard moves to that leader without any error. */
Test(client, leader_routing_follows_a_relayed_reply)
{
    struct srv *sv[2];
    char eps[64];
    split_start(sv, eps, sizeof(eps));
    struct keel_options o;
    keel_options_default(&o);
    o.shard_aware = true;
    keel_client *c = connect_eps(eps, &o);
    atomic_store(&sv[0]->shard_leader[1], 0xA); /* A leads shard 1 now; B relays A's replies */
    atomic_store(&sv[1]->relayed_from[1], 0xA);
    struct keel_result res;
    struct keel_put_args p = put_args("zebra", "1");
    cr_assert_eq(keel_put(c, &p, &res), 0);
    cr_assert_eq(res.header.member_id, 0xA);
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), 1);
    int leaders = -1;
    cr_assert_eq(keel_shard_routes(c, &leaders), 2);
    cr_assert_eq(leaders, 1); /* shard 1 moves at the next request */
    put_ok(c, "zebra", "2");
    cr_assert_eq(atomic_load(&sv[0]->requests[2]), 1);
    cr_assert_eq(atomic_load(&sv[1]->requests[2]), 1);
    cr_assert_eq(keel_shard_moves(c), 1);
    cr_assert_eq(keel_shard_routes(c, &leaders), 2);
    cr_assert_eq(leaders, 2);
    keel_close(c);
    for (int i = 0; i < 2; i++) {
        srv_stop(sv[i]);
        srv_free(sv[i]);
    }
}
