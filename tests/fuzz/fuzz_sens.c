/* fuzz_sens.c - fuzz target: bytes -> sensitivity-file reader; files that
 * load are written back and read again (the writer must accept whatever
 * the reader accepted). */
#include <stdlib.h>
#include <string.h>

#include "bitplan.h"
#include "../../sensitivity/sensfile.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("sens", ".json", data, size);
    if (!path)
        return 0;
    char copy[160];
    snprintf(copy, sizeof copy, "%s.out", path);
    bp_sens *s = NULL;
    if (bp_sens_load(&s, path) == BP_OK) {
        bp_sens *t = NULL;
        if (bp_sens_save(s, copy) == BP_OK && bp_sens_load(&t, copy) == BP_OK)
            bp_sens_free(&t);
        unlink(copy);
        bp_sens_free(&s);
    }
    unlink(path);
    return 0;
}
