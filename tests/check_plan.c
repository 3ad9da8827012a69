/* check_plan.c - plan.json: round trip (byte-identical rewrite, exact
 * doubles), the --json text, every field missing or mistyped rejected with
 * one line naming the file and field, and what the writer refuses. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonmut.h"
#include "testfs.h"
#include "plan.h"
#include "status.h"

static void setup(void)
{
    testfs_setup("check_plan");
}

static void teardown(void)
{
    testfs_teardown();
}

static bp_plan *sample(void)
{
    bp_plan *p = NULL;
    ck_assert_int_eq(bp_plan_new(&p, 3, 2), BP_OK);
    p->model_path = strdup("examples/cnn.onnx");
    p->model_sha256 = strdup("3ef05fbf6c4d89aab3cbbfc1c8aa9dcc00a1ea3229c801ddd7f04de2e19bbdfb");
    p->profile = strdup("nvidia-t4");
    p->status = strdup("optimal");
    const char *names[3] = {"a.weight", "b.weight", "c \"q\".weight"};
    for (int i = 0; i < 3; i++) {
        p->layers[i].name = strdup(names[i]);
        p->layers[i].w_bits = 2 + 2 * i;
        p->layers[i].a_bits = 8;
        p->layers[i].size_bytes = 100 * (i + 1);
        p->layers[i].latency_s = (0.1 + 0.2) * 1e-6 * (i + 1);
        p->layers[i].bops = 1e6 * (i + 1);
        p->layers[i].omega = 1.0 / 3.0 * (i + 1);
    }
    p->budgets[0].kind = strdup("size");
    p->budgets[0].text = strdup("25%");
    p->budgets[0].value = 19994;
    p->budgets[1].kind = strdup("latency");
    p->budgets[1].text = strdup("0.8ms");
    p->budgets[1].value = 0.8e-3;
    p->size_bytes = 600;
    p->latency_s = 1.8e-6;
    p->bops = 6e6;
    p->objective = 2.0;
    p->gap = 1e-7;
    p->solve_seconds = 0.123;
    return p;
}

START_TEST(test_round_trip)
{
    char a[300], b[300];
    snprintf(a, sizeof a, "%s/a.json", tmpdir);
    snprintf(b, sizeof b, "%s/b.json", tmpdir);
    bp_plan *p = sample(), *q = NULL, *r = NULL;
    ck_assert_int_eq(bp_plan_save(p, a), BP_OK);
    ck_assert_int_eq(bp_plan_load(&q, a), BP_OK);
    ck_assert_int_eq(bp_plan_save(q, b), BP_OK);
    char *ta = slurp(a), *tb = slurp(b);
    ck_assert_str_eq(ta, tb);
    /* the solver's seconds are not in the file: plans are deterministic */
    ck_assert_ptr_null(strstr(ta, "seconds"));
    free(ta);
    free(tb);
    ck_assert_int_eq(q->n_layers, 3);
    ck_assert_int_eq(q->n_budgets, 2);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(q->layers[i].name, p->layers[i].name);
        ck_assert_int_eq(q->layers[i].w_bits, p->layers[i].w_bits);
        ck_assert_int_eq(q->layers[i].a_bits, 8);
        ck_assert(q->layers[i].latency_s == p->layers[i].latency_s);
        ck_assert(q->layers[i].omega == p->layers[i].omega);
    }
    ck_assert_str_eq(q->budgets[1].kind, "latency");
    ck_assert_str_eq(q->budgets[0].text, "25%");
    ck_assert(q->budgets[1].value == 0.8e-3);
    ck_assert(q->gap == 1e-7);
    ck_assert_str_eq(q->status, "optimal");
    ck_assert_str_eq(q->profile, "nvidia-t4");
    /* latency not modelled: null in the file, NAN in memory */
    q->latency_s = NAN;
    for (int i = 0; i < 3; i++)
        q->layers[i].latency_s = NAN;
    ck_assert_int_eq(bp_plan_save(q, b), BP_OK);
    ck_assert_int_eq(bp_plan_load(&r, b), BP_OK);
    ck_assert(isnan(r->latency_s) && isnan(r->layers[2].latency_s));
    bp_plan_free(&p);
    bp_plan_free(&q);
    bp_plan_free(&r);
    ck_assert_ptr_null(p);
    bp_plan_free(NULL);
}
END_TEST

START_TEST(test_json_text)
{
    bp_plan *p = sample();
    char *s = NULL;
    ck_assert_int_eq(bp_plan_to_json(p, &s), BP_OK);
    ck_assert_ptr_null(strchr(s, '\n'));
    /* the keys scripts rely on */
    const char *keys[] = {"\"layers\":[{\"name\":\"a.weight\",\"w_bits\":2,"
                          "\"a_bits\":8", "\"predicted\":{\"size_bytes\":600,"
                          "\"latency_s\":", "\"bops\":6000000,\"objective\":2}",
                          "\"status\":\"optimal\"", "\"gap\":", NULL};
    for (int i = 0; keys[i]; i++)
        ck_assert_msg(strstr(s, keys[i]) != NULL, "%s lacks %s", s, keys[i]);
    cJSON *j = cJSON_Parse(s);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "layers"), 2)
                         ->child->valuestring, "c \"q\".weight");
    cJSON_Delete(j);
    free(s);
    bp_plan_free(&p);
}
END_TEST

static int load_plan(const char *path)
{
    bp_plan *p = NULL;
    int st = bp_plan_load(&p, path);
    bp_plan_free(&p);
    return st;
}

START_TEST(test_every_field)
{
    char good[300], tmp[300];
    snprintf(good, sizeof good, "%s/good.json", tmpdir);
    snprintf(tmp, sizeof tmp, "%s/bad.json", tmpdir);
    bp_plan *p = sample();
    ck_assert_int_eq(bp_plan_save(p, good), BP_OK);
    bp_plan_free(&p);
    static const char *const optional[] = {"format", "version", NULL};
    int n = jsonmut_run(good, tmp, load_plan, optional, NULL);
    ck_assert_int_gt(n, 40);
}
END_TEST

START_TEST(test_values)
{
    char path[300];
    snprintf(path, sizeof path, "%s/p.json", tmpdir);
    bp_plan *p = sample(), *q = NULL;
    p->layers[1].w_bits = 17;
    ck_assert_int_eq(bp_plan_save(p, path), BP_EINVAL);
    ck_assert_int_ne(access(path, F_OK), 0);
    p->layers[1].w_bits = 4;
    p->objective = NAN;
    ck_assert_int_eq(bp_plan_save(p, path), BP_EINVAL);
    ck_assert_int_ne(access(path, F_OK), 0);
    p->objective = 1;
    free(p->budgets[0].kind);
    p->budgets[0].kind = strdup("energy");
    ck_assert_int_eq(bp_plan_save(p, path), BP_EINVAL);
    free(p->budgets[0].kind);
    p->budgets[0].kind = strdup("size");
    free(p->layers[2].name);
    p->layers[2].name = strdup("a.weight");
    ck_assert_int_eq(bp_plan_save(p, path), BP_OK);
    ck_assert_int_eq(bp_plan_load(&q, path), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "layers[2].name"));
    ck_assert_ptr_null(q);
    bp_plan_free(&p);
    ck_assert_int_eq(bp_plan_load(&q, "/nonexistent/p.json"), BP_EIO);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("plan");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_json_text);
    tcase_add_test(tc, test_every_field);
    tcase_add_test(tc, test_values);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
