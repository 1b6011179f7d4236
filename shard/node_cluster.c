/*
 * node_cluster.c — the initial cluster of flags (--name, --initial-cluster), as etcd's:
 * "n1=http://127.0.0.1:2380,n2=127.0.0.1:2480,..." (the scheme is optional; IPv4 only).
 * A member's id is derived from its name, so every node computes the same ids without talking.
 */
#include "shard/shard.h"

#include "core/assert.h"
#include "core/checksum.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

u64 node_member_id(const char *name)
{
    ASSERT(name != NULL);
    u64 id = checksum64_seeded(name, strlen(name), 0x6b65656c6d656d62ull /* "keelmemb" */);
    id &= 0x7fffffffffffffffull; /* fits an i64 for JSON tools */
    return id ? id : 1;
}

int node_parse_peer_url(const char *url, u32 *ipv4, u16 *port)
{
    if (strncmp(url, "http://", 7) == 0) url += 7;
    const char *colon = strrchr(url, ':');
    if (!colon || colon == url || (size_t)(colon - url) >= 64) return -1;
    char host[64];
    memcpy(host, url, (size_t)(colon - url));
    host[colon - url] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) return -1;
    char *end = NULL;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (!end || *end != '\0' || p == 0 || p > 65535) return -1;
    *ipv4 = ntohl(a.s_addr);
    *port = (u16)p;
    return 0;
}

static int add_member(struct node_config *c, const char *item, char *err, size_t err_len)
{
    const char *eq = strchr(item, '=');
    if (!eq || eq == item || (size_t)(eq - item) >= NODE_NAME_MAX) {
        snprintf(err, err_len, "--initial-cluster: '%s' is not name=host:port", item);
        return -1;
    }
    if (c->member_count == NODE_MEMBERS_MAX) {
        snprintf(err, err_len, "--initial-cluster: at most %u members", NODE_MEMBERS_MAX);
        return -1;
    }
    struct node_member *m = &c->members[c->member_count];
    memset(m, 0, sizeof(*m));
    memcpy(m->name, item, (size_t)(eq - item));
    if (node_parse_peer_url(eq + 1, &m->ipv4, &m->peer_port) != 0) {
        snprintf(err, err_len, "--initial-cluster: '%s' is not an IPv4 host:port", eq + 1);
        return -1;
    }
    m->id = node_member_id(m->name);
    for (u32 i = 0; i < c->member_count; i++)
        if (strcmp(c->members[i].name, m->name) == 0 || c->members[i].id == m->id) {
            snprintf(err, err_len, "--initial-cluster: member '%s' appears twice", m->name);
            return -1;
        }
    c->member_count++;
    return 0;
}

int node_config_cluster(struct node_config *c, const char *initial_cluster, char *err,
                        size_t err_len)
{
    const char *name = c->name ? c->name : "default";
    c->member_count = 0;
    char list[4096];
    if (strlen(initial_cluster) >= sizeof(list)) {
        snprintf(err, err_len, "--initial-cluster is too long");
        return -1;
    }
    snprintf(list, sizeof(list), "%s", initial_cluster);
    char *save = NULL;
    for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save))
        if (add_member(c, item, err, err_len) != 0) return -1;
    for (u32 i = 0; i < c->member_count; i++) {
        if (strcmp(c->members[i].name, name) != 0) continue;
        c->member_id = c->members[i].id;
        c->peer_port = c->members[i].peer_port;
        return 0;
    }
    snprintf(err, err_len, "--initial-cluster does not name this member ('%s'; set --name)", name);
    return -1;
}
