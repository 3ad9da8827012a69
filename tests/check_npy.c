/* check_npy.c - unit tests of the .npy reader and writer (src/npy.c) and of
 * atomic output files (src/atomic.c).
 *
 * Covers round trips of every dtype and ranks 0..4, byte-identity with the
 * files numpy itself wrote (tests/data/npy, made by make.py there), header
 * variants, streaming row reads with dtype conversion, malformed and hostile
 * files, and the write-then-rename guarantees.  Each test runs in Check's
 * forked child inside its own mkdtemp() scratch directory. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* O_TMPFILE, to probe the scratch file system */
#endif
#include <check.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atomic.h"
#include "npy.h"
#include "status.h"
#include "tensor.h"

#ifndef BP_SRCDIR
#define BP_SRCDIR "."
#endif
#define REF(name) BP_SRCDIR "/tests/data/npy/" name

/* --- scratch directory and file helpers ----------------------------------- */

/* root: one directory per test case, made and removed by the runner
 * process (so it goes even when a test fails); scratch: one directory per
 * test inside it.  Kept short so that sp() cannot truncate. */
static char root[256];
static char scratch[512];

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void case_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof root, "%s/check_npy.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror(root);
        abort();
    }
}

static void case_teardown(void) { rm_rf(root); }

static void setup(void)
{
    snprintf(scratch, sizeof scratch, "%s/t.XXXXXX", root);
    ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static void teardown(void) { rm_rf(scratch); }

/* scratch/name, in one of a few rotating buffers. */
static const char *sp(const char *name)
{
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", scratch, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(data, 1, n, fp), n);
    ck_assert_int_eq(fclose(fp), 0);
}

/* Reads a whole file into a malloc'd buffer; *n gets its size. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    rewind(fp);
    unsigned char *buf = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    *n = (size_t)len;
    return buf;
}

/* Writes a .npy file with the given version and hlen bytes of header text
 * (used as is, no padding), then `ndata` data bytes (0, 1, 2, ... mod 256). */
static void write_npy_len(const char *path, int major, int minor,
                          const char *hdr, size_t hlen, size_t ndata)
{
    size_t lenbytes = major == 1 ? 2 : 4;
    size_t n = 8 + lenbytes + hlen + ndata;
    unsigned char *b = malloc(n);
    ck_assert_ptr_nonnull(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = (unsigned char)minor;
    for (size_t i = 0; i < lenbytes; i++)
        b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(b + 8 + lenbytes, hdr, hlen);
    for (size_t i = 0; i < ndata; i++)
        b[8 + lenbytes + hlen + i] = (unsigned char)i;
    write_bytes(path, b, n);
    free(b);
}

static void write_npy(const char *path, int major, int minor, const char *hdr,
                      size_t ndata)
{
    write_npy_len(path, major, minor, hdr, strlen(hdr), ndata);
}

static int count_entries(const char *dir, int dot_only)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!dot_only || e->d_name[0] == '.')
            n++;
    }
    closedir(d);
    return n;
}

static int temp_files(void) { return count_entries(scratch, 1); }

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The last message starts with `path` and contains `sub`. */
static void assert_msg(const char *path, const char *sub)
{
    const char *m = bp_errmsg();
    ck_assert_msg(strncmp(m, path, strlen(path)) == 0,
                  "message does not start with the path %s: \"%s\"", path, m);
    if (sub)
        ck_assert_msg(strstr(m, sub) != NULL, "message lacks \"%s\": \"%s\"",
                      sub, m);
    ck_assert_msg(!strchr(m, '\n'), "message is not one line: \"%s\"", m);
}

/* Opening and loading path both fail with `status`, leave the output
 * pointer alone, and say so in a message naming the file. */
static void assert_open_fails(const char *path, int status, const char *sub)
{
    bp_npy *sentinel = (bp_npy *)&sentinel, *f = sentinel;
    int st = bp_npy_open(&f, path);
    ck_assert_msg(st == status, "%s: status %d (%s), expected %d; msg: %s",
                  path, st, bp_status_str(st), status, bp_errmsg());
    ck_assert_ptr_eq(f, sentinel);
    assert_msg(path, sub);

    bp_tensor *tsent = (bp_tensor *)&tsent, *t = tsent;
    ck_assert_int_eq(bp_npy_load(&t, path), status);
    ck_assert_ptr_eq(t, tsent);
    assert_msg(path, sub);
}

/* --- round trips ---------------------------------------------------------- */

/* A distinct, exactly representable value for element i of dtype dt. */
static double sample_value(bp_dtype dt, int64_t i)
{
    switch (dt) {
    case BP_F32:
    case BP_F64: return (double)(i - 7) * 0.25;
    case BP_U8: return (double)((i * 37) % 256);
    case BP_I8: return (double)((i * 37) % 256 - 128);
    case BP_I32: return (double)((i - 20) * 1000003);
    default: return (double)(i - 20) * 4503599627370.0;
    }
}

START_TEST(test_roundtrip_dtypes_ranks)
{
    bp_dtype dt = (bp_dtype)_i;
    static const int64_t dims[5][4] = {
        {0}, {5}, {3, 4}, {2, 3, 4}, {2, 1, 3, 2}};
    for (int rank = 0; rank <= 4; rank++) {
        bp_tensor *t, *u;
        ck_assert_int_eq(bp_tensor_new(&t, dt, rank, dims[rank]), BP_OK);
        int64_t n = bp_tensor_numel(t);
        for (int64_t i = 0; i < n; i++)
            bp_tensor_set(t, i, sample_value(dt, i));
        const char *path = sp("rt.npy");
        ck_assert_int_eq(bp_npy_save(path, t), BP_OK);
        ck_assert_int_eq(temp_files(), 0);

        /* numpy's layout: 64-byte aligned header ending in '\n'. */
        size_t len;
        unsigned char *raw = slurp(path, &len);
        size_t hdr = 10 + (size_t)(raw[8] | raw[9] << 8);
        ck_assert_uint_eq(hdr % 64, 0);
        ck_assert_int_eq(raw[hdr - 1], '\n');
        ck_assert_int_eq(raw[6], 1);
        ck_assert_uint_eq(len, hdr + bp_tensor_bytes(t));
        free(raw);

        ck_assert_int_eq(bp_npy_load(&u, path), BP_OK);
        ck_assert_int_eq(u->dtype, dt);
        ck_assert_int_eq(u->rank, rank);
        for (int k = 0; k < rank; k++)
            ck_assert_int_eq(u->dims[k], dims[rank][k]);
        ck_assert_int_eq(memcmp(u->data, t->data, bp_tensor_bytes(t)), 0);
        for (int64_t i = 0; i < n; i++)
            ck_assert_double_eq(bp_tensor_get(u, i), sample_value(dt, i));
        bp_tensor_free(&t);
        bp_tensor_free(&u);
    }
}
END_TEST

START_TEST(test_roundtrip_empty_axis)
{
    static const int64_t dims[2] = {0, 3};
    bp_tensor *t, *u;
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 2, dims), BP_OK);
    ck_assert_int_eq(bp_npy_save(sp("e.npy"), t), BP_OK);
    ck_assert_int_eq(bp_npy_load(&u, sp("e.npy")), BP_OK);
    ck_assert_int_eq(u->rank, 2);
    ck_assert_int_eq(u->dims[0], 0);
    ck_assert_int_eq(u->dims[1], 3);
    bp_npy *f;
    ck_assert_int_eq(bp_npy_open(&f, sp("e.npy")), BP_OK);
    ck_assert_int_eq(bp_npy_count(f), 0);
    ck_assert_int_eq(bp_npy_row_numel(f), 3);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 0, BP_F64, NULL), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 1, BP_F64, NULL), BP_EINVAL);
    bp_npy_close(&f);
    ck_assert_ptr_null(f);
    bp_npy_close(&f); /* NULL is fine */
    bp_npy_close(NULL);
    bp_tensor_free(&t);
    bp_tensor_free(&u);
}
END_TEST

START_TEST(test_save_overwrites)
{
    static const int64_t d1[1] = {4}, d2[2] = {2, 2};
    bp_tensor *a, *b, *u;
    ck_assert_int_eq(bp_tensor_new(&a, BP_I32, 1, d1), BP_OK);
    ck_assert_int_eq(bp_tensor_new(&b, BP_F64, 2, d2), BP_OK);
    bp_tensor_set(b, 3, 42.0);
    ck_assert_int_eq(bp_npy_save(sp("o.npy"), a), BP_OK);
    ck_assert_int_eq(bp_npy_save(sp("o.npy"), b), BP_OK);
    ck_assert_int_eq(bp_npy_load(&u, sp("o.npy")), BP_OK);
    ck_assert_int_eq(u->dtype, BP_F64);
    ck_assert_double_eq(bp_tensor_get(u, 3), 42.0);
    ck_assert_int_eq(count_entries(scratch, 0), 1);
    bp_tensor_free(&a);
    bp_tensor_free(&b);
    bp_tensor_free(&u);
}
END_TEST

START_TEST(test_save_invalid_tensor)
{
    bp_tensor t = {.dtype = BP_DTYPE_COUNT, .rank = 1, .dims = {3}};
    ck_assert_int_eq(bp_npy_save(sp("bad.npy"), &t), BP_EINVAL);
    assert_msg(sp("bad.npy"), "invalid tensor");
    bp_tensor t2 = {.dtype = BP_F32, .rank = 1, .dims = {-3}};
    ck_assert_int_eq(bp_npy_save(sp("bad.npy"), &t2), BP_EINVAL);
    ck_assert_int_eq(count_entries(scratch, 0), 0);
}
END_TEST

/* The row-by-row writer makes the file bp_npy_save makes, byte for byte,
 * and nothing at all when the rows do not add up. */
START_TEST(test_writer_rows)
{
    static const int64_t d[3] = {7, 3, 2};
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 3, d), BP_OK);
    for (int64_t i = 0; i < bp_tensor_numel(t); i++)
        ((float *)t->data)[i] = (float)i * 0.5f - 3;
    ck_assert_int_eq(bp_npy_save(sp("whole.npy"), t), BP_OK);
    bp_npy_writer *w;
    ck_assert_int_eq(bp_npy_writer_open(&w, sp("rows.npy"), BP_F32, 3, d), BP_OK);
    /* batches of 3, 3 and the last 1, as a batched run writes them */
    for (int64_t r = 0; r < 7; r += 3) {
        int64_t n = 7 - r < 3 ? 7 - r : 3;
        ck_assert_int_eq(bp_npy_writer_rows(w, (float *)t->data + r * 6, n), BP_OK);
    }
    ck_assert_int_eq(count_entries(scratch, 0), 1); /* not there before commit */
    ck_assert_int_eq(bp_npy_writer_commit(&w), BP_OK);
    ck_assert_ptr_null(w);
    size_t n1, n2;
    unsigned char *a = slurp(sp("whole.npy"), &n1), *b = slurp(sp("rows.npy"), &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert(memcmp(a, b, n1) == 0);
    free(a);
    free(b);
    /* too few rows, too many rows: refused, nothing written */
    ck_assert_int_eq(bp_npy_writer_open(&w, sp("short.npy"), BP_F32, 3, d), BP_OK);
    ck_assert_int_eq(bp_npy_writer_rows(w, t->data, 6), BP_OK);
    ck_assert_int_eq(bp_npy_writer_rows(w, t->data, 2), BP_EINVAL);
    assert_msg(sp("short.npy"), "more rows than the 7 declared");
    ck_assert_int_eq(bp_npy_writer_commit(&w), BP_EINVAL);
    assert_msg(sp("short.npy"), "6 rows written of the 7 declared");
    ck_assert_int_eq(bp_npy_writer_open(&w, sp("gone.npy"), BP_F32, 3, d), BP_OK);
    bp_npy_writer_abort(&w);
    bp_npy_writer_abort(&w);
    ck_assert_int_eq(count_entries(scratch, 0), 2);
    ck_assert_int_eq(temp_files(), 0);
    bp_tensor_free(&t);
}
END_TEST

/* --- files written by numpy ----------------------------------------------- */

static bp_tensor *load_ref(const char *path, bp_dtype dt, int rank,
                           const int64_t *dims)
{
    bp_tensor *t;
    int st = bp_npy_load(&t, path);
    ck_assert_msg(st == BP_OK, "%s: %s", path, bp_errmsg());
    ck_assert_int_eq(t->dtype, dt);
    ck_assert_int_eq(t->rank, rank);
    for (int k = 0; k < rank; k++)
        ck_assert_int_eq(t->dims[k], dims[k]);
    return t;
}

START_TEST(test_numpy_reference_values)
{
    bp_tensor *t;

    t = load_ref(REF("f32_3x2.npy"), BP_F32, 2, (int64_t[]){3, 2});
    static const float f32[] = {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f};
    ck_assert_int_eq(memcmp(t->data, f32, sizeof f32), 0);
    bp_tensor_free(&t);

    t = load_ref(REF("f64_2x2x2.npy"), BP_F64, 3, (int64_t[]){2, 2, 2});
    static const double f64[] = {3.141592653589793, -1e300, 1e-300, 0.1,
                                 -0.0, 2.5, -7.0, 1024.0};
    ck_assert_int_eq(memcmp(t->data, f64, sizeof f64), 0);
    ck_assert(signbit(((double *)t->data)[4]));
    bp_tensor_free(&t);

    t = load_ref(REF("i64_4.npy"), BP_I64, 1, (int64_t[]){4});
    static const int64_t i64[] = {INT64_MIN, -1, 0, INT64_MAX};
    ck_assert_int_eq(memcmp(t->data, i64, sizeof i64), 0);
    bp_tensor_free(&t);

    t = load_ref(REF("u8_2x3.npy"), BP_U8, 2, (int64_t[]){2, 3});
    static const uint8_t u8[] = {0, 1, 127, 128, 254, 255};
    ck_assert_int_eq(memcmp(t->data, u8, sizeof u8), 0);
    bp_tensor_free(&t);

    t = load_ref(REF("i8_5.npy"), BP_I8, 1, (int64_t[]){5});
    static const int8_t i8[] = {-128, -1, 0, 1, 127};
    ck_assert_int_eq(memcmp(t->data, i8, sizeof i8), 0);
    bp_tensor_free(&t);

    t = load_ref(REF("i32_scalar.npy"), BP_I32, 0, NULL);
    ck_assert_int_eq(*(int32_t *)t->data, -123456789);
    bp_tensor_free(&t);

    t = load_ref(REF("bool_4.npy"), BP_U8, 1, (int64_t[]){4});
    static const uint8_t b1[] = {1, 0, 0, 1};
    ck_assert_int_eq(memcmp(t->data, b1, sizeof b1), 0);
    bp_tensor_free(&t);

    t = load_ref(REF("v2_f32_2x2.npy"), BP_F32, 2, (int64_t[]){2, 2});
    static const float v2[] = {1.0f, 2.0f, 3.0f, 4.0f};
    ck_assert_int_eq(memcmp(t->data, v2, sizeof v2), 0);
    bp_tensor_free(&t);

    t = load_ref(REF("v3_i32_3.npy"), BP_I32, 1, (int64_t[]){3});
    static const int32_t v3[] = {7, -8, 9};
    ck_assert_int_eq(memcmp(t->data, v3, sizeof v3), 0);
    bp_tensor_free(&t);
}
END_TEST

/* Loading a numpy-written version 1.0 file and saving it again reproduces
 * numpy's bytes exactly. */
START_TEST(test_numpy_reference_byte_identical)
{
    static const char *const names[] = {
        REF("f32_3x2.npy"), REF("f64_2x2x2.npy"), REF("i64_4.npy"),
        REF("u8_2x3.npy"),  REF("i8_5.npy"),      REF("i32_scalar.npy"),
    };
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        bp_tensor *t;
        ck_assert_int_eq(bp_npy_load(&t, names[k]), BP_OK);
        ck_assert_int_eq(bp_npy_save(sp("copy.npy"), t), BP_OK);
        size_t n1, n2;
        unsigned char *a = slurp(names[k], &n1);
        unsigned char *b = slurp(sp("copy.npy"), &n2);
        ck_assert_msg(n1 == n2 && memcmp(a, b, n1) == 0,
                      "%s: saved copy differs from numpy's file", names[k]);
        free(a);
        free(b);
        bp_tensor_free(&t);
    }
}
END_TEST

START_TEST(test_numpy_reference_fortran)
{
    const char *path = REF("fortran_f64_2x3.npy");
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want,
             "%s: Fortran-order arrays are not supported; save with "
             "np.ascontiguousarray",
             path);
    assert_open_fails(path, BP_EUNSUPPORTED, NULL);
    ck_assert_str_eq(bp_errmsg(), want);
}
END_TEST

/* --- header variants ------------------------------------------------------ */

static const struct variant {
    int major;
    const char *hdr;
    bp_dtype dtype;
    int rank;
    int64_t dims[3];
} variants[] = {
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n",
     BP_F32, 2, {2, 3}},
    {1, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}\n",
     BP_F32, 2, {2, 3}},
    {1, "{'fortran_order':False,'descr':'<f8','shape':(6,)}", BP_F64, 1, {6}},
    {1, "  { 'descr' : '<i4' ,\n\t'fortran_order' : False ,  'shape' : ( 3 , "
        "2 , ) , }   \n",
     BP_I32, 2, {3, 2}},
    {1, "{\"descr\": \"<i8\", \"fortran_order\": False, \"shape\": (6,)}\n",
     BP_I64, 1, {6}},
    {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }\n",
     BP_F32, 2, {2, 3}},
    {1, "{'descr': '=f4', 'fortran_order': False, 'shape': (6), }\n",
     BP_F32, 1, {6}},
    {1, "{'descr': '<u1', 'fortran_order': False, 'shape': (1, 2, 3), }\n",
     BP_U8, 3, {1, 2, 3}},
    {1, "{'descr': '|b1', 'fortran_order': False, 'shape': (6,), }\n",
     BP_U8, 1, {6}},
    {1, "{'descr': '|i1', 'fortran_order': True, 'shape': (6,), }\n",
     BP_I8, 1, {6}}, /* Fortran order of rank 1 is C order */
    {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }\n", BP_F64,
     0, {0}},
    {1, "{'descr': '|f4', 'fortran_order': False, 'shape': (2,), }\n", BP_F32,
     1, {2}}, /* numpy reads '|' as native order */
    {2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }\n",
     BP_F32, 2, {3, 2}},
    {3, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1, 3), }\n",
     BP_I32, 3, {2, 1, 3}},
};

START_TEST(test_header_variants)
{
    const struct variant *v = &variants[_i];
    int64_t numel = 1;
    for (int k = 0; k < v->rank; k++)
        numel *= v->dims[k];
    const char *path = sp("v.npy");
    write_npy(path, v->major, 0, v->hdr,
              (size_t)numel * bp_dtype_size(v->dtype));
    bp_npy *f;
    int st = bp_npy_open(&f, path);
    ck_assert_msg(st == BP_OK, "variant %d: %s", _i, bp_errmsg());
    ck_assert_int_eq(bp_npy_dtype(f), v->dtype);
    ck_assert_int_eq(bp_npy_rank(f), v->rank);
    for (int k = 0; k < v->rank; k++)
        ck_assert_int_eq(bp_npy_dims(f)[k], v->dims[k]);
    ck_assert_int_eq(bp_npy_count(f), v->rank ? v->dims[0] : 1);
    bp_npy_close(&f);

    /* The data is the byte ramp write_npy wrote. */
    bp_tensor *t;
    ck_assert_int_eq(bp_npy_load(&t, path), BP_OK);
    for (size_t i = 0; i < bp_tensor_bytes(t); i++)
        ck_assert_int_eq(((unsigned char *)t->data)[i], (unsigned char)i);
    bp_tensor_free(&t);
}
END_TEST

START_TEST(test_trailing_bytes_ignored)
{
    /* numpy itself ignores bytes after the declared data. */
    write_npy(sp("t.npy"), 1, 0,
              "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }\n",
              10);
    bp_tensor *t;
    ck_assert_int_eq(bp_npy_load(&t, sp("t.npy")), BP_OK);
    ck_assert_int_eq(t->dims[0], 3);
    ck_assert_int_eq(((uint8_t *)t->data)[2], 2);
    bp_tensor_free(&t);
}
END_TEST

/* --- streaming reads ------------------------------------------------------ */

/* scratch/name holds float32 (rows, 3, 2) with element i equal to i - 30. */
static const char *make_stream_file(const char *name, int64_t rows)
{
    int64_t dims[3] = {rows, 3, 2};
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 3, dims), BP_OK);
    for (int64_t i = 0; i < bp_tensor_numel(t); i++)
        bp_tensor_set(t, i, (double)(i - 30));
    const char *path = sp(name);
    ck_assert_int_eq(bp_npy_save(path, t), BP_OK);
    bp_tensor_free(&t);
    return path;
}

START_TEST(test_stream_rows_convert)
{
    const char *path = make_stream_file("s.npy", 10);
    bp_npy *f;
    ck_assert_int_eq(bp_npy_open(&f, path), BP_OK);
    ck_assert_int_eq(bp_npy_count(f), 10);
    ck_assert_int_eq(bp_npy_row_numel(f), 6);

    /* rows [3, 7): elements 18..41, values -12..11 */
    float f32[24];
    double f64[24];
    int64_t i64[24];
    int32_t i32[24];
    int8_t i8[24];
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 4, BP_F32, f32), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 4, BP_F64, f64), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 4, BP_I64, i64), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 4, BP_I32, i32), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 4, BP_I8, i8), BP_OK);
    for (int i = 0; i < 24; i++) {
        ck_assert_float_eq(f32[i], (float)(i - 12));
        ck_assert_double_eq(f64[i], (double)(i - 12));
        ck_assert_int_eq(i64[i], i - 12);
        ck_assert_int_eq(i32[i], i - 12);
        ck_assert_int_eq(i8[i], i - 12);
    }
    /* Re-reading out of order works: each read seeks. */
    uint8_t u8[18];
    ck_assert_int_eq(bp_npy_read_rows(f, 7, 3, BP_U8, u8), BP_OK);
    for (int i = 0; i < 18; i++)
        ck_assert_int_eq(u8[i], 42 + i - 30);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 1, BP_F32, f32), BP_OK);
    ck_assert_float_eq(f32[0], -30.0f);

    /* Negative values do not fit uint8; 0..9 rows only. */
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 2, BP_U8, u8), BP_EINVAL);
    assert_msg(path, "out of range for uint8");
    /* Range checks. */
    ck_assert_int_eq(bp_npy_read_rows(f, 8, 3, BP_F32, f32), BP_EINVAL);
    assert_msg(path, "holds 10");
    ck_assert_int_eq(bp_npy_read_rows(f, -1, 1, BP_F32, f32), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, -1, BP_F32, f32), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, INT64_MAX, INT64_MAX, BP_F32, f32),
                     BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 1, BP_DTYPE_COUNT, f32), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 10, 0, BP_F32, f32), BP_OK);
    bp_npy_close(&f);
}
END_TEST

/* Rows are read on demand: after the file loses its tail, the rows still
 * present read fine and the lost ones fail with BP_EIO. */
START_TEST(test_stream_reads_only_requested_rows)
{
    const char *path = make_stream_file("s.npy", 10);
    bp_npy *f;
    ck_assert_int_eq(bp_npy_open(&f, path), BP_OK);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size - 5 * 6 * 4), 0);
    float buf[30];
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 5, BP_F32, buf), BP_OK);
    ck_assert_float_eq(buf[29], -1.0f);
    ck_assert_int_eq(bp_npy_read_rows(f, 4, 2, BP_F32, buf), BP_EIO);
    assert_msg(path, "ends early");
    double dbuf[30];
    ck_assert_int_eq(bp_npy_read_rows(f, 5, 1, BP_F64, dbuf), BP_EIO);
    bp_npy_close(&f);
    /* Reopening sees the short file. */
    assert_open_fails(path, BP_EINVAL, "header declares 60 float32 values");
}
END_TEST

/* Conversion goes through a fixed buffer: reads larger than it. */
START_TEST(test_stream_convert_many_chunks)
{
    enum { N = 100003 };
    int64_t dims[1] = {N};
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, BP_I32, 1, dims), BP_OK);
    for (int64_t i = 0; i < N; i++)
        ((int32_t *)t->data)[i] = (int32_t)(i * 7 - 350000);
    ck_assert_int_eq(bp_npy_save(sp("big.npy"), t), BP_OK);
    bp_npy *f;
    ck_assert_int_eq(bp_npy_open(&f, sp("big.npy")), BP_OK);
    double *d = malloc(N * sizeof *d);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(bp_npy_read_rows(f, 1, N - 1, BP_F64, d), BP_OK);
    for (int64_t i = 0; i < N - 1; i++)
        ck_assert_double_eq(d[i], (double)((i + 1) * 7 - 350000));
    free(d);
    bp_npy_close(&f);
    bp_tensor_free(&t);
}
END_TEST

static void write_typed(const char *path, bp_dtype dt, int64_t n,
                        const void *data)
{
    int64_t dims[1] = {n};
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, dt, 1, dims), BP_OK);
    memcpy(t->data, data, bp_tensor_bytes(t));
    ck_assert_int_eq(bp_npy_save(path, t), BP_OK);
    bp_tensor_free(&t);
}

START_TEST(test_convert_rules)
{
    bp_npy *f;
    int32_t i32[4];
    uint8_t u8[4];
    int8_t i8[4];
    float f32[4];
    double f64[4];
    int64_t i64[4];

    /* float -> int: integral values convert, fractions do not */
    static const double fr[4] = {1.0, -2.0, 2.5, 4.0};
    write_typed(sp("fr.npy"), BP_F64, 4, fr);
    ck_assert_int_eq(bp_npy_open(&f, sp("fr.npy")), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 2, BP_I32, i32), BP_OK);
    ck_assert_int_eq(i32[1], -2);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 4, BP_I32, i32), BP_EINVAL);
    assert_msg(sp("fr.npy"),
               "value 2.5 at element 2 (sample 2) is not an integer");
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 1, BP_U8, u8), BP_OK);
    ck_assert_int_eq(u8[0], 4);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 4, BP_F32, f32), BP_OK);
    ck_assert_float_eq(f32[2], 2.5f);
    bp_npy_close(&f);

    /* NaN, infinity and out-of-range floats do not become ints */
    static const float bad[4] = {NAN, INFINITY, 3e9f, 128.0f};
    write_typed(sp("bad.npy"), BP_F32, 4, bad);
    ck_assert_int_eq(bp_npy_open(&f, sp("bad.npy")), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 1, BP_I64, i64), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 1, 1, BP_I64, i64), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 2, 1, BP_I32, i32), BP_EINVAL);
    assert_msg(sp("bad.npy"), "out of range for int32");
    ck_assert_int_eq(bp_npy_read_rows(f, 2, 1, BP_I64, i64), BP_OK);
    ck_assert_int_eq(i64[0], 3000000000LL);
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 1, BP_I8, i8), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 1, BP_U8, u8), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 2, BP_F64, f64), BP_OK);
    ck_assert(isnan(f64[0]) && isinf(f64[1]));
    bp_npy_close(&f);

    /* 2^63 is just past int64 */
    static const double edge[2] = {0x1p63, -0x1p63};
    write_typed(sp("edge.npy"), BP_F64, 2, edge);
    ck_assert_int_eq(bp_npy_open(&f, sp("edge.npy")), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 1, BP_I64, i64), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 1, 1, BP_I64, i64), BP_OK);
    ck_assert_int_eq(i64[0], INT64_MIN);
    bp_npy_close(&f);

    /* int -> narrower int: range checked, never wrapped */
    static const int64_t ints[4] = {300, -1, 255, INT64_MAX};
    write_typed(sp("ints.npy"), BP_I64, 4, ints);
    ck_assert_int_eq(bp_npy_open(&f, sp("ints.npy")), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 1, BP_U8, u8), BP_EINVAL);
    assert_msg(sp("ints.npy"), "value 300 at element 0 (sample 0) is out of "
                               "range for uint8");
    ck_assert_int_eq(bp_npy_read_rows(f, 1, 1, BP_U8, u8), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 2, 1, BP_U8, u8), BP_OK);
    ck_assert_int_eq(u8[0], 255);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 3, BP_I32, i32), BP_OK);
    ck_assert_int_eq(i32[0], 300);
    ck_assert_int_eq(bp_npy_read_rows(f, 3, 1, BP_I32, i32), BP_EINVAL);
    /* int -> float rounds like a C cast */
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 4, BP_F64, f64), BP_OK);
    ck_assert_double_eq(f64[3], 0x1p63);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 4, BP_F32, f32), BP_OK);
    ck_assert_float_eq(f32[0], 300.0f);
    bp_npy_close(&f);

    /* int8 <-> uint8 */
    static const int8_t s8[3] = {-5, 0, 127};
    write_typed(sp("s8.npy"), BP_I8, 3, s8);
    ck_assert_int_eq(bp_npy_open(&f, sp("s8.npy")), BP_OK);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 3, BP_U8, u8), BP_EINVAL);
    ck_assert_int_eq(bp_npy_read_rows(f, 1, 2, BP_U8, u8), BP_OK);
    ck_assert_int_eq(u8[1], 127);
    ck_assert_int_eq(bp_npy_read_rows(f, 0, 3, BP_I64, i64), BP_OK);
    ck_assert_int_eq(i64[0], -5);
    bp_npy_close(&f);
}
END_TEST

/* --- malformed and hostile files ------------------------------------------ */

#define F32_23 "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n"

static const struct bad {
    int major, minor;
    const char *hdr;
    size_t ndata;
    int status;
    const char *msg; /* expected substring */
} bads[] = {
    /* data shorter than declared */
    {1, 0, F32_23, 20, BP_EINVAL,
     "header declares 6 float32 values (24 bytes) of shape (2,3) but the "
     "file holds 20 bytes of data"},
    {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000,), }\n",
     32, BP_EINVAL,
     "header declares 1000000 float32 values (4000000 bytes) of shape "
     "(1000000) but the file holds 32 bytes"},
    /* absurd and negative shapes */
    {1, 0,
     "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, "
     "1000000000000), }\n",
     0, BP_EINVAL, "too large"},
    {1, 0,
     "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1000000000000, "
     "1000000000000), }\n",
     0, BP_EINVAL, "too large"},
    {1, 0,
     "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, "
     "4), }\n",
     0, BP_EINVAL, "too large"},
    {1, 0,
     "{'descr': '<f4', 'fortran_order': False, 'shape': "
     "(99999999999999999999,), }\n",
     0, BP_EINVAL, "does not fit in 64 bits"},
    {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (-3, 2), }\n", 0,
     BP_EINVAL, "negative dimension -3"},
    {1, 0,
     "{'descr': '<f4', 'fortran_order': False, 'shape': "
     "(1,1,1,1,1,1,1,1,1), }\n",
     4, BP_EUNSUPPORTED, "rank 9"},
    /* unsupported layouts and dtypes */
    {1, 0, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", 24,
     BP_EUNSUPPORTED, "Fortran-order arrays are not supported; save with "
                      "np.ascontiguousarray"},
    {1, 0, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }\n", 24,
     BP_EUNSUPPORTED, "big-endian dtype '>f4'"},
    {1, 0, "{'descr': '>i8', 'fortran_order': False, 'shape': (3,), }\n", 24,
     BP_EUNSUPPORTED, "big-endian"},
    {1, 0, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }\n", 24,
     BP_EUNSUPPORTED, "dtype '<c8' is not supported"},
    {1, 0, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }\n", 6,
     BP_EUNSUPPORTED, "dtype '<f2' is not supported"},
    {1, 0, "{'descr': '<U10', 'fortran_order': False, 'shape': (3,), }\n", 120,
     BP_EUNSUPPORTED, "not supported"},
    {1, 0,
     "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }\n",
     12, BP_EUNSUPPORTED, "structured"},
    {1, 0, "{'descr': 'zz9', 'fortran_order': False, 'shape': (3,), }\n", 24,
     BP_EINVAL, "unknown dtype 'zz9'"},
    {1, 0, "{'descr': '<4f', 'fortran_order': False, 'shape': (3,), }\n", 24,
     BP_EINVAL, "unknown dtype '<4f'"},
    {1, 0, "{'descr': '', 'fortran_order': False, 'shape': (3,), }\n", 24,
     BP_EINVAL, "unknown dtype"},
    /* malformed dicts */
    {1, 0, "{'descr': '<f4', 'shape': (2, 3), }\n", 24, BP_EINVAL,
     "missing key 'fortran_order'"},
    {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
           "'extra': 1}\n",
     24, BP_EINVAL, "unexpected key 'extra'"},
    {1, 0, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
           "'shape': (2, 3)}\n",
     24, BP_EINVAL, "duplicate key 'descr'"},
    {1, 0, "{'descr': '<f4', 'fortran_order': false, 'shape': (2, 3), }\n",
     24, BP_EINVAL, "True or False"},
    {1, 0, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (2, 3), }\n",
     24, BP_EINVAL, "True or False"},
    {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }\n",
     24, BP_EINVAL, "a tuple of integers for 'shape'"},
    {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2; 3), }\n",
     24, BP_EINVAL, "',' or ')'"},
    {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }\n",
     24, BP_EINVAL, "an integer dimension"},
    {1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)\n", 24,
     BP_EINVAL, "',' or '}'"},
    {1, 0, "{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}\n", 24,
     BP_EINVAL, "',' or '}' after a value"},
    {1, 0, "{'descr' '<f4', 'fortran_order': False, 'shape': (2, 3)}\n", 24,
     BP_EINVAL, "':' after a key"},
    {1, 0, "{'descr: '<f4', 'fortran_order': False, 'shape': (2, 3)}\n", 24,
     BP_EINVAL, "malformed .npy header"},
    {1, 0, "{'descr': '<f\\x34', 'fortran_order': False, 'shape': (2,)}\n", 8,
     BP_EINVAL, "escape"},
    {1, 0, F32_23 "junk\n", 24, BP_EINVAL, "only padding after the header"},
    {1, 0, "descr: <f4, shape: (2, 3)\n", 24, BP_EINVAL,
     "'{' opening the header dict"},
    {1, 0, "", 24, BP_EINVAL, "found the end of the header"},
    /* versions */
    {4, 0, F32_23, 24, BP_EUNSUPPORTED, "version 4.0 is not supported"},
    {1, 1, F32_23, 24, BP_EUNSUPPORTED, "version 1.1"},
    {0, 0, F32_23, 24, BP_EUNSUPPORTED, "version 0.0"},
};

START_TEST(test_bad_headers)
{
    const struct bad *b = &bads[_i];
    char name[32];
    snprintf(name, sizeof name, "bad%02d.npy", _i);
    const char *path = sp(name);
    write_npy(path, b->major, b->minor, b->hdr, b->ndata);
    assert_open_fails(path, b->status, b->msg);
}
END_TEST

START_TEST(test_bad_prefix)
{
    /* empty, shorter than the magic, wrong magic, text */
    write_bytes(sp("empty.npy"), "", 0);
    assert_open_fails(sp("empty.npy"), BP_EINVAL, "empty");
    write_bytes(sp("short.npy"), "\x93NUM", 4);
    assert_open_fails(sp("short.npy"), BP_EINVAL, "not a .npy file");
    write_bytes(sp("magic.npy"), "\x93NUMPZ\x01\x00\x10\x00{}              ",
                26);
    assert_open_fails(sp("magic.npy"), BP_EINVAL, "magic");
    write_bytes(sp("text.npy"), "a,b,c\n1,2,3\n", 12);
    assert_open_fails(sp("text.npy"), BP_EINVAL, "not a .npy file");

    /* header cut short: the length field, then the header itself */
    write_bytes(sp("len1.npy"), "\x93NUMPY\x01\x00\x40", 9);
    assert_open_fails(sp("len1.npy"), BP_EINVAL, "header length");
    write_bytes(sp("len2.npy"), "\x93NUMPY\x02\x00\x40\x00", 10);
    assert_open_fails(sp("len2.npy"), BP_EINVAL, "header length");
    write_npy(sp("cut.npy"), 1, 0, F32_23, 24);
    ck_assert_int_eq(truncate(sp("cut.npy"), 40), 0);
    assert_open_fails(sp("cut.npy"), BP_EINVAL, "file ends inside the header");

    /* NUL bytes inside the header are data, not terminators */
    static const char nul1[] = "{'descr': '<f4\0', 'fortran_order': False, "
                               "'shape': (2, 3)}\n";
    write_npy_len(sp("nul1.npy"), 1, 0, nul1, sizeof nul1 - 1, 24);
    assert_open_fails(sp("nul1.npy"), BP_EINVAL, "unknown dtype");
    static const char nul2[] = "{'descr': '<f4', 'fortran_order': False, "
                               "'shape': (2, 3)}\0\n";
    write_npy_len(sp("nul2.npy"), 1, 0, nul2, sizeof nul2 - 1, 24);
    assert_open_fails(sp("nul2.npy"), BP_EINVAL, "found byte 0x00");

    /* a header length far beyond the file (v2: 32-bit length) */
    write_bytes(sp("huge.npy"), "\x93NUMPY\x02\x00\xf0\xff\xff\xff{}\n", 15);
    assert_open_fails(sp("huge.npy"), BP_EINVAL,
                      "header declares 4294967280 bytes");
}
END_TEST

START_TEST(test_not_a_file)
{
    assert_open_fails(sp("missing.npy"), BP_EIO,
                      "cannot open: No such file or directory");
    assert_open_fails(scratch, BP_EIO, "is a directory");
    assert_open_fails("/dev/null", BP_EIO, "not a regular file");
}
END_TEST

/* --- atomic output files -------------------------------------------------- */

START_TEST(test_atomic_commit)
{
    umask(022);
    const char *path = sp("out.txt");
    bp_outfile *f;
    ck_assert_int_eq(bp_outfile_open(&f, path), BP_OK);
    fprintf(bp_outfile_stream(f), "hello %d\n", 42);
    /* Before commit: only the temporary, hidden, next to the target. */
    ck_assert(!exists(path));
    ck_assert_int_eq(temp_files(), 1);
    ck_assert_int_eq(count_entries(scratch, 0), 1);
    ck_assert_int_eq(bp_outfile_commit(&f), BP_OK);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(temp_files(), 0);
    size_t n;
    unsigned char *s = slurp(path, &n);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(memcmp(s, "hello 42\n", 9), 0);
    free(s);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);

    umask(077);
    ck_assert_int_eq(bp_write_file_atomic(sp("private"), "x", 1), BP_OK);
    ck_assert_int_eq(stat(sp("private"), &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    umask(022);
}
END_TEST

START_TEST(test_atomic_abort_keeps_target)
{
    const char *path = sp("keep.txt");
    write_bytes(path, "old", 3);
    bp_outfile *f;
    ck_assert_int_eq(bp_outfile_open(&f, path), BP_OK);
    fputs("new contents", bp_outfile_stream(f));
    fflush(bp_outfile_stream(f));
    bp_outfile_abort(&f);
    ck_assert_ptr_null(f);
    bp_outfile_abort(&f);
    bp_outfile_abort(NULL);
    ck_assert_int_eq(temp_files(), 0);
    size_t n;
    unsigned char *s = slurp(path, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(s, "old", 3), 0);
    free(s);

    /* A commit replaces it whole. */
    ck_assert_int_eq(bp_write_file_atomic(path, "", 0), BP_OK);
    ck_assert_int_eq(stat(path, &(struct stat){0}), 0);
    s = slurp(path, &n);
    ck_assert_uint_eq(n, 0);
    free(s);
    ck_assert_int_eq(count_entries(scratch, 0), 1);
}
END_TEST

START_TEST(test_atomic_bad_paths)
{
    const char *path = sp("nodir/sub/x.npy");
    bp_outfile *sentinel = (bp_outfile *)&sentinel, *f = sentinel;
    ck_assert_int_eq(bp_outfile_open(&f, path), BP_EIO);
    ck_assert_ptr_eq(f, sentinel);
    assert_msg(path, "cannot create: No such file or directory");

    ck_assert_int_eq(bp_write_file_atomic(path, "x", 1), BP_EIO);
    assert_msg(path, "cannot create");

    int64_t d[1] = {2};
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 1, d), BP_OK);
    ck_assert_int_eq(bp_npy_save(path, t), BP_EIO);
    assert_msg(path, "cannot create");
    bp_tensor_free(&t);

    ck_assert_int_eq(bp_outfile_open(&f, ""), BP_EINVAL);
    ck_assert_int_eq(bp_outfile_open(&f, sp("dir/")), BP_EINVAL);
    assert_msg(sp("dir/"), "names a directory");
    ck_assert_ptr_eq(f, sentinel);
    ck_assert_int_eq(count_entries(scratch, 0), 0);
}
END_TEST

/* rename() over a directory fails: the commit reports it and cleans up.
 * (A directory there at open is refused at once: it appears after.) */
START_TEST(test_atomic_commit_failure)
{
    const char *path = sp("adir");
    bp_outfile *f;
    ck_assert_int_eq(bp_outfile_open(&f, path), BP_OK);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    fputs("data", bp_outfile_stream(f));
    ck_assert_int_eq(bp_outfile_commit(&f), BP_EIO);
    ck_assert_ptr_null(f);
    assert_msg(path, "cannot write");
    ck_assert_int_eq(temp_files(), 0);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));

    int64_t d[1] = {2};
    bp_tensor *t;
    ck_assert_int_eq(bp_tensor_new(&t, BP_F32, 1, d), BP_OK);
    ck_assert_int_eq(bp_npy_save(path, t), BP_EINVAL);
    assert_msg(path, "names a directory");
    ck_assert_int_eq(temp_files(), 0);
    bp_tensor_free(&t);
}
END_TEST

/* A symbolic link is followed: its file is replaced, the link stays. */
START_TEST(test_atomic_symlink)
{
    write_bytes(sp("real"), "old", 3);
    ck_assert_int_eq(symlink("real", sp("link")), 0);
    ck_assert_int_eq(bp_outfile_check(sp("link")), BP_OK);
    ck_assert_int_eq(bp_write_file_atomic(sp("link"), "new!", 4), BP_OK);
    struct stat sb;
    ck_assert_int_eq(lstat(sp("link"), &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    ck_assert_int_eq(stat(sp("real"), &sb), 0);
    ck_assert_int_eq(sb.st_size, 4);
    ck_assert_int_eq(temp_files(), 0);
    /* a link to nowhere cannot be followed */
    ck_assert_int_eq(symlink("gone/x", sp("dangling")), 0);
    ck_assert_int_eq(bp_outfile_check(sp("dangling")), BP_EIO);
    ck_assert_int_eq(bp_write_file_atomic(sp("dangling"), "x", 1), BP_EIO);
    assert_msg(sp("dangling"), "symbolic link");
    ck_assert_int_eq(lstat(sp("dangling"), &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
}
END_TEST

/* A device or a FIFO is written in place, never renamed over: as root, a
 * rename would have replaced /dev/null with a file. */
START_TEST(test_atomic_not_regular)
{
    ck_assert_int_eq(bp_outfile_check("/dev/null"), BP_OK);
    ck_assert_int_eq(bp_write_file_atomic("/dev/null", "data", 4), BP_OK);
    struct stat sb;
    ck_assert_int_eq(stat("/dev/null", &sb), 0);
    ck_assert(S_ISCHR(sb.st_mode));
    ck_assert_int_eq(mkfifo(sp("fifo"), 0600), 0);
    ck_assert_int_eq(bp_outfile_check(sp("fifo")), BP_OK);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* the reader: exits 0 when it got exactly the data */
        char buf[16];
        int fd = open(sp("fifo"), O_RDONLY);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
        _exit(n == 5 && !memcmp(buf, "hello", 5) ? 0 : 1);
    }
    ck_assert_int_eq(bp_write_file_atomic(sp("fifo"), "hello", 5), BP_OK);
    int ws;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    ck_assert_int_eq(stat(sp("fifo"), &sb), 0);
    ck_assert(S_ISFIFO(sb.st_mode));
    ck_assert_int_eq(temp_files(), 0);
    /* checks that create nothing */
    ck_assert_int_eq(mkdir(sp("d"), 0755), 0);
    ck_assert_int_eq(bp_outfile_check(sp("d")), BP_EINVAL);
    ck_assert_int_eq(bp_outfile_check(sp("none/x")), BP_EIO);
    ck_assert_int_eq(bp_outfile_check(sp("fresh")), BP_OK);
    ck_assert(!exists(sp("fresh")));
}
END_TEST

START_TEST(test_atomic_relative_path)
{
    char old[PATH_MAX];
    ck_assert_ptr_nonnull(getcwd(old, sizeof old));
    ck_assert_int_eq(chdir(scratch), 0);
    ck_assert_int_eq(bp_write_file_atomic("rel.txt", "abc", 3), BP_OK);
    ck_assert_int_eq(chdir(old), 0);
    ck_assert(exists(sp("rel.txt")));
    ck_assert_int_eq(temp_files(), 0);
}
END_TEST

START_TEST(test_atomic_cleanup_all)
{
    enum { N = BP_OUTFILE_MAX_OPEN + 3 }; /* some beyond the registry */
    bp_outfile *f[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "o%d", i);
        ck_assert_int_eq(bp_outfile_open(&f[i], sp(name)), BP_OK);
        fputs("partial", bp_outfile_stream(f[i]));
    }
    ck_assert_int_eq(temp_files(), N);
    bp_outfile_cleanup_all();
    /* Registered temporaries are gone; the overflow ones remain. */
    ck_assert_int_eq(temp_files(), N - BP_OUTFILE_MAX_OPEN);
    /* A commit after cleanup fails cleanly; abort is harmless. */
    ck_assert_int_eq(bp_outfile_commit(&f[0]), BP_EIO);
    ck_assert(!exists(sp("o0")));
    for (int i = 1; i < N; i++)
        bp_outfile_abort(&f[i]);
    ck_assert_int_eq(count_entries(scratch, 0), 0);

    /* Slots are reused after release. */
    for (int i = 0; i < 2 * BP_OUTFILE_MAX_OPEN; i++)
        ck_assert_int_eq(bp_write_file_atomic(sp("again"), "x", 1), BP_OK);
    bp_outfile *g;
    ck_assert_int_eq(bp_outfile_open(&g, sp("last")), BP_OK);
    bp_outfile_cleanup_all();
    ck_assert_int_eq(temp_files(), 0);
    bp_outfile_abort(&g);
}
END_TEST

static volatile sig_atomic_t got_signal;

static void on_term(int sig)
{
    bp_outfile_cleanup_all();
    got_signal = sig;
}

START_TEST(test_atomic_cleanup_from_signal)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGTERM, &sa, NULL), 0);
    bp_outfile *f;
    ck_assert_int_eq(bp_outfile_open(&f, sp("sig.npy")), BP_OK);
    fputs("half", bp_outfile_stream(f));
    ck_assert_int_eq(temp_files(), 1);
    raise(SIGTERM);
    ck_assert_int_eq(got_signal, SIGTERM);
    ck_assert_int_eq(temp_files(), 0);
    ck_assert(!exists(sp("sig.npy")));
    bp_outfile_abort(&f);
}
END_TEST

/* --- unnamed (O_TMPFILE) temporaries ------------------------------------- */

/* The tests above pin the named-temporary path (they count the hidden
 * files); these run with the default, unnamed where supported. */
static void setup_named(void)
{
    setup();
    setenv("BITPLAN_ATOMIC_NAMED", "1", 1);
}

static void teardown_named(void)
{
    unsetenv("BITPLAN_ATOMIC_NAMED");
    teardown();
}

/* Whether the scratch file system takes O_TMPFILE (tmpfs, ext4, xfs, btrfs
 * do); the unnamed tests only check what they can there. */
static int tmpfile_supported(void)
{
#ifdef O_TMPFILE
    int fd = open(scratch, O_TMPFILE | O_WRONLY, 0600);
    if (fd >= 0) {
        close(fd);
        return 1;
    }
#endif
    return 0;
}

START_TEST(test_unnamed_invisible_until_commit)
{
    umask(022);
    const char *path = sp("out.txt");
    bp_outfile *f;
    ck_assert_int_eq(bp_outfile_open(&f, path), BP_OK);
    fprintf(bp_outfile_stream(f), "hello %d\n", 42);
    fflush(bp_outfile_stream(f));
    if (tmpfile_supported())
        ck_assert_int_eq(count_entries(scratch, 0), 0); /* nothing at all */
    ck_assert(!exists(path));
    ck_assert_int_eq(bp_outfile_commit(&f), BP_OK);
    ck_assert_int_eq(count_entries(scratch, 0), 1);
    size_t n;
    unsigned char *s = slurp(path, &n);
    ck_assert_uint_eq(n, 9);
    ck_assert_int_eq(memcmp(s, "hello 42\n", 9), 0);
    free(s);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0644);
    umask(077);
    ck_assert_int_eq(bp_write_file_atomic(sp("private"), "x", 1), BP_OK);
    ck_assert_int_eq(stat(sp("private"), &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    umask(022);
}
END_TEST

/* Replacing an existing file goes through a hidden name: none remains, and
 * an open reader of the old file keeps the old contents. */
START_TEST(test_unnamed_replaces)
{
    const char *path = sp("keep.txt");
    write_bytes(path, "old", 3);
    FILE *old = fopen(path, "rb");
    ck_assert_ptr_nonnull(old);
    for (int i = 0; i < 50; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "version %d", i);
        ck_assert_int_eq(bp_write_file_atomic(path, buf, (size_t)len), BP_OK);
        size_t n;
        unsigned char *s = slurp(path, &n);
        ck_assert_uint_eq(n, (size_t)len);
        ck_assert_int_eq(memcmp(s, buf, n), 0);
        free(s);
        ck_assert_int_eq(count_entries(scratch, 0), 1);
    }
    char got[4] = {0};
    ck_assert_uint_eq(fread(got, 1, 3, old), 3);
    ck_assert_str_eq(got, "old");
    fclose(old);

    /* abort: the target is untouched, nothing appears */
    bp_outfile *f;
    ck_assert_int_eq(bp_outfile_open(&f, path), BP_OK);
    fputs("discarded", bp_outfile_stream(f));
    bp_outfile_abort(&f);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(count_entries(scratch, 0), 1);
}
END_TEST

/* Over a directory: the hidden name is made, the rename fails, the hidden
 * name goes. */
START_TEST(test_unnamed_commit_failure)
{
    const char *path = sp("adir");
    bp_outfile *f;
    ck_assert_int_eq(bp_outfile_open(&f, path), BP_OK);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    fputs("data", bp_outfile_stream(f));
    ck_assert_int_eq(bp_outfile_commit(&f), BP_EIO);
    assert_msg(path, "cannot write");
    ck_assert_int_eq(count_entries(scratch, 0), 1);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert(S_ISDIR(sb.st_mode));
}
END_TEST

/* After the signal handler's cleanup, an unnamed temporary is never
 * committed either (the run is over), and nothing was on disk. */
START_TEST(test_unnamed_cleanup_all)
{
    bp_outfile *f, *g;
    ck_assert_int_eq(bp_outfile_open(&f, sp("a")), BP_OK);
    ck_assert_int_eq(bp_outfile_open(&g, sp("b")), BP_OK);
    fputs("partial", bp_outfile_stream(f));
    bp_outfile_cleanup_all();
    ck_assert_int_eq(bp_outfile_commit(&f), BP_EIO);
    bp_outfile_abort(&g);
    ck_assert_int_eq(count_entries(scratch, 0), 0);
    ck_assert_int_eq(bp_write_file_atomic(sp("c"), "x", 1), BP_OK);
    ck_assert_int_eq(count_entries(scratch, 0), 1);
}
END_TEST

/* The point of it: a child killed with SIGKILL in the middle of writing
 * leaves nothing (the named fallback would leave .NAME.XXXXXX). */
START_TEST(test_unnamed_sigkill_leaves_nothing)
{
    if (!tmpfile_supported())
        return;
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        bp_outfile *f;
        if (bp_outfile_open(&f, sp("victim.npy")) != BP_OK)
            _exit(1);
        fputs("half a file", bp_outfile_stream(f));
        fflush(bp_outfile_stream(f));
        (void)!write(pipefd[1], "x", 1);
        for (;;)
            pause();
    }
    char c;
    ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    close(pipefd[0]);
    close(pipefd[1]);
    ck_assert_int_eq(count_entries(scratch, 0), 0);
}
END_TEST

/* --- suite ---------------------------------------------------------------- */

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *npy_suite(void)
{
    Suite *s = suite_create("npy");
    TCase *tc;

    tc = tcase_create("roundtrip");
    tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_roundtrip_dtypes_ranks, 0, BP_DTYPE_COUNT);
    tcase_add_test(tc, test_roundtrip_empty_axis);
    tcase_add_test(tc, test_save_overwrites);
    tcase_add_test(tc, test_save_invalid_tensor);
    tcase_add_test(tc, test_writer_rows);
    suite_add_tcase(s, tc);

    tc = tcase_create("numpy");
    tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_numpy_reference_values);
    tcase_add_test(tc, test_numpy_reference_byte_identical);
    tcase_add_test(tc, test_numpy_reference_fortran);
    suite_add_tcase(s, tc);

    tc = tcase_create("header");
    tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_header_variants, 0, COUNT(variants));
    tcase_add_test(tc, test_trailing_bytes_ignored);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stream_rows_convert);
    tcase_add_test(tc, test_stream_reads_only_requested_rows);
    tcase_add_test(tc, test_stream_convert_many_chunks);
    tcase_add_test(tc, test_convert_rules);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_bad_headers, 0, COUNT(bads));
    tcase_add_test(tc, test_bad_prefix);
    tcase_add_test(tc, test_not_a_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("atomic");
    tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
    tcase_add_checked_fixture(tc, setup_named, teardown_named);
    tcase_add_test(tc, test_atomic_commit);
    tcase_add_test(tc, test_atomic_abort_keeps_target);
    tcase_add_test(tc, test_atomic_bad_paths);
    tcase_add_test(tc, test_atomic_commit_failure);
    tcase_add_test(tc, test_atomic_symlink);
    tcase_add_test(tc, test_atomic_not_regular);
    tcase_add_test(tc, test_atomic_relative_path);
    tcase_add_test(tc, test_atomic_cleanup_all);
    tcase_add_test(tc, test_atomic_cleanup_from_signal);
    suite_add_tcase(s, tc);

    tc = tcase_create("atomic_unnamed");
    tcase_add_unchecked_fixture(tc, case_setup, case_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_unnamed_invisible_until_commit);
    tcase_add_test(tc, test_unnamed_replaces);
    tcase_add_test(tc, test_unnamed_commit_failure);
    tcase_add_test(tc, test_atomic_symlink);
    tcase_add_test(tc, test_unnamed_cleanup_all);
    tcase_add_test(tc, test_unnamed_sigkill_leaves_nothing);
    tcase_add_test(tc, test_atomic_relative_path);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(npy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
