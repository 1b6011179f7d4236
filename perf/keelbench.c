/*
 * keelbench.c — the load generator of keel, etcd and ZooKeeper: main.
 *
 *   keelbench [--system keel|etcd|zookeeper] --endpoints HOST:PORT[,HOST:PORT...]
 *             --op put|get|mixed|load --conns N --depth N --keys N --key-size B
 *             --value-size B --duration S   (or --requests N)   [--rate R] ...
 *
 * One workload model for every system (bench_workload.h), run by one engine
 * (bench_engine.h) through a driver per system (bench_driver.h): drv_keel.c (libkeel),
 * drv_etcd.c (etcd's gRPC API over HTTP/2) and drv_zk.c (ZooKeeper's C client). The
 * etcd and ZooKeeper drivers are built when their libraries are installed (libnghttp2-dev,
 * libzookeeper-mt-dev); without them --system says what to install.
 *
 * Output: the settings line; a progress line per second on a terminal; ops/s, errors
 * (one line per distinct status, named by the driver), driver lines, latency percentiles
 * in ms, server CPU with --server-pids; the last line is machine-readable:
 * "summary: system=... op=... ops_s=... p50_ms=... p90_ms=... p99_ms=... p999_ms=...
 * max_ms=... errors=N [server_cpu_s=... ops_per_cpu_s=...] [fsync_p50_ms=...
 * put_p50_vs_fdatasync=...]". Exit 0 when the run measured successful requests, 1
 * otherwise or on a setup error.
 */
#include "perf/bench_driver.h"
#include "perf/bench_engine.h"
#include "perf/bench_workload.h"

#include <stdio.h>
#include <string.h>

static const struct bench_driver *kb_driver(const char *system)
{
    if (strcmp(system, "keel") == 0) return &bench_driver_keel;
#ifdef KEELBENCH_HAVE_ETCD
    if (strcmp(system, "etcd") == 0) return &bench_driver_etcd;
#else
    if (strcmp(system, "etcd") == 0) {
        fprintf(stderr, "keelbench: built without the etcd driver: apt-get install "
                        "libnghttp2-dev, then rebuild\n");
        return NULL;
    }
#endif
#ifdef KEELBENCH_HAVE_ZK
    if (strcmp(system, "zookeeper") == 0) return &bench_driver_zk;
#else
    if (strcmp(system, "zookeeper") == 0) {
        fprintf(stderr, "keelbench: built without the ZooKeeper driver: apt-get install "
                        "libzookeeper-mt-dev, then rebuild\n");
        return NULL;
    }
#endif
    return NULL;
}

int main(int argc, char **argv)
{
    static struct bench_config cfg;
    int rc = bench_config_parse(&cfg, argc, argv, stdout, stderr);
    if (rc != 0) return rc == 2 ? 0 : 1;
    const struct bench_driver *drv = kb_driver(cfg.system);
    if (drv == NULL) return 1;
    bench_config_print(&cfg, stdout);
    fflush(stdout);
    return bench_engine_run(&cfg, drv);
}
