/*
 * WebAssembly SIMD kernels of the TypeScript trainer (converter/train):
 * the matrix product C (+)= A·Bᵀ and causal attention forward/backward for
 * one window. Built by `npm run build:wasm` with clang --target=wasm32
 * -msimd128 -nostdlib; no libc, so exp is written out below. Every float op
 * is IEEE single precision, so results are the same on every machine.
 */
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

typedef float f32;

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/*
 * 4x8 blocks and chunks of 256 k: measured on this machine against 4x16
 * (the accumulators and B's vectors then outnumber V8's 16 xmm registers and
 * spill), 3x16, 5x8, 6x8 and 8x8, and chunks of 128 and 512; without chunks,
 * dW of the classifier (k = 2048 tokens, A's columns 2 KB apart) ran at a
 * third of the others' speed.
 */
#define GEMM_MR 4
#define GEMM_NV 2
#define GEMM_KC 256

/*
 * The micro-kernel behind every product: C[m][n] (+)= sum_k a(m,k) b[k][n],
 * a(m,k) = A[m*sam + k*sak] and b row-major with row stride ldb. MR rows of
 * C times 4*NV columns live in vector accumulators; each step broadcasts one
 * value of A per row against 4*NV contiguous values of B. Columns past N
 * are computed on whatever follows B (the caller leaves 64 bytes of slack)
 * and never stored; rows past M repeat row M-1 and are never stored.
 */
#define MR GEMM_MR
#define NV GEMM_NV
ALWAYS_INLINE void gemm_block(f32 *C, const f32 *A, int sam, int sak, const f32 *B, int ldb, int M, int N, int K, int acc) {
  enum { NR = 4 * NV };
  f32 tmp[MR * NR] __attribute__((aligned(16)));
  for (int m = 0; m < M; m += MR) {
    const f32 *a[MR];
    for (int r = 0; r < MR; r++) a[r] = A + (m + r < M ? m + r : M - 1) * sam;
    const int rows = M - m < MR ? M - m : MR;
    for (int n = 0; n < N; n += NR) {
      v128_t c[MR][NV];
      for (int r = 0; r < MR; r++) for (int j = 0; j < NV; j++) c[r][j] = wasm_f32x4_splat(0);
      const f32 *b = B + n;
      for (int k = 0, ka = 0; k < K; k++, ka += sak, b += ldb) {
        v128_t bv[NV];
        for (int j = 0; j < NV; j++) bv[j] = wasm_v128_load(b + 4 * j);
        for (int r = 0; r < MR; r++) {
          const v128_t x = wasm_v128_load32_splat(a[r] + ka);
          for (int j = 0; j < NV; j++) c[r][j] = wasm_f32x4_add(c[r][j], wasm_f32x4_mul(x, bv[j]));
        }
      }
      const int cols = N - n < NR ? N - n : NR;
      if (cols == NR) {
        for (int r = 0; r < MR; r++) {
          if (r >= rows) break;
          f32 *crow = C + (m + r) * N + n;
          for (int j = 0; j < NV; j++) wasm_v128_store(crow + 4 * j, acc ? wasm_f32x4_add(wasm_v128_load(crow + 4 * j), c[r][j]) : c[r][j]);
        }
      } else {
        for (int r = 0; r < MR; r++) for (int j = 0; j < NV; j++) wasm_v128_store(tmp + r * NR + 4 * j, c[r][j]);
        for (int r = 0; r < rows; r++) {
          f32 *crow = C + (m + r) * N + n;
          const f32 *t = tmp + r * NR;
          if (acc) for (int j = 0; j < cols; j++) crow[j] += t[j];
          else for (int j = 0; j < cols; j++) crow[j] = t[j];
        }
      }
    }
  }
}
#undef MR
#undef NV


/* gemm_block over chunks of GEMM_KC steps of k, so that a chunk of A's and B's rows stays in cache across the blocks of C. */
static void gemm_core(f32 *C, const f32 *A, int sam, int sak, const f32 *B, int ldb, int M, int N, int K, int acc) {
  for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
    const int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
    gemm_block(C, A + k0 * sak, sam, sak, B + k0 * ldb, ldb, M, N, kc, acc || k0 > 0);
  }
}

/* C (+)= A Bt: A [M][K], B [N][K]; B is transposed into bt ([K][N]) first. */
EXPORT("gemm_abt")
void gemm_abt(f32 *C, const f32 *A, const f32 *B, f32 *bt, int M, int N, int K, int acc) {
  for (int k = 0; k < K; k++) {
    f32 *row = bt + k * N;
    for (int n = 0; n < N; n++) row[n] = B[n * K + k];
  }
  gemm_core(C, A, K, 1, bt, N, M, N, K, acc);
}

/* C (+)= A B: A [M][K], B [K][N]. */
EXPORT("gemm_ab")
void gemm_ab(f32 *C, const f32 *A, const f32 *B, int M, int N, int K, int acc) {
  gemm_core(C, A, K, 1, B, N, M, N, K, acc);
}

/* C (+)= At B: A [K][M], B [K][N] (the weight gradient dYt X over K tokens). */
EXPORT("gemm_atb")
void gemm_atb(f32 *C, const f32 *A, const f32 *B, int M, int N, int K, int acc) {
  gemm_core(C, A, 1, M, B, N, M, N, K, acc);
}

/* e^x to about 2 ulp: x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor for e^r. */
static inline f32 exp_f32(f32 x) {
  if (x < -87.0f) x = -87.0f; /* as exp_f32x4 */
  if (x > 88.0f) x = 88.0f;
  const f32 n = __builtin_rintf(x * 1.44269504088896341f);
  const f32 r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
  const f32 p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f + r * 0.00138888892f)))));
  union { int i; f32 f; } u;
  u.i = ((int)n + 127) << 23;
  return p * u.f;
}

/* kt[i][s] = k[s][off + i] for one head's columns of a [T][width] matrix, rows padded with zeros to Tp. */
static void gather_t(f32 *kt, const f32 *k, int T, int Tp, int width, int off, int hs) {
  for (int i = 0; i < hs; i++) {
    f32 *row = kt + i * Tp;
    for (int s = 0; s < T; s++) row[s] = k[s * width + off + i];
    for (int s = T; s < Tp; s++) row[s] = 0.0f;
  }
}

/*
 * exp_f32 on four lanes. pmin/pmax (no NaN rules) are one instruction each
 * where min/max are a sequence, and the integer n comes out of the low bits
 * of x*log2(e) + 1.5*2^23 (rounded to nearest even, as f32x4.nearest) instead
 * of a saturating conversion: the same values, about half the instructions.
 */
static inline v128_t exp_f32x4(v128_t x) {
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, wasm_f32x4_splat(-87.0f)), wasm_f32x4_splat(88.0f));
  const v128_t magic = wasm_f32x4_splat(12582912.0f);
  const v128_t kf = wasm_f32x4_add(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)), magic);
  const v128_t n = wasm_f32x4_sub(kf, magic);
  const v128_t r = wasm_f32x4_sub(wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693145751953125f))),
                                  wasm_f32x4_mul(n, wasm_f32x4_splat(1.428606765330187e-06f)));
  v128_t p = wasm_f32x4_splat(0.00138888892f);
  p = wasm_f32x4_add(wasm_f32x4_splat(0.00833333377f), wasm_f32x4_mul(r, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.0416666679f), wasm_f32x4_mul(r, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.166666672f), wasm_f32x4_mul(r, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.5f), wasm_f32x4_mul(r, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.0f), wasm_f32x4_mul(r, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.0f), wasm_f32x4_mul(r, p));
  const v128_t pow2 = wasm_i32x4_add(wasm_i32x4_shl(kf, 23), wasm_i32x4_splat(127 << 23));
  return wasm_f32x4_mul(p, pow2);
}

/*
 * 2^y on four lanes for y <= 0 (the tiled attention's scores, already in
 * base 2 and shifted by their maximum; -inf lanes give 2^-126): y = n + f,
 * |f| <= 1/2, and 2^f = 1 + f q(f) with q of degree 4 fitted to 2^f's
 * relative error on [-1/2, 1/2] (iteratively reweighted least squares, then
 * rounded to float): at most 1.9e-7 relative in float arithmetic, against
 * 2.4e-7 for exp_f32x4's degree-6 Taylor polynomial (both measured over
 * 200,001 points with numpy). Taking the scores in base 2 (the scale times
 * log2(e), one rounding as before) turns exp's two-step reduction by ln2
 * into one exact subtraction and drops its upper clamp: 17 operations
 * instead of 24.
 */
static inline v128_t exp2_neg_f32x4(v128_t y) {
  y = wasm_f32x4_pmax(y, wasm_f32x4_splat(-126.0f));
  const v128_t magic = wasm_f32x4_splat(12582912.0f);
  const v128_t kf = wasm_f32x4_add(y, magic);
  const v128_t f = wasm_f32x4_sub(y, wasm_f32x4_sub(kf, magic));
  v128_t p = wasm_f32x4_splat(0.001326472731307149f);
  p = wasm_f32x4_add(wasm_f32x4_splat(0.009671512991189957f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.05550733581185341f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.24022242426872253f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(0.6931470036506653f), wasm_f32x4_mul(f, p));
  p = wasm_f32x4_add(wasm_f32x4_splat(1.0f), wasm_f32x4_mul(f, p));
  const v128_t pow2 = wasm_i32x4_add(wasm_i32x4_shl(kf, 23), wasm_i32x4_splat(127 << 23));
  return wasm_f32x4_mul(p, pow2);
}

static f32 hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) + (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

/*
 * Causal attention of one window: q [T][H*hs], k and v [T][KVH*hs] (after
 * RoPE), p [H][T][T] receives the probabilities (row t holds columns 0..t;
 * the rest is left as it is), att [T][H*hs] the output. scratch holds
 * 2*hs*Tp floats, Tp = T rounded up to 4.
 */
static void attn_fwd_any(const f32 *q, const f32 *k, const f32 *v, f32 *p, f32 *att, int T, int H, int KVH, int hs, f32 scale, f32 *scratch) {
  const int Tp = (T + 3) & ~3;
  const int dim = H * hs, kv = KVH * hs, group = H / KVH;
  f32 *kt = scratch, *vt = scratch + hs * Tp;
  for (int g = 0; g < KVH; g++) {
    gather_t(kt, k, T, Tp, kv, g * hs, hs);
    gather_t(vt, v, T, Tp, kv, g * hs, hs);
    for (int h = g * group; h < (g + 1) * group; h++) {
      for (int t = 0; t < T; t++) {
        const f32 *qt = q + t * dim + h * hs;
        f32 *pr = p + ((long)h * T + t) * T;
        const int n = t + 1, n4 = (n + 3) & ~3;
        /* scores four columns at a time; the ones past t are computed on zero padding and ignored */
        for (int s = 0; s < n4; s += 4) {
          v128_t acc = wasm_f32x4_splat(0);
          for (int i = 0; i < hs; i++) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_splat(qt[i]), wasm_v128_load(kt + i * Tp + s)));
          acc = wasm_f32x4_mul(acc, wasm_f32x4_splat(scale));
          if (s + 4 <= T) wasm_v128_store(pr + s, acc);
          else {
            f32 lanes[4] __attribute__((aligned(16)));
            wasm_v128_store(lanes, acc);
            for (int j = 0; j < T - s; j++) pr[s + j] = lanes[j];
          }
        }
        f32 max = pr[0];
        for (int s = 1; s < n; s++) if (pr[s] > max) max = pr[s];
        const v128_t vmax = wasm_f32x4_splat(max);
        v128_t vz = wasm_f32x4_splat(0);
        int s = 0;
        for (; s + 4 <= n; s += 4) {
          const v128_t e = exp_f32x4(wasm_f32x4_sub(wasm_v128_load(pr + s), vmax));
          wasm_v128_store(pr + s, e);
          vz = wasm_f32x4_add(vz, e);
        }
        f32 z = hsum(vz);
        for (; s < n; s++) { const f32 e = exp_f32(pr[s] - max); pr[s] = e; z += e; }
        const f32 inv = 1.0f / z;
        for (s = 0; s < n; s++) pr[s] *= inv;
        f32 *out = att + t * dim + h * hs;
        for (int i = 0; i < hs; i++) {
          const f32 *vrow = vt + i * Tp;
          v128_t acc = wasm_f32x4_splat(0);
          int s = 0;
          for (; s + 4 <= n; s += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(pr + s), wasm_v128_load(vrow + s)));
          f32 sum = hsum(acc);
          for (; s < n; s++) sum += pr[s] * vrow[s];
          out[i] = sum;
        }
      }
    }
  }
}

/*
 * Gradient of attn_fwd: from datt [T][H*hs] and the saved p, writes dq
 * [T][H*hs], dk and dv [T][KVH*hs] (overwritten). scratch holds 4*hs*Tp + Tp
 * floats.
 */
static void attn_bwd_any(const f32 *q, const f32 *k, const f32 *v, const f32 *p, const f32 *datt, f32 *dq, f32 *dk, f32 *dv,
              int T, int H, int KVH, int hs, f32 scale, f32 *scratch) {
  const int Tp = (T + 3) & ~3;
  const int dim = H * hs, kv = KVH * hs, group = H / KVH;
  f32 *kt = scratch, *vt = kt + hs * Tp, *dkt = vt + hs * Tp, *dvt = dkt + hs * Tp, *ds = dvt + hs * Tp;
  for (int g = 0; g < KVH; g++) {
    gather_t(kt, k, T, Tp, kv, g * hs, hs);
    gather_t(vt, v, T, Tp, kv, g * hs, hs);
    for (int j = 0; j < 2 * hs * Tp; j++) dkt[j] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++) {
      for (int t = 0; t < T; t++) {
        const f32 *qt = q + t * dim + h * hs;
        const f32 *gt = datt + t * dim + h * hs;
        const f32 *pr = p + ((long)h * T + t) * T;
        const int n = t + 1;
        int s = 0;
        /* dP[s] = datt_t . v_s, and dV_s += P[s] datt_t */
        for (; s + 4 <= n; s += 4) {
          v128_t d = wasm_f32x4_splat(0);
          const v128_t pv = wasm_v128_load(pr + s);
          for (int i = 0; i < hs; i++) {
            const v128_t gi = wasm_f32x4_splat(gt[i]);
            d = wasm_f32x4_add(d, wasm_f32x4_mul(gi, wasm_v128_load(vt + i * Tp + s)));
            wasm_v128_store(dvt + i * Tp + s, wasm_f32x4_add(wasm_v128_load(dvt + i * Tp + s), wasm_f32x4_mul(gi, pv)));
          }
          wasm_v128_store(ds + s, d);
        }
        for (; s < n; s++) {
          f32 d = 0.0f;
          for (int i = 0; i < hs; i++) { d += gt[i] * vt[i * Tp + s]; dvt[i * Tp + s] += gt[i] * pr[s]; }
          ds[s] = d;
        }
        f32 dot = 0.0f;
        for (s = 0; s < n; s++) dot += pr[s] * ds[s];
        for (s = 0; s < n; s++) ds[s] = pr[s] * (ds[s] - dot) * scale;
        /* dq_t = sum_s dS[s] k_s; dk_s += dS[s] q_t */
        f32 *dqt = dq + t * dim + h * hs;
        for (int i = 0; i < hs; i++) {
          const f32 *krow = kt + i * Tp;
          f32 *dkrow = dkt + i * Tp;
          const v128_t qi = wasm_f32x4_splat(qt[i]);
          v128_t acc = wasm_f32x4_splat(0);
          for (s = 0; s + 4 <= n; s += 4) {
            const v128_t dsv = wasm_v128_load(ds + s);
            acc = wasm_f32x4_add(acc, wasm_f32x4_mul(dsv, wasm_v128_load(krow + s)));
            wasm_v128_store(dkrow + s, wasm_f32x4_add(wasm_v128_load(dkrow + s), wasm_f32x4_mul(qi, dsv)));
          }
          f32 sum = hsum(acc);
          for (; s < n; s++) { sum += ds[s] * krow[s]; dkrow[s] += qt[i] * ds[s]; }
          dqt[i] = sum;
        }
      }
    }
    for (int s = 0; s < T; s++)
      for (int i = 0; i < hs; i++) {
        dk[s * kv + g * hs + i] = dkt[i * Tp + s];
        dv[s * kv + g * hs + i] = dvt[i * Tp + s];
      }
  }
}

/*
 * Attention tiled over blocks of 4 query rows, for head sizes known at
 * compile time (HS a multiple of 4): each key or value vector loaded serves
 * the 4 rows, the 4-row blocks of scores and probabilities stay in scratch
 * (L1), and the outputs accumulate in registers. Columns past a row's
 * position are masked to exact zeros; rows past T (the last block of a
 * window whose length is not a multiple of 4) reuse a real row and are never
 * stored. The forward pass of head size 16 runs here, the other head sizes'
 * in attn_fwd_lanes; every tiled backward pass in attn_bwd_blocked.
 */

ALWAYS_INLINE f32 hmax(v128_t v) {
  v = wasm_f32x4_pmax(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  v = wasm_f32x4_pmax(v, wasm_i32x4_shuffle(v, v, 1, 0, 3, 2));
  return wasm_f32x4_extract_lane(v, 0);
}

/* o[r] += x_r[lane J] * base_(s+J) for the 4 rows of a block (J a constant lane; base rows kv apart). */
#define ROWS_TIMES_LANE(J, base, x0, x1, x2, x3)                                                    \
  do {                                                                                              \
    const f32 *row = (base) + (s + J) * kv;                                                         \
    v128_t vv[4];                                                                                   \
    for (int j = 0; j < HS / 4; j++) vv[j] = wasm_v128_load(row + 4 * j);                           \
    const v128_t p0 = wasm_i32x4_shuffle(x0, x0, J, J, J, J), p1 = wasm_i32x4_shuffle(x1, x1, J, J, J, J); \
    const v128_t p2 = wasm_i32x4_shuffle(x2, x2, J, J, J, J), p3 = wasm_i32x4_shuffle(x3, x3, J, J, J, J); \
    for (int j = 0; j < HS / 4; j++) {                                                              \
      o[0][j] = wasm_f32x4_add(o[0][j], wasm_f32x4_mul(p0, vv[j]));                                 \
      o[1][j] = wasm_f32x4_add(o[1][j], wasm_f32x4_mul(p1, vv[j]));                                 \
      o[2][j] = wasm_f32x4_add(o[2][j], wasm_f32x4_mul(p2, vv[j]));                                 \
      o[3][j] = wasm_f32x4_add(o[3][j], wasm_f32x4_mul(p3, vv[j]));                                 \
    }                                                                                               \
  } while (0)

/* ROWS_TIMES_LANE over the 4 columns of block s, or only the R that exist in a window's last block. */
#define ROWS_TIMES_BLOCK(base, x0, x1, x2, x3)                                                      \
  do {                                                                                              \
    if (s < t0 || R == 4) {                                                                         \
      ROWS_TIMES_LANE(0, base, x0, x1, x2, x3); ROWS_TIMES_LANE(1, base, x0, x1, x2, x3);           \
      ROWS_TIMES_LANE(2, base, x0, x1, x2, x3); ROWS_TIMES_LANE(3, base, x0, x1, x2, x3);           \
    } else {                                                                                        \
      ROWS_TIMES_LANE(0, base, x0, x1, x2, x3);                                                     \
      if (R > 1) ROWS_TIMES_LANE(1, base, x0, x1, x2, x3);                                          \
      if (R > 2) ROWS_TIMES_LANE(2, base, x0, x1, x2, x3);                                          \
    }                                                                                               \
  } while (0)

ALWAYS_INLINE void attn_fwd_tiled(const f32 *q, const f32 *k, const f32 *v, f32 *p, f32 *att, int T, int H, int KVH, const int HS, f32 scale, f32 *scratch) {
  const int Tp = (T + 3) & ~3;
  const int dim = H * HS, kv = KVH * HS, group = H / KVH;
  f32 *kt = scratch, *S = scratch + HS * Tp; /* S: 4 rows of Tp scores, then exponentials */
  /* scores in base 2: exp(x - max) = 2^(y - ymax), y = x log2(e) */
  const v128_t vscale = wasm_f32x4_splat(scale * 1.44269504088896341f), ninf = wasm_f32x4_splat(-__builtin_inff()), zero = wasm_f32x4_splat(0);
  /* in the diagonal block (columns t0..t0+3), row r sees lanes 0..r */
  const v128_t M0 = wasm_i32x4_make(-1, 0, 0, 0), M1 = wasm_i32x4_make(-1, -1, 0, 0), M2 = wasm_i32x4_make(-1, -1, -1, 0);
  for (int g = 0; g < KVH; g++) {
    gather_t(kt, k, T, Tp, kv, g * HS, HS);
    const f32 *vg = v + g * HS;
    for (int h = g * group; h < (g + 1) * group; h++) {
      for (int t0 = 0; t0 < T; t0 += 4) {
        const int R = T - t0 < 4 ? T - t0 : 4;
        const f32 *q0 = q + t0 * dim + h * HS;
        const f32 *q1 = q0 + (R > 1 ? dim : 0), *q2 = q0 + (R > 2 ? 2 * dim : 0), *q3 = q0 + (R > 3 ? 3 * dim : 0);
        /* scores (scaled) into S, and each row's running maximum */
        v128_t m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
        _Pragma("clang loop unroll(disable)") for (int s = 0; s <= t0; s += 4) {
          v128_t a0 = zero, a1 = zero, a2 = zero, a3 = zero;
          for (int i = 0; i < HS; i++) {
            const v128_t kk = wasm_v128_load(kt + i * Tp + s);
            a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load32_splat(q0 + i), kk));
            a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load32_splat(q1 + i), kk));
            a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load32_splat(q2 + i), kk));
            a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load32_splat(q3 + i), kk));
          }
          a0 = wasm_f32x4_mul(a0, vscale); a1 = wasm_f32x4_mul(a1, vscale); a2 = wasm_f32x4_mul(a2, vscale); a3 = wasm_f32x4_mul(a3, vscale);
          if (s == t0) { a0 = wasm_v128_bitselect(a0, ninf, M0); a1 = wasm_v128_bitselect(a1, ninf, M1); a2 = wasm_v128_bitselect(a2, ninf, M2); }
          wasm_v128_store(S + s, a0); wasm_v128_store(S + Tp + s, a1); wasm_v128_store(S + 2 * Tp + s, a2); wasm_v128_store(S + 3 * Tp + s, a3);
          m0 = wasm_f32x4_pmax(m0, a0); m1 = wasm_f32x4_pmax(m1, a1); m2 = wasm_f32x4_pmax(m2, a2); m3 = wasm_f32x4_pmax(m3, a3);
        }
        m0 = wasm_f32x4_splat(hmax(m0)); m1 = wasm_f32x4_splat(hmax(m1)); m2 = wasm_f32x4_splat(hmax(m2)); m3 = wasm_f32x4_splat(hmax(m3));
        /* exponentials (kept in S for the probabilities), their sums, and the unnormalized output e V */
        v128_t z0 = zero, z1 = zero, z2 = zero, z3 = zero;
        v128_t o[4][4];
        for (int r = 0; r < 4; r++) for (int j = 0; j < HS / 4; j++) o[r][j] = zero;
        _Pragma("clang loop unroll(disable)") for (int s = 0; s <= t0; s += 4) {
          v128_t e0 = exp2_neg_f32x4(wasm_f32x4_sub(wasm_v128_load(S + s), m0));
          v128_t e1 = exp2_neg_f32x4(wasm_f32x4_sub(wasm_v128_load(S + Tp + s), m1));
          v128_t e2 = exp2_neg_f32x4(wasm_f32x4_sub(wasm_v128_load(S + 2 * Tp + s), m2));
          v128_t e3 = exp2_neg_f32x4(wasm_f32x4_sub(wasm_v128_load(S + 3 * Tp + s), m3));
          if (s == t0) { e0 = wasm_v128_and(e0, M0); e1 = wasm_v128_and(e1, M1); e2 = wasm_v128_and(e2, M2); }
          wasm_v128_store(S + s, e0); wasm_v128_store(S + Tp + s, e1); wasm_v128_store(S + 2 * Tp + s, e2); wasm_v128_store(S + 3 * Tp + s, e3);
          z0 = wasm_f32x4_add(z0, e0); z1 = wasm_f32x4_add(z1, e1); z2 = wasm_f32x4_add(z2, e2); z3 = wasm_f32x4_add(z3, e3);
          ROWS_TIMES_BLOCK(vg, e0, e1, e2, e3);
        }
        const f32 inv[4] = {1.0f / hsum(z0), 1.0f / hsum(z1), 1.0f / hsum(z2), 1.0f / hsum(z3)};
        for (int r = 0; r < R; r++) {
          const int t = t0 + r;
          const v128_t vi = wasm_f32x4_splat(inv[r]);
          f32 *out = att + t * dim + h * HS;
          for (int j = 0; j < HS / 4; j++) wasm_v128_store(out + 4 * j, wasm_f32x4_mul(o[r][j], vi));
          const f32 *Sr = S + r * Tp;
          f32 *prow = p + ((long)h * T + t) * T;
          int s = 0;
          /* with T a multiple of 4, the diagonal block is stored whole (its masked columns exact zeros), so the backward reads p in place */
          const int end = T % 4 == 0 ? t0 + 4 : t + 1;
          _Pragma("clang loop unroll(disable)") for (; s + 4 <= end; s += 4) wasm_v128_store(prow + s, wasm_f32x4_mul(wasm_v128_load(Sr + s), vi));
          for (; s <= t; s++) prow[s] = Sr[s] * inv[r];
        }
      }
    }
  }
}

/* The 4x4 transpose of rows a, b, c, d (into them). */
#define TRANSPOSE4(a, b, c, d)                                                                         \
  do {                                                                                              \
    const v128_t t0_ = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), t1_ = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7); \
    const v128_t t2_ = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), t3_ = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7); \
    a = wasm_i32x4_shuffle(t0_, t2_, 0, 1, 4, 5); b = wasm_i32x4_shuffle(t0_, t2_, 2, 3, 6, 7);      \
    c = wasm_i32x4_shuffle(t1_, t3_, 0, 1, 4, 5); d = wasm_i32x4_shuffle(t1_, t3_, 2, 3, 6, 7);      \
  } while (0)

/*
 * The forward pass with a block's 4 query rows in the lanes (head sizes 4
 * and 8): one key at a time gives a column of 4 scores, so the block's
 * queries stay in HS registers, a key's or value's elements are broadcast
 * from one pointer, and one vector carries the 4 rows' maxima and another
 * their sums. St (scratch, 4*Tp floats) holds the block's columns (scores,
 * then exponentials); p receives them transposed back into rows, the form
 * the backward pass reads. Measured against attn_fwd_tiled on the
 * stories260K shape (one layer, 4 windows of 256): 2.65 ms against 3.15.
 * Head size 16 stays tiled: its 16 query vectors would not fit in V8's 16
 * vector registers.
 */
ALWAYS_INLINE void attn_fwd_lanes(const f32 *q, const f32 *k, const f32 *v, f32 *p, f32 *att, int T, int H, int KVH, const int HS, f32 scale, f32 *St) {
  const int dim = H * HS, kv = KVH * HS, group = H / KVH;
  /* scores in base 2: exp(x - max) = 2^(y - ymax), y = x log2(e) */
  const v128_t vscale = wasm_f32x4_splat(scale * 1.44269504088896341f), ninf = wasm_f32x4_splat(-__builtin_inff()), zero = wasm_f32x4_splat(0);
  const v128_t lane = wasm_i32x4_make(0, 1, 2, 3);
  for (int h = 0; h < H; h++) {
    const f32 *kg = k + (h / group) * HS, *vg = v + (h / group) * HS;
    for (int t0 = 0; t0 < T; t0 += 4) {
      const int R = T - t0 < 4 ? T - t0 : 4, cols = t0 + R;
      /* qt[i], lane r: element i of query t0 + r (rows past T repeat row t0) */
      const f32 *q0 = q + t0 * dim + h * HS;
      const f32 *qr[4] = {q0, q0 + (R > 1 ? dim : 0), q0 + (R > 2 ? 2 * dim : 0), q0 + (R > 3 ? 3 * dim : 0)};
      v128_t qt[8];
      for (int i = 0; i < HS; i += 4) {
        qt[i] = wasm_v128_load(qr[0] + i); qt[i + 1] = wasm_v128_load(qr[1] + i);
        qt[i + 2] = wasm_v128_load(qr[2] + i); qt[i + 3] = wasm_v128_load(qr[3] + i);
        TRANSPOSE4(qt[i], qt[i + 1], qt[i + 2], qt[i + 3]);
      }
      /* scores, scaled, and the rows' maxima; column t0 + j of the diagonal block is seen by rows j.. only */
      v128_t m = ninf;
      const f32 *kr = kg;
      _Pragma("clang loop unroll(disable)") for (int s = 0; s < cols; s++, kr += kv) {
        v128_t a = zero;
        for (int i = 0; i < HS; i++) a = wasm_f32x4_add(a, wasm_f32x4_mul(qt[i], wasm_v128_load32_splat(kr + i)));
        a = wasm_f32x4_mul(a, vscale);
        if (s >= t0) a = wasm_v128_bitselect(a, ninf, wasm_i32x4_ge(lane, wasm_i32x4_splat(s - t0)));
        wasm_v128_store(St + 4 * s, a);
        m = wasm_f32x4_pmax(m, a);
      }
      /* exponentials (exact zeros where masked) and their sums */
      v128_t z = zero;
      _Pragma("clang loop unroll(disable)") for (int s = 0; s < cols; s++) {
        v128_t e = exp2_neg_f32x4(wasm_f32x4_sub(wasm_v128_load(St + 4 * s), m));
        if (s >= t0) e = wasm_v128_and(e, wasm_i32x4_ge(lane, wasm_i32x4_splat(s - t0)));
        wasm_v128_store(St + 4 * s, e);
        z = wasm_f32x4_add(z, e);
      }
      for (int s = cols; s < t0 + 4; s++) wasm_v128_store(St + 4 * s, zero);
      const v128_t inv = wasm_f32x4_div(wasm_f32x4_splat(1.0f), z);
      /* the output e V, normalized: ot[c], lane r, is element c of row t0 + r */
      v128_t ot[8];
      for (int c = 0; c < HS; c++) ot[c] = zero;
      const f32 *vr = vg;
      _Pragma("clang loop unroll(disable)") for (int s = 0; s < cols; s++, vr += kv) {
        const v128_t e = wasm_v128_load(St + 4 * s);
        for (int c = 0; c < HS; c++) ot[c] = wasm_f32x4_add(ot[c], wasm_f32x4_mul(e, wasm_v128_load32_splat(vr + c)));
      }
      for (int c = 0; c < HS; c += 4) {
        v128_t a = wasm_f32x4_mul(ot[c], inv), b = wasm_f32x4_mul(ot[c + 1], inv), d = wasm_f32x4_mul(ot[c + 2], inv), e = wasm_f32x4_mul(ot[c + 3], inv);
        TRANSPOSE4(a, b, d, e);
        const v128_t rows[4] = {a, b, d, e};
        for (int r = 0; r < 4 && r < R; r++) wasm_v128_store(att + (t0 + r) * dim + h * HS + c, rows[r]);
      }
      /* the probabilities into p's rows; with T a multiple of 4 the diagonal block is stored whole (masked columns exact zeros), so the backward reads p in place */
      f32 *p0 = p + ((long)h * T + t0) * T;
      _Pragma("clang loop unroll(disable)") for (int s = 0; s < t0 + 4; s += 4) {
        v128_t a = wasm_f32x4_mul(wasm_v128_load(St + 4 * s), inv), b = wasm_f32x4_mul(wasm_v128_load(St + 4 * s + 4), inv);
        v128_t c = wasm_f32x4_mul(wasm_v128_load(St + 4 * s + 8), inv), d = wasm_f32x4_mul(wasm_v128_load(St + 4 * s + 12), inv);
        TRANSPOSE4(a, b, c, d);
        const v128_t rows[4] = {a, b, c, d};
        if (s < t0 || T % 4 == 0) {
          for (int r = 0; r < 4 && r < R; r++) wasm_v128_store(p0 + r * T + s, rows[r]);
        } else {
          for (int r = 0; r < R; r++) {
            f32 lanes[4] __attribute__((aligned(16)));
            wasm_v128_store(lanes, rows[r]);
            for (int j = 0; j <= r; j++) p0[r * T + s + j] = lanes[j];
          }
        }
      }
    }
  }
}

/*
 * The backward pass over blocks of 4 query rows for head sizes 4, 8 and 16,
 * with every operand of the inner loops one pointer plus constant offsets:
 * the group's keys and values and their gradients in column blocks
 * [Tp/4][HS][4], the keys also row by row [Tp][HS], the block's
 * probabilities and their gradients in [Tp/4][P rows 0..3, D rows 0..3][4],
 * the block's queries and output gradients [2][4][HS]. V8 holds few
 * pointers in registers, and a row-strided form spilled them in every
 * inner loop (3.87 ms against 3.12 for one layer of the stories260K shape,
 * 4 windows of 256). Rows past T are zeros, so they add nothing.
 * scratch: (5*HS + 8)*Tp + 8*HS floats.
 */
ALWAYS_INLINE void attn_bwd_blocked(const f32 *q, const f32 *k, const f32 *v, const f32 *p, const f32 *datt, f32 *dq, f32 *dk, f32 *dv,
                                    int T, int H, int KVH, const int HS, f32 scale, f32 *scratch) {
  const int Tp = (T + 3) & ~3;
  const int dim = H * HS, kv = KVH * HS, group = H / KVH;
  const int CB = 4 * HS; /* floats per column block of KB, VB, dKB, dVB */
  f32 *KB = scratch, *VB = KB + HS * Tp, *dKB = VB + HS * Tp, *dVB = dKB + HS * Tp, *KR = dVB + HS * Tp, *PD = KR + HS * Tp, *QG = PD + 8 * Tp;
  const v128_t vscale = wasm_f32x4_splat(scale), zero = wasm_f32x4_splat(0);
  for (int g = 0; g < KVH; g++) {
    for (int s = 0; s < Tp; s++)
      for (int i = 0; i < HS; i++) {
        const f32 kk = s < T ? k[s * kv + g * HS + i] : 0.0f, vv = s < T ? v[s * kv + g * HS + i] : 0.0f;
        KB[(s >> 2) * CB + 4 * i + (s & 3)] = kk;
        VB[(s >> 2) * CB + 4 * i + (s & 3)] = vv;
        KR[s * HS + i] = kk;
      }
    for (int j = 0; j < 2 * HS * Tp; j++) dKB[j] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++) {
      for (int t0 = 0; t0 < T; t0 += 4) {
        const int R = T - t0 < 4 ? T - t0 : 4;
        const int nb = (t0 + R + 3) >> 2; /* column blocks this row block sees */
        const f32 *qb = QG, *gb = QG + 4 * HS;
        for (int r = 0; r < 4; r++)
          for (int i = 0; i < HS; i++) {
            QG[r * HS + i] = r < R ? q[(t0 + r) * dim + h * HS + i] : 0.0f;
            QG[4 * HS + r * HS + i] = r < R ? datt[(t0 + r) * dim + h * HS + i] : 0.0f;
          }
        /* the block's probabilities: whole column blocks as vectors; the diagonal one masked unless the forward
           stored it whole (T a multiple of 4: masked columns exact zeros) */
        for (int r = 0; r < 4; r++) {
          const f32 *prow = p + ((long)h * T + t0 + r) * T;
          const int whole = r >= R ? 0 : T % 4 == 0 ? nb : nb - 1;
          for (int j = 0; j < whole; j++) wasm_v128_store(PD + 32 * j + 4 * r, wasm_v128_load(prow + 4 * j));
          for (int j = whole; j < nb; j++)
            for (int l = 0; l < 4; l++) PD[32 * j + 4 * r + l] = r < R && 4 * j + l <= t0 + r ? prow[4 * j + l] : 0.0f;
        }
        /* dP = dO V^T (into PD's D rows); dV += P^T dO */
        _Pragma("clang loop unroll(disable)") for (int j = 0; j < nb; j++) {
          f32 *pd = PD + 32 * j;
          const f32 *vb = VB + j * CB;
          f32 *dvb = dVB + j * CB;
          const v128_t p0 = wasm_v128_load(pd), p1 = wasm_v128_load(pd + 4), p2 = wasm_v128_load(pd + 8), p3 = wasm_v128_load(pd + 12);
          v128_t d0 = zero, d1 = zero, d2 = zero, d3 = zero;
          for (int i = 0; i < HS; i++) {
            const v128_t vv = wasm_v128_load(vb + 4 * i);
            const v128_t x0 = wasm_v128_load32_splat(gb + i), x1 = wasm_v128_load32_splat(gb + HS + i);
            const v128_t x2 = wasm_v128_load32_splat(gb + 2 * HS + i), x3 = wasm_v128_load32_splat(gb + 3 * HS + i);
            d0 = wasm_f32x4_add(d0, wasm_f32x4_mul(x0, vv));
            d1 = wasm_f32x4_add(d1, wasm_f32x4_mul(x1, vv));
            d2 = wasm_f32x4_add(d2, wasm_f32x4_mul(x2, vv));
            d3 = wasm_f32x4_add(d3, wasm_f32x4_mul(x3, vv));
            const v128_t sum = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(x0, p0), wasm_f32x4_mul(x1, p1)), wasm_f32x4_add(wasm_f32x4_mul(x2, p2), wasm_f32x4_mul(x3, p3)));
            wasm_v128_store(dvb + 4 * i, wasm_f32x4_add(wasm_v128_load(dvb + 4 * i), sum));
          }
          wasm_v128_store(pd + 16, d0); wasm_v128_store(pd + 20, d1); wasm_v128_store(pd + 24, d2); wasm_v128_store(pd + 28, d3);
        }
        /* each row's P.dP */
        v128_t a0 = zero, a1 = zero, a2 = zero, a3 = zero;
        for (int j = 0; j < nb; j++) {
          const f32 *pd = PD + 32 * j;
          a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(pd), wasm_v128_load(pd + 16)));
          a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(pd + 4), wasm_v128_load(pd + 20)));
          a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(pd + 8), wasm_v128_load(pd + 24)));
          a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load(pd + 12), wasm_v128_load(pd + 28)));
        }
        const v128_t dot0 = wasm_f32x4_splat(hsum(a0)), dot1 = wasm_f32x4_splat(hsum(a1)), dot2 = wasm_f32x4_splat(hsum(a2)), dot3 = wasm_f32x4_splat(hsum(a3));
        /* dS = P (dP - P.dP) scale (over the D rows); dK += dS^T Q */
        _Pragma("clang loop unroll(disable)") for (int j = 0; j < nb; j++) {
          f32 *pd = PD + 32 * j;
          f32 *dkb = dKB + j * CB;
          const v128_t s0 = wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(pd), wasm_f32x4_sub(wasm_v128_load(pd + 16), dot0)), vscale);
          const v128_t s1 = wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(pd + 4), wasm_f32x4_sub(wasm_v128_load(pd + 20), dot1)), vscale);
          const v128_t s2 = wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(pd + 8), wasm_f32x4_sub(wasm_v128_load(pd + 24), dot2)), vscale);
          const v128_t s3 = wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(pd + 12), wasm_f32x4_sub(wasm_v128_load(pd + 28), dot3)), vscale);
          wasm_v128_store(pd + 16, s0); wasm_v128_store(pd + 20, s1); wasm_v128_store(pd + 24, s2); wasm_v128_store(pd + 28, s3);
          for (int i = 0; i < HS; i++) {
            const v128_t sum = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load32_splat(qb + i), s0), wasm_f32x4_mul(wasm_v128_load32_splat(qb + HS + i), s1)),
                                              wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load32_splat(qb + 2 * HS + i), s2), wasm_f32x4_mul(wasm_v128_load32_splat(qb + 3 * HS + i), s3)));
            wasm_v128_store(dkb + 4 * i, wasm_f32x4_add(wasm_v128_load(dkb + 4 * i), sum));
          }
        }
        /* dQ = dS K, 8 columns of dQ at a time (4 x 2 accumulators) */
        const int NV = HS / 4 < 2 ? HS / 4 : 2;
        for (int c0 = 0; c0 < HS; c0 += 4 * NV) {
          v128_t o[4][2];
          for (int r = 0; r < 4; r++) for (int jj = 0; jj < NV; jj++) o[r][jj] = zero;
          _Pragma("clang loop unroll(disable)") for (int j = 0; j < nb; j++) {
            const f32 *ds = PD + 32 * j + 16, *kr = KR + 4 * j * HS + c0;
            for (int l = 0; l < 4; l++) {
              v128_t kk[2];
              for (int jj = 0; jj < NV; jj++) kk[jj] = wasm_v128_load(kr + l * HS + 4 * jj);
              for (int r = 0; r < 4; r++) {
                const v128_t x = wasm_v128_load32_splat(ds + 4 * r + l);
                for (int jj = 0; jj < NV; jj++) o[r][jj] = wasm_f32x4_add(o[r][jj], wasm_f32x4_mul(x, kk[jj]));
              }
            }
          }
          for (int r = 0; r < 4 && r < R; r++)
            for (int jj = 0; jj < NV; jj++) wasm_v128_store(dq + (t0 + r) * dim + h * HS + c0 + 4 * jj, o[r][jj]);
        }
      }
    }
    for (int s = 0; s < T; s++)
      for (int i = 0; i < HS; i++) {
        dk[s * kv + g * HS + i] = dKB[(s >> 2) * CB + 4 * i + (s & 3)];
        dv[s * kv + g * HS + i] = dVB[(s >> 2) * CB + 4 * i + (s & 3)];
      }
  }
}

/*
 * Causal attention of one window: q [T][H*hs], k and v [T][KVH*hs] (after
 * RoPE), p [H][T][T] receives the probabilities (row t holds columns 0..t;
 * the rest is left as it is), att [T][H*hs] the output. scratch holds
 * 2*hs*Tp floats, Tp = T rounded up to 4 (attentionScratchFloats in
 * converter/train/kernels.ts covers both directions).
 */
EXPORT("attn_fwd")
void attn_fwd(const f32 *q, const f32 *k, const f32 *v, f32 *p, f32 *att, int T, int H, int KVH, int hs, f32 scale, f32 *scratch) {
  switch (hs) {
    case 4: attn_fwd_lanes(q, k, v, p, att, T, H, KVH, 4, scale, scratch); break;
    case 8: attn_fwd_lanes(q, k, v, p, att, T, H, KVH, 8, scale, scratch); break;
    case 16: attn_fwd_tiled(q, k, v, p, att, T, H, KVH, 16, scale, scratch); break;
    default: attn_fwd_any(q, k, v, p, att, T, H, KVH, hs, scale, scratch);
  }
}

/*
 * Gradient of attn_fwd: from datt [T][H*hs] and the saved p, writes dq
 * [T][H*hs], dk and dv [T][KVH*hs] (overwritten). scratch holds
 * (5*hs + 8)*Tp + 8*hs floats.
 */
EXPORT("attn_bwd")
void attn_bwd(const f32 *q, const f32 *k, const f32 *v, const f32 *p, const f32 *datt, f32 *dq, f32 *dk, f32 *dv,
              int T, int H, int KVH, int hs, f32 scale, f32 *scratch) {
  switch (hs) {
    case 4: attn_bwd_blocked(q, k, v, p, datt, dq, dk, dv, T, H, KVH, 4, scale, scratch); break;
    case 8: attn_bwd_blocked(q, k, v, p, datt, dq, dk, dv, T, H, KVH, 8, scale, scratch); break;
    case 16: attn_bwd_blocked(q, k, v, p, datt, dq, dk, dv, T, H, KVH, 16, scale, scratch); break;
    default: attn_bwd_any(q, k, v, p, datt, dq, dk, dv, T, H, KVH, hs, scale, scratch);
  }
}

/*
 * The element-wise steps of a layer, so that a pass whose activations live in
 * this module's memory never copies them out: RMSNorm, RoPE, SwiGLU and the
 * softmax cross-entropy, forward and backward. Vectorized over the row; the
 * sums are grouped in 4 lanes, so they differ from the TypeScript loops by
 * rounding only.
 */

/* out = g * (x / rms(x)) per row of dim; inv[r] = 1/rms of row r. */
EXPORT("rmsnorm_fwd")
void rmsnorm_fwd(f32 *out, f32 *inv, const f32 *x, const f32 *g, int rows, int dim, f32 eps) {
  const int d4 = dim & ~3;
  for (int r = 0; r < rows; r++) {
    const f32 *xr = x + (long)r * dim;
    f32 *o = out + (long)r * dim;
    v128_t acc = wasm_f32x4_splat(0);
    int j = 0;
    for (; j < d4; j += 4) { const v128_t v = wasm_v128_load(xr + j); acc = wasm_f32x4_add(acc, wasm_f32x4_mul(v, v)); }
    f32 ss = hsum(acc);
    for (; j < dim; j++) ss += xr[j] * xr[j];
    const f32 iv = 1.0f / __builtin_sqrtf(ss / (f32)dim + eps);
    inv[r] = iv;
    const v128_t viv = wasm_f32x4_splat(iv);
    for (j = 0; j < d4; j += 4) wasm_v128_store(o + j, wasm_f32x4_mul(wasm_v128_load(g + j), wasm_f32x4_mul(viv, wasm_v128_load(xr + j))));
    for (; j < dim; j++) o[j] = g[j] * (iv * xr[j]);
  }
}

/* dx += dL/dx and dg += dL/dg of rmsnorm_fwd, given dy = dL/dout. */
EXPORT("rmsnorm_bwd")
void rmsnorm_bwd(f32 *dx, f32 *dg, const f32 *dy, const f32 *x, const f32 *inv, const f32 *g, int rows, int dim) {
  const int d4 = dim & ~3;
  for (int r = 0; r < rows; r++) {
    const f32 *xr = x + (long)r * dim, *dyr = dy + (long)r * dim;
    f32 *dxr = dx + (long)r * dim;
    const f32 iv = inv[r];
    const v128_t viv = wasm_f32x4_splat(iv);
    v128_t vdot = wasm_f32x4_splat(0);
    int j = 0;
    for (; j < d4; j += 4) {
      const v128_t dyx = wasm_f32x4_mul(wasm_v128_load(dyr + j), wasm_v128_load(xr + j));
      wasm_v128_store(dg + j, wasm_f32x4_add(wasm_v128_load(dg + j), wasm_f32x4_mul(dyx, viv)));
      vdot = wasm_f32x4_add(vdot, wasm_f32x4_mul(wasm_v128_load(g + j), dyx));
    }
    f32 dot = hsum(vdot);
    for (; j < dim; j++) { dg[j] += dyr[j] * xr[j] * iv; dot += g[j] * dyr[j] * xr[j]; }
    const f32 k = iv * iv * iv * dot / (f32)dim;
    const v128_t vk = wasm_f32x4_splat(k);
    for (j = 0; j < d4; j += 4) {
      const v128_t t = wasm_f32x4_sub(wasm_f32x4_mul(wasm_f32x4_mul(viv, wasm_v128_load(g + j)), wasm_v128_load(dyr + j)), wasm_f32x4_mul(wasm_v128_load(xr + j), vk));
      wasm_v128_store(dxr + j, wasm_f32x4_add(wasm_v128_load(dxr + j), t));
    }
    for (; j < dim; j++) dxr[j] += iv * g[j] * dyr[j] - xr[j] * k;
  }
}

/*
 * RoPE in place on rows of width (heads of hs, interleaved pairs), row r at
 * position r % T; cs and sn are [T][hs/2]. inverse rotates back (the
 * gradient of the rotation).
 */
EXPORT("rope")
void rope(f32 *m, int rows, int width, int hs, int T, const f32 *cs, const f32 *sn, int inverse) {
  const int half = hs / 2;
  const f32 sign = inverse ? -1.0f : 1.0f;
  for (int r = 0; r < rows; r++) {
    const f32 *c = cs + (r % T) * half, *s = sn + (r % T) * half;
    f32 *row = m + (long)r * width;
    if ((half & 1) == 0) {
      /* two pairs a vector: x * (c c c' c') + (x1 x0 x1' x0') * (-s s -s' s'), the scalar loop's products and sums exactly */
      for (int p = 0; p < half; p += 2) {
        const v128_t c2 = wasm_v128_load64_splat(c + p), s2 = wasm_f32x4_mul(wasm_v128_load64_splat(s + p), wasm_f32x4_make(-sign, -sign, sign, sign));
        const v128_t cv = wasm_i32x4_shuffle(c2, c2, 0, 0, 1, 1), sv = wasm_i32x4_shuffle(s2, s2, 0, 2, 1, 3);
        for (int o = 0; o < width; o += hs) {
          const v128_t x = wasm_v128_load(row + o + 2 * p);
          const v128_t sw = wasm_i32x4_shuffle(x, x, 1, 0, 3, 2);
          wasm_v128_store(row + o + 2 * p, wasm_f32x4_add(wasm_f32x4_mul(x, cv), wasm_f32x4_mul(sw, sv)));
        }
      }
      continue;
    }
    for (int o = 0; o < width; o += hs)
      for (int p = 0; p < half; p++) {
        const f32 cv = c[p], sv = sign * s[p];
        const f32 a0 = row[o + 2 * p], a1 = row[o + 2 * p + 1];
        row[o + 2 * p] = a0 * cv - a1 * sv;
        row[o + 2 * p + 1] = a0 * sv + a1 * cv;
      }
  }
}

static inline v128_t sigmoid_f32x4(v128_t h) {
  const v128_t one = wasm_f32x4_splat(1.0f);
  return wasm_f32x4_div(one, wasm_f32x4_add(one, exp_f32x4(wasm_f32x4_neg(h))));
}

/* gate = silu(h1) * h3 over n values (n rounded up to 4: the arrays have slack). */
EXPORT("swiglu_fwd")
void swiglu_fwd(f32 *gate, const f32 *h1, const f32 *h3, int n) {
  for (int i = 0; i < n; i += 4) {
    const v128_t h = wasm_v128_load(h1 + i);
    wasm_v128_store(gate + i, wasm_f32x4_mul(wasm_f32x4_mul(h, sigmoid_f32x4(h)), wasm_v128_load(h3 + i)));
  }
}

/* dh1, dh3 of swiglu_fwd from dgate (n rounded up to 4). */
EXPORT("swiglu_bwd")
void swiglu_bwd(f32 *dh1, f32 *dh3, const f32 *dgate, const f32 *h1, const f32 *h3, int n) {
  const v128_t one = wasm_f32x4_splat(1.0f);
  for (int i = 0; i < n; i += 4) {
    const v128_t h = wasm_v128_load(h1 + i), s = sigmoid_f32x4(h), dg = wasm_v128_load(dgate + i);
    wasm_v128_store(dh3 + i, wasm_f32x4_mul(wasm_f32x4_mul(dg, h), s));
    const v128_t d = wasm_f32x4_add(one, wasm_f32x4_mul(h, wasm_f32x4_sub(one, s)));
    wasm_v128_store(dh1 + i, wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_mul(dg, wasm_v128_load(h3 + i)), s), d));
  }
}

/*
 * Softmax cross-entropy of rows of V logits against targets (< 0: not
 * scored). stats[2r] = max - logit[target], stats[2r+1] = sum exp(logit -
 * max), so the row's loss is stats[2r] + log(stats[2r+1]) (the caller takes
 * the log). With toGrad, each row becomes scale * (softmax - onehot), rows
 * without a target zeros.
 */
EXPORT("cross_entropy")
void cross_entropy(f32 *logits, const int *targets, int rows, int V, f32 scale, int toGrad, f32 *stats) {
  const int V4 = V & ~3;
  for (int r = 0; r < rows; r++) {
    f32 *l = logits + (long)r * V;
    const int t = targets[r];
    if (t < 0) {
      if (toGrad) for (int j = 0; j < V; j++) l[j] = 0.0f;
      continue;
    }
    v128_t vm = wasm_f32x4_splat(-__builtin_inff());
    int j = 0;
    for (; j < V4; j += 4) vm = wasm_f32x4_pmax(vm, wasm_v128_load(l + j));
    vm = wasm_f32x4_pmax(vm, wasm_i32x4_shuffle(vm, vm, 2, 3, 0, 1));
    vm = wasm_f32x4_pmax(vm, wasm_i32x4_shuffle(vm, vm, 1, 0, 3, 2));
    f32 max = wasm_f32x4_extract_lane(vm, 0);
    for (; j < V; j++) if (l[j] > max) max = l[j];
    vm = wasm_f32x4_splat(max);
    stats[2 * r] = max - l[t];
    v128_t vz = wasm_f32x4_splat(0);
    for (j = 0; j < V4; j += 4) {
      const v128_t e = exp_f32x4(wasm_f32x4_sub(wasm_v128_load(l + j), vm));
      vz = wasm_f32x4_add(vz, e);
      if (toGrad) wasm_v128_store(l + j, e);
    }
    f32 z = hsum(vz);
    for (; j < V; j++) {
      const f32 e = exp_f32(l[j] - max);
      z += e;
      if (toGrad) l[j] = e;
    }
    stats[2 * r + 1] = z;
    if (toGrad) {
      const f32 k = scale / z;
      const v128_t vk = wasm_f32x4_splat(k);
      for (j = 0; j < V4; j += 4) wasm_v128_store(l + j, wasm_f32x4_mul(wasm_v128_load(l + j), vk));
      for (; j < V; j++) l[j] *= k;
      l[t] -= scale;
    }
  }
}

/*
 * The yardstick for "fraction of peak": n rounds of 12 independent
 * multiply-adds on 4 lanes (96 flops a round), the most this kernel
 * technology (128-bit WebAssembly SIMD, no fused multiply-add) can issue.
 * Twelve chains, because a multiply and the add that waits on it take about
 * 8 cycles: with the 8 chains this loop had, it measured 35.5 GFLOP/s on a
 * core where the products' own kernel reached 37-42 and 12 chains 43.7 (12
 * accumulators and 2 constants still fit in V8's 16 vector registers).
 * Returns a sum so nothing is optimized away.
 */
EXPORT("peak_loop")
f32 peak_loop(int n) {
  v128_t a[12];
  for (int j = 0; j < 12; j++) a[j] = wasm_f32x4_splat(0.1f * (f32)(j + 1));
  const v128_t m = wasm_f32x4_splat(0.999999f), c = wasm_f32x4_splat(1e-7f);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < 12; j++) a[j] = wasm_f32x4_add(wasm_f32x4_mul(a[j], m), c);
  v128_t sum = a[0];
  for (int j = 1; j < 12; j++) sum = wasm_f32x4_add(sum, a[j]);
  return hsum(sum);
}
