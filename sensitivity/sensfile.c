/* sensfile.c - reading and writing sensitivity.json (layout in sensfile.h).
 *
 * The reader checks every field and names the first bad one by its JSON
 * path; the writer emits a fixed key order and 17-digit numbers, so a file
 * written by bitplan, read and written again, is byte-identical. */
#include "sensfile.h"
#include "jsonv.h"
#include "status.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 1000000

int bp_sens_new(bp_sens **out, int n_layers)
{
    if (n_layers < 0 || n_layers > MAX_LAYERS)
        return bp_fail(BP_EINVAL, "sensitivity: %d layers (expected 0..%d)",
                       n_layers, MAX_LAYERS);
    bp_sens *s = calloc(1, sizeof *s);
    if (!s)
        return bp_fail(BP_ENOMEM, "sensitivity: out of memory");
    if (n_layers) {
        s->layers = calloc((size_t)n_layers, sizeof *s->layers);
        if (!s->layers) {
            free(s);
            return bp_fail(BP_ENOMEM, "sensitivity: out of memory");
        }
    }
    s->n_layers = n_layers;
    for (int i = 0; i < n_layers; i++)
        s->layers[i].top_eig = NAN;
    *out = s;
    return BP_OK;
}

void bp_sens_free(bp_sens **sp)
{
    if (!sp || !*sp)
        return;
    bp_sens *s = *sp;
    for (int i = 0; i < s->n_layers; i++) {
        free(s->layers[i].name);
        free(s->layers[i].op);
        free(s->layers[i].trace_method);
    }
    free(s->layers);
    free(s->model_path);
    free(s->model_sha256);
    free(s->data_path);
    free(s->data_sha256);
    free(s->settings);
    free(s->stop_reason);
    free(s);
    *sp = NULL;
}

static int dup_str(const char *file, const char *src, char **dst)
{
    *dst = strdup(src);
    return *dst ? BP_OK : bp_fail(BP_ENOMEM, "%s: out of memory", file);
}

/* Reads {"<bits>": number} into vals/has, bits 1..16. */
static int read_bits_map(const char *file, const char *at, const cJSON *obj,
                         int nonneg, double *vals, int *has)
{
    const cJSON *it;
    char p[512];
    cJSON_ArrayForEach(it, obj) {
        char *end;
        errno = 0;
        long b = strtol(it->string, &end, 10);
        if (errno || end == it->string || *end || b < 1 ||
            b > BP_SENS_MAX_BITS || it->string[0] == '0' ||
            it->string[0] == '+' || it->string[0] == ' ')
            return bp_fail(BP_EINVAL, "%s: %s: key \"%s\" is not a bit-width "
                           "(expected \"1\"..\"%d\")", file, at, it->string,
                           BP_SENS_MAX_BITS);
        bp_json_path(p, sizeof p, at, it->string, 0);
        if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
            return bp_fail(BP_EINVAL, "%s: %s: expected a number", file, p);
        if (nonneg && it->valuedouble < 0)
            return bp_fail(BP_EINVAL, "%s: %s: expected a number >= 0, got "
                           "%.17g", file, p, it->valuedouble);
        if (has[b])
            return bp_fail(BP_EINVAL, "%s: %s: bit-width given twice", file, p);
        has[b] = 1;
        vals[b] = it->valuedouble;
    }
    return BP_OK;
}

static int read_layer(const char *file, const cJSON *lj, int i,
                      bp_sens_layer *l)
{
    char at[64], sub[96];
    const char *s;
    const cJSON *o;
    int64_t v;
    int st;
    snprintf(at, sizeof at, "layers[%d]", i);
    if (!cJSON_IsObject(lj))
        return bp_fail(BP_EINVAL, "%s: %s: expected an object", file, at);
    if ((st = bp_json_str(file, at, lj, "name", &s)) ||
        (st = dup_str(file, s, &l->name)) ||
        (st = bp_json_str(file, at, lj, "op", &s)) ||
        (st = dup_str(file, s, &l->op)) ||
        (st = bp_json_int(file, at, lj, "numel", 1, INT64_C(1) << 50,
                          &l->numel)) ||
        (st = bp_json_int_opt(file, at, lj, "macs", 0, INT64_C(1) << 53,
                              &l->macs)) ||
        (st = bp_json_int_opt(file, at, lj, "out_channels", 0, l->numel,
                              &l->out_channels)) ||
        (st = bp_json_int_opt(file, at, lj, "in_numel", 0, INT64_C(1) << 50,
                              &l->in_numel)) ||
        (st = bp_json_int_opt(file, at, lj, "out_numel", 0, INT64_C(1) << 50,
                              &l->out_numel)))
        return st;
    if (!l->name[0])
        return bp_fail(BP_EINVAL, "%s: %s.name: empty (expected the weight "
                       "initializer's name)", file, at);
    snprintf(sub, sizeof sub, "%s.trace", at);
    if ((st = bp_json_obj(file, at, lj, "trace", &o)) ||
        (st = bp_json_num(file, sub, o, "mean", &l->trace)) ||
        (st = bp_json_nonneg(file, sub, o, "stderr", &l->trace_stderr)) ||
        (st = bp_json_int(file, sub, o, "samples", 0, INT64_C(1) << 53,
                          &l->trace_samples)) ||
        (st = bp_json_str(file, sub, o, "method", &s)) ||
        (st = dup_str(file, s, &l->trace_method)))
        return st;
    snprintf(sub, sizeof sub, "%s.top_eigenvalue", at);
    if ((st = bp_json_obj(file, at, lj, "top_eigenvalue", &o)))
        return st;
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "value");
    l->top_eig = NAN;
    if (!ev)
        return bp_fail(BP_EINVAL, "%s: %s.value: missing (expected a number "
                       "or null)", file, sub);
    if (!cJSON_IsNull(ev) &&
        (st = bp_json_num(file, sub, o, "value", &l->top_eig)))
        return bp_fail(st, "%s: %s.value: expected a number or null", file,
                       sub);
    if ((st = bp_json_int(file, sub, o, "iterations", 0, INT32_MAX, &v)))
        return st;
    l->eig_iterations = (int)v;
    snprintf(sub, sizeof sub, "%s.perturbation", at);
    if ((st = bp_json_obj(file, at, lj, "perturbation", &o)) ||
        (st = read_bits_map(file, sub, o, 1, l->perturbation, l->has_bits)))
        return st;
    int any = 0;
    for (int b = 1; b <= BP_SENS_MAX_BITS; b++)
        any |= l->has_bits[b];
    if (!any)
        return bp_fail(BP_EINVAL, "%s: %s: empty (expected at least one "
                       "bit-width, as \"4\": value)", file, sub);
    int has_omega[BP_SENS_MAX_BITS + 1] = {0};
    snprintf(sub, sizeof sub, "%s.omega", at);
    if ((st = bp_json_obj(file, at, lj, "omega", &o)) ||
        (st = read_bits_map(file, sub, o, 0, l->omega, has_omega)))
        return st;
    for (int b = 1; b <= BP_SENS_MAX_BITS; b++) {
        if (has_omega[b] && !l->has_bits[b])
            return bp_fail(BP_EINVAL, "%s: %s.%d: no perturbation for %d bits "
                           "(omega keys must be perturbation keys)", file, sub,
                           b, b);
        if (l->has_bits[b] && !has_omega[b])
            l->omega[b] = l->trace / (double)l->numel * l->perturbation[b];
    }
    if (!cJSON_GetObjectItemCaseSensitive(lj, "loss_increase"))
        return BP_OK;
    int has_inc[BP_SENS_MAX_BITS + 1] = {0};
    snprintf(sub, sizeof sub, "%s.loss_increase", at);
    if ((st = bp_json_obj(file, at, lj, "loss_increase", &o)) ||
        (st = read_bits_map(file, sub, o, 0, l->loss_increase, has_inc)))
        return st;
    for (int b = 1; b <= BP_SENS_MAX_BITS; b++)
        if (has_inc[b] != l->has_bits[b])
            return bp_fail(BP_EINVAL, "%s: %s: %s \"%d\" (expected the keys of "
                           "perturbation)", file, sub,
                           has_inc[b] ? "has no perturbation for" : "misses",
                           b);
    l->has_loss_increase = 1;
    return BP_OK;
}

static int read_seed(const char *file, const cJSON *root, uint64_t *seed)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "seed");
    if (v && cJSON_IsString(v) && v->valuestring) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v->valuestring, &end, 10);
        if (errno || end == v->valuestring || *end || v->valuestring[0] == '-')
            return bp_fail(BP_EINVAL, "%s: seed: expected a whole number from "
                           "0 to 2^64-1, got \"%s\"", file, v->valuestring);
        *seed = x;
        return BP_OK;
    }
    int64_t s;
    int st = bp_json_int(file, "", root, "seed", 0, INT64_C(1) << 53, &s);
    if (st)
        return st;
    *seed = (uint64_t)s;
    return BP_OK;
}

int bp_sens_load(bp_sens **out, const char *path)
{
    cJSON *root = NULL;
    bp_sens *s = NULL;
    const cJSON *o, *arr;
    const char *str;
    int n, st;
    if ((st = bp_json_load(path, &root)))
        return st;
    if ((st = bp_json_str_opt(path, "", root, "format", &str)))
        goto out;
    if (cJSON_GetObjectItemCaseSensitive(root, "format") &&
        strcmp(str, "bitplan-sensitivity") != 0) {
        st = bp_fail(BP_EINVAL, "%s: format: \"%s\" (expected "
                     "\"bitplan-sensitivity\")", path, str);
        goto out;
    }
    int64_t version = 1;
    if ((st = bp_json_int_opt(path, "", root, "version", 1, 1, &version)) ||
        (st = bp_json_arr(path, "", root, "layers", &arr, &n)))
        goto out;
    if (n < 1 || n > MAX_LAYERS) {
        st = bp_fail(BP_EINVAL, "%s: layers: %d entries (expected 1..%d)",
                     path, n, MAX_LAYERS);
        goto out;
    }
    if ((st = bp_sens_new(&s, n)))
        goto out;
    if ((st = bp_json_obj(path, "", root, "model", &o)) ||
        (st = bp_json_str(path, "model", o, "path", &str)) ||
        (st = dup_str(path, str, &s->model_path)) ||
        (st = bp_json_str(path, "model", o, "sha256", &str)) ||
        (st = dup_str(path, str, &s->model_sha256)) ||
        (st = bp_json_int_opt(path, "model", o, "float_params", 0,
                              INT64_C(1) << 50, &s->float_params)) ||
        (st = bp_json_int_opt(path, "model", o, "other_params", 0,
                              INT64_C(1) << 50, &s->other_params)) ||
        (st = bp_json_int_opt(path, "model", o, "const_bytes", 0,
                              INT64_C(1) << 50, &s->const_bytes)) ||
        (st = bp_json_obj(path, "", root, "data", &o)) ||
        (st = bp_json_str(path, "data", o, "path", &str)) ||
        (st = dup_str(path, str, &s->data_path)) ||
        (st = bp_json_str(path, "data", o, "sha256", &str)) ||
        (st = dup_str(path, str, &s->data_sha256)) ||
        (st = bp_json_int(path, "data", o, "samples", 0, INT64_C(1) << 53,
                          &s->samples)) ||
        (st = bp_json_num(path, "", root, "loss", &s->loss)) ||
        (st = read_seed(path, root, &s->seed)) ||
        (st = bp_json_obj(path, "", root, "settings", &o)) ||
        (st = bp_json_str(path, "", root, "stop_reason", &str)) ||
        (st = dup_str(path, str, &s->stop_reason)))
        goto out;
    s->settings = cJSON_PrintUnformatted(o);
    if (!s->settings) {
        st = bp_fail(BP_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    const cJSON *lj = arr->child;
    for (int i = 0; i < n; i++, lj = lj->next)
        if ((st = read_layer(path, lj, i, &s->layers[i])))
            goto out;
    /* names identify layers in plans and ties: they must be unique */
    int i_dup, j_dup;
    const char **names = malloc((size_t)n * sizeof *names);
    if (!names) {
        st = bp_fail(BP_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < n; i++)
        names[i] = s->layers[i].name;
    int dup = bp_first_duplicate(names, n, &i_dup, &j_dup);
    free(names);
    if (dup) {
        st = bp_fail(BP_EINVAL, "%s: layers[%d].name: \"%s\" is also "
                     "layers[%d]'s (names must be unique)", path, j_dup,
                     s->layers[j_dup].name, i_dup);
        goto out;
    }
    *out = s;
    s = NULL;
out:
    bp_sens_free(&s);
    cJSON_Delete(root);
    return st;
}

/* --- writing ------------------------------------------------------------ */

static cJSON *add_str(cJSON *o, const char *k, const char *v)
{
    return cJSON_AddStringToObject(o, k, v ? v : "");
}

static int check_finite(const char *path, const char *what, int i, double v)
{
    if (isfinite(v))
        return BP_OK;
    if (i >= 0)
        return bp_fail(BP_EINVAL, "%s: layers[%d].%s is %g: not writable "
                       "(expected a finite number)", path, i, what, v);
    return bp_fail(BP_EINVAL, "%s: %s is %g: not writable (expected a finite "
                   "number)", path, what, v);
}

static int write_layer(const char *path, const bp_sens_layer *l, int i,
                       cJSON *arr)
{
    int st;
    if (!l->name || !l->name[0])
        return bp_fail(BP_EINVAL, "%s: layers[%d] has no name", path, i);
    if (l->numel < 1)
        return bp_fail(BP_EINVAL, "%s: layers[%d].numel is %lld (expected "
                       ">= 1)", path, i, (long long)l->numel);
    if ((st = check_finite(path, "trace.mean", i, l->trace)) ||
        (st = check_finite(path, "trace.stderr", i, l->trace_stderr)))
        return st;
    int any = 0;
    for (int b = 1; b <= BP_SENS_MAX_BITS; b++)
        if (l->has_bits[b]) {
            any = 1;
            if ((st = check_finite(path, "perturbation", i, l->perturbation[b])) ||
                (st = check_finite(path, "omega", i, l->omega[b])) ||
                (l->has_loss_increase &&
                 (st = check_finite(path, "loss_increase", i,
                                    l->loss_increase[b]))))
                return st;
        }
    if (!any)
        return bp_fail(BP_EINVAL, "%s: layers[%d] (%s) has no bit-widths",
                       path, i, l->name);
    cJSON *o = cJSON_CreateObject(), *t = NULL, *e = NULL, *p = NULL, *w = NULL,
          *li = NULL;
    if (!o || !cJSON_AddItemToArray(arr, o)) {
        cJSON_Delete(o);
        return BP_ENOMEM;
    }
    int ok = add_str(o, "name", l->name) && add_str(o, "op", l->op) &&
             bp_json_add_num(o, "numel", (double)l->numel) &&
             bp_json_add_num(o, "macs", (double)l->macs);
    if (ok && l->out_channels > 0)
        ok = bp_json_add_num(o, "out_channels", (double)l->out_channels) != NULL;
    if (ok && l->in_numel > 0)
        ok = bp_json_add_num(o, "in_numel", (double)l->in_numel) != NULL;
    if (ok && l->out_numel > 0)
        ok = bp_json_add_num(o, "out_numel", (double)l->out_numel) != NULL;
    ok = ok && (t = cJSON_AddObjectToObject(o, "trace")) &&
         bp_json_add_num(t, "mean", l->trace) &&
         bp_json_add_num(t, "stderr", l->trace_stderr) &&
         bp_json_add_num(t, "samples", (double)l->trace_samples) &&
         add_str(t, "method", l->trace_method) &&
         (e = cJSON_AddObjectToObject(o, "top_eigenvalue")) &&
         bp_json_add_num(e, "value", l->top_eig) &&
         bp_json_add_num(e, "iterations", (double)l->eig_iterations) &&
         (p = cJSON_AddObjectToObject(o, "perturbation")) &&
         (w = cJSON_AddObjectToObject(o, "omega"));
    if (ok && l->has_loss_increase)
        ok = (li = cJSON_AddObjectToObject(o, "loss_increase")) != NULL;
    for (int b = 1; ok && b <= BP_SENS_MAX_BITS; b++)
        if (l->has_bits[b]) {
            char k[8];
            snprintf(k, sizeof k, "%d", b);
            ok = bp_json_add_num(p, k, l->perturbation[b]) &&
                 bp_json_add_num(w, k, l->omega[b]) &&
                 (!li || bp_json_add_num(li, k, l->loss_increase[b]));
        }
    return ok ? BP_OK : BP_ENOMEM;
}

int bp_sens_save(const bp_sens *s, const char *path)
{
    int st;
    if ((st = check_finite(path, "loss", -1, s->loss)))
        return st;
    if (s->n_layers < 1)
        return bp_fail(BP_EINVAL, "%s: no layers to write", path);
    cJSON *root = cJSON_CreateObject(), *m = NULL, *d = NULL, *arr = NULL;
    cJSON *settings = cJSON_Parse(s->settings ? s->settings : "{}");
    if (!settings || !cJSON_IsObject(settings)) {
        cJSON_Delete(settings);
        cJSON_Delete(root);
        return bp_fail(BP_EINVAL, "%s: settings is not a JSON object text",
                       path);
    }
    int ok = root && add_str(root, "format", "bitplan-sensitivity") &&
             bp_json_add_num(root, "version", 1) &&
             (m = cJSON_AddObjectToObject(root, "model")) &&
             add_str(m, "path", s->model_path) &&
             add_str(m, "sha256", s->model_sha256);
    if (ok && s->float_params > 0)
        ok = bp_json_add_num(m, "float_params", (double)s->float_params) != NULL;
    if (ok && s->other_params > 0)
        ok = bp_json_add_num(m, "other_params", (double)s->other_params) != NULL;
    if (ok && s->const_bytes > 0)
        ok = bp_json_add_num(m, "const_bytes", (double)s->const_bytes) != NULL;
    ok = ok && (d = cJSON_AddObjectToObject(root, "data")) &&
         add_str(d, "path", s->data_path) &&
         add_str(d, "sha256", s->data_sha256) &&
         bp_json_add_num(d, "samples", (double)s->samples) &&
         bp_json_add_num(root, "loss", s->loss);
    if (ok && s->seed > (UINT64_C(1) << 53)) {
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRIu64, s->seed);
        ok = cJSON_AddStringToObject(root, "seed", buf) != NULL;
    } else if (ok) {
        ok = bp_json_add_num(root, "seed", (double)s->seed) != NULL;
    }
    if (ok && cJSON_AddItemToObject(root, "settings", settings))
        settings = NULL;
    else
        ok = 0;
    ok = ok && add_str(root, "stop_reason", s->stop_reason) &&
         (arr = cJSON_AddArrayToObject(root, "layers"));
    st = ok ? BP_OK : bp_fail(BP_ENOMEM, "%s: out of memory", path);
    for (int i = 0; !st && i < s->n_layers; i++)
        st = write_layer(path, &s->layers[i], i, arr);
    if (st == BP_ENOMEM)
        st = bp_fail(BP_ENOMEM, "%s: out of memory", path);
    if (!st)
        st = bp_json_save(root, path);
    cJSON_Delete(settings);
    cJSON_Delete(root);
    return st;
}
