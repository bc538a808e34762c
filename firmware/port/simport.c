/*
 * Port onto the Python FlashSim (flashswap/flash.py) for flashswap/store/c_engine.py.
 *
 * The common operations (a program, erase or read that breaks no rule, with no power cut armed,
 * no wear-out or bit-error model) are done here, on the FlashSim's own numpy arrays, with its
 * exact bookkeeping: a Python callback per page program would cost more than the store itself.
 * Anything else (a rule broken, a factory-bad block, the spare area, an armed power cut, a
 * flash that is not a FlashSim) goes to the Python callbacks, so FlashSim stays the referee:
 * it raises the error, tears the page, wears the block. Time and energy are accumulated here
 * and folded into the FlashSim by Python after each call.
 *
 * Not part of the library proper: host only, built with it into the ctypes shared object.
 */
#include <stddef.h>
#include <string.h>

#include "flashswap.h"

typedef int (*fswsim_io)(const struct fsw_config *c, uint32_t addr, void *buf, uint32_t size);
typedef int (*fswsim_erase_fn)(const struct fsw_config *c, uint32_t addr, uint32_t size);

/* Mirrored field by field by the ctypes Structure in c_engine.py: keep the order. */
struct fswsim {
    /* The FlashSim's arrays (inverted storage: 0 is an erased 0xFF byte). */
    uint8_t *inv;
    uint8_t *spare_inv;
    uint8_t *page_writes; /* NAND only (NOP count per page) */
    int32_t *next_page;   /* NAND only (in-block page order) */
    int64_t *wear;
    int64_t *erase_counts;
    int64_t *program_bytes;
    int64_t *read_bytes;
    uint8_t *bad;
    /* analyzer.device.ReplayFlash only (NULL otherwise): erased-since-programmed flags and
     * consumptions per erase unit, kept on the fast path as ReplayFlash.program/erase do. */
    uint8_t *fresh;
    int64_t *consumed;
    /* Python fallbacks (the slow path). */
    fswsim_io py_read;
    fswsim_io py_prog;
    fswsim_erase_fn py_erase;
    fswsim_io py_read_spare;
    /* Geometry. */
    uint32_t size, erase_size, page_size, ppb, spare_size, nop, seg_size;
    uint32_t nand, fast; /* fast: Python found no power cut, wear or bit-error model armed */
    /* Per-operation costs, as FlashSim._rates() computes them. */
    double tp, tp_max, ep, ep_max, te, te_max, w_erase, t_page_read, bw, w_read;
    /* Accumulated since Python last folded them into the FlashSim. */
    uint64_t reads, programs, erases, ops_count;
    double time_s, time_max_s, energy_j, energy_max_j;
    /* Set by fswsim_install: log2 of erase_size and page_size when they are powers of two
     * (every catalogue part), else 0 and the slow division; a division costs more than the
     * rest of the bookkeeping of a small read. */
    uint32_t es_shift, ps_shift;
    /* FlashSim._reg: the page in the NAND data register (-1: none). A read starting on it
     * skips tR; programs and erases empty it (flash.py, "NAND reads"). */
    int64_t *reg;
};

#define SIM(c) ((struct fswsim *)(c)->context)

static uint32_t blk_of(const struct fswsim *m, uint32_t addr)
{
    return m->es_shift ? addr >> m->es_shift : addr / m->erase_size;
}

static uint32_t page_of(const struct fswsim *m, uint32_t addr)
{
    return m->ps_shift ? addr >> m->ps_shift : addr / m->page_size;
}

static uint32_t log2_exact(uint32_t v)
{
    uint32_t k = 0;
    if (v < 2 || (v & (v - 1)))
        return 0;
    while ((1u << k) < v)
        k++;
    return k;
}

static int sim_read(const struct fsw_config *c, uint32_t addr, void *buf, uint32_t n)
{
    struct fswsim *m = SIM(c);
    uint8_t *out = buf;
    const uint8_t *src;
    uint32_t i, b0, b1, pages;
    double t;
    if (!m->fast || (uint64_t)addr + n > m->size)
        return m->py_read(c, addr, buf, n);
    if (!n)
        return 0;
    src = m->inv + addr;
    for (i = 0; i < n; i++)
        out[i] = (uint8_t)~src[i];
    b0 = blk_of(m, addr);
    b1 = blk_of(m, addr + n - 1);
    if (b0 == b1) {
        m->read_bytes[b0] += n;
    } else {
        m->read_bytes[b0] += (int64_t)(b0 + 1) * m->erase_size - addr;
        for (i = b0 + 1; i < b1; i++)
            m->read_bytes[i] += m->erase_size;
        m->read_bytes[b1] += (int64_t)addr + n - (int64_t)b1 * m->erase_size;
    }
    pages = page_of(m, addr + n - 1) - page_of(m, addr) + 1;
    if (m->nand) {
        pages -= *m->reg == (int64_t)page_of(m, addr);
        *m->reg = page_of(m, addr + n - 1);
    }
    t = pages * m->t_page_read + n / m->bw;
    m->reads++;
    m->time_s += t;
    m->time_max_s += t;
    m->energy_j += t * m->w_read;
    m->energy_max_j += t * m->w_read;
    return 0;
}

/* FlashSim.program without spare bytes, when it would succeed; else the Python path. */
static int sim_prog(const struct fsw_config *c, uint32_t addr, const void *buf, uint32_t n)
{
    struct fswsim *m = SIM(c);
    const uint8_t *src = buf;
    uint8_t *dst;
    uint8_t clash = 0;
    uint32_t i, blk, p0, p1, np;
    if (!m->fast || !n || (uint64_t)addr + n > m->size)
        return m->py_prog(c, addr, (void *)buf, n);
    blk = blk_of(m, addr);
    if (blk_of(m, addr + n - 1) != blk || m->bad[blk])
        return m->py_prog(c, addr, (void *)buf, n);
    p0 = page_of(m, addr);
    p1 = page_of(m, addr + n - 1) + 1;
    np = p1 - p0;
    dst = m->inv + addr;
    for (i = 0; i < n; i++)
        clash |= (uint8_t)(src[i] & dst[i]);
    if (clash)
        return m->py_prog(c, addr, (void *)buf, n);
    if (m->nand) {
        int32_t top = m->next_page[blk] - 1;
        int32_t rel = (int32_t)(p0 - blk * m->ppb);
        for (i = p0; i < p1; i++)
            if (m->page_writes[i] >= m->nop)
                return m->py_prog(c, addr, (void *)buf, n);
        if (rel < top)
            return m->py_prog(c, addr, (void *)buf, n);
        for (i = p0; i < p1; i++)
            m->page_writes[i]++;
        if ((int32_t)(p1 - blk * m->ppb) > m->next_page[blk])
            m->next_page[blk] = (int32_t)(p1 - blk * m->ppb);
    }
    if (m->nand)
        *m->reg = -1;
    m->ops_count += np;
    m->programs += np;
    /* FlashSim._account_programs: raw flash (the only kind on this path) loads the page data
     * over its bus at the read rate bw, at the read current */
    m->time_s += np * m->tp + n / m->bw;
    m->time_max_s += np * m->tp_max + n / m->bw;
    m->energy_j += np * m->ep + n / m->bw * m->w_read;
    m->energy_max_j += np * m->ep_max + n / m->bw * m->w_read;
    m->program_bytes[blk] += n;
    if (m->fresh && m->fresh[blk]) {
        m->fresh[blk] = 0;
        m->consumed[blk]++;
    }
    for (i = 0; i < n; i++)
        dst[i] = (uint8_t)~src[i];
    return 0;
}

static int sim_erase(const struct fsw_config *c, uint32_t addr, uint32_t size)
{
    struct fswsim *m = SIM(c);
    uint32_t b, b0, b1;
    if (!m->fast || size != m->seg_size || addr % size || (uint64_t)addr + size > m->size)
        return m->py_erase(c, addr, size);
    b0 = addr / m->erase_size;
    b1 = (addr + size) / m->erase_size;
    for (b = b0; b < b1; b++)
        if (m->bad[b])
            return m->py_erase(c, addr, size);
    for (b = b0; b < b1; b++) {
        m->wear[b]++;
        m->erase_counts[b]++;
        if (m->fresh)
            m->fresh[b] = 1;
    }
    if (m->nand)
        *m->reg = -1;
    m->ops_count++;
    m->erases++;
    m->time_s += m->te;
    m->time_max_s += m->te_max;
    m->energy_j += m->te * m->w_erase;
    m->energy_max_j += m->te_max * m->w_erase;
    if (m->nand) {
        memset(m->page_writes + (size_t)b0 * m->ppb, 0, (size_t)(b1 - b0) * m->ppb);
        for (b = b0; b < b1; b++)
            m->next_page[b] = 0;
    }
    memset(m->inv + addr, 0, size);
    if (m->spare_size)
        memset(m->spare_inv + (size_t)b0 * m->ppb * m->spare_size, 0,
               (size_t)(b1 - b0) * m->ppb * m->spare_size);
    return 0;
}

/* Spare-area reads are rare (factory-bad checks of blocks without a header): always Python. */
static int sim_read_spare(const struct fsw_config *c, uint32_t addr, void *buf, uint32_t n)
{
    return SIM(c)->py_read_spare(c, addr, buf, n);
}

/*
 * A batch of store calls in one C call, for long replays (analyzer/replay.py) and the speed
 * bench: through ctypes each call costs microseconds, as much as a 4 KiB put itself. Opcodes
 * are the trace's (flashswap/trace.py): WRITE puts `len` bytes of `wbuf` under `key`, READ gets
 * the whole chunk into `rbuf`, TRIM, INVALIDATE (keys key..value), SYNC; COMPUTE stores the
 * flash time accumulated so far in marks[] (the replay splits I/O at compute steps); the
 * other opcodes do nothing here. Returns the number of operations done; on an error *rc holds
 * it and the failing operation is the one at the returned index.
 */
struct fswsim_op {
    uint32_t op, key, len, value;
};

enum { TR_WRITE = 1, TR_READ, TR_TRIM, TR_INVALIDATE, TR_SYNC, TR_COMPUTE = 8 };

uint32_t fswsim_run(fsw_t *fs, const struct fswsim *m, const struct fswsim_op *ops, uint32_t n,
                    const uint8_t *wbuf, uint8_t *rbuf, uint32_t rbuf_size, double *marks,
                    int32_t *rc)
{
    uint32_t i, nmark = 0;
    int r = 0;
    for (i = 0; i < n && r >= 0; i++) {
        const struct fswsim_op *o = &ops[i];
        switch (o->op) {
        case TR_WRITE:
            r = fsw_put(fs, o->key, wbuf, o->len);
            break;
        case TR_READ:
            r = fsw_get(fs, o->key, rbuf, rbuf_size, NULL);
            break;
        case TR_TRIM:
            r = fsw_trim(fs, o->key);
            break;
        case TR_INVALIDATE:
            r = fsw_trim_range(fs, o->key, o->value);
            break;
        case TR_SYNC:
            r = fsw_sync(fs);
            break;
        case TR_COMPUTE:
            marks[nmark++] = m->time_s;
            break;
        default:
            break;
        }
    }
    *rc = r < 0 ? r : 0;
    return r < 0 ? i - 1 : i;
}

/* Points the config's callbacks at this port. */
void fswsim_install(struct fsw_config *c, struct fswsim *m)
{
    m->es_shift = log2_exact(m->erase_size);
    m->ps_shift = log2_exact(m->page_size);
    c->context = m;
    c->read = sim_read;
    c->prog = sim_prog;
    c->erase = sim_erase;
    c->read_spare = m->nand ? sim_read_spare : NULL;
}

size_t fswsim_sizes(size_t *sim_size)
{
    *sim_size = sizeof(struct fswsim);
    return sizeof(fsw_t);
}

/* Bytes per segment of fsw_config.segs: the caller allocates the array (its layout is the
 * library's own). */
size_t fswsim_seg_size(void)
{
    return sizeof(struct fsw_seg);
}

struct collect {
    struct fsw_chunk_info *out;
    uint32_t n, max;
};

static int collect(void *ctx, const struct fsw_chunk_info *chunk)
{
    struct collect *c = ctx;
    if (c->n < c->max)
        c->out[c->n] = *chunk;
    c->n++;
    return 0;
}

/* Store.keys() and stat(): the first max index entries (fsw_traverse) into out, in one C call
 * (a ctypes callback per chunk costs a microsecond). Returns how many entries there are. */
uint32_t fswsim_chunks(const fsw_t *fs, struct fsw_chunk_info *out, uint32_t max)
{
    struct collect c;
    c.out = out;
    c.n = 0;
    c.max = max;
    fsw_traverse(fs, collect, &c);
    return c.n;
}

/* Store.stat(): fsw_seg_info of segments 0 .. n - 1 into out. */
int fswsim_segs(const fsw_t *fs, struct fsw_seg_info *out, uint32_t n)
{
    uint32_t s;
    int err = 0;
    for (s = 0; s < n && !err; s++)
        err = fsw_seg_info(fs, s, out + s);
    return err;
}

/* bench/aead_throughput.py: reps seals (seal != 0) or opens of len bytes through c's AEAD
 * callbacks, timed by the caller around this one call: a seal reads buf and writes out and the
 * tag (out + len, 16 bytes); an open reads what one seal left in out and writes buf. The nonce
 * and associated data are fixed: a benchmark, never a store. 0, or the first callback error. */
int fswsim_aead_loop(const struct fsw_config *c, int seal, uint8_t *buf, uint8_t *out,
                     uint32_t len, uint32_t reps)
{
    static const uint8_t nonce[12] = {1}, ad[28] = {2};
    uint32_t i;
    int err = seal ? 0 : c->aead_seal(c->aead_ctx, nonce, ad, sizeof ad, buf, out, len, out + len);
    for (i = 0; i < reps && !err; i++)
        err = seal ? c->aead_seal(c->aead_ctx, nonce, ad, sizeof ad, buf, out, len, out + len)
                   : c->aead_open(c->aead_ctx, nonce, ad, sizeof ad, out, buf, len, out + len);
    return err;
}
