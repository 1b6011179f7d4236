/*
 * keeld_proc.c — spawn, wait for and stop a keeld (keeld_proc.h).
 */
#include "keeld_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef KEEL_BIN_DIR
#error "KEEL_BIN_DIR must name the directory holding keeld"
#endif

#define START_TRIES_MAX 8
#define PORT_TRIES_MAX  64

int64_t keeld_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void keeld_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Binds 127.0.0.1:port (0 = any) and returns the bound port, or 0 if it is taken. */
static uint16_t port_probe(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    uint16_t got = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        got = ntohs(a.sin_port);
    close(fd);
    return got;
}

/* Ports below the kernel's ephemeral range (ip_local_port_range), so that no outgoing
 * connection (a client's, or a peer dial of another keeld) can take a port a stopped keeld
 * will bind again on restart. */
static void port_window(uint32_t *lo, uint32_t *hi)
{
    unsigned a = 32768, b = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%u %u", &a, &b) != 2) a = 32768;
        fclose(f);
    }
    *lo = 10000;
    *hi = a > 10000 + 1000 ? a - 100 : 0;
    if (*hi == 0) { /* the ephemeral range starts low: use the ports above it */
        *lo = b + 1 < 64000 ? b + 1 : 64000;
        *hi = 65400;
    }
}

uint16_t keeld_port_range_pick(uint32_t shards)
{
    static uint64_t seed;
    if (seed == 0) seed = (uint64_t)keeld_now_ms() * 2654435761u ^ (uint64_t)getpid() << 20;
    uint32_t lo = 0, hi = 0;
    port_window(&lo, &hi);
    for (int t = 0; t < PORT_TRIES_MAX * 8; t++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t span = hi - lo > shards + 1 ? hi - lo - shards - 1 : 1;
        uint16_t p = (uint16_t)(lo + (uint32_t)(seed >> 33) % span);
        bool ok = true;
        for (uint32_t i = 0; i <= shards && ok; i++) ok = port_probe((uint16_t)(p + i)) != 0;
        if (ok) return p;
    }
    return 0;
}

int keeld_tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool keeld_alive(struct keeld_proc *p)
{
    if (p->pid <= 0) return false;
    int st = 0;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        fprintf(stderr, "keeld_proc: keeld %d exited (status 0x%x)\n", (int)p->pid, st);
        p->pid = 0;
        return false;
    }
    return r == 0;
}

static pid_t spawn(struct keeld_proc *p)
{
    char bin[512], listen[48], shards[16];
    snprintf(bin, sizeof(bin), "%s/keeld", KEEL_BIN_DIR);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", (unsigned)p->port);
    snprintf(shards, sizeof(shards), "%u", (unsigned)p->shards);
    const char *argv[8 + KEELD_EXTRA_ARGS_MAX + 1] = {
        bin, "--data-dir", p->data_dir, "--listen-client", listen, "--shards", shards, "--quiet"};
    int n = p->log_path[0] ? 7 : 8; /* a log file gets the log lines */
    for (int i = 0; i < KEELD_EXTRA_ARGS_MAX && p->extra_args[i]; i++) argv[n++] = p->extra_args[i];
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (p->log_path[0]) {
        int fd = open(p->log_path, O_CREAT | O_APPEND | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0) dup2(fd, 2);
    }
    execv(bin, (char *const *)argv);
    fprintf(stderr, "keeld_proc: cannot exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

/* Sends a HELLO on port and waits (up to deadline) for its reply: keeld listens before its
 * recovery ends, so an accepting port is not yet a serving one. True on an OK reply. */
static bool hello_ok(uint16_t port, int64_t deadline_ms)
{
    static const uint8_t hello[30] = {26, 0,   0,   0,   1,   0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
                                      0,  'K', 'E', 'E', 'L', 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    int fd = keeld_tcp_connect(port);
    if (fd < 0) return false;
    bool ok = send(fd, hello, sizeof(hello), MSG_NOSIGNAL) == (ssize_t)sizeof(hello);
    uint8_t reply[18]; /* length, opcode, flags, request id, status */
    size_t got = 0;
    while (ok && got < sizeof(reply)) {
        int64_t left_ms = deadline_ms - keeld_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left_ms <= 0 || poll(&pfd, 1, (int)left_ms) <= 0) break;
        ssize_t n = recv(fd, reply + got, sizeof(reply) - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    /* opcode HELLO (1), request id 1, status OK (0) */
    return got == sizeof(reply) && reply[4] == 1 && reply[5] == 0 && reply[8] == 1 &&
           reply[16] == 0 && reply[17] == 0;
}

/* Waits until every port of p answers a HELLO; false if keeld exited or the wait timed out. */
static bool wait_ready(struct keeld_proc *p)
{
    int64_t deadline = keeld_now_ms() + KEELD_READY_MS;
    uint32_t ready = 0; /* ports 0 .. ready-1 answered */
    while (keeld_now_ms() < deadline) {
        if (!keeld_alive(p)) return false;
        if (hello_ok((uint16_t)(p->port + ready), deadline)) {
            if (++ready > p->shards) return true;
            continue;
        }
        keeld_sleep_ms(20);
    }
    fprintf(stderr, "keeld_proc: keeld not ready after %d ms\n", KEELD_READY_MS);
    return false;
}

int keeld_start(struct keeld_proc *p)
{
    if (p->shards == 0) p->shards = 1;
    if (p->data_dir[0] == 0) {
        snprintf(p->data_dir, sizeof(p->data_dir), "/tmp/keel-itest-XXXXXX");
        if (!mkdtemp(p->data_dir)) {
            fprintf(stderr, "keeld_proc: mkdtemp: %s\n", strerror(errno));
            p->data_dir[0] = 0;
            return -1;
        }
    }
    for (int t = 0; t < START_TRIES_MAX; t++) {
        /* A restart on the same ports first, when asked (a cluster's clients know them). */
        if (!(p->keep_port && p->port != 0 && t == 0)) p->port = keeld_port_range_pick(p->shards);
        if (p->port == 0) continue;
        snprintf(p->endpoint, sizeof(p->endpoint), "127.0.0.1:%u", (unsigned)p->port);
        p->pid = spawn(p);
        if (p->pid < 0) {
            p->pid = 0;
            return -1;
        }
        if (wait_ready(p)) return 0;
        if (p->pid > 0) { /* alive but not ready in time: a hung server is not retried */
            keeld_stop(p);
            break;
        }
        keeld_sleep_ms(50); /* it exited (likely a port taken meanwhile): a new range */
    }
    fprintf(stderr, "keeld_proc: keeld did not start (data dir %s)\n", p->data_dir);
    return -1;
}

int keeld_stop(struct keeld_proc *p)
{
    if (p->pid <= 0) return -1;
    kill(p->pid, SIGTERM);
    int64_t deadline = keeld_now_ms() + KEELD_STOP_MS;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) break;
        if (r < 0) {
            p->pid = 0;
            return -1;
        }
        if (keeld_now_ms() >= deadline) {
            fprintf(stderr, "keeld_proc: keeld %d ignored SIGTERM for %d ms: SIGKILL\n",
                    (int)p->pid, KEELD_STOP_MS);
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            break;
        }
        keeld_sleep_ms(10);
    }
    p->pid = 0;
    return st;
}

bool keeld_exited_cleanly(int wait_status)
{
    return wait_status >= 0 && WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void keeld_cleanup(struct keeld_proc *p)
{
    if (p->pid > 0) keeld_stop(p);
    if (p->data_dir[0] != 0) nftw(p->data_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    p->data_dir[0] = 0;
}

long keeld_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    fclose(f);
    return kib;
}
