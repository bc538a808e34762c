/* libFuzzer target: mount an arbitrary flash image and read every key, then write a little.
 * The first input byte picks the geometry (NOR with 512 B or 4 KiB segments, NAND with 16 KiB
 * blocks: byte % 3) and whether the store is mounted with a fixed AES-128 key (byte / 3 odd:
 * an encrypted store, SPEC.md §4a, through the Mbed TLS port); the rest is the image (then, on NAND, the spare bytes), padded with 0xFF (erased).
 * Mount must fail cleanly or succeed, and whatever it accepted must be readable and writable
 * without a crash, and the introspection API must agree with itself. (A flash rule break is not a crash here: an image can claim a segment is
 * erased - its header reads 0xFF - while its body is not; the RAM flash then refuses the
 * program and the store returns the error.) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aead_mbedtls.h"
#include "flashswap.h"
#include "ramflash.h"

static const uint8_t KEY[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static uint64_t gcm_ctx[256];
static uint8_t aead_buf[64 * 1024 + 16];

static const struct {
    uint32_t size, block, page, spare;
    int nand;
} geos[3] = {
    {8 * 1024, 512, 64, 0, 0},
    {64 * 1024, 4096, 256, 0, 0},
    {96 * 1024, 16 * 1024, 512, 16, 1},
};

static uint32_t arena[(200 * 1024) / 4];
static uint8_t prog_buf[512], rescue_buf[512], data[20000];
static struct fsw_index_entry index_buf[1024];
static struct fsw_seg segs_buf[32];
static uint32_t keys[1024];

static int take_key(void *ctx, const struct fsw_chunk_info *chunk)
{
    uint32_t *n = ctx;
    keys[(*n)++] = chunk->key;
    return 0;
}

/* Reads every key the store indexes (fsw_traverse); the entries and window counts of fsw_info
 * are those of fsw_traverse and fsw_seg_info. */
static void read_all(fsw_t *fs, uint32_t nseg)
{
    struct fsw_info info;
    struct fsw_seg_info si;
    uint32_t i, n = 0, window = 0, got;
    if (fsw_traverse(fs, take_key, &n) || fsw_info(fs, &info) || n != info.entries)
        abort();
    for (i = 0; i < nseg; i++) {
        if (fsw_seg_info(fs, i, &si))
            abort();
        window += si.window;
    }
    if (window != info.window_segments || fsw_seg_info(fs, nseg, &si) != FSW_ERR_INVAL)
        abort();
    for (i = 0; i < n; i++)
        (void)fsw_get(fs, keys[i], data, sizeof data, &got);
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    struct ramflash rf;
    struct fsw_config cfg;
    fsw_t fs;
    uint32_t i, g, enc;
    if (n < 1)
        return 0;
    g = in[0] % 3;
    enc = in[0] / 3 & 1;
    in++;
    n--;
    if (ramflash_init(&rf, arena, geos[g].size, geos[g].block, geos[g].page, geos[g].spare,
                      geos[g].nand))
        abort();
    memcpy(rf.mem, in, n < rf.size ? n : rf.size);
    if (geos[g].nand && n > rf.size) /* spare bytes of the pages, after the main area */
        memcpy(rf.spare, in + rf.size,
               n - rf.size < (rf.size / rf.page_size) * rf.spare_size
                   ? n - rf.size
                   : (rf.size / rf.page_size) * rf.spare_size);
    memset(&cfg, 0, sizeof cfg);
    ramflash_config(&rf, &cfg);
    cfg.segment_size = geos[g].block;
    cfg.prog_buffer = prog_buf;
    cfg.rescue_buffer = rescue_buf;
    cfg.index = index_buf;
    cfg.segs = segs_buf;
    cfg.max_keys = (uint16_t)FSW_DEFAULT_MAX_KEYS(cfg.segment_size);
    if (enc) {
        if (fsw_mbedtls_install(&cfg, gcm_ctx, KEY))
            abort();
        cfg.aead_buffer = aead_buf;
        cfg.aead_buffer_size = sizeof aead_buf;
    }
    if (fsw_mount(&fs, &cfg)) {
        if (enc)
            fsw_mbedtls_free(gcm_ctx);
        return 0;
    }
    read_all(&fs, geos[g].size / geos[g].block);
    memset(data, 0x5A, sizeof data);
    for (i = 0; i < 4; i++)
        (void)fsw_put(&fs, i, data, 1 + i * 700);
    (void)fsw_trim(&fs, 1);
    (void)fsw_sync(&fs);
    (void)fsw_idle(&fs, 2);
    if (!fsw_mount(&fs, &cfg))
        read_all(&fs, geos[g].size / geos[g].block);
    if (enc)
        fsw_mbedtls_free(gcm_ctx);
    return 0;
}
