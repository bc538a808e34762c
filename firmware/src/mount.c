/* Mount (§9): one header per segment, then the replay window of both logs from the newest
 * complete checkpoint, segments parsed (§6) and records applied in record-seq order; damage
 * makes the chunks it could have held read as corrupt unless it can only be a torn write.
 * Writes nothing. */
#include "fsw_priv.h"

static int all_ff(const uint32_t *w, unsigned n)
{
    while (n && *w == NONE)
        n--, w++;
    return !n;
}

/* A reader over one log's window: its segments in seq order, record by record. */
struct cursor {
    uint32_t r[8];
    uint32_t seg;  /* segment being read; at the end, the log's last segment (or NONE) */
    uint32_t p;    /* record address; at the end, that segment's log end; NONE: seg's start, its
                    * header not passed yet (no record lies at NONE: segments end at multiples
                    * of 512) */
    uint32_t plen;
    uint32_t g;    /* a tear can lie at or after this address of seg (NONE: nowhere) */
    int k;         /* 1 intact, 2 damaged, 0 at the end of the log */
    uint8_t dmg;   /* unreadable bytes passed: every chunk is lost before the next record */
    uint8_t t;     /* type of the last intact record of seg (0: none) */
};

/* §6 parsing: the record at p = c->p of c's segment, its header into c->r. Returns 1 (intact),
 * 2 (damaged DATA or TRIM: its dcrc fails), 3 (unreadable bytes from p up to the next readable
 * header or the segment's end, which is p + 32 + plen modulo 2^32; a damaged checkpoint too),
 * 0 when the log ends (p is then the log end), or < 0; p and plen (c->plen) are updated. Stray
 * bits in erased flash (fewer than NOISE non-0xFF bytes) are passed over. */
static int parse(fsw_t *fs, struct cursor *c)
{
    uint32_t *r = c->r, *plen = &c->plen, a = c->p, end = SEG_BASE(fs, c->seg + 1);
    uint32_t ps = PROG_SIZE(fs), crc = 0, q = 0, n = 0;
    int k;
    for (;; ++a) {
        k = end - a < REC_SIZE ? 4 : fsw_rec_load(fs, a, r, plen);
        if (k < 0)
            return k;
        c->p = a;
        if (k) { /* a readable header, or the segment's end: unreadable bytes from q end */
            if (n >= NOISE) {
                *plen = (k == 4 ? end : a) - q - REC_SIZE;
                c->p = q;
                return 3;
            }
            if (k == 4)
                return 0;
            break;
        }
        if (!n && R_TYPE(r) == 0xFF) { /* erased at a record's place */
            if (!fs->page_once || !(a & (ps - 1)))
                return 0;
            a |= ps - 1; /* on to the next unit */
            continue;
        }
        q = n ? q : a; /* resynchronize at the next readable header */
        n += R_TYPE(r) != 0xFF;
    }
    k = fsw_pipe(fs, a + REC_SIZE, *plen, &crc);
    return k ? k : crc == r[6] ? 1 : R_TYPE(r) == T_CKPT ? 3 : 2;
}

/* The address just past the last intact record of c's segment, c->p on its first record
 * (c->r, p and plen are scratch). */
static uint32_t good_end(fsw_t *fs, struct cursor *c)
{
    uint32_t g = c->p;
    int k;
    while ((k = parse(fs, c)) > 0) {
        c->p += REC_SIZE + c->plen;
        g = k == 1 ? c->p : g;
    }
    return g;
}

/* Moves c to its next record (the current one first, when c->p is NONE: its segment's start),
 * keeping the largest record seq seen. A tear (damage after the last intact record of a log's
 * last segment, or of one whose successor says HF_TEAR) is passed over; other unreadable bytes
 * and damaged checkpoints set c->dmg. Intact continuation fragments are passed over unless
 * stop_cont, which also stops c at its segment's end: a checkpoint segment's first records
 * are all it needs, and walking on from every segment tried would be quadratic. (Not
 * c->plen == NONE as the start mark: unreadable bytes 31 long before a readable header have
 * that plen, and the walk would restart there forever.) */
static int step(fsw_t *fs, struct cursor *c, uint64_t *maxr, int stop_cont)
{
    for (;;) {
        uint32_t n;
        c->k = 0;
        if (c->seg == NONE)
            return 0;
        if (c->p == NONE) { /* records start after the header */
            uint32_t first = c->p = SEG_BASE(fs, c->seg) + HDR_SIZE;
            n = fsw_chain(fs, c->seg);
            c->g = n == NONE || SEGS(fs)[n].tear ? good_end(fs, c) : NONE;
            c->p = first;
            c->t = 0;
        } else {
            c->p += REC_SIZE + c->plen;
        }
        c->k = parse(fs, c);
        if (c->k < 0)
            return c->k;
        if (c->k) {
            if (c->k < 3 && R_SEQ(c->r) > *maxr)
                *maxr = R_SEQ(c->r);
            if (c->k == 1)
                c->t = (uint8_t)R_TYPE(c->r);
            if (c->k > 1 && c->p >= c->g) /* a tear */
                continue;
            c->dmg |= c->k == 3;
            /* RESERVE and SYNC records are no events: only their seq counts */
            if (c->k < 3 && (stop_cont || (R_TYPE(c->r) < T_RESERVE &&
                                           (c->k == 2 || !R_IS_CONT(c->r)))))
                return 0;
            continue;
        }
        n = fsw_chain(fs, c->seg);
        if (n == NONE || stop_cont)
            return 0;
        c->seg = n;
        c->p = NONE;
    }
}

/* Starts c at segment s (NONE: an empty log). */
static void start(struct cursor *c, uint32_t s)
{
    c->seg = s;
    c->p = c->g = NONE;
    c->dmg = 0;
    c->t = 0;
}

/* The checkpoint segment s opens with: its first record, or its second after a continuation
 * (§7). 1 with c on it (intact), 0 if none, < 0. */
static int ckpt_of(fsw_t *fs, uint32_t s, struct cursor *c)
{
    uint64_t m = 0;
    int i, err;
    start(c, s);
    for (i = 0; i < 2 + !!TAG(fs); i++) { /* encrypted: a RESERVE before it (§4a) */
        err = step(fs, c, &m, 1);
        if (err || !c->k || c->dmg)
            return err;
        if (R_TYPE(c->r) == T_CKPT)
            return 1;
        if (!R_IS_CONT(c->r) && !IS_RESERVE(R_TYPE(c->r)))
            return 0;
    }
    return 0;
}

#ifndef FSW_NO_AEAD
/* Encrypted store (§4a): 0 when the intact record c is on verifies under the key, FSW_FORGED
 * when its tag fails, or < 0. A checkpoint is left open in the AEAD buffer (load_ckpt takes
 * it from there); a chunk that is not complete is no concern here (FSW_ERR_CORRUPT). */
static int authentic(fsw_t *fs, const struct cursor *c)
{
    uint8_t *b = fs->cfg->aead_buffer;
    uint32_t t = R_TYPE(c->r), n = c->plen - FSW_TAG;
    struct fsw_index_entry d;
    int err;
    if (t == T_DATA) {
        d.key = c->r[1];
        d.addr = c->p;
        d.size = c->r[2];
        return fsw_chunk_read(fs, &d, NULL);
    }
    err = fsw_read(fs, c->p + REC_SIZE, b, c->plen);
    return err ? err : fsw_aead(fs, 0, c->r, c->p, b, b, n, b + n);
}

#endif

static int load_ckpt(fsw_t *fs, const struct cursor *c)
{
    uint32_t b[3], i;
    int err = c->r[1] > (c->r[2] - TAG(fs)) / ENTRY_SIZE ? FSW_ERR_CORRUPT : 0;
    fs->nkeys = 0;
    fs->damaged = R_FLAGS(c->r) >> 3 & 1; /* F_DAMAGED */
    for (i = 0; i < c->r[1] && !err; i++) {
#ifndef FSW_NO_AEAD
        if (fs->tag) /* opened by authentic() */
            memcpy(b, (uint8_t *)fs->cfg->aead_buffer + i * ENTRY_SIZE, ENTRY_SIZE);
        else
#endif
        err = fsw_read(fs, c->p + REC_SIZE + i * ENTRY_SIZE, b, ENTRY_SIZE);
        fsw_le(b, 3);
        if (!err)
            err = fsw_idx_set(fs, b[0], b[1], b[2]); /* LOST: size zeroed at the end */
    }
    return err;
}

/* Damage of unknown extent: every chunk is lost, and keys absent read as corrupt. */
static void wildcard(fsw_t *fs)
{
    struct fsw_index_entry *e;
    for (e = fs->cfg->index; e < fs->cfg->index + fs->nkeys; e++)
        e->addr = LOST; /* its size is zeroed at the end of the replay */
    fs->damaged = 1;
}

/* 1 when a segment of the window is not there (§9 "Damage"): the window's segments are the
 * seqs from the replay start to the newest and, before them, the cold window's first; and no
 * segment without a readable header may hold a readable record newer than the checkpoint
 * (base). On the way, unknown erase counts become the largest known (maxc, §9 step 3). r is
 * scratch. */
static int missing(fsw_t *fs, uint64_t base, uint32_t *r, uint32_t maxc)
{
    struct fsw_seg *g = SEGS(fs);
    uint32_t s, w, n = fs->replay_cold < fs->replay_seq, plen, d = 0;
    for (s = 0; s < fs->nseg; s++, g++) {
        if (g->state <= ST_FREE)
            g->erase_count = maxc;
        w = g->state == ST_LOG &&
            (g->seq >= fs->replay_seq || (g->cold && g->seq == fs->replay_cold));
        n -= w;
        /* a window segment whose seq has two headers in its log (one copied over another) */
        if (w ? fsw_seq_find(fs, PICK_SEQ | g->cold, g->seq) != s
              : g->state == ST_FREE &&
                    fsw_rec_load(fs, SEG_BASE(fs, s) + HDR_SIZE, r, &plen) == 1 && R_SEQ(r) > base)
            d = 1; /* and on: every unknown count is set (step 3) */
    }
    return d | (n + fs->next_seq != fs->replay_seq);
}

/* §9 steps 5-6: replay both logs' windows merged by record seq from the checkpoint cur[0] is
 * on, then count live bytes (an entry pointing outside the log is lost). */
static int replay(fsw_t *fs, struct cursor *cur, uint64_t *maxr, uint32_t maxc)
{
    struct fsw_index_entry *e;
    struct cursor *c = cur + 1;
    uint64_t base = *maxr = R_SEQ(cur->r);
    int i, err = 0, forged = 0;
    fs->replay_cold = cur->r[3];
#ifndef FSW_NO_AEAD
    /* a forged start cannot be fallen back from: an older one would serve older data */
    if (fs->tag && (err = authentic(fs, cur)) == FSW_FORGED)
        err = FSW_ERR_CORRUPT;
    if (!err)
#endif
    err = load_ckpt(fs, cur);
    start(cur, fsw_seq_find(fs, PICK_SEQ, fs->replay_seq));
    start(cur + 1, fsw_seq_find(fs, PICK_SEQ | 1, fs->replay_cold));
    if (!err)
        err = step(fs, cur, maxr, 0);
    /* each turn steps the cursor the last one applied (first the cold one, on its first
     * record), then applies the older of the two records */
    while (!err && !(err = step(fs, c, maxr, 0)) && (cur[0].k || cur[1].k)) {
        uint32_t t;
        c = !cur[0].k || (cur[1].k && R_SEQ(cur[1].r) < R_SEQ(cur[0].r)) ? cur + 1 : cur;
        t = R_TYPE(c->r);
        int v = 0;
#ifndef FSW_NO_AEAD
        /* every intact record of the window is checked, those the checkpoint covers too; a
         * forged one's seq is the forger's: it damages the whole replay (§4a) */
        if (fs->tag && c->k == 1) {
            v = authentic(fs, c);
            forged |= v == FSW_FORGED;
            if (v == FSW_FORGED || (v && v != FSW_ERR_CORRUPT))
                t = T_RESERVE; /* skipped */
            err = v == FSW_FORGED || v == FSW_ERR_CORRUPT ? 0 : v;
        }
#endif
        if (!err && R_SEQ(c->r) > base && !IS_RESERVE(t)) {
            if (c->dmg)
                wildcard(fs);
            if (t == T_TRIM_RANGE) {
                fsw_idx_drop(fs, c->r[1], c->r[2]);
            } else if (t == T_CKPT) {
                err = load_ckpt(fs, c);
            } else { /* a chunk, or a damaged fragment (k 2): its key is lost */
                struct fsw_index_entry d;
                d.key = c->r[1];
                d.addr = LOST;
                d.size = 0;
                if (c->k == 1) {
                    d.addr = c->p;
                    d.size = c->r[2];
                    err = TAG(fs) ? v : fsw_chunk_read(fs, &d, NULL);
                }
                err = err == FSW_ERR_CORRUPT ? 0 : err ? err : fsw_idx_set(fs, d.key, d.addr, d.size);
            }
        }
        c->dmg = 0;
    }
    i = missing(fs, base, cur->r, maxc) | cur[0].dmg | cur[1].dmg | forged; /* damage at end */
    fs->damaged |= (uint8_t)i;
    fs->mounted = 1;
    for (e = fs->cfg->index; !err && e < fs->cfg->index + fs->nkeys; e++) {
        /* the first record lies in a data area, a header and one byte before its end */
        uint32_t o = (e->addr & (SEG_SIZE(fs) - 1)) - HDR_SIZE;
        if (i || e->addr >= fs->cfg->flash_size || o >= DATA_CAP(fs) - REC_SIZE ||
            fsw_live(fs, e, 0, NONE)) {
            e->addr = LOST;
            e->size = 0;
        }
        fsw_live(fs, e, 1, NONE);
    }
    return err == FSW_ERR_NOSPC ? FSW_ERR_CORRUPT : err;
}

/* §9 step 7: a log's last window segment stays open after its last intact record if
 * everything after it is erased and a record still fits after rounding up to a unit on
 * PAGE_ONCE devices. If it is not erased, the log ends in a tear: its next segment says so. */
static int head(fsw_t *fs, const struct cursor *c, int cold)
{
    uint32_t *seg = cold ? &fs->park : &fs->open, *wp = cold ? &fs->park_wp : &fs->wp;
    uint32_t m = (PROG_SIZE(fs) - 1) * fs->page_once, end = c->g, stop = SEG_BASE(fs, c->seg + 1);
    int k = c->seg == NONE ? 2 : fsw_blank(fs, end, stop - end);
    end = (end + m) & ~m; /* PAGE_ONCE: up to a unit */
    *seg = k == 1 && stop - end >= MIN_ROOM ? c->seg : NONE;
    *wp = end;
    /* after a tear, the next hot segment is a checkpoint segment (any count of at least 256
     * is due): it leaves the tear outside the window, so that later damage before it reads as
     * damage (step 8) */
    /* and a put's chunk or a trim last (a moved one needs no mark): the next sync marks it */
    fs->torn |= (uint8_t)(((k == 0) | ((c->t | !cold << 1) == T_TRIM_RANGE) << 2) << cold);
    fs->segs_since_ckpt |= (uint32_t)!k << 8;
    return k < 0 ? k : 0;
}

int fsw_mount(fsw_t *fs, const struct fsw_config *cfg)
{
    struct fsw_seg *g = cfg->segs;
    union { /* a header is read, or the logs are, never both at once: one stack area */
        uint32_t h[10];
        struct cursor cur[2];
    } u;
    uint32_t *h = u.h, geo, s, t, found = 0, maxs = 0, maxc = 0, ck = NONE, below = NONE;
    uint32_t ref6 = 0, ref7 = 0, ref8 = 0;
    uint64_t maxr = 0;
    int err = fsw_setup(fs, cfg), k, ours;
    if (err)
        return err;
    /* Steps 1-3: the valid header of the largest epoch names the store (it must match the
     * configured geometry); a block with a header of another store is one a format could not
     * erase: BAD (fsw_hdr_read, and the demotion below); unknown counts become the largest. */
    fsw_hdr_make(fs, h);
    geo = h[1] & 0x01FFFFFFu;
    for (s = 0; s < fs->nseg; s++) {
        k = fsw_hdr_read(fs, s, h);
        if (k < 0)
            return k;
        ours = k && (h[1] & 0x01FFFFFFu) == geo && h[5] == fs->nseg;
        if (k && (!found || h[7] >> 16 > ref7 >> 16)) {
            found = 2 - ours; /* 2: the largest epoch so far is of another geometry */
            ref6 = h[6];
            ref7 = h[7];
            ref8 = h[8];
            maxs = maxc = 0;
            for (t = 0; t < s; t++)
                if (g[t].state == ST_LOG) {
                    g[t].state = ST_BAD;
                    g[t].seq = 0;
                }
        }
#ifdef FSW_NO_AEAD
        (void)ref8;
#else
        ours &= h[8] == ref8; /* suite and key check value too (§3) */
#endif
        if (ours && h[6] == ref6 && h[7] == ref7) {
            g[s].state = ST_LOG;
            g[s].cold = h[1] >> 25 & 1; /* HF_COLD */
            g[s].tear = h[1] >> 26 & 1; /* HF_TEAR */
            g[s].seq = h[3];
            maxs = h[3] > maxs ? h[3] : maxs;
            maxc = h[2] > maxc ? h[2] : maxc;
        } else if (all_ff(h, 10)) {
            g[s].state = ST_ERASED;
        }
    }
    if (found != 1)
        return FSW_ERR_CORRUPT;
    fs->max_keys = (uint16_t)ref6;
    fs->ckpt_interval = (uint8_t)(ref6 >> 16);
    fs->reserve = (uint8_t)(ref6 >> 24);
    fs->wl_threshold = (uint16_t)ref7;
    fs->epoch = (uint16_t)(ref7 >> 16);
#ifndef FSW_NO_AEAD
    /* §4a: an encrypted store needs its key, a plaintext one no key (a plaintext image in
     * place of an encrypted one must not be trusted); checked before anything is replayed */
    if (ref8 != fs->crypt)
        return FSW_ERR_KEY;
#endif
    if (fs->max_keys > fsw_key_cap(fs))
        return FSW_ERR_INVAL;
    fsw_limits(fs);
#ifndef FSW_NO_AEAD
    if (fs->tag && cfg->aead_buffer_size < fs->max_chunk + FSW_TAG)
        return FSW_ERR_INVAL;
#endif
    /* Step 4: the newest hot segment that opens with an intact checkpoint; an interrupted one
     * falls back to the one before. Hot segments are tried newest first, so mount parses about
     * ckpt_interval segments' first records more. */
    while (ck == NONE) {
        s = below ? fsw_seq_find(fs, PICK_SEQ | PICK_DOWN, 0 - below) : NONE;
        if (s == NONE)
            return FSW_ERR_CORRUPT;
        below = g[s].seq;
        k = ckpt_of(fs, s, u.cur);
        if (k < 0)
            return k;
        ck = k == 1 ? s : ck;
    }
    fs->replay_seq = below;
    fs->next_seq = maxs + 1;
    err = replay(fs, u.cur, &maxr, maxc); /* cur[0] is on the checkpoint */
    fs->next_rseq = maxr + 2;
    fs->segs_since_ckpt = fs->next_seq - fs->replay_seq;
    /* Step 7: the heads; the hot one is active. */
    for (k = 2; !err && k--;)
        err = head(fs, u.cur + k, k);
    if (!err)
        err = fsw_reload(fs);
    fsw_unhold(fs); /* the replay's tear bits are holds from now on */
    fs->mounted = !err;
    return err;
}
