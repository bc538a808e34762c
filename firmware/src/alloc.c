/* Segments: allocation and opening (§8), erase with verify, retirement (§12), garbage
 * collection and static wear leveling (§10), recovery from a failed program, the idle step. */
#include "fsw_priv.h"

/* The segment a spilled fragment of segment s continues in: the next one opened by the same
 * head, i.e. the smallest seq above s's among segments of s's log (retired ones included). */
uint32_t fsw_chain(const fsw_t *fs, uint32_t s)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t i, best = NONE;
    for (i = 0; i < fs->nseg; i++)
        if (g[i].state >= ST_LOG && g[i].cold == g[s].cold && g[i].seq > g[s].seq &&
            (best == NONE || g[i].seq < g[best].seq))
            best = i;
    return best;
}

/* In the log, outside the replay window of its log, and open in neither head: the only
 * segments garbage collection, wear leveling and reclaiming may touch (§5, §7). */
static int outside(const fsw_t *fs, uint32_t s)
{
    const struct fsw_seg *g = SEGS(fs) + s;
    return g->state == ST_LOG && g->seq < (g->cold ? fs->replay_cold : fs->replay_seq) &&
           s != fs->open && s != fs->park;
}

static int reclaimable(const fsw_t *fs, uint32_t s)
{
    return outside(fs, s) && !SEGS(fs)[s].live;
}

uint32_t fsw_free_count(const fsw_t *fs)
{
    uint32_t s, n = 0;
    for (s = 0; s < fs->nseg; s++)
        n += SEGS(fs)[s].state <= ST_FREE || reclaimable(fs, s);
    return n;
}

/* §8 step 1 over FREE_ERASED, FREE and reclaimable segments by effective count (+1 unless
 * erased): the hot head takes the least, the cold head the most; ties to the lowest index.
 * PICK_DIRTY: the least-worn segment that still needs an erase (the idle step). */
static uint32_t choose(const fsw_t *fs, int mode)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t s, best = NONE, eff, beff = 0;
    for (s = 0; s < fs->nseg; s++) {
        if (g[s].state > ST_FREE && !reclaimable(fs, s))
            continue;
        if (mode == PICK_DIRTY && g[s].state == ST_ERASED)
            continue;
        eff = g[s].erase_count + (g[s].state != ST_ERASED);
        if (best == NONE || (fs->cold && mode == PICK_HEAD ? eff > beff : eff < beff)) {
            best = s;
            beff = eff;
        }
    }
    return best;
}

/* Erases segment s and verifies it reads erased. 1 (and s retired) when the device reports a
 * failure or the block kept programmed bits. */
int fsw_erase(fsw_t *fs, uint32_t s)
{
    const struct fsw_config *c = fs->cfg;
    struct fsw_seg *g = c->segs + s;
    int err = c->erase(c, SEG_BASE(fs, s), SEG_SIZE(fs));
    if (!err) {
        g->erase_count++;
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
    fsw_retire(fs, s);
    return 1;
}

/* §12: BAD in RAM; on flash a best-effort mark (a worn block may refuse it). */
void fsw_retire(fsw_t *fs, uint32_t s)
{
    const struct fsw_config *c = fs->cfg;
    uint8_t z[HDR_SIZE];
    memset(z, 0, sizeof z);
    c->segs[s].state = ST_BAD;
    fs->retired++;
    if (fs->page_once && c->prog_spare)
        (void)c->prog_spare(c, SEG_BASE(fs, s), z, 1);
    else
        (void)c->prog(c, SEG_BASE(fs, s), z, HDR_SIZE);
}

/* §8: opens a segment for the active head and puts its header in the buffer. A hot segment is
 * a checkpoint segment when one is due (or forced) and fits after a continuation of cont
 * bytes (NONE: one that fills the segment). Returns 1 for a checkpoint segment. */
static int open_seg(fsw_t *fs, uint32_t cont, int force)
{
    struct fsw_seg *g;
    uint8_t h[HDR_SIZE];
    uint32_t s, seq;
    int err, ck;
    do {
        s = choose(fs, PICK_HEAD);
        if (s == NONE)
            return FSW_ERR_NOSPC;
        err = SEGS(fs)[s].state == ST_ERASED ? 0 : fsw_erase(fs, s);
        if (err < 0)
            return err;
    } while (err);
    g = SEGS(fs) + s;
    seq = fs->next_seq++;
    g->state = ST_LOG;
    g->seq = seq;
    g->live = 0;
    g->cold = fs->cold;
    ck = !fs->cold && (force || fs->segs_since_ckpt >= fs->ckpt_interval) && cont != NONE &&
         HDR_SIZE + cont + REC_SIZE + ENTRY_SIZE * (fs->nkeys + 1u) <= SEG_SIZE(fs);
    fs->segs_since_ckpt = ck ? 1 : fs->segs_since_ckpt + 1;
    memcpy(h, "FSWP\1", 5);
    h[5] = fs->seg_shift;
    h[6] = fs->prog_shift;
    h[7] = (uint8_t)(fs->page_once | (fs->cold ? HF_COLD : 0));
    fsw_put32(h + 8, g->erase_count);
    fsw_put32(h + 12, seq);
    fsw_put32(h + 16, ck ? seq : fs->replay_seq);
    fsw_put32(h + 20, fs->nseg);
    h[24] = (uint8_t)fs->max_keys;
    h[25] = (uint8_t)(fs->max_keys >> 8);
    h[26] = fs->ckpt_interval;
    h[27] = fs->reserve;
    h[28] = (uint8_t)fs->wl_threshold;
    h[29] = (uint8_t)(fs->wl_threshold >> 8);
    memset(h + 30, 0xFF, 6);
    fsw_put32(h + 36, fsw_crc32(0, h, 36));
    fs->open = s;
    fs->wp = SEG_BASE(fs, s);
    fs->programmed = 0;
    err = fsw_append(fs, h, HDR_SIZE);
    return err ? err : ck;
}

/* The active head needs a segment: close the current one (unless a spill filled it) and open
 * the next; a checkpoint due there is written now, or, for a spill, left to the caller (1). */
int fsw_next(fsw_t *fs, uint32_t cont, int mode)
{
    int err = mode & OPEN_SPILL ? 0 : fsw_close(fs);
    if (!err)
        err = open_seg(fs, cont, mode & OPEN_FORCE);
    return err <= 0 || (mode & OPEN_SPILL) ? err : fsw_ckpt_write(fs);
}

/* Moves every chunk with a fragment in segment s to the active head, in ascending order of
 * first-fragment address (§10). A chunk that fails verification is lost (§12). */
static int relocate(fsw_t *fs, uint32_t s)
{
    const struct fsw_index_entry *x = fs->cfg->index;
    for (;;) {
        struct fsw_index_entry e;
        struct fsw_frag f;
        uint64_t seq;
        uint32_t i, best = NONE;
        int err, k;
        for (i = 0; i < fs->nkeys; i++) {
            if (x[i].addr == LOST || (best != NONE && x[i].addr >= x[best].addr))
                continue;
            fsw_frag_first(fs, x + i, &f);
            do
                k = SEG_OF(fs, f.addr) == s ? 2 : fsw_frag_next(fs, x + i, &f);
            while (k == 1);
            if (k == 2)
                best = i;
        }
        if (best == NONE)
            return 0;
        e = x[best];
        err = fsw_chunk_read(fs, &e, NULL, &seq);
        if (err == FSW_ERR_CORRUPT)
            err = fsw_idx_set(fs, e.key, LOST, 0);
        else if (!err)
            err = fsw_chunk_write(fs, e.key, e.size, NULL, &e);
        if (err)
            return err;
    }
}

static uint32_t available(const fsw_t *fs, uint32_t reserve)
{
    uint32_t room = fsw_hot_room(fs), n = fsw_free_count(fs);
    return (room < MIN_ROOM ? 0 : room) + DATA_CAP(fs) * (n > reserve ? n - reserve : 0);
}

/* §10 step 3: relocate the emptiest segments outside the window (to the cold head), or shrink
 * the window with a forced checkpoint, until need bytes fit. Bounded as the Python model's. */
int fsw_make_room(fsw_t *fs, uint32_t need, uint32_t reserve)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t i, s, v, room = fsw_hot_room(fs);
    int err;
    if (room >= MIN_ROOM && room >= need)
        return 0;
    for (i = 0; i < 4 * fs->nseg + 4; i++) {
        if (available(fs, reserve) >= need)
            return 0;
        v = NONE;
        for (s = 0; s < fs->nseg; s++)
            if (outside(fs, s) && g[s].live && g[s].live < DATA_CAP(fs) - 64 &&
                (v == NONE || g[s].live < g[v].live ||
                 (g[s].live == g[v].live && g[s].seq < g[v].seq)))
                v = s;
        if (v != NONE) {
            err = fsw_use(fs, 1);
            if (!err)
                err = relocate(fs, v);
        } else {
            for (s = 0; s < fs->nseg; s++)
                if (g[s].state == ST_LOG && !outside(fs, s) && s != fs->open && s != fs->park)
                    break;
            if (s == fs->nseg || !fsw_free_count(fs))
                break;
            err = fsw_use(fs, 0);
            if (!err)
                err = fsw_next(fs, 0, OPEN_FORCE);
        }
        if (err < 0)
            return err;
    }
    return FSW_ERR_NOSPC;
}

/* §10 step 2: one move of the least-worn segment outside the window holding data, when it lags
 * more than the threshold behind where the hot head allocates next. 1 if moved. */
int fsw_static_wl(fsw_t *fs)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t s, hi = 0, lo = NONE, cold = NONE, ref = NONE, eff;
    int err;
    for (s = 0; s < fs->nseg; s++) {
        if (g[s].state == ST_BAD)
            continue;
        hi = g[s].erase_count > hi ? g[s].erase_count : hi;
        lo = g[s].erase_count < lo ? g[s].erase_count : lo;
        eff = g[s].erase_count + (g[s].state != ST_ERASED);
        if ((g[s].state <= ST_FREE || reclaimable(fs, s)) && eff < ref)
            ref = eff;
        if (outside(fs, s) && g[s].live && (cold == NONE || g[s].erase_count < g[cold].erase_count))
            cold = s;
    }
    if (hi - lo <= fs->wl_threshold || ref == NONE || cold == NONE ||
        ref - g[cold].erase_count <= fs->wl_threshold || (int32_t)(ref - g[cold].erase_count) < 0 ||
        available(fs, fs->reserve) < g[cold].live + 2 * REC_SIZE)
        return 0;
    err = fsw_use(fs, 1);
    if (!err)
        err = relocate(fs, cold);
    return err ? err : 1;
}

/* A program into the active head's segment failed: retire it and write its chunks again on the
 * same head, reading what never reached flash from the rescue copy of the buffer (if any). */
int fsw_recover(fsw_t *fs)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t s = fs->open, ps = PROG_SIZE(fs);
    int err;
    if (s == NONE)
        return 0;
    if (c->rescue_buffer) {
        memcpy(c->rescue_buffer, c->prog_buffer, ps);
        fs->rescue_unit = fs->wp & ~(ps - 1);
        fs->rescue_end = fs->wp;
    }
    fs->open = NONE;
    fsw_retire(fs, s);
    err = relocate(fs, s);
    if (!err) {
        c->segs[s].live = 0;
        fs->rescue_end = 0;
    }
    return err;
}

/* Idle step (§8): one static wear-leveling move, then pre-erase what a hot open would take
 * next among the segments not yet erased, until ckpt_interval are erased ahead; a sync first,
 * for what made a segment reclaimable may still sit in the buffer. */
int fsw_idle_work(fsw_t *fs, unsigned max_erases)
{
    uint32_t s, n;
    unsigned work = 0;
    int err;
    if (max_erases) {
        err = fsw_static_wl(fs);
        if (err < 0)
            return err;
        work = (unsigned)err;
    }
    while (work < max_erases) {
        for (s = n = 0; s < fs->nseg; s++)
            n += SEGS(fs)[s].state == ST_ERASED;
        s = choose(fs, PICK_DIRTY);
        if (n >= fs->ckpt_interval || s == NONE)
            break;
        err = fsw_log_sync(fs);
        if (!err)
            err = fsw_erase(fs, s);
        if (err < 0)
            return err;
        work++;
    }
    return (int)work;
}
