/* fuzz_plan.c - fuzz target: bytes -> plan reader; plans that load are
 * printed, written back and read again. */
#include <stdlib.h>
#include <string.h>

#include "bitplan.h"
#include "../../src/plan.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file("plan", ".json", data, size);
    if (!path)
        return 0;
    char copy[160];
    snprintf(copy, sizeof copy, "%s.out", path);
    bp_plan *p = NULL;
    if (bp_plan_load(&p, path) == BP_OK) {
        char *text = NULL;
        if (bp_plan_to_json(p, &text) == BP_OK)
            free(text);
        bp_plan *q = NULL;
        if (bp_plan_save(p, copy) == BP_OK && bp_plan_load(&q, copy) == BP_OK)
            bp_plan_free(&q);
        unlink(copy);
        bp_plan_free(&p);
    }
    unlink(path);
    return 0;
}
