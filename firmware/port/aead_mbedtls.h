/* AEAD callbacks for struct fsw_config on Mbed TLS 2.28 (AES-128-GCM, SPEC.md §4a): the host
 * port, the C tests and the Python C engine use it. Not part of the library (firmware/src has
 * no cryptographic code). */
#ifndef FSW_AEAD_MBEDTLS_H
#define FSW_AEAD_MBEDTLS_H

#include <stddef.h>
#include <stdint.h>

#include "flashswap.h"

/* Bytes a context needs (an mbedtls_gcm_context); 0 when built without Mbed TLS. */
size_t fsw_mbedtls_ctx_size(void);
/* Sets the 16-byte key in ctx (fsw_mbedtls_ctx_size() bytes) and points c's AEAD callbacks at
 * it; the caller still provides aead_buffer. 0, or -1 (no Mbed TLS, or it refused the key). */
int fsw_mbedtls_install(struct fsw_config *c, void *ctx, const uint8_t *key);
/* Frees what Mbed TLS holds in ctx. */
void fsw_mbedtls_free(void *ctx);

#endif
