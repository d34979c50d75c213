/* Picks the next token from the logits: greedy, or temperature with top-k and
 * top-p, after a repetition penalty and banned tokens. Deterministic for a
 * seed on every target (own PRNG, own sort with a total order, own exp). */
#ifndef LMF_SAMPLER_H
#define LMF_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#define LMF_MAX_BANNED 16

typedef struct lmf_sampler_params {
    float temperature;      /* 0 = greedy */
    uint32_t top_k;         /* 0 = off */
    float top_p;            /* 1 = off */
    float repeat_penalty;   /* 1 = off; >1 discourages tokens in the window */
    uint32_t repeat_window; /* how many recent tokens the penalty looks at */
    uint64_t seed;
    uint32_t banned[LMF_MAX_BANNED];
    uint32_t n_banned;
} lmf_sampler_params;

typedef struct lmf_sampler {
    lmf_sampler_params p;
    uint32_t vocab_size;
    uint64_t rng;
    float *probs;      /* vocab_size */
    uint32_t *order;   /* vocab_size: candidate ids */
} lmf_sampler;

void lmf_sampler_defaults(lmf_sampler_params *p);
size_t lmf_sampler_bytes(uint32_t vocab_size);
void lmf_sampler_init(lmf_sampler *s, const lmf_sampler_params *p, uint32_t vocab_size, void *mem);

/* Samples from logits (modified in place). history: the tokens so far. */
uint32_t lmf_sample(lmf_sampler *s, float *logits, const uint32_t *history, uint32_t n_history);

#endif
