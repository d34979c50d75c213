/* The integer kernels the forward pass spends its time in.
 *
 * Every kernel returns exact integers, so its variants agree bit for bit:
 *  - SSE2 (x86-64 hosts): pmaddwd on bytes widened to int16;
 *  - word-at-a-time C (other little-endian 32-bit CPUs: the lx106, the
 *    ESP32-S3): four weights per 32-bit load, read as offset binary
 *    (w + 128, an unsigned byte that one `extui` extracts, where a signed byte
 *    costs three instructions on the lx106); Σ (w+128)·x − 128·Σ x = Σ w·x;
 *  - plain loops, the reference, forced with -DLMF_PORTABLE_KERNELS;
 *  - the matrix products only: the ESP32-S3's PIE SIMD (LMF_PIE_KERNELS, set
 *    by the ESP-IDF component for that target: EE.VMULAS.S8.ACCX, 16 int8
 *    products a step into the 40-bit ACCX, kernels_esp32s3.S), or its exact
 *    emulation in C for tests on any host (-DLMF_PIE_EMULATE); in an
 *    LMF_PIE_KERNELS build also attention at head size 8 (lmf_dots_i8 and
 *    lmf_weighted_sum_i8, kernels_esp32s3.S; no emulation: the S3 image's
 *    bit-identity tests check them) and, in scalar assembly, attention's
 *    softmax weights (lmf_softmax_weights below; the S3 kernel-check image
 *    compares it with this C on edge inputs).
 * Activations are int16 (int8 values widened once per vector), because the
 * lx106 loads an int16 in one instruction and pmaddwd reads int16; the PIE
 * kernels read them as int8 (lmf_qvec.x8). */
#ifndef LMF_KERNELS_H
#define LMF_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/blob.h"
#include "lmf/detmath.h"

/* An activation vector quantized for the matrix products: one scale per group
 * of `group` values, the values as int16 zero-padded to a multiple of 16 (so
 * a kernel may run over a matrix row's zero padding), and each group's sum
 * (for the offset-binary kernels).
 * x8: NULL, or the start of x's own memory, 16-byte aligned. When it is set
 * and the PIE kernels are built in (LMF_PIE_KERNELS or LMF_PIE_EMULATE), the
 * values are stored there as int8 (zero-padded to a multiple of 16) instead
 * of as int16: the form EE.VLD.128 loads. A vector given to lmf_matvec_q8
 * in such a build must have x8 set (the forward pass's input vector does). */
typedef struct lmf_qvec {
    int16_t *x;
    int8_t *x8;
    float *scale;
    int32_t *sum;
    uint32_t n, group;
} lmf_qvec;

/* Quantizes x[0..n) to int8 with one scale per `group` elements (symmetric,
 * max |x| -> 127); scale 0 and zeros for a group that is all zero or holds an
 * inf or NaN. */
void lmf_quantize_groups(int8_t *q, float *scales, const float *x, uint32_t n, uint32_t group);
/* The same into v (whose buffers hold n rounded up to 16 values and
 * ceil(n / group) scales and sums). */
void lmf_quantize_vec(lmf_qvec *v, const float *x, uint32_t n, uint32_t group);

/* out[r] = Σ_j w[r][j] * x[j] for rows [r0, r1); x quantized with w's group size. */
void lmf_matvec_q8(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1);

/* The same for a q4 matrix (w->dtype LMF_DTYPE_Q4): each row's groups are
 * unpacked to int8, one group at a time into a 16-byte aligned stack buffer
 * (at most LMF_MAX_GROUP bytes), then dotted with x by the same integer code
 * and scaled and summed in the same float order as lmf_matvec_q8. So a q4
 * matrix gives bit for bit what the q8 matrix of the same values and scales
 * gives, on every target. In an LMF_PIE_KERNELS build with a group size that
 * is a multiple of 32, the nibbles are unpacked in PIE registers instead
 * (kernels_esp32s3.S lmf_pie_dots_q4, lmf_pie_dots4_q4): the same integers. */
void lmf_matvec_q4(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1);

/* lmf_matvec_q8 or lmf_matvec_q4, by w->dtype. */
void lmf_matvec(float *out, const lmf_qmat *w, const lmf_qvec *x, uint32_t r0, uint32_t r1);

/* Attention over one head's cache, where position t's hs int8 values start
 * at cache + t*hs:
 * dot[t] = Σ_i q[i] * keys[t*hs + i] for t < count, */
void lmf_dots_i8(int32_t *dot, const int16_t *q, const int8_t *keys, uint32_t hs, uint32_t count);
/* acc[i] = Σ_t w[t] * values[t*hs + i] for i < hs (overwrites acc).
 * |w[t]| < 2^14 and count <= 512 keep every sum below 2^31. */
void lmf_weighted_sum_i8(int32_t *acc, const int16_t *w, const int8_t *values, uint32_t hs, uint32_t count);

#if defined(LMF_PIE_KERNELS)
/* lmf_softmax_weights in kernels_esp32s3.S (scalar assembly, one pass, the
 * table skipped where e_t is 0): the same integers, score[] left as it is. */
uint32_t lmf_s3_softmax_weights(int16_t *w, const int32_t *score, const uint16_t *vmant, const int16_t *vexp, uint32_t n,
                                int32_t best, int32_t top, const uint32_t *exp2_q30);
#endif

/* Attention's softmax weights (model.c describes the fixed point), for t < n:
 *   e_t  = lmf_exp2_q15(score[t] - best), with score[t] <= best;
 *   w[t] = (e_t * vmant[t]) >> min(17 + *vexp_max - vexp[t], 31), unsigned;
 * returns Σ e_t. score[] is scratch: it may be overwritten. This C is the
 * definition: two passes, e_t into score[] and then the weights, each few
 * enough values to stay in registers; e_t <= 2^15 and vmant < 2^16, so
 * e_t * vmant < 2^31, and a shift by 31 gives the 0 that any larger shift
 * would: min() in place of a branch. Inline, and vexp_max by address: the
 * compiler must assume a score store may change it and reads it only for the
 * second pass, where with the value live across the first pass the host's
 * code spilled (0.35 % more instructions a token, callgrind). */
static inline uint32_t lmf_softmax_weights(int16_t *w, int32_t *score, const uint16_t *vmant, const int16_t *vexp, uint32_t n,
                                           int32_t best, const int32_t *vexp_max)
{
#if defined(LMF_PIE_KERNELS)
    return lmf_s3_softmax_weights(w, score, vmant, vexp, n, best, 17 + *vexp_max, lmf_exp2_q30);
#else
    int32_t top;
    uint32_t sum = 0, t;
    for (t = 0; t < n; t++) {
        uint32_t e = lmf_exp2_q15(score[t] - best);
        sum += e;
        score[t] = (int32_t)e;
    }
    top = 17 + *vexp_max;
    for (t = 0; t < n; t++) {
        uint32_t shift = (uint32_t)(top - vexp[t]);
        w[t] = (int16_t)(((uint32_t)score[t] * vmant[t]) >> (shift < 31 ? shift : 31));
    }
    return sum;
#endif
}

/* The PIE kernel's contract, for rows k < rows:
 *   d[k] = Σ_{j < 16·blocks} w[k·stride + j] · x[j]
 * with w, x and stride multiples of 16 bytes (PIE loads ignore an address's
 * low 4 bits) and blocks >= 1, rows >= 1: the assembly checks none of these
 * (with blocks 0 it still reads one block, with rows 0 it runs 2^32 rows),
 * so its callers do (lmf_matvec_q8). Each row: ACCX cleared, then one
 * EE.VMULAS.S8.ACCX per 16-byte block in address order (ACCX += the sum of
 * 16 int8 products, 40-bit two's complement), then EE.SRS.ACCX with shift 0
 * (saturates to int32). In an LMF_PIE_KERNELS build this is the assembly, in
 * an LMF_PIE_EMULATE build C that computes the same, address masking
 * included; other builds do not have it. |d| <= 256 * 127 * 127 < 2^22 for
 * the blob's groups (<= LMF_MAX_GROUP = 256 columns, enforced by blob.c), far
 * below 2^31, so neither the 40-bit wrap nor the int32 saturation is ever
 * reached: Espressif's sources disagree on what EE.SRS.ACCX does there (the
 * TRM: saturates; its QEMU model and an esp-dsp comment: keeps the low 32
 * bits), and by construction it does not matter. */
void lmf_pie_dots_s8(int32_t *d, const int8_t *w, uint32_t stride, const int8_t *x, uint32_t blocks, uint32_t rows);

/* One row of a q8 or q4 matrix back to float (the token embedding lookup). */
void lmf_dequantize_row(float *out, const lmf_qmat *w, uint32_t row);

#endif
