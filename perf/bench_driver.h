/*
 * bench_driver.h — what keelbench needs from a system under test. keelbench's engine
 * (bench_engine.c) runs the workload model of bench_workload.h (threads, connections,
 * outstanding requests, keys, values, mix, phases, closed or fixed-rate loop, latency,
 * report) and talks to a system only through one of these drivers:
 *
 *   keel       drv_keel.c   libkeel, the native binary protocol (shard-aware on request)
 *   etcd       drv_etcd.c   etcd v3's gRPC API: HTTP/2 (libnghttp2), protobuf by hand
 *   zookeeper  drv_zk.c     ZooKeeper's official C client (libzookeeper-mt), async API
 *
 * Contract (every driver):
 *  - Threads. The engine runs c->threads load-generator threads. Each calls open() once
 *    for its own connections and from then on is the only caller of that handle: submit,
 *    poll, pending and close run on the thread that opened it. A driver may run threads of
 *    its own inside (the ZooKeeper client does), but it calls `done` ONLY from inside
 *    poll() or close(), on the engine thread that owns the handle.
 *  - Connections. open() gets the global indexes of the thread's connections (connection
 *    i belongs to thread i % threads); connection i prefers endpoint i % count of
 *    c->endpoints (a comma-separated list of numeric IPv4 HOST:PORT), so that connections
 *    spread over the members. Every connection is connected (and, where the protocol has
 *    one, handshaken) before open() returns; a failure prints one line to stderr naming
 *    the endpoint and returns NULL (keelbench exits 1).
 *  - Requests. submit() queues one request on one connection and returns BENCH_SUBMIT_OK;
 *    the driver then calls done(ctx, status, done_ns) exactly once for it: status 0 =
 *    the server executed it successfully; any other value is the driver's own error code,
 *    which status_name() turns into a short text for the report ("NOT_LEADER",
 *    "ZCONNECTIONLOSS", "grpc 14 UNAVAILABLE", ...). done_ns is CLOCK_MONOTONIC
 *    (bench_now_ns) when the reply was read, or 0 for "now". BENCH_SUBMIT_FULL means the
 *    connection has no room for another request right now (nothing was queued, done will
 *    not be called: poll and retry); BENCH_SUBMIT_CLOSED means the connection is gone
 *    for good. At most c->depth requests are outstanding per connection in the measured
 *    run; the preload may go up to BENCH_PRELOAD_DEPTH.
 *  - Operations (struct bench_request):
 *      BENCH_REQ_PUT   set key to value; the key exists (preloaded). keel: PUT; etcd:
 *                      KV.Put; ZooKeeper: zoo_aset(path, value, version -1).
 *      BENCH_REQ_GET   read key's value; linearizable unless c->serializable. keel: RANGE
 *                      (serializable flag); etcd: KV.Range (serializable field);
 *                      ZooKeeper: zoo_aget (ZooKeeper reads are served by the member the
 *                      session is on: its guarantee is sequential consistency, what etcd
 *                      calls serializable; keelbench says so in its header line).
 *      BENCH_REQ_LOAD  the preload's write: create the key with value, or set it when it
 *                      exists. keel and etcd: a put; ZooKeeper: zoo_acreate, and on
 *                      ZNODEEXISTS a zoo_aset (the driver chains them; done is called once).
 *    Key and value bytes are only valid during submit(): copy what must outlive it.
 *  - poll(timeout_us) sends what was queued, waits until at least one reply arrived or
 *    timeout_us passed (0: do not wait), and calls done for every reply it read. It
 *    returns the number of connections still usable. A connection that dies completes its
 *    outstanding requests with an error status (in this poll or the next).
 *  - pending(conn) counts requests submitted on conn and not yet called back.
 *  - close() calls back every outstanding request with an error status, closes the
 *    connections and frees the handle.
 *  - report() (optional, may be NULL) prints driver-specific lines once after the run,
 *    given every thread's handle (e.g. keel's shard connections on their leaders), before
 *    they are closed.
 *  - The driver honours c->shard_aware only if it is keel; check() rejects settings a
 *    system cannot do with a message (exit 1 before connecting).
 */
#ifndef KEEL_PERF_BENCH_DRIVER_H
#define KEEL_PERF_BENCH_DRIVER_H

#include "core/types.h"
#include "perf/bench_workload.h"

#include <stdbool.h>
#include <stdio.h>

#define BENCH_PRELOAD_DEPTH 256u /* requests in flight per connection while preloading */

enum bench_req_op { BENCH_REQ_PUT = 0, BENCH_REQ_GET = 1, BENCH_REQ_LOAD = 2 };
enum { BENCH_SUBMIT_OK = 0, BENCH_SUBMIT_FULL = 1, BENCH_SUBMIT_CLOSED = 2 };

struct bench_request {
    enum bench_req_op op;
    const char *key;
    u32 key_len;
    const char *value; /* PUT and LOAD only */
    u32 value_len;
};

/* The engine's completion: exactly once per accepted submit. */
typedef void (*bench_done_fn)(void *ctx, int status, u64 done_ns);

struct bench_dthread; /* a driver's per-thread state, opaque to the engine */

struct bench_driver {
    const char *name; /* as --system spells it */
    /* Rejects settings this system cannot run: 0, or 1 after a message to err. */
    int (*check)(const struct bench_config *c, FILE *err);
    /* Opens the thread's conns connections, whose global indexes are conn_index[0..conns). */
    struct bench_dthread *(*open)(const struct bench_config *c, u32 thread, u32 conns,
                                  const u32 *conn_index, bench_done_fn done);
    int (*submit)(struct bench_dthread *d, u32 conn, const struct bench_request *r, void *ctx);
    u32 (*poll)(struct bench_dthread *d, u64 timeout_us);
    u32 (*pending)(const struct bench_dthread *d, u32 conn);
    void (*close)(struct bench_dthread *d);
    const char *(*status_name)(int status);
    void (*report)(struct bench_dthread *const *threads, u32 count, FILE *out); /* or NULL */
};

extern const struct bench_driver bench_driver_keel;
extern const struct bench_driver bench_driver_etcd;
extern const struct bench_driver bench_driver_zk;

/* CLOCK_MONOTONIC in nanoseconds. */
u64 bench_now_ns(void);

/* The endpoint connection i prefers: entry i % count of the comma-separated list, copied
 * into host (NUL-terminated, at most host_len - 1 bytes) and *port. 0, or -1 when the
 * list or the entry is not numeric IPv4 HOST:PORT. */
int bench_endpoint(const char *endpoints, u32 i, char *host, size_t host_len, u16 *port);

#endif
