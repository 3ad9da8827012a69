/* check_onnx.c - unit tests of the ONNX loader, graph IR, shape inference
 * and float executor on the bundled models: layer listing, opset 13 vs 17,
 * float32 vs float64 paths against torch's logits, every truncation point of
 * a model failing cleanly, and SHA-256 test vectors. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitplan.h"

#ifndef BP_SRCDIR
#define BP_SRCDIR "."
#endif
#define EX BP_SRCDIR "/examples/"

static bp_graph *load(const char *path)
{
    bp_graph *g = NULL;
    int st = bp_onnx_load(&g, path);
    ck_assert_msg(st == BP_OK, "%s: %s", path, bp_errmsg());
    return g;
}

/* Runs model on the first n samples of x in dtype dt; returns the outputs
 * (n, classes) as doubles. */
static double *run(bp_graph *g, const char *xpath, int64_t n, bp_dtype dt,
                   int64_t batch, int64_t *classes)
{
    bp_npy *x = NULL;
    ck_assert_int_eq(bp_npy_open(&x, xpath), BP_OK);
    int64_t row = bp_npy_row_numel(x);
    bp_exec *ex = NULL;
    ck_assert_msg(bp_exec_new(&ex, g, dt, batch) == BP_OK, "%s", bp_errmsg());
    const bp_value *y = &g->values[g->outputs[0]];
    *classes = y->dims[1];
    double *out = malloc((size_t)(n * *classes) * sizeof *out);
    void *buf = malloc((size_t)(batch * row) * 8);
    for (int64_t s = 0; s < n; s += batch) {
        int64_t m = n - s < batch ? n - s : batch;
        ck_assert_int_eq(bp_npy_read_rows(x, s, m, dt, buf), BP_OK);
        const void *in[1] = {buf};
        ck_assert_msg(bp_exec_run(ex, in, m) == BP_OK, "%s", bp_errmsg());
        const void *o = bp_exec_output(ex, 0);
        for (int64_t i = 0; i < m * *classes; i++)
            out[s * *classes + i] = dt == BP_F32 ? ((const float *)o)[i]
                                                 : ((const double *)o)[i];
    }
    free(buf);
    bp_exec_free(&ex);
    bp_npy_close(&x);
    return out;
}

START_TEST(test_layers)
{
    bp_graph *g = load(EX "cnn.onnx");
    bp_layer *l = NULL;
    int n = 0;
    ck_assert_int_eq(bp_graph_layers(g, &l, &n), BP_OK);
    ck_assert_int_eq(n, 7);
    ck_assert_str_eq(l[0].name, "stem.conv.weight");
    ck_assert_int_eq(l[0].macs, 16 * 64 * 9);
    ck_assert_int_eq(l[0].out_channels, 16);
    ck_assert_str_eq(l[6].name, "fc.weight");
    ck_assert_int_eq(l[6].op, BP_OP_GEMM);
    ck_assert_int_eq(l[6].macs, 320);
    ck_assert_int_eq(l[6].out_channels, 10);
    ck_assert_int_ge(l[6].bias, 0);
    /* the stride-2 convs halve the map: 16 out channels x 4x4 x 16*9 */
    ck_assert_str_eq(l[3].name, "down_a.conv.weight");
    ck_assert_int_eq(l[3].macs, 32 * 16 * 16 * 9);
    /* BatchNorm and the flatten chain leave no shape-arithmetic nodes to run */
    for (int i = 0; i < g->n_nodes; i++)
        ck_assert_int_ne(g->nodes[i].op, BP_OP_CONSTANT);
    free(l);
    bp_graph_free(&g);
    ck_assert_ptr_null(g);
}
END_TEST

START_TEST(test_hash)
{
    bp_sha256 s;
    char hex[65];
    bp_sha256_init(&s);
    bp_sha256_update(&s, "abc", 3);
    bp_sha256_hex(&s, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    bp_sha256_init(&s);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    bp_sha256_update(&s, m, strlen(m));
    bp_sha256_hex(&s, hex);
    ck_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    bp_graph *g = load(EX "mlp.onnx");
    ck_assert_int_eq(bp_sha256_file(EX "mlp.onnx", hex), BP_OK);
    ck_assert_str_eq(hex, g->hash);
    bp_graph_free(&g);
}
END_TEST

/* float32 and float64 paths both match torch; opsets 13 and 17 agree */
START_TEST(test_against_torch)
{
    static const char *models[] = {"mlp", "mlp_op17", "mlp_typed", "cnn", "cnn_op17"};
    const char *m = models[_i];
    char path[512];
    snprintf(path, sizeof path, EX "%s.onnx", m);
    int mlp = m[0] == 'm';
    const char *x = mlp ? EX "digits_test_flat.npy" : EX "digits_test_x.npy";
    bp_tensor *ref = NULL;
    ck_assert_int_eq(bp_npy_load(&ref, mlp ? EX "mlp_test_logits.npy"
                                           : EX "cnn_test_logits.npy"), BP_OK);
    bp_graph *g = load(path);
    int64_t classes;
    double *y32 = run(g, x, 500, BP_F32, 64, &classes);
    double *y64 = run(g, x, 500, BP_F64, 100, &classes);
    ck_assert_int_eq(classes, 10);
    double d32 = 0, d64 = 0;
    for (int64_t i = 0; i < 5000; i++) {
        double r = bp_tensor_get(ref, i);
        d32 = fmax(d32, fabs(y32[i] - r));
        d64 = fmax(d64, fabs(y64[i] - r));
    }
    ck_assert_msg(d32 <= 1e-4, "%s float32: max diff %g", m, d32);
    ck_assert_msg(d64 <= 1e-4, "%s float64: max diff %g", m, d64);
    free(y32);
    free(y64);
    bp_tensor_free(&ref);
    bp_graph_free(&g);
}
END_TEST

/* Every prefix of a model fails cleanly (no crash, no leak under ASan). */
START_TEST(test_truncations)
{
    FILE *f = fopen(EX "mlp.onnx", "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len);
    ck_assert_int_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    int failures = 0;
    for (long cut = 0; cut < len; cut += 97) {
        bp_graph *g = NULL;
        int st = bp_onnx_load_mem(&g, buf, (size_t)cut, "cut.onnx");
        if (st == BP_OK) {
            /* a prefix may still parse as a smaller valid model; it must
             * then be a consistent graph */
            bp_graph_free(&g);
            continue;
        }
        ck_assert_ptr_null(g);
        ck_assert_msg(strncmp(bp_errmsg(), "cut.onnx: ", 10) == 0, "%s", bp_errmsg());
        failures++;
    }
    ck_assert_int_gt(failures, 0);
    /* flipped bytes: never a crash */
    for (long i = 0; i < len; i += 211) {
        char save = buf[i];
        buf[i] = (char)(buf[i] ^ 0x5a);
        bp_graph *g = NULL;
        if (bp_onnx_load_mem(&g, buf, (size_t)len, "flip.onnx") == BP_OK)
            bp_graph_free(&g);
        buf[i] = save;
    }
    free(buf);
}
END_TEST

/* A graph built through the construction API: Shape -> Gather -> Unsqueeze
 * -> Concat -> Reshape folded by inference, MatMul and Softmax run. */
START_TEST(test_build_api)
{
    bp_graph *g = NULL;
    ck_assert_int_eq(bp_graph_new(&g, "built"), BP_OK);
    int x, w, sh, idx, gat, ax, uns, m1, cat, rs, mm, sm;
    ck_assert_int_eq(bp_graph_add_value(g, "x", &x), BP_OK);
    g->values[x].is_input = 1;
    g->values[x].decl_rank = 3;
    g->values[x].decl_dims[0] = -1;
    g->values[x].decl_dims[1] = 2;
    g->values[x].decl_dims[2] = 3;
    g->inputs = malloc(sizeof(int));
    g->inputs[0] = x;
    g->n_inputs = 1;
    int64_t wd[2] = {6, 4}, one = 1, none = 0;
    bp_graph_add_value(g, "w", &w);
    bp_tensor_new(&g->values[w].data, BP_F32, 2, wd);
    for (int i = 0; i < 24; i++)
        ((float *)g->values[w].data->data)[i] = (float)(i % 5) - 2.0f;
    bp_graph_add_value(g, "idx0", &idx);
    bp_tensor_new(&g->values[idx].data, BP_I64, 0, &none);
    bp_graph_add_value(g, "axes0", &ax);
    bp_tensor_new(&g->values[ax].data, BP_I64, 1, &one);
    bp_graph_add_value(g, "minus1", &m1);
    bp_tensor_new(&g->values[m1].data, BP_I64, 1, &one);
    ((int64_t *)g->values[m1].data->data)[0] = -1;
    bp_graph_add_value(g, "shape", &sh);
    bp_graph_add_value(g, "n", &gat);
    bp_graph_add_value(g, "n1", &uns);
    bp_graph_add_value(g, "target", &cat);
    bp_graph_add_value(g, "flat", &rs);
    bp_graph_add_value(g, "mm", &mm);
    bp_graph_add_value(g, "y", &sm);
    g->opset = 13;
    /* added out of order on purpose: toposort fixes it */
    int in_sm[] = {mm}, in_mm[] = {rs, w}, in_rs[] = {x, cat};
    int in_cat[] = {uns, m1}, in_uns[] = {gat, ax}, in_gat[] = {sh, idx}, in_sh[] = {x};
    ck_assert_int_eq(bp_graph_add_node(g, BP_OP_SOFTMAX, "sm", 1, in_sm, 1, &sm, NULL), BP_OK);
    bp_graph_add_node(g, BP_OP_MATMUL, "mm", 2, in_mm, 1, &mm, NULL);
    bp_graph_add_node(g, BP_OP_RESHAPE, "rs", 2, in_rs, 1, &rs, NULL);
    bp_graph_add_node(g, BP_OP_CONCAT, "cat", 2, in_cat, 1, &cat, NULL);
    bp_graph_add_node(g, BP_OP_UNSQUEEZE, "uns", 2, in_uns, 1, &uns, NULL);
    bp_graph_add_node(g, BP_OP_GATHER, "gat", 2, in_gat, 1, &gat, NULL);
    bp_graph_add_node(g, BP_OP_SHAPE, "sh", 1, in_sh, 1, &sh, NULL);
    /* Concat needs its axis attribute */
    bp_node *c = &g->nodes[3];
    c->attrs = calloc(1, sizeof *c->attrs);
    c->attrs[0].name = strdup("axis");
    c->attrs[0].type = BP_ATTR_INT;
    c->n_attrs = 1;
    g->outputs = malloc(sizeof(int));
    g->outputs[0] = sm;
    g->n_outputs = 1;
    ck_assert_int_eq(bp_graph_toposort(g), BP_OK);
    ck_assert_int_eq(g->nodes[0].op, BP_OP_SHAPE);
    ck_assert_int_eq(bp_graph_fold(g), BP_OK);
    ck_assert_msg(bp_graph_infer(g, 3) == BP_OK, "%s", bp_errmsg());
    ck_assert_int_eq(g->values[rs].rank, 2);
    ck_assert_int_eq(g->values[rs].dims[0], 3);
    ck_assert_int_eq(g->values[rs].dims[1], 6);
    ck_assert_ptr_nonnull(g->values[cat].known);
    bp_exec *ex = NULL;
    ck_assert_msg(bp_exec_new(&ex, g, BP_F64, 3) == BP_OK, "%s", bp_errmsg());
    double in[18];
    for (int i = 0; i < 18; i++)
        in[i] = 0.1 * i - 0.5;
    const void *ins[1] = {in};
    ck_assert_int_eq(bp_exec_run(ex, ins, 3), BP_OK);
    const double *y = bp_exec_output(ex, 0);
    const float *wf = g->values[w].data->data;
    for (int r = 0; r < 3; r++) {
        double z[4], mx = -1e300, s = 0;
        for (int j = 0; j < 4; j++) {
            z[j] = 0;
            for (int k = 0; k < 6; k++)
                z[j] += in[r * 6 + k] * wf[k * 4 + j];
            mx = fmax(mx, z[j]);
        }
        for (int j = 0; j < 4; j++)
            s += exp(z[j] - mx);
        for (int j = 0; j < 4; j++)
            ck_assert_double_eq_tol(y[r * 4 + j], exp(z[j] - mx) / s, 1e-12);
    }
    /* a smaller batch re-infers */
    ck_assert_int_eq(bp_exec_run(ex, ins, 1), BP_OK);
    ck_assert_int_eq(g->values[sm].dims[0], 1);
    ck_assert_int_ne(bp_exec_run(ex, ins, 4), BP_OK);
    bp_exec_free(&ex);
    bp_graph_free(&g);
}
END_TEST

START_TEST(test_bad_files)
{
    static const struct { const char *file; int status; const char *needle; } cases[] = {
        {"missing_initializer.onnx", BP_EINVAL, "reads 'fc1.weight'"},
        {"unsupported_op.onnx", BP_EUNSUPPORTED, "'Mish'"},
        {"external_data.onnx", BP_EUNSUPPORTED, "external file"},
        {"huge_tensor.onnx", BP_EINVAL, "declares 1000000000000 elements"},
        {"cycle.onnx", BP_EINVAL, "reads its own output"},
        {"bad_shape.onnx", BP_EINVAL, "A has 128 columns"},
    };
    char path[512];
    snprintf(path, sizeof path, BP_SRCDIR "/tests/data/onnx/%s", cases[_i].file);
    bp_graph *g = NULL;
    int st = bp_onnx_load(&g, path);
    ck_assert_int_eq(st, cases[_i].status);
    ck_assert_ptr_null(g);
    ck_assert_msg(strstr(bp_errmsg(), cases[_i].file) && strstr(bp_errmsg(), cases[_i].needle),
                  "%s", bp_errmsg());
}
END_TEST

int main(void)
{
    Suite *s = suite_create("onnx");
    TCase *t = tcase_create("core");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_layers);
    tcase_add_test(t, test_hash);
    tcase_add_loop_test(t, test_against_torch, 0, 5);
    tcase_add_test(t, test_truncations);
    tcase_add_test(t, test_build_api);
    tcase_add_loop_test(t, test_bad_files, 0, 6);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
