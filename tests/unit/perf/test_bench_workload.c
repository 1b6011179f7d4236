/*
 * test_bench_workload.c — perf/bench_workload.h: keys are distinct, exactly key_size
 * printable bytes and spread over the hex digits; the command line's checks.
 */
#include "perf/bench_workload.h"

#include <criterion/criterion.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static int parse(struct bench_config *c, int argc, const char **argv)
{
    FILE *sink = fopen("/dev/null", "w");
    cr_assert_not_null(sink);
    optind = 0; /* glibc: a full reset of getopt between parses */
    int rc = bench_config_parse(c, argc, (char **)argv, sink, sink);
    fclose(sink);
    return rc;
}

Test(bench_workload, keys_fill_a_small_space_exactly_once)
{
    /* 4 hex digits hold 65536 keys: every index maps to a distinct key. */
    struct bench_config c = {.keys = 65536, .key_size_bytes = 4};
    cr_assert_eq(bench_key_digits(&c), 4);
    u8 *seen = calloc(65536, 1);
    char key[4];
    for (u64 i = 0; i < c.keys; i++) {
        bench_key(&c, i, key);
        char hex[5] = {key[0], key[1], key[2], key[3], 0};
        unsigned long v = strtoul(hex, NULL, 16);
        cr_assert_lt(v, 65536);
        cr_assert_eq(seen[v], 0, "index %llu repeats key %s", (unsigned long long)i, hex);
        seen[v] = 1;
    }
    free(seen);
    c.keys = 65537;
    cr_assert_eq(bench_key_digits(&c), 0, "4 bytes cannot hold 65537 keys");
}

Test(bench_workload, long_keys_are_padded_and_spread)
{
    struct bench_config c = {.keys = 1000, .key_size_bytes = 40};
    char key[40];
    u32 first_digit[16] = {0};
    for (u64 i = 0; i < c.keys; i++) {
        bench_key(&c, i, key);
        for (u32 j = 0; j < 16; j++) cr_assert(strchr("0123456789abcdef", key[j]) != NULL);
        for (u32 j = 16; j < 40; j++) cr_assert_eq(key[j], '.');
        first_digit[strchr("0123456789abcdef", key[0]) - "0123456789abcdef"]++;
    }
    /* Sequential indexes do not share a prefix: every leading hex digit occurs. */
    for (u32 d = 0; d < 16; d++) cr_assert_gt(first_digit[d], 20, "digit %u", d);
}

Test(bench_workload, printable_values_and_mix)
{
    struct bench_rng r;
    bench_rng_init(&r, 7, 0);
    char pool[4096];
    bench_fill_printable(&r, pool, sizeof(pool));
    for (size_t i = 0; i < sizeof(pool); i++) cr_assert(pool[i] > 0x20 && pool[i] < 0x7f);
    struct bench_config c = {.op = BENCH_OP_MIXED, .read_ratio = 0.9};
    u32 gets = 0;
    for (u32 i = 0; i < 100000; i++) gets += bench_next_kind(&c, &r) == BENCH_KIND_GET;
    cr_assert(gets > 89000 && gets < 91000, "gets %u of 100000 at read ratio 0.9", gets);
}

Test(bench_workload, command_line)
{
    struct bench_config c;
    const char *ok[] = {"keelbench", "--endpoints", "127.0.0.1:1", "--op", "mixed",
                        "--conns",   "8",           "--depth",     "4",    "--threads",
                        "2",         "--requests",  "100"};
    cr_assert_eq(parse(&c, 13, ok), 0);
    cr_assert_eq(c.op, BENCH_OP_MIXED);
    cr_assert_eq(c.conns, 8);
    cr_assert_eq(c.depth, 4);
    cr_assert_eq(c.requests, 100);
    cr_assert_eq(c.preload, true);
    const char *no_endpoints[] = {"keelbench", "--op", "put"};
    cr_assert_eq(parse(&c, 3, no_endpoints), 1);
    const char *both[] = {"keelbench", "--endpoints", "x", "--duration", "1", "--requests", "1"};
    cr_assert_eq(parse(&c, 7, both), 1);
    const char *threads[] = {"keelbench", "--endpoints", "x", "--threads", "3"};
    cr_assert_eq(parse(&c, 5, threads), 1);
    const char *bad_op[] = {"keelbench", "--endpoints", "x", "--op", "scan"};
    cr_assert_eq(parse(&c, 5, bad_op), 1);
    const char *bad_num[] = {"keelbench", "--endpoints", "x", "--depth", "0"};
    cr_assert_eq(parse(&c, 5, bad_num), 1);
    const char *help[] = {"keelbench", "--help"};
    cr_assert_eq(parse(&c, 2, help), 2);
}

Test(bench_workload, command_line_systems_and_loops)
{
    struct bench_config c;
    const char *zk[] = {"keelbench", "--system",       "zk",     "--endpoints", "127.0.0.1:1",
                        "--dist",    "zipfian",        "--rate", "5000",        "--server-pids",
                        "1,2",       "--serializable", "--op",   "load"};
    cr_assert_eq(parse(&c, 14, zk), 0);
    cr_assert_str_eq(c.system, "zookeeper");
    cr_assert_eq(c.dist, BENCH_DIST_ZIPFIAN);
    cr_assert_float_eq(c.rate_ops_s, 5000.0, 1e-9);
    cr_assert_str_eq(c.server_pids, "1,2");
    cr_assert(c.serializable);
    cr_assert_eq(c.op, BENCH_OP_LOAD);
    const char *defaults[] = {"keelbench", "--endpoints", "127.0.0.1:1"};
    cr_assert_eq(parse(&c, 3, defaults), 0);
    cr_assert_str_eq(c.system, "keel");
    cr_assert_eq(c.dist, BENCH_DIST_UNIFORM);
    cr_assert_float_eq(c.rate_ops_s, 0.0, 1e-9);
    const char *bad_system[] = {"keelbench", "--endpoints", "x", "--system", "redis"};
    cr_assert_eq(parse(&c, 5, bad_system), 1);
    const char *bad_dist[] = {"keelbench", "--endpoints", "x", "--dist", "normal"};
    cr_assert_eq(parse(&c, 5, bad_dist), 1);
    const char *bad_pids[] = {"keelbench", "--endpoints", "x", "--server-pids", "1,x"};
    cr_assert_eq(parse(&c, 5, bad_pids), 1);
    const char *bad_rate[] = {"keelbench", "--endpoints", "x", "--rate", "0"};
    cr_assert_eq(parse(&c, 5, bad_rate), 1);
}
