/* The S3's assembly kernels that have no C emulation (attention's softmax
 * weights; the int4 products, through lmf_matvec_q4), against their C
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
 * lengths 0 and 1; for int4 the nibbles -8 (which the converter never
 * writes) and 7, activations of +-127, shapes the model does not have. */
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

/* ---- int4 matrix products (lmf_matvec_q4: on the S3 lmf_pie_dots_q4 and
 * lmf_pie_dots4_q4 where the group size is a multiple of 32, the C unpack
 * elsewhere) ---- */

enum { Q4_MAX_ROWS = 140, Q4_MAX_COLS = 320, Q4_MAX_STRIDE = 176, Q4_MAX_GROUPS = 20 };

static _Alignas(16) uint8_t q4w[Q4_MAX_ROWS * Q4_MAX_STRIDE];
static float q4scale[Q4_MAX_ROWS * Q4_MAX_GROUPS];
static float q4in[Q4_MAX_COLS];
static _Alignas(16) int16_t q4x[Q4_MAX_COLS + 32];
static float q4xs[Q4_MAX_GROUPS];
static int32_t q4sum[Q4_MAX_GROUPS];
static float q4out[Q4_MAX_ROWS + 1];

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* A packed byte: random, or the extremes -8 and 7 in both nibbles. */
static uint8_t q4_byte(uint32_t kind)
{
    switch (kind) {
    case 1: return 0x88;                       /* -8, -8 */
    case 2: return 0x77;                       /* 7, 7 */
    case 3: return rnd() % 2 ? 0x87 : 0x78;    /* -8 and 7 mixed */
    default: return (uint8_t)rnd();
    }
}

/* One q4 case: a rows x cols matrix of group size G laid out as blob.c
 * reads one (rows 16-byte aligned, ceil(cols / 2) bytes a row, its pad
 * nibbles zero; the stride's bytes past the 16-column rounding hold junk,
 * which no kernel may use), an input whose values are random or all +-1
 * (so all +-127 once quantized), rows [r0, r1) computed. Returns the hash of
 * the outputs' bits; out[r1] must be left as it was. */
static uint32_t q4_case(uint32_t rows, uint32_t cols, uint32_t G, uint32_t r0, uint32_t r1, uint32_t wkind, uint32_t xkind)
{
    uint32_t ng = (cols + G - 1) / G, row_bytes = (cols + 1) / 2, stride = (row_bytes + 15) & ~15u;
    uint32_t used = ((cols + 15) & ~15u) / 2, r, j, h = 0x811c9dc5u;
    lmf_qmat m;
    lmf_qvec v;
    for (r = 0; r < rows; r++) {
        uint8_t *row = q4w + r * stride;
        for (j = 0; j < stride; j++) row[j] = j < row_bytes ? q4_byte(wkind) : j < used ? 0 : 0xA5;
        if (cols % 2) row[row_bytes - 1] &= 0x0F; /* the pad nibble */
        for (j = 0; j < ng; j++) q4scale[r * ng + j] = (float)(1 + rnd() % 4096) * (1.0f / 65536.0f);
    }
    for (j = 0; j < cols; j++)
        q4in[j] = xkind == 1 ? (rnd() % 2 ? 1.0f : -1.0f) : (float)((int32_t)(rnd() % 2001u) - 1000) * (1.0f / 256.0f);
    memset(&m, 0, sizeof m);
    m.q4 = q4w;
    m.scale = q4scale;
    m.rows = rows;
    m.cols = cols;
    m.stride = stride;
    m.group = G;
    m.n_groups = ng;
    m.dtype = LMF_DTYPE_Q4;
    v.x = q4x;
    v.x8 = (int8_t *)q4x;
    v.scale = q4xs;
    v.sum = q4sum;
    lmf_quantize_vec(&v, q4in, cols, G);
    for (r = 0; r <= rows; r++) q4out[r] = -0.0f;
    lmf_matvec_q4(q4out, &m, &v, r0, r1);
    for (r = r0; r < r1; r++) h = mix(h, f2u(q4out[r]));
    if (f2u(q4out[r1]) != 0x80000000u) h = mix(h, 0xdeadu); /* nothing written past row r1 - 1 */
    if (r0 > 0 && f2u(q4out[r0 - 1]) != 0x80000000u) h = mix(h, 0xbeefu);
    return h;
}

/* v in decimal at buf[k], returning the next index */
static uint32_t put_dec(char *buf, uint32_t k, uint32_t v)
{
    char d[10];
    uint32_t n = 0;
    do d[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n) buf[k++] = d[--n];
    return k;
}

static void q4_checks(void)
{
    /* rows, cols, group: one group of 64 (lmf_pie_dots4_q4) below and across
     * the kernel's 64-row blocks; 172 columns (stories260K's w2: groups 64,
     * 64 and a tail of 44, rounded to 48, an odd half); groups of 32, 128
     * and 256; odd column counts (a pad nibble); a tail of 16 columns; group
     * sizes 16 and 48 (lmf_pie_dots2_q4 for each even group and the odd one
     * after it: its second group 16, 32 or 48 columns, a last even group
     * alone, groups of 16 across the 64-row blocks, a pad nibble) */
    static const uint32_t shapes[][3] = {
        {1, 64, 64}, {3, 64, 64}, {64, 64, 64}, {65, 64, 64}, {130, 172, 64}, {7, 32, 32}, {70, 96, 32},
        {5, 48, 32}, {9, 256, 256}, {11, 300, 128}, {2, 33, 64}, {4, 65, 64}, {3, 80, 64}, {6, 8, 32},
        {4, 16, 16}, {6, 200, 48}, {5, 64, 16}, {66, 40, 16}, {3, 33, 16}, {2, 64, 48}, {3, 80, 48},
        {4, 96, 48},
    };
    char label[32];
    uint32_t i, k;
    for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        uint32_t rows = shapes[i][0], cols = shapes[i][1], G = shapes[i][2], h = 0x811c9dc5u;
        for (k = 0; k < 6; k++) h = mix(h, q4_case(rows, cols, G, 0, rows, k % 4, k / 4));
        if (rows > 4) h = mix(h, q4_case(rows, cols, G, 2, rows - 1, 0, 0)); /* a row range */
        k = 0;
        label[k++] = 'q', label[k++] = '4', label[k++] = '.';
        k = put_dec(label, k, rows);
        label[k++] = 'x';
        k = put_dec(label, k, cols);
        label[k++] = '.', label[k++] = 'g';
        k = put_dec(label, k, G);
        label[k] = 0;
        put(label, h);
    }
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
    q4_checks();
    return 0;
}
