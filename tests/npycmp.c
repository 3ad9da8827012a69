/* npycmp.c - test helper: compares two .npy arrays of the same shape.
 *
 *   npycmp A.npy B.npy [ATOL] [--argmax]
 *
 * Prints the largest absolute difference; exits 0 when it is at most ATOL
 * (default 0: identical) and, with --argmax, when every row's arg-max
 * agrees; 1 otherwise; 2 when a file cannot be read. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitplan.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: npycmp A.npy B.npy [ATOL] [--argmax]\n");
        return 2;
    }
    double atol = 0;
    int argmax = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--argmax") == 0)
            argmax = 1;
        else
            atol = atof(argv[i]);
    }
    bp_tensor *a = NULL, *b = NULL;
    if (bp_npy_load(&a, argv[1]) || bp_npy_load(&b, argv[2])) {
        fprintf(stderr, "npycmp: %s\n", bp_errmsg());
        return 2;
    }
    int rc = 0;
    if (a->rank != b->rank || memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank)) {
        char sa[128], sb[128];
        fprintf(stderr, "npycmp: shapes differ: %s vs %s\n",
                bp_shape_str(sa, sizeof sa, a->rank, a->dims),
                bp_shape_str(sb, sizeof sb, b->rank, b->dims));
        rc = 1;
        goto out;
    }
    int64_t n = bp_tensor_numel(a);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(bp_tensor_get(a, i) - bp_tensor_get(b, i));
        if (!(d <= worst))
            worst = isnan(d) ? INFINITY : d;
    }
    int64_t cols = a->rank ? a->dims[a->rank - 1] : 1, bad = 0;
    if (argmax && cols > 0)
        for (int64_t r = 0; r < n / cols; r++) {
            int64_t ia = 0, ib = 0;
            for (int64_t c = 1; c < cols; c++) {
                if (bp_tensor_get(a, r * cols + c) > bp_tensor_get(a, r * cols + ia))
                    ia = c;
                if (bp_tensor_get(b, r * cols + c) > bp_tensor_get(b, r * cols + ib))
                    ib = c;
            }
            bad += ia != ib;
        }
    printf("max abs difference %.3g over %lld values", worst, (long long)n);
    if (argmax)
        printf(", %lld of %lld arg-max rows differ", (long long)bad,
               (long long)(n / cols));
    printf("\n");
    rc = worst <= atol && bad == 0 ? 0 : 1;
out:
    bp_tensor_free(&a);
    bp_tensor_free(&b);
    return rc;
}
