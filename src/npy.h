/* npy.h - NumPy .npy files: streaming reads, whole-file loads, atomic saves.
 *
 * bitplan takes its calibration and evaluation data as .npy files, which can
 * be much larger than memory.  bp_npy_open() parses and validates only the
 * header; bp_npy_read_rows() then reads a range of samples along axis 0
 * (seek + read of just those bytes), converting to the dtype the caller
 * asks for, so that no more than one batch is ever held.
 *
 * Accepted: format versions 1.0, 2.0 and 3.0; little-endian (or 1-byte)
 * dtypes float32 '<f4', float64 '<f8', int64 '<i8', int32 '<i4', uint8
 * '|u1', int8 '|i1', and bool '|b1' read as uint8; C order; rank up to
 * BP_MAX_RANK.  Every size in a header is checked for overflow and against
 * the file's real length before anything is allocated from it.
 *
 * Errors: BP_EIO when the file cannot be opened or read, BP_EINVAL when it
 * is not a well-formed .npy file (bad magic, malformed header, negative or
 * absurd shape, fewer data bytes than the header declares), BP_EUNSUPPORTED
 * when it is well-formed but uses what bitplan lacks (Fortran order,
 * big-endian or other dtypes, rank > BP_MAX_RANK, format version > 3).
 * Each failure leaves a one-line bp_errmsg() that starts with the path and
 * says what was expected.
 *
 * Ownership: a bp_npy owns its open FILE and a copy of the path; it is
 * released with bp_npy_close().  Loaded tensors belong to the caller.  A
 * handle keeps a file position, so one handle must not be used by two
 * threads at once; separate handles on the same file are independent. */
#ifndef BP_NPY_H
#define BP_NPY_H

#include <stdint.h>

#include "tensor.h"

typedef struct bp_npy bp_npy; /* an open file, header parsed, data unread */

/* Opens path and parses its header.  On success stores a new handle in
 * *out; on failure returns BP_EIO / BP_EINVAL / BP_EUNSUPPORTED / BP_ENOMEM
 * with a message and leaves *out unchanged. */
int bp_npy_open(bp_npy **out, const char *path);

/* Properties of an open file.  dims has bp_npy_rank() entries and lives as
 * long as the handle. */
bp_dtype bp_npy_dtype(const bp_npy *f);
int bp_npy_rank(const bp_npy *f);
const int64_t *bp_npy_dims(const bp_npy *f);

/* Number of samples along axis 0: dims[0], or 1 for a rank-0 array. */
int64_t bp_npy_count(const bp_npy *f);

/* Elements per sample: the product of dims[1..], 1 for rank 0 or 1. */
int64_t bp_npy_row_numel(const bp_npy *f);

/* Reads samples [start, start + count) into dst, converted to `want`; dst
 * must hold count * bp_npy_row_numel(f) elements of `want`.  Any dtype
 * converts to any other, except that a float that is not integral (or NaN,
 * or infinite) cannot become an integer type and an integer value outside
 * the target type's range is not wrapped: both are BP_EINVAL naming the
 * element.  Float-to-float and int-to-float conversions round as C casts do.
 * BP_EINVAL for a range outside [0, bp_npy_count(f)], BP_EIO when the read
 * fails (file truncated or changed since open).  On failure the contents of
 * dst are unspecified.  count == 0 reads nothing and succeeds. */
int bp_npy_read_rows(bp_npy *f, int64_t start, int64_t count, bp_dtype want,
                     void *dst);

/* Closes the file and frees the handle; sets *f to NULL.  Accepts NULL and
 * *f == NULL. */
void bp_npy_close(bp_npy **f);

/* Loads the whole array of path, in its own dtype, into a new tensor owned
 * by the caller (free with bp_tensor_free).  Errors as bp_npy_open, plus
 * BP_EINVAL when the array exceeds BP_MAX_TENSOR_BYTES; *out is unchanged
 * on failure. */
int bp_npy_load(bp_tensor **out, const char *path);

/* Saves t to path as a version 1.0 .npy file laid out exactly as numpy's
 * np.save does (header padded with spaces to a multiple of 64 bytes,
 * counting the magic and the trailing '\n').  Written through bp_outfile:
 * on failure (BP_EIO, BP_EINVAL for an invalid tensor) the target is left
 * as it was and no temporary file remains.  t is not modified. */
int bp_npy_save(const char *path, const bp_tensor *t);

/* The same file written row by row, so that an output as large as the data
 * set is never held: the shape (dims[0] rows) is declared up front, rows
 * are appended, and the file appears at path only at commit, once exactly
 * dims[0] rows were written (else BP_EINVAL naming the path, nothing
 * written).  Writes go through bp_outfile like bp_npy_save; commit reports
 * any failed write as BP_EIO.  Commit and abort free the writer and set the
 * caller's pointer to NULL; abort accepts NULL. */
typedef struct bp_npy_writer bp_npy_writer;
int bp_npy_writer_open(bp_npy_writer **out, const char *path, bp_dtype dt,
                       int rank, const int64_t *dims);
int bp_npy_writer_rows(bp_npy_writer *w, const void *data, int64_t count);
int bp_npy_writer_commit(bp_npy_writer **w);
void bp_npy_writer_abort(bp_npy_writer **w);

#endif
