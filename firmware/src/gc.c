/* Moving chunks between segments: garbage collection and static wear leveling (§10), recovery
 * from a failed program (§12), the idle step (§8). */
#include "fsw_priv.h"

/* Room on the hot (0) or cold (1) head for a record: none below MIN_ROOM. */
static uint32_t usable(const fsw_t *fs, int cold)
{
    uint32_t room = fsw_head_room(fs, cold);
    return room < MIN_ROOM ? 0 : room;
}

/* The index entry with a fragment in segment s and the lowest first-fragment address (NULL
 * if none); with afford 1, NULL as well when moving all of them to the cold head would not
 * leave `reserve` segments free once s is free (during the move one fewer, §10); with afford 2,
 * when they do not fit in the hot head's room with a trim record (and a seq reservation) to
 * spare: a move that opens no segment and frees one. */
static const struct fsw_index_entry *in_segment(fsw_t *fs, uint32_t s, int afford)
{
    const struct fsw_index_entry *x = fs->cfg->index, *best = NULL;
    uint32_t i, at = NONE, cost = 0, room;
    for (i = 0; i < fs->nkeys; i++)
        if (fsw_live(fs, x + i, 0, s) == 2) { /* never LOST: its address is below NONE */
            uint32_t n = x[i].size, a = x[i].addr;
            cost += n + 64 + (n >> 4); /* a header per 512 bytes at most */
            if (a < at) {
                at = a;
                best = x + i;
            }
        }
    if (afford > 1) /* MIN_ROOM + 15: an encrypted trim record; a RESERVE, synced */
        cost += MIN_ROOM + (TAG(fs) ? 15 + REC_SIZE + PROG_SIZE(fs) : 0);
    room = usable(fs, afford & 1);
    if (afford && (int32_t)(room - cost) + (afford & 1) * (int32_t)DATA_CAP(fs) *
                                              ((int32_t)COUNT(fs, PICK_HOT) + 1 - fs->reserve) <
                      0)
        best = NULL;
    return best;
}

/* Moves every chunk with a fragment in segment s to the active head, in ascending order of
 * first-fragment address (§10); a chunk that fails verification is lost (§12). */
static int relocate(fsw_t *fs, uint32_t s)
{
    const struct fsw_index_entry *e;
    int err = 0;
    /* the entry stays put until the copy is complete (fsw_chunk_write sets it last) */
    while (!err && (e = in_segment(fs, s, 0)) != NULL) {
        err = fsw_chunk_read(fs, e, NULL);
        if (IS_CORRUPT(err))
            err = fsw_idx_set(fs, e->key, LOST, 0);
        else if (!err)
            err = fsw_chunk_write(fs, T_DATA, e->key, e->size, NULL, e);
    }
    return err;
}

/* Moves segment s's chunks to the cold (or the hot) head. */
static int move(fsw_t *fs, uint32_t s, int cold)
{
    int err = fsw_use(fs, cold);
    return err ? err : relocate(fs, s);
}

/* §10 step 3: make need bytes fit on the hot head keeping `reserve` segments really free:
 * release the dead segments the window pins with a checkpoint, else move the emptiest segment
 * outside the window to the cold head if that keeps the reserve, or into the hot head's room
 * if it fits there while a segment is free (it opens no segment and frees one), else shrink
 * the window.
 * Bounded as the Python model's. */
int fsw_make_room(fsw_t *fs, uint32_t need)
{
    uint32_t i, v, room;
    int32_t free, x;
    int err = 0;
    for (i = 0; i < 4 * fs->nseg + 4 && !err; i++) {
        room = usable(fs, 0);
        if (room >= need && fs->torn & ROOMY)
            return 0; /* the common case, decided without counting free segments */
        free = (int32_t)COUNT(fs, PICK_HOT);
        x = free - fs->reserve;
        if (x >= 0)
            fs->torn |= ROOMY;
        /* lean (§10): one segment short at most (what a cut during a move leaves), none once
         * a segment was retired */
        if (x >= (fs->retired ? 0 : -1) &&
            room + DATA_CAP(fs) * (uint32_t)(x > 0 ? x : 0) >= need)
            return 0;
        if (free && (int32_t)COUNT(fs, PICK_SPACE) > free)
            err = fsw_next(fs, 0, OPEN_FORCE); /* the window pins dead segments */
        else if (free && (v = PICK(fs, PICK_VICTIM)) != NONE && in_segment(fs, v, 1))
            err = move(fs, v, 1); /* (with none free, none keeps the reserve) */
        else if (free && v != NONE && in_segment(fs, v, 2))
            err = move(fs, v, 0); /* short of segments: into the hot head's room */
        else if (COUNT(fs, PICK_WINDOW) && x > 0)
            err = fsw_next(fs, 0, OPEN_FORCE); /* its segments become victims */
        else
            break;
    }
    return err ? err : FSW_ERR_NOSPC;
}

/* §10 step 2: one move of the least-worn segment holding data outside the window (or the cold
 * head's own segment), when it lags more than the threshold behind where the hot head
 * allocates next. 1 if moved. */
int fsw_static_wl(fsw_t *fs)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t lo, hi, ref, c, d;
    uint32_t cs = fs->cold ? fs->open : fs->park;
    int err;
    /* The spread of erase counts changes only with an erase or a retirement: while it is within
     * the threshold, the scans are skipped (four per put: most of a put on a large device). */
    if (fs->wl_quiet)
        return 0;
    lo = PICK(fs, PICK_LO);
    hi = PICK(fs, PICK_HI);
    if (lo == NONE || g[hi].erase_count - g[lo].erase_count <= fs->wl_threshold) {
        fs->wl_quiet = 1;
        return 0;
    }
    ref = PICK(fs, PICK_HOT);
    c = PICK(fs, PICK_WL);
    /* the cold head's segment is a candidate too (not in the scan: it slows every scan down) */
    if (cs != NONE && g[cs].live &&
        (c == NONE || ((uint64_t)g[cs].erase_count << 32 | cs) <
                          ((uint64_t)g[c].erase_count << 32 | c)))
        c = cs;
    if (ref == NONE || c == NONE)
        return 0;
    d = g[ref].erase_count + (g[ref].state != ST_ERASED) - g[c].erase_count;
    if ((int32_t)d <= (int32_t)fs->wl_threshold || !in_segment(fs, c, 1))
        return 0;
    err = fsw_use(fs, 1);
    if (!err && c == cs)
        err = fsw_close_seg(fs); /* its chunks go to a new, more worn cold segment */
    if (!err)
        err = relocate(fs, c);
    return err ? err : 1;
}

/* A program into the active head's segment failed (§12): the segment is retired in RAM only
 * (on flash it stays valid history), and every chunk with a fragment in a retired segment is
 * written again on the same head, what never reached flash read from the rescue copy of the
 * buffer (if any). A segment whose header never reached flash gives its seq to the next one
 * opened; the next segment of this log says its predecessor may end torn. Then a checkpoint:
 * trims among the bytes that never reached flash live only in RAM. */
int fsw_recover(fsw_t *fs, uint32_t start)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t s = fs->open, unit = fs->wp & ~(PROG_SIZE(fs) - 1);
    int err;
    if (s != NONE) {
        struct fsw_seg *g = c->segs + s;
        int empty = !g->live, fresh = 0; /* empty: no chunk has a fragment in it */
        if (unit + fs->programmed < SEG_BASE(fs, s) + HDR_SIZE) {
            fs->next_seq = g->seq;
            fresh = empty && g->seq >= start && !(fs->torn & 16);
        }
        /* fresh: the head unmarked again, for the SYNC record the failed program held may
         * have been the mark its records needed (§6); else bit 4: recovering */
        fs->torn |= (uint8_t)((fresh ? 4u << fs->cold : 16u) | 1u << fs->cold);
        fs->open = NONE;
        fsw_retire(fs, s);
        if (fresh)
            return 0;
        /* an empty segment failing during a recovery has nothing to rescue (what it held
         * is moved again): that recovery's copy stays, its chunks' bytes still moving */
        if (c->rescue_buffer && !(empty && fs->rescue_end)) {
            memcpy(c->rescue_buffer, c->prog_buffer, PROG_SIZE(fs));
            fs->rescue_unit = unit;
            fs->rescue_end = fs->wp;
        }
    }
    err = relocate(fs, s); /* and the chunks left in an earlier one (fsw_live) */
    if (err != FSW_ERR_WORN) /* the copy lives as long as this recovery, as in the model */
        fs->rescue_end = 0;
    return err ? err : fsw_next(fs, 0, OPEN_FORCE);
}

/* Idle step (§8): one static wear-leveling move, then pre-erase what a hot open would take
 * next among the segments not yet erased, until ckpt_interval are erased ahead; a sync first,
 * for what made a segment reclaimable may still sit in the buffer. */
int fsw_idle_work(fsw_t *fs, unsigned max_erases)
{
    uint32_t s;
    unsigned work = 0;
    int err = max_erases ? fsw_static_wl(fs) : 0;
    if (err < 0)
        return err;
    for (work = (unsigned)err; work < max_erases; work++) {
        s = PICK(fs, PICK_DIRTY);
        if (COUNT(fs, PICK_ERASED) >= fs->ckpt_interval || s == NONE)
            break;
        err = fsw_log_sync(fs);
        if (!err)
            err = fsw_erase(fs, s);
        if (err < 0)
            return err;
    }
    return (int)work;
}
