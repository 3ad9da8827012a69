/* checkpoint.h - resumable sensitivity runs: the estimator state saved at a
 * bounded interval and read back by `bitplan sensitivity --resume`.
 *
 * What is saved (bp_ckpt_state), at safe points between two passes over the
 * data, never in the middle of one:
 *  - the exact traces (Gauss-Newton or by columns) while they are computed:
 *    after each batch of the Gauss-Newton pass (one backward pass per class
 *    per batch: hours on ResNet-18's 1000 classes) the per-layer sums over
 *    the batches done and the next batch; after each group of columns (each
 *    a pass over all the batches) the sums and the columns done; and once
 *    they are all done, the traces;
 *  - before them, the Gauss-Newton traces sampled in the output space
 *    (--trace gn-hutchinson): after each round, the rounds done, per layer
 *    the Welford sums over them, and the stream of the next draws;
 *  - the sampled traces: per layer the Welford sums (count, mean, M2) of the
 *    block and of the global samples, the products spent, the Hutch++
 *    sketch Q and tr(Q^T H Q), and the layer's RNG stream; the global
 *    stream and sample count; which phase (pilots, scope decision) is done;
 *  - the eigenvalue stage: per layer the Lanczos basis so far, alpha, beta
 *    and the current Ritz value (or the power iterate and its last
 *    Rayleigh quotient), iterations, and whether it has converged;
 *  - the completed per-layer results of each finished stage, and the
 *    Hessian-vector product count (it is written to the sensitivity file).
 * Resuming replays nothing: the estimators continue from that state and
 * draw the same random vectors they would have drawn, so the result is
 * bit-identical to an uninterrupted run.  The loss pass is recomputed (one
 * pass), and so is the perturbation table (no products).  --density is not
 * checkpointed (it runs after the sensitivity stage and is recomputed).
 *
 * File format (little-endian):
 *   "BPCKPT1\n"  u32 version (3)  u32 0  u64 L  payload (L bytes)
 *   64 lowercase hex digits: SHA-256 of everything before them.
 * The payload holds three identity strings (model sha256, data sha256, the
 * options that determine the result), then the state.  Version 2 adds four
 * i64 after the global RNG (exact_batch, exact_nb, exact_cols,
 * exact_ncols: where the exact stage stands) and the flag
 * BP_CKPT_EXACT_PART; a version-1 file (no such fields: the exact stage
 * was saved only when finished) is still read, with those fields 0.
 * Version 3 adds the output-space rounds (gns_round and gns_rng after
 * exact_ncols; gns_m, gns_mean, gns_m2 at the end of each layer) and the
 * flag BP_CKPT_GNS_PART; versions 1 and 2 are read with them 0.
 * The magic stays "BPCKPT1\n": it names the file kind, the version field
 * the layout.  The reader checks
 * the length against the file, the checksum, every count against the bytes
 * left before allocating, and the identity against the run; the estimators
 * check the state's dimensions against the model.  A file is written
 * atomically (src/atomic.h), so an interrupted save leaves the previous
 * checkpoint. */
#ifndef BP_CHECKPOINT_H
#define BP_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Stage flags: what the state holds. */
enum {
    BP_CKPT_EXACT = 1,    /* exact traces done (est_* of those layers) */
    BP_CKPT_SKETCH = 2,   /* block pilot begun: Hutch++ sketches taken */
    BP_CKPT_SCOPE = 4,    /* sampling scope decided (scope) */
    BP_CKPT_TRACES = 8,   /* every trace done (est_*, scope_used) */
    BP_CKPT_EIG = 16,     /* eigenvalue iterations under way (eig_*, lz_*) */
    BP_CKPT_EIGS = 32,    /* every top eigenvalue done */
    /* exact traces under way (alone: no other flag with it): est_mean of
     * the exact layers holds their sums so far, exact_* where they stand */
    BP_CKPT_EXACT_PART = 64,
    BP_CKPT_GNS_PART = 128 /* output-space trace rounds under way (gns_*) */
};

/* Layouts this build writes (the newest) and reads (1 to 3). */
#define BP_CKPT_VERSION 3u

typedef struct bp_ckpt_layer {
    /* sampled traces */
    int32_t sampled, method, k;
    int64_t n;                 /* block size (checked against the model) */
    int64_t rem_m, glob_m, products;
    double rem_mean, rem_m2, glob_mean, glob_m2, t_low;
    uint64_t rng[4];
    int64_t n_q;               /* k * n once sketched, else 0 */
    double *q;
    /* the trace result (exact layers after EXACT, all after TRACES) */
    double est_mean, est_se;
    int64_t est_samples;
    int32_t est_method, est_hit_max;
    /* top eigenvalue */
    int32_t eig_done, eig_iters, lz_m;
    double eig_val, eig_prev;
    int64_t n_ab;              /* lz_m: alpha and beta */
    double *alpha, *beta;
    int64_t n_v;               /* Lanczos rows 0..lz_m ((lz_m+1) n), the
                                  power iterate (n), or 0 when done */
    double *v;
    /* output-space trace rounds (version 3; 0 without BP_CKPT_GNS_PART):
     * the Welford sums over the rounds done */
    int64_t gns_m;
    double gns_mean, gns_m2;
} bp_ckpt_layer;

typedef struct bp_ckpt_state {
    uint32_t stage;            /* BP_CKPT_* */
    int32_t scope, scope_used; /* bp_trace_scope */
    int64_t gsamples, products;
    uint64_t grng[4];
    /* the exact stage under way (all 0 without BP_CKPT_EXACT_PART):
     * Gauss-Newton batches done (the next one to run) of exact_nb, then
     * columns done of exact_ncols (only once exact_batch == exact_nb) */
    int64_t exact_batch, exact_nb, exact_cols, exact_ncols;
    /* the output-space rounds under way (all 0 without BP_CKPT_GNS_PART):
     * rounds done, and the stream the next draws come from */
    int64_t gns_round;
    uint64_t gns_rng[4];
    int32_t n_layers;
    bp_ckpt_layer *layers;
} bp_ckpt_state;

/* Frees the arrays of s and zeroes it. */
void bp_ckpt_state_clear(bp_ckpt_state *s);
/* Makes s hold n zeroed layers (keeping nothing).  BP_ENOMEM. */
int bp_ckpt_state_reset(bp_ckpt_state *s, int n);
/* *dst (with count *dn) becomes a copy of src (n values). BP_ENOMEM. */
int bp_ckpt_set(double **dst, int64_t *dn, const double *src, int64_t n);

/* The state's payload encoding (BP_CKPT_VERSION) into a new malloc'ed
 * buffer. */
int bp_ckpt_state_encode(const bp_ckpt_state *s, uint8_t **out, size_t *n);
/* Decodes a state payload (BP_CKPT_VERSION) of exactly n bytes into *s
 * (cleared first).  BP_EINVAL naming `what` and the field for anything
 * malformed; never allocates more than the bytes present justify. */
int bp_ckpt_state_decode(bp_ckpt_state *s, const uint8_t *p, size_t n,
                         const char *what);
/* The same for a payload of layout `version` (1 to 3; BP_EINVAL for any
 * other). */
int bp_ckpt_state_decode_version(bp_ckpt_state *s, const uint8_t *p, size_t n,
                                 uint32_t version, const char *what);

/* A checkpoint of one run: where to save it, how often, the run's
 * identity, and the current state (which the estimators fill and read). */
typedef struct bp_ckpt {
    char *path;                /* NULL: never saved */
    double every;              /* seconds between saves (0: every point) */
    struct timespec last;      /* of the last save (or of creation) */
    char *model_sha256, *data_sha256, *options;
    int resumed;               /* state came from a file */
    char *source;              /* that file, for messages */
    int64_t saves;
    bp_ckpt_state st;
} bp_ckpt;

/* New checkpoint for a run with that identity, saved to path (NULL: not
 * saved, e.g. a resumed run told not to) every `every` seconds. */
int bp_ckpt_new(bp_ckpt **out, const char *path, double every,
                const char *model_sha256, const char *data_sha256,
                const char *options);
void bp_ckpt_free(bp_ckpt **c);

/* Loads the state saved in `path` into c (marking it resumed).  Errors,
 * each one line naming path: BP_EIO when it cannot be read; BP_EINVAL for
 * a file that is not a checkpoint, of a version other than 1 or 2,
 * truncated, with a bad checksum or malformed state, or made for another
 * model ("checkpoint is for model sha256 ..., not ..."), other data, or
 * other options. */
int bp_ckpt_load(bp_ckpt *c, const char *path);

/* Whether a save is due now (force: at the end of a stage, always when
 * saving at all). */
int bp_ckpt_due(const bp_ckpt *c, int force);
/* Writes c's identity and state to c->path atomically; restarts the
 * interval. */
int bp_ckpt_save(bp_ckpt *c);

#endif
