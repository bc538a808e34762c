#include "fixture.h"

#include <string.h>

#ifdef FSW_SMALL_RAM
#define ARENA (300 * 1024)
#else
#define ARENA (1200 * 1024)
#endif

struct fx FX;
uint8_t fx_data[FX_DATA];
uint8_t fx_read[FX_DATA];
static uint32_t arena[ARENA / 4], backup[ARENA / 4];
static uint32_t arena_used;
static uint8_t prog_buf[2048], rescue_buf[2048];
static struct fsw_index_entry index_buf[1024];
static struct fsw_seg segs_buf[256];

static const struct {
    uint32_t size, block, page, spare;
    int nand;
    uint32_t seg;
} geos[] = {
#define X(name, size, block, page, spare, nand, segment) {size, block, page, spare, nand, segment},
    FX_GEOMETRIES(X)
#undef X
};

int fx_have(enum geo g)
{
    return ramflash_arena_size(geos[g].size, geos[g].block, geos[g].page, geos[g].spare) <=
           sizeof arena;
}

int fx_setup(enum geo g, uint8_t ckpt_interval, uint16_t wl_threshold)
{
    uint32_t seg = geos[g].seg;
    memset(&FX, 0, sizeof FX);
    FX.geo = g;
    arena_used = ramflash_arena_size(geos[g].size, geos[g].block, geos[g].page, geos[g].spare);
    if (arena_used > sizeof arena ||
        ramflash_init(&FX.rf, arena, geos[g].size, geos[g].block, geos[g].page, geos[g].spare,
                      geos[g].nand))
        return -1;
    ramflash_config(&FX.rf, &FX.cfg);
    FX.cfg.segment_size = seg;
    FX.cfg.prog_buffer = prog_buf;
    FX.cfg.rescue_buffer = rescue_buf;
    FX.cfg.index = index_buf;
    FX.cfg.segs = segs_buf;
    FX.cfg.max_keys = (uint16_t)FSW_DEFAULT_MAX_KEYS(seg);
    FX.cfg.ckpt_interval = ckpt_interval;
    FX.cfg.wl_threshold = wl_threshold;
    return 0;
}

int fx_format(void)
{
    return fsw_format(&FX.fs, &FX.cfg);
}

int fx_mount(void)
{
    return fsw_mount(&FX.fs, &FX.cfg);
}

void fx_save(void)
{
    memcpy(backup, arena, arena_used);
}

void fx_restore(void)
{
    memcpy(arena, backup, arena_used);
    FX.rf.cut = -1;
    FX.rf.off = 0;
}

void fx_payload(uint8_t *buf, uint32_t key, uint32_t version, uint32_t size)
{
    uint32_t x = key * 1000003u + version * 7919u + 1, i;
    for (i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)(x >> 11);
    }
}
