/*
 * test_btree.c — the B+tree against its contract in core/btree.h.
 *
 * Entries are "records" of our own: slab objects laid out as
 *
 *   OFFSET SIZE DESCRIPTION
 *        0    2 len (u16, little-endian)
 *        2  len key bytes
 *
 * read back by rec_key_of. Records share the tree's slab, as the contract
 * requires (entry refs are refs into the tree's slab). So "the tree freed its
 * nodes" reads as "slab in use is 0 once every record is freed too", and the
 * ENOMEM tests allocate their records first, then spend the rest of the budget
 * on filler pages so that only a few pages are left for nodes.
 *
 * Expected answers come from a sorted key array searched with our own
 * memcmp-then-length comparison (key_cmp), not from the tree. Randomized
 * tests take KEEL_SEED (and KEEL_OPS) from the environment and print the seed.
 */
#include "core/btree.h"
#include "core/buf.h"

#include <criterion/criterion.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB      ((u64)1 << 20)
#define KEY_CAP  80
#define KEYS_MAX 40000

struct tkey {
    u16 len;
    u8 b[KEY_CAP];
};

static struct arena arena;
static struct slab slab; /* records and nodes */
static struct btree tree;
static struct tkey keys[KEYS_MAX]; /* sorted ascending by every generator */
static arena_ref refs[KEYS_MAX];   /* refs[i] != 0 when keys[i] is in the tree */
static size_t nkeys;
static size_t order[KEYS_MAX];
static u64 rng_state;

/* ---- helpers: randomness, records, keys --------------------------------- */

static u64 rng_next(void)
{
    u64 z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(const char *test)
{
    const char *env = getenv("KEEL_SEED");
    u64 seed = env ? strtoull(env, NULL, 0) : (u64)time(NULL) ^ ((u64)getpid() << 32);
    fprintf(stderr, "%s: KEEL_SEED=%llu\n", test, (unsigned long long)seed);
    rng_state = seed;
}

static struct span rec_key_of(void *ctx, arena_ref ref)
{
    const u8 *p = slab_ptr((struct slab *)ctx, ref);
    return span_make(p + 2, load_u16_le(p));
}

static arena_ref rec_new(struct span key)
{
    arena_ref ref;
    cr_assert_eq(slab_alloc(&slab, 2 + key.len, &ref), KEEL_OK);
    u8 *p = slab_ptr(&slab, ref);
    store_u16_le(p, (u16)key.len);
    memcpy(p + 2, key.ptr, key.len);
    return ref;
}

static void rec_free(arena_ref ref)
{
    slab_free(&slab, ref, 2 + rec_key_of(&slab, ref).len);
}

static struct span S(const char *s) {
    return span_make(s, strlen(s));
}

static struct span
K(size_t i) {
    return span_make(keys[i].b, keys[i].len);
}

static int
key_cmp(struct span a, struct span b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.ptr, b.ptr, n) : 0;
    if (c != 0) return c < 0 ? -1 : 1;
    return a.len < b.len ? -1 : a.len > b.len;
}

static bool span_eq(struct span a, struct span b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

__attribute__((format(printf, 2, 3))) static void key_set(size_t i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)keys[i].b, KEY_CAP, fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && n < KEY_CAP);
    keys[i].len = (u16)n;
}

static void keys_seq(size_t n) /* "k00000000" .. ascending */
{
    for (size_t i = 0; i < n; i++) key_set(i, "k%08zu", i);
    nkeys = n;
}

static void keys_path(size_t ns, size_t names) /* shared prefixes longer than a head */
{
    for (size_t i = 0; i < ns * names; i++) {
        key_set(i, "/registry/pods/ns-%05zu/name-%06zu", i / names, i % names);
    }
    nkeys = ns * names;
}

static void order_identity(size_t n)
{
    for (size_t i = 0; i < n; i++) order[i] = i;
}

static void order_shuffle(size_t n)
{
    order_identity(n);
    for (size_t i = n; i > 1; i--) {
        size_t j = rng_next() % i;
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

/* ---- helpers: the tree -------------------------------------------------- */

static void btree_setup(void)
{
    cr_assert_eq(arena_init(&arena, 1024 * MiB), KEEL_OK);
    slab_init(&slab, &arena);
    btree_init(&tree, &slab, rec_key_of, &slab);
    memset(refs, 0, sizeof(refs));
    nkeys = 0;
}

static void btree_teardown(void)
{
    arena_deinit(&arena);
}

TestSuite(btree, .init = btree_setup, .fini = btree_teardown);

static void put(size_t i)
{
    cr_assert_eq(refs[i], 0);
    arena_ref ref = rec_new(K(i)), existing = 12345;
    cr_assert_eq(btree_insert(&tree, K(i), ref, &existing), KEEL_OK);
    cr_assert_eq(existing, 0, "key %zu (%.*s) was new", i, keys[i].len, (const char *)keys[i].b);
    refs[i] = ref;
}

static void del(size_t i)
{
    cr_assert_neq(refs[i], 0);
    cr_assert_eq(btree_remove(&tree, K(i)), refs[i], "remove key %zu", i);
    rec_free(refs[i]);
    refs[i] = 0;
}

static void put_in_order(size_t n)
{
    u64 before = tree.count;
    for (size_t k = 0; k < n; k++) put(order[k]);
    cr_assert_eq(tree.count, before + n);
}

static void del_in_order(size_t n)
{
    for (size_t k = 0; k < n; k++) del(order[k]);
}

/* The tree holds exactly the keys i with refs[i] != 0, in order, both ways. */
static void assert_tree_matches(void)
{
    struct btree_iter it;
    size_t present = 0;
    btree_iter_first(&it, &tree);
    for (size_t i = 0; i < nkeys; i++) {
        if (refs[i] == 0) continue;
        present++;
        cr_assert(btree_iter_valid(&it), "iteration ended before key %zu", i);
        cr_assert_eq(btree_iter_ref(&it), refs[i], "forward: key %zu", i);
        cr_assert(span_eq(btree_iter_key(&it), K(i)));
        btree_iter_next(&it);
    }
    cr_assert_not(btree_iter_valid(&it), "extra entries after the last key");
    cr_assert_eq(tree.count, present);
    btree_iter_last(&it, &tree);
    for (size_t i = nkeys; i-- > 0;) {
        if (refs[i] == 0) continue;
        cr_assert(btree_iter_valid(&it), "backward iteration ended before key %zu", i);
        cr_assert_eq(btree_iter_ref(&it), refs[i], "backward: key %zu", i);
        btree_iter_prev(&it);
    }
    cr_assert_not(btree_iter_valid(&it));
    cr_assert(btree_check(&tree));
}

static void assert_all_found(void)
{
    for (size_t i = 0; i < nkeys; i++) {
        cr_assert_eq(btree_get(&tree, K(i)), refs[i], "get key %zu", i);
    }
}

static struct slab_stats slab_now(void)
{
    struct slab_stats st;
    slab_stats(&slab, &st);
    return st;
}

static void assert_empty_tree(void)
{
    struct btree_iter it;
    cr_assert_eq(tree.count, 0);
    cr_assert_eq(tree.root, 0);
    cr_assert_eq(tree.height, 0);
    cr_assert_eq(tree.leaves + tree.inners, 0);
    btree_iter_first(&it, &tree);
    cr_assert_not(btree_iter_valid(&it));
    btree_iter_last(&it, &tree);
    cr_assert_not(btree_iter_valid(&it));
    struct slab_stats st = slab_now();
    cr_assert_eq(st.in_use_bytes, 0, "with every record freed, an empty tree holds no memory");
    cr_assert_eq(st.objects_live, 0);
    cr_assert(btree_check(&tree));
    cr_assert(slab_check(&slab));
}

/* ---- empty tree, insert, get, remove ------------------------------------ */

Test(btree, empty_tree)
{
    struct btree_iter it;
    cr_assert_eq(btree_get(&tree, S("a")), 0);
    btree_iter_seek_ge(&it, &tree, S("a"));
    cr_assert_not(btree_iter_valid(&it));
    btree_iter_seek_lt(&it, &tree, S("a"));
    cr_assert_not(btree_iter_valid(&it));
    cr_assert_eq(btree_count_range(&tree, S("a"), S("z")), 0);
    cr_assert_eq(btree_count_range(&tree, S(""), S("")), 0);
    cr_assert_eq(btree_remove(&tree, S("a")), 0);
    cr_assert_null(btree_slot(&tree, S("a")));
    assert_empty_tree();
}

Test(btree, insert_get_and_duplicate_returns_existing)
{
    arena_ref b = rec_new(S("b")), a = rec_new(S("a")), c = rec_new(S("c"));
    arena_ref existing = 99;
    cr_assert_eq(btree_insert(&tree, S("b"), b, &existing), KEEL_OK);
    cr_assert_eq(existing, 0);
    cr_assert_eq(btree_insert(&tree, S("a"), a, &existing), KEEL_OK);
    cr_assert_eq(btree_insert(&tree, S("c"), c, &existing), KEEL_OK);
    cr_assert_eq(existing, 0);
    cr_assert_eq(tree.count, 3);
    cr_assert_eq(btree_get(&tree, S("a")), a);
    cr_assert_eq(btree_get(&tree, S("b")), b);
    cr_assert_eq(btree_get(&tree, S("c")), c);
    cr_assert_eq(btree_get(&tree, S("d")), 0);
    cr_assert_eq(btree_get(&tree, S("bb")), 0);
    arena_ref b2 = rec_new(S("b"));
    cr_assert_eq(btree_insert(&tree, S("b"), b2, &existing), KEEL_OK);
    cr_assert_eq(existing, b, "a duplicate insert reports the stored ref");
    cr_assert_eq(btree_get(&tree, S("b")), b, "and changes nothing");
    cr_assert_eq(tree.count, 3);
    arena_ref *slot = btree_slot(&tree, S("b"));
    cr_assert_not_null(slot);
    cr_assert_eq(*slot, b);
    cr_assert(btree_check(&tree));
}

Test(btree, remove_present_and_absent)
{
    keys_seq(5);
    order_identity(5);
    put_in_order(5);
    del(2);
    cr_assert_eq(btree_get(&tree, K(2)), 0);
    cr_assert_eq(btree_remove(&tree, K(2)), 0, "removing twice returns 0");
    cr_assert_eq(btree_remove(&tree, S("zz")), 0, "absent after the last key");
    cr_assert_eq(btree_remove(&tree, S("a")), 0, "absent before the first key");
    cr_assert_eq(btree_remove(&tree, S("k0000000")), 0, "a prefix of a present key");
    cr_assert_eq(btree_remove(&tree, S("k000000010")), 0, "a present key plus a byte");
    cr_assert_eq(tree.count, 4);
    assert_all_found();
    assert_tree_matches();
    del(0);
    del(4);
    del(1);
    del(3);
    assert_empty_tree();
}

/* ---- order -------------------------------------------------------------- */

Test(btree, key_cmp_is_memcmp_then_length)
{
    cr_assert_lt(btree_key_cmp(S("a"), span_make("a\0", 2)), 0);
    cr_assert_lt(btree_key_cmp(span_make("a\0", 2), S("b")), 0);
    cr_assert_gt(btree_key_cmp(S("b"), S("a")), 0);
    cr_assert_eq(btree_key_cmp(S("abc"), S("abc")), 0);
    cr_assert_gt(btree_key_cmp(S("\x80"), S("\x7f")), 0, "bytes compare unsigned");
    cr_assert_gt(btree_key_cmp(S("\xff"), S("zzzz")), 0);
    cr_assert_lt(btree_key_cmp(S(""), S("a")), 0);
    cr_assert_eq(btree_key_cmp(S(""), S("")), 0);
    cr_assert_gt(btree_key_cmp(S("ab"), S("a")), 0);
}

Test(btree, iteration_order_is_memcmp_then_length)
{
    static const struct {
        const char *s;
        size_t len;
    } want[] = {
        {"\x00", 1},      {"\x00\x00", 2}, {"\x01", 1}, {"a", 1},        {"a\x00", 2},
        {"a\x00\x00", 3}, {"a\x01", 2},    {"ab", 2},   {"abc", 3},      {"b", 1},
        {"\x7f", 1},      {"\x80", 1},     {"\xff", 1}, {"\xff\x00", 2}, {"\xff\xff", 2},
    };
    size_t n = KEEL_ARRAY_LEN(want);
    for (size_t i = 0; i < n; i++) {
        keys[i].len = (u16)want[i].len;
        memcpy(keys[i].b, want[i].s, want[i].len);
        if (i > 0) cr_assert_lt(key_cmp(K(i - 1), K(i)), 0, "the expectation is sorted");
    }
    nkeys = n;
    for (size_t k = 0; k < n; k++) put((k * 7) % n); /* 7 and 15 are coprime */
    assert_tree_matches();
    assert_all_found();
}

/* ---- key shapes --------------------------------------------------------- */

Test(btree, single_byte_keys)
{
    for (size_t i = 0; i < 256; i++) {
        keys[i].len = 1;
        keys[i].b[0] = (u8)i;
    }
    nkeys = 256;
    for (size_t k = 256; k-- > 0;) put(k); /* descending */
    assert_tree_matches();
    assert_all_found();
    for (size_t i = 0; i < 256; i += 2) del(i);
    assert_tree_matches();
    assert_all_found();
}

static arena_ref put_long(u8 *buf, size_t len)
{
    arena_ref ref = rec_new(span_make(buf, len)), existing = 1;
    cr_assert_eq(btree_insert(&tree, span_make(buf, len), ref, &existing), KEEL_OK);
    cr_assert_eq(existing, 0, "long key of %zu bytes was new", len);
    return ref;
}

/* 300 keys of 4 KiB sharing 4000 bytes: splits need separators ~4 KiB long. */
Test(btree, long_keys_with_long_common_prefix)
{
    static u8 buf[300][4096];
    static arena_ref r[300];
    for (size_t i = 0; i < 300; i++) {
        memset(buf[i], 'p', 4000);
        for (size_t k = 4000; k < 4096; k++) buf[i][k] = (u8)('0' + (i + k) % 10);
        snprintf((char *)buf[i] + 4000, 8, "%05zu", i); /* sorted by i */
        buf[i][4007] = 'x';
    }
    for (size_t k = 0; k < 300; k++) {
        size_t i = (k * 131) % 300;
        r[i] = put_long(buf[i], 4096);
    }
    cr_assert(btree_check(&tree));
    cr_assert_gt(tree.height, 1, "300 entries do not fit one leaf");
    struct btree_iter it;
    btree_iter_first(&it, &tree);
    for (size_t i = 0; i < 300; i++, btree_iter_next(&it)) {
        cr_assert_eq(btree_iter_ref(&it), r[i], "long key %zu out of order", i);
        cr_assert_eq(btree_get(&tree, span_make(buf[i], 4096)), r[i]);
    }
    cr_assert_not(btree_iter_valid(&it));
    cr_assert_eq(btree_get(&tree, span_make(buf[7], 4095)), 0, "a prefix is another key");
    for (size_t i = 0; i < 300; i++) {
        cr_assert_eq(btree_remove(&tree, span_make(buf[i], 4096)), r[i]);
        rec_free(r[i]);
        if (i % 50 == 0) cr_assert(btree_check(&tree));
    }
    assert_empty_tree();
}

Test(btree, keys_of_the_maximum_size)
{
    size_t max = BTREE_KEY_SIZE_MAX;
    u8 *a = malloc(max), *b = malloc(max);
    memset(a, 'm', max);
    memcpy(b, a, max);
    b[max - 1] = 'n'; /* differs only in the last byte */
    arena_ref ra = put_long(a, max), rb = put_long(b, max);
    arena_ref rp = put_long(a, max - 1); /* a prefix of both */
    arena_ref r1 = put_long(a, 1);
    cr_assert(btree_check(&tree));
    cr_assert_eq(btree_get(&tree, span_make(a, max)), ra);
    cr_assert_eq(btree_get(&tree, span_make(b, max)), rb);
    cr_assert_eq(btree_get(&tree, span_make(a, max - 1)), rp);
    cr_assert_eq(btree_get(&tree, span_make(a, 2)), 0);
    struct btree_iter it;
    btree_iter_first(&it, &tree);
    cr_assert_eq(btree_iter_ref(&it), r1);
    btree_iter_next(&it);
    cr_assert_eq(btree_iter_ref(&it), rp);
    btree_iter_next(&it);
    cr_assert_eq(btree_iter_ref(&it), ra);
    btree_iter_next(&it);
    cr_assert_eq(btree_iter_ref(&it), rb);
    cr_assert_eq(btree_remove(&tree, span_make(a, max)), ra);
    cr_assert_eq(btree_get(&tree, span_make(b, max)), rb);
    cr_assert(btree_check(&tree));
    free(a);
    free(b);
}

Test(btree, path_like_keys_with_shared_prefixes)
{
    rng_seed("btree::path_like_keys_with_shared_prefixes");
    keys_path(20, 500);
    order_shuffle(nkeys);
    put_in_order(nkeys);
    assert_tree_matches();
    assert_all_found();
    cr_assert_eq(
        btree_count_range(&tree, S("/registry/pods/ns-00003/"), S("/registry/pods/ns-00003/\xff")),
        500);
    cr_assert_eq(btree_count_range(&tree, S("/registry/pods/ns-00003/"),
                                   S("/registry/pods/ns-00003/name-000100")),
                 100);
    cr_assert_eq(btree_get(&tree, S("/registry/pods/ns-00003/name-00010")), 0);
    order_shuffle(nkeys);
    del_in_order(nkeys / 2);
    assert_tree_matches();
    assert_all_found();
}

/* Groups of 5 keys whose heads tie (they differ only 12 bytes after the
 * node prefix), and keys whose common prefix (60 bytes) is longer than a
 * node can hold as prefix: only full comparisons can order them. */
Test(btree, keys_differing_only_after_the_head)
{
    rng_seed("btree::keys_differing_only_after_the_head");
    size_t n = 0;
    for (size_t g = 0; g < 400; g++) {
        for (size_t m = 0; m < 5; m++) key_set(n++, "x%03zuZZZZZZZZZZZZ%zu", g, m);
    }
    for (size_t i = 0; i < 2000; i++, n++) {
        key_set(n, "y%s%06zu", "PPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPPP", i);
    }
    nkeys = n;
    order_shuffle(n);
    put_in_order(n);
    assert_tree_matches();
    assert_all_found();
    order_shuffle(n);
    del_in_order(n / 3);
    assert_tree_matches();
    assert_all_found();
}

/* ---- bulk insert and remove --------------------------------------------- */

static void bulk_cycle(void (*order_fn)(size_t), bool reverse_del, size_t n)
{
    keys_seq(n);
    order_fn(n);
    put_in_order(n);
    assert_tree_matches();
    assert_all_found();
    cr_assert_gt(tree.height, 2, "%zu entries make at least three levels", n);
    cr_assert_gt(slab_now().objects_live, n, "records and nodes");
    if (reverse_del) {
        for (size_t k = 0; k < n / 2; k++) {
            size_t t = order[k];
            order[k] = order[n - 1 - k];
            order[n - 1 - k] = t;
        }
    } else {
        order_shuffle(n);
    }
    for (size_t k = 0; k < n; k++) {
        del(order[k]);
        if (k % 4999 == 0) cr_assert(btree_check(&tree));
    }
    assert_empty_tree();
}

static void order_desc(size_t n)
{
    for (size_t i = 0; i < n; i++) order[i] = n - 1 - i;
}

Test(btree, ascending_inserts_then_remove_all)
{
    rng_seed("btree::ascending_inserts_then_remove_all");
    bulk_cycle(order_identity, false, 30000);
}

Test(btree, descending_inserts_then_remove_all_in_reverse)
{
    bulk_cycle(order_desc, true, 30000);
}

Test(btree, random_inserts_then_remove_all)
{
    rng_seed("btree::random_inserts_then_remove_all");
    bulk_cycle(order_shuffle, false, 30000);
}

Test(btree, ascending_removal_of_ascending_inserts)
{
    keys_seq(20000);
    order_identity(nkeys);
    put_in_order(nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        del(i);
        if (i % 997 == 0) {
            cr_assert(btree_check(&tree));
            cr_assert_eq(btree_get(&tree, K(i + 1)), refs[i + 1]);
        }
    }
    assert_empty_tree();
}

Test(btree, destroy_frees_every_node)
{
    keys_seq(10000);
    order_identity(nkeys);
    put_in_order(nkeys);
    u64 nodes = tree.leaves + tree.inners;
    cr_assert_gt(nodes, 100);
    cr_assert_geq(slab_now().objects_live, nkeys + nodes);
    btree_destroy(&tree);
    cr_assert_eq(slab_now().objects_live, nkeys, "only our records are left");
    for (size_t i = 0; i < nkeys; i++) {
        rec_free(refs[i]); /* the records were ours all along */
        refs[i] = 0;
    }
    assert_empty_tree();
    cr_assert_eq(btree_get(&tree, K(5)), 0);
    put(5); /* the tree is usable again */
    cr_assert_eq(btree_get(&tree, K(5)), refs[5]);
    cr_assert(btree_check(&tree));
}

/* ---- iteration and seeks ------------------------------------------------ */

Test(btree, iteration_crosses_leaf_boundaries_both_ways)
{
    keys_seq(2000);
    order_identity(nkeys);
    put_in_order(nkeys);
    cr_assert_gt(tree.leaves, 10);
    assert_tree_matches();
    struct btree_iter it;
    btree_iter_seek_ge(&it, &tree, K(1000));
    for (size_t i = 1000; i < 1500; i++) { /* zig-zag: next, next, prev */
        cr_assert_eq(btree_iter_ref(&it), refs[i]);
        btree_iter_next(&it);
        cr_assert_eq(btree_iter_ref(&it), refs[i + 1]);
        btree_iter_next(&it);
        cr_assert_eq(btree_iter_ref(&it), refs[i + 2]);
        btree_iter_prev(&it);
    }
    btree_iter_first(&it, &tree);
    btree_iter_prev(&it);
    cr_assert_not(btree_iter_valid(&it), "prev of the first entry is past the start");
    btree_iter_last(&it, &tree);
    cr_assert_eq(btree_iter_ref(&it), refs[nkeys - 1]);
    btree_iter_next(&it);
    cr_assert_not(btree_iter_valid(&it), "next of the last entry is past the end");
}

/* First index whose key is >= probe, by binary search over keys[0..nkeys). */
static size_t lower_bound(struct span probe)
{
    size_t lo = 0, hi = nkeys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_cmp(K(mid), probe) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* With every key present: seek_ge and seek_lt land where lower_bound says. */
static void check_seeks(struct span probe)
{
    size_t lb = lower_bound(probe);
    struct btree_iter it;
    btree_iter_seek_ge(&it, &tree, probe);
    if (lb == nkeys)
        cr_assert_not(btree_iter_valid(&it), "seek_ge past the last key");
    else
        cr_assert_eq(btree_iter_ref(&it), refs[lb], "seek_ge(%.*s)", (int)probe.len,
                     (const char *)probe.ptr);
    btree_iter_seek_lt(&it, &tree, probe);
    if (lb == 0)
        cr_assert_not(btree_iter_valid(&it), "seek_lt before the first key");
    else
        cr_assert_eq(btree_iter_ref(&it), refs[lb - 1], "seek_lt(%.*s)", (int)probe.len,
                     (const char *)probe.ptr);
}

Test(btree, seeks_at_between_before_and_after_keys)
{
    keys_path(10, 300); /* nkeys 3000 */
    order_identity(nkeys);
    put_in_order(nkeys);
    u8 probe[KEY_CAP + 1];
    for (size_t i = 0; i < nkeys; i++) {
        check_seeks(K(i));                     /* at a key */
        memcpy(probe, keys[i].b, keys[i].len); /* just after it */
        probe[keys[i].len] = 0;
        check_seeks(span_make(probe, keys[i].len + 1u));
        check_seeks(span_make(probe, keys[i].len - 1u)); /* a prefix: just before */
    }
    check_seeks(S("/"));
    check_seeks(S("\x01"));
    check_seeks(S("/registry/pods/ns-"));
    check_seeks(S("/registry/pods/ns-00009/name-000299\x01"));
    check_seeks(S("/registry/pods/ns-00010"));
    check_seeks(S("\xff"));
    struct btree_iter it;
    btree_iter_seek_ge(&it, &tree, S("/registry/pods/ns-00004/"));
    cr_assert_eq(btree_iter_ref(&it), refs[4 * 300]);
}

Test(btree, count_range_empty_partial_and_full)
{
    rng_seed("btree::count_range_empty_partial_and_full");
    keys_seq(5000);
    order_shuffle(nkeys);
    put_in_order(nkeys);
    cr_assert_eq(btree_count_range(&tree, S(""), S("")), nkeys, "everything");
    cr_assert_eq(btree_count_range(&tree, S("a"), S("z")), nkeys);
    cr_assert_eq(btree_count_range(&tree, S("a"), S("b")), 0, "a range before the keys");
    cr_assert_eq(btree_count_range(&tree, S("l"), S("")), 0, "a range after the keys");
    cr_assert_eq(btree_count_range(&tree, K(10), K(10)), 0, "an empty range");
    cr_assert_eq(btree_count_range(&tree, K(10), K(11)), 1);
    cr_assert_eq(btree_count_range(&tree, K(4999), S("")), 1);
    for (int trial = 0; trial < 2000; trial++) {
        size_t i = rng_next() % nkeys, j = rng_next() % nkeys;
        if (i > j) {
            size_t t = i;
            i = j;
            j = t;
        }
        cr_assert_eq(btree_count_range(&tree, K(i), K(j)), j - i, "[%zu, %zu)", i, j);
        cr_assert_eq(btree_count_range(&tree, K(i), S("")), nkeys - i);
        cr_assert_eq(btree_count_range(&tree, S(""), K(j)), j);
    }
}

Test(btree, iter_set_ref_swaps_the_record_and_keeps_the_iterator)
{
    keys_seq(500);
    order_identity(nkeys);
    put_in_order(nkeys);
    struct btree_iter it;
    for (btree_iter_seek_ge(&it, &tree, K(100)); btree_iter_valid(&it); btree_iter_next(&it)) {
        struct span key = btree_iter_key(&it);
        size_t i = lower_bound(key);
        if (i >= 300) break;
        arena_ref fresh = rec_new(key);
        btree_iter_set_ref(&it, fresh);
        cr_assert_eq(btree_iter_ref(&it), fresh);
        rec_free(refs[i]);
        refs[i] = fresh;
    }
    cr_assert(btree_iter_valid(&it), "set_ref must not invalidate the iterator");
    cr_assert_eq(btree_iter_ref(&it), refs[300]);
    assert_tree_matches();
    assert_all_found();
}

Test(btree, find_and_insert_at_descend_once)
{
    keys_seq(3000);
    for (size_t i = 0; i < nkeys; i += 2) put(i); /* evens first */
    struct btree_pos pos;
    for (size_t i = 1; i < nkeys; i += 2) {
        cr_assert_null(btree_find(&tree, K(i), &pos), "odd key %zu is absent", i);
        cr_assert_not(pos.found);
        refs[i] = rec_new(K(i));
        cr_assert_eq(btree_insert_at(&tree, &pos, K(i), refs[i]), KEEL_OK);
    }
    arena_ref *slot = btree_find(&tree, K(10), &pos);
    cr_assert_not_null(slot);
    cr_assert(pos.found);
    cr_assert_eq(*slot, refs[10]);
    assert_tree_matches();
    assert_all_found();
}

/* ---- memory budget ------------------------------------------------------ */

/* Restarts the fixture on a budget of `chunks` arena chunks. */
static void budget_restart(u64 chunks)
{
    arena_deinit(&arena);
    cr_assert_eq(arena_init(&arena, chunks * ARENA_CHUNK_SIZE), KEEL_OK);
    slab_init(&slab, &arena);
    btree_init(&tree, &slab, rec_key_of, &slab);
}

/* Takes 64 KiB pages (eight 8 KiB objects each) until `left` pages remain in
 * the current chunk; the budget must have no room for another chunk. */
static void hog_pages_until(u32 left)
{
    cr_assert_gt(arena.reserved_bytes + ARENA_CHUNK_SIZE, arena.reserved_bytes_max);
    cr_assert_geq(slab.page_chunk_left, left);
    while (slab.page_chunk_left > left) { /* at most a chunk's pages */
        for (int i = 0; i < 8; i++) {
            arena_ref hog;
            cr_assert_eq(slab_alloc(&slab, SLAB_SMALL_PAGE_CLASS_MAX, &hog), KEEL_OK);
        }
    }
}

Test(btree, enomem_on_first_insert_leaves_the_tree_empty)
{
    budget_restart(1);
    arena_ref ref = rec_new(S("a")), existing = 7;
    hog_pages_until(0);
    struct slab_stats before = slab_now();
    cr_assert_eq(btree_insert(&tree, S("a"), ref, &existing), KEEL_ENOMEM);
    cr_assert_eq(tree.count, 0);
    cr_assert_eq(tree.root, 0);
    cr_assert_eq(btree_get(&tree, S("a")), 0);
    cr_assert_eq(slab_now().in_use_bytes, before.in_use_bytes);
    cr_assert(btree_check(&tree));
    cr_assert(slab_check(&slab));
}

/* Inserts pre-made records in `order` with little room left for nodes: each
 * insert either succeeds or fails with the tree and the slab unchanged. */
static size_t fill_until_enomem(const arena_ref *pre, size_t *failed)
{
    size_t ok = 0, fails = 0;
    *failed = SIZE_MAX;
    for (size_t k = 0; k < nkeys; k++) {
        size_t i = order[k];
        arena_ref existing = 1;
        struct slab_stats before = slab_now();
        int rc = btree_insert(&tree, K(i), pre[i], &existing);
        if (rc == KEEL_OK) {
            cr_assert_eq(existing, 0);
            refs[i] = pre[i];
            ok++;
            continue;
        }
        cr_assert_eq(rc, KEEL_ENOMEM);
        cr_assert_eq(btree_get(&tree, K(i)), 0, "a failed insert leaves no entry");
        cr_assert_eq(tree.count, ok, "a failed insert changes no count");
        cr_assert_eq(slab_now().objects_live, before.objects_live, "nodes leaked");
        cr_assert_eq(slab_now().in_use_bytes, before.in_use_bytes);
        if (*failed == SIZE_MAX) *failed = i;
        if (++fails % 64 == 1) cr_assert(btree_check(&tree));
    }
    cr_assert_gt(fails, 0, "the budget never ran out");
    return ok;
}

Test(btree, enomem_on_tight_budget_leaves_the_tree_intact)
{
    rng_seed("btree::enomem_on_tight_budget_leaves_the_tree_intact");
    static arena_ref pre[20000];
    budget_restart(1);
    for (size_t i = 0; i < 20000; i++) key_set(i, "r%010zu", i * 25);
    nkeys = 20000;
    for (size_t i = 0; i < nkeys; i++) pre[i] = rec_new(K(i)); /* 5 pages of 16-byte records */
    hog_pages_until(4);
    order_shuffle(nkeys);
    size_t failed;
    size_t ok = fill_until_enomem(pre, &failed);
    cr_assert_eq(tree.count, ok);
    assert_tree_matches();
    assert_all_found();
    cr_assert(slab_check(&slab));
    for (size_t i = 0; i < nkeys; i += 2) {
        if (refs[i] != 0) del(i); /* merging frees nodes */
    }
    assert_tree_matches();
    arena_ref existing = 1;
    cr_assert_eq(btree_insert(&tree, K(failed), pre[failed], &existing), KEEL_OK,
                 "after removals there is room again");
    refs[failed] = pre[failed];
    assert_tree_matches();
    assert_all_found();
}

/* ---- random operations against a model ---------------------------------- */

static size_t model_next_present(size_t i)
{
    while (i < nkeys && refs[i] == 0) i++;
    return i;
}

static void random_seek(void)
{
    size_t i = rng_next() % nkeys;
    u8 probe[KEY_CAP + 1];
    memcpy(probe, keys[i].b, keys[i].len);
    size_t len = keys[i].len;
    if (rng_next() % 2) probe[len++] = (u8)(rng_next() % 3); /* just after key i */
    struct span p = span_make(probe, len);
    size_t lb = lower_bound(p), ge = model_next_present(lb);
    struct btree_iter it;
    btree_iter_seek_ge(&it, &tree, p);
    if (ge == nkeys)
        cr_assert_not(btree_iter_valid(&it));
    else
        cr_assert_eq(btree_iter_ref(&it), refs[ge], "seek_ge near key %zu", i);
    size_t lt = lb;
    while (lt > 0 && refs[lt - 1] == 0) lt--;
    btree_iter_seek_lt(&it, &tree, p);
    if (lt == 0)
        cr_assert_not(btree_iter_valid(&it));
    else
        cr_assert_eq(btree_iter_ref(&it), refs[lt - 1], "seek_lt near key %zu", i);
}

static void random_op(void)
{
    size_t i = rng_next() % nkeys;
    switch (rng_next() % 4) {
    case 0:
    case 1:
        if (refs[i] == 0) {
            put(i);
        } else {
            arena_ref fresh = rec_new(K(i)), existing = 0;
            cr_assert_eq(btree_insert(&tree, K(i), fresh, &existing), KEEL_OK);
            cr_assert_eq(existing, refs[i], "duplicate insert of key %zu", i);
            rec_free(fresh);
        }
        break;
    case 2:
        if (refs[i] != 0)
            del(i);
        else
            cr_assert_eq(btree_remove(&tree, K(i)), 0);
        break;
    default:
        cr_assert_eq(btree_get(&tree, K(i)), refs[i]);
        random_seek();
    }
}

Test(btree, random_operations_match_a_model)
{
    rng_seed("btree::random_operations_match_a_model");
    const char *env = getenv("KEEL_OPS");
    size_t ops = env ? strtoull(env, NULL, 0) : 60000;
    keys_path(8, 400); /* 3200 keys in few leaves' worth of shared prefixes */
    for (size_t k = 0; k < ops; k++) {
        random_op();
        if (k % 5000 == 0) cr_assert(btree_check(&tree), "after %zu ops", k);
    }
    assert_tree_matches();
    assert_all_found();
    for (size_t i = 0; i < nkeys; i++) {
        if (refs[i] != 0) del(i);
    }
    assert_empty_tree();
}

/* ---- memory budget with long separators --------------------------------- */

#define PAGES_PER_CHUNK (ARENA_CHUNK_SIZE / SLAB_PAGE_SIZE) /* 32 */
#define LONG_N          6000 /* 375 pages of 4 KiB-class records, no slot to spare */
#define LONG_LEN        4006

static void long_key(u8 *buf, size_t i)
{
    memset(buf, 'p', 4000);
    snprintf((char *)buf + 4000, 7, "%06zu", i);
}

/* Neighbouring keys share 4000 bytes, so every leaf split needs a ~4 KiB
 * separator: with 5 pages left (leaf, inner, 3 of separators), the separators
 * run out while the leaf page still has room, and a split fails after its
 * leaf was reserved. */
Test(btree, enomem_with_long_separators_leaks_nothing)
{
    rng_seed("btree::enomem_with_long_separators_leaks_nothing");
    static u8 buf[LONG_LEN + 1]; /* + the NUL of snprintf */
    static arena_ref pre[LONG_N];
    budget_restart((LONG_N / 16 + PAGES_PER_CHUNK - 1) / PAGES_PER_CHUNK); /* 9 pages spare */
    for (size_t i = 0; i < LONG_N; i++) {
        long_key(buf, i);
        pre[i] = rec_new(span_make(buf, LONG_LEN));
    }
    hog_pages_until(5);
    order_shuffle(LONG_N);
    size_t ok = 0, fails = 0;
    for (size_t k = 0; k < LONG_N; k++) {
        size_t i = order[k];
        long_key(buf, i);
        struct span key = span_make(buf, LONG_LEN);
        arena_ref existing = 1;
        struct slab_stats before = slab_now();
        int rc = btree_insert(&tree, key, pre[i], &existing);
        if (rc == KEEL_OK) {
            ok++;
            continue;
        }
        cr_assert_eq(rc, KEEL_ENOMEM);
        struct slab_stats after = slab_now();
        cr_assert_eq(after.objects_live, before.objects_live, "a failed split leaked nodes");
        cr_assert_eq(after.in_use_bytes, before.in_use_bytes);
        cr_assert_eq(tree.count, ok);
        cr_assert_eq(btree_get(&tree, key), 0);
        pre[i] = 0;
        if (fails++ % 50 == 0) cr_assert(btree_check(&tree));
    }
    cr_assert_gt(fails, 0, "the budget never ran out");
    cr_assert(btree_check(&tree));
    for (size_t i = 0; i < LONG_N; i++) {
        long_key(buf, i);
        cr_assert_eq(btree_get(&tree, span_make(buf, LONG_LEN)), pre[i], "key %zu", i);
    }
}
