/*
 * model_mvcc.h — the reference model of core/mvcc, shared by model_mvcc.c
 * (writes, batches, compaction, the run) and model_mvcc_range.c (reads).
 *
 * The model is as naive as it can be: for every key of a fixed sorted
 * universe, the full list of its versions, oldest first, each with its
 * revisions, version, lease and value (a value is stored as the seed and length
 * it is generated from, so values cost nothing to keep and are regenerated to
 * compare bytes). A read at revision R takes, per key, the newest version with
 * mod_revision <= R, absent if that is a tombstone. Compaction at C drops, per
 * key, every version older than the newest one at or below C, and that one too
 * if it is a tombstone, exactly as mvcc.h states.
 *
 * Every write goes through a pending list first (a put or delete outside a
 * batch is a batch of one): commit applies the list at revision + 1, abort
 * drops it.
 */
#ifndef KEEL_TESTS_MODEL_MODEL_MVCC_H
#define KEEL_TESTS_MODEL_MODEL_MVCC_H

#include "tests/model/model.h"

#include "core/mvcc.h"

#define MV_KEYS          60000u /* universe: the store holds up to ~45,000 live keys */
#define MV_KEY_LEN_MAX   40u    /* key_size_max of the store under test */
#define MV_VALUE_MAX     300u   /* value_size_max of the store under test */
#define MV_VALUE_OVER    20u    /* oversized values reach MV_VALUE_MAX + MV_VALUE_OVER */
#define MV_BATCH_OPS_MAX 500u

struct mv_version {
    i64 mod_rev;
    i64 create_rev;
    i64 version;
    i64 lease;
    u64 vseed; /* the value is mv_value(vseed, vlen) */
    u32 vlen;
    bool tomb;
};

struct mv_key {
    struct mv_version *v; /* oldest first */
    u32 len;
    u32 cap;
    u64 mark; /* == batch_serial: written by the open batch */
    u64 seen; /* == seen_serial: already returned by the read being checked */
};

/* A write of the open batch, applied at commit. */
struct mv_pend {
    u32 idx;
    bool tomb;
    u32 vlen;
    u64 vseed;
    i64 lease;
};

/* A key range of a read or delete, as spans for the store and [lo, hi) in the universe. */
struct mv_range {
    u8 key_buf[MODEL_PROBE_LEN_MAX];
    u8 end_buf[MODEL_PROBE_LEN_MAX];
    struct span key;
    struct span end; /* empty: key alone; "\0": to the end */
    u32 lo;
    u32 hi;
};

enum mv_range_kind {
    MV_RANGE_SINGLE,
    MV_RANGE_SMALL, /* up to 40 keys of the universe */
    MV_RANGE_FEW,   /* up to 8 */
    MV_RANGE_PREFIX,
    MV_RANGE_TO_END,
    MV_RANGE_ALL,
};

struct mv_model {
    struct model_rng rng;
    struct model_keys keys;
    struct mv_key *k;
    i64 rev;
    i64 compact_rev;
    u64 keys_live;
    u64 keys_tree;
    u64 records;
    u64 key_bytes;
    u64 value_bytes;
    struct mvcc *store;
    struct mvcc_config cfg;
    bool job;        /* a compaction job started by mvcc_compact_start is running */
    bool job_writes; /* writes may run between its steps */
    u64 job_steps;
    u64 batch_serial;
    u64 seen_serial;
    struct mv_pend *pend; /* MV_BATCH_OPS_MAX + 1 */
    u32 pend_len;
    struct mv_exp *exp; /* one per universe key */
    u8 *value_a;        /* MV_VALUE_MAX + MV_VALUE_OVER bytes each */
    u8 *value_b;
    u32 put_pm; /* phase: shares of puts, single deletes and short range deletes */
    u32 del_pm;
    u32 del_few_pm;
    u64 phase_left;
    /* figures for the report */
    u64 live_max;
    u64 n_put, n_del, n_range, n_batch, n_abort, n_dup, n_compact, n_job, n_fail_expected;
};

/* An expected range entry: the key and its version at the read revision. */
struct mv_exp {
    u32 idx;
    const struct mv_version *v;
};

/* Model (model_mvcc.c). */
void mv_value(u64 vseed, u32 vlen, u8 *dst);
const struct mv_version *mv_live(const struct mv_key *k);
const struct mv_version *mv_at(const struct mv_key *k, i64 rev);
void mv_check_kv(struct mv_model *m, u32 idx, const struct mv_version *v, const struct mvcc_kv *kv,
                 bool keys_only, const char *what);
i64 mv_pick_rev(struct mv_model *m);

/* Ranges and reads (model_mvcc_range.c). */
void mv_pick_range(struct mv_model *m, enum mv_range_kind kind, struct mv_range *r);
enum mv_range_kind mv_pick_range_kind(struct mv_model *m);
void mv_op_range(struct mv_model *m);
void mv_op_range_errors(struct mv_model *m);
/* Reads all of [r->lo, r->hi) at rev with no limit and compares every key. */
void mv_compare_range(struct mv_model *m, const struct mv_range *r, i64 rev);
void mv_compare_all(struct mv_model *m, i64 rev);

#endif
