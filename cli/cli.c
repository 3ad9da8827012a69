/* cli.c - shared helpers of the bitplan subcommands. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("bitplan: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_status(int st)
{
    if (st == BP_OK)
        return BP_EXIT_OK;
    const char *m = bp_errmsg();
    if (st == BP_ENOMEM) /* the one knob every data command has */
        cli_error("%s (a smaller --batch needs less memory)",
                  *m ? m : bp_status_str(st));
    else
        cli_error("%s", *m ? m : bp_status_str(st));
    return bp_exit_code(st);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bitplan %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'bitplan %s --help')\n", cmd);
    return BP_EXIT_INPUT;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, int64_t lo,
                  int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage(cmd, "%s expects an integer from %lld to %lld, got '%s'",
                  opt, (long long)lo, (long long)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_seed(const char *cmd, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    /* strtoull would take a sign or blanks and wrap "-5" around */
    unsigned long long v = *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (!(*s >= '0' && *s <= '9') || errno || *end) {
        cli_usage(cmd, "--seed expects an integer from 0 to %llu, got '%s'",
                  (unsigned long long)UINT64_MAX, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s,
                     double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* strtod also reads hex, "inf" and "nan": a user typing them meant
     * something this option does not take */
    int plain = strspn(s, " +-.0123456789eE") == strlen(s);
    if (!plain || errno || end == s || *end || !isfinite(v) || v < lo ||
        v > hi) {
        cli_usage(cmd, "%s expects a number from %g to %g, got '%s'", opt, lo,
                  hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_bad_option(const char *cmd, const char *shortopts, int argc,
                   char **argv)
{
    const char *arg = optind >= 1 && optind <= argc ? argv[optind - 1] : "";
    /* glibc: optopt is 0 for an unknown or ambiguous long option and the
     * option's value when its argument is missing; for a short option it is
     * the letter, known or not */
    int missing = strncmp(arg, "--", 2) == 0
                      ? optopt != 0
                      : optopt > 0 && optopt < 128 && strchr(shortopts, optopt);
    if (missing)
        return cli_usage(cmd, "option '%s' needs a value", arg);
    return cli_usage(cmd, "unknown option '%s'", arg);
}

int cli_check_outputs(const char *const *outs, int n_outs,
                      const char *const *ins, int n_ins)
{
    for (int i = 0; i < n_outs; i++) {
        if (!outs[i])
            continue;
        int st = bp_outfile_check(outs[i]);
        if (st)
            return st;
        struct stat so, si;
        if (stat(outs[i], &so) != 0 || !S_ISREG(so.st_mode))
            continue;
        for (int k = 0; k < n_ins; k++)
            if (ins[k] && stat(ins[k], &si) == 0 && si.st_dev == so.st_dev &&
                si.st_ino == so.st_ino)
                return bp_fail(BP_EINVAL, "%s: is also an input (%s); the "
                               "output would replace it", outs[i], ins[k]);
    }
    return BP_OK;
}

int cli_progress_enabled(void)
{
    static int on = -1;
    if (on < 0)
        on = isatty(STDERR_FILENO);
    return on;
}

void cli_progress(const char *what, int64_t done, int64_t total)
{
    if (!cli_progress_enabled())
        return;
    int width = 30, fill = total ? (int)(width * done / total) : width;
    fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld", what, fill,
            "##############################", width - fill, "",
            (long long)done, (long long)total);
    fflush(stderr);
}

void cli_progress_end(void)
{
    if (cli_progress_enabled())
        fputs("\r\033[K", stderr);
}

void cli_set_threads(int threads)
{
    bp_set_threads(threads);
}

int cli_data_open(cli_data *d, bp_graph *g, const char *xpath,
                  const char *ypath, int64_t limit)
{
    int st;
    memset(d, 0, sizeof *d);
    d->xpath = xpath;
    if (g->n_inputs != 1)
        return bp_fail(BP_EUNSUPPORTED, "%s: the model has %d inputs; bitplan "
                       "feeds models with one input", g->path, g->n_inputs);
    const bp_value *in = &g->values[g->inputs[0]];
    if ((st = bp_npy_open(&d->x, xpath)))
        return st;
    int rank = bp_npy_rank(d->x);
    const int64_t *dims = bp_npy_dims(d->x);
    if (rank < 1) {
        cli_data_close(d);
        return bp_fail(BP_EINVAL, "%s: holds one value (shape ()); model input "
                       "'%s' expects samples along axis 0", xpath, in->name);
    }
    int ok = rank == in->decl_rank;
    for (int i = 1; ok && i < rank; i++)
        ok = dims[i] == in->decl_dims[i];
    if (!ok) {
        char want[128], got[128];
        int64_t wd[BP_MAX_RANK];
        memcpy(wd, in->decl_dims, sizeof wd);
        wd[0] = dims[0];
        bp_shape_str(want, sizeof want, in->decl_rank, wd);
        bp_shape_str(got, sizeof got, rank, dims);
        cli_data_close(d);
        return bp_fail(BP_EINVAL, "%s: samples have shape %s; model input '%s' "
                       "expects %s (N samples along axis 0)", xpath, got,
                       in->name, want);
    }
    /* every dtype the reader knows converts exactly enough to the float32 or
     * float64 the executors take (integer pixels, one-hot bools) */
    bp_dtype xdt = bp_npy_dtype(d->x);
    if (xdt < 0 || xdt >= BP_DTYPE_COUNT) {
        cli_data_close(d);
        return bp_fail(BP_EINVAL, "%s: dtype %s; expected float32, float64 or "
                       "integer samples", xpath, bp_dtype_name(xdt));
    }
    d->count = bp_npy_count(d->x);
    if (limit > 0 && limit < d->count)
        d->count = limit;
    if (d->count < 1) {
        cli_data_close(d);
        return bp_fail(BP_EINVAL, "%s: holds no samples", xpath);
    }
    d->sample_numel = bp_npy_row_numel(d->x);
    const bp_value *out = &g->values[g->outputs[0]];
    d->n_classes = out->rank >= 2 ? out->dims[out->rank - 1] : 0;
    if (ypath) {
        bp_npy *y = NULL;
        if ((st = bp_npy_open(&y, ypath))) {
            cli_data_close(d);
            return st;
        }
        int64_t ny = bp_npy_count(y);
        bp_dtype ydt = bp_npy_dtype(y);
        if (bp_npy_rank(y) != 1 || (ydt != BP_I64 && ydt != BP_I32 &&
                                    ydt != BP_U8 && ydt != BP_I8)) {
            bp_npy_close(&y);
            cli_data_close(d);
            return bp_fail(BP_EINVAL, "%s: labels must be a 1-D integer array "
                           "(int64, int32, uint8, int8 or bool)", ypath);
        }
        if (ny != bp_npy_count(d->x)) {
            bp_npy_close(&y);
            int64_t nx = bp_npy_count(d->x);
            cli_data_close(d);
            return bp_fail(BP_EINVAL, "%s: %lld labels for %lld samples in %s",
                           ypath, (long long)ny, (long long)nx, xpath);
        }
        /* checked in chunks: the labels are read again batch by batch */
        d->y = y;
        enum { CHUNK = 4096 };
        int64_t buf[CHUNK];
        for (int64_t s = 0; s < d->count; s += CHUNK) {
            int64_t n = d->count - s < CHUNK ? d->count - s : CHUNK;
            if ((st = bp_npy_read_rows(y, s, n, BP_I64, buf))) {
                cli_data_close(d);
                return st;
            }
            for (int64_t i = 0; i < n; i++)
                if (buf[i] < 0 || (d->n_classes && buf[i] >= d->n_classes)) {
                    int64_t bad = buf[i];
                    cli_data_close(d);
                    return bp_fail(BP_EINVAL, "%s: label %lld at index %lld is "
                                   "outside 0..%lld (the model has %lld "
                                   "outputs)", ypath, (long long)bad,
                                   (long long)(s + i),
                                   (long long)d->n_classes - 1,
                                   (long long)d->n_classes);
                }
        }
    }
    return BP_OK;
}

void cli_data_close(cli_data *d)
{
    bp_npy_close(&d->x);
    bp_npy_close(&d->y);
    free(d->labels);
    d->labels = NULL;
}

int cli_data_read_labels(cli_data *d, int64_t start, int64_t n, int64_t *buf)
{
    return bp_npy_read_rows(d->y, start, n, BP_I64, buf);
}

int cli_data_load_labels(cli_data *d)
{
    if (!d->y || d->labels)
        return BP_OK;
    if (!(d->labels = malloc((size_t)(d->count + 1) * sizeof *d->labels)))
        return BP_ENOMEM;
    int st = bp_npy_read_rows(d->y, 0, d->count, BP_I64, d->labels);
    if (st) {
        free(d->labels);
        d->labels = NULL;
    }
    return st;
}

/* A NaN or infinity in the samples would flow through every stage without
 * a fault and come out as a plausible-looking figure (a NaN loss, a
 * calibration range of nothing), so it is refused where the samples are
 * read, naming the first one. */
int cli_data_read(cli_data *d, int64_t start, int64_t n, bp_dtype dt, void *buf)
{
    int st = bp_npy_read_rows(d->x, start, n, dt, buf);
    if (st || (dt != BP_F32 && dt != BP_F64))
        return st;
    int64_t numel = n * d->sample_numel;
    for (int64_t i = 0; i < numel; i++) {
        double v = dt == BP_F32 ? ((const float *)buf)[i]
                                : ((const double *)buf)[i];
        if (!isfinite(v))
            return bp_fail(BP_EINVAL, "%s: sample %lld holds %s at element "
                           "%lld; expected finite values", d->xpath,
                           (long long)(start + i / d->sample_numel),
                           isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf",
                           (long long)(i % d->sample_numel));
    }
    return BP_OK;
}
