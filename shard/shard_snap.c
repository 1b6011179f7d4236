/* TEMP placeholder until core/snapshot_file lands: no snapshots yet. */
#include "shard/shard_int.h"

int shard_snap_load(struct shard *s, u64 *applied_index)
{
    (void)s;
    *applied_index = 0;
    return 0;
}

void shard_snap_step(struct shard *s)
{
    (void)s;
}

void shard_snap_free(struct shard *s)
{
    (void)s;
}
