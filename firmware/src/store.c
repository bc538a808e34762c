/* The API: argument checks, format (§13), the retry loop that survives a block failing a
 * program (§12), and the optional trace hook. */
#include "fsw_priv.h"

static int ilog2(uint32_t v)
{
    int n = 0;
    if (!v || (v & (v - 1)))
        return -1;
    while (v >>= 1)
        n++;
    return n;
}

/* Geometry from the config (§2); the format options are left for format or mount to set. */
int fsw_setup(fsw_t *fs, const struct fsw_config *c)
{
    int ss = ilog2(c ? c->segment_size : 0), ps = ilog2(c ? c->prog_size : 0);
    memset(fs, 0, sizeof *fs);
    if (ss < 9 || ss > 24 || ps < 0 || ss - ps < 3 || !c->read || !c->prog || !c->erase ||
        !c->prog_buffer || !c->index || !c->segs || c->flash_size / c->segment_size < 6)
        return FSW_ERR_INVAL;
    fs->cfg = c;
    fs->nseg = c->flash_size >> ss;
    fs->seg_shift = (uint8_t)ss;
    fs->prog_shift = (uint8_t)ps;
    fs->page_once = c->page_once != 0;
    fs->open = fs->park = NONE;
    return 0;
}

/* §11, computed as the Python model does (at least one segment's worth in the formula). */
void fsw_limits(fsw_t *fs)
{
    int32_t n = (int32_t)fs->nseg - fs->reserve - fs->ckpt_interval - 2;
    uint32_t m = DATA_CAP(fs) * (uint32_t)(n > 1 ? n : 1) / 2;
    fs->max_chunk = m < (1u << 24) ? m : 1u << 24;
}

int fsw_format(fsw_t *fs, const struct fsw_config *cfg)
{
    uint8_t h[HDR_SIZE];
    struct fsw_seg *g;
    uint32_t s, limit;
    int err = fsw_setup(fs, cfg);
    if (err)
        return err;
    limit = (SEG_SIZE(fs) / 2 - HDR_SIZE - REC_SIZE) / ENTRY_SIZE;
    fs->max_keys = cfg->max_keys ? cfg->max_keys : (uint16_t)(limit < 1024 ? limit : 1024);
    fs->ckpt_interval = cfg->ckpt_interval;
    if (!fs->ckpt_interval)
        fs->ckpt_interval = (uint8_t)(fs->nseg < 32 ? 1 : fs->nseg < 256 ? fs->nseg / 16 : 16);
    fs->reserve = cfg->reserve ? cfg->reserve : 2;
    fs->wl_threshold = cfg->wl_threshold ? cfg->wl_threshold : 12;
    if (fs->max_keys > limit || fs->reserve < 2 ||
        fs->reserve + fs->ckpt_interval + 3u > fs->nseg)
        return FSW_ERR_INVAL;
    fsw_limits(fs);
    for (s = 0; s < fs->nseg; s++) {
        g = cfg->segs + s;
        memset(g, 0, sizeof *g);
        err = fsw_factory_bad(fs, s);
        if (err > 0)
            g->state = ST_BAD;
        if (err)
            continue;
        err = fsw_read(fs, SEG_BASE(fs, s), h, HDR_SIZE);
        if (!err) {
            g->erase_count = fsw_hdr_ok(h) ? fsw_get32(h + 8) : 0;
            err = fsw_erase(fs, s);
        }
        if (err < 0)
            return err;
    }
    fs->segs_since_ckpt = fs->ckpt_interval;
    fs->next_seq = 1;
    fs->next_rseq = 1;
    fs->park = NONE;
    fs->mounted = 1;
    err = fsw_next(fs, 0, OPEN_FORCE);
    fs->mounted = !err;
    return err;
}

static void trace(fsw_t *fs, uint8_t op, uint32_t key, uint32_t len, uint32_t value)
{
    const struct fsw_config *c = fs->cfg;
    uint8_t r[24];
    if (!c->trace)
        return;
    memset(r, 0, sizeof r);
    r[0] = op;
    fsw_put32(r + 4, key);
    fsw_put32(r + 8, len);
    fsw_put32(r + 16, value);
    c->trace(c->trace_ctx, r);
}

/* One attempt at a writing operation: put, trim (b == a) or trim_range, sync, idle. */
static int once(fsw_t *fs, int op, uint32_t a, uint32_t b, const uint8_t *data)
{
    int err = 0;
    if (op == OP_SYNC)
        return fsw_log_sync(fs);
    if (op == OP_IDLE)
        return fsw_idle_work(fs, a);
    if (op == OP_PUT) {
        err = fsw_static_wl(fs);
        if (err >= 0)
            err = fsw_make_room(fs, b + REC_SIZE * (2 + b / DATA_CAP(fs)), fs->reserve);
        if (!err)
            err = fsw_use(fs, 0);
        return err ? err : fsw_chunk_write(fs, a, b, data, NULL);
    }
    err = fsw_make_room(fs, REC_SIZE, 0);
    if (!err)
        err = fsw_use(fs, 0);
    if (!err && fsw_room(fs) < MIN_ROOM)
        err = fsw_next(fs, 0, 0);
    if (!err)
        err = fsw_rec_small(fs, op == OP_TRIM ? T_TRIM : T_TRIM_RANGE, a,
                            op == OP_TRIM ? 0 : b);
    if (!err)
        fsw_idx_drop(fs, a, b);
    return err;
}

/* Runs a writing operation; when a block fails a program, retires it, moves its chunks and
 * runs the operation again (bounded as in the Python model). */
static int run(fsw_t *fs, int op, uint32_t a, uint32_t b, const void *data)
{
    uint32_t i, j;
    int err;
    for (i = 0; i < fs->nseg; i++) {
        err = once(fs, op, a, b, data);
        if (err != FSW_ERR_WORN)
            return err;
        for (j = 0; j < fs->nseg && (err = fsw_recover(fs)) == FSW_ERR_WORN; j++)
            ;
        if (err && err != FSW_ERR_WORN)
            return err;
    }
    return FSW_ERR_IO;
}

int fsw_put(fsw_t *fs, uint32_t key, const void *data, uint32_t size)
{
    int found, err;
    if (!fs->mounted || key == NONE || !size || !data)
        return FSW_ERR_INVAL;
    if (size > fs->max_chunk)
        return FSW_ERR_TOOBIG;
    fsw_idx_find(fs, key, &found);
    if (!found && fs->nkeys >= fs->max_keys)
        return FSW_ERR_NOSPC;
    err = run(fs, OP_PUT, key, size, data);
    if (!err)
        trace(fs, 1, key, size, 0);
    return err;
}

static const struct fsw_index_entry *lookup(fsw_t *fs, uint32_t key)
{
    int found;
    uint32_t i = fs->mounted ? fsw_idx_find(fs, key, &found) : 0;
    return fs->mounted && found ? fs->cfg->index + i : NULL;
}

int fsw_get(fsw_t *fs, uint32_t key, void *buf, uint32_t bufsize, uint32_t *size_out)
{
    const struct fsw_index_entry *e = lookup(fs, key);
    struct fsw_index_entry copy;
    uint64_t seq;
    int err;
    if (!e)
        return fs->mounted ? FSW_ERR_NOENT : FSW_ERR_INVAL;
    copy = *e;
    if (size_out)
        *size_out = copy.size;
    if (copy.size > bufsize)
        return copy.addr == LOST ? FSW_ERR_CORRUPT : FSW_ERR_TOOBIG;
    err = fsw_chunk_read(fs, &copy, buf, &seq);
    if (!err)
        trace(fs, 2, key, copy.size, 0);
    return err;
}

int32_t fsw_size(fsw_t *fs, uint32_t key)
{
    const struct fsw_index_entry *e = lookup(fs, key);
    if (!e)
        return fs->mounted ? FSW_ERR_NOENT : FSW_ERR_INVAL;
    return e->addr == LOST ? FSW_ERR_CORRUPT : (int32_t)e->size;
}

int32_t fsw_trim_range(fsw_t *fs, uint32_t first, uint32_t last)
{
    int found, err;
    uint32_t a, b;
    if (!fs->mounted || first > last || last == NONE)
        return FSW_ERR_INVAL;
    a = fsw_idx_find(fs, first, &found);
    b = fsw_idx_find(fs, last, &found) + (uint32_t)found;
    err = b > a ? run(fs, OP_RANGE, first, last, NULL) : 0;
    if (err)
        return err;
    trace(fs, 4, first, 0, last);
    return (int32_t)(b - a);
}

int fsw_trim(fsw_t *fs, uint32_t key)
{
    int found, err;
    if (!fs->mounted || key == NONE)
        return FSW_ERR_INVAL;
    fsw_idx_find(fs, key, &found);
    err = found ? run(fs, OP_TRIM, key, key, NULL) : 0;
    if (err)
        return err;
    trace(fs, 3, key, 0, 0);
    return found;
}

int fsw_sync(fsw_t *fs)
{
    int err = fs->mounted ? run(fs, OP_SYNC, 0, 0, NULL) : FSW_ERR_INVAL;
    if (!err)
        trace(fs, 5, 0, 0, 0);
    return err;
}

int fsw_idle(fsw_t *fs, unsigned max_erases)
{
    return fs->mounted ? run(fs, OP_IDLE, max_erases, 0, NULL) : FSW_ERR_INVAL;
}

int fsw_unmount(fsw_t *fs)
{
    int err = fs->mounted ? fsw_sync(fs) : 0;
    fs->mounted = 0;
    return err;
}

int fsw_stat(fsw_t *fs, struct fsw_stat *st)
{
    const struct fsw_seg *g = fs->cfg ? fs->cfg->segs : NULL;
    uint32_t s, i;
    if (!fs->mounted)
        return FSW_ERR_INVAL;
    memset(st, 0, sizeof *st);
    st->erase_min = NONE;
    for (i = 0; i < fs->nkeys; i++)
        st->live_bytes += fs->cfg->index[i].size;
    for (s = 0; s < fs->nseg; s++) {
        if (g[s].state == ST_BAD) {
            st->bad_segments++;
            continue;
        }
        if (g[s].erase_count < st->erase_min)
            st->erase_min = g[s].erase_count;
        if (g[s].erase_count > st->erase_max)
            st->erase_max = g[s].erase_count;
    }
    if (st->erase_min == NONE)
        st->erase_min = 0;
    st->live_chunks = fs->nkeys;
    st->segments = fs->nseg;
    st->free_segments = fsw_free_count(fs);
    st->free_bytes = fsw_hot_room(fs) + st->free_segments * DATA_CAP(fs);
    st->retired = fs->retired;
    st->max_chunk = fs->max_chunk;
    return 0;
}
