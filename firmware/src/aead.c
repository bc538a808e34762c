/* Sealing records (SPEC.md §4a): nonce and associated data from a record header, the port's
 * AEAD callbacks called with them, and reservations of record seqs. No cryptography here. */
#include "fsw_priv.h"

#ifndef FSW_NO_AEAD
/* Seals (seal != 0) or opens len bytes for the record whose header words (host order) are r
 * and whose (first) header lies at addr: nonce = seq || offset field, associated data =
 * header bytes 0..23 with MORE and CONT cleared, then addr. 0, or FSW_FORGED (open only). */
int fsw_aead(fsw_t *fs, int seal, const uint32_t *r, uint32_t addr, const uint8_t *in, uint8_t *out,
             uint32_t len, uint8_t *tag)
{
    const struct fsw_config *c = fs->cfg;
    uint32_t n[3], a[7];
    n[0] = r[4];
    n[1] = r[5];
    n[2] = r[3];
    memcpy(a, r, 24);
    a[0] &= ~((uint32_t)(F_MORE | F_CONT) << 8);
    a[6] = addr;
    fsw_le(n, 3);
    fsw_le(a, 7);
    if (seal)
        return c->aead_seal(c->aead_ctx, (uint8_t *)n, (uint8_t *)a, 28, in, out, len, tag) ? FSW_ERR_IO
                                                                                              : 0;
    return c->aead_open(c->aead_ctx, (uint8_t *)n, (uint8_t *)a, 28, in, out, len, tag) ? FSW_FORGED
                                                                                          : 0;
}

/* Sets up encryption from the config (fsw_setup): tag_len and header bytes 32..35, suite 0x01
 * and the key check value, the first 3 bytes of the tag of an empty message under nonce 0 with
 * associated data "flashswap key check" (§4a). */
int fsw_aead_setup(fsw_t *fs)
{
    const struct fsw_config *c = fs->cfg;
    static const uint8_t zero[12] = {0};
    uint8_t t[FSW_TAG];
    fs->crypt = NONE;
    if (!c->aead_seal || !c->aead_open)
        return 0;
    if (c->aead_seal(c->aead_ctx, zero, (const uint8_t *)"flashswap key check", 19, zero, t, 0, t))
        return FSW_ERR_IO;
    fs->tag = FSW_TAG;
    fs->crypt = 1u | (uint32_t)t[0] << 8 | (uint32_t)t[1] << 16 | (uint32_t)t[2] << 24;
    return 0;
}

/* §4a "Nonces": when the next seq is not below a durable reservation (or always, before a
 * checkpoint), appends a RESERVE record whose seq field claims SEQ_BLOCK more seqs and syncs
 * it. 1 if it wrote one, 0 if none was needed, < 0. The caller leaves room for 32 bytes and
 * lends its record header words r (stack depth). */
int fsw_reserve(fsw_t *fs, int always, uint32_t *r)
{
    uint64_t b = fs->next_rseq + SEQ_BLOCK;
    int err;
    if (!fs->tag || (!always && fs->next_rseq < fs->limit))
        return 0;
    r[0] = T_RESERVE | F_ENC << 8 | FSW_TAG << 16;
    r[1] = r[2] = r[3] = r[6] = 0;
    r[4] = (uint32_t)b;
    r[5] = (uint32_t)(b >> 32);
    err = fsw_rec_put(fs, r);
    if (!err)
        err = fsw_log_sync(fs);
    if (!err)
        fs->limit = b;
    return err ? err : 1;
}
#else
typedef int fsw_aead_compiled_out; /* ISO C forbids an empty translation unit */
#endif
