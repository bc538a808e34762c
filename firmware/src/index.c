/* The index (§5): entries sorted by key in the caller's array, binary search, where a chunk's
 * fragments lie (§4), and the live-byte accounting that follows every change of an entry. A lost
 * chunk (§12) stays in the index with address LOST and size 0 so that it reads as corrupt, not
 * absent, and checkpoints keep it. */
#include "fsw_priv.h"

/* Where key is or would go in the index | 1 << 32 if it is there. */
uint64_t fsw_idx_find(const fsw_t *fs, uint32_t key)
{
    const struct fsw_index_entry *x = fs->cfg->index;
    uint32_t lo = 0, hi = fs->nkeys;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (x[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo | (uint64_t)(lo < fs->nkeys && x[lo].key == key) << 32;
}

/* A fragment's place follows from the chunk's first address and size alone: the first fills
 * its segment to the end when the chunk does not fit, each continuation starts at byte 40 of
 * the next segment of the same log. Nothing about fragments is kept in RAM. */
void fsw_frag_first(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f)
{
    uint32_t room = SEG_SIZE(fs) - (e->addr & (SEG_SIZE(fs) - 1)) - REC_SIZE;
    f->addr = e->addr;
    f->off = 0;
    f->len = e->size < room ? e->size : room;
}

/* 1: f is now the next fragment; 0: f was the last; -1: its segment is missing. */
int fsw_frag_next(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f)
{
    uint32_t s, cap = DATA_CAP(fs) - REC_SIZE;
    f->off += f->len;
    if (f->off >= e->size)
        return 0;
    s = fsw_chain(fs, SEG_OF(fs, f->addr));
    if (s == NONE)
        return -1;
    f->addr = SEG_BASE(fs, s) + HDR_SIZE;
    f->len = e->size - f->off < cap ? e->size - f->off : cap;
    return 1;
}

/* Adds (sign 1) or removes (-1) the bytes of e's fragments to or from their segments' live
 * counts, or only walks them (0). Returns 2 as soon as a fragment lies in segment `in` (NONE:
 * never) or, walking, outside the log; -1 if a continuation's segment is missing; else 0. Not while mounting: mount counts
 * once the index is complete. */
int fsw_live(fsw_t *fs, const struct fsw_index_entry *e, int sign, uint32_t in)
{
    struct fsw_frag f;
    int k;
    if (!fs->mounted || e->addr == LOST)
        return 0;
    fsw_frag_first(fs, e, &f);
    do {
        uint32_t s = SEG_OF(fs, f.addr);
        /* walking, a fragment outside the log counts as in any segment: in a retired one
         * after a failure interrupted its recovery (§12), or found by mount (§9) */
        if (s == in || (!sign && SEGS(fs)[s].state != ST_LOG))
            return 2;
        SEGS(fs)[s].live += (uint32_t)sign * (REC_SIZE + f.len);
        /* held (a recovery opens it last): a record a failed program may lose released bytes
         * of it. Set by every change and walk: an empty segment's bit is set only if a
         * release emptied it since the bits were cleared */
        SEGS(fs)[s].tear = 1;
    } while ((k = fsw_frag_next(fs, e, &f)) > 0);
    return k;
}

int fsw_idx_set(fsw_t *fs, uint32_t key, uint32_t addr, uint32_t size)
{
    uint64_t v = fsw_idx_find(fs, key);
    uint32_t i = IDX_POS(v);
    struct fsw_index_entry *e = fs->cfg->index + i;
    if (IDX_FOUND(v)) {
        fsw_live(fs, e, -1, NONE);
    } else {
        if (fs->nkeys >= fs->max_keys)
            return FSW_ERR_NOSPC;
        memmove(e + 1, e, (fs->nkeys - i) * sizeof *e);
        fs->nkeys++;
    }
    e->key = key;
    e->addr = addr;
    e->size = size;
    fsw_live(fs, e, 1, NONE);
    return 0;
}

/* Removes every entry with first <= key <= last; returns how many. */
uint32_t fsw_idx_drop(fsw_t *fs, uint32_t first, uint32_t last)
{
    struct fsw_index_entry *x = fs->cfg->index;
    uint32_t a = IDX_POS(fsw_idx_find(fs, first)), b = a;
    while (b < fs->nkeys && x[b].key <= last)
        fsw_live(fs, x + b++, -1, NONE);
    memmove(x + a, x + b, (fs->nkeys - b) * sizeof *x);
    fs->nkeys = (uint16_t)(fs->nkeys - (b - a));
    return b - a;
}
