/* The API: argument checks, format (§13), the retry loop that survives a block failing a
 * program (§12) and the optional trace hook. */
#include "fsw_priv.h"

int fsw_format(fsw_t *fs, const struct fsw_config *cfg)
{
    uint32_t h[10], s, n, ep = 0, t;
    int err = fsw_setup(fs, cfg);
    if (err)
        return err;
    fs->max_keys = (uint16_t)fsw_key_cap(fs);
    n = fs->nseg / 16;
    fs->ckpt_interval = cfg->ckpt_interval ? cfg->ckpt_interval : (uint8_t)(n < 1 ? 1 : n > 16 ? 16 : n);
    /* default reserve: the trim records that delete every chunk, each segment opened for them
     * a checkpoint segment (which max_keys leaves at least half empty), plus one, plus one for
     * the checkpoint that ends a recovery (§10, §12), at most what the device leaves (below 3,
     * the checks refuse it) */
    /* (encrypted: records carry a tag, and two reservations per segment are counted, each
     * with the rest of its program unit, §4a) */
    t = (SEG_SIZE(fs) - HDR_SIZE - REC_SIZE - TAG(fs) - 1 - ENTRY_SIZE * fs->max_keys -
         (TAG(fs) ? 2 * (REC_SIZE + PROG_SIZE(fs)) : 0)) /
        (REC_SIZE + TAG(fs));
    t = 2 + (fs->max_keys + t - 1) / t;
    n = fs->nseg - fs->ckpt_interval - 3;
    t = t < n ? t : n;
    /* and at least 4 where that leaves a segment to spare: a recovery that a power cut
     * interrupts, and a grown bad block a mount takes for free (§10) */
    fs->reserve = cfg->reserve ? cfg->reserve : (uint8_t)(t < 4 && n > 4 ? 4 : t);
    fs->wl_threshold = cfg->wl_threshold ? cfg->wl_threshold : 12;
    if (fs->max_keys > KEY_LIMIT(fs) || fs->reserve < 3 ||
        fs->reserve + fs->ckpt_interval + 3u > fs->nseg)
        return FSW_ERR_INVAL;
    fsw_limits(fs);
#ifndef FSW_NO_AEAD
    if (fs->tag && fs->cfg->aead_buffer_size < fs->max_chunk + FSW_TAG)
        return FSW_ERR_INVAL;
#endif
    /* a valid header of any store keeps its erase count and raises the new store's epoch */
    for (s = 0; s < fs->nseg; s++) {
        err = fsw_hdr_read(fs, s, h); /* sets the erase count of a valid header */
        if (err > 0 || (!err && cfg->segs[s].state != ST_BAD)) {
            if (err && h[7] >> 16 >= ep)
                ep = (h[7] >> 16) + 1;
            err = fsw_erase(fs, s);
        }
        if (err < 0)
            return err;
    }
    if (ep >> 16)
        return FSW_ERR_INVAL; /* 65,535 formats: the flash needs erasing whole first */
    fs->epoch = (uint16_t)ep;
    fs->segs_since_ckpt = fs->ckpt_interval;
    fs->next_seq = 1;
    fs->next_rseq = (uint64_t)ep << 48 | 1; /* above every earlier store's (nonces, §4) */
    fs->mounted = 1;
    err = fsw_next(fs, 0, OPEN_FORCE);
    fs->mounted = !err;
    return err;
}

/* §6 "Marking a sync": the active head, if it holds a put's chunk or a trim that nothing
 * follows yet, gets a SYNC record after it (placed as a trim is, but a segment it needs is
 * opened as any other: a checkpoint segment only if one is due; with none free, nothing is
 * written); then a sync. */
static int mark(fsw_t *fs)
{
    uint32_t m = 4u << fs->cold; /* fs->torn bit 2 + log: unmarked */
    int err = 0;
    if (fs->torn & m) {
        fs->torn &= (uint8_t)~m;
        if (fsw_room(fs) >= REC_SIZE + TAG(fs) + !TAG(fs) || COUNT(fs, PICK_HOT))
            err = fsw_chunk_write(fs, T_SYNC, 0, 0, (const uint8_t *)fs, NULL);
    }
    /* every free segment failed its erase (worn out): the records stay unmarked */
    return err && err != FSW_ERR_NOSPC ? err : fsw_log_sync(fs);
}

/* The API's sync: the active head marked, then the parked one (switched to). Not inlined into
 * the retry loop, whose stack frame would grow by the record. */
static int sync_marked(fsw_t *fs)
{
    int err = mark(fs);
    if (!err && fs->torn & 12) {
        err = fsw_use(fs, !fs->cold);
        if (!err)
            err = mark(fs);
    }
    return err;
}

/* One attempt at a writing operation: put (a key, b size, data its payload), trim (a == b)
 * or trim_range [a, b], sync, idle (a steps). */
static int once(fsw_t *fs, int op, uint32_t a, uint32_t b, const uint8_t *data)
{
    int err;
    if (op == OP_SYNC)
        return sync_marked(fs);
    if (op == OP_IDLE)
        return fsw_idle_work(fs, a);
    /* a trim never collects garbage: a segment it needs is one of those kept (§10); with none
     * free (a recovery near full took them, §12), the cold head's room if it has some */
    err = op == OP_PUT ? fsw_static_wl(fs) : 0;
    if (err >= 0 && op == OP_PUT)
        err = fsw_make_room(fs, b + TAG(fs) + REC_SIZE * (2 + (b + TAG(fs)) / DATA_CAP(fs)));
    if (!err)
        err = fsw_use(fs, op != OP_PUT && PICK(fs, PICK_HOT) == NONE &&
                              fsw_head_room(fs, 1) >= MIN_ROOM);
    if (!err) /* a trim is a TRIM_RANGE record [a, b], without payload (data: any pointer) */
        err = fsw_chunk_write(fs, op == OP_PUT ? T_DATA : T_TRIM_RANGE, a, b, data, NULL);
    if (!err && op != OP_PUT)
        fsw_idx_drop(fs, a, b);
    if (!err) /* the next sync marks it (§6); a moved chunk needs no mark */
        fs->torn |= (uint8_t)(4u << fs->cold);
    return err;
}

#ifdef FSW_TRACE
/* The trace record (traces/README.md) of a successful operation; op is the trace's op code
 * (fsw_priv.h OP_*), b the length of a WRITE or READ, the last key of an INVALIDATE. */
static void trace(fsw_t *fs, int op, uint32_t key, uint32_t b)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t r[6];
    if (!c->trace || op == OP_IDLE)
        return;
    r[0] = (uint32_t)op;
    r[1] = key;
    r[2] = op < OP_TRIM ? b : 0; /* WRITE and READ: the length (sync: b is 0) */
    r[3] = r[5] = 0;
    r[4] = op == OP_RANGE ? b : 0;
    fsw_le(r, 6);
    c->trace(c->trace_ctx, (const uint8_t *)r);
}
#else
#define trace(fs, op, key, b) ((void)0) /* no trace hook in this build */
#endif

/* Runs a writing operation; when a block fails a program, retires it, moves its chunks and runs
 * the operation again (bounded as in the Python model). Traces it when it succeeds. */
int fsw_attempt(fsw_t *fs, int op, uint32_t a, uint32_t b)
{
    uint32_t i, j, start = fs->next_seq;
    int err = FSW_ERR_INVAL;
    for (i = 0; fs->mounted && i < fs->nseg; i++) {
        fs->done = 0;
        err = once(fs, op, a, b, fs->data);
        if (err != FSW_ERR_WORN)
            break;
        /* a failure during a recovery (j > 0) is never fresh: that recovery's work (its
         * moves, its checkpoint) is not done (§12 step 1) */
        for (j = 0; j < fs->nseg && (err = fsw_recover(fs, j ? NONE : start)) == FSW_ERR_WORN;
             j++)
            ;
        /* a recovery that failed otherwise ends it (< 0: not traced); a put whose chunk was
         * indexed when the checkpoint after its spill failed is done: the recovery's
         * checkpoint stands for that one */
        if (err != FSW_ERR_WORN && (err || fs->done))
            break;
        err = FSW_ERR_IO;
    }
    if (err >= 0)
        trace(fs, op, a, b);
    return err;
}

/* A recovery that found no segment (§12 step 3; its bit 4 of torn stays set): the store
 * becomes what a mount finds (a power cut now), not entries on copies whose bytes never
 * reached flash. Apart from fsw_attempt() (extern: not inlined), whose frame would sit
 * under the mount's. A put's payload travels in fs->data: with four arguments, the calls
 * of sync and idle are tail calls. */
static int run(fsw_t *fs, int op, uint32_t a, uint32_t b)
{
    int err = fsw_attempt(fs, op, a, b);
    if (err == FSW_ERR_NOSPC && fs->torn & 16)
        err = fsw_mount(fs, fs->cfg) ? FSW_ERR_CORRUPT : err;
    return err;
}

int fsw_put(fsw_t *fs, uint32_t key, const void *data, uint32_t size)
{
    if (!fs->mounted || key == NONE || !size || !data)
        return FSW_ERR_INVAL;
    if (size > fs->max_chunk - TAG(fs))
        return FSW_ERR_TOOBIG;
    if (!IDX_FOUND(fsw_idx_find(fs, key)) && fs->nkeys >= fs->max_keys)
        return FSW_ERR_NOSPC;
    fs->data = data;
    return run(fs, OP_PUT, key, size);
}

int fsw_get(fsw_t *fs, uint32_t key, void *buf, uint32_t bufsize, uint32_t *size_out)
{
    uint64_t v = fsw_idx_find(fs, key);
    const struct fsw_index_entry *e = fs->cfg->index + IDX_POS(v);
    int err;
    if (!fs->mounted)
        return FSW_ERR_INVAL;
    if (!IDX_FOUND(v))
        return fs->damaged ? FSW_ERR_CORRUPT : FSW_ERR_NOENT;
    if (size_out)
        *size_out = e->size - TAG(fs);
    /* a lost entry (size 0) reads as corrupt: fsw_read refuses its address; with a tag, its
     * size less the tag would pass for too big first */
#ifndef FSW_NO_AEAD
    if (e->addr == LOST)
        return FSW_ERR_CORRUPT;
#endif
    err = e->size - TAG(fs) > bufsize ? FSW_ERR_TOOBIG : fsw_chunk_read(fs, e, buf);
    if (!err)
        trace(fs, OP_GET, key, e->size - TAG(fs));
#ifndef FSW_NO_AEAD
    if (err == FSW_FORGED) /* a tag that fails (§4a): only an encrypted store has one */
        err = FSW_ERR_CORRUPT;
#endif
    return err;
}

/* Writes one TRIM or TRIM_RANGE record if any entry (lost ones included) lies in
 * [first, last]: returns how many were dropped. */
static int32_t trim(fsw_t *fs, int op, uint32_t first, uint32_t last)
{
    int err = 0;
    uint64_t v;
    uint32_t n;
    if (first > last || last == NONE || !fs->mounted)
        return FSW_ERR_INVAL;
    v = fsw_idx_find(fs, last);
    n = IDX_POS(v) + IDX_FOUND(v) - IDX_POS(fsw_idx_find(fs, first));
    fs->data = fs; /* no payload: any pointer will do */
    if (n)
        err = run(fs, op, first, last);
    else if (op == OP_RANGE) /* a trace's TRIM of a dead key is an error; INVALIDATE is not */
        trace(fs, OP_RANGE, first, last);
    return err ? err : (int32_t)n;
}

int32_t fsw_trim_range(fsw_t *fs, uint32_t first, uint32_t last)
{
    return trim(fs, OP_RANGE, first, last);
}

int fsw_trim(fsw_t *fs, uint32_t key)
{
    return trim(fs, OP_TRIM, key, key);
}

int fsw_sync(fsw_t *fs)
{
    return run(fs, OP_SYNC, 0, 0);
}

int fsw_idle(fsw_t *fs, unsigned max_erases)
{
    return run(fs, OP_IDLE, max_erases, 0);
}

int fsw_unmount(fsw_t *fs)
{
    int err = fs->mounted ? fsw_sync(fs) : 0;
    fs->mounted = 0;
    return err;
}
