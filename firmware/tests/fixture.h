/* One store on one RAM flash, shared by the tests (static memory: no malloc, small stacks). */
#ifndef FIXTURE_H
#define FIXTURE_H

#include "flashswap.h"
#include "geometries.h"
#include "ramflash.h"

/* The geometries (generated from tests/geometries.py, the Python store tests' table). */
enum geo {
#define X(name, size, block, page, spare, nand, segment) name,
    FX_GEOMETRIES(X)
#undef X
};

struct fx {
    struct ramflash rf;
    struct fsw_config cfg;
    fsw_t fs;
    enum geo geo;
};

extern struct fx FX;
extern uint8_t fx_data[]; /* FX_DATA bytes of scratch for payloads */
extern uint8_t fx_read[];
#define FX_DATA (192 * 1024)

/* Fresh erased flash of geometry g; cfg gets the options (0: default). */
int fx_setup(enum geo g, uint8_t ckpt_interval, uint16_t wl_threshold);
int fx_format(void);
int fx_mount(void);
/* Whole device (data, spare, wear) to and from a backup. */
void fx_save(void);
void fx_restore(void);
/* Deterministic payload of (key, version), size bytes, into buf. */
void fx_payload(uint8_t *buf, uint32_t key, uint32_t version, uint32_t size);
int fx_have(enum geo g);

#endif
