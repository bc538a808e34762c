/* Chunks: where their fragments lie (§4), reading and verifying them, appending them (from RAM
 * or, when garbage collection moves one, from flash), small records, checkpoints (§7). */
#include "fsw_priv.h"

/* A fragment's place follows from the chunk's first address and size alone: the first fills
 * its segment to the end when the chunk does not fit, each continuation starts at byte 40 of
 * the next segment of the same log. Nothing about fragments is kept in RAM. */
void fsw_frag_first(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f)
{
    uint32_t room = SEG_BASE(fs, SEG_OF(fs, e->addr) + 1) - e->addr - REC_SIZE;
    f->addr = e->addr;
    f->off = 0;
    f->len = e->size < room ? e->size : room;
}

/* 1: f is now the next fragment; 0: f was the last; -1: its segment is missing. */
int fsw_frag_next(const fsw_t *fs, const struct fsw_index_entry *e, struct fsw_frag *f)
{
    uint32_t s = fsw_chain(fs, SEG_OF(fs, f->addr)), cap = DATA_CAP(fs) - REC_SIZE;
    f->off += f->len;
    if (f->off >= e->size)
        return 0;
    if (s == NONE)
        return -1;
    f->addr = SEG_BASE(fs, s) + HDR_SIZE;
    f->len = e->size - f->off < cap ? e->size - f->off : cap;
    return 1;
}

/* Reads chunk e into dst, or only verifies it (dst NULL): every fragment must be an intact DATA
 * record of this key, size and offset, all with the first one's seq (returned in *seq). */
int fsw_chunk_read(fsw_t *fs, const struct fsw_index_entry *e, uint8_t *dst, uint64_t *seq)
{
    struct fsw_frag f;
    struct fsw_rec r;
    uint8_t h[REC_SIZE];
    uint32_t plen, crc;
    int k, err;
    if (e->addr == LOST)
        return FSW_ERR_CORRUPT;
    fsw_frag_first(fs, e, &f);
    do {
        crc = 0;
        err = fsw_read(fs, f.addr, h, REC_SIZE);
        if (!err && dst) {
            err = fsw_read(fs, f.addr + REC_SIZE, dst + f.off, f.len);
            crc = fsw_crc32(0, dst + f.off, f.len);
        } else if (!err) {
            err = fsw_crc_flash(fs, f.addr + REC_SIZE, f.len, &crc);
        }
        if (err)
            return err;
        if (!f.off)
            *seq = fsw_get32(h + 16) | (uint64_t)fsw_get32(h + 20) << 32;
        if (fsw_rec_decode(fs, h, f.addr, &r, &plen) || r.type != T_DATA || r.key != e->key ||
            r.size != e->size || r.off != f.off || plen != f.len || crc != r.dcrc ||
            r.seq != *seq)
            return FSW_ERR_CORRUPT;
    } while ((k = fsw_frag_next(fs, e, &f)) > 0);
    return k ? FSW_ERR_CORRUPT : 0;
}

/* Runs bytes [off, off + n) of a chunk through the CRC (crc != NULL) or into the log. The
 * chunk is in RAM, or on flash (src) when it is being moved. */
static int feed(fsw_t *fs, const uint8_t *ram, const struct fsw_index_entry *src, uint32_t off,
                uint32_t n, uint32_t *crc)
{
    uint8_t tmp[64];
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
        k = k < sizeof tmp ? k : sizeof tmp;
        err = fsw_read(fs, f.addr + REC_SIZE + (off - f.off), tmp, k);
        if (!err && crc)
            *crc = fsw_crc32(*crc, tmp, k);
        else if (!err)
            err = fsw_append(fs, tmp, k);
        off += k;
        n -= k;
    }
    return err;
}

/* Appends a DATA chunk on the active head, fragmented as needed (§4), and points the index at
 * it. Its seq is taken after any segment opened for its first byte (whose checkpoint must
 * precede it); a checkpoint due where a spill opens follows the continuation (§7). */
int fsw_chunk_write(fsw_t *fs, uint32_t key, uint32_t size, const uint8_t *ram,
                    const struct fsw_index_entry *src)
{
    struct fsw_rec r;
    uint32_t first = fs->wp, room, n;
    int ck = 0, err;
    if (fsw_room(fs) < MIN_ROOM) {
        err = fsw_next(fs, 0, 0);
        if (err)
            return err;
        first = fs->wp;
    }
    r.type = T_DATA;
    r.key = key;
    r.size = size;
    r.off = 0;
    r.seq = fs->next_rseq++;
    err = 0;
    while (!err && r.off < size) {
        room = fsw_room(fs);
        if (room < MIN_ROOM) {
            n = REC_SIZE + size - r.off;
            ck = err = fsw_next(fs, n <= DATA_CAP(fs) ? n : NONE, OPEN_SPILL);
            if (err < 0)
                return err;
            room = fsw_room(fs);
        }
        n = size - r.off < room - REC_SIZE ? size - r.off : room - REC_SIZE;
        r.flags = (uint8_t)((r.off + n < size ? F_MORE : 0) | (r.off ? F_CONT : 0));
        r.dcrc = 0;
        err = feed(fs, ram, src, r.off, n, &r.dcrc);
        if (!err)
            err = fsw_rec_append(fs, &r);
        if (!err)
            err = feed(fs, ram, src, r.off, n, NULL);
        r.off += n;
    }
    if (!err)
        err = fsw_idx_set(fs, key, first, size);
    return err || ck <= 0 ? err : fsw_ckpt_write(fs);
}

/* A record without payload (TRIM, TRIM_RANGE), or a CHECKPOINT's header. */
int fsw_rec_small(fsw_t *fs, uint8_t type, uint32_t key, uint32_t size)
{
    struct fsw_rec r;
    r.type = type;
    r.flags = 0;
    r.key = key;
    r.size = size;
    r.off = 0;
    r.seq = fs->next_rseq++;
    r.dcrc = 0;
    return fsw_rec_append(fs, &r);
}

/* §7: the whole index as one record on the hot head, then a sync; only then does the window
 * move. cold_from is the cold head's open segment (the checkpoint segment if none). */
int fsw_ckpt_write(fsw_t *fs)
{
    struct fsw_rec r;
    uint8_t b[ENTRY_SIZE];
    uint32_t i, own = SEGS(fs)[fs->open].seq;
    int pass, err;
    r.type = T_CKPT;
    r.flags = 0;
    r.key = fs->nkeys;
    r.size = ENTRY_SIZE * fs->nkeys;
    r.off = fs->park == NONE ? own : SEGS(fs)[fs->park].seq;
    r.seq = fs->next_rseq++;
    r.dcrc = 0;
    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < fs->nkeys; i++) {
            const struct fsw_index_entry *e = fs->cfg->index + i;
            fsw_put32(b, e->key);
            fsw_put32(b + 4, e->addr);
            fsw_put32(b + 8, e->size);
            if (!pass)
                r.dcrc = fsw_crc32(r.dcrc, b, ENTRY_SIZE);
            else if ((err = fsw_append(fs, b, ENTRY_SIZE)) != 0)
                return err;
        }
        if (!pass && (err = fsw_rec_append(fs, &r)) != 0)
            return err;
    }
    err = fsw_log_sync(fs);
    if (!err) {
        fs->replay_seq = own;
        fs->replay_cold = r.off;
    }
    return err;
}
