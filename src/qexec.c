/* qexec.c - the integer executor: buffers, a small thread pool, and one
 * dispatch switch over the integer ops of a quantized model. */
#include "qexec.h"
#include "qkernels_impl.h"
#include "status.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- thread pool ------------------------------------------------------------ */

typedef void (*task_fn)(void *ctx, int tid, int nth);

typedef struct pool {
    int n;               /* threads, the caller included */
    pthread_t *th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;
    atomic_int pending;
    atomic_int stop;
    task_fn fn;
    void *ctx;
    struct worker_arg *args;
} pool;

typedef struct worker_arg {
    pool *p;
    int tid;
} worker_arg;

/* How long an idle worker spins for the next op before it sleeps.  A
 * sleeping worker costs the next parallel op its wake-up: about 20 us on a
 * 2-vCPU KVM guest, where a count of 20000 spins (6.8 us there) put it to
 * sleep during any serial op longer than that (a 19k-element input
 * quantisation): a one-layer model of 5 us took 27.  Spinning 200 us
 * keeps it awake through the serial ops of a run; libgomp spins longer. */
#define SPIN_NS 200000

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void *worker(void *arg)
{
    pool *p = ((worker_arg *)arg)->p;
    int tid = ((worker_arg *)arg)->tid;
    unsigned seen = 0;
    for (;;) {
        unsigned g;
        int spins = 0;
        int64_t t0 = 0;
        while ((g = atomic_load(&p->gen)) == seen) {
            /* the clock every 256 spins: a read costs some 70 of them */
            if (++spins % 256)
                continue;
            if (!t0)
                t0 = now_ns();
            if (now_ns() - t0 < SPIN_NS)
                continue;
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen)
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        seen = g;
        if (atomic_load(&p->stop))
            return NULL;
        p->fn(p->ctx, tid, p->n);
        atomic_fetch_sub(&p->pending, 1);
    }
}

static void pool_run(pool *p, task_fn fn, void *ctx)
{
    if (p->n <= 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    int spins = 0;
    while (atomic_load(&p->pending) > 0)
        if (++spins > 20000)
            sched_yield();
}

static void pool_free(pool *p)
{
    if (!p)
        return;
    if (p->started) {
        atomic_store(&p->stop, 1);
        pthread_mutex_lock(&p->mu);
        atomic_fetch_add(&p->gen, 1);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        for (int i = 1; i < p->started + 1; i++)
            pthread_join(p->th[i], NULL);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->th);
    free(p->args);
    free(p);
}

static int pool_new(pool **out, int n)
{
    pool *p = calloc(1, sizeof *p);
    if (!p)
        return BP_ENOMEM;
    p->n = n;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, 0);
    p->th = calloc((size_t)n + 1, sizeof *p->th);
    worker_arg *args = p->args = calloc((size_t)n + 1, sizeof *args);
    if (!p->th || !args) {
        pool_free(p);
        return BP_ENOMEM;
    }
    for (int i = 1; i < n; i++) {
        args[i].p = p;
        args[i].tid = i;
        if (pthread_create(&p->th[i], NULL, worker, &args[i])) {
            p->n = i;
            break;
        }
        p->started = i;
    }
    *out = p;
    return BP_OK;
}

/* ---- the executor ---------------------------------------------------------- */

struct bp_qexec {
    const bp_qmodel *qm;
    int64_t max_batch, n;
    void **buf;          /* (n_tensors) */
    float **out;         /* (n_outputs) */
    uint8_t *scratch;    /* threads x scratch_size */
    size_t scratch_size;
    int64_t work_bytes;
    pool *pool;
    const float *const *inputs;
};

static int64_t tnumel(const bp_qtensor *t) { return t->h * t->w * t->c; }

/* Per sample: the codes of tensor t; a DEQUANT's float output.  The
 * executor's buffers are these times max_batch, plus 64 bytes of slack. */
static int64_t tensor_bytes(const bp_qtensor *t)
{
    return tnumel(t) * (int64_t)bp_qtype_size(t->type);
}

static int64_t dequant_bytes(const bp_qmodel *qm, const bp_qop *o)
{
    return tnumel(&qm->t[o->in]) * (int64_t)sizeof(float);
}

int64_t bp_qexec_sample_bytes(const bp_qmodel *qm)
{
    int64_t n = 0;
    for (int t = 0; t < qm->n_tensors; t++)
        n += tensor_bytes(&qm->t[t]);
    for (int i = 0; i < qm->n_ops; i++)
        if (qm->ops[i].kind == BP_QOP_DEQUANT)
            n += dequant_bytes(qm, &qm->ops[i]);
    return n;
}

int bp_qexec_graph_sample_bytes(bp_graph *g, int64_t *bytes)
{
    bp_qmodel *qm = NULL;
    int st = bp_qmodel_skeleton(&qm, g);
    if (st)
        return st;
    *bytes = bp_qexec_sample_bytes(qm);
    bp_qmodel_free(&qm);
    return BP_OK;
}

int bp_qexec_threads(const bp_qexec *ex) { return ex->pool->n; }

void bp_qexec_free(bp_qexec **exp)
{
    if (!exp || !*exp)
        return;
    bp_qexec *ex = *exp;
    pool_free(ex->pool);
    for (int t = 0; ex->buf && t < ex->qm->n_tensors; t++)
        free(ex->buf[t]);
    for (int k = 0; ex->out && k < ex->qm->g->n_outputs; k++)
        free(ex->out[k]);
    free(ex->buf);
    free(ex->out);
    free(ex->scratch);
    free(ex);
    *exp = NULL;
}

int bp_qexec_new(bp_qexec **out, const bp_qmodel *qm, int64_t max_batch,
                 int threads)
{
    if (max_batch < 1)
        return bp_fail(BP_EINVAL, "integer executor: batch must be at least 1");
    if (threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        threads = c < 1 ? 1 : c > 64 ? 64 : (int)c;
    }
    bp_qexec *ex = calloc(1, sizeof *ex);
    if (!ex)
        return BP_ENOMEM;
    ex->qm = qm;
    ex->max_batch = max_batch;
    int st = BP_OK;
    ex->buf = calloc((size_t)qm->n_tensors + 1, sizeof *ex->buf);
    ex->out = calloc((size_t)qm->g->n_outputs + 1, sizeof *ex->out);
    if (!ex->buf || !ex->out) {
        st = BP_ENOMEM;
        goto fail;
    }
    for (int t = 0; t < qm->n_tensors; t++) {
        size_t bytes = (size_t)(max_batch * tensor_bytes(&qm->t[t])) + 64;
        ex->buf[t] = calloc(1, bytes);
        if (!ex->buf[t]) {
            st = BP_ENOMEM;
            goto fail;
        }
        ex->work_bytes += (int64_t)bytes;
    }
    for (int i = 0; i < qm->n_ops; i++) {
        const bp_qop *o = &qm->ops[i];
        if (o->kind == BP_QOP_DEQUANT) {
            size_t bytes = (size_t)(max_batch * dequant_bytes(qm, o)) + 64;
            ex->out[o->io] = calloc(1, bytes);
            if (!ex->out[o->io]) {
                st = BP_ENOMEM;
                goto fail;
            }
            ex->work_bytes += (int64_t)bytes;
        }
    }
    for (int i = 0; i < qm->n_layers; i++) {
        const bp_qlayer *L = &qm->layers[i];
        size_t s = bp_qk_layer_scratch(&L->k);
        if (s > ex->scratch_size)
            ex->scratch_size = s;
    }
    ex->scratch_size = (ex->scratch_size + 63) / 64 * 64;
    if ((st = pool_new(&ex->pool, threads)))
        goto fail;
    ex->scratch = calloc((size_t)ex->pool->n, ex->scratch_size ? ex->scratch_size : 64);
    if (!ex->scratch) {
        st = BP_ENOMEM;
        goto fail;
    }
    ex->work_bytes += (int64_t)(ex->pool->n * ex->scratch_size);
    *out = ex;
    return BP_OK;
fail:
    bp_qexec_free(&ex);
    return st;
}

const float *bp_qexec_output(const bp_qexec *ex, int k)
{
    return k >= 0 && k < ex->qm->g->n_outputs ? ex->out[k] : NULL;
}

const void *bp_qexec_tensor(const bp_qexec *ex, int t)
{
    return t >= 0 && t < ex->qm->n_tensors ? ex->buf[t] : NULL;
}

int64_t bp_qexec_workspace_bytes(const bp_qexec *ex) { return ex->work_bytes; }

/* ---- parallel pieces --------------------------------------------------------- */

/* [lo, hi) of thread tid's share of n items, in multiples of `unit`. */
static void share(int64_t n, int tid, int nth, int64_t unit, int64_t *lo,
                  int64_t *hi)
{
    int64_t units = (n + unit - 1) / unit;
    int64_t a = units * tid / nth, b = units * (tid + 1) / nth;
    *lo = a * unit < n ? a * unit : n;
    *hi = b * unit < n ? b * unit : n;
}

typedef struct layer_task {
    bp_qexec *ex;
    bp_qk_layer a;
    void *y;
    const void *x;
    int by_positions;
    const bp_qlayer *L;
    atomic_llong next;   /* blocks taken so far, when shared */
} layer_task;

static void layer_fn(void *ctx, int tid, int nth)
{
    layer_task *t = ctx;
    const bp_qk_layer *a = &t->a;
    void *scratch = t->ex->scratch + (size_t)tid * t->ex->scratch_size;
    int64_t P = bp_qk_layer_positions(a), B = bp_qk_layer_blocks(a);
    int64_t G = a->geo.group;
    if (t->by_positions) {
        int64_t p0, p1;
        share(P, tid, nth, bp_qk_layer_unit(a), &p0, &p1);
        if (p0 < p1)
            for (int64_t g = 0; g < G; g++)
                bp_qk_layer_run(t->y, t->x, a, p0, p1, g, 0, B, scratch);
        return;
    }
    if (G == 1 && bp_qk_layer_shared_ok(a)) {
        /* blocks taken as threads finish, so that a thread that runs
         * slower takes fewer (on the 2-vCPU VM, one thread was at times
         * busy 77-80% of the parallel time, the other all of it);
         * ResNet-18 at batch 1, 6 processes of 100 alternating runs:
         * 0.6-3.3% faster */
        bp_qk_layer_run_shared(t->y, t->x, a, 0, &t->next, scratch);
        return;
    }
    int64_t u0, u1;
    share(G * B, tid, nth, 1, &u0, &u1);
    while (u0 < u1) {
        int64_t g = u0 / B, b0 = u0 % B;
        int64_t b1 = (g + 1) * B < u1 ? B : u1 - g * B;
        bp_qk_layer_run(t->y, t->x, a, 0, P, g, b0, b1, scratch);
        u0 = g * B + b1;
    }
}

typedef struct pool_task {
    const bp_qop *o;
    void *y;
    const void *x;
    bp_qtype ty, tx;
    int64_t rows;
} pool_task;

static void pool_fn(void *ctx, int tid, int nth)
{
    pool_task *t = ctx;
    int64_t r0, r1;
    share(t->rows, tid, nth, 1, &r0, &r1);
    if (r0 >= r1)
        return;
    if (t->o->kind == BP_QOP_MAXPOOL)
        bp_qk_maxpool(t->y, t->x, t->tx, &t->o->pool, t->o->lo, t->o->hi, r0, r1);
    else
        bp_qk_avgpool(t->y, t->ty, t->x, t->tx, &t->o->pool, t->o->pm, t->o->ps,
                      t->o->lo, t->o->hi, r0, r1);
}

typedef struct elem_task {
    const bp_qop *o;
    void *y;
    const void *x, *x2;
    bp_qtype ty, tx, tx2;
    int64_t n;
} elem_task;

static void elem_fn(void *ctx, int tid, int nth)
{
    elem_task *t = ctx;
    int64_t lo, hi;
    share(t->n, tid, nth, 64, &lo, &hi);
    if (lo >= hi)
        return;
    size_t sy = bp_qtype_size(t->ty), sx = bp_qtype_size(t->tx);
    void *y = (char *)t->y + (size_t)lo * sy;
    const void *x = (const char *)t->x + (size_t)lo * sx;
    const bp_qop *o = t->o;
    switch (o->kind) {
    case BP_QOP_ADD:
        bp_qk_add(y, t->ty, x, t->tx, o->m1, o->s1,
                  (const char *)t->x2 + (size_t)lo * bp_qtype_size(t->tx2), t->tx2,
                  o->m2, o->s2, o->frac, hi - lo, o->lo, o->hi);
        break;
    case BP_QOP_REQUANT:
        bp_qk_requant(y, t->ty, x, t->tx, o->m1, o->s1, hi - lo, o->lo, o->hi);
        break;
    default:
        bp_qk_clamp(y, t->ty, x, t->tx, hi - lo, o->lo, o->hi);
        break;
    }
}

typedef struct quant_task {
    const bp_qop *o;
    void *y;
    const float *x;
    const bp_qtensor *to;
    int64_t n;
} quant_task;

static void quant_fn(void *ctx, int tid, int nth)
{
    quant_task *t = ctx;
    int64_t hw = t->to->h * t->to->w, r0, r1;
    share(t->n * hw, tid, nth, 64, &r0, &r1);
    if (r0 < r1)
        bp_qk_quantize(t->y, t->to->type, t->x, t->n, t->to->c, hw,
                       (double)t->o->fscale, t->o->lo, t->o->hi, r0, r1);
}


static int run_op(bp_qexec *ex, int i, int64_t n)
{
    const bp_qmodel *qm = ex->qm;
    const bp_qop *o = &qm->ops[i];
    const bp_qtensor *ti = o->in >= 0 ? &qm->t[o->in] : NULL;
    const bp_qtensor *to = o->out >= 0 ? &qm->t[o->out] : NULL;
    void *y = o->out >= 0 ? ex->buf[o->out] : NULL;
    const void *x = o->in >= 0 ? ex->buf[o->in] : NULL;
    pool *pl = ex->pool;
    switch (o->kind) {
    case BP_QOP_QUANTIZE: {
        quant_task t = {o, y, ex->inputs[o->io], to, n};
        if (n * tnumel(to) >= BP_QEXEC_PAR_ELEMS && pl->n > 1)
            pool_run(pl, quant_fn, &t);
        else
            quant_fn(&t, 0, 1);
        return BP_OK;
    }
    case BP_QOP_LAYER: {
        const bp_qlayer *L = &qm->layers[o->layer];
        layer_task t = {ex, L->k, y, x, 0, L, 0};
        t.a.geo.n = n;
        if (t.a.residual)
            t.a.res = ex->buf[o->in2];
        int64_t P = bp_qk_layer_positions(&t.a);
        int64_t units = t.a.geo.group * bp_qk_layer_blocks(&t.a);
        t.by_positions = units < pl->n ||
                         (P >= 96 * pl->n && !bp_qk_layer_by_blocks(&t.a));
        if (L->macs * n >= BP_QEXEC_PAR_MACS && pl->n > 1)
            pool_run(pl, layer_fn, &t);
        else
            layer_fn(&t, 0, 1);
        return BP_OK;
    }
    case BP_QOP_MAXPOOL: case BP_QOP_AVGPOOL: {
        /* the geometry's batch is the run's */
        bp_qop oc = *o;
        oc.pool.n = n;
        pool_task t = {&oc, y, x, to->type, ti->type, n * o->pool.oh};
        if (n * tnumel(to) >= BP_QEXEC_PAR_ELEMS && pl->n > 1)
            pool_run(pl, pool_fn, &t);
        else
            pool_fn(&t, 0, 1);
        return BP_OK;
    }
    case BP_QOP_ADD: case BP_QOP_REQUANT: case BP_QOP_RELU: {
        elem_task t = {o, y, x, o->in2 >= 0 ? ex->buf[o->in2] : NULL, to->type,
                       ti->type, o->in2 >= 0 ? qm->t[o->in2].type : BP_QT_I8,
                       n * tnumel(to)};
        if (t.n >= BP_QEXEC_PAR_ELEMS && pl->n > 1)
            pool_run(pl, elem_fn, &t);
        else
            elem_fn(&t, 0, 1);
        return BP_OK;
    }
    case BP_QOP_FLATTEN:
        bp_qk_to_nchw(y, x, bp_qtype_size(ti->type), n, ti->c, ti->h * ti->w);
        return BP_OK;
    case BP_QOP_DEQUANT:
        if (ti->type == BP_QT_I32) {
            const bp_qlayer *L = &qm->layers[o->layer];
            bp_qk_dequant_ch(ex->out[o->io], x, n, ti->c, ti->h * ti->w, L->rq);
        } else {
            bp_qk_dequant(ex->out[o->io], x, ti->type, n, ti->c, ti->h * ti->w,
                          o->fscale);
        }
        return BP_OK;
    default:
        return bp_fail(BP_EINTERNAL, "integer executor: op %d unknown",
                       (int)o->kind);
    }
}

int bp_qexec_run(bp_qexec *ex, const float *const *inputs, int64_t n)
{
    if (n < 1 || n > ex->max_batch)
        return bp_fail(BP_EINVAL, "integer executor: batch of %lld samples; "
                       "expected 1 to %lld", (long long)n,
                       (long long)ex->max_batch);
    ex->inputs = inputs;
    ex->n = n;
    for (int i = 0; i < ex->qm->n_ops; i++) {
        int st = run_op(ex, i, n);
        if (st)
            return st;
    }
    return BP_OK;
}

int bp_qexec_run_timed(bp_qexec *ex, const float *const *inputs, int64_t n,
                       double *op_seconds)
{
    if (n < 1 || n > ex->max_batch)
        return bp_fail(BP_EINVAL, "integer executor: batch of %lld samples; "
                       "expected 1 to %lld", (long long)n,
                       (long long)ex->max_batch);
    ex->inputs = inputs;
    ex->n = n;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < ex->qm->n_ops; i++) {
        int st = run_op(ex, i, n);
        if (st)
            return st;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        op_seconds[i] = (double)(t1.tv_sec - t0.tv_sec) +
                        (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        t0 = t1;
    }
    return BP_OK;
}

int bp_qexec_run_op(bp_qexec *ex, int i, int64_t n)
{
    if (i < 0 || i >= ex->qm->n_ops || n < 1 || n > ex->max_batch)
        return bp_fail(BP_EINVAL, "integer executor: op %d / batch %lld out of "
                       "range", i, (long long)n);
    if (ex->qm->ops[i].kind == BP_QOP_QUANTIZE && !ex->inputs)
        return bp_fail(BP_EINVAL, "integer executor: no input yet");
    return run_op(ex, i, n);
}
