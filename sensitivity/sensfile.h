/* sensfile.h - the sensitivity file (sensitivity.json): what `bitplan
 * sensitivity` writes and `bitplan solve --sensitivity` reads.
 *
 * Keys scripts rely on (issue 3, DESIGN.md):
 *   {"layers":[{"name","op","numel",
 *               "trace":{"mean","stderr","samples","method"},
 *               "top_eigenvalue":{"value","iterations"},
 *               "perturbation":{"<bits>":value},
 *               "omega":{"<bits>":value}}],
 *    "loss", "seed"}
 * plus model identity (path, sha256), data identity (path, sha256, samples),
 * estimator settings and the stopping reason.  Numbers are written with 17
 * significant digits so a file read back and written again is identical. */
#ifndef BP_SENSFILE_H
#define BP_SENSFILE_H

#include <stdint.h>

#define BP_SENS_MAX_BITS 16

typedef struct bp_sens_layer {
    char *name;              /* weight initializer name */
    char *op;                /* "Conv", "Gemm", "MatMul" */
    int64_t numel;
    int64_t macs;            /* per sample (0 when unknown) */
    double trace, trace_stderr;
    int64_t trace_samples;
    char *trace_method;      /* "exact", "hutchpp", "hutchinson" */
    double top_eig;          /* NAN when not computed (--eig none) */
    int eig_iterations;
    /* indexed by bit-width 1..16; has_bits[b] says which are present */
    int has_bits[BP_SENS_MAX_BITS + 1];
    double perturbation[BP_SENS_MAX_BITS + 1];
    double omega[BP_SENS_MAX_BITS + 1];
} bp_sens_layer;

typedef struct bp_sens {
    char *model_path, *model_sha256;
    char *data_path, *data_sha256;
    int64_t samples;         /* calibration samples used */
    double loss;             /* mean cross-entropy on them */
    uint64_t seed;
    char *settings;          /* estimator settings as a JSON object text */
    char *stop_reason;       /* "tolerance", "max-samples", "exact" */
    int n_layers;
    bp_sens_layer *layers;
} bp_sens;

/* Reads path. BP_EINVAL naming the file and the field (with the layer
 * index) when a key is missing or of the wrong type. */
int bp_sens_load(bp_sens **out, const char *path);

/* Writes s to path atomically (temporary file, then rename). */
int bp_sens_save(const bp_sens *s, const char *path);

/* An empty bp_sens with n layers, all fields zero / NULL. */
int bp_sens_new(bp_sens **out, int n_layers);
void bp_sens_free(bp_sens **s);

#endif
