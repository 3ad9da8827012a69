/* fuzz_profile.c - fuzz target: bytes -> hardware-profile reader, then
 * the queries the cost model makes of a loaded profile. */
#include <stdlib.h>
#include <string.h>

#include "bitplan.h"
#include "../../ilp/profile.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("profile", ".json", data, size);
    if (!path)
        return 0;
    bp_profile *p = NULL;
    if (bp_profile_load(&p, path) == BP_OK) {
        (void)bp_profile_has_latency(p);
        for (int w = 1; w <= 8; w++)
            for (int a = 1; a <= 8; a++) {
                const bp_profile_peak *pk = NULL;
                (void)bp_profile_native(p, w, a, &pk);
            }
        bp_profile_free(&p);
    }
    unlink(path);
    return 0;
}
