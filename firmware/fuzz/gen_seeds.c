/* Writes the fuzz corpus seeds: valid images of the three fuzz geometries after a short
 * workload (make fuzz-seeds), plaintext and encrypted. Each file is the geometry byte (+ 3:
 * encrypted), then the image (then the spare area on NAND), as fuzz_mount.c reads it. */
#include <stdio.h>
#include <string.h>

#include "aead_mbedtls.h"
#include "flashswap.h"
#include "ramflash.h"

static const uint8_t KEY[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static uint64_t gcm_ctx[256];
static uint8_t aead_buf[64 * 1024 + 16];

static uint32_t arena[(200 * 1024) / 4];
static uint8_t prog_buf[512], data[20000];
static struct fsw_index_entry index_buf[1024];
static struct fsw_seg segs_buf[32];

int main(int argc, char **argv)
{
    static const uint32_t size[3] = {8 * 1024, 64 * 1024, 96 * 1024};
    static const uint32_t block[3] = {512, 4096, 16 * 1024}, page[3] = {64, 256, 512};
    static const uint32_t spare[3] = {0, 0, 16};
    const char *dir = argc > 1 ? argv[1] : "fuzz/corpus";
    uint32_t g, w, i, e;
    for (e = 0; e < 2; e++)
    for (g = 0; g < 3; g++)
        for (w = 0; w < 2; w++) {
            struct ramflash rf;
            struct fsw_config cfg;
            fsw_t fs;
            char path[256];
            FILE *f;
            uint8_t gb = (uint8_t)(g + 3 * e);
            ramflash_init(&rf, arena, size[g], block[g], page[g], spare[g], g == 2);
            memset(&cfg, 0, sizeof cfg);
            ramflash_config(&rf, &cfg);
            cfg.segment_size = block[g];
            cfg.prog_buffer = prog_buf;
            cfg.index = index_buf;
            cfg.segs = segs_buf;
            cfg.ckpt_interval = 1;
            if (e && fsw_mbedtls_install(&cfg, gcm_ctx, KEY))
                return 1;
            cfg.aead_buffer = aead_buf;
            cfg.aead_buffer_size = sizeof aead_buf;
            if (fsw_format(&fs, &cfg))
                return 1;
            for (i = 0; i < (w ? 40u : 4u); i++) {
                memset(data, (int)i, sizeof data);
                if (fsw_put(&fs, i % 7, data, 1 + (i * 997) % (block[g] + 300)))
                    break;
                if (i % 5 == 4)
                    (void)fsw_trim(&fs, (i + 3) % 7);
            }
            if (fsw_unmount(&fs))
                return 1;
            snprintf(path, sizeof path, "%s/seed_%sg%u_w%u", dir, e ? "enc_" : "", (unsigned)g,
                     (unsigned)w);
            if (e)
                fsw_mbedtls_free(gcm_ctx);
            f = fopen(path, "wb");
            if (!f || fwrite(&gb, 1, 1, f) != 1 || fwrite(rf.mem, 1, rf.size, f) != rf.size ||
                fwrite(rf.spare, 1, (rf.size / rf.page_size) * rf.spare_size, f) !=
                    (rf.size / rf.page_size) * rf.spare_size)
                return 1;
            fclose(f);
        }
    return 0;
}
