/* tensor.h - dense, contiguous, C-order tensors.
 *
 * A bp_tensor owns its data.  Shapes are int64 with at most BP_MAX_RANK
 * axes; every size computation goes through bp_shape_numel, which rejects
 * negative dims and overflow, so a file that claims an absurd shape fails
 * before anything is allocated. */
#ifndef BP_TENSOR_H
#define BP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define BP_MAX_RANK 8
/* Upper bound on one tensor's byte size (16 GiB): larger claims in a file are
 * rejected as malformed rather than attempted. */
#define BP_MAX_TENSOR_BYTES ((int64_t)1 << 34)

typedef enum bp_dtype {
    BP_F32 = 0,
    BP_F64,
    BP_I64,
    BP_I32,
    BP_U8,
    BP_I8,
    BP_DTYPE_COUNT
} bp_dtype;

typedef struct bp_tensor {
    bp_dtype dtype;
    int rank;
    int64_t dims[BP_MAX_RANK];
    void *data; /* owned; numel * bp_dtype_size(dtype) bytes, C order */
} bp_tensor;

size_t bp_dtype_size(bp_dtype dt);
const char *bp_dtype_name(bp_dtype dt);

/* Product of dims into *numel; BP_EINVAL on a negative dim, rank outside
 * 0..BP_MAX_RANK, or a product over INT64_MAX / 16. */
int bp_shape_numel(int rank, const int64_t *dims, int64_t *numel);

/* Number of elements (product of dims; 1 for rank 0). */
int64_t bp_tensor_numel(const bp_tensor *t);
size_t bp_tensor_bytes(const bp_tensor *t);

/* New zero-filled tensor. BP_EINVAL on a bad shape or one larger than
 * BP_MAX_TENSOR_BYTES, BP_ENOMEM when allocation fails. */
int bp_tensor_new(bp_tensor **out, bp_dtype dt, int rank, const int64_t *dims);

/* Deep copy. */
int bp_tensor_clone(bp_tensor **out, const bp_tensor *src);

/* Frees *t and sets it to NULL; accepts NULL and *t == NULL. */
void bp_tensor_free(bp_tensor **t);

/* Element i converted to double / written from double (any dtype). */
double bp_tensor_get(const bp_tensor *t, int64_t i);
void bp_tensor_set(bp_tensor *t, int64_t i, double v);

/* Formats a shape as "(1,3,8,8)" into buf. Returns buf. */
char *bp_shape_str(char *buf, size_t n, int rank, const int64_t *dims);

#endif
