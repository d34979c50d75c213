/* Blob validation. Every check here exists so that the decoder, which trusts
 * the blob afterwards, can never read outside it or divide by zero, whatever
 * bytes a corrupt flash partition or a hostile file holds. Sizes are computed
 * in 64 bits so that no product of header fields can wrap around. */
#include "lmf/blob.h"

#include <string.h>

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static float rdf32(const uint8_t *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int is_aligned(uint64_t off) { return (off % LMF_ALIGN) == 0; }

/* [off, off+len) inside [lo, size) and 16-byte aligned. */
static int extent_ok(uint64_t off, uint64_t len, uint64_t lo, uint64_t size)
{
    return is_aligned(off) && off >= lo && off <= size && len <= size - off;
}

static int finite_positive(float f) { return f > 0.0f && f < 3.0e38f; }

static int read_config(lmf_blob *b, uint32_t off, uint32_t size, lmf_error *err)
{
    const uint8_t *p = b->base + off;
    lmf_config *c = &b->cfg;
    if (size < 64) return lmf_fail(err, "blob CONFIG section is %u bytes, expected 64: the file is corrupt", size);
    c->dim = rd32(p + 0);
    c->hidden_dim = rd32(p + 4);
    c->n_layers = rd32(p + 8);
    c->n_heads = rd32(p + 12);
    c->n_kv_heads = rd32(p + 16);
    c->vocab_size = rd32(p + 20);
    c->seq_len = rd32(p + 24);
    c->group_size = rd32(p + 28);
    c->flags = rd32(p + 32);
    c->rope_theta = rdf32(p + 36);
    c->norm_eps = rdf32(p + 40);
    if (c->dim == 0 || c->dim > 65536 || c->hidden_dim == 0 || c->hidden_dim > 65536)
        return lmf_fail(err, "blob config: dim %u / hidden_dim %u out of range 1..65536", c->dim, c->hidden_dim);
    if (c->n_layers == 0 || c->n_layers > 256)
        return lmf_fail(err, "blob config: n_layers %u out of range 1..256", c->n_layers);
    if (c->n_heads == 0 || c->n_kv_heads == 0 || c->dim % c->n_heads != 0 || c->n_heads % c->n_kv_heads != 0)
        return lmf_fail(err, "blob config: %u heads / %u kv heads do not divide dim %u", c->n_heads, c->n_kv_heads, c->dim);
    if ((c->dim / c->n_heads) % 2 != 0 || c->dim / c->n_heads > LMF_MAX_GROUP)
        return lmf_fail(err, "blob config: head size %u must be even and at most %u", c->dim / c->n_heads, LMF_MAX_GROUP);
    if (c->vocab_size == 0 || c->vocab_size > (1u << 24))
        return lmf_fail(err, "blob config: vocab_size %u out of range 1..2^24", c->vocab_size);
    if (c->seq_len == 0 || c->seq_len > (1u << 20))
        return lmf_fail(err, "blob config: seq_len %u out of range 1..2^20", c->seq_len);
    /* The bound keeps every integer dot product of a group exact: below 2^24
     * as a float, and below 2^31 in the ESP32-S3's ACCX, where Espressif's
     * sources disagree on what EE.SRS.ACCX returns beyond int32 (kernels.h). */
    _Static_assert((uint64_t)LMF_MAX_GROUP * 127 * 127 < (1u << 24), "a group's dot product must stay exact in float and below 2^31");
    if (c->group_size == 0 || c->group_size % 16 != 0 || c->group_size > LMF_MAX_GROUP)
        return lmf_fail(err, "blob config: group_size %u must be a multiple of 16 up to %u (larger groups could overflow the int32 dot products); reconvert with --group-size 64", c->group_size, LMF_MAX_GROUP);
    if (!finite_positive(c->rope_theta) || !finite_positive(c->norm_eps))
        return lmf_fail(err, "blob config: rope_theta and norm_eps must be positive numbers");
    return 0;
}

/* Checks that the pieces are in non-decreasing byte order, so that the encoder's
 * binary search finds every text piece. */
static int pieces_in_order(const lmf_tokenizer *t, uint32_t a, uint32_t b)
{
    uint32_t la = t->piece_offsets[a + 1] - t->piece_offsets[a];
    uint32_t lb = t->piece_offsets[b + 1] - t->piece_offsets[b];
    int c = memcmp(t->piece_bytes + t->piece_offsets[a], t->piece_bytes + t->piece_offsets[b], la < lb ? la : lb);
    return c < 0 || (c == 0 && la <= lb);
}

static int read_tokenizer(lmf_blob *b, uint32_t off, uint32_t size, lmf_error *err)
{
    const uint8_t *p = b->base + off;
    lmf_tokenizer *t = &b->tok;
    uint64_t n;
    uint32_t scores_off, offsets_off, bytes_off, bytes_size, kinds_off, sorted_off, byte_ids_off, i;
    if (size < 64) return lmf_fail(err, "blob TOKENIZER section is %u bytes, expected at least 64: the file is corrupt", size);
    t->vocab_size = rd32(p + 0);
    t->max_piece_bytes = rd32(p + 4);
    t->bos_id = rd32(p + 8);
    t->eos_id = rd32(p + 12);
    t->unk_id = rd32(p + 16);
    t->flags = rd32(p + 20);
    scores_off = rd32(p + 24);
    offsets_off = rd32(p + 28);
    bytes_off = rd32(p + 32);
    bytes_size = rd32(p + 36);
    kinds_off = rd32(p + 40);
    sorted_off = rd32(p + 44);
    t->sorted_count = rd32(p + 48);
    byte_ids_off = rd32(p + 52);
    n = t->vocab_size;
    if (n != b->cfg.vocab_size)
        return lmf_fail(err, "blob tokenizer has %u tokens but the model expects %u: rebuild the blob with the model's own tokenizer", t->vocab_size, b->cfg.vocab_size);
    if (!extent_ok(scores_off, n * 4, 64, b->size) || !extent_ok(offsets_off, (n + 1) * 4, 64, b->size) ||
        !extent_ok(bytes_off, bytes_size, 64, b->size) || !extent_ok(kinds_off, n, 64, b->size) ||
        !extent_ok(sorted_off, (uint64_t)t->sorted_count * 4, 64, b->size) || t->sorted_count > n ||
        !extent_ok(byte_ids_off, 256 * 4, 64, b->size))
        return lmf_fail(err, "blob tokenizer tables lie outside the file or are misaligned: the file is corrupt");
    t->scores = (const float *)(const void *)(b->base + scores_off);
    t->piece_offsets = (const uint32_t *)(const void *)(b->base + offsets_off);
    t->piece_bytes = b->base + bytes_off;
    t->kinds = b->base + kinds_off;
    t->sorted = (const uint32_t *)(const void *)(b->base + sorted_off);
    t->byte_ids = (const uint32_t *)(const void *)(b->base + byte_ids_off);
    if (t->piece_offsets[0] != 0 || t->piece_offsets[n] != bytes_size)
        return lmf_fail(err, "blob tokenizer piece table does not cover its bytes: the file is corrupt");
    for (i = 0; i < n; i++) {
        uint32_t len = t->piece_offsets[i + 1] - t->piece_offsets[i];
        if (t->piece_offsets[i + 1] < t->piece_offsets[i] || len > t->max_piece_bytes || t->kinds[i] > LMF_PIECE_CONTROL)
            return lmf_fail(err, "blob tokenizer entry %u is malformed: the file is corrupt", i);
        if (t->kinds[i] == LMF_PIECE_BYTE && len != 1)
            return lmf_fail(err, "blob tokenizer byte token %u must hold exactly one byte", i);
    }
    if (t->max_piece_bytes == 0 || t->max_piece_bytes > 1024)
        return lmf_fail(err, "blob tokenizer max piece length %u out of range 1..1024", t->max_piece_bytes);
    if ((t->bos_id != LMF_NONE && t->bos_id >= n) || (t->eos_id != LMF_NONE && t->eos_id >= n) ||
        (t->unk_id != LMF_NONE && t->unk_id >= n))
        return lmf_fail(err, "blob tokenizer special token ids are out of range: the file is corrupt");
    for (i = 0; i < t->sorted_count; i++) {
        if (t->sorted[i] >= n || t->kinds[t->sorted[i]] != LMF_PIECE_TEXT)
            return lmf_fail(err, "blob tokenizer sorted index entry %u is invalid: the file is corrupt", i);
        if (i > 0 && !pieces_in_order(t, t->sorted[i - 1], t->sorted[i]))
            return lmf_fail(err, "blob tokenizer sorted index is out of order at %u: the file is corrupt", i);
    }
    for (i = 0; i < 256; i++) {
        uint32_t id = t->byte_ids[i];
        if (id != LMF_NONE && (id >= n || t->kinds[id] != LMF_PIECE_BYTE || t->piece_bytes[t->piece_offsets[id]] != i))
            return lmf_fail(err, "blob tokenizer byte-fallback map entry %u is invalid: the file is corrupt", i);
    }
    return 0;
}

/* The shape a tensor at canonical position `index` must have. */
static void expected_tensor(const lmf_config *c, uint32_t index, uint32_t *role, uint32_t *layer,
                            uint32_t *dtype, uint32_t *rows, uint32_t *cols)
{
    uint32_t hs = c->dim / c->n_heads, per = LMF_TENSORS_PER_LAYER;
    uint32_t last_layer_end = 1 + c->n_layers * per;
    *layer = 0xFFFF;
    *dtype = LMF_DTYPE_Q8;
    if (index == 0) {
        *role = LMF_ROLE_EMBEDDING; *rows = c->vocab_size; *cols = c->dim;
    } else if (index < last_layer_end) {
        *layer = (index - 1) / per;
        *role = LMF_ROLE_ATTN_NORM + (index - 1) % per;
        switch (*role) {
        case LMF_ROLE_ATTN_NORM: case LMF_ROLE_FFN_NORM:
            *dtype = LMF_DTYPE_F32; *rows = 1; *cols = c->dim; break;
        case LMF_ROLE_WQ: *rows = c->n_heads * hs; *cols = c->dim; break;
        case LMF_ROLE_WK: case LMF_ROLE_WV: *rows = c->n_kv_heads * hs; *cols = c->dim; break;
        case LMF_ROLE_WO: *rows = c->dim; *cols = c->n_heads * hs; break;
        case LMF_ROLE_W1: case LMF_ROLE_W3: *rows = c->hidden_dim; *cols = c->dim; break;
        default: *rows = c->dim; *cols = c->hidden_dim; break; /* W2 */
        }
    } else if (index == last_layer_end) {
        *role = LMF_ROLE_FINAL_NORM; *dtype = LMF_DTYPE_F32; *rows = 1; *cols = c->dim;
    } else {
        *role = LMF_ROLE_CLASSIFIER; *rows = c->vocab_size; *cols = c->dim;
    }
}

static int check_tensor(const lmf_blob *b, uint32_t index, lmf_error *err)
{
    const uint8_t *e = b->tensors + (size_t)index * 32;
    uint32_t role, layer, dtype, rows, cols;
    uint32_t stride = rd32(e + 16), group = rd32(e + 20), data_off = rd32(e + 24), scale_off = rd32(e + 28);
    expected_tensor(&b->cfg, index, &role, &layer, &dtype, &rows, &cols);
    /* a matrix may be q8, or q4 from format 1.1 on */
    if (dtype == LMF_DTYPE_Q8 && e[4] == LMF_DTYPE_Q4 && b->version_minor >= LMF_BLOB_MINOR_Q4) dtype = LMF_DTYPE_Q4;
    if (dtype == LMF_DTYPE_Q8 && e[4] != LMF_DTYPE_Q8 && e[4] != LMF_DTYPE_F32 && b->version_minor > LMF_BLOB_VERSION_MINOR)
        return lmf_fail(err, "blob tensor %u has weight type %u of blob format 1.%u, newer than this firmware's 1.%u: update the firmware",
                        index, e[4], b->version_minor, LMF_BLOB_VERSION_MINOR);
    if (rd16(e) != role || rd16(e + 2) != layer || e[4] != dtype || rd32(e + 8) != rows || rd32(e + 12) != cols)
        return lmf_fail(err, "blob tensor %u is role %u layer %u %ux%u, expected role %u layer %u %ux%u: the file is corrupt or from an incompatible converter",
                        index, rd16(e), rd16(e + 2), rd32(e + 8), rd32(e + 12), role, layer, rows, cols);
    if (dtype == LMF_DTYPE_F32) {
        if (stride != cols * 4 || group != 0 || !extent_ok(data_off, (uint64_t)rows * stride, 64, b->size))
            return lmf_fail(err, "blob tensor %u (f32) has a bad stride or lies outside the file: the file is corrupt", index);
        return 0;
    }
    {
        uint64_t n_groups = (cols + (uint64_t)group - 1) / (group ? group : 1);
        /* a q4 row is ceil(cols / 2) bytes, rounded up to 16 like a q8 row */
        uint32_t row_bytes = e[4] == LMF_DTYPE_Q4 ? cols / 2 + cols % 2 : cols;
        if (group != b->cfg.group_size || stride < row_bytes || stride % LMF_ALIGN != 0 || stride - row_bytes >= LMF_ALIGN)
            return lmf_fail(err, "blob tensor %u has row stride %u / group %u that do not fit %u columns: the file is corrupt", index, stride, group, cols);
        if (!extent_ok(data_off, (uint64_t)rows * stride, 64, b->size) ||
            !extent_ok(scale_off, (uint64_t)rows * n_groups * 4, 64, b->size))
            return lmf_fail(err, "blob tensor %u lies outside the file or is misaligned: the file is corrupt", index);
    }
    return 0;
}

static int read_tensors(lmf_blob *b, uint32_t off, uint32_t size, lmf_error *err)
{
    const lmf_config *c = &b->cfg;
    uint32_t expected = 1 + c->n_layers * LMF_TENSORS_PER_LAYER + 1 + ((c->flags & LMF_FLAG_SHARED_CLASSIFIER) ? 0 : 1);
    uint32_t i;
    if (size < 16) return lmf_fail(err, "blob TENSORS section is too short: the file is corrupt");
    b->tensor_count = rd32(b->base + off);
    b->tensors = b->base + off + 16;
    if (b->tensor_count != expected)
        return lmf_fail(err, "blob has %u tensors, the config needs %u: the file is corrupt", b->tensor_count, expected);
    if (16 + (uint64_t)expected * 32 > size)
        return lmf_fail(err, "blob tensor directory is larger than its section: the file is corrupt");
    for (i = 0; i < expected; i++)
        if (check_tensor(b, i, err) != 0) return -1;
    return 0;
}

/* Architecture 2: CONFIG and NGRAM (ngram.c validates them), then the tokenizer. */
static int read_ngram(lmf_blob *b, const uint32_t *found, const uint32_t *offs, const uint32_t *sizes, lmf_error *err)
{
    if (!found[LMF_SECTION_CONFIG] || !found[LMF_SECTION_TOKENIZER] || !found[LMF_SECTION_NGRAM])
        return lmf_fail(err, "N-gram blob lacks a config, tokenizer or N-gram section: the file is corrupt");
    if (lmf_ngram_read(&b->ngram, b->base, offs[LMF_SECTION_CONFIG], sizes[LMF_SECTION_CONFIG], offs[LMF_SECTION_NGRAM],
                       sizes[LMF_SECTION_NGRAM], err) != 0)
        return -1;
    /* the driver and the session size their buffers from these two */
    b->cfg.vocab_size = b->ngram.vocab_size;
    b->cfg.seq_len = b->ngram.seq_len;
    return read_tokenizer(b, offs[LMF_SECTION_TOKENIZER], sizes[LMF_SECTION_TOKENIZER], err);
}

int lmf_blob_open(lmf_blob *b, const void *data, size_t size, int check_crc, lmf_error *err)
{
    const uint8_t *p = (const uint8_t *)data;
    uint32_t file_size, n_sections, table, i;
    uint32_t found[5] = {0, 0, 0, 0, 0}, offs[5] = {0, 0, 0, 0, 0}, sizes[5] = {0, 0, 0, 0, 0};
    const uint16_t endian_probe = 1;
    memset(b, 0, sizeof *b);
    if (*(const uint8_t *)&endian_probe != 1) return lmf_fail(err, "this core needs a little-endian CPU");
    if (((uintptr_t)p % LMF_ALIGN) != 0) return lmf_fail(err, "blob is not 16-byte aligned in memory (a port bug: map or load it aligned)");
    if (size < LMF_BLOB_HEADER_BYTES || memcmp(p, LMF_BLOB_MAGIC, 4) != 0)
        return lmf_fail(err, "not an lmflash blob (no LMFB magic): convert the model with `lmflash convert` first");
    if (rd16(p + 4) != LMF_BLOB_VERSION_MAJOR)
        return lmf_fail(err, "blob format version %u is not %u, the version this firmware reads: convert it with a matching lmflash or update the firmware",
                        rd16(p + 4), LMF_BLOB_VERSION_MAJOR);
    file_size = rd32(p + 8);
    if (file_size < LMF_BLOB_HEADER_BYTES || file_size > size)
        return lmf_fail(err, "blob says it is %u bytes but only %lu are present: the file or partition is truncated", file_size, (unsigned long)size);
    b->base = p;
    b->size = file_size;
    b->version_minor = rd16(p + 6);
    if (check_crc && lmf_crc32(0, p + 16, file_size - 16) != rd32(p + 12))
        return lmf_fail(err, "blob CRC mismatch: the file is corrupt or was not completely written; convert or flash it again");
    b->arch = rd32(p + 16);
    n_sections = rd32(p + 20);
    table = rd32(p + 24);
    if (b->arch != LMF_ARCH_TRANSFORMER && b->arch != LMF_ARCH_NGRAM)
        return lmf_fail(err, "blob architecture %u is not supported by this core (1 = transformer, 2 = N-gram)", b->arch);
    if (n_sections > 64 || !extent_ok(table, (uint64_t)n_sections * 16, LMF_BLOB_HEADER_BYTES, file_size))
        return lmf_fail(err, "blob section table lies outside the file: the file is corrupt");
    for (i = 0; i < n_sections; i++) {
        const uint8_t *s = p + table + i * 16;
        uint32_t kind = rd32(s), off = rd32(s + 4), len = rd32(s + 8);
        if (kind == 0 || kind > LMF_SECTION_NGRAM) continue; /* a newer minor version's section */
        if (found[kind]) return lmf_fail(err, "blob has two sections of kind %u: the file is corrupt", kind);
        if (!extent_ok(off, len, LMF_BLOB_HEADER_BYTES, file_size))
            return lmf_fail(err, "blob section %u lies outside the file: the file is corrupt", kind);
        found[kind] = 1; offs[kind] = off; sizes[kind] = len;
    }
    if (b->arch == LMF_ARCH_NGRAM) return read_ngram(b, found, offs, sizes, err);
    if (!found[LMF_SECTION_CONFIG] || !found[LMF_SECTION_TOKENIZER] || !found[LMF_SECTION_TENSORS])
        return lmf_fail(err, "blob lacks a config, tokenizer or tensor section: the file is corrupt");
    if (read_config(b, offs[LMF_SECTION_CONFIG], sizes[LMF_SECTION_CONFIG], err) != 0) return -1;
    if (read_tokenizer(b, offs[LMF_SECTION_TOKENIZER], sizes[LMF_SECTION_TOKENIZER], err) != 0) return -1;
    return read_tensors(b, offs[LMF_SECTION_TENSORS], sizes[LMF_SECTION_TENSORS], err);
}

static uint32_t tensor_index(const lmf_blob *b, uint32_t role, uint32_t layer)
{
    uint32_t last_layer_end = 1 + b->cfg.n_layers * LMF_TENSORS_PER_LAYER;
    switch (role) {
    case LMF_ROLE_EMBEDDING: return 0;
    case LMF_ROLE_FINAL_NORM: return last_layer_end;
    case LMF_ROLE_CLASSIFIER:
        return (b->cfg.flags & LMF_FLAG_SHARED_CLASSIFIER) ? 0 : last_layer_end + 1;
    default: return 1 + layer * LMF_TENSORS_PER_LAYER + (role - LMF_ROLE_ATTN_NORM);
    }
}

lmf_qmat lmf_blob_qmat(const lmf_blob *b, uint32_t role, uint32_t layer)
{
    const uint8_t *e = b->tensors + (size_t)tensor_index(b, role, layer) * 32;
    lmf_qmat m;
    m.rows = rd32(e + 8);
    m.cols = rd32(e + 12);
    m.stride = rd32(e + 16);
    m.group = rd32(e + 20);
    m.n_groups = (m.cols + m.group - 1) / m.group;
    m.dtype = e[4];
    m.q = m.dtype == LMF_DTYPE_Q8 ? (const int8_t *)(const void *)(b->base + rd32(e + 24)) : NULL;
    m.q4 = m.dtype == LMF_DTYPE_Q4 ? b->base + rd32(e + 24) : NULL;
    m.scale = (const float *)(const void *)(b->base + rd32(e + 28));
    return m;
}

const float *lmf_blob_vector(const lmf_blob *b, uint32_t role, uint32_t layer)
{
    const uint8_t *e = b->tensors + (size_t)tensor_index(b, role, layer) * 32;
    return (const float *)(const void *)(b->base + rd32(e + 24));
}
