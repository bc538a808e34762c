/*
 * flashswap: a log-structured store that swaps neural-network activation chunks to raw flash
 * (SPI NOR, SPI NAND) on a microcontroller. The on-flash format and every algorithm are fixed
 * by firmware/SPEC.md; the Python model in flashswap/store/ writes the same bytes.
 *
 * C99, no malloc, no recursion, no global state: everything lives in a caller-allocated
 * fsw_t and the buffers named in struct fsw_config. The store is not thread-safe: guard one
 * fsw_t with one lock if several tasks use it.
 */
#ifndef FLASHSWAP_H
#define FLASHSWAP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The on-flash format this library reads and writes (SPEC.md; segment header byte 4). */
#define FSW_DISK_VERSION 2
/* The library's own version: the API of this header (minor: additions only). */
#define FSW_VERSION_MAJOR 1
#define FSW_VERSION_MINOR 0

/* Error codes: negative, errno-like (the values follow littlefs where one exists). */
enum fsw_error {
    FSW_OK = 0,
    FSW_ERR_IO = -5,       /* device error, or too many block failures in one operation */
    FSW_ERR_CORRUPT = -84, /* no store on the flash, or the chunk is damaged or lost, or the
                            * store was damaged where this key may have been written */
    FSW_ERR_NOSPC = -28,   /* no space left, or the index is full; from a write whose
                            * failed-program recovery found no good segment (worn out), the
                            * store was rebuilt from flash as a mount would: writes since
                            * the last sync may be lost (SPEC §12 step 3) */
    FSW_ERR_NOENT = -2,    /* no chunk under this key */
    FSW_ERR_TOOBIG = -27,  /* chunk larger than max_chunk, or than the caller's buffer */
    FSW_ERR_INVAL = -22,   /* bad argument or configuration, or store not mounted */
    FSW_ERR_KEY = -126,    /* mount: an encrypted store without a key or with another key, or a
                            * key for a plaintext store (SPEC §4a); nothing was written */
    FSW_ERR_WORN = -71     /* returned BY A PORT from prog/erase: this block failed, retire it */
};

/* One index entry (RAM): the chunk's key, the flash address of its first record, its size. */
struct fsw_index_entry {
    uint32_t key;
    uint32_t addr;
    uint32_t size;
};

/* One segment's RAM state (12 bytes). Opaque to the caller, who only provides the array. */
struct fsw_seg {
    uint32_t erase_count;
    uint32_t seq;       /* 0: not in the log */
    unsigned live : 28; /* bytes of live records in this segment */
    unsigned tear : 1;  /* mount: its header says its log's previous segment ends torn; then:
                         * held, its live bytes changed since the last sync (an empty one's
                         * were released: a recovery opens it last, SPEC §12) */
    unsigned state : 2; /* FREE_ERASED, FREE, IN_LOG, BAD */
    unsigned cold : 1;  /* belongs to the cold log */
};

struct fsw_config {
    void *context; /* for the callbacks */

    /* Device callbacks: return 0, FSW_ERR_WORN (this block failed: the store retires it) or
     * another negative code (aborts the operation). prog never crosses a segment; on a
     * PAGE_ONCE device it starts on a unit boundary and may end inside the unit (a sync): a
     * port for flash that writes whole words pads that unit with 0xFF (erased), as NAND does
     * with a partial page. */
    int (*read)(const struct fsw_config *c, uint32_t addr, void *buf, uint32_t size);
    int (*prog)(const struct fsw_config *c, uint32_t addr, const void *buf, uint32_t size);
    int (*erase)(const struct fsw_config *c, uint32_t addr, uint32_t size);
    int (*sync)(const struct fsw_config *c); /* optional: flush the device's write cache */
    /* Optional, NAND: spare bytes of the page at addr (factory-bad marker in byte 0). */
    int (*read_spare)(const struct fsw_config *c, uint32_t addr, void *buf, uint32_t size);

    /* Geometry (powers of two; SPEC.md §2). */
    uint32_t flash_size;
    uint32_t segment_size; /* erase unit used by the store: 512 B .. 16 MiB */
    uint32_t prog_size;    /* program unit: NOR page (256), NAND page (2048), MCU flash word */
    uint8_t page_once;     /* NAND, MCU flash: each unit programmed once (NOP 1) and in order */

    /* Format options; zero means the default (as the Python model chooses them). Mount reads
     * them from flash instead. */
    uint8_t ckpt_interval; /* default max(1, min(16, segment_count / 16)) */
    uint8_t reserve;       /* default: what deleting every chunk and one recovery need, §10 */
    uint16_t wl_threshold; /* default 12 */
    uint16_t max_keys;     /* capacity of `index`; default FSW_DEFAULT_MAX_KEYS */

    /* Caller buffers. */
    void *prog_buffer;             /* prog_size bytes */
    struct fsw_index_entry *index; /* max_keys entries */
    struct fsw_seg *segs;          /* flash_size / segment_size entries */
    /* Optional, prog_size bytes: keeps the unprogrammed tail of the program buffer readable
     * while the chunks of a block that failed a program are moved (otherwise they are lost). */
    void *rescue_buffer;

#ifdef FSW_TRACE
    /* Optional, in a build with FSW_TRACE defined (a trace-capture build; production firmware
     * leaves it out and saves its 144 B): called after each successful API call with one
     * 24-byte trace record (traces/README.md): op u8, flags u8, reserved u16, key u32, length
     * u32, time_us u32, value u64, little-endian. time_us is 0 (the library has no clock). */
    void (*trace)(void *ctx, const uint8_t rec[24]);
    void *trace_ctx;
#endif

#ifndef FSW_NO_AEAD
    /* Optional authenticated encryption (SPEC.md §4a, AES-128-GCM): with both callbacks set,
     * format makes an encrypted store and mount requires one sealed under the same key. The
     * library has no cryptographic code: a port plugs in hardware AES, PSA Crypto or Mbed TLS
     * (port/aead_mbedtls.c). nonce: 12 bytes; ad: ad_len bytes; in and out may be the same.
     * seal: out = ciphertext of the len bytes at in, tag = its 16-byte tag; returns 0.
     * open: out = the plaintext and 0 if tag verifies, else nonzero (out undefined). */
    int (*aead_seal)(void *ctx, const uint8_t *nonce, const uint8_t *ad, uint32_t ad_len,
                     const uint8_t *in, uint8_t *out, uint32_t len, uint8_t *tag);
    int (*aead_open)(void *ctx, const uint8_t *nonce, const uint8_t *ad, uint32_t ad_len,
                     const uint8_t *in, uint8_t *out, uint32_t len, const uint8_t *tag);
    void *aead_ctx;
    /* A chunk is sealed and opened whole, so an encrypted store needs a buffer as large as
     * its largest stored chunk (max_chunk of SPEC §11, the tag included) and 16 bytes more
     * (a checkpoint's tag while a moved chunk lies open). */
    void *aead_buffer;
    uint32_t aead_buffer_size;
#endif
};

/* The largest index a segment can checkpoint (SPEC.md §7), capped at 1024 as the format
 * default. */
#define FSW_DEFAULT_MAX_KEYS(segment_size)                                                   \
    ((((segment_size) / 2 - 72) / 12) > 1024 ? 1024u : (unsigned)(((segment_size) / 2 - 72) / 12))

/* Store context: allocate it anywhere, pass it to every call. Fields are private. */
typedef struct fsw {
    const struct fsw_config *cfg;
    uint32_t nseg;
    uint32_t max_chunk;
    uint32_t open;       /* active head's open segment, or 0xFFFFFFFF */
    uint32_t wp;         /* active head's write position (flash address) */
    uint32_t programmed; /* bytes of the unit at wp already on flash */
    uint32_t park;       /* the other head's open segment, or 0xFFFFFFFF */
    uint32_t park_wp;
    uint32_t next_seq;
    uint32_t replay_seq;
    uint32_t replay_cold;
    uint32_t segs_since_ckpt;
    uint32_t retired;
    uint32_t rescue_unit; /* rescue_buffer mirrors [rescue_unit, rescue_end) */
    uint32_t rescue_end;
    uint64_t next_rseq;
    const void *data; /* the payload of the put being run (any pointer for a trim) */
    uint16_t nkeys; /* index entries, lost chunks included */
    uint16_t max_keys;
    uint16_t wl_threshold;
    uint8_t seg_shift;
    uint8_t prog_shift;
    uint8_t page_once;
    uint8_t ckpt_interval;
    uint8_t reserve;
    uint8_t mounted;
    uint8_t cold; /* the active head is the cold one */
    uint8_t wl_quiet; /* erase counts within wl_threshold since the last erase/retirement */
    uint8_t damaged;  /* keys absent from the index read as corrupt (SPEC §9) */
    uint8_t torn;     /* bit per log (hot 0, cold 1): its next segment carries HF_TEAR; bit 2
                       * + log: its head holds records a sync must mark (SPEC §6); bit 4: a
                       * recovery (§12) runs until its checkpoint; bit 5: not lean (§10) */
    uint8_t done;     /* the put being run has its chunk indexed (only a checkpoint follows) */
    uint16_t epoch;   /* the store's identity (SPEC §3) */
#ifndef FSW_NO_AEAD
    uint8_t tag;      /* tag_len of the store's records: 16 encrypted, 0 plaintext */
    uint32_t crypt;   /* header bytes 32..35: suite and key check value (0xFFFFFFFF: none) */
    uint64_t limit;   /* sealed records take seqs below it: a durable reservation (§4a) */
#endif
} fsw_t;

struct fsw_stat {
    uint32_t free_bytes;  /* hot head's room + data capacity of the free segments */
    uint32_t live_bytes;  /* payload bytes of the live chunks */
    uint32_t live_chunks; /* index entries (lost chunks included) */
    uint32_t segments;
    uint32_t free_segments; /* erased, free, reclaimable, and dead ones the window pins */
    uint32_t bad_segments;  /* factory-bad and retired */
    uint32_t retired;       /* segments retired since format or mount */
    uint32_t erase_min;     /* erase counts over the good segments */
    uint32_t erase_max;
    uint32_t max_chunk;
};

/* Erase the flash and create an empty store; the store is mounted afterwards. */
int fsw_format(fsw_t *fs, const struct fsw_config *cfg);
/* Attach to the store on flash (writes nothing). FSW_ERR_CORRUPT if there is none. */
int fsw_mount(fsw_t *fs, const struct fsw_config *cfg);
/* Sync and detach. */
int fsw_unmount(fsw_t *fs);

/* Store 1..max_chunk bytes under key (0..0xFFFFFFFE), replacing what the key held. */
int fsw_put(fsw_t *fs, uint32_t key, const void *data, uint32_t size);
/* Read the chunk into buf; *size_out (optional) gets its size, also when buf is too small
 * (FSW_ERR_TOOBIG: then no flash is read). FSW_ERR_NOENT if absent, FSW_ERR_CORRUPT if
 * damaged or lost. */
int fsw_get(fsw_t *fs, uint32_t key, void *buf, uint32_t bufsize, uint32_t *size_out);
/* Size of the chunk under key (> 0), or a negative error. Reads no flash. */
static inline int32_t fsw_size(fsw_t *fs, uint32_t key)
{
    uint32_t n;
    int err = fsw_get(fs, key, 0, 0, &n);
    return err == FSW_ERR_TOOBIG ? (int32_t)n : err;
}
/* Drop the chunk under key: 1 if dropped, 0 if there was none (nothing written). */
int fsw_trim(fsw_t *fs, uint32_t key);
/* Drop every chunk with first <= key <= last in one record: the number dropped (0: nothing
 * written). */
int32_t fsw_trim_range(fsw_t *fs, uint32_t first, uint32_t last);
/* Make everything written so far durable. */
int fsw_sync(fsw_t *fs);
/* Store statistics (FSW_ERR_INVAL unless mounted). Read-only; in src/introspect.c with the
 * introspection API, so a firmware that does not call it does not link it. */
int fsw_stat(fsw_t *fs, struct fsw_stat *st);
/* Bounded background work: one static wear-leveling move, then pre-erase segments, at most
 * max_erases steps in all. Returns the steps done. */
int fsw_idle(fsw_t *fs, unsigned max_erases);

/* --- Introspection (src/introspect.c) -------------------------------------------------------
 * Read-only views of the RAM state, for tests, fuzzing, simulators and diagnostics. They live in
 * their own object file: a firmware that does not call them does not link them. They read the
 * context as format or mount left it (also after fsw_unmount), and write no flash. */

/* Where a segment is in the store's life (struct fsw_seg_info.state). */
enum fsw_seg_state {
    FSW_SEG_ERASED = 0, /* free and erased */
    FSW_SEG_FREE = 1,   /* free, to be erased before use */
    FSW_SEG_LOG = 2,    /* in the hot or the cold log */
    FSW_SEG_BAD = 3     /* factory-bad, retired after a failure, or holding another store */
};

struct fsw_seg_info {
    uint32_t erase_count; /* erases (mount reads it from the header; unknown: the largest known) */
    uint32_t seq;         /* its place in its log (0: never in one; a retired one keeps its seq) */
    uint32_t live_bytes;  /* bytes of the live chunks' records in it, headers included */
    uint8_t state;        /* enum fsw_seg_state */
    uint8_t cold;         /* 1: the cold log's (chunks moved by collection and wear leveling) */
    uint8_t open;         /* 1: a head appends to it */
    uint8_t window;       /* 1: in the replay window (mount replays it; collection leaves it) */
};

struct fsw_chunk_info {
    uint32_t key;
    uint32_t size; /* bytes fsw_get returns; 0 for a lost chunk */
    uint32_t addr; /* flash address of its first record; 0xFFFFFFFF for a lost chunk */
    uint32_t lost; /* 1: lost to a block failure or damage (SPEC §9, §12): reads FSW_ERR_CORRUPT */
};

struct fsw_info {
    uint64_t log_bytes;       /* bytes of log opened since format, less the open segments'
                               * unused tails: grows at the erase rate in steady state */
    uint32_t max_keys;        /* format options (SPEC §3), as format chose or mount read them */
    uint32_t ckpt_interval;
    uint32_t reserve;
    uint32_t wl_threshold;
    uint32_t max_chunk;       /* the largest chunk fsw_put takes (as fsw_stat) */
    uint32_t tag_len;         /* 16: an encrypted store (SPEC §4a); 0: plaintext */
    uint32_t epoch;           /* the store's identity: earlier formats of this flash (§3) */
    uint32_t entries;         /* index entries, lost chunks included */
    uint32_t retired;         /* segments retired since format or mount */
    uint32_t window_segments; /* segments with window set (fsw_seg_info) */
    uint32_t hot_segment;     /* the hot head's open segment, or 0xFFFFFFFF */
    uint32_t cold_segment;    /* the cold head's, or 0xFFFFFFFF */
    uint8_t mounted;          /* 1 between a successful format or mount and fsw_unmount */
    uint8_t damaged;          /* 1: keys absent from the index read as corrupt (SPEC §9) */
};

/* The store's options and state. 0. */
int fsw_info(const fsw_t *fs, struct fsw_info *out);
/* The RAM state of segment seg (0 .. flash_size / segment_size - 1): 0, or FSW_ERR_INVAL. */
int fsw_seg_info(const fsw_t *fs, uint32_t seg, struct fsw_seg_info *out);
/* Calls cb for every index entry (lost chunks included) in ascending key order; a nonzero
 * return of cb stops the walk and is returned, else 0. cb must not change the store (no put,
 * trim, sync, idle, mount or unmount); it may fsw_get. */
int fsw_traverse(const fsw_t *fs, int (*cb)(void *ctx, const struct fsw_chunk_info *chunk),
                 void *ctx);

/* CRC-32 as zlib computes it: fsw_crc32(0, "123456789", 9) == 0xCBF43926. */
uint32_t fsw_crc32(uint32_t crc, const void *buf, uint32_t size);

#ifdef __cplusplus
}
#endif

#endif /* FLASHSWAP_H */
