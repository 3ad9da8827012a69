/* cmd_sweep.c - `bitplan sweep`: the Pareto front of sensitivity against
 * one cost axis.  N budgets from the smallest reachable value to that of
 * the best plan under the other budgets (beyond it every point would
 * repeat that plan), one exact solve each on the same allocation problem, written as
 * pareto.csv, pareto.svg and one plan per point.
 *
 * The plot is written by hand as SVG: Debian's C plotting libraries either
 * draw primitives only (cairo: we would still write every axis, tick and
 * label) or are unmaintained (GNU plotutils' libplot, last released 2009),
 * and the plot is small, so no dependency is worth it. */
#include "ilpopts.h"
#include "../src/qrun.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char help[] =
    "usage: bitplan sweep [MODEL.onnx] --sensitivity SENS.json --profile HW\n"
    "                     --axis size|latency|bops [--points N] -o DIR\n"
    "                     [--budget KIND=VALUE ...] [--json] [options]\n\n"
    "Solves N budgets of one kind, evenly spaced from the smallest total any\n"
    "plan can reach to the total of the best plan under the other --budget\n"
    "options (with none, the plan no budget constrains; on a CPU profile\n"
    "2-bit kernels can be the slowest: a latency sweep stops at the best\n"
    "plan's latency, not at theirs); the other budgets stay enforced at\n"
    "every point.  Writes into DIR (created if missing):\n"
    "  pareto.csv   one row per point: budget (bytes, seconds or BOPs),\n"
    "               objective, size_bytes, latency_s, bops, status, gap,\n"
    "               plan (its file), then w:NAME and a:NAME, the weight and\n"
    "               activation bits of every layer; infeasible points (other\n"
    "               budgets) have empty fields; when no point is feasible,\n"
    "               nothing is written and the exit code is 1\n"
    "  pareto.svg   objective against the axis, every plan marked\n"
    "  plan_NNN.json  the plan of point NNN (bitplan run --plan ...)\n"
    "The objective never increases as the budget loosens (each point is a\n"
    "proven optimum unless --time-limit or --gap cut it short).\n"
    "Every point is solved before anything is written, then each file is\n"
    "written atomically (plans, then pareto.csv and pareto.svg): an\n"
    "interrupted sweep leaves only complete files.\n\n"
    "  --axis KIND       size, latency or bops\n"
    "  --points N        number of budgets, 1..1000 (default 10)\n"
    "  -o DIR            output directory\n"
    "  --validate        run every plan in the integer executor (bitplan run)\n"
    "                    on MODEL.onnx with --data X.npy --labels Y.npy and\n"
    "                    add the measured figures to pareto.csv (float_accuracy,\n"
    "                    int_accuracy, float_loss, int_loss, agreement,\n"
    "                    measured_size_bytes and, after the bit columns,\n"
    "                    measured_latency_s: batch 1, per sample, median of\n"
    "                    --repeat runs), pareto_accuracy.svg (integer accuracy\n"
    "                    against the axis) and pareto_latency.svg (integer\n"
    "                    accuracy against measured latency: the measured\n"
    "                    Pareto curve).  With --sensitivity, --data is the\n"
    "                    validation set; without it, the same data also gives\n"
    "                    the sensitivity\n"
    "  --repeat N        timed runs per plan for --validate, at least N and\n"
    "                    0.1 s of them (default 10; 0: do not time, and write\n"
    "                    no pareto_latency.svg)\n"
    "  --threads N       integer executor threads for --validate (default:\n"
    "                    all CPUs)\n"
    "  --calib C.npy     activation calibration samples for --validate\n"
    "                    (default: the first 256 samples of --data)\n"
    "  --json            print {\"axis\",\"points\":[{\"budget\",\"objective\",\n"
    "                    \"size_bytes\",\"latency_s\",\"bops\",\"status\",\"gap\",\n"
    "                    \"plan\"}]} on stdout\n\n";

typedef struct point {
    double budget;
    int ok;                    /* 0: infeasible under the other budgets */
    bp_alloc_result r;
    char plan[32];             /* file name in DIR */
    bp_qrun_result q;          /* measured by --validate */
    int validated;
} point;

/* What a plot draws against the axis. */
enum { Y_OBJECTIVE, Y_INT_ACCURACY };
/* ... and along x: the sweep's axis (the plans' predicted totals) or the
 * batch-1 latency --validate measured. */
enum { X_AXIS, X_MEASURED_LATENCY };

static double y_of(const point *p, int which)
{
    return which == Y_OBJECTIVE ? p->r.objective : 100 * p->q.int_accuracy;
}

static const char *axis_label(bp_budget_kind k)
{
    return k == BP_BUDGET_SIZE ? "model size"
         : k == BP_BUDGET_LATENCY ? "predicted latency" : "bit operations per sample";
}

static double total_of(const bp_alloc_result *r, bp_budget_kind k)
{
    return k == BP_BUDGET_SIZE ? r->size_bytes
         : k == BP_BUDGET_LATENCY ? r->total_latency_s : r->total_bops;
}

static double x_of(const point *p, bp_budget_kind axis, int xw)
{
    return xw == X_AXIS ? total_of(&p->r, axis) : p->q.latency_s;
}

/* Whether point p has both coordinates of the plot. */
static int drawn(const point *p, bp_budget_kind axis, int xw, int which)
{
    return p->ok && (p->validated || (which == Y_OBJECTIVE && xw == X_AXIS)) &&
           isfinite(x_of(p, axis, xw));
}

static int by_x(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The unit bp_budget_format picks for v, and its scale. */
static double unit_of(bp_budget_kind k, double v, char *unit, size_t n)
{
    char buf[64];
    bp_budget_format(buf, sizeof buf, k, v, "", 17);
    const char *p = buf;
    while (*p && (strchr("0123456789.-+", *p) ||
                  ((*p == 'e' || *p == 'E') && p[1] &&
                   strchr("0123456789+-", p[1]))))
        p++;
    size_t len = strlen(p);
    if (len >= n)
        len = n - 1;
    memcpy(unit, p, len);
    unit[len] = '\0';
    double shown = strtod(buf, NULL);
    return shown != 0 ? v / shown : 1;
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about `want`
 * ticks over span. */
static double nice_step(double span, int want)
{
    double raw = span / want, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++)
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
}

static int write_svg(const char *path, bp_budget_kind axis, const point *pt,
                     int n, const char *title, int xw, int which)
{
    /* measured latencies need not rise with the budget: the line joins
     * the points in x order (pairs of x and index, sorted) */
    double (*ord)[2] = malloc(sizeof *ord * (size_t)(n ? n : 1));
    if (!ord)
        return bp_fail(BP_ENOMEM, "out of memory");
    int no = 0;
    for (int i = 0; i < n; i++)
        if (drawn(&pt[i], axis, xw, which)) {
            ord[no][0] = x_of(&pt[i], axis, xw);
            ord[no++][1] = i;
        }
    qsort(ord, (size_t)no, sizeof *ord, by_x);
    const bp_budget_kind xk = xw == X_AXIS ? axis : BP_BUDGET_LATENCY;
    const double W = 760, H = 500, L = 100, R = 30, T = 60, B = 70;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY,
           ymax = -INFINITY;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!drawn(&pt[i], axis, xw, which))
            continue;
        double x = x_of(&pt[i], axis, xw), y = y_of(&pt[i], which);
        xmin = fmin(xmin, x);
        xmax = fmax(xmax, x);
        ymin = fmin(ymin, y);
        ymax = fmax(ymax, y);
        m++;
    }
    char unit[16];
    double scale = m ? unit_of(xk, xmax, unit, sizeof unit) : 1;
    if (!m) {
        xmin = ymin = 0;
        xmax = ymax = 1;
        unit[0] = '\0';
    }
    int logy = which == Y_OBJECTIVE && m && ymin > 0 && ymax / ymin > 50;
    double y0, y1, x0 = xmin / scale, x1 = xmax / scale;
    if (x1 - x0 < 1e-12 * fmax(1, fabs(x1))) {
        x0 -= fmax(fabs(x0) * 0.05, 0.5);
        x1 += fmax(fabs(x1) * 0.05, 0.5);
    }
    double xs = nice_step(x1 - x0, 6);
    x0 = floor(x0 / xs) * xs;
    x1 = ceil(x1 / xs) * xs;
    if (logy) {
        y0 = floor(log10(ymin));
        y1 = ceil(log10(ymax));
        if (y1 <= y0)
            y1 = y0 + 1;
    } else {
        y0 = ymin;
        y1 = ymax;
        if (y1 - y0 < 1e-300 + 1e-12 * fabs(y1)) {
            y0 -= fmax(fabs(y0) * 0.05, 1e-12);
            y1 += fmax(fabs(y1) * 0.05, 1e-12);
        }
        double s = nice_step(y1 - y0, 6);
        y0 = floor(y0 / s) * s;
        y1 = ceil(y1 / s) * s;
    }
    double pw = W - L - R, ph = H - T - B;
#define PX(x) (L + ((x) - x0) / (x1 - x0) * pw)
#define PY(y) (T + ph - (((logy ? log10(y) : (y)) - y0) / (y1 - y0)) * ph)
    bp_outfile *of = NULL;
    int st = bp_outfile_open(&of, path);
    if (st) {
        free(ord);
        return st;
    }
    FILE *f = bp_outfile_stream(of);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
               "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
               "height=\"%g\" viewBox=\"0 0 %g %g\" font-family=\"sans-serif\" "
               "font-size=\"13\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H, W, H);
    fprintf(f, "<text x=\"%g\" y=\"28\" text-anchor=\"middle\" "
               "font-size=\"15\">", W / 2);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    /* grid and ticks */
    fprintf(f, "<g stroke=\"#ddd\" stroke-width=\"1\">\n");
    for (double x = x0; x <= x1 + xs * 1e-9; x += xs)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%g\" x2=\"%.2f\" y2=\"%g\"/>\n",
                PX(x), T, PX(x), T + ph);
    double ys = logy ? 1 : nice_step(y1 - y0, 6);
    for (double y = y0; y <= y1 + ys * 1e-9; y += ys) {
        double py = T + ph - (y - y0) / (y1 - y0) * ph;
        fprintf(f, "<line x1=\"%g\" y1=\"%.2f\" x2=\"%g\" y2=\"%.2f\"/>\n", L,
                py, L + pw, py);
    }
    fprintf(f, "</g>\n<g text-anchor=\"middle\">\n");
    for (double x = x0; x <= x1 + xs * 1e-9; x += xs)
        fprintf(f, "<text x=\"%.2f\" y=\"%g\">%.4g</text>\n", PX(x),
                T + ph + 20, fabs(x) < xs * 1e-9 ? 0 : x);
    fprintf(f, "</g>\n<g text-anchor=\"end\">\n");
    for (double y = y0; y <= y1 + ys * 1e-9; y += ys) {
        double py = T + ph - (y - y0) / (y1 - y0) * ph;
        if (logy)
            fprintf(f, "<text x=\"%g\" y=\"%.2f\">1e%d</text>\n", L - 8,
                    py + 4, (int)lround(y));
        else
            fprintf(f, "<text x=\"%g\" y=\"%.2f\">%.4g</text>\n", L - 8,
                    py + 4, fabs(y) < ys * 1e-9 ? 0 : y);
    }
    fprintf(f, "</g>\n");
    /* axes and labels */
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" "
               "fill=\"none\" stroke=\"black\"/>\n", L, T, pw, ph);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">%s (%s)"
               "</text>\n", L + pw / 2, H - 22,
            xw == X_AXIS ? axis_label(axis) : "measured latency per sample, batch 1",
            *unit ? unit : "count");
    fprintf(f, "<text x=\"22\" y=\"%g\" text-anchor=\"middle\" "
               "transform=\"rotate(-90 22 %g)\">%s%s</text>\n", T + ph / 2,
            T + ph / 2, which == Y_OBJECTIVE
                ? "objective: summed Omega (predicted loss increase)"
                : "integer-executor top-1 accuracy (%)",
            logy ? ", log scale" : "");
    /* the front: a line through the plans in axis order, each marked */
    if (m) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" "
                   "stroke-width=\"1.5\" points=\"");
        for (int j = 0; j < no; j++) {
            const point *p = &pt[(int)ord[j][1]];
            fprintf(f, "%.2f,%.2f ", PX(x_of(p, axis, xw) / scale),
                    PY(y_of(p, which)));
        }
        fprintf(f, "\"/>\n<g fill=\"#1f77b4\" stroke=\"white\">\n");
        for (int j = 0; j < no; j++) {
            const point *p = &pt[(int)ord[j][1]];
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4.5\"><title>"
                       "%s: %.6g, %s %.6g</title></circle>\n",
                    PX(x_of(p, axis, xw) / scale), PY(y_of(p, which)),
                    p->plan, x_of(p, axis, xw) / scale,
                    which == Y_OBJECTIVE ? "objective" : "accuracy %",
                    y_of(p, which));
        }
        fprintf(f, "</g>\n");
    }
    fprintf(f, "</svg>\n");
#undef PX
#undef PY
    free(ord);
    return bp_outfile_commit(&of);
}

static int write_csv(const char *path, const ilp_ctx *c, const point *pt,
                     int n, int validate)
{
    bp_outfile *of = NULL;
    int st = bp_outfile_open(&of, path);
    if (st)
        return st;
    FILE *f = bp_outfile_stream(of);
    int nl = bp_alloc_n_layers(c->alloc);
    fputs("budget,objective,size_bytes,latency_s,bops,status,gap,plan", f);
    if (validate)
        fputs(",float_accuracy,int_accuracy,float_loss,int_loss,agreement,"
              "measured_size_bytes", f);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < nl; i++) {
            const char *name = bp_alloc_layer_name(c->alloc, i);
            /* names are ONNX identifiers; quote any with CSV specials */
            if (strpbrk(name, ",\"\n")) {
                fprintf(f, ",\"%s:", pass ? "a" : "w");
                for (const char *p = name; *p; p++)
                    fprintf(f, *p == '"' ? "\"\"" : "%c", *p);
                fputc('"', f);
            } else {
                fprintf(f, ",%s:%s", pass ? "a" : "w", name);
            }
        }
    /* added after the bit columns, so that no column moves */
    if (validate)
        fputs(",measured_latency_s", f);
    fputc('\n', f);
    for (int k = 0; k < n; k++) {
        const bp_alloc_result *r = &pt[k].r;
        fprintf(f, "%.17g", pt[k].budget);
        if (!pt[k].ok) {
            fputs(",,,,,infeasible,,", f);
            for (int i = 0; i < 2 * nl + (validate ? 7 : 0); i++)
                fputc(',', f);
            fputc('\n', f);
            continue;
        }
        fprintf(f, ",%.17g,%.17g,", r->objective, r->size_bytes);
        if (!isnan(r->total_latency_s))
            fprintf(f, "%.17g", r->total_latency_s);
        fprintf(f, ",%.17g,%s,%.17g,%s", r->total_bops, r->status, r->gap,
                pt[k].plan);
        if (validate) {
            const bp_qrun_result *q = &pt[k].q;
            fprintf(f, ",%.17g,%.17g,%.17g,%.17g,%.17g,%lld",
                    q->float_accuracy, q->int_accuracy, q->float_loss,
                    q->int_loss, q->agreement, (long long)q->size_bytes);
        }
        for (int i = 0; i < nl; i++)
            fprintf(f, ",%d", r->w_bits[i]);
        for (int i = 0; i < nl; i++)
            fprintf(f, ",%d", r->a_bits[i]);
        if (validate) {
            fputc(',', f);
            if (isfinite(pt[k].q.latency_s))
                fprintf(f, "%.17g", pt[k].q.latency_s);
        }
        fputc('\n', f);
    }
    return bp_outfile_commit(&of);
}

static int make_dir(const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) == 0) {
        if (!S_ISDIR(sb.st_mode))
            return bp_fail(BP_EIO, "%s: exists and is not a directory", dir);
        return BP_OK;
    }
    if (mkdir(dir, 0777) != 0)
        return bp_fail(BP_EIO, "%s: cannot create: %s", dir, strerror(errno));
    return BP_OK;
}

int cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {
        ILP_COMMON_OPTIONS,
        {"axis", required_argument, NULL, 'a'},
        {"points", required_argument, NULL, 'n'},
        {"output", required_argument, NULL, 'o'},
        {"validate", no_argument, NULL, 'v'},
        {"calib", required_argument, NULL, 'c'},
        {"repeat", required_argument, NULL, 'r'},
        {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    ilp_args a;
    ilp_ctx ctx;
    const char *dir = NULL, *cpath = NULL, *vx = NULL, *vy = NULL;
    int axis = -1, validate = 0, c, rc = BP_EXIT_OK, st = BP_OK;
    cli_qdata qd = {0};
    bp_qrun *qr = NULL;
    int64_t npts = 10, repeat = 10, threads = 0;
    int timing_opt = 0;
    ilp_args_init(&a);
    memset(&ctx, 0, sizeof ctx);
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        int h = ilp_args_option("sweep", &a, c, optarg);
        if (h < 0) {
            ilp_args_free(&a);
            return BP_EXIT_INPUT;
        }
        if (h)
            continue;
        switch (c) {
        case 'a':
            for (int k = 0; k < BP_BUDGET_KINDS; k++)
                if (!strcmp(optarg, bp_budget_kind_name((bp_budget_kind)k)))
                    axis = k;
            if (axis < 0) {
                ilp_args_free(&a);
                return cli_usage("sweep", "--axis expects size, latency or "
                                 "bops, got '%s'", optarg);
            }
            break;
        case 'n':
            if (cli_parse_int("sweep", "--points", optarg, 1, 1000, &npts)) {
                ilp_args_free(&a);
                return BP_EXIT_INPUT;
            }
            break;
        case 'o': {
            /* "out/" names out: paths below are built as DIR/NAME */
            size_t len = strlen(optarg);
            while (len > 1 && optarg[len - 1] == '/')
                optarg[--len] = '\0';
            dir = optarg;
            break;
        }
        case 'v': validate = 1; break;
        case 'c': cpath = optarg; break;
        case 'r':
        case 't':
            timing_opt = 1;
            if (cli_parse_int("sweep", c == 'r' ? "--repeat" : "--threads",
                              optarg, c == 'r' ? 0 : 1,
                              c == 'r' ? 1000000 : 64,
                              c == 'r' ? &repeat : &threads)) {
                ilp_args_free(&a);
                return BP_EXIT_INPUT;
            }
            break;
        case 'h':
            fputs(help, stdout);
            fputs(ilp_common_help, stdout);
            ilp_args_free(&a);
            return BP_EXIT_OK;
        default:
            ilp_args_free(&a);
            return cli_bad_option("sweep", "ho:", argc, argv);
        }
    }
    if (optind < argc - 1 || axis < 0 || !dir) {
        ilp_args_free(&a);
        return cli_usage("sweep", optind < argc - 1
                         ? "expects at most one MODEL.onnx"
                         : axis < 0 ? "--axis size|latency|bops is required"
                                    : "-o DIR is required");
    }
    if (optind == argc - 1)
        a.model = argv[optind];
    for (int j = 0; j < a.n_budgets; j++)
        if ((int)a.budgets[j].kind == axis) {
            ilp_args_free(&a);
            return cli_usage("sweep", "--budget %s: the sweep varies this "
                             "kind itself (--axis %s)", a.budgets[j].text,
                             bp_budget_kind_name((bp_budget_kind)axis));
        }
    if (validate) {
        if (!a.model || !a.data || !a.labels) {
            ilp_args_free(&a);
            return cli_usage("sweep", "--validate runs the plans on MODEL.onnx "
                             "with --data X.npy --labels Y.npy");
        }
        vx = a.data;
        vy = a.labels;
        /* with a sensitivity file, --data is the validation set only */
        if (a.sens_path)
            a.data = a.labels = NULL;
    } else if (cpath || timing_opt) {
        ilp_args_free(&a);
        return cli_usage("sweep", "%s goes with --validate",
                         cpath ? "--calib" : "--repeat or --threads");
    }
    {
        /* an unusable DIR fails now, in one line, not after solving */
        struct stat sb;
        char *parent = strdup(dir), *slash = parent ? strrchr(parent, '/')
                                                    : NULL;
        if (slash)
            *(slash == parent ? slash + 1 : slash) = '\0';
        const char *pd = slash ? parent : ".";
        int bad = stat(dir, &sb) == 0
                      ? !S_ISDIR(sb.st_mode) || access(dir, W_OK | X_OK) != 0
                      : !parent || stat(pd, &sb) != 0 || !S_ISDIR(sb.st_mode) ||
                            access(pd, W_OK | X_OK) != 0;
        free(parent);
        if (bad) {
            ilp_args_free(&a);
            return cli_status(bp_fail(BP_EIO, "%s: cannot create the output "
                              "directory (its parent must exist and be "
                              "writable; a file of that name must not)", dir));
        }
    }
    if ((rc = ilp_ctx_load("sweep", &a, &ctx))) {
        ilp_args_free(&a);
        return rc;
    }
    int n = (int)npts, nb = a.n_budgets + 1;
    point *pt = calloc((size_t)n, sizeof *pt);
    char *path = NULL;
    bp_plan *plan = NULL;
    bp_budget *bud = calloc((size_t)nb, sizeof *bud);
    double lo, hi, values[BP_MCKP_MAX_BUDGETS + 1];
    char why[512] = "";
    bp_budget_kind kinds[BP_MCKP_MAX_BUDGETS + 1];
    const char *texts[BP_MCKP_MAX_BUDGETS + 1];
    if (!pt || !bud) {
        st = bp_fail(BP_ENOMEM, "out of memory");
        goto out;
    }
    double best;
    if ((st = bp_alloc_total_range(ctx.alloc, (bp_budget_kind)axis, &lo, &hi)))
        goto out;
    for (int j = 0; j < a.n_budgets; j++) {
        if ((st = bp_alloc_resolve(ctx.alloc, &a.budgets[j], &values[j + 1])))
            goto out;
        kinds[j + 1] = a.budgets[j].kind;
        texts[j + 1] = a.budgets[j].text;
        bud[j + 1] = a.budgets[j];
    }
    /* budgets past the best plan's total would all repeat it: the best
     * plan under the other budgets, when there are any */
    if (a.n_budgets == 0) {
        if ((st = bp_alloc_total_at_best(ctx.alloc, (bp_budget_kind)axis,
                                         &best)))
            goto out;
    } else {
        bp_alloc_result r0;
        memset(&r0, 0, sizeof r0);
        st = bp_alloc_solve_caps(ctx.alloc, a.n_budgets, kinds + 1, values + 1,
                                 texts + 1, &a.mo, &r0);
        best = st ? hi : axis == BP_BUDGET_SIZE ? r0.size_bytes
                       : axis == BP_BUDGET_LATENCY ? r0.total_latency_s
                                                   : r0.total_bops;
        bp_alloc_result_free(&r0);
        /* none feasible: every point says why below */
        if (st == BP_EINFEASIBLE || st == BP_EINTERRUPTED)
            st = BP_OK;
        if (st)
            goto out;
    }
    if (best < hi)
        hi = best > lo ? best : lo;
    if (hi <= lo && n > 1) {
        fprintf(stderr, "sweep: the cheapest plan in %s is also the best: "
                "one point, not %d\n", bp_budget_kind_name((bp_budget_kind)axis),
                n);
        n = 1;
    }
    kinds[0] = (bp_budget_kind)axis;
    bud[0].kind = (bp_budget_kind)axis;
    bud[0].form = BP_BUDGET_ABS;
    fprintf(stderr, "sweep of %s from %.6g to %.6g in %d points\n",
            bp_budget_kind_name((bp_budget_kind)axis), lo, hi, n);
    for (int k = 0; k < n; k++) {
        char text[40];
        pt[k].budget = n == 1 || k == n - 1 ? hi
                     : k == 0 ? lo : lo + (hi - lo) * k / (n - 1);
        values[0] = pt[k].budget;
        bp_budget_format(text, sizeof text, (bp_budget_kind)axis, values[0],
                         "", 6);
        snprintf(bud[0].text, sizeof bud[0].text, "%s=%s",
                 bp_budget_kind_name((bp_budget_kind)axis), text);
        bud[0].value_text = bud[0].text + strlen(bp_budget_kind_name(
                                              (bp_budget_kind)axis)) + 1;
        texts[0] = bud[0].text;
        st = bp_alloc_solve_caps(ctx.alloc, nb, kinds, values, texts, &a.mo,
                                 &pt[k].r);
        if (st == BP_EINFEASIBLE) {
            if (a.verbose)
                fprintf(stderr, "point %d: %s\n", k + 1, bp_errmsg());
            /* the loosest point says why, should none be feasible */
            snprintf(why, sizeof why, "%s", bp_errmsg());
            st = BP_OK;
            continue;
        }
        if (st == BP_EINTERRUPTED) {
            st = bp_fail(BP_EINFEASIBLE, "point %d (%s): no plan found within "
                         "--time-limit %g s", k + 1, bud[0].text,
                         a.mo.time_limit_s);
            goto out;
        }
        if (st)
            goto out;
        pt[k].ok = 1;
        snprintf(pt[k].plan, sizeof pt[k].plan, "plan_%03d.json", k + 1);
        cli_progress("sweep", k + 1, n);
    }
    cli_progress_end();
    int any = 0;
    for (int k = 0; k < n; k++)
        any |= pt[k].ok;
    if (!any) {
        /* nothing to write: the fixed budgets rule out every point */
        st = bp_fail(BP_EINFEASIBLE, "no point of the sweep is feasible: %s",
                     why);
        /* the other budgets rule every point out: say when 4-bit
         * activations would not */
        st = ilp_hint_abits(&ctx, &a, values + 1, st);
        goto out;
    }
    if (validate) {
        bp_qrun_opts ro;
        bp_qrun_opts_init(&ro);
        /* every plan streams the same data: keep the float outputs when
         * they are small, rather than rerun the float model per plan */
        ro.float_cache_bytes = (int64_t)64 << 20;
        /* the latency the plans predict: batch 1 */
        ro.repeat = (int)repeat;
        ro.time_batch = 0;
        ro.threads = (int)threads;
        /* batches as run's default: 64, fewer for large activations */
        int64_t per;
        if ((st = bp_qrun_sample_bytes(ctx.graph, &per)))
            goto out;
        ro.batch = ro.calib_batch = bp_auto_batch(per);
        if ((st = cli_qdata_load(&qd, ctx.graph, vx, vy, 0, cpath, 256)) ||
            (st = bp_qrun_open(&qr, ctx.graph, &qd.src, qd.cx, &ro)))
            goto out;
    }

    /* everything solved: now write */
    size_t dl = strlen(dir);
    if (!(path = malloc(dl + 64))) {
        st = bp_fail(BP_ENOMEM, "out of memory");
        goto out;
    }
    if ((st = make_dir(dir)))
        goto out;
    for (int k = 0; k < n; k++) {
        if (!pt[k].ok)
            continue;
        snprintf(path, dl + 64, "%s/%s", dir, pt[k].plan);
        if ((st = bp_alloc_plan(ctx.alloc, &pt[k].r, nb, bud, values,
                                ctx.model_path, ctx.model_sha256,
                                ctx.prof->name, &plan)))
            goto out;
        plan->budgets[0].value = pt[k].budget;
        for (int j = 1; j < nb; j++)
            plan->budgets[j].value = values[j];
        char text[64];
        bp_budget_format(text, sizeof text, (bp_budget_kind)axis,
                         pt[k].budget, "", 6);
        free(plan->budgets[0].text);
        if (!(plan->budgets[0].text = strdup(text))) {
            st = bp_fail(BP_ENOMEM, "out of memory");
            goto out;
        }
        st = bp_plan_save(plan, path);
        if (!st && qr) {
            st = bp_qrun_plan(qr, plan, path, &pt[k].q);
            pt[k].validated = !st;
            cli_progress("validate", k + 1, n);
        }
        bp_plan_free(&plan);
        if (st)
            goto out;
    }
    /* a reused DIR keeps no plan of an earlier sweep that pareto.csv does
     * not list: infeasible points' numbers, and those past this sweep's */
    for (int k = 0;; k++) {
        snprintf(path, dl + 64, "%s/plan_%03d.json", dir, k + 1);
        if (k < n && pt[k].ok)
            continue;
        if (k >= n && access(path, F_OK) != 0)
            break;
        if (unlink(path) != 0 && errno != ENOENT) {
            st = bp_fail(BP_EIO, "%s: cannot remove the plan of an earlier "
                         "sweep: %s", path, strerror(errno));
            goto out;
        }
    }
    char title[512];
    snprintf(title, sizeof title, "%s on %s: sensitivity against %s",
             ctx.model_path && *ctx.model_path ? ctx.model_path : a.sens_path,
             ctx.prof->name, bp_budget_kind_name((bp_budget_kind)axis));
    snprintf(path, dl + 64, "%s/pareto.csv", dir);
    cli_progress_end();
    if ((st = write_csv(path, &ctx, pt, n, validate)))
        goto out;
    snprintf(path, dl + 64, "%s/pareto.svg", dir);
    if ((st = write_svg(path, (bp_budget_kind)axis, pt, n, title, X_AXIS,
                        Y_OBJECTIVE)))
        goto out;
    if (validate) {
        char vtitle[600];
        snprintf(vtitle, sizeof vtitle, "%s: measured accuracy against %s",
                 ctx.model_path, bp_budget_kind_name((bp_budget_kind)axis));
        snprintf(path, dl + 64, "%s/pareto_accuracy.svg", dir);
        if ((st = write_svg(path, (bp_budget_kind)axis, pt, n, vtitle, X_AXIS,
                            Y_INT_ACCURACY)))
            goto out;
        if (repeat > 0) {
            snprintf(vtitle, sizeof vtitle, "%s: measured accuracy against "
                     "measured latency", ctx.model_path);
            snprintf(path, dl + 64, "%s/pareto_latency.svg", dir);
            if ((st = write_svg(path, (bp_budget_kind)axis, pt, n, vtitle,
                                X_MEASURED_LATENCY, Y_INT_ACCURACY)))
                goto out;
        }
    }

    fprintf(stderr, "%5s %14s %14s %12s %10s %12s  %-8s%s\n", "point",
            "budget", "objective", "size", "latency", "BOPs", "status",
            validate ? "  int acc  loss rise   measured" : "");
    int feasible = 0;
    for (int k = 0; k < n; k++) {
        char b0[64], b1[64], b2[64], b3[64];
        bp_budget_format(b0, sizeof b0, (bp_budget_kind)axis, pt[k].budget,
                         "", 5);
        if (!pt[k].ok) {
            fprintf(stderr, "%5d %14s %14s %12s %10s %12s  infeasible\n",
                    k + 1, b0, "-", "-", "-", "-");
            continue;
        }
        feasible++;
        bp_budget_format(b1, sizeof b1, BP_BUDGET_SIZE, pt[k].r.size_bytes,
                         "", 4);
        bp_budget_format(b2, sizeof b2, BP_BUDGET_LATENCY,
                         pt[k].r.total_latency_s, "", 3);
        bp_budget_format(b3, sizeof b3, BP_BUDGET_BOPS, pt[k].r.total_bops,
                         "", 4);
        fprintf(stderr, "%5d %14s %14.6g %12s %10s %12s  %-8s", k + 1, b0,
                pt[k].r.objective, b1, b2, b3, pt[k].r.status);
        if (pt[k].validated) {
            fprintf(stderr, "  %6.2f%%  %+9.4f", 100 * pt[k].q.int_accuracy,
                    pt[k].q.int_loss - pt[k].q.float_loss);
            if (isfinite(pt[k].q.latency_s)) {
                bp_budget_format(b2, sizeof b2, BP_BUDGET_LATENCY,
                                 pt[k].q.latency_s, "", 3);
                fprintf(stderr, " %10s", b2);
            }
        }
        fputc('\n', stderr);
    }
    fprintf(stderr, "wrote %s/pareto.csv, %s/pareto.svg and %d plans\n", dir,
            dir, feasible);
    if (a.json) {
        printf("{\"axis\":\"%s\",\"points\":[",
               bp_budget_kind_name((bp_budget_kind)axis));
        for (int k = 0; k < n; k++) {
            printf("%s{\"budget\":%.17g", k ? "," : "", pt[k].budget);
            if (pt[k].ok) {
                printf(",\"objective\":%.17g,\"size_bytes\":%.17g,"
                       "\"latency_s\":", pt[k].r.objective,
                       pt[k].r.size_bytes);
                if (isnan(pt[k].r.total_latency_s))
                    printf("null");
                else
                    printf("%.17g", pt[k].r.total_latency_s);
                printf(",\"bops\":%.17g,\"status\":\"%s\",\"gap\":%.17g,"
                       "\"plan\":\"%s\"", pt[k].r.total_bops, pt[k].r.status,
                       pt[k].r.gap, pt[k].plan);
                if (pt[k].validated)
                    printf(",\"float_accuracy\":%.17g,\"int_accuracy\":%.17g,"
                           "\"float_loss\":%.17g,\"int_loss\":%.17g,"
                           "\"agreement\":%.17g,\"measured_size_bytes\":%lld",
                           pt[k].q.float_accuracy, pt[k].q.int_accuracy,
                           pt[k].q.float_loss, pt[k].q.int_loss,
                           pt[k].q.agreement, (long long)pt[k].q.size_bytes);
                if (pt[k].validated && isfinite(pt[k].q.latency_s))
                    printf(",\"measured_latency_s\":%.17g", pt[k].q.latency_s);
                printf("}");
            } else {
                printf(",\"status\":\"infeasible\"}");
            }
        }
        printf("]}\n");
    }
out:
    if (st)
        rc = cli_status(st);
    for (int k = 0; pt && k < n; k++)
        bp_alloc_result_free(&pt[k].r);
    free(pt);
    free(bud);
    free(path);
    bp_plan_free(&plan);
    bp_qrun_free(&qr);
    cli_qdata_free(&qd);
    ilp_ctx_free(&ctx);
    ilp_args_free(&a);
    return rc;
}
