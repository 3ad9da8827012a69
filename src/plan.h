/* plan.h - the precision plan (plan.json): what `bitplan solve` writes and
 * `bitplan run` executes.
 *
 * Keys scripts rely on (issue 4):
 *   {"layers":[{"name","w_bits","a_bits"}],
 *    "predicted":{"size_bytes","latency_s","bops","objective"},
 *    "status","gap"}
 * plus "model":{"path","sha256"}, "profile", "budgets":[{"kind","value",
 * "text"}], per-layer predicted bytes/latency/omega (full layout at the top
 * of plan.c).  latency_s is null in the file (NAN here) when the profile
 * models no latency.  solve_seconds is kept here for reports but never
 * written: the same inputs give a byte-identical plan.
 * A plan names layers by their weight initializer, so it applies to exactly
 * the model whose sha256 it records.
 *
 * Ownership: a bp_plan owns every string it points to (plain malloc'd
 * copies, freed by bp_plan_free). */
#ifndef BP_PLAN_H
#define BP_PLAN_H

#include <stdint.h>

typedef struct bp_plan_layer {
    char *name;
    int w_bits, a_bits;
    double size_bytes, latency_s, bops, omega; /* predicted, this layer */
} bp_plan_layer;

typedef struct bp_plan_budget {
    char *kind;     /* "size", "latency", "bops" */
    double value;   /* resolved absolute value: bytes, seconds, BOPs */
    char *text;     /* as the user wrote it: "25%", "1.5MiB" */
} bp_plan_budget;

typedef struct bp_plan {
    char *model_path, *model_sha256;
    char *profile;
    int n_budgets;
    bp_plan_budget *budgets;
    int n_layers;
    bp_plan_layer *layers;
    double size_bytes, latency_s, bops, objective; /* predicted totals */
    char *status;   /* "optimal", "feasible", ... */
    double gap;
    double solve_seconds;
} bp_plan;

/* A zeroed plan with room for n_layers layers and n_budgets budgets. */
int bp_plan_new(bp_plan **out, int n_layers, int n_budgets);
/* Frees *p and sets it to NULL; accepts NULL. */
void bp_plan_free(bp_plan **p);
/* Reads path.  BP_EINVAL naming the file and the JSON path of the field
 * ("layers[2].w_bits") when a key is missing, mistyped or out of range;
 * BP_EIO when the file cannot be read. */
int bp_plan_load(bp_plan **out, const char *path);
/* Writes p atomically (numbers with 17 significant digits).  BP_EINVAL,
 * with nothing written, when p has no layers, bits outside 1..16 or
 * non-finite costs. */
int bp_plan_save(const bp_plan *p, const char *path);
/* The same JSON object on one line (caller frees with free()), as
 * `bitplan solve --json` prints it. */
int bp_plan_to_json(const bp_plan *p, char **text);

#endif
