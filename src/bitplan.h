/* bitplan.h - the public interface of libbitplan, in one include.
 *
 * Conventions, once for the whole API: functions return 0 (BP_OK) or a
 * negative bp_status and write outputs through pointers only on success;
 * on failure bp_errmsg() holds one line naming the file and the field or
 * node.  Objects come from bp_x_new/bp_x_load and go to bp_x_free(&p), which
 * accepts NULL and clears the caller's pointer.  Borrowed pointers are
 * documented where they occur. */
#ifndef BITPLAN_H
#define BITPLAN_H

#include "status.h"
#include "tensor.h"
#include "hash.h"
#include "atomic.h"
#include "npy.h"
#include "graph.h"
#include "onnx.h"
#include "exec.h"
#include "quant.h"

#endif
