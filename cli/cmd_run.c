/* cmd_run.c - `bitplan run`: proves a plan by running it in the integer-only
 * executor and reporting accuracy, agreement with the float model, logit
 * SQNR, packed bytes and measured latency against the plan's claims. */
#include "cli.h"
#include "../ilp/alloc.h"
#include "plan.h"
#include "qprofile.h"
#include "qrun.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: bitplan run MODEL.onnx --plan PLAN.json --data X.npy\n"
    "                   [--labels Y.npy] [--calib C.npy] [--max-drop POINTS]\n"
    "                   [--repeat N] [--batch N] [--json] [more options]\n\n"
    "Runs the plan in bitplan's integer-only executor (int8/uint8 activations,\n"
    "packed weights, int32 accumulation, dyadic requantisation) over X and\n"
    "reports float and integer accuracy and cross-entropy, top-1 agreement\n"
    "with the float model, logit SQNR, the packed bytes of the executor's\n"
    "buffers, and the measured latency per sample (median of --repeat runs,\n"
    "at batch 1 and at --batch; at batch 1 also the 10th and 90th percentile\n"
    "of the runs, as the spread on a shared machine) next to the plan's\n"
    "predictions, and checks every budget of the plan.\n\n"
    "  --plan PLAN.json      the plan (its model sha256 must match MODEL)\n"
    "  --data X.npy          samples; their shape must match the model input\n"
    "  --labels Y.npy        integer class labels, one per sample\n"
    "  --calib C.npy         calibration samples for the activation ranges\n"
    "                        (default: the first 256 samples of --data)\n"
    "  --calib-samples N     use at most N calibration samples (default 256;\n"
    "                        only these are held in memory: --data is read\n"
    "                        one --batch at a time)\n"
    "  --calib-method M      minmax, percentile or mse (default mse)\n"
    "  --percentile P        percentile of |x| for --calib-method percentile\n"
    "                        (default 99.99)\n"
    "  --max-drop POINTS     exit 1 when integer accuracy is more than POINTS\n"
    "                        percentage points below float\n"
    "  --repeat N            timed runs per batch size, at least N and 0.1 s of\n"
    "                        them, after 0.15 s of warm-up (default 10; 0: no\n"
    "                        timing)\n"
    "  --batch N             evaluation, calibration and timing batch (default:\n"
    "                        64, or fewer so that one batch's activation\n"
    "                        buffers, float and integer executor together,\n"
    "                        stay within 256 MiB; the examples keep 64,\n"
    "                        ResNet-18 at 224x224 gets 7: 330 MB resident\n"
    "                        instead of 2.4 GB at 64)\n"
    "  --samples N           use only the first N samples of --data\n"
    "  --threads N           integer executor threads (default: all CPUs)\n"
    "  --profile HW          also report the latency this profile predicts for\n"
    "                        the plan: a shipped name or a path, typically one\n"
    "                        that bitplan profile --measure wrote\n"
    "  --out FILE.npy        save the integer model's (dequantized) first output\n"
    "                        for every sample, float32, written batch by batch\n"
    "  --isa NAME            portable, avx2 or avx512-vnni (default: the best\n"
    "                        this CPU runs; all give identical integers)\n"
    "  --json                print the figures as JSON on stdout:\n"
    "                        {\"float_accuracy\",\"int_accuracy\",\"float_loss\",\n"
    "                         \"int_loss\",\"agreement\",\"sqnr_db\",\"size_bytes\",\n"
    "                         \"latency_s\",\"predicted_latency_s\",\"budgets_met\",\n"
    "                         \"latency_p10_s\",\"latency_p90_s\",...}\n"
    "exit: 0 ok, 1 a budget exceeded or the accuracy drop over --max-drop,\n"
    "      2 bad input (a plan for another model, unknown layers, bit-widths\n"
    "      the executor lacks, data of the wrong shape)\n";

/* Reads every sample of an opened calibration file (at most --calib-samples
 * of them) into a float32 tensor. */
static int read_all(cli_data *d, bp_tensor **out)
{
    const int64_t *dims = bp_npy_dims(d->x);
    int64_t shape[BP_MAX_RANK];
    int rank = bp_npy_rank(d->x);
    memcpy(shape, dims, (size_t)rank * sizeof *shape);
    shape[0] = d->count;
    int st = bp_tensor_new(out, BP_F32, rank, shape);
    if (st)
        return st;
    if ((st = cli_data_read(d, 0, d->count, BP_F32, (*out)->data)))
        bp_tensor_free(out);
    return st;
}

static int source_read(void *ctx, int64_t start, int64_t count, float *x,
                       int64_t *labels)
{
    cli_data *d = ctx;
    int st = cli_data_read(d, start, count, BP_F32, x);
    if (!st && labels)
        st = cli_data_read_labels(d, start, count, labels);
    return st;
}

int cli_qdata_load(cli_qdata *q, bp_graph *g, const char *xpath,
                   const char *ypath, int64_t samples, const char *cpath,
                   int64_t csamples)
{
    cli_data dc = {0};
    int st;
    memset(q, 0, sizeof *q);
    if ((st = cli_data_open(&q->d, g, xpath, ypath, samples)))
        goto out;
    if (cpath && ((st = cli_data_open(&dc, g, cpath, NULL, csamples)) ||
                  (st = read_all(&dc, &q->cx))))
        goto out;
    q->src.n = q->d.count;
    q->src.has_labels = q->d.y != NULL;
    q->src.read = source_read;
    q->src.ctx = &q->d;
out:
    cli_data_close(&dc);
    if (st)
        cli_qdata_free(q);
    return st;
}

void cli_qdata_free(cli_qdata *q)
{
    cli_data_close(&q->d);
    bp_tensor_free(&q->cx);
}

/* The integer outputs go to --out as they are computed: never all held. */
static int sink_rows(void *ctx, int64_t start, int64_t count, const float *y)
{
    (void)start; /* bp_qrun_plan calls in sample order */
    return bp_npy_writer_rows(ctx, y, count);
}

static void add_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, k, v);
    else
        cJSON_AddNullToObject(o, k);
}

static void print_time(FILE *f, double s)
{
    if (!isfinite(s))
        fprintf(f, "n/a");
    else if (s < 1e-3)
        fprintf(f, "%.1f us", s * 1e6);
    else
        fprintf(f, "%.3f ms", s * 1e3);
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"plan", required_argument, NULL, 'p'},
        {"data", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'},
        {"calib", required_argument, NULL, 'c'},
        {"calib-samples", required_argument, NULL, 'C'},
        {"calib-method", required_argument, NULL, 'M'},
        {"percentile", required_argument, NULL, 'P'},
        {"max-drop", required_argument, NULL, 'm'},
        {"repeat", required_argument, NULL, 'r'},
        {"batch", required_argument, NULL, 'b'},
        {"samples", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"isa", required_argument, NULL, 'i'},
        {"profile", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *plan_path = NULL, *xpath = NULL, *ypath = NULL, *cpath = NULL,
               *outpath = NULL;
    const char *isa = NULL, *profile = NULL;
    /* batch 0: automatic, once the model is loaded */
    int64_t repeat = 10, batch = 0, samples = 0, threads = 0, csamples = 256;
    double max_drop = NAN;
    int json = 0, c;
    bp_qrun_opts ro;
    bp_qrun_opts_init(&ro);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': plan_path = optarg; break;
        case 'd': xpath = optarg; break;
        case 'l': ypath = optarg; break;
        case 'c': cpath = optarg; break;
        case 'C':
            if (cli_parse_int("run", "--calib-samples", optarg, 1, INT64_MAX / 2,
                              &csamples))
                return BP_EXIT_INPUT;
            break;
        case 'M':
            if (bp_calib_method_lookup(optarg, &ro.q.method))
                return cli_usage("run", "--calib-method expects minmax, "
                                 "percentile or mse, got '%s'", optarg);
            break;
        case 'P':
            if (cli_parse_double("run", "--percentile", optarg, 1e-9, 100,
                                 &ro.q.percentile))
                return BP_EXIT_INPUT;
            break;
        case 'm':
            if (cli_parse_double("run", "--max-drop", optarg, 0, 100, &max_drop))
                return BP_EXIT_INPUT;
            break;
        case 'r':
            if (cli_parse_int("run", "--repeat", optarg, 0, 1000000, &repeat))
                return BP_EXIT_INPUT;
            break;
        case 'b':
            if (cli_parse_int("run", "--batch", optarg, 1, 1 << 20, &batch))
                return BP_EXIT_INPUT;
            break;
        case 's':
            if (cli_parse_int("run", "--samples", optarg, 1, INT64_MAX / 2,
                              &samples))
                return BP_EXIT_INPUT;
            break;
        case 't':
            if (cli_parse_int("run", "--threads", optarg, 1, 64, &threads))
                return BP_EXIT_INPUT;
            break;
        case 'i': isa = optarg; break;
        case 'f': profile = optarg; break;
        case 'o': outpath = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(help, stdout); return BP_EXIT_OK;
        default: return cli_bad_option("run", "h", argc, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage("run", "expects one MODEL.onnx");
    if (!plan_path)
        return cli_usage("run", "--plan is required");
    if (!xpath)
        return cli_usage("run", "--data is required");
    if (isfinite(max_drop) && !ypath)
        return cli_usage("run", "--max-drop needs --labels: without them there "
                         "is no accuracy to check");
    {
        const char *ins[] = {argv[optind], plan_path, xpath, ypath, cpath,
                             profile};
        int st = cli_check_outputs(&outpath, 1, ins, 6);
        if (st)
            return cli_status(st);
    }
    if (isa) {
        int found = -1;
        for (int k = 0; k < BP_QK_ISA_COUNT; k++)
            if (strcmp(isa, bp_qk_isa_name((bp_qk_isa)k)) == 0)
                found = k;
        if (found < 0)
            return cli_usage("run", "--isa expects portable, avx2 or avx512-vnni, "
                             "got '%s'", isa);
        if (bp_qk_isa_set((bp_qk_isa)found))
            return cli_status(BP_EUNSUPPORTED);
    }
    ro.repeat = (int)repeat;
    ro.threads = (int)threads;
    ro.calib_samples = csamples;

    int st, rc = BP_EXIT_OK;
    bp_graph *g = NULL;
    bp_plan *plan = NULL;
    cli_qdata qd = {0};
    bp_qrun *qr = NULL;
    bp_qrun_result R;
    bp_npy_writer *out = NULL;
    if ((st = bp_onnx_load(&g, argv[optind])) ||
        (st = bp_plan_load(&plan, plan_path)))
        goto out;
    /* a bad plan is refused before any data is read */
    if ((st = bp_qplan_check(g, plan, plan_path)))
        goto out;
    /* and a bad profile before --out is written */
    double prof_lat = NAN;
    if (profile && (st = bp_qprofile_predict(profile, g, plan, &prof_lat)))
        goto out;
    if (!batch) {
        int64_t per;
        if ((st = bp_qrun_sample_bytes(g, &per)))
            goto out;
        batch = bp_auto_batch(per);
    }
    ro.batch = batch;
    ro.calib_batch = batch; /* calibration passes hold no more than runs */
    if ((st = cli_qdata_load(&qd, g, xpath, ypath, samples, cpath, csamples)))
        goto out;
    if (outpath) {
        const bp_value *yv = &g->values[g->outputs[0]];
        int64_t dims[BP_MAX_RANK];
        memcpy(dims, yv->dims, sizeof dims);
        dims[0] = qd.src.n;
        if ((st = bp_npy_writer_open(&out, outpath, BP_F32, yv->rank, dims)))
            goto out;
        ro.sink = sink_rows;
        ro.sink_ctx = out;
    }
    if ((st = bp_qrun_open(&qr, g, &qd.src, qd.cx, &ro)))
        goto out;
    if ((st = bp_qrun_plan(qr, plan, plan_path, &R)) ||
        (out && (st = bp_npy_writer_commit(&out))))
        goto out;

    double drop = (R.float_accuracy - R.int_accuracy) * 100;
    int drop_fail = isfinite(max_drop) && isfinite(drop) && drop > max_drop;
    FILE *f = stderr;
    int wmin = 99, wmax = 0, amin = 99, amax = 0;
    for (int i = 0; i < plan->n_layers; i++) {
        int w = plan->layers[i].w_bits, a = plan->layers[i].a_bits;
        wmin = w < wmin ? w : wmin;
        wmax = w > wmax ? w : wmax;
        amin = a < amin ? a : amin;
        amax = a > amax ? a : amax;
    }
    fprintf(f, "%s under %s: %d layers, weights %d..%d bits, activations "
            "%d..%d bits\n", g->path, plan_path, plan->n_layers, wmin, wmax,
            amin, amax);
    if (cpath)
        fprintf(f, "calibration: %lld samples of %s, %s ranges\n",
                (long long)bp_qrun_calib_samples(qr), cpath,
                bp_calib_method_name(ro.q.method));
    else
        fprintf(f, "calibration: no --calib given, so the first %lld samples of "
                "--data %s (%s ranges)\n", (long long)bp_qrun_calib_samples(qr),
                xpath, bp_calib_method_name(ro.q.method));
    fprintf(f, "%lld samples, batch %lld, %d threads, %s kernels\n",
            (long long)R.samples, (long long)R.batch, R.threads, R.isa);
    fprintf(f, "%-22s %12s %12s\n", "", "float", "integer");
    if (R.has_labels && R.has_classes) {
        fprintf(f, "%-22s %11.2f%% %11.2f%%   (drop %.2f points)\n", "accuracy",
                R.float_accuracy * 100, R.int_accuracy * 100, drop);
        fprintf(f, "%-22s %12.6f %12.6f   (+%.6f)\n", "cross-entropy",
                R.float_loss, R.int_loss, R.int_loss - R.float_loss);
    }
    if (R.has_classes)
        fprintf(f, "%-22s %12s %11.2f%%\n", "top-1 agreement", "",
                R.agreement * 100);
    fprintf(f, "%-22s %12s %9.2f dB\n", "logit SQNR", "", R.sqnr_db);
    fprintf(f, "%-22s %12s %12lld   (layers %lld + scales %lld", "packed bytes",
            "", (long long)R.size_bytes, (long long)R.layer_bytes,
            (long long)R.overhead_bytes);
    if (R.predicted_size_bytes > 0)
        fprintf(f, "; plan predicted %.0f", R.predicted_size_bytes);
    fprintf(f, ")\n");
    fprintf(f, "%-22s %12s %12.4g\n", "bit-ops / sample", "", R.bops);
    fprintf(f, "%-22s batch 1: ", "latency / sample");
    print_time(f, R.latency_s);
    if (isfinite(R.latency_p10_s)) {
        fprintf(f, " [runs 10-90%%: ");
        print_time(f, R.latency_p10_s);
        fprintf(f, " - ");
        print_time(f, R.latency_p90_s);
        fprintf(f, "]");
    }
    if (R.predicted_latency_s > 0) {
        /* the plan's profile may be of other hardware (nvidia-t4): say so */
        fprintf(f, " (the plan's profile %s predicted ",
                plan->profile ? plan->profile : "?");
        print_time(f, R.predicted_latency_s);
        if (isfinite(R.latency_s))
            fprintf(f, ", measured %+.0f%%",
                    (R.latency_s / R.predicted_latency_s - 1) * 100);
        fprintf(f, ")");
    }
    if (isfinite(prof_lat)) {
        fprintf(f, " (%s predicts ", profile);
        print_time(f, prof_lat);
        if (isfinite(R.latency_s))
            fprintf(f, ", measured %+.0f%%", (R.latency_s / prof_lat - 1) * 100);
        fprintf(f, ")");
    }
    fprintf(f, "; batch %lld: ", (long long)R.batch);
    print_time(f, R.latency_batch_s);
    fprintf(f, "\n");
    for (int i = 0; i < R.n_budgets; i++) {
        const bp_qrun_budget *b = &R.budgets[i];
        /* in the units solve prints them in */
        int k = -1;
        for (int j = 0; j < BP_BUDGET_KINDS; j++)
            if (!strcmp(b->kind, bp_budget_kind_name((bp_budget_kind)j)))
                k = j;
        char lim[64], got[64];
        if (k >= 0) {
            bp_budget_format(lim, sizeof lim, (bp_budget_kind)k, b->limit, "", 4);
            bp_budget_format(got, sizeof got, (bp_budget_kind)k, b->measured,
                             "", 4);
        } else {
            snprintf(lim, sizeof lim, "%.6g", b->limit);
            snprintf(got, sizeof got, "%.6g", b->measured);
        }
        fprintf(f, "budget %-8s <= %-12s%s%s%s: ", b->kind, lim,
                b->text ? " (" : "", b->text ? b->text : "", b->text ? ")" : "");
        if (b->checked)
            fprintf(f, "measured %s -- %s\n", got, b->met ? "met" : "EXCEEDED");
        else
            fprintf(f, "not measured by bitplan run\n");
    }
    if (drop_fail)
        fprintf(f, "accuracy drop %.2f points exceeds --max-drop %.2f\n", drop,
                max_drop);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        add_num(o, "float_accuracy", R.float_accuracy);
        add_num(o, "int_accuracy", R.int_accuracy);
        add_num(o, "float_loss", R.float_loss);
        add_num(o, "int_loss", R.int_loss);
        add_num(o, "agreement", R.agreement);
        add_num(o, "sqnr_db", R.sqnr_db);
        cJSON_AddNumberToObject(o, "size_bytes", (double)R.size_bytes);
        add_num(o, "latency_s", R.latency_s);
        add_num(o, "predicted_latency_s",
                R.predicted_latency_s > 0 ? R.predicted_latency_s : NAN);
        cJSON_AddBoolToObject(o, "budgets_met", R.budgets_met);
        cJSON_AddNumberToObject(o, "samples", (double)R.samples);
        cJSON_AddNumberToObject(o, "batch", (double)R.batch);
        add_num(o, "latency_batch_s", R.latency_batch_s);
        add_num(o, "latency_p10_s", R.latency_p10_s);
        add_num(o, "latency_p90_s", R.latency_p90_s);
        add_num(o, "profile_latency_s", prof_lat);
        add_num(o, "accuracy_drop_points", drop);
        cJSON_AddNumberToObject(o, "layer_bytes", (double)R.layer_bytes);
        cJSON_AddNumberToObject(o, "overhead_bytes", (double)R.overhead_bytes);
        add_num(o, "predicted_size_bytes",
                R.predicted_size_bytes > 0 ? R.predicted_size_bytes : NAN);
        cJSON_AddNumberToObject(o, "bops", R.bops);
        cJSON_AddNumberToObject(o, "calib_samples",
                                (double)bp_qrun_calib_samples(qr));
        cJSON_AddStringToObject(o, "calib_source", cpath ? cpath : "data");
        cJSON_AddStringToObject(o, "calib_method",
                                bp_calib_method_name(ro.q.method));
        cJSON_AddNumberToObject(o, "threads", R.threads);
        cJSON_AddStringToObject(o, "isa", R.isa);
        cJSON *ba = cJSON_AddArrayToObject(o, "budgets");
        for (int i = 0; i < R.n_budgets; i++) {
            cJSON *b = cJSON_CreateObject();
            cJSON_AddStringToObject(b, "kind", R.budgets[i].kind);
            cJSON_AddNumberToObject(b, "value", R.budgets[i].limit);
            if (R.budgets[i].checked)
                cJSON_AddNumberToObject(b, "measured", R.budgets[i].measured);
            else
                cJSON_AddNullToObject(b, "measured");
            cJSON_AddBoolToObject(b, "met", R.budgets[i].met);
            cJSON_AddItemToArray(ba, b);
        }
        char *s = cJSON_PrintUnformatted(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
    }
    if (!R.budgets_met || drop_fail)
        rc = BP_EXIT_CHECK;
out:
    if (st)
        rc = cli_status(st);
    bp_npy_writer_abort(&out);
    bp_qrun_free(&qr);
    cli_qdata_free(&qd);
    bp_plan_free(&plan);
    bp_graph_free(&g);
    return rc;
}
