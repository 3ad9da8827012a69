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
 * significant digits so a file read back and written again is identical.
 *
 * The full layout (every field checked on reading; a missing or mistyped one
 * is BP_EINVAL naming the file and its JSON path):
 *   {"format":"bitplan-sensitivity", "version":1,        (optional on read)
 *    "model":{"path":str, "sha256":str,
 *             "float_params":int, "other_params":int,
 *             "const_bytes":int},                       (all 3 optional)
 *    "data":{"path":str, "sha256":str, "samples":int},
 *    "loss":num, "seed":int (or a decimal string above 2^53),
 *    "settings":{...}, "stop_reason":str,
 *    "layers":[{"name":str, "op":str, "numel":int,
 *               "macs":int, "out_channels":int,
 *               "in_numel":int, "out_numel":int,        (these 4 optional)
 *               "trace":{"mean":num, "stderr":num, "samples":int,
 *                        "method":str},
 *               "top_eigenvalue":{"value":num or null, "iterations":int},
 *               "perturbation":{"2":num>=0, ...},       (keys "1".."16")
 *               "omega":{"2":num, ...},                (keys a subset of
 *                                                        perturbation's)
 *               "loss_increase":{"2":num, ...}}]}      (optional; keys those
 *                                                        of perturbation)
 * An omega missing for a bit-width present in perturbation is computed on
 * reading as trace.mean / numel * perturbation (HAWQ-V2's Omega).
 * loss_increase (bp_hessian_loss_increase) is the measured calibration loss
 * increase of quantizing that layer alone, first-order term removed; when
 * present it has every perturbation key (`solve --metric loss` uses it).
 * The optional facts let `bitplan solve` price a plan from this file alone:
 * out_channels (per-channel scales and int32 bias), in_numel / out_numel
 * (activation elements per sample, for the latency model), float_params
 * (every float parameter of the model: the float32 baseline of `size=25%`)
 * and other_params (float parameters that stay float in a quantized model:
 * not a layer's weight or bias, nor a BatchNorm folded into a layer) and
 * const_bytes (the integer executor's scales and dyadic numbers outside the
 * layers, which every plan carries: src/qgraph.h).  0 means unknown;
 * `bitplan sensitivity` fills them from bp_layer_facts_from_graph(). */
#ifndef BP_SENSFILE_H
#define BP_SENSFILE_H

#include <stdint.h>

#define BP_SENS_MAX_BITS 16

typedef struct bp_sens_layer {
    char *name;              /* weight initializer name */
    char *op;                /* "Conv", "Gemm", "MatMul" */
    int64_t numel;
    int64_t macs;            /* per sample (0 when unknown) */
    int64_t out_channels;    /* rows with their own scale (0 when unknown) */
    int64_t in_numel, out_numel; /* activations per sample (0 when unknown) */
    double trace, trace_stderr;
    int64_t trace_samples;
    char *trace_method;      /* "exact", "hutchpp", "hutchinson" */
    double top_eig;          /* NAN when not computed (--eig none) */
    int eig_iterations;
    /* indexed by bit-width 1..16; has_bits[b] says which are present */
    int has_bits[BP_SENS_MAX_BITS + 1];
    double perturbation[BP_SENS_MAX_BITS + 1];
    double omega[BP_SENS_MAX_BITS + 1];
    int has_loss_increase;   /* loss_increase[b] for every has_bits[b] */
    double loss_increase[BP_SENS_MAX_BITS + 1];
} bp_sens_layer;

typedef struct bp_sens {
    char *model_path, *model_sha256;
    int64_t float_params;    /* all float parameters (0 when unknown) */
    int64_t other_params;    /* those left in float when quantized */
    int64_t const_bytes;     /* the integer executor's per-graph scales */
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
 * index) when a key is missing or of the wrong type; BP_EIO when the file
 * cannot be read. */
int bp_sens_load(bp_sens **out, const char *path);

/* Writes s to path atomically (temporary file, then rename).  BP_EINVAL
 * (nothing written) when s holds what the format cannot carry: a non-finite
 * number other than top_eig, a layer without name or bit-widths, a settings
 * text that is not a JSON object. */
int bp_sens_save(const bp_sens *s, const char *path);

/* An empty bp_sens with n layers, all fields zero / NULL (top_eig NAN). */
int bp_sens_new(bp_sens **out, int n_layers);
void bp_sens_free(bp_sens **s);

#endif
