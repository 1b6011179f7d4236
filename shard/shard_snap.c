/*
 * shard_snap.c — a shard's snapshots: loaded at start (core/snapshot_file.h), written in the
 * background of the loop once the WAL has grown by snapshot_wal_bytes since the last one, one
 * chunk per turn through io_uring (core/snapshot.h's writer reads the store at the revision it
 * captured while requests keep writing), then synced, renamed into place, and the WAL before
 * the previous snapshot dropped. The file protocol is snapshot_file.h's, step by step.
 */
#include "shard/shard_int.h"

#include "core/assert.h"
#include "core/snapshot.h"
#include "core/snapshot_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_WAL_BYTES_DEFAULT (64ull << 20)
#define SNAP_KEYS_PER_CHUNK    4096u
#define SNAP_CHUNK_BYTES       (1u << 20)
#define SNAP_KEEP_ENTRIES      10000u /* entries kept in memory after a snapshot */
#define SNAP_TRIM_STEP_ENTRIES 4096u  /* the log is trimmed by at least this many at once */

enum snap_phase { SNAP_WRITING = 0, SNAP_SYNCING = 1, SNAP_WAIT_WAL = 2, SNAP_PACING = 3 };

/* The file is fdatasync'd every this many bytes while it is written: one writeback of a whole
 * snapshot at the end stalls the WAL's own fdatasyncs (the same device and journal). */
#define SNAP_SYNC_EVERY_BYTES (4u << 20)

struct shard_snap {
    struct snapshot_writer w;
    enum snap_phase phase;
    u64 applied_index;
    struct raft_snapshot_meta meta; /* raft's view of applied_index */
    i64 revision;
    int fd;
    char tmp[SNAPSHOT_FILE_PATH_SIZE_MAX];
    u8 *chunk;
    size_t chunk_cap;
    size_t chunk_len;
    size_t chunk_done; /* bytes of the chunk written */
    u64 file_off;
    u64 synced_off;
    bool io_busy;
    int io_res;
    struct loop_completion io_c;
    u64 started_ns;
};

static void snap_dir(const struct shard *s, char *dir, size_t len)
{
    snprintf(dir, len, "%.240s/snap", s->dir);
}

int shard_snap_load(struct shard *s, u64 *applied_index)
{
    char dir[DISK_PATH_SIZE_MAX];
    snap_dir(s, dir, sizeof(dir));
    *applied_index = 0;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return shard_fail(s, "cannot create %s: %s", dir, strerror(errno)), -1;
    struct mvcc_config mc;
    mvcc_config_default(&mc);
    if (s->node->config.memory_bytes_max) mc.memory_bytes_max = s->node->config.memory_bytes_max;
    struct mvcc *m = NULL;
    u32 skipped = 0;
    char err[256] = "";
    int rc = snapshot_file_load_latest(&mc, dir, &m, applied_index, &skipped, err, sizeof(err));
    if (rc != 0) return shard_fail(s, "cannot load a snapshot: %s", err), -1;
    if (skipped && !s->node->config.quiet)
        node_log("snapshot", "shard %u: skipped %u corrupt snapshot(s): %s", s->id, skipped, err);
    s->last_snap_index = *applied_index;
    if (!m) return 0;
    mvcc_destroy(s->m);
    s->m = m;
    s->x.m = m;
    return 0;
}

/* ---- writing ----------------------------------------------------------------------------------
 */

static void snap_abort(struct shard *s, const char *why)
{
    struct shard_snap *sn = s->snap;
    if (sn->io_busy) return; /* the completion finishes the abort */
    node_log("snapshot", "shard %u: snapshot at index %llu abandoned: %s", s->id,
             (unsigned long long)sn->applied_index, why);
    if (sn->fd >= 0) close(sn->fd);
    unlink(sn->tmp);
    shard_snap_free(s);
    s->snapshot_wal_mark = shard_wal_bytes(s); /* try again after as many WAL bytes */
}

static void snap_io_done(struct loop_completion *c, int res, u32 flags)
{
    (void)flags;
    struct shard_snap *sn =
        (struct shard_snap *)(void *)((char *)c - offsetof(struct shard_snap, io_c));
    sn->io_busy = false;
    sn->io_res = res;
}

static int snap_start(struct shard *s)
{
    struct shard_snap *sn = calloc(1, sizeof(*sn));
    if (!sn) return -1;
    struct mvcc_config mc;
    mvcc_config_default(&mc);
    sn->chunk_cap = KEEL_MAX(snapshot_chunk_size_min(&mc), (size_t)SNAP_CHUNK_BYTES);
    sn->chunk = malloc(sn->chunk_cap);
    sn->fd = -1;
    sn->io_c.done = snap_io_done;
    raft_snapshot_meta_applied(s->raft, &sn->meta);
    ASSERT(sn->meta.index == s->applied_index);
    sn->applied_index = s->applied_index;
    sn->revision = mvcc_revision(s->m);
    sn->started_ns = shard_now_ns();
    char dir[DISK_PATH_SIZE_MAX];
    snap_dir(s, dir, sizeof(dir));
    s->snap = sn;
    if (!sn->chunk ||
        snapshot_writer_init(&sn->w, s->m, s->id, sn->applied_index, SNAP_KEYS_PER_CHUNK) != 0) {
        shard_snap_free(s);
        return -1;
    }
    snapshot_file_tmp_name(dir, sn->applied_index, sn->tmp, sizeof(sn->tmp));
    sn->fd = open(sn->tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (sn->fd < 0) {
        snap_abort(s, strerror(errno));
        return -1;
    }
    return 0;
}

/* Writes the next piece of the current chunk, or the next chunk, or starts the sync. */
static void snap_write_step(struct shard *s)
{
    struct shard_snap *sn = s->snap;
    if (sn->chunk_done == sn->chunk_len && sn->file_off - sn->synced_off >= SNAP_SYNC_EVERY_BYTES) {
        if (loop_fsync(s->loop, &sn->io_c, sn->fd, LOOP_FSYNC_DATASYNC) != 0) return;
        sn->io_busy = true;
        sn->phase = SNAP_PACING;
        sn->synced_off = sn->file_off;
        return;
    }
    if (sn->chunk_done == sn->chunk_len) {
        sn->chunk_len = sn->chunk_done = 0;
        int rc = snapshot_writer_next(&sn->w, sn->chunk, sn->chunk_cap, &sn->chunk_len);
        if (rc != 0) return snap_abort(s, keel_err_str(rc));
        if (sn->chunk_len == 0) {
            ASSERT(snapshot_writer_done(&sn->w));
            if (loop_fsync(s->loop, &sn->io_c, sn->fd, LOOP_FSYNC_DATASYNC) != 0) return;
            sn->io_busy = true;
            sn->phase = SNAP_SYNCING;
            return;
        }
    }
    u32 left = (u32)(sn->chunk_len - sn->chunk_done);
    if (loop_write(s->loop, &sn->io_c, sn->fd, sn->chunk + sn->chunk_done, left, sn->file_off) != 0)
        return;
    sn->io_busy = true;
}

/* The file is synced and the WAL covers applied_index: make it the snapshot. */
static void snap_install(struct shard *s)
{
    struct shard_snap *sn = s->snap;
    char dir[DISK_PATH_SIZE_MAX], final[SNAPSHOT_FILE_PATH_SIZE_MAX];
    snap_dir(s, dir, sizeof(dir));
    snapshot_file_final_name(dir, sn->applied_index, final, sizeof(final));
    close(sn->fd);
    sn->fd = -1;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = shard_snap_meta_store(s, &sn->meta) == 0 && rename(sn->tmp, final) == 0 && dfd >= 0 &&
              fsync(dfd) == 0;
    if (dfd >= 0) close(dfd);
    if (!ok) return snap_abort(s, strerror(errno));
    u64 prev = s->last_snap_index, bytes = sn->file_off;
    s->last_snap_index = sn->applied_index;
    s->last_snap_bytes = bytes;
    u32 removed = 0;
    if (prev > 0) snapshot_file_remove_older(dir, prev, &removed);
    if (prev > 0) shard_snap_meta_remove_older(s, prev);
    /* Followers that fall further behind than SNAP_KEEP_ENTRIES get this snapshot instead. */
    u64 keep = s->node->config.snapshot_catchup_entries;
    raft_compact(s->raft, &sn->meta, keep ? keep : SNAP_KEEP_ENTRIES);
    int rc = prev > 0 ? wal_drop_prefix(&s->wal, prev) : 0;
    if (rc != 0) node_log("snapshot", "shard %u: dropping WAL segments failed: %d", s->id, rc);
    if (!s->node->config.quiet)
        node_log("snapshot",
                 "shard %u: snapshot at WAL index %llu (revision %lld): %llu bytes in "
                 "%.0f ms; WAL now %llu bytes",
                 s->id, (unsigned long long)sn->applied_index, (long long)sn->revision,
                 (unsigned long long)bytes, (double)(shard_now_ns() - sn->started_ns) / 1e6,
                 (unsigned long long)shard_wal_bytes(s));
    shard_snap_free(s);
    s->snapshot_wal_mark = shard_wal_bytes(s);
    s->snap_force = false;
}

static bool snap_due(const struct shard *s)
{
    u64 every = s->node->config.snapshot_wal_bytes ? s->node->config.snapshot_wal_bytes
                                                   : SNAP_WAL_BYTES_DEFAULT;
    /* A snapshot writes the whole store: waiting for as many WAL bytes as the last one wrote
     * keeps its cost per write constant however large the store grows. */
    every = KEEL_MAX(every, s->last_snap_bytes);
    /* The members of a group reach the same WAL size together: spread their snapshots (by up
     * to 7/16 of the interval, by a hash of the member id) so that they do not all write at
     * once on a disk they may share. */
    every += every / 16 * ((s->node->config.member_id * 0x9E3779B97F4A7C15ull) >> 61);
    /* A member is being added: it can only join from a snapshot, so one must exist. */
    if (s->snap_force && !s->compacting && !s->draining) return true;
    u64 bytes = shard_wal_bytes(s);
    return bytes > s->snapshot_wal_mark && bytes - s->snapshot_wal_mark >= every &&
           !s->compacting && !s->draining && s->applied_index > s->last_snap_index;
}

/* Raft entries stay in memory only while a member may still need them: up to what every
 * reachable member holds (the leader knows; a follower keeps what it applied), minus the
 * catch-up entries. Without this, entries since the last snapshot stay in memory, and a
 * snapshot waits for as many WAL bytes as the previous one wrote: memory would grow by up to
 * the store's size again. Not while a snapshot is written or wanted: it must reach past what
 * is dropped (raft_compact_log). */
void shard_snap_trim_log(struct shard *s, const struct raft_status *st)
{
    if (s->snap != NULL || s->snap_force || st->snapshot_wanted) return;
    u64 upto = KEEL_MIN(s->applied_index, st->persisted);
    for (u32 i = 0; i < st->progress_count; i++) {
        const struct raft_progress_status *pr = &st->progress[i];
        if (pr->id != st->id && pr->recent_active) upto = KEEL_MIN(upto, pr->match);
    }
    u64 keep = s->node->config.snapshot_catchup_entries;
    keep = keep ? keep : SNAP_KEEP_ENTRIES;
    if (upto <= keep) return;
    upto -= keep;
    if (upto < st->first_index + SNAP_TRIM_STEP_ENTRIES) return;
    raft_compact_log(s->raft, upto);
}

void shard_snap_step(struct shard *s)
{
    if (!s->snap) {
        if (s->snap_force && s->applied_index <= s->last_snap_index) s->snap_force = false;
        if (snap_due(s)) snap_start(s);
        return;
    }
    struct shard_snap *sn = s->snap;
    if (sn->io_busy) return;
    if (sn->io_res < 0) return snap_abort(s, strerror(-sn->io_res));
    if (sn->phase == SNAP_PACING) {
        sn->phase = SNAP_WRITING;
        sn->io_res = 0;
    }
    if (sn->phase == SNAP_WRITING) {
        sn->chunk_done += (size_t)sn->io_res;
        sn->file_off += (u64)sn->io_res;
        sn->io_res = 0;
        if (s->draining) return snap_abort(s, "the server is stopping");
        return snap_write_step(s);
    }
    sn->phase = SNAP_WAIT_WAL;
    if (wal_durable_index(&s->wal) >= sn->applied_index) snap_install(s);
}

/* Drops a snapshot being written (the store it reads is about to be replaced). */
void shard_snap_abandon(struct shard *s)
{
    if (!s->snap) return;
    ASSERT(!s->snap->io_busy);
    unlink(s->snap->tmp);
    shard_snap_free(s);
}

bool shard_snap_blocks_compaction(const struct shard *s)
{
    return s->snap != NULL;
}

bool shard_snap_io_busy(const struct shard *s)
{
    return s->snap != NULL && s->snap->io_busy;
}

/* After loop_destroy (no op in flight any more): drops an unfinished snapshot. */
void shard_snap_teardown(struct shard *s)
{
    if (!s->snap) return;
    s->snap->io_busy = false;
    unlink(s->snap->tmp);
    shard_snap_free(s);
}

void shard_snap_free(struct shard *s)
{
    struct shard_snap *sn = s->snap;
    if (!sn) return;
    ASSERT(!sn->io_busy);
    if (sn->fd >= 0) close(sn->fd);
    snapshot_writer_deinit(&sn->w);
    free(sn->chunk);
    free(sn);
    s->snap = NULL;
}
