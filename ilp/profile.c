/* profile.c - loading, validating and finding hardware profiles (see
 * profile.h and profiles/README.md). */
#include "profile.h"
#include "jsonv.h"
#include "status.h"

#include "ilp/profdirs.h"
#include "qgraph.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_PEAKS 64
#define MAX_ENTRIES 1000000

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_path(const char *name)
{
    size_t n = strlen(name);
    return strchr(name, '/') || (n >= 5 && !strcmp(name + n - 5, ".json"));
}

/* Calls fn(dir, ctx) for each search directory until it returns nonzero. */
static int each_dir(int (*fn)(const char *dir, void *ctx), void *ctx)
{
    const char *env = getenv("BITPLAN_PROFILE_PATH");
    if (env && *env) {
        char *copy = strdup(env), *save = NULL;
        if (!copy)
            return 0;
        for (char *d = strtok_r(copy, ":", &save); d;
             d = strtok_r(NULL, ":", &save))
            if (*d && fn(d, ctx)) {
                free(copy);
                return 1;
            }
        free(copy);
    }
    if (fn(BP_PROFILE_INSTALL_DIR, ctx))
        return 1;
    return fn(BP_PROFILE_SOURCE_DIR, ctx);
}

struct find_ctx {
    const char *name;
    char *buf;
    size_t n;
};

static int find_in(const char *dir, void *vctx)
{
    struct find_ctx *c = vctx;
    int k = snprintf(c->buf, c->n, "%s/%s.json", dir, c->name);
    return k > 0 && (size_t)k < c->n && is_file(c->buf);
}

struct list_ctx {
    char *buf;
    size_t n;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the first search directory that holds any .json file. */
static int list_in(const char *dir, void *vctx)
{
    struct list_ctx *c = vctx;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[256];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) && k < 256) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".json") &&
            e->d_name[0] != '.' && (names[k] = strndup(e->d_name, len - 5)))
            k++;
    }
    closedir(d);
    qsort(names, (size_t)k, sizeof *names, cmp_str);
    size_t used = 0;
    c->buf[0] = '\0';
    for (int i = 0; i < k; i++) {
        int w = snprintf(c->buf + used, c->n - used, "%s%s", i ? ", " : "",
                         names[i]);
        if (w > 0 && (size_t)w < c->n - used)
            used += (size_t)w;
        free(names[i]);
    }
    return k > 0;
}

void bp_profile_list(char *buf, size_t n)
{
    struct list_ctx c = {buf, n};
    if (n)
        buf[0] = '\0';
    each_dir(list_in, &c);
}

int bp_profile_find(const char *name, char *buf, size_t n)
{
    if (!name || !*name)
        return bp_fail(BP_EINVAL, "--profile: empty name (expected a shipped "
                       "profile such as nvidia-t4, or a path)");
    if (is_path(name)) {
        if (strlen(name) >= n)
            return bp_fail(BP_EINVAL, "%s: path too long", name);
        strcpy(buf, name);
        return BP_OK;
    }
    for (const char *p = name; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9')))
            return bp_fail(BP_EINVAL, "profile '%s': not a profile name "
                           "(letters, digits, '-', '_') nor a path", name);
    struct find_ctx c = {name, buf, n};
    if (each_dir(find_in, &c))
        return BP_OK;
    char list[1024];
    bp_profile_list(list, sizeof list);
    const char *env = getenv("BITPLAN_PROFILE_PATH");
    return bp_fail(BP_EINVAL, "profile '%s' not found (looked in %s%s%s and "
                   "%s; shipped profiles: %s)", name,
                   env && *env ? env : "", env && *env ? ", " : "",
                   BP_PROFILE_INSTALL_DIR, BP_PROFILE_SOURCE_DIR,
                   *list ? list : "none found");
}

void bp_profile_free(bp_profile **pp)
{
    if (!pp || !*pp)
        return;
    bp_profile *p = *pp;
    free(p->name);
    free(p->path);
    free(p->description);
    free(p->peaks);
    for (int i = 0; i < p->n_entries; i++)
        free(p->entries[i].layer);
    free(p->entries);
    bp_profile_free(&p->fallback);
    free(p);
    *pp = NULL;
}

static int dup_str(const char *file, const char *src, char **dst)
{
    *dst = strdup(src);
    return *dst ? BP_OK : bp_fail(BP_ENOMEM, "%s: out of memory", file);
}

/* A {"<key>": number > 0, "source": "..."} object: the number and a
 * non-empty source. */
static int sourced(const char *file, const char *at, const cJSON *root,
                   const char *obj_key, const char *num_key, double lo,
                   double hi, double *out)
{
    const cJSON *o;
    const char *src;
    char p[256];
    int st;
    if ((st = bp_json_obj(file, at, root, obj_key, &o)))
        return st;
    bp_json_path(p, sizeof p, at, obj_key, 0);
    if ((st = bp_json_num(file, p, o, num_key, out)) ||
        (st = bp_json_str(file, p, o, "source", &src)))
        return st;
    if (!*src)
        return bp_fail(BP_EINVAL, "%s: %s.source: empty (expected where the "
                       "number comes from)", file, p);
    if (*out < lo || *out > hi)
        return bp_fail(BP_EINVAL, "%s: %s.%s: %.17g is outside %g..%g", file,
                       p, num_key, *out, lo, hi);
    return BP_OK;
}

/* A non-empty "source" string of object o at `at`. */
static int need_source(const char *file, const char *at, const cJSON *o)
{
    const char *src;
    int st = bp_json_str(file, at, o, "source", &src);
    if (st)
        return st;
    if (!*src)
        return bp_fail(BP_EINVAL, "%s: %s.source: empty (expected where the "
                       "numbers come from)", file, at);
    return BP_OK;
}

/* Coefficients are seconds per unit: finite, >= 0, and under a second per
 * unit (a larger one is a unit mistake, not a measurement). */
static int coef(const char *file, const char *at, const cJSON *o,
                const char *key, double *out)
{
    int st = bp_json_nonneg(file, at, o, key, out);
    if (!st && *out > 1)
        return bp_fail(BP_EINVAL, "%s: %s.%s: %.17g seconds (expected 0..1)",
                       file, at, key, *out);
    return st;
}

static int load_regime(const char *file, const char *at, const cJSON *o,
                       bp_profile_lm_regime *r)
{
    const cJSON *arr;
    int n, st;
    if (!cJSON_IsObject(o))
        return bp_fail(BP_EINVAL, "%s: %s: missing (expected an object)", file,
                       at);
    if ((st = coef(file, at, o, "seconds", &r->seconds)) ||
        (st = coef(file, at, o, "per_tile", &r->per_tile)) ||
        (st = coef(file, at, o, "per_row_element", &r->per_row_element)) ||
        (st = coef(file, at, o, "per_output", &r->per_output)) ||
        (st = coef(file, at, o, "per_residual_output",
                   &r->per_residual_output)) ||
        (st = bp_json_arr(file, at, o, "bits", &arr, &n)))
        return st;
    if (n < 1 || n > BP_PROFILE_MAX_LM_BITS)
        return bp_fail(BP_EINVAL, "%s: %s.bits: %d entries (expected 1..%d)",
                       file, at, n, BP_PROFILE_MAX_LM_BITS);
    r->n_bits = n;
    const cJSON *e = arr->child;
    for (int i = 0; i < n; i++, e = e->next) {
        char ai[96];
        int64_t w;
        snprintf(ai, sizeof ai, "%s.bits[%d]", at, i);
        if (!cJSON_IsObject(e))
            return bp_fail(BP_EINVAL, "%s: %s: expected an object", file, ai);
        bp_profile_lm_bits *b = &r->bits[i];
        if ((st = bp_json_int(file, ai, e, "w_bits", 1, 32, &w)) ||
            (st = coef(file, ai, e, "per_mac", &b->per_mac)) ||
            (st = coef(file, ai, e, "per_weight", &b->per_weight)))
            return st;
        b->w_bits = (int)w;
        int64_t tp = 16;
        if ((st = bp_json_int_opt(file, ai, e, "tile_positions", 1, 256, &tp)))
            return st;
        b->tile_positions = (int)tp;
        if (i > 0 && r->bits[i - 1].w_bits >= b->w_bits)
            return bp_fail(BP_EINVAL, "%s: %s.w_bits: %d (expected widths in "
                           "ascending order, each once)", file, ai, (int)w);
    }
    return BP_OK;
}

/* "layer_model" (optional): see profiles/README.md. */
static int load_layer_model(const char *file, const cJSON *root, bp_profile *p)
{
    const cJSON *lm;
    int64_t v;
    int st;
    if (!cJSON_GetObjectItemCaseSensitive(root, "layer_model"))
        return BP_OK;
    if ((st = bp_json_obj(file, "", root, "layer_model", &lm)) ||
        (st = need_source(file, "layer_model", lm)) ||
        (st = bp_json_int(file, "layer_model", lm, "a_bits", 1, 32, &v)))
        return st;
    p->lm.a_bits = (int)v;
    if ((st = bp_json_int(file, "layer_model", lm, "threads", 1, 4096, &v)))
        return st;
    p->lm.threads = (int)v;
    if ((st = bp_json_int(file, "layer_model", lm, "parallel_macs", 0,
                          INT64_C(1) << 53, &p->lm.parallel_macs)) ||
        (st = load_regime(file, "layer_model.serial", cJSON_GetObjectItemCaseSensitive(lm, "serial"),
                          &p->lm.serial)))
        return st;
    if (p->lm.parallel_macs > 0 &&
        (st = load_regime(file, "layer_model.parallel",
                          cJSON_GetObjectItemCaseSensitive(lm, "parallel"),
                          &p->lm.parallel)))
        return st;
    const cJSON *wg = cJSON_GetObjectItemCaseSensitive(lm, "winograd");
    if (wg && !cJSON_IsBool(wg))
        return bp_fail(BP_EINVAL, "%s: layer_model.winograd: expected true or "
                       "false", file);
    p->lm.winograd = wg && cJSON_IsTrue(wg);
    p->lm.present = 1;
    return BP_OK;
}

/* "op_costs" (optional): see profiles/README.md. */
static int load_op_costs(const char *file, const cJSON *root, bp_profile *p)
{
    const cJSON *oc, *arr;
    int n, st;
    if (!cJSON_GetObjectItemCaseSensitive(root, "op_costs"))
        return BP_OK;
    if ((st = bp_json_obj(file, "", root, "op_costs", &oc)) ||
        (st = need_source(file, "op_costs", oc)) ||
        (st = bp_json_int(file, "op_costs", oc, "parallel_elements", 0,
                          INT64_C(1) << 53, &p->op_parallel_elements)) ||
        (st = bp_json_arr(file, "op_costs", oc, "ops", &arr, &n)))
        return st;
    if (n > BP_PROFILE_MAX_OPS)
        return bp_fail(BP_EINVAL, "%s: op_costs.ops: %d entries (expected at "
                       "most %d)", file, n, BP_PROFILE_MAX_OPS);
    const cJSON *e = arr->child;
    for (int i = 0; i < n; i++, e = e->next) {
        char at[64];
        const char *name;
        bp_profile_op_cost *c = &p->op_costs[i];
        snprintf(at, sizeof at, "op_costs.ops[%d]", i);
        if (!cJSON_IsObject(e))
            return bp_fail(BP_EINVAL, "%s: %s: expected an object", file, at);
        if ((st = bp_json_str(file, at, e, "op", &name)))
            return st;
        int known = 0;
        for (int k = 0; k < BP_QOP_COUNT; k++)
            known |= k != BP_QOP_LAYER && !strcmp(name, bp_qop_name((bp_qop_kind)k));
        if (!known)
            return bp_fail(BP_EINVAL, "%s: %s.op: \"%s\" (expected one of "
                           "Quantize, Dequant, Add, Relu, MaxPool, AvgPool, "
                           "Flatten, Requant)", file, at, name);
        for (int j = 0; j < i; j++)
            if (!strcmp(p->op_costs[j].name, name))
                return bp_fail(BP_EINVAL, "%s: %s.op: \"%s\" also in "
                               "op_costs.ops[%d]", file, at, name, j);
        snprintf(c->name, sizeof c->name, "%s", name);
        if ((st = coef(file, at, e, "seconds", &c->seconds)) ||
            (st = coef(file, at, e, "per_element", &c->per_element)))
            return st;
        const cJSON *par = cJSON_GetObjectItemCaseSensitive(e, "parallel");
        if (par) {
            char ap[96];
            snprintf(ap, sizeof ap, "%s.parallel", at);
            if (!cJSON_IsObject(par))
                return bp_fail(BP_EINVAL, "%s: %s: expected an object", file,
                               ap);
            if ((st = coef(file, ap, par, "seconds", &c->par_seconds)) ||
                (st = coef(file, ap, par, "per_element", &c->par_per_element)))
                return st;
            c->has_parallel = 1;
        }
    }
    p->n_op_costs = n;
    return BP_OK;
}

static int load_roofline(const char *file, const cJSON *root, bp_profile *p)
{
    const cJSON *arr, *mb;
    const char *s;
    int n, st;
    if ((st = bp_json_arr(file, "", root, "peak_ops", &arr, &n)))
        return st;
    if (n < 1 || n > MAX_PEAKS)
        return bp_fail(BP_EINVAL, "%s: peak_ops: %d entries (expected "
                       "1..%d)", file, n, MAX_PEAKS);
    p->peaks = calloc((size_t)n, sizeof *p->peaks);
    if (!p->peaks)
        return bp_fail(BP_ENOMEM, "%s: out of memory", file);
    p->n_peaks = n;
    const cJSON *e = arr->child;
    for (int i = 0; i < n; i++, e = e->next) {
        char at[32];
        int64_t w, a;
        snprintf(at, sizeof at, "peak_ops[%d]", i);
        if (!cJSON_IsObject(e))
            return bp_fail(BP_EINVAL, "%s: %s: expected an object", file, at);
        if ((st = bp_json_int(file, at, e, "w_bits", 1, 32, &w)) ||
            (st = bp_json_int(file, at, e, "a_bits", 1, 32, &a)) ||
            (st = bp_json_num(file, at, e, "ops_per_s", &p->peaks[i].ops_per_s)) ||
            (st = bp_json_str(file, at, e, "source", &s)))
            return st;
        if (!*s)
            return bp_fail(BP_EINVAL, "%s: %s.source: empty (expected where "
                           "the number comes from)", file, at);
        if (!(p->peaks[i].ops_per_s > 0))
            return bp_fail(BP_EINVAL, "%s: %s.ops_per_s: expected a number "
                           "> 0", file, at);
        p->peaks[i].w_bits = (int)w;
        p->peaks[i].a_bits = (int)a;
        for (int j = 0; j < i; j++)
            if (p->peaks[j].w_bits == w && p->peaks[j].a_bits == a)
                return bp_fail(BP_EINVAL, "%s: %s: w_bits %d a_bits %d also "
                               "in peak_ops[%d]", file, at, (int)w, (int)a, j);
    }
    if ((st = sourced(file, "", root, "memory", "bytes_per_s", 1, 1e16,
                      &p->bytes_per_s)) ||
        (st = sourced(file, "", root, "launch_overhead", "seconds", 0, 1,
                      &p->overhead_s)))
        return st;
    p->compute_efficiency = p->memory_efficiency = 1;
    if (cJSON_GetObjectItemCaseSensitive(root, "efficiency")) {
        const cJSON *ef;
        if ((st = bp_json_obj(file, "", root, "efficiency", &ef)) ||
            (st = bp_json_num(file, "efficiency", ef, "compute",
                              &p->compute_efficiency)) ||
            (st = bp_json_num(file, "efficiency", ef, "memory",
                              &p->memory_efficiency)) ||
            (st = bp_json_str(file, "efficiency", ef, "source", &s)))
            return st;
        if (!(p->compute_efficiency > 0 && p->compute_efficiency <= 1 &&
              p->memory_efficiency > 0 && p->memory_efficiency <= 1))
            return bp_fail(BP_EINVAL, "%s: efficiency: compute and memory "
                           "must be fractions in (0, 1]", file);
        if (!*s)
            return bp_fail(BP_EINVAL, "%s: efficiency.source: empty", file);
    }
    if ((st = bp_json_obj(file, "", root, "missing_bits", &mb)) ||
        (st = bp_json_str(file, "missing_bits", mb, "compute", &s)))
        return st;
    if (strcmp(s, "next-native") != 0)
        return bp_fail(BP_EINVAL, "%s: missing_bits.compute: \"%s\" (expected "
                       "\"next-native\")", file, s);
    if ((st = bp_json_str(file, "missing_bits", mb, "storage", &s)))
        return st;
    if (strcmp(s, "packed") && strcmp(s, "native"))
        return bp_fail(BP_EINVAL, "%s: missing_bits.storage: \"%s\" (expected "
                       "\"packed\" or \"native\")", file, s);
    p->storage_native = !strcmp(s, "native");
    if ((st = bp_json_str(file, "missing_bits", mb, "source", &s)))
        return st;
    if (!*s)
        return bp_fail(BP_EINVAL, "%s: missing_bits.source: empty", file);
    if ((st = load_layer_model(file, root, p)) ||
        (st = load_op_costs(file, root, p)))
        return st;
    return BP_OK;
}

static int load_table(const char *file, const cJSON *root, bp_profile *p)
{
    const cJSON *arr;
    const char *s, *fb, *top_src = NULL;
    int n, st;
    if ((st = bp_json_str_opt(file, "", root, "source", &top_src)) ||
        (st = bp_json_str(file, "", root, "fallback", &fb)) ||
        (st = bp_json_arr(file, "", root, "entries", &arr, &n)))
        return st;
    if (n < 1 || n > MAX_ENTRIES)
        return bp_fail(BP_EINVAL, "%s: entries: %d (expected 1..%d)", file,
                       n, MAX_ENTRIES);
    p->entries = calloc((size_t)n, sizeof *p->entries);
    if (!p->entries)
        return bp_fail(BP_ENOMEM, "%s: out of memory", file);
    p->n_entries = n;
    const cJSON *e = arr->child, *sh;
    for (int i = 0; i < n; i++, e = e->next) {
        char at[32];
        bp_profile_entry *t = &p->entries[i];
        int64_t w, a;
        snprintf(at, sizeof at, "entries[%d]", i);
        if (!cJSON_IsObject(e))
            return bp_fail(BP_EINVAL, "%s: %s: expected an object", file, at);
        if ((st = bp_json_str_opt(file, at, e, "layer", &s)))
            return st;
        if (cJSON_GetObjectItemCaseSensitive(e, "layer")) {
            if (!*s)
                return bp_fail(BP_EINVAL, "%s: %s.layer: empty", file, at);
            if ((st = dup_str(file, s, &t->layer)))
                return st;
        } else {
            int r;
            if ((st = bp_json_arr(file, at, e, "shape", &sh, &r)))
                return bp_fail(st, "%s: %s: expected \"layer\" (a weight "
                               "name) or \"shape\" (an array of dims)", file,
                               at);
            if (r < 1 || r > BP_MAX_RANK)
                return bp_fail(BP_EINVAL, "%s: %s.shape: %d dims (expected "
                               "1..%d)", file, at, r, BP_MAX_RANK);
            t->rank = r;
            for (int d = 0; d < r; d++) {
                const cJSON *x = cJSON_GetArrayItem(sh, d);
                if (!cJSON_IsNumber(x) || x->valuedouble < 1 ||
                    x->valuedouble != floor(x->valuedouble) ||
                    x->valuedouble > 9007199254740992.0)
                    return bp_fail(BP_EINVAL, "%s: %s.shape[%d]: expected a "
                                   "whole number >= 1", file, at, d);
                t->shape[d] = (int64_t)x->valuedouble;
            }
        }
        if ((st = bp_json_int(file, at, e, "w_bits", 1, 32, &w)) ||
            (st = bp_json_int(file, at, e, "a_bits", 1, 32, &a)) ||
            (st = bp_json_nonneg(file, at, e, "latency_s", &t->latency_s)))
            return st;
        t->w_bits = (int)w;
        t->a_bits = (int)a;
        s = NULL;
        if ((st = bp_json_str_opt(file, at, e, "source", &s)))
            return st;
        if ((!s || !*s) && (!top_src || !*top_src))
            return bp_fail(BP_EINVAL, "%s: %s.source: missing (expected where "
                           "the measurement comes from, here or as the "
                           "table's \"source\")", file, at);
    }
    /* The fallback: a name is found like --profile; a path is relative to
     * this table's directory. */
    char buf[4096];
    if (is_path(fb) && fb[0] != '/') {
        const char *slash = strrchr(file, '/');
        int dl = slash ? (int)(slash - file) : 1;
        snprintf(buf, sizeof buf, "%.*s/%s", dl, slash ? file : ".", fb);
    } else if ((st = bp_profile_find(fb, buf, sizeof buf))) {
        char why[768];
        snprintf(why, sizeof why, "%s", bp_errmsg());
        return bp_fail(st, "%s: fallback: %s", file, why);
    }
    if ((st = bp_profile_load(&p->fallback, buf)))
        return st;
    if (p->fallback->kind == BP_PROFILE_TABLE)
        return bp_fail(BP_EINVAL, "%s: fallback: '%s' is a table profile "
                       "(expected a roofline or bops profile)", file, fb);
    return BP_OK;
}

int bp_profile_load(bp_profile **out, const char *path)
{
    cJSON *root = NULL;
    bp_profile *p = NULL;
    const char *s;
    int64_t v;
    int st;
    if ((st = bp_json_load(path, &root)))
        return st;
    p = calloc(1, sizeof *p);
    if (!p) {
        st = bp_fail(BP_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if ((st = dup_str(path, path, &p->path)) ||
        (st = bp_json_str(path, "", root, "format", &s)))
        goto out;
    if (strcmp(s, "bitplan-profile") != 0) {
        st = bp_fail(BP_EINVAL, "%s: format: \"%s\" (expected "
                     "\"bitplan-profile\")", path, s);
        goto out;
    }
    if ((st = bp_json_int(path, "", root, "version", 1, 1, &v)) ||
        (st = bp_json_str(path, "", root, "name", &s)) ||
        (st = dup_str(path, s, &p->name)) ||
        (st = bp_json_str(path, "", root, "description", &s)) ||
        (st = dup_str(path, s, &p->description)) ||
        (st = bp_json_str(path, "", root, "kind", &s)))
        goto out;
    if (!p->name[0]) {
        st = bp_fail(BP_EINVAL, "%s: name: empty", path);
        goto out;
    }
    if (!strcmp(s, "roofline")) {
        p->kind = BP_PROFILE_ROOFLINE;
        st = load_roofline(path, root, p);
    } else if (!strcmp(s, "table")) {
        p->kind = BP_PROFILE_TABLE;
        st = load_table(path, root, p);
    } else if (!strcmp(s, "bops")) {
        p->kind = BP_PROFILE_BOPS;
    } else {
        st = bp_fail(BP_EINVAL, "%s: kind: \"%s\" (expected \"roofline\", "
                     "\"table\" or \"bops\")", path, s);
    }
    if (st)
        goto out;
    *out = p;
    p = NULL;
out:
    bp_profile_free(&p);
    cJSON_Delete(root);
    return st;
}

int bp_profile_open(bp_profile **out, const char *name_or_path)
{
    char buf[4096];
    int st = bp_profile_find(name_or_path, buf, sizeof buf);
    return st ? st : bp_profile_load(out, buf);
}

int bp_profile_has_latency(const bp_profile *p)
{
    if (p->kind == BP_PROFILE_TABLE)
        return p->fallback && p->fallback->kind != BP_PROFILE_BOPS;
    return p->kind == BP_PROFILE_ROOFLINE;
}

int bp_profile_native(const bp_profile *p, int w_bits, int a_bits,
                      const bp_profile_peak **peak)
{
    const bp_profile_peak *best = NULL;
    for (int i = 0; i < p->n_peaks; i++) {
        const bp_profile_peak *k = &p->peaks[i];
        if (k->w_bits >= w_bits && k->a_bits >= a_bits &&
            (!best || k->ops_per_s > best->ops_per_s))
            best = k;
    }
    if (!best)
        return bp_fail(BP_EUNSUPPORTED, "%s: no native format runs %d-bit "
                       "weights with %d-bit activations (peak_ops lists none "
                       "at least that wide)", p->path, w_bits, a_bits);
    *peak = best;
    return BP_OK;
}
