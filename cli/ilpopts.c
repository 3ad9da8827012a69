/* ilpopts.c - options and loading shared by `bitplan solve` and `bitplan
 * sweep` (see ilpopts.h). */
#include "ilpopts.h"
#include "../sensitivity/estimators.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char ilp_common_help[] =
    "inputs:\n"
    "  --sensitivity SENS.json  per-layer sensitivities (bitplan sensitivity);\n"
    "                    with MODEL.onnx too, layer facts come from the model\n"
    "                    and the file must be this model's (sha256)\n"
    "  --data X.npy [--labels Y.npy] [--save-sensitivity S.json]\n"
    "                    compute the sensitivity on the way (bitplan\n"
    "                    sensitivity's defaults, --seed; --samples N uses\n"
    "                    the first N) and keep it with --save-sensitivity\n"
    "  --trace M         with --data: sensitivity's --trace (auto, exact,\n"
    "                    hutchpp, hutchinson, gn-hutchinson)\n"
    "  --sens-batch N    with --data: samples per sensitivity pass (default:\n"
    "                    automatic, as sensitivity's --batch)\n"
    "  --profile HW      a shipped profile (bops, nvidia-t4, nvidia-a100,\n"
    "                    x86-avx512-vnni, arm-cortex-a76, hawq-v3-resnet18-t4)\n"
    "                    or a path; $BITPLAN_PROFILE_PATH adds directories\n"
    "budgets (any number, all enforced jointly):\n"
    "  --budget size=1.5MiB | size=25% (of the float32 model) | size=8x\n"
    "  --budget latency=0.8ms | latency=60% (of the all-highest-precision\n"
    "                    plan) | latency=2x\n"
    "  --budget bops=3.2G | bops=50% | bops=4x   (BOPs = MACs x w x a bits)\n"
    "choices:\n"
    "  --bits 2,4,8      candidate weight bit-widths (default: every width the\n"
    "                    sensitivity file prices; one value = uniform plan)\n"
    "  --abits LIST|follow  activation bits: by default a = max(w, 8); with a\n"
    "                    list, the smallest listed width >= w (--abits 8 fixes\n"
    "                    8, --abits 4,8 gives W4A4/W8A8); follow: a = w\n"
    "  --metric trace|eig|loss  Omega from the Hessian trace (default), the\n"
    "                    top eigenvalue in its place, or the loss increase\n"
    "                    measured per layer and width beyond first order\n"
    "                    (sensitivity's loss_increase, x2)\n"
    "  --pin NAME=BITS   fix a layer's weight bits (NAME: weight initializer)\n"
    "  --bits-range NAME=LO:HI   bound a layer's weight bits\n"
    "  --tie A,B,...     layers that must share their bits (e.g. a residual\n"
    "                    downsample conv and its main-branch conv)\n"
    "  --keep-first-last BITS   pin the first and the last layer\n"
    "  --batch N         batch size of the latency model (default 1)\n"
    "solver:\n"
    "  --time-limit S    stop after S seconds with the best plan found\n"
    "  --gap G           stop once the relative gap is <= G (default 0:\n"
    "                    proven optimum)\n"
    "  --verbose         solver progress on stderr\n"
    "  --seed N          seed of the sensitivity estimator (the solve is\n"
    "                    deterministic)\n";

void ilp_args_init(ilp_args *a)
{
    memset(a, 0, sizeof *a);
    bp_alloc_opts_default(&a->ao);
    bp_mckp_opts_default(&a->mo);
    a->trace = -1;
    a->ao.ranges = a->ranges;
    a->ao.ties = a->ties;
}

void ilp_args_free(ilp_args *a)
{
    for (int i = 0; i < a->ao.n_ties; i++) {
        free(a->tie_buf[i]);
        free(a->tie_names[i]);
    }
    a->ao.n_ties = 0;
}

/* "2,4,8" into a bit mask of widths 1..16. */
static int parse_bits(const char *cmd, const char *opt, const char *s,
                      unsigned *mask)
{
    unsigned m = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long b = strtol(p, &end, 10);
        if (end == p || errno || b < 1 || b > 16 || (*end && *end != ',')) {
            cli_usage(cmd, "%s expects bit-widths 1..16 separated by commas "
                      "(as 2,4,8), got '%s'", opt, s);
            return -1;
        }
        m |= 1u << b;
        p = *end ? end + 1 : end;
        if (*end && !*p) {
            cli_usage(cmd, "%s: trailing comma in '%s'", opt, s);
            return -1;
        }
    }
    if (!m) {
        cli_usage(cmd, "%s expects at least one bit-width", opt);
        return -1;
    }
    *mask = m;
    return 0;
}

static int parse_small_int(const char *cmd, const char *opt, const char *s,
                           int lo, int hi, int *out)
{
    int64_t v;
    if (cli_parse_int(cmd, opt, s, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

int ilp_check_outputs(const ilp_args *a, const char *out)
{
    const char *outs[] = {out, a->save_sens};
    const char *ins[] = {a->model, a->sens_path, a->data, a->labels,
                         a->profile};
    return cli_check_outputs(outs, 2, ins, 5);
}

int ilp_args_option(const char *cmd, ilp_args *a, int c, const char *arg)
{
    switch (c) {
    case ILP_OPT_SENS: a->sens_path = arg; return 1;
    case ILP_OPT_DATA: a->data = arg; return 1;
    case ILP_OPT_LABELS: a->labels = arg; return 1;
    case ILP_OPT_SAVE_SENS: a->save_sens = arg; return 1;
    case ILP_OPT_PROFILE: a->profile = arg; return 1;
    case ILP_OPT_JSON: a->json = 1; return 1;
    case ILP_OPT_VERBOSE: a->verbose = 1; a->mo.verbose = 1; return 1;
    case ILP_OPT_SEED:
        return cli_parse_seed(cmd, arg, &a->seed) ? -1 : 1;
    case ILP_OPT_SAMPLES:
        return cli_parse_int(cmd, "--samples", arg, 1, INT64_MAX / 2,
                             &a->samples) ? -1 : 1;
    case ILP_OPT_SENS_BATCH:
        return cli_parse_int(cmd, "--sens-batch", arg, 1, 1 << 20,
                             &a->sens_batch) ? -1 : 1;
    case ILP_OPT_TRACE: {
        bp_trace_method m;
        if (bp_trace_method_parse(arg, &m)) {
            cli_usage(cmd, "%s", bp_errmsg());
            return -1;
        }
        a->trace = (int)m;
        return 1;
    }
    case ILP_OPT_BUDGET:
        if (a->n_budgets >= BP_MCKP_MAX_BUDGETS) {
            cli_usage(cmd, "at most %d --budget options", BP_MCKP_MAX_BUDGETS);
            return -1;
        }
        if (bp_budget_parse(arg, &a->budgets[a->n_budgets])) {
            cli_usage(cmd, "%s", bp_errmsg());
            return -1;
        }
        a->n_budgets++;
        return 1;
    case ILP_OPT_BITS:
        return parse_bits(cmd, "--bits", arg, &a->ao.wbits) ? -1 : 1;
    case ILP_OPT_ABITS:
        if (!strcmp(arg, "follow") || !strcmp(arg, "w")) {
            a->ao.abits_follow = 1;
            return 1;
        }
        a->ao.abits_follow = 0;
        return parse_bits(cmd, "--abits", arg, &a->ao.abits) ? -1 : 1;
    case ILP_OPT_METRIC:
        if (!strcmp(arg, "trace"))
            a->ao.metric = BP_METRIC_TRACE;
        else if (!strcmp(arg, "eig"))
            a->ao.metric = BP_METRIC_EIG;
        else if (!strcmp(arg, "loss"))
            a->ao.metric = BP_METRIC_LOSS;
        else {
            cli_usage(cmd, "--metric expects trace, eig or loss, got '%s'",
                      arg);
            return -1;
        }
        return 1;
    case ILP_OPT_PIN:
    case ILP_OPT_RANGE: {
        const char *opt = c == ILP_OPT_PIN ? "--pin" : "--bits-range";
        if (a->ao.n_ranges >= ILP_MAX_ITEMS) {
            cli_usage(cmd, "at most %d --pin and --bits-range options",
                      ILP_MAX_ITEMS);
            return -1;
        }
        const char *eq = strrchr(arg, '=');
        bp_alloc_range *r = &a->ranges[a->ao.n_ranges];
        if (!eq || eq == arg) {
            cli_usage(cmd, "%s expects NAME=%s, got '%s'", opt,
                      c == ILP_OPT_PIN ? "BITS" : "LO:HI", arg);
            return -1;
        }
        /* the name is kept in place: argv outlives the command */
        static char names[ILP_MAX_ITEMS][512];
        size_t nl = (size_t)(eq - arg);
        if (nl >= sizeof names[0]) {
            cli_usage(cmd, "%s: layer name too long", opt);
            return -1;
        }
        memcpy(names[a->ao.n_ranges], arg, nl);
        names[a->ao.n_ranges][nl] = '\0';
        r->name = names[a->ao.n_ranges];
        if (c == ILP_OPT_PIN) {
            if (parse_small_int(cmd, "--pin", eq + 1, 1, 16, &r->lo))
                return -1;
            r->hi = r->lo;
            r->is_pin = 1;
        } else {
            char lo[16];
            const char *colon = strchr(eq + 1, ':');
            if (!colon || (size_t)(colon - eq - 1) >= sizeof lo) {
                cli_usage(cmd, "--bits-range expects NAME=LO:HI, got '%s'",
                          arg);
                return -1;
            }
            memcpy(lo, eq + 1, (size_t)(colon - eq - 1));
            lo[colon - eq - 1] = '\0';
            if (parse_small_int(cmd, "--bits-range", lo, 1, 16, &r->lo) ||
                parse_small_int(cmd, "--bits-range", colon + 1, 1, 16, &r->hi))
                return -1;
            if (r->lo > r->hi) {
                cli_usage(cmd, "--bits-range %s: LO is above HI", arg);
                return -1;
            }
        }
        a->ao.n_ranges++;
        return 1;
    }
    case ILP_OPT_TIE: {
        if (a->ao.n_ties >= ILP_MAX_ITEMS) {
            cli_usage(cmd, "at most %d --tie options", ILP_MAX_ITEMS);
            return -1;
        }
        int t = a->ao.n_ties, n = 1;
        for (const char *p = arg; *p; p++)
            n += *p == ',';
        char *buf = strdup(arg);
        const char **names = malloc((size_t)n * sizeof *names);
        if (!buf || !names) {
            free(buf);
            free(names);
            cli_error("out of memory");
            return -1;
        }
        int k = 0;
        for (char *p = buf, *q; p; p = q) {
            q = strchr(p, ',');
            if (q)
                *q++ = '\0';
            names[k++] = p;
            if (!*p) {
                free(buf);
                free(names);
                cli_usage(cmd, "--tie expects layer names separated by commas "
                          "(A,B,...), got '%s'", arg);
                return -1;
            }
        }
        a->tie_buf[t] = buf;
        a->tie_names[t] = names;
        a->ties[t].n = k;
        a->ties[t].names = names;
        a->ao.n_ties++;
        return 1;
    }
    case ILP_OPT_KFL:
        return parse_small_int(cmd, "--keep-first-last", arg, 1, 16,
                               &a->ao.keep_first_last) ? -1 : 1;
    case ILP_OPT_TIME:
        return cli_parse_double(cmd, "--time-limit", arg, 1e-3, 1e7,
                            &a->mo.time_limit_s) ? -1 : 1;
    case ILP_OPT_GAP:
        return cli_parse_double(cmd, "--gap", arg, 0, 1, &a->mo.rel_gap) ? -1 : 1;
    case ILP_OPT_BATCH: {
        int64_t b;
        if (cli_parse_int(cmd, "--batch", arg, 1, 1 << 20, &b))
            return -1;
        a->ao.batch = b;
        return 1;
    }
    }
    return 0;
}

void ilp_ctx_free(ilp_ctx *c)
{
    bp_alloc_free(&c->alloc);
    free(c->facts);
    c->facts = NULL;
    bp_graph_free(&c->graph);
    bp_sens_free(&c->sens);
    bp_profile_free(&c->prof);
}

int ilp_ctx_load(const char *cmd, const ilp_args *a, ilp_ctx *c)
{
    int st;
    memset(c, 0, sizeof *c);
    if (!a->profile)
        return cli_usage(cmd, "--profile is required (a shipped profile such "
                         "as nvidia-t4 or bops, or a path)");
    if (!a->sens_path) {
        if (!a->model || !a->data)
            return cli_usage(cmd, "expects --sensitivity SENS.json (or "
                             "MODEL.onnx --data X.npy)");
        /* sensitivity on the way, with `bitplan sensitivity`'s defaults */
        bp_model_facts model = {0, 0, 0};
        int n = 0;
        bp_sens_opts so;
        bp_sens_opts_default(&so);
        so.seed = a->seed;
        so.loss_increase = a->ao.metric == BP_METRIC_LOSS;
        if (a->trace >= 0)
            so.trace = (bp_trace_method)a->trace;
        so.batch = a->sens_batch;
        so.progress = cli_sens_progress;
        so.threads = cli_sens_workers(0);
        if ((st = bp_profile_open(&c->prof, a->profile)) ||
            (st = bp_onnx_load(&c->graph, a->model)))
            goto fail;
        st = cli_sensitivity_compute(c->graph, a->data, a->labels, a->samples,
                                     &so, &c->sens);
        cli_progress_end();
        if (st ||
            (a->save_sens && (st = bp_sens_save(c->sens, a->save_sens))) ||
            (st = bp_layer_facts_from_graph(c->graph, &c->facts, &n, &model)))
            goto fail;
        c->model_path = c->graph->path;
        c->model_sha256 = c->graph->hash;
        c->alloc_src = a->model;
        c->n_facts = n;
        c->has_model = 1;
        c->model = model;
        if ((st = bp_alloc_new(&c->alloc, c->sens, a->model, c->facts, n,
                               &model, c->prof, &a->ao)))
            goto fail;
        return BP_EXIT_OK;
    }
    if (a->data || a->labels || a->save_sens || a->trace >= 0 ||
        a->sens_batch)
        return cli_usage(cmd, "%s goes with MODEL.onnx --data (computing the "
                         "sensitivity), not with --sensitivity",
                         a->data ? "--data" : a->labels ? "--labels"
                         : a->save_sens ? "--save-sensitivity"
                         : a->trace >= 0 ? "--trace" : "--sens-batch");
    bp_model_facts model = {0, 0, 0};
    int n = 0;
    if ((st = bp_profile_open(&c->prof, a->profile)) ||
        (st = bp_sens_load(&c->sens, a->sens_path)))
        goto fail;
    c->model_path = c->sens->model_path;
    c->model_sha256 = c->sens->model_sha256;
    if (a->model) {
        if ((st = bp_onnx_load(&c->graph, a->model)) ||
            (st = bp_layer_facts_from_graph(c->graph, &c->facts, &n, &model)))
            goto fail;
        if (c->sens->model_sha256[0] &&
            strcmp(c->sens->model_sha256, c->graph->hash) != 0) {
            st = bp_fail(BP_EINVAL, "%s: model.sha256 %.12s... is not %s's "
                         "(%.12s...): the file was made from another model",
                         a->sens_path, c->sens->model_sha256, a->model,
                         c->graph->hash);
            goto fail;
        }
        c->model_path = c->graph->path;
        c->model_sha256 = c->graph->hash;
    }
    c->alloc_src = a->sens_path;
    c->n_facts = n;
    c->has_model = a->model != NULL;
    c->model = model;
    if ((st = bp_alloc_new(&c->alloc, c->sens, a->sens_path, c->facts, n,
                           a->model ? &model : NULL, c->prof, &a->ao)))
        goto fail;
    return BP_EXIT_OK;
fail:
    ilp_ctx_free(c);
    return cli_status(st);
}

int ilp_hint_abits(const ilp_ctx *c, const ilp_args *a, const double *caps,
                   int st)
{
    if (st != BP_EINFEASIBLE || a->ao.abits || a->ao.abits_follow)
        return st;
    int priced = 0;
    bp_budget_kind kinds[BP_MCKP_MAX_BUDGETS];
    const char *texts[BP_MCKP_MAX_BUDGETS];
    for (int j = 0; j < a->n_budgets; j++) {
        kinds[j] = a->budgets[j].kind;
        texts[j] = a->budgets[j].text;
        priced |= kinds[j] == BP_BUDGET_LATENCY || kinds[j] == BP_BUDGET_BOPS;
    }
    if (!priced)
        return st;
    /* activations are 8-bit unless asked: say so where 4-bit ones would
     * fit, the cheapest way to a tight latency on an int4-capable target */
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", bp_errmsg());
    bp_alloc_opts ao = a->ao;
    ao.abits = (1u << 4) | (1u << 8);
    bp_alloc *alt = NULL;
    bp_alloc_result r;
    memset(&r, 0, sizeof r);
    int fits = bp_alloc_new(&alt, c->sens, c->alloc_src, c->facts, c->n_facts,
                            c->has_model ? &c->model : NULL, c->prof,
                            &ao) == BP_OK &&
               bp_alloc_solve_caps(alt, a->n_budgets, kinds, caps, texts,
                                   &a->mo, &r) == BP_OK;
    bp_alloc_result_free(&r);
    bp_alloc_free(&alt);
    if (fits)
        return bp_fail(st, "%s; activations are 8-bit by default, and with "
                       "--abits 4,8 (4-bit activations for layers of at most "
                       "4-bit weights) a plan meets the budgets", msg);
    return bp_fail(st, "%s", msg);
}

static void fmt_size(char *b, size_t n, double v)
{
    bp_budget_format(b, n, BP_BUDGET_SIZE, v, "", 4);
}

void ilp_print_summary(const ilp_ctx *c, const ilp_args *a,
                       const bp_alloc_result *r, const double *values)
{
    const bp_alloc *al = c->alloc;
    int lat = bp_alloc_has_latency(al);
    char b1[64], b2[64], b3[64];
    fprintf(stderr, "%s on %s: %d layers in %d groups, %d choices kept "
            "(%d dominated dropped)\n", c->model_path && *c->model_path
            ? c->model_path : a->sens_path, c->prof->name,
            r->n_layers, r->n_groups, r->n_choices, r->n_dropped);
    fprintf(stderr, "%-32s %5s %10s %10s %12s %12s\n", "layer", "bits",
            "bytes", "latency", "BOPs", "Omega");
    for (int i = 0; i < r->n_layers; i++) {
        char bits[16];
        snprintf(bits, sizeof bits, "w%da%d", r->w_bits[i], r->a_bits[i]);
        fmt_size(b1, sizeof b1, r->bytes[i]);
        bp_budget_format(b2, sizeof b2, BP_BUDGET_LATENCY, r->latency_s[i],
                         "", 3);
        bp_budget_format(b3, sizeof b3, BP_BUDGET_BOPS, r->bops[i], "", 4);
        fprintf(stderr, "%-32s %5s %10s %10s %12s %12.4g\n",
                bp_alloc_layer_name(al, i), bits, b1, lat ? b2 : "-", b3,
                r->omega[i]);
    }
    fmt_size(b1, sizeof b1, r->size_bytes);
    bp_budget_format(b2, sizeof b2, BP_BUDGET_LATENCY, r->total_latency_s, "",
                     4);
    bp_budget_format(b3, sizeof b3, BP_BUDGET_BOPS, r->total_bops, "", 4);
    fprintf(stderr, "%-32s %5s %10s %10s %12s %12.4g\n", "total", "", b1,
            lat ? b2 : "-", b3, r->objective);
    double fb = bp_alloc_float_bytes(al);
    fmt_size(b2, sizeof b2, fb);
    fprintf(stderr, "size %s = %.1f%% of the float32 model (%s), %.2fx "
            "smaller\n", b1, 100 * r->size_bytes / fb, b2,
            fb / r->size_bytes);
    for (int j = 0; j < a->n_budgets; j++) {
        const bp_budget *b = &a->budgets[j];
        double total = b->kind == BP_BUDGET_SIZE ? r->size_bytes
                     : b->kind == BP_BUDGET_LATENCY ? r->total_latency_s
                                                    : r->total_bops;
        const char *unit = b->form == BP_BUDGET_ABS ? b->unit : "";
        bp_budget_format(b1, sizeof b1, b->kind, total, unit, 4);
        bp_budget_format(b2, sizeof b2, b->kind, values[j], unit, 4);
        fprintf(stderr, "budget %-22s %s of %s (%.1f%%) %s\n", b->text, b1, b2,
                100 * total / values[j],
                total <= values[j] * (1 + 1e-12) ? "met" : "NOT MET");
    }
    fprintf(stderr, "solver: %s, objective %.6g, bound %.6g, gap %.3g, "
            "%.3f s\n", r->status, r->objective, r->bound, r->gap, r->seconds);
}
