/*
 * slab.h — size-class allocation on a shard's arena; no per-object malloc.
 *
 * Objects of 1 .. SLAB_SIZE_MAX bytes are rounded up to a size class and cut
 * from slab pages; larger ones get an arena extent of their own. Classes are
 * 8 bytes apart up to 1 KiB (so small records waste at most 7 bytes), then 8
 * per doubling up to 256 KiB (at most 12.5% rounding). Pages are 64 KiB for
 * classes up to 8 KiB and a whole 2 MiB chunk above; pages, once given to a
 * class, stay with it (freed objects go on the class's free list and are
 * reused first), so "reserved - in use" is the fragmentation figure.
 *
 * Contract:
 *  - Only the owning shard thread calls these; there is no cross-thread free.
 *  - slab_free must be given the same size as the slab_alloc that returned
 *    the ref (the caller knows its objects' sizes; no per-object header).
 *  - Returns KEEL_ENOMEM when the arena's budget is spent; nothing changes.
 *  - Memory is not zeroed.
 */
#ifndef KEEL_CORE_SLAB_H
#define KEEL_CORE_SLAB_H

#include "core/arena.h"
#include "core/types.h"

#define SLAB_SIZE_MAX             ((size_t)256 * 1024)
#define SLAB_CLASS_COUNT          192
#define SLAB_PAGE_SIZE            ((size_t)64 * 1024)
#define SLAB_SMALL_PAGE_CLASS_MAX ((size_t)8 * 1024)

struct slab_class {
    u32 size;            /* object size in bytes */
    arena_ref free_head; /* intrusive free list: first 4 bytes hold the next ref */
    arena_ref bump;      /* next never-used object in the current page */
    u32 bump_left;       /* objects left in the current page */
    u64 live;            /* objects handed out and not freed */
    u64 pages;           /* pages owned */
};

struct slab_stats {
    u64 in_use_bytes;    /* class-rounded bytes of live objects (+ large extents) */
    u64 requested_bytes; /* bytes asked for by live objects */
    u64 page_bytes;      /* bytes in pages owned by classes (+ large extents) */
    u64 reserved_bytes;  /* bytes the arena holds from jemalloc */
    u64 objects_live;
    u64 large_live; /* objects with an extent of their own */
};

struct slab {
    struct arena *arena;
    struct slab_class classes[SLAB_CLASS_COUNT];
    arena_ref page_chunk; /* chunk that 64 KiB pages are cut from */
    u32 page_chunk_left;  /* pages left in it */
    u64 requested_bytes;
    u64 large_bytes;
    u64 large_live;
};

void slab_init(struct slab *s, struct arena *a);
/* Returns KEEL_OK and *ref, or KEEL_ENOMEM. size_bytes in 1..UINT32_MAX-8. */
int slab_alloc(struct slab *s, size_t size_bytes, arena_ref *ref);
void slab_free(struct slab *s, arena_ref ref, size_t size_bytes);

static inline void *slab_ptr(const struct slab *s, arena_ref ref)
{
    return arena_ptr(s->arena, ref);
}

/* Class index of a size (SLAB_CLASS_COUNT for "large"), and the class's size. */
u32 slab_class_index(size_t size_bytes);
size_t slab_class_size(u32 index);
/* The bytes an allocation of size_bytes really takes. */
size_t slab_alloc_size(size_t size_bytes);

void slab_stats(const struct slab *s, struct slab_stats *out);
/* Checks class bookkeeping and walks every free list; true if sound. */
bool slab_check(const struct slab *s);

#endif
