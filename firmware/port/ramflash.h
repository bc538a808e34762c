/* A flash device in RAM for tests, mirroring the Python FlashSim's rules (flashswap/flash.py):
 * erased bytes read 0xFF, a program only clears bits, NAND pages are programmed once and in
 * ascending order within a block, NAND factory-bad blocks carry 0x00 in spare byte 0 of their
 * first page. Faults: a power cut after n more page programs/erases tears the next one (each
 * bit it should change is old or new at random; a torn erase sets a random half of the bytes
 * to 0xFF) and every later operation fails until ramflash_power_on; a block erased more than
 * `endurance` times is worn: that erase and every later program/erase on it fail with
 * FSW_ERR_WORN and change nothing, or with `silent` set report success but leave one bit wrong
 * (an erase leaves a 0 bit, a program leaves a 1 bit), as FlashSim's wear="silent". Rule
 * breaks are counted in `violations` and refused. */
#ifndef RAMFLASH_H
#define RAMFLASH_H

#include <stdint.h>

#include "flashswap.h"

struct ramflash {
    uint8_t *mem;         /* size bytes */
    uint8_t *spare;       /* spare_size bytes per page (NAND) */
    uint8_t *page_writes; /* programs per page since its erase (NAND) */
    uint32_t *wear;       /* erases per block, cumulative */
    uint16_t *next_page;  /* NAND: lowest page of each block that may still be programmed */
    uint32_t size, block_size, page_size, spare_size;
    int nand;
    uint32_t endurance; /* 0: never wears out */
    int silent;         /* worn blocks fail silently */
    long cut;           /* page programs/erases that still complete; -1: no cut armed */
    int off;            /* power is off: the cut happened */
    uint32_t rng;
    /* counters */
    uint32_t ops; /* page programs + erases: the power-cut clock */
    uint32_t progs, erases, reads, syncs, violations;
};

/* Lays the device out in `arena` (see ramflash_arena_size) and erases it. */
int ramflash_init(struct ramflash *f, void *arena, uint32_t size, uint32_t block_size,
                  uint32_t page_size, uint32_t spare_size, int nand);
uint32_t ramflash_arena_size(uint32_t size, uint32_t block_size, uint32_t page_size,
                             uint32_t spare_size);
void ramflash_factory_bad(struct ramflash *f, uint32_t block);
void ramflash_cut_after(struct ramflash *f, long n, uint32_t seed);
void ramflash_power_on(struct ramflash *f);
/* Points cfg's callbacks and geometry at f. */
void ramflash_config(struct ramflash *f, struct fsw_config *cfg);

#endif
