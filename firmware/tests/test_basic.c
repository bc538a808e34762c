/* API behaviour: format, put/get, trim, remount, stat, idle, trace. */
#include <string.h>

#include "fixture.h"
#include "runner.h"

static uint32_t le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void test_crc32(void)
{
    CHECK_EQ(fsw_crc32(0, "123456789", 9), 0xCBF43926u);
    CHECK_EQ(fsw_crc32(fsw_crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    CHECK_EQ(fsw_crc32(0, "", 0), 0);
}

void test_format_header(void)
{
    const uint8_t *m;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    m = FX.rf.mem;
    /* §3: segment 0 (all erase counts 1, lowest index) holds the header... */
    CHECK(!memcmp(m, "FSWP\2\x0c\x08\x00", 8));
    CHECK_EQ(le32(m + 8), 1);      /* erase_count */
    CHECK_EQ(le32(m + 12), 1);     /* seq */
    CHECK_EQ(le32(m + 16), 1);     /* replay_seq: a checkpoint segment */
    CHECK_EQ(le32(m + 20), 16);    /* segment_count */
    CHECK_EQ(m[24] | m[25] << 8, 164); /* max_keys: (2048 - 72) / 12 */
    CHECK_EQ(m[26], 3);
    CHECK_EQ(m[27], 5); /* reserve: 2 + ceil(164 keys / 64 trims per checkpoint segment) */
    CHECK_EQ(m[28] | m[29] << 8, 12);
    CHECK_EQ(m[30] | m[31] << 8, 0); /* epoch: the first store on this flash */
    CHECK(!memcmp(m + 32, "\xff\xff\xff\xff", 4));
    CHECK_EQ(le32(m + 36), fsw_crc32(0, m, 36));
    /* ...and the empty checkpoint (§13: record seq 1) */
    CHECK_EQ(m[40], 4);
    CHECK_EQ(m[41], 0);
    CHECK_EQ(le32(m + 44), 0);
    CHECK_EQ(le32(m + 48), 0);
    CHECK_EQ(le32(m + 56), 1);
    CHECK_EQ(le32(m + 64), 0);
    CHECK_EQ(le32(m + 68), fsw_crc32(0, m + 40, 28));
    CHECK_EQ(m[72], 0xFF);
    /* one page program (header + checkpoint synced) and 16 erases */
    CHECK_EQ(FX.rf.progs, 1);
    CHECK_EQ(FX.rf.erases, 16);
    CHECK_EQ(FX.rf.violations, 0);
}

void test_format_options(void)
{
    CHECK_EQ(fx_setup(NOR4K, 0, 0), 0);
    FX.cfg.segment_size = 2048; /* not the block size: the device refuses the erase */
    FX.cfg.max_keys = 0;
    CHECK_EQ(fx_format(), FSW_ERR_INVAL);
    CHECK_EQ(FX.rf.violations, 1);
    CHECK_EQ(fx_setup(NOR4K, 0, 0), 0);
    FX.cfg.segment_size = 3000;
    CHECK_EQ(fx_format(), FSW_ERR_INVAL);
    FX.cfg.segment_size = 4096;
    FX.cfg.reserve = 1;
    CHECK_EQ(fx_format(), FSW_ERR_INVAL);
    FX.cfg.reserve = 13; /* 13 + ckpt 1 + 3 > 16 segments */
    CHECK_EQ(fx_format(), FSW_ERR_INVAL);
    FX.cfg.reserve = 0;
    FX.cfg.max_keys = 165;
    CHECK_EQ(fx_format(), FSW_ERR_INVAL);
    FX.cfg.max_keys = 0;
    FX.cfg.flash_size = 5 * 4096;
    CHECK_EQ(fx_format(), FSW_ERR_INVAL);
    FX.cfg.flash_size = 64 * 1024;
    CHECK_EQ(fx_format(), 0);
    /* defaults: ckpt max(1, min(16, 16 / 16)), reserve max(2, 2 + ceil(164 / 64)), wl 12 */
    CHECK_EQ(FX.rf.mem[26], 1);
    CHECK_EQ(FX.rf.mem[27], 5);
    CHECK_EQ(FX.rf.mem[28], 12);
    /* mount needs an index as large as the store's */
    FX.cfg.max_keys = 100;
    CHECK_EQ(fx_mount(), FSW_ERR_INVAL);
    FX.cfg.max_keys = 0;
    CHECK_EQ(fx_mount(), 0);
    /* calls on an unmounted store */
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    CHECK_EQ(fsw_put(&FX.fs, 1, "x", 1), FSW_ERR_INVAL);
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, 1, NULL), FSW_ERR_INVAL);
    CHECK_EQ(fsw_sync(&FX.fs), FSW_ERR_INVAL);
    /* blank flash: no store */
    CHECK_EQ(fx_setup(NOR4K, 0, 0), 0);
    CHECK_EQ(fx_mount(), FSW_ERR_CORRUPT);
}

static void roundtrip(enum geo g)
{
    static const uint32_t sizes[] = {1, 2, 31, 32, 33, 255, 256, 257, 1000, 2048, 4000, 4056,
                                     4057, 5000, 9000};
    uint32_t i, n, got;
    CHECK_EQ(fx_setup(g, 2, 0), 0);
    CHECK_EQ(fx_format(), 0);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        fx_payload(fx_data, i, 1, sizes[i]);
        CHECK_EQ(fsw_put(&FX.fs, i, fx_data, sizes[i]), 0);
        memset(fx_read, 0, sizes[i]);
        CHECK_EQ(fsw_get(&FX.fs, i, fx_read, sizes[i], &got), 0);
        CHECK_EQ(got, sizes[i]);
        CHECK(!memcmp(fx_read, fx_data, sizes[i]));
        CHECK_EQ(fsw_size(&FX.fs, i), sizes[i]);
    }
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        n = sizes[i];
        fx_payload(fx_data, i, 1, n);
        CHECK_EQ(fsw_get(&FX.fs, i, fx_read, FX_DATA, &got), 0);
        CHECK_EQ(got, n);
        CHECK(!memcmp(fx_read, fx_data, n));
    }
    CHECK_EQ(FX.rf.violations, 0);
}

void test_put_get(void)
{
    roundtrip(NOR4K);
    if (t_current_failed)
        return;
    roundtrip(NAND_S);
}

void test_get_errors(void)
{
    uint32_t got = 0;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_put(&FX.fs, 5, "hello", 5), 0);
    CHECK_EQ(fsw_get(&FX.fs, 6, fx_read, 100, &got), FSW_ERR_NOENT);
    CHECK_EQ(fsw_size(&FX.fs, 6), FSW_ERR_NOENT);
    CHECK_EQ(fsw_get(&FX.fs, 5, fx_read, 4, &got), FSW_ERR_TOOBIG);
    CHECK_EQ(got, 5);
    CHECK_EQ(fsw_put(&FX.fs, 0xFFFFFFFFu, "x", 1), FSW_ERR_INVAL);
    CHECK_EQ(fsw_put(&FX.fs, 1, "x", 0), FSW_ERR_INVAL);
    CHECK_EQ(fsw_put(&FX.fs, 1, fx_data, FX.fs.max_chunk + 1), FSW_ERR_TOOBIG);
    CHECK_EQ(fsw_trim(&FX.fs, 0xFFFFFFFFu), FSW_ERR_INVAL);
    CHECK_EQ(fsw_trim_range(&FX.fs, 3, 2), FSW_ERR_INVAL);
    /* damage the payload on flash (once its page has left the program buffer): the chunk
     * reads as corrupt */
    CHECK_EQ(fsw_put(&FX.fs, 6, fx_data, 400), 0);
    CHECK_EQ(FX.rf.mem[72 + 32 + 2], 'l'); /* right after the format's checkpoint */
    FX.rf.mem[72 + 32 + 2] = 'L';
    CHECK_EQ(fsw_get(&FX.fs, 5, fx_read, 100, &got), FSW_ERR_CORRUPT);
}

void test_fragments(void)
{
    /* A chunk larger than two segments on 512-byte segments: MORE/CONT fragments, each
     * continuation at byte 40 of the segment opened next. */
    uint32_t n = 1500, got, s;
    const uint8_t *m;
    CHECK_EQ(fx_setup(NOR512, 1, 0), 0);
    FX.cfg.reserve = 6; /* max_chunk 1,652 (§11: the default reserve 4 holds 1,180) */
    CHECK_EQ(fx_format(), 0);
    fx_payload(fx_data, 9, 9, n);
    CHECK_EQ(fsw_put(&FX.fs, 9, fx_data, n), 0);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fsw_get(&FX.fs, 9, fx_read, n, &got), 0);
    CHECK(!memcmp(fx_read, fx_data, n));
    /* the first fragment follows the format checkpoint in segment 0 */
    m = FX.rf.mem;
    CHECK_EQ(m[72], 1);
    CHECK_EQ(m[73], 1); /* MORE */
    CHECK_EQ(le32(m + 72 + 8), n);
    /* continuations at byte 40 of segments 1, 2, 3; a checkpoint is due at every open
     * (ckpt_interval 1) but fits only after the last, short continuation (§7) */
    for (s = 1; s < 4; s++) {
        const uint8_t *p = m + s * 512 + 40;
        CHECK_EQ(p[0], 1);
        CHECK_EQ(p[1], s < 3 ? 3 : 2); /* CONT, and MORE but on the last */
        CHECK_EQ(le32(p + 12), 408 + (s - 1) * 440);
        CHECK_EQ(le32(m + s * 512 + 16), s < 3 ? 1 : 4); /* replay_seq in the header */
    }
    CHECK_EQ(m[3 * 512 + 40 + 32 + 212], 4); /* the checkpoint */
    CHECK_EQ(le32(m + 3 * 512 + 40 + 32 + 212 + 4), 1);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_get(&FX.fs, 9, fx_read, n, &got), 0);
    CHECK(!memcmp(fx_read, fx_data, n));
}

void test_trim(void)
{
    uint32_t got;
    CHECK_EQ(fx_setup(NAND_S, 2, 0), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_put(&FX.fs, 1, "one", 3), 0);
    CHECK_EQ(fsw_put(&FX.fs, 2, "two", 3), 0);
    CHECK_EQ(fsw_trim(&FX.fs, 1), 1);
    CHECK_EQ(fsw_trim(&FX.fs, 1), 0);
    CHECK_EQ(fsw_trim(&FX.fs, 77), 0);
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, 10, &got), FSW_ERR_NOENT);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, 10, &got), FSW_ERR_NOENT);
    CHECK_EQ(fsw_get(&FX.fs, 2, fx_read, 10, &got), 0);
    CHECK(!memcmp(fx_read, "two", 3));
}

void test_trim_range(void)
{
    uint32_t k, got;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    for (k = 10; k < 30; k++)
        CHECK_EQ(fsw_put(&FX.fs, k, &k, sizeof k), 0);
    CHECK_EQ(fsw_trim_range(&FX.fs, 0, 9), 0);
    CHECK_EQ(fsw_trim_range(&FX.fs, 12, 20), 9);
    CHECK_EQ(fsw_trim_range(&FX.fs, 29, 0xFFFFFFFEu), 1);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    for (k = 10; k < 30; k++) {
        int want = (k >= 12 && k <= 20) || k == 29 ? FSW_ERR_NOENT : 0;
        CHECK_EQ(fsw_get(&FX.fs, k, fx_read, 4, &got), want);
        if (!want)
            CHECK_EQ(le32(fx_read), k);
    }
    CHECK_EQ(FX.fs.nkeys, 10);
}

void test_remount(void)
{
    uint32_t got, i;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_put(&FX.fs, 1, "synced", 6), 0);
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, 10, &got), 0);
    CHECK(!memcmp(fx_read, "synced", 6));
    /* keep writing after the remount, into the same NOR page (re-programmed in its erased
     * bytes), then remount without unmount after a sync */
    for (i = 0; i < 40; i++) {
        fx_payload(fx_data, 2, i, 300);
        CHECK_EQ(fsw_put(&FX.fs, 2, fx_data, 300), 0);
        CHECK_EQ(fsw_sync(&FX.fs), 0);
        CHECK_EQ(fx_mount(), 0);
        CHECK_EQ(fsw_get(&FX.fs, 2, fx_read, 300, &got), 0);
        CHECK(!memcmp(fx_read, fx_data, 300));
    }
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, 10, &got), 0);
    CHECK(!memcmp(fx_read, "synced", 6));
    CHECK_EQ(FX.rf.violations, 0);
}

void test_stat(void)
{
    struct fsw_stat st;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK_EQ(st.segments, 16);
    CHECK_EQ(st.free_segments, 15);
    CHECK_EQ(st.free_bytes, 4096 - 72 + 15 * 4056);
    CHECK_EQ(st.live_chunks, 0);
    CHECK_EQ(st.erase_min, 1);
    CHECK_EQ(st.erase_max, 1);
    CHECK_EQ(st.max_chunk, 4056 * (16 - 5 - 3 - 2) / 2);
    CHECK_EQ(fsw_put(&FX.fs, 3, fx_data, 5000), 0);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK_EQ(st.live_chunks, 1);
    CHECK_EQ(st.live_bytes, 5000);
    CHECK_EQ(st.free_segments, 14);
    CHECK_EQ(st.erase_max, 1);
    CHECK_EQ(st.bad_segments, 0);
}

struct walk {
    uint32_t n, keys[4], sizes[4], stop;
};

/* Records what fsw_traverse shows; stops it (returning 99) at key w->stop. */
static int walk(void *ctx, const struct fsw_chunk_info *chunk)
{
    struct walk *w = ctx;
    if (w->n < 4) {
        w->keys[w->n] = chunk->key;
        w->sizes[w->n] = chunk->lost ? 0xDEAD : chunk->size;
    }
    w->n++;
    return chunk->key == w->stop ? 99 : 0;
}

void test_introspect(void)
{
    struct fsw_info info;
    struct fsw_seg_info si;
    struct walk w = {0, {0}, {0}, 0xFFFFFFFFu};
    uint32_t s, live = 0, window = 0, in_log = 0, hot = 0xFFFFFFFFu;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_put(&FX.fs, 5, "five", 4), 0);
    CHECK_EQ(fsw_put(&FX.fs, 2, "two", 3), 0);
    CHECK_EQ(fsw_put(&FX.fs, 9, fx_data, 5000), 0); /* two fragments: 3921 + 1079 bytes */
    CHECK_EQ(fsw_info(&FX.fs, &info), 0);
    CHECK_EQ(info.entries, 3);
    CHECK_EQ(info.max_keys, FSW_DEFAULT_MAX_KEYS(4096));
    CHECK_EQ(info.ckpt_interval, 3);
    CHECK_EQ(info.reserve, 5);
    CHECK_EQ(info.wl_threshold, 12);
    CHECK_EQ(info.max_chunk, 4056 * (16 - 5 - 3 - 2) / 2);
    CHECK_EQ(info.tag_len, 0);
    CHECK_EQ(info.epoch, 0);
    CHECK_EQ(info.retired, 0);
    CHECK_EQ(info.mounted, 1);
    CHECK_EQ(info.damaged, 0);
    CHECK_EQ(info.cold_segment, 0xFFFFFFFFu);
    /* segment 1: header, checkpoint, 5, 2, the first fragment to its end; segment 2: header
     * and the continuation, its unused tail not counted */
    CHECK_EQ(info.log_bytes, 4096 + 40 + 32 + 1079);
    CHECK_EQ(fsw_traverse(&FX.fs, walk, &w), 0);
    CHECK_EQ(w.n, 3);
    CHECK(w.keys[0] == 2 && w.keys[1] == 5 && w.keys[2] == 9);
    CHECK(w.sizes[0] == 3 && w.sizes[1] == 4 && w.sizes[2] == 5000);
    w.n = 0;
    w.stop = 5;
    CHECK_EQ(fsw_traverse(&FX.fs, walk, &w), 99);
    CHECK_EQ(w.n, 2);
    for (s = 0; s < 16; s++) {
        CHECK_EQ(fsw_seg_info(&FX.fs, s, &si), 0);
        CHECK_EQ(si.erase_count, 1);
        CHECK_EQ(si.cold, 0);
        live += si.live_bytes;
        window += si.window;
        in_log += si.state == FSW_SEG_LOG;
        CHECK_EQ(si.state, si.seq ? FSW_SEG_LOG : FSW_SEG_ERASED);
        if (si.open)
            hot = s;
    }
    CHECK_EQ(fsw_seg_info(&FX.fs, 16, &si), FSW_ERR_INVAL);
    CHECK_EQ(live, (32 + 4) + (32 + 3) + (32 + 3921) + (32 + 1079));
    CHECK_EQ(in_log, 2);
    CHECK_EQ(window, 2);
    CHECK_EQ(info.window_segments, 2);
    CHECK_EQ(hot, info.hot_segment);
    CHECK_EQ(fsw_seg_info(&FX.fs, hot, &si), 0);
    CHECK_EQ(si.seq, 2);
    /* after a trim and an unmount: the context as it was left */
    CHECK_EQ(fsw_trim(&FX.fs, 5), 1);
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    CHECK_EQ(fsw_info(&FX.fs, &info), 0);
    CHECK_EQ(info.entries, 2);
    CHECK_EQ(info.mounted, 0);
}

void test_idle(void)
{
    /* Churn until segments fall out of the window, then idle pre-erases them: the next opens
     * need no erase. */
    uint32_t i, e0;
    int n;
    struct fsw_stat st;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    for (i = 0; i < 60; i++)
        CHECK_EQ(fsw_put(&FX.fs, i % 2, fx_data, 2000), 0);
    CHECK_EQ(fsw_idle(&FX.fs, 0), 0);
    n = fsw_idle(&FX.fs, 100);
    CHECK(n > 0 && n <= 3);
    CHECK_EQ(fsw_idle(&FX.fs, 100), 0); /* ckpt_interval segments erased ahead: done */
    for (i = n = 0; i < 16; i++)
        n += FX.cfg.segs[i].state == 0;
    CHECK_EQ(n, 3);
    e0 = FX.rf.erases;
    CHECK_EQ(fsw_put(&FX.fs, 7, fx_data, 4000), 0);
    CHECK_EQ(FX.rf.erases, e0);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK(st.erase_max - st.erase_min <= 16);
}

#ifdef FSW_TRACE
static uint8_t trace_log[10][24];
static int trace_n;

static void on_trace(void *ctx, const uint8_t rec[24])
{
    (void)ctx;
    if (trace_n < 10)
        memcpy(trace_log[trace_n], rec, 24);
    trace_n++;
}

void test_trace_hook(void)
{
    uint32_t got;
    static const uint8_t want_put[24] = {1, 0, 0, 0, 7, 0, 0, 0, 5, 0, 0, 0,
                                         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t want_range[24] = {4, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0};
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    FX.cfg.trace = on_trace;
    trace_n = 0;
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_put(&FX.fs, 7, "hello", 5), 0);
    CHECK_EQ(fsw_get(&FX.fs, 7, fx_read, 5, &got), 0);
    CHECK_EQ(fsw_trim(&FX.fs, 7), 1);
    CHECK_EQ(fsw_trim_range(&FX.fs, 3, 9), 0);
    CHECK_EQ(fsw_trim(&FX.fs, 7), 0); /* nothing dropped: no TRIM record (traces/README.md) */
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    CHECK_EQ(fsw_get(&FX.fs, 7, fx_read, 5, &got), FSW_ERR_NOENT); /* failures: no record */
    CHECK_EQ(trace_n, 5);
    CHECK(!memcmp(trace_log[0], want_put, 24));
    CHECK_EQ(trace_log[1][0], 2);
    CHECK_EQ(trace_log[1][8], 5);
    CHECK_EQ(trace_log[2][0], 3);
    CHECK_EQ(trace_log[2][4], 7);
    CHECK(!memcmp(trace_log[3], want_range, 24));
    CHECK_EQ(trace_log[4][0], 5);
}
#else
void test_trace_hook(void)
{
    printf("  (skipped: the library is built without FSW_TRACE)\n");
}
#endif
