/* check_ckpt.c - checkpoints of the sensitivity stage (checkpoint.h).
 *
 *  - Resume from every checkpoint a run saves (one per safe point, with
 *    --checkpoint-every 0): each resumed run gives a sensitivity file
 *    byte-identical to the uninterrupted one, for every trace method, scope
 *    (with the pilots of auto) and eigenvalue method, on a tiny model
 *    whose tanh makes every layer sampled.
 *  - Inside the exact stage (Gauss-Newton on tiny_cnn, columns on
 *    tiny_tanh), a checkpoint after each batch or group of columns resumes
 *    byte-identically, and the progress goes on from the restored batch.
 *  - Saving checkpoints does not change the result.
 *  - The state encoding round-trips, with or without a position inside the
 *    exact stage; every truncation, a set of hostile counts and every
 *    inconsistent position are refused with one line, allocating nothing
 *    they claim.  A version-1 state and file (no position) still read; a
 *    version-3 file is refused.
 *  - A file of another identity, a damaged one, or a state whose layers do
 *    not match the model is refused (BP_EINVAL, one line naming the file). */
#include "bitplan.h"
#include "checkpoint.h"
#include "estimators.h"
#include "hash.h"
#include "rng.h"
#include "sensfile.h"

#include <check.h>
#include <stdio.h>
#include <math.h>
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

/* Runs o again checkpointing at every safe point, keeps each checkpoint
 * in cap, and checks the result is ref's (nref bytes).  Returns the saves
 * the run made. */
static int64_t capture_all(run *r, bp_sens_opts *o, capture *cap,
                           const unsigned char *ref, size_t nref)
{
    bp_ckpt *ck = NULL;
    ck_assert_int_eq(bp_ckpt_new(&ck, cap->path, 0, "m", "d", "o"), BP_OK);
    o->ckpt = ck;
    o->progress = on_progress;
    o->progress_ctx = cap;
    size_t n;
    unsigned char *got = sens_bytes(r, o, &n);
    keep(cap); /* the final one */
    ck_assert_msg(n == nref && memcmp(got, ref, n) == 0,
                  "checkpointing changed the result");
    free(got);
    int64_t saves = ck->saves;
    bp_ckpt_free(&ck);
    o->ckpt = NULL;
    o->progress = NULL;
    return saves;
}

/* A checkpoint of the run loaded from cap's k-th file, saving to res.bin
 * as a resumed run does. */
static bp_ckpt *resume_from(const capture *cap, int k)
{
    FILE *f = fopen(sp("res.bin"), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(cap->file[k], 1, cap->len[k], f), cap->len[k]);
    fclose(f);
    bp_ckpt *ck = NULL;
    ck_assert_int_eq(bp_ckpt_new(&ck, sp("res.bin"), 0, "m", "d", "o"), BP_OK);
    ck_assert_msg(bp_ckpt_load(ck, sp("res.bin")) == BP_OK, "%s", bp_errmsg());
    return ck;
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
    /* fc3 sampled in the output space, fc1 and fc2 by Hutch++: the
     * checkpoints between them carry fc3's result as the exact stage's */
    {BP_TRACE_GN_HUTCHINSON, BP_SCOPE_AUTO, BP_EIG_POWER},
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
    int64_t saves = capture_all(&r, &o, &cap, ref, nref);
    ck_assert_int_ge(cap.n, 3);
    ck_assert_int_eq(saves >= cap.n, 1);

    /* resume from each */
    size_t n;
    unsigned char *got;
    int mid_traces = 0, mid_eigs = 0;
    for (int k = 0; k < cap.n; k++) {
        bp_ckpt *ck = resume_from(&cap, k);
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

/* The first "exact traces" report of a run: where its progress starts. */
typedef struct first_exact {
    int seen;
    int64_t done, total;
} first_exact;

static void on_first_exact(void *ctx, const char *stage, int64_t done,
                           int64_t total)
{
    first_exact *f = ctx;
    if (!f->seen && strcmp(stage, "exact traces") == 0) {
        f->seen = 1;
        f->done = done;
        f->total = total;
    }
}

typedef struct exact_variant {
    const char *model;
    bp_trace_method trace;
    int gn; /* exact by Gauss-Newton (else by columns) */
} exact_variant;

static const exact_variant exact_variants[] = {
    {"tiny_cnn", BP_TRACE_EXACT, 1},  /* every layer by Gauss-Newton */
    {"tiny_tanh", BP_TRACE_EXACT, 0}, /* tanh: every layer by columns */
    /* 200 classes: output-space rounds, then (their spread projects more
     * draws than classes) exact traces by Gauss-Newton after all */
    {"tiny_wide", BP_TRACE_AUTO, 1},
    /* fc3 sampled in the output space, then fc1 and fc2 by columns */
    {"tiny_tanh", BP_TRACE_GN_HUTCHINSON, 0},
};

/* Checkpoints inside the exact stage (one per batch, per group of
 * columns) resume to the same bytes, and the resumed progress starts from
 * the restored position instead of 0. */
START_TEST(test_resume_inside_exact_stage)
{
    const exact_variant *v = &exact_variants[_i];
    run r;
    run_open(&r, v->model, 12);
    bp_sens_opts o;
    bp_sens_opts_default(&o);
    o.trace = v->trace;
    o.eig = BP_EIG_POWER;
    o.eig_max_iter = 3;
    o.eig_tol = 0;
    o.batch = 2; /* 6 batches */
    o.seed = 3;
    size_t nref;
    unsigned char *ref = sens_bytes(&r, &o, &nref);

    capture cap = {sp("ck.bin"), 0, {0}, {0}};
    capture_all(&r, &o, &cap, ref, nref);

    size_t n;
    unsigned char *got;
    int mid_batches = 0, mid_cols = 0;
    for (int k = 0; k < cap.n; k++) {
        bp_ckpt *ck = resume_from(&cap, k);
        const bp_ckpt_state s = ck->st; /* the loaded position */
        int part = s.stage == BP_CKPT_EXACT_PART;
        if (part) {
            ck_assert_int_eq(s.exact_nb, 6);
            mid_batches += s.exact_batch > 0 && s.exact_batch < s.exact_nb;
            mid_cols += s.exact_cols > 0 && s.exact_cols < s.exact_ncols;
        }
        first_exact fe = {0, 0, 0};
        o.ckpt = ck;
        o.progress = on_first_exact;
        o.progress_ctx = &fe;
        got = sens_bytes(&r, &o, &n);
        ck_assert_msg(n == nref && memcmp(got, ref, n) == 0,
                      "%s: resuming checkpoint %d of %d (stage %u, batch "
                      "%lld, columns %lld) differs", v->model, k + 1, cap.n,
                      s.stage, (long long)s.exact_batch,
                      (long long)s.exact_cols);
        free(got);
        if (part && v->gn && s.exact_batch < s.exact_nb) {
            /* Gauss-Newton reports classes done over the stage: batch K
             * starts at K * classes */
            ck_assert(fe.seen);
            ck_assert_int_ge(fe.done, s.exact_batch * (fe.total / 6));
        }
        if (part && !v->gn && s.exact_cols > 0) {
            ck_assert(fe.seen);
            ck_assert_int_gt(fe.done, s.exact_cols);
            ck_assert_int_eq(fe.total, s.exact_ncols);
        }
        bp_ckpt_free(&ck);
        free(cap.file[k]);
    }
    if (getenv("CHECK_CKPT_VERBOSE"))
        fprintf(stderr, "%s: %d checkpoints, %d between batches, %d between "
                "column groups, all resumed identically\n", v->model, cap.n,
                mid_batches, mid_cols);
    if (v->gn)
        ck_assert_int_ge(mid_batches, 5); /* after batches 1..5 of 6 */
    else
        ck_assert_int_ge(mid_cols, 1);
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
    h[4 + 4 + 4 + 8 + 8 + 32 + 32 + 40 + 3] = 0x7f; /* layers = 0x7f000002 */
    ck_assert_int_eq(bp_ckpt_state_decode(&t, h, n, "x"), BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "layers: count exceeds the file"));
    memcpy(h, p, n);
    /* the first array count (sketch of layer 0) sits after the fixed part */
    size_t at = 4 + 4 + 4 + 8 + 8 + 32 + 32 + 40 + 4 + 208 - 32;
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

/* Offset of exact_batch in a state payload: after stage, scope,
 * scope_used, global samples, products and the global RNG. */
#define AT_EXACT (4 + 4 + 4 + 8 + 8 + 32)
/* Offset of gns_round (version 3): after the exact stage's four. */
#define AT_GNS (AT_EXACT + 32)
/* Bytes of one layer whose arrays are empty, version 3 (the last 24 are
 * the output-space rounds, which versions 1 and 2 lack). */
#define LAYER_V3 232

/* p (n bytes, version 3, nl layers, every array empty) in an older layout:
 * without the output-space fields (version 2) and the exact stage's
 * position (version 1).  *m: its length. */
static uint8_t *older(const uint8_t *p, size_t n, int nl, uint32_t version,
                      size_t *m)
{
    uint8_t *o = malloc(n);
    size_t head = version >= 2 ? AT_GNS : AT_EXACT, at = head,
           src = AT_GNS + 40;
    memcpy(o, p, head);
    memcpy(o + at, p + src, 4); /* the layer count */
    at += 4;
    src += 4;
    for (int i = 0; i < nl; i++) {
        memcpy(o + at, p + src, LAYER_V3 - 24);
        at += LAYER_V3 - 24;
        src += LAYER_V3;
    }
    ck_assert_uint_eq(src, n);
    *m = at;
    return o;
}

static void put64(uint8_t *p, int64_t x)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)x >> (8 * i));
}

/* A state saved inside the exact stage: 3 of 5 batches done. */
static void partial_state(bp_ckpt_state *s)
{
    ck_assert_int_eq(bp_ckpt_state_reset(s, 2), BP_OK);
    s->stage = BP_CKPT_EXACT_PART;
    s->exact_batch = 3;
    s->exact_nb = 5;
    s->exact_ncols = 40;
    for (int i = 0; i < 2; i++) {
        s->layers[i].n = 20;
        s->layers[i].est_mean = 1.0 / 3 + i; /* a sum so far, all 64 bits */
        s->layers[i].est_method = BP_TRACE_EXACT;
    }
}

START_TEST(test_exact_position_roundtrip_and_damage)
{
    bp_ckpt_state s = {0}, t = {0};
    partial_state(&s);
    uint8_t *p, *q;
    size_t n, m;
    ck_assert_int_eq(bp_ckpt_state_encode(&s, &p, &n), BP_OK);
    ck_assert_int_eq(bp_ckpt_state_decode(&t, p, n, "x"), BP_OK);
    ck_assert_uint_eq(t.stage, BP_CKPT_EXACT_PART);
    ck_assert_int_eq(t.exact_batch, 3);
    ck_assert_int_eq(t.exact_nb, 5);
    ck_assert_int_eq(t.exact_cols, 0);
    ck_assert_int_eq(t.exact_ncols, 40);
    ck_assert(t.layers[0].est_mean == 1.0 / 3);
    ck_assert(t.layers[1].est_mean == 1.0 / 3 + 1);
    ck_assert_int_eq(bp_ckpt_state_encode(&t, &q, &m), BP_OK);
    ck_assert(m == n && memcmp(p, q, n) == 0);
    free(q);
    /* every truncation, through the new fields too */
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(bp_ckpt_state_decode(&t, p, k, "cut"), BP_EINVAL);
        ck_assert_ptr_null(t.layers);
        ck_assert(strncmp(bp_errmsg(), "cut: checkpoint ", 16) == 0);
        ck_assert_ptr_null(strchr(bp_errmsg(), '\n'));
    }
    /* inconsistent positions: each refused, naming the field */
    static const struct {
        uint32_t stage;
        int64_t batch, nb, cols, ncols;
        const char *msg;
    } bad[] = {
        {BP_CKPT_EXACT_PART, 6, 5, 0, 40, "exact batch: expected 0..batches"},
        {BP_CKPT_EXACT_PART, -1, 5, 0, 40, "exact batch: expected 0..batches"},
        {BP_CKPT_EXACT_PART, 0, 0, 0, 40, "exact batch: expected 0..batches"},
        {BP_CKPT_EXACT_PART, 5, 5, 41, 40, "exact columns: expected 0..columns"},
        {BP_CKPT_EXACT_PART, 5, 5, 1, -1, "exact columns: expected 0..columns"},
        {BP_CKPT_EXACT_PART, 4, 5, 1, 40, "columns done before the last batch"},
        {BP_CKPT_EXACT_PART | BP_CKPT_EXACT, 3, 5, 0, 40,
         "stage: exact traces under way with a later stage"},
        {BP_CKPT_EXACT, 3, 5, 0, 40, "exact stage: position without the flag"},
        {256, 0, 0, 0, 0, "stage: unknown flags"},
    };
    uint8_t *h = malloc(n);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        memcpy(h, p, n);
        for (int i = 0; i < 4; i++)
            h[i] = (uint8_t)(bad[k].stage >> (8 * i));
        put64(h + AT_EXACT, bad[k].batch);
        put64(h + AT_EXACT + 8, bad[k].nb);
        put64(h + AT_EXACT + 16, bad[k].cols);
        put64(h + AT_EXACT + 24, bad[k].ncols);
        ck_assert_int_eq(bp_ckpt_state_decode(&t, h, n, "x"), BP_EINVAL);
        ck_assert_ptr_null(t.layers);
        ck_assert_msg(strstr(bp_errmsg(), bad[k].msg) != NULL, "case %zu: %s",
                      k, bp_errmsg());
    }
    free(h);

    /* version 1: the same state without the four fields (and without the
     * flag, which version 1 did not know) */
    s.stage = BP_CKPT_EXACT;
    s.exact_batch = s.exact_nb = s.exact_ncols = 0;
    free(p);
    ck_assert_int_eq(bp_ckpt_state_encode(&s, &p, &n), BP_OK);
    size_t n1, n2;
    uint8_t *v1 = older(p, n, 2, 1, &n1), *v2 = older(p, n, 2, 2, &n2);
    ck_assert_int_eq(bp_ckpt_state_decode_version(&t, v2, n2, 2, "v2"),
                     BP_OK);
    ck_assert_int_eq(bp_ckpt_state_encode(&t, &q, &m), BP_OK);
    ck_assert(m == n && memcmp(p, q, n) == 0); /* saved again as version 3 */
    free(q);
    free(v2);
    ck_assert_int_eq(bp_ckpt_state_decode_version(&t, v1, n1, 1, "v1"),
                     BP_OK);
    ck_assert_uint_eq(t.stage, BP_CKPT_EXACT);
    ck_assert_int_eq(t.exact_nb, 0);
    ck_assert(t.layers[1].est_mean == 1.0 / 3 + 1);
    ck_assert_int_eq(bp_ckpt_state_encode(&t, &q, &m), BP_OK);
    ck_assert(m == n && memcmp(p, q, n) == 0); /* saved again as version 3 */
    free(q);
    /* a version-1 payload is not a version-3 one, and vice versa */
    ck_assert_int_eq(bp_ckpt_state_decode(&t, v1, n1, "x"), BP_EINVAL);
    ck_assert_int_eq(bp_ckpt_state_decode_version(&t, p, n, 1, "x"), BP_EINVAL);
    /* version 1 knew six flags */
    v1[0] = BP_CKPT_EXACT_PART;
    ck_assert_int_eq(bp_ckpt_state_decode_version(&t, v1, n1, 1, "v1"),
                     BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "stage: unknown flags"));
    ck_assert_int_eq(bp_ckpt_state_decode_version(&t, p, n, 4, "v4"),
                     BP_EINVAL);
    ck_assert(strstr(bp_errmsg(), "v4: checkpoint version: expected 1 to 3"));
    ck_assert_ptr_null(t.layers);
    free(v1);
    free(p);
    bp_ckpt_state_clear(&s);
}
END_TEST

/* A state saved among the output-space rounds: 3 done, layer 0 sampled
 * there.  It round-trips; every truncation and each inconsistency is
 * refused, naming the field. */
START_TEST(test_gns_position_roundtrip_and_damage)
{
    bp_ckpt_state s = {0}, t = {0};
    ck_assert_int_eq(bp_ckpt_state_reset(&s, 2), BP_OK);
    s.stage = BP_CKPT_GNS_PART;
    s.gns_round = 3;
    s.gns_rng[0] = 0x9e3779b97f4a7c15u;
    s.gns_rng[3] = 7;
    for (int i = 0; i < 2; i++)
        s.layers[i].n = 20;
    s.layers[0].gns_m = 3;
    s.layers[0].gns_mean = 1.0 / 3;
    s.layers[0].gns_m2 = 0.25;
    uint8_t *p, *q;
    size_t n, m;
    ck_assert_int_eq(bp_ckpt_state_encode(&s, &p, &n), BP_OK);
    ck_assert_int_eq(bp_ckpt_state_decode(&t, p, n, "x"), BP_OK);
    ck_assert_uint_eq(t.stage, BP_CKPT_GNS_PART);
    ck_assert_int_eq(t.gns_round, 3);
    ck_assert(t.gns_rng[0] == 0x9e3779b97f4a7c15u && t.gns_rng[3] == 7);
    ck_assert_int_eq(t.layers[0].gns_m, 3);
    ck_assert(t.layers[0].gns_mean == 1.0 / 3 && t.layers[0].gns_m2 == 0.25);
    ck_assert_int_eq(t.layers[1].gns_m, 0);
    ck_assert_int_eq(bp_ckpt_state_encode(&t, &q, &m), BP_OK);
    ck_assert(m == n && memcmp(p, q, n) == 0);
    free(q);
    for (size_t k = 0; k < n; k++) {
        ck_assert_int_eq(bp_ckpt_state_decode(&t, p, k, "cut"), BP_EINVAL);
        ck_assert_ptr_null(t.layers);
        ck_assert_ptr_null(strchr(bp_errmsg(), '\n'));
    }
    free(p);
    static const struct {
        uint32_t stage;
        int64_t round, m0;
        uint64_t rng0;
        const char *msg;
    } bad[] = {
        {BP_CKPT_GNS_PART, 0, 0, 1, "expected at least one round"},
        {BP_CKPT_GNS_PART, 3, 3, 0, "expected at least one round"},
        {BP_CKPT_GNS_PART | BP_CKPT_EXACT, 3, 3, 1,
         "output-space rounds under way with another stage"},
        {BP_CKPT_EXACT, 3, 3, 1, "output-space rounds: position without"},
        {BP_CKPT_GNS_PART, 3, 2, 1, "output-space samples: not the rounds"},
        {512, 3, 3, 1, "stage: unknown flags"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        s.stage = bad[k].stage;
        s.gns_round = bad[k].round;
        s.layers[0].gns_m = bad[k].m0;
        s.gns_rng[0] = bad[k].rng0;
        s.gns_rng[3] = bad[k].rng0 ? 7 : 0;
        ck_assert_int_eq(bp_ckpt_state_encode(&s, &p, &n), BP_OK);
        ck_assert_int_eq(bp_ckpt_state_decode(&t, p, n, "x"), BP_EINVAL);
        ck_assert_ptr_null(t.layers);
        ck_assert_msg(strstr(bp_errmsg(), bad[k].msg) != NULL, "case %zu: %s",
                      k, bp_errmsg());
        free(p);
    }
    /* the Welford sums: finite, M2 not negative, 0 without samples */
    s.stage = BP_CKPT_GNS_PART;
    s.gns_round = 3;
    s.gns_rng[0] = 1;
    s.layers[0].gns_m = 3;
    const double sums[][2] = {{NAN, 0.25}, {INFINITY, 0.25}, {0.5, -1e-300},
                              {0.5, NAN}};
    for (size_t k = 0; k < 5; k++) {
        if (k < 4) {
            s.layers[0].gns_mean = sums[k][0];
            s.layers[0].gns_m2 = sums[k][1];
        } else { /* sums on a layer without output-space samples */
            s.layers[0].gns_mean = 0.5;
            s.layers[0].gns_m2 = 0.25;
            s.layers[1].gns_mean = 0.5;
        }
        ck_assert_int_eq(bp_ckpt_state_encode(&s, &p, &n), BP_OK);
        ck_assert_int_eq(bp_ckpt_state_decode(&t, p, n, "x"), BP_EINVAL);
        ck_assert_msg(strstr(bp_errmsg(), "output-space sums") != NULL,
                      "sums %zu: %s", k, bp_errmsg());
        free(p);
    }
    bp_ckpt_state_clear(&s);
}
END_TEST

/* A whole checkpoint file of layout `version` holding payload p (n bytes)
 * after the identity "aa", "bb", "o", checksum included. */
static void write_file(const char *path, uint32_t version, const uint8_t *p,
                       size_t n)
{
    static const char *ids[] = {"aa", "bb", "o"};
    size_t len = 0;
    uint8_t *b = malloc(24 + 64 + 3 * 4 + 6 + n);
    memcpy(b, "BPCKPT1\n", 8);
    for (int i = 0; i < 4; i++)
        b[8 + i] = (uint8_t)(version >> (8 * i));
    memset(b + 12, 0, 12);
    len = 24;
    for (int k = 0; k < 3; k++) {
        uint32_t sl = (uint32_t)strlen(ids[k]);
        for (int i = 0; i < 4; i++)
            b[len + i] = (uint8_t)(sl >> (8 * i));
        memcpy(b + len + 4, ids[k], sl);
        len += 4 + sl;
    }
    memcpy(b + len, p, n);
    len += n;
    put64(b + 16, (int64_t)(len - 24));
    bp_sha256 h;
    char hex[65];
    bp_sha256_init(&h);
    bp_sha256_update(&h, b, len);
    bp_sha256_hex(&h, hex);
    memcpy(b + len, hex, 64);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, len + 64, f), len + 64);
    fclose(f);
    free(b);
}

/* Files: a saved partial state loads back; a version-1 file still loads;
 * a version-3 one and a partial state whose position is damaged (checksum
 * made good again) are refused with one line naming the file. */
START_TEST(test_exact_position_files)
{
    bp_ckpt *c = NULL, *d = NULL;
    ck_assert_int_eq(bp_ckpt_new(&c, sp("p.bin"), 0, "aa", "bb", "o"), BP_OK);
    partial_state(&c->st);
    ck_assert_int_eq(bp_ckpt_save(c), BP_OK);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "o"), BP_OK);
    ck_assert_msg(bp_ckpt_load(d, sp("p.bin")) == BP_OK, "%s", bp_errmsg());
    ck_assert_uint_eq(d->st.stage, BP_CKPT_EXACT_PART);
    ck_assert_int_eq(d->st.exact_batch, 3);
    ck_assert(d->st.layers[0].est_mean == 1.0 / 3);
    bp_ckpt_free(&d);

    uint8_t *p;
    size_t n;
    ck_assert_int_eq(bp_ckpt_state_encode(&c->st, &p, &n), BP_OK);
    /* exact_batch beyond exact_nb, with a valid checksum */
    put64(p + AT_EXACT, 9);
    write_file(sp("bad.bin"), 3, p, n);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "o"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(d, sp("bad.bin")), BP_EINVAL);
    ck_assert_msg(strstr(bp_errmsg(), "bad.bin: checkpoint exact batch: "
                         "expected 0..batches") != NULL, "%s", bp_errmsg());
    ck_assert_int_eq(d->resumed, 0);
    ck_assert_ptr_null(d->st.layers);
    bp_ckpt_free(&d);
    /* a layout this build does not know */
    put64(p + AT_EXACT, 3);
    write_file(sp("v4.bin"), 4, p, n);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "o"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(d, sp("v4.bin")), BP_EINVAL);
    ck_assert_msg(strstr(bp_errmsg(), "v4.bin: checkpoint version 4, "
                         "expected 1 to 3") != NULL, "%s", bp_errmsg());
    bp_ckpt_free(&d);

    /* version 1: the payload without the position */
    c->st.stage = BP_CKPT_EXACT;
    c->st.exact_batch = c->st.exact_nb = c->st.exact_ncols = 0;
    free(p);
    ck_assert_int_eq(bp_ckpt_state_encode(&c->st, &p, &n), BP_OK);
    size_t n1;
    uint8_t *p1 = older(p, n, 2, 1, &n1);
    free(p);
    p = p1;
    write_file(sp("v1.bin"), 1, p, n1);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "o"), BP_OK);
    ck_assert_msg(bp_ckpt_load(d, sp("v1.bin")) == BP_OK, "%s", bp_errmsg());
    ck_assert_uint_eq(d->st.stage, BP_CKPT_EXACT);
    ck_assert(d->st.layers[1].est_mean == 1.0 / 3 + 1);
    bp_ckpt_free(&d);
    /* the same bytes declared version 3 are malformed, not misread */
    write_file(sp("v1as2.bin"), 3, p, n1);
    ck_assert_int_eq(bp_ckpt_new(&d, NULL, 0, "aa", "bb", "o"), BP_OK);
    ck_assert_int_eq(bp_ckpt_load(d, sp("v1as2.bin")), BP_EINVAL);
    ck_assert(strncmp(bp_errmsg(), sp("v1as2.bin"), strlen(sp("v1as2.bin"))) == 0);
    ck_assert_ptr_null(strchr(bp_errmsg(), '\n'));
    bp_ckpt_free(&d);
    free(p);
    bp_ckpt_free(&c);
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
    tcase_add_loop_test(tc, test_resume_inside_exact_stage, 0,
                        (int)(sizeof exact_variants / sizeof exact_variants[0]));
    tcase_add_test(tc, test_state_of_another_model);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_state_roundtrip_and_truncations);
    tcase_add_test(tc, test_file_identity_and_damage);
    tcase_add_test(tc, test_exact_position_roundtrip_and_damage);
    tcase_add_test(tc, test_exact_position_files);
    tcase_add_test(tc, test_gns_position_roundtrip_and_damage);
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
