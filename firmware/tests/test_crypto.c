/* Encrypted stores (SPEC.md §4a) through the Mbed TLS port: round trip with no plaintext on
 * flash, the key errors at mount (nothing written), tampering read as corrupt, and nonce
 * uniqueness over an exhaustive power-cut sweep (every nonce the seal callback sees is logged).
 * The Cortex-M4 image has no Mbed TLS (firmware/README.md, "Encryption"): there these tests
 * say so and pass. */
#include <string.h>

#include "fixture.h"
#include "runner.h"

#ifdef FSW_TEST_MBEDTLS
#include "aead_mbedtls.h"

static const uint8_t KEY[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t OTHER[16] = {15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
static uint64_t gcm_ctx[256]; /* >= sizeof(mbedtls_gcm_context), aligned */
static uint8_t aead_buf[64 * 1024 + 16];

/* Every nonce sealed since the last log_reset, to find one sealed twice. */
#define NLOG 8192
static uint8_t nonces[NLOG][12];
static uint32_t nlog, nlog_over;
static int (*real_seal)(void *, const uint8_t *, const uint8_t *, uint32_t, const uint8_t *,
                        uint8_t *, uint32_t, uint8_t *);

static int logging_seal(void *ctx, const uint8_t *nonce, const uint8_t *ad, uint32_t ad_len,
                        const uint8_t *in, uint8_t *out, uint32_t len, uint8_t *tag)
{
    static const uint8_t zero[12] = {0};
    if (!memcmp(nonce, zero, 12)) /* the key check value: the same empty message each time */
        ;
    else if (nlog < NLOG)
        memcpy(nonces[nlog++], nonce, 12);
    else
        nlog_over = 1;
    return real_seal(ctx, nonce, ad, ad_len, in, out, len, tag);
}

/* The store in FX encrypts under key (NULL: no key). */
static int installed;

static int use_key(const uint8_t *key)
{
    FX.cfg.aead_seal = 0;
    FX.cfg.aead_open = 0;
    if (installed)
        fsw_mbedtls_free(gcm_ctx); /* Mbed TLS allocates in setkey */
    installed = 0;
    if (!key)
        return 0;
    installed = 1;
    if (sizeof gcm_ctx < fsw_mbedtls_ctx_size() || fsw_mbedtls_install(&FX.cfg, gcm_ctx, key))
        return -1;
    real_seal = FX.cfg.aead_seal;
    FX.cfg.max_keys = 0; /* the default: a tag makes the checkpoint 16 bytes longer */
    FX.cfg.aead_seal = logging_seal;
    FX.cfg.aead_buffer = aead_buf;
    FX.cfg.aead_buffer_size = sizeof aead_buf;
    return 0;
}

static int has(const uint8_t *hay, uint32_t n, const uint8_t *needle, uint32_t m)
{
    uint32_t i;
    for (i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, m))
            return 1;
    return 0;
}

/* fsw_traverse reports the size fsw_get returns, without the tag (the callback may read). */
static int same_size(void *ctx, const struct fsw_chunk_info *chunk)
{
    return chunk->lost || fsw_size(ctx, chunk->key) != (int32_t)chunk->size;
}

void test_crypto_round_trip(void)
{
    uint32_t k, v, got;
    struct fsw_stat st;
    struct fsw_info info;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(use_key(KEY), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(FX.rf.mem[32], 1); /* suite AES-128-GCM, then the key check value */
    for (v = 1; v <= 60; v++) {
        fx_payload(fx_data, v % 10, v, 50 + v * 37);
        CHECK_EQ(fsw_put(&FX.fs, v % 10, fx_data, 50 + v * 37), 0);
    }
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_stat(&FX.fs, &st), 0);
    CHECK_EQ(st.max_chunk, FX.fs.max_chunk - 16); /* a tag follows every chunk */
    CHECK_EQ(fsw_info(&FX.fs, &info), 0);
    CHECK_EQ(info.tag_len, 16);
    CHECK_EQ(info.max_chunk, st.max_chunk);
    CHECK_EQ(info.entries, 10);
    CHECK_EQ(fsw_traverse(&FX.fs, same_size, &FX.fs), 0);
    for (v = 51; v <= 60; v++) {
        k = v % 10;
        CHECK_EQ(fsw_get(&FX.fs, k, fx_read, FX_DATA, &got), 0);
        fx_payload(fx_data, k, v, 50 + v * 37);
        CHECK_EQ(got, 50 + v * 37);
        CHECK(!memcmp(fx_read, fx_data, got));
    }
    /* no 16-byte piece of any chunk ever put is on flash */
    for (v = 1; v <= 60; v++) {
        fx_payload(fx_data, v % 10, v, 50 + v * 37);
        CHECK(!has(FX.rf.mem, FX.rf.size, fx_data, 16));
        CHECK(!has(FX.rf.mem, FX.rf.size, fx_data + 40, 16));
    }
    CHECK_EQ(FX.rf.violations, 0);
    use_key(0);
}

void test_crypto_key_errors(void)
{
    uint32_t progs, erases;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(use_key(KEY), 0);
    CHECK_EQ(fx_format(), 0);
    fx_payload(fx_data, 1, 1, 300);
    CHECK_EQ(fsw_put(&FX.fs, 1, fx_data, 300), 0);
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    fx_save();
    progs = FX.rf.progs;
    erases = FX.rf.erases;
    CHECK_EQ(use_key(0), 0);
    CHECK_EQ(fx_mount(), FSW_ERR_KEY); /* encrypted, no key */
    CHECK_EQ(use_key(OTHER), 0);
    CHECK_EQ(fx_mount(), FSW_ERR_KEY); /* another key */
    CHECK_EQ(FX.rf.progs, progs);
    CHECK_EQ(FX.rf.erases, erases);
    CHECK_EQ(use_key(KEY), 0);
    CHECK_EQ(fx_mount(), 0);
    CHECK_EQ(fsw_get(&FX.fs, 1, fx_read, FX_DATA, 0), 0);
    CHECK(!memcmp(fx_read, fx_data, 300));
    /* a plaintext store is refused with a key: an image swapped in must not be trusted */
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(use_key(KEY), 0);
    CHECK_EQ(fx_mount(), FSW_ERR_KEY);
    use_key(0);
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* Recompute the CRCs of the record at a (payload of n bytes): an attacker who knows the format. */
static void fix_crcs(uint8_t *m, uint32_t a, uint32_t n)
{
    put32(m + a + 24, fsw_crc32(0, m + a + 32, n));
    put32(m + a + 28, fsw_crc32(0, m + a, 28));
}

void test_crypto_tamper(void)
{
    uint32_t a_old, a_new, n, i;
    int err;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(use_key(KEY), 0);
    CHECK_EQ(fx_format(), 0);
    fx_payload(fx_data, 1, 1, 500);
    CHECK_EQ(fsw_put(&FX.fs, 1, fx_data, 500), 0);
    CHECK_EQ(fsw_put(&FX.fs, 2, fx_data, 100), 0);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    a_old = FX.cfg.index[0].addr;
    fx_payload(fx_data, 1, 2, 500);
    CHECK_EQ(fsw_put(&FX.fs, 1, fx_data, 500), 0);
    CHECK_EQ(fsw_put(&FX.fs, 3, fx_data, 100), 0);
    CHECK_EQ(fsw_sync(&FX.fs), 0);
    a_new = FX.cfg.index[0].addr;
    n = FX.cfg.index[0].size;
    CHECK_EQ(n, 516);
    fx_save();
    /* a flipped ciphertext bit, CRCs fixed: the tag fails */
    for (i = 0; i < 8 * n; i += 61) {
        fx_restore();
        FX.rf.mem[a_new + 32 + i / 8] ^= (uint8_t)(1u << (i % 8));
        fix_crcs(FX.rf.mem, a_new, n);
        err = fx_mount();
        if (!err)
            err = fsw_get(&FX.fs, 1, fx_read, FX_DATA, 0);
        CHECK_EQ(err, FSW_ERR_CORRUPT);
    }
    /* the older record of key 1 copied over the newest: corrupt, never the older data */
    fx_restore();
    memcpy(FX.rf.mem + a_new, FX.rf.mem + a_old, 32 + n);
    err = fx_mount();
    if (!err)
        err = fsw_get(&FX.fs, 1, fx_read, FX_DATA, 0);
    CHECK_EQ(err, FSW_ERR_CORRUPT);
    CHECK_EQ(le32(FX.rf.mem + a_new + 16), le32(FX.rf.mem + a_old + 16)); /* the old seq */
    use_key(0);
}

/* After tests/test_store_crypto.py: puts, trims and syncs on NOR, cut at every operation. */
static int scenario(void)
{
    uint32_t i;
    int err = 0;
    for (i = 0; i < 14 && !err; i++) {
        fx_payload(fx_data, i % 5, i, 300 + 450 * (i % 4));
        err = fsw_put(&FX.fs, i % 5, fx_data, 300 + 450 * (i % 4));
        if (!err && i % 3 == 2)
            err = fsw_sync(&FX.fs);
        if (!err && i % 5 == 4)
            err = fsw_trim(&FX.fs, (i + 1) % 5) < 0 ? -1 : 0;
    }
    return err ? err : fsw_sync(&FX.fs);
}

static int nonces_unique(void)
{
    uint32_t i, j;
    for (i = 0; i < nlog; i++)
        for (j = i + 1; j < nlog; j++)
            if (!memcmp(nonces[i], nonces[j], 12))
                return 0;
    return !nlog_over;
}

void test_crypto_nonces_under_power_cuts(void)
{
    uint32_t total, cut, base;
    CHECK_EQ(fx_setup(NOR4K, 3, 0), 0);
    CHECK_EQ(use_key(KEY), 0);
    nlog = nlog_over = 0;
    CHECK_EQ(fx_format(), 0);
    CHECK_EQ(fsw_unmount(&FX.fs), 0);
    base = nlog;
    fx_save();
    CHECK_EQ(fx_mount(), 0);
    total = FX.rf.ops;
    CHECK_EQ(scenario(), 0);
    total = FX.rf.ops - total;
    CHECK(total > 10);
    for (cut = 0; cut < total; cut += FSW_TEST_SCALE) {
        fx_restore();
        nlog = base;
        CHECK_EQ(fx_mount(), 0);
        ramflash_cut_after(&FX.rf, (long)cut, cut);
        CHECK(scenario() != 0);
        FX.rf.cut = -1;
        FX.rf.off = 0;
        CHECK_EQ(fx_mount(), 0);
        fx_payload(fx_data, 9, 9, 200);
        CHECK_EQ(fsw_put(&FX.fs, 9, fx_data, 200), 0);
        CHECK_EQ(fsw_sync(&FX.fs), 0);
        CHECK_EQ(fx_mount(), 0);
        CHECK_EQ(fsw_get(&FX.fs, 9, fx_read, FX_DATA, 0), 0);
        if (!nonces_unique())
            printf("  cut %u: a nonce was sealed twice\n", (unsigned)cut);
        CHECK(nonces_unique());
    }
    use_key(0);
}
#else
static void skipped(void)
{
    printf("  (skipped: no Mbed TLS on this target, firmware/README.md \"Encryption\")\n");
}

void test_crypto_round_trip(void)
{
    skipped();
}

void test_crypto_key_errors(void)
{
    skipped();
}

void test_crypto_tamper(void)
{
    skipped();
}

void test_crypto_nonces_under_power_cuts(void)
{
    skipped();
}
#endif
