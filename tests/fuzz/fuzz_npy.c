/* fuzz_npy.c - fuzz target: bytes -> .npy reader (header parsing, size
 * checks, streaming reads with dtype conversion).  The reader takes a path,
 * so each input goes through a scratch file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bitplan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/bp-fuzz-npy.%ld", (long)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    bp_npy *r = NULL;
    if (bp_npy_open(&r, path) == BP_OK) {
        int64_t rows = bp_npy_count(r), per = bp_npy_row_numel(r);
        int64_t take = rows < 4 ? rows : 4;
        if (per > 0 && per < (1 << 16) && take > 0) {
            double *buf = malloc((size_t)(take * per) * sizeof *buf);
            if (buf) {
                (void)bp_npy_read_rows(r, 0, take, BP_F64, buf);
                (void)bp_npy_read_rows(r, rows - take, take, BP_F32, buf);
                (void)bp_npy_read_rows(r, 0, take, BP_I64, buf);
            }
            free(buf);
        }
        bp_npy_close(&r);
    }
    bp_tensor *t = NULL;
    if (size < (1 << 20) && bp_npy_load(&t, path) == BP_OK)
        bp_tensor_free(&t);
    unlink(path);
    return 0;
}
