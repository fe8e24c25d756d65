/* common/sha256.h — SHA-256 (FIPS 180-4), streaming and whole-file.
 *
 * Used to check a model bundle's files against the sha256 recorded in its
 * manifest.json. Small and dependency-free on purpose (no OpenSSL link).
 */
#ifndef CV_COMMON_SHA256_H
#define CV_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN	  64

struct sha256_ctx {
	uint32_t h[8];
	uint64_t total; /* bytes hashed */
	uint8_t block[64];
	size_t used; /* bytes in block */
};

void sha256_init(struct sha256_ctx *c);
void sha256_update(struct sha256_ctx *c, const void *data, size_t n);
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);
/* Lower-case hex of a digest into hex[SHA256_HEX_LEN + 1]. */
void sha256_hex(const uint8_t digest[SHA256_DIGEST_LEN], char hex[SHA256_HEX_LEN + 1]);
/* Hash a whole file into hex; CV_EIO with text (naming the file) on error. */
int sha256_file_hex(const char *path, char hex[SHA256_HEX_LEN + 1], char *err, size_t errlen);

#endif
