/* profile.h - hardware profiles: what a layer costs in time on a device.
 *
 * A profile is a JSON file (schema in profiles/README.md) of one of three
 * kinds:
 *  - roofline: peak operations per second for every (weight bits,
 *    activation bits) pair the hardware runs natively, memory bandwidth and
 *    a per-layer launch overhead; every number carries a "source"; and
 *    optionally (`bitplan profile --measure` writes them) a fitted
 *    "layer_model" that prices layers in place of the roofline formula, and
 *    "op_costs", the ops between layers charged to the layer after them
 *    (cost.h);
 *  - table: measured latencies per layer (by weight name or by weight
 *    shape) and bit pair, with a roofline profile as fallback for anything
 *    the table lacks;
 *  - bops: hardware-neutral; no latency model (latency budgets are refused),
 *    plans are priced in bytes and bit operations only.
 *
 * Names: `--profile NAME` is a shipped profile when NAME has no '/' and does
 * not end in ".json"; it is looked up as NAME.json in, in order, every
 * directory of $BITPLAN_PROFILE_PATH (':'-separated), the installed
 * $(pkgdatadir)/profiles, and the source tree's profiles/ (so the binary
 * works from the build tree before `make install`).  Anything else is a
 * path.
 *
 * Ownership: a bp_profile owns everything it points to, including the
 * fallback profile of a table; bp_profile_free releases all of it. */
#ifndef BP_PROFILE_H
#define BP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

typedef enum bp_profile_kind {
    BP_PROFILE_ROOFLINE = 0,
    BP_PROFILE_TABLE,
    BP_PROFILE_BOPS
} bp_profile_kind;

/* One natively supported (weight bits, activation bits) pair. */
typedef struct bp_profile_peak {
    int w_bits, a_bits;
    double ops_per_s;        /* 1 multiply-accumulate = 2 operations */
} bp_profile_peak;

/* One measured latency of a table profile; matches by name when `layer` is
 * set, else by weight shape. */
typedef struct bp_profile_entry {
    char *layer;             /* weight initializer name, or NULL */
    int rank;                /* shape match when layer is NULL */
    int64_t shape[BP_MAX_RANK];
    int w_bits, a_bits;
    double latency_s;
} bp_profile_entry;

/* The optional fitted model of a layer's latency on a roofline profile (the
 * formula is in cost.h and profiles/README.md): one set of coefficients
 * per regime (a layer on one thread, or split over the executor's pool). */
#define BP_PROFILE_MAX_LM_BITS 32
typedef struct bp_profile_lm_bits {
    int w_bits;
    int tile_positions; /* positions per GEMM tile (16 when not given) */
    double per_mac, per_weight;
} bp_profile_lm_bits;

typedef struct bp_profile_lm_regime {
    double seconds, per_tile, per_row_element, per_output,
        per_residual_output;
    int n_bits;
    bp_profile_lm_bits bits[BP_PROFILE_MAX_LM_BITS]; /* w_bits ascending */
} bp_profile_lm_regime;

typedef struct bp_profile_layer_model {
    int present;
    int a_bits;              /* widest activation width it prices */
    int threads;             /* the executor threads it was measured on */
    int64_t parallel_macs;   /* MACs x batch from which the parallel regime
                                applies; 0: the serial one always */
    bp_profile_lm_regime serial, parallel;
    int winograd;            /* 3x3 stride-1 convolutions run by Winograd
                                where the kernels take it (cost.h) */
} bp_profile_layer_model;

/* The optional cost of the executor's ops between layers (pooling, adds,
 * input quantization, ...): seconds + per_element x elements, by op name. */
#define BP_PROFILE_MAX_OPS 16
typedef struct bp_profile_op_cost {
    char name[16];           /* bp_qop_name(): "Quantize", "MaxPool", ... */
    double seconds, per_element;
    int has_parallel;
    double par_seconds, par_per_element;
} bp_profile_op_cost;

typedef struct bp_profile {
    char *name;              /* "nvidia-t4" */
    char *path;              /* the file it was read from */
    char *description;
    bp_profile_kind kind;
    /* roofline */
    int n_peaks;
    bp_profile_peak *peaks;
    double bytes_per_s;      /* memory bandwidth */
    double overhead_s;       /* per layer (kernel launch, dispatch) */
    double compute_efficiency, memory_efficiency; /* fractions of peak, (0,1] */
    int storage_native;      /* 1: a bit-width without native support is
                                stored at the native width it runs at (the
                                memory term grows); 0: stored packed */
    bp_profile_layer_model lm;   /* optional "layer_model" */
    int n_op_costs;              /* optional "op_costs" */
    int64_t op_parallel_elements;/* elements x batch from which an op's
                                    "parallel" costs apply; 0: never */
    bp_profile_op_cost op_costs[BP_PROFILE_MAX_OPS];
    /* table */
    int n_entries;
    bp_profile_entry *entries;
    struct bp_profile *fallback; /* roofline (or bops) */
} bp_profile;

/* Resolves NAME-or-PATH (see the top of this file) to a file path in buf.
 * BP_EINVAL "profile 'x' not found (looked in ...; shipped: a, b, c)" when
 * a name matches no file; a path is returned as given (load reports it). */
int bp_profile_find(const char *name, char *buf, size_t n);

/* Reads and validates the profile at path (and a table's fallback, found
 * by name like --profile, or as a path relative to the table's directory).
 * BP_EINVAL naming the file and the JSON path of the first missing or
 * mistyped field; BP_EIO when unreadable. */
int bp_profile_load(bp_profile **out, const char *path);

/* bp_profile_find + bp_profile_load. */
int bp_profile_open(bp_profile **out, const char *name_or_path);

void bp_profile_free(bp_profile **p);

/* 1 when the profile models latency (every kind but bops, and a table
 * whose fallback is not bops). */
int bp_profile_has_latency(const bp_profile *p);

/* The native pair a (w_bits, a_bits) choice runs at on a roofline profile:
 * the fastest listed pair with W >= w and A >= a.  BP_EUNSUPPORTED naming
 * the profile when none covers it. */
int bp_profile_native(const bp_profile *p, int w_bits, int a_bits,
                      const bp_profile_peak **peak);

/* The names of the shipped profiles found by bp_profile_find's search, as
 * "a, b, c" into buf (empty when none). */
void bp_profile_list(char *buf, size_t n);

#endif
