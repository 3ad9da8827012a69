/* sensfile_tmp.c - TEMPORARY stand-in for sensitivity/sensfile.c (written
 * on another branch): bp_sens_new, bp_sens_free and bp_sens_save only, so
 * that the sensitivity branch's command and tests run.  The integrator drops
 * this file when sensfile.c lands. */
#include "sensfile.h"
#include "atomic.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_sens_new(bp_sens **out, int n_layers)
{
    bp_sens *s = calloc(1, sizeof *s);
    if (!s)
        return BP_ENOMEM;
    s->layers = calloc((size_t)(n_layers > 0 ? n_layers : 1), sizeof *s->layers);
    if (!s->layers) {
        free(s);
        return BP_ENOMEM;
    }
    s->n_layers = n_layers;
    *out = s;
    return BP_OK;
}

void bp_sens_free(bp_sens **sp)
{
    if (!sp || !*sp)
        return;
    bp_sens *s = *sp;
    for (int i = 0; i < s->n_layers; i++) {
        free(s->layers[i].name);
        free(s->layers[i].op);
        free(s->layers[i].trace_method);
    }
    free(s->layers);
    free(s->model_path);
    free(s->model_sha256);
    free(s->data_path);
    free(s->data_sha256);
    free(s->settings);
    free(s->stop_reason);
    free(s);
    *sp = NULL;
}

static void str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void num(FILE *f, double x)
{
    char buf[32];
    if (!isfinite(x)) {
        fputs("null", f);
        return;
    }
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    fputs(buf, f);
}

int bp_sens_save(const bp_sens *s, const char *path)
{
    bp_outfile *o = NULL;
    int st = bp_outfile_open(&o, path);
    if (st)
        return st;
    FILE *f = bp_outfile_stream(o);
    fputs("{\n  \"model\": {\"path\": ", f);
    str(f, s->model_path);
    fputs(", \"sha256\": ", f);
    str(f, s->model_sha256);
    fputs("},\n  \"data\": {\"path\": ", f);
    str(f, s->data_path);
    fputs(", \"sha256\": ", f);
    str(f, s->data_sha256);
    fprintf(f, ", \"samples\": %lld},\n  \"loss\": ", (long long)s->samples);
    num(f, s->loss);
    fprintf(f, ",\n  \"seed\": %llu,\n  \"settings\": %s,\n  \"stop_reason\": ",
            (unsigned long long)s->seed, s->settings ? s->settings : "{}");
    str(f, s->stop_reason);
    fputs(",\n  \"layers\": [", f);
    for (int i = 0; i < s->n_layers; i++) {
        const bp_sens_layer *l = &s->layers[i];
        fputs(i ? ",\n    {" : "\n    {", f);
        fputs("\"name\": ", f);
        str(f, l->name);
        fputs(", \"op\": ", f);
        str(f, l->op);
        fprintf(f, ", \"numel\": %lld, \"macs\": %lld,\n     \"trace\": "
                "{\"mean\": ", (long long)l->numel, (long long)l->macs);
        num(f, l->trace);
        fputs(", \"stderr\": ", f);
        num(f, l->trace_stderr);
        fprintf(f, ", \"samples\": %lld, \"method\": ", (long long)l->trace_samples);
        str(f, l->trace_method);
        fputs("},\n     \"top_eigenvalue\": {\"value\": ", f);
        num(f, l->top_eig);
        fprintf(f, ", \"iterations\": %d},\n     \"perturbation\": {",
                l->eig_iterations);
        for (int pass = 0; pass < 2; pass++) {
            int first = 1;
            for (int b = 1; b <= BP_SENS_MAX_BITS; b++) {
                if (!l->has_bits[b])
                    continue;
                fprintf(f, "%s\"%d\": ", first ? "" : ", ", b);
                num(f, pass ? l->omega[b] : l->perturbation[b]);
                first = 0;
            }
            fputs(pass ? "}}" : "},\n     \"omega\": {", f);
        }
    }
    fputs("\n  ]\n}\n", f);
    return bp_outfile_commit(&o);
}
