/* cmd_eval.c - `bitplan eval`: runs the float executor over a data set in
 * batches and reports top-1 accuracy and cross-entropy against labels, and
 * optionally saves the outputs. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: bitplan eval MODEL.onnx --data X.npy [--labels Y.npy]\n"
    "                    [--out LOGITS.npy] [--batch N] [--samples N]\n"
    "                    [--threads N] [--json]\n\n"
    "Runs the float32 reference executor over X (samples along axis 0) in\n"
    "batches and reports top-1 accuracy and mean cross-entropy against Y.\n\n"
    "  --data X.npy      input samples; their shape must match the model input\n"
    "  --labels Y.npy    integer class labels, one per sample\n"
    "  --out FILE.npy    save the model's first output for every sample\n"
    "  --batch N         samples per batch (default: 64, or fewer so that one\n"
    "                    batch's activation buffers stay within 256 MiB; the\n"
    "                    examples keep 64, ResNet-18 at 224x224 gets 8: 330 MB\n"
    "                    resident instead of 2.2 GB at 64)\n"
    "  --samples N       use only the first N samples\n"
    "  --threads N       BLAS threads (default: OpenBLAS's choice)\n"
    "  --json            print {\"samples\",\"batch\",\"accuracy\",\"correct\",\n"
    "                    \"loss\"} on stdout (the last three only with --labels)\n";

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},
        {"labels", required_argument, NULL, 'l'},
        {"out", required_argument, NULL, 'o'},
        {"batch", required_argument, NULL, 'b'},
        {"samples", required_argument, NULL, 's'},
        {"threads", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *xpath = NULL, *ypath = NULL, *outpath = NULL;
    int64_t batch = 0, samples = 0, threads = 0; /* batch 0: automatic */
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'd': xpath = optarg; break;
        case 'l': ypath = optarg; break;
        case 'o': outpath = optarg; break;
        case 'b':
            if (cli_parse_int("eval", "--batch", optarg, 1, 1 << 20, &batch))
                return BP_EXIT_INPUT;
            break;
        case 's':
            if (cli_parse_int("eval", "--samples", optarg, 1, INT64_MAX / 2, &samples))
                return BP_EXIT_INPUT;
            break;
        case 't':
            if (cli_parse_int("eval", "--threads", optarg, 1, 1024, &threads))
                return BP_EXIT_INPUT;
            break;
        case 'j': json = 1; break;
        case 'h': fputs(help, stdout); return BP_EXIT_OK;
        default: return cli_bad_option("eval", "ho:", argc, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage("eval", "expects one MODEL.onnx");
    if (!xpath)
        return cli_usage("eval", "--data is required");
    {
        const char *ins[] = {argv[optind], xpath, ypath};
        int st = cli_check_outputs(&outpath, 1, ins, 3);
        if (st)
            return cli_status(st);
    }
    cli_set_threads((int)threads);

    int st, rc = BP_EXIT_OK;
    bp_graph *g = NULL;
    bp_exec *ex = NULL;
    cli_data d = {0};
    float *buf = NULL;
    int64_t *lab = NULL;
    bp_npy_writer *out = NULL;
    if ((st = bp_onnx_load(&g, argv[optind])) ||
        (st = cli_data_open(&d, g, xpath, ypath, samples)))
        goto out;
    if (!batch) {
        /* the executor's activations for one sample, times the batch */
        int64_t per;
        if ((st = bp_exec_sample_bytes(g, BP_F32, &per)))
            goto out;
        batch = bp_auto_batch(per);
    }
    if (batch > d.count)
        batch = d.count;
    if ((st = bp_exec_new(&ex, g, BP_F32, batch)))
        goto out;
    /* output shape per sample, from inference at the full batch */
    const bp_value *yv = &g->values[g->outputs[0]];
    int64_t out_numel = 1;
    for (int k = 1; k < yv->rank; k++)
        out_numel *= yv->dims[k];
    buf = malloc((size_t)(batch * d.sample_numel) * sizeof *buf);
    lab = malloc((size_t)(batch + 1) * sizeof *lab);
    if (!buf || !lab) {
        st = BP_ENOMEM;
        goto out;
    }
    int64_t correct = 0;
    double loss = 0;
    int classes = yv->rank == 2 && d.y;
    if (d.y && yv->rank != 2) {
        st = bp_fail(BP_EINVAL, "%s: output '%s' has rank %d; labels need "
                     "(N, classes) outputs", g->path, yv->name, yv->rank);
        goto out;
    }
    if (outpath) {
        /* written batch by batch: the outputs are never all held */
        int64_t dims[BP_MAX_RANK];
        memcpy(dims, yv->dims, sizeof dims);
        dims[0] = d.count;
        if ((st = bp_npy_writer_open(&out, outpath, BP_F32, yv->rank, dims)))
            goto out;
    }
    for (int64_t start = 0; start < d.count; start += batch) {
        int64_t n = d.count - start < batch ? d.count - start : batch;
        const void *in[1] = {buf};
        if ((st = cli_data_read(&d, start, n, BP_F32, buf)) ||
            (classes && (st = cli_data_read_labels(&d, start, n, lab))) ||
            (st = bp_exec_run(ex, in, n)))
            goto out;
        const float *y = bp_exec_output(ex, 0);
        if (out && (st = bp_npy_writer_rows(out, y, n)))
            goto out;
        if (classes) {
            for (int64_t i = 0; i < n; i++) {
                const float *row = y + i * out_numel;
                int64_t best = 0;
                double mx = row[0], z = 0;
                for (int64_t k = 1; k < out_numel; k++)
                    if (row[k] > row[best])
                        best = k;
                mx = row[best];
                for (int64_t k = 0; k < out_numel; k++)
                    z += exp((double)row[k] - mx);
                loss += log(z) + mx - row[lab[i]];
                correct += best == lab[i];
            }
        }
        cli_progress("eval", start + n, d.count);
    }
    cli_progress_end();
    if (out && (st = bp_npy_writer_commit(&out)))
        goto out;
    double acc = classes ? (double)correct / (double)d.count : 0;
    loss = classes ? loss / (double)d.count : 0;
    if (classes)
        fprintf(stderr, "%s: %lld samples (batch %lld), accuracy %.4f "
                "(%lld/%lld), cross-entropy %.6f\n", g->path,
                (long long)d.count, (long long)batch, acc, (long long)correct,
                (long long)d.count, loss);
    else
        fprintf(stderr, "%s: %lld samples evaluated (batch %lld)\n", g->path,
                (long long)d.count, (long long)batch);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "samples", (double)d.count);
        cJSON_AddNumberToObject(root, "batch", (double)batch);
        if (classes) {
            cJSON_AddNumberToObject(root, "accuracy", acc);
            cJSON_AddNumberToObject(root, "correct", (double)correct);
            cJSON_AddNumberToObject(root, "loss", loss);
        }
        char *s = cJSON_PrintUnformatted(root);
        puts(s);
        free(s);
        cJSON_Delete(root);
    }
out:
    if (st)
        rc = cli_status(st);
    free(buf);
    free(lab);
    bp_npy_writer_abort(&out);
    bp_exec_free(&ex);
    cli_data_close(&d);
    bp_graph_free(&g);
    return rc;
}
