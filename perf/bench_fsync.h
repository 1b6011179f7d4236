/*
 * bench_fsync.h — the raw fdatasync probe of keel's load generators (--fsync-probe DIR).
 *
 * What it measures: the latency of the cheapest durable write a WAL can make on DIR's
 * file system: 256 bytes written in place into an already written and synced file (as
 * keel's WAL writes into preallocated segments), then fdatasync. Up to
 * BENCH_FSYNC_SAMPLES_MAX samples or BENCH_FSYNC_TIME_MAX_S seconds, whichever comes
 * first, each into the caller's histogram in nanoseconds. The probe file
 * (DIR/.keelbench-fsync-probe.<pid>) is removed afterwards, also on error.
 *
 * A put acknowledged after one fdatasync cannot beat this figure; keelbench prints the
 * ratio of its put p50 to the probe's p50.
 */
#ifndef KEEL_PERF_BENCH_FSYNC_H
#define KEEL_PERF_BENCH_FSYNC_H

#include "perf/bench_stats.h"

#include <stddef.h>

#define BENCH_FSYNC_SAMPLES_MAX 2000u
#define BENCH_FSYNC_TIME_MAX_S  2u
#define BENCH_FSYNC_WRITE_BYTES 256u

/* Runs the probe in dir, recording into h (initialized by the caller). 0, or -1 with a
 * message naming the file and the failed call in err. */
int bench_fsync_probe(const char *dir, struct bench_hist *h, char *err, size_t err_size);

#endif
