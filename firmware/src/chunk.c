/* Writing the log: opening a segment for a head (§8), chunks (where their fragments lie is
 * index.c's), reading and verifying them, appending them (from RAM or, when one is moved, from
 * flash), records without payload, checkpoints (§7). */
#include "fsw_priv.h"

/* §8 steps 1-2: a segment for the active head, erased and verified, in *seg; those that fail
 * are retired. No segment left: FSW_ERR_NOSPC, and the caller keeps its heads as they were. */
static int acquire(fsw_t *fs, uint32_t *seg)
{
    uint32_t s;
    int err;
    do {
        s = PICK(fs, fs->cold); /* PICK_HOT or PICK_COLD */
        if (s == NONE)
            return FSW_ERR_NOSPC;
        /* A segment believed erased is blank-checked first: mount judged it by its header
         * alone, and a torn erase can leave an erased header over a programmed body (§8). */
        err = SEGS(fs)[s].state == ST_ERASED ? fsw_blank(fs, SEG_BASE(fs, s), SEG_SIZE(fs)) : 0;
        if (err >= 0)
            err = err == 1 ? 0 : fsw_erase(fs, s);
        if (err < 0)
            return err;
    } while (err);
    *seg = s;
    return 0;
}

/* §8 step 3: opens segment s for the active head and puts its header in the buffer. A hot
 * segment is a checkpoint segment when one is due (or forced) and fits after a continuation
 * of cont bytes (at most 32 + 2^24: no overflow). Returns 1 for a checkpoint segment. */
static int open_seg(fsw_t *fs, uint32_t s, uint32_t cont, int force)
{
    struct fsw_seg *g = SEGS(fs) + s;
    uint32_t h[10];
    int err, ck;
    g->state = ST_LOG;
    g->seq = fs->next_seq++;
    g->live = 0;
    g->cold = fs->cold;
    /* no checkpoint while the chunks of a failed segment move: bytes of some never reached
     * flash (the rescue copy holds them) */
    ck = !fs->cold && (force || fs->segs_since_ckpt >= fs->ckpt_interval) &&
         HDR_SIZE + cont + REC_SIZE + ENTRY_SIZE * (fs->nkeys + 1u) +
                 (TAG(fs) ? TAG(fs) + REC_SIZE + (fs->page_once ? PROG_SIZE(fs) : 0) : 0) <=
             SEG_SIZE(fs) && /* tag, reservation and its sync (§4a) */
         !fs->rescue_end;
    fs->segs_since_ckpt = ck ? 1 : fs->segs_since_ckpt + 1;
    fsw_hdr_make(fs, h);
    fs->torn &= (uint8_t)~(5u << fs->cold); /* and unmarked: its header follows the records */
    h[2] = g->erase_count;
    h[3] = g->seq;
    h[4] = ck ? g->seq : fs->replay_seq;
    fsw_seal(h, 10);
    fs->open = s;
    fs->wp = SEG_BASE(fs, s);
    fs->programmed = 0;
    err = fsw_append(fs, h, HDR_SIZE);
    return err ? err : ck;
}

/* Closing a head's segment (§6): a sync, then forget it. */
int fsw_close_seg(fsw_t *fs)
{
    int err = fsw_log_sync(fs);
    if (!err) /* a failed sync keeps the segment open: recovery retires it (§12) */
        fs->open = NONE;
    return err;
}

/* The active head needs a segment: close the current one (unless a spill filled it) and open
 * the next; a checkpoint due there is written now, or, for a spill, left to the caller (1). A
 * forced checkpoint shrinks the window to the heads (§10): it switches to the hot head first,
 * and closes the cold head if nothing in it lives (parked, it is synced: closing is
 * forgetting it). The heads change only once the new segment is erased: with none left they
 * keep their room (for trims, §10). */
int fsw_next(fsw_t *fs, uint32_t cont, int mode)
{
    uint32_t s, o;
    int err = mode == OPEN_FORCE ? fsw_use(fs, 0) : 0;
    o = fs->open;
    if (!err && mode != OPEN_SPILL)
        err = fsw_close_seg(fs); /* before any erase (§8); closed, a blank check reloads nothing */
    if (!err)
        err = acquire(fs, &s);
    if (err == FSW_ERR_NOSPC) {
        fs->open = o; /* no segment left: the heads keep their room, the buffer its unit */
        err = fsw_reload(fs);
        return err ? err : FSW_ERR_NOSPC;
    }
    if (err)
        return err;
    if (mode == OPEN_FORCE && fs->park != NONE && !SEGS(fs)[fs->park].live)
        fs->park = NONE;
    err = open_seg(fs, s, cont, mode == OPEN_FORCE);
    return err <= 0 || mode == OPEN_SPILL ? err : fsw_ckpt_write(fs);
}

/* Reads chunk e into dst, or only verifies it (dst NULL): every fragment must be an intact DATA
 * record of this key and size, at its offset, all with the first one's seq. In an encrypted
 * store the chunk is read into the AEAD buffer and opened into dst (into the buffer itself when
 * dst is NULL: relocation seals it again from there); a tag that fails is FSW_FORGED. */
int fsw_chunk_read(fsw_t *fs, const struct fsw_index_entry *e, uint8_t *dst)
{
    struct fsw_frag f;
    uint32_t r[8], plen, crc;
    uint64_t seq = 0;
    int k;
#ifndef FSW_NO_AEAD
    uint32_t h0[6];
    uint8_t *out = dst;
    if (fs->tag)
        dst = fs->cfg->aead_buffer;
#endif
    /* a LOST entry (never passed here: fsw_get answers it, relocation and mount never see
     * one) would read as FSW_ERR_CORRUPT anyway: fsw_read refuses its address */
    fsw_frag_first(fs, e, &f);
    do {
        crc = 0;
        k = fsw_rec_load(fs, f.addr, r, &plen);
        if (k == 1 && dst) {
            k = fsw_read(fs, f.addr + REC_SIZE, dst + f.off, f.len);
            crc = fsw_crc32(0, dst + f.off, f.len);
        } else if (k == 1) {
            k = fsw_pipe(fs, f.addr + REC_SIZE, f.len, &crc);
        }
        if (k < 0)
            return k;
        if (!f.off)
            seq = R_SEQ(r);
#ifndef FSW_NO_AEAD
        if (!f.off)
            memcpy(h0, r, sizeof h0);
#endif
        if (k || R_TYPE(r) != T_DATA || r[1] != e->key || r[2] != e->size || r[3] != f.off ||
            plen != f.len || crc != r[6] || R_SEQ(r) != seq)
            return FSW_ERR_CORRUPT;
    } while ((k = fsw_frag_next(fs, e, &f)) > 0);
#ifndef FSW_NO_AEAD
    if (!k && fs->tag)
        return fsw_aead(fs, 0, h0, e->addr, dst, out ? out : dst, e->size - FSW_TAG,
                        dst + e->size - FSW_TAG);
#endif
    return k ? FSW_ERR_CORRUPT : 0;
}

/* Runs bytes [off, off + n) of a chunk through the CRC (crc != NULL) or into the log. The
 * chunk is in RAM, or on flash (src) when it is being moved. */
static int feed(fsw_t *fs, const uint8_t *ram, const struct fsw_index_entry *src, uint32_t off,
                uint32_t n, uint32_t *crc)
{
    struct fsw_frag f;
    int err = 0;
    if (ram) {
        if (!crc)
            return fsw_append(fs, ram + off, n);
        *crc = fsw_crc32(*crc, ram + off, n);
        return 0;
    }
    fsw_frag_first(fs, src, &f);
    while (n && !err) {
        uint32_t k;
        while (off >= f.off + f.len)
            if (fsw_frag_next(fs, src, &f) <= 0)
                return FSW_ERR_CORRUPT;
        k = f.off + f.len - off;
        k = k < n ? k : n;
        err = fsw_pipe(fs, f.addr + REC_SIZE + (off - f.off), k, crc);
        off += k;
        n -= k;
    }
    return err;
}

static void rec_init(uint32_t *r, uint32_t type, uint32_t key, uint32_t size, uint64_t seq)
{
    r[0] = type;
    r[1] = key;
    r[2] = size;
    r[3] = 0;
    r[4] = (uint32_t)seq;
    r[5] = (uint32_t)(seq >> 32);
    r[6] = 0;
}

/* Appends a record on the active head: a DATA chunk (type T_DATA, size bytes from ram or, when
 * it is moved, from chunk src on flash), fragmented as needed (§4), and points the index at it;
 * or a TRIM_RANGE record (size = last key) or a SYNC record (key and size 0), without payload. Its seq is taken
 * after any segment opened for its first byte (whose checkpoint must precede it); a checkpoint
 * due where a spill opens follows the continuation (§7). */
int fsw_chunk_write(fsw_t *fs, uint32_t type, uint32_t key, uint32_t size, const uint8_t *ram,
                    const struct fsw_index_entry *src)
{
    uint32_t r[8], first, room, n, off = 0, len = type == T_DATA ? size : 0;
    uint64_t seq;
    int ck = 0, err;
#ifdef FSW_NO_AEAD
#define OWN ram
    /* a TRIM or TRIM_RANGE that needs a segment opens a checkpoint segment (OPEN_FORCE, §10);
     * a SYNC record the next segment (§6) */
    err = fsw_room(fs) < MIN_ROOM ? fsw_next(fs, 0, type == T_TRIM_RANGE) : 0;
#else
    /* an encrypted trim is never split: 48 bytes; a reservation (§4a) may use up the room */
    int i, own = ram != 0;
    uint8_t *b = fs->cfg->aead_buffer;
#define OWN own
    for (i = err = 0; i < 2 && !err; i++) {
        err = fsw_room(fs) < (type == T_DATA ? MIN_ROOM : REC_SIZE + fs->tag + !fs->tag)
                  ? fsw_next(fs, 0, type == T_TRIM_RANGE)
                  : 0;
        err = err ? err : fsw_reserve(fs, 0, r);
        if (err <= 0)
            break;
        err = 0;
    }
#endif
    first = fs->wp;
    seq = fs->next_rseq;
    if (err)
        return err;
    fs->next_rseq++;
#ifndef FSW_NO_AEAD
    if (fs->tag && type != T_SYNC) { /* the chunk sealed whole into the buffer, its tag after it
                                      * (§4a); a SYNC record is not sealed */
        if (type == T_DATA && !ram)
            size = src->size - FSW_TAG; /* moved: fsw_chunk_read left it open in the buffer */
        rec_init(r, type | F_ENC << 8 | FSW_TAG << 16, key, type == T_DATA ? size + FSW_TAG : size,
                 seq);
        err = fsw_aead(fs, 1, r, first, ram ? ram : b, b, type == T_DATA ? size : 0,
                       b + (type == T_DATA ? size : 0));
        if (err)
            return err;
        ram = b;
        src = 0;
        len = type == T_DATA ? (size += FSW_TAG) : FSW_TAG;
    }
#endif
    do {
        /* (once at most: a segment opened for a spill has room) */
        while ((room = fsw_room(fs)) < MIN_ROOM) {
            ck = err = fsw_next(fs, REC_SIZE + len - off, OPEN_SPILL);
            if (err < 0)
                return err;
        }
        n = len - off < room - REC_SIZE ? len - off : room - REC_SIZE;
        rec_init(r, type | (uint32_t)((off + n < len ? F_MORE : 0) | (off ? F_CONT : 0)) << 8 |
                        TAG(fs) << 16 | (TAG(fs) ? F_ENC << 8 : 0),
                 key, size, seq);
        r[3] = off;
        err = feed(fs, ram, src, off, n, r + 6);
        if (!err)
            err = fsw_rec_put(fs, r);
        if (!err)
            err = feed(fs, ram, src, off, n, NULL);
        off += n;
    } while (!err && off < len);
    if (err || type != T_DATA)
        return err;
    err = fsw_idx_set(fs, key, first, size);
    if (OWN) /* a put's own chunk, not a move: only the checkpoint is left */
        fs->done = 1;
#undef OWN
    return err || ck <= 0 ? err : fsw_ckpt_write(fs);
}

/* §7: the whole index as one record on the hot head, then a sync; only then does the window
 * move. cold_from (offset field) is the cold head's open segment, or this segment if none. */
typedef char fsw_entry_is_12_bytes[sizeof(struct fsw_index_entry) == ENTRY_SIZE ? 1 : -1];

int fsw_ckpt_write(fsw_t *fs)
{
    uint32_t r[8], own = SEGS(fs)[fs->open].seq, n = ENTRY_SIZE * fs->nkeys;
    uint32_t from = fs->park == NONE ? own : SEGS(fs)[fs->park].seq;
    uint32_t *x = (uint32_t *)fs->cfg->index; /* the payload: the index in flash byte order */
    int err;
#ifndef FSW_NO_AEAD
    /* the tag goes after the largest chunk in the AEAD buffer: a chunk being moved may lie
     * open there (relocation opens a checkpoint segment) */
    uint8_t *tag = (uint8_t *)fs->cfg->aead_buffer + fs->max_chunk;
    uint32_t at;
    err = fsw_reserve(fs, 1, r); /* each checkpoint follows a reservation (§4a) */
    if (err < 0)
        return err;
    err = 0;
    at = fs->wp;
#endif
    rec_init(r, T_CKPT | (uint32_t)fs->damaged << 11 | TAG(fs) << 16 | (TAG(fs) ? F_ENC << 8 : 0),
             fs->nkeys, n + TAG(fs), fs->next_rseq++);
    r[3] = from;
    fsw_le(x, n / 4);
#ifndef FSW_NO_AEAD
    /* sealed in place, and opened again once on flash: the index stays the caller's RAM */
    if (fs->tag)
        err = fsw_aead(fs, 1, r, at, (uint8_t *)x, (uint8_t *)x, n, tag);
#endif
    r[6] = fsw_crc32(0, x, n);
#ifdef FSW_NO_AEAD
    err = fsw_rec_put(fs, r);
#else
    if (fs->tag)
        r[6] = fsw_crc32(r[6], tag, FSW_TAG);
    if (!err)
        err = fsw_rec_put(fs, r);
#endif
    if (!err)
        err = fsw_append(fs, x, n);
#ifndef FSW_NO_AEAD
    if (fs->tag) {
        if (!err)
            err = fsw_append(fs, tag, FSW_TAG);
        fsw_le(r, 8); /* back to host order: the same nonce and associated data */
        if (fsw_aead(fs, 0, r, at, (uint8_t *)x, (uint8_t *)x, n, tag))
            err = err ? err : FSW_ERR_IO;
    }
#endif
    fsw_le(x, n / 4);
    if (!err) {
        fs->torn &= (uint8_t)~16u; /* a checkpoint ends a recovery: its sync releases holds */
        err = fsw_log_sync(fs);
    }
    if (!err) {
        fs->replay_seq = own;
        fs->replay_cold = from;
    }
    return err;
}
