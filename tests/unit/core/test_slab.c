/*
 * test_slab.c — size classes (consistent, minimal, bounded waste), LIFO reuse
 * of freed objects, objects that never overlap, large objects on extents of
 * their own, stats that add up, and KEEL_ENOMEM that changes nothing.
 *
 * Randomized tests take KEEL_SEED from the environment (else a fresh seed)
 * and print the seed they use.
 */
#include "core/slab.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB ((u64)1 << 20)

static struct arena arena;
static struct slab slab;
static u64 rng_state;

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

static void slab_setup(void)
{
    cr_assert_eq(arena_init(&arena, 512 * MiB), KEEL_OK);
    slab_init(&slab, &arena);
    cr_assert(slab_check(&slab));
}

static void slab_teardown(void)
{
    arena_deinit(&arena);
}

TestSuite(slab, .init = slab_setup, .fini = slab_teardown);

static struct slab_stats stats_of(const struct slab *s)
{
    struct slab_stats st;
    slab_stats(s, &st);
    return st;
}

static void assert_stats_equal(struct slab_stats a, struct slab_stats b)
{
    cr_assert_eq(a.in_use_bytes, b.in_use_bytes);
    cr_assert_eq(a.requested_bytes, b.requested_bytes);
    cr_assert_eq(a.page_bytes, b.page_bytes);
    cr_assert_eq(a.reserved_bytes, b.reserved_bytes);
    cr_assert_eq(a.objects_live, b.objects_live);
    cr_assert_eq(a.large_live, b.large_live);
}

static void assert_stats_sane(const struct slab *s)
{
    struct slab_stats st = stats_of(s);
    cr_assert_leq(st.requested_bytes, st.in_use_bytes);
    cr_assert_leq(st.in_use_bytes, st.page_bytes);
    cr_assert_leq(st.page_bytes, st.reserved_bytes);
    cr_assert_eq(st.reserved_bytes, s->arena->reserved_bytes);
    cr_assert_leq(st.large_live, st.objects_live);
    cr_assert(slab_check(s));
}

/* ---- size classes ------------------------------------------------------- */

/* Every size: 262144 calls of two cheap functions, a few milliseconds. */
Test(slab, class_index_and_size_agree_for_every_size)
{
    u32 prev_index = 0;
    for (size_t s = 1; s <= SLAB_SIZE_MAX; s++) {
        u32 i = slab_class_index(s);
        cr_assert_lt(i, SLAB_CLASS_COUNT, "size %zu has no class", s);
        size_t cs = slab_class_size(i);
        if (cs < s) cr_assert_fail("class %u (%zu bytes) is too small for %zu", i, cs, s);
        if (i > 0 && slab_class_size(i - 1) >= s) {
            cr_assert_fail("size %zu fits class %u already, not %u", s, i - 1, i);
        }
        if (i < prev_index || i > prev_index + 1) {
            cr_assert_fail("class index jumps from %u to %u at size %zu", prev_index, i, s);
        }
        if (slab_alloc_size(s) != cs) cr_assert_fail("slab_alloc_size(%zu) != %zu", s, cs);
        if (cs % ARENA_ALIGN != 0) cr_assert_fail("class %u size %zu not 8-aligned", i, cs);
        prev_index = i;
    }
    cr_assert_eq(slab_class_index(1), 0);
    cr_assert_eq(slab_class_index(SLAB_SIZE_MAX), SLAB_CLASS_COUNT - 1, "every class is used");
    cr_assert_eq(slab_class_size(SLAB_CLASS_COUNT - 1), SLAB_SIZE_MAX);
    cr_assert_eq(slab_class_index(SLAB_SIZE_MAX + 1), SLAB_CLASS_COUNT, "large");
    cr_assert_eq(slab_class_index((size_t)UINT32_MAX - 8), SLAB_CLASS_COUNT);
    cr_assert_eq(slab_alloc_size(SLAB_SIZE_MAX + 1), SLAB_SIZE_MAX + 8);
    cr_assert_eq(slab_alloc_size(3 * MiB + 1), 3 * MiB + 8);
}

Test(slab, rounding_waste_is_bounded)
{
    for (size_t s = 1; s <= SLAB_SIZE_MAX; s++) {
        size_t waste = slab_alloc_size(s) - s;
        if (s <= 1024 && waste > 7) cr_assert_fail("size %zu wastes %zu > 7 bytes", s, waste);
        if (s > 1024 && waste * 8 > s) {
            cr_assert_fail("size %zu wastes %zu bytes, more than 12.5%%", s, waste);
        }
    }
    for (u32 i = 0; i < SLAB_CLASS_COUNT; i++) {
        size_t cs = slab_class_size(i);
        cr_assert_eq(slab_class_index(cs), i, "a class's own size maps to it");
        if (i > 0) cr_assert_gt(cs, slab_class_size(i - 1), "classes strictly increase");
    }
}

/* ---- alloc, free, reuse ------------------------------------------------- */

Test(slab, freed_objects_are_reused_lifo_within_a_class)
{
    arena_ref a, b, c, d;
    cr_assert_eq(slab_alloc(&slab, 100, &a), KEEL_OK);
    cr_assert_eq(slab_alloc(&slab, 97, &b), KEEL_OK); /* 97..104 share a class */
    cr_assert_eq(slab_alloc(&slab, 104, &c), KEEL_OK);
    cr_assert(a != 0 && b != 0 && c != 0);
    cr_assert(a != b && b != c && a != c);
    struct slab_stats full = stats_of(&slab);
    slab_free(&slab, a, 100);
    slab_free(&slab, c, 104);
    cr_assert(slab_check(&slab));
    cr_assert_eq(slab_alloc(&slab, 99, &d), KEEL_OK);
    cr_assert_eq(d, c, "the last freed object comes back first");
    cr_assert_eq(slab_alloc(&slab, 101, &d), KEEL_OK);
    cr_assert_eq(d, a);
    struct slab_stats again = stats_of(&slab);
    cr_assert_eq(again.page_bytes, full.page_bytes, "reuse takes no new page");
    cr_assert_eq(again.in_use_bytes, full.in_use_bytes);
    cr_assert_eq(again.requested_bytes, 97 + 99 + 101);
    cr_assert_eq(again.objects_live, 3);
    cr_assert(slab_check(&slab));
}

Test(slab, free_and_realloc_in_a_loop_holds_one_object)
{
    arena_ref first, r;
    cr_assert_eq(slab_alloc(&slab, 4000, &first), KEEL_OK);
    slab_free(&slab, first, 4000);
    struct slab_stats base = stats_of(&slab);
    for (int i = 0; i < 10000; i++) {
        cr_assert_eq(slab_alloc(&slab, 4000, &r), KEEL_OK);
        cr_assert_eq(r, first);
        memset(slab_ptr(&slab, r), i, 4000);
        slab_free(&slab, r, 4000);
    }
    assert_stats_equal(stats_of(&slab), base);
    cr_assert_eq(base.objects_live, 0);
    cr_assert(slab_check(&slab));
}

Test(slab, pages_are_64k_up_to_8k_classes_and_1m_above)
{
    arena_ref r;
    cr_assert_eq(slab_alloc(&slab, 100, &r), KEEL_OK);
    cr_assert_eq(stats_of(&slab).page_bytes, SLAB_PAGE_SIZE);
    cr_assert_eq(slab_alloc(&slab, 8192, &r), KEEL_OK);
    cr_assert_eq(stats_of(&slab).page_bytes, 2 * SLAB_PAGE_SIZE);
    cr_assert_eq(slab_alloc(&slab, 8193, &r), KEEL_OK);
    cr_assert_eq(stats_of(&slab).page_bytes, 2 * SLAB_PAGE_SIZE + ARENA_CHUNK_SIZE);
    cr_assert_eq(slab_alloc(&slab, SLAB_SIZE_MAX, &r), KEEL_OK);
    cr_assert_eq(stats_of(&slab).page_bytes, 2 * SLAB_PAGE_SIZE + 2 * ARENA_CHUNK_SIZE);
    cr_assert_eq(stats_of(&slab).large_live, 0, "SLAB_SIZE_MAX itself is a class");
    assert_stats_sane(&slab);
}

/* ---- no overlap --------------------------------------------------------- */

#define OBJ_MAX 6000

struct obj {
    arena_ref ref;
    u32 size;
    u8 tag;
};

static struct obj objs[OBJ_MAX];

static size_t random_size(void)
{
    u64 r = rng_next() % 100;
    if (r < 70) return 1 + rng_next() % 256;
    if (r < 90) return 1 + rng_next() % 4096;
    if (r < 99) return 1 + rng_next() % (64 * 1024);
    return SLAB_SIZE_MAX - 1000 + rng_next() % 5000; /* around the large threshold */
}

static void obj_fill(struct obj *o)
{
    u8 *p = slab_ptr(&slab, o->ref);
    for (u32 k = 0; k < o->size; k++) p[k] = (u8)(o->tag + k);
}

static void obj_verify(const struct obj *o, size_t i)
{
    const u8 *p = slab_ptr(&slab, o->ref);
    for (u32 k = 0; k < o->size; k++) {
        if (p[k] != (u8)(o->tag + k)) {
            cr_assert_fail("object %zu (%u bytes) byte %u overwritten", i, o->size, k);
        }
    }
}

static int obj_cmp_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)slab_ptr(&slab, ((const struct obj *)a)->ref);
    uintptr_t y = (uintptr_t)slab_ptr(&slab, ((const struct obj *)b)->ref);
    return x < y ? -1 : x > y;
}

static void objs_assert_disjoint(size_t n)
{
    static struct obj sorted[OBJ_MAX];
    memcpy(sorted, objs, n * sizeof(*objs));
    qsort(sorted, n, sizeof(*sorted), obj_cmp_addr);
    for (size_t i = 1; i < n; i++) {
        const u8 *prev = slab_ptr(&slab, sorted[i - 1].ref);
        const u8 *cur = slab_ptr(&slab, sorted[i].ref);
        cr_assert_geq(cur, prev + sorted[i - 1].size, "objects overlap");
    }
}

static void objs_alloc(size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        objs[i].size = (u32)random_size();
        objs[i].tag = (u8)rng_next();
        cr_assert_eq(slab_alloc(&slab, objs[i].size, &objs[i].ref), KEEL_OK);
        cr_assert_eq((uintptr_t)slab_ptr(&slab, objs[i].ref) % ARENA_ALIGN, 0);
        obj_fill(&objs[i]);
    }
}

Test(slab, objects_never_overlap)
{
    rng_seed("slab::objects_never_overlap");
    size_t n = OBJ_MAX / 2;
    objs_alloc(0, n);
    assert_stats_sane(&slab);
    for (size_t i = 0; i < n; i++) obj_verify(&objs[i], i);
    objs_assert_disjoint(n);
    for (size_t i = 0; i < n / 2; i++) { /* free a random half */
        size_t j = i + rng_next() % (n - i);
        struct obj t = objs[i];
        objs[i] = objs[j];
        objs[j] = t;
        slab_free(&slab, objs[i].ref, objs[i].size);
    }
    memmove(objs, objs + n / 2, (n - n / 2) * sizeof(*objs));
    n -= n / 2;
    assert_stats_sane(&slab);
    objs_alloc(n, OBJ_MAX); /* reuses the freed objects */
    assert_stats_sane(&slab);
    for (size_t i = 0; i < OBJ_MAX; i++) obj_verify(&objs[i], i);
    objs_assert_disjoint(OBJ_MAX);
    u64 requested = 0, in_use = 0;
    for (size_t i = 0; i < OBJ_MAX; i++) {
        requested += objs[i].size;
        in_use += slab_alloc_size(objs[i].size);
    }
    struct slab_stats st = stats_of(&slab);
    cr_assert_eq(st.objects_live, OBJ_MAX);
    cr_assert_eq(st.requested_bytes, requested);
    cr_assert_eq(st.in_use_bytes, in_use);
}

/* ---- large objects ------------------------------------------------------ */

Test(slab, large_objects_get_their_own_extents)
{
    struct slab_stats before = stats_of(&slab);
    u32 extents = arena.extent_live;
    arena_ref a, b;
    cr_assert_eq(slab_alloc(&slab, SLAB_SIZE_MAX + 1, &a), KEEL_OK);
    cr_assert_eq(slab_alloc(&slab, 3 * MiB + 5, &b), KEEL_OK);
    cr_assert_eq(arena_ref_offset(a), 0);
    cr_assert_eq(arena_ref_offset(b), 0);
    cr_assert_neq(arena_ref_extent(a), arena_ref_extent(b));
    cr_assert_eq(arena.extent_live, extents + 2, "one extent each");
    cr_assert_geq(arena_extent_size(&arena, a), SLAB_SIZE_MAX + 1);
    cr_assert_geq(arena_extent_size(&arena, b), 3 * MiB + 5);
    memset(slab_ptr(&slab, a), 0xA1, SLAB_SIZE_MAX + 1);
    memset(slab_ptr(&slab, b), 0xB2, 3 * MiB + 5);
    struct slab_stats st = stats_of(&slab);
    u64 large = slab_alloc_size(SLAB_SIZE_MAX + 1) + slab_alloc_size(3 * MiB + 5);
    cr_assert_eq(st.large_live, 2);
    cr_assert_eq(st.objects_live, before.objects_live + 2);
    cr_assert_eq(st.requested_bytes, before.requested_bytes + SLAB_SIZE_MAX + 1 + 3 * MiB + 5);
    cr_assert_eq(st.in_use_bytes, before.in_use_bytes + large);
    cr_assert_eq(st.page_bytes, before.page_bytes + large);
    cr_assert_eq(st.reserved_bytes, before.reserved_bytes + large);
    assert_stats_sane(&slab);
    cr_assert_eq(((u8 *)slab_ptr(&slab, a))[SLAB_SIZE_MAX], 0xA1);
    slab_free(&slab, a, SLAB_SIZE_MAX + 1);
    slab_free(&slab, b, 3 * MiB + 5);
    assert_stats_equal(stats_of(&slab), before);
    cr_assert_eq(arena.extent_live, extents, "freeing a large object frees its extent");
    assert_stats_sane(&slab);
}

/* ---- stats -------------------------------------------------------------- */

Test(slab, stats_add_up_and_pages_stay_after_free)
{
    arena_ref refs[3000];
    u64 requested = 0, in_use = 0;
    for (u32 i = 0; i < 3000; i++) {
        size_t size = 1 + (i * 37) % 3000;
        cr_assert_eq(slab_alloc(&slab, size, &refs[i]), KEEL_OK);
        requested += size;
        in_use += slab_alloc_size(size);
    }
    struct slab_stats st = stats_of(&slab);
    cr_assert_eq(st.objects_live, 3000);
    cr_assert_eq(st.requested_bytes, requested);
    cr_assert_eq(st.in_use_bytes, in_use);
    cr_assert_eq(st.large_live, 0);
    cr_assert_eq(st.page_bytes % SLAB_PAGE_SIZE, 0);
    cr_assert_eq(st.reserved_bytes % ARENA_CHUNK_SIZE, 0, "small pages come from whole chunks");
    assert_stats_sane(&slab);
    for (u32 i = 0; i < 3000; i++) slab_free(&slab, refs[i], 1 + (i * 37) % 3000);
    struct slab_stats after = stats_of(&slab);
    cr_assert_eq(after.objects_live, 0);
    cr_assert_eq(after.requested_bytes, 0);
    cr_assert_eq(after.in_use_bytes, 0);
    cr_assert_eq(after.page_bytes, st.page_bytes, "pages stay with their class");
    cr_assert_eq(after.reserved_bytes, st.reserved_bytes);
    assert_stats_sane(&slab);
}

/* ---- budget ------------------------------------------------------------- */

Test(slab, enomem_on_budget_changes_nothing)
{
    struct arena a;
    struct slab s;
    cr_assert_eq(arena_init(&a, ARENA_CHUNK_SIZE), KEEL_OK); /* one chunk: 32 small pages */
    slab_init(&s, &a);
    arena_ref r, last = 0;
    u64 n = 0;
    int rc;
    while ((rc = slab_alloc(&s, 64, &r)) == KEEL_OK) { /* bounded by the one-chunk budget */
        last = r;
        n++;
        cr_assert_leq(n, ARENA_CHUNK_SIZE / 64);
    }
    cr_assert_eq(rc, KEEL_ENOMEM);
    cr_assert_eq(n, ARENA_CHUNK_SIZE / 64, "the whole chunk is usable by one class");
    struct slab_stats before = stats_of(&s);
    cr_assert_eq(slab_alloc(&s, 64, &r), KEEL_ENOMEM);
    cr_assert_eq(slab_alloc(&s, 1000, &r), KEEL_ENOMEM, "another class needs a page");
    cr_assert_eq(slab_alloc(&s, 20000, &r), KEEL_ENOMEM, "a chunk-page class");
    cr_assert_eq(slab_alloc(&s, SLAB_SIZE_MAX + 1, &r), KEEL_ENOMEM, "a large object");
    assert_stats_equal(stats_of(&s), before);
    cr_assert(slab_check(&s));
    slab_free(&s, last, 64);
    cr_assert_eq(slab_alloc(&s, 64, &r), KEEL_OK, "a freed object needs no budget");
    cr_assert_eq(r, last);
    assert_stats_equal(stats_of(&s), before);
    cr_assert(slab_check(&s));
    arena_deinit(&a);
}

Test(slab, enomem_for_large_object_then_success_after_free)
{
    struct arena a;
    struct slab s;
    /* Room for two chunks: a large object of a chunk and a bit leaves no room
     * for a chunk of small pages. */
    cr_assert_eq(arena_init(&a, 2 * ARENA_CHUNK_SIZE), KEEL_OK);
    slab_init(&s, &a);
    arena_ref big, r;
    cr_assert_eq(slab_alloc(&s, ARENA_CHUNK_SIZE + 8, &big), KEEL_OK);
    struct slab_stats before = stats_of(&s);
    cr_assert_eq(slab_alloc(&s, ARENA_CHUNK_SIZE, &r), KEEL_ENOMEM);
    cr_assert_eq(slab_alloc(&s, 10, &r), KEEL_ENOMEM, "no room for a chunk either");
    assert_stats_equal(stats_of(&s), before);
    cr_assert(slab_check(&s));
    slab_free(&s, big, ARENA_CHUNK_SIZE + 8);
    cr_assert_eq(slab_alloc(&s, 10, &r), KEEL_OK);
    cr_assert_eq(slab_alloc(&s, 900 * 1024, &r), KEEL_OK, "large: an extent of its own");
    cr_assert_eq(stats_of(&s).large_live, 1);
    assert_stats_sane(&s);
    arena_deinit(&a);
}
