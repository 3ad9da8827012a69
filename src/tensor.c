/* tensor.c - allocation, size arithmetic and element access for bp_tensor. */
#include "tensor.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t dtype_sizes[] = {4, 8, 8, 4, 1, 1};
static const char *const dtype_names[] = {"float32", "float64", "int64",
                                          "int32", "uint8", "int8"};
_Static_assert(sizeof dtype_sizes / sizeof dtype_sizes[0] == BP_DTYPE_COUNT,
               "dtype size table");
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == BP_DTYPE_COUNT,
               "dtype name table");

size_t bp_dtype_size(bp_dtype dt)
{
    return (unsigned)dt < BP_DTYPE_COUNT ? dtype_sizes[dt] : 0;
}

const char *bp_dtype_name(bp_dtype dt)
{
    return (unsigned)dt < BP_DTYPE_COUNT ? dtype_names[dt] : "?";
}

int bp_shape_numel(int rank, const int64_t *dims, int64_t *numel)
{
    if (rank < 0 || rank > BP_MAX_RANK)
        return BP_EINVAL;
    /* nz is the product of the nonzero dims: a zero axis must not hide an
     * absurd claim elsewhere in the shape */
    int64_t n = 1, nz = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return BP_EINVAL;
        if (dims[i] != 0 && nz > (INT64_MAX / 16) / dims[i])
            return BP_EINVAL;
        if (dims[i] != 0)
            nz *= dims[i];
        n *= dims[i];
    }
    *numel = n;
    return BP_OK;
}

int64_t bp_tensor_numel(const bp_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dims[i];
    return n;
}

size_t bp_tensor_bytes(const bp_tensor *t)
{
    return (size_t)bp_tensor_numel(t) * bp_dtype_size(t->dtype);
}

int bp_tensor_new(bp_tensor **out, bp_dtype dt, int rank, const int64_t *dims)
{
    int64_t n;
    if ((unsigned)dt >= BP_DTYPE_COUNT || bp_shape_numel(rank, dims, &n) != BP_OK)
        return bp_fail(BP_EINVAL, "invalid tensor shape");
    if (n > BP_MAX_TENSOR_BYTES / (int64_t)bp_dtype_size(dt))
        return bp_fail(BP_EINVAL, "tensor of %lld elements is too large",
                       (long long)n);
    bp_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return bp_fail(BP_ENOMEM, "out of memory");
    t->dtype = dt;
    t->rank = rank;
    if (rank > 0)
        memcpy(t->dims, dims, (size_t)rank * sizeof *dims);
    t->data = calloc(n ? (size_t)n : 1, bp_dtype_size(dt));
    if (!t->data) {
        free(t);
        return bp_fail(BP_ENOMEM, "out of memory allocating %lld elements",
                       (long long)n);
    }
    *out = t;
    return BP_OK;
}

int bp_tensor_clone(bp_tensor **out, const bp_tensor *src)
{
    bp_tensor *t;
    int st = bp_tensor_new(&t, src->dtype, src->rank, src->dims);
    if (st)
        return st;
    memcpy(t->data, src->data, bp_tensor_bytes(src));
    *out = t;
    return BP_OK;
}

void bp_tensor_free(bp_tensor **t)
{
    if (!t || !*t)
        return;
    free((*t)->data);
    free(*t);
    *t = NULL;
}

double bp_tensor_get(const bp_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case BP_F32: return ((const float *)t->data)[i];
    case BP_F64: return ((const double *)t->data)[i];
    case BP_I64: return (double)((const int64_t *)t->data)[i];
    case BP_I32: return ((const int32_t *)t->data)[i];
    case BP_U8: return ((const uint8_t *)t->data)[i];
    case BP_I8: return ((const int8_t *)t->data)[i];
    default: return 0;
    }
}

/* v clamped into [lo, hi], NaN to 0: converting an out-of-range double to
 * an integer type is undefined behaviour, and files can hold anything. */
static double clampd(double v, double lo, double hi)
{
    return !(v == v) ? 0 : v < lo ? lo : v > hi ? hi : v;
}

void bp_tensor_set(bp_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case BP_F32: ((float *)t->data)[i] = (float)v; break;
    case BP_F64: ((double *)t->data)[i] = v; break;
    case BP_I64:
        ((int64_t *)t->data)[i] = (int64_t)clampd(v, -9.2e18, 9.2e18);
        break;
    case BP_I32:
        ((int32_t *)t->data)[i] = (int32_t)clampd(v, INT32_MIN, INT32_MAX);
        break;
    case BP_U8: ((uint8_t *)t->data)[i] = (uint8_t)clampd(v, 0, 255); break;
    case BP_I8: ((int8_t *)t->data)[i] = (int8_t)clampd(v, -128, 127); break;
    default: break;
    }
}

char *bp_shape_str(char *buf, size_t n, int rank, const int64_t *dims)
{
    size_t k = 0;
    if (!n)
        return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? "," : "",
                              (long long)dims[i]);
    if (k < n)
        snprintf(buf + k, n - k, ")");
    return buf;
}
