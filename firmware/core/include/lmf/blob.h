/* Reader of the lmflash blob (docs/blob-format.md). lmf_blob_open validates
 * every header, table, offset and size once; after that the decoder reads
 * weights and tokenizer tables through pointers into the blob, which may sit
 * in memory-mapped flash. Nothing is copied. */
#ifndef LMF_BLOB_H
#define LMF_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/error.h"
#include "lmf/ngram.h"

#define LMF_BLOB_MAGIC "LMFB"
#define LMF_BLOB_VERSION_MAJOR 1
/* 1.1 added q4 tensors; a reader accepts any minor, q4 only from 1.1 on. */
#define LMF_BLOB_VERSION_MINOR 1
#define LMF_BLOB_MINOR_Q4 1
#define LMF_BLOB_HEADER_BYTES 64
#define LMF_ALIGN 16
#define LMF_NONE 0xFFFFFFFFu

enum { LMF_ARCH_TRANSFORMER = 1, LMF_ARCH_NGRAM = 2 };
enum { LMF_SECTION_CONFIG = 1, LMF_SECTION_TOKENIZER = 2, LMF_SECTION_TENSORS = 3 };
enum { LMF_DTYPE_F32 = 1, LMF_DTYPE_Q8 = 2, LMF_DTYPE_Q4 = 3 };
enum { LMF_PIECE_TEXT = 0, LMF_PIECE_BYTE = 1, LMF_PIECE_CONTROL = 2 };
enum {
    LMF_ROLE_EMBEDDING = 1, LMF_ROLE_ATTN_NORM, LMF_ROLE_WQ, LMF_ROLE_WK, LMF_ROLE_WV,
    LMF_ROLE_WO, LMF_ROLE_FFN_NORM, LMF_ROLE_W1, LMF_ROLE_W2, LMF_ROLE_W3,
    LMF_ROLE_FINAL_NORM, LMF_ROLE_CLASSIFIER
};
#define LMF_TENSORS_PER_LAYER 9
#define LMF_FLAG_SHARED_CLASSIFIER 1u
#define LMF_TOKENIZER_DUMMY_PREFIX 1u
/* Word-level encoding: whitespace-separated words, each the piece " word" (N-gram blobs). */
#define LMF_TOKENIZER_WORDS 2u

/* Largest quantization group: keeps every group's integer dot product below
 * 2^22 in magnitude (256 * 127 * 127), so it converts to float exactly. */
#define LMF_MAX_GROUP 256

typedef struct lmf_config {
    uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    uint32_t group_size, flags;
    float rope_theta, norm_eps;
} lmf_config;

/* A quantized matrix: row r starts at q + r*stride (q8) or q4 + r*stride
 * (q4: column 2j in the low nibble of byte j, 2j+1 in the high one, signed
 * -7..7); its group g has scale scale[r*n_groups + g]. Pad bytes past the
 * columns are zero. dtype says which of q and q4 is set (the other is NULL). */
typedef struct lmf_qmat {
    const int8_t *q;
    const float *scale;
    uint32_t rows, cols, stride, group, n_groups;
    uint32_t dtype;     /* LMF_DTYPE_Q8 or LMF_DTYPE_Q4 */
    const uint8_t *q4;
} lmf_qmat;

typedef struct lmf_tokenizer {
    uint32_t vocab_size, max_piece_bytes, bos_id, eos_id, unk_id, flags;
    const float *scores;
    const uint32_t *piece_offsets; /* vocab_size + 1 entries */
    const uint8_t *piece_bytes;
    const uint8_t *kinds;
    const uint32_t *sorted;        /* text piece ids in byte order */
    uint32_t sorted_count;
    const uint32_t *byte_ids;      /* 256 entries */
} lmf_tokenizer;

typedef struct lmf_blob {
    const uint8_t *base;
    uint32_t size;
    uint32_t arch;
    uint32_t version_minor;
    lmf_config cfg;         /* an N-gram blob fills only vocab_size and seq_len */
    lmf_tokenizer tok;
    const uint8_t *tensors; /* first 32-byte tensor entry */
    uint32_t tensor_count;
    lmf_ngram ngram;        /* architecture 2 */
} lmf_blob;

/* Validates the blob (magic, version, size, CRC, every table and tensor) and
 * fills *b. check_crc = 0 skips the CRC (a board may check it once at flash
 * time). Returns 0 or -1 with err set. */
int lmf_blob_open(lmf_blob *b, const void *data, size_t size, int check_crc, lmf_error *err);

/* The validated tensors, by canonical position (see the format doc). */
lmf_qmat lmf_blob_qmat(const lmf_blob *b, uint32_t role, uint32_t layer);
const float *lmf_blob_vector(const lmf_blob *b, uint32_t role, uint32_t layer);

uint32_t lmf_crc32(uint32_t crc, const uint8_t *data, size_t len);

#endif
