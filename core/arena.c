/*
 * arena.c — extents for one shard from a private jemalloc arena.
 *
 * jemalloc is asked for an explicit arena ("arenas.create") and every
 * allocation passes MALLOCX_ARENA and MALLOCX_TCACHE_NONE, so a shard's memory
 * never mixes with another thread's and is never parked in a thread cache.
 */
#include "core/arena.h"
#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifndef KEEL_SANITIZE
#include <jemalloc/jemalloc.h>
#endif

static void *arena_backend_alloc(struct arena *a, size_t size)
{
#ifdef KEEL_SANITIZE
    (void)a;
    return aligned_alloc(ARENA_ALIGN, size);
#else
    int flags = MALLOCX_ARENA(a->je_arena) | MALLOCX_TCACHE_NONE;
    if (size != ARENA_CHUNK_SIZE) return mallocx(size, flags | MALLOCX_ALIGN(ARENA_ALIGN));
    /* Chunks are aligned to their size (2 MiB) and asked to be huge pages:
     * a random record or node access then walks one TLB entry per 2 MiB. */
    void *p = mallocx(size, flags | MALLOCX_ALIGN(ARENA_CHUNK_SIZE));
    if (p != NULL) (void)madvise(p, size, MADV_HUGEPAGE);
    return p;
#endif
}

static void arena_backend_free(struct arena *a, void *p, size_t size)
{
    (void)a;
#ifdef KEEL_SANITIZE
    (void)size;
    free(p);
#else
    size_t align = size == ARENA_CHUNK_SIZE ? ARENA_CHUNK_SIZE : ARENA_ALIGN;
    sdallocx(p, size, MALLOCX_TCACHE_NONE | MALLOCX_ALIGN(align));
#endif
}

static int arena_backend_create(struct arena *a)
{
#ifdef KEEL_SANITIZE
    a->je_arena = 0;
    return KEEL_OK;
#else
    size_t len = sizeof(a->je_arena);
    if (mallctl("arenas.create", &a->je_arena, &len, NULL, 0) != 0) return KEEL_ENOMEM;
    return KEEL_OK;
#endif
}

static void arena_backend_destroy(struct arena *a)
{
#ifndef KEEL_SANITIZE
    char name[64];
    snprintf(name, sizeof(name), "arena.%u.destroy", a->je_arena);
    int rc = mallctl(name, NULL, NULL, NULL, 0);
    ASSERT(rc == 0);
#else
    (void)a;
#endif
}

int arena_init(struct arena *a, u64 reserved_bytes_max)
{
    ASSERT(a != NULL);
    ASSERT(reserved_bytes_max > 0);
    memset(a, 0, sizeof(*a));
    a->extent_base = calloc(ARENA_EXTENTS_MAX, sizeof(*a->extent_base));
    a->extent_size = calloc(ARENA_EXTENTS_MAX, sizeof(*a->extent_size));
    a->extent_free = calloc(ARENA_EXTENTS_MAX, sizeof(*a->extent_free));
    if (!a->extent_base || !a->extent_size || !a->extent_free || arena_backend_create(a)) {
        free(a->extent_base);
        free(a->extent_size);
        free(a->extent_free);
        memset(a, 0, sizeof(*a));
        return KEEL_ENOMEM;
    }
    a->extent_high = 1; /* index 0 is never handed out: ref 0 means "none" */
    a->reserved_bytes_max = reserved_bytes_max;
    ASSERT(arena_check(a));
    return KEEL_OK;
}

void arena_deinit(struct arena *a)
{
    ASSERT(a != NULL);
    if (a->extent_base == NULL) return;
    for (u32 i = 1; i < a->extent_high; i++) {
        if (a->extent_base[i] != NULL) arena_backend_free(a, a->extent_base[i], a->extent_size[i]);
    }
    arena_backend_destroy(a);
    free(a->extent_base);
    free(a->extent_size);
    free(a->extent_free);
    memset(a, 0, sizeof(*a));
}

int arena_extent_alloc(struct arena *a, size_t size_bytes, arena_ref *ref)
{
    ASSERT(a != NULL && ref != NULL);
    ASSERT(size_bytes > 0);
    size_t size = (size_bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (size > UINT32_MAX || a->reserved_bytes + size > a->reserved_bytes_max) {
        return KEEL_ENOMEM;
    }
    u32 index;
    if (a->extent_free_count > 0) {
        index = a->extent_free[a->extent_free_count - 1];
    } else if (a->extent_high < ARENA_EXTENTS_MAX) {
        index = a->extent_high;
    } else {
        return KEEL_ENOMEM; /* the extent table is full */
    }
    u8 *p = arena_backend_alloc(a, size);
    if (p == NULL) return KEEL_ENOMEM;
    if (a->extent_free_count > 0)
        a->extent_free_count--;
    else
        a->extent_high++;
    ASSERT(a->extent_base[index] == NULL);
    a->extent_base[index] = p;
    a->extent_size[index] = (u32)size;
    a->extent_live++;
    a->reserved_bytes += size;
    *ref = arena_ref_make(index, 0);
    ASSERT(arena_ptr(a, *ref) == p);
    return KEEL_OK;
}

void arena_extent_free(struct arena *a, arena_ref ref)
{
    ASSERT(a != NULL);
    ASSERT(arena_ref_offset(ref) == 0);
    u32 index = arena_ref_extent(ref);
    ASSERT(index > 0 && index < a->extent_high);
    ASSERT(a->extent_base[index] != NULL);
    u32 size = a->extent_size[index];
    arena_backend_free(a, a->extent_base[index], size);
    a->extent_base[index] = NULL;
    a->extent_size[index] = 0;
    ASSERT(a->reserved_bytes >= size);
    a->reserved_bytes -= size;
    a->extent_live--;
    ASSERT(a->extent_free_count < ARENA_EXTENTS_MAX);
    a->extent_free[a->extent_free_count++] = index;
}

bool arena_check(const struct arena *a)
{
    if (a == NULL || a->extent_base == NULL) return false;
    if (a->extent_high < 1 || a->extent_high > ARENA_EXTENTS_MAX) return false;
    u64 bytes = 0;
    u32 live = 0;
    for (u32 i = 1; i < a->extent_high; i++) {
        if (a->extent_base[i] == NULL) {
            if (a->extent_size[i] != 0) return false;
            continue;
        }
        if (a->extent_size[i] == 0 || a->extent_size[i] % ARENA_ALIGN != 0) return false;
        bytes += a->extent_size[i];
        live++;
    }
    if (a->extent_base[0] != NULL) return false;
    if (live != a->extent_live || bytes != a->reserved_bytes) return false;
    if (live + a->extent_free_count != a->extent_high - 1) return false;
    return a->reserved_bytes <= a->reserved_bytes_max;
}
