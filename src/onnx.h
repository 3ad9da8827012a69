/* onnx.h - loads an ONNX model file into the graph IR.
 *
 * The protobuf code is generated at build time by protoc-c from the
 * onnx.proto that Debian's libonnx-dev installs.  The loader accepts default
 * domain opsets 7 to 18 (torch.onnx.export writes 11 to 17), initializers in
 * raw_data or typed fields, graph inputs with dynamic axes, and folds
 * constant subgraphs; it rejects external-data initializers and ops outside
 * graph.h's list with an error naming the node. */
#ifndef BP_ONNX_H
#define BP_ONNX_H

#include "graph.h"

/* Loads path into a new graph owned by the caller (bp_graph_free).  The
 * graph has been constant-folded, sorted, and inferred at batch 1.
 * Errors: BP_EIO (cannot read), BP_EINVAL (not ONNX, truncated, missing or
 * malformed initializer, bad shapes), BP_EUNSUPPORTED (op, dtype, external
 * data); the message starts with the path. */
int bp_onnx_load(bp_graph **out, const char *path);

/* Same from bytes in memory; `name` is used in messages and as g->path. */
int bp_onnx_load_mem(bp_graph **out, const void *data, size_t len,
                     const char *name);

#endif
