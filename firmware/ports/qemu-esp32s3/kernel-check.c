/* The S3's scalar assembly kernels that have no C emulation, against their C
 * definitions, on inputs chosen for their edges.
 *
 * Built twice: into the S3 image lmf-qemu-kernel-check.elf with the core's
 * kernels.c as the S3 builds it (LMF_PIE_KERNELS: kernels_esp32s3.S), and
 * natively with the plain C (gcc -std=c11 -O2 -ffp-contract=off
 * -DLMF_PORTABLE_KERNELS). Both print the same lines or a kernel differs
 * from its definition; tests/esp32s3-qemu.test.ts compares them. The
 * forward pass's bit-identity tests cover the values a model meets; these
 * cover the edges it rarely does: the last exponent with a nonzero e_t and
 * the first without, weight shifts of 31 and beyond, zero value scales,
 * lengths 0 and 1. */
#include <stdint.h>
#include <string.h>

#include "lmf/detmath.h"
#include "lmf/kernels.h"

#ifdef __XTENSA__
#include "semihost.h"
static void out(const char *s, size_t n) { semihost_write(1, s, n); }
#else
#include <stdio.h>
static void out(const char *s, size_t n) { fwrite(s, 1, n, stdout); }
#endif

enum { MAX_N = 600 };

static void put(const char *label, uint32_t v)
{
    char buf[64];
    size_t n = strlen(label);
    memcpy(buf, label, n);
    buf[n++] = ' ';
    for (int i = 7; i >= 0; i--) buf[n++] = "0123456789abcdef"[(v >> (4 * i)) & 15];
    buf[n++] = '\n';
    out(buf, n);
}

static uint32_t rng = 0x9e3779b9u;

static uint32_t rnd(void) /* xorshift32 */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static uint32_t mix(uint32_t h, uint32_t v) { return (h ^ v) * 0x01000193u; }

/* A score difference d = score - best <= 0: near the exponents where e_t
 * turns 0 (k = -15, -16, -17 start at -15, -16 and -17 * 2^15), near 0, or
 * anywhere down to -2^30. */
static int32_t rnd_diff(void)
{
    uint32_t kind = rnd() % 6, r = rnd();
    switch (kind) {
    case 0: return -(int32_t)(r % 40000u);
    case 1: return -15 * 32768 + 64 - (int32_t)(r % 128u);
    case 2: return -16 * 32768 + 64 - (int32_t)(r % 128u);
    case 3: return -17 * 32768 + 64 - (int32_t)(r % 128u);
    case 4: return -(int32_t)(r % (20u * 32768u));
    default: return -(int32_t)(r >> 2);
    }
}

static int16_t w[MAX_N];
static int32_t score[MAX_N];
static uint16_t vmant[MAX_N];
static int16_t vexp[MAX_N];

/* One random case of lmf_softmax_weights: n positions, value exponents up
 * to vexp_max (some rows with a zero scale: mantissa 0, exponent
 * INT16_MIN), returns the hash of the weights and the sum. */
static uint32_t softmax_case(uint32_t n)
{
    int32_t best = (int32_t)(rnd() >> 2) - (1 << 29), vexp_max = (int32_t)(rnd() % 60u) - 40;
    uint32_t t, sum, h = 0x811c9dc5u;
    for (t = 0; t < n; t++) {
        uint32_t kind = rnd() % 8;
        score[t] = best + rnd_diff();
        /* weight shifts top - vexp of 17 to 48, past the clamp at 31 */
        vmant[t] = kind == 0 ? 0 : (uint16_t)(0x8000u | (rnd() & 0x7FFFu));
        vexp[t] = kind == 0 ? INT16_MIN : (int16_t)(vexp_max - (int32_t)(rnd() % 32u));
        w[t] = 0x5555;
    }
    if (n < MAX_N) w[n] = 0x5555;
    if (n > 0 && rnd() % 2) score[rnd() % n] = best; /* the largest score is one of them */
    sum = lmf_softmax_weights(w, score, vmant, vexp, n, best, &vexp_max);
    for (t = 0; t < n; t++) h = mix(h, (uint16_t)w[t]);
    if (n < MAX_N && w[n] != 0x5555) h = mix(h, 0xdeadu); /* nothing written past w[n - 1] */
    return mix(h, sum);
}

int main(void)
{
    uint32_t i, h = 0x811c9dc5u;
    int32_t zero = 0;
    /* the edges one at a time: e_t of k = -15 (1) and k = -16 (0), a weight
     * shift of 31 and of 40, a zero scale */
    static const int32_t diffs[] = {0, -1, -32768, -15 * 32768, -15 * 32768 - 1, -16 * 32768 + 1, -16 * 32768, -17 * 32768, INT32_MIN / 2};
    for (i = 0; i < sizeof diffs / sizeof diffs[0]; i++) {
        int32_t best = 1000, vexp_max = 3;
        score[0] = best + diffs[i];
        vmant[0] = 0xFFFF;
        vexp[0] = 3;
        vmant[1] = 0xFFFF;
        score[1] = best + diffs[i];
        vexp[1] = (int16_t)(3 - 14); /* shift 17 + 14 = 31 */
        vmant[2] = 0x8000;
        score[2] = best + diffs[i];
        vexp[2] = (int16_t)(3 - 23); /* shift 40 */
        vmant[3] = 0;
        score[3] = best + diffs[i];
        vexp[3] = INT16_MIN;
        put("softmax.edge.sum", lmf_softmax_weights(w, score, vmant, vexp, 4, best, &vexp_max));
        put("softmax.edge.w01", (uint32_t)(uint16_t)w[0] | (uint32_t)(uint16_t)w[1] << 16);
        put("softmax.edge.w23", (uint32_t)(uint16_t)w[2] | (uint32_t)(uint16_t)w[3] << 16);
    }
    w[0] = 0x1234;
    put("softmax.n0.sum", lmf_softmax_weights(w, score, vmant, vexp, 0, 0, &zero));
    put("softmax.n0.w", (uint16_t)w[0]);
    for (i = 0; i < 400; i++) h = mix(h, softmax_case(i < 8 ? i : 1 + rnd() % MAX_N));
    put("softmax.random", h);
    return 0;
}
