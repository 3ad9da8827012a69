/* npy.c - the .npy reader (header parser, validation, streaming row reads
 * with dtype conversion) and the writer.
 *
 * Layout of a .npy file: the magic "\x93NUMPY", a major and a minor version
 * byte, the header length (uint16 LE in version 1, uint32 LE in 2 and 3),
 * then the header: a Python dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }
 * padded with spaces and a final '\n', then the raw data in C order.  The
 * header is parsed here by a small recursive-descent reader of exactly the
 * literals that can appear in it, over an explicit length (a header may
 * contain any byte). */
#include "npy.h"
#include "atomic.h"
#include "status.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c reads and writes little-endian data in place"
#endif

#define MAGIC "\x93NUMPY"
#define MAGIC_LEN 6
#define ARRAY_ALIGN 64
#define GROWTH_AXIS_MAX_DIGITS 21 /* numpy's spare room after the header */
#define MAX_HEADER_LEN (1 << 20)
#define CONVERT_CHUNK 65536 /* bytes read per step when converting */

struct bp_npy {
    FILE *fp;
    char *path;
    bp_dtype dtype;        /* as stored; bool is read as BP_U8 */
    const char *type_name; /* "float32", ..., "bool" for messages */
    int rank;
    int64_t dims[BP_MAX_RANK];
    int64_t numel;
    int64_t rows;      /* samples along axis 0 (1 for rank 0) */
    int64_t row_numel; /* elements per sample */
    int64_t data_off;  /* byte offset of the first element */
};

/* --- header dict parser ------------------------------------------------ */

struct hdr {
    char descr[32];
    int descr_len; /* length as written, may exceed sizeof descr - 1 */
    int fortran;
    int rank; /* may exceed BP_MAX_RANK: only the first dims are kept */
    int64_t dims[BP_MAX_RANK];
    unsigned seen; /* bit 0 descr, 1 fortran_order, 2 shape */
};

struct parser {
    const char *s;
    size_t n, i;
    const char *path;
};

static int perr(const struct parser *p, const char *expected)
{
    if (p->i >= p->n)
        return bp_fail(BP_EINVAL,
                       "%s: malformed .npy header: expected %s, found the "
                       "end of the header",
                       p->path, expected);
    unsigned char c = (unsigned char)p->s[p->i];
    if (c >= 0x20 && c < 0x7f)
        return bp_fail(BP_EINVAL,
                       "%s: malformed .npy header: expected %s at header "
                       "byte %zu, found '%c'",
                       p->path, expected, p->i, c);
    return bp_fail(BP_EINVAL,
                   "%s: malformed .npy header: expected %s at header byte "
                   "%zu, found byte 0x%02x",
                   p->path, expected, p->i, c);
}

static int peek(const struct parser *p)
{
    return p->i < p->n ? (unsigned char)p->s[p->i] : -1;
}

static void skip_ws(struct parser *p)
{
    while (p->i < p->n && p->s[p->i] && strchr(" \t\r\n", p->s[p->i]))
        p->i++;
}

/* A quoted string ('...' or "..."); *str points into the header. */
static int parse_string(struct parser *p, const char **str, size_t *len)
{
    int q = peek(p);
    if (q != '\'' && q != '"')
        return perr(p, "a quoted string");
    size_t start = ++p->i;
    while (p->i < p->n && p->s[p->i] != q) {
        if (p->s[p->i] == '\\')
            return perr(p, "a string without escape sequences");
        p->i++;
    }
    if (p->i >= p->n)
        return perr(p, "a closing quote");
    *str = p->s + start;
    *len = p->i - start;
    p->i++;
    return BP_OK;
}

static int match_word(struct parser *p, const char *w)
{
    size_t k = strlen(w);
    if (p->n - p->i >= k && memcmp(p->s + p->i, w, k) == 0) {
        size_t e = p->i + k;
        if (e == p->n ||
            !(p->s[e] == '_' || (p->s[e] >= 'a' && p->s[e] <= 'z') ||
              (p->s[e] >= 'A' && p->s[e] <= 'Z') ||
              (p->s[e] >= '0' && p->s[e] <= '9'))) {
            p->i = e;
            return 1;
        }
    }
    return 0;
}

/* A Python int, possibly negative, possibly with the Python 2 'L' suffix. */
static int parse_dim(struct parser *p, int64_t *out, int *negative)
{
    *negative = 0;
    if (peek(p) == '-') {
        *negative = 1;
        p->i++;
    }
    if (peek(p) < '0' || peek(p) > '9')
        return perr(p, "an integer dimension");
    int64_t v = 0;
    while (peek(p) >= '0' && peek(p) <= '9') {
        int d = peek(p) - '0';
        if (v > (INT64_MAX - d) / 10)
            return bp_fail(BP_EINVAL,
                           "%s: malformed .npy header: a dimension in "
                           "'shape' does not fit in 64 bits",
                           p->path);
        v = v * 10 + d;
        p->i++;
    }
    if (peek(p) == 'L' || peek(p) == 'l')
        p->i++;
    *out = v;
    return BP_OK;
}

/* A tuple of ints: (), (5,), (5, 1, 8, 8); (5) is taken as (5,). */
static int parse_shape(struct parser *p, struct hdr *h)
{
    if (peek(p) != '(')
        return perr(p, "a tuple of integers for 'shape'");
    p->i++;
    skip_ws(p);
    h->rank = 0;
    while (peek(p) != ')') {
        int64_t v = 0;
        int neg, st = parse_dim(p, &v, &neg);
        if (st)
            return st;
        if (neg)
            return bp_fail(BP_EINVAL,
                           "%s: malformed .npy header: negative dimension "
                           "-%lld in 'shape'",
                           p->path, (long long)v);
        if (h->rank < BP_MAX_RANK)
            h->dims[h->rank] = v;
        if (h->rank < INT32_MAX)
            h->rank++;
        skip_ws(p);
        if (peek(p) == ',') {
            p->i++;
            skip_ws(p);
        } else if (peek(p) != ')') {
            return perr(p, "',' or ')' in 'shape'");
        }
    }
    p->i++;
    return BP_OK;
}

static int parse_value(struct parser *p, struct hdr *h, const char *key,
                       size_t klen)
{
    static const char *const keys[] = {"descr", "fortran_order", "shape"};
    int k = -1;
    for (int j = 0; j < 3; j++)
        if (klen == strlen(keys[j]) && memcmp(key, keys[j], klen) == 0)
            k = j;
    if (k < 0)
        return bp_fail(BP_EINVAL,
                       "%s: malformed .npy header: unexpected key '%.*s' "
                       "(expected 'descr', 'fortran_order' and 'shape')",
                       p->path, (int)(klen > 40 ? 40 : klen), key);
    if (h->seen & (1u << k))
        return bp_fail(BP_EINVAL,
                       "%s: malformed .npy header: duplicate key '%s'", p->path,
                       keys[k]);
    h->seen |= 1u << k;

    if (k == 0) {
        if (peek(p) == '[')
            return bp_fail(BP_EUNSUPPORTED,
                           "%s: structured (record) dtypes are not supported; "
                           "expected a plain numeric array",
                           p->path);
        const char *s;
        size_t len;
        int st = parse_string(p, &s, &len);
        if (st)
            return st;
        size_t keep = len < sizeof h->descr ? len : sizeof h->descr - 1;
        memcpy(h->descr, s, keep);
        h->descr[keep] = '\0';
        h->descr_len = len > 1000 ? 1000 : (int)len;
        return BP_OK;
    }
    if (k == 1) {
        if (match_word(p, "True"))
            h->fortran = 1;
        else if (match_word(p, "False"))
            h->fortran = 0;
        else
            return perr(p, "True or False for 'fortran_order'");
        return BP_OK;
    }
    return parse_shape(p, h);
}

static int parse_header(struct hdr *h, const char *s, size_t n,
                        const char *path)
{
    struct parser p = {s, n, 0, path};
    memset(h, 0, sizeof *h);
    skip_ws(&p);
    if (peek(&p) != '{')
        return perr(&p, "'{' opening the header dict");
    p.i++;
    skip_ws(&p);
    while (peek(&p) != '}') {
        const char *key;
        size_t klen;
        int st = parse_string(&p, &key, &klen);
        if (st)
            return st;
        skip_ws(&p);
        if (peek(&p) != ':')
            return perr(&p, "':' after a key");
        p.i++;
        skip_ws(&p);
        if ((st = parse_value(&p, h, key, klen)))
            return st;
        skip_ws(&p);
        if (peek(&p) == ',') {
            p.i++;
            skip_ws(&p);
        } else if (peek(&p) != '}') {
            return perr(&p, "',' or '}' after a value");
        }
    }
    p.i++;
    skip_ws(&p);
    if (p.i != p.n)
        return perr(&p, "only padding after the header dict");
    static const char *const keys[] = {"descr", "fortran_order", "shape"};
    for (int k = 0; k < 3; k++)
        if (!(h->seen & (1u << k)))
            return bp_fail(BP_EINVAL,
                           "%s: malformed .npy header: missing key '%s'", path,
                           keys[k]);
    return BP_OK;
}

/* --- dtypes ------------------------------------------------------------ */

#define SUPPORTED_DTYPES                                                       \
    "float32 '<f4', float64 '<f8', int64 '<i8', int32 '<i4', uint8 '|u1', "    \
    "int8 '|i1' or bool '|b1'"

static const struct {
    const char *code; /* kind and size, without the byte-order character */
    bp_dtype dtype;
    const char *name;
} dtype_codes[] = {
    {"f4", BP_F32, "float32"}, {"f8", BP_F64, "float64"},
    {"i8", BP_I64, "int64"},   {"i4", BP_I32, "int32"},
    {"u1", BP_U8, "uint8"},    {"i1", BP_I8, "int8"},
    {"b1", BP_U8, "bool"},
};

static const char *const save_descr[] = {"<f4", "<f8", "<i8",
                                         "<i4", "|u1", "|i1"};
_Static_assert(sizeof save_descr / sizeof save_descr[0] == BP_DTYPE_COUNT,
               "descr table");

static int parse_descr(const struct hdr *h, const char *path, bp_dtype *dt,
                       const char **name)
{
    const char *d = h->descr;
    char order = 0;
    if (*d && strchr("<>|=", *d))
        order = *d++;
    int clean = (size_t)h->descr_len == strlen(h->descr); /* no NUL inside */
    for (size_t j = 0; clean && j < sizeof dtype_codes / sizeof dtype_codes[0];
         j++) {
        if (strcmp(d, dtype_codes[j].code) != 0)
            continue;
        int one_byte = d[1] == '1';
        if (order == '>' && !one_byte)
            return bp_fail(BP_EUNSUPPORTED,
                           "%s: big-endian dtype '%s' is not supported; "
                           "convert with a.astype('<%s')",
                           path, h->descr, d);
        *dt = dtype_codes[j].dtype;
        *name = dtype_codes[j].name;
        return BP_OK;
    }
    /* A dtype numpy knows but bitplan does not (a kind letter, then an
     * item size and perhaps a unit: '<c8', '<U10', '<M8[ns]') is
     * unsupported; anything else is not a dtype at all. */
    int numpy_like = (size_t)h->descr_len == strlen(h->descr) && *d &&
                     strchr("biufcmMOSUV", *d) && d[1] >= '0' && d[1] <= '9';
    for (const char *c = d + 1; numpy_like && *c; c++)
        numpy_like = (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                     *c == '[' || *c == ']';
    if (numpy_like && order == '>')
        return bp_fail(BP_EUNSUPPORTED,
                       "%s: big-endian dtype '%s' is not supported; expected "
                       "a little-endian " SUPPORTED_DTYPES,
                       path, h->descr);
    if (numpy_like)
        return bp_fail(
            BP_EUNSUPPORTED,
            "%s: dtype '%s' is not supported; expected " SUPPORTED_DTYPES, path,
            h->descr);
    return bp_fail(BP_EINVAL,
                   "%s: malformed .npy header: unknown dtype '%.*s'; "
                   "expected " SUPPORTED_DTYPES,
                   path, h->descr_len > 40 ? 40 : h->descr_len, h->descr);
}

/* --- opening --------------------------------------------------------- */

static int read_exact(FILE *fp, void *buf, size_t n, const char *path,
                      const char *what)
{
    if (fread(buf, 1, n, fp) == n)
        return BP_OK;
    if (ferror(fp))
        return bp_fail(BP_EIO, "%s: cannot read %s: %s", path, what,
                       strerror(errno));
    return bp_fail(BP_EINVAL, "%s: file ends inside %s", path, what);
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
           (uint32_t)b[3] << 24;
}

/* Validates the prefix and header of f->fp and fills f. */
static int read_header(bp_npy *f, int64_t file_size)
{
    const char *path = f->path;
    unsigned char pre[12];
    if (file_size == 0)
        return bp_fail(BP_EINVAL, "%s: file is empty, expected a .npy file",
                       path);
    if (file_size < MAGIC_LEN + 2 ||
        (read_exact(f->fp, pre, MAGIC_LEN + 2, path, "the magic") != BP_OK) ||
        memcmp(pre, MAGIC, MAGIC_LEN) != 0)
        return bp_fail(BP_EINVAL,
                       "%s: not a .npy file (expected it to start with the "
                       "magic string \\x93NUMPY)",
                       path);
    int major = pre[6], minor = pre[7];
    if (minor != 0 || major < 1 || major > 3)
        return bp_fail(BP_EUNSUPPORTED,
                       "%s: .npy format version %d.%d is not supported "
                       "(expected 1.0, 2.0 or 3.0)",
                       path, major, minor);
    int lenbytes = major == 1 ? 2 : 4;
    int st =
        read_exact(f->fp, pre + 8, (size_t)lenbytes, path, "the header length");
    if (st)
        return st;
    uint32_t hlen =
        major == 1 ? (uint32_t)pre[8] | (uint32_t)pre[9] << 8 : le32(pre + 8);
    int64_t prefix = 8 + lenbytes;
    if ((int64_t)hlen > file_size - prefix)
        return bp_fail(BP_EINVAL,
                       "%s: file ends inside the header (the header declares "
                       "%lu bytes but the file holds %lld after the %lld-byte "
                       "prefix)",
                       path, (unsigned long)hlen,
                       (long long)(file_size - prefix), (long long)prefix);
    if (hlen > MAX_HEADER_LEN)
        return bp_fail(BP_EINVAL,
                       "%s: malformed .npy header: it declares %lu bytes, "
                       "over the %d-byte limit",
                       path, (unsigned long)hlen, MAX_HEADER_LEN);

    char *text = malloc(hlen ? hlen : 1);
    if (!text)
        return bp_fail(BP_ENOMEM, "%s: out of memory reading the header", path);
    struct hdr h;
    st = read_exact(f->fp, text, hlen, path, "the header");
    if (!st)
        st = parse_header(&h, text, hlen, path);
    free(text);
    if (st)
        return st;

    if ((st = parse_descr(&h, path, &f->dtype, &f->type_name)))
        return st;
    if (h.rank > BP_MAX_RANK)
        return bp_fail(BP_EUNSUPPORTED,
                       "%s: array of rank %d is not supported (expected at "
                       "most %d axes)",
                       path, h.rank, BP_MAX_RANK);
    /* A Fortran-order array of rank <= 1 has the C-order layout. */
    if (h.fortran && h.rank > 1)
        return bp_fail(BP_EUNSUPPORTED,
                       "%s: Fortran-order arrays are not supported; save "
                       "with np.ascontiguousarray",
                       path);
    char shape[BP_MAX_RANK * 21 + 3];
    bp_shape_str(shape, sizeof shape, h.rank, h.dims);
    /* The sample size is checked on its own: a zero dims[0] makes numel 0
     * whatever the other dims claim. */
    if (bp_shape_numel(h.rank, h.dims, &f->numel) != BP_OK ||
        (h.rank > 1 &&
         bp_shape_numel(h.rank - 1, h.dims + 1, &f->row_numel) != BP_OK))
        return bp_fail(BP_EINVAL,
                       "%s: malformed .npy header: shape %s is too large "
                       "(more than 2^59 elements)",
                       path, shape);

    f->rank = h.rank;
    memcpy(f->dims, h.dims, sizeof f->dims);
    f->rows = h.rank ? h.dims[0] : 1;
    if (h.rank <= 1)
        f->row_numel = 1;
    f->data_off = prefix + (int64_t)hlen;

    /* numel <= INT64_MAX / 16 and itemsize <= 8: no overflow. */
    int64_t nbytes = f->numel * (int64_t)bp_dtype_size(f->dtype);
    int64_t have = file_size - f->data_off;
    if (nbytes > have)
        return bp_fail(BP_EINVAL,
                       "%s: header declares %lld %s values (%lld bytes) of "
                       "shape %s but the file holds %lld bytes of data",
                       path, (long long)f->numel, f->type_name,
                       (long long)nbytes, shape, (long long)have);
    return BP_OK;
}

int bp_npy_open(bp_npy **out, const char *path)
{
    assert(out && path);
    bp_npy *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return bp_fail(BP_ENOMEM, "%s: out of memory", path);
    }
    int st = BP_OK;
    struct stat sb;
    f->fp = fopen(path, "rb");
    if (!f->fp)
        st = bp_fail(BP_EIO, "%s: cannot open: %s", path, strerror(errno));
    else if (fstat(fileno(f->fp), &sb) != 0)
        st = bp_fail(BP_EIO, "%s: cannot stat: %s", path, strerror(errno));
    else if (S_ISDIR(sb.st_mode))
        st = bp_fail(BP_EIO, "%s: is a directory, expected a .npy file", path);
    else if (!S_ISREG(sb.st_mode))
        st = bp_fail(BP_EIO,
                     "%s: not a regular file (a .npy file must be seekable)",
                     path);
    else
        st = read_header(f, (int64_t)sb.st_size);
    if (st) {
        bp_npy_close(&f);
        return st;
    }
    *out = f;
    return BP_OK;
}

bp_dtype bp_npy_dtype(const bp_npy *f) { return f->dtype; }
int bp_npy_rank(const bp_npy *f) { return f->rank; }
const int64_t *bp_npy_dims(const bp_npy *f) { return f->dims; }
int64_t bp_npy_count(const bp_npy *f) { return f->rows; }
int64_t bp_npy_row_numel(const bp_npy *f) { return f->row_numel; }

void bp_npy_close(bp_npy **f)
{
    if (!f || !*f)
        return;
    if ((*f)->fp)
        fclose((*f)->fp);
    free((*f)->path);
    free(*f);
    *f = NULL;
}

/* --- reading rows -------------------------------------------------------- */

static int is_float(bp_dtype dt) { return dt == BP_F32 || dt == BP_F64; }

static void int_range(bp_dtype dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case BP_I32:
        *lo = INT32_MIN;
        *hi = INT32_MAX;
        break;
    case BP_U8:
        *lo = 0;
        *hi = UINT8_MAX;
        break;
    case BP_I8:
        *lo = INT8_MIN;
        *hi = INT8_MAX;
        break;
    default:
        *lo = INT64_MIN;
        *hi = INT64_MAX;
        break;
    }
}

static void store_int(void *dst, int64_t i, bp_dtype to, int64_t v)
{
    switch (to) {
    case BP_I64: ((int64_t *)dst)[i] = v; break;
    case BP_I32: ((int32_t *)dst)[i] = (int32_t)v; break;
    case BP_U8: ((uint8_t *)dst)[i] = (uint8_t)v; break;
    case BP_I8: ((int8_t *)dst)[i] = (int8_t)v; break;
    case BP_F32: ((float *)dst)[i] = (float)v; break;
    case BP_F64: ((double *)dst)[i] = (double)v; break;
    default: break;
    }
}

static int64_t load_int(const void *src, int64_t i, bp_dtype from)
{
    switch (from) {
    case BP_I64: return ((const int64_t *)src)[i];
    case BP_I32: return ((const int32_t *)src)[i];
    case BP_U8: return ((const uint8_t *)src)[i];
    case BP_I8: return ((const int8_t *)src)[i];
    default: return 0;
    }
}

/* Sample (index along axis 0) of flat element `at`; only called when
 * row_numel > 0, as rows are read only then. */
static long long sample_of(const bp_npy *f, int64_t at)
{
    return (long long)(at / f->row_numel);
}

/* Converts n elements of f's dtype at src into dst (of dtype to); `first`
 * is the flat index of src[0] in the file, for messages. */
static int convert(const bp_npy *f, void *dst, bp_dtype to, const void *src,
                   int64_t n, int64_t first)
{
    bp_dtype from = f->dtype;
    int64_t lo, hi;
    int_range(to, &lo, &hi);
    for (int64_t i = 0; i < n; i++) {
        int64_t at = first + i;
        if (!is_float(from)) {
            int64_t v = load_int(src, i, from);
            if (!is_float(to) && (v < lo || v > hi))
                return bp_fail(BP_EINVAL,
                               "%s: value %lld at element %lld (sample %lld) "
                               "is out of range for %s",
                               f->path, (long long)v, (long long)at,
                               sample_of(f, at), bp_dtype_name(to));
            store_int(dst, i, to, v);
            continue;
        }
        double v =
            from == BP_F32 ? ((const float *)src)[i] : ((const double *)src)[i];
        if (to == BP_F32) {
            ((float *)dst)[i] = (float)v;
            continue;
        }
        if (to == BP_F64) {
            ((double *)dst)[i] = v;
            continue;
        }
        if (v != floor(v) || isinf(v)) /* also catches NaN */
            return bp_fail(BP_EINVAL,
                           "%s: value %.17g at element %lld (sample %lld) is "
                           "not an integer; cannot convert %s to %s",
                           f->path, v, (long long)at, sample_of(f, at),
                           f->type_name, bp_dtype_name(to));
        int ok = to == BP_I64 ? v >= -0x1p63 && v < 0x1p63
                              : v >= (double)lo && v <= (double)hi;
        if (!ok)
            return bp_fail(BP_EINVAL,
                           "%s: value %.17g at element %lld (sample %lld) is "
                           "out of range for %s",
                           f->path, v, (long long)at, sample_of(f, at),
                           bp_dtype_name(to));
        store_int(dst, i, to, (int64_t)v);
    }
    return BP_OK;
}

static int read_fail(const bp_npy *f, int64_t off)
{
    if (ferror(f->fp))
        return bp_fail(BP_EIO, "%s: cannot read data at byte %lld: %s", f->path,
                       (long long)off, strerror(errno));
    return bp_fail(BP_EIO,
                   "%s: file ends early at byte %lld (was it truncated "
                   "after opening?)",
                   f->path, (long long)off);
}

int bp_npy_read_rows(bp_npy *f, int64_t start, int64_t count, bp_dtype want,
                     void *dst)
{
    assert(f);
    if ((unsigned)want >= BP_DTYPE_COUNT)
        return bp_fail(BP_EINVAL, "%s: invalid target dtype %d", f->path,
                       (int)want);
    if (start < 0 || count < 0 || start > f->rows || count > f->rows - start)
        return bp_fail(BP_EINVAL,
                       "%s: cannot read samples [%lld, %lld + %lld): the "
                       "file holds %lld",
                       f->path, (long long)start, (long long)start,
                       (long long)count, (long long)f->rows);
    if (count == 0 || f->row_numel == 0)
        return BP_OK;
    assert(dst);

    size_t isz = bp_dtype_size(f->dtype), wsz = bp_dtype_size(want);
    int64_t first = start * f->row_numel; /* <= numel: no overflow */
    int64_t n = count * f->row_numel;
    int64_t off = f->data_off + first * (int64_t)isz;
    if ((int64_t)(off_t)off != off || fseeko(f->fp, (off_t)off, SEEK_SET) != 0)
        return bp_fail(BP_EIO, "%s: cannot seek to byte %lld: %s", f->path,
                       (long long)off, strerror(errno));

    if (want == f->dtype) {
        if ((uint64_t)n > SIZE_MAX / isz)
            return bp_fail(BP_EINVAL, "%s: read of %lld elements is too large",
                           f->path, (long long)n);
        size_t got = fread(dst, isz, (size_t)n, f->fp);
        if (got != (size_t)n)
            return read_fail(f, off + (int64_t)(got * isz));
        return BP_OK;
    }

    /* Convert through a bounded buffer (malloc: suitably aligned for any
     * dtype, and kept off small thread stacks). */
    void *buf = malloc(CONVERT_CHUNK);
    if (!buf)
        return bp_fail(BP_ENOMEM, "%s: out of memory", f->path);
    int64_t per = (int64_t)(CONVERT_CHUNK / isz);
    int st = BP_OK;
    for (int64_t done = 0; done < n && !st;) {
        size_t k = (size_t)(n - done < per ? n - done : per);
        size_t got = fread(buf, isz, k, f->fp);
        if (got != k)
            st = read_fail(f, off + (done + (int64_t)got) * (int64_t)isz);
        else
            st = convert(f, (char *)dst + (size_t)done * wsz, want, buf,
                         (int64_t)k, first + done);
        done += (int64_t)k;
    }
    free(buf);
    return st;
}

/* --- whole-file load and save -------------------------------------------- */

int bp_npy_load(bp_tensor **out, const char *path)
{
    assert(out && path);
    bp_npy *f;
    int st = bp_npy_open(&f, path);
    if (st)
        return st;
    bp_tensor *t = NULL;
    st = bp_tensor_new(&t, f->dtype, f->rank, f->dims);
    if (st) {
        char why[512];
        snprintf(why, sizeof why, "%s", bp_errmsg());
        st = bp_fail(st, "%s: cannot load: %s", path, why);
    } else {
        st = bp_npy_read_rows(f, 0, f->rows, f->dtype, t->data);
    }
    bp_npy_close(&f);
    if (st) {
        bp_tensor_free(&t);
        return st;
    }
    *out = t;
    return BP_OK;
}

/* The header of a version 1.0 file of dtype dt and shape (rank, dims)
 * exactly as numpy 1.24 writes it: sorted keys, repr() values, spare room
 * for axis 0 to grow, space padding and '\n' to a multiple of ARRAY_ALIGN
 * bytes counting the 10-byte prefix.  Writes prefix and header to fp. */
static void write_header(FILE *fp, bp_dtype dt, int rank, const int64_t *dims)
{
    char hdr[512];
    int k = snprintf(hdr, sizeof hdr,
                     "{'descr': '%s', 'fortran_order': False, "
                     "'shape': (",
                     save_descr[dt]);
    for (int i = 0; i < rank; i++)
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%s%lld", i ? ", " : "",
                      (long long)dims[i]);
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%s), }",
                  rank == 1 ? "," : "");
    if (rank > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)dims[0]);
        for (int i = digits; i < GROWTH_AXIS_MAX_DIGITS; i++)
            hdr[k++] = ' ';
    }
    int hlen = k + 1; /* with the '\n' */
    int pad = ARRAY_ALIGN - (MAGIC_LEN + 4 + hlen) % ARRAY_ALIGN;
    assert((size_t)(k + pad + 1) <= sizeof hdr);
    memset(hdr + k, ' ', (size_t)pad);
    k += pad;
    hdr[k++] = '\n';
    unsigned char pre[10] = MAGIC "\x01\x00"; /* version 1.0 */
    pre[8] = (unsigned char)(k & 0xff);
    pre[9] = (unsigned char)(k >> 8);
    fwrite(pre, 1, sizeof pre, fp);
    fwrite(hdr, 1, (size_t)k, fp);
}

int bp_npy_save(const char *path, const bp_tensor *t)
{
    assert(path && t);
    int64_t numel;
    if ((unsigned)t->dtype >= BP_DTYPE_COUNT ||
        bp_shape_numel(t->rank, t->dims, &numel) != BP_OK ||
        (numel > 0 && !t->data))
        return bp_fail(BP_EINVAL, "%s: cannot save an invalid tensor", path);
    bp_outfile *of;
    int st = bp_outfile_open(&of, path);
    if (st)
        return st;
    FILE *fp = bp_outfile_stream(of);
    write_header(fp, t->dtype, t->rank, t->dims);
    if (numel > 0)
        fwrite(t->data, bp_dtype_size(t->dtype), (size_t)numel, fp);
    return bp_outfile_commit(&of); /* reports any failed write */
}

struct bp_npy_writer {
    bp_outfile *of;
    bp_dtype dtype;
    int64_t rows, written, row_numel;
    char *path;
};

int bp_npy_writer_open(bp_npy_writer **out, const char *path, bp_dtype dt,
                       int rank, const int64_t *dims)
{
    assert(out && path);
    int64_t numel;
    if ((unsigned)dt >= BP_DTYPE_COUNT || rank < 1 || rank > BP_MAX_RANK ||
        bp_shape_numel(rank, dims, &numel) != BP_OK)
        return bp_fail(BP_EINVAL, "%s: cannot save an invalid shape", path);
    bp_npy_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return bp_fail(BP_ENOMEM, "%s: out of memory", path);
    }
    int st = bp_outfile_open(&w->of, path);
    if (st) {
        free(w->path);
        free(w);
        return st;
    }
    w->dtype = dt;
    w->rows = dims[0];
    w->row_numel = 1;
    for (int i = 1; i < rank; i++)
        w->row_numel *= dims[i];
    write_header(bp_outfile_stream(w->of), dt, rank, dims);
    *out = w;
    return BP_OK;
}

int bp_npy_writer_rows(bp_npy_writer *w, const void *data, int64_t count)
{
    if (count < 0 || count > w->rows - w->written)
        return bp_fail(BP_EINVAL, "%s: %lld more rows than the %lld declared",
                       w->path, (long long)(w->written + count - w->rows),
                       (long long)w->rows);
    if (count)
        fwrite(data, bp_dtype_size(w->dtype), (size_t)(count * w->row_numel),
               bp_outfile_stream(w->of));
    w->written += count;
    return BP_OK;
}

int bp_npy_writer_commit(bp_npy_writer **wp)
{
    bp_npy_writer *w = *wp;
    int st;
    if (w->written != w->rows) {
        st = bp_fail(BP_EINVAL, "%s: %lld rows written of the %lld declared",
                     w->path, (long long)w->written, (long long)w->rows);
        bp_outfile_abort(&w->of);
    } else {
        st = bp_outfile_commit(&w->of);
    }
    free(w->path);
    free(w);
    *wp = NULL;
    return st;
}

void bp_npy_writer_abort(bp_npy_writer **wp)
{
    if (!wp || !*wp)
        return;
    bp_outfile_abort(&(*wp)->of);
    free((*wp)->path);
    free(*wp);
    *wp = NULL;
}
