/* fuzz_onnx.c - fuzz target: bytes -> ONNX loader -> graph construction,
 * folding, shape inference at two batch sizes, layer listing, and (when the
 * activations are small) one float32 run on zeros. */
#include <stdint.h>
#include <stdlib.h>

#include "bitplan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_graph *g = NULL;
    if (bp_onnx_load_mem(&g, data, size, "fuzz.onnx") != BP_OK)
        return 0;
    bp_layer *l = NULL;
    int n = 0;
    if (bp_graph_layers(g, &l, &n) == BP_OK)
        free(l);
    if (bp_graph_infer(g, 2) == BP_OK) {
        /* run only graphs whose values stay small: the fuzzer's memory limit
         * is not what is under test */
        int64_t total = 0;
        for (int v = 0; v < g->n_values; v++) {
            int64_t k = 1;
            for (int d = 0; d < g->values[v].rank; d++)
                k *= g->values[v].dims[d];
            total += k;
        }
        bp_exec *ex = NULL;
        if (total < (1 << 20) && g->n_inputs == 1 &&
            bp_exec_new(&ex, g, BP_F32, 2) == BP_OK) {
            const bp_value *in = &g->values[g->inputs[0]];
            int64_t k = 1;
            for (int d = 0; d < in->rank; d++)
                k *= in->dims[d];
            float *x = calloc((size_t)k + 1, sizeof *x);
            const void *ins[1] = {x};
            if (x)
                (void)bp_exec_run(ex, ins, 2);
            free(x);
            bp_exec_free(&ex);
        }
    }
    bp_graph_free(&g);
    return 0;
}
