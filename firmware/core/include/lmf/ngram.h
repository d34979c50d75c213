/* N-gram language models (blob architecture 2, docs/blob-format.md): a
 * backoff model stored as a trie of bit-packed, sorted arrays that the core
 * searches in place, where the blob lies (memory-mapped flash on the board).
 * lmf_ngram_read validates every count, offset, pointer and word once at
 * open; after that lookups trust the tables. Per token the core computes the
 * log-probability of every token of the vocabulary: O(vocab + successors),
 * with RAM only for the logits and a few words of state. */
#ifndef LMF_NGRAM_H
#define LMF_NGRAM_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/error.h"

#define LMF_NGRAM_MAX_ORDER 5
#define LMF_SECTION_NGRAM 4
/* A value field this wide holds a float32 as it is; narrower ones index a codebook. */
#define LMF_NGRAM_FLOAT_BITS 32
#define LMF_NGRAM_MAX_CODE_BITS 16
#define LMF_NGRAM_MAX_WORD_BITS 24
#define LMF_NGRAM_MAX_SEQ_LEN (1u << 20)

/* One order's table: entry i's fields sit at bit i * entry_bits of `bits`
 * (little-endian 32-bit words, least significant bit first), in the order
 * word, prob, backoff, pointer. Orders below the highest have one more entry,
 * a sentinel whose pointer ends the last run of children. */
typedef struct lmf_ngram_level {
    const uint32_t *bits;
    uint32_t count;
    uint32_t word_bits, prob_bits, backoff_bits, pointer_bits, entry_bits;
    const float *prob_codebook, *backoff_codebook; /* NULL for float fields */
} lmf_ngram_level;

typedef struct lmf_ngram {
    uint32_t order, vocab_size, seq_len;
    lmf_ngram_level level[LMF_NGRAM_MAX_ORDER]; /* level[n-1]: the n-grams */
} lmf_ngram;

/* Reads and validates the CONFIG (arch 2) and NGRAM sections of the blob at
 * base, which the caller has checked lie inside it. Returns 0, or -1 with err set. */
int lmf_ngram_read(lmf_ngram *m, const uint8_t *base, uint32_t cfg_off, uint32_t cfg_size, uint32_t ngram_off,
                   uint32_t ngram_size, lmf_error *err);

/* The per-sequence state: the last order-1 tokens, where their suffixes sit
 * in the trie, and the logits. */
typedef struct lmf_ngram_state {
    const lmf_ngram *m;
    uint32_t history[LMF_NGRAM_MAX_ORDER - 1];
    uint32_t n_history;
    float *logits; /* vocab_size */
} lmf_ngram_state;

/* Arena bytes a state needs (the logits). */
size_t lmf_ngram_state_bytes(const lmf_ngram *m);
int lmf_ngram_state_init(lmf_ngram_state *s, const lmf_ngram *m, void *arena, size_t arena_bytes, lmf_error *err);

/* Feeds the token at position pos (pos 0 starts a new sequence) and returns
 * the natural-log probability of every next token, valid until the next call. */
const float *lmf_ngram_forward(lmf_ngram_state *s, uint32_t token, uint32_t pos);

#endif
