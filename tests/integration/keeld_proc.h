/*
 * keeld_proc.h — start and stop a real keeld for an integration test.
 *
 * Contract:
 *  - keeld_start picks a free loopback port range (PORT from a bind to 127.0.0.1:0, then
 *    PORT+1 .. PORT+shards checked free too), makes a data dir with mkdtemp (unless the
 *    struct already names one: a restart on the same data), spawns
 *    KEEL_BIN_DIR/keeld --quiet and waits until the router port and every shard port answer
 *    a HELLO (at most KEELD_READY_MS; keeld listens before its recovery ends). The port
 *    range is raced with other processes, so a keeld that exits during start-up is retried
 *    on a new range.
 *  - The child gets PR_SET_PDEATHSIG(SIGKILL): a test process that crashes does not leave
 *    a keeld behind.
 *  - keeld_stop sends SIGTERM, waits for the exit (SIGKILL after KEELD_STOP_MS) and returns
 *    the wait status; the data dir stays. keeld_cleanup removes the data dir.
 *  - Errors are returned as -1 with a message on stderr; callers assert on them.
 */
#ifndef KEEL_TESTS_INTEGRATION_KEELD_PROC_H
#define KEEL_TESTS_INTEGRATION_KEELD_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define KEELD_READY_MS       10000
#define KEELD_STOP_MS        10000
#define KEELD_EXTRA_ARGS_MAX 16

struct keeld_proc {
    pid_t pid;          /* 0 when not running */
    uint16_t port;      /* router (client) port; shard i listens on port + 1 + i */
    uint32_t shards;    /* --shards */
    char data_dir[256]; /* empty: keeld_start makes one */
    char endpoint[32];  /* "127.0.0.1:PORT" */
    const char *extra_args[KEELD_EXTRA_ARGS_MAX]; /* more flags for keeld, NULL-terminated */
    char log_path[256]; /* empty: --quiet; else keeld's log lines are appended there */
    bool keep_port;     /* a restart tries the same client port first */
};

/* Starts keeld with p->shards shards on p->data_dir (made when empty). 0 or -1. */
int keeld_start(struct keeld_proc *p);
/* SIGTERM, wait (SIGKILL after KEELD_STOP_MS); the wait status, or -1. */
int keeld_stop(struct keeld_proc *p);
/* True when the stop status is a clean exit 0 (not killed, no sanitizer exit code). */
bool keeld_exited_cleanly(int wait_status);
/* Removes p->data_dir and everything in it. */
void keeld_cleanup(struct keeld_proc *p);
/* True while the keeld process is alive (not exited, not a zombie we reaped). */
bool keeld_alive(struct keeld_proc *p);
/* Resident set of a pid in KiB (VmRSS of /proc/pid/status), or -1. */
long keeld_rss_kib(pid_t pid);
/* A port P with P .. P + shards all free on 127.0.0.1 right now; 0 if none was found. */
uint16_t keeld_port_range_pick(uint32_t shards);

/* A TCP connection to 127.0.0.1:port (blocking), or -1. */
int keeld_tcp_connect(uint16_t port);
/* Milliseconds of a monotonic clock. */
int64_t keeld_now_ms(void);
/* Sleeps ms milliseconds. */
void keeld_sleep_ms(int ms);

#endif
