/* Host RAM flash port: see ramflash.h. Plain C99, no malloc (the caller gives an arena). */
#include "ramflash.h"

#include <string.h>

#define FLASH(c) ((struct ramflash *)(c)->context)

uint32_t ramflash_arena_size(uint32_t size, uint32_t block_size, uint32_t page_size,
                             uint32_t spare_size)
{
    uint32_t pages = size / page_size, blocks = size / block_size;
    return size + pages * spare_size + pages + blocks * (uint32_t)(sizeof(uint32_t) +
                                                                   sizeof(uint16_t)) + 8;
}

int ramflash_init(struct ramflash *f, void *arena, uint32_t size, uint32_t block_size,
                  uint32_t page_size, uint32_t spare_size, int nand)
{
    uint8_t *a = arena;
    uint32_t pages = size / page_size, blocks = size / block_size;
    memset(f, 0, sizeof *f);
    if (!size || size % block_size || block_size % page_size)
        return -1;
    f->wear = (uint32_t *)(void *)a; /* arena is suitably aligned by the caller */
    a += blocks * sizeof(uint32_t);
    f->next_page = (uint16_t *)(void *)a;
    a += blocks * sizeof(uint16_t);
    f->mem = a;
    a += size;
    f->spare = a;
    a += pages * spare_size;
    f->page_writes = a;
    memset(f->wear, 0, blocks * sizeof(uint32_t));
    memset(f->next_page, 0, blocks * sizeof(uint16_t));
    memset(f->mem, 0xFF, size);
    memset(f->spare, 0xFF, pages * spare_size);
    memset(f->page_writes, 0, pages);
    f->size = size;
    f->block_size = block_size;
    f->page_size = page_size;
    f->spare_size = spare_size;
    f->nand = nand;
    f->cut = -1;
    f->rng = 1;
    return 0;
}

void ramflash_factory_bad(struct ramflash *f, uint32_t block)
{
    f->spare[block * (f->block_size / f->page_size) * f->spare_size] = 0x00;
}

void ramflash_cut_after(struct ramflash *f, long n, uint32_t seed)
{
    f->cut = n;
    f->rng = seed * 2654435761u + 1;
}

void ramflash_power_on(struct ramflash *f)
{
    f->cut = -1;
    f->off = 0;
}

static uint32_t rnd(struct ramflash *f)
{
    /* xorshift32: deterministic tears for a given seed */
    uint32_t x = f->rng ? f->rng : 1;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return f->rng = x;
}

static int in_range(const struct ramflash *f, uint32_t addr, uint32_t n)
{
    return addr <= f->size && n <= f->size - addr;
}

static int factory_bad(const struct ramflash *f, uint32_t blk)
{
    return f->nand && f->spare_size &&
           f->spare[blk * (f->block_size / f->page_size) * f->spare_size] != 0xFF;
}

static int worn(const struct ramflash *f, uint32_t blk)
{
    return factory_bad(f, blk) || (f->endurance && f->wear[blk] > f->endurance);
}

/* Consumes n page operations of the power-cut clock; returns the index of the torn one or -1. */
static long countdown(struct ramflash *f, uint32_t n)
{
    long c = f->cut;
    if (c < 0 || c >= (long)n) {
        if (c >= 0)
            f->cut = c - (long)n;
        f->ops += n;
        return -1;
    }
    f->cut = -1;
    f->off = 1;
    f->ops += (uint32_t)c + 1;
    return c;
}

static int rf_read(const struct fsw_config *c, uint32_t addr, void *buf, uint32_t n)
{
    struct ramflash *f = FLASH(c);
    if (f->off)
        return FSW_ERR_IO;
    if (!in_range(f, addr, n) || !n) {
        f->violations++;
        return FSW_ERR_INVAL;
    }
    memcpy(buf, f->mem + addr, n);
    f->reads++;
    return 0;
}

/* Programs main bytes (the store never programs the spare area). */
static int program(struct ramflash *f, uint32_t addr, const uint8_t *src, uint32_t n)
{
    uint32_t blk = addr / f->block_size, p0 = addr / f->page_size, p1, i, ppb;
    uint8_t *dst;
    long cut;
    int worn_done = 0;
    if (f->off)
        return FSW_ERR_IO;
    if (!n || !in_range(f, addr, n) || (addr + n - 1) / f->block_size != blk) {
        f->violations++;
        return FSW_ERR_INVAL;
    }
    dst = f->mem + addr;
    p1 = (addr + n - 1) / f->page_size + 1;
    for (i = 0; i < n; i++)
        if (src[i] & ~dst[i]) {
            f->violations++;
            return FSW_ERR_INVAL;
        }
    ppb = f->block_size / f->page_size;
    if (f->nand) {
        for (i = p0; i < p1; i++)
            if (f->page_writes[i]) {
                f->violations++; /* NOP = 1 */
                return FSW_ERR_INVAL;
            }
        if (p0 - blk * ppb < f->next_page[blk]) {
            f->violations++; /* pages in ascending order */
            return FSW_ERR_INVAL;
        }
    }
    if (worn(f, blk) && !(f->silent && !factory_bad(f, blk)))
        return FSW_ERR_WORN;
    cut = countdown(f, p1 - p0);
    f->progs += cut < 0 ? p1 - p0 : (uint32_t)cut + 1;
    for (i = 0; i < n; i++) {
        long page = (long)((addr + i) / f->page_size - p0);
        uint8_t keep = (uint8_t)(dst[i] & ~src[i]); /* bits this program clears */
        if (cut < 0 && keep && !worn_done && worn(f, blk)) { /* silent: one bit stays set */
            dst[i] = (uint8_t)(src[i] | (keep & -keep));
            worn_done = 1;
            continue;
        }
        if (cut < 0 || page < cut)
            dst[i] = src[i];
        else if (page == cut) /* torn: each bit to clear is cleared or not */
            dst[i] = (uint8_t)(dst[i] & (src[i] | (uint8_t)rnd(f)));
    }
    if (f->nand) {
        uint32_t last = cut < 0 ? p1 : p0 + (uint32_t)cut + 1;
        for (i = p0; i < last; i++)
            f->page_writes[i] = 1;
        f->next_page[blk] = (uint16_t)(last - blk * ppb);
    }
    return cut < 0 ? 0 : FSW_ERR_IO;
}

static int rf_prog(const struct fsw_config *c, uint32_t addr, const void *buf, uint32_t n)
{
    return program(FLASH(c), addr, buf, n);
}

static int rf_read_spare(const struct fsw_config *c, uint32_t addr, void *buf, uint32_t n)
{
    struct ramflash *f = FLASH(c);
    if (f->off)
        return FSW_ERR_IO;
    if (!f->nand || addr % f->page_size || n > f->spare_size || !in_range(f, addr, 1)) {
        f->violations++;
        return FSW_ERR_INVAL;
    }
    memcpy(buf, f->spare + addr / f->page_size * f->spare_size, n);
    f->reads++;
    return 0;
}

static int rf_erase(const struct fsw_config *c, uint32_t addr, uint32_t n)
{
    struct ramflash *f = FLASH(c);
    uint32_t b0 = addr / f->block_size, b1, b, i, ppb = f->block_size / f->page_size;
    if (f->off)
        return FSW_ERR_IO;
    if (!n || addr % f->block_size || n % f->block_size || !in_range(f, addr, n)) {
        f->violations++;
        return FSW_ERR_INVAL;
    }
    b1 = b0 + n / f->block_size;
    for (b = b0; b < b1; b++)
        if (factory_bad(f, b))
            return FSW_ERR_WORN;
    for (b = b0; b < b1; b++)
        f->wear[b]++;
    for (b = b0; b < b1; b++)
        if (worn(f, b) && !f->silent)
            return FSW_ERR_WORN;
    f->erases++;
    if (countdown(f, 1) >= 0) {
        for (i = 0; i < n; i++)
            if (rnd(f) & 1)
                f->mem[addr + i] = 0xFF;
        return FSW_ERR_IO;
    }
    memset(f->mem + addr, 0xFF, n);
    for (b = b0; b < b1; b++) /* silent wear: one bit stays programmed */
        if (worn(f, b))
            f->mem[b * f->block_size + (rnd(f) % f->block_size)] = 0xFE;
    if (f->nand) {
        memset(f->spare + b0 * ppb * f->spare_size, 0xFF, (b1 - b0) * ppb * f->spare_size);
        memset(f->page_writes + b0 * ppb, 0, (b1 - b0) * ppb);
        for (b = b0; b < b1; b++)
            f->next_page[b] = 0;
    }
    return 0;
}

static int rf_sync(const struct fsw_config *c)
{
    struct ramflash *f = FLASH(c);
    if (f->off)
        return FSW_ERR_IO;
    f->syncs++;
    return 0;
}

void ramflash_config(struct ramflash *f, struct fsw_config *cfg)
{
    cfg->context = f;
    cfg->read = rf_read;
    cfg->prog = rf_prog;
    cfg->erase = rf_erase;
    cfg->sync = rf_sync;
    cfg->read_spare = f->nand ? rf_read_spare : 0;
    cfg->flash_size = f->size;
    cfg->prog_size = f->page_size;
    cfg->page_once = (uint8_t)f->nand;
}
