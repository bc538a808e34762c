/* The query API (flashswap.h): fsw_stat and the introspection functions, read-only views of
 * the RAM state, in an object of their own so that a firmware that does not call them does not
 * link them. */
#include "fsw_priv.h"

int fsw_stat(fsw_t *fs, struct fsw_stat *st)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t i, sum = 0;
    if (!fs->mounted)
        return FSW_ERR_INVAL;
    for (i = 0; i < fs->nkeys; i++)
        sum += fs->cfg->index[i].size;
    st->live_bytes = sum;
    i = COUNT(fs, PICK_LO);
    st->bad_segments = fs->nseg - i;
    st->erase_min = st->erase_max = 0;
    if (i) { /* not every segment bad */
        st->erase_min = g[PICK(fs, PICK_LO)].erase_count;
        st->erase_max = g[PICK(fs, PICK_HI)].erase_count;
    }
    st->live_chunks = fs->nkeys;
    st->segments = fs->nseg;
    st->free_segments = COUNT(fs, PICK_SPACE);
    st->free_bytes = fsw_head_room(fs, 0) + st->free_segments * DATA_CAP(fs);
    st->retired = fs->retired;
    st->max_chunk = fs->max_chunk - TAG(fs); /* the largest put: a tag follows it (§4a) */
    return 0;
}

int fsw_seg_info(const fsw_t *fs, uint32_t seg, struct fsw_seg_info *out)
{
    const struct fsw_seg *g = SEGS(fs);
    int head = seg == fs->open || seg == fs->park;
    if (seg >= fs->nseg)
        return FSW_ERR_INVAL;
    g += seg;
    out->erase_count = g->erase_count;
    out->seq = g->seq;
    out->live_bytes = g->live;
    out->state = (uint8_t)g->state;
    out->cold = (uint8_t)g->cold;
    out->open = (uint8_t)head;
    /* the segments garbage collection may not touch (alloc.c, outside) and the heads */
    out->window = (uint8_t)(head || (g->state == ST_LOG &&
                                     g->seq >= (g->cold ? fs->replay_cold : fs->replay_seq)));
    return 0;
}

int fsw_info(const fsw_t *fs, struct fsw_info *out)
{
    uint64_t seg = SEG_SIZE(fs);
    struct fsw_seg_info si;
    uint32_t s;
    memset(out, 0, sizeof *out);
    /* every segment opened, less what the heads have not written yet */
    out->log_bytes = (uint64_t)(fs->next_seq - 1) * seg - fsw_head_room(fs, 0) - fsw_head_room(fs, 1);
    out->max_keys = fs->max_keys;
    out->ckpt_interval = fs->ckpt_interval;
    out->reserve = fs->reserve;
    out->wl_threshold = fs->wl_threshold;
    out->tag_len = TAG(fs);
    out->max_chunk = fs->max_chunk - out->tag_len; /* a tag follows every chunk (§4a) */
    out->epoch = fs->epoch;
    out->entries = fs->nkeys;
    out->retired = fs->retired;
    for (s = 0; s < fs->nseg; s++) {
        fsw_seg_info(fs, s, &si);
        out->window_segments += si.window;
    }
    out->hot_segment = fs->cold ? fs->park : fs->open;
    out->cold_segment = fs->cold ? fs->open : fs->park;
    out->mounted = fs->mounted;
    out->damaged = fs->damaged;
    return 0;
}

int fsw_traverse(const fsw_t *fs, int (*cb)(void *ctx, const struct fsw_chunk_info *chunk),
                 void *ctx)
{
    const struct fsw_index_entry *e = fs->cfg->index;
    struct fsw_chunk_info ci;
    uint32_t i;
    int err = 0;
    for (i = 0; i < fs->nkeys && !err; i++, e++) {
        ci.key = e->key;
        ci.addr = e->addr;
        ci.lost = e->addr == LOST;
        ci.size = ci.lost ? 0 : e->size - TAG(fs);
        err = cb(ctx, &ci);
    }
    return err;
}
