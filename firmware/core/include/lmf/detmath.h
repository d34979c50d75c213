/* Deterministic math: the same bits on every target. The C library's expf,
 * sqrtf and sinf differ between glibc, picolibc and the ESP-IDF newlib, and on
 * the lx106 (no FPU) each float operation is a ~50-instruction library call,
 * so these use only IEEE add/mul/div (exact and identical everywhere with
 * -ffp-contract=off) and integer tricks. */
#ifndef LMF_DETMATH_H
#define LMF_DETMATH_H

#include <stdint.h>
#include <string.h>

static inline uint32_t lmf_f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float lmf_u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* 1.5 * 2^23: adding it pushes a float's fraction bits out, leaving the integer
 * part, rounded to nearest even, in the low mantissa bits. */
#define LMF_MAGIC_ROUND 12582912.0f
#define LMF_MAGIC_BITS 0x4B400000u

/* round-to-nearest-even of x, exact for |x| < 2^22: one float add instead of
 * a conversion call. */
static inline int32_t lmf_round_small(float x)
{
    return (int32_t)(lmf_f2u(x + LMF_MAGIC_ROUND) - LMF_MAGIC_BITS);
}

/* (float)i, exact for |i| < 2^22, with one float subtraction. */
static inline float lmf_i2f_small(int32_t i)
{
    return lmf_u2f(LMF_MAGIC_BITS + (uint32_t)i) - LMF_MAGIC_ROUND;
}

/* |x| compared through the bit pattern (monotonic for non-NaN floats). */
static inline uint32_t lmf_abs_bits(float x) { return lmf_f2u(x) & 0x7FFFFFFFu; }

/* A positive float as m * 2^e with m its leading 16 significant bits
 * (2^15 <= m < 2^16, truncated): scales in the integer softmax. Zero,
 * subnormals, inf and NaN give m = 0 and e = INT16_MIN. */
static inline uint32_t lmf_mant16(float f, int32_t *e)
{
    uint32_t u = lmf_f2u(f), biased = (u >> 23) & 0xFF;
    if (biased == 0 || biased == 0xFF) { *e = INT16_MIN; return 0; }
    *e = (int32_t)biased - 127 - 15;
    return ((u & 0x7FFFFFu) | 0x800000u) >> 8;
}

/* 2^e as a float: 0 below 2^-126, 2^127 above. */
static inline float lmf_pow2f(int32_t e)
{
    if (e < -126) return 0.0f;
    if (e > 127) e = 127;
    return lmf_u2f((uint32_t)(e + 127) << 23);
}

/* 2^(k/128) in Q30 for k = 0..128. */
extern const uint32_t lmf_exp2_q30[129];

/* 2^(frac / 2^15) in Q30 (in [2^30, 2^31)) for frac < 2^15: the table
 * entry below, linearly interpolated with frac's low 8 bits (error < 3.7e-6). */
static inline uint32_t lmf_exp2_frac_q30(uint32_t frac)
{
    uint32_t lo = lmf_exp2_q30[frac >> 8], hi = lmf_exp2_q30[(frac >> 8) + 1];
    return lo + ((hi - lo) * (frac & 0xFF) >> 8);
}

/* 2^(d / 2^15) * 2^15 rounded down, for d <= 0: in [0, 2^15]. The softmax
 * numerators, in integers only. */
static inline uint32_t lmf_exp2_q15(int32_t d)
{
    int32_t n = d >> 15; /* floor: arithmetic shift */
    uint32_t shift = (uint32_t)(15 - n);
    return shift > 31 ? 0 : lmf_exp2_frac_q30((uint32_t)d & 0x7FFFu) >> shift;
}

/* e^x with relative error below 4e-6; 0 below -87, clamped at e^87. */
float lmf_expf(float x);
/* 1 / (1 + e^-x) within 7e-6 (absolute): a table over [0, 16] with linear
 * interpolation, read with integer operations only. */
float lmf_sigmoidf(float x);
/* hb[i] = silu(hb[i]) * hb2[i], silu(a) = a * sigmoid(a), computed as
 * (hb[i] * hb2[i]) * lmf_sigmoidf(hb[i]) for i < n. */
void lmf_swiglu(float *hb, const float *hb2, uint32_t n);
/* sqrt(x) for x >= 0 (Newton iterations from a bit-level first guess). */
float lmf_sqrtf(float x);
/* natural log for x > 0 (used at start-up only). */
float lmf_logf(float x);
/* sin and cos of x; accurate to ~1e-6 for |x| < 1e4. */
void lmf_sincosf(float x, float *s, float *c);

#endif
