#include "lmf/kernels.h"
#include "lmf/detmath.h"

#include <string.h>

/* Which variant of the integer kernels this build uses (see kernels.h). All
 * three return the same integers; -DLMF_PORTABLE_KERNELS forces the plain
 * loops, -DLMF_WORD_KERNELS the word-at-a-time ones (e.g. to test them on a
 * host). */
#if !defined(LMF_PORTABLE_KERNELS) && !defined(LMF_WORD_KERNELS)
#if defined(__SSE2__)
#include <emmintrin.h>
#define LMF_SSE2_KERNELS 1
#elif defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LMF_WORD_KERNELS 1
#endif
#endif

/* The matrix products on the ESP32-S3's PIE (kernels_esp32s3.S), or its C
 * emulation: the same integers, from int8 activations (lmf_qvec.x8). */
#if defined(LMF_PIE_KERNELS) || defined(LMF_PIE_EMULATE)
#define LMF_PIE_MATVEC 1
#endif

#if defined(__GNUC__) && !defined(__clang__)
/* GCC's pre-allocation scheduler hoists the loads of an unrolled loop until
 * the lx106's 16 registers spill; without it the word kernels stay in
 * registers. */
#define LMF_NO_SCHEDULE __attribute__((optimize("no-schedule-insns")))
#else
#define LMF_NO_SCHEDULE
#endif

#if defined(__GNUC__)
#define LMF_NOINLINE __attribute__((noinline))
#else
#define LMF_NOINLINE
#endif

/* ---- quantization --------------------------------------------------------- */

/* The scale of a group of n values, its largest |x| / 127, and through *inv
 * the factor that takes x to [-127, 127]. The largest |x| is found on the bit
 * patterns (monotonic for non-NaN floats; an integer compare where a float
 * compare is a library call). A group that is all zero, holds an inf or
 * NaN, or whose largest |x| is below 2^-120 gets scale 0 and *inv 0: it is
 * quantized to zeros. Below 2^-120 (about 7.5e-37), 127 / max overflows a
 * float and x * inf is no integer at all; such values are zero to int8 anyway. */
#define TINY_MAX_BITS 0x03800000u /* 2^-120 */
static float group_scale(const float *x, uint32_t n, float *inv)
{
    uint32_t i, max_bits = 0;
    for (i = 0; i < n; i++) {
        uint32_t a = lmf_abs_bits(x[i]);
        if (a > max_bits) max_bits = a;
    }
    if (max_bits < TINY_MAX_BITS || max_bits >= 0x7F800000u) {
        *inv = 0.0f;
        return 0.0f;
    }
    *inv = 127.0f / lmf_u2f(max_bits);
    return lmf_u2f(max_bits) * (1.0f / 127.0f);
}

void lmf_quantize_groups(int8_t *q, float *scales, const float *x, uint32_t n, uint32_t group)
{
    uint32_t start, i;
    for (start = 0; start < n; start += group) {
        uint32_t end = n - start < group ? n : start + group;
        float inv;
        *scales++ = group_scale(x + start, end - start, &inv);
        if (lmf_f2u(inv) == 0)
            for (i = start; i < end; i++) q[i] = 0;
        else
            for (i = start; i < end; i++) q[i] = (int8_t)lmf_round_small(x[i] * inv);
    }
}

/* One group of quantize_vec: q = round(x * k) into q8 or q16 (one of them
 * NULL), returning Σ q. k and the pointers are parameters, not lmf_qvec
 * fields or an address-taken local: an int8 store may alias anything, and
 * the loop would reload them from memory after each one (not inlined, so
 * that k stays in a register: 10 instructions an element on the S3, from 14). */
LMF_NOINLINE static int32_t quantize_run(int8_t *q8, int16_t *q16, const float *x, uint32_t n, float k)
{
    int32_t sum = 0;
    uint32_t i;
    if (q8)
        for (i = 0; i < n; i++) {
            int32_t q = lmf_round_small(x[i] * k);
            q8[i] = (int8_t)q;
            sum += q;
        }
    else
        for (i = 0; i < n; i++) {
            int32_t q = lmf_round_small(x[i] * k);
            q16[i] = (int16_t)q;
            sum += q;
        }
    return sum;
}

void lmf_quantize_vec(lmf_qvec *v, const float *x, uint32_t n, uint32_t group)
{
    uint32_t start, i, g = 0, padded = (n + 15) & ~15u;
    int8_t *x8 = NULL;
#if defined(LMF_PIE_MATVEC)
    x8 = v->x8; /* int8, where the PIE kernels load it (the same memory as x) */
#endif
    v->n = n;
    v->group = group;
    for (start = 0; start < n; start += group, g++) {
        uint32_t end = n - start < group ? n : start + group;
        float inv;
        v->scale[g] = group_scale(x + start, end - start, &inv);
        if (lmf_f2u(inv) == 0) {
            for (i = start; i < end; i++)
                if (x8) x8[i] = 0; else v->x[i] = 0;
            v->sum[g] = 0;
        } else {
            v->sum[g] = quantize_run(x8 ? x8 + start : NULL, x8 ? NULL : v->x + start, x + start, end - start, inv);
        }
    }
    for (i = n; i < padded; i++)
        if (x8) x8[i] = 0; else v->x[i] = 0;
}

/* ---- helpers shared by the matrix and attention kernels -------------------- */

#if defined(LMF_WORD_KERNELS)
/* Four weights from one aligned 32-bit load, as offset binary (w + 128) so
 * that each byte is one unsigned extract. Rows, the cache and the blob are
 * 16-byte aligned; the builtin lets GCC emit a single l32i. */
static inline uint32_t offset_word(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, __builtin_assume_aligned(p, 4), 4);
    return v ^ 0x80808080u;
}
#define BYTE0(u) ((int32_t)((u) & 0xFF))
#define BYTE1(u) ((int32_t)(((u) >> 8) & 0xFF))
#define BYTE2(u) ((int32_t)(((u) >> 16) & 0xFF))
#define BYTE3(u) ((int32_t)((u) >> 24))

static inline int32_t mac4(uint32_t u, int32_t x0, int32_t x1, int32_t x2, int32_t x3)
{
    return BYTE0(u) * x0 + BYTE1(u) * x1 + BYTE2(u) * x2 + BYTE3(u) * x3;
}
#endif

#if defined(LMF_SSE2_KERNELS)
/* The four lanes of a, b, c and d each summed: {Σa, Σb, Σc, Σd}. */
static inline __m128i sum4x4(__m128i a, __m128i b, __m128i c, __m128i d)
{
    __m128i ab = _mm_add_epi32(_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b));
    __m128i cd = _mm_add_epi32(_mm_unpacklo_epi32(c, d), _mm_unpackhi_epi32(c, d));
    return _mm_add_epi32(_mm_unpacklo_epi64(ab, cd), _mm_unpackhi_epi64(ab, cd));
}
#endif

/* ---- dot products of matrix rows with an activation vector ----------------
 * dot_rows(d, w, stride, x, n, bias): d[k] = Σ_{j<n} w[k*stride + j] * x[j]
 * for the LMF_ROWS rows from w, n a multiple of 16; dot_row the same for
 * one row. bias = 128 * Σ x[0..n), which the offset-binary kernels subtract. */

#if defined(LMF_PIE_MATVEC)
/* lmf_matvec_q8 below uses lmf_pie_dots_s8 instead. */

#elif defined(LMF_SSE2_KERNELS)
#define LMF_ROWS 4

/* acc + 16 int8 weights times 16 int16 activations, in 4 int32 lanes: the
 * bytes are widened by unpacking them with themselves and shifting right. */
static inline __m128i madd16(__m128i acc, const int8_t *w, __m128i xlo, __m128i xhi)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)w);
    acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8), xlo));
    return _mm_add_epi32(acc, _mm_madd_epi16(_mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8), xhi));
}

static void dot_rows(int32_t *d, const int8_t *w, size_t stride, const int16_t *x, uint32_t n, int32_t bias)
{
    __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
    uint32_t j;
    (void)bias;
    for (j = 0; j < n; j += 16) {
        __m128i xlo = _mm_loadu_si128((const __m128i *)(const void *)(x + j));
        __m128i xhi = _mm_loadu_si128((const __m128i *)(const void *)(x + j + 8));
        a0 = madd16(a0, w + j, xlo, xhi);
        a1 = madd16(a1, w + stride + j, xlo, xhi);
        a2 = madd16(a2, w + 2 * stride + j, xlo, xhi);
        a3 = madd16(a3, w + 3 * stride + j, xlo, xhi);
    }
    _mm_storeu_si128((__m128i *)(void *)d, sum4x4(a0, a1, a2, a3));
}

static int32_t dot_row(const int8_t *w, const int16_t *x, uint32_t n, int32_t bias)
{
    __m128i a = _mm_setzero_si128(), z = a;
    int32_t d[4];
    uint32_t j;
    (void)bias;
    for (j = 0; j < n; j += 16) {
        __m128i xlo = _mm_loadu_si128((const __m128i *)(const void *)(x + j));
        __m128i xhi = _mm_loadu_si128((const __m128i *)(const void *)(x + j + 8));
        a = madd16(a, w + j, xlo, xhi);
    }
    _mm_storeu_si128((__m128i *)(void *)d, sum4x4(a, z, z, z));
    return d[0];
}

#elif defined(LMF_WORD_KERNELS)
#define LMF_ROWS 2

/* Two rows, eight columns a step: the activations are loaded once for both
 * rows, and everything stays in the lx106's registers (4.3 instructions a
 * multiply-accumulate). */
LMF_NO_SCHEDULE static void dot_rows(int32_t *d, const int8_t *w, size_t stride, const int16_t *x, uint32_t n, int32_t bias)
{
    const int8_t *w1 = w + stride, *end = w + n;
    int32_t a = 0, b = 0;
    for (; w < end; w += 8, w1 += 8, x += 8) {
        int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        a += mac4(offset_word(w), x0, x1, x2, x3);
        b += mac4(offset_word(w1), x0, x1, x2, x3);
        x0 = x[4], x1 = x[5], x2 = x[6], x3 = x[7];
        a += mac4(offset_word(w + 4), x0, x1, x2, x3);
        b += mac4(offset_word(w1 + 4), x0, x1, x2, x3);
    }
    d[0] = a - bias;
    d[1] = b - bias;
}

LMF_NO_SCHEDULE static int32_t dot_row(const int8_t *w, const int16_t *x, uint32_t n, int32_t bias)
{
    const int8_t *end = w + n;
    int32_t a = 0;
    for (; w < end; w += 8, x += 8)
        a += mac4(offset_word(w), x[0], x[1], x[2], x[3]) + mac4(offset_word(w + 4), x[4], x[5], x[6], x[7]);
    return a - bias;
}

#else
#define LMF_ROWS 1

static int32_t dot_row(const int8_t *w, const int16_t *x, uint32_t n, int32_t bias)
{
    int32_t sum = 0;
    uint32_t j;
    (void)bias;
    for (j = 0; j < n; j++) sum += w[j] * x[j];
    return sum;
}

static void dot_rows(int32_t *d, const int8_t *w, size_t stride, const int16_t *x, uint32_t n, int32_t bias)
{
    (void)stride;
    d[0] = dot_row(w, x, n, bias);
}
#endif

#if defined(LMF_PIE_MATVEC)

#if defined(LMF_PIE_EMULATE)
/* What kernels_esp32s3.S computes, step by step: a 128-bit load reads the
 * 16 bytes at the address with its low 4 bits cleared; each
 * EE.VMULAS.S8.ACCX adds the sum of 16 int8 x int8 products to the 40-bit
 * ACCX (two's complement, wrapping); EE.SRS.ACCX with shift 0 saturates ACCX
 * to int32. A misaligned pointer therefore gives the same wrong answer here
 * as on the chip. */
static const int8_t *pie_load_address(const int8_t *p)
{
    return (const int8_t *)(const void *)((uintptr_t)p & ~(uintptr_t)15);
}

static int64_t accx_add(int64_t accx, int32_t v)
{
    uint64_t u = ((uint64_t)accx + (uint64_t)(int64_t)v) & 0xFFFFFFFFFFull; /* 40 bits */
    return (u & 0x8000000000ull) ? (int64_t)u - (int64_t)0x10000000000ll : (int64_t)u;
}

void lmf_pie_dots_s8(int32_t *d, const int8_t *w, uint32_t stride, const int8_t *x, uint32_t blocks, uint32_t rows)
{
    uint32_t k, b, i;
    for (k = 0; k < rows; k++, w += stride) {
        const int8_t *wp = w, *xp = x;
        int64_t accx = 0;                                   /* EE.ZERO.ACCX */
        for (b = 0; b < blocks; b++, wp += 16, xp += 16) {  /* EE.VLD.128.IP x2 */
            const int8_t *qw = pie_load_address(wp), *qx = pie_load_address(xp);
            int32_t sum = 0;
            for (i = 0; i < 16; i++) sum += qw[i] * qx[i];
            accx = accx_add(accx, sum);                     /* EE.VMULAS.S8.ACCX */
        }
        d[k] = accx > INT32_MAX ? INT32_MAX : accx < INT32_MIN ? INT32_MIN : (int32_t)accx; /* EE.SRS.ACCX, 0 */
    }
}
#endif

#if defined(LMF_PIE_KERNELS)
void lmf_pie_dots4_s8(int32_t *d, const int8_t *w, uint32_t stride, const int8_t *x, uint32_t rows);

/* lmf_pie_dots_s8, through the kernel for four blocks (64 columns, the
 * activations kept in registers) when that is the length: the same sums. */
static void pie_dots(int32_t *d, const int8_t *w, uint32_t stride, const int8_t *x, uint32_t blocks, uint32_t rows)
{
    if (blocks == 4 && stride >= 64) lmf_pie_dots4_s8(d, w, stride, x, rows);
    else lmf_pie_dots_s8(d, w, stride, x, blocks, rows);
}
#else
#define pie_dots lmf_pie_dots_s8
#endif

/* Rows a kernel call covers: d[] lives on the stack (a whole matrix's worth
 * would not: esp-nn's trap of 4 bytes per output row on the stack); 64 rows,
 * 256 bytes, where 16 rows cost the S3 16 k instructions a token more in
 * per-call work (574,104 against 558,024). */
#define LMF_PIE_ROWS 64

/* o[k] = d[k] * (ws[k * ng] * xs), and in scale_add o[k] + that, for k <
 * rows. In their own functions, with everything in parameters: inside
 * lmf_matvec_q8's row loop GCC gives them no zero-overhead loop on the S3
 * (two instructions a row more). */
LMF_NOINLINE static void scale_store(float *o, const int32_t *d, const float *ws, uint32_t ng, float xs, uint32_t rows)
{
    uint32_t k;
    for (k = 0; k < rows; k++, ws += ng) o[k] = (float)d[k] * (*ws * xs);
}

LMF_NOINLINE static void scale_add(float *o, const int32_t *d, const float *ws, uint32_t ng, float xs, uint32_t rows)
{
    uint32_t k;
    for (k = 0; k < rows; k++, ws += ng) o[k] = o[k] + (float)d[k] * (*ws * xs);
}

/* A block of up to LMF_PIE_ROWS rows at a time, its groups in order, so that each
 * row's float sum runs in the same order as in the other variants. */
void lmf_matvec_q8(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1)
{
    uint32_t r, g, rows, G = w->group, ng = w->n_groups;
    uint32_t tail = ((w->cols - (ng - 1) * G) + 15) & ~15u;
    int32_t d[LMF_PIE_ROWS];
    /* lmf_pie_dots_s8's preconditions (kernels.h), which the assembly does
     * not check: rows >= 1, since each call covers min(LMF_PIE_ROWS, r1 - r) rows with
     * r < r1; blocks >= 1, since every group but the last has G columns, a
     * multiple of 16 from 16 (blob.c refuses other group sizes), and the last
     * has at least one column, rounded up to 16. A corrupt matrix that breaks
     * them is refused here rather than run past its rows. */
    if (r0 >= r1 || G < 16 || G % 16 != 0 || ng == 0 || w->cols <= (ng - 1) * G) return;
    for (r = r0; r < r1; r += rows) {
        rows = r1 - r < LMF_PIE_ROWS ? r1 - r : LMF_PIE_ROWS;
        for (g = 0; g < ng; g++) {
            uint32_t len = g + 1 < ng ? G : tail;
            float xs = x->scale[g];
            const float *ws = w->scale + (size_t)r * ng + g;
            float *o = out + r;
            pie_dots(d, w->q + (size_t)r * w->stride + g * G, w->stride, x->x8 + g * G, len / 16, rows);
            /* |d| < 2^22, so the conversion is exact; the first group
             * stores, the others add, each row's sum in group order */
            if (g == 0) scale_store(o, d, ws, ng, xs, rows);
            else scale_add(o, d, ws, ng, xs, rows);
        }
    }
}

#else

void lmf_matvec_q8(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1)
{
    uint32_t r, g, k, G = w->group, ng = w->n_groups;
    /* the last group's length, rounded up to 16: the padding is zero on both sides */
    uint32_t tail = ((w->cols - (ng - 1) * G) + 15) & ~15u;
    int32_t d[LMF_ROWS];
    for (g = 0; g < ng; g++) {
        uint32_t len = g + 1 < ng ? G : tail;
        const int16_t *xg = x->x + g * G;
        const int8_t *col = w->q + g * G;
        int32_t bias = 128 * x->sum[g];
        float xs = x->scale[g];
        for (r = r0; r < r1; r += k) {
            const int8_t *row = col + (size_t)r * w->stride;
            uint32_t rows = r1 - r >= LMF_ROWS ? LMF_ROWS : 1;
            if (rows == LMF_ROWS) dot_rows(d, row, w->stride, xg, len, bias);
            else d[0] = dot_row(row, xg, len, bias);
            for (k = 0; k < rows; k++) {
                /* |d| < 2^22, so the conversion is exact */
                float p = (float)d[k] * (w->scale[(size_t)(r + k) * ng + g] * xs);
                out[r + k] = g == 0 ? p : out[r + k] + p;
            }
        }
    }
}
#endif

/* ---- int4 matrices ---------------------------------------------------------
 * Unpacked to int8 a group at a time, then the int8 code above: the integers
 * and the float order are those of lmf_matvec_q8, so int4 needs no kernel
 * variant of its own to stay bit-identical across targets. The S3 has one
 * for speed (pie_matvec_q4: the unpack in PIE registers, the same integers
 * and float order; kernel-check.c compares it with this C). */

/* A packed byte's two int8 values as the 16-bit little-endian word they make
 * in memory: the low nibble's value in the low byte. One table load and one
 * 16-bit store a byte instead of two sign extensions and two byte stores. */
#define Q4_NIBBLE(v) ((uint16_t)((((v) & 15) ^ 8) - 8) & 0xFFu)
#define Q4_PAIR(b) (uint16_t)(Q4_NIBBLE(b) | Q4_NIBBLE((b) >> 4) << 8)
#define Q4_P4(b) Q4_PAIR(b), Q4_PAIR((b) + 1), Q4_PAIR((b) + 2), Q4_PAIR((b) + 3)
#define Q4_P16(b) Q4_P4(b), Q4_P4((b) + 4), Q4_P4((b) + 8), Q4_P4((b) + 12)
#define Q4_P64(b) Q4_P16(b), Q4_P16((b) + 16), Q4_P16((b) + 32), Q4_P16((b) + 48)
static const uint16_t q4_pairs[256] = {Q4_P64(0), Q4_P64(64), Q4_P64(128), Q4_P64(192)};

/* n int8 values (n even) from n / 2 bytes: low nibble first, signed 4-bit. */
static void unpack_q4(int8_t *out, const uint8_t *p, uint32_t n)
{
    uint32_t j;
    for (j = 0; j < n / 2; j++) memcpy(out + 2 * j, &q4_pairs[p[j]], 2);
}

/* Σ_{j<n} w[j] * x[start + j], n a multiple of 16, w 16-byte aligned. */
static int32_t dot_unpacked(const int8_t *w, const lmf_qvec *x, uint32_t start, uint32_t n, int32_t bias)
{
#if defined(LMF_PIE_MATVEC)
    /* the activations are int8 here (x->x8, 16-byte aligned, start a multiple
     * of 16); the PIE kernel's exact sum of one row of n / 16 >= 1 blocks */
    int32_t d;
    (void)bias;
    lmf_pie_dots_s8(&d, w, 16, x->x8 + start, n / 16, 1);
    return d;
#else
    return dot_row(w, x->x + start, n, bias);
#endif
}

#if defined(LMF_PIE_KERNELS)
void lmf_pie_dots_q4(int32_t *d, const uint8_t *w, uint32_t stride, const int8_t *x, uint32_t halves, uint32_t rows);
void lmf_pie_dots4_q4(int32_t *d, const uint8_t *w, uint32_t stride, const int8_t *x, uint32_t rows);
void lmf_pie_dots2_q4(int32_t *d, const uint8_t *w, uint32_t stride, const int8_t *x, uint32_t halves, uint32_t rows);

/* lmf_matvec_q4 on the S3 for a group size that is a multiple of 16 (blob.c
 * aligns rows and strides to 16): the nibbles unpacked in PIE registers
 * (kernels_esp32s3.S), the rows in blocks and the float sums as
 * lmf_matvec_q8 does them, which is the order of the portable loop below
 * (each row's groups in order). For a multiple of 32 every group's packed
 * bytes start 16-byte aligned; for an odd multiple (16, the calibrated
 * default, 48, ...) only the even groups' do, and lmf_pie_dots2_q4 takes an
 * even group with the odd one after it.
 * Returns 0, having done nothing, when the matrix is not laid out for it. */
static int pie_matvec_q4(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1)
{
    uint32_t r, g, rows, G = w->group, ng = w->n_groups;
    uint32_t tail = ((w->cols - (ng - 1) * G) + 15) & ~15u;
    int32_t d[2 * LMF_PIE_ROWS];
    if (G % 16 != 0 || w->stride % 16 != 0 || ((uintptr_t)w->q4 & 15) != 0) return 0;
    /* the kernels' preconditions, as in lmf_matvec_q8: rows >= 1, halves >= 1 */
    if (r0 >= r1 || ng == 0 || w->cols <= (ng - 1) * G) return 1;
    for (r = r0; r < r1; r += rows) {
        rows = r1 - r < LMF_PIE_ROWS ? r1 - r : LMF_PIE_ROWS;
        for (g = 0; g < ng; g++) {
            uint32_t len = g + 1 < ng ? G : tail;
            float xs = x->scale[g];
            const float *ws = w->scale + (size_t)r * ng + g;
            const uint8_t *p = w->q4 + (size_t)r * w->stride + g * G / 2;
            if (G % 32 != 0 && g + 1 < ng) {
                /* this (even) group and the next, which starts 8 bytes into a block */
                uint32_t next = g + 2 < ng ? G : tail;
                lmf_pie_dots2_q4(d, p, w->stride, x->x8 + g * G, G / 16 | next / 16 << 16, rows);
                if (g == 0) scale_store(out + r, d, ws, ng, xs, rows);
                else scale_add(out + r, d, ws, ng, xs, rows);
                g++;
                scale_add(out + r, d + rows, ws + 1, ng, x->scale[g], rows);
                continue;
            }
            if (len == 64) lmf_pie_dots4_q4(d, p, w->stride, x->x8 + g * G, rows);
            else lmf_pie_dots_q4(d, p, w->stride, x->x8 + g * G, len / 16, rows);
            if (g == 0) scale_store(out + r, d, ws, ng, xs, rows);
            else scale_add(out + r, d, ws, ng, xs, rows);
        }
    }
    return 1;
}
#endif

void lmf_matvec_q4(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1)
{
    uint32_t r, g, G = w->group, ng = w->n_groups;
    uint32_t tail = ((w->cols - (ng - 1) * G) + 15) & ~15u;
    _Alignas(16) int8_t unpacked[LMF_MAX_GROUP];
#if defined(LMF_PIE_KERNELS)
    if (pie_matvec_q4(out, w, x, r0, r1)) return;
#endif
    for (r = r0; r < r1; r++) {
        const uint8_t *row = w->q4 + (size_t)r * w->stride;
        float acc = 0.0f;
        for (g = 0; g < ng; g++) {
            uint32_t len = g + 1 < ng ? G : tail;
            float p;
            unpack_q4(unpacked, row + g * G / 2, len);
            /* |d| < 2^22 as for q8, so the conversion is exact */
            p = (float)dot_unpacked(unpacked, x, g * G, len, 128 * x->sum[g]) * (w->scale[(size_t)r * ng + g] * x->scale[g]);
            acc = g == 0 ? p : acc + p;
        }
        out[r] = acc;
    }
}

void lmf_matvec(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1)
{
    if (w->dtype == LMF_DTYPE_Q4) lmf_matvec_q4(out, w, x, r0, r1);
    else lmf_matvec_q8(out, w, x, r0, r1);
}

/* ---- attention ------------------------------------------------------------ */

#if defined(LMF_SSE2_KERNELS)
/* Head size 8 (stories260K): a 16-byte load holds two positions' keys; four
 * positions' products are summed across lanes together. */
static void dots_hs8(int32_t *dot, const int16_t *q, const int8_t *keys, uint32_t count)
{
    __m128i qv = _mm_loadu_si128((const __m128i *)(const void *)q);
    uint32_t t = 0;
    for (; t + 4 <= count; t += 4, keys += 32) {
        __m128i k01 = _mm_loadu_si128((const __m128i *)(const void *)keys);
        __m128i k23 = _mm_loadu_si128((const __m128i *)(const void *)(keys + 16));
        __m128i m0 = _mm_madd_epi16(_mm_srai_epi16(_mm_unpacklo_epi8(k01, k01), 8), qv);
        __m128i m1 = _mm_madd_epi16(_mm_srai_epi16(_mm_unpackhi_epi8(k01, k01), 8), qv);
        __m128i m2 = _mm_madd_epi16(_mm_srai_epi16(_mm_unpacklo_epi8(k23, k23), 8), qv);
        __m128i m3 = _mm_madd_epi16(_mm_srai_epi16(_mm_unpackhi_epi8(k23, k23), 8), qv);
        _mm_storeu_si128((__m128i *)(void *)(dot + t), sum4x4(m0, m1, m2, m3));
    }
    for (; t < count; t++, keys += 8) {
        int32_t sum = 0, i;
        for (i = 0; i < 8; i++) sum += q[i] * keys[i];
        dot[t] = sum;
    }
}

/* Head size 8: two positions a step. Their values are interleaved
 * (a0 b0 a1 b1 ...) and widened, so that pmaddwd with (wa wb wa wb ...)
 * gives a_i*wa + b_i*wb in each lane. */
static void weighted_sum_hs8(int32_t *acc, const int16_t *w, const int8_t *values, uint32_t count)
{
    __m128i lo = _mm_setzero_si128(), hi = lo;
    uint32_t t = 0, i;
    for (; t + 2 <= count; t += 2, values += 16) {
        __m128i ab = _mm_loadu_si128((const __m128i *)(const void *)values);
        __m128i mix = _mm_unpacklo_epi8(ab, _mm_srli_si128(ab, 8));
        int32_t pair;
        __m128i wv;
        memcpy(&pair, w + t, 4);
        wv = _mm_shuffle_epi32(_mm_cvtsi32_si128(pair), 0);
        lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_srai_epi16(_mm_unpacklo_epi8(mix, mix), 8), wv));
        hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_srai_epi16(_mm_unpackhi_epi8(mix, mix), 8), wv));
    }
    _mm_storeu_si128((__m128i *)(void *)acc, lo);
    _mm_storeu_si128((__m128i *)(void *)(acc + 4), hi);
    for (; t < count; t++, values += 8)
        for (i = 0; i < 8; i++) acc[i] += w[t] * values[i];
}
#endif

#if defined(LMF_WORD_KERNELS)
LMF_NO_SCHEDULE static void dots_words(int32_t *dot, const int16_t *q, const int8_t *keys, uint32_t hs, uint32_t count)
{
    int32_t bias = 0;
    uint32_t t, i;
    for (i = 0; i < hs; i++) bias += 128 * q[i];
    for (t = 0; t < count; t++, keys += hs) {
        int32_t sum = 0;
        for (i = 0; i < hs; i += 4) sum += mac4(offset_word(keys + i), q[i], q[i + 1], q[i + 2], q[i + 3]);
        dot[t] = sum - bias;
    }
}

/* Four columns at a time down all positions, in registers. Unsigned sums:
 * Σ (v+128)*w may pass 2^31 although the result fits. */
LMF_NO_SCHEDULE static void weighted_sum_words(int32_t *acc, const int16_t *w, const int8_t *values, uint32_t hs, uint32_t count)
{
    uint32_t i, t;
    for (i = 0; i < hs; i += 4) {
        const int8_t *v = values + i;
        uint32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, wsum = 0;
        for (t = 0; t < count; t++, v += hs) {
            uint32_t u = offset_word(v), wt = (uint32_t)(int32_t)w[t];
            a0 += (u & 0xFF) * wt;
            a1 += ((u >> 8) & 0xFF) * wt;
            a2 += ((u >> 16) & 0xFF) * wt;
            a3 += (u >> 24) * wt;
            wsum += wt;
        }
        acc[i] = (int32_t)(a0 - 128 * wsum);
        acc[i + 1] = (int32_t)(a1 - 128 * wsum);
        acc[i + 2] = (int32_t)(a2 - 128 * wsum);
        acc[i + 3] = (int32_t)(a3 - 128 * wsum);
    }
}
#endif

#if defined(LMF_PIE_KERNELS)
void lmf_pie_dots_hs8(int32_t *d, const int8_t *q2, const int8_t *keys, uint32_t pairs);

/* Head size 8 on the PIE (kernels_esp32s3.S): two positions a 16-byte block,
 * the query once in each half of a pair of vectors. The query's values are
 * int8 (quantized, |q| <= 127) held as int16. An odd last position in C. */
static void pie_dots_hs8(int32_t *dot, const int16_t *q, const int8_t *keys, uint32_t count)
{
    int8_t q2[32] __attribute__((aligned(16)));
    uint32_t i, pairs = count / 2;
    for (i = 0; i < 8; i++) {
        q2[i] = (int8_t)q[i];
        q2[8 + i] = 0;
        q2[16 + i] = 0;
        q2[24 + i] = (int8_t)q[i];
    }
    lmf_pie_dots_hs8(dot, q2, keys, pairs);
    if (count & 1) {
        const int8_t *k = keys + 16 * pairs;
        int32_t sum = 0;
        for (i = 0; i < 8; i++) sum += q[i] * k[i];
        dot[count - 1] = sum;
    }
}
#endif

#if defined(LMF_PIE_KERNELS)
void lmf_pie_weighted_sum_hs8(uint32_t raw[10], const int16_t *w, const int8_t *values, uint32_t pairs);

/* Head size 8 on the PIE (kernels_esp32s3.S): two positions a 16-byte block,
 * widened to int16 and multiplied by their broadcast weights into QACC's
 * 40-bit lanes, which come back packed (lane i at bit 40i of each half); each
 * sum is below 2^31 in magnitude (the kernel's bound), so its low 32 bits are
 * the value. An odd last position in C. */
static void pie_weighted_sum_hs8(int32_t *acc, const int16_t *w, const int8_t *values, uint32_t count)
{
    uint32_t raw[10], i, pairs = count / 2;
    const uint8_t *bytes = (const uint8_t *)raw;
    lmf_pie_weighted_sum_hs8(raw, w, values, pairs);
    for (i = 0; i < 8; i++) {
        const uint8_t *b = bytes + (i < 4 ? 5 * i : 20 + 5 * (i - 4));
        acc[i] = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
    }
    if (count & 1) {
        const int8_t *v = values + 16 * pairs;
        for (i = 0; i < 8; i++) acc[i] += w[count - 1] * v[i];
    }
}
#endif

void lmf_dots_i8(int32_t *dot, const int16_t *q, const int8_t *keys, uint32_t hs, uint32_t count)
{
    uint32_t t, i;
#if defined(LMF_PIE_KERNELS)
    /* its precondition pairs >= 1, and its loads' alignment */
    if (hs == 8 && count >= 2 && ((uintptr_t)keys & 15) == 0) { pie_dots_hs8(dot, q, keys, count); return; }
#endif
#if defined(LMF_SSE2_KERNELS)
    if (hs == 8) { dots_hs8(dot, q, keys, count); return; }
#elif defined(LMF_WORD_KERNELS)
    if (hs % 4 == 0) { dots_words(dot, q, keys, hs, count); return; }
#endif
    for (t = 0; t < count; t++, keys += hs) {
        int32_t sum = 0;
        for (i = 0; i < hs; i++) sum += q[i] * keys[i];
        dot[t] = sum;
    }
}

void lmf_weighted_sum_i8(int32_t *acc, const int16_t *w, const int8_t *values, uint32_t hs, uint32_t count)
{
    uint32_t t, i;
#if defined(LMF_PIE_KERNELS)
    /* its precondition pairs >= 1, and its loads' alignment */
    if (hs == 8 && count >= 2 && ((uintptr_t)values & 15) == 0) {
        pie_weighted_sum_hs8(acc, w, values, count);
        return;
    }
#endif
#if defined(LMF_SSE2_KERNELS)
    if (hs == 8) { weighted_sum_hs8(acc, w, values, count); return; }
#elif defined(LMF_WORD_KERNELS)
    if (hs % 4 == 0) { weighted_sum_words(acc, w, values, hs, count); return; }
#endif
    for (i = 0; i < hs; i++) acc[i] = 0;
    for (t = 0; t < count; t++, values += hs)
        for (i = 0; i < hs; i++) acc[i] += w[t] * values[i];
}

static void dequantize_row_q4(float *out, const lmf_qmat *w, uint32_t row)
{
    const uint8_t *q = w->q4 + (size_t)row * w->stride;
    const float *ws = w->scale + (size_t)row * w->n_groups;
    uint32_t j;
    for (j = 0; j < w->cols; j++) {
        uint32_t b = j % 2 ? q[j / 2] >> 4 : q[j / 2] & 15u;
        out[j] = (float)((int32_t)(b ^ 8u) - 8) * ws[j / w->group];
    }
}

void lmf_dequantize_row(float *out, const lmf_qmat *w, uint32_t row)
{
    const int8_t *q;
    const float *ws = w->scale + (size_t)row * w->n_groups;
    uint32_t start, j;
    /* before any arithmetic on w->q, which is NULL for a q4 matrix */
    if (w->dtype == LMF_DTYPE_Q4) { dequantize_row_q4(out, w, row); return; }
    q = w->q + (size_t)row * w->stride;
    for (start = 0; start < w->cols; start += w->group, ws++) {
        uint32_t end = start + w->group < w->cols ? start + w->group : w->cols;
        for (j = start; j < end; j++) out[j] = (float)q[j] * ws[0];
    }
}
