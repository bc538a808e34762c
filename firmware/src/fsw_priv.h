/* Internal declarations shared by the library's source files (not part of the API). */
#ifndef FSW_PRIV_H
#define FSW_PRIV_H

#include <string.h>

#include "flashswap.h"

#define HDR_SIZE 40u /* segment header (SPEC.md §3) */
#define REC_SIZE 32u /* record header (§4) */
#define MIN_ROOM 33u /* a record starts only where its header and one byte fit */
#define ENTRY_SIZE 12u
#define NONE 0xFFFFFFFFu
#define LOST 0xFFFFFFFFu /* index address of a chunk lost to a block failure (§12) */

enum { ST_ERASED, ST_FREE, ST_LOG, ST_BAD };
enum { T_DATA = 1, T_TRIM, T_TRIM_RANGE, T_CKPT };
enum { F_MORE = 1, F_CONT = 2 };
enum { HF_PAGE_ONCE = 1, HF_COLD = 2 };
/* Operations run through the retry loop in store.c. */
enum { OP_PUT, OP_TRIM, OP_RANGE, OP_SYNC, OP_IDLE };
/* fsw_next modes */
enum { OPEN_FORCE = 1, OPEN_SPILL = 2 };
/* choose() modes */
enum { PICK_HEAD, PICK_DIRTY };

/* A record header, unpacked. */
struct fsw_rec {
    uint8_t type;
    uint8_t flags;
    uint32_t key;
    uint32_t size;
    uint32_t off; /* DATA: offset in the chunk; CHECKPOINT: cold_from */
    uint64_t seq;
    uint32_t dcrc;
};

/* Where one fragment of a chunk lies. */
struct fsw_frag {
    uint32_t addr; /* record header */
    uint32_t off;  /* of its payload in the chunk */
    uint32_t len;  /* payload bytes */
};

#define SEG_SIZE(fs) ((uint32_t)1 << (fs)->seg_shift)
#define PROG_SIZE(fs) ((uint32_t)1 << (fs)->prog_shift)
#define SEG_BASE(fs, s) ((uint32_t)(s) << (fs)->seg_shift)
#define SEG_OF(fs, a) ((a) >> (fs)->seg_shift)
#define DATA_CAP(fs) (SEG_SIZE(fs) - HDR_SIZE)
#define SEGS(fs) ((fs)->cfg->segs)

/* log.c: byte packing, the program buffer and its two heads, record codec, parsing */
void fsw_put32(uint8_t *p, uint32_t v);
uint32_t fsw_get32(const uint8_t *p);
int fsw_read(fsw_t *fs, uint32_t addr, void *buf, uint32_t n);
int fsw_blank(fsw_t *fs, uint32_t addr, uint32_t n);
int fsw_all_ff(const uint8_t *p, uint32_t n);
int fsw_append(fsw_t *fs, const void *src, uint32_t n);
int fsw_log_sync(fsw_t *fs);
int fsw_close(fsw_t *fs);
int fsw_use(fsw_t *fs, int cold);
uint32_t fsw_room(const fsw_t *fs);
uint32_t fsw_hot_room(const fsw_t *fs);
int fsw_rec_append(fsw_t *fs, const struct fsw_rec *r);
int fsw_rec_decode(const fsw_t *fs, const uint8_t *h, uint32_t addr, struct fsw_rec *r,
                   uint32_t *plen);
int fsw_crc_flash(fsw_t *fs, uint32_t addr, uint32_t n, uint32_t *crc);
int fsw_parse(fsw_t *fs, uint32_t s, uint32_t *p, struct fsw_rec *r, uint32_t *plen);

/* index.c: the sorted index */
uint32_t fsw_idx_find(const fsw_t *fs, uint32_t key, int *found);
int fsw_idx_set(fsw_t *fs, uint32_t key, uint32_t addr, uint32_t size);
uint32_t fsw_idx_drop(fsw_t *fs, uint32_t first, uint32_t last);
void fsw_live(fsw_t *fs, const struct fsw_index_entry *e, int sign);

/* chunk.c: fragments, reading and writing chunks, checkpoints */
void fsw_frag_first(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f);
int fsw_frag_next(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f);
int fsw_chunk_read(fsw_t *fs, const struct fsw_index_entry *e, uint8_t *dst, uint64_t *seq);
int fsw_chunk_write(fsw_t *fs, uint32_t key, uint32_t size, const uint8_t *ram,
                    const struct fsw_index_entry *src);
int fsw_ckpt_write(fsw_t *fs);
int fsw_rec_small(fsw_t *fs, uint8_t type, uint32_t key, uint32_t size);

/* alloc.c: segments, garbage collection, wear leveling, failures */
uint32_t fsw_chain(const fsw_t *fs, uint32_t s);
int fsw_next(fsw_t *fs, uint32_t cont, int mode);
int fsw_erase(fsw_t *fs, uint32_t s);
void fsw_retire(fsw_t *fs, uint32_t s);
uint32_t fsw_free_count(const fsw_t *fs);
int fsw_make_room(fsw_t *fs, uint32_t need, uint32_t reserve);
int fsw_static_wl(fsw_t *fs);
int fsw_recover(fsw_t *fs);
int fsw_idle_work(fsw_t *fs, unsigned max_erases);

/* mount.c */
int fsw_hdr_ok(const uint8_t *h);
int fsw_factory_bad(fsw_t *fs, uint32_t s);

/* store.c */
int fsw_setup(fsw_t *fs, const struct fsw_config *cfg);
void fsw_limits(fsw_t *fs);

#endif
