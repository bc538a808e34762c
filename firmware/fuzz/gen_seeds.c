/* Writes the fuzz corpus seeds: valid images of the three fuzz geometries after a short
 * workload (make fuzz-seeds). Each file is the geometry byte, then the image (then the spare
 * area on NAND), as fuzz_mount.c reads it. */
#include <stdio.h>
#include <string.h>

#include "flashswap.h"
#include "ramflash.h"

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
    uint32_t g, w, i;
    for (g = 0; g < 3; g++)
        for (w = 0; w < 2; w++) {
            struct ramflash rf;
            struct fsw_config cfg;
            fsw_t fs;
            char path[256];
            FILE *f;
            uint8_t gb = (uint8_t)g;
            ramflash_init(&rf, arena, size[g], block[g], page[g], spare[g], g == 2);
            memset(&cfg, 0, sizeof cfg);
            ramflash_config(&rf, &cfg);
            cfg.segment_size = block[g];
            cfg.prog_buffer = prog_buf;
            cfg.index = index_buf;
            cfg.segs = segs_buf;
            cfg.ckpt_interval = 1;
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
            snprintf(path, sizeof path, "%s/seed_g%u_w%u", dir, (unsigned)g, (unsigned)w);
            f = fopen(path, "wb");
            if (!f || fwrite(&gb, 1, 1, f) != 1 || fwrite(rf.mem, 1, rf.size, f) != rf.size ||
                fwrite(rf.spare, 1, (rf.size / rf.page_size) * rf.spare_size, f) !=
                    (rf.size / rf.page_size) * rf.spare_size)
                return 1;
            fclose(f);
        }
    return 0;
}
