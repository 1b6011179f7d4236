/*
 * arena.h — a shard's memory: extents from a private jemalloc arena,
 * addressed by 32-bit references.
 *
 * Why 32-bit references: a B+tree leaf stores one reference per key, and the
 * engine's budget is 32 bytes of overhead per key all told. A ref is half a
 * pointer, and it keeps every pointer-bearing structure relocatable.
 *
 * A ref names an extent and an 8-byte-aligned offset inside it:
 *
 *   bits 31..18  extent index (1..ARENA_EXTENTS_MAX-1; index 0 is never used,
 *                so ref 0 means "none")
 *   bits 17..0   offset / 8 inside the extent (so offsets reach 2 MiB)
 *
 * Extents are either chunks (ARENA_CHUNK_SIZE bytes, carved into slab pages by
 * slab.c) or large objects (any size, only ever referenced at offset 0).
 * Chunks are 2 MiB-aligned and advised MADV_HUGEPAGE: where the kernel grants
 * transparent huge pages, random record and node reads miss the TLB far less.
 *
 * Contract:
 *  - One arena per shard; only the owning thread calls any function here
 *    (no locks; jemalloc's thread cache is bypassed so that no memory of this
 *    arena is cached in another thread).
 *  - A budget (reserved_bytes_max) caps the bytes reserved; past it, allocation
 *    fails with KEEL_ENOMEM and nothing is changed.
 *  - arena_ptr() is valid for any ref returned by arena_extent_alloc (or an
 *    offset inside such an extent) until that extent is freed.
 *  - Under KEEL_SANITIZE the extents come from malloc so that AddressSanitizer
 *    sees them; slab.c then poisons free objects.
 */
#ifndef KEEL_CORE_ARENA_H
#define KEEL_CORE_ARENA_H

#include "core/types.h"

#define ARENA_OFFSET_BITS 18
#define ARENA_ALIGN       8u
#define ARENA_CHUNK_SIZE  ((size_t)1 << (ARENA_OFFSET_BITS + 3)) /* 2 MiB */
#define ARENA_EXTENTS_MAX ((u32)1 << (32 - ARENA_OFFSET_BITS))   /* 16384 */

typedef u32 arena_ref;

struct arena {
    u8 **extent_base; /* [ARENA_EXTENTS_MAX]; NULL when free */
    u32 *extent_size; /* [ARENA_EXTENTS_MAX]; bytes, rounded to ARENA_ALIGN */
    u32 *extent_free; /* stack of freed extent indexes */
    u32 extent_free_count;
    u32 extent_high;        /* indexes [1, extent_high) have been handed out */
    u32 extent_live;        /* extents currently allocated */
    unsigned je_arena;      /* jemalloc arena index (unused under KEEL_SANITIZE) */
    u64 reserved_bytes;     /* bytes in live extents */
    u64 reserved_bytes_max; /* budget */
};

/* Creates the arena and its jemalloc arena. Returns KEEL_OK or KEEL_ENOMEM. */
int arena_init(struct arena *a, u64 reserved_bytes_max);
/* Frees every extent and the jemalloc arena. */
void arena_deinit(struct arena *a);

/* Allocates an extent of size_bytes (1 .. 2^32-8). On success *ref points at its
 * first byte. Returns KEEL_OK or KEEL_ENOMEM (budget or extent table spent). */
int arena_extent_alloc(struct arena *a, size_t size_bytes, arena_ref *ref);
/* Frees the extent that ref points at (offset 0 of it). */
void arena_extent_free(struct arena *a, arena_ref ref);

static inline u32 arena_ref_extent(arena_ref ref)
{
    return ref >> ARENA_OFFSET_BITS;
}

static inline size_t arena_ref_offset(arena_ref ref)
{
    return (size_t)(ref & (((u32)1 << ARENA_OFFSET_BITS) - 1)) << 3;
}

static inline arena_ref arena_ref_make(u32 extent, size_t offset)
{
    return (extent << ARENA_OFFSET_BITS) | (u32)(offset >> 3);
}

/* The address of ref. Cheap: one table load and an add. */
static inline void *arena_ptr(const struct arena *a, arena_ref ref)
{
    return a->extent_base[arena_ref_extent(ref)] + arena_ref_offset(ref);
}

/* Size in bytes of the extent holding ref. */
static inline size_t arena_extent_size(const struct arena *a, arena_ref ref)
{
    return a->extent_size[arena_ref_extent(ref)];
}

/* Walks the extent table and checks its bookkeeping; returns true if sound. */
bool arena_check(const struct arena *a);

#endif
