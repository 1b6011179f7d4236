/* checksum.c — XXH3-64 behind checksum.h; the only includer of xxhash.h. */
#include "core/checksum.h"
#include "core/assert.h"

#define XXH_STATIC_LINKING_ONLY /* for sizeof(XXH3_state_t) */
#include <xxhash.h>

static_assert(sizeof(XXH3_state_t) <= sizeof(((struct checksum_stream *)0)->state),
              "checksum_stream too small for XXH3_state_t");

u64 checksum64(const void *data, size_t len)
{
    ASSERT(data != NULL || len == 0);
    return XXH3_64bits(data, len);
}

u64 checksum64_seeded(const void *data, size_t len, u64 seed)
{
    ASSERT(data != NULL || len == 0);
    return XXH3_64bits_withSeed(data, len, seed);
}

void checksum_stream_init(struct checksum_stream *s)
{
    ASSERT(s != NULL);
    XXH_errorcode rc = XXH3_64bits_reset((XXH3_state_t *)s->state);
    ASSERT(rc == XXH_OK);
}

void checksum_stream_update(struct checksum_stream *s, const void *data, size_t len)
{
    ASSERT(s != NULL);
    XXH_errorcode rc = XXH3_64bits_update((XXH3_state_t *)s->state, data, len);
    ASSERT(rc == XXH_OK);
}

u64 checksum_stream_digest(const struct checksum_stream *s)
{
    ASSERT(s != NULL);
    return XXH3_64bits_digest((const XXH3_state_t *)s->state);
}
