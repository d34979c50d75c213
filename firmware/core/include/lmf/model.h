/* The Llama-style forward pass over a validated blob. Like llama2.c's run.c:
 * the config and weights come from the blob (lmf_blob), the run state is one
 * plain struct whose buffers are carved once from a caller-given arena; the
 * per-token path allocates nothing. */
#ifndef LMF_MODEL_H
#define LMF_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/blob.h"
#include "lmf/kernels.h"

/* Matrix products may split their output rows among cores. run(ctx, job,
 * arg, rows) calls job(arg, r0, r1) on disjoint ranges that cover [0, rows),
 * on whatever threads or cores it has (the caller's among them), and returns
 * when every call has returned. A row is computed exactly as on one core
 * (rows are independent and each row's arithmetic does not change), so the
 * logits are bit-identical however the rows are split. Products of fewer
 * than min_macs multiply-accumulates run on the calling core alone (the
 * hand-over costs more than it saves). */
typedef void (*lmf_rows_job)(void *arg, uint32_t r0, uint32_t r1);
typedef struct lmf_parallel {
    void (*run)(void *ctx, lmf_rows_job job, void *arg, uint32_t rows);
    void *ctx;
    uint32_t min_macs;
} lmf_parallel;

/* Part `part` of `parts` contiguous, nearly equal ranges of [0, rows), as
 * [*r0, *r1); inner boundaries are multiples of 4 rows (whole passes of the
 * multi-row kernels). Ports use it to split a product the same way. */
void lmf_split_rows(uint32_t rows, uint32_t parts, uint32_t part, uint32_t *r0, uint32_t *r1);

typedef struct lmf_state {
    const lmf_blob *blob;
    uint32_t ctx;                 /* positions the KV cache holds */
    /* NULL: every product on the calling core. lmf_state_init clears it; a
     * port sets it afterwards (e.g. session.state.parallel = &two_cores). */
    const lmf_parallel *parallel;
    /* activations (float) */
    float *x, *xb, *xb2, *hb, *hb2, *q, *k, *v, *logits;
    /* the input of the next matrix products, and the queries (one scale per head) */
    lmf_qvec xq, qq;
    /* one head's attention: scores, then weights for the values, then the sum */
    int32_t *att;
    int16_t *att_w;
    int32_t *att_acc;
    /* KV cache, int8, one kv head's positions contiguous (the attention
     * kernels run down them): key_cache[((l * n_kv_heads + h) * ctx + t) * hs + i].
     * Each (layer, kv head, position) row has a scale mant * 2^exp, in the
     * form the integer softmax uses. */
    int8_t *key_cache, *value_cache;
    uint16_t *key_mant, *value_mant;
    int16_t *key_exp, *value_exp;
    /* RoPE: frequency of each pair within a head, and this position's cos/sin */
    float *rope_freq, *rope_cos, *rope_sin;
    /* log2(e) * 2^15 / sqrt(hs): turns q.k into a score in 2^-15 units of log2 */
    float score_unit;
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
