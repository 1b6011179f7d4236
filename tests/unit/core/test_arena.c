/*
 * test_arena.c — extents and 32-bit refs: refs are non-zero and name
 * distinct writable memory, the ref encoding round-trips, the budget is a
 * hard cap that changes nothing when hit, freed extent indexes come back,
 * and the extent table runs out at ARENA_EXTENTS_MAX - 1 (16383) live extents.
 */
#include "core/arena.h"

#include <criterion/criterion.h>

#include <string.h>

#define MiB ((u64)1 << 20)

static struct arena arena;

static void arena_setup(void)
{
    cr_assert_eq(arena_init(&arena, 256 * MiB), KEEL_OK);
    cr_assert(arena_check(&arena));
    cr_assert_eq(arena.reserved_bytes, 0);
}

static void arena_teardown(void)
{
    arena_deinit(&arena);
}

TestSuite(arena, .init = arena_setup, .fini = arena_teardown);

static size_t round8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* ---- refs --------------------------------------------------------------- */

Test(arena, refs_are_nonzero_distinct_and_writable)
{
    static const size_t sizes[] = {1, 7, 8, 9, 100, 4096, 65536, 1 << 20, 3 << 20, 24};
    arena_ref refs[KEEL_ARRAY_LEN(sizes)];
    u64 total = 0;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(sizes); i++) {
        cr_assert_eq(arena_extent_alloc(&arena, sizes[i], &refs[i]), KEEL_OK);
        cr_assert_neq(refs[i], 0);
        cr_assert_eq(arena_ref_offset(refs[i]), 0, "a new extent is referenced at offset 0");
        cr_assert_eq(arena_extent_size(&arena, refs[i]), round8(sizes[i]));
        cr_assert_eq((uintptr_t)arena_ptr(&arena, refs[i]) % ARENA_ALIGN, 0);
        for (size_t j = 0; j < i; j++) {
            cr_assert_neq(arena_ref_extent(refs[i]), arena_ref_extent(refs[j]));
        }
        memset(arena_ptr(&arena, refs[i]), (int)(i + 1), round8(sizes[i]));
        total += round8(sizes[i]);
        cr_assert(arena_check(&arena));
    }
    cr_assert_eq(arena.reserved_bytes, total);
    cr_assert_eq(arena.extent_live, KEEL_ARRAY_LEN(sizes));
    for (size_t i = 0; i < KEEL_ARRAY_LEN(sizes); i++) {
        const u8 *p = arena_ptr(&arena, refs[i]);
        for (size_t k = 0; k < round8(sizes[i]); k += 1 + k / 16) {
            cr_assert_eq(p[k], (u8)(i + 1), "extent %zu byte %zu overwritten", i, k);
        }
        cr_assert_eq(p[round8(sizes[i]) - 1], (u8)(i + 1));
    }
}

Test(arena, ref_make_extent_offset_round_trip)
{
    static const u32 extents[] = {1, 2, 3, 255, 256, 12345, ARENA_EXTENTS_MAX - 1};
    static const size_t offsets[] = {0, 8, 16, 1000, 65536, ARENA_CHUNK_SIZE - 8};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(extents); i++) {
        for (size_t j = 0; j < KEEL_ARRAY_LEN(offsets); j++) {
            arena_ref r = arena_ref_make(extents[i], offsets[j]);
            cr_assert_neq(r, 0);
            cr_assert_eq(arena_ref_extent(r), extents[i]);
            cr_assert_eq(arena_ref_offset(r), offsets[j], "extent %u offset %zu", extents[i],
                         offsets[j]);
        }
    }
    cr_assert_eq(arena_ref_make(0, 0), 0, "ref 0 means none");
    cr_assert_eq(arena_ref_make(1, 0), (u32)1 << ARENA_OFFSET_BITS, "bits 31..18: extent");
    cr_assert_eq(arena_ref_make(0, 8), 1, "bits 17..0: offset / 8");
    cr_assert_eq(arena_ref_make(ARENA_EXTENTS_MAX - 1, ARENA_CHUNK_SIZE - 8), UINT32_MAX);
    cr_assert_eq(ARENA_EXTENTS_MAX, 16384);
    cr_assert_eq(ARENA_CHUNK_SIZE, 2u << 20);
}

Test(arena, ref_with_offset_addresses_inside_the_extent)
{
    arena_ref r;
    cr_assert_eq(arena_extent_alloc(&arena, ARENA_CHUNK_SIZE, &r), KEEL_OK);
    u8 *base = arena_ptr(&arena, r);
    static const size_t offsets[] = {8, 64, 4096, ARENA_CHUNK_SIZE - 8};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(offsets); i++) {
        arena_ref inner = arena_ref_make(arena_ref_extent(r), offsets[i]);
        cr_assert_eq((u8 *)arena_ptr(&arena, inner), base + offsets[i]);
        cr_assert_eq(arena_extent_size(&arena, inner), ARENA_CHUNK_SIZE);
        *(u64 *)arena_ptr(&arena, inner) = offsets[i];
    }
    for (size_t i = 0; i < KEEL_ARRAY_LEN(offsets); i++) {
        cr_assert_eq(*(u64 *)(base + offsets[i]), offsets[i]);
    }
    cr_assert(arena_check(&arena));
}

/* ---- budget ------------------------------------------------------------- */

struct arena_snapshot {
    u64 reserved_bytes;
    u32 extent_live, extent_high, extent_free_count;
};

static struct arena_snapshot arena_snap(const struct arena *a)
{
    return (struct arena_snapshot){a->reserved_bytes, a->extent_live, a->extent_high,
                                   a->extent_free_count};
}

static void assert_unchanged(const struct arena *a, struct arena_snapshot before)
{
    struct arena_snapshot now = arena_snap(a);
    cr_assert_eq(now.reserved_bytes, before.reserved_bytes);
    cr_assert_eq(now.extent_live, before.extent_live);
    cr_assert_eq(now.extent_high, before.extent_high);
    cr_assert_eq(now.extent_free_count, before.extent_free_count);
    cr_assert(arena_check(a));
}

Test(arena, budget_exceeded_is_enomem_and_changes_nothing)
{
    struct arena a;
    cr_assert_eq(arena_init(&a, 4096), KEEL_OK);
    arena_ref r1, r2, r3, r4;
    cr_assert_eq(arena_extent_alloc(&a, 4000, &r1), KEEL_OK);
    struct arena_snapshot before = arena_snap(&a);
    cr_assert_eq(arena_extent_alloc(&a, 200, &r2), KEEL_ENOMEM);
    assert_unchanged(&a, before);
    cr_assert_eq(arena_extent_alloc(&a, 97, &r2), KEEL_ENOMEM, "97 rounds to 104 > 96 left");
    assert_unchanged(&a, before);
    cr_assert_eq(arena_extent_alloc(&a, 96, &r2), KEEL_OK, "exactly the budget fits");
    cr_assert_eq(a.reserved_bytes, 4096);
    before = arena_snap(&a);
    cr_assert_eq(arena_extent_alloc(&a, 1, &r3), KEEL_ENOMEM);
    assert_unchanged(&a, before);
    cr_assert_eq(arena_extent_alloc(&a, (size_t)1 << 31, &r3), KEEL_ENOMEM);
    assert_unchanged(&a, before);
    arena_extent_free(&a, r1);
    cr_assert_eq(a.reserved_bytes, 96);
    cr_assert(arena_check(&a));
    cr_assert_eq(arena_extent_alloc(&a, 4000, &r4), KEEL_OK, "freed bytes return to the budget");
    cr_assert_eq(a.reserved_bytes, 4096);
    cr_assert(arena_check(&a));
    arena_deinit(&a);
}

Test(arena, budget_counts_rounded_sizes)
{
    struct arena a;
    cr_assert_eq(arena_init(&a, 64), KEEL_OK);
    arena_ref r;
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(arena_extent_alloc(&a, 1, &r), KEEL_OK, "alloc %d", i);
        cr_assert_eq(arena_extent_size(&a, r), 8);
    }
    cr_assert_eq(a.reserved_bytes, 64, "eight 1-byte extents take 8 bytes each");
    cr_assert_eq(arena_extent_alloc(&a, 1, &r), KEEL_ENOMEM);
    cr_assert(arena_check(&a));
    arena_deinit(&a);
}

/* ---- extent indexes ----------------------------------------------------- */

Test(arena, freed_extent_indexes_are_reused)
{
    arena_ref refs[10];
    for (int i = 0; i < 10; i++) cr_assert_eq(arena_extent_alloc(&arena, 64, &refs[i]), KEEL_OK);
    u32 high = arena.extent_high;
    bool freed[ARENA_EXTENTS_MAX] = {false};
    for (int i = 1; i < 10; i += 3) { /* frees 1, 4, 7 */
        freed[arena_ref_extent(refs[i])] = true;
        arena_extent_free(&arena, refs[i]);
        cr_assert(arena_check(&arena));
    }
    cr_assert_eq(arena.extent_live, 7);
    cr_assert_eq(arena.reserved_bytes, 7 * 64);
    for (int i = 0; i < 3; i++) {
        arena_ref r;
        cr_assert_eq(arena_extent_alloc(&arena, 128, &r), KEEL_OK);
        u32 e = arena_ref_extent(r);
        cr_assert(freed[e], "extent %u was not one of the freed ones", e);
        freed[e] = false;
        cr_assert_eq(arena_extent_size(&arena, r), 128);
        cr_assert(arena_check(&arena));
    }
    cr_assert_eq(arena.extent_high, high, "reuse must not grow the table");
    arena_ref r;
    cr_assert_eq(arena_extent_alloc(&arena, 8, &r), KEEL_OK);
    cr_assert_eq(arena_ref_extent(r), high, "with no free index, the next new one");
    cr_assert_eq(arena.reserved_bytes, 7 * 64 + 3 * 128 + 8);
    cr_assert(arena_check(&arena));
}

Test(arena, free_all_returns_to_zero)
{
    arena_ref refs[100];
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(arena_extent_alloc(&arena, (size_t)(i + 1) * 40, &refs[i]), KEEL_OK);
    }
    cr_assert(arena_check(&arena));
    for (int i = 99; i >= 0; i -= 2) arena_extent_free(&arena, refs[i]);
    cr_assert(arena_check(&arena));
    for (int i = 0; i < 100; i += 2) arena_extent_free(&arena, refs[i]);
    cr_assert(arena_check(&arena));
    cr_assert_eq(arena.reserved_bytes, 0);
    cr_assert_eq(arena.extent_live, 0);
}

Test(arena, extent_table_runs_out_at_extents_max_minus_one)
{
    struct arena a;
    cr_assert_eq(arena_init(&a, 64 * MiB), KEEL_OK);
    static arena_ref refs[ARENA_EXTENTS_MAX];
    u32 n = 0;
    arena_ref r;
    while (n < ARENA_EXTENTS_MAX && arena_extent_alloc(&a, 8, &r) == KEEL_OK) {
        refs[n++] = r; /* bounded: the table holds ARENA_EXTENTS_MAX - 1 */
        cr_assert_neq(r, 0);
        if (n % 4096 == 0) cr_assert(arena_check(&a));
    }
    cr_assert_eq(n, ARENA_EXTENTS_MAX - 1,
                 "index 0 is never used: ARENA_EXTENTS_MAX - 1 extents fit");
    cr_assert_eq(a.reserved_bytes, (u64)n * 8, "the budget is not what ran out");
    struct arena_snapshot before = arena_snap(&a);
    cr_assert_eq(arena_extent_alloc(&a, 8, &r), KEEL_ENOMEM);
    assert_unchanged(&a, before);
    u32 e = arena_ref_extent(refs[1000]);
    arena_extent_free(&a, refs[1000]);
    cr_assert_eq(arena_extent_alloc(&a, 16, &r), KEEL_OK, "a freed slot is usable again");
    cr_assert_eq(arena_ref_extent(r), e);
    cr_assert_eq(arena_extent_alloc(&a, 8, &r), KEEL_ENOMEM);
    cr_assert(arena_check(&a));
    arena_deinit(&a);
}

Test(arena, deinit_then_init_again)
{
    arena_ref r;
    cr_assert_eq(arena_extent_alloc(&arena, 1000, &r), KEEL_OK);
    arena_deinit(&arena); /* frees the live extent too */
    cr_assert_eq(arena_init(&arena, 16 * MiB), KEEL_OK);
    cr_assert_eq(arena.reserved_bytes, 0);
    cr_assert_eq(arena.extent_live, 0);
    cr_assert_eq(arena_extent_alloc(&arena, 1000, &r), KEEL_OK);
    cr_assert_neq(r, 0);
    cr_assert(arena_check(&arena));
}
