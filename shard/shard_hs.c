/*
 * shard_hs.c — a shard's Raft hard state (term, vote, commit) on disk: <shard dir>/raft.state.
 *
 * Two 64-byte slots, at offsets 0 and 4096 (never in one sector), each:
 *   | offset | size | field                                  |
 *   | 0      | 4    | magic "KRHS"                           |
 *   | 4      | 4    | version, 1                             |
 *   | 8      | 8    | seq: which write this is (1, 2, ...)   |
 *   | 16     | 8    | member id (a copied directory is refused) |
 *   | 24     | 8    | term                                   |
 *   | 32     | 8    | vote (member id, 0 = none)             |
 *   | 40     | 8    | commit                                 |
 *   | 48     | 8    | XXH3-64 of bytes [0, 48)               |
 * A write goes to slot seq % 2 followed by an fdatasync, so a torn write destroys at most the
 * slot being written and the other still holds the previous state. Reading takes the valid slot
 * with the higher seq. A term or vote change is written synchronously before any message that
 * depends on it is sent (ready step d): elections are rare, so the stall is too.
 */
#include "shard/shard_int.h"

#include "core/assert.h"
#include "core/buf.h"
#include "core/checksum.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HS_MAGIC      0x5348524bu /* "KRHS" little-endian */
#define HS_VERSION    1u
#define HS_SLOT_BYTES 64u
#define HS_SLOT_STEP  4096u
#define HS_SUM_AT     48u

static void hs_encode(u8 *p, u64 seq, u64 member, const struct raft_hard_state *hs)
{
    memset(p, 0, HS_SLOT_BYTES);
    store_u32_le(p, HS_MAGIC);
    store_u32_le(p + 4, HS_VERSION);
    store_u64_le(p + 8, seq);
    store_u64_le(p + 16, member);
    store_u64_le(p + 24, hs->term);
    store_u64_le(p + 32, hs->vote);
    store_u64_le(p + 40, hs->commit);
    store_u64_le(p + HS_SUM_AT, checksum64(p, HS_SUM_AT));
}

/* 1 with *seq and *hs set for a valid slot, 0 for an empty or invalid one. */
static int hs_decode(const u8 *p, u64 member, u64 *seq, struct raft_hard_state *hs)
{
    if (load_u32_le(p) != HS_MAGIC || load_u32_le(p + 4) != HS_VERSION) return 0;
    if (load_u64_le(p + HS_SUM_AT) != checksum64(p, HS_SUM_AT)) return 0;
    if (load_u64_le(p + 16) != member) return -1;
    *seq = load_u64_le(p + 8);
    hs->term = load_u64_le(p + 24);
    hs->vote = load_u64_le(p + 32);
    hs->commit = load_u64_le(p + 40);
    return 1;
}

int shard_hs_open(struct shard *s, struct raft_hard_state *hs)
{
    char path[DISK_PATH_SIZE_MAX];
    snprintf(path, sizeof(path), "%.240s/raft.state", s->dir);
    *hs = (struct raft_hard_state){0};
    s->hs_seq = 0;
    s->hs_fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (s->hs_fd < 0) return shard_fail(s, "cannot open %s: %s", path, strerror(errno)), -1;
    u64 member = s->node->config.member_id;
    for (u32 slot = 0; slot < 2; slot++) {
        u8 p[HS_SLOT_BYTES];
        ssize_t n = pread(s->hs_fd, p, sizeof(p), (off_t)slot * HS_SLOT_STEP);
        if (n != (ssize_t)sizeof(p)) continue;
        u64 seq = 0;
        struct raft_hard_state got;
        int rc = hs_decode(p, member, &seq, &got);
        if (rc < 0)
            return shard_fail(s, "%s belongs to another member (a copied data directory?)", path),
                   -1;
        if (rc == 1 && seq > s->hs_seq) {
            s->hs_seq = seq;
            *hs = got;
        }
    }
    s->hs_saved = *hs;
    ASSERT(s->hs_fd >= 0);
    return 0;
}

void shard_hs_store(struct shard *s, const struct raft_hard_state *hs)
{
    ASSERT(s->hs_fd >= 0);
    ASSERT(hs->term >= s->hs_saved.term);
    u8 p[HS_SLOT_BYTES];
    u64 seq = s->hs_seq + 1;
    hs_encode(p, seq, s->node->config.member_id, hs);
    off_t at = (off_t)(seq % 2) * HS_SLOT_STEP;
    if (pwrite(s->hs_fd, p, sizeof(p), at) != (ssize_t)sizeof(p) || fdatasync(s->hs_fd) != 0) {
        node_log("raft", "shard %u: writing raft.state failed: %s; stopping the process", s->id,
                 strerror(errno));
        _exit(70); /* as a WAL sync failure: nothing written since can be proven durable */
    }
    s->hs_seq = seq;
    s->hs_saved = *hs;
}

void shard_hs_close(struct shard *s)
{
    if (s->hs_fd >= 0) close(s->hs_fd);
    s->hs_fd = -1;
}
