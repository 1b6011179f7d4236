/*
 * model_btree.c — core/btree against a sorted array.
 *
 * The reference model is the key universe itself (sorted, so index order is
 * key order), one ref per key (0 = absent) and a Fenwick tree over presence,
 * so that "next present key at or after i", "k-th present key" and "present
 * keys in [lo, hi)" are O(log n) and no model operation is O(n) per op.
 *
 * Entries' refs are not slab objects: a ref encodes the key's universe index
 * (bits 0..20, plus one) and a generation (bits 21..31) that changes on every
 * insert and btree_iter_set_ref, so a stale or misplaced ref is caught. The
 * tree only ever reads keys back through key_of, which decodes the index.
 *
 * The run has phases (grow, balanced, shrink) so the tree swings between a few
 * keys and most of the universe, rarely drains to empty or is destroyed and
 * rebuilt, and ends with a tight-memory stage in which inserts hit KEEL_ENOMEM
 * and the tree must come out unchanged.
 */
#include "tests/model/model.h"

#include "core/arena.h"
#include "core/assert.h"
#include "core/btree.h"
#include "core/slab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BT_KEYS           100000u /* universe size: the tree swings up to ~90,000 keys */
#define BT_KEY_LEN_MAX    72u     /* past the tree's 48-byte node prefix cap */
#define BT_IDX_BITS       21u
#define BT_IDX_MASK       ((1u << BT_IDX_BITS) - 1)
#define BT_NONE           UINT32_MAX /* model position past either end */
#define BT_WALK_STEPS_MAX 24u
#define BT_RUN_LEN_MAX    300u
#define BT_CHECK_EVERY    20000u         /* btree_check() is O(n) */
#define BT_COMPARE_EVERY  200000u        /* full walk of both directions against the model */
#define BT_TIGHT_BYTES    ((u64)1 << 20) /* one arena chunk for the tight-memory stage */

static_assert(BT_KEYS < BT_IDX_MASK, "key index must fit the ref's index bits");

struct bt_model {
    struct model_rng rng;
    struct model_keys keys;
    arena_ref *refs; /* per universe key: the ref stored under it, 0 = absent */
    u32 *fen;        /* Fenwick tree over presence, 1-based, BT_KEYS + 1 slots */
    u32 fen_top;     /* highest power of two <= keys.count */
    u64 count;
    u32 gen;
    u64 count_max;
    u64 enomem; /* inserts refused for memory (tight stage) */
    struct arena arena;
    struct slab slab;
    struct btree tree;
    u32 ins_pct; /* phase: share of inserts among single-key mutations */
    u64 phase_left;
};

/* ---- the model ------------------------------------------------------------------- */

static struct span bt_key_of(void *ctx, arena_ref ref)
{
    const struct model_keys *k = ctx;
    u32 idx = (ref & BT_IDX_MASK) - 1;
    MODEL_CHECK(idx < k->count, "key_of got ref %#x that the test never made", ref);
    return model_key(k, idx);
}

static arena_ref bt_ref_make(struct bt_model *m, u32 idx)
{
    m->gen++;
    return ((m->gen & 0x7ffu) << BT_IDX_BITS) | (idx + 1);
}

static void bt_fen_add(struct bt_model *m, u32 idx, int delta)
{
    for (u32 i = idx + 1; i <= m->keys.count; i += i & (0u - i)) m->fen[i] += (u32)delta;
}

/* Present keys with index < end. */
static u64 bt_fen_prefix(const struct bt_model *m, u32 end)
{
    u64 sum = 0;
    for (u32 i = end; i > 0; i -= i & (0u - i)) sum += m->fen[i];
    return sum;
}

/* Index of the k-th present key (k >= 1, k <= count). */
static u32 bt_fen_select(const struct bt_model *m, u64 k)
{
    u32 pos = 0;
    for (u32 step = m->fen_top; step != 0; step >>= 1) {
        if (pos + step <= m->keys.count && m->fen[pos + step] < k) {
            pos += step;
            k -= m->fen[pos];
        }
    }
    cr_assert(pos < m->keys.count && m->refs[pos] != 0);
    return pos;
}

/* First present key with index >= i, or BT_NONE. */
static u32 bt_next_present(const struct bt_model *m, u32 i)
{
    u64 before = bt_fen_prefix(m, i);
    return before == m->count ? BT_NONE : bt_fen_select(m, before + 1);
}

/* Last present key with index < i, or BT_NONE. */
static u32 bt_prev_present(const struct bt_model *m, u32 i)
{
    u64 before = bt_fen_prefix(m, i);
    return before == 0 ? BT_NONE : bt_fen_select(m, before);
}

static void bt_model_set(struct bt_model *m, u32 idx, arena_ref ref)
{
    cr_assert(m->refs[idx] == 0 && ref != 0);
    m->refs[idx] = ref;
    bt_fen_add(m, idx, 1);
    m->count++;
    if (m->count > m->count_max) m->count_max = m->count;
}

static void bt_model_clear(struct bt_model *m, u32 idx)
{
    cr_assert(m->refs[idx] != 0 && m->count > 0);
    m->refs[idx] = 0;
    bt_fen_add(m, idx, -1);
    m->count--;
}

static void bt_model_reset(struct bt_model *m)
{
    memset(m->refs, 0, sizeof(arena_ref) * m->keys.count);
    memset(m->fen, 0, sizeof(u32) * (m->keys.count + 1));
    m->count = 0;
}

static u32 bt_pick_present(struct bt_model *m)
{
    cr_assert(m->count > 0);
    return bt_fen_select(m, 1 + model_rng_below(&m->rng, m->count));
}

/* ---- single-key mutations ----------------------------------------------------------- */

static void bt_op_insert(struct bt_model *m, u32 idx)
{
    struct span key = model_key(&m->keys, idx);
    arena_ref ref = bt_ref_make(m, idx);
    arena_ref existing = 0xdeadbeefu;
    u64 count_before = m->tree.count;
    int rc = btree_insert(&m->tree, key, ref, &existing);
    if (rc == KEEL_ENOMEM && m->enomem != UINT64_MAX) {
        /* Only the tight-memory stage may run out, and then the tree is unchanged. */
        MODEL_CHECK(m->refs[idx] == 0, "ENOMEM inserting key #%u that is present", idx);
        MODEL_CHECK(m->tree.count == count_before, "ENOMEM changed count");
        MODEL_CHECK(btree_get(&m->tree, key) == 0, "ENOMEM left key #%u in the tree", idx);
        m->enomem++;
        return;
    }
    MODEL_CHECK(rc == KEEL_OK, "insert key #%u: rc=%d (%s)", idx, rc, keel_err_str(rc));
    if (m->refs[idx] != 0) {
        MODEL_CHECK(existing == m->refs[idx], "insert of present key #%u: existing=%#x, want %#x",
                    idx, existing, m->refs[idx]);
    } else {
        MODEL_CHECK(existing == 0, "insert of absent key #%u: existing=%#x, want 0", idx, existing);
        bt_model_set(m, idx, ref);
    }
    MODEL_CHECK(m->tree.count == m->count, "count %llu, model %llu",
                (unsigned long long)m->tree.count, (unsigned long long)m->count);
}

static void bt_op_remove(struct bt_model *m, u32 idx)
{
    arena_ref got = btree_remove(&m->tree, model_key(&m->keys, idx));
    MODEL_CHECK(got == m->refs[idx], "remove key #%u: got ref %#x, want %#x", idx, got,
                m->refs[idx]);
    if (m->refs[idx] != 0) bt_model_clear(m, idx);
    MODEL_CHECK(m->tree.count == m->count, "count %llu, model %llu",
                (unsigned long long)m->tree.count, (unsigned long long)m->count);
}

static void bt_op_mutate(struct bt_model *m)
{
    if (model_rng_below(&m->rng, 100) < m->ins_pct) {
        bt_op_insert(m, (u32)model_rng_below(&m->rng, m->keys.count));
    } else if (m->count > 0 && model_rng_chance(&m->rng, 500)) {
        bt_op_remove(m, bt_pick_present(m));
    } else {
        bt_op_remove(m, (u32)model_rng_below(&m->rng, m->keys.count));
    }
}

/* A run of consecutive keys, inserted or removed, ascending or descending. */
static void bt_op_run(struct bt_model *m)
{
    u32 len = 1 + (u32)model_rng_below(&m->rng, BT_RUN_LEN_MAX);
    u32 start = (u32)model_rng_below(&m->rng, m->keys.count);
    bool insert = model_rng_below(&m->rng, 100) < m->ins_pct;
    bool down = model_rng_chance(&m->rng, 300);
    for (u32 i = 0; i < len; i++) {
        u32 idx = down ? start - KEEL_MIN(i, start) : start + i;
        if (idx >= m->keys.count) break;
        if (insert) {
            bt_op_insert(m, idx);
        } else {
            bt_op_remove(m, idx);
        }
        if (down && idx == 0) break;
    }
}

/* ---- reads ------------------------------------------------------------------------ */

static void bt_check_pos(struct bt_model *m, const struct btree_iter *it, u32 pos, const char *how)
{
    if (pos == BT_NONE) {
        MODEL_CHECK(!btree_iter_valid(it), "%s: iterator valid, model says past the end", how);
        return;
    }
    MODEL_CHECK(btree_iter_valid(it), "%s: iterator past the end, model at key #%u", how, pos);
    struct span want = model_key(&m->keys, pos);
    struct span got = btree_iter_key(it);
    MODEL_CHECK(model_key_eq(got, want),
                "%s: iterator key (len %zu) differs from key #%u (len %zu)", how, got.len, pos,
                want.len);
    arena_ref ref = btree_iter_ref(it);
    MODEL_CHECK(ref == m->refs[pos], "%s: iterator ref %#x, want %#x (key #%u)", how, ref,
                m->refs[pos], pos);
}

/* Steps the iterator a few times, mostly in one direction, checking each stop. */
static void bt_walk(struct bt_model *m, struct btree_iter *it, u32 pos)
{
    u32 steps = (u32)model_rng_below(&m->rng, BT_WALK_STEPS_MAX + 1);
    bool forward = model_rng_chance(&m->rng, 500);
    for (u32 i = 0; i < steps && pos != BT_NONE; i++) {
        if (model_rng_chance(&m->rng, 100)) forward = !forward;
        if (forward) {
            btree_iter_next(it);
            pos = bt_next_present(m, pos + 1);
            bt_check_pos(m, it, pos, "next");
        } else {
            btree_iter_prev(it);
            pos = bt_prev_present(m, pos);
            bt_check_pos(m, it, pos, "prev");
        }
    }
}

static void bt_op_get(struct bt_model *m)
{
    u8 buf[MODEL_PROBE_LEN_MAX];
    struct span key = model_keys_probe(&m->keys, &m->rng, buf);
    u32 lb = model_keys_lower_bound(&m->keys, key);
    bool hit = lb < m->keys.count && model_key_eq(model_key(&m->keys, lb), key);
    arena_ref want = hit ? m->refs[lb] : 0;
    arena_ref got = btree_get(&m->tree, key);
    MODEL_CHECK(got == want, "get (key len %zu, near #%u): got %#x, want %#x", key.len, lb, got,
                want);
}

static void bt_op_seek(struct bt_model *m)
{
    u8 buf[MODEL_PROBE_LEN_MAX];
    struct span key = model_keys_probe(&m->keys, &m->rng, buf);
    u32 lb = model_keys_lower_bound(&m->keys, key);
    struct btree_iter it;
    u32 pos;
    if (model_rng_chance(&m->rng, 600)) {
        btree_iter_seek_ge(&it, &m->tree, key);
        pos = bt_next_present(m, lb);
        bt_check_pos(m, &it, pos, "seek_ge");
    } else {
        btree_iter_seek_lt(&it, &m->tree, key);
        pos = bt_prev_present(m, lb);
        bt_check_pos(m, &it, pos, "seek_lt");
    }
    bt_walk(m, &it, pos);
}

static void bt_op_edge(struct bt_model *m)
{
    struct btree_iter it;
    u32 pos;
    if (model_rng_chance(&m->rng, 500)) {
        btree_iter_first(&it, &m->tree);
        pos = bt_next_present(m, 0);
        bt_check_pos(m, &it, pos, "first");
    } else {
        btree_iter_last(&it, &m->tree);
        pos = bt_prev_present(m, m->keys.count);
        bt_check_pos(m, &it, pos, "last");
    }
    bt_walk(m, &it, pos);
}

static void bt_op_count_range(struct bt_model *m)
{
    u8 a[MODEL_PROBE_LEN_MAX];
    u8 b[MODEL_PROBE_LEN_MAX];
    struct span start = model_keys_probe(&m->keys, &m->rng, a);
    struct span end = span_make(b, 0);
    if (model_rng_chance(&m->rng, 800)) end = model_keys_probe(&m->keys, &m->rng, b);
    u32 lo = model_keys_lower_bound(&m->keys, start);
    u32 hi = end.len == 0 ? m->keys.count : model_keys_lower_bound(&m->keys, end);
    /* start >= end counts nothing: no key is both >= start and < end. */
    u64 want = hi > lo ? bt_fen_prefix(m, hi) - bt_fen_prefix(m, lo) : 0;
    u64 got = btree_count_range(&m->tree, start, end);
    MODEL_CHECK(got == want, "count_range [#%u, #%u) (end len %zu): got %llu, want %llu", lo, hi,
                end.len, (unsigned long long)got, (unsigned long long)want);
}

static void bt_op_set_ref(struct bt_model *m)
{
    u8 buf[MODEL_PROBE_LEN_MAX];
    struct span key = model_keys_probe(&m->keys, &m->rng, buf);
    struct btree_iter it;
    btree_iter_seek_ge(&it, &m->tree, key);
    u32 pos = bt_next_present(m, model_keys_lower_bound(&m->keys, key));
    bt_check_pos(m, &it, pos, "seek_ge before set_ref");
    if (pos == BT_NONE) return;
    arena_ref ref = bt_ref_make(m, pos);
    btree_iter_set_ref(&it, ref);
    m->refs[pos] = ref;
    bt_check_pos(m, &it, pos, "after set_ref");
    arena_ref got = btree_get(&m->tree, model_key(&m->keys, pos));
    MODEL_CHECK(got == ref, "get after set_ref of key #%u: got %#x, want %#x", pos, got, ref);
    bt_walk(m, &it, pos); /* set_ref must not invalidate the iterator */
}

static void bt_op_key_cmp(struct bt_model *m)
{
    u8 a[MODEL_PROBE_LEN_MAX];
    u8 b[MODEL_PROBE_LEN_MAX];
    struct span x = model_keys_probe(&m->keys, &m->rng, a);
    struct span y = model_rng_chance(&m->rng, 100) ? x : model_keys_probe(&m->keys, &m->rng, b);
    int want = model_key_cmp(x, y);
    int got = btree_key_cmp(x, y);
    int sign = (got > 0) - (got < 0);
    MODEL_CHECK(sign == want, "btree_key_cmp: got %d, want sign %d (lens %zu, %zu)", got, want,
                x.len, y.len);
}

/* ---- whole-tree checks ---------------------------------------------------------------- */

static void bt_check_tree(struct bt_model *m)
{
    MODEL_CHECK(btree_check(&m->tree), "btree_check failed with %llu keys",
                (unsigned long long)m->count);
    MODEL_CHECK(m->tree.count == m->count, "count %llu, model %llu",
                (unsigned long long)m->tree.count, (unsigned long long)m->count);
    bool empty = m->count == 0;
    MODEL_CHECK(empty == (m->tree.root == 0), "root %#x with %llu keys", m->tree.root,
                (unsigned long long)m->count);
    MODEL_CHECK(empty == (m->tree.height == 0), "height %u with %llu keys", m->tree.height,
                (unsigned long long)m->count);
    MODEL_CHECK(empty == (m->tree.first == 0), "first leaf %#x with %llu keys", m->tree.first,
                (unsigned long long)m->count);
}

/* Walks the whole tree both ways against the model. O(n); rare. */
static void bt_compare_all(struct bt_model *m)
{
    struct btree_iter it;
    btree_iter_first(&it, &m->tree);
    u32 pos = bt_next_present(m, 0);
    u64 seen = 0;
    /* Bound: one step per present key; the model ends the walk at BT_NONE. */
    for (; pos != BT_NONE; seen++) {
        bt_check_pos(m, &it, pos, "full walk forward");
        btree_iter_next(&it);
        pos = bt_next_present(m, pos + 1);
    }
    bt_check_pos(m, &it, BT_NONE, "full walk forward end");
    MODEL_CHECK(seen == m->count, "forward walk saw %llu keys, model %llu",
                (unsigned long long)seen, (unsigned long long)m->count);
    btree_iter_last(&it, &m->tree);
    pos = bt_prev_present(m, m->keys.count);
    for (; pos != BT_NONE; pos = bt_prev_present(m, pos)) {
        bt_check_pos(m, &it, pos, "full walk backward");
        btree_iter_prev(&it);
    }
    bt_check_pos(m, &it, BT_NONE, "full walk backward end");
    bt_check_tree(m);
}

static void bt_check_no_nodes(struct bt_model *m, const char *how)
{
    struct slab_stats st;
    slab_stats(&m->slab, &st);
    MODEL_CHECK(st.objects_live == 0, "%s: %llu slab objects still live (nodes leaked)", how,
                (unsigned long long)st.objects_live);
    MODEL_CHECK(slab_check(&m->slab), "%s: slab_check failed", how);
}

/* Removes every key, ascending, descending or in random order; the tree must end empty. */
static void bt_op_drain(struct bt_model *m)
{
    u32 order = (u32)model_rng_below(&m->rng, 3);
    /* Bound: one remove per present key. */
    while (m->count > 0) {
        u32 idx;
        if (order == 0) {
            idx = bt_next_present(m, 0);
        } else if (order == 1) {
            idx = bt_prev_present(m, m->keys.count);
        } else {
            idx = bt_pick_present(m);
        }
        bt_op_remove(m, idx);
    }
    bt_check_tree(m);
    bt_check_no_nodes(m, "drained tree");
}

static void bt_op_rebuild(struct bt_model *m)
{
    btree_destroy(&m->tree);
    bt_check_no_nodes(m, "btree_destroy");
    btree_init(&m->tree, &m->slab, bt_key_of, &m->keys);
    bt_model_reset(m);
    bt_check_tree(m);
}

/* ---- the run ---------------------------------------------------------------------------- */

static void bt_new_phase(struct bt_model *m)
{
    static const u32 ins_pct[] = {20, 35, 50, 50, 65, 80, 90};
    m->ins_pct = ins_pct[model_rng_below(&m->rng, KEEL_ARRAY_LEN(ins_pct))];
    m->phase_left = 10000 + model_rng_below(&m->rng, 150000);
}

static void bt_step(struct bt_model *m)
{
    u32 roll = (u32)model_rng_below(&m->rng, 1000);
    if (roll < 430) {
        bt_op_mutate(m);
    } else if (roll < 445) {
        bt_op_run(m);
    } else if (roll < 560) {
        bt_op_get(m);
    } else if (roll < 760) {
        bt_op_seek(m);
    } else if (roll < 790) {
        bt_op_edge(m);
    } else if (roll < 870) {
        bt_op_count_range(m);
    } else if (roll < 910) {
        bt_op_set_ref(m);
    } else if (roll < 930) {
        bt_op_key_cmp(m);
    } else {
        bt_op_mutate(m);
    }
}

static void bt_setup(struct bt_model *m, u64 seed, u64 arena_bytes)
{
    memset(m, 0, sizeof(*m));
    model_rng_seed(&m->rng, seed);
    model_keys_generate(&m->keys, &m->rng, BT_KEYS, BT_KEY_LEN_MAX);
    m->refs = calloc(m->keys.count, sizeof(arena_ref));
    m->fen = calloc(m->keys.count + 1, sizeof(u32));
    cr_assert(m->refs != NULL && m->fen != NULL);
    m->fen_top = 1;
    while (m->fen_top * 2 <= m->keys.count) m->fen_top *= 2;
    cr_assert(arena_init(&m->arena, arena_bytes) == KEEL_OK);
    slab_init(&m->slab, &m->arena);
    btree_init(&m->tree, &m->slab, bt_key_of, &m->keys);
    m->enomem = UINT64_MAX; /* ENOMEM is a failure until the tight stage allows it */
}

static void bt_teardown(struct bt_model *m)
{
    btree_destroy(&m->tree);
    bt_check_no_nodes(m, "final btree_destroy");
    arena_deinit(&m->arena);
    free(m->refs);
    free(m->fen);
    model_keys_free(&m->keys);
}

static void bt_random_ops(struct bt_model *m, u64 ops)
{
    model_run.phase = "random ops";
    model_run.in_loop = true;
    for (u64 op = 0; op < ops; op++) {
        model_run.op = op;
        if (m->phase_left-- == 0) bt_new_phase(m);
        bt_step(m);
        if (op % BT_CHECK_EVERY == BT_CHECK_EVERY - 1 || (m->count < 200 && op % 512 == 0)) {
            bt_check_tree(m);
        }
        if (op % BT_COMPARE_EVERY == BT_COMPARE_EVERY - 1) bt_compare_all(m);
        if (model_rng_below(&m->rng, 250000) == 0) {
            bt_op_drain(m);
        } else if (model_rng_below(&m->rng, 400000) == 0) {
            bt_op_rebuild(m);
        }
    }
    model_run.in_loop = false;
    model_run.phase = "final full compare";
    bt_compare_all(m);
}

/* A tree in one arena chunk: fill it until inserts fail, then churn at the limit. Every
 * KEEL_ENOMEM must leave the tree as it was (bt_op_insert checks), and removes never fail. */
static void bt_tight_stage(u64 seed, u64 ops)
{
    struct bt_model m;
    bt_setup(&m, seed ^ 0x7469676874ull, BT_TIGHT_BYTES);
    m.enomem = 0;
    model_run.phase = "tight-memory stage: fill";
    /* Bound: at most one insert per universe key. */
    for (u32 i = 0; i < m.keys.count && m.enomem == 0; i++) {
        bt_op_insert(&m, (u32)model_rng_below(&m.rng, m.keys.count));
    }
    MODEL_CHECK(m.enomem > 0, "%llu keys fit in %llu bytes: the stage never hit the budget",
                (unsigned long long)m.count, (unsigned long long)BT_TIGHT_BYTES);
    bt_check_tree(&m);
    u64 full = m.count;
    model_run.phase = "tight-memory stage: churn";
    for (u64 op = 0; op < ops; op++) {
        model_run.op = op;
        if (m.phase_left-- == 0) {
            bt_new_phase(&m);
            m.ins_pct = KEEL_MAX(m.ins_pct, 50u); /* stay near the limit */
        }
        bt_step(&m);
        if (op % 5000 == 4999) bt_check_tree(&m);
    }
    bt_compare_all(&m);
    printf("model: btree tight stage: %llu keys filled the budget, %llu inserts refused\n",
           (unsigned long long)full, (unsigned long long)m.enomem);
    bt_teardown(&m);
}

void model_btree_run(u64 seed, u64 ops)
{
    struct bt_model m;
    model_run_begin("btree", "model_btree", seed, ops);
    bt_setup(&m, seed, (u64)1 << 30);
    bt_random_ops(&m, ops);
    printf("model: btree seed=%llu: up to %llu keys, %llu at the end, height %u\n",
           (unsigned long long)seed, (unsigned long long)m.count_max, (unsigned long long)m.count,
           m.tree.height);
    model_run.phase = "drain and destroy";
    bt_op_drain(&m);
    bt_teardown(&m);
    bt_tight_stage(seed, ops / 10);
    model_run_end();
}
