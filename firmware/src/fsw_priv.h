/* Internal declarations shared by the library's source files (not part of the API).
 *
 * Layers, lowest first: a file calls only functions of the files listed before it, never one
 * listed after it (firmware/tests/layers.py checks the call graph and the #includes;
 * tests/test_c_layers.py runs it). The order is the one the data is built up in: bytes, records,
 * segments, the chunks in them, what moves chunks, the entry points.
 *   crc32.c      CRC-32 (the port's device callbacks are below everything)
 *   log.c        byte order, the program buffer and its two heads, record headers, flash reads
 *   aead.c       sealing records (the port's AEAD callbacks), seq reservations: RESERVE records
 *   alloc.c      segments: geometry from the config, the scan behind every choice, chains,
 *                erase and retirement, segment headers; appends nothing to the log
 *   index.c      the sorted index, where a chunk's fragments lie, live-byte accounting
 *   chunk.c      writing the log: opening segments, chunks (read, verify, append), checkpoints
 *   gc.c         moving chunks: garbage collection, static wear leveling, recovery, idle step
 *   mount.c      mount: header scan, checkpoint, replay of both logs
 *   store.c      the API: format, the retry loop, put/get/trim/sync/idle, the trace hook
 *   introspect.c optional query API (fsw_stat, and the introspection API fsw_info,
 *                fsw_seg_info, fsw_traverse): a separate object, so a firmware that does not
 *                call it does not link it
 * Every source file includes this header only; it includes flashswap.h only.
 */
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
#define ROOMY 32u /* fs->torn bit: not lean (§10): a put counted `reserve` free segments since
                   * the mount and the last retirement */

enum { ST_ERASED = FSW_SEG_ERASED, ST_FREE = FSW_SEG_FREE, ST_LOG = FSW_SEG_LOG, ST_BAD = FSW_SEG_BAD };
enum { T_DATA = 1, T_TRIM_RANGE = 3, T_CKPT, T_RESERVE, T_SYNC }; /* 2 (version 1's TRIM) unused */
enum { F_MORE = 1, F_CONT = 2, F_ENC = 4, F_DAMAGED = 8 };
#define FSW_FORGED (-1000) /* internal: an intact record whose tag fails (§4a) */
/* Encryption (§4a): TAG(fs) is the store's tag_len, a constant 0 when compiled out. */
#ifdef FSW_NO_AEAD
#define TAG(fs) 0u
#define IS_RESERVE(t) 0
#define IS_CORRUPT(e) ((e) == FSW_ERR_CORRUPT)
#else
#define IS_RESERVE(t) ((t) == T_RESERVE)
#define IS_CORRUPT(e) ((e) == FSW_ERR_CORRUPT || (e) == FSW_FORGED)
#define TAG(fs) ((uint32_t)(fs)->tag)
#define FSW_TAG 16u
#define SEQ_BLOCK 1024u    /* seqs one RESERVE record claims */
int fsw_reserve(fsw_t *fs, int always, uint32_t *r);
int fsw_aead_setup(fsw_t *fs);
int fsw_aead(fsw_t *fs, int seal, const uint32_t *r, uint32_t addr, const uint8_t *in, uint8_t *out,
             uint32_t len, uint8_t *tag);
#endif
enum { HF_PAGE_ONCE = 1, HF_COLD = 2, HF_TEAR = 4 };
#define NOISE 4u /* an unreadable region with fewer non-0xFF bytes is stray bits (§6) */
/* Operations run through the retry loop in store.c: the trace's op codes (traces/README.md),
 * TRIM and TRIM_RANGE one above their record types; idle is not traced. */
enum { OP_PUT = 1, OP_GET, OP_TRIM, OP_RANGE, OP_SYNC, OP_IDLE };
/* fsw_next modes */
enum { OPEN_FORCE = 1, OPEN_SPILL = 2 };
/* fsw_scan modes: which segments, and which one wins (fsw_seq_find takes PICK_SEQ | ...) */
enum {
    PICK_HOT,    /* erased, free or reclaimable: least effective count (§8) */
    PICK_COLD,   /* the same: most effective count */
    PICK_DIRTY,  /* free or reclaimable: least worn (the idle step's pre-erase) */
    PICK_VICTIM, /* outside the window, 0 < live < data_capacity - 64: least live, then seq */
    PICK_WL,     /* outside the window with live data: least worn */
    PICK_LO,     /* not bad: least worn */
    PICK_HI,     /* not bad: most worn */
    PICK_ERASED, /* erased (count only) */
    PICK_WINDOW, /* in the log, in the window, open in neither head (count only) */
    PICK_SPACE,  /* free, or in the log with nothing live but the hot head's (count) */
    PICK_COUNT = 32, /* | any of the above: how many segments qualify instead of the winner */
    /* in the log (PICK_SEQ | cold), retired ones too (| PICK_BAD): the smallest seq >= arg,
     * or (| PICK_DOWN) the largest seq <= ~arg */
    PICK_SEQ = 16,
    PICK_BAD = 2,
    PICK_DOWN = 4
};

/* Both headers are little-endian 32-bit words: a record is 8 (type | flags << 8 | tag_len << 16,
 * key, size, offset, seq low, seq high, dcrc, hcrc), a segment header 10. In RAM they are held
 * as uint32_t arrays and converted in place (fsw_le), which keeps the packing portable. */
#define R_TYPE(r) ((r)[0] & 0xFF)
#define R_FLAGS(r) (((r)[0] >> 8) & 0xFF)
#define R_SEQ(r) ((r)[4] | (uint64_t)(r)[5] << 32)
#define R_IS_CONT(r) (((r)[0] & 0x2FF) == (F_CONT << 8 | T_DATA)) /* a continuation fragment */

/* Where one fragment of a chunk lies. */
struct fsw_frag {
    uint32_t addr; /* record header */
    uint32_t off;  /* of its payload in the chunk */
    uint32_t len;  /* payload bytes */
};

#define SEG_SIZE(fs) ((fs)->cfg->segment_size) /* == 1 << seg_shift (fsw_setup) */
#define PROG_SIZE(fs) ((fs)->cfg->prog_size) /* == 1 << prog_shift */
#define SEG_BASE(fs, s) ((uint32_t)(s) * SEG_SIZE(fs))
#define SEG_OF(fs, a) ((a) >> (fs)->seg_shift)
#define DATA_CAP(fs) (SEG_SIZE(fs) - HDR_SIZE)
#define SEGS(fs) ((fs)->cfg->segs)
/* The largest index a checkpoint segment holds (§7, §11). */
#define KEY_LIMIT(fs) ((SEG_SIZE(fs) / 2 - HDR_SIZE - REC_SIZE - TAG(fs)) / ENTRY_SIZE)

/* Flash words are little-endian. fsw_le converts n words in place, either way (on a big-endian
 * CPU a byte swap, its own inverse); on a little-endian CPU it is nothing at all. */
#if defined(__BYTE_ORDER__) && __ORDER_LITTLE_ENDIAN__ == __BYTE_ORDER__ && !defined(FSW_BYTEWISE)
#define fsw_le(w, n) ((void)(w), (void)(n))
#else
void fsw_le(uint32_t *w, unsigned n);
#endif

/* log.c: byte order, the program buffer and its two heads, records */
void fsw_seal(uint32_t *w, unsigned n);
int fsw_check(uint32_t *w, unsigned n);
int fsw_read(fsw_t *fs, uint32_t addr, void *buf, uint32_t n);
int fsw_blank(fsw_t *fs, uint32_t addr, uint32_t n);
int fsw_reload(fsw_t *fs);
int fsw_append(fsw_t *fs, const void *src, uint32_t n);
int fsw_log_sync(fsw_t *fs);
void fsw_unhold(fsw_t *fs);
int fsw_use(fsw_t *fs, int cold);
uint32_t fsw_room(const fsw_t *fs);
uint32_t fsw_head_room(const fsw_t *fs, int cold);
int fsw_rec_put(fsw_t *fs, uint32_t *r);
int fsw_rec_load(fsw_t *fs, uint32_t addr, uint32_t *r, uint32_t *plen);
int fsw_pipe(fsw_t *fs, uint32_t addr, uint32_t n, uint32_t *crc);

/* aead.c: declared above (compiled out with FSW_NO_AEAD) */

/* alloc.c: geometry, the segment table, erase and retirement, headers */
int fsw_setup(fsw_t *fs, const struct fsw_config *cfg);
void fsw_limits(fsw_t *fs);
uint32_t fsw_key_cap(const fsw_t *fs);
/* One scan for every choice: the winner of mode (NONE if none), or how many qualify. */
uint32_t fsw_scan(const fsw_t *fs, int mode);
#define PICK(fs, mode) fsw_scan(fs, mode)
#define COUNT(fs, mode) fsw_scan(fs, (mode) | PICK_COUNT)
uint32_t fsw_seq_find(const fsw_t *fs, int mode, uint32_t arg);
uint32_t fsw_chain(const fsw_t *fs, uint32_t s);
void fsw_retire(fsw_t *fs, uint32_t s);
int fsw_erase(fsw_t *fs, uint32_t s);
void fsw_hdr_make(const fsw_t *fs, uint32_t *h);
int fsw_hdr_read(fsw_t *fs, uint32_t s, uint32_t *h);

/* index.c: the sorted index, fragments, live bytes */
uint64_t fsw_idx_find(const fsw_t *fs, uint32_t key); /* position | found << 32 */
#define IDX_POS(v) ((uint32_t)(v))
#define IDX_FOUND(v) ((uint32_t)((v) >> 32))
int fsw_idx_set(fsw_t *fs, uint32_t key, uint32_t addr, uint32_t size);
uint32_t fsw_idx_drop(fsw_t *fs, uint32_t first, uint32_t last);
void fsw_frag_first(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f);
int fsw_frag_next(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f);
int fsw_live(fsw_t *fs, const struct fsw_index_entry *e, int sign, uint32_t in);

/* chunk.c: opening segments, reading and writing chunks, checkpoints */
int fsw_close_seg(fsw_t *fs);
int fsw_next(fsw_t *fs, uint32_t cont, int mode);
int fsw_chunk_read(fsw_t *fs, const struct fsw_index_entry *e, uint8_t *dst);
int fsw_chunk_write(fsw_t *fs, uint32_t type, uint32_t key, uint32_t size, const uint8_t *ram,
                    const struct fsw_index_entry *src);
int fsw_ckpt_write(fsw_t *fs);

/* gc.c: garbage collection, wear leveling, recovery from a failure, the idle step */
int fsw_make_room(fsw_t *fs, uint32_t need);
int fsw_static_wl(fsw_t *fs);
int fsw_recover(fsw_t *fs, uint32_t start);
/* store.c: one attempt at a writing operation and its recoveries (the API's run()) */
int fsw_attempt(fsw_t *fs, int op, uint32_t a, uint32_t b);
int fsw_idle_work(fsw_t *fs, unsigned max_erases);

#endif
