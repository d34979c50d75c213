/* Sentencepiece-style BPE over the blob's tokenizer tables, with the results of
 * llama2.c's encode()/decode(). Works in place: no allocation, no sorting. */
#ifndef LMF_TOKENIZER_H
#define LMF_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/blob.h"

/* Encodes text[0..len) into ids (BOS first when add_bos and the vocabulary has
 * one). Returns the token count, or -1 when more than cap tokens would be
 * needed (a prompt of n bytes never needs more than n + 2). */
int32_t lmf_encode(const lmf_tokenizer *t, const char *text, size_t len, int add_bos, uint32_t *ids, uint32_t cap);

/* The bytes token decodes to after prev (a leading space is dropped after BOS;
 * control tokens decode to nothing). *len receives the byte count. */
const uint8_t *lmf_decode(const lmf_tokenizer *t, uint32_t prev, uint32_t token, uint32_t *len);

/* Id of the text piece equal to bytes[0..len), or LMF_NONE. */
uint32_t lmf_piece_lookup(const lmf_tokenizer *t, const uint8_t *bytes, uint32_t len);

#endif
