/* checkpoint.c - the checkpoint file of a resumable sensitivity run: state
 * encoding, validated decoding, identity checks, atomic saves (see
 * checkpoint.h). */
#include "checkpoint.h"
#include "atomic.h"
#include "hash.h"
#include "status.h"

#include <errno.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAGIC "BPCKPT1\n"
#define VERSION BP_CKPT_VERSION
#define HEAD 24 /* magic, version, reserved, payload length */
#define MAX_STR 65536
#define MAX_LAYERS (1 << 20)

/* ---- state ------------------------------------------------------------------ */

static void layer_clear(bp_ckpt_layer *l)
{
    free(l->q);
    free(l->alpha);
    free(l->beta);
    free(l->v);
    memset(l, 0, sizeof *l);
}

void bp_ckpt_state_clear(bp_ckpt_state *s)
{
    for (int i = 0; s->layers && i < s->n_layers; i++)
        layer_clear(&s->layers[i]);
    free(s->layers);
    memset(s, 0, sizeof *s);
}

int bp_ckpt_state_reset(bp_ckpt_state *s, int n)
{
    bp_ckpt_state_clear(s);
    s->layers = calloc((size_t)(n > 0 ? n : 1), sizeof *s->layers);
    if (!s->layers)
        return BP_ENOMEM;
    s->n_layers = n;
    return BP_OK;
}

int bp_ckpt_set(double **dst, int64_t *dn, const double *src, int64_t n)
{
    if (n <= 0) {
        free(*dst);
        *dst = NULL;
        *dn = 0;
        return BP_OK;
    }
    if (*dn != n) {
        double *p = realloc(*dst, (size_t)n * sizeof *p);
        if (!p)
            return BP_ENOMEM;
        *dst = p;
        *dn = n;
    }
    memcpy(*dst, src, (size_t)n * sizeof **dst);
    return BP_OK;
}

/* ---- encoding ----------------------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u64(wbuf *b, uint64_t x)
{
    uint8_t c[8];
    for (int i = 0; i < 8; i++)
        c[i] = (uint8_t)(x >> (8 * i));
    put(b, c, 8);
}

static void put_u32(wbuf *b, uint32_t x)
{
    uint8_t c[4];
    for (int i = 0; i < 4; i++)
        c[i] = (uint8_t)(x >> (8 * i));
    put(b, c, 4);
}

static void put_i64(wbuf *b, int64_t x) { put_u64(b, (uint64_t)x); }
static void put_i32(wbuf *b, int32_t x) { put_u32(b, (uint32_t)x); }

static void put_f64(wbuf *b, double x)
{
    uint64_t u;
    memcpy(&u, &x, 8);
    put_u64(b, u);
}

static void put_arr(wbuf *b, int64_t n, const double *a)
{
    put_i64(b, n);
    for (int64_t i = 0; i < n; i++)
        put_f64(b, a[i]);
}

static void put_str(wbuf *b, const char *s)
{
    size_t n = strlen(s);
    put_u32(b, (uint32_t)n);
    put(b, s, n);
}

/* Always the newest layout: a resumed version-1 or 2 file is saved as
 * version 3 (its exact_* and gns_* are 0, as they would have been). */
static void encode_state(wbuf *b, const bp_ckpt_state *s)
{
    put_u32(b, s->stage);
    put_i32(b, s->scope);
    put_i32(b, s->scope_used);
    put_i64(b, s->gsamples);
    put_i64(b, s->products);
    for (int i = 0; i < 4; i++)
        put_u64(b, s->grng[i]);
    put_i64(b, s->exact_batch);
    put_i64(b, s->exact_nb);
    put_i64(b, s->exact_cols);
    put_i64(b, s->exact_ncols);
    put_i64(b, s->gns_round);
    for (int i = 0; i < 4; i++)
        put_u64(b, s->gns_rng[i]);
    put_i32(b, s->n_layers);
    for (int i = 0; i < s->n_layers; i++) {
        const bp_ckpt_layer *l = &s->layers[i];
        put_i32(b, l->sampled);
        put_i32(b, l->method);
        put_i32(b, l->k);
        put_i64(b, l->n);
        put_i64(b, l->rem_m);
        put_i64(b, l->glob_m);
        put_i64(b, l->products);
        put_f64(b, l->rem_mean);
        put_f64(b, l->rem_m2);
        put_f64(b, l->glob_mean);
        put_f64(b, l->glob_m2);
        put_f64(b, l->t_low);
        for (int j = 0; j < 4; j++)
            put_u64(b, l->rng[j]);
        put_f64(b, l->est_mean);
        put_f64(b, l->est_se);
        put_i64(b, l->est_samples);
        put_i32(b, l->est_method);
        put_i32(b, l->est_hit_max);
        put_i32(b, l->eig_done);
        put_i32(b, l->eig_iters);
        put_i32(b, l->lz_m);
        put_f64(b, l->eig_val);
        put_f64(b, l->eig_prev);
        put_arr(b, l->n_q, l->q);
        put_arr(b, l->n_ab, l->alpha);
        put_arr(b, l->n_ab, l->beta);
        put_arr(b, l->n_v, l->v);
        put_i64(b, l->gns_m);
        put_f64(b, l->gns_mean);
        put_f64(b, l->gns_m2);
    }
}

/* Bytes of one layer without its arrays' values: the decoder's bound on
 * the layer count. */
#define LAYER_FIXED (4 * 3 + 8 * 4 + 8 * 5 + 8 * 4 + 8 * 2 + 8 + 4 * 5 + 8 * 2 + \
                     8 * 4)

int bp_ckpt_state_encode(const bp_ckpt_state *s, uint8_t **out, size_t *n)
{
    wbuf b = {0};
    encode_state(&b, s);
    if (b.oom) {
        free(b.p);
        return BP_ENOMEM;
    }
    *out = b.p;
    *n = b.n;
    return BP_OK;
}

/* ---- decoding ------------------------------------------------------------------- */

typedef struct rbuf {
    const uint8_t *p;
    size_t n, at;
    const char *what;
    int st;
} rbuf;

static int bad(rbuf *r, const char *field, const char *why)
{
    if (!r->st)
        r->st = bp_fail(BP_EINVAL, "%s: checkpoint %s: %s", r->what, field, why);
    return r->st;
}

static int take(rbuf *r, void *dst, size_t n, const char *field)
{
    if (r->st)
        return r->st;
    if (r->n - r->at < n)
        return bad(r, field, "the file ends here");
    memcpy(dst, r->p + r->at, n);
    r->at += n;
    return BP_OK;
}

static uint64_t get_u64(rbuf *r, const char *field)
{
    uint8_t c[8] = {0};
    uint64_t x = 0;
    if (take(r, c, 8, field))
        return 0;
    for (int i = 0; i < 8; i++)
        x |= (uint64_t)c[i] << (8 * i);
    return x;
}

static uint32_t get_u32(rbuf *r, const char *field)
{
    uint8_t c[4] = {0};
    uint32_t x = 0;
    if (take(r, c, 4, field))
        return 0;
    for (int i = 0; i < 4; i++)
        x |= (uint32_t)c[i] << (8 * i);
    return x;
}

static int64_t get_i64(rbuf *r, const char *field)
{
    return (int64_t)get_u64(r, field);
}

static int32_t get_i32(rbuf *r, const char *field)
{
    return (int32_t)get_u32(r, field);
}

static double get_f64(rbuf *r, const char *field)
{
    uint64_t u = get_u64(r, field);
    double x;
    memcpy(&x, &u, 8);
    return x;
}

/* A count of at least 0 and at most what the rest of the buffer can hold
 * at `unit` bytes each. */
static int64_t get_count(rbuf *r, const char *field, size_t unit)
{
    int64_t n = get_i64(r, field);
    if (r->st)
        return 0;
    if (n < 0)
        return bad(r, field, "negative count"), 0;
    if ((uint64_t)n > (r->n - r->at) / unit)
        return bad(r, field, "count exceeds the file"), 0;
    return n;
}

static void get_arr(rbuf *r, const char *field, int64_t *n, double **a)
{
    *n = get_count(r, field, 8);
    if (r->st || *n == 0)
        return;
    *a = malloc((size_t)*n * sizeof **a);
    if (!*a) {
        r->st = BP_ENOMEM;
        *n = 0;
        return;
    }
    for (int64_t i = 0; i < *n; i++)
        (*a)[i] = get_f64(r, field);
}

static char *get_str(rbuf *r, const char *field)
{
    uint32_t n = get_u32(r, field);
    if (r->st)
        return NULL;
    if (n > MAX_STR || n > r->n - r->at) {
        bad(r, field, "length exceeds the file");
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        r->st = BP_ENOMEM;
        return NULL;
    }
    take(r, s, n, field);
    s[n] = 0;
    if (strlen(s) != n) {
        free(s);
        bad(r, field, "holds a NUL byte");
        return NULL;
    }
    return s;
}

/* Where the exact stage stands, checked for consistency with the flags
 * (the estimators check it against the run). */
static int check_exact(rbuf *r, const bp_ckpt_state *s)
{
    if (!(s->stage & BP_CKPT_EXACT_PART)) {
        /* canonical: no position without the flag */
        if (s->exact_batch || s->exact_nb || s->exact_cols || s->exact_ncols)
            return bad(r, "exact stage", "position without the flag");
        return BP_OK;
    }
    if (s->stage != BP_CKPT_EXACT_PART)
        return bad(r, "stage", "exact traces under way with a later stage");
    if (s->exact_nb < 1 || s->exact_batch < 0 ||
        s->exact_batch > s->exact_nb)
        return bad(r, "exact batch", "expected 0..batches (at least 1)");
    if (s->exact_ncols < 0 || s->exact_cols < 0 ||
        s->exact_cols > s->exact_ncols)
        return bad(r, "exact columns", "expected 0..columns");
    if (s->exact_cols > 0 && s->exact_batch != s->exact_nb)
        return bad(r, "exact columns", "columns done before the last batch");
    return BP_OK;
}

/* The output-space rounds, likewise: they run before anything else. */
static int check_gns(rbuf *r, const bp_ckpt_state *s)
{
    int rng = s->gns_rng[0] || s->gns_rng[1] || s->gns_rng[2] ||
              s->gns_rng[3];
    if (!(s->stage & BP_CKPT_GNS_PART)) {
        if (s->gns_round || rng)
            return bad(r, "output-space rounds", "position without the flag");
        return BP_OK;
    }
    if (s->stage != BP_CKPT_GNS_PART)
        return bad(r, "stage", "output-space rounds under way with another "
                   "stage");
    if (s->gns_round < 1 || !rng)
        return bad(r, "output-space rounds", "expected at least one round "
                   "and its stream");
    return BP_OK;
}

static int decode_state(rbuf *r, bp_ckpt_state *s, uint32_t version)
{
    bp_ckpt_state_clear(s);
    s->stage = get_u32(r, "stage");
    s->scope = get_i32(r, "scope");
    s->scope_used = get_i32(r, "scope_used");
    s->gsamples = get_i64(r, "global samples");
    s->products = get_i64(r, "products");
    for (int i = 0; i < 4; i++)
        s->grng[i] = get_u64(r, "global rng");
    if (version >= 2) {
        s->exact_batch = get_i64(r, "exact batch");
        s->exact_nb = get_i64(r, "exact batches");
        s->exact_cols = get_i64(r, "exact columns");
        s->exact_ncols = get_i64(r, "exact column count");
    }
    if (version >= 3) {
        s->gns_round = get_i64(r, "output-space rounds");
        for (int i = 0; i < 4; i++)
            s->gns_rng[i] = get_u64(r, "output-space rng");
    }
    int32_t nl = get_i32(r, "layers");
    if (r->st)
        return r->st;
    /* version 1 knew the first six flags only, version 2 seven */
    if (s->stage > (version >= 3 ? 255u : version >= 2 ? 127u : 63u))
        return bad(r, "stage", "unknown flags");
    if (check_exact(r, s) || check_gns(r, s))
        return r->st;
    if (s->scope < 0 || s->scope > 2 || s->scope_used < 0 || s->scope_used > 2)
        return bad(r, "scope", "expected 0..2");
    if (s->gsamples < 0 || s->products < 0)
        return bad(r, "products", "negative count");
    if (nl < 0 || nl > MAX_LAYERS ||
        (size_t)nl > (r->n - r->at) / LAYER_FIXED)
        return bad(r, "layers", "count exceeds the file");
    bp_ckpt_state head = *s; /* reset clears it */
    if (bp_ckpt_state_reset(s, nl))
        return r->st = BP_ENOMEM;
    head.n_layers = s->n_layers;
    head.layers = s->layers;
    *s = head;
    for (int i = 0; i < nl && !r->st; i++) {
        bp_ckpt_layer *l = &s->layers[i];
        l->sampled = get_i32(r, "sampled");
        l->method = get_i32(r, "method");
        l->k = get_i32(r, "sketch size");
        l->n = get_i64(r, "numel");
        l->rem_m = get_i64(r, "samples");
        l->glob_m = get_i64(r, "global samples");
        l->products = get_i64(r, "products");
        l->rem_mean = get_f64(r, "mean");
        l->rem_m2 = get_f64(r, "M2");
        l->glob_mean = get_f64(r, "global mean");
        l->glob_m2 = get_f64(r, "global M2");
        l->t_low = get_f64(r, "sketch trace");
        for (int j = 0; j < 4; j++)
            l->rng[j] = get_u64(r, "rng");
        l->est_mean = get_f64(r, "trace");
        l->est_se = get_f64(r, "stderr");
        l->est_samples = get_i64(r, "trace samples");
        l->est_method = get_i32(r, "trace method");
        l->est_hit_max = get_i32(r, "hit max");
        l->eig_done = get_i32(r, "eig done");
        l->eig_iters = get_i32(r, "eig iterations");
        l->lz_m = get_i32(r, "lanczos steps");
        l->eig_val = get_f64(r, "eigenvalue");
        l->eig_prev = get_f64(r, "previous eigenvalue");
        get_arr(r, "sketch", &l->n_q, &l->q);
        get_arr(r, "alpha", &l->n_ab, &l->alpha);
        int64_t nb = 0;
        get_arr(r, "beta", &nb, &l->beta);
        get_arr(r, "vectors", &l->n_v, &l->v);
        if (version >= 3) {
            l->gns_m = get_i64(r, "output-space samples");
            l->gns_mean = get_f64(r, "output-space mean");
            l->gns_m2 = get_f64(r, "output-space M2");
        }
        if (r->st)
            break;
        if (l->gns_m != 0 && l->gns_m != s->gns_round)
            return bad(r, "output-space samples", "not the rounds done");
        /* Welford sums: finite, M2 >= 0, and 0 without samples */
        if (!isfinite(l->gns_mean) || !isfinite(l->gns_m2) ||
            !(l->gns_m2 >= 0) ||
            (l->gns_m == 0 && (l->gns_mean != 0 || l->gns_m2 != 0)))
            return bad(r, "output-space sums", "not finite, or negative");
        if (nb != l->n_ab)
            return bad(r, "beta", "length differs from alpha");
        if (l->n < 1 || l->k < 0 || l->rem_m < 0 || l->glob_m < 0 ||
            l->products < 0 || l->est_samples < 0 || l->eig_iters < 0 ||
            l->lz_m < 0 || l->method < 0 || l->method > 3 ||
            l->est_method < 0 || l->est_method > 4) /* BP_TRACE_GN_HUTCHINSON */
            return bad(r, "layer", "field out of range");
        if (l->lz_m != l->n_ab)
            return bad(r, "alpha", "length differs from the Lanczos steps");
    }
    if (!r->st && r->at != r->n)
        bad(r, "state", "trailing bytes");
    return r->st;
}

int bp_ckpt_state_decode_version(bp_ckpt_state *s, const uint8_t *p, size_t n,
                                 uint32_t version, const char *what)
{
    rbuf r = {p, n, 0, what, BP_OK};
    if (version < 1 || version > VERSION) {
        bp_ckpt_state_clear(s);
        return bad(&r, "version", "expected 1 to 3");
    }
    int st = decode_state(&r, s, version);
    if (st)
        bp_ckpt_state_clear(s);
    return st;
}

int bp_ckpt_state_decode(bp_ckpt_state *s, const uint8_t *p, size_t n,
                         const char *what)
{
    return bp_ckpt_state_decode_version(s, p, n, VERSION, what);
}

/* ---- the checkpoint object -------------------------------------------------------- */

static char *dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

int bp_ckpt_new(bp_ckpt **out, const char *path, double every,
                const char *model_sha256, const char *data_sha256,
                const char *options)
{
    bp_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return BP_ENOMEM;
    c->every = every;
    c->path = path ? dup(path) : NULL;
    c->model_sha256 = dup(model_sha256);
    c->data_sha256 = dup(data_sha256);
    c->options = dup(options);
    if ((path && !c->path) || !c->model_sha256 || !c->data_sha256 ||
        !c->options) {
        bp_ckpt_free(&c);
        return BP_ENOMEM;
    }
    clock_gettime(CLOCK_MONOTONIC, &c->last);
    *out = c;
    return BP_OK;
}

void bp_ckpt_free(bp_ckpt **cp)
{
    if (!cp || !*cp)
        return;
    bp_ckpt *c = *cp;
    bp_ckpt_state_clear(&c->st);
    free(c->path);
    free(c->model_sha256);
    free(c->data_sha256);
    free(c->options);
    free(c->source);
    free(c);
    *cp = NULL;
}

int bp_ckpt_due(const bp_ckpt *c, int force)
{
    if (!c || !c->path)
        return 0;
    if (force)
        return 1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - c->last.tv_sec) +
                1e-9 * (double)(now.tv_nsec - c->last.tv_nsec);
    return dt >= c->every;
}

int bp_ckpt_save(bp_ckpt *c)
{
    wbuf b = {0};
    put(&b, MAGIC, 8);
    put_u32(&b, VERSION);
    put_u32(&b, 0);
    put_u64(&b, 0); /* payload length, patched below */
    put_str(&b, c->model_sha256);
    put_str(&b, c->data_sha256);
    put_str(&b, c->options);
    encode_state(&b, &c->st);
    if (b.oom) {
        free(b.p);
        return bp_fail(BP_ENOMEM, "%s: out of memory", c->path);
    }
    uint64_t len = b.n - HEAD;
    for (int i = 0; i < 8; i++)
        b.p[16 + i] = (uint8_t)(len >> (8 * i));
    bp_sha256 h;
    char hex[65];
    bp_sha256_init(&h);
    bp_sha256_update(&h, b.p, b.n);
    bp_sha256_hex(&h, hex);
    put(&b, hex, 64);
    int st = b.oom ? bp_fail(BP_ENOMEM, "%s: out of memory", c->path)
                   : bp_write_file_atomic(c->path, b.p, b.n);
    free(b.p);
    if (st == BP_OK) {
        c->saves++;
        clock_gettime(CLOCK_MONOTONIC, &c->last);
    }
    return st;
}

/* The whole file, whose length is its own (never what it claims). */
static int slurp(const char *path, uint8_t **out, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bp_fail(BP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return bp_fail(BP_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    uint8_t *p = malloc(len + 1);
    if (!p) {
        fclose(f);
        return bp_fail(BP_ENOMEM, "%s: out of memory (%zu bytes)", path, len);
    }
    size_t got = fread(p, 1, len, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != len) {
        free(p);
        return bp_fail(BP_EIO, "%s: cannot read", path);
    }
    *out = p;
    *n = len;
    return BP_OK;
}

static int mismatch(const char *path, const char *what, const char *want,
                    const char *got)
{
    return bp_fail(BP_EINVAL, "%s: checkpoint was made for %s %.64s, not %.64s; "
                   "resume with the same model, data and options", path, what,
                   got, want);
}

int bp_ckpt_load(bp_ckpt *c, const char *path)
{
    uint8_t *p = NULL;
    size_t n = 0;
    int st = slurp(path, &p, &n);
    if (st)
        return st;
    char *model = NULL, *data = NULL, *opts = NULL;
    rbuf r = {p, n, 0, path, BP_OK};
    if (n < HEAD + 64 || memcmp(p, MAGIC, 8) != 0) {
        st = bp_fail(BP_EINVAL, "%s: not a bitplan checkpoint (expected the "
                     "magic BPCKPT1 and at least %d bytes)", path, HEAD + 64);
        goto out;
    }
    r.at = 8;
    uint32_t version = get_u32(&r, "version");
    (void)get_u32(&r, "reserved");
    uint64_t len = get_u64(&r, "length");
    if (version < 1 || version > VERSION) {
        st = bp_fail(BP_EINVAL, "%s: checkpoint version %u, expected 1 to %u",
                     path, version, VERSION);
        goto out;
    }
    if (len != n - HEAD - 64) {
        st = bp_fail(BP_EINVAL, "%s: checkpoint declares %llu bytes of state, "
                     "the file holds %zu (truncated or appended to)", path,
                     (unsigned long long)len, n - HEAD - 64);
        goto out;
    }
    bp_sha256 h;
    char hex[65];
    bp_sha256_init(&h);
    bp_sha256_update(&h, p, n - 64);
    bp_sha256_hex(&h, hex);
    if (memcmp(hex, p + n - 64, 64) != 0) {
        st = bp_fail(BP_EINVAL, "%s: checkpoint checksum mismatch (the file "
                     "is damaged)", path);
        goto out;
    }
    r.n = n - 64;
    model = get_str(&r, "model sha256");
    data = get_str(&r, "data sha256");
    opts = get_str(&r, "options");
    if ((st = r.st))
        goto out;
    if (strcmp(model, c->model_sha256) != 0) {
        st = mismatch(path, "model sha256", c->model_sha256, model);
        goto out;
    }
    if (strcmp(data, c->data_sha256) != 0) {
        st = mismatch(path, "data sha256", c->data_sha256, data);
        goto out;
    }
    if (strcmp(opts, c->options) != 0) {
        /* name the first option that differs */
        const char *a = opts, *b = c->options;
        for (;;) {
            size_t na = strcspn(a, " "), nb = strcspn(b, " ");
            if (na != nb || memcmp(a, b, na) != 0 || !a[na] || !b[nb]) {
                st = bp_fail(BP_EINVAL, "%s: checkpoint was made with other "
                             "options (%.*s, now %.*s); resume with the same "
                             "options", path, (int)(na > 200 ? 200 : na), a,
                             (int)(nb > 200 ? 200 : nb), b);
                break;
            }
            a += na + 1;
            b += nb + 1;
        }
        goto out;
    }
    if ((st = decode_state(&r, &c->st, version))) {
        bp_ckpt_state_clear(&c->st);
        goto out;
    }
    free(c->source);
    if (!(c->source = dup(path))) {
        st = BP_ENOMEM;
        goto out;
    }
    c->resumed = 1;
out:
    free(model);
    free(data);
    free(opts);
    free(p);
    return st;
}
