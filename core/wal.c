/* wal.c — segments, group commit, suffix truncation, prefix drop, reads;
 * recovery lives in wal_recover.c. See wal.h for the contract and
 * wal_format.h for the bytes. */
#include "core/wal_int.h"
#include "core/assert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers shared with wal_recover.c ------------------------------------- */

void wal_segment_path(const struct wal *w, u64 seq, char *out)
{
    ASSERT(w != NULL && out != NULL);
    int n = snprintf(out, DISK_PATH_SIZE_MAX, "%s/" WAL_SEGMENT_NAME_FORMAT, w->dir,
                     (unsigned long long)seq);
    ASSERT(n > 0 && n < DISK_PATH_SIZE_MAX);
}

int wal_poison(struct wal *w, int err)
{
    ASSERT(w != NULL);
    ASSERT(err != 0);
    if (w->failed == 0) w->failed = err;
    return err;
}

int wal_zero_range(struct wal *w, int fd, u64 from, u64 to)
{
    u8 *zeros = w->batches[w->open].buf;
    ASSERT(!w->in_flight && w->batches[w->open].len == 0);
    ASSERT(from <= to && to <= w->config.segment_size_bytes);
    memset(zeros, 0, w->config.batch_bytes_max);
    /* Bounded: segment_size / batch_bytes_max writes at most. */
    for (u64 at = from; at < to;) {
        u64 n = KEEL_MIN(to - at, (u64)w->config.batch_bytes_max);
        int rc = w->disk->ops->pwrite(w->disk, fd, zeros, n, at);
        if (rc != 0) return rc;
        at += n;
    }
    return w->disk->ops->fdatasync(w->disk, fd);
}

int wal_unlink_from(struct wal *w, u32 keep)
{
    ASSERT(keep >= 1 && keep <= w->segment_count);
    char path[DISK_PATH_SIZE_MAX];
    if (keep == w->segment_count) return 0;
    /* Newest first, so a crash in between leaves a gap-free run of segments. */
    for (u32 i = w->segment_count; i-- > keep;) {
        struct wal_segment *s = &w->segments[i];
        if (s->fd >= 0) w->disk->ops->close(w->disk, s->fd);
        s->fd = -1;
        wal_segment_path(w, s->seq, path);
        int rc = w->disk->ops->unlink(w->disk, path);
        if (rc != 0 && rc != -ENOENT) return rc;
        w->segment_count = i;
    }
    ASSERT(w->segment_count == keep);
    return w->disk->ops->sync_dir(w->disk, w->dir);
}

static void wal_intent_path(const struct wal *w, char *out)
{
    ASSERT(w != NULL && out != NULL);
    int n = snprintf(out, DISK_PATH_SIZE_MAX, "%s/" WAL_INTENT_NAME, w->dir);
    ASSERT(n > 0 && n < DISK_PATH_SIZE_MAX);
}

int wal_intent_write(struct wal *w, u64 seq, u64 offset, u64 end)
{
    ASSERT(offset < end && end <= w->config.segment_size_bytes);
    u8 rec[WAL_INTENT_SIZE];
    char path[DISK_PATH_SIZE_MAX];
    store_u64_le(rec + 0, WAL_INTENT_MAGIC);
    store_u64_le(rec + 8, seq);
    store_u64_le(rec + 16, offset);
    store_u64_le(rec + 24, end);
    store_u64_le(rec + 32, checksum64(rec, 32));
    wal_intent_path(w, path);
    int fd = -1;
    int rc = w->disk->ops->open(w->disk, path, true, &fd);
    if (rc != 0) return rc;
    rc = w->disk->ops->pwrite(w->disk, fd, rec, sizeof(rec), 0);
    if (rc == 0) rc = w->disk->ops->fdatasync(w->disk, fd);
    w->disk->ops->close(w->disk, fd);
    ASSERT(fd >= 0);
    return rc == 0 ? w->disk->ops->sync_dir(w->disk, w->dir) : rc;
}

int wal_intent_clear(struct wal *w)
{
    ASSERT(w != NULL);
    char path[DISK_PATH_SIZE_MAX];
    wal_intent_path(w, path);
    int rc = w->disk->ops->unlink(w->disk, path);
    if (rc != 0 && rc != -ENOENT) return rc;
    /* Synced now: a resurrected intent would zero records appended later. */
    return w->disk->ops->sync_dir(w->disk, w->dir);
}

/* Redoes the zeroing of a valid intent; a torn one is dropped. */
int wal_intent_redo(struct wal *w)
{
    ASSERT(w != NULL && w->batches[w->open].len == 0);
    char path[DISK_PATH_SIZE_MAX];
    u8 rec[WAL_INTENT_SIZE] = {0};
    size_t got = 0;
    int fd = -1;
    wal_intent_path(w, path);
    int rc = w->disk->ops->open(w->disk, path, false, &fd);
    if (rc == -ENOENT) return 0;
    if (rc != 0) return rc;
    rc = w->disk->ops->pread(w->disk, fd, rec, sizeof(rec), 0, &got);
    w->disk->ops->close(w->disk, fd);
    if (rc != 0) return rc;
    u64 offset = load_u64_le(rec + 16), end = load_u64_le(rec + 24);
    bool valid = got == sizeof(rec) && load_u64_le(rec) == WAL_INTENT_MAGIC &&
                 load_u64_le(rec + 32) == checksum64(rec, 32) && offset < end &&
                 end <= w->config.segment_size_bytes;
    if (valid) {
        wal_segment_path(w, load_u64_le(rec + 8), path);
        rc = w->disk->ops->open(w->disk, path, false, &fd);
        if (rc == -ENOENT)
            valid = false;
        else if (rc != 0)
            return rc;
    }
    if (valid) {
        rc = wal_zero_range(w, fd, offset, end);
        w->disk->ops->close(w->disk, fd);
        if (rc != 0) return rc;
    }
    return wal_intent_clear(w);
}

/* ---- open and close --------------------------------------------------------- */

static int wal_config_fill(struct wal_config *c)
{
    ASSERT(c != NULL);
    if (c->segment_size_bytes == 0) c->segment_size_bytes = WAL_SEGMENT_SIZE_DEFAULT;
    if (c->first_index == 0) c->first_index = 1;
    if (c->payload_size_max == 0 || c->segments_max < 2) return KEEL_EINVALID;
    if (c->segment_size_bytes % WAL_RECORD_ALIGN != 0) return KEEL_EINVALID;
    if (c->batch_bytes_max % WAL_RECORD_ALIGN != 0) return KEEL_EINVALID;
    u64 record_max = wal_record_size(c->payload_size_max);
    if (record_max + WAL_SEGMENT_HEADER_SIZE > c->batch_bytes_max) return KEEL_EINVALID;
    if (c->batch_bytes_max > c->segment_size_bytes) return KEEL_EINVALID;
    ASSERT(c->first_index > 0);
    return 0;
}

/* Lists "wal-<16 hex>.log" names into the segment table, sorted by seq. */
static int wal_list_one(void *ctx, const char *name)
{
    struct wal *w = ctx;
    ASSERT(w != NULL && name != NULL);
    unsigned long long seq = 0;
    int used = 0;
    if (strlen(name) != WAL_SEGMENT_NAME_SIZE) return 0;
    if (sscanf(name, "wal-%16llx.log%n", &seq, &used) != 1) return 0;
    if (used != WAL_SEGMENT_NAME_SIZE || seq == 0) return 0;
    if (w->segment_count == w->config.segments_max) return KEEL_ENOMEM;
    u32 i = w->segment_count++;
    /* Insertion sort: bounded by segments_max per name. */
    while (i > 0 && w->segments[i - 1].seq > seq) {
        w->segments[i] = w->segments[i - 1];
        i--;
    }
    w->segments[i] = (struct wal_segment){.seq = seq, .first_index = 0, .fd = -1};
    return 0;
}

/* Creates the file of segment s (which must not be open) and preallocates it. */
static int wal_segment_create(struct wal *w, struct wal_segment *s)
{
    ASSERT(s->fd < 0);
    char path[DISK_PATH_SIZE_MAX];
    wal_segment_path(w, s->seq, path);
    if (w->config.take_spare && w->config.take_spare(w->config.take_spare_ctx, path, &s->fd) == 0) {
        ASSERT(s->fd >= 0);
        return 0; /* prepared, zero-filled and synced by the caller; the dir sync follows */
    }
    s->fd = -1;
    int rc = w->disk->ops->open(w->disk, path, true, &s->fd);
    if (rc != 0) return rc;
    rc = w->disk->ops->preallocate(w->disk, s->fd, w->config.segment_size_bytes);
    ASSERT(s->fd >= 0);
    return rc;
}

/* An empty WAL: segment 1 with its header, synced, before any record. It is
 * built under a ".tmp" name and renamed, so a crash never leaves a segment
 * with a torn header as the only one (a stale .tmp is simply reused). */
static int wal_create_first(struct wal *w)
{
    ASSERT(w->segment_count == 0);
    u8 header[WAL_SEGMENT_HEADER_SIZE];
    char path[DISK_PATH_SIZE_MAX], tmp[DISK_PATH_SIZE_MAX + 4];
    struct wal_segment *s = &w->segments[0];
    *s = (struct wal_segment){.seq = 1, .first_index = w->config.first_index, .fd = -1};
    w->segment_count = 1;
    wal_segment_path(w, s->seq, path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    struct wal_segment_header h = {1, s->first_index, w->config.segment_size_bytes};
    wal_segment_header_encode(header, &h);
    int rc = w->disk->ops->open(w->disk, tmp, true, &s->fd);
    if (rc == 0) rc = w->disk->ops->preallocate(w->disk, s->fd, w->config.segment_size_bytes);
    if (rc == 0) rc = w->disk->ops->pwrite(w->disk, s->fd, header, sizeof(header), 0);
    if (rc == 0) rc = w->disk->ops->fdatasync(w->disk, s->fd);
    if (rc == 0) rc = w->disk->ops->rename(w->disk, tmp, path);
    if (rc == 0) rc = w->disk->ops->sync_dir(w->disk, w->dir);
    w->tail_offset = WAL_SEGMENT_HEADER_SIZE;
    w->last_index = w->durable_index = s->first_index - 1;
    ASSERT(rc != 0 || s->fd >= 0);
    return rc;
}

static void wal_free(struct wal *w)
{
    ASSERT(w != NULL);
    for (u32 i = 0; w->segments != NULL && i < w->segment_count; i++) {
        if (w->segments[i].fd >= 0) w->disk->ops->close(w->disk, w->segments[i].fd);
        w->segments[i].fd = -1;
    }
    free(w->segments);
    free(w->batches[0].buf); /* one block holds both buffers */
    w->segments = NULL;
    w->batches[0].buf = w->batches[1].buf = NULL;
}

int wal_open(struct wal *w, struct disk *disk, const char *dir, const struct wal_config *config)
{
    ASSERT(w != NULL && disk != NULL && disk->ops != NULL);
    ASSERT(dir != NULL && config != NULL);
    memset(w, 0, sizeof(*w));
    w->disk = disk;
    w->config = *config;
    int rc = wal_config_fill(&w->config);
    if (rc != 0) return rc;
    /* dir, "/", a segment name and ".tmp" (wal_create_first) fit in a path. */
    if (strlen(dir) + 1 + WAL_SEGMENT_NAME_SIZE + 4 >= DISK_PATH_SIZE_MAX) return KEEL_EINVALID;
    memcpy(w->dir, dir, strlen(dir) + 1);
    w->segments = calloc(w->config.segments_max, sizeof(*w->segments));
    u8 *buffers = malloc(2 * (size_t)w->config.batch_bytes_max);
    w->batches[0].buf = buffers;
    w->batches[1].buf = buffers == NULL ? NULL : buffers + w->config.batch_bytes_max;
    u8 *scan = malloc(w->config.segment_size_bytes);
    rc = (w->segments == NULL || buffers == NULL || scan == NULL) ? KEEL_ENOMEM : 0;
    if (rc == 0) rc = wal_intent_redo(w);
    if (rc == 0) rc = disk->ops->list(disk, dir, wal_list_one, w);
    if (rc == 0) rc = w->segment_count == 0 ? wal_create_first(w) : wal_recover(w, scan);
    free(scan);
    if (rc != 0) {
        wal_free(w);
        return rc;
    }
    ASSERT(wal_check(w));
    ASSERT(w->durable_index == w->last_index);
    return 0;
}

void wal_close(struct wal *w)
{
    ASSERT(w != NULL);
    ASSERT(w->failed != 0 || wal_check(w));
    wal_free(w);
}

/* ---- append and flush ------------------------------------------------------- */

u64 wal_first_index(const struct wal *w)
{
    ASSERT(w->segment_count > 0);
    return w->segments[0].first_index;
}

u64 wal_last_index(const struct wal *w)
{
    ASSERT(w->last_index >= w->durable_index);
    return w->last_index;
}

u64 wal_durable_index(const struct wal *w)
{
    ASSERT(w->last_index >= w->durable_index);
    return w->durable_index;
}

/* Starts batch b's next run: in the tail segment, or in a new segment
 * (added to the table now, created on disk by wal_flush_begin) after its
 * header. */
static void wal_batch_run_start(struct wal *w, struct wal_batch *b, bool roll)
{
    ASSERT(b->run_count < KEEL_ARRAY_LEN(b->runs));
    ASSERT_IMPLIES(roll, w->segment_count < w->config.segments_max);
    if (roll) {
        struct wal_segment *prev = &w->segments[w->segment_count - 1];
        struct wal_segment *s = &w->segments[w->segment_count++];
        *s = (struct wal_segment){.seq = prev->seq + 1, .first_index = w->last_index + 1};
        s->fd = -1;
        struct wal_segment_header h = {s->seq, s->first_index, w->config.segment_size_bytes};
        wal_segment_header_encode(b->buf + b->len, &h);
        w->tail_offset = 0;
    }
    struct wal_run *r = &b->runs[b->run_count++];
    *r = (struct wal_run){w->segment_count - 1, b->len, w->tail_offset, 0};
    if (roll) {
        r->len = WAL_SEGMENT_HEADER_SIZE;
        b->len += WAL_SEGMENT_HEADER_SIZE;
        w->tail_offset = WAL_SEGMENT_HEADER_SIZE;
    }
    ASSERT(w->tail_offset % WAL_RECORD_ALIGN == 0);
}

bool wal_can_append(const struct wal *w, size_t payload_len)
{
    if (w->failed != 0 || payload_len > w->config.payload_size_max) return false;
    const struct wal_batch *b = &w->batches[w->open];
    u64 size = wal_record_size(payload_len);
    bool roll = w->tail_offset + size > w->config.segment_size_bytes;
    u64 need = size + (roll ? WAL_SEGMENT_HEADER_SIZE : 0);
    if (b->len + need > w->config.batch_bytes_max) return false;
    return !(roll && w->segment_count == w->config.segments_max);
}

int wal_append(struct wal *w, u16 type, struct span payload, u64 *index)
{
    ASSERT(w != NULL && index != NULL);
    ASSERT(payload.ptr != NULL || payload.len == 0);
    if (w->failed != 0) return w->failed;
    if (type == 0) return KEEL_EINVALID;
    if (payload.len > w->config.payload_size_max) return KEEL_EVALUE_TOO_LARGE;
    struct wal_batch *b = &w->batches[w->open];
    u64 size = wal_record_size(payload.len);
    bool roll = w->tail_offset + size > w->config.segment_size_bytes;
    u64 need = size + (roll ? WAL_SEGMENT_HEADER_SIZE : 0);
    if (b->len + need > w->config.batch_bytes_max) return KEEL_ENOMEM;
    if (roll && w->segment_count == w->config.segments_max) return KEEL_ENOMEM;
    bool first = b->run_count == 0;
    if (first || roll) wal_batch_run_start(w, b, roll);
    struct wal_record_header h = {
        .payload_len = (u32)payload.len,
        .type = type,
        .flags = first ? WAL_FLAG_BATCH_START : 0,
        .index = w->last_index + 1,
    };
    u64 written = wal_record_encode(b->buf + b->len, &h, payload);
    ASSERT(written == size);
    b->last_offset = b->len;
    b->len += (u32)size;
    b->runs[b->run_count - 1].len += size;
    b->last_index = h.index;
    w->tail_offset += size;
    w->last_index = h.index;
    *index = h.index;
    ASSERT(w->tail_offset <= w->config.segment_size_bytes);
    return 0;
}

/* Sets BATCH_END on b's last record and recomputes its checksum. */
static void wal_batch_mark_end(const struct wal *w, struct wal_batch *b)
{
    ASSERT(b->run_count > 0);
    u8 *rec = b->buf + b->last_offset;
    u32 len = load_u32_le(rec);
    store_u16_le(rec + 6, (u16)(load_u16_le(rec + 6) | WAL_FLAG_BATCH_END));
    u64 body = WAL_RECORD_HEADER_SIZE + len;
    store_u64_le(rec + wal_record_size(len) - WAL_RECORD_CHECKSUM_SIZE, checksum64(rec, body));
    struct wal_record_header h;
    ASSERT(wal_record_check(rec, wal_record_size(len), w->config.payload_size_max, &h) != 0);
}

/* Creates the segments b's runs write to that do not exist yet (at most
 * one: the segment b rolled over to), then syncs the directory, so the new
 * segment's name is durable before any record in it counts. */
static int wal_batch_create_segments(struct wal *w, const struct wal_batch *b)
{
    ASSERT(b->run_count >= 1 && b->run_count <= 2);
    bool created = false;
    for (u32 i = 0; i < b->run_count; i++) {
        struct wal_segment *s = &w->segments[b->runs[i].segment];
        if (s->fd >= 0) continue;
        int rc = wal_segment_create(w, s);
        if (rc != 0) return rc;
        created = true;
    }
    ASSERT(w->segments[b->runs[b->run_count - 1].segment].fd >= 0);
    return created ? w->disk->ops->sync_dir(w->disk, w->dir) : 0;
}

int wal_flush_begin(struct wal *w, struct wal_flush_io *io)
{
    ASSERT(w != NULL && io != NULL);
    ASSERT(!w->in_flight); /* one flush at a time */
    memset(io, 0, sizeof(*io));
    io->durable_index = w->durable_index;
    if (w->failed != 0) return w->failed;
    ASSERT(wal_check(w));
    struct wal_batch *b = &w->batches[w->open];
    if (b->run_count == 0) return 0;
    wal_batch_mark_end(w, b);
    int rc = wal_batch_create_segments(w, b);
    if (rc != 0) return wal_poison(w, rc);
    for (u32 i = 0; i < b->run_count; i++) {
        const struct wal_run *r = &b->runs[i];
        int fd = w->segments[r->segment].fd;
        ASSERT(fd >= 0 && r->len > 0 && r->len <= b->len);
        io->writes[i] =
            (struct wal_flush_write){fd, b->buf + r->batch_offset, (u32)r->len, r->file_offset};
        io->syncs[i].fd = fd;
    }
    io->write_count = io->sync_count = b->run_count;
    io->durable_index = b->last_index;
    w->in_flight = true;
    w->open ^= 1;
    ASSERT(w->batches[w->open].run_count == 0 && w->batches[w->open].len == 0);
    return 0;
}

/* Closes the handles of segments before the first one the open batch
 * writes to (or before the tail): no flush will write them again. */
static void wal_close_old_segments(struct wal *w)
{
    const struct wal_batch *b = &w->batches[w->open];
    u32 keep = b->run_count > 0 ? b->runs[0].segment : w->segment_count - 1;
    ASSERT(keep < w->segment_count);
    for (u32 i = 0; i < keep; i++) {
        if (w->segments[i].fd < 0) continue;
        w->disk->ops->close(w->disk, w->segments[i].fd);
        w->segments[i].fd = -1;
    }
}

int wal_flush_end(struct wal *w, int res)
{
    ASSERT(w != NULL);
    ASSERT(w->in_flight);
    ASSERT(res <= 0);
    struct wal_batch *b = &w->batches[w->open ^ 1];
    ASSERT(b->run_count > 0 && b->last_index > w->durable_index);
    w->in_flight = false;
    if (res != 0) return wal_poison(w, res);
    if (w->failed != 0) return w->failed; /* poisoned meanwhile (wal_drop_prefix) */
    w->durable_index = b->last_index;
    b->len = 0;
    b->run_count = 0;
    wal_close_old_segments(w);
    ASSERT(wal_check(w));
    return 0;
}

bool wal_flush_in_flight(const struct wal *w)
{
    ASSERT(w != NULL);
    return w->in_flight;
}

/* Does io through the disk seam: the writes, then the syncs. */
static int wal_flush_io_run(struct disk *disk, const struct wal_flush_io *io)
{
    ASSERT(io->write_count >= 1 && io->write_count <= WAL_FLUSH_OPS_MAX);
    ASSERT(io->sync_count == io->write_count);
    for (u32 i = 0; i < io->write_count; i++) {
        const struct wal_flush_write *wr = &io->writes[i];
        int rc = disk->ops->pwrite(disk, wr->fd, wr->buf, wr->len, wr->offset_bytes);
        if (rc != 0) return rc;
    }
    for (u32 i = 0; i < io->sync_count; i++) {
        int rc = disk->ops->fdatasync(disk, io->syncs[i].fd);
        if (rc != 0) return rc;
    }
    return 0;
}

int wal_flush(struct wal *w, u64 *durable_index)
{
    ASSERT(w != NULL && durable_index != NULL);
    ASSERT(!w->in_flight);
    struct wal_flush_io io;
    int rc = wal_flush_begin(w, &io);
    if (rc == 0 && io.write_count > 0) rc = wal_flush_end(w, wal_flush_io_run(w->disk, &io));
    if (rc != 0) return rc;
    *durable_index = w->durable_index;
    ASSERT(w->durable_index == w->last_index);
    return 0;
}

/* ---- truncate and drop ------------------------------------------------------ */

/* Finds the offset of record `target` in segment k by walking the record
 * headers from the segment's first record; target may be one past the
 * segment's last record (its end). Bounded by the segment's size. */
static int wal_seek(struct wal *w, int fd, u32 k, u64 target, u64 *offset)
{
    ASSERT(k < w->segment_count);
    ASSERT(target >= w->segments[k].first_index);
    u64 off = WAL_SEGMENT_HEADER_SIZE;
    for (u64 index = w->segments[k].first_index; index < target; index++) {
        u8 head[WAL_RECORD_HEADER_SIZE];
        size_t got = 0;
        int rc = w->disk->ops->pread(w->disk, fd, head, sizeof(head), off, &got);
        if (rc != 0) return rc;
        if (got != sizeof(head) || load_u64_le(head + 8) != index) return KEEL_ECORRUPT;
        off += wal_record_size(load_u32_le(head));
        if (off > w->config.segment_size_bytes) return KEEL_ECORRUPT;
    }
    *offset = off;
    ASSERT(off % WAL_RECORD_ALIGN == 0);
    return 0;
}

/* The segment holding index (the last one whose first index is <= it). */
static u32 wal_segment_of(const struct wal *w, u64 index)
{
    ASSERT(w->segment_count > 0 && index >= w->segments[0].first_index);
    u32 k = w->segment_count - 1;
    while (k > 0 && w->segments[k].first_index > index) k--; /* bounded by the table */
    ASSERT(w->segments[k].first_index <= index);
    return k;
}

static int wal_open_segment(struct wal *w, u32 k, int *fd)
{
    ASSERT(k < w->segment_count && fd != NULL);
    char path[DISK_PATH_SIZE_MAX];
    wal_segment_path(w, w->segments[k].seq, path);
    return w->disk->ops->open(w->disk, path, false, fd);
}

int wal_truncate_suffix(struct wal *w, u64 from_index)
{
    ASSERT(w != NULL);
    ASSERT(w->failed != 0 || wal_check(w));
    if (w->failed != 0) return w->failed;
    if (w->in_flight || w->batches[w->open].run_count != 0) return KEEL_EINVALID;
    if (from_index < wal_first_index(w) || from_index > w->last_index + 1) return KEEL_EINVALID;
    if (from_index == w->last_index + 1) return 0;
    u32 k = wal_segment_of(w, from_index);
    bool tail = k + 1 == w->segment_count;
    u64 end_index = tail ? w->last_index + 1 : w->segments[k + 1].first_index;
    int rc = wal_unlink_from(w, k + 1);
    struct wal_segment *s = &w->segments[k];
    if (rc == 0 && s->fd < 0) rc = wal_open_segment(w, k, &s->fd);
    u64 off = 0;
    u64 end = w->tail_offset;
    if (rc == 0) rc = wal_seek(w, s->fd, k, from_index, &off);
    /* The old records in [off, end) must go, or a shorter new record there
     * would leave valid old ones after it, which recovery calls corruption. */
    if (rc == 0 && !tail) rc = wal_seek(w, s->fd, k, end_index, &end);
    if (rc == 0 && off < end) rc = wal_intent_write(w, s->seq, off, end);
    if (rc == 0) rc = wal_zero_range(w, s->fd, off, end);
    if (rc == 0 && off < end) rc = wal_intent_clear(w);
    if (rc != 0) return wal_poison(w, rc);
    w->tail_offset = off;
    w->last_index = from_index - 1;
    w->durable_index = KEEL_MIN(w->durable_index, w->last_index);
    ASSERT(wal_check(w));
    return 0;
}

int wal_drop_prefix(struct wal *w, u64 upto_index)
{
    ASSERT(w != NULL);
    ASSERT(w->failed != 0 || wal_check(w));
    if (w->failed != 0) return w->failed;
    u32 drop = 0;
    /* Bounded by segments_max. The tail segment always stays, and so does
     * the newest segment on disk: a segment that a pending batch rolled over
     * to exists only after the flush, and an empty directory would restart
     * the indexes at first_index after a crash. */
    while (drop + 1 < w->segment_count && w->segments[drop + 1].first_index - 1 <= upto_index &&
           w->segments[drop + 1].first_index <= w->durable_index)
        drop++;
    char path[DISK_PATH_SIZE_MAX];
    for (u32 i = 0; i < drop; i++) { /* oldest first: a crash leaves a gap-free suffix */
        struct wal_segment *s = &w->segments[i];
        /* Open only when a new batch rolled over before writing to it. */
        if (s->fd >= 0) w->disk->ops->close(w->disk, s->fd);
        s->fd = -1;
        wal_segment_path(w, s->seq, path);
        int rc = w->disk->ops->unlink(w->disk, path);
        if (rc != 0 && rc != -ENOENT) return wal_poison(w, rc);
    }
    if (drop == 0) return 0;
    memmove(w->segments, w->segments + drop, (w->segment_count - drop) * sizeof(*w->segments));
    w->segment_count -= drop;
    for (u32 k = 0; k < KEEL_ARRAY_LEN(w->batches); k++) {
        struct wal_batch *b = &w->batches[k];
        for (u32 i = 0; i < b->run_count; i++) {
            ASSERT(b->runs[i].segment >= drop); /* a batch's segments hold non-durable records */
            b->runs[i].segment -= drop;
        }
    }
    int rc = w->disk->ops->sync_dir(w->disk, w->dir);
    if (rc != 0) return wal_poison(w, rc);
    ASSERT(wal_check(w));
    return 0;
}

/* ---- reading ---------------------------------------------------------------- */

size_t wal_iter_buffer_size(const struct wal *w)
{
    ASSERT(w != NULL);
    return wal_record_size(w->config.payload_size_max);
}

int wal_iter_init(struct wal_iter *it, struct wal *w, u64 from_index, void *buf, size_t buf_len)
{
    ASSERT(it != NULL && w != NULL && buf != NULL);
    ASSERT(buf_len >= wal_iter_buffer_size(w));
    *it = (struct wal_iter){.w = w, .index_next = from_index, .fd = -1, .buf = buf};
    if (w->failed != 0) return w->failed;
    if (from_index < wal_first_index(w) || from_index > w->durable_index + 1) return KEEL_EINVALID;
    it->segment = wal_segment_of(w, from_index);
    int rc = wal_open_segment(w, it->segment, &it->fd);
    if (rc == 0) rc = wal_seek(w, it->fd, it->segment, from_index, &it->offset);
    ASSERT(rc != 0 || it->offset >= WAL_SEGMENT_HEADER_SIZE);
    return rc;
}

/* Moves the iterator to the next segment when its next index lives there. */
static int wal_iter_segment(struct wal_iter *it)
{
    struct wal *w = it->w;
    ASSERT(it->fd >= 0 && it->segment < w->segment_count);
    if (it->segment + 1 == w->segment_count) return 0;
    if (w->segments[it->segment + 1].first_index > it->index_next) return 0;
    w->disk->ops->close(w->disk, it->fd);
    it->fd = -1;
    it->segment++;
    it->offset = WAL_SEGMENT_HEADER_SIZE;
    return wal_open_segment(w, it->segment, &it->fd);
}

int wal_iter_next(struct wal_iter *it, u16 *type, u64 *index, struct span *payload)
{
    ASSERT(it != NULL && it->w != NULL);
    ASSERT(type != NULL && index != NULL && payload != NULL);
    struct wal *w = it->w;
    if (it->index_next > w->durable_index) return 1;
    int rc = wal_iter_segment(it);
    if (rc != 0) return rc;
    size_t got = 0;
    rc = w->disk->ops->pread(w->disk, it->fd, it->buf, WAL_RECORD_HEADER_SIZE, it->offset, &got);
    if (rc != 0) return rc;
    u64 len = got == WAL_RECORD_HEADER_SIZE ? load_u32_le(it->buf) : 0;
    if (got != WAL_RECORD_HEADER_SIZE || len > w->config.payload_size_max) return KEEL_ECORRUPT;
    u64 size = wal_record_size(len);
    rc = w->disk->ops->pread(w->disk, it->fd, it->buf, size, it->offset, &got);
    if (rc != 0) return rc;
    struct wal_record_header h;
    if (got != size || wal_record_check(it->buf, size, len, &h) != size) return KEEL_ECORRUPT;
    if (h.index != it->index_next) return KEEL_ECORRUPT;
    *type = h.type;
    *index = h.index;
    *payload = span_make(it->buf + WAL_RECORD_HEADER_SIZE, h.payload_len);
    it->offset += size;
    it->index_next++;
    ASSERT(it->offset <= w->config.segment_size_bytes);
    return 0;
}

void wal_iter_finish(struct wal_iter *it)
{
    ASSERT(it != NULL);
    if (it->fd >= 0) it->w->disk->ops->close(it->w->disk, it->fd);
    it->fd = -1;
}

/* ---- invariants ------------------------------------------------------------- */

bool wal_check(const struct wal *w)
{
    ASSERT(w != NULL);
    const struct wal_config *c = &w->config;
    if (w->segment_count == 0 || w->segment_count > c->segments_max) return false;
    for (u32 i = 1; i < w->segment_count; i++) {
        if (w->segments[i].seq != w->segments[i - 1].seq + 1) return false;
        if (w->segments[i].first_index < w->segments[i - 1].first_index) return false;
    }
    if (w->durable_index > w->last_index) return false;
    if (w->last_index + 1 < w->segments[w->segment_count - 1].first_index) return false;
    if (w->tail_offset % WAL_RECORD_ALIGN != 0) return false;
    if (w->tail_offset < WAL_SEGMENT_HEADER_SIZE || w->tail_offset > c->segment_size_bytes)
        return false;
    for (u32 k = 0; k < KEEL_ARRAY_LEN(w->batches); k++) {
        const struct wal_batch *b = &w->batches[k];
        if (b->run_count > 2 || b->len > c->batch_bytes_max) return false;
        if ((b->run_count == 0) != (b->len == 0)) return false;
        for (u32 i = 0; i < b->run_count; i++)
            if (b->runs[i].segment >= w->segment_count) return false;
    }
    const struct wal_batch *open = &w->batches[w->open];
    const struct wal_batch *flushing = &w->batches[w->open ^ 1];
    if (w->in_flight != (flushing->run_count > 0)) return false;
    if (w->in_flight && flushing->last_index <= w->durable_index) return false;
    /* The open batch holds the newest records, the flushing one those before. */
    u64 before_open = w->in_flight ? flushing->last_index : w->durable_index;
    if (open->run_count > 0)
        return open->last_index == w->last_index && before_open < w->last_index;
    return before_open == w->last_index;
}
