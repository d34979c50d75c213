/* One interface to every architecture a blob may hold, for the driver (app.c)
 * and the serial session: a state carved from the arena, then one call per
 * token that returns the next token's logits. The transformer's calls pass
 * straight through to model.c, so its results do not change by a bit. */
#ifndef LMF_LM_H
#define LMF_LM_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/blob.h"
#include "lmf/model.h"
#include "lmf/ngram.h"

typedef struct lmf_lm {
    const lmf_blob *blob;
    uint32_t ctx;    /* positions this run may hold */
    float *logits;   /* the latest logits; the sampler may change them in place */
    lmf_state tf;    /* architecture 1 */
    lmf_ngram_state ng; /* architecture 2 */
} lmf_lm;

/* Arena bytes the model state needs for a context of ctx positions. */
size_t lmf_lm_bytes(const lmf_blob *b, uint32_t ctx);

/* A run's whole arena, as the driver (app.c) and the serial session carve
 * it: sampler scratch, the token list (ctx + 2 ids), then the model state. */
size_t lmf_run_sampler_bytes(const lmf_blob *b);
size_t lmf_run_token_bytes(uint32_t ctx);
size_t lmf_run_bytes(const lmf_blob *b, uint32_t ctx);
/* The longest context (at most the model's seq_len) whose run fits, or 0. */
uint32_t lmf_run_max_ctx(const lmf_blob *b, size_t arena_bytes);

/* Carves the state from the arena; ctx = 0 takes the model's seq_len. */
int lmf_lm_init(lmf_lm *m, const lmf_blob *b, void *arena, size_t arena_bytes, uint32_t ctx, lmf_error *err);

/* Runs token at position pos (< ctx, in order from 0) and returns vocab_size logits. */
const float *lmf_lm_forward(lmf_lm *m, uint32_t token, uint32_t pos);

#endif
