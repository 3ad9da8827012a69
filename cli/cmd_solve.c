/* cmd_solve.c - `bitplan solve`: the best per-layer bit-widths under every
 * budget at once, written as plan.json (and HAWQ-V3's bit_config). */
#include "ilpopts.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char help[] =
    "usage: bitplan solve [MODEL.onnx] --sensitivity SENS.json --profile HW\n"
    "                     [--budget KIND=VALUE ...] [-o PLAN.json]\n"
    "                     [--format json|hawq] [--json] [options]\n"
    "       bitplan solve MODEL.onnx --data X.npy [--labels Y.npy] ...\n\n"
    "Chooses weight (and activation) bits per layer minimising the summed\n"
    "sensitivity Omega subject to every budget, exactly (GLPK-based integer\n"
    "program), and writes the plan.  A budget no plan can meet ends at once\n"
    "with exit code 1 and the smallest reachable value.\n\n"
    "output:\n"
    "  -o PLAN.json      write the plan (atomically); without -o nothing is\n"
    "                    written\n"
    "  --format hawq     also write PLAN_bit_config.py: HAWQ-V3's\n"
    "                    bit_config_dict (module names = weight names without\n"
    "                    \".weight\"), for HAWQ's quantization-aware training\n"
    "  --json            print the plan on stdout: {\"layers\":[{\"name\",\n"
    "                    \"w_bits\",\"a_bits\",...}],\"predicted\":{\"size_bytes\",\n"
    "                    \"latency_s\",\"bops\",\"objective\"},\"status\",\"gap\",...}\n"
    "The per-layer table and the totals against each budget go to stderr.\n"
    "exit codes: 0 plan found, 1 a budget cannot be met (or no plan within\n"
    "--time-limit), 2 bad input\n\n";

/* PLAN.json -> PLAN_bit_config.py */
static char *hawq_path(const char *plan)
{
    size_t n = strlen(plan);
    if (n > 5 && !strcmp(plan + n - 5, ".json"))
        n -= 5;
    char *p = malloc(n + 16);
    if (p) {
        memcpy(p, plan, n);
        strcpy(p + n, "_bit_config.py");
    }
    return p;
}

/* A Python string literal of s (single-quoted, escaped). */
static void py_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\\' || *s == '\'')
            fputc('\\', f);
        if ((unsigned char)*s < 0x20)
            fprintf(f, "\\x%02x", (unsigned char)*s);
        else
            fputc(*s, f);
    }
    fputc('\'', f);
}

/* s inside a Python comment: a newline in a path would end the comment
 * and make the rest of the path code, so control characters are escaped. */
static void comment_str(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
}

/* HAWQ-V3 (github.com/Zhen-Dong/HAWQ, bit_config.py) looks modules up by
 * their name in model.named_modules() and sets weight_bit or activation_bit
 * from bit_config_dict["bit_config_<arch>_<scheme>"][name]. */
static int write_hawq(const char *path, const bp_plan *p)
{
    bp_outfile *of = NULL;
    int st = bp_outfile_open(&of, path);
    if (st)
        return st;
    FILE *f = bp_outfile_stream(of);
    fputs("# HAWQ-V3 bit configuration written by bitplan (plan of ", f);
    comment_str(f, p->model_path);
    fputs(",\n# sha256 ", f);
    comment_str(f, p->model_sha256);
    fputs(", profile ", f);
    comment_str(f, p->profile);
    fputs(", status ", f);
    comment_str(f, p->status);
    fprintf(f, ").\n"
               "# Keys are the torch module names of the quantized layers\n"
               "# (weight initializer names without \".weight\"); rename them\n"
               "# to your quantized model's modules (HAWQ's q_resnet calls them\n"
               "# e.g. 'stage1.unit1.quant_convbn1') if they differ.\n"
               "# act_bit_config gives the planned activation bits of each\n"
               "# layer's input, for the QuantAct modules in front of them.\n");
    for (int pass = 0; pass < 2; pass++) {
        fprintf(f, pass ? "\nact_bit_config = {\n"
                        : "bit_config_dict = {\n\"bit_config_bitplan\": {\n");
        for (int i = 0; i < p->n_layers; i++) {
            const char *name = p->layers[i].name;
            size_t n = strlen(name);
            char *mod = strdup(name);
            if (!mod) {
                bp_outfile_abort(&of);
                return bp_fail(BP_ENOMEM, "%s: out of memory", path);
            }
            if (n > 7 && !strcmp(name + n - 7, ".weight"))
                mod[n - 7] = '\0';
            py_str(f, mod);
            free(mod);
            fprintf(f, ": %d,\n", pass ? p->layers[i].a_bits
                                       : p->layers[i].w_bits);
        }
        fprintf(f, pass ? "}\n" : "},\n}\n");
    }
    return bp_outfile_commit(&of);
}

int cmd_solve(int argc, char **argv)
{
    static const struct option opts[] = {
        ILP_COMMON_OPTIONS,
        {"output", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    ilp_args a;
    ilp_ctx ctx;
    const char *out = NULL;
    int hawq = 0, c, rc = BP_EXIT_OK, st = BP_OK;
    ilp_args_init(&a);
    memset(&ctx, 0, sizeof ctx);
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        int h = ilp_args_option("solve", &a, c, optarg);
        if (h < 0) {
            ilp_args_free(&a);
            return BP_EXIT_INPUT;
        }
        if (h)
            continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'f':
            if (!strcmp(optarg, "hawq"))
                hawq = 1;
            else if (strcmp(optarg, "json")) {
                ilp_args_free(&a);
                return cli_usage("solve", "--format expects json or hawq, got "
                                 "'%s'", optarg);
            }
            break;
        case 'h':
            fputs(help, stdout);
            fputs(ilp_common_help, stdout);
            ilp_args_free(&a);
            return BP_EXIT_OK;
        default:
            ilp_args_free(&a);
            return cli_bad_option("solve", "ho:", argc, argv);
        }
    }
    if (optind < argc - 1) {
        ilp_args_free(&a);
        return cli_usage("solve", "expects at most one MODEL.onnx");
    }
    if (optind == argc - 1)
        a.model = argv[optind];
    if (hawq && !out) {
        ilp_args_free(&a);
        return cli_usage("solve", "--format hawq writes next to -o PLAN.json: "
                         "give -o");
    }
    /* an unwritable target fails now, in one line, not after solving */
    if ((st = ilp_check_outputs(&a, out))) {
        ilp_args_free(&a);
        return cli_status(st);
    }
    if ((rc = ilp_ctx_load("solve", &a, &ctx))) {
        ilp_args_free(&a);
        return rc;
    }
    bp_alloc_result r;
    bp_plan *plan = NULL;
    char *json = NULL, *hpath = NULL;
    double values[BP_MCKP_MAX_BUDGETS];
    memset(&r, 0, sizeof r);
    for (int j = 0; j < a.n_budgets; j++)
        if ((st = bp_alloc_resolve(ctx.alloc, &a.budgets[j], &values[j])))
            goto out;
    st = ilp_hint_abits(&ctx, &a, values,
                        bp_alloc_solve(ctx.alloc, a.n_budgets, a.budgets,
                                       &a.mo, &r));
    if (st == BP_EINTERRUPTED) {
        st = bp_fail(BP_EINFEASIBLE, "no plan meeting the budgets was found "
                     "within --time-limit %g s", a.mo.time_limit_s);
        goto out;
    }
    if (st ||
        (st = bp_alloc_plan(ctx.alloc, &r, a.n_budgets, a.budgets, values,
                            ctx.model_path, ctx.model_sha256, ctx.prof->name,
                            &plan)) ||
        (st = bp_plan_to_json(plan, &json)))
        goto out;
    ilp_print_summary(&ctx, &a, &r, values);
    if (hawq) {
        if (!(hpath = hawq_path(out))) {
            st = bp_fail(BP_ENOMEM, "out of memory");
            goto out;
        }
        if ((st = write_hawq(hpath, plan)))
            goto out;
    }
    if (out && (st = bp_plan_save(plan, out))) {
        if (hpath)
            unlink(hpath);
        goto out;
    }
    if (out)
        fprintf(stderr, "wrote %s%s%s\n", out, hpath ? " and " : "",
                hpath ? hpath : "");
    if (a.json)
        puts(json);
out:
    if (st)
        rc = cli_status(st);
    free(json);
    free(hpath);
    bp_plan_free(&plan);
    bp_alloc_result_free(&r);
    ilp_ctx_free(&ctx);
    ilp_args_free(&a);
    return rc;
}
