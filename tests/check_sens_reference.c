/* check_sens_reference.c - `bitplan sensitivity` with default settings on
 * the example models against the exact torch references.
 *
 * examples/hessian_reference.json holds, for every layer of mlp.onnx and
 * cnn.onnx, the trace and top eigenvalue of its dense Hessian block built by
 * torch's double backward, column by column, in float64
 * (examples/hessian_reference.py).  The bitplan binary ($BITPLAN) runs with
 * nothing but the data and labels; every layer's trace must be within 2%
 * and its top eigenvalue within 0.5% of the reference, and the loss must
 * agree. */
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    ck_assert_msg(j != NULL, "%s: not JSON", path);
    return j;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    ck_assert_msg(cJSON_IsNumber(v), "key %s missing", key);
    return v->valuedouble;
}

static void compare(const char *model, const char *data)
{
    const char *bin = getenv("BITPLAN");
    char out[] = "/tmp/bp_sens_ref_XXXXXX";
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "'%s' sensitivity '%s/examples/%s' --data '%s/examples/%s' "
             "--labels '%s/examples/digits_calib_y.npy' -o '%s' 2>/dev/null",
             bin ? bin : "./bitplan", BP_SRCDIR, model, BP_SRCDIR, data,
             BP_SRCDIR, out);
    ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
    cJSON *got = load_json(out);
    unlink(out);
    char ref_path[2048];
    snprintf(ref_path, sizeof ref_path, "%s/examples/hessian_reference.json",
             BP_SRCDIR);
    cJSON *ref = load_json(ref_path);
    const cJSON *rm = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(ref, "models"), model);
    ck_assert_ptr_nonnull(rm);
    const cJSON *rl = cJSON_GetObjectItemCaseSensitive(rm, "layers");
    double loss = num(got, "loss"), rloss = num(rm, "loss");
    ck_assert_msg(fabs(loss - rloss) <= 1e-6 * fabs(rloss), "%s: loss %.12g vs "
                  "torch %.12g", model, loss, rloss);
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(got, "layers");
    ck_assert_int_eq(cJSON_GetArraySize(layers), cJSON_GetArraySize(rl));
    const cJSON *l;
    cJSON_ArrayForEach(l, layers)
    {
        const char *name = cJSON_GetObjectItemCaseSensitive(l, "name")->valuestring;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(rl, name);
        ck_assert_msg(r != NULL, "%s: layer %s not in the reference", model, name);
        double tr = num(cJSON_GetObjectItemCaseSensitive(l, "trace"), "mean");
        double ev = num(cJSON_GetObjectItemCaseSensitive(l, "top_eigenvalue"),
                        "value");
        double rtr = num(r, "trace"), rev = num(r, "top_eigenvalue");
        double etr = fabs(tr - rtr) / fabs(rtr), eev = fabs(ev - rev) / fabs(rev);
        fprintf(stderr, "%-9s %-22s trace %-12.8g (torch %-12.8g, rel %.1e)  "
                "top %-12.8g (torch %-12.8g, rel %.1e)\n", model, name, tr, rtr,
                etr, ev, rev, eev);
        ck_assert_msg(etr <= 0.02, "%s %s: trace %.8g vs torch %.8g", model,
                      name, tr, rtr);
        ck_assert_msg(eev <= 0.005, "%s %s: top eigenvalue %.8g vs torch %.8g",
                      model, name, ev, rev);
    }
    cJSON_Delete(got);
    cJSON_Delete(ref);
}

START_TEST(test_mlp) { compare("mlp.onnx", "digits_calib_flat.npy"); }
END_TEST

START_TEST(test_cnn) { compare("cnn.onnx", "digits_calib_x.npy"); }
END_TEST

int main(void)
{
    Suite *s = suite_create("sens_reference");
    TCase *tc = tcase_create("torch");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_mlp);
    tcase_add_test(tc, test_cnn);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
