/*
 * bench_workload.h — the workload model of keelbench, independent of the system under
 * test: settings and their command line, the key space, values, the operation mix, key
 * distributions, a seeded generator, and the final report. The engine (bench_engine.h) runs
 * it against keel, etcd or ZooKeeper through a driver (bench_driver.h), so every system
 * sees the same workload and prints the same report.
 *
 * The model (keelbench --help prints the options):
 *  - conns connections, each with up to depth requests outstanding, spread over threads
 *    load-generator threads (connection i belongs to thread i % threads). Closed loop by
 *    default (a completed request is replaced at once); --rate R sends R requests/s on a
 *    fixed schedule instead (open loop, latency from the scheduled time).
 *  - Keys: keys distinct keys of exactly key_size printable bytes, derived from the key
 *    index alone (bench_key), so every thread and every system computes the same key
 *    for an index. A request picks its index uniformly, or zipfian (YCSB's generator,
 *    skew zipf_theta; the key scramble spreads the hot indexes over the key space).
 *  - Values: value_size random printable bytes, a window at a random offset of a
 *    per-thread pool made at start (no per-request generation, no allocation).
 *  - Operations: put, get (linearizable, or serializable with --serializable), mixed (a
 *    get with probability read_ratio, else a put), or load (write every key once).
 *  - Phases: preload (every key written once, not measured; unless --no-preload; it is
 *    the measured run itself for load), warmup (warmup_s seconds of load, not measured),
 *    then the measured run: duration_s seconds, or until requests requests (all threads
 *    together) were submitted. Requests in flight at the end are waited for and measured.
 *  - Latency is per request, up to its completion as the driver saw it, on
 *    CLOCK_MONOTONIC, in a bench_hist (bench_stats.h) per thread and per operation,
 *    merged at the end. Failed requests count as errors, not as latencies or ops.
 *  - ops/s = successful measured requests / (time of the last measured completion -
 *    start of the measured run), over all threads.
 */
#ifndef KEEL_PERF_BENCH_WORKLOAD_H
#define KEEL_PERF_BENCH_WORKLOAD_H

#include "core/types.h"
#include "perf/bench_stats.h"

#include <stdbool.h>
#include <stdio.h>

/* load: only the preload (every key written once, BENCH_REQ_LOAD), measured as the run. */
enum bench_op { BENCH_OP_PUT = 0, BENCH_OP_GET = 1, BENCH_OP_MIXED = 2, BENCH_OP_LOAD = 3 };
enum bench_dist { BENCH_DIST_UNIFORM = 0, BENCH_DIST_ZIPFIAN = 1 };
enum bench_kind { BENCH_KIND_PUT = 0, BENCH_KIND_GET = 1, BENCH_KINDS = 2 };

#define BENCH_CONNS_MAX      4096u
#define BENCH_DEPTH_MAX      65536u
#define BENCH_THREADS_MAX    256u
#define BENCH_KEY_SIZE_MAX   4096u
#define BENCH_VALUE_SIZE_MAX (16u << 20)
#define BENCH_HEX_DIGITS_MAX 16u /* a key's index part: up to 16 hex digits (64 bits) */

struct bench_config {
    const char *system;    /* "keel" (default), "etcd" or "zookeeper": the driver */
    const char *endpoints; /* "HOST:PORT[,HOST:PORT...]" */
    enum bench_op op;
    u32 conns, depth, threads;
    u64 keys;
    u32 key_size_bytes, value_size_bytes;
    double read_ratio; /* mixed: probability that a request is a get */
    double duration_s; /* measured run length, unless requests > 0 */
    u64 requests;      /* > 0: measured requests in total instead of duration_s */
    double warmup_s;
    u64 seed;
    bool serializable;           /* gets: serializable instead of linearizable */
    enum bench_dist dist;        /* how a request picks its key index */
    double zipf_theta;           /* zipfian: skew in (0, 1) (YCSB's 0.99 by default) */
    double rate_ops_s;           /* > 0: fixed rate (open loop), all threads together */
    const char *server_pids;     /* "PID[,PID...]": their CPU seconds are reported; or NULL */
    const char *cdf_out;         /* write "percentile latency_ms" lines here; or NULL */
    bool shard_aware;            /* driver option (libkeel's shard_aware) */
    bool preload;                /* get/mixed: put every key before measuring */
    const char *fsync_probe_dir; /* NULL: no probe */
};

/* Parses argv into c (defaults first). Returns 0 to run, 1 after printing an error to
 * err (usage error: exit 1), or 2 after printing --help to out (exit 0). */
int bench_config_parse(struct bench_config *c, int argc, char **argv, FILE *out, FILE *err);
/* The header line: every setting, one line. */
void bench_config_print(const struct bench_config *c, FILE *out);
const char *bench_op_name(enum bench_op op);

/* ---- seeded generator (splitmix64): one per thread, never shared ------------------------ */

struct bench_rng {
    u64 state;
};
void bench_rng_init(struct bench_rng *r, u64 seed, u64 stream);
u64 bench_rng_next(struct bench_rng *r);
/* Uniform in [0, bound), bound > 0 (multiply-shift: bias below 2^-32 for our bounds). */
u64 bench_rng_below(struct bench_rng *r, u64 bound);
/* Uniform in [0, 1). */
double bench_rng_unit(struct bench_rng *r);

/* ---- keys, values, mix ------------------------------------------------------------------ */

/* Writes key index (< c->keys) into dst, exactly c->key_size_bytes bytes, not terminated.
 * The key is a permutation of the index (bijective within the digit count) printed as
 * lowercase hex, then padded with '.' to key_size: distinct indexes give distinct keys, and
 * keys spread over the whole hex interval, so a range-sharded server spreads them over its
 * shards (a shared prefix with zero-padded decimals would put them all on one shard). */
void bench_key(const struct bench_config *c, u64 index, char *dst);
/* The hex digits bench_key uses for c->keys keys (min(key_size, 16)); 0 if key_size cannot
 * hold keys distinct keys. */
u32 bench_key_digits(const struct bench_config *c);
/* Fills pool with len random printable bytes. */
void bench_fill_printable(struct bench_rng *r, char *pool, size_t len);
/* Zipfian key indexes in [0, n) (index 0 the most popular), YCSB's generator. bench_key
 * scrambles indexes into keys, so the hot keys spread over the key space. */
struct bench_zipf {
    u64 n;
    double theta, zetan, alpha, eta, half_pow_theta;
};
void bench_zipf_init(struct bench_zipf *z, u64 n, double theta);
u64 bench_zipf_next(const struct bench_zipf *z, struct bench_rng *r);
/* The key index of the next request under c->dist (z: bench_zipf_init(c->keys), or NULL for
 * uniform). */
u64 bench_next_index(const struct bench_config *c, const struct bench_zipf *z, struct bench_rng *r);
/* The operation of the next request under c->op and c->read_ratio. */
enum bench_kind bench_next_kind(const struct bench_config *c, struct bench_rng *r);

/* ---- report ----------------------------------------------------------------------------- */

struct bench_result {
    struct bench_hist *hist[BENCH_KINDS]; /* merged, measured latencies in ns */
    struct bench_hist *all;               /* both kinds */
    u64 ops;                              /* successful measured requests */
    u64 errors;                           /* failed requests, every phase */
    double elapsed_s;                     /* the measured run */
    const struct bench_hist *fsync;       /* NULL without --fsync-probe */
    double server_cpu_s;                  /* --server-pids: their CPU seconds; else < 0 */
    u64 behind; /* --rate: measured requests of the schedule not sent by the end */
};

/* The progress line (a terminal only): "\r" elapsed, ops so far, current ops/s. */
void bench_progress_print(FILE *out, double elapsed_s, u64 ops, double ops_s);
/* Prints fsync probe results (p50/p99) after the probe. */
void bench_fsync_print(FILE *out, const struct bench_hist *fsync, const char *dir);
/* The report in two parts, so that a driver can list its error statuses after the
 * errors line: first ops/s and the error count, then the latency lines and, last, the
 * summary line. */
void bench_report_ops(const struct bench_result *r, FILE *out);
void bench_report_latency(const struct bench_config *c, const struct bench_result *r, FILE *out);

#endif
