/* The log's byte level: byte order, the one program-unit buffer every record passes through
 * and its two heads (SPEC.md §6), record headers (§4). */
#include "fsw_priv.h"

#ifndef fsw_le
void fsw_le(uint32_t *w, unsigned n)
{
    for (; n--; w++) {
        uint32_t v = *w;
        uint8_t *p = (uint8_t *)w;
        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
        p[2] = (uint8_t)(v >> 16);
        p[3] = (uint8_t)(v >> 24);
    }
}
#endif

/* Converts the n - 1 words of a header to flash order and appends their CRC as word n. */
void fsw_seal(uint32_t *w, unsigned n)
{
    fsw_le(w, --n);
    w[n] = fsw_crc32(0, w, 4 * n);
    fsw_le(w + n, 1);
}

/* Converts a header of n words read from flash; 1 if its last word is the CRC of the others. */
int fsw_check(uint32_t *w, unsigned n)
{
    uint32_t crc = fsw_crc32(0, w, 4 * --n);
    fsw_le(w, n + 1);
    return w[n] == crc;
}

static void overlay(uint8_t *dst, uint32_t addr, uint32_t n, const uint8_t *src, uint32_t base,
                    uint32_t end)
{
    uint32_t lo = addr > base ? addr : base;
    uint32_t hi = addr + n < end ? addr + n : end;
    if (lo < hi)
        memcpy(dst + (lo - addr), src + (lo - base), hi - lo);
}

/* Flash bytes as the store sees them: bytes still in the program buffer (or, while a failed
 * segment is emptied, in the rescue copy) come from RAM. Out-of-range reads mean a damaged
 * index or header: they are refused, never passed to the device. */
int fsw_read(fsw_t *fs, uint32_t addr, void *buf, uint32_t n)
{
    const struct fsw_config *c = fs->cfg;
    int err;
    if (addr > c->flash_size || n > c->flash_size - addr)
        return FSW_ERR_CORRUPT;
    err = c->read(c, addr, buf, n);
    if (err)
        return err < 0 ? err : FSW_ERR_IO;
    if (fs->open != NONE)
        overlay(buf, addr, n, c->prog_buffer, fs->wp & ~(PROG_SIZE(fs) - 1), fs->wp);
    /* without a rescue copy rescue_end is 0: an empty range, nothing copied */
    overlay(buf, addr, n, c->rescue_buffer, fs->rescue_unit, fs->rescue_end);
    return 0;
}

/* Loads the active head's unit [unit, wp) from flash into the buffer, counted as programmed
 * (NOR: a head reopened after a switch, a mount, or a blank check that used the buffer). */
int fsw_reload(fsw_t *fs)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t o = fs->open == NONE ? 0 : fs->wp & (PROG_SIZE(fs) - 1);
    int err = o ? c->read(c, fs->wp - o, c->prog_buffer, o) : 0;
    fs->programmed = o;
    return err > 0 ? FSW_ERR_IO : err;
}

/* 1 when [addr, addr + n) reads all 0xFF (erase verify, §8; mount, §9), else 0 or < 0. The
 * program buffer serves as scratch: every caller has synced it, and it is reloaded after. */
int fsw_blank(fsw_t *fs, uint32_t addr, uint32_t n)
{
    const struct fsw_config *c = fs->cfg;
    const uint8_t *b = c->prog_buffer;
    int err = 0, ff = 1;
    while (n && ff && !err) {
        uint32_t k = n < PROG_SIZE(fs) ? n : PROG_SIZE(fs), i;
        err = c->read(c, addr, c->prog_buffer, k);
        for (i = 0; i < k && ff; i++)
            ff = b[i] == 0xFF;
        addr += k;
        n -= k;
    }
    if (!err)
        err = fsw_reload(fs);
    return err ? (err < 0 ? err : FSW_ERR_IO) : ff;
}

/* Programs [programmed, off) of the unit holding wp. */
static int prog(fsw_t *fs, uint32_t off)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t p = fs->programmed;
    int err = c->prog(c, (fs->wp & ~(PROG_SIZE(fs) - 1)) + p, (uint8_t *)c->prog_buffer + p,
                      off - p);
    if (!err)
        fs->programmed = off; /* a failure leaves [programmed, wp) unwritten (§12) */
    return err > 0 ? FSW_ERR_IO : err;
}

/* Appends at wp; a unit is programmed as soon as it is full. wp passes a unit only once its
 * program succeeded, so after a failure [unit, wp) is exactly what never reached flash. */
int fsw_append(fsw_t *fs, const void *src, uint32_t n)
{
    const uint8_t *p = src;
    uint32_t ps = PROG_SIZE(fs);
    while (n) {
        uint32_t o = fs->wp & (ps - 1), k = ps - o;
        k = k < n ? k : n;
        memcpy((uint8_t *)fs->cfg->prog_buffer + o, p, k);
        if (o + k == ps) {
            int err = prog(fs, ps);
            if (err)
                return err;
            fs->programmed = 0;
        }
        fs->wp += k;
        p += k;
        n -= k;
    }
    return 0;
}

/* §6 sync of the active head: program the buffered bytes not yet programmed; on a PAGE_ONCE
 * device the rest of the page is given up. */
int fsw_log_sync(fsw_t *fs)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t ps = PROG_SIZE(fs), o = fs->wp & (ps - 1);
    int err = 0;
    if (fs->open == NONE)
        return 0;
    if (o > fs->programmed)
        err = prog(fs, o);
    if (!err && fs->page_once && o) {
        fs->wp += ps - o;
        fs->programmed = 0;
    }
    if (!err && c->sync)
        err = c->sync(c);
    if (!err && !(fs->torn & 16))
        fsw_unhold(fs); /* what released them is on flash */
    return err > 0 ? FSW_ERR_IO : err;
}

/* Clears every segment's hold (fsw_live): at a sync outside a recovery, at its end, at mount. */
void fsw_unhold(fsw_t *fs)
{
    struct fsw_seg *g = SEGS(fs), *end = g + fs->nseg;
    for (; g < end; g++)
        g->tear = 0;
}

static uint32_t room_of(const fsw_t *fs, uint32_t s, uint32_t wp)
{
    return s == NONE ? 0 : SEG_BASE(fs, s + 1) - wp;
}

/* Room of the hot (0) or cold (1) head, whichever head holds the buffer. */
uint32_t fsw_head_room(const fsw_t *fs, int cold)
{
    int a = fs->cold == cold;
    return room_of(fs, a ? fs->open : fs->park, a ? fs->wp : fs->park_wp);
}

uint32_t fsw_room(const fsw_t *fs)
{
    return fsw_head_room(fs, fs->cold);
}

/* §6 switching heads: sync the active one, swap, and on NOR load the new active head's partly
 * programmed unit back into the buffer (counted as programmed). */
int fsw_use(fsw_t *fs, int cold)
{
    uint32_t s = fs->open, w;
    int err;
    if (fs->cold == cold)
        return 0;
    err = fsw_log_sync(fs);
    if (err)
        return err;
    w = fs->wp;
    fs->open = fs->park;
    fs->wp = fs->park_wp;
    fs->park = s;
    fs->park_wp = w;
    fs->cold = (uint8_t)cold;
    return fsw_reload(fs);
}

/* Appends the record header r (words 0..6 set; converted in place). */
int fsw_rec_put(fsw_t *fs, uint32_t *r)
{
    fsw_seal(r, 8);
    return fsw_append(fs, r, REC_SIZE);
}

/* Reads and checks the record header at addr (§6 "Parsing"): 1 with r decoded and the payload
 * length, 0 when the log cannot go on past it (hcrc, tag_len, unknown type or flags, fields
 * out of range), < 0 on a read error. */
int fsw_rec_load(fsw_t *fs, uint32_t addr, uint32_t *r, uint32_t *plen)
{
    uint32_t room = SEG_SIZE(fs) - (addr & (SEG_SIZE(fs) - 1)) - REC_SIZE, t, fl, bad;
    int err = fsw_read(fs, addr, r, REC_SIZE);
    if (err)
        return err;
    bad = !fsw_check(r, 8);
    t = R_TYPE(r);
    fl = R_FLAGS(r);
    *plen = t == T_CKPT ? r[2] : 0;
    /* the known types: DATA, TRIM_RANGE, CHECKPOINT, SYNC (bits 1, 3, 4, 6); RESERVE (bit 5)
     * in an encrypted store only */
#ifdef FSW_NO_AEAD
    if (bad || r[0] >> 16 || t > T_SYNC || !(0x5Au >> t & 1))
        return 0;
    if (t == T_CKPT)
        return !(fl & ~F_DAMAGED) && !(r[2] % ENTRY_SIZE) && r[2] <= room;
#else
    /* an encrypted store's records all carry ENC and a 16-byte tag, a plaintext one's none;
     * RESERVE (header only) exists in encrypted stores only (§4a) */
    if (bad || r[0] >> 16 != fs->tag || !(fl & F_ENC) != !fs->tag || t > T_SYNC ||
        !((0x5Au | (uint32_t)!!fs->tag << T_RESERVE) >> t & 1))
        return 0;
    fl &= ~F_ENC;
    if (t == T_CKPT)
        return !(fl & ~F_DAMAGED) && r[2] >= fs->tag && !((r[2] - fs->tag) % ENTRY_SIZE) &&
               r[2] <= room;
    if (t == T_RESERVE)
        return !fl && !r[2] && !r[3];
    *plen = t == T_TRIM_RANGE ? fs->tag : 0;
    if (*plen > room)
        return 0;
#endif
    if (fl > (F_MORE | F_CONT))
        return 0;
    if (t != T_DATA) /* TRIM_RANGE, SYNC */
        return !fl && !r[3];
    if (!r[2] || r[2] > fs->max_chunk || r[3] >= r[2] || !r[3] != !(fl & F_CONT))
        return 0;
    *plen = fl & F_MORE ? room : r[2] - r[3];
    return fl & F_MORE ? room && r[3] + room < r[2] : *plen <= room;
}

/* Runs flash bytes [addr, addr + n) through the CRC (crc != NULL) or appends them to the log,
 * 64 bytes at a time. */
int fsw_pipe(fsw_t *fs, uint32_t addr, uint32_t n, uint32_t *crc)
{
    uint8_t tmp[64];
    int err = 0;
    while (n && !err) {
        uint32_t k = n < sizeof tmp ? n : sizeof tmp;
        err = fsw_read(fs, addr, tmp, k);
        if (!err && crc)
            *crc = fsw_crc32(*crc, tmp, k);
        else if (!err)
            err = fsw_append(fs, tmp, k);
        addr += k;
        n -= k;
    }
    return err;
}
