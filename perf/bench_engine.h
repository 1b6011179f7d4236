/*
 * bench_engine.h — keelbench's engine: runs the workload of bench_workload.h against one
 * system through its driver (bench_driver.h) and prints the report.
 *
 * Contract:
 *  - Threads: c->threads load-generator threads; thread t owns the connections i with
 *    i % threads == t, opens them itself (driver->open) and is the only one to touch them.
 *    The main thread only waits, prints the progress line and reads /proc.
 *  - Phases: open (every connection; a failure exits 1 before any load), preload (every
 *    key written once with BENCH_REQ_LOAD, each thread its slice of the key space, up to
 *    BENCH_PRELOAD_DEPTH in flight per connection; skipped with --no-preload; for
 *    --op load it IS the measured run, at --depth), warmup (warmup_s of load, not
 *    measured), the measured run (duration_s, or requests in total), then a drain of what
 *    is in flight (measured, at most BENCH_DRAIN_TIMEOUT_S; what is left then is closed and
 *    counted as errors).
 *  - Closed loop (default): every connection keeps depth requests in flight; a completed
 *    request is replaced at once. Latency runs from just before submit to the driver's
 *    done_ns.
 *  - Fixed rate (--rate R, open loop): thread t sends R * (its connections / conns)
 *    requests per second on a fixed schedule, round-robin over its connections, with at
 *    most depth in flight per connection. A request's latency runs from its SCHEDULED
 *    time, so a request that waited for a free slot (the system fell behind) counts its
 *    wait: coordinated omission is corrected. A request is measured when its scheduled
 *    time falls after the warmup. ops/s is then the rate achieved. A system that fell
 *    behind gets one more duration (at least BENCH_RATE_GRACE_MIN_S) to take what the
 *    schedule still owes (sent late, measured from the scheduled time); what is still
 *    unsent then is reported as "behind" (summary: behind=N), so a system that cannot keep
 *    the rate stretches the run by one duration at most. Requests of the warmup's schedule
 *    still unsent when the warmup ends are dropped (never measured; sending them first
 *    would keep a slow system from reaching the measured schedule).
 *  - Server CPU (--server-pids): utime + stime of each pid from /proc/PID/stat, read at the
 *    end of the warmup and after the drain; their sum over the pids is reported with ops
 *    per CPU second.
 *  - --cdf-out FILE: the merged latency distribution as "percentile latency_ms" lines,
 *    percentiles 0 .. 99.999 on a log scale of 1 - p, then 100 (max).
 *  - Return: 0 when the run measured successful requests, 1 otherwise or on a setup error
 *    (after a message to stderr).
 */
#ifndef KEEL_PERF_BENCH_ENGINE_H
#define KEEL_PERF_BENCH_ENGINE_H

#include "perf/bench_driver.h"
#include "perf/bench_workload.h"

#define BENCH_DRAIN_TIMEOUT_S  10u     /* wait for in-flight requests after the run */
#define BENCH_POLL_MAX_US      100000u /* a blocked thread rechecks its deadline this often */
#define BENCH_RATE_GRACE_MIN_S 1u      /* fixed rate: the least extra time for a late schedule */

int bench_engine_run(const struct bench_config *c, const struct bench_driver *drv);

/* The CPU seconds (utime + stime) of the comma-separated pids, summed; < 0 when one cannot
 * be read. */
double bench_pids_cpu_s(const char *pids);

/* Writes h's distribution to path as "percentile latency_ms" lines; 0, or -1 with errno. */
int bench_cdf_write(const struct bench_hist *h, const char *path);

#endif
