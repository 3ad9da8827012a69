/* jsonv.h - reading and writing bitplan's JSON files (sensitivity files,
 * plans, hardware profiles) with every field checked.
 *
 * Readers fetch each field through these helpers, which fail with BP_EINVAL
 * and one line naming the file, the JSON path of the field
 * ("layers[3].trace.mean") and what was expected, e.g.
 *   sens.json: layers[3].trace.mean: expected a number, got a string
 *   sens.json: layers[3].trace: missing (expected an object)
 * Writers format numbers with 17 significant digits ("%.17g"), so that every
 * double survives a write and a read bit for bit and a file read back and
 * written again is byte-identical.
 *
 * Nothing here keeps pointers: strings and items returned are borrowed from
 * the cJSON tree passed in.  Only libbitplan's file readers use this header;
 * it is not installed. */
#ifndef BP_JSONV_H
#define BP_JSONV_H

#include <stdint.h>

#include <cjson/cJSON.h>

/* Reads and parses the JSON file at path into *root (free with
 * cJSON_Delete).  BP_EIO when the file cannot be read, BP_EINVAL "PATH: not
 * valid JSON (line L)" when it does not parse, or when the top level is not
 * an object. */
int bp_json_load(const char *path, cJSON **root);

/* A field of object `obj` (which sits at JSON path `at`, "" for the root).
 * Each returns BP_OK and writes *out, or BP_EINVAL with the message above.
 * The _opt variants return BP_OK and leave *out untouched when the key is
 * absent (or null, for numbers), and fail only on a wrong type. */
int bp_json_obj(const char *file, const char *at, const cJSON *obj,
                const char *key, const cJSON **out);
int bp_json_arr(const char *file, const char *at, const cJSON *obj,
                const char *key, const cJSON **out, int *n);
int bp_json_str(const char *file, const char *at, const cJSON *obj,
                const char *key, const char **out);
int bp_json_str_opt(const char *file, const char *at, const cJSON *obj,
                    const char *key, const char **out);
/* A finite number. */
int bp_json_num(const char *file, const char *at, const cJSON *obj,
                const char *key, double *out);
int bp_json_num_opt(const char *file, const char *at, const cJSON *obj,
                    const char *key, double *out);
/* A finite number >= 0. */
int bp_json_nonneg(const char *file, const char *at, const cJSON *obj,
                   const char *key, double *out);
/* A whole number in lo..hi (exact in double: |v| <= 2^53). */
int bp_json_int(const char *file, const char *at, const cJSON *obj,
                const char *key, int64_t lo, int64_t hi, int64_t *out);
int bp_json_int_opt(const char *file, const char *at, const cJSON *obj,
                    const char *key, int64_t lo, int64_t hi, int64_t *out);

/* Formats "AT.KEY" (or "KEY" at the root, "AT[I]" for an index when key is
 * NULL) into buf; returns buf. */
char *bp_json_path(char *buf, size_t n, const char *at, const char *key,
                   int index);

/* Adds a number to obj with 17 significant digits ("%.17g"; whole numbers
 * up to 2^53 without exponent).  Non-finite values become null; callers
 * reject them before writing when null is not allowed.  Returns NULL on
 * allocation failure. */
cJSON *bp_json_add_num(cJSON *obj, const char *key, double v);
/* Appends a number to an array the same way. */
cJSON *bp_json_push_num(cJSON *arr, double v);

/* 1 when two of names[0..n) are equal, with *i < *j the first such pair
 * in the order of j (then i); 0 otherwise.  O(n log n). */
int bp_first_duplicate(const char *const *names, int n, int *i, int *j);

/* Prints root (cJSON's formatted layout, tab-indented, trailing newline)
 * and writes it to path atomically.  BP_ENOMEM or bp_write_file_atomic's
 * status. */
int bp_json_save(const cJSON *root, const char *path);

#endif
