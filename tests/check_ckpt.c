/* check_ckpt.c - checkpoints of the sensitivity stage (checkpoint.h).
 *
 *  - Resume from every checkpoint a run saves (one per safe point, with
 *    --checkpoint-every 0): each resumed run gives a sensitivity file
 *    byte-identical to the uninterrupted one, for every trace method, scope
 *    (with the pilots of auto) and eigenvalue method, on a tiny model
 *    whose tanh makes every layer sampled.
 *  - Saving checkpoints does not change the result.
 *  - The state encoding round-trips; every truncation and a set of hostile
 *    counts are refused with one line, allocating nothing they claim.
 *  - A file of another identity, a damaged one, or a state whose layers do
 *    not match the model is refused (BP_EINVAL, one line naming the file). */
#include "bitplan.h"
#include "checkpoint.h"
#include "estimators.h"
#include "rng.h"
#include "sensfile.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct mem_data {
    double *x;
    int64_t per;
} mem_data;

static int mem_read(void *ctx, int64_t start, int64_t n, double *x)
{
    mem_data *m = ctx;
    memcpy(x, m->x + start * m->per, (size_t)(n * m->per) * sizeof *x);
    return BP_OK;
}

typedef struct run {
    bp_graph *g;
    mem_data md;
    int64_t labels[32];
    bp_sens_data d;
} run;

static void run_open(run *r, const char *name, int64_t count)
{
    char path[1024];
    memset(r, 0, sizeof *r);
    snprintf(path, sizeof path, "%s/tests/data/sens/%s.onnx", BP_SRCDIR, name);
    ck_assert_msg(bp_onnx_load(&r->g, path) == BP_OK, "%s", bp_errmsg());
    const bp_value *in = &r->g->values[r->g->inputs[0]];
    r->md.per = 1;
    for (int d = 1; d < in->rank; d++)
        r->md.per *= in->decl_dims[d];
    r->md.x = malloc((size_t)(count * r->md.per) * sizeof *r->md.x);
    bp_rng rng;
    bp_rng_seed(&rng, 5, 1);
    for (int64_t i = 0; i < count * r->md.per; i++)
        r->md.x[i] = bp_rng_normal(&rng);
    for (int64_t i = 0; i < count; i++)
        r->labels[i] = (int64_t)(bp_rng_u64(&rng) % 3);
    r->d = (bp_sens_data){name, count, r->md.per, r->labels, mem_read, &r->md};
}

static void run_close(run *r)
{
    free(r->md.x);
    bp_graph_free(&r->g);
}

static char scratch[256];

static void setup(void)
{
    snprintf(scratch, sizeof scratch, "%s/check_ckpt.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(scratch));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", scratch);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *sp(const char *name)
{
    static char b[4][512];
    static int k;
    char *p = b[k++ % 4];
    snprintf(p, 512, "%s/%s", scratch, name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* The checkpoints a run saves, captured at every progress report (a save
 * happens right after a report, so the next report sees it). */
#define MAX_CAPS 400
typedef struct capture {
    const char *path;
    int n;
    unsigned char *file[MAX_CAPS];
    size_t len[MAX_CAPS];
} capture;

static void keep(capture *c)
{
    size_t n;
    unsigned char *p = slurp(c->path, &n);
    if (!p)
        return;
    if (c->n > 0 && n == c->len[c->n - 1] &&
        memcmp(p, c->file[c->n - 1], n) == 0) {
        free(p);
        return;
    }
    ck_assert_int_lt(c->n, MAX_CAPS);
    c->file[c->n] = p;
    c->len[c->n++] = n;
}

static void on_progress(void *ctx, const char *stage, int64_t done,
                        int64_t total)
{
    (void)stage;
    (void)done;
    (void)total;
    keep(ctx);
}

/* The run's sensitivity file, as bytes. */
static unsigned char *sens_bytes(run *r, const bp_sens_opts *o, size_t *n)
{
    bp_sens *s = NULL;
    int st = bp_sensitivity(&s, r->g, &r->d, o);
    ck_assert_msg(st == BP_OK, "%s", bp_errmsg());
    s->model_path = strdup("m");
    s->model_sha256 = strdup("0");
    s->data_path = strdup("d");
    s->data_sha256 = strdup("0");
    ck_assert_int_eq(bp_sens_save(s, sp("s.json")), BP_OK);
    bp_sens_free(&s);
    return slurp(sp("s.json"), n);
}

typedef struct variant {
    bp_trace_method trace;
    bp_trace_scope scope;
    bp_eig_method eig;
} variant;

static const variant variants[] = {
    {BP_TRACE_HUTCHPP, BP_SCOPE_AUTO, BP_EIG_LANCZOS},
    {BP_TRACE_HUTCHINSON, BP_SCOPE_AUTO, BP_EIG_POWER},
    {BP_TRACE_HUTCHINSON, BP_SCOPE_GLOBAL, BP_EIG_LANCZOS},
    {BP_TRACE_HUTCHPP, BP_SCOPE_BLOCK, BP_EIG_POWER},
    {BP_TRACE_AUTO, BP_SCOPE_AUTO, BP_EIG_NONE},
};

START_TEST(test_resume_from_every_checkpoint)
{
    const variant *v = &variants[_i];
    run r;
    run_open(&r, "tiny_tanh", 12);
    bp_sens_opts o;
    bp_sens_opts_default(&o);
    o.trace = v->trace;
    o.scope = v->scope;
    o.eig = v->eig;
    o.tol = 1e-6; /* never reached: sample to max_samples */
    o.min_samples = 4;
    o.max_samples = 40;
    o.sketch = 3;
    o.eig_max_iter = 12;
    o.eig_tol = 0;
    o.batch = 5;
    o.seed = 11;
    size_t nref;
    unsigned char *ref = sens_bytes(&r, &o, &nref);

    /* the same run, checkpointing at every safe point */
    capture cap = {sp("ck.bin"), 0, {0}, {0}};
    bp_ckpt *ck = NULL;
    ck_assert_int_eq(bp_ckpt_new(&ck, cap.path, 0, "m", "d", "o"), BP_OK);
    o.ckpt = ck;
    o.progress = on_progress;
    o.progress_ctx = &cap;
    size_t n;
    unsigned char *got = sens_bytes(&r, &o, &n);
    keep(&cap); /* the final one */
    ck_assert_msg(n == nref && memcmp(got, ref, n) == 0,
                  "checkpointing changed the result");
    free(got);
    ck_assert_int_ge(cap.n, 3);
    ck_assert_int_eq(ck->saves >= cap.n, 1);
    bp_ckpt_free(&ck);

    /* resume from each */
    o.progress = NULL;
    int mid_traces = 0, mid_eigs = 0;
    for (int k = 0; k < cap.n; k++) {
        FILE *f = fopen(sp("res.bin"), "wb");
        fwrite(cap.file[k], 1, cap.len[k], f);
        fclose(f);
        ck_assert_int_eq(bp_ckpt_new(&ck, sp("res.bin"), 0, "m", "d", "o"),
                         BP_OK);
        ck_assert_msg(bp_ckpt_load(ck, sp("res.bin")) == BP_OK, "%s",
                      bp_errmsg());
        o.ckpt = ck;
        uint32_t fl = ck->st.stage;
        mid_traces += (fl & BP_CKPT_EXACT) && !(fl & BP_CKPT_TRACES) &&
                      ck->st.products > 0;
        mid_eigs += (fl & BP_CKPT_EIG) && !(fl & BP_CKPT_EIGS);
        got = sens_bytes(&r, &o, &n);
        ck_assert_msg(n == nref && memcmp(got, ref, n) == 0,
                      "variant %d: resuming checkpoint %d of %d (stage %u) "
                      "differs", _i, k + 1, cap.n, ck->st.stage);
        free(got);
        bp_ckpt_free(&ck);
        free(cap.file[k]);
    }
    if (getenv("CHECK_CKPT_VERBOSE"))
        fprintf(stderr, "variant %d: %d checkpoints, %d mid-traces, %d "
                "mid-eigenvalues, all resumed identically\n", _i, cap.n,
                mid_traces, mid_eigs);
    if (v->trace != BP_TRACE_AUTO)
        ck_assert_int_ge(mid_traces, 3);
    if (v->eig != BP_EIG_NONE)
        ck_assert_int_ge(mid_eigs, 2);
    free(ref);
    run_close(&r);
}
END_TEST

/* A realistic state: a layer with every array. */
static void sample_state(bp_ckpt_state *s)
{
    ck_assert_int_eq(bp_ckpt_state_reset(s, 2), BP_OK);
    s->stage = BP_CKPT_EXACT | BP_CKPT_SKETCH | BP_CKPT_EIG;
    s->scope = 1;
    s->gsamples = 10;
    s->products = 77;
    s->grng[2] = 0xdeadbeef;
    for (int i = 0; i < 2; i++) {
        bp_ckpt_layer *l = &s->layers[i];
        double a[12];
        for (int j = 0; j < 12; j++)
            a[j] = 0.5 * j - i;
        l->n = 4;
        l->k = 2;
        l->sampled = 1;
        l->method = 2;
        l->rem_m = 3;
        l->products = 7;
        l->rem_mean = 1.25;
        l->lz_m = 2;
        ck_assert_int_eq(bp_ckpt_set(&l->q, &l->n_q, a, 8), BP_OK);
        ck_assert_int_eq(bp_ckpt_set(&l->alpha, &l->n_ab, a, 2), BP_OK);
        int64_t nb = 0;
        ck_assert_int_eq(bp_ckpt_set(&l->beta, &nb, a + 2, 2), BP_OK);
        ck_assert_int_eq(bp_ckpt_set(&l->v, &l->n_v, a, 12), BP_OK);
    }
}

START_TEST(test_state_roundtrip_and_truncations)
{
    bp_ckpt_state s = {0}, t = {0};
    sample_state(&s);
    uint8_t *p, *q;
    size_t n, m;
    ck_assert_int_eq(bp_ckpt_state_encode(&s, &p, &n), BP_OK);
    ck_assert_int_eq(bp_ckpt_state_decode(&t, p, n, "x"), BP_OK);
    ck_assert_int_eq(bp_ckpt_state_encode(&t, &q, &m), BP_OK);
    ck_assert(m == n && memcmp(p, q, n) == 0);
    ck_assert_int_eq(t.layers[1].v[11], 5.5 - 1);
    free(q);
    /* every truncation, and one trailing byte, are refused */
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(bp_ckpt_state_decode(&t, p, k, "cut"), BP_EINVAL);
        ck_assert_ptr_null(t.layers);
        ck_assert(strncmp(bp_errmsg(), "cut: checkpoint ", 16) == 0);
        ck_assert_ptr_null(strchr(bp_errmsg(), '\n'));
    }
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, p, n);
    longer[n] = 0;
    ck_assert_int_eq(bp_ckpt_state_decode(&t, longer, n + 1, "x"), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "trailing bytes"));
    free(longer);
    /* a huge layer count, a huge array count: refused before allocation */
    uint8_t *h = malloc(n);
    memcpy(h, p, n);
    h[4 + 4 + 4 + 8 + 8 + 32 + 3] = 0x7f; /* layers = 0x7f000002 */
    ck_assert_int_eq(bp_ckpt_state_decode(&t, h, n, "x"), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "layers: count exceeds the file"));
    memcpy(h, p, n);
    /* the first array count (sketch of layer 0) sits after the fixed part */
    size_t at = 4 + 4 + 4 + 8 + 8 + 32 + 4 + 208 - 32;
    h[at + 7] = 0x10;
    ck_assert_int_eq(bp_ckpt_state_decode(&t, h, n, "x"), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "sketch: count exceeds the file"));
    h[at + 7] = 0x80; /* negative */
    ck_assert_int_eq(bp_ckpt_state_decode(&t, h, n, "x"), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "sketch: negative count"));
    free(h);
    free(p);
    bp_ckpt_state_clear(&s);
}
END_TEST

START_TEST(test_file_identity_and_damage)
{
    bp_ckpt *c = NULL, *d = NULL;
    ck_assert_int_eq(bp_ckpt_new(&c, sp("c.bin"), 0, "aa", "bb", "x=1 y=2"),
                     BP_OK);
    sample_state(&c->st);
    ck_assert_int_eq(bp_ckpt_save(c), BP_OK);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "x=1 y=2"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(d, sp("c.bin")), BP_OK);
    ck_assert_int_eq(d->resumed, 1);
    ck_assert_int_eq(d->st.products, 77);
    ck_assert_int_eq(d->st.layers[1].n_v, 12);
    bp_ckpt_free(&d);

    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "ab", "bb", "x=1 y=2"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(d, sp("c.bin")), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "checkpoint was made for model sha256 aa, not ab"));
    ck_assert_int_eq(d->resumed, 0);
    bp_ckpt_free(&d);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bc", "x=1 y=2"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(d, sp("c.bin")), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "data sha256 bb, not bc"));
    bp_ckpt_free(&d);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "x=1 y=3"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(d, sp("c.bin")), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "other options (y=2, now y=3)"));

    /* every single-byte change is caught (checksum, magic, length) */
    size_t n;
    unsigned char *p = slurp(sp("c.bin"), &n);
    for (size_t k = 0; k < n; k += 7) {
        unsigned char *q = malloc(n);
        memcpy(q, p, n);
        q[k] ^= 0x20;
        FILE *f = fopen(sp("bad.bin"), "wb");
        fwrite(q, 1, n, f);
        fclose(f);
        free(q);
        bp_ckpt_free(&d);
        ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "x=1 y=2"), BP_OK);
        ck_assert_int_eq(bp_ckpt_load(d, sp("bad.bin")), BP_EINVAL);
        ck_assert(strncmp(bp_errmsg(), sp("bad.bin"), strlen(sp("bad.bin"))) == 0);
    }
    free(p);
    bp_ckpt_free(&d);
    bp_ckpt_free(&c);
}
END_TEST

/* A checkpoint of one model, identity forced to match another: the
 * estimators refuse its layers instead of reading out of bounds. */
START_TEST(test_state_of_another_model)
{
    run a, b;
    run_open(&a, "tiny_tanh", 12);
    run_open(&b, "tiny_cnn", 12);
    bp_sens_opts o;
    bp_sens_opts_default(&o);
    o.trace = BP_TRACE_HUTCHINSON;
    o.max_samples = 10;
    o.min_samples = 4;
    o.eig_max_iter = 3;
    bp_ckpt *ck = NULL;
    ck_assert_int_eq(bp_ckpt_new(&ck, sp("a.bin"), 0, "m", "d", "o"), BP_OK);
    o.ckpt = ck;
    size_t n;
    free(sens_bytes(&a, &o, &n));
    bp_ckpt_free(&ck);
    ck_assert_int_eq(bp_ckpt_new(&ck, NULL, 0, "m", "d", "o"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(ck, sp("a.bin")), BP_OK);
    o.ckpt = ck;
    bp_sens *s = NULL;
    ck_assert_int_eq(bp_sensitivity(&s, b.g, &b.d, &o), BP_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(bp_errmsg(), "a.bin: checkpoint") != NULL, "%s",
                  bp_errmsg());
    /* same layer count, other sizes */
    bp_ckpt_state *st = &ck->st;
    st->layers[0].n += 1;
    ck_assert_int_eq(bp_sensitivity(&s, a.g, &a.d, &o), BP_EINVAL);
    ck_assert_msg(strstr(bp_errmsg(), "layer 0") != NULL, "%s", bp_errmsg());
    bp_ckpt_free(&ck);
    run_close(&a);
    run_close(&b);
}
END_TEST

static Suite *ckpt_suite(void)
{
    Suite *s = suite_create("checkpoint");
    TCase *tc = tcase_create("resume");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_resume_from_every_checkpoint, 0,
                        (int)(sizeof variants / sizeof variants[0]));
    tcase_add_test(tc, test_state_of_another_model);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_state_roundtrip_and_truncations);
    tcase_add_test(tc, test_file_identity_and_damage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ckpt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
