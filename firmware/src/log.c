/* The log's byte level: explicit little-endian packing, the one program-unit buffer every
 * record passes through (SPEC.md §6), the record header codec (§4) and segment parsing. */
#include "fsw_priv.h"

void fsw_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

uint32_t fsw_get32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
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
    if (fs->rescue_end)
        overlay(buf, addr, n, c->rescue_buffer, fs->rescue_unit, fs->rescue_end);
    return 0;
}

static int prog(fsw_t *fs, uint32_t off)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t unit = fs->wp & ~(PROG_SIZE(fs) - 1);
    int err = c->prog(c, unit + fs->programmed, (uint8_t *)c->prog_buffer + fs->programmed,
                      off - fs->programmed);
    return err > 0 ? FSW_ERR_IO : err;
}

/* Appends at wp; a unit is programmed as soon as it is full. wp advances past a unit only once
 * its program succeeded, so after a failure [unit, wp) is exactly what never reached flash. */
int fsw_append(fsw_t *fs, const void *src, uint32_t n)
{
    const uint8_t *p = src;
    uint8_t *b = fs->cfg->prog_buffer;
    uint32_t ps = PROG_SIZE(fs);
    while (n) {
        uint32_t o = fs->wp & (ps - 1), k = ps - o;
        if (k > n)
            k = n;
        memcpy(b + o, p, k);
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

/* §6 sync: program the buffered bytes not yet programmed; on a page-once device the rest of
 * the page is given up. */
int fsw_log_sync(fsw_t *fs)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t ps = PROG_SIZE(fs), o = fs->wp & (ps - 1);
    int err;
    if (fs->open == NONE)
        return 0;
    if (o > fs->programmed) {
        err = prog(fs, o);
        if (err)
            return err;
        fs->programmed = o;
    }
    if (fs->page_once && o) {
        fs->wp += ps - o;
        fs->programmed = 0;
    }
    err = c->sync ? c->sync(c) : 0;
    return err > 0 ? FSW_ERR_IO : err;
}

int fsw_close(fsw_t *fs)
{
    int err = fsw_log_sync(fs);
    fs->open = NONE;
    return err;
}

uint32_t fsw_room(const fsw_t *fs)
{
    return fs->open == NONE ? 0 : SEG_BASE(fs, fs->open + 1) - fs->wp;
}

/* Room of the hot head, whichever head holds the buffer. */
uint32_t fsw_hot_room(const fsw_t *fs)
{
    if (!fs->cold)
        return fsw_room(fs);
    return fs->park == NONE ? 0 : SEG_BASE(fs, fs->park + 1) - fs->park_wp;
}

/* §6 switching: sync the active head, swap, and on NOR load the new active head's partly
 * programmed unit back into the buffer (counted as programmed). */
int fsw_use(fsw_t *fs, int cold)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t s = fs->open, w, o;
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
    o = fs->open == NONE ? 0 : fs->wp & (PROG_SIZE(fs) - 1);
    fs->programmed = o;
    err = o ? c->read(c, fs->wp - o, c->prog_buffer, o) : 0;
    return err > 0 ? FSW_ERR_IO : err;
}

int fsw_rec_append(fsw_t *fs, const struct fsw_rec *r)
{
    uint8_t h[REC_SIZE];
    h[0] = r->type;
    h[1] = r->flags;
    h[2] = h[3] = 0;
    fsw_put32(h + 4, r->key);
    fsw_put32(h + 8, r->size);
    fsw_put32(h + 12, r->off);
    fsw_put32(h + 16, (uint32_t)r->seq);
    fsw_put32(h + 20, (uint32_t)(r->seq >> 32));
    fsw_put32(h + 24, r->dcrc);
    fsw_put32(h + 28, fsw_crc32(0, h, 28));
    return fsw_append(fs, h, REC_SIZE);
}

/* Unpacks the record header h read at flash address addr. Returns 0 with its payload length
 * when the header holds, -1 when the log cannot go on past it (§6: hcrc, unknown type or
 * flags, a field out of range). */
int fsw_rec_decode(const fsw_t *fs, const uint8_t *h, uint32_t addr, struct fsw_rec *r,
                   uint32_t *plen)
{
    uint32_t room = SEG_SIZE(fs) - (addr & (SEG_SIZE(fs) - 1)) - REC_SIZE;
    if (fsw_get32(h + 28) != fsw_crc32(0, h, 28) || h[2] || h[3])
        return -1;
    r->type = h[0];
    r->flags = h[1];
    r->key = fsw_get32(h + 4);
    r->size = fsw_get32(h + 8);
    r->off = fsw_get32(h + 12);
    r->seq = fsw_get32(h + 16) | (uint64_t)fsw_get32(h + 20) << 32;
    r->dcrc = fsw_get32(h + 24);
    if (r->type < T_DATA || r->type > T_CKPT || (r->flags & ~(F_MORE | F_CONT)))
        return -1;
    *plen = 0;
    if (r->type == T_CKPT) {
        *plen = r->size;
        return r->flags || r->size % ENTRY_SIZE || r->size > room ? -1 : 0;
    }
    if (r->type != T_DATA)
        return r->flags || r->off ? -1 : 0;
    if (!r->size || r->size > fs->max_chunk || r->off >= r->size ||
        !r->off != !(r->flags & F_CONT))
        return -1;
    if (r->flags & F_MORE) {
        if (!room || r->off + room >= r->size)
            return -1;
        *plen = room;
        return 0;
    }
    *plen = r->size - r->off;
    return *plen > room ? -1 : 0;
}

int fsw_crc_flash(fsw_t *fs, uint32_t addr, uint32_t n, uint32_t *crc)
{
    uint8_t tmp[64];
    while (n) {
        uint32_t k = n < sizeof tmp ? n : sizeof tmp;
        int err = fsw_read(fs, addr, tmp, k);
        if (err)
            return err;
        *crc = fsw_crc32(*crc, tmp, k);
        addr += k;
        n -= k;
    }
    return 0;
}

int fsw_all_ff(const uint8_t *p, uint32_t n)
{
    while (n && *p == 0xFF)
        p++, n--;
    return !n;
}

/* 1 when [addr, addr + n) reads all 0xFF (erase verify, §8; mount, §9). */
int fsw_blank(fsw_t *fs, uint32_t addr, uint32_t n)
{
    uint8_t tmp[64];
    while (n) {
        uint32_t k = n < sizeof tmp ? n : sizeof tmp;
        int err = fsw_read(fs, addr, tmp, k);
        if (err)
            return err;
        if (!fsw_all_ff(tmp, k))
            return 0;
        addr += k;
        n -= k;
    }
    return 1;
}

/* §6 parsing: the record at *p of segment s. Returns 1 (intact), 2 (damaged: its dcrc fails,
 * skip it), 0 when the log ends (*p is then the log end) or a negative error. */
int fsw_parse(fsw_t *fs, uint32_t s, uint32_t *p, struct fsw_rec *r, uint32_t *plen)
{
    uint8_t h[REC_SIZE];
    uint32_t end = SEG_BASE(fs, s + 1), ps = PROG_SIZE(fs), crc = 0;
    int err;
    for (;;) {
        if (end - *p < REC_SIZE)
            return 0;
        err = fsw_read(fs, *p, h, REC_SIZE);
        if (err)
            return err;
        if (h[0] != 0xFF)
            break;
        if (!fs->page_once || !(*p & (ps - 1)))
            return 0;
        *p = (*p | (ps - 1)) + 1;
    }
    if (fsw_rec_decode(fs, h, *p, r, plen))
        return 0;
    err = fsw_crc_flash(fs, *p + REC_SIZE, *plen, &crc);
    if (err)
        return err;
    return crc == r->dcrc ? 1 : 2;
}
