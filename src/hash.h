/* hash.h - SHA-256, for the identities of models, data and plans.
 *
 * Sensitivity files and plans record the hash of the model (and data) they
 * were made from, so that a plan applied to another model is refused. */
#ifndef BP_HASH_H
#define BP_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct bp_sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
} bp_sha256;

void bp_sha256_init(bp_sha256 *s);
void bp_sha256_update(bp_sha256 *s, const void *data, size_t n);
/* Writes 64 lowercase hex digits and a NUL into hex. */
void bp_sha256_hex(bp_sha256 *s, char hex[65]);

/* Hash of a whole file; BP_EIO naming the file when it cannot be read. */
int bp_sha256_file(const char *path, char hex[65]);

#endif
