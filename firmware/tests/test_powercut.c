/* Exhaustive power-cut sweeps (after tests/test_store_powercut.py): each scripted scenario is
 * run once to count its flash operations, then re-run from the same image with a cut at every
 * operation index. After the cut the store must mount; a key untouched since the last sync
 * reads exactly its synced value (or is absent if it had none), a touched key reads as its
 * synced value, any value written since, or absent; and the store keeps working. */
#include <string.h>

#include "fixture.h"
#include "runner.h"

#define KEYS 16
#define HIST 64

/* The oracle: synced version per key (0 absent), and the versions written since (0: trim). */
static struct {
    uint32_t synced[KEYS], cur[KEYS], size[1 << 12];
    uint16_t since[KEYS][HIST];
    uint8_t nsince[KEYS];
} O;

static void o_reset(void)
{
    memset(&O, 0, sizeof O);
}

static void o_touch(uint32_t k, uint32_t v)
{
    O.cur[k] = v;
    if (O.nsince[k] < HIST)
        O.since[k][O.nsince[k]++] = (uint16_t)v;
}

static void o_sync(void)
{
    memcpy(O.synced, O.cur, sizeof O.synced);
    memset(O.nsince, 0, sizeof O.nsince);
}

/* 0 when key k reads as the oracle allows. */
static int o_check(uint32_t k)
{
    uint32_t got, i;
    int err = fsw_get(&FX.fs, k, fx_read, FX_DATA, &got);
    uint32_t allowed[HIST + 2];
    uint32_t n = 0;
    allowed[n++] = O.synced[k];
    if (O.nsince[k]) {
        allowed[n++] = 0;
        for (i = 0; i < O.nsince[k]; i++)
            allowed[n++] = O.since[k][i];
    }
    for (i = 0; i < n; i++) {
        uint32_t v = allowed[i];
        if (!v && err == FSW_ERR_NOENT)
            return 0;
        if (v && !err && got == O.size[v]) {
            fx_payload(fx_data, k, v, got);
            if (!memcmp(fx_read, fx_data, got))
                return 0;
        }
    }
    printf("  key %u: get -> %d (size %u), synced v%u, %u changes since\n", (unsigned)k, err,
           (unsigned)(err ? 0 : got), (unsigned)O.synced[k], (unsigned)O.nsince[k]);
    return -1;
}

/* Scenario steps stop at the first error (the power is off). */
static int put(uint32_t k, uint32_t v, uint32_t n)
{
    O.size[v] = n;
    o_touch(k, v);
    fx_payload(fx_data, k, v, n);
    return fsw_put(&FX.fs, k, fx_data, n);
}

static int sync_(void)
{
    int err = fsw_sync(&FX.fs);
    if (!err)
        o_sync();
    return err;
}

static int trim(uint32_t k)
{
    o_touch(k, 0);
    return fsw_trim(&FX.fs, k) < 0;
}

static int trim_range(uint32_t a, uint32_t b)
{
    uint32_t k;
    for (k = a; k <= b; k++)
        if (O.cur[k])
            o_touch(k, 0);
    return fsw_trim_range(&FX.fs, a, b) < 0;
}

/* The scenarios of tests/test_store_powercut.py. */
static int fill_and_trim(void)
{
    uint32_t i;
    for (i = 0; i < 10; i++) {
        if (put(i % 6, i + 1, 700 + 300 * i))
            return -1;
        if (i % 3 == 2 && sync_())
            return -1;
    }
    if (trim(1) || trim_range(2, 4) || sync_())
        return -1;
    return 0;
}

static int gc_pressure(void)
{
    uint32_t i;
    for (i = 0; i < 40; i++) {
        if (put(i % 4 ? i % 3 : 7 + i % 5, 1000 + i, 900 + (i * 37) % 2000))
            return -1;
        if (i % 5 == 4 && sync_())
            return -1;
        if (i % 7 == 6 && fsw_idle(&FX.fs, 2) < 0)
            return -1;
    }
    return sync_();
}

static int wl_move(void)
{
    uint32_t i;
    if (put(12, 1, 3000) || sync_())
        return -1;
    for (i = 0; i < 60; i++) {
        if (put(i % 2, 2000 + i, 1500) || trim(i % 2))
            return -1;
        if (i % 4 == 3 && sync_())
            return -1;
    }
    return sync_();
}

static void sweep(enum geo g, uint8_t ckpt, uint16_t wl, int (*scenario)(void), uint32_t stride)
{
    uint32_t total, cut, k, got, checked = 0;
    CHECK_EQ(fx_setup(g, ckpt, wl), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    fx_save();
    CHECK_EQ(fx_mount(), 0);
    total = FX.rf.ops;
    o_reset();
    CHECK_EQ(scenario(), 0);
    total = FX.rf.ops - total;
    CHECK(total > 10);
    for (cut = 0; cut < total; cut += stride) {
        fx_restore();
        CHECK_EQ(fx_mount(), 0);
        o_reset();
        ramflash_cut_after(&FX.rf, (long)cut, cut + 1);
        CHECK(scenario() != 0);
        CHECK(FX.rf.off);
        ramflash_power_on(&FX.rf);
        if (fx_mount()) {
            printf("  cut at %u: mount failed\n", (unsigned)cut);
            CHECK(0);
        }
        for (k = 0; k < KEYS; k++)
            if (o_check(k)) {
                printf("  cut at operation %u of %u\n", (unsigned)cut, (unsigned)total);
                CHECK(0);
            }
        /* the store keeps working after the cut */
        CHECK_EQ(fsw_put(&FX.fs, 11, "after the cut", 13), 0);
        CHECK_EQ(fsw_sync(&FX.fs), 0);
        CHECK_EQ(fx_mount(), 0);
        CHECK_EQ(fsw_get(&FX.fs, 11, fx_read, 13, &got), 0);
        CHECK(!memcmp(fx_read, "after the cut", 13));
        CHECK_EQ(FX.rf.violations, 0);
        checked++;
    }
    CHECK(checked > 10);
    printf("  %u cuts over %u flash operations\n", (unsigned)checked, (unsigned)total);
}

void test_powercut_fill_nor(void)
{
    sweep(NOR4K, 3, 0, fill_and_trim, 1);
}

void test_powercut_fill_nand(void)
{
    sweep(NAND_S, 2, 0, fill_and_trim, 1);
}

void test_powercut_gc_nor(void)
{
    sweep(NOR4K, 3, 0, gc_pressure, FSW_TEST_SCALE);
}

void test_powercut_gc_nand(void)
{
    sweep(NAND_S, 2, 0, gc_pressure, FSW_TEST_SCALE);
}

void test_powercut_wl_nor(void)
{
    sweep(NOR4K, 3, 2, wl_move, FSW_TEST_SCALE);
}

/* A cut during format leaves no store (mount refuses) or an empty one. */
void test_powercut_format(void)
{
    uint32_t total, cut;
    int err;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    total = FX.rf.ops;
    for (cut = 0; cut < total; cut++) {
        CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
        ramflash_cut_after(&FX.rf, (long)cut, cut + 1);
        CHECK(fx_format() != 0);
        ramflash_power_on(&FX.rf);
        err = fx_mount();
        CHECK(err == 0 || err == FSW_ERR_CORRUPT);
        if (!err)
            CHECK_EQ(FX.fs.nkeys, 0);
    }
}

/* Random bytes, and valid images with random damage: mount fails cleanly or succeeds, and
 * then every read and a few writes return without a crash (the sanitizers watch). */
static void exercise(void)
{
    uint32_t i, got;
    if (fx_mount())
        return;
    for (i = 0; i < FX.fs.nkeys; i++)
        (void)fsw_get(&FX.fs, FX.cfg.index[i].key, fx_read, FX_DATA, &got);
    for (i = 0; i < 8; i++) {
        fx_payload(fx_data, i, i, 100 + 700 * i);
        if (fsw_put(&FX.fs, i, fx_data, 100 + 700 * i) == FSW_ERR_INVAL)
            break;
    }
    (void)fsw_sync(&FX.fs);
    (void)fsw_idle(&FX.fs, 3);
    if (fx_mount())
        return;
    for (i = 0; i < FX.fs.nkeys; i++)
        (void)fsw_get(&FX.fs, FX.cfg.index[i].key, fx_read, FX_DATA, &got);
}

static uint32_t seed;

static uint32_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 17;
    seed ^= seed << 5;
    return seed;
}

void test_random_images(void)
{
    uint32_t t, i;
    seed = 12345;
    for (t = 0; t < 40 / FSW_TEST_SCALE; t++) {
        CHECK_EQ(fx_setup(t % 2 ? NAND_S : NOR4K, 2, 0), 0);
        for (i = 0; i < FX.rf.size; i++)
            FX.rf.mem[i] = (uint8_t)rnd();
        exercise();
        CHECK_EQ(FX.rf.violations, 0);
    }
}

void test_mutated_images(void)
{
    uint32_t t, i, j, k;
    seed = 777;
    for (t = 0; t < 300 / FSW_TEST_SCALE; t++) {
        enum geo g = t % 3 == 0 ? NAND_S : t % 3 == 1 ? NOR4K : NOR512;
        CHECK_EQ(fx_setup(g, 2, 0), 0);
        CHECK_EQ(fx_format(), 0);
        for (i = 0; i < 30; i++) {
            uint32_t n = 1 + rnd() % (g == NOR512 ? 400 : 1500);
            k = rnd() % 8;
            fx_payload(fx_data, k, i, n);
            CHECK_EQ(fsw_put(&FX.fs, k, fx_data, n), 0);
            if (rnd() % 4 == 0)
                CHECK_EQ(fsw_trim(&FX.fs, rnd() % 8) >= 0, 1);
        }
        CHECK_EQ(fsw_sync(&FX.fs), 0);
        /* damage: a few random bytes, or a burst over one segment's records */
        for (j = 0, k = 1 + rnd() % 6; j < k; j++) {
            uint32_t at = rnd() % FX.rf.size, len = rnd() % 3 ? 1 : 1 + rnd() % 64;
            for (i = 0; i < len && at + i < FX.rf.size; i++)
                FX.rf.mem[at + i] = (uint8_t)rnd();
        }
        exercise();
    }
}
