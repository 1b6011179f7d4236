/*
 * snapshot.h — full snapshots of one shard's MVCC store: a cursor-based
 * writer that runs in bounded steps between the shard's requests, and a
 * loader that verifies every byte and rebuilds an identical store. Files,
 * their names and the write protocol are in core/snapshot_file.h.
 *
 * A snapshot is the store exactly as it was at the revision R captured by
 * snapshot_writer_init: every key with its chain of versions whose
 * mod_revision <= R, from the compact revision C on. Writes after R are left
 * out (they are in the WAL after the snapshot): the writer skips versions
 * newer than R and keys that have none at or below R.
 *
 * The header also records applied_index, the index of the last WAL record
 * whose effect the snapshot includes (the caller's word: the shard passes
 * the index of the last record it applied before snapshot_writer_init).
 * Recovery loads the newest snapshot, then replays the WAL records with
 * index > applied_index. The store's revision is not enough for that: a WAL
 * record that wrote nothing (a failed transaction, a lease record) does not
 * move the revision but must not be replayed twice either.
 *
 * The stream is a sequence of chunks, each self-checking, so a reader can
 * verify (and a sender resend) chunk by chunk:
 *
 *   chunk 0       HEADER   what the snapshot is (revision, bounds)
 *   chunk 1..k    KEYS     key entries in key order, whole or split chains
 *   chunk k+1     TRAILER  exact totals and a checksum over chunk checksums
 *
 * Chunk frame (all integers little-endian):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    4 payload length n
 *        4    1 type: 1 HEADER, 2 KEYS, 3 TRAILER
 *        5    3 reserved, 0
 *        8    8 sequence number: 0 for the header, +1 per chunk
 *       16    n payload
 *     16+n    8 checksum64_seeded(bytes 0 .. 16+n-1, seed): seed 0 for the
 *               header, the header chunk's checksum for every later chunk
 *               (so a chunk of another snapshot never verifies)
 *
 * HEADER payload (SNAPSHOT_HEADER_SIZE = 64 bytes):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    8 magic SNAPSHOT_MAGIC ("KEELSNP1" read as a little-endian u64)
 *        8    4 format version, SNAPSHOT_FORMAT_VERSION
 *       12    4 flags, 0 (no flag is defined; a reader refuses unknown bits)
 *       16    8 shard id
 *       24    8 revision R (>= 1)
 *       32    8 compact revision C (0 <= C <= R)
 *       40    8 key count bound: keys in the tree at capture (>= keys written)
 *       48    8 record count bound: records at capture (>= versions written)
 *       56    8 applied_index: last WAL record index the snapshot includes
 *
 * The header carries bounds, not exact counts: the writer learns the exact
 * counts only by walking every key, which it does chunk by chunk after the
 * header is out. The trailer carries them exactly.
 *
 * KEYS payload:
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    4 entry count e (0 when every key the chunk visited was skipped)
 *        4    . e key entries, keys non-decreasing (see MORE)
 *
 * Key entry:
 *
 *   SIZE DESCRIPTION
 *    var key length (1 .. key_size_max)
 *    len key bytes
 *      1 entry flags: bit 0 MORE (the chain goes on in the next entry, which
 *        repeats the key and starts at the next older version)
 *      4 version count v (>= 1)
 *      . v versions, newest first (mod_revision strictly decreasing)
 *
 * Version:
 *
 *   SIZE DESCRIPTION
 *      1 flags: bit 0 TOMBSTONE, bit 1 LEASE
 *    var mod_revision (1 .. R)
 *    var version                              absent if TOMBSTONE
 *    var mod_revision - create_revision       absent if TOMBSTONE
 *    var lease                                present if LEASE
 *    var value length (<= value_size_max)     absent if TOMBSTONE
 *    len value bytes                          absent if TOMBSTONE
 *
 * TRAILER payload (SNAPSHOT_TRAILER_SIZE = 32 bytes):
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    8 chunk count before the trailer (= the trailer's sequence)
 *        8    8 key count (distinct keys)
 *       16    8 record count (versions)
 *       24    8 chain of chunk checksums: s = 0, then for each chunk before
 *               the trailer s = checksum64_seeded(its checksum as 8 LE bytes, s)
 *
 * Chains are written as compaction at C leaves them, whether or not the
 * store's compaction job has reached the key yet: the versions newer than C
 * and the newest at or below C (not if it is a tombstone). So a snapshot
 * taken while a compaction job runs is the same as one taken after it.
 *
 * Contract:
 *  - Single-threaded: the shard thread that owns the store, for writer and
 *    store alike. The loader owns the store it builds until it hands it out.
 *  - Between writer calls the store may change in any way except one: no
 *    compaction job may start while a writer is open (it would free versions
 *    the snapshot still has to write). The writer notices (the compact
 *    revision moved) and its next call returns KEEL_ECOMPACTED: the snapshot
 *    is void and must be started again. The shard defers compaction while it
 *    writes a snapshot. Batches may open, commit and abort between calls.
 *  - Bounded work: one snapshot_writer_next visits at most keys_per_chunk_max
 *    keys and writes at most bytes_max bytes. Resuming in the middle of a key
 *    walks past that key's versions newer than R (bounded by its chain).
 *  - The loader checks every checksum, sequence number, count and the
 *    chains' invariants (the ones mvcc_check walks); anything wrong is
 *    KEEL_ECORRUPT with a reason (snapshot_loader_error), and the half-built
 *    store is destroyed. A chunk that fails its frame checks (length,
 *    checksum, sequence) changes nothing, so the caller may fetch it again and
 *    retry; any other error is final. KEEL_ENOMEM when the store's budget is
 *    spent (also final).
 *  - A snapshot holds no lease expiry, only lease ids, as the store does.
 */
#ifndef KEEL_CORE_SNAPSHOT_H
#define KEEL_CORE_SNAPSHOT_H

#include "core/mvcc.h"
#include "core/types.h"

#define SNAPSHOT_MAGIC          0x31504E534C45454Bull /* "KEELSNP1" */
#define SNAPSHOT_FORMAT_VERSION 1u
#define SNAPSHOT_FRAME_SIZE     16u /* chunk frame before the payload */
#define SNAPSHOT_CHECKSUM_SIZE  8u
#define SNAPSHOT_HEADER_SIZE    64u
#define SNAPSHOT_TRAILER_SIZE   32u
#define SNAPSHOT_CHUNK_HEADER   1u
#define SNAPSHOT_CHUNK_KEYS     2u
#define SNAPSHOT_CHUNK_TRAILER  3u
#define SNAPSHOT_ENTRY_MORE     0x01u
#define SNAPSHOT_V_TOMBSTONE    0x01u
#define SNAPSHOT_V_LEASE        0x02u
#define SNAPSHOT_V_ALL          0x03u

/* The smallest bytes_max a writer accepts for a store of this config: a
 * frame, a header and trailer, or one key entry with one version of the
 * largest key and value. */
size_t snapshot_chunk_size_min(const struct mvcc_config *config);

/* Reads a chunk's total size (frame + payload + checksum) from its first
 * SNAPSHOT_FRAME_SIZE bytes; 0 if fewer bytes are given. */
size_t snapshot_chunk_size(const u8 *prefix, size_t len);

/* ---- writer ------------------------------------------------------------- */

enum snapshot_phase {
    SNAPSHOT_PHASE_HEADER = 0,
    SNAPSHOT_PHASE_KEYS = 1,
    SNAPSHOT_PHASE_TRAILER = 2,
    SNAPSHOT_PHASE_DONE = 3,
};

struct snapshot_writer {
    struct mvcc *m;
    u64 shard_id;
    u64 applied_index;    /* the caller's, written to the header */
    i64 revision;         /* R, captured at init */
    i64 compact_revision; /* C, captured at init */
    u64 key_count_max;
    u64 record_count_max;
    u32 keys_per_chunk_max;
    enum snapshot_phase phase;
    u64 seq;       /* the next chunk's sequence number */
    u64 seed;      /* the header chunk's checksum */
    u64 sum_chain; /* the trailer's chain of chunk checksums so far */
    u64 keys;      /* distinct keys written */
    u64 records;   /* versions written */
    /* Where the next chunk resumes: the first key >= cursor, and if that is
     * the cursor key itself, its versions with mod_revision < cursor_below. */
    u8 *cursor; /* heap, key_size_max bytes */
    size_t cursor_len;
    bool has_cursor;
    i64 cursor_below;
};

/* Captures the store's revision R and compact revision C (the committed
 * ones: a batch open at init is not in the snapshot). applied_index is the
 * last WAL record index whose effect the store holds; the header carries it.
 * KEEL_ENOMEM if the cursor cannot be allocated. keys_per_chunk_max >= 1. */
int snapshot_writer_init(struct snapshot_writer *w, struct mvcc *m, u64 shard_id, u64 applied_index,
                         u32 keys_per_chunk_max);
/* Writes the next chunk into buf (bytes_max >= snapshot_chunk_size_min) and
 * sets *len to its size (> 0 while the writer is not done). The call that
 * writes the trailer makes snapshot_writer_done true; calls after that set
 * *len = 0. KEEL_EINVALID if bytes_max is too small, KEEL_ECOMPACTED if a
 * compaction started since init (the snapshot is void). Work per call:
 * at most keys_per_chunk_max keys visited and bytes_max bytes written. */
int snapshot_writer_next(struct snapshot_writer *w, u8 *buf, size_t bytes_max, size_t *len);
/* True once the trailer has been written. */
bool snapshot_writer_done(const struct snapshot_writer *w);
void snapshot_writer_deinit(struct snapshot_writer *w);

/* ---- loader ------------------------------------------------------------- */

struct snapshot_loader {
    struct mvcc *m;    /* the store being built; NULL once handed out or failed */
    u64 shard_id;      /* from the header, once the header chunk is in */
    u64 applied_index; /* from the header: replay the WAL after this index */
    i64 revision;
    i64 compact_revision;
    u64 key_count_max;
    u64 record_count_max;
    u64 seq_next;
    u64 seed;
    u64 sum_chain;
    u64 keys;
    u64 records;
    bool done;   /* the trailer verified */
    bool failed; /* a final error: every later call fails */
    const char *error;
    /* The chain being built: its head, its oldest record so far, and whether
     * the last entry said MORE. */
    u32 head;
    u32 tail;
    bool more;
};

/* Creates the empty store the snapshot is loaded into (config as for
 * mvcc_create; key and value limits must admit the snapshot's). KEEL_ENOMEM. */
int snapshot_loader_init(struct snapshot_loader *l, const struct mvcc_config *config);
/* Verifies and applies one whole chunk (exactly snapshot_chunk_size bytes). */
int snapshot_loader_feed(struct snapshot_loader *l, struct span chunk);
/* Hands out the store once the trailer has verified; KEEL_ECORRUPT
 * ("truncated") before that. */
int snapshot_loader_finish(struct snapshot_loader *l, struct mvcc **out);
/* Destroys the store unless it was handed out. */
void snapshot_loader_deinit(struct snapshot_loader *l);
/* Why the last call failed (a static string), or NULL. */
const char *snapshot_loader_error(const struct snapshot_loader *l);

/* Loads a whole snapshot held in memory, chunk by chunk. applied_index
 * (nullable) gets the header's; *error (nullable) gets the reason of a
 * failure. Bytes after the trailer are KEEL_ECORRUPT. */
int snapshot_load(const struct mvcc_config *config, const u8 *bytes, size_t len, struct mvcc **out,
                  u64 *applied_index, const char **error);

#endif
