/* The Llama-style forward pass over a validated blob. Like llama2.c's run.c:
 * the config and weights come from the blob (lmf_blob), the run state is one
 * plain struct whose buffers are carved once from a caller-given arena; the
 * per-token path allocates nothing. */
#ifndef LMF_MODEL_H
#define LMF_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/blob.h"

typedef struct lmf_state {
    const lmf_blob *blob;
    uint32_t ctx;                 /* positions the KV cache holds */
    /* activations (float) */
    float *x, *xb, *xb2, *hb, *hb2, *q, *k, *v, *att, *logits;
    /* an activation vector quantized per group, and the query per head */
    int8_t *xq, *qq;
    float *xq_scale;
    /* attention weights in fixed point for the integer weighted sum of V */
    int32_t *att_q, *att_acc;
    /* KV cache, int8 with one scale per (layer, position, kv head):
     * key_cache[(l * ctx + t) * kv_dim + j] */
    int8_t *key_cache, *value_cache;
    float *key_scale, *value_scale;
    /* RoPE: frequency of each pair within a head, and this position's cos/sin */
    float *rope_freq, *rope_cos, *rope_sin;
} lmf_state;

/* Bytes of arena lmf_state_init needs for a context of ctx positions. */
size_t lmf_state_bytes(const lmf_config *cfg, uint32_t ctx);

/* Largest context that fits in arena_bytes (at most the model's seq_len), or 0. */
uint32_t lmf_state_max_ctx(const lmf_config *cfg, size_t arena_bytes);

/* Carves the state from the arena. ctx = 0 takes the model's seq_len.
 * Returns 0, or -1 when the arena is too small or ctx too large. */
int lmf_state_init(lmf_state *s, const lmf_blob *blob, void *arena, size_t arena_bytes, uint32_t ctx, lmf_error *err);

/* Runs token at position pos (< ctx) and returns the vocab_size logits, which
 * stay valid until the next call. Positions must be fed in order from 0. */
const float *lmf_forward(lmf_state *s, uint32_t token, uint32_t pos);

#endif
