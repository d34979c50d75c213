/* The integer kernels the forward pass spends its time in. Portable C, written
 * so that the lx106 and the ESP32-S3 compilers produce tight loops; a SIMD
 * port replaces lmf_dot_i8 and must return the identical integer. */
#ifndef LMF_KERNELS_H
#define LMF_KERNELS_H

#include <stdint.h>
#include "lmf/blob.h"

/* Σ a[i]*b[i] over n int8 pairs. Exact. For short vectors. */
int32_t lmf_dot_i8(const int8_t *a, const int8_t *b, uint32_t n);
/* acc[i] += w * v[i] for i < n (attention's weighted sum of values). */
void lmf_axpy_i8(int32_t *acc, int32_t w, const int8_t *v, uint32_t n);
/* The same for n a multiple of 16: the matrix-row kernel (rows and quantized
 * activations are zero-padded to 16 bytes). A SIMD port replaces this one. */
int32_t lmf_dot_i8_x16(const int8_t *a, const int8_t *b, uint32_t n);

/* Quantizes x[0..n) to int8 with one scale per `group` elements (symmetric,
 * max |x| -> 127). */
void lmf_quantize_groups(int8_t *q, float *scales, const float *x, uint32_t n, uint32_t group);
/* Zeroes q[n] up to the next multiple of 16, so that dot products may run over
 * a matrix row's zero padding. */
void lmf_zero_pad(int8_t *q, uint32_t n);

/* out[r] = Σ_j w[r][j] * x[j] for rows [r0, r1), with x given as its int8
 * quantization (xq, xs) from lmf_quantize_groups with w's group size. */
void lmf_matvec_q8(float *out, const lmf_qmat *w, const int8_t *xq, const float *xs, uint32_t r0, uint32_t r1);

/* One row of a q8 matrix back to float (the token embedding lookup). */
void lmf_dequantize_row(float *out, const lmf_qmat *w, uint32_t row);

#endif
