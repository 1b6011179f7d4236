/*
 * keel_int.h — libkeel's private structs, shared by client/keel.c (connections, pending
 * table, poll loop) and client/keel_msg.c (arguments -> codec messages, replies ->
 * public results). Only client/ includes it.
 *
 * Request ids: id = generation << 24 | (slot + 1); the slot indexes the pending table,
 * so a reply finds its request in O(1) and a stale id (slot reused) never matches.
 */
#ifndef KEEL_CLIENT_KEEL_INT_H
#define KEEL_CLIENT_KEEL_INT_H

#include "client/keel.h"
#include "core/buf.h"
#include "net/codec.h"

#define KEEL_SLOT_BITS   24
#define KEEL_CONNS_MAX   (1 + CODEC_SHARDS_MAX)
#define KEEL_TIMEOUT_DEF 5000

struct keel_conn {
    int fd;      /* -1 when closed */
    u32 host_be; /* network order */
    u16 port;
    u64 member_id; /* named by this connection's HELLO reply; 0: not yet */
    u32 in_flight;
    struct buf out; /* frames not yet sent */
    size_t out_sent;
    u8 *in; /* received bytes not yet cut into frames */
    size_t in_len, in_cap;
};

struct keel_pend {
    u64 id; /* 0: free */
    keel_callback cb;
    void *ctx;
    u16 opcode;
    u16 conn;
    bool keep_mem; /* sync call: the result's memory goes to sync_mem */
};

/* A shard's key range and its connection. With leader routing (keel_leader_routing), conn
 * goes to the shard port of the node that leads the shard when that node is known, else to
 * the router node's shard port. moving: the connection must change (a NOT_LEADER or
 * LEADER_CHANGED reply, or a new map, named another leader); it changes once conn has no
 * request in flight (keel_routes_settle), and until then async submits for the shard get
 * KEEL_STATUS_FULL and sync ones go to the router connection. */
struct keel_route {
    u16 shard_id;
    u16 port; /* from the map: the shard's port on the router node */
    u16 conn;
    u64 leader_id; /* 0: unknown */
    bool moving;
    bool on_leader; /* conn's HELLO named leader_id */
    u8 *start_key, *end_key;
    size_t start_len, end_len;
};

/* One endpoint of keel_connect's list; member_id learned from its HELLO (0: not yet). */
struct keel_endpoint {
    u32 host_be; /* network order */
    u16 port;
    u64 member_id;
    bool probed; /* a HELLO was tried on it to learn member_id (done once) */
};

/* A member's client address, from MEMBER_LIST (its first client URL that parses). */
struct keel_member_addr {
    u64 id;
    u32 host_be;
    u16 port;
};

struct keel_client {
    struct keel_options opt;
    struct keel_server_info info;
    u32 host_be; /* router address, network order */
    struct keel_endpoint eps[KEEL_ENDPOINTS_MAX];
    u16 eps_len, ep_cur; /* ep_cur: the endpoint conns[0] talks to, or eps_len when none did */
    struct keel_member_addr *members; /* cache of the last MEMBER_LIST; NULL: none */
    u16 members_len;
    struct keel_conn conns[KEEL_CONNS_MAX];
    u16 conns_len;
    struct keel_pend *pend;
    u32 *free_slots;
    u32 pend_cap, free_len, pending;
    u64 generation;
    struct keel_route *routes;
    u16 routes_len;
    bool map_stale;
    bool map_inflight;  /* an async SHARD_MAP (keel_poll's refresh) awaits its reply */
    i64 map_async_ms;   /* when the last async SHARD_MAP was sent */
    bool routes_moving; /* some route is moving (a hint: settle looks) */
    u32 route_marks;    /* routes marked moving by replies so far (keel_route_hint) */
    u64 shard_moves;    /* shard connections moved from one node's port to another's */
    bool settling;      /* keel_routes_settle runs: no nested settle */
    u32 dispatching;    /* inside conn_read: callbacks may run, no connection may close */
    void *sync_mem;     /* the last sync result's block */
    struct buf scratch[3];
    bool in_callback;
    u64 callbacks_run; /* requests finished (called back or, after a sync timeout, dropped) */
};

/* keel.c: the sync call on conn (routed when conn < 0), without following; the result's
 * memory stays in c->sync_mem. */
int keel_sync_call(keel_client *c, int conn, u16 opcode, const void *args, struct keel_result *out);
/* Closes every connection (none may be pending) and connects to host:port as keel_connect
 * does (HELLO, shard map). 0, or a status with every connection closed. */
int keel_move(keel_client *c, u32 host_be, u16 port);

/* True when shard routes follow leaders: shard_aware and several endpoints. */
bool keel_leader_routing(const keel_client *c);
/* Moves every moving route whose connection has nothing in flight; a no-op inside
 * callbacks. Connects and sends HELLOs (waiting on those connections alone: no other
 * callback runs). keel_route.c. */
void keel_routes_settle(keel_client *c);
/* A reply on conn from member replier: NOT_LEADER / LEADER_CHANGED naming another leader
 * (detail), or a reply relayed from another member than conn's, move the shard of conn;
 * NOT_LEADER also marks the map for a refresh (rate-limited). */
void keel_route_hint(keel_client *c, u16 conn, int status, u64 detail, u64 replier);
/* keel_poll's step: sends an async SHARD_MAP when the map is stale (leader routing only). */
void keel_map_poll(keel_client *c);
/* Replaces the routes by map m's (copied); a route that is new or changed (port, leader)
 * is left moving, for keel_routes_settle. */
int keel_routes_install(keel_client *c, const struct keel_shard_map_result *m);

/* keel.c, for keel_route.c: */
/* The open connection to host:port, or a new one after its HELLO; 0 when it cannot open. */
u16 keel_conn_for(keel_client *c, u32 host_be, u16 port);
/* Closes connection k (k > 0, nothing in flight, no route on it); a no-op in callbacks. */
void keel_conn_close_idle(keel_client *c, u16 k);
/* Queues a request on conn with an internal callback; 0 or a submit status. */
int keel_submit_on(keel_client *c, u16 conn, u16 opcode, const void *args, keel_callback cb,
                   void *ctx);
/* A malloc'd copy of n bytes (at least 1 byte allocated); NULL when out of memory. */
u8 *keel_mem_dup(const u8 *p, size_t n);

/* keel_follow.c: keel_sync_call plus the leader following and retries of keel.h. */
int keel_sync_follow(keel_client *c, u16 opcode, const void *args, struct keel_result *out);
/* Parses "a.b.c.d:port" or "scheme://a.b.c.d:port[/...]" (len bytes); 0 or KEEL_STATUS_ARG. */
int keel_addr_parse(const char *s, size_t len, u32 *host_be, u16 *port);

/* keel_member.c: the member opcodes' arguments and results. */
int keel_member_fill(keel_client *c, u16 opcode, const void *args, union codec_msg_any *m);
int keel_member_decode(u16 opcode, const struct codec_reply *r, struct keel_result *res,
                       void **mem);

/* keel_msg.c */
/* A zeroed block of n bytes chained on *chain (freed with the result); NULL when out of memory. */
void *keel_mem_alloc(void **chain, size_t n);
void *keel_mem_copy(void **chain, const void *src, size_t n);
void keel_mem_free(void *chain);
int keel_msg_encode(keel_client *c, struct buf *out, u16 opcode, u64 id, const void *args);
/* Decodes reply frame f (bytes owned by the caller) into res; arrays go in one malloc'd block
 * returned in *mem (NULL when none). 0 or KEEL_STATUS_BAD_REPLY / KEEL_STATUS_NO_MEMORY. */
int keel_msg_decode(const struct codec_frame *f, const struct codec_reply *r,
                    struct keel_result *res, void **mem);
/* The shard index owning key among c->routes, or -1. */
int keel_route_find(const keel_client *c, const u8 *key, size_t len);

#endif
