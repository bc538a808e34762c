/* Segments (§2, §3, §8, §12): the geometry a config gives, the one scan behind every choice of
 * a segment, the chain of a log, erase with verify and retirement, segment headers. Nothing
 * here appends to the log: the layers above open segments and write records. */
#include "fsw_priv.h"

static int lg(uint32_t v)
{
    int n = 0;
    while (v >>= 1)
        n++;
    return n;
}

/* Geometry from the config (§2); the format options are left for format or mount to set. */
int fsw_setup(fsw_t *fs, const struct fsw_config *c)
{
    int ss = lg(c->segment_size), ps = lg(c->prog_size);
    memset(fs, 0, sizeof *fs);
    fs->cfg = c;
    fs->nseg = c->flash_size >> ss;
    fs->seg_shift = (uint8_t)ss;
    fs->prog_shift = (uint8_t)ps;
    fs->page_once = c->page_once != 0;
    fs->open = fs->park = NONE; /* and lean (§10): fs->torn has no ROOMY bit */
#ifndef FSW_NO_AEAD
    if (fsw_aead_setup(fs))
        return FSW_ERR_IO;
#endif
    return c->segment_size != 1u << ss || c->prog_size != 1u << ps || ss < 9 || ss > 24 ||
                   ss - ps < 3 || fs->nseg < 6 || !c->read || !c->prog || !c->erase ||
                   !c->prog_buffer || !c->index || !c->segs
               ? FSW_ERR_INVAL
               : 0;
}

/* §11, as the Python model computes it: half the segments beyond the reserve and the window,
 * and no more than reserve - 1.5 segments, which the reserve holds beside a recovery's
 * checkpoint (§12) */
void fsw_limits(fsw_t *fs)
{
    int32_t n = (int32_t)fs->nseg - fs->reserve - fs->ckpt_interval - 2, r = 2 * fs->reserve - 3;
    uint32_t m = DATA_CAP(fs) * (uint32_t)((n = n < r ? n : r) > 1 ? n : 1) / 2;
    fs->max_chunk = m >> 24 ? 1u << 24 : m;
}

/* The index the config provides: max_keys, or by default KEY_LIMIT capped at 1024. */
uint32_t fsw_key_cap(const fsw_t *fs)
{
    uint32_t n = KEY_LIMIT(fs);
    return fs->cfg->max_keys ? fs->cfg->max_keys : n < 1024 ? n : 1024;
}

/* In the log (mode PICK_SEQ | cold), retired ones too (| PICK_BAD): the segment with the smallest
 * seq >= arg, or (| PICK_DOWN) the largest seq <= ~arg; NONE if none. */
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

/* One pass over the segments for every choice the store makes: returns the winner of `mode`
 * (NONE if no segment qualifies; the lowest index among equals), or with mode | PICK_COUNT how
 * many qualify. */
uint32_t fsw_scan(const fsw_t *fs, int mode)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t s, best = NONE, n = 0;
    uint64_t k, bk = 0;
    int m = mode & ~PICK_COUNT;
    for (s = 0; s < fs->nseg; s++, g++) {
        /* logged: in the log and open in neither head; in: such a segment outside the replay
         * window of its log, the only segments garbage collection, wear leveling and
         * reclaiming may touch (§5, §7) */
        int logged = g->state == ST_LOG && s != fs->open && s != fs->park;
        int in = logged && g->seq < (g->cold ? fs->replay_cold : fs->replay_seq);
        int avail = g->state <= ST_FREE || (in && !g->live), ok = 1;
        uint32_t eff = g->erase_count + (g->state != ST_ERASED);
        k = g->erase_count;
        switch (m) {
        case PICK_HOT:
        case PICK_COLD:
            ok = avail;
            /* a recovery takes a held segment last (§12 step 3) */
            k = (uint64_t)(g->tear & fs->torn >> 4) << 32 | (m == PICK_HOT ? eff : ~eff);
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
            ok = logged && !in;
        }
        if (ok && (!n++ || k < bk)) {
            bk = k;
            best = s;
        }
    }
    return mode & PICK_COUNT ? n : best;
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
void fsw_retire(fsw_t *fs, uint32_t s)
{
    fs->cfg->segs[s].state = ST_BAD;
    fs->retired++;
    fs->torn &= (uint8_t)~ROOMY; /* lean (§10) */
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
    fsw_retire(fs, s);
    return 1;
}

/* The words of the segment header (§3) of the active head's log (HF_TEAR if its last segment
 * ended torn), but for erase_count, seq, replay_seq and crc (words 2-4, 9). */
void fsw_hdr_make(const fsw_t *fs, uint32_t *h)
{
    h[0] = 0x50575346u; /* "FSWP" */
    h[1] = FSW_DISK_VERSION | fs->seg_shift << 8 | (uint32_t)fs->prog_shift << 16 |
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

/* Step 1 of mount (and of format): segment s's RAM state cleared and FREE with its 40-byte
 * header read into h. 1 if that is a valid header (magic, version, crc; decoded in place):
 * BAD with its erase count until mount finds it of the store; else 0, and BAD (h all zero)
 * when its factory-bad marker says so (NAND: spare byte 0 of its first page; only asked of a
 * block without a valid header, so one misread bit never condemns a block of the store);
 * or < 0. */
int fsw_hdr_read(fsw_t *fs, uint32_t s, uint32_t *h)
{
    const struct fsw_config *c = fs->cfg;
    struct fsw_seg *g = c->segs + s;
    struct fsw_seg z = {0, 0, 0, 0, ST_FREE, 0};
    uint8_t b = 0xFF;
    int ok, err = fsw_read(fs, SEG_BASE(fs, s), h, HDR_SIZE);
    *g = z;
    if (err)
        return err;
    ok = fsw_check(h, 10) && h[0] == 0x50575346u && (h[1] & 0xFF) == FSW_DISK_VERSION;
    if (ok) {
        g->state = ST_BAD;
        g->erase_count = h[2];
    }
    if (!ok && fs->page_once && c->read_spare) {
        err = c->read_spare(c, SEG_BASE(fs, s), &b, 1);
        if (err)
            return err < 0 ? err : FSW_ERR_IO;
        if (b != 0xFF) {
            g->state = ST_BAD;
            memset(h, 0, HDR_SIZE);
        }
    }
    return ok;
}
