/* The forward pass, top to bottom: embedding, then per layer attention and
 * feed-forward with residuals, then the classifier. Matrix products are int8 x
 * int8 with integer accumulation (kernels.c); the float work left is O(dim)
 * per layer plus O(position) per head in attention. */
#include "lmf/model.h"
#include "lmf/detmath.h"
#include "lmf/kernels.h"

#include <string.h>

/* Attention weights become integers of up to ATT_BITS bits; chunks of
 * ATT_CHUNK positions keep Σ weight * int8 value below 2^31. */
#define ATT_BITS 14
#define ATT_CHUNK 512
#define ATT_SCALE 16383.0f

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

typedef struct { uint8_t *next; size_t used; } carver;

static void *carve(carver *c, size_t bytes)
{
    void *p = c->next ? c->next + c->used : NULL;
    c->used += round16(bytes);
    return p;
}

static uint32_t max_u32(uint32_t a, uint32_t b) { return a > b ? a : b; }

/* Lays the state out in the arena (or, with base NULL, only counts bytes). */
static size_t layout(lmf_state *s, const lmf_config *c, uint32_t ctx, uint8_t *base)
{
    uint32_t hs = c->dim / c->n_heads, kv_dim = c->n_kv_heads * hs;
    uint32_t widest = max_u32(c->dim, c->hidden_dim);
    size_t cache = (size_t)c->n_layers * ctx;
    carver cv = {base, 0};
    s->x = carve(&cv, c->dim * 4);
    s->xb = carve(&cv, c->dim * 4);
    s->xb2 = carve(&cv, c->dim * 4);
    s->hb = carve(&cv, c->hidden_dim * 4);
    s->hb2 = carve(&cv, c->hidden_dim * 4);
    s->q = carve(&cv, c->dim * 4);
    s->k = carve(&cv, kv_dim * 4);
    s->v = carve(&cv, kv_dim * 4);
    s->att = carve(&cv, (size_t)ctx * 4);
    s->logits = carve(&cv, (size_t)c->vocab_size * 4);
    s->xq = carve(&cv, round16(widest));
    s->qq = carve(&cv, round16(hs));
    s->xq_scale = carve(&cv, ((widest + c->group_size - 1) / c->group_size) * 4);
    s->att_q = carve(&cv, (size_t)ctx * 4);
    s->att_acc = carve(&cv, hs * 4);
    s->key_cache = carve(&cv, cache * kv_dim);
    s->value_cache = carve(&cv, cache * kv_dim);
    s->key_scale = carve(&cv, cache * c->n_kv_heads * 4);
    s->value_scale = carve(&cv, cache * c->n_kv_heads * 4);
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
    return 0;
}

static void rmsnorm(float *out, const float *x, const float *weight, uint32_t n, float eps)
{
    float ss = 0.0f, inv;
    uint32_t i;
    for (i = 0; i < n; i++) ss += x[i] * x[i];
    inv = 1.0f / lmf_sqrtf(ss / (float)n + eps);
    for (i = 0; i < n; i++) out[i] = weight[i] * (inv * x[i]);
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

/* Quantizes each kv head's slice of src into the cache row at (layer, pos). */
static void cache_store(int8_t *cache, float *scales, const float *src, uint32_t n_kv, uint32_t hs)
{
    uint32_t h;
    for (h = 0; h < n_kv; h++) lmf_quantize_groups(cache + h * hs, scales + h, src + h * hs, hs, hs);
}

/* Order-preserving map of a float's bits to a signed integer, so that maxima
 * are found with integer compares (float compares are library calls on lx106). */
static int32_t sortable(float f)
{
    int32_t i = (int32_t)lmf_f2u(f);
    return i < 0 ? (int32_t)(i ^ 0x7FFFFFFF) : i;
}

/* One head of attention at position pos: softmax(q·k / sqrt(hs)) · v, with
 * int8 q, k and v and integer dot products. Writes hs floats to out. */
static void attend_head(lmf_state *s, float *out, const float *qh, uint32_t layer, uint32_t kvh, uint32_t pos)
{
    const lmf_config *c = &s->blob->cfg;
    uint32_t hs = c->dim / c->n_heads, kv_dim = c->n_kv_heads * hs, t, i, start;
    const int8_t *kbase = s->key_cache + (size_t)layer * s->ctx * kv_dim + kvh * hs;
    const int8_t *vbase = s->value_cache + (size_t)layer * s->ctx * kv_dim + kvh * hs;
    const float *kscale = s->key_scale + (size_t)layer * s->ctx * c->n_kv_heads + kvh;
    const float *vscale = s->value_scale + (size_t)layer * s->ctx * c->n_kv_heads + kvh;
    float qscale, to_weight, max_score, sum = 0.0f, norm;
    int32_t best = INT32_MIN, vbest = INT32_MIN;
    uint32_t argmax = 0;
    float *att = s->att;

    lmf_quantize_groups(s->qq, &qscale, qh, hs, hs);
    lmf_zero_pad(s->qq, hs);
    qscale *= 1.0f / lmf_sqrtf((float)hs);
    for (t = 0; t <= pos; t++) {
        size_t row = (size_t)t * kv_dim, srow = (size_t)t * c->n_kv_heads;
        int32_t key;
        att[t] = lmf_i2f_small(lmf_dot_i8(s->qq, kbase + row, hs)) * (qscale * kscale[srow]);
        key = sortable(att[t]);
        if (key > best) { best = key; argmax = t; }
        if ((int32_t)lmf_f2u(vscale[srow]) > vbest) vbest = (int32_t)lmf_f2u(vscale[srow]);
    }
    max_score = att[argmax];
    for (t = 0; t <= pos; t++) {
        att[t] = lmf_expf(att[t] - max_score);
        sum += att[t];
    }
    /* weight_t = e_t * vscale_t in fixed point: the largest possible is 16383 */
    to_weight = vbest > 0 ? ATT_SCALE / lmf_u2f((uint32_t)vbest) : 0.0f;
    for (t = 0; t <= pos; t++)
        s->att_q[t] = lmf_round_small(att[t] * (vscale[(size_t)t * c->n_kv_heads] * to_weight));
    norm = (vbest > 0 && sum > 0.0f) ? 1.0f / (sum * to_weight) : 0.0f;
    for (i = 0; i < hs; i++) out[i] = 0.0f;
    for (start = 0; start <= pos; start += ATT_CHUNK) {
        uint32_t end = pos + 1 - start > ATT_CHUNK ? start + ATT_CHUNK : pos + 1;
        int32_t *acc = s->att_acc;
        for (i = 0; i < hs; i++) acc[i] = 0;
        for (t = start; t < end; t++) lmf_axpy_i8(acc, s->att_q[t], vbase + (size_t)t * kv_dim, hs);
        for (i = 0; i < hs; i++) out[i] += (float)acc[i] * norm;
    }
}

static void add_into(float *x, const float *y, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) x[i] += y[i];
}

/* hb = silu(hb) * hb2, silu(a) = a / (1 + e^-a) */
static void swiglu(float *hb, const float *hb2, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) hb[i] = hb[i] * hb2[i] / (1.0f + lmf_expf(-hb[i]));
}

/* Quantizes an activation vector into s->xq for the matrix products. */
static void quantize_input(lmf_state *s, const float *x, uint32_t n)
{
    lmf_quantize_groups(s->xq, s->xq_scale, x, n, s->blob->cfg.group_size);
    lmf_zero_pad(s->xq, n);
}

static void matvec(float *out, const lmf_blob *b, uint32_t role, uint32_t layer, const lmf_state *s)
{
    lmf_qmat w = lmf_blob_qmat(b, role, layer);
    lmf_matvec_q8(out, &w, s->xq, s->xq_scale, 0, w.rows);
}

const float *lmf_forward(lmf_state *s, uint32_t token, uint32_t pos)
{
    const lmf_blob *b = s->blob;
    const lmf_config *c = &b->cfg;
    uint32_t dim = c->dim, hs = dim / c->n_heads, kv_dim = c->n_kv_heads * hs;
    uint32_t group_of_heads = c->n_heads / c->n_kv_heads, l, h;
    lmf_qmat embedding = lmf_blob_qmat(b, LMF_ROLE_EMBEDDING, 0);

    lmf_dequantize_row(s->x, &embedding, token);
    rope_angles(s, pos, hs / 2);
    for (l = 0; l < c->n_layers; l++) {
        size_t slot = (size_t)l * s->ctx + pos;
        /* attention */
        rmsnorm(s->xb, s->x, lmf_blob_vector(b, LMF_ROLE_ATTN_NORM, l), dim, c->norm_eps);
        quantize_input(s, s->xb, dim);
        matvec(s->q, b, LMF_ROLE_WQ, l, s);
        matvec(s->k, b, LMF_ROLE_WK, l, s);
        matvec(s->v, b, LMF_ROLE_WV, l, s);
        rope_rotate(s, s->q, dim, hs);
        rope_rotate(s, s->k, kv_dim, hs);
        cache_store(s->key_cache + slot * kv_dim, s->key_scale + slot * c->n_kv_heads, s->k, c->n_kv_heads, hs);
        cache_store(s->value_cache + slot * kv_dim, s->value_scale + slot * c->n_kv_heads, s->v, c->n_kv_heads, hs);
        for (h = 0; h < c->n_heads; h++)
            attend_head(s, s->xb + h * hs, s->q + h * hs, l, h / group_of_heads, pos);
        quantize_input(s, s->xb, dim);
        matvec(s->xb2, b, LMF_ROLE_WO, l, s);
        add_into(s->x, s->xb2, dim);
        /* feed-forward */
        rmsnorm(s->xb, s->x, lmf_blob_vector(b, LMF_ROLE_FFN_NORM, l), dim, c->norm_eps);
        quantize_input(s, s->xb, dim);
        matvec(s->hb, b, LMF_ROLE_W1, l, s);
        matvec(s->hb2, b, LMF_ROLE_W3, l, s);
        swiglu(s->hb, s->hb2, c->hidden_dim);
        quantize_input(s, s->hb, c->hidden_dim);
        matvec(s->xb, b, LMF_ROLE_W2, l, s);
        add_into(s->x, s->xb, dim);
    }
    rmsnorm(s->x, s->x, lmf_blob_vector(b, LMF_ROLE_FINAL_NORM, 0), dim, c->norm_eps);
    quantize_input(s, s->x, dim);
    matvec(s->logits, b, LMF_ROLE_CLASSIFIER, 0, s);
    return s->logits;
}
