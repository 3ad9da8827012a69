/* check_tensor.c - unit tests of bp_tensor (src/tensor.c) and of the error
 * model (src/status.c): allocation, cloning, shape arithmetic and its
 * overflow checks, element access for every dtype, shape formatting, status
 * names, the thread-local message and the CLI exit codes. */
#include <check.h>

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "tensor.h"

/* --- allocation ----------------------------------------------------------- */

START_TEST(test_new_zeroed)
{
    bp_dtype dt = (bp_dtype)_i;
    static const int64_t dims[3] = {2, 3, 4};
    bp_tensor *t = NULL;
    ck_assert_int_eq(bp_tensor_new(&t, dt, 3, dims), BP_OK);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->rank, 3);
    ck_assert_int_eq(t->dims[0], 2);
    ck_assert_int_eq(t->dims[1], 3);
    ck_assert_int_eq(t->dims[2], 4);
    ck_assert_int_eq(bp_tensor_numel(t), 24);
    ck_assert_uint_eq(bp_tensor_bytes(t), 24 * bp_dtype_size(dt));
    for (int64_t i = 0; i < 24; i++)
        ck_assert_double_eq(bp_tensor_get(t, i), 0.0);
    bp_tensor_free(&t);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_new_scalar_and_empty)
{
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, BP_F64, 0, NULL), BP_OK);
    ck_assert_int_eq(t->rank, 0);
    ck_assert_int_eq(bp_tensor_numel(t), 1);
    ck_assert_uint_eq(bp_tensor_bytes(t), 8);
    bp_tensor_set(t, 0, -2.5);
    ck_assert_double_eq(bp_tensor_get(t, 0), -2.5);
    bp_tensor_free(&t);

    static const int64_t empty[2] = {0, 7};
    ck_assert_int_eq(bp_tensor_new(&t, BP_I32, 2, empty), BP_OK);
    ck_assert_int_eq(bp_tensor_numel(t), 0);
    ck_assert_uint_eq(bp_tensor_bytes(t), 0);
    ck_assert_ptr_nonnull(t->data);
    bp_tensor_free(&t);
}
END_TEST

START_TEST(test_new_rejects_bad_shapes)
{
    bp_tensor *sentinel = (bp_tensor *)&sentinel, *t = sentinel;
    static const int64_t neg[2] = {3, -1};
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 2, neg), BP_EINVAL);
    ck_assert_ptr_eq(t, sentinel);
    ck_assert_str_ne(bp_errmsg(), "");

    static const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 9, nine), BP_EINVAL);
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, -1, nine), BP_EINVAL);
    ck_assert_int_eq(bp_tensor_new(&t, BP_DTYPE_COUNT, 1, nine), BP_EINVAL);

    /* Overflowing and merely too large: both refused before allocating. */
    static const int64_t absurd[2] = {1000000000000, 1000000000000};
    ck_assert_int_eq(bp_tensor_new(&t, BP_U8, 2, absurd), BP_EINVAL);
    static const int64_t big[1] = {(BP_MAX_TENSOR_BYTES / 4) + 1};
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 1, big), BP_EINVAL);
    ck_assert_ptr_nonnull(strstr(bp_errmsg(), "too large"));
    ck_assert_ptr_eq(t, sentinel);
}
END_TEST

START_TEST(test_clone_is_deep)
{
    static const int64_t dims[2] = {2, 2};
    bp_tensor *a, *b;
    ck_assert_int_eq(bp_tensor_new(&a, BP_I64, 2, dims), BP_OK);
    for (int64_t i = 0; i < 4; i++)
        bp_tensor_set(a, i, (double)(i * 10 - 15));
    ck_assert_int_eq(bp_tensor_clone(&b, a), BP_OK);
    ck_assert_ptr_ne(a, b);
    ck_assert_ptr_ne(a->data, b->data);
    ck_assert_int_eq(b->dtype, BP_I64);
    ck_assert_int_eq(b->rank, 2);
    ck_assert_int_eq(b->dims[1], 2);
    ck_assert_int_eq(memcmp(a->data, b->data, bp_tensor_bytes(a)), 0);
    bp_tensor_set(b, 0, 99.0);
    ck_assert_double_eq(bp_tensor_get(a, 0), -15.0);
    ck_assert_double_eq(bp_tensor_get(b, 0), 99.0);
    bp_tensor_free(&a);
    bp_tensor_free(&b);
}
END_TEST

START_TEST(test_free_accepts_null)
{
    bp_tensor *t = NULL;
    bp_tensor_free(&t);
    bp_tensor_free(NULL);
    ck_assert_ptr_null(t);
}
END_TEST

/* --- shape arithmetic ----------------------------------------------------- */

START_TEST(test_shape_numel)
{
    int64_t n = -42;
    ck_assert_int_eq(bp_shape_numel(0, NULL, &n), BP_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(bp_shape_numel(4, (int64_t[]){5, 1, 8, 8}, &n), BP_OK);
    ck_assert_int_eq(n, 320);
    ck_assert_int_eq(bp_shape_numel(2, (int64_t[]){0, 1000000000000}, &n),
                     BP_OK);
    ck_assert_int_eq(n, 0);

    /* The limit is INT64_MAX / 16, inclusive. */
    const int64_t lim = INT64_MAX / 16;
    ck_assert_int_eq(bp_shape_numel(1, (int64_t[]){lim}, &n), BP_OK);
    ck_assert_int_eq(n, lim);
    n = -42;
    ck_assert_int_eq(bp_shape_numel(1, (int64_t[]){lim + 1}, &n), BP_EINVAL);
    ck_assert_int_eq(n, -42); /* untouched on failure */
    ck_assert_int_eq(
        bp_shape_numel(2, (int64_t[]){1000000000000, 1000000000000}, &n),
        BP_EINVAL);
    ck_assert_int_eq(bp_shape_numel(2, (int64_t[]){INT64_MAX, INT64_MAX}, &n),
                     BP_EINVAL);
    ck_assert_int_eq(
        bp_shape_numel(8, (int64_t[]){256, 256, 256, 256, 256, 256, 256, 256},
                       &n),
        BP_EINVAL);
    ck_assert_int_eq(bp_shape_numel(2, (int64_t[]){4, -1}, &n), BP_EINVAL);
    ck_assert_int_eq(bp_shape_numel(1, (int64_t[]){INT64_MIN}, &n), BP_EINVAL);
    ck_assert_int_eq(bp_shape_numel(-1, NULL, &n), BP_EINVAL);
    ck_assert_int_eq(
        bp_shape_numel(BP_MAX_RANK + 1, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1},
                       &n),
        BP_EINVAL);
    ck_assert_int_eq(n, -42);
}
END_TEST

START_TEST(test_dtype_tables)
{
    static const size_t sizes[BP_DTYPE_COUNT] = {4, 8, 8, 4, 1, 1};
    static const char *const names[BP_DTYPE_COUNT] = {
        "float32", "float64", "int64", "int32", "uint8", "int8"};
    for (int d = 0; d < BP_DTYPE_COUNT; d++) {
        ck_assert_uint_eq(bp_dtype_size((bp_dtype)d), sizes[d]);
        ck_assert_str_eq(bp_dtype_name((bp_dtype)d), names[d]);
    }
    ck_assert_uint_eq(bp_dtype_size(BP_DTYPE_COUNT), 0);
    ck_assert_str_eq(bp_dtype_name(BP_DTYPE_COUNT), "?");
    ck_assert_str_eq(bp_dtype_name((bp_dtype)-1), "?");
}
END_TEST

/* --- element access ------------------------------------------------------- */

START_TEST(test_get_set_each_dtype)
{
    static const int64_t dims[1] = {4};
    bp_tensor *t;

    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 1, dims), BP_OK);
    bp_tensor_set(t, 1, 0.1);
    ck_assert_float_eq(((float *)t->data)[1], 0.1f);
    ck_assert_double_eq(bp_tensor_get(t, 1), (double)0.1f);
    bp_tensor_set(t, 3, -1e30);
    ck_assert_double_eq(bp_tensor_get(t, 3), (double)-1e30f);
    bp_tensor_free(&t);

    ck_assert_int_eq(bp_tensor_new(&t, BP_F64, 1, dims), BP_OK);
    bp_tensor_set(t, 2, 0.1);
    ck_assert_double_eq(((double *)t->data)[2], 0.1);
    ck_assert_double_eq(bp_tensor_get(t, 2), 0.1);
    bp_tensor_free(&t);

    ck_assert_int_eq(bp_tensor_new(&t, BP_I64, 1, dims), BP_OK);
    bp_tensor_set(t, 0, 9007199254740992.0); /* 2^53 */
    bp_tensor_set(t, 1, -3.0);
    ck_assert_int_eq(((int64_t *)t->data)[0], INT64_C(9007199254740992));
    ck_assert_double_eq(bp_tensor_get(t, 1), -3.0);
    bp_tensor_set(t, 2, 2.9); /* truncates toward zero, as a C cast */
    ck_assert_int_eq(((int64_t *)t->data)[2], 2);
    bp_tensor_free(&t);

    ck_assert_int_eq(bp_tensor_new(&t, BP_I32, 1, dims), BP_OK);
    bp_tensor_set(t, 0, (double)INT32_MIN);
    bp_tensor_set(t, 1, (double)INT32_MAX);
    ck_assert_int_eq(((int32_t *)t->data)[0], INT32_MIN);
    ck_assert_double_eq(bp_tensor_get(t, 1), (double)INT32_MAX);
    bp_tensor_set(t, 2, -2.9);
    ck_assert_int_eq(((int32_t *)t->data)[2], -2);
    bp_tensor_free(&t);

    ck_assert_int_eq(bp_tensor_new(&t, BP_U8, 1, dims), BP_OK);
    bp_tensor_set(t, 0, 255.0);
    bp_tensor_set(t, 1, 128.0);
    ck_assert_int_eq(((uint8_t *)t->data)[0], 255);
    ck_assert_double_eq(bp_tensor_get(t, 1), 128.0);
    bp_tensor_free(&t);

    ck_assert_int_eq(bp_tensor_new(&t, BP_I8, 1, dims), BP_OK);
    bp_tensor_set(t, 0, -128.0);
    bp_tensor_set(t, 1, 127.0);
    ck_assert_int_eq(((int8_t *)t->data)[0], -128);
    ck_assert_double_eq(bp_tensor_get(t, 1), 127.0);
    ck_assert_double_eq(bp_tensor_get(t, 0), -128.0);
    bp_tensor_free(&t);
}
END_TEST

START_TEST(test_shape_str)
{
    char buf[64];
    ck_assert_str_eq(bp_shape_str(buf, sizeof buf, 4, (int64_t[]){1, 3, 8, 8}),
                     "(1,3,8,8)");
    ck_assert_str_eq(bp_shape_str(buf, sizeof buf, 0, NULL), "()");
    ck_assert_str_eq(bp_shape_str(buf, sizeof buf, 1, (int64_t[]){5}), "(5)");
    ck_assert_str_eq(
        bp_shape_str(buf, sizeof buf, 2, (int64_t[]){INT64_MAX, 0}),
        "(9223372036854775807,0)");
    ck_assert_ptr_eq(bp_shape_str(buf, sizeof buf, 0, NULL), buf);

    /* A short buffer is truncated and stays terminated. */
    char small[6];
    memset(small, 'x', sizeof small);
    bp_shape_str(small, sizeof small, 3, (int64_t[]){12, 34, 56});
    ck_assert_str_eq(small, "(12,3");
}
END_TEST

/* --- status and messages -------------------------------------------------- */

START_TEST(test_status_str)
{
    ck_assert_str_eq(bp_status_str(BP_OK), "ok");
    ck_assert_str_eq(bp_status_str(BP_EINVAL), "invalid input");
    ck_assert_str_eq(bp_status_str(BP_EIO), "i/o error");
    ck_assert_str_eq(bp_status_str(BP_ENOMEM), "out of memory");
    ck_assert_str_eq(bp_status_str(BP_EUNSUPPORTED), "unsupported");
    ck_assert_str_eq(bp_status_str(BP_EINFEASIBLE), "infeasible");
    ck_assert_str_eq(bp_status_str(BP_EINTERRUPTED), "interrupted");
    ck_assert_str_eq(bp_status_str(BP_EINTERNAL), "internal error");
    ck_assert_str_eq(bp_status_str(-100), "unknown status");
    ck_assert_str_eq(bp_status_str(1), "unknown status");
}
END_TEST

START_TEST(test_fail_and_errmsg)
{
    bp_errclear();
    ck_assert_str_eq(bp_errmsg(), "");
    ck_assert_int_eq(bp_fail(BP_EINVAL, "%s: field '%s' expected %d", "m.json",
                             "bits", 4),
                     BP_EINVAL);
    ck_assert_str_eq(bp_errmsg(), "m.json: field 'bits' expected 4");
    ck_assert_int_eq(bp_fail(BP_EIO, "second"), BP_EIO);
    ck_assert_str_eq(bp_errmsg(), "second");
    bp_errclear();
    ck_assert_str_eq(bp_errmsg(), "");

    /* Long messages are truncated, not overflowed. */
    char *big = malloc(5000);
    ck_assert_ptr_nonnull(big);
    memset(big, 'a', 4999);
    big[4999] = '\0';
    ck_assert_int_eq(bp_fail(BP_EINTERNAL, "%s", big), BP_EINTERNAL);
    size_t len = strlen(bp_errmsg());
    ck_assert_uint_gt(len, 100);
    ck_assert_uint_lt(len, 4999);
    free(big);
}
END_TEST

static void *other_thread(void *arg)
{
    (void)arg;
    int empty = bp_errmsg()[0] == '\0';
    bp_fail(BP_EIO, "from the other thread");
    return empty ? (void *)1 : NULL;
}

START_TEST(test_errmsg_thread_local)
{
    bp_fail(BP_EINVAL, "main thread");
    pthread_t th;
    void *ret;
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(th, &ret), 0);
    ck_assert_ptr_eq(ret, (void *)1); /* it saw no message of ours */
    ck_assert_str_eq(bp_errmsg(), "main thread");
}
END_TEST

START_TEST(test_exit_code)
{
    ck_assert_int_eq(bp_exit_code(BP_OK), 0);
    ck_assert_int_eq(bp_exit_code(BP_EINFEASIBLE), 1);
    ck_assert_int_eq(bp_exit_code(BP_EINVAL), 2);
    ck_assert_int_eq(bp_exit_code(BP_EIO), 2);
    ck_assert_int_eq(bp_exit_code(BP_EUNSUPPORTED), 2);
    ck_assert_int_eq(bp_exit_code(BP_ENOMEM), 3);
    ck_assert_int_eq(bp_exit_code(BP_EINTERNAL), 3);
    ck_assert_int_eq(bp_exit_code(BP_EINTERRUPTED), 130); /* 128 + SIGINT */
    ck_assert_int_eq(bp_exit_code(-100), 3);
}
END_TEST

/* --- suite ---------------------------------------------------------------- */

static Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("tensor");
    tcase_add_loop_test(tc, test_new_zeroed, 0, BP_DTYPE_COUNT);
    tcase_add_test(tc, test_new_scalar_and_empty);
    tcase_add_test(tc, test_new_rejects_bad_shapes);
    tcase_add_test(tc, test_clone_is_deep);
    tcase_add_test(tc, test_free_accepts_null);
    tcase_add_test(tc, test_shape_numel);
    tcase_add_test(tc, test_dtype_tables);
    tcase_add_test(tc, test_get_set_each_dtype);
    tcase_add_test(tc, test_shape_str);
    suite_add_tcase(s, tc);

    tc = tcase_create("status");
    tcase_add_test(tc, test_status_str);
    tcase_add_test(tc, test_fail_and_errmsg);
    tcase_add_test(tc, test_errmsg_thread_local);
    tcase_add_test(tc, test_exit_code);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tensor_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
