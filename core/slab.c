/* slab.c — size classes, pages and free lists; see slab.h for the contract. */
#include "core/slab.h"
#include "core/assert.h"
#include "core/buf.h"

#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLAB_POISON(p, n)   ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static_assert(SLAB_CLASS_COUNT == 128 + 8 * 8, "8-byte steps to 1 KiB, 8/doubling to 256 KiB");
static_assert(ARENA_CHUNK_SIZE % SLAB_PAGE_SIZE == 0, "pages tile a chunk");

static u32 log2_floor(size_t v)
{
    ASSERT(v > 0);
    return 63u - (u32)__builtin_clzll((unsigned long long)v);
}

u32 slab_class_index(size_t size_bytes)
{
    ASSERT(size_bytes > 0);
    if (size_bytes <= 1024) return (u32)((size_bytes + 7) / 8 - 1);
    if (size_bytes > SLAB_SIZE_MAX) return SLAB_CLASS_COUNT;
    u32 k = log2_floor(size_bytes - 1); /* size in (2^k, 2^(k+1)] */
    size_t step = (size_t)1 << (k - 3);
    size_t sub = (size_bytes - ((size_t)1 << k) + step - 1) / step; /* 1..8 */
    u32 index = 128 + (k - 10) * 8 + (u32)sub - 1;
    ASSERT(index < SLAB_CLASS_COUNT);
    return index;
}

size_t slab_class_size(u32 index)
{
    ASSERT(index < SLAB_CLASS_COUNT);
    if (index < 128) return (size_t)(index + 1) * 8;
    u32 k = 10 + (index - 128) / 8;
    size_t sub = (index - 128) % 8 + 1;
    return ((size_t)1 << k) + sub * ((size_t)1 << (k - 3));
}

size_t slab_alloc_size(size_t size_bytes)
{
    u32 index = slab_class_index(size_bytes);
    if (index == SLAB_CLASS_COUNT) return (size_bytes + ARENA_ALIGN - 1) & ~(size_t)7;
    return slab_class_size(index);
}

void slab_init(struct slab *s, struct arena *a)
{
    ASSERT(s != NULL && a != NULL);
    memset(s, 0, sizeof(*s));
    s->arena = a;
    for (u32 i = 0; i < SLAB_CLASS_COUNT; i++) {
        s->classes[i].size = (u32)slab_class_size(i);
        ASSERT(s->classes[i].size >= slab_alloc_size(s->classes[i].size));
    }
    ASSERT(slab_check(s));
}

/* Gives class c a fresh page; KEEL_ENOMEM if the arena is spent. */
static int slab_page_new(struct slab *s, struct slab_class *c)
{
    ASSERT(c->bump_left == 0);
    arena_ref page;
    size_t page_size;
    if (c->size <= SLAB_SMALL_PAGE_CLASS_MAX) {
        if (s->page_chunk_left == 0) {
            int rc = arena_extent_alloc(s->arena, ARENA_CHUNK_SIZE, &s->page_chunk);
            if (rc != KEEL_OK) return rc;
            s->page_chunk_left = ARENA_CHUNK_SIZE / SLAB_PAGE_SIZE;
        }
        size_t offset = ARENA_CHUNK_SIZE - (size_t)s->page_chunk_left * SLAB_PAGE_SIZE;
        page = arena_ref_make(arena_ref_extent(s->page_chunk), offset);
        s->page_chunk_left--;
        page_size = SLAB_PAGE_SIZE;
    } else {
        int rc = arena_extent_alloc(s->arena, ARENA_CHUNK_SIZE, &page);
        if (rc != KEEL_OK) return rc;
        page_size = ARENA_CHUNK_SIZE;
    }
    SLAB_POISON(arena_ptr(s->arena, page), page_size);
    c->bump = page;
    c->bump_left = (u32)(page_size / c->size);
    c->pages++;
    ASSERT(c->bump_left >= 1);
    return KEEL_OK;
}

static int slab_alloc_large(struct slab *s, size_t size_bytes, arena_ref *ref)
{
    int rc = arena_extent_alloc(s->arena, size_bytes, ref);
    if (rc != KEEL_OK) return rc;
    s->large_live++;
    s->large_bytes += arena_extent_size(s->arena, *ref);
    s->requested_bytes += size_bytes;
    return KEEL_OK;
}

int slab_alloc(struct slab *s, size_t size_bytes, arena_ref *ref)
{
    ASSERT(s != NULL && ref != NULL);
    ASSERT(size_bytes > 0);
    u32 index = slab_class_index(size_bytes);
    if (index == SLAB_CLASS_COUNT) return slab_alloc_large(s, size_bytes, ref);
    struct slab_class *c = &s->classes[index];
    if (c->free_head != 0) {
        u8 *p = arena_ptr(s->arena, c->free_head);
        SLAB_UNPOISON(p, c->size);
        *ref = c->free_head;
        c->free_head = load_u32_le(p);
    } else {
        if (c->bump_left == 0) {
            int rc = slab_page_new(s, c);
            if (rc != KEEL_OK) return rc;
        }
        *ref = c->bump;
        SLAB_UNPOISON(arena_ptr(s->arena, *ref), c->size);
        c->bump += c->size / ARENA_ALIGN; /* refs count 8-byte units */
        c->bump_left--;
    }
    c->live++;
    s->requested_bytes += size_bytes;
    ASSERT(*ref != 0);
    return KEEL_OK;
}

void slab_free(struct slab *s, arena_ref ref, size_t size_bytes)
{
    ASSERT(s != NULL);
    ASSERT(ref != 0);
    ASSERT(s->requested_bytes >= size_bytes);
    u32 index = slab_class_index(size_bytes);
    s->requested_bytes -= size_bytes;
    if (index == SLAB_CLASS_COUNT) {
        ASSERT(s->large_live > 0);
        s->large_live--;
        s->large_bytes -= arena_extent_size(s->arena, ref);
        arena_extent_free(s->arena, ref);
        return;
    }
    struct slab_class *c = &s->classes[index];
    ASSERT(c->live > 0);
    u8 *p = arena_ptr(s->arena, ref);
    store_u32_le(p, c->free_head);
    SLAB_POISON(p, c->size);
    c->free_head = ref;
    c->live--;
}

void slab_stats(const struct slab *s, struct slab_stats *out)
{
    ASSERT(s != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    for (u32 i = 0; i < SLAB_CLASS_COUNT; i++) {
        const struct slab_class *c = &s->classes[i];
        out->in_use_bytes += c->live * c->size;
        out->objects_live += c->live;
        size_t page = c->size <= SLAB_SMALL_PAGE_CLASS_MAX ? SLAB_PAGE_SIZE : ARENA_CHUNK_SIZE;
        out->page_bytes += c->pages * page;
    }
    out->in_use_bytes += s->large_bytes;
    out->page_bytes += s->large_bytes;
    out->objects_live += s->large_live;
    out->large_live = s->large_live;
    out->requested_bytes = s->requested_bytes;
    out->reserved_bytes = s->arena->reserved_bytes;
    ASSERT(out->in_use_bytes <= out->page_bytes);
    ASSERT(out->page_bytes <= out->reserved_bytes);
}

/* Counts a class's free list, checking each link lands inside the arena. */
static bool slab_check_free_list(const struct slab *s, const struct slab_class *c, u64 *count)
{
    *count = 0;
    u64 bound = c->pages * (ARENA_CHUNK_SIZE / c->size) + 1;
    for (arena_ref r = c->free_head; r != 0; (*count)++) {
        if (*count > bound) return false; /* a cycle */
        u32 extent = arena_ref_extent(r);
        if (extent == 0 || extent >= s->arena->extent_high) return false;
        if (s->arena->extent_base[extent] == NULL) return false;
        u8 *p = arena_ptr(s->arena, r);
        SLAB_UNPOISON(p, 4);
        r = load_u32_le(p);
        SLAB_POISON(p, 4);
    }
    return true;
}

bool slab_check(const struct slab *s)
{
    if (s == NULL || s->arena == NULL) return false;
    for (u32 i = 0; i < SLAB_CLASS_COUNT; i++) {
        const struct slab_class *c = &s->classes[i];
        if (c->size != slab_class_size(i)) return false;
        if (slab_class_index(c->size) != i) return false;
        u64 free_count;
        if (!slab_check_free_list(s, c, &free_count)) return false;
        size_t page = c->size <= SLAB_SMALL_PAGE_CLASS_MAX ? SLAB_PAGE_SIZE : ARENA_CHUNK_SIZE;
        u64 capacity = c->pages * (page / c->size);
        if (c->live + free_count + c->bump_left != capacity) return false;
    }
    return s->page_chunk_left <= ARENA_CHUNK_SIZE / SLAB_PAGE_SIZE;
}
