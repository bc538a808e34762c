/* Long random workloads against a model, garbage collection under pressure, static wear
 * leveling, bad blocks and wear-out. */
#include <string.h>

#include "fixture.h"
#include "runner.h"

#define KEYS 16

/* What each key must hold: version (0: absent) and size; `lost` marks keys that a block
 * failure may have turned corrupt. */
static struct {
    uint32_t ver[KEYS], size[KEYS];
    uint8_t lost[KEYS];
} M;

static uint32_t rng_state;

static uint32_t rnd(uint32_t n)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return x % n;
}

/* Every key reads as the model says (a lost key may also read as corrupt). */
static int verify(void)
{
    uint32_t k, got;
    for (k = 0; k < KEYS; k++) {
        int err = fsw_get(&FX.fs, k, fx_read, FX_DATA, &got);
        if (M.lost[k] && err == FSW_ERR_CORRUPT)
            continue;
        if (!M.ver[k]) {
            if (err != FSW_ERR_NOENT)
                return (int)k + 1000;
            continue;
        }
        fx_payload(fx_data, k, M.ver[k], M.size[k]);
        if (err || got != M.size[k] || memcmp(fx_read, fx_data, got))
            return (int)k + 2000;
    }
    return 0;
}

struct load {
    enum geo geo;
    uint8_t ckpt;
    uint16_t wl;
    uint32_t keys, max_size, iters;
};

/* Random puts, trims, range trims, syncs, idle steps and remounts; returns the number of
 * puts refused for lack of space, or a negative failure code. */
static int workload(const struct load *w, uint32_t seed)
{
    uint32_t i, ver = 1, refused = 0;
    int err;
    memset(&M, 0, sizeof M);
    rng_state = seed;
    if (fx_setup(w->geo, w->ckpt, w->wl) || fx_format())
        return -1;
    for (i = 0; i < w->iters; i++) {
        uint32_t op = rnd(100), k = rnd(w->keys), n;
        if (op < 70) {
            n = 1 + rnd(rnd(4) ? w->max_size / 4 : w->max_size);
            fx_payload(fx_data, k, ver, n);
            err = fsw_put(&FX.fs, k, fx_data, n);
            if (err == FSW_ERR_NOSPC) {
                refused++;
                continue;
            }
            if (err)
                return -10000 - (int)i;
            M.ver[k] = ver++;
            M.size[k] = n;
        } else if (op < 80) {
            if (fsw_trim(&FX.fs, k) != (M.ver[k] != 0))
                return -20000 - (int)i;
            M.ver[k] = 0;
        } else if (op < 83) {
            uint32_t b = k + rnd(3), j;
            int cnt = 0;
            for (j = k; j <= b && j < KEYS; j++)
                cnt += M.ver[j] != 0;
            if (fsw_trim_range(&FX.fs, k, b) != cnt)
                return -30000 - (int)i;
            for (j = k; j <= b && j < KEYS; j++)
                M.ver[j] = 0;
        } else if (op < 93) {
            if (fsw_sync(&FX.fs))
                return -40000 - (int)i;
        } else if (op < 97) {
            if (fsw_idle(&FX.fs, 1 + rnd(3)) < 0)
                return -50000 - (int)i;
        } else {
            if (fsw_unmount(&FX.fs) || fx_mount())
                return -60000 - (int)i;
            if ((err = verify()) != 0)
                return -70000 - err;
        }
        if (FX.rf.violations)
            return -80000 - (int)i;
    }
    if ((err = verify()) != 0 || fsw_unmount(&FX.fs) || fx_mount() || verify())
        return -90000 - err;
    return (int)refused;
}

static void run_load(const struct load *w, uint32_t seeds)
{
    uint32_t s;
    for (s = 1; s <= seeds; s++) {
        int r = workload(w, s * 7919u);
        if (r < 0)
            printf("  seed %u: failure code %d\n", (unsigned)s, r);
        CHECK(r >= 0);
        CHECK(r * 20 <= (int)w->iters); /* the loads leave room: refusals are rare */
    }
}

void test_gc_pressure_nor(void)
{
    static const struct load w = {NOR4K, 3, 16, 10, 2500, 1500 / FSW_TEST_SCALE};
    struct fsw_stat st;
    run_load(&w, 4 / FSW_TEST_SCALE + 1);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK(st.erase_max > 5); /* the load did wrap the flash several times */
}

void test_gc_pressure_nand(void)
{
    static const struct load w = {NAND_S, 2, 16, 10, 9000, 1200 / FSW_TEST_SCALE};
    run_load(&w, 3 / FSW_TEST_SCALE + 1);
}

void test_gc_tiny_segments(void)
{
    static const struct load w = {NOR512, 1, 4, 6, 700, 1500 / FSW_TEST_SCALE};
    run_load(&w, 4 / FSW_TEST_SCALE + 1);
}

void test_no_space(void)
{
    uint32_t k, got, n = 3000;
    int err = 0;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    for (k = 0; k < 40 && !err; k++) {
        fx_payload(fx_data, k, 1, n);
        err = fsw_put(&FX.fs, k, fx_data, n);
    }
    CHECK_EQ(err, FSW_ERR_NOSPC);
    k--; /* the refused key */
    CHECK(k > 10);
    CHECK_EQ(fsw_get(&FX.fs, k, fx_read, n, &got), FSW_ERR_NOENT);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_trim_range(&FX.fs, 0, 5), 6);
    fx_payload(fx_data, k, 1, n);
    CHECK_EQ(fsw_put(&FX.fs, k, fx_data, n), 0);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_get(&FX.fs, k, fx_read, n, &got), 0);
    CHECK(!memcmp(fx_read, fx_data, n));
    CHECK_EQ(fsw_get(&FX.fs, 6, fx_read, n, &got), 0);
    /* a full index */
    CHECK_EQ(fx_setup(NOR512, 1, 0), 0);
    CHECK_EQ(fx_format(), 0);
    for (k = 0; k < 15; k++)
        CHECK_EQ(fsw_put(&FX.fs, k, "x", 1), 0);
    CHECK_EQ(fsw_put(&FX.fs, 99, "x", 1), FSW_ERR_NOSPC);
    CHECK_EQ(fsw_put(&FX.fs, 3, "y", 1), 0);
}

void test_static_wl(void)
{
    /* One cold chunk among hot churn: without static leveling its segment would never be
     * erased again. With threshold 2 it moves to the cold log whenever its segment (the cold
     * head's own segment included, SPEC 015e087) lags more than 2 erases behind where the hot
     * head allocates, onto the most-worn free segment; the spread of erase counts stays at
     * threshold + 1. */
    uint32_t i, got, moves = 0, last, worst = 0;
    struct fsw_stat st;
    CHECK_EQ(fx_setup(NOR4K, 3, 2), 0);
    CHECK_EQ(fx_format(), 0);
    fx_payload(fx_data, 100, 1, 3000);
    CHECK_EQ(fsw_put(&FX.fs, 100, fx_data, 3000), 0);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    last = FX.cfg.index[0].addr;
    for (i = 0; i < 1000; i++) {
        fx_payload(fx_data, i % 2, i, 1500);
        CHECK_EQ(fsw_put(&FX.fs, i % 2, fx_data, 1500), 0);
        CHECK_EQ(fsw_trim(&FX.fs, i % 2), 1);
        if (i % 4 == 3)
            CHECK_EQ(fsw_sync(&FX.fs), 0);
        CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
        if (st.erase_max - st.erase_min > worst)
            worst = st.erase_max - st.erase_min;
        if (FX.cfg.index[0].addr != last) {
            moves++;
            last = FX.cfg.index[0].addr;
            CHECK(FX.cfg.segs[last >> 12].cold);
        }
    }
    CHECK_EQ(moves, 8); /* as the Python model: 8 moves in 1000 iterations */
    CHECK_EQ(worst, 3);
    CHECK_EQ(st.erase_min, 25);
    CHECK_EQ(st.erase_max, 26); /* the SYNC records (SPEC §6) wrote 32 bytes per sync more */
    CHECK_EQ(fx_mount(), 0);
    fx_payload(fx_data, 100, 1, 3000);
    CHECK_EQ(fsw_get(&FX.fs, 100, fx_read, 3000, &got), 0);
    CHECK(!memcmp(fx_read, fx_data, 3000));
}

void test_factory_bad(void)
{
    static const struct load w = {NAND_S, 2, 4, 8, 6000, 600 / FSW_TEST_SCALE};
    struct fsw_stat st;
    uint32_t i;
    int r;
    /* the workload sets the fixture up itself: mark the blocks from a hook-free copy */
    memset(&M, 0, sizeof M);
    rng_state = 99;
    CHECK_EQ(fx_setup(NAND_S, 2, 4), 0);
    ramflash_factory_bad(&FX.rf, 3);
    ramflash_factory_bad(&FX.rf, 7);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK_EQ(st.bad_segments, 2);
    CHECK_EQ(st.free_segments, 9);
    for (i = 0; i < w.iters; i++) {
        uint32_t k = i % w.keys, n = 1 + (i * 977) % w.max_size;
        fx_payload(fx_data, k, i + 1, n);
        CHECK_EQ(fsw_put(&FX.fs, k, fx_data, n), 0);
        M.ver[k] = i + 1;
        M.size[k] = n;
        if (i % 5 == 0)
            CHECK_EQ(fsw_sync(&FX.fs), 0);
    }
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(verify(), 0);
    CHECK_EQ(FX.rf.wear[3], 0);
    CHECK_EQ(FX.rf.wear[7], 0);
    for (i = 0; i < 16 * 1024; i++)
        CHECK(FX.rf.mem[3 * 16 * 1024 + i] == 0xFF && FX.rf.mem[7 * 16 * 1024 + i] == 0xFF);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK_EQ(st.bad_segments, 2);
    CHECK(st.erase_max > 5);
    r = FX.rf.violations;
    CHECK_EQ(r, 0);
}

/* Churn on a device that wears out after `endurance` erases per block: segments are retired
 * as they fail, data keeps reading back (or reads as corrupt when its block failed before it
 * was moved), and the store ends with "no space" or an I/O error, never with wrong data. */
static void wear_out(enum geo g, uint32_t endurance, uint32_t max_size, int silent)
{
    uint32_t i, k, n, ver = 1;
    int err = 0, end_err;
    struct fsw_stat st;
    memset(&M, 0, sizeof M);
    CHECK_EQ(fx_setup(g, 2, 4), 0);
    FX.rf.endurance = endurance;
    FX.rf.silent = silent;
    CHECK_EQ(fx_format(), 0);
    for (i = 0; i < 100000 && !err; i++) {
        k = i % 6;
        n = 1 + (i * 7717) % max_size;
        fx_payload(fx_data, k, ver, n);
        err = fsw_put(&FX.fs, k, fx_data, n);
        if (!err) {
            M.ver[k] = ver++;
            M.size[k] = n;
            M.lost[k] = 0;
        }
        if (!err && i % 3 == 0)
            err = fsw_sync(&FX.fs);
        if (FX.fs.retired)
            memset(M.lost, 1, sizeof M.lost); /* any chunk may have been in a failed block */
        CHECK_EQ(verify(), 0);
    }
    end_err = err;
    CHECK(end_err == FSW_ERR_NOSPC || end_err == FSW_ERR_IO);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK(st.retired > 0);
    CHECK(st.bad_segments == st.retired);
    CHECK_EQ(FX.rf.violations, 0);
    /* what is left mounts and reads back as the model allows */
    err = fx_mount();
    CHECK(err == 0 || err == FSW_ERR_CORRUPT);
    if (!err)
        CHECK_EQ(verify(), 0);
}

void test_wear_out(void)
{
    wear_out(NOR4K, 40, 2000, 0);
}

void test_wear_out_nand(void)
{
    wear_out(NAND_S, 30, 5000, 0);
}

/* Worn blocks that report success: erase verification (§8) retires them; a program that
 * silently kept a bit shows as a corrupt chunk, never as wrong data. */
void test_wear_out_silent(void)
{
    wear_out(NOR4K, 40, 2000, 1);
}

/* SPEC §12: a segment that fails a program is retired in RAM only and its chunks are written
 * again; on flash it stays valid history, so the TRIM record in it still keeps the trimmed
 * chunk dead at the next mount; and the checkpoint written once they have moved leaves it
 * outside the window, so that even the loss of its header brings back nothing. */
void test_retire_checkpoint(void)
{
    uint32_t k, got, s, big = 3000;
    struct fsw_stat st;
    CHECK_EQ(fx_setup(NOR4K, 8, 0), 0); /* no checkpoint falls due on its own here */
    FX.cfg.reserve = 4; /* the default (5, capped by ckpt 8) would cap chunks below `big` */
    CHECK_EQ(fx_format(), 0);
    fx_payload(fx_data, 1, 1, big);
    CHECK_EQ(fsw_put(&FX.fs, 1, fx_data, big), 0); /* in the first (checkpoint) segment */
    for (k = 2; k < 4; k++) {
        fx_payload(fx_data, k, 1, big);
        CHECK_EQ(fsw_put(&FX.fs, k, fx_data, big), 0);
    }
    s = FX.fs.open;
    CHECK(s != 0);
    CHECK_EQ(fsw_trim(&FX.fs, 1), 1); /* the TRIM record lies in segment s */
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    FX.rf.endurance = 1000; /* segment s alone is worn out: its next program fails */
    FX.rf.wear[s] = 1001;
    fx_payload(fx_data, 5, 1, 100);
    CHECK_EQ(fsw_put(&FX.fs, 5, fx_data, 100), 0);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK_EQ(st.retired, 1);
    CHECK(FX.fs.open != s);
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, FX_DATA, &got), FSW_ERR_NOENT);
    for (k = 2; k < 6; k += k == 3 ? 2 : 1) {
        uint32_t n = k == 5 ? 100 : big;
        fx_payload(fx_data, k, 1, n);
        CHECK_EQ(fsw_get(&FX.fs, k, fx_read, FX_DATA, &got), 0);
        CHECK_EQ(got, n);
        CHECK(memcmp(fx_read, fx_data, n) == 0);
    }
    memset(FX.rf.mem + s * 4096u, 0, 40); /* the failed segment's header, lost */
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, FX_DATA, &got), FSW_ERR_NOENT);
    CHECK_EQ(FX.rf.violations, 0);
}
