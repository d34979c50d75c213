/* The ESP32-S3's assembly kernels (Xtensa LX7, windowed ABI): the matrix and
 * attention products on its PIE SIMD unit (int4 matrices unpacked in its
 * registers: lmf_pie_dots_q4, lmf_pie_dots4_q4, lmf_pie_dots2_q4), and attention's softmax
 * weights in scalar code (lmf_s3_softmax_weights, at the end).
 *
 * lmf_pie_dots_s8 on the ESP32-S3's PIE SIMD unit.
 * Built by the ESP-IDF component for IDF_TARGET esp32s3 and by the emulated
 * S3 image (firmware/ports/qemu-esp32s3), which both define LMF_PIE_KERNELS
 * for kernels.c. The contract is in lmf/kernels.h;
 * kernels.c's LMF_PIE_EMULATE code computes the same thing in C, and the host
 * tests check that emulation bit for bit against the portable kernels.
 *
 *   void lmf_pie_dots_s8(int32_t *d, const int8_t *w, uint32_t stride,
 *                        const int8_t *x, uint32_t blocks, uint32_t rows)
 *   d[k] = sum over j < 16*blocks of w[k*stride + j] * x[j], for k < rows
 *
 * a2 d, a3 w (16-byte aligned), a4 stride (a multiple of 16), a5 x (16-byte
 * aligned), a6 blocks (>= 1), a7 rows (>= 1).
 *
 * Preconditions, checked by the caller (lmf_matvec_q8 in kernels.c), not
 * here: blocks >= 1 (with 0, loopgtz skips the loop but the last
 * EE.VMULAS.S8.ACCX still reads one block) and rows >= 1 (with 0, the row
 * loop's count wraps and it runs 2^32 rows). Every product sum stays below
 * 2^31 by construction (group size <= 256: 256 * 127 * 127 < 2^22, checked
 * by the blob reader), so EE.SRS.ACCX never meets the case where Espressif's
 * sources disagree (the TRM: saturates; its QEMU: keeps the low 32 bits).
 *
 * Per row: EE.ZERO.ACCX; the first weight and activation blocks loaded;
 * blocks-1 times EE.VMULAS.S8.ACCX.LD.IP (ACCX += the sum of the 16 int8
 * products of q0 and q1, then q0 <- the next weight block) and EE.VLD.128.IP
 * (q1 <- the next activation block); a last EE.VMULAS.S8.ACCX without a
 * load, so that nothing past the row's last block is read; two cycles before
 * ACCX is read (esp-nn's esp_nn_dot_s8_unaligned_esp32s3: "2-cycle gap
 * before ACCX read", which it fills with a movi and a nop), filled here with
 * the next row's pointer and count updates instead of nops; EE.SRS.ACCX with
 * a shift of 0, which saturates the 40-bit ACCX to int32. The instruction forms
 * follow espressif/esp-nn src/common/esp_nn_dot_s8_esp32s3.S.
 *
 * PIE's 128-bit loads ignore the low 4 address bits: the blob's rows start
 * on 16-byte boundaries with a stride that is a multiple of 16, a group
 * starts a multiple of 16 columns into its row, and the activations (the
 * state's xq.x8) are carved 16-byte aligned from a 16-byte aligned arena. */

    .text
    .align  4
    .global lmf_pie_dots_s8
    .type   lmf_pie_dots_s8, @function

lmf_pie_dots_s8:
    entry   a1, 32
    movi.n  a10, 0                      /* EE.SRS.ACCX shift: none */
    addi.n  a11, a6, -1                 /* blocks after the first */
.Lrow:
    mov.n   a8, a3                      /* this row's weights */
    mov.n   a9, a5                      /* the activations */
    ee.zero.accx
    ee.vld.128.ip   q0, a8, 16
    ee.vld.128.ip   q1, a9, 16
    loopgtz a11, .Lblocks_end
    ee.vmulas.s8.accx.ld.ip  q0, a8, 16, q0, q1
    ee.vld.128.ip   q1, a9, 16
.Lblocks_end:
    ee.vmulas.s8.accx  q0, q1
    add     a3, a3, a4                  /* next row; with the next, the */
    addi    a7, a7, -1                  /* 2-cycle gap before ACCX is read */
    ee.srs.accx     a12, a10, 0
    s32i    a12, a2, 0
    addi    a2, a2, 4                   /* next d */
    bnez    a7, .Lrow
    retw.n

    .size   lmf_pie_dots_s8, . - lmf_pie_dots_s8

/* lmf_pie_dots4_s8: lmf_pie_dots_s8 for blocks == 4 (groups of 64 columns,
 * the blob's default): the four activation blocks stay in q1..q4, so a row
 * is its four weight loads and MACs and the ACCX read, in a zero-overhead
 * loop (10 instructions a row where the general kernel takes 19).
 *
 *   void lmf_pie_dots4_s8(int32_t *d, const int8_t *w, uint32_t stride, const int8_t *x, uint32_t rows)
 *   d[k] = sum over j < 64 of w[k*stride + j] * x[j], for k < rows
 *
 * a2 d, a3 w (16-byte aligned), a4 stride (a multiple of 16, >= 64), a5 x
 * (16-byte aligned), a6 rows (>= 1, checked by the caller; with 0 loopgtz
 * runs no row). The same sums as lmf_pie_dots_s8 (ACCX cleared, the blocks
 * in address order, EE.SRS.ACCX with shift 0), and the same 2-cycle gap
 * before ACCX is read. */
    .align  4
    .global lmf_pie_dots4_s8
    .type   lmf_pie_dots4_s8, @function

lmf_pie_dots4_s8:
    entry   a1, 32
    ee.vld.128.ip   q1, a5, 16          /* the activations, once */
    ee.vld.128.ip   q2, a5, 16
    ee.vld.128.ip   q3, a5, 16
    ee.vld.128.ip   q4, a5, 16
    movi.n  a10, 0                      /* EE.SRS.ACCX shift: none */
    addi    a9, a4, -64                 /* from a row's end to the next row */
    addi    a2, a2, -4                  /* stepped before each row's store */
    loopgtz a6, .Lrows4_end
    ee.zero.accx
    ee.vld.128.ip   q0, a3, 16
    ee.vmulas.s8.accx.ld.ip  q0, a3, 16, q0, q1
    ee.vmulas.s8.accx.ld.ip  q0, a3, 16, q0, q2
    ee.vmulas.s8.accx.ld.ip  q0, a3, 16, q0, q3
    ee.vmulas.s8.accx  q0, q4
    add     a3, a3, a9                  /* next row; with the next, the */
    addi    a2, a2, 4                   /* 2-cycle gap before ACCX is read */
    ee.srs.accx     a12, a10, 0
    s32i    a12, a2, 0
.Lrows4_end:
    retw.n

    .size   lmf_pie_dots4_s8, . - lmf_pie_dots4_s8

/* lmf_pie_dots_q4 and lmf_pie_dots4_q4: the products of int4 rows (two
 * signed nibbles a byte, the low nibble the even column) with int8
 * activations, unpacked in PIE registers: kernels.c's lmf_matvec_q4 on the
 * S3 (where the C unpack took two thirds of an int4 model's instructions).
 *
 *   void lmf_pie_dots_q4(int32_t *d, const uint8_t *w, uint32_t stride, const int8_t *x,
 *                        uint32_t halves, uint32_t rows)
 *   void lmf_pie_dots4_q4(int32_t *d, const uint8_t *w, uint32_t stride, const int8_t *x,
 *                         uint32_t rows)                                   (halves = 4)
 *   d[k] = sum over j < 16*halves of nibble(w + k*stride, j) * x[j], for k < rows
 *
 * a2 d, a3 w (16-byte aligned), a4 stride (bytes, a multiple of 16, at
 * least 8*halves rounded up to 16), a5 x (16-byte aligned, 16*halves bytes
 * rounded up to 32 readable), a6 halves (>= 1: 16 columns, 8 bytes each),
 * a7 rows (>= 1); lmf_pie_dots4_q4: a6 rows (0 runs none).
 *
 * No sign extension and no bias: a byte p's high nibble in place, p & 0xF0,
 * is as int8 16 times the signed high nibble, and its low nibble moved up,
 * (p << 4) & 0xF0 (EE.VSL.32 by SAR = 4: the TRM's vector shifts take
 * SAR's low 5 bits, and SSAI sets it; the bits that cross into the next
 * byte are masked off), 16 times the signed low one. So 16 weights of each
 * kind come from one load, one shift and two ANDs, ACCX sums 16 times the
 * products, and EE.SRS.ACCX shifts by 4, exactly (|16 d| < 2^26: no
 * rounding, no saturation). lmf_pie_dots_q4 interleaves the two kinds back
 * into column order (EE.VZIP.8: low nibble of byte 0, its high nibble, low
 * nibble of byte 1, ...) for the activations as they are in memory; a last
 * odd half uses the first register of the interleave only (the load's other
 * 8 bytes are the row's zero padding, inside its stride). lmf_pie_dots4_q4
 * keeps the 64 activations in q1..q4, split once into even and odd columns
 * (EE.VUNZIP.8), and needs no interleave: 17 instructions a row. The same
 * 2-cycle gap before ACCX is read as the int8 kernels. */
    .align  4
    .global lmf_pie_dots_q4
    .type   lmf_pie_dots_q4, @function

lmf_pie_dots_q4:
    entry   a1, 32
    movi    a8, 0xF0                    /* 0xF0 in every byte of q7 */
    slli    a9, a8, 8
    or      a8, a8, a9
    slli    a9, a8, 16
    or      a8, a8, a9
    ee.movi.32.q    q7, a8, 0
    ee.movi.32.q    q7, a8, 1
    ee.movi.32.q    q7, a8, 2
    ee.movi.32.q    q7, a8, 3
    ssai    4                           /* EE.VSL.32's shift */
    movi.n  a10, 4                      /* EE.SRS.ACCX shift: the sums are 16 d */
    srli    a11, a6, 1                  /* pairs of halves: 16 bytes, 32 columns */
    addi    a2, a2, -4                  /* stepped before each row's store */
.Lq4_row:
    mov.n   a8, a3                      /* this row's weights */
    mov.n   a9, a5                      /* the activations */
    ee.zero.accx
    loopgtz a11, .Lq4_pairs_end
    ee.vld.128.ip   q0, a8, 16          /* 32 nibbles */
    ee.vld.128.ip   q2, a9, 16
    ee.vsl.32       q1, q0
    ee.vld.128.ip   q3, a9, 16
    ee.andq         q0, q0, q7          /* 16 * the high nibbles */
    ee.andq         q1, q1, q7          /* 16 * the low nibbles */
    ee.vzip.8       q1, q0              /* q1: columns 0..15, q0: 16..31 */
    ee.vmulas.s8.accx  q1, q2
    ee.vmulas.s8.accx  q0, q3
.Lq4_pairs_end:
    bbci    a6, 0, .Lq4_even            /* an odd half: the next 8 bytes */
    ee.vld.128.ip   q0, a8, 16
    ee.vld.128.ip   q2, a9, 16
    ee.vsl.32       q1, q0
    ee.andq         q0, q0, q7
    ee.andq         q1, q1, q7
    ee.vzip.8       q1, q0
    ee.vmulas.s8.accx  q1, q2
.Lq4_even:
    add     a3, a3, a4                  /* next row; with the next two, */
    addi    a7, a7, -1                  /* the 2-cycle gap before ACCX is read */
    addi    a2, a2, 4
    ee.srs.accx     a12, a10, 0
    s32i    a12, a2, 0
    bnez    a7, .Lq4_row
    retw.n

    .size   lmf_pie_dots_q4, . - lmf_pie_dots_q4

    .align  4
    .global lmf_pie_dots4_q4
    .type   lmf_pie_dots4_q4, @function

lmf_pie_dots4_q4:
    entry   a1, 32
    ee.vld.128.ip   q1, a5, 16          /* the activations, once */
    ee.vld.128.ip   q2, a5, 16
    ee.vld.128.ip   q3, a5, 16
    ee.vld.128.ip   q4, a5, 16
    ee.vunzip.8     q1, q2              /* q1: x[0, 2, .. 30], q2: x[1, 3, .. 31] */
    ee.vunzip.8     q3, q4              /* q3, q4: the same for x[32..63] */
    movi    a8, 0xF0                    /* 0xF0 in every byte of q5 */
    slli    a9, a8, 8
    or      a8, a8, a9
    slli    a9, a8, 16
    or      a8, a8, a9
    ee.movi.32.q    q5, a8, 0
    ee.movi.32.q    q5, a8, 1
    ee.movi.32.q    q5, a8, 2
    ee.movi.32.q    q5, a8, 3
    ssai    4                           /* EE.VSL.32's shift */
    movi.n  a10, 4                      /* EE.SRS.ACCX shift: the sums are 16 d */
    addi    a9, a4, -32                 /* from a row's end to the next row */
    addi    a2, a2, -4                  /* stepped before each row's store */
    loopgtz a6, .Lq4r_end
    ee.zero.accx
    ee.vld.128.ip   q0, a3, 16          /* bytes 0..15: columns 0..31 */
    ee.vsl.32       q6, q0
    ee.andq         q0, q0, q5          /* 16 * the odd columns */
    ee.andq         q6, q6, q5          /* 16 * the even columns */
    ee.vmulas.s8.accx.ld.ip  q7, a3, 16, q6, q1     /* q7: bytes 16..31 */
    ee.vmulas.s8.accx  q0, q2
    ee.vsl.32       q6, q7
    ee.andq         q7, q7, q5
    ee.andq         q6, q6, q5
    ee.vmulas.s8.accx  q6, q3
    ee.vmulas.s8.accx  q7, q4
    add     a3, a3, a9                  /* next row; with the next, the */
    addi    a2, a2, 4                   /* 2-cycle gap before ACCX is read */
    ee.srs.accx     a12, a10, 0
    s32i    a12, a2, 0
.Lq4r_end:
    retw.n

    .size   lmf_pie_dots4_q4, . - lmf_pie_dots4_q4

/* lmf_pie_dots2_q4: two consecutive groups' int4 products at once, for group
 * sizes that are odd multiples of 16 (16 the calibrated default, 48, ...):
 * there every odd group's packed bytes start 8 bytes into a 16-byte block, so
 * the second group of a pair is reached from the first's aligned start, its
 * first 16 columns in the high register of the interleave that ends the first
 * group (kernels.c's pie_matvec_q4; the same unpack as lmf_pie_dots_q4).
 *
 *   void lmf_pie_dots2_q4(int32_t *d, const uint8_t *w, uint32_t stride, const int8_t *x,
 *                         uint32_t halves, uint32_t rows)
 *   halves = a | b << 16: group A's 16-column halves (a odd), then group B's (b >= 1)
 *   d[k] = A's sum of row k, d[rows + k] = B's (columns 16a .. 16(a+b) - 1), for k < rows
 *
 * a2 d, a3 w (16-byte aligned: A's start), a4 stride (a multiple of 16), a5
 * x (16-byte aligned, 16(a+b) bytes rounded up to 32 readable), a6 halves,
 * a7 rows (>= 1). A: (a - 1) / 2 pairs, then one load whose low nibbles'
 * interleave q1 is A's last half and q0 B's first; ACCX is read for A and
 * zeroed between. B: (b - 1) / 2 pairs, and a last half when b is even (the
 * load's other 8 bytes are the next group's or the row's padding). */
    .align  4
    .global lmf_pie_dots2_q4
    .type   lmf_pie_dots2_q4, @function

lmf_pie_dots2_q4:
    entry   a1, 32
    movi    a8, 0xF0                    /* 0xF0 in every byte of q7 */
    slli    a9, a8, 8
    or      a8, a8, a9
    slli    a9, a8, 16
    or      a8, a8, a9
    ee.movi.32.q    q7, a8, 0
    ee.movi.32.q    q7, a8, 1
    ee.movi.32.q    q7, a8, 2
    ee.movi.32.q    q7, a8, 3
    ssai    4                           /* EE.VSL.32's shift */
    movi.n  a10, 4                      /* EE.SRS.ACCX shift: the sums are 16 d */
    extui   a11, a6, 1, 15              /* A's pairs: a / 2, a odd */
    srli    a14, a6, 16
    addi    a14, a14, -1
    srli    a14, a14, 1                 /* B's pairs after its first half: (b - 1) / 2 */
    addx4   a13, a7, a2                 /* B's sums: d + rows, */
    addi    a13, a13, -4                /* stepped before each row's store */
.Lq42_row:
    mov.n   a8, a3                      /* this row's weights */
    mov.n   a9, a5                      /* the activations */
    ee.zero.accx
    loopgtz a11, .Lq42_a_end
    ee.vld.128.ip   q0, a8, 16          /* 32 nibbles of A */
    ee.vld.128.ip   q2, a9, 16
    ee.vsl.32       q1, q0
    ee.vld.128.ip   q3, a9, 16
    ee.andq         q0, q0, q7          /* 16 * the high nibbles */
    ee.andq         q1, q1, q7          /* 16 * the low nibbles */
    ee.vzip.8       q1, q0              /* q1: columns 0..15, q0: 16..31 */
    ee.vmulas.s8.accx  q1, q2
    ee.vmulas.s8.accx  q0, q3
.Lq42_a_end:
    ee.vld.128.ip   q0, a8, 16          /* A's last 8 bytes, B's first 8 */
    ee.vld.128.ip   q2, a9, 16
    ee.vsl.32       q1, q0
    ee.vld.128.ip   q3, a9, 16          /* B's first 16 activations */
    ee.andq         q0, q0, q7
    ee.andq         q1, q1, q7
    ee.vzip.8       q1, q0              /* q1: A's last half, q0: B's first */
    ee.vmulas.s8.accx  q1, q2
    add     a3, a3, a4                  /* next row; with the next, */
    addi    a7, a7, -1                  /* the 2-cycle gap before ACCX is read */
    ee.srs.accx     a12, a10, 0
    s32i    a12, a2, 0                  /* A's sum */
    ee.zero.accx
    ee.vmulas.s8.accx  q0, q3
    loopgtz a14, .Lq42_b_end
    ee.vld.128.ip   q0, a8, 16          /* 32 nibbles of B */
    ee.vld.128.ip   q2, a9, 16
    ee.vsl.32       q1, q0
    ee.vld.128.ip   q3, a9, 16
    ee.andq         q0, q0, q7
    ee.andq         q1, q1, q7
    ee.vzip.8       q1, q0
    ee.vmulas.s8.accx  q1, q2
    ee.vmulas.s8.accx  q0, q3
.Lq42_b_end:
    bbsi    a6, 16, .Lq42_b_odd         /* b even: B's last half, the next 8 bytes */
    ee.vld.128.ip   q0, a8, 16
    ee.vld.128.ip   q2, a9, 16
    ee.vsl.32       q1, q0
    ee.andq         q0, q0, q7
    ee.andq         q1, q1, q7
    ee.vzip.8       q1, q0
    ee.vmulas.s8.accx  q1, q2
.Lq42_b_odd:
    addi    a2, a2, 4                   /* with the next, the 2-cycle gap */
    addi    a13, a13, 4
    ee.srs.accx     a12, a10, 0
    s32i    a12, a13, 0                 /* B's sum */
    bnez    a7, .Lq42_row
    retw.n

    .size   lmf_pie_dots2_q4, . - lmf_pie_dots2_q4

/* lmf_pie_dots_hs8: attention's dot products for head size 8 (kernels.c's
 * lmf_dots_i8 uses it on the S3 when the keys are 16-byte aligned).
 *
 *   void lmf_pie_dots_hs8(int32_t *d, const int8_t *q2, const int8_t *keys, uint32_t pairs)
 *   d[2p]   = sum over i < 8 of q[i] * keys[16p + i]
 *   d[2p+1] = sum over i < 8 of q[i] * keys[16p + 8 + i], for p < pairs
 *
 * a2 d, a3 q2 (32 bytes, 16-byte aligned: q then 8 zeros, then 8 zeros and
 * q), a4 keys (16-byte aligned: one block holds two positions), a5 pairs
 * (>= 1, checked by the caller).
 *
 * ACCX is never cleared: it runs through all positions, RUR.ACCX_0 reads its
 * low 32 bits after each position's EE.VMULAS.S8.ACCX, and a position's dot
 * product is the difference of two reads. Differences modulo 2^32 are exact
 * for any count (each dot product fits in int32: 8 * 127 * 127), so neither
 * the 40-bit wrap nor EE.SRS.ACCX's saturation question arises. Each read
 * comes two instructions after its MAC (the 2-cycle gap, filled with work). */
    .align  4
    .global lmf_pie_dots_hs8
    .type   lmf_pie_dots_hs8, @function

lmf_pie_dots_hs8:
    entry   a1, 32
    ee.vld.128.ip   q0, a3, 16          /* q in the block's first half */
    ee.vld.128.ip   q1, a3, 16          /* q in its second half */
    ee.zero.accx
    movi.n  a6, 0                       /* ACCX's low 32 bits so far */
    addi    a2, a2, -8                  /* stepped before each pair's stores */
    loopgtz a5, .Lpairs_end
    ee.vld.128.ip   q2, a4, 16          /* positions 2p and 2p+1 */
    ee.vmulas.s8.accx  q2, q0
    mov.n   a8, a6
    addi    a2, a2, 8
    rur.accx_0  a7
    ee.vmulas.s8.accx  q2, q1
    sub     a8, a7, a8
    s32i    a8, a2, 0                   /* d[2p] */
    rur.accx_0  a6
    sub     a9, a6, a7
    s32i    a9, a2, 4                   /* d[2p+1] */
.Lpairs_end:
    retw.n

    .size   lmf_pie_dots_hs8, . - lmf_pie_dots_hs8

/* lmf_pie_weighted_sum_hs8: attention's weighted sum over the values for
 * head size 8 (kernels.c's lmf_weighted_sum_i8 uses it on the S3 when the
 * values are 16-byte aligned).
 *
 *   void lmf_pie_weighted_sum_hs8(uint32_t raw[10], const int16_t *w, const int8_t *values, uint32_t pairs)
 *   lane i = sum over t < 2*pairs of w[t] * values[8t + i], for i < 8
 *
 * a2 raw (10 words, 4-byte aligned), a3 w (int16, 2-byte aligned), a4 values
 * (16-byte aligned: one block holds two positions), a5 pairs (>= 1, checked
 * by the caller).
 *
 * Per pair: the block of two positions loaded; EE.VCMP.LT.S8 against zero
 * gives each byte's sign (0xFF where negative), and EE.VZIP.8 interleaves
 * the values with their signs, which sign-extends them: q0 holds position 2p
 * as eight int16 lanes, q1 position 2p+1. EE.VLDBC.16.IP broadcasts each
 * position's weight to all lanes, and EE.VMULAS.S16.QACC adds the lane
 * products into QACC's eight 40-bit lanes (lanes 0-3 in QACC_L, 4-7 in
 * QACC_H). |w| < 2^14, |v| <= 128 and at most 512 positions (the caller's
 * chunk) keep every lane below 2^30 in magnitude: no saturation.
 *
 * The result is QACC as it is, read with RUR.QACC_L_0..4 and
 * RUR.QACC_H_0..4 (each register's 160 bits, lane i at bits 40i..40i+39)
 * into raw[0..4] and raw[5..9]; the caller takes each lane's low 32 bits.
 * (Not EE.ST.QACC_*.128.IP: Espressif's sources disagree on its layout, the
 * TRM storing each lane's low 32 bits, its QEMU the register's raw bytes.)
 * Two instructions separate the last MAC from the first read, as for ACCX. */
    .align  4
    .global lmf_pie_weighted_sum_hs8
    .type   lmf_pie_weighted_sum_hs8, @function

lmf_pie_weighted_sum_hs8:
    entry   a1, 32
    ee.zero.qacc
    ee.zero.q       q7                  /* zeros, for the sign compare */
    loopgtz a5, .Lws_pairs_end
    ee.vld.128.ip   q0, a4, 16          /* positions 2p and 2p+1 */
    ee.vcmp.lt.s8   q1, q0, q7          /* their signs */
    ee.vldbc.16.ip  q2, a3, 2           /* w[2p] in every lane */
    ee.vzip.8       q0, q1              /* q0: position 2p as int16, q1: 2p+1 */
    ee.vldbc.16.ip  q3, a3, 2           /* w[2p+1] in every lane */
    ee.vmulas.s16.qacc  q0, q2
    ee.vmulas.s16.qacc  q1, q3
.Lws_pairs_end:
    mov.n   a6, a2                      /* the 2-cycle gap before QACC is read */
    addi    a7, a2, 20
    rur.qacc_l_0    a8
    rur.qacc_l_1    a9
    rur.qacc_l_2    a10
    rur.qacc_l_3    a11
    rur.qacc_l_4    a12
    s32i    a8, a6, 0
    s32i    a9, a6, 4
    s32i    a10, a6, 8
    s32i    a11, a6, 12
    s32i    a12, a6, 16
    rur.qacc_h_0    a8
    rur.qacc_h_1    a9
    rur.qacc_h_2    a10
    rur.qacc_h_3    a11
    rur.qacc_h_4    a12
    s32i    a8, a7, 0
    s32i    a9, a7, 4
    s32i    a10, a7, 8
    s32i    a11, a7, 12
    s32i    a12, a7, 16
    retw.n

    .size   lmf_pie_weighted_sum_hs8, . - lmf_pie_weighted_sum_hs8

/* lmf_s3_softmax_weights: attention's softmax weights (lmf/kernels.h's
 * lmf_softmax_weights on the S3; the C there is the definition, and this
 * computes the same integers, with top = 17 + *vexp_max). No PIE: the LX7's
 * scalar instructions, in one pass where the C takes two, and skipping the
 * table for the positions whose e_t is 0 (about half of them in
 * stories260K's run). Checked by tests/pie-kernel-check.ts (its form) and
 * firmware/ports/qemu-esp32s3/kernel-check.c (its integers on edge inputs).
 *
 *   uint32_t lmf_s3_softmax_weights(int16_t *w, const int32_t *score, const uint16_t *vmant,
 *                                   const int16_t *vexp, uint32_t n, int32_t best,
 *                                   int32_t top, const uint32_t *exp2_q30)
 *   for t < n: d = score[t] - best (<= 0), k = d >> 15 (floor),
 *     e_t = lmf_exp2_frac_q30(d & 0x7FFF) >> (15 - k), 0 for k < -16 (lmf_exp2_q15);
 *     w[t] = (e_t * vmant[t]) >> min(top - vexp[t], 31) (unsigned);
 *   returns the sum of e_t.
 *
 * a2 w, a3 score, a4 vmant, a5 vexp, a6 n (loopgtz: 0 runs none), a7 best;
 * on the stack (the windowed ABI's seventh and eighth arguments, at the
 * caller's stack pointer: a1 + 32 after entry a1, 32) top and lmf_exp2_q30
 * (passed in: no literal pool). best is first lowered by 17 * 2^15, so that
 * x = (d + 17 * 2^15) >> 15 = k + 17, and SSL x sets SAR to 32 - x = 15 - k,
 * the exponent shift. The table is skipped for x < 2 (one blti): k < -16
 * gives 0 in the C, and so does k = -16, a shift by 31 of a value below
 * 2^31. Adding a multiple of 2^15 leaves d's low 15 bits, the table index
 * (bits 8..14) and the interpolation weight (bits 0..7), as they are. SAR
 * is 15..30 where it is used for e_t, and min(top - vexp, 31) for w[t]. */
    .align  4
    .global lmf_s3_softmax_weights
    .type   lmf_s3_softmax_weights, @function

lmf_s3_softmax_weights:
    entry   a1, 32
    l32i    a13, a1, 32                 /* top */
    l32i    a14, a1, 36                 /* lmf_exp2_q30 */
    movi    a8, 17
    slli    a8, a8, 15
    sub     a7, a7, a8                  /* best - 17 * 2^15 */
    movi.n  a15, 31                     /* the largest weight shift */
    movi.n  a12, 0                      /* sum of e_t */
    loopgtz a6, .Lsw_end
    l32i    a8, a3, 0                   /* score[t] */
    addi    a3, a3, 4
    sub     a8, a8, a7                  /* d + 17 * 2^15 */
    srai    a9, a8, 15                  /* x = k + 17 */
    movi.n  a6, 0                       /* w[t] when e_t is 0 */
    blti    a9, 2, .Lsw_store           /* k < -15: e_t = 0 */
    extui   a10, a8, 8, 7               /* table index */
    extui   a8, a8, 0, 8                /* interpolation weight */
    addx4   a10, a10, a14
    l32i    a11, a10, 0                 /* lo */
    l32i    a10, a10, 4                 /* hi */
    sub     a10, a10, a11
    mull    a10, a10, a8
    srli    a10, a10, 8
    add     a10, a10, a11               /* 2^(frac / 2^15) in Q30 */
    ssl     a9                          /* SAR = 32 - x = 15 - k */
    srl     a10, a10                    /* e_t */
    add     a12, a12, a10
    l16ui   a8, a4, 0                   /* vmant[t] */
    l16si   a11, a5, 0                  /* vexp[t] */
    mull    a10, a10, a8                /* below 2^31: e_t <= 2^15, vmant < 2^16 */
    sub     a11, a13, a11
    minu    a11, a11, a15
    ssr     a11
    srl     a6, a10
.Lsw_store:
    s16i    a6, a2, 0                   /* w[t] */
    addi    a2, a2, 2
    addi    a4, a4, 2
    addi    a5, a5, 2
.Lsw_end:
    mov.n   a2, a12
    retw.n

    .size   lmf_s3_softmax_weights, . - lmf_s3_softmax_weights
