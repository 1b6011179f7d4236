/*
 * keeld — keel's server: one node, one pinned shard thread per core, a local data folder.
 * Flags are parsed here; everything else is shard/shard.h (node_start, node_stop).
 */
#include "net/loop.h"
#include "shard/shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEELD_VERSION "0.3.0"

static const char usage_text[] =
    "keeld — keel's server: one node of a replicated cluster (alone by default)\n"
    "\n"
    "Usage: keeld [options]\n"
    "\n"
    "Options:\n"
    "  --data-dir DIR            where each shard keeps its WAL and snapshots (default ./data)\n"
    "  --listen-client HOST:PORT client (router) port; shard i also listens on PORT+1+i\n"
    "                            (default 127.0.0.1:2379; HOST is an IPv4 address or localhost;\n"
    "                            PORT 0 picks a free port)\n"
    "  --shards N                shard threads, one per core (default: online cores); fixed for\n"
    "                            the life of a data dir\n"
    "  --split-keys K1,K2,...    the shards' key ranges: N-1 increasing split keys (text, or\n"
    "                            hex:<bytes>); shard i owns [K(i), K(i+1)); fixed when the data\n"
    "                            dir is created (default: spreads path-like, hex and decimal\n"
    "                            keys; see docs/architecture.md)\n"
    "  --member-id N             member id of a single node (default 1); with --initial-cluster\n"
    "                            the id is derived from --name\n"
    "  --name NAME               this member's name in --initial-cluster (default \"default\")\n"
    "  --initial-cluster LIST    the cluster's members, name=host:port,... of their peer ports\n"
    "                            (shard i of a member listens on port + i); without it keeld\n"
    "                            runs alone\n"
    "  --initial-cluster-state S new (default): bootstrap with these members; existing: join a\n"
    "                            running cluster that added this member (keelctl member add)\n"
    "  --initial-cluster-token T tells clusters apart: peers of another token are refused\n"
    "                            (default keel-cluster)\n"
    "  --listen-peer HOST:PORT   optional check: must equal this member's --initial-cluster URL\n"
    "  --memory-max BYTES        per-shard store budget, with K, M or G (default 8G)\n"
    "  --snapshot-wal-bytes B    WAL bytes after which a shard writes a snapshot (default 64M)\n"
    "  --snapshot-catchup-entries N  Raft entries kept in memory after a snapshot, for followers\n"
    "                            that lag (default 10000); one further behind gets the snapshot\n"
    "  --max-connections N       client connections the node holds (default 16384)\n"
    "  --io-uring-mode MODE      defer (default: single issuer + deferred task running, falling\n"
    "                            back when the kernel lacks it), coop or plain: start the\n"
    "                            fallback chain lower (for old kernels and tests)\n"
    "  --no-msg-ring             wake other shards through eventfds, not IORING_OP_MSG_RING\n"
    "  --quiet                   no log lines\n"
    "  --help                    this text\n"
    "  --version                 the version\n"
    "\n"
    "Stops cleanly on SIGTERM or SIGINT: answers what it executed, syncs, says GOAWAY.\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "keeld: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nRun 'keeld --help' for usage.\n");
    exit(2);
}

static u64 parse_size(const char *flag, const char *s)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *s == '-') usage_error("%s needs a size", flag);
    u64 mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10;
    if (*end == 'M' || *end == 'm') mul = 1ull << 20;
    if (*end == 'G' || *end == 'g') mul = 1ull << 30;
    if (mul != 1) end++;
    if (*end != 0 || (mul > 1 && v > UINT64_MAX / mul)) usage_error("%s needs a size", flag);
    return v * mul;
}

static u32 parse_u32(const char *flag, const char *s, u32 min, u32 max)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != 0 || v < min || v > max)
        usage_error("%s is out of range", flag);
    return (u32)v;
}

static void parse_listen(const char *arg, struct node_config *c)
{
    char host[64];
    const char *colon = strrchr(arg, ':');
    if (!colon || (size_t)(colon - arg) >= sizeof(host))
        usage_error("--listen-client wants HOST:PORT, got '%s'", arg);
    memcpy(host, arg, (size_t)(colon - arg));
    host[colon - arg] = 0;
    struct in_addr a;
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &a) != 1)
        usage_error("--listen-client: '%s' is not an IPv4 address", host);
    c->ipv4 = ntohl(a.s_addr);
    c->client_port = (u16)parse_u32("--listen-client port", colon + 1, 0, 65535);
}

static void parse_mode(const char *mode, struct node_config *c)
{
    if (strcmp(mode, "defer") == 0) return;
    if (strcmp(mode, "coop") == 0) {
        c->loop_flags |= LOOP_CONFIG_NO_DEFER_TASKRUN;
        return;
    }
    if (strcmp(mode, "plain") == 0) {
        c->loop_flags |= LOOP_CONFIG_NO_DEFER_TASKRUN | LOOP_CONFIG_NO_COOP_TASKRUN;
        return;
    }
    usage_error("--io-uring-mode wants defer, coop or plain, got '%s'", mode);
}

/* --initial-cluster, checked against --name and --listen-peer. */
static void parse_cluster(struct node_config *c, const char *initial_cluster,
                          const char *listen_peer)
{
    char err[256];
    if (!initial_cluster) {
        if (listen_peer) usage_error("--listen-peer needs --initial-cluster");
        if (c->join_existing)
            usage_error("--initial-cluster-state existing needs --initial-cluster");
        return;
    }
    if (node_config_cluster(c, initial_cluster, err, sizeof(err)) != 0) usage_error("%s", err);
    if (!listen_peer) return;
    u32 ipv4 = 0, own_ipv4 = 0;
    u16 port = 0;
    if (node_parse_peer_url(listen_peer, &ipv4, &port) != 0)
        usage_error("--listen-peer: '%s' is not an IPv4 host:port", listen_peer);
    for (u32 i = 0; i < c->member_count; i++)
        if (c->members[i].id == c->member_id) own_ipv4 = c->members[i].ipv4;
    if (port != c->peer_port || ipv4 != own_ipv4)
        usage_error("--listen-peer %s differs from this member's URL in --initial-cluster",
                    listen_peer);
}

static const char *flag_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) usage_error("%s needs a value", argv[*i]);
    return argv[++*i];
}

static void parse_args(int argc, char **argv, struct node_config *c, const char **initial_cluster,
                       const char **listen_peer)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (strcmp(a, "--version") == 0) {
            printf("keeld %s (protocol 1)\n", KEELD_VERSION);
            exit(0);
        } else if (strcmp(a, "--data-dir") == 0) {
            c->data_dir = flag_value(argc, argv, &i);
        } else if (strcmp(a, "--listen-client") == 0) {
            parse_listen(flag_value(argc, argv, &i), c);
        } else if (strcmp(a, "--shards") == 0) {
            c->shard_count = parse_u32(a, flag_value(argc, argv, &i), 1, NODE_SHARDS_MAX);
        } else if (strcmp(a, "--member-id") == 0) {
            c->member_id = parse_u32(a, flag_value(argc, argv, &i), 1, UINT32_MAX);
        } else if (strcmp(a, "--memory-max") == 0) {
            c->memory_bytes_max = parse_size(a, flag_value(argc, argv, &i));
        } else if (strcmp(a, "--snapshot-wal-bytes") == 0) {
            c->snapshot_wal_bytes = parse_size(a, flag_value(argc, argv, &i));
        } else if (strcmp(a, "--snapshot-catchup-entries") == 0) {
            c->snapshot_catchup_entries = parse_u32(a, flag_value(argc, argv, &i), 1, UINT32_MAX);
        } else if (strcmp(a, "--max-connections") == 0) {
            c->connections_max = parse_u32(a, flag_value(argc, argv, &i), 1, 1u << 20);
        } else if (strcmp(a, "--split-keys") == 0) {
            c->split_keys = flag_value(argc, argv, &i);
        } else if (strcmp(a, "--io-uring-mode") == 0) {
            parse_mode(flag_value(argc, argv, &i), c);
        } else if (strcmp(a, "--no-msg-ring") == 0) {
            c->loop_flags |= LOOP_CONFIG_NO_MSG_RING;
        } else if (strcmp(a, "--name") == 0) {
            c->name = flag_value(argc, argv, &i);
        } else if (strcmp(a, "--initial-cluster") == 0) {
            *initial_cluster = flag_value(argc, argv, &i);
        } else if (strcmp(a, "--initial-cluster-state") == 0) {
            const char *v = flag_value(argc, argv, &i);
            if (strcmp(v, "new") != 0 && strcmp(v, "existing") != 0)
                usage_error("--initial-cluster-state wants new or existing, got '%s'", v);
            c->join_existing = strcmp(v, "existing") == 0;
        } else if (strcmp(a, "--initial-cluster-token") == 0) {
            c->cluster_token = flag_value(argc, argv, &i);
        } else if (strcmp(a, "--listen-peer") == 0) {
            *listen_peer = flag_value(argc, argv, &i);
        } else if (strcmp(a, "--quiet") == 0) {
            c->quiet = true;
        } else {
            usage_error("unknown option '%s'", a);
        }
    }
}

int main(int argc, char **argv)
{
    struct node_config c;
    node_config_default(&c);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    c.shard_count = cpus > 0 ? (u32)(cpus < NODE_SHARDS_MAX ? cpus : NODE_SHARDS_MAX) : 1;
    const char *initial_cluster = NULL, *listen_peer = NULL;
    parse_args(argc, argv, &c, &initial_cluster, &listen_peer);
    parse_cluster(&c, initial_cluster, listen_peer);
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    struct node *n = NULL;
    if (!c.quiet)
        node_log("main", "starting keeld %s: data dir %s, %u shards", KEELD_VERSION, c.data_dir,
                 c.shard_count);
    if (node_start(&c, &n, err, sizeof(err)) != 0) {
        node_log("main", "cannot start: %s", err);
        return 1;
    }
    u16 port = node_client_port(n);
    struct in_addr a = {.s_addr = htonl(c.ipv4)};
    if (!c.quiet)
        node_log("main", "ready: client port %s:%u, shard ports %u..%u", inet_ntoa(a), port,
                 port + 1, port + c.shard_count);
    int sig = 0;
    sigwait(&sigs, &sig);
    if (!c.quiet)
        node_log("main", "%s: draining and stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    node_stop(n);
    if (!c.quiet) node_log("main", "stopped");
    return 0;
}
