/* cmd_profile.c - `bitplan profile --measure`: times the integer executor's
 * kernels on this machine and writes a hardware profile (a measured table
 * with a roofline fallback) that `bitplan solve --profile` can read. */
#include "cli.h"
#include "qprofile.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char help[] =
    "usage: bitplan profile --measure -o HW.json [--model MODEL.onnx]...\n"
    "                       [--bits 2,3,4,8] [--threads N] [--repeat N]\n"
    "                       [--name NAME] [--quick] [--report FILE.csv]\n\n"
    "Times bitplan's integer executor on this machine at batch 1 for every\n"
    "weight width: about sixty small models of one or two convolutions or\n"
    "GEMMs, and the ops between layers (quantization, pooling, adds), timed\n"
    "inside whole runs, to which it fits a latency model of any layer and of\n"
    "the ops around it (\"layer_model\", \"op_costs\": profiles/README.md),\n"
    "written as a roofline profile.  With --model, it writes a \"table\"\n"
    "profile instead: each layer of that model timed inside whole runs of it\n"
    "(so a plan for it is predicted from its own layers), over the fitted\n"
    "roofline written beside it as NAME-roofline.json.  Takes about a minute\n"
    "on two cores (--quick: seconds).\n\n"
    "  --measure          measure this machine (the only mode so far)\n"
    "  -o, --out FILE     the profile to write (atomically)\n"
    "  --model FILE       measure this model's layers too (repeatable)\n"
    "  --bits LIST        weight widths to measure (default 2,3,4,5,6,7,8)\n"
    "  --threads N        executor threads (default: all CPUs; use the same\n"
    "                     for `bitplan run`)\n"
    "  --repeat N         timed runs per entry, in five passes over all\n"
    "                     models; their median is kept, the statistic\n"
    "                     `bitplan run` reports (default 15)\n"
    "  --name NAME        the profile's name (default \"measured\")\n"
    "  --quick            a tiny grid, and 3 runs in one pass unless --repeat\n"
    "                     (for tests)\n"
    "  --report FILE.csv  every grid measurement next to its fitted value:\n"
    "                     model, w_bits, op (or run, the whole run),\n"
    "                     measured_s, fitted_s, error\n"
    "  --json             print the profile written to -o on stdout, as one\n"
    "                     line of JSON\n";

int cmd_profile(int argc, char **argv)
{
    static const struct option opts[] = {
        {"measure", no_argument, NULL, 'M'},
        {"out", required_argument, NULL, 'o'},
        {"model", required_argument, NULL, 'm'},
        {"bits", required_argument, NULL, 'b'},
        {"threads", required_argument, NULL, 't'},
        {"repeat", required_argument, NULL, 'r'},
        {"name", required_argument, NULL, 'n'},
        {"quick", no_argument, NULL, 'q'},
        {"report", required_argument, NULL, 'R'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    bp_qprofile_opts po;
    bp_qprofile_opts_init(&po);
    const char *out = NULL;
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    int n_paths = 0, measure = 0, json = 0, c;
    int64_t v;
    if (!paths)
        return cli_status(BP_ENOMEM);
    optind = 1;
    while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        switch (c) {
        case 'M': measure = 1; break;
        case 'o': out = optarg; break;
        case 'm': paths[n_paths++] = optarg; break;
        case 'b': {
            unsigned mask = 0;
            char *s = optarg, *end;
            for (;;) {
                long b = strtol(s, &end, 10);
                if (end == s || b < 2 || b > 8) {
                    free(paths);
                    return cli_usage("profile", "--bits expects widths from 2 "
                                     "to 8 separated by commas, got '%s'",
                                     optarg);
                }
                mask |= 1u << b;
                if (*end != ',')
                    break;
                s = end + 1;
            }
            if (*end) {
                free(paths);
                return cli_usage("profile", "--bits expects widths from 2 to 8 "
                                 "separated by commas, got '%s'", optarg);
            }
            po.bits = mask;
            break;
        }
        case 't':
            if (cli_parse_int("profile", "--threads", optarg, 1, 64, &v)) {
                free(paths);
                return BP_EXIT_INPUT;
            }
            po.threads = (int)v;
            break;
        case 'r':
            if (cli_parse_int("profile", "--repeat", optarg, 1, 100000, &v)) {
                free(paths);
                return BP_EXIT_INPUT;
            }
            po.repeat = (int)v;
            break;
        case 'n': po.name = optarg; break;
        case 'q': po.quick = 1; break;
        case 'R': po.report = optarg; break;
        case 'j': json = 1; break;
        case 'h': fputs(help, stdout); free(paths); return BP_EXIT_OK;
        default: free(paths); return cli_bad_option("profile", "ho:", argc, argv);
        }
    }
    if (optind != argc || !measure || !out) {
        free(paths);
        return cli_usage("profile", optind != argc ? "takes no positional "
                         "arguments" : !measure ? "only --measure is supported"
                         : "-o HW.json is required");
    }
    /* every file it may write, checked before minutes of measuring */
    char roof[4096];
    bp_qprofile_roofline_path(out, roof, sizeof roof);
    const char *outs[] = {out, n_paths ? roof : NULL, po.report};
    int st = cli_check_outputs(outs, 3, (const char *const *)paths, n_paths);
    if (st) {
        free(paths);
        return cli_status(st);
    }
    char *text = NULL;
    bp_graph **models = calloc((size_t)n_paths + 1, sizeof *models);
    if (!models)
        st = BP_ENOMEM;
    for (int i = 0; !st && i < n_paths; i++)
        st = bp_onnx_load(&models[i], paths[i]);
    if (!st) {
        po.models = models;
        po.n_models = n_paths;
        po.text = json ? &text : NULL;
        st = bp_qprofile_measure(out, &po, stderr);
    }
    if (!st)
        fprintf(stderr, "wrote %s\n", out);
    if (!st && json) {
        /* what -o got (which may be a pipe), on one line */
        cJSON *root = cJSON_Parse(text);
        char *line = root ? cJSON_PrintUnformatted(root) : NULL;
        if (!line)
            st = bp_fail(BP_ENOMEM, "out of memory printing %s", out);
        else
            printf("%s\n", line);
        free(line);
        cJSON_Delete(root);
    }
    free(text);
    for (int i = 0; models && i < n_paths; i++)
        bp_graph_free(&models[i]);
    free(models);
    free(paths);
    return cli_status(st);
}
