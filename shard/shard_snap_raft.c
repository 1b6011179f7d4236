/*
 * shard_snap_raft.c — what Raft needs of a shard's snapshots: the meta beside each snapshot file
 * (the index's term and the membership, which the store's file does not hold), reading chunks
 * for a follower that is too far behind (leader), and receiving and installing one (follower).
 *
 * Meta file: snap/snap-<index, 20 digits>.raft, written and synced before the snapshot file is
 * renamed into place, so a snapshot that exists always has its meta:
 *   | offset | size   | field                                  |
 *   | 0      | 4      | magic "KRSM"                           |
 *   | 4      | 4      | member count n (<= RAFT_MEMBERS_MAX)   |
 *   | 8      | 8      | index                                  |
 *   | 16     | 8      | term                                   |
 *   | 24     | 9 * n  | members: u64 id, u8 role               |
 *   | 24+9n  | 8      | XXH3-64 of every byte before           |
 *
 * A received snapshot is written to snap/recv-<index>.tmp chunk by chunk (synchronous pwrite:
 * chunks arrive a few per heartbeat at most), synced after its last chunk, given its meta and
 * renamed to its final name; then it is loaded into a new store that replaces the old one, and
 * the WAL restarts empty after the snapshot's index.
 */
#include "shard/shard_int.h"

#include "core/assert.h"
#include "core/checksum.h"
#include "core/snapshot_file.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_MAGIC     0x4d53524bu /* "KRSM" */
#define META_HEAD      24u
#define META_MEMBER    9u
#define META_BYTES_MAX (META_HEAD + META_MEMBER * RAFT_MEMBERS_MAX + 8u)

static void meta_path(const struct shard *s, u64 index, char *path, size_t len)
{
    snprintf(path, len, "%.200s/snap/snap-%020llu.raft", s->dir, (unsigned long long)index);
}

static size_t meta_encode(const struct raft_snapshot_meta *m, u8 *p)
{
    ASSERT(m->conf.count <= RAFT_MEMBERS_MAX);
    store_u32_le(p, META_MAGIC);
    store_u32_le(p + 4, m->conf.count);
    store_u64_le(p + 8, m->index);
    store_u64_le(p + 16, m->term);
    size_t off = META_HEAD;
    for (u32 i = 0; i < m->conf.count; i++, off += META_MEMBER) {
        store_u64_le(p + off, m->conf.members[i].id);
        p[off + 8] = m->conf.members[i].role;
    }
    store_u64_le(p + off, checksum64(p, off));
    return off + 8;
}

int shard_snap_meta_store(struct shard *s, const struct raft_snapshot_meta *m)
{
    u8 p[META_BYTES_MAX];
    size_t len = meta_encode(m, p);
    char path[DISK_PATH_SIZE_MAX];
    meta_path(s, m->index, path, sizeof(path));
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    int rc = write(fd, p, len) == (ssize_t)len && fdatasync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

int shard_snap_meta_load(struct shard *s, u64 index, struct raft_snapshot_meta *m)
{
    char path[DISK_PATH_SIZE_MAX];
    meta_path(s, index, path, sizeof(path));
    u8 p[META_BYTES_MAX];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, p, sizeof(p)) : -1;
    if (fd >= 0) close(fd);
    u32 count = n >= (ssize_t)META_HEAD ? load_u32_le(p + 4) : UINT32_MAX;
    size_t off = META_HEAD + (size_t)META_MEMBER * (count <= RAFT_MEMBERS_MAX ? count : 0);
    bool ok = n >= (ssize_t)META_HEAD && load_u32_le(p) == META_MAGIC &&
              count <= RAFT_MEMBERS_MAX && (size_t)n == off + 8 &&
              load_u64_le(p + off) == checksum64(p, off) && load_u64_le(p + 8) == index;
    if (!ok)
        return shard_fail(s, "the snapshot of index %llu has no valid Raft meta (%s)",
                          (unsigned long long)index, path),
               -1;
    *m = (struct raft_snapshot_meta){.index = index, .term = load_u64_le(p + 16)};
    m->conf.count = count;
    for (u32 i = 0; i < count; i++) {
        m->conf.members[i].id = load_u64_le(p + META_HEAD + i * META_MEMBER);
        m->conf.members[i].role = p[META_HEAD + i * META_MEMBER + 8];
    }
    return 0;
}

/* Removes the meta files of snapshots older than index (their store files are gone). */
void shard_snap_meta_remove_older(struct shard *s, u64 index)
{
    char dir[DISK_PATH_SIZE_MAX];
    snprintf(dir, sizeof(dir), "%.240s/snap", s->dir);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long i = 0;
        char tail[8] = "";
        if (sscanf(e->d_name, "snap-%20llu.%7s", &i, tail) != 2 || strcmp(tail, "raft") != 0)
            continue;
        if (i >= index) continue;
        char path[DISK_PATH_SIZE_MAX + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* ---- leader: chunks of the snapshot raft sends ---------------------------------------------- */

void shard_snap_fill_chunk(struct shard *s, struct raft_msg *m)
{
    ASSERT(m->type == RAFT_MSG_SNAP && m->snap_data == NULL);
    char dir[DISK_PATH_SIZE_MAX], path[SNAPSHOT_FILE_PATH_SIZE_MAX];
    snprintf(dir, sizeof(dir), "%.240s/snap", s->dir);
    snapshot_file_final_name(dir, m->snap.index, path, sizeof(path));
    if (!s->chunk_buf) s->chunk_buf = malloc(SHARD_SNAP_CHUNK_BYTES);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    ssize_t n = -1;
    if (fd >= 0 && fstat(fd, &st) == 0 && s->chunk_buf)
        n = pread(fd, s->chunk_buf, SHARD_SNAP_CHUNK_BYTES, (off_t)m->snap_offset);
    if (fd >= 0) close(fd);
    if (n == 0 && fd >= 0 && m->snap_offset >= (u64)st.st_size) {
        m->snap_data = s->chunk_buf; /* raft pipelines chunks past the end: an empty last one */
        m->snap_len = 0;
        m->snap_last = true;
        return;
    }
    if (n < 0 || n == 0) {
        node_log("snapshot", "shard %u: cannot read %s for member %016llx: %s", s->id, path,
                 (unsigned long long)m->to, strerror(errno));
        m->snap_len = 0;
        m->snap_data = NULL; /* shard_peer_send drops it; raft retries after a timeout */
        return;
    }
    m->snap_data = s->chunk_buf;
    m->snap_len = (u32)n;
    m->snap_last = m->snap_offset + (u64)n == (u64)st.st_size;
}

/* ---- follower: receiving one --------------------------------------------------------------- */

static void recv_path(const struct shard *s, u64 index, char *path, size_t len)
{
    snprintf(path, len, "%.200s/snap/recv-%020llu.tmp", s->dir, (unsigned long long)index);
}

static int recv_finish(struct shard *s, const struct raft_snapshot_meta *meta)
{
    char dir[DISK_PATH_SIZE_MAX], tmp[DISK_PATH_SIZE_MAX], final[SNAPSHOT_FILE_PATH_SIZE_MAX];
    snprintf(dir, sizeof(dir), "%.240s/snap", s->dir);
    recv_path(s, meta->index, tmp, sizeof(tmp));
    snapshot_file_final_name(dir, meta->index, final, sizeof(final));
    if (fdatasync(s->recv_fd) != 0) return -errno;
    close(s->recv_fd);
    s->recv_fd = -1;
    int rc = shard_snap_meta_store(s, meta);
    if (rc != 0) return rc;
    if (rename(tmp, final) != 0) return -errno;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = dfd >= 0 && fsync(dfd) == 0 ? 0 : -errno;
    if (dfd >= 0) close(dfd);
    return rc;
}

void shard_snap_recv_chunk(struct shard *s, const struct raft_snap_chunk *ch)
{
    char tmp[DISK_PATH_SIZE_MAX];
    recv_path(s, ch->meta.index, tmp, sizeof(tmp));
    if (ch->offset == 0 || s->recv_index != ch->meta.index) {
        if (s->recv_fd >= 0) close(s->recv_fd);
        s->recv_fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        s->recv_index = ch->meta.index;
    }
    int rc = s->recv_fd >= 0 ? 0 : -errno;
    if (rc == 0 && pwrite(s->recv_fd, ch->data, ch->len, (off_t)ch->offset) != (ssize_t)ch->len)
        rc = -EIO;
    if (rc == 0 && ch->last) rc = recv_finish(s, &ch->meta);
    if (rc != 0) {
        node_log("snapshot", "shard %u: writing a received snapshot failed: %s; stopping", s->id,
                 strerror(-rc));
        _exit(70); /* raft was told it is stored: fail-stop as for the WAL */
    }
}

void shard_snap_install_received(struct shard *s, const struct raft_snapshot_meta *meta)
{
    ASSERT(shard_storage_idle(s));
    char dir[DISK_PATH_SIZE_MAX], path[SNAPSHOT_FILE_PATH_SIZE_MAX], err[256] = "";
    snprintf(dir, sizeof(dir), "%.240s/snap", s->dir);
    snapshot_file_final_name(dir, meta->index, path, sizeof(path));
    struct mvcc_config mc;
    mvcc_config_default(&mc);
    if (s->node->config.memory_bytes_max) mc.memory_bytes_max = s->node->config.memory_bytes_max;
    struct mvcc *m = NULL;
    u64 applied = 0;
    int rc = snapshot_file_load(&mc, path, &m, &applied, err, sizeof(err));
    if (rc != 0 || applied != meta->index) {
        node_log("snapshot", "shard %u: cannot load the received snapshot: %s; stopping", s->id,
                 err);
        _exit(70);
    }
    shard_snap_abandon(s); /* a snapshot of the old store being written is void */
    mvcc_destroy(s->m);
    s->m = m;
    s->x.m = m;
    s->compacting = false;
    s->applied_index = meta->index;
    shard_wal_restart(s, meta->index + 1);
    s->persisted_reported = meta->index;
    s->last_snap_index = meta->index;
    if (!s->node->config.quiet)
        node_log("snapshot", "shard %u: installed a snapshot from the leader at index %llu", s->id,
                 (unsigned long long)meta->index);
}
