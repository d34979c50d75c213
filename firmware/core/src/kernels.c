#include "lmf/kernels.h"
#include "lmf/detmath.h"

#if defined(__SSE2__) && !defined(LMF_PORTABLE_KERNELS)
#include <emmintrin.h>
#define LMF_SSE2_KERNELS 1
#endif

/* The short-vector kernels serve attention heads (8 elements in stories260K),
 * where a vectorizer's set-up and tail code cost more than the work. */
#if defined(__GNUC__) && !defined(__clang__)
#define LMF_SHORT_LOOP __attribute__((optimize("no-tree-vectorize")))
#else
#define LMF_SHORT_LOOP
#endif

LMF_SHORT_LOOP int32_t lmf_dot_i8(const int8_t *a, const int8_t *b, uint32_t n)
{
    int32_t sum = 0;
    uint32_t i;
    for (i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

LMF_SHORT_LOOP void lmf_axpy_i8(int32_t *acc, int32_t w, const int8_t *v, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) acc[i] += w * v[i];
}

#ifdef LMF_SSE2_KERNELS
/* x86-64 host (the virtual board): SSE2 has no int8 multiply, so bytes are
 * widened to int16 (unpack with themselves, shift right arithmetically) and
 * multiplied and pair-summed by pmaddwd. Integer arithmetic, so the result is
 * exactly the portable kernel's. */
int32_t lmf_dot_i8_x16(const int8_t *a, const int8_t *b, uint32_t n)
{
    __m128i acc = _mm_setzero_si128();
    uint32_t i;
    for (i = 0; i < n; i += 16) {
        __m128i va = _mm_loadu_si128((const __m128i *)(const void *)(a + i));
        __m128i vb = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        __m128i alo = _mm_srai_epi16(_mm_unpacklo_epi8(va, va), 8), ahi = _mm_srai_epi16(_mm_unpackhi_epi8(va, va), 8);
        __m128i blo = _mm_srai_epi16(_mm_unpacklo_epi8(vb, vb), 8), bhi = _mm_srai_epi16(_mm_unpackhi_epi8(vb, vb), 8);
        acc = _mm_add_epi32(acc, _mm_add_epi32(_mm_madd_epi16(alo, blo), _mm_madd_epi16(ahi, bhi)));
    }
    acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(1, 0, 3, 2)));
    acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(acc);
}
#else
int32_t lmf_dot_i8_x16(const int8_t *a, const int8_t *b, uint32_t n)
{
    int32_t sum = 0;
    uint32_t i, j;
    /* fixed 16-element blocks: compilers turn each into straight SIMD code
     * with no loop prologue or epilogue */
    for (i = 0; i < n; i += 16) {
        int32_t block = 0;
        for (j = 0; j < 16; j++) block += a[i + j] * b[i + j];
        sum += block;
    }
    return sum;
}
#endif

void lmf_quantize_groups(int8_t *q, float *scales, const float *x, uint32_t n, uint32_t group)
{
    uint32_t start, i;
    for (start = 0; start < n; start += group) {
        uint32_t end = start + group < n ? start + group : n;
        uint32_t max_bits = 0;
        float inv;
        for (i = start; i < end; i++) {
            uint32_t a = lmf_abs_bits(x[i]);
            if (a > max_bits) max_bits = a;
        }
        if (max_bits == 0 || max_bits >= 0x7F800000u) { /* all zero, or inf/NaN: emit zeros */
            *scales++ = 0.0f;
            for (i = start; i < end; i++) q[i] = 0;
            continue;
        }
        *scales++ = lmf_u2f(max_bits) * (1.0f / 127.0f);
        inv = 127.0f / lmf_u2f(max_bits);
        for (i = start; i < end; i++) q[i] = (int8_t)lmf_round_small(x[i] * inv);
    }
}

void lmf_zero_pad(int8_t *q, uint32_t n)
{
    uint32_t i, padded = (n + 15) & ~15u;
    for (i = n; i < padded; i++) q[i] = 0;
}

void lmf_matvec_q8(float *out, const lmf_qmat *w, const int8_t *xq, const float *xs, uint32_t r0, uint32_t r1)
{
    uint32_t r, g, G = w->group, ng = w->n_groups;
    /* the last group's length, rounded up to 16: the padding is zero on both sides */
    uint32_t tail = ((w->cols - (ng - 1) * G) + 15) & ~15u;
    for (r = r0; r < r1; r++) {
        const int8_t *row = w->q + (size_t)r * w->stride;
        const float *ws = w->scale + (size_t)r * ng;
        float acc;
        if (ng == 1) { /* the common case: one group per row, no float add */
            out[r] = lmf_i2f_small(lmf_dot_i8_x16(row, xq, tail)) * (ws[0] * xs[0]);
            continue;
        }
        acc = 0.0f;
        for (g = 0; g + 1 < ng; g++)
            acc += lmf_i2f_small(lmf_dot_i8_x16(row + g * G, xq + g * G, G)) * (ws[g] * xs[g]);
        out[r] = acc + lmf_i2f_small(lmf_dot_i8_x16(row + g * G, xq + g * G, tail)) * (ws[g] * xs[g]);
    }
}

void lmf_dequantize_row(float *out, const lmf_qmat *w, uint32_t row)
{
    const int8_t *q = w->q + (size_t)row * w->stride;
    const float *ws = w->scale + (size_t)row * w->n_groups;
    uint32_t start, j;
    for (start = 0; start < w->cols; start += w->group, ws++) {
        uint32_t end = start + w->group < w->cols ? start + w->group : w->cols;
        for (j = start; j < end; j++) out[j] = lmf_i2f_small(q[j]) * ws[0];
    }
}
