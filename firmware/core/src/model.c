/* The forward pass, top to bottom: embedding, then per layer attention and
 * feed-forward with residuals, then the classifier. Matrix products are int8
 * weights times int8 activations with integer accumulation (kernels.c), and
 * attention runs in integers past the query's quantization; the float work
 * left is O(dim) per layer and O(head size) per head. */
#include "lmf/model.h"
#include "lmf/detmath.h"
#include "lmf/kernels.h"

#include <string.h>

/* The values' weighted sum runs in chunks of ATT_CHUNK positions: weights are
 * below 2^14 and values below 2^7 in magnitude, so a chunk's integer sums
 * stay below 2^31 (and its softmax denominator below 2^24, exact as a float). */
#define ATT_CHUNK 512

#if defined(__GNUC__)
#define LMF_NOINLINE __attribute__((noinline))
#else
#define LMF_NOINLINE
#endif

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

typedef struct { uint8_t *next; size_t used; } carver;

static void *carve(carver *c, size_t bytes)
{
    void *p = c->next ? c->next + c->used : NULL;
    c->used += round16(bytes);
    return p;
}

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

static uint32_t min_u32(uint32_t a, uint32_t b) { return a < b ? a : b; }

static void carve_qvec(carver *cv, lmf_qvec *v, uint32_t n, uint32_t group)
{
    uint32_t groups = (n + group - 1) / group;
    v->x = carve(cv, round16(n) * 2);
    v->scale = carve(cv, groups * 4);
    v->sum = carve(cv, groups * 4);
}

/* Lays the state out in the arena (or, with base NULL, only counts bytes).
 * The KV cache is ordered [layer][kv head][position][hs], so that attention
 * reads one head's keys and values as one contiguous run; its scales are
 * stored as 16-bit mantissa and exponent arrays (2 + 2 bytes per row, as a
 * float was). */
static size_t layout(lmf_state *s, const lmf_config *c, uint32_t ctx, uint8_t *base)
{
    uint32_t hs = c->dim / c->n_heads, kv_dim = c->n_kv_heads * hs;
    uint32_t widest = max_u32(c->dim, c->hidden_dim);
    size_t rows = (size_t)c->n_layers * c->n_kv_heads * ctx; /* cache rows of hs values */
    carver cv = {base, 0};
    s->x = carve(&cv, c->dim * 4);
    s->xb = carve(&cv, c->dim * 4);
    s->xb2 = carve(&cv, c->dim * 4);
    s->hb = carve(&cv, c->hidden_dim * 4);
    s->hb2 = carve(&cv, c->hidden_dim * 4);
    s->q = carve(&cv, c->dim * 4);
    s->k = carve(&cv, kv_dim * 4);
    s->v = carve(&cv, kv_dim * 4);
    s->logits = carve(&cv, (size_t)c->vocab_size * 4);
    carve_qvec(&cv, &s->xq, widest, c->group_size);
    s->xq.x8 = (int8_t *)(void *)s->xq.x; /* the matrix products' input: int8 in place for the PIE kernels */
    carve_qvec(&cv, &s->qq, c->dim, hs);
    s->qq.x8 = NULL;                      /* the queries stay int16 */
    s->att = carve(&cv, (size_t)ctx * 4);
    s->att_w = carve(&cv, (size_t)min_u32(ctx, ATT_CHUNK) * 2);
    s->att_acc = carve(&cv, hs * 4);
    s->key_cache = carve(&cv, rows * hs);
    s->value_cache = carve(&cv, rows * hs);
    s->key_mant = carve(&cv, rows * 2);
    s->value_mant = carve(&cv, rows * 2);
    s->key_exp = carve(&cv, rows * 2);
    s->value_exp = carve(&cv, rows * 2);
    s->rope_freq = carve(&cv, hs / 2 * 4);
    s->rope_cos = carve(&cv, hs / 2 * 4);
    s->rope_sin = carve(&cv, hs / 2 * 4);
    return cv.used;
}

size_t lmf_state_bytes(const lmf_config *cfg, uint32_t ctx)
{
    lmf_state tmp;
    return layout(&tmp, cfg, ctx, NULL);
}

uint32_t lmf_state_max_ctx(const lmf_config *cfg, size_t arena_bytes)
{
    uint32_t lo = 0, hi = cfg->seq_len;
    while (lo < hi) { /* largest ctx with bytes(ctx) <= arena_bytes */
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (lmf_state_bytes(cfg, mid) <= arena_bytes) lo = mid; else hi = mid - 1;
    }
    return lo;
}

int lmf_state_init(lmf_state *s, const lmf_blob *blob, void *arena, size_t arena_bytes, uint32_t ctx, lmf_error *err)
{
    const lmf_config *c = &blob->cfg;
    uint32_t hs = c->dim / c->n_heads, p;
    size_t need;
    if (ctx == 0) ctx = c->seq_len;
    if (ctx > c->seq_len)
        return lmf_fail(err, "context %u is longer than the model's %u positions", ctx, c->seq_len);
    need = lmf_state_bytes(c, ctx);
    if (need > arena_bytes)
        return lmf_fail(err, "context %u needs %lu bytes of RAM but only %lu are available: use a shorter context (at most %u)",
                        ctx, (unsigned long)need, (unsigned long)arena_bytes, lmf_state_max_ctx(c, arena_bytes));
    if (((uintptr_t)arena & 15) != 0) return lmf_fail(err, "arena must be 16-byte aligned");
    memset(s, 0, sizeof *s);
    layout(s, c, ctx, (uint8_t *)arena);
    memset(arena, 0, need);
    s->blob = blob;
    s->ctx = ctx;
    /* frequency of pair p: theta^(-2p/hs), computed once */
    for (p = 0; p < hs / 2; p++)
        s->rope_freq[p] = lmf_expf(-(float)(2 * p) / (float)hs * lmf_logf(c->rope_theta));
    s->score_unit = 1.44269504088896341f * 32768.0f / lmf_sqrtf((float)hs);
    return 0;
}

/* RMSNorm of x times weight, quantized into s->xq for the matrix products.
 * Quantization does not depend on the vector's scale, so it quantizes
 * weight * x (into s->xb) and folds the norm's 1/rms into the group scales:
 * two float operations per element fewer. */
static void rmsnorm_quantize(lmf_state *s, const float *x, const float *weight)
{
    const lmf_config *c = &s->blob->cfg;
    uint32_t n = c->dim, i, groups = (n + c->group_size - 1) / c->group_size;
    float ss = 0.0f, inv;
    for (i = 0; i < n; i++) {
        ss += x[i] * x[i];
        s->xb[i] = weight[i] * x[i];
    }
    inv = 1.0f / lmf_sqrtf(ss / (float)n + c->norm_eps);
    lmf_quantize_vec(&s->xq, s->xb, n, c->group_size);
    for (i = 0; i < groups; i++) s->xq.scale[i] *= inv;
}

/* cos and sin of pos * freq for each pair, shared by every head and layer. */
static void rope_angles(lmf_state *s, uint32_t pos, uint32_t pairs)
{
    uint32_t p;
    for (p = 0; p < pairs; p++) lmf_sincosf((float)pos * s->rope_freq[p], &s->rope_sin[p], &s->rope_cos[p]);
}

/* Rotates interleaved pairs (2i, 2i+1) of every head in vec[0..n). */
static void rope_rotate(const lmf_state *s, float *vec, uint32_t n, uint32_t hs)
{
    uint32_t i, p = 0;
    for (i = 0; i < n; i += 2) {
        float c = s->rope_cos[p], sn = s->rope_sin[p], v0 = vec[i], v1 = vec[i + 1];
        vec[i] = v0 * c - v1 * sn;
        vec[i + 1] = v0 * sn + v1 * c;
        if (++p == hs / 2) p = 0;
    }
}

/* Stores this position's keys or values (kv_dim floats in src) in the cache:
 * int8 per kv head, with the scale as a 16-bit mantissa and an exponent. */
static void cache_store(const lmf_state *s, int8_t *cache, uint16_t *mant, int16_t *exp, const float *src, uint32_t layer, uint32_t pos)
{
    const lmf_config *c = &s->blob->cfg;
    uint32_t hs = c->dim / c->n_heads, h;
    for (h = 0; h < c->n_kv_heads; h++) {
        size_t row = ((size_t)layer * c->n_kv_heads + h) * s->ctx + pos;
        float scale;
        int32_t e;
        lmf_quantize_groups(cache + row * hs, &scale, src + h * hs, hs, hs);
        mant[row] = (uint16_t)lmf_mant16(scale, &e);
        exp[row] = (int16_t)e;
    }
}

/* Attention runs in integers after the query is quantized: the same on every
 * target, and no float operation per position (each would be a library call
 * on the lx106). For a query q (int8, scale qscale) and position t (key k_t,
 * value v_t, scales ks_t = km_t * 2^ke_t and vs_t = vm_t * 2^ve_t):
 *   score_t = q.k_t * qscale * ks_t * log2(e) / sqrt(hs), in 2^-15 units
 *             (fixed_scores), so that e^(s - max) is a power of 2;
 *   e_t     = 2^((score_t - max) / 2^15) in Q15 (lmf_exp2_q15: a table);
 *   w_t     = e_t * vs_t / 2^(17 + ve_max), below 2^14 (value_weights:
 *             kernels.h lmf_softmax_weights);
 *   out     = Σ w_t v_t * 2^(17 + ve_max) / Σ e_t, the only float work:
 *             O(hs) per head. */

/* One kv head's cache rows in one layer, from position 0. */
typedef struct kv_rows {
    const int8_t *keys, *values; /* hs values per position */
    const uint16_t *kmant, *vmant;
    const int16_t *kexp, *vexp;
    int32_t vexp_max;            /* largest vexp up to the current position */
} kv_rows;

/* The number of bits of v (0 for 0): with GCC and Clang one count of
 * leading zeros (the S3's NSAU, 2 k instructions a token fewer than the
 * loop), elsewhere the loop; the same value either way. */
static uint32_t bit_length(uint32_t v)
{
#if defined(__GNUC__)
    return v ? 32u - (uint32_t)__builtin_clz(v) : 0u;
#else
    uint32_t bits = 0;
    for (; v; v >>= 1) bits++;
    return bits;
#endif
}

/* Turns the dot products q.k_t in score[0..n) into scores and returns the
 * largest. c = qscale * score_unit; |dot| <= dot_bound. Of dot * km_t * c's
 * mantissa, the dot product keeps its top 15 bits and km_t times c's
 * mantissa its top 16, so that their product fits in 31 bits with both
 * errors near 2^-15 of the largest possible score; a shift then brings it to
 * 2^-15 units, by at least 1 bit so that differences of scores fit in 31 bits
 * (no sane model has scores near 2^15). */
static int32_t fixed_scores(int32_t *score, uint32_t n, const kv_rows *kv, float c, uint32_t dot_bound)
{
    int32_t c_exp, best = INT32_MIN, base;
    uint32_t c_mant = lmf_mant16(c, &c_exp), bits = bit_length(dot_bound), dshift = bits > 15 ? bits - 15 : 0, t;
    /* score_t = (dot >> dshift) * m_t * 2^(dshift + 16 + ke_t + c_exp) */
    base = -(int32_t)dshift - 16 - c_exp;
    for (t = 0; t < n; t++) {
        int32_t m = (int32_t)((kv->kmant[t] * c_mant) >> 16), shift = base - kv->kexp[t];
        if (shift < 1) shift = 1;
        if (shift > 31) shift = 31;
        score[t] = ((score[t] >> dshift) * m) >> shift;
        if (score[t] > best) best = score[t];
    }
    return best;
}

/* The weights w[t - start] of positions [start, end) (see above); returns
 * their Σ e_t. */
static uint32_t value_weights(int16_t *w, int32_t *score, uint32_t start, uint32_t end, int32_t best, const kv_rows *kv)
{
    return lmf_softmax_weights(w, score + start, kv->vmant + start, kv->vexp + start, end - start, best, &kv->vexp_max);
}

/* One head of attention at position pos, softmax(q.k / sqrt(hs)) . v, with
 * q the head's quantized query in s->qq. Writes hs floats to out. Not
 * inlined: in its own register window (the S3's windowed ABI) its loops keep
 * their values in registers instead of reloading them from lmf_forward's
 * stack frame. */
LMF_NOINLINE static void attend_head(lmf_state *s, float *out, uint32_t head, const kv_rows *kv, uint32_t pos)
{
    uint32_t hs = s->blob->cfg.dim / s->blob->cfg.n_heads, n = pos + 1, q_abs = 0, start, end, i;
    const int16_t *q = s->qq.x + head * hs;
    int32_t best, *acc = s->att_acc;
    float denom = 0.0f, norm;

    for (i = 0; i < hs; i++) q_abs += (uint32_t)(q[i] < 0 ? -q[i] : q[i]);
    lmf_dots_i8(s->att, q, kv->keys, hs, n);
    best = fixed_scores(s->att, n, kv, s->qq.scale[head] * s->score_unit, 127 * q_abs);
    for (start = 0; start < n; start = end) {
        end = n - start > ATT_CHUNK ? start + ATT_CHUNK : n;
        denom += (float)value_weights(s->att_w, s->att, start, end, best, kv);
        lmf_weighted_sum_i8(acc, s->att_w, kv->values + (size_t)start * hs, hs, end - start);
        /* integers below 2^24 while the context fits one chunk: exact */
        for (i = 0; i < hs; i++) out[i] = start == 0 ? (float)acc[i] : out[i] + (float)acc[i];
    }
    /* the largest e_t is 2^15, so denom >= 2^15 */
    norm = lmf_pow2f(17 + kv->vexp_max) / denom;
    for (i = 0; i < hs; i++) out[i] *= norm;
}

/* Attention of the query heads that share kv head kvh, into s->xb. */
static void attend(lmf_state *s, uint32_t layer, uint32_t kvh, uint32_t pos)
{
    const lmf_config *c = &s->blob->cfg;
    uint32_t hs = c->dim / c->n_heads, group = c->n_heads / c->n_kv_heads, h, t;
    size_t first = ((size_t)layer * c->n_kv_heads + kvh) * s->ctx; /* cache row of position 0 */
    kv_rows kv;
    kv.keys = s->key_cache + first * hs;
    kv.values = s->value_cache + first * hs;
    kv.kmant = s->key_mant + first;
    kv.vmant = s->value_mant + first;
    kv.kexp = s->key_exp + first;
    kv.vexp = s->value_exp + first;
    kv.vexp_max = INT16_MIN;
    for (t = 0; t <= pos; t++)
        if (kv.vexp[t] > kv.vexp_max) kv.vexp_max = kv.vexp[t];
    for (h = kvh * group; h < (kvh + 1) * group; h++) attend_head(s, s->xb + h * hs, h, &kv, pos);
}

static void add_into(float *x, const float *y, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) x[i] += y[i];
}

/* Quantizes an activation vector into s->xq for the matrix products. */
static void quantize_input(lmf_state *s, const float *x, uint32_t n)
{
    lmf_quantize_vec(&s->xq, x, n, s->blob->cfg.group_size);
}

void lmf_split_rows(uint32_t rows, uint32_t parts, uint32_t part, uint32_t *r0, uint32_t *r1)
{
    uint32_t lo = (uint32_t)(((uint64_t)rows * part / parts) & ~(uint64_t)3);
    uint32_t hi = part + 1 >= parts ? rows : (uint32_t)(((uint64_t)rows * (part + 1) / parts) & ~(uint64_t)3);
    *r0 = part == 0 ? 0 : lo;
    *r1 = hi;
}

typedef struct matvec_job {
    float *out;
    lmf_qmat w;
    const lmf_qvec *x;
} matvec_job;

static void matvec_rows(void *arg, uint32_t r0, uint32_t r1)
{
    const matvec_job *j = (const matvec_job *)arg;
    lmf_matvec(j->out, &j->w, j->x, r0, r1);
}

/* out = w x: on this core, or split by rows through the port's s->parallel. */
static void matvec(float *out, const lmf_blob *b, uint32_t role, uint32_t layer, const lmf_state *s)
{
    matvec_job j;
    j.w = lmf_blob_qmat(b, role, layer);
    if (s->parallel && (uint64_t)j.w.rows * j.w.cols >= s->parallel->min_macs) {
        j.out = out;
        j.x = &s->xq;
        s->parallel->run(s->parallel->ctx, matvec_rows, &j, j.w.rows);
        return;
    }
    lmf_matvec(out, &j.w, &s->xq, 0, j.w.rows);
}

const float *lmf_forward(lmf_state *s, uint32_t token, uint32_t pos)
{
    const lmf_blob *b = s->blob;
    const lmf_config *c = &b->cfg;
    uint32_t dim = c->dim, hs = dim / c->n_heads, kv_dim = c->n_kv_heads * hs;
    uint32_t l, h;
    lmf_qmat embedding = lmf_blob_qmat(b, LMF_ROLE_EMBEDDING, 0);

    lmf_dequantize_row(s->x, &embedding, token);
    rope_angles(s, pos, hs / 2);
    for (l = 0; l < c->n_layers; l++) {
        /* attention */
        rmsnorm_quantize(s, s->x, lmf_blob_vector(b, LMF_ROLE_ATTN_NORM, l));
        matvec(s->q, b, LMF_ROLE_WQ, l, s);
        matvec(s->k, b, LMF_ROLE_WK, l, s);
        matvec(s->v, b, LMF_ROLE_WV, l, s);
        rope_rotate(s, s->q, dim, hs);
        rope_rotate(s, s->k, kv_dim, hs);
        cache_store(s, s->key_cache, s->key_mant, s->key_exp, s->k, l, pos);
        cache_store(s, s->value_cache, s->value_mant, s->value_exp, s->v, l, pos);
        lmf_quantize_vec(&s->qq, s->q, dim, hs);
        for (h = 0; h < c->n_kv_heads; h++) attend(s, l, h, pos);
        quantize_input(s, s->xb, dim);
        matvec(s->xb2, b, LMF_ROLE_WO, l, s);
        add_into(s->x, s->xb2, dim);
        /* feed-forward */
        rmsnorm_quantize(s, s->x, lmf_blob_vector(b, LMF_ROLE_FFN_NORM, l));
        matvec(s->hb, b, LMF_ROLE_W1, l, s);
        matvec(s->hb2, b, LMF_ROLE_W3, l, s);
        lmf_swiglu(s->hb, s->hb2, c->hidden_dim);
        quantize_input(s, s->hb, c->hidden_dim);
        matvec(s->xb, b, LMF_ROLE_W2, l, s);
        add_into(s->x, s->xb, dim);
    }
    rmsnorm_quantize(s, s->x, lmf_blob_vector(b, LMF_ROLE_FINAL_NORM, 0));
    matvec(s->logits, b, LMF_ROLE_CLASSIFIER, 0, s);
    return s->logits;
}
