/* cmd_inspect.c - `bitplan inspect MODEL.onnx [--json]`: the quantizable
 * layers of a model (name, op, weight shape, numel, MACs per sample). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdlib.h>

static const char help[] =
    "usage: bitplan inspect MODEL.onnx [--json]\n\n"
    "Lists every quantizable layer (Conv, Gemm, MatMul with a constant weight)\n"
    "in graph order: the weight initializer's name, op, weight shape, numel\n"
    "and multiply-accumulates per sample; then totals and the float32 size.\n\n"
    "  --json    print {\"layers\":[{\"name\",\"op\",\"shape\",\"numel\",\"macs\"}],\n"
    "            \"total_params\",\"total_macs\",\"float32_bytes\"} on stdout\n"
    "            (total_params counts every float parameter: weights, biases,\n"
    "            BatchNorm; quantizable_params only the layers' weights)\n"
    "  --help    this text\n";

int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': fputs(help, stdout); return BP_EXIT_OK;
        default: return cli_bad_option("inspect", "h", argc, argv);
        }
    }
    if (optind != argc - 1)
        return cli_usage("inspect", "expects one MODEL.onnx");

    bp_graph *g = NULL;
    bp_layer *layers = NULL;
    int n = 0, st;
    if ((st = bp_onnx_load(&g, argv[optind])) ||
        (st = bp_graph_layers(g, &layers, &n))) {
        bp_graph_free(&g);
        return cli_status(st);
    }
    int64_t params = 0, macs = 0, all_params = 0;
    for (int i = 0; i < g->n_values; i++)
        if (g->values[i].data && (g->values[i].data->dtype == BP_F32 ||
                                  g->values[i].data->dtype == BP_F64))
            all_params += bp_tensor_numel(g->values[i].data);
    fprintf(stderr, "%s: opset %lld, %d nodes, %d quantizable layers\n",
            g->path, (long long)g->opset, g->n_nodes, n);
    fprintf(stderr, "%-32s %-7s %-18s %10s %12s\n", "layer", "op", "shape",
            "params", "MACs");
    for (int i = 0; i < n; i++) {
        char shape[96];
        bp_shape_str(shape, sizeof shape, layers[i].rank, layers[i].shape);
        fprintf(stderr, "%-32s %-7s %-18s %10lld %12lld\n", layers[i].name,
                bp_op_name(layers[i].op), shape, (long long)layers[i].numel,
                (long long)layers[i].macs);
        params += layers[i].numel;
        macs += layers[i].macs;
    }
    fprintf(stderr, "total: %lld quantizable weights, %lld MACs per sample, "
            "%lld float parameters (%lld bytes as float32)\n",
            (long long)params, (long long)macs, (long long)all_params,
            (long long)all_params * 4);
    if (json) {
        cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "layers");
        for (int i = 0; i < n; i++) {
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "name", layers[i].name);
            cJSON_AddStringToObject(l, "op", bp_op_name(layers[i].op));
            cJSON *sh = cJSON_AddArrayToObject(l, "shape");
            for (int d = 0; d < layers[i].rank; d++)
                cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)layers[i].shape[d]));
            cJSON_AddNumberToObject(l, "numel", (double)layers[i].numel);
            cJSON_AddNumberToObject(l, "macs", (double)layers[i].macs);
            if (layers[i].bias >= 0)
                cJSON_AddStringToObject(l, "bias", g->values[layers[i].bias].name);
            cJSON_AddItemToArray(arr, l);
        }
        cJSON_AddNumberToObject(root, "total_params", (double)all_params);
        cJSON_AddNumberToObject(root, "quantizable_params", (double)params);
        cJSON_AddNumberToObject(root, "total_macs", (double)macs);
        cJSON_AddNumberToObject(root, "float32_bytes", (double)all_params * 4);
        cJSON_AddStringToObject(root, "model_sha256", g->hash);
        char *s = cJSON_PrintUnformatted(root);
        puts(s);
        free(s);
        cJSON_Delete(root);
    }
    free(layers);
    bp_graph_free(&g);
    return BP_EXIT_OK;
}
