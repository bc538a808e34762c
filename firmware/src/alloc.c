/* Segments: allocation and opening (§8), erase with verify, retirement (§12), garbage
 * collection and static wear leveling (§10), recovery from a failed program, the idle step. */
#include "fsw_priv.h"

/* In the log, outside the replay window of its log, and open in neither head: the only
 * segments garbage collection, wear leveling and reclaiming may touch (§5, §7). */
static int outside(const fsw_t *fs, uint32_t s)
{
    const struct fsw_seg *g = SEGS(fs) + s;
    return g->state == ST_LOG && g->seq < (g->cold ? fs->replay_cold : fs->replay_seq) &&
           s != fs->open && s != fs->park;
}

/* One pass over the segments for every choice the store makes: returns the winner of `mode`
 * (NONE if no segment qualifies; the lowest index among equals) and how many qualify. */
uint32_t fsw_seq_find(const fsw_t *fs, int mode, uint32_t arg)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t s, best = NONE, k, bk = 0;
    for (s = 0; s < fs->nseg; s++, g++) {
        k = g->seq ^ (mode & PICK_DOWN ? NONE : 0);
        /* on equal seqs a bad segment wins: a failed segment whose header never reached flash
         * gave its seq to the next one opened, and its chunks still chain to it (§12) */
        if (g->cold == (mode & 1) && (unsigned)(g->state - ST_LOG) <= (unsigned)(mode >> 1 & 1) &&
            k >= arg && (best == NONE || k < bk || (k == bk && g->state == ST_BAD))) {
            bk = k;
            best = s;
        }
    }
    return best;
}

uint64_t fsw_scan(const fsw_t *fs, int mode)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t s, best = NONE, n = 0;
    uint64_t k, bk = 0;
    for (s = 0; s < fs->nseg; s++, g++) {
        int in = outside(fs, s), avail = g->state <= ST_FREE || (in && !g->live), ok = 1;
        uint32_t eff = g->erase_count + (g->state != ST_ERASED);
        k = g->erase_count;
        switch (mode) {
        case PICK_HOT:
        case PICK_COLD:
            ok = avail;
            k = mode == PICK_HOT ? eff : ~eff;
            break;
        case PICK_DIRTY:
            ok = avail && g->state != ST_ERASED;
            break;
        case PICK_VICTIM:
            ok = g->live < DATA_CAP(fs) - 64;
            k = (uint64_t)g->live << 32 | g->seq;
            /* fall through */
        case PICK_WL:
            ok = ok && in && g->live;
            break;
        case PICK_HI:
            k = ~k;
            /* fall through */
        case PICK_LO:
            ok = g->state != ST_BAD;
            break;
        case PICK_ERASED:
            ok = g->state == ST_ERASED;
            break;
        case PICK_SPACE:
            ok = g->state <= ST_FREE ||
                 (g->state == ST_LOG && !g->live && s != (fs->cold ? fs->park : fs->open));
            break;
        default: /* PICK_WINDOW */
            ok = g->state == ST_LOG && !in && s != fs->open && s != fs->park;
        }
        if (ok && (!n++ || k < bk)) {
            bk = k;
            best = s;
        }
    }
    return best | (uint64_t)n << 32;
}

/* The segment a spilled fragment of segment s continues in: the next one opened by the same
 * head, i.e. the smallest seq above s's among segments of s's log (retired ones included). */
uint32_t fsw_chain(const fsw_t *fs, uint32_t s)
{
    const struct fsw_seg *g = SEGS(fs) + s;
    return g->seq == NONE ? NONE : fsw_seq_find(fs, PICK_SEQ | PICK_BAD | g->cold, g->seq + 1);
}

/* §12: BAD in RAM only; after a mount the segment is what its header says, and an erase
 * that fails retires it again. */
static void retire(fsw_t *fs, uint32_t s)
{
    fs->cfg->segs[s].state = ST_BAD;
    fs->retired++;
    fs->wl_quiet = 0;
}

/* Erases segment s and verifies it reads erased (§8). 1 (and s retired) when the device
 * reports a failure or the block kept programmed bits. */
int fsw_erase(fsw_t *fs, uint32_t s)
{
    const struct fsw_config *c = fs->cfg;
    struct fsw_seg *g = c->segs + s;
    int err = c->erase(c, SEG_BASE(fs, s), SEG_SIZE(fs));
    if (!err) {
        g->erase_count++;
        fs->wl_quiet = 0;
        err = fsw_blank(fs, SEG_BASE(fs, s), SEG_SIZE(fs));
        if (err == 1) {
            g->seq = 0;
            g->live = 0;
            g->state = ST_ERASED;
            return 0;
        }
    }
    if (err && err != FSW_ERR_WORN)
        return err < 0 ? err : FSW_ERR_IO;
    retire(fs, s);
    return 1;
}

/* The words of the segment header (§3) of the active head's log (HF_TEAR if its last segment
 * ended torn), but for erase_count, seq, replay_seq and crc (words 2-4, 9). */
void fsw_hdr_make(const fsw_t *fs, uint32_t *h)
{
    h[0] = 0x50575346u; /* "FSWP" */
    h[1] = 2u | fs->seg_shift << 8 | (uint32_t)fs->prog_shift << 16 |
           (uint32_t)(fs->page_once | fs->cold << 1 | (fs->torn >> fs->cold & 1) << 2) << 24;
    h[5] = fs->nseg;
    h[6] = fs->max_keys | (uint32_t)fs->ckpt_interval << 16 | (uint32_t)fs->reserve << 24;
    h[7] = fs->wl_threshold | (uint32_t)fs->epoch << 16;
#ifdef FSW_NO_AEAD
    h[8] = NONE;
#else
    h[8] = fs->crypt;
#endif
}

/* §8: opens a segment for the active head and puts its header in the buffer. A hot segment is
 * a checkpoint segment when one is due (or forced) and fits after a continuation of cont
 * bytes (at most 32 + 2^24: no overflow). Returns 1 for a checkpoint segment. */
static int open_seg(fsw_t *fs, uint32_t cont, int force)
{
    struct fsw_seg *g;
    uint32_t h[10], s;
    int err, ck;
    do {
        s = PICK(fs, fs->cold); /* PICK_HOT or PICK_COLD */
        if (s == NONE)
            return FSW_ERR_NOSPC;
        /* A segment believed erased is blank-checked first: mount judged it by its header
         * alone, and a torn erase can leave an erased header over a programmed body (§8). */
        err = SEGS(fs)[s].state == ST_ERASED ? fsw_blank(fs, SEG_BASE(fs, s), SEG_SIZE(fs)) : 0;
        if (err >= 0)
            err = err == 1 ? 0 : fsw_erase(fs, s);
        if (err < 0)
            return err;
    } while (err);
    g = SEGS(fs) + s;
    g->state = ST_LOG;
    g->seq = fs->next_seq++;
    g->live = 0;
    g->cold = fs->cold;
    /* no checkpoint while the chunks of a failed segment move: bytes of some never reached
     * flash (the rescue copy holds them) */
    ck = !fs->cold && (force || fs->segs_since_ckpt >= fs->ckpt_interval) &&
         HDR_SIZE + cont + REC_SIZE + ENTRY_SIZE * (fs->nkeys + 1u) +
                 (TAG(fs) ? TAG(fs) + REC_SIZE + (fs->page_once ? PROG_SIZE(fs) : 0) : 0) <=
             SEG_SIZE(fs) && /* tag, reservation and its sync (§4a) */
         !fs->rescue_end;
    fs->segs_since_ckpt = ck ? 1 : fs->segs_since_ckpt + 1;
    fsw_hdr_make(fs, h);
    fs->torn &= (uint8_t)~(5u << fs->cold); /* and unmarked: its header follows the records */
    h[2] = g->erase_count;
    h[3] = g->seq;
    h[4] = ck ? g->seq : fs->replay_seq;
    fsw_seal(h, 10);
    fs->open = s;
    fs->wp = SEG_BASE(fs, s);
    fs->programmed = 0;
    err = fsw_append(fs, h, HDR_SIZE);
    return err ? err : ck;
}

/* Closing a head's segment (§6): a sync, then forget it. */
static int close_seg(fsw_t *fs)
{
    int err = fsw_log_sync(fs);
    if (!err) /* a failed sync keeps the segment open: recovery retires it (§12) */
        fs->open = NONE;
    return err;
}

/* The active head needs a segment: close the current one (unless a spill filled it) and open
 * the next; a checkpoint due there is written now, or, for a spill, left to the caller (1). A
 * forced checkpoint shrinks the window to the heads (§10): it switches to the hot head first,
 * and closes the cold head if nothing in it lives (parked, it is synced: closing is
 * forgetting it). */
int fsw_next(fsw_t *fs, uint32_t cont, int mode)
{
    int err = 0;
    if (mode == OPEN_FORCE) {
        err = fsw_use(fs, 0);
        if (fs->park != NONE && !SEGS(fs)[fs->park].live)
            fs->park = NONE;
    }
    if (!err && mode != OPEN_SPILL)
        err = close_seg(fs);
    if (!err)
        err = open_seg(fs, cont, mode == OPEN_FORCE);
    return err <= 0 || mode == OPEN_SPILL ? err : fsw_ckpt_write(fs);
}

/* Room on the hot (0) or cold (1) head for a record: none below MIN_ROOM. */
static uint32_t usable(const fsw_t *fs, int cold)
{
    uint32_t room = fsw_head_room(fs, cold);
    return room < MIN_ROOM ? 0 : room;
}

/* The index entry with a fragment in segment s and the lowest first-fragment address; with
 * afford, NONE as well when moving all of them to the cold head would not leave `reserve`
 * segments free once s is free (during the move one fewer, §10). */
static uint32_t in_segment(fsw_t *fs, uint32_t s, int afford)
{
    const struct fsw_index_entry *x = fs->cfg->index;
    uint32_t i, best = NONE, cost = 0, room;
    for (i = 0; i < fs->nkeys; i++)
        if (fsw_live(fs, x + i, 0, s) == 2) {
            cost += x[i].size + 64 + (x[i].size >> 4); /* a header per 512 bytes at most */
            best = best == NONE || x[i].addr < x[best].addr ? i : best;
        }
    room = usable(fs, 1);
    if (afford && (int32_t)(room - cost) +
                          (int32_t)DATA_CAP(fs) *
                              ((int32_t)COUNT(fsw_scan(fs, PICK_HOT)) + 1 - fs->reserve) <
                      0)
        best = NONE;
    return best;
}

/* Moves every chunk with a fragment in segment s to the active head, in ascending order of
 * first-fragment address (§10); a chunk that fails verification is lost (§12). */
static int relocate(fsw_t *fs, uint32_t s)
{
    uint32_t i;
    int err = 0;
    while (!err && (i = in_segment(fs, s, 0)) != NONE) {
        /* the entry stays put until the copy is complete (fsw_chunk_write sets it last) */
        const struct fsw_index_entry *e = fs->cfg->index + i;
        err = fsw_chunk_read(fs, e, NULL);
        if (IS_CORRUPT(err))
            err = fsw_idx_set(fs, e->key, LOST, 0);
        else if (!err)
            err = fsw_chunk_write(fs, T_DATA, e->key, e->size, NULL, e);
    }
    return err;
}

/* Moves segment s's chunks to the cold head. */
static int move_cold(fsw_t *fs, uint32_t s)
{
    int err = fsw_use(fs, 1);
    return err ? err : relocate(fs, s);
}

/* §10 step 3: make need bytes fit on the hot head keeping `reserve` segments really free:
 * release the dead segments the window pins with a checkpoint, else move the emptiest segment
 * outside the window to the cold head if that keeps the reserve, else shrink the window.
 * Bounded as the Python model's. */
int fsw_make_room(fsw_t *fs, uint32_t need)
{
    uint32_t i, v, room;
    int32_t free, r = fs->reserve;
    int err = 0;
    for (i = 0; i < 4 * fs->nseg + 4 && !err; i++) {
        room = usable(fs, 0);
        if (room >= need)
            return 0; /* the common case, decided without counting free segments */
        free = (int32_t)COUNT(fsw_scan(fs, PICK_HOT));
        if (room + DATA_CAP(fs) * (uint32_t)(free > r ? free - r : 0) >= need)
            return 0;
        if ((int32_t)COUNT(fsw_scan(fs, PICK_SPACE)) > free && free)
            err = fsw_next(fs, 0, OPEN_FORCE); /* the window pins dead segments */
        else if ((v = PICK(fs, PICK_VICTIM)) != NONE && in_segment(fs, v, 1) != NONE)
            err = move_cold(fs, v);
        else if (COUNT(fsw_scan(fs, PICK_WINDOW)) && free > r)
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
    if ((int32_t)d <= (int32_t)fs->wl_threshold || in_segment(fs, c, 1) == NONE)
        return 0;
    err = fsw_use(fs, 1);
    if (!err && c == cs)
        err = close_seg(fs); /* its chunks go to a new, more worn cold segment */
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
int fsw_recover(fsw_t *fs)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t s = fs->open, unit = fs->wp & ~(PROG_SIZE(fs) - 1);
    int err;
    if (s != NONE) {
        if (unit + fs->programmed < SEG_BASE(fs, s) + HDR_SIZE)
            fs->next_seq = c->segs[s].seq;
        fs->torn |= (uint8_t)(1u << fs->cold);
        if (c->rescue_buffer) {
            memcpy(c->rescue_buffer, c->prog_buffer, PROG_SIZE(fs));
            fs->rescue_unit = unit;
            fs->rescue_end = fs->wp;
        }
        fs->open = NONE;
        retire(fs, s);
    }
    err = relocate(fs, s); /* and the chunks left in an earlier one (fsw_live) */
    fs->rescue_end = 0; /* the copy lives as long as this recovery, as in the model */
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
        if (COUNT(fsw_scan(fs, PICK_ERASED)) >= fs->ckpt_interval || s == NONE)
            break;
        err = fsw_log_sync(fs);
        if (!err)
            err = fsw_erase(fs, s);
        if (err < 0)
            return err;
    }
    return (int)work;
}
