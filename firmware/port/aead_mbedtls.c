/* AES-128-GCM for the store through Mbed TLS (see aead_mbedtls.h). Built without Mbed TLS
 * (FSW_PORT_NO_MBEDTLS, e.g. on the Cortex-M4 image), installing reports -1. */
#include "aead_mbedtls.h"

#if !defined(FSW_PORT_NO_MBEDTLS) && !defined(FSW_NO_AEAD)
#include <mbedtls/gcm.h>

static int seal(void *ctx, const uint8_t *nonce, const uint8_t *ad, uint32_t ad_len,
                const uint8_t *in, uint8_t *out, uint32_t len, uint8_t *tag)
{
    return mbedtls_gcm_crypt_and_tag(ctx, MBEDTLS_GCM_ENCRYPT, len, nonce, 12, ad, ad_len, in,
                                     out, 16, tag);
}

static int open_(void *ctx, const uint8_t *nonce, const uint8_t *ad, uint32_t ad_len,
                 const uint8_t *in, uint8_t *out, uint32_t len, const uint8_t *tag)
{
    return mbedtls_gcm_auth_decrypt(ctx, len, nonce, 12, ad, ad_len, tag, 16, in, out);
}

size_t fsw_mbedtls_ctx_size(void)
{
    return sizeof(mbedtls_gcm_context);
}

int fsw_mbedtls_install(struct fsw_config *c, void *ctx, const uint8_t *key)
{
    mbedtls_gcm_init(ctx);
    if (mbedtls_gcm_setkey(ctx, MBEDTLS_CIPHER_ID_AES, key, 128))
        return -1;
    c->aead_seal = seal;
    c->aead_open = open_;
    c->aead_ctx = ctx;
    return 0;
}

void fsw_mbedtls_free(void *ctx)
{
    mbedtls_gcm_free(ctx);
}
#else
size_t fsw_mbedtls_ctx_size(void)
{
    return 0;
}

int fsw_mbedtls_install(struct fsw_config *c, void *ctx, const uint8_t *key)
{
    (void)c, (void)ctx, (void)key;
    return -1;
}

void fsw_mbedtls_free(void *ctx)
{
    (void)ctx;
}
#endif
