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

/* e^x with relative error below 4e-6; 0 below -87, clamped at e^87. */
float lmf_expf(float x);
/* sqrt(x) for x >= 0 (Newton iterations from a bit-level first guess). */
float lmf_sqrtf(float x);
/* natural log for x > 0 (used at start-up only). */
float lmf_logf(float x);
/* sin and cos of x; accurate to ~1e-6 for |x| < 1e4. */
void lmf_sincosf(float x, float *s, float *c);

#endif
