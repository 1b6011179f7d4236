/*
 * bench_workload.c — settings, keys, values, operation mix and report of the load
 * generators (bench_workload.h states the model).
 */
#include "perf/bench_workload.h"

#include "perf/bench_driver.h"

#include "core/assert.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- command line ----------------------------------------------------------------------- */

static const char bench_usage[] =
    "usage: keelbench --endpoints HOST:PORT[,HOST:PORT...] --op put|get|mixed --conns N\n"
    "                 --depth N --keys N --key-size B --value-size B --duration S\n"
    "                 (or --requests N) [options]\n"
    "  --system S         keel (default), etcd or zookeeper: the driver\n"
    "  --endpoints LIST   servers, numeric IPv4 (connection i prefers entry i % count)\n"
    "  --op OP            put, get, mixed, or load (write every key once, measured)\n"
    "  --conns N          connections (default 1)\n"
    "  --depth N          outstanding requests per connection (default 1)\n"
    "  --keys N           distinct keys (default 10000)\n"
    "  --dist D           uniform (default) or zipfian: how a request picks its key\n"
    "  --zipf-theta F     zipfian skew in (0, 1) (default 0.99)\n"
    "  --serializable     gets are serializable (default linearizable)\n"
    "  --rate R           fixed rate: R requests/s in all (open loop; latency counts from\n"
    "                     each request's scheduled time, so queueing is measured)\n"
    "  --server-pids L    PID[,PID...]: report the CPU seconds they used in the run\n"
    "  --cdf-out FILE     write the latency distribution (percentile, ms) to FILE\n"
    "  --key-size B       bytes per key, printable (default 16)\n"
    "  --value-size B     bytes per value, random printable (default 256)\n"
    "  --duration S       measured seconds (default 10)\n"
    "  --requests N       measured requests in total, instead of --duration\n"
    "  --read-ratio F     mixed: share of gets (default 0.9)\n"
    "  --threads T        load-generator threads, connections spread over them (default 1)\n"
    "  --shard-aware      connect to every shard's port and route by key (libkeel option)\n"
    "  --seed N           seed of keys, values and mix (default 1)\n"
    "  --warmup S         seconds of unmeasured load before measuring (default 1)\n"
    "  --no-preload       get/mixed: do not put every key before measuring\n"
    "  --fsync-probe DIR  first measure raw 256-byte write+fdatasync latency in DIR (use\n"
    "                     the server's data directory) and compare put p50 with it\n"
    "  --help             this text\n"
    "The last line of output is machine-readable:\n"
    "  summary: system=S op=OP ops_s=X p50_ms=X p90_ms=X p99_ms=X p999_ms=X max_ms=X\n"
    "    errors=N [server_cpu_s=X ops_per_cpu_s=X] [rate_ops_s=X behind=N]\n"
    "    [fsync_p50_ms=X put_p50_vs_fdatasync=X]\n";

enum {
    OPT_ENDPOINTS = 256,
    OPT_SYSTEM,
    OPT_DIST,
    OPT_ZIPF_THETA,
    OPT_SERIALIZABLE,
    OPT_RATE,
    OPT_SERVER_PIDS,
    OPT_CDF_OUT,
    OPT_OP,
    OPT_CONNS,
    OPT_DEPTH,
    OPT_KEYS,
    OPT_KEY_SIZE,
    OPT_VALUE_SIZE,
    OPT_DURATION,
    OPT_REQUESTS,
    OPT_READ_RATIO,
    OPT_THREADS,
    OPT_SHARD_AWARE,
    OPT_SEED,
    OPT_WARMUP,
    OPT_NO_PRELOAD,
    OPT_FSYNC_PROBE,
    OPT_HELP,
};

static const struct option bench_options[] = {
    {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
    {"system", required_argument, NULL, OPT_SYSTEM},
    {"dist", required_argument, NULL, OPT_DIST},
    {"zipf-theta", required_argument, NULL, OPT_ZIPF_THETA},
    {"serializable", no_argument, NULL, OPT_SERIALIZABLE},
    {"rate", required_argument, NULL, OPT_RATE},
    {"server-pids", required_argument, NULL, OPT_SERVER_PIDS},
    {"cdf-out", required_argument, NULL, OPT_CDF_OUT},
    {"op", required_argument, NULL, OPT_OP},
    {"conns", required_argument, NULL, OPT_CONNS},
    {"depth", required_argument, NULL, OPT_DEPTH},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"key-size", required_argument, NULL, OPT_KEY_SIZE},
    {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"read-ratio", required_argument, NULL, OPT_READ_RATIO},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"shard-aware", no_argument, NULL, OPT_SHARD_AWARE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"no-preload", no_argument, NULL, OPT_NO_PRELOAD},
    {"fsync-probe", required_argument, NULL, OPT_FSYNC_PROBE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* An integer in [lo, hi], or 1 after an error message naming the option. */
static int parse_u64(const char *name, const char *s, u64 lo, u64 hi, u64 *out, FILE *err)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != 0 || s[0] == '-' || v < lo || v > hi) {
        fprintf(err, "keelbench: --%s %s: expected an integer in [%" PRIu64 ", %" PRIu64 "]\n",
                name, s, lo, hi);
        return 1;
    }
    *out = v;
    return 0;
}

static int parse_u32(const char *name, const char *s, u32 lo, u32 hi, u32 *out, FILE *err)
{
    u64 v = 0;
    if (parse_u64(name, s, lo, hi, &v, err) != 0) return 1;
    *out = (u32)v;
    return 0;
}

static int parse_double(const char *name, const char *s, double lo, double hi, double *out,
                        FILE *err)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != 0 || !(v >= lo && v <= hi)) {
        fprintf(err, "keelbench: --%s %s: expected a number in [%g, %g]\n", name, s, lo, hi);
        return 1;
    }
    *out = v;
    return 0;
}

static int parse_op(const char *s, enum bench_op *out, FILE *err)
{
    if (strcmp(s, "put") == 0) {
        *out = BENCH_OP_PUT;
    } else if (strcmp(s, "get") == 0) {
        *out = BENCH_OP_GET;
    } else if (strcmp(s, "mixed") == 0) {
        *out = BENCH_OP_MIXED;
    } else if (strcmp(s, "load") == 0) {
        *out = BENCH_OP_LOAD;
    } else {
        fprintf(err, "keelbench: --op %s: expected put, get, mixed or load\n", s);
        return 1;
    }
    return 0;
}

static int parse_system(const char *s, const char **out, FILE *err)
{
    if (strcmp(s, "zk") == 0) s = "zookeeper";
    if (strcmp(s, "keel") != 0 && strcmp(s, "etcd") != 0 && strcmp(s, "zookeeper") != 0) {
        fprintf(err, "keelbench: --system %s: expected keel, etcd or zookeeper\n", s);
        return 1;
    }
    *out = s;
    return 0;
}

static int parse_dist(const char *s, enum bench_dist *out, FILE *err)
{
    if (strcmp(s, "uniform") == 0) {
        *out = BENCH_DIST_UNIFORM;
    } else if (strcmp(s, "zipfian") == 0) {
        *out = BENCH_DIST_ZIPFIAN;
    } else {
        fprintf(err, "keelbench: --dist %s: expected uniform or zipfian\n", s);
        return 1;
    }
    return 0;
}

/* "PID[,PID...]", each a positive integer. */
static int parse_pids(const char *s, FILE *err)
{
    const char *p = s;
    for (;;) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno != 0 || end == p || v <= 0 || (*end != ',' && *end != 0)) {
            fprintf(err, "keelbench: --server-pids %s: expected PID[,PID...]\n", s);
            return 1;
        }
        if (*end == 0) return 0;
        p = end + 1;
    }
}

static void config_defaults(struct bench_config *c)
{
    memset(c, 0, sizeof(*c));
    c->system = "keel";
    c->zipf_theta = 0.99;
    c->op = BENCH_OP_PUT;
    c->conns = 1;
    c->depth = 1;
    c->threads = 1;
    c->keys = 10000;
    c->key_size_bytes = 16;
    c->value_size_bytes = 256;
    c->read_ratio = 0.9;
    c->duration_s = 10.0;
    c->warmup_s = 1.0;
    c->seed = 1;
    c->preload = true;
}

/* One option; 0 parsed, 1 error printed, 2 help printed. */
static int parse_one(struct bench_config *c, int opt, const char *arg, bool *duration_given,
                     FILE *out, FILE *err)
{
    switch (opt) {
    case OPT_ENDPOINTS:
        c->endpoints = arg;
        return 0;
    case OPT_SYSTEM:
        return parse_system(arg, &c->system, err);
    case OPT_DIST:
        return parse_dist(arg, &c->dist, err);
    case OPT_ZIPF_THETA:
        return parse_double("zipf-theta", arg, 0.01, 0.999, &c->zipf_theta, err);
    case OPT_SERIALIZABLE:
        c->serializable = true;
        return 0;
    case OPT_RATE:
        return parse_double("rate", arg, 1.0, 1e9, &c->rate_ops_s, err);
    case OPT_SERVER_PIDS:
        c->server_pids = arg;
        return parse_pids(arg, err);
    case OPT_CDF_OUT:
        c->cdf_out = arg;
        return 0;
    case OPT_OP:
        return parse_op(arg, &c->op, err);
    case OPT_CONNS:
        return parse_u32("conns", arg, 1, BENCH_CONNS_MAX, &c->conns, err);
    case OPT_DEPTH:
        return parse_u32("depth", arg, 1, BENCH_DEPTH_MAX, &c->depth, err);
    case OPT_KEYS:
        return parse_u64("keys", arg, 1, UINT64_MAX, &c->keys, err);
    case OPT_KEY_SIZE:
        return parse_u32("key-size", arg, 1, BENCH_KEY_SIZE_MAX, &c->key_size_bytes, err);
    case OPT_VALUE_SIZE:
        return parse_u32("value-size", arg, 0, BENCH_VALUE_SIZE_MAX, &c->value_size_bytes, err);
    case OPT_DURATION:
        *duration_given = true;
        return parse_double("duration", arg, 0.001, 1e7, &c->duration_s, err);
    case OPT_REQUESTS:
        return parse_u64("requests", arg, 1, UINT64_MAX / 2, &c->requests, err);
    case OPT_READ_RATIO:
        return parse_double("read-ratio", arg, 0.0, 1.0, &c->read_ratio, err);
    case OPT_THREADS:
        return parse_u32("threads", arg, 1, BENCH_THREADS_MAX, &c->threads, err);
    case OPT_SHARD_AWARE:
        c->shard_aware = true;
        return 0;
    case OPT_SEED:
        return parse_u64("seed", arg, 0, UINT64_MAX, &c->seed, err);
    case OPT_WARMUP:
        return parse_double("warmup", arg, 0.0, 1e7, &c->warmup_s, err);
    case OPT_NO_PRELOAD:
        c->preload = false;
        return 0;
    case OPT_FSYNC_PROBE:
        c->fsync_probe_dir = arg;
        return 0;
    case OPT_HELP:
        fputs(bench_usage, out);
        return 2;
    default:
        fputs(bench_usage, err);
        return 1;
    }
}

/* Cross-option checks after parsing; 0 or 1 after an error message. */
static int config_check(const struct bench_config *c, bool duration_given, FILE *err)
{
    if (c->endpoints == NULL || c->endpoints[0] == 0) {
        fprintf(err, "keelbench: --endpoints HOST:PORT[,HOST:PORT...] is required "
                     "(keelbench --help)\n");
        return 1;
    }
    if (duration_given && c->requests > 0) {
        fprintf(err, "keelbench: give --duration or --requests, not both\n");
        return 1;
    }
    if (c->threads > c->conns) {
        fprintf(err,
                "keelbench: --threads %u exceeds --conns %u (each thread needs a "
                "connection)\n",
                c->threads, c->conns);
        return 1;
    }
    if (bench_key_digits(c) == 0) {
        fprintf(err,
                "keelbench: --key-size %u is too small for --keys %" PRIu64
                " (each key holds its index in hex)\n",
                c->key_size_bytes, c->keys);
        return 1;
    }
    return 0;
}

int bench_config_parse(struct bench_config *c, int argc, char **argv, FILE *out, FILE *err)
{
    ASSERT(c != NULL && argv != NULL);
    config_defaults(c);
    bool duration_given = false;
    int opt;
    opterr = 1;
    while ((opt = getopt_long(argc, argv, "", bench_options, NULL)) != -1) {
        int rc = parse_one(c, opt, optarg, &duration_given, out, err);
        if (rc != 0) return rc;
    }
    if (optind < argc) {
        fprintf(err, "keelbench: unexpected argument '%s' (keelbench --help)\n", argv[optind]);
        return 1;
    }
    return config_check(c, duration_given, err);
}

const char *bench_op_name(enum bench_op op)
{
    switch (op) {
    case BENCH_OP_PUT:
        return "put";
    case BENCH_OP_GET:
        return "get";
    case BENCH_OP_MIXED:
        return "mixed";
    case BENCH_OP_LOAD:
        return "load";
    }
    UNREACHABLE();
}

void bench_config_print(const struct bench_config *c, FILE *out)
{
    char run[64];
    if (c->requests > 0)
        snprintf(run, sizeof(run), "requests=%" PRIu64, c->requests);
    else
        snprintf(run, sizeof(run), "duration_s=%g", c->duration_s);
    fprintf(out,
            "keelbench: system=%s endpoints=%s op=%s conns=%u depth=%u threads=%u keys=%" PRIu64
            " key_size=%u value_size=%u dist=%s",
            c->system, c->endpoints, bench_op_name(c->op), c->conns, c->depth, c->threads, c->keys,
            c->key_size_bytes, c->value_size_bytes,
            c->dist == BENCH_DIST_ZIPFIAN ? "zipfian" : "uniform");
    if (c->dist == BENCH_DIST_ZIPFIAN) fprintf(out, " zipf_theta=%g", c->zipf_theta);
    if (c->op == BENCH_OP_MIXED) fprintf(out, " read_ratio=%g", c->read_ratio);
    if (c->op == BENCH_OP_GET || c->op == BENCH_OP_MIXED)
        fprintf(out, " reads=%s",
                strcmp(c->system, "zookeeper") == 0 ? "sequential" /* zoo_aget: its own */
                : c->serializable                   ? "serializable"
                                                    : "linearizable");
    if (c->rate_ops_s > 0) fprintf(out, " rate_ops_s=%g", c->rate_ops_s);
    fprintf(out, " %s warmup_s=%g seed=%" PRIu64 " shard_aware=%s preload=%s\n", run, c->warmup_s,
            c->seed, c->shard_aware ? "yes" : "no",
            c->op != BENCH_OP_LOAD && c->preload ? "yes" : "no");
}

/* ---- generator -------------------------------------------------------------------------- */

void bench_rng_init(struct bench_rng *r, u64 seed, u64 stream)
{
    ASSERT(r != NULL);
    r->state = seed ^ (stream * 0xD1B54A32D192ED03ull);
    (void)bench_rng_next(r);
}

u64 bench_rng_next(struct bench_rng *r)
{
    u64 z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

u64 bench_rng_below(struct bench_rng *r, u64 bound)
{
    ASSERT(bound > 0);
    u64 v = (u64)(((unsigned __int128)bench_rng_next(r) * bound) >> 64);
    ASSERT(v < bound);
    return v;
}

double bench_rng_unit(struct bench_rng *r)
{
    return (double)(bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- keys, values, mix ------------------------------------------------------------------ */

u32 bench_key_digits(const struct bench_config *c)
{
    u32 digits =
        c->key_size_bytes < BENCH_HEX_DIGITS_MAX ? c->key_size_bytes : BENCH_HEX_DIGITS_MAX;
    if (digits < BENCH_HEX_DIGITS_MAX && c->keys > ((u64)1 << (4 * digits))) return 0;
    return digits;
}

/* A bijection of [0, 2^bits): odd multiplications and xor-shifts, each invertible. */
static u64 key_permute(u64 x, u32 bits)
{
    u64 mask = bits >= 64 ? UINT64_MAX : ((u64)1 << bits) - 1;
    u32 shift = bits / 2 > 0 ? bits / 2 : 1;
    x = (x * 0x9E3779B97F4A7C15ull) & mask;
    x ^= x >> shift;
    x = (x * 0xBF58476D1CE4E5B9ull) & mask;
    x ^= x >> shift;
    ASSERT(x <= mask);
    return x;
}

void bench_key(const struct bench_config *c, u64 index, char *dst)
{
    ASSERT(index < c->keys);
    u32 digits = bench_key_digits(c);
    ASSERT(digits >= 1);
    u64 v = key_permute(index, 4 * digits);
    for (u32 i = digits; i > 0; i--) {
        dst[i - 1] = "0123456789abcdef"[v & 15];
        v >>= 4;
    }
    memset(dst + digits, '.', c->key_size_bytes - digits);
}

void bench_fill_printable(struct bench_rng *r, char *pool, size_t len)
{
    for (size_t i = 0; i < len; i++) pool[i] = (char)(0x21 + bench_rng_below(r, 0x5e));
}

enum bench_kind bench_next_kind(const struct bench_config *c, struct bench_rng *r)
{
    switch (c->op) {
    case BENCH_OP_PUT:
    case BENCH_OP_LOAD:
        return BENCH_KIND_PUT;
    case BENCH_OP_GET:
        return BENCH_KIND_GET;
    case BENCH_OP_MIXED:
        return bench_rng_unit(r) < c->read_ratio ? BENCH_KIND_GET : BENCH_KIND_PUT;
    }
    UNREACHABLE();
}

/* ---- zipfian ---------------------------------------------------------------------------- */

/* Gray et al., "Quickly generating billion-record synthetic databases" (SIGMOD 1994), as
 * YCSB uses it: zeta(n) is summed once at init (O(n)), each draw is O(1). */
void bench_zipf_init(struct bench_zipf *z, u64 n, double theta)
{
    ASSERT(z != NULL && n >= 1 && theta > 0.0 && theta < 1.0);
    double zetan = 0.0;
    for (u64 i = 1; i <= n; i++) zetan += 1.0 / pow((double)i, theta);
    double zeta2 = 1.0 + 1.0 / pow(2.0, theta);
    z->n = n;
    z->theta = theta;
    z->zetan = zetan;
    z->alpha = 1.0 / (1.0 - theta);
    z->half_pow_theta = 1.0 + pow(0.5, theta);
    z->eta = (1.0 - pow(2.0 / (double)n, 1.0 - theta)) / (1.0 - zeta2 / zetan);
}

u64 bench_zipf_next(const struct bench_zipf *z, struct bench_rng *r)
{
    double u = bench_rng_unit(r);
    double uz = u * z->zetan;
    if (uz < 1.0) return 0;
    if (uz < z->half_pow_theta || z->n < 3) return z->n > 1 ? 1 : 0;
    u64 v = (u64)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
    return v < z->n ? v : z->n - 1;
}

u64 bench_next_index(const struct bench_config *c, const struct bench_zipf *z, struct bench_rng *r)
{
    if (c->dist == BENCH_DIST_ZIPFIAN) {
        ASSERT(z != NULL && z->n == c->keys);
        return bench_zipf_next(z, r);
    }
    return bench_rng_below(r, c->keys);
}

/* ---- report ----------------------------------------------------------------------------- */

static double ns_to_ms(u64 ns)
{
    return (double)ns / 1e6;
}

void bench_progress_print(FILE *out, double elapsed_s, u64 ops, double ops_s)
{
    fprintf(out, "\r%7.1f s  %12" PRIu64 " ops  %10.0f ops/s ", elapsed_s, ops, ops_s);
    fflush(out);
}

void bench_fsync_print(FILE *out, const struct bench_hist *fsync, const char *dir)
{
    fprintf(out,
            "fdatasync probe (256 B write + fdatasync, %" PRIu64 " samples in %s): "
            "p50 %.3f ms  p99 %.3f ms  max %.3f ms\n",
            fsync->count, dir, ns_to_ms(bench_hist_percentile(fsync, 50.0)),
            ns_to_ms(bench_hist_percentile(fsync, 99.0)), ns_to_ms(fsync->max));
}

static void latency_print(FILE *out, const char *what, const struct bench_hist *h)
{
    fprintf(out,
            "latency %-5s (ms, %" PRIu64 " samples): p50 %.3f  p90 %.3f  p99 %.3f  "
            "p99.9 %.3f  max %.3f  mean %.3f\n",
            what, h->count, ns_to_ms(bench_hist_percentile(h, 50.0)),
            ns_to_ms(bench_hist_percentile(h, 90.0)), ns_to_ms(bench_hist_percentile(h, 99.0)),
            ns_to_ms(bench_hist_percentile(h, 99.9)), ns_to_ms(h->max), bench_hist_mean(h) / 1e6);
}

/* " fsync_p50_ms=X put_p50_vs_fdatasync=X" (n/a without measured puts), after the line
 * "put_p50_vs_fdatasync=X". */
static void fsync_compare_print(const struct bench_result *r, FILE *out, bool summary)
{
    double fsync_ms = ns_to_ms(bench_hist_percentile(r->fsync, 50.0));
    const struct bench_hist *put = r->hist[BENCH_KIND_PUT];
    char ratio[32] = "n/a";
    if (put->count > 0 && fsync_ms > 0)
        snprintf(ratio, sizeof(ratio), "%.2f",
                 ns_to_ms(bench_hist_percentile(put, 50.0)) / fsync_ms);
    if (summary)
        fprintf(out, " fsync_p50_ms=%.3f put_p50_vs_fdatasync=%s", fsync_ms, ratio);
    else
        fprintf(out, "put_p50_vs_fdatasync=%s\n", ratio);
}

static double report_ops_s(const struct bench_result *r)
{
    return r->elapsed_s > 0 ? (double)r->ops / r->elapsed_s : 0.0;
}

void bench_report_ops(const struct bench_result *r, FILE *out)
{
    ASSERT(r != NULL);
    fprintf(out, "ops: %" PRIu64 " in %.3f s = %.0f ops/s\n", r->ops, r->elapsed_s,
            report_ops_s(r));
    fprintf(out, "errors: %" PRIu64 "\n", r->errors);
}

void bench_report_latency(const struct bench_config *c, const struct bench_result *r, FILE *out)
{
    ASSERT(c != NULL && r != NULL && r->all != NULL);
    ASSERT(r->all->count == r->hist[BENCH_KIND_PUT]->count + r->hist[BENCH_KIND_GET]->count);
    if (c->op == BENCH_OP_MIXED) {
        latency_print(out, "get", r->hist[BENCH_KIND_GET]);
        latency_print(out, "put", r->hist[BENCH_KIND_PUT]);
    }
    latency_print(out, bench_op_name(c->op), r->all);
    if (r->fsync != NULL) fsync_compare_print(r, out, false);
    if (c->rate_ops_s > 0)
        fprintf(out,
                "fixed rate %g/s: %.0f/s achieved; %" PRIu64
                " requests of the schedule were never sent (all slots busy: behind)\n",
                c->rate_ops_s, report_ops_s(r), r->behind);
    if (r->server_cpu_s >= 0)
        fprintf(out, "server CPU: %.2f s (%s), %.0f ops per CPU second\n", r->server_cpu_s,
                c->server_pids, r->server_cpu_s > 0 ? (double)r->ops / r->server_cpu_s : 0.0);
    fprintf(out,
            "summary: system=%s op=%s ops_s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f "
            "p999_ms=%.3f max_ms=%.3f errors=%" PRIu64,
            c->system, bench_op_name(c->op), report_ops_s(r),
            ns_to_ms(bench_hist_percentile(r->all, 50.0)),
            ns_to_ms(bench_hist_percentile(r->all, 90.0)),
            ns_to_ms(bench_hist_percentile(r->all, 99.0)),
            ns_to_ms(bench_hist_percentile(r->all, 99.9)), ns_to_ms(r->all->max), r->errors);
    if (r->server_cpu_s >= 0)
        fprintf(out, " server_cpu_s=%.2f ops_per_cpu_s=%.0f", r->server_cpu_s,
                r->server_cpu_s > 0 ? (double)r->ops / r->server_cpu_s : 0.0);
    if (c->rate_ops_s > 0) fprintf(out, " rate_ops_s=%g behind=%" PRIu64, c->rate_ops_s, r->behind);
    if (r->fsync != NULL) fsync_compare_print(r, out, true);
    fputc('\n', out);
    fflush(out);
}

/* ---- endpoints -------------------------------------------------------------------------- */

int bench_endpoint(const char *endpoints, u32 i, char *host, size_t host_len, u16 *port)
{
    ASSERT(endpoints != NULL && host != NULL && host_len > 0 && port != NULL);
    u32 count = 1;
    for (const char *p = endpoints; *p != 0; p++) count += *p == ',';
    const char *start = endpoints;
    for (u32 k = 0; k < i % count; k++) start = strchr(start, ',') + 1;
    const char *end = strchr(start, ',');
    size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
    const char *colon = memchr(start, ':', len);
    if (colon == NULL || (size_t)(colon - start) >= host_len || colon == start) return -1;
    size_t host_bytes = (size_t)(colon - start);
    memcpy(host, start, host_bytes);
    host[host_bytes] = 0;
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) return -1;
    u64 v = 0;
    const char *p = colon + 1;
    if (p == start + len) return -1;
    for (; p < start + len; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (u64)(*p - '0');
        if (v > 65535) return -1;
    }
    if (v == 0) return -1;
    *port = (u16)v;
    return 0;
}
