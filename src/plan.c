/* plan.c - reading and writing plan.json (see plan.h).
 *
 * Layout, in the order written:
 *   {"format":"bitplan-plan", "version":1,
 *    "model":{"path":str, "sha256":str},
 *    "profile":str,
 *    "budgets":[{"kind":"size"|"latency"|"bops", "value":num, "text":str}],
 *    "layers":[{"name":str, "w_bits":int, "a_bits":int, "size_bytes":num,
 *               "latency_s":num|null, "bops":num, "omega":num}],
 *    "predicted":{"size_bytes":num, "latency_s":num|null, "bops":num,
 *                 "objective":num},
 *    "status":str, "gap":num}
 * latency_s is null when the profile models no latency (the `bops`
 * profile).  The solver's wall-clock seconds are not written: a plan is a
 * deterministic function of its inputs, byte for byte. */
#include "plan.h"
#include "jsonv.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 1000000
#define MAX_BUDGETS 64

int bp_plan_new(bp_plan **out, int n_layers, int n_budgets)
{
    if (n_layers < 0 || n_layers > MAX_LAYERS || n_budgets < 0 ||
        n_budgets > MAX_BUDGETS)
        return bp_fail(BP_EINVAL, "plan: %d layers, %d budgets (expected "
                       "0..%d and 0..%d)", n_layers, n_budgets, MAX_LAYERS,
                       MAX_BUDGETS);
    bp_plan *p = calloc(1, sizeof *p);
    if (!p)
        return bp_fail(BP_ENOMEM, "plan: out of memory");
    p->layers = n_layers ? calloc((size_t)n_layers, sizeof *p->layers) : NULL;
    p->budgets = n_budgets ? calloc((size_t)n_budgets, sizeof *p->budgets)
                           : NULL;
    if ((n_layers && !p->layers) || (n_budgets && !p->budgets)) {
        free(p->layers);
        free(p->budgets);
        free(p);
        return bp_fail(BP_ENOMEM, "plan: out of memory");
    }
    p->n_layers = n_layers;
    p->n_budgets = n_budgets;
    *out = p;
    return BP_OK;
}

void bp_plan_free(bp_plan **pp)
{
    if (!pp || !*pp)
        return;
    bp_plan *p = *pp;
    for (int i = 0; i < p->n_layers; i++)
        free(p->layers[i].name);
    for (int i = 0; i < p->n_budgets; i++) {
        free(p->budgets[i].kind);
        free(p->budgets[i].text);
    }
    free(p->layers);
    free(p->budgets);
    free(p->model_path);
    free(p->model_sha256);
    free(p->profile);
    free(p->status);
    free(p);
    *pp = NULL;
}

static int dup_str(const char *file, const char *src, char **dst)
{
    *dst = strdup(src);
    return *dst ? BP_OK : bp_fail(BP_ENOMEM, "%s: out of memory", file);
}

/* A latency: a number >= 0, or null for "not modelled" (NAN). */
static int read_latency(const char *file, const char *at, const cJSON *o,
                        double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "latency_s");
    if (v && cJSON_IsNull(v)) {
        *out = NAN;
        return BP_OK;
    }
    return bp_json_nonneg(file, at, o, "latency_s", out);
}

static int valid_kind(const char *k)
{
    return !strcmp(k, "size") || !strcmp(k, "latency") || !strcmp(k, "bops");
}

int bp_plan_load(bp_plan **out, const char *path)
{
    cJSON *root = NULL;
    bp_plan *p = NULL;
    const cJSON *o, *larr, *barr;
    const char *s;
    int nl, nb, st;
    int64_t v;
    if ((st = bp_json_load(path, &root)))
        return st;
    if ((st = bp_json_str_opt(path, "", root, "format", &s)))
        goto out;
    if (cJSON_GetObjectItemCaseSensitive(root, "format") &&
        strcmp(s, "bitplan-plan") != 0) {
        st = bp_fail(BP_EINVAL, "%s: format: \"%s\" (expected "
                     "\"bitplan-plan\")", path, s);
        goto out;
    }
    if ((st = bp_json_int_opt(path, "", root, "version", 1, 1, &v)) ||
        (st = bp_json_arr(path, "", root, "layers", &larr, &nl)) ||
        (st = bp_json_arr(path, "", root, "budgets", &barr, &nb)))
        goto out;
    if (nl < 1 || nl > MAX_LAYERS || nb > MAX_BUDGETS) {
        st = bp_fail(BP_EINVAL, "%s: %s: %d entries (expected %s)", path,
                     nl < 1 || nl > MAX_LAYERS ? "layers" : "budgets",
                     nl < 1 || nl > MAX_LAYERS ? nl : nb,
                     nl < 1 || nl > MAX_LAYERS ? "1..1000000" : "0..64");
        goto out;
    }
    if ((st = bp_plan_new(&p, nl, nb)))
        goto out;
    if ((st = bp_json_obj(path, "", root, "model", &o)) ||
        (st = bp_json_str(path, "model", o, "path", &s)) ||
        (st = dup_str(path, s, &p->model_path)) ||
        (st = bp_json_str(path, "model", o, "sha256", &s)) ||
        (st = dup_str(path, s, &p->model_sha256)) ||
        (st = bp_json_str(path, "", root, "profile", &s)) ||
        (st = dup_str(path, s, &p->profile)) ||
        (st = bp_json_obj(path, "", root, "predicted", &o)) ||
        (st = bp_json_nonneg(path, "predicted", o, "size_bytes",
                             &p->size_bytes)) ||
        (st = read_latency(path, "predicted", o, &p->latency_s)) ||
        (st = bp_json_nonneg(path, "predicted", o, "bops", &p->bops)) ||
        (st = bp_json_num(path, "predicted", o, "objective", &p->objective)) ||
        (st = bp_json_str(path, "", root, "status", &s)) ||
        (st = dup_str(path, s, &p->status)) ||
        (st = bp_json_nonneg(path, "", root, "gap", &p->gap)))
        goto out;
    const cJSON *bj = barr->child, *lj = larr->child;
    for (int i = 0; i < nb; i++, bj = bj->next) {
        char at[32];
        bp_plan_budget *b = &p->budgets[i];
        snprintf(at, sizeof at, "budgets[%d]", i);
        if (!cJSON_IsObject(bj)) {
            st = bp_fail(BP_EINVAL, "%s: %s: expected an object", path, at);
            goto out;
        }
        if ((st = bp_json_str(path, at, bj, "kind", &s)))
            goto out;
        if (!valid_kind(s)) {
            st = bp_fail(BP_EINVAL, "%s: %s.kind: \"%s\" (expected \"size\", "
                         "\"latency\" or \"bops\")", path, at, s);
            goto out;
        }
        if ((st = dup_str(path, s, &b->kind)) ||
            (st = bp_json_nonneg(path, at, bj, "value", &b->value)) ||
            (st = bp_json_str(path, at, bj, "text", &s)) ||
            (st = dup_str(path, s, &b->text)))
            goto out;
    }
    for (int i = 0; i < nl; i++, lj = lj->next) {
        char at[32];
        bp_plan_layer *l = &p->layers[i];
        int64_t w, a;
        snprintf(at, sizeof at, "layers[%d]", i);
        if (!cJSON_IsObject(lj)) {
            st = bp_fail(BP_EINVAL, "%s: %s: expected an object", path, at);
            goto out;
        }
        if ((st = bp_json_str(path, at, lj, "name", &s)) ||
            (st = dup_str(path, s, &l->name)) ||
            (st = bp_json_int(path, at, lj, "w_bits", 1, 16, &w)) ||
            (st = bp_json_int(path, at, lj, "a_bits", 1, 16, &a)) ||
            (st = bp_json_nonneg(path, at, lj, "size_bytes", &l->size_bytes)) ||
            (st = read_latency(path, at, lj, &l->latency_s)) ||
            (st = bp_json_nonneg(path, at, lj, "bops", &l->bops)) ||
            (st = bp_json_num(path, at, lj, "omega", &l->omega)))
            goto out;
        l->w_bits = (int)w;
        l->a_bits = (int)a;
        if (!l->name[0]) {
            st = bp_fail(BP_EINVAL, "%s: %s.name: empty (expected a weight "
                         "initializer's name)", path, at);
            goto out;
        }
    }
    const char **names = malloc((size_t)nl * sizeof *names);
    int i_dup, j_dup;
    if (!names) {
        st = bp_fail(BP_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < nl; i++)
        names[i] = p->layers[i].name;
    int dup = bp_first_duplicate(names, nl, &i_dup, &j_dup);
    free(names);
    if (dup) {
        st = bp_fail(BP_EINVAL, "%s: layers[%d].name: \"%s\" is also "
                     "layers[%d]'s (names must be unique)", path, j_dup,
                     p->layers[j_dup].name, i_dup);
        goto out;
    }
    *out = p;
    p = NULL;
out:
    bp_plan_free(&p);
    cJSON_Delete(root);
    return st;
}

static cJSON *add_str(cJSON *o, const char *k, const char *v)
{
    return cJSON_AddStringToObject(o, k, v ? v : "");
}

/* Builds the JSON tree of p; BP_EINVAL when p holds what a plan cannot. */
static int plan_tree(const bp_plan *p, const char *what, cJSON **out)
{
    if (p->n_layers < 1)
        return bp_fail(BP_EINVAL, "%s: a plan needs at least one layer", what);
    for (int i = 0; i < p->n_layers; i++) {
        const bp_plan_layer *l = &p->layers[i];
        if (!l->name || !l->name[0] || l->w_bits < 1 || l->w_bits > 16 ||
            l->a_bits < 1 || l->a_bits > 16 || !isfinite(l->size_bytes) ||
            !isfinite(l->bops) || !isfinite(l->omega))
            return bp_fail(BP_EINVAL, "%s: layers[%d] (%s) is not writable: "
                           "expected a name, bits 1..16 and finite costs",
                           what, i, l->name ? l->name : "?");
    }
    for (int i = 0; i < p->n_budgets; i++)
        if (!p->budgets[i].kind || !valid_kind(p->budgets[i].kind) ||
            !isfinite(p->budgets[i].value))
            return bp_fail(BP_EINVAL, "%s: budgets[%d] is not writable: "
                           "expected kind size, latency or bops and a finite "
                           "value", what, i);
    if (!isfinite(p->objective) || !isfinite(p->size_bytes) ||
        !isfinite(p->bops))
        return bp_fail(BP_EINVAL, "%s: predicted totals are not finite", what);
    cJSON *root = cJSON_CreateObject(), *m = NULL, *b = NULL, *l = NULL,
          *pr = NULL;
    int ok = root && add_str(root, "format", "bitplan-plan") &&
             bp_json_add_num(root, "version", 1) &&
             (m = cJSON_AddObjectToObject(root, "model")) &&
             add_str(m, "path", p->model_path) &&
             add_str(m, "sha256", p->model_sha256) &&
             add_str(root, "profile", p->profile) &&
             (b = cJSON_AddArrayToObject(root, "budgets"));
    for (int i = 0; ok && i < p->n_budgets; i++) {
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(b, o) &&
             add_str(o, "kind", p->budgets[i].kind) &&
             bp_json_add_num(o, "value", p->budgets[i].value) &&
             add_str(o, "text", p->budgets[i].text);
        if (!ok && o && !cJSON_GetArrayItem(b, i))
            cJSON_Delete(o);
    }
    ok = ok && (l = cJSON_AddArrayToObject(root, "layers"));
    for (int i = 0; ok && i < p->n_layers; i++) {
        const bp_plan_layer *pl = &p->layers[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(l, o) &&
             add_str(o, "name", pl->name) &&
             bp_json_add_num(o, "w_bits", pl->w_bits) &&
             bp_json_add_num(o, "a_bits", pl->a_bits) &&
             bp_json_add_num(o, "size_bytes", pl->size_bytes) &&
             bp_json_add_num(o, "latency_s", pl->latency_s) &&
             bp_json_add_num(o, "bops", pl->bops) &&
             bp_json_add_num(o, "omega", pl->omega);
        if (!ok && o && !cJSON_GetArrayItem(l, i))
            cJSON_Delete(o);
    }
    ok = ok && (pr = cJSON_AddObjectToObject(root, "predicted")) &&
         bp_json_add_num(pr, "size_bytes", p->size_bytes) &&
         bp_json_add_num(pr, "latency_s", p->latency_s) &&
         bp_json_add_num(pr, "bops", p->bops) &&
         bp_json_add_num(pr, "objective", p->objective) &&
         add_str(root, "status", p->status) &&
         bp_json_add_num(root, "gap", isfinite(p->gap) ? p->gap : 0);
    if (!ok) {
        cJSON_Delete(root);
        return bp_fail(BP_ENOMEM, "%s: out of memory", what);
    }
    *out = root;
    return BP_OK;
}

int bp_plan_save(const bp_plan *p, const char *path)
{
    cJSON *root;
    int st = plan_tree(p, path, &root);
    if (st)
        return st;
    st = bp_json_save(root, path);
    cJSON_Delete(root);
    return st;
}

int bp_plan_to_json(const bp_plan *p, char **text)
{
    cJSON *root;
    int st = plan_tree(p, "plan", &root);
    if (st)
        return st;
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return bp_fail(BP_ENOMEM, "plan: out of memory");
    *text = s;
    return BP_OK;
}
