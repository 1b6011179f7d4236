/*
 * shard_io.c — a shard's WAL, which is its Raft log: opening it at start (the snapshot first;
 * shard_raft_boot.c reads the entries after it into raft), appends of the entries each ready
 * hands out, the group commit at the end of the turn, the spare segment, and restarting the
 * WAL after a snapshot from the leader. See docs/architecture.md, "Replication".
 */
#include "shard/shard_int.h"

#include "core/assert.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHARD_WAL_SEGMENT_BYTES (64ull << 20)
#define SHARD_WAL_BATCH_BYTES   (16u << 20)
#define SHARD_WAL_SEGMENTS_MAX  4096u
#define SHARD_SLOW_FSYNC_NS     (500ull * 1000000ull)

static void shard_wal_cut(void *ctx, u64 seq, u64 offset, u64 last_index)
{
    struct shard *s = ctx;
    node_log(
        "wal", "shard %u: cut a torn tail in segment %llu at offset %llu; last good record %llu",
        s->id, (unsigned long long)seq, (unsigned long long)offset, (unsigned long long)last_index);
}

/* ---- the spare segment ------------------------------------------------------------------------
 */

/* The next WAL segment is prepared ahead of need: written with zeros through the loop, one
 * 1 MiB write per turn, fdatasync'd every 4 MiB (a 64 MiB writeback at once stalled the WAL's
 * own fdatasyncs for 100-300 ms), so that (a) fdatasyncs of records later written into
 * it are pure data writes (no extent conversion to commit: about half the latency of a
 * fallocated file on ext4 here) and (b) rolling over costs a rename instead of a stall. */
#define SHARD_SPARE_CHUNK_BYTES (1u << 20)
#define SHARD_SPARE_SYNC_BYTES  (4u << 20)

static int shard_take_spare(void *ctx, const char *path, int *fd)
{
    struct shard *s = ctx;
    if (!s->spare_ready) return -1;
    if (rename(s->spare_path, path) != 0) return -1;
    *fd = s->spare_fd;
    s->spare_fd = -1;
    s->spare_ready = false;
    s->spare_off = 0;
    return 0;
}

static void shard_spare_done(struct loop_completion *c, int res, u32 flags)
{
    (void)flags;
    struct shard *s = (struct shard *)(void *)((char *)c - offsetof(struct shard, spare_c));
    s->spare_busy = false;
    s->spare_res = res;
}

static void shard_spare_give_up(struct shard *s, const char *why)
{
    node_log("wal",
             "shard %u: preparing a spare WAL segment failed (%s); segments are created "
             "when needed",
             s->id, why);
    s->spare_off_switch = true;
    if (s->spare_fd >= 0) close(s->spare_fd);
    s->spare_fd = -1;
    unlink(s->spare_path);
}

void shard_spare_step(struct shard *s)
{
    if (s->spare_ready || s->spare_busy || s->spare_off_switch || s->draining || !s->wal_open)
        return;
    /* Start once the tail segment is a quarter full: early enough to be ready long before the
     * roll-over, late enough not to compete with the first writes after a start. */
    if (s->spare_fd < 0 && s->wal.tail_offset < SHARD_WAL_SEGMENT_BYTES / 4) return;
    if (s->spare_res < 0) return shard_spare_give_up(s, strerror(-s->spare_res));
    if (s->spare_fd < 0) {
        s->spare_c.done = shard_spare_done;
        if (!s->spare_zeros) s->spare_zeros = calloc(1, SHARD_SPARE_CHUNK_BYTES);
        s->spare_fd = open(s->spare_path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
        if (!s->spare_zeros || s->spare_fd < 0) return shard_spare_give_up(s, strerror(errno));
        s->spare_off = 0;
        s->spare_syncing = false;
        s->spare_res = 0;
    } else if (s->spare_syncing) {
        s->spare_syncing = false;
        if (s->spare_off >= SHARD_WAL_SEGMENT_BYTES) {
            s->spare_ready = true;
            return;
        }
    } else {
        s->spare_off += (u64)s->spare_res;
        if (s->spare_off % SHARD_SPARE_SYNC_BYTES == 0 || s->spare_off >= SHARD_WAL_SEGMENT_BYTES) {
            /* Paced: a WAL fdatasync then waits behind a few MiB of zeros at most, never 64. */
            if (loop_fsync(s->loop, &s->spare_c, s->spare_fd, LOOP_FSYNC_DATASYNC) != 0) return;
            s->spare_busy = s->spare_syncing = true;
            s->spare_res = 0;
            return;
        }
    }
    u32 len = (u32)KEEL_MIN((u64)SHARD_SPARE_CHUNK_BYTES, SHARD_WAL_SEGMENT_BYTES - s->spare_off);
    if (loop_write(s->loop, &s->spare_c, s->spare_fd, s->spare_zeros, len, s->spare_off) == 0)
        s->spare_busy = true;
}

/* After loop_destroy: nothing of the spare is in flight any more. */
void shard_spare_free(struct shard *s)
{
    if (s->spare_fd >= 0) close(s->spare_fd);
    s->spare_fd = -1;
    if (s->spare_path[0]) unlink(s->spare_path);
    free(s->spare_zeros);
    s->spare_zeros = NULL;
}

int shard_wal_recover(struct shard *s)
{
    u64 t0 = shard_now_ns();
    disk_posix_init(&s->disk, NULL);
    char dir[DISK_PATH_SIZE_MAX];
    snprintf(dir, sizeof(dir), "%.240s/wal", s->dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return shard_fail(s, "cannot create %s: %s", dir, strerror(errno)), -1;
    u64 applied = 0;
    if (shard_snap_load(s, &applied) != 0) return -1;
    s->spare_fd = -1;
    snprintf(s->spare_path, sizeof(s->spare_path), "%.200s/spare.tmp", dir);
    struct wal_config wc = {.segment_size_bytes = SHARD_WAL_SEGMENT_BYTES,
                            .payload_size_max = CODEC_FRAME_SIZE_MAX,
                            .batch_bytes_max = SHARD_WAL_BATCH_BYTES,
                            .segments_max = SHARD_WAL_SEGMENTS_MAX,
                            .first_index = applied + 1,
                            .on_cut = shard_wal_cut,
                            .on_cut_ctx = s,
                            .take_spare = shard_take_spare,
                            .take_spare_ctx = s};
    int rc = wal_open(&s->wal, &s->disk.base, dir, &wc);
    if (rc != 0) {
        const char *why = rc > 0 ? keel_err_str(rc) : strerror(-rc);
        return shard_fail(s, "cannot open the WAL in %s: %s", dir, why), -1;
    }
    s->wal_open = true;
    if (wal_last_index(&s->wal) < applied) {
        /* A snapshot received from the leader was installed, and the process stopped before
         * the WAL restarted after it: what the WAL holds is covered by the snapshot. */
        node_log("recovery",
                 "shard %u: the WAL ends at %llu, before the snapshot's index %llu: "
                 "restarting it after the snapshot",
                 s->id, (unsigned long long)wal_last_index(&s->wal), (unsigned long long)applied);
        shard_wal_restart(s, applied + 1);
    }
    u64 replayed = wal_last_index(&s->wal) - applied;
    if (shard_raft_boot(s, applied) != 0) return -1;
    s->snapshot_wal_mark = shard_wal_bytes(s);
    struct mvcc_stats st;
    mvcc_stats(s->m, &st);
    if (!s->node->config.quiet)
        node_log(
            "recovery",
            "shard %u: snapshot index %llu, %llu Raft entries after it, read in %.1f ms: revision "
            "%lld, %llu keys",
            s->id, (unsigned long long)applied, (unsigned long long)replayed,
            (double)(shard_now_ns() - t0) / 1e6, (long long)st.revision,
            (unsigned long long)st.keys_live);
    return 0;
}

/* Restarts the WAL empty, its next record at first_index (a follower installed a snapshot of
 * first_index - 1 from the leader: every record it held is covered or superseded). */
void shard_wal_restart(struct shard *s, u64 first_index)
{
    ASSERT(s->wal_open && !s->flush_busy);
    struct wal_config wc = s->wal.config;
    char dir[DISK_PATH_SIZE_MAX];
    snprintf(dir, sizeof(dir), "%.240s/wal", s->dir);
    wal_close(&s->wal);
    s->wal_open = false;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "wal-", 4) != 0) continue;
        char path[DISK_PATH_SIZE_MAX + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    wc.first_index = first_index;
    int rc = wal_open(&s->wal, &s->disk.base, dir, &wc);
    if (rc != 0) shard_wal_fatal(s, "restarting the WAL after a snapshot", rc);
    s->wal_open = true;
    s->snapshot_wal_mark = shard_wal_bytes(s);
}

void shard_wal_close(struct shard *s)
{
    if (!s->wal_open) return;
    if (s->flushes && !s->node->config.quiet)
        node_log("wal",
                 "shard %u: %llu group commits, %.2f ms and %.1f records each on average, "
                 "%llu slower than %llu ms",
                 s->id, (unsigned long long)s->flushes,
                 (double)s->flush_ns_total / 1e6 / (double)s->flushes,
                 (double)s->flush_records_total / (double)s->flushes,
                 (unsigned long long)s->flush_slow,
                 (unsigned long long)(SHARD_SLOW_FSYNC_NS / 1000000));
    wal_close(&s->wal);
    s->wal_open = false;
}

u64 shard_wal_durable(const struct shard *s)
{
    return wal_durable_index(&s->wal);
}

u64 shard_wal_pending(const struct shard *s)
{
    u64 last = wal_last_index(&s->wal);
    return last > wal_durable_index(&s->wal) ? last : 0;
}

u64 shard_wal_bytes(const struct shard *s)
{
    const struct wal *w = &s->wal;
    if (w->segment_count == 0) return 0;
    return (u64)(w->segment_count - 1) * w->config.segment_size_bytes + w->tail_offset;
}

/* ---- group commit through the loop ------------------------------------------------------------
 */

/* A WAL that cannot be written is a dead end for this process: the kernel may have dropped
 * dirty pages (fsyncgate), so nothing written since the last good sync can be proven durable.
 * Fail-stop, as etcd does; recovery on the next start decides what survived. */
void shard_wal_fatal(struct shard *s, const char *what, int rc)
{
    node_log("wal",
             "shard %u: %s failed: %s; stopping the process so that recovery decides "
             "what is durable",
             s->id, what, rc > 0 ? keel_err_str(rc) : strerror(-rc));
    _exit(70);
}

u64 shard_wal_append(struct shard *s, u16 opcode, struct span body)
{
    u64 index = 0;
    int rc = wal_append(&s->wal, opcode, body, &index);
    if (rc != 0) shard_wal_fatal(s, "append", rc); /* room was checked before executing */
    return index;
}

static void shard_flush_finish(struct shard *s)
{
    int rc = wal_flush_end(&s->wal, s->flush_res);
    s->flush_busy = false;
    if (rc != 0 || s->flush_res != 0) shard_wal_fatal(s, "fdatasync", rc ? rc : s->flush_res);
    s->flushes++;
    u64 took_ns = shard_now_ns() - s->flush_started_ns;
    s->flush_ns_total += took_ns;
    s->flush_records_total += s->flush_io.durable_index - s->flush_durable_before;
    if (took_ns > SHARD_SLOW_FSYNC_NS) {
        s->flush_slow++;
        node_log("wal", "shard %u: slow WAL sync: %.0f ms (%llu slow so far)", s->id,
                 (double)took_ns / 1e6, (unsigned long long)s->flush_slow);
    }
}

static void shard_flush_op_done(struct shard *s, u32 op, int res)
{
    ASSERT(s->flush_busy && s->flush_ops_left > 0);
    bool is_write = op < WAL_FLUSH_OPS_MAX;
    int err = 0;
    if (res < 0 && res != -ECANCELED) err = res;
    if (res == -ECANCELED && s->flush_res == 0) err = -EIO; /* a link member failed */
    if (is_write && res >= 0 && (u32)res != s->flush_io.writes[op].len) err = -EIO;
    if (err != 0 && (s->flush_res == 0 || s->flush_res == -EIO)) s->flush_res = err;
    if (--s->flush_ops_left == 0) shard_flush_finish(s);
}

static void shard_flush_done(struct loop_completion *c, int res, u32 flags)
{
    (void)flags;
    struct shard_flush_op *op = (struct shard_flush_op *)(void *)c; /* c is its first member */
    shard_flush_op_done(op->s, op->index, res);
}

/* Starts the group commit of every write appended since the last one: per segment touched,
 * one write linked to one fdatasync, all in the next submit. One flush at a time. */
void shard_wal_kick(struct shard *s)
{
    struct wal *w = &s->wal;
    if (s->flush_busy || wal_last_index(w) == wal_durable_index(w)) return;
    if (loop_reserve(s->loop, 2 * WAL_FLUSH_OPS_MAX) != 0) return; /* next turn */
    struct wal_flush_io *io = &s->flush_io;
    int rc = wal_flush_begin(w, io);
    if (rc != 0) shard_wal_fatal(s, "flush", rc);
    if (io->write_count == 0) return;
    for (u32 i = 0; i < 2 * WAL_FLUSH_OPS_MAX; i++)
        s->flush_ops[i] = (struct shard_flush_op){.c.done = shard_flush_done, .s = s, .index = i};
    for (u32 i = 0; i < io->write_count; i++) {
        const struct wal_flush_write *wr = &io->writes[i];
        rc = loop_write(s->loop, &s->flush_ops[i].c, wr->fd, wr->buf, wr->len, wr->offset_bytes);
        ASSERT(rc == 0); /* reserved */
        loop_link_next(s->loop);
        rc = loop_fsync(s->loop, &s->flush_ops[WAL_FLUSH_OPS_MAX + i].c, io->syncs[i].fd,
                        LOOP_FSYNC_DATASYNC);
        ASSERT(rc == 0);
    }
    s->flush_busy = true;
    s->flush_res = 0;
    s->flush_ops_left = 2 * io->write_count;
    s->flush_started_ns = shard_now_ns();
    s->flush_durable_before = wal_durable_index(w);
}
