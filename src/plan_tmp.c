/* plan_tmp.c - TEMPORARY minimal plan.json reader for the integer executor
 * branch, until src/plan.c (issue 4) lands; the integrator drops this file
 * at merge.  It reads the keys plan.h documents: model.{path,sha256},
 * layers[].{name,w_bits,a_bits}, predicted.{size_bytes,latency_s,bops,
 * objective}, budgets[].{kind,value,text}, profile, status, gap. */
#include "plan.h"
#include "status.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_plan_new(bp_plan **out, int n_layers, int n_budgets)
{
    bp_plan *p = calloc(1, sizeof *p);
    if (!p)
        return BP_ENOMEM;
    p->layers = calloc((size_t)n_layers + 1, sizeof *p->layers);
    p->budgets = calloc((size_t)n_budgets + 1, sizeof *p->budgets);
    if (!p->layers || !p->budgets) {
        bp_plan_free(&p);
        return BP_ENOMEM;
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
    for (int i = 0; p->layers && i < p->n_layers; i++)
        free(p->layers[i].name);
    for (int i = 0; p->budgets && i < p->n_budgets; i++) {
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

static char *dup_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static double num(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

int bp_plan_load(bp_plan **out, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_fail(BP_EIO, "%s: cannot open", path);
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 16384;
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                return BP_ENOMEM;
            }
            text = t;
        }
        size_t r = fread(text + len, 1, 4096, f);
        len += r;
        if (r < 4096)
            break;
    }
    fclose(f);
    text[len] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return bp_fail(BP_EINVAL, "%s: not valid JSON", path);
    int st = BP_OK;
    bp_plan *p = NULL;
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(root, "layers");
    const cJSON *budgets = cJSON_GetObjectItemCaseSensitive(root, "budgets");
    if (!cJSON_IsArray(layers)) {
        st = bp_fail(BP_EINVAL, "%s: field 'layers' missing; expected an array "
                     "of {name, w_bits, a_bits}", path);
        goto out;
    }
    int nl = cJSON_GetArraySize(layers);
    int nb = cJSON_IsArray(budgets) ? cJSON_GetArraySize(budgets) : 0;
    if ((st = bp_plan_new(&p, nl, nb)))
        goto out;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (cJSON_IsObject(model)) {
        p->model_path = dup_str(model, "path");
        p->model_sha256 = dup_str(model, "sha256");
    }
    p->profile = dup_str(root, "profile");
    p->status = dup_str(root, "status");
    p->gap = num(root, "gap", 0);
    const cJSON *pred = cJSON_GetObjectItemCaseSensitive(root, "predicted");
    if (cJSON_IsObject(pred)) {
        p->size_bytes = num(pred, "size_bytes", 0);
        p->latency_s = num(pred, "latency_s", 0);
        p->bops = num(pred, "bops", 0);
        p->objective = num(pred, "objective", 0);
    }
    for (int i = 0; i < nl; i++) {
        const cJSON *l = cJSON_GetArrayItem(layers, i);
        const cJSON *wb = cJSON_GetObjectItemCaseSensitive(l, "w_bits");
        const cJSON *ab = cJSON_GetObjectItemCaseSensitive(l, "a_bits");
        p->layers[i].name = dup_str(l, "name");
        if (!p->layers[i].name || !cJSON_IsNumber(wb) || !cJSON_IsNumber(ab) ||
            wb->valuedouble != (int)wb->valuedouble ||
            ab->valuedouble != (int)ab->valuedouble) {
            st = bp_fail(BP_EINVAL, "%s: layers[%d]: expected {\"name\": string, "
                         "\"w_bits\": integer, \"a_bits\": integer}", path, i);
            goto out;
        }
        p->layers[i].w_bits = (int)wb->valuedouble;
        p->layers[i].a_bits = (int)ab->valuedouble;
        p->layers[i].size_bytes = num(l, "size_bytes", 0);
        p->layers[i].latency_s = num(l, "latency_s", 0);
        p->layers[i].bops = num(l, "bops", 0);
        p->layers[i].omega = num(l, "omega", 0);
    }
    for (int i = 0; i < nb; i++) {
        const cJSON *b = cJSON_GetArrayItem(budgets, i);
        p->budgets[i].kind = dup_str(b, "kind");
        p->budgets[i].text = dup_str(b, "text");
        p->budgets[i].value = num(b, "value", 0);
        if (!p->budgets[i].kind) {
            st = bp_fail(BP_EINVAL, "%s: budgets[%d]: expected {\"kind\", "
                         "\"value\"}", path, i);
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    if (st) {
        bp_plan_free(&p);
        return st;
    }
    *out = p;
    return BP_OK;
}
