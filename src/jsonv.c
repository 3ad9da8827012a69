/* jsonv.c - checked field access and exact number output for bitplan's JSON
 * files (see jsonv.h). */
#include "jsonv.h"
#include "atomic.h"
#include "status.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Files larger than this are not sensitivity files, plans or profiles. */
#define JSON_MAX_BYTES ((long)1 << 28)

/* A key twice in one object: cJSON keeps both and lookups find the first,
 * so a hand-edited file would silently lose the second.  The first such
 * key below o, as a JSON path in buf, or NULL.  depth bounds the recursion
 * (cJSON itself refuses nesting beyond CJSON_NESTING_LIMIT). */
static const char *duplicate_key(const cJSON *o, char *buf, size_t n,
                                 int depth)
{
    if (depth > 1000)
        return NULL;
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
        if (cJSON_IsObject(o) && c->string)
            for (const cJSON *d = c->next; d; d = d->next)
                if (d->string && !strcmp(c->string, d->string)) {
                    snprintf(buf, n, "%s", c->string);
                    return buf;
                }
        if ((cJSON_IsObject(c) || cJSON_IsArray(c)) &&
            duplicate_key(c, buf, n, depth + 1)) {
            char inner[256];
            snprintf(inner, sizeof inner, "%s", buf);
            if (c->string)
                snprintf(buf, n, "%s.%s", c->string, inner);
            return buf;
        }
    }
    return NULL;
}

int bp_json_load(const char *path, cJSON **root)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_fail(BP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return bp_fail(BP_EINVAL, "%s: is a directory; expected a JSON file",
                       path);
    }
    char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return bp_fail(BP_EIO, "%s: cannot read: not a regular file", path);
    }
    if (len > JSON_MAX_BYTES) {
        fclose(f);
        return bp_fail(BP_EINVAL, "%s: %ld bytes; a JSON file of at most %ld "
                       "bytes was expected", path, len, JSON_MAX_BYTES);
    }
    buf = malloc((size_t)len + 1);
    if (!buf) {
        fclose(f);
        return bp_fail(BP_ENOMEM, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)len, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || got != (size_t)len) {
        free(buf);
        return bp_fail(BP_EIO, "%s: cannot read", path);
    }
    buf[len] = '\0';
    const char *end = NULL;
    cJSON *r = cJSON_ParseWithLengthOpts(buf, (size_t)len, &end, 0);
    if (!r) {
        int line = 1;
        for (const char *p = buf; end && p < end && *p; p++)
            line += *p == '\n';
        free(buf);
        return bp_fail(BP_EINVAL, "%s: not valid JSON (line %d)", path, line);
    }
    /* cJSON stops after the first value: what follows must be blank */
    const char *rest = end ? end : buf + len;
    while (rest < buf + len && (*rest == ' ' || *rest == '\t' ||
                                *rest == '\n' || *rest == '\r'))
        rest++;
    if (rest < buf + len) {
        int line = 1;
        for (const char *p = buf; p < rest; p++)
            line += *p == '\n';
        cJSON_Delete(r);
        free(buf);
        return bp_fail(BP_EINVAL, "%s: not valid JSON (line %d): text after "
                       "the top-level value", path, line);
    }
    free(buf);
    if (!cJSON_IsObject(r)) {
        cJSON_Delete(r);
        return bp_fail(BP_EINVAL, "%s: expected a JSON object at the top level",
                       path);
    }
    char dup[512];
    if (duplicate_key(r, dup, sizeof dup, 0)) {
        cJSON_Delete(r);
        return bp_fail(BP_EINVAL, "%s: key '%s' appears twice in its object",
                       path, dup);
    }
    *root = r;
    return BP_OK;
}

char *bp_json_path(char *buf, size_t n, const char *at, const char *key,
                   int index)
{
    if (!key)
        snprintf(buf, n, "%s[%d]", at, index);
    else if (at && *at)
        snprintf(buf, n, "%s.%s", at, key);
    else
        snprintf(buf, n, "%s", key);
    return buf;
}

static const char *type_name(const cJSON *v)
{
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an unknown value";
}

/* The item under key, or a BP_EINVAL naming it; *v is NULL when absent and
 * absent_ok. */
static int field(const char *file, const char *at, const cJSON *obj,
                 const char *key, const char *want, int absent_ok,
                 const cJSON **v)
{
    char p[512];
    *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!*v && !absent_ok)
        return bp_fail(BP_EINVAL, "%s: %s: missing (expected %s)", file,
                       bp_json_path(p, sizeof p, at, key, 0), want);
    return BP_OK;
}

static int wrong(const char *file, const char *at, const char *key,
                 const char *want, const cJSON *v)
{
    char p[512];
    return bp_fail(BP_EINVAL, "%s: %s: expected %s, got %s", file,
                   bp_json_path(p, sizeof p, at, key, 0), want, type_name(v));
}

int bp_json_obj(const char *file, const char *at, const cJSON *obj,
                const char *key, const cJSON **out)
{
    const cJSON *v;
    int st = field(file, at, obj, key, "an object", 0, &v);
    if (st)
        return st;
    if (!cJSON_IsObject(v))
        return wrong(file, at, key, "an object", v);
    *out = v;
    return BP_OK;
}

int bp_json_arr(const char *file, const char *at, const cJSON *obj,
                const char *key, const cJSON **out, int *n)
{
    const cJSON *v;
    int st = field(file, at, obj, key, "an array", 0, &v);
    if (st)
        return st;
    if (!cJSON_IsArray(v))
        return wrong(file, at, key, "an array", v);
    *out = v;
    *n = cJSON_GetArraySize(v);
    return BP_OK;
}

static int str_field(const char *file, const char *at, const cJSON *obj,
                     const char *key, int opt, const char **out)
{
    const cJSON *v;
    int st = field(file, at, obj, key, "a string", opt, &v);
    if (st || !v)
        return st;
    if (!cJSON_IsString(v) || !v->valuestring)
        return wrong(file, at, key, "a string", v);
    *out = v->valuestring;
    return BP_OK;
}

int bp_json_str(const char *file, const char *at, const cJSON *obj,
                const char *key, const char **out)
{
    return str_field(file, at, obj, key, 0, out);
}

int bp_json_str_opt(const char *file, const char *at, const cJSON *obj,
                    const char *key, const char **out)
{
    return str_field(file, at, obj, key, 1, out);
}

static int num_field(const char *file, const char *at, const cJSON *obj,
                     const char *key, int opt, const char *want, double *out)
{
    const cJSON *v;
    int st = field(file, at, obj, key, want, opt, &v);
    if (st || !v || (opt && cJSON_IsNull(v)))
        return st;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return wrong(file, at, key, want, v);
    *out = v->valuedouble;
    return BP_OK;
}

int bp_json_num(const char *file, const char *at, const cJSON *obj,
                const char *key, double *out)
{
    return num_field(file, at, obj, key, 0, "a number", out);
}

int bp_json_num_opt(const char *file, const char *at, const cJSON *obj,
                    const char *key, double *out)
{
    return num_field(file, at, obj, key, 1, "a number", out);
}

int bp_json_nonneg(const char *file, const char *at, const cJSON *obj,
                   const char *key, double *out)
{
    double v = 0;
    char p[512];
    int st = num_field(file, at, obj, key, 0, "a number >= 0", &v);
    if (st)
        return st;
    if (v < 0)
        return bp_fail(BP_EINVAL, "%s: %s: expected a number >= 0, got %.17g",
                       file, bp_json_path(p, sizeof p, at, key, 0), v);
    *out = v;
    return BP_OK;
}

static int int_field(const char *file, const char *at, const cJSON *obj,
                     const char *key, int opt, int64_t lo, int64_t hi,
                     int64_t *out)
{
    char want[96], p[512];
    if (hi >= (INT64_C(1) << 50))
        snprintf(want, sizeof want, "a whole number >= %lld", (long long)lo);
    else
        snprintf(want, sizeof want, "a whole number from %lld to %lld",
                 (long long)lo, (long long)hi);
    double v = 0;
    const cJSON *item;
    int st = field(file, at, obj, key, want, opt, &item);
    if (st || !item)
        return st;
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
        return wrong(file, at, key, want, item);
    v = item->valuedouble;
    if (v != floor(v) || v < (double)lo || v > (double)hi ||
        fabs(v) > 9007199254740992.0)
        return bp_fail(BP_EINVAL, "%s: %s: expected %s, got %.17g", file,
                       bp_json_path(p, sizeof p, at, key, 0), want, v);
    *out = (int64_t)v;
    return BP_OK;
}

int bp_json_int(const char *file, const char *at, const cJSON *obj,
                const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    return int_field(file, at, obj, key, 0, lo, hi, out);
}

int bp_json_int_opt(const char *file, const char *at, const cJSON *obj,
                    const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    return int_field(file, at, obj, key, 1, lo, hi, out);
}

static cJSON *num_item(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNull();
    char buf[40];
    if (v == floor(v) && fabs(v) <= 9007199254740992.0)
        snprintf(buf, sizeof buf, "%.0f", v);
    else
        snprintf(buf, sizeof buf, "%.17g", v);
    if (strcmp(buf, "-0") == 0)
        strcpy(buf, "0");
    return cJSON_CreateRaw(buf);
}

cJSON *bp_json_add_num(cJSON *obj, const char *key, double v)
{
    cJSON *it = num_item(v);
    if (it && !cJSON_AddItemToObject(obj, key, it)) {
        cJSON_Delete(it);
        return NULL;
    }
    return it;
}

cJSON *bp_json_push_num(cJSON *arr, double v)
{
    cJSON *it = num_item(v);
    if (it && !cJSON_AddItemToArray(arr, it)) {
        cJSON_Delete(it);
        return NULL;
    }
    return it;
}

int bp_json_save(const cJSON *root, const char *path)
{
    char *text = cJSON_Print(root);
    if (!text)
        return bp_fail(BP_ENOMEM, "%s: out of memory formatting JSON", path);
    size_t n = strlen(text);
    char *buf = realloc(text, n + 2);
    if (!buf) {
        free(text);
        return bp_fail(BP_ENOMEM, "%s: out of memory formatting JSON", path);
    }
    buf[n] = '\n';
    buf[n + 1] = '\0';
    int st = bp_write_file_atomic(path, buf, n + 1);
    free(buf);
    return st;
}

struct named {
    const char *name;
    int i;
};

static int cmp_named(const void *x, const void *y)
{
    const struct named *a = x, *b = y;
    int c = strcmp(a->name, b->name);
    return c ? c : (a->i > b->i) - (a->i < b->i);
}

int bp_first_duplicate(const char *const *names, int n, int *i, int *j)
{
    struct named *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    int found = 0, bi = 0, bj = 0;
    if (!v) {
        /* no memory for the index: fall back to the quadratic scan */
        for (int b = 1; b < n && !found; b++)
            for (int a = 0; a < b && !found; a++)
                if (!strcmp(names[a], names[b])) {
                    found = 1;
                    bi = a;
                    bj = b;
                }
    } else {
        for (int k = 0; k < n; k++)
            v[k] = (struct named){names[k], k};
        qsort(v, (size_t)n, sizeof *v, cmp_named);
        for (int k = 1; k < n; k++)
            if (!strcmp(v[k - 1].name, v[k].name) &&
                (!found || v[k].i < bj)) {
                /* the first index of this name's run */
                int r = k - 1;
                while (r > 0 && !strcmp(v[r - 1].name, v[k].name))
                    r--;
                found = 1;
                bi = v[r].i;
                bj = v[k].i;
            }
        free(v);
    }
    if (found) {
        *i = bi;
        *j = bj;
    }
    return found;
}
