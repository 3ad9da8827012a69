/* jsonmut.h - field-by-field corruption of a valid JSON file, for the
 * tests of every file reader (sensitivity files, plans, profiles).
 *
 * jsonmut_run() visits every member of every object in the document
 * (descending into the first element of arrays), and for each one writes
 * two corrupted copies of the file: the member deleted, and the member
 * replaced by a value of another type.  It loads each copy with the
 * reader under test and checks that
 *  - a wrongly typed member always fails with BP_EINVAL and a message
 *    naming the file and the member's key;
 *  - a deleted member fails the same way unless its path is listed as
 *    optional, in which case the load must succeed.
 * Paths look like "layers[0].trace.mean"; an optional entry ending in ".*"
 * covers every member of that object, and `skip` entries (same syntax)
 * are not visited at all (free-form objects).  Header-only, test code. */
#ifndef BP_JSONMUT_H
#define BP_JSONMUT_H

#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

typedef int (*jsonmut_load)(const char *path);

static int jsonmut_match(const char *path, const char *const *list)
{
    for (; list && *list; list++) {
        size_t n = strlen(*list);
        if (!strcmp(path, *list))
            return 1;
        if (n >= 2 && !strcmp(*list + n - 2, ".*") &&
            !strncmp(path, *list, n - 1) && !strchr(path + n - 1, '.'))
            return 1;
    }
    return 0;
}

static void jsonmut_write(const char *file, const cJSON *doc)
{
    char *s = cJSON_Print(doc);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(f);
    fputs(s, f);
    fclose(f);
    free(s);
}

/* Finds the member at `path` in doc: returns it and its parent. */
static cJSON *jsonmut_find(cJSON *doc, const char *path, cJSON **parent,
                           char *key, size_t keyn)
{
    cJSON *cur = doc, *par = NULL;
    const char *p = path;
    key[0] = '\0';
    while (*p) {
        char k[256];
        size_t n = strcspn(p, ".[");
        if (n >= sizeof k)
            return NULL;
        memcpy(k, p, n);
        k[n] = '\0';
        par = cur;
        cur = cJSON_GetObjectItemCaseSensitive(cur, k);
        snprintf(key, keyn, "%s", k);
        p += n;
        while (*p == '[') {
            int idx = atoi(p + 1);
            cur = cJSON_GetArrayItem(cur, idx);
            p = strchr(p, ']') + 1;
        }
        if (*p == '.')
            p++;
        if (!cur)
            return NULL;
    }
    *parent = par;
    return cur;
}

static void jsonmut_collect(const cJSON *node, const char *at, char ***paths,
                            int *n, const char *const *skip)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, node) {
        char p[512];
        snprintf(p, sizeof p, "%s%s%s", at, *at ? "." : "", it->string);
        if (jsonmut_match(p, skip))
            continue;
        *paths = realloc(*paths, (size_t)(*n + 1) * sizeof **paths);
        (*paths)[(*n)++] = strdup(p);
        const cJSON *v = it;
        char q[512];
        snprintf(q, sizeof q, "%s", p);
        while (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
            v = cJSON_GetArrayItem(v, 0);
            size_t l = strlen(q);
            snprintf(q + l, sizeof q - l, "[0]");
        }
        if (cJSON_IsObject(v))
            jsonmut_collect(v, q, paths, n, skip);
    }
}

/* Returns the number of corrupted files tried. */
static int jsonmut_run(const char *valid, const char *tmp, jsonmut_load load,
                       const char *const *optional, const char *const *skip)
{
    FILE *f = fopen(valid, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", valid);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    ck_assert_int_eq(fread(text, 1, (size_t)len, f), len);
    text[len] = '\0';
    fclose(f);
    cJSON *doc = cJSON_Parse(text);
    free(text);
    ck_assert_ptr_nonnull(doc);
    char **paths = NULL;
    int n = 0, tried = 0;
    jsonmut_collect(doc, "", &paths, &n, skip);
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < n; i++) {
        for (int mode = 0; mode < 2; mode++) {
            cJSON *copy = cJSON_Duplicate(doc, 1), *parent = NULL;
            char key[256];
            cJSON *item = jsonmut_find(copy, paths[i], &parent, key,
                                       sizeof key);
            ck_assert_msg(item && parent, "path %s not found", paths[i]);
            if (mode == 0) {
                cJSON_DeleteItemFromObjectCaseSensitive(parent, key);
            } else {
                cJSON *bad = cJSON_IsString(item) ? cJSON_CreateNumber(7)
                                                  : cJSON_CreateString("x");
                cJSON_ReplaceItemInObjectCaseSensitive(parent, key, bad);
            }
            jsonmut_write(tmp, copy);
            cJSON_Delete(copy);
            bp_errclear();
            int st = load(tmp);
            const char *msg = bp_errmsg();
            tried++;
            if (mode == 0 && jsonmut_match(paths[i], optional)) {
                ck_assert_msg(st == BP_OK, "deleting optional %s: %s",
                              paths[i], msg);
                continue;
            }
            ck_assert_msg(st == BP_EINVAL, "%s %s: status %d (%s)",
                          mode ? "mistyping" : "deleting", paths[i], st, msg);
            ck_assert_msg(strstr(msg, tmp) == msg,
                          "%s: message does not start with the file: %s",
                          paths[i], msg);
            ck_assert_msg(strstr(msg, key) != NULL,
                          "%s %s: message does not name '%s': %s",
                          mode ? "mistyping" : "deleting", paths[i], key, msg);
            ck_assert_msg(!strchr(msg, '\n'), "multi-line message: %s", msg);
        }
    }
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    cJSON_Delete(doc);
    return tried;
}

#endif
