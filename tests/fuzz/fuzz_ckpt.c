/* fuzz_ckpt.c - fuzz target: bytes -> checkpoint reader (header, length,
 * checksum, identity, state), and the same bytes straight into the state
 * decoder, since mutated files rarely keep a valid checksum.  A state that
 * decodes is encoded again and must decode to the same bytes.  The bytes
 * also go through the version-1 decoder (files saved before version 2
 * still resume); its states re-encode as the newest version and must
 * decode so. */
#include <stdlib.h>
#include <string.h>

#include "bitplan.h"
#include "../../sensitivity/checkpoint.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("ckpt", ".bin", data, size);
    if (path) {
        /* the identity of the seeds (tests/fuzz/seeds/ckpt) */
        bp_ckpt *c = NULL;
        if (bp_ckpt_new(&c, NULL, 0, "fuzz-model", "fuzz-data",
                        "fuzz-options") == BP_OK) {
            (void)bp_ckpt_load(c, path);
            bp_ckpt_free(&c);
        }
        unlink(path);
    }
    bp_ckpt_state s = {0}, t = {0};
    if (bp_ckpt_state_decode(&s, data, size, "fuzz") == BP_OK) {
        uint8_t *enc = NULL, *enc2 = NULL;
        size_t n = 0, n2 = 0;
        if (bp_ckpt_state_encode(&s, &enc, &n) == BP_OK) {
            if (n != size || memcmp(enc, data, size) != 0)
                abort(); /* the encoding is canonical */
            if (bp_ckpt_state_decode(&t, enc, n, "again") != BP_OK ||
                bp_ckpt_state_encode(&t, &enc2, &n2) != BP_OK || n2 != n ||
                memcmp(enc, enc2, n) != 0)
                abort();
        }
        free(enc);
        free(enc2);
        bp_ckpt_state_clear(&t);
    }
    bp_ckpt_state_clear(&s);
    if (bp_ckpt_state_decode_version(&s, data, size, 1, "fuzz") == BP_OK) {
        uint8_t *enc = NULL;
        size_t n = 0;
        if (bp_ckpt_state_encode(&s, &enc, &n) == BP_OK) {
            if (bp_ckpt_state_decode(&t, enc, n, "again") != BP_OK)
                abort(); /* what version 1 held, the newest holds */
            bp_ckpt_state_clear(&t);
        }
        free(enc);
    }
    bp_ckpt_state_clear(&s);
    return 0;
}
