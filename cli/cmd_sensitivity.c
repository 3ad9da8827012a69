/* cmd_sensitivity.c - `bitplan sensitivity`: per-layer Hessian traces, top
 * eigenvalues and quantization perturbations of a model on calibration
 * data, written to a sensitivity file (sensitivity/sensfile.h). */
#include "cli.h"
#include "../ilp/cost.h"
#include "../sensitivity/estimators.h"
#include "../sensitivity/sensfile.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char help[] =
    "usage: bitplan sensitivity MODEL.onnx --data X.npy [--labels Y.npy]\n"
    "                           -o SENS.json [options]\n\n"
    "Per quantizable layer (the weight tensors 'bitplan inspect' lists): the\n"
    "trace and top eigenvalue of its block of the loss Hessian, and for every\n"
    "candidate bit-width the quantization perturbation ||Q_b(W) - W||^2 and\n"
    "Omega(b) = trace / numel * perturbation (HAWQ-V2/V3).\n\n"
    "The loss is the mean cross-entropy of the logits (output 0, or the input\n"
    "of a final Softmax) against --labels; without labels, against the float\n"
    "model's own top-1 prediction for each sample.  Hessian-vector products\n"
    "are exact (forward-over-reverse, float64), accumulated batch by batch.\n\n"
    "  --data X.npy        calibration samples (axis 0), shaped as the input\n"
    "  --labels Y.npy      integer class labels, one per sample\n"
    "  -o, --out FILE      the sensitivity file to write (JSON)\n"
    "  --samples N         use only the first N samples\n"
    "  --batch N           samples per pass (default: 256, or fewer so that a\n"
    "                      pass holds about 1 GiB: 1 for ResNet-18 at 224x224)\n"
    "  --seed N            seed of every random vector (default 0)\n"
    "  --threads N         workers: independent Hessian-vector products and\n"
    "                      backward passes run in parallel, BLAS on one thread\n"
    "                      (default: one per CPU, at most 4); results do not\n"
    "                      depend on it\n"
    "  --trace M           auto|exact|hutchpp|hutchinson|gn-hutchinson\n"
    "                      (default auto: exact where the logits are piecewise\n"
    "                      linear in the layer, by the Gauss-Newton identity,\n"
    "                      one backward pass per class and sample; above 128\n"
    "                      classes (4x the fewest draws, --min-samples) sampled\n"
    "                      instead (gn-hutchinson: Hutchinson in the output\n"
    "                      space, one backward pass per draw for all layers,\n"
    "                      rounds of 8 draws per sample until --tol), unless\n"
    "                      the draws still to come, as the rounds so far\n"
    "                      project them, exceed the classes;\n"
    "                      Hutch++ elsewhere, or every unit vector for a block\n"
    "                      smaller than the cheapest sampling plan).  exact on\n"
    "                      a non-piecewise-linear layer costs one product per\n"
    "                      weight; gn-hutchinson treats such layers as auto\n"
    "  --scope S           auto|block|global: Rademacher vectors restricted to\n"
    "                      one layer, or over all sampled layers at once (auto\n"
    "                      pilots both and keeps the cheaper; global samples\n"
    "                      plain Hutchinson vectors, whatever --trace says)\n"
    "  --tol X             stop sampling a layer at relative standard error X\n"
    "                      (default 0.01)\n"
    "  --max-samples N     products per layer at most (default 500)\n"
    "  --min-samples N     samples per layer before the rule applies (30)\n"
    "  --sketch K          Hutch++ sketch size (default 20)\n"
    "  --eig M             lanczos|power|none (default lanczos: the largest\n"
    "                      eigenvalue; power: PyHessian's power iteration, the\n"
    "                      dominant one, relative change 1e-3)\n"
    "  --eig-tol X         Lanczos Ritz residual bound, relative (1e-6)\n"
    "  --eig-iter N        iterations at most (default 100)\n"
    "  --bits LIST         candidate weight bit-widths, 1..16 (default\n"
    "                      2,3,4,5,6,8)\n"
    "  --loss-increase     also measure each layer's loss increase at each\n"
    "                      width, first-order term removed (one forward pass\n"
    "                      over the data per layer and width), for `solve\n"
    "                      --metric loss`\n"
    "  --density FILE.csv  also the spectral density of the whole Hessian by\n"
    "                      stochastic Lanczos quadrature (eigenvalue,density)\n"
    "  --density-steps N   Lanczos steps per run (default 100)\n"
    "  --density-runs N    starting vectors (default 1)\n"
    "  --checkpoint FILE   save the estimator state to FILE (atomically) every\n"
    "                      --checkpoint-every seconds and at the end of each\n"
    "                      stage (exact traces, sampled traces, eigenvalues);\n"
    "                      within the exact traces, between two batches\n"
    "                      (Gauss-Newton) or two groups of columns\n"
    "  --checkpoint-every S  seconds between checkpoints (default 30)\n"
    "  --resume FILE       continue the run saved in FILE (and keep saving to\n"
    "                      it unless --checkpoint names another file); the\n"
    "                      result is byte-identical to an uninterrupted run.\n"
    "                      Model, data, labels and every option that affects\n"
    "                      the result must be the same (else exit 2)\n"
    "  --json              print a summary as JSON on stdout\n\n"
    "Interrupted (SIGINT, SIGTERM: exit status 130, 143) or killed, it leaves\n"
    "no output file, complete or partial, and no temporary file; the last\n"
    "checkpoint stays.\n";

typedef struct reader {
    cli_data *d;
} reader;

static int read_rows(void *ctx, int64_t start, int64_t n, double *x)
{
    reader *r = ctx;
    return cli_data_read(r->d, start, n, BP_F64, x);
}

static char *dupstr(const char *s);

/* The facts that let `solve --sensitivity` price a plan from the file
 * alone as it would with the model: per-channel scale and bias bytes, the
 * activations the latency model charges, the float32 baseline of size=25%%
 * and the bytes every plan carries (sensfile.h). */
static int fill_facts(bp_graph *g, bp_sens *s)
{
    bp_layer_facts *f = NULL;
    bp_model_facts mf = {0, 0, 0};
    int n = 0, st = bp_layer_facts_from_graph(g, &f, &n, &mf);
    if (st)
        return st;
    for (int i = 0; i < s->n_layers; i++)
        for (int j = 0; j < n; j++)
            if (!strcmp(s->layers[i].name, f[j].name)) {
                s->layers[i].out_channels = f[j].out_channels;
                s->layers[i].in_numel = f[j].in_numel;
                s->layers[i].out_numel = f[j].out_numel;
            }
    s->float_params = mf.float_params;
    s->other_params = mf.other_params;
    s->const_bytes = mf.const_bytes;
    free(f);
    return BP_OK;
}

int cli_sensitivity_compute(bp_graph *g, const char *xpath, const char *ypath,
                            int64_t samples, const bp_sens_opts *o,
                            bp_sens **out)
{
    cli_data d = {0};
    reader r = {&d};
    bp_sens *s = NULL;
    char hex[65];
    int st;
    if ((st = cli_data_open(&d, g, xpath, ypath, samples)) ||
        (st = cli_data_load_labels(&d))) {
        cli_data_close(&d);
        return st;
    }
    bp_sens_data sd = {xpath, d.count, d.sample_numel, d.labels, read_rows, &r};
    if ((st = bp_sensitivity(&s, g, &sd, o)) ||
        (st = fill_facts(g, s)) ||
        (st = bp_sha256_file(xpath, hex)))
        goto out;
    s->model_path = dupstr(g->path);
    s->model_sha256 = dupstr(g->hash);
    s->data_path = dupstr(xpath);
    s->data_sha256 = dupstr(hex);
    if (!s->model_path || !s->model_sha256 || !s->data_path || !s->data_sha256)
        st = BP_ENOMEM;
out:
    cli_data_close(&d);
    if (st) {
        bp_sens_free(&s);
        return st;
    }
    *out = s;
    return BP_OK;
}

int cli_sens_workers(int64_t requested)
{
    if (requested > 0)
        return (int)requested;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 4 ? 4 : (int)n;
}

void cli_sens_progress(void *ctx, const char *stage, int64_t done,
                       int64_t total)
{
    (void)ctx;
    if (!cli_progress_enabled())
        return;
    if (total > 0)
        cli_progress(stage, done, total);
    else
        fprintf(stderr, "\r\033[K%s ...", stage);
}

static int parse_choice(const char *opt, const char *s, const char *const *names,
                        int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    /* opt is "--eig (lanczos, power, none)": the name, then the choices */
    const char *sp = strchr(opt, ' ');
    cli_usage("sensitivity", "%.*s expects one of %s, got '%s'",
              sp ? (int)(sp - opt) : (int)strlen(opt), opt, sp ? sp + 1 : "",
              s);
    return -1;
}

static int parse_bits(const char *s, bp_sens_opts *o)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ',') || v < 1 || v > BP_SENS_MAX_BITS) {
            cli_usage("sensitivity", "--bits expects a comma-separated list of "
                      "bit-widths from 1 to %d, got '%s'", BP_SENS_MAX_BITS, s);
            return -1;
        }
        int dup = 0;
        for (int i = 0; i < n; i++)
            dup |= o->bits[i] == (int)v;
        if (!dup) {
            if (n == BP_SENS_MAX_BITS)
                break;
            o->bits[n++] = (int)v;
        }
        p = *end ? end + 1 : end;
        if (*end && !*p) {
            cli_usage("sensitivity", "--bits: trailing comma in '%s'", s);
            return -1;
        }
    }
    if (n == 0) {
        cli_usage("sensitivity", "--bits is empty");
        return -1;
    }
    /* ascending, so the file lists them in order */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && o->bits[j - 1] > o->bits[j]; j--) {
            int t = o->bits[j];
            o->bits[j] = o->bits[j - 1];
            o->bits[j - 1] = t;
        }
    o->n_bits = n;
    return 0;
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* Everything but the model and data that determines the result: a resumed
 * run must match it exactly (threads, progress and output paths do not
 * matter). */
static void options_key(char *buf, size_t n, const bp_sens_opts *o,
                        int64_t samples, const char *labels_sha)
{
    char bits[128] = "";
    for (int b = 0; b < o->n_bits; b++) {
        size_t at = strlen(bits);
        snprintf(bits + at, sizeof bits - at, "%s%d", b ? "," : "", o->bits[b]);
    }
    snprintf(buf, n, "trace=%d scope=%d tol=%.17g max-samples=%lld "
             "min-samples=%lld sketch=%d eig=%d eig-tol=%.17g eig-iter=%d "
             "batch=%lld seed=%llu bits=%s samples=%lld labels=%s loss-inc=%d",
             (int)o->trace, (int)o->scope, o->tol, (long long)o->max_samples,
             (long long)o->min_samples, o->sketch, (int)o->eig, o->eig_tol,
             o->eig_max_iter, (long long)o->batch, (unsigned long long)o->seed,
             bits, (long long)samples, labels_sha, o->loss_increase);
}

/* The checkpoint of this run, saved to path every `every` seconds, loaded
 * from `resume` when not NULL. */
static int open_checkpoint(bp_ckpt **out, const bp_graph *g, const char *xpath,
                           const char *ypath, int64_t samples,
                           const bp_sens_opts *o, const char *path,
                           double every, const char *resume)
{
    char xsha[65], ysha[65] = "none", key[1024];
    int st;
    if ((st = bp_sha256_file(xpath, xsha)) ||
        (ypath && (st = bp_sha256_file(ypath, ysha))))
        return st;
    options_key(key, sizeof key, o, samples, ysha);
    bp_ckpt *ck = NULL;
    if ((st = bp_ckpt_new(&ck, path, every, g->hash, xsha, key)))
        return st;
    if (resume && (st = bp_ckpt_load(ck, resume))) {
        bp_ckpt_free(&ck);
        return st;
    }
    if (resume) {
        const bp_ckpt_state *s = &ck->st;
        uint32_t f = s->stage;
        char part[128];
        /* inside the exact stage: the Gauss-Newton batches, then the
         * columns (a stage of hours on a large model) */
        if (s->exact_batch < s->exact_nb || s->exact_ncols == 0)
            snprintf(part, sizeof part, "exact traces: batch %lld of %lld done",
                     (long long)s->exact_batch, (long long)s->exact_nb);
        else
            snprintf(part, sizeof part, "exact traces: column %lld of %lld done",
                     (long long)s->exact_cols, (long long)s->exact_ncols);
        if (f & BP_CKPT_GNS_PART)
            snprintf(part, sizeof part, "output-space traces: round %lld done",
                     (long long)s->gns_round);
        fprintf(stderr, "resuming %s: %s, %lld Hessian-vector products done\n",
                resume,
                f & BP_CKPT_EIGS ? "all stages done"
                : f & BP_CKPT_EIG ? "traces done, eigenvalues under way"
                : f & BP_CKPT_TRACES ? "traces done"
                : f & BP_CKPT_SCOPE ? "exact traces done, sampling"
                : f & BP_CKPT_SKETCH ? "exact traces done, block pilot"
                : f & BP_CKPT_EXACT ? "exact traces done"
                : f & (BP_CKPT_EXACT_PART | BP_CKPT_GNS_PART) ? part
                : "nothing done yet",
                (long long)s->products);
    }
    *out = ck;
    return BP_OK;
}

static void print_summary(const bp_sens *s)
{
    fprintf(stderr, "%-28s %8s %-10s %14s %10s %7s %14s\n", "layer", "numel",
            "method", "trace", "rel.se", "samples", "top eig");
    for (int i = 0; i < s->n_layers; i++) {
        const bp_sens_layer *l = &s->layers[i];
        double rel = l->trace != 0 ? l->trace_stderr / fabs(l->trace) : 0;
        fprintf(stderr, "%-28s %8lld %-10s %14.6g %10.2e %7lld %14.6g\n",
                l->name, (long long)l->numel, l->trace_method, l->trace, rel,
                (long long)l->trace_samples, l->top_eig);
    }
}

int cmd_sensitivity(int argc, char **argv)
{
    enum { O_SEED = 256, O_THREADS, O_BATCH, O_SAMPLES, O_TRACE, O_SCOPE,
           O_TOL, O_MAXS, O_MINS, O_SKETCH, O_EIG, O_EIGTOL, O_EIGIT, O_BITS,
           O_DENS, O_DSTEPS, O_DRUNS, O_JSON, O_CKPT, O_CKEVERY, O_RESUME,
           O_NOINC };
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'},
        {"out", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, O_SEED},
        {"threads", required_argument, NULL, O_THREADS},
        {"batch", required_argument, NULL, O_BATCH},
        {"samples", required_argument, NULL, O_SAMPLES},
        {"trace", required_argument, NULL, O_TRACE},
        {"scope", required_argument, NULL, O_SCOPE},
        {"tol", required_argument, NULL, O_TOL},
        {"max-samples", required_argument, NULL, O_MAXS},
        {"min-samples", required_argument, NULL, O_MINS},
        {"sketch", required_argument, NULL, O_SKETCH},
        {"eig", required_argument, NULL, O_EIG},
        {"eig-tol", required_argument, NULL, O_EIGTOL},
        {"eig-iter", required_argument, NULL, O_EIGIT},
        {"bits", required_argument, NULL, O_BITS},
        {"loss-increase", no_argument, NULL, O_NOINC},
        {"density", required_argument, NULL, O_DENS},
        {"density-steps", required_argument, NULL, O_DSTEPS},
        {"density-runs", required_argument, NULL, O_DRUNS},
        {"json", no_argument, NULL, O_JSON},
        {"checkpoint", required_argument, NULL, O_CKPT},
        {"checkpoint-every", required_argument, NULL, O_CKEVERY},
        {"resume", required_argument, NULL, O_RESUME},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static const char *const scopes[] = {"auto", "block", "global"};
    static const char *const eigs[] = {"lanczos", "power", "none"};
    const char *xpath = NULL, *ypath = NULL, *outpath = NULL, *dpath = NULL;
    const char *ckpath = NULL, *resume = NULL;
    double ck_every = 30;
    int64_t samples = 0, threads = 0, v, dsteps = 100, druns = 1;
    int json = 0, c, choice;
    bp_sens_opts o;
    bp_sens_opts_default(&o);
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': xpath = optarg; break;
        case 'l': ypath = optarg; break;
        case 'o': outpath = optarg; break;
        case O_SEED:
            if (cli_parse_seed("sensitivity", optarg, &o.seed))
                return BP_EXIT_INPUT;
            break;
        case O_THREADS:
            if (cli_parse_int("sensitivity", "--threads", optarg, 1, 1024, &threads))
                return BP_EXIT_INPUT;
            break;
        case O_BATCH:
            if (cli_parse_int("sensitivity", "--batch", optarg, 1, 1 << 20, &o.batch))
                return BP_EXIT_INPUT;
            break;
        case O_SAMPLES:
            if (cli_parse_int("sensitivity", "--samples", optarg, 1, INT64_MAX / 2,
                              &samples))
                return BP_EXIT_INPUT;
            break;
        case O_TRACE:
            if (bp_trace_method_parse(optarg, &o.trace))
                return cli_usage("sensitivity", "%s", bp_errmsg());
            break;
        case O_SCOPE:
            if (parse_choice("--scope (auto, block, global)", optarg, scopes, 3,
                             &choice))
                return BP_EXIT_INPUT;
            o.scope = (bp_trace_scope)choice;
            break;
        case O_TOL:
            if (cli_parse_double("sensitivity", "--tol", optarg, 1e-12, 1.0, &o.tol))
                return BP_EXIT_INPUT;
            break;
        case O_MAXS:
            if (cli_parse_int("sensitivity", "--max-samples", optarg, 2, 1 << 30,
                              &o.max_samples))
                return BP_EXIT_INPUT;
            break;
        case O_MINS:
            if (cli_parse_int("sensitivity", "--min-samples", optarg, 2, 1 << 30,
                              &o.min_samples))
                return BP_EXIT_INPUT;
            break;
        case O_SKETCH:
            if (cli_parse_int("sensitivity", "--sketch", optarg, 1, 1 << 16, &v))
                return BP_EXIT_INPUT;
            o.sketch = (int)v;
            break;
        case O_EIG:
            if (parse_choice("--eig (lanczos, power, none)", optarg, eigs, 3,
                             &choice))
                return BP_EXIT_INPUT;
            o.eig = (bp_eig_method)choice;
            break;
        case O_EIGTOL:
            if (cli_parse_double("sensitivity", "--eig-tol", optarg, 0.0, 1.0, &o.eig_tol))
                return BP_EXIT_INPUT;
            break;
        case O_EIGIT:
            if (cli_parse_int("sensitivity", "--eig-iter", optarg, 1, 100000, &v))
                return BP_EXIT_INPUT;
            o.eig_max_iter = (int)v;
            break;
        case O_BITS:
            if (parse_bits(optarg, &o))
                return BP_EXIT_INPUT;
            break;
        case O_NOINC: o.loss_increase = 1; break;
        case O_DENS: dpath = optarg; break;
        case O_DSTEPS:
            if (cli_parse_int("sensitivity", "--density-steps", optarg, 1, 100000,
                              &dsteps))
                return BP_EXIT_INPUT;
            break;
        case O_DRUNS:
            if (cli_parse_int("sensitivity", "--density-runs", optarg, 1, 10000,
                              &druns))
                return BP_EXIT_INPUT;
            break;
        case O_JSON: json = 1; break;
        case O_CKPT: ckpath = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_CKEVERY:
            if (cli_parse_double("sensitivity", "--checkpoint-every", optarg, 0.0, 1e9, &ck_every))
                return BP_EXIT_INPUT;
            break;
        case 'h': fputs(help, stdout); return BP_EXIT_OK;
        default: return cli_bad_option("sensitivity", "ho:", argc, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage("sensitivity", "expects one MODEL.onnx");
    if (!xpath)
        return cli_usage("sensitivity", "--data is required");
    if (!outpath)
        return cli_usage("sensitivity", "-o SENS.json is required");
    {
        const char *outs[] = {outpath, ckpath};
        const char *ins[] = {argv[optind], xpath, ypath};
        int st = cli_check_outputs(outs, 2, ins, 3);
        if (st)
            return cli_status(st);
    }
    o.threads = cli_sens_workers(threads);
    o.progress = cli_sens_progress;

    int st, rc = BP_EXIT_OK;
    bp_graph *g = NULL;
    bp_sens *s = NULL;
    bp_hessian *h = NULL;
    bp_density *dens = NULL;
    bp_ckpt *ck = NULL;
    cli_data d = {0};
    reader r = {&d};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if ((st = bp_onnx_load(&g, argv[optind])))
        goto out;
    if ((ckpath || resume) &&
        (st = open_checkpoint(&ck, g, xpath, ypath, samples, &o,
                              ckpath ? ckpath : resume, ck_every, resume)))
        goto out;
    o.ckpt = ck;
    if ((st = cli_sensitivity_compute(g, xpath, ypath, samples, &o, &s)))
        goto out;
    if (dpath) {
        if ((st = cli_data_open(&d, g, xpath, ypath, samples)) ||
            (st = cli_data_load_labels(&d)))
            goto out;
        bp_sens_data sd = {xpath, d.count, d.sample_numel, d.labels,
                           read_rows, &r};
        if ((st = bp_hessian_new(&h, g, &sd, o.batch)) ||
            (st = bp_hessian_density(h, &o, (int)druns, (int)dsteps, 1000, &dens)))
            goto out;
    }
    cli_progress_end();
    if ((st = bp_sens_save(s, outpath)))
        goto out;
    if (dens && (st = bp_density_save_csv(dens, dpath)))
        goto out;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) +
                  1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "%s: %lld samples, loss %.6f, %s; %.2f s\n", g->path,
            (long long)s->samples, s->loss,
            ypath ? "labels" : "targets = own top-1 predictions", secs);
    print_summary(s);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "samples", (double)s->samples);
        cJSON_AddNumberToObject(root, "loss", s->loss);
        cJSON_AddStringToObject(root, "stop_reason", s->stop_reason);
        cJSON_AddNumberToObject(root, "seconds", secs);
        cJSON *ls = cJSON_AddArrayToObject(root, "layers");
        for (int i = 0; i < s->n_layers; i++) {
            const bp_sens_layer *l = &s->layers[i];
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", l->name);
            cJSON_AddNumberToObject(e, "trace", l->trace);
            cJSON_AddNumberToObject(e, "stderr", l->trace_stderr);
            cJSON_AddStringToObject(e, "method", l->trace_method);
            if (isfinite(l->top_eig))
                cJSON_AddNumberToObject(e, "top_eigenvalue", l->top_eig);
            else
                cJSON_AddNullToObject(e, "top_eigenvalue");
            cJSON_AddItemToArray(ls, e);
        }
        char *txt = cJSON_PrintUnformatted(root);
        puts(txt);
        free(txt);
        cJSON_Delete(root);
    }
out:
    cli_progress_end();
    if (st)
        rc = cli_status(st);
    bp_density_free(&dens);
    bp_ckpt_free(&ck);
    bp_hessian_free(&h);
    bp_sens_free(&s);
    cli_data_close(&d);
    bp_graph_free(&g);
    return rc;
}
