/* Mount (§9): one header per segment, then the replay window of both logs from the newest
 * complete checkpoint, records applied in record-seq order. Writes nothing. */
#include "fsw_priv.h"

/* Magic, version and crc of a 40-byte segment header. */
int fsw_hdr_ok(const uint8_t *h)
{
    return !memcmp(h, "FSWP\1", 5) && fsw_get32(h + 36) == fsw_crc32(0, h, 36);
}

/* NAND factory-bad marker: spare byte 0 of the segment's first page. 1 bad, 0 good, <0. */
int fsw_factory_bad(fsw_t *fs, uint32_t s)
{
    const struct fsw_config *c = fs->cfg;
    uint8_t b = 0xFF;
    int err = fs->page_once && c->read_spare ? c->read_spare(c, SEG_BASE(fs, s), &b, 1) : 0;
    return err ? (err < 0 ? err : FSW_ERR_IO) : b != 0xFF;
}

/* The checkpoint segment s opens with: its first record, or its second after a continuation
 * (§7). 1 (found, intact: r and its address *p), 0 (none), <0. */
static int ckpt_of(fsw_t *fs, uint32_t s, uint32_t *p, struct fsw_rec *r)
{
    uint32_t plen;
    int i, k;
    *p = SEG_BASE(fs, s) + HDR_SIZE;
    for (i = 0; i < 2; i++) {
        k = fsw_parse(fs, s, p, r, &plen);
        if (k <= 0)
            return k;
        if (r->type == T_CKPT)
            return k == 1;
        if (r->type != T_DATA || !(r->flags & F_CONT))
            return 0;
        *p += REC_SIZE + plen;
    }
    return 0;
}

static int load_ckpt(fsw_t *fs, uint32_t p, const struct fsw_rec *r)
{
    uint8_t b[ENTRY_SIZE];
    uint32_t i, a;
    int err;
    if (r->key > r->size / ENTRY_SIZE)
        return FSW_ERR_CORRUPT;
    fs->nkeys = 0;
    for (i = 0; i < r->key; i++) {
        err = fsw_read(fs, p + REC_SIZE + i * ENTRY_SIZE, b, ENTRY_SIZE);
        a = fsw_get32(b + 4);
        if (!err)
            err = fsw_idx_set(fs, fsw_get32(b), a, a == LOST ? 0 : fsw_get32(b + 8));
        if (err)
            return err == FSW_ERR_NOSPC ? FSW_ERR_CORRUPT : err;
    }
    return 0;
}

/* A reader over one log's window: its segments in seq order, each parsed record by record. */
struct cursor {
    struct fsw_rec r;
    uint32_t seg;  /* segment being read; after the end, the log's last segment */
    uint32_t p;    /* record address; after the end, that segment's log end */
    uint32_t plen;
    int k;         /* parse result of the current record; 0 at the end of the log */
};

/* Advances c to the next record of its log that is not a continuation fragment, keeping the
 * largest record seq seen. */
static int step(fsw_t *fs, struct cursor *c, int first, uint64_t *maxr)
{
    for (;;) {
        uint32_t n;
        if (!first)
            c->p += REC_SIZE + c->plen;
        first = 0;
        c->k = c->seg == NONE ? 0 : fsw_parse(fs, c->seg, &c->p, &c->r, &c->plen);
        if (c->k < 0)
            return c->k;
        if (c->k) {
            if (c->r.seq > *maxr)
                *maxr = c->r.seq;
            if (c->r.type == T_DATA && (c->r.flags & F_CONT))
                continue;
            return 0;
        }
        n = c->seg == NONE ? NONE : fsw_chain(fs, c->seg);
        if (n == NONE)
            return 0;
        c->seg = n;
        c->p = SEG_BASE(fs, n) + HDR_SIZE;
        c->plen = 0;
        first = 1;
    }
}

/* The log segment with the smallest seq >= from in the log `cold` (NONE if none). */
static uint32_t window_start(const fsw_t *fs, int cold, uint32_t from)
{
    const struct fsw_seg *g = SEGS(fs);
    uint32_t s, best = NONE;
    for (s = 0; s < fs->nseg; s++)
        if (g[s].state == ST_LOG && g[s].cold == cold && g[s].seq >= from &&
            (best == NONE || g[s].seq < g[best].seq))
            best = s;
    return best;
}

/* §9 step 5: replay both logs' windows merged by record seq, from the checkpoint at ck. */
static int replay(fsw_t *fs, uint32_t ckseg, struct cursor *cur, uint64_t *maxr)
{
    uint64_t base;
    uint32_t p;
    int i, err;
    err = ckpt_of(fs, ckseg, &p, &cur[0].r);
    base = cur[0].r.seq;
    *maxr = base;
    if (err >= 0)
        err = load_ckpt(fs, p, &cur[0].r);
    fs->replay_cold = cur[0].r.off;
    for (i = 0; i < 2 && !err; i++) {
        cur[i].seg = window_start(fs, i, i ? fs->replay_cold : fs->replay_seq);
        cur[i].p = SEG_BASE(fs, cur[i].seg) + HDR_SIZE;
        cur[i].plen = 0;
        err = step(fs, cur + i, 1, maxr);
    }
    while (!err && (cur[0].k || cur[1].k)) {
        struct cursor *c = cur + (!cur[0].k || (cur[1].k && cur[1].r.seq < cur[0].r.seq));
        const struct fsw_rec *r = &c->r;
        if (r->seq > base) {
            if (r->type == T_TRIM || r->type == T_TRIM_RANGE) {
                fsw_idx_drop(fs, r->key, r->type == T_TRIM ? r->key : r->size);
            } else if (r->type == T_CKPT) {
                if (c->k == 1)
                    err = load_ckpt(fs, c->p, r);
            } else if (c->k == 1 && !r->off) {
                struct fsw_index_entry e;
                uint64_t seq;
                e.key = r->key;
                e.addr = c->p;
                e.size = r->size;
                err = fsw_chunk_read(fs, &e, NULL, &seq);
                err = err == FSW_ERR_CORRUPT ? 0 : err ? err : fsw_idx_set(fs, e.key, e.addr, e.size);
                if (err == FSW_ERR_NOSPC)
                    err = FSW_ERR_CORRUPT;
            }
        }
        if (!err)
            err = step(fs, c, 0, maxr);
    }
    return err;
}

/* §9 step 6: live bytes from the index; an entry that points outside the log is lost. */
static void count_live(fsw_t *fs)
{
    struct fsw_index_entry *e = fs->cfg->index, *stop = e + fs->nkeys;
    struct fsw_frag f;
    int k;
    for (; e < stop; e++) {
        uint32_t o = e->addr & (SEG_SIZE(fs) - 1);
        k = e->addr == LOST;
        if (!k && (e->addr >= fs->cfg->flash_size || o < HDR_SIZE ||
                   SEG_SIZE(fs) - o <= REC_SIZE || SEGS(fs)[SEG_OF(fs, e->addr)].state != ST_LOG))
            k = -1;
        if (!k) {
            fsw_frag_first(fs, e, &f);
            while ((k = fsw_frag_next(fs, e, &f)) > 0)
                ;
        }
        if (k < 0) {
            e->addr = LOST;
            e->size = 0;
        } else if (!k) {
            fsw_live(fs, e, 1);
        }
    }
}

/* §9 step 7: a log's last window segment stays open at its log end e if everything after e is
 * erased and a record still fits. */
static int head(fsw_t *fs, const struct cursor *c, uint32_t *seg, uint32_t *wp)
{
    uint32_t ps = PROG_SIZE(fs), end = c->p, stop;
    int k;
    *seg = NONE;
    if (c->seg == NONE)
        return 0;
    stop = SEG_BASE(fs, c->seg + 1);
    k = fsw_blank(fs, end, stop - end);
    if (fs->page_once)
        end = (end + ps - 1) & ~(ps - 1);
    if (k == 1 && stop - end >= MIN_ROOM) {
        *seg = c->seg;
        *wp = end;
    }
    return k < 0 ? k : 0;
}

int fsw_mount(fsw_t *fs, const struct fsw_config *cfg)
{
    struct fsw_seg *g;
    struct cursor cur[2];
    uint8_t h[HDR_SIZE], ref[HDR_SIZE];
    uint32_t s, newest = NONE, maxc = 0, ckseg = NONE, o;
    uint64_t maxr = 0;
    int err = fsw_setup(fs, cfg), k;
    if (err)
        return err;
    g = cfg->segs;
    /* Steps 1-3: the first valid header names the store; headers of another store are
     * garbage. */
    for (s = 0; s < fs->nseg; s++) {
        memset(g + s, 0, sizeof *g);
        k = fsw_factory_bad(fs, s);
        if (k < 0)
            return k;
        g[s].state = k ? ST_BAD : ST_FREE;
        if (k)
            continue;
        err = fsw_read(fs, SEG_BASE(fs, s), h, HDR_SIZE);
        if (err)
            return err;
        if (newest == NONE && fsw_hdr_ok(h)) {
            if (h[5] != fs->seg_shift || h[6] != fs->prog_shift ||
                (h[7] & HF_PAGE_ONCE) != fs->page_once || fsw_get32(h + 20) != fs->nseg)
                return FSW_ERR_CORRUPT;
            memcpy(ref, h, HDR_SIZE);
            newest = s;
        }
        if (newest != NONE && fsw_hdr_ok(h) && !memcmp(h + 5, ref + 5, 2) &&
            !((h[7] ^ ref[7]) & HF_PAGE_ONCE) && !memcmp(h + 20, ref + 20, 10)) {
            g[s].state = ST_LOG;
            g[s].cold = (h[7] & HF_COLD) != 0;
            g[s].erase_count = fsw_get32(h + 8);
            g[s].seq = fsw_get32(h + 12);
            if (g[s].seq > g[newest].seq)
                newest = s;
            if (g[s].erase_count > maxc)
                maxc = g[s].erase_count;
        } else if (fsw_all_ff(h, HDR_SIZE)) {
            g[s].state = ST_ERASED;
        }
    }
    if (newest == NONE)
        return FSW_ERR_CORRUPT;
    fs->max_keys = (uint16_t)(ref[24] | ref[25] << 8);
    fs->ckpt_interval = ref[26];
    fs->reserve = ref[27];
    fs->wl_threshold = (uint16_t)(ref[28] | ref[29] << 8);
    if (fs->max_keys > (cfg->max_keys ? cfg->max_keys : FSW_DEFAULT_MAX_KEYS(cfg->segment_size)))
        return FSW_ERR_INVAL;
    fsw_limits(fs);
    for (s = 0; s < fs->nseg; s++)
        if (g[s].state <= ST_FREE)
            g[s].erase_count = maxc;
    /* Step 4: the newest hot checkpoint segment (its header names itself) whose checkpoint is
     * intact; an interrupted one falls back to the one before. */
    for (s = 0; s < fs->nseg; s++) {
        if (g[s].state != ST_LOG || g[s].cold || (ckseg != NONE && g[s].seq <= g[ckseg].seq))
            continue;
        err = fsw_read(fs, SEG_BASE(fs, s), h, HDR_SIZE);
        if (!err && fsw_get32(h + 16) == g[s].seq)
            err = ckpt_of(fs, s, &o, &cur[0].r);
        if (err < 0)
            return err;
        if (err == 1)
            ckseg = s;
        err = 0;
    }
    if (ckseg == NONE)
        return FSW_ERR_CORRUPT;
    fs->replay_seq = g[ckseg].seq;
    err = replay(fs, ckseg, cur, &maxr);
    if (err)
        return err;
    fs->next_seq = g[newest].seq + 1;
    fs->next_rseq = maxr + 2;
    fs->segs_since_ckpt = fs->next_seq - fs->replay_seq;
    fs->mounted = 1;
    count_live(fs);
    /* Step 7: the heads; the hot one is active. */
    err = head(fs, cur + 1, &fs->park, &fs->park_wp);
    if (!err)
        err = head(fs, cur, &fs->open, &fs->wp);
    o = fs->wp & (PROG_SIZE(fs) - 1);
    if (!err && fs->open != NONE && o) {
        err = cfg->read(cfg, fs->wp - o, cfg->prog_buffer, o);
        fs->programmed = o;
    }
    fs->mounted = !err;
    return err;
}
