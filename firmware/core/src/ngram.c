/* N-gram models: validation of the trie at open, then next-token logits
 * read in place from it (see ngram.h and docs/blob-format.md).
 *
 * The trie: order n holds the n-grams sorted by parent (the (n-1)-gram
 * without the last word) and then by last word, so the children of an
 * n-gram — the words seen after it — are one word-sorted run of order n+1,
 * from its pointer to the next entry's pointer. Unigram i is token i.
 *
 * Logits for a history h (its last j tokens are ctx_j, b_j their backoffs):
 *   logit[w] = p(w | ctx_m) + b_{m+1} + ... + b_J
 * where ctx_m is the longest context that w was seen after and J the longest
 * context in the model. Computed as: every token's unigram value plus all
 * backoffs, then for j = 1..J the children of ctx_j overwrite theirs with
 * their own value plus the backoffs of the longer contexts. The sums S_j are
 * formed once, longest context first, so every logit is one float addition
 * of the same two floats the TypeScript scorer (src/ngram.ts) adds. */
#include "lmf/ngram.h"
#include "lmf/detmath.h"

#include <string.h>

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* [off, off+len) inside [lo, hi) and 16-byte aligned. */
static int extent_ok(uint64_t off, uint64_t len, uint64_t lo, uint64_t hi)
{
    return off % 16 == 0 && off >= lo && off <= hi && len <= hi - off;
}

static int finite_bits(uint32_t u) { return (u & 0x7F800000u) != 0x7F800000u; }

/* ---- reading packed fields ------------------------------------------------ */

/* width (1..32) bits at bit offset `bit`. Validation made the word array one
 * word longer than its last field, so the second load stays inside. */
static uint32_t bits_at(const uint32_t *a, uint32_t bit, uint32_t width)
{
    uint32_t i = bit >> 5, s = bit & 31, v = a[i] >> s;
    if (s + width > 32) v |= a[i + 1] << (32 - s);
    return width == 32 ? v : v & ((1u << width) - 1u);
}

static float value(uint32_t code, uint32_t bits, const float *codebook)
{
    return bits == LMF_NGRAM_FLOAT_BITS ? lmf_u2f(code) : codebook[code];
}

static uint32_t word_of(const lmf_ngram_level *l, uint32_t i) { return bits_at(l->bits, i * l->entry_bits, l->word_bits); }

static float backoff_of(const lmf_ngram_level *l, uint32_t i)
{
    uint32_t at = i * l->entry_bits + l->word_bits + l->prob_bits;
    return value(bits_at(l->bits, at, l->backoff_bits), l->backoff_bits, l->backoff_codebook);
}

static uint32_t pointer_of(const lmf_ngram_level *l, uint32_t i)
{
    return bits_at(l->bits, i * l->entry_bits + l->word_bits + l->prob_bits + l->backoff_bits, l->pointer_bits);
}

/* ---- validation ------------------------------------------------------------ */

static int code_bits_ok(uint32_t bits) { return (bits >= 1 && bits <= LMF_NGRAM_MAX_CODE_BITS) || bits == LMF_NGRAM_FLOAT_BITS; }

/* A codebook of 2^bits finite floats inside the section (none for float fields). */
static int read_codebook(const float **book, const uint8_t *base, uint32_t off, uint32_t bits, uint32_t lo, uint32_t hi)
{
    uint32_t i, n;
    *book = NULL;
    if (bits == LMF_NGRAM_FLOAT_BITS) return 0;
    n = 1u << bits;
    if (!extent_ok(off, (uint64_t)n * 4, lo, hi)) return -1;
    *book = (const float *)(const void *)(base + off);
    for (i = 0; i < n; i++)
        if (!finite_bits(lmf_f2u((*book)[i]))) return -1;
    return 0;
}

/* The descriptor of order n (32 bytes at d): field widths, table and codebooks. */
static int read_level(lmf_ngram *m, uint32_t n, const uint8_t *base, const uint8_t *d, uint32_t lo, uint32_t hi, lmf_error *err)
{
    lmf_ngram_level *l = &m->level[n - 1];
    int top = n == m->order;
    uint32_t entries_off = rd32(d + 8), entries_bytes = rd32(d + 12);
    uint64_t rows, total_bits;
    l->count = rd32(d);
    l->word_bits = d[4];
    l->prob_bits = d[5];
    l->backoff_bits = d[6];
    l->pointer_bits = d[7];
    if (n == 1 ? l->count != m->vocab_size || l->word_bits != 0 : l->word_bits < 1 || l->word_bits > LMF_NGRAM_MAX_WORD_BITS)
        return lmf_fail(err, "blob N-gram order %u has %u entries / %u-bit words: the file is corrupt", n, l->count, l->word_bits);
    if (!code_bits_ok(l->prob_bits) ||
        (top ? l->backoff_bits != 0 || l->pointer_bits != 0 : !code_bits_ok(l->backoff_bits) || l->pointer_bits < 1 || l->pointer_bits > 32))
        return lmf_fail(err, "blob N-gram order %u has fields of %u/%u/%u bits: the file is corrupt", n, l->prob_bits, l->backoff_bits, l->pointer_bits);
    l->entry_bits = l->word_bits + l->prob_bits + l->backoff_bits + l->pointer_bits;
    /* bit offsets are computed in 32 bits on the board: the table must stay below 2^32 bits */
    rows = (uint64_t)l->count + (top ? 0 : 1);
    total_bits = rows * l->entry_bits;
    if (total_bits > 0xFFFFFFFFull - 64 || entries_bytes < ((total_bits + 31) / 32 + 1) * 4 || !extent_ok(entries_off, entries_bytes, lo, hi))
        return lmf_fail(err, "blob N-gram order %u table lies outside its section or is too short: the file is corrupt", n);
    l->bits = (const uint32_t *)(const void *)(base + entries_off);
    if (read_codebook(&l->prob_codebook, base, rd32(d + 16), l->prob_bits, lo, hi) != 0 ||
        (!top && read_codebook(&l->backoff_codebook, base, rd32(d + 20), l->backoff_bits, lo, hi) != 0))
        return lmf_fail(err, "blob N-gram order %u codebook lies outside its section or holds a non-number: the file is corrupt", n);
    return 0;
}

/* Float fields finite; below the highest order, pointers rising from 0 to
 * the next order's count; in the next order, words in the vocabulary and
 * strictly rising under each parent, so that binary search finds them. */
static int check_entries(const lmf_ngram *m, uint32_t n, lmf_error *err)
{
    const lmf_ngram_level *l = &m->level[n - 1], *next = n < m->order ? &m->level[n] : NULL;
    uint32_t i, k;
    int float_probs = l->prob_bits == LMF_NGRAM_FLOAT_BITS, float_backoffs = next && l->backoff_bits == LMF_NGRAM_FLOAT_BITS;
    for (i = 0; (float_probs || float_backoffs) && i < l->count; i++) {
        uint32_t at = i * l->entry_bits + l->word_bits;
        if (float_probs && !finite_bits(bits_at(l->bits, at, 32)))
            return lmf_fail(err, "blob N-gram order %u entry %u is not a number: the file is corrupt", n, i);
        if (float_backoffs && !finite_bits(bits_at(l->bits, at + l->prob_bits, 32)))
            return lmf_fail(err, "blob N-gram order %u backoff %u is not a number: the file is corrupt", n, i);
    }
    if (!next) return 0;
    if (pointer_of(l, 0) != 0 || pointer_of(l, l->count) != next->count)
        return lmf_fail(err, "blob N-gram order %u pointers do not cover order %u: the file is corrupt", n, n + 1);
    for (i = 0; i < l->count; i++) {
        uint32_t lo = pointer_of(l, i), hi = pointer_of(l, i + 1);
        if (hi < lo) return lmf_fail(err, "blob N-gram order %u pointers fall at entry %u: the file is corrupt", n, i);
        for (k = lo; k < hi; k++) {
            uint32_t w = word_of(next, k);
            if (w >= m->vocab_size || (k > lo && w <= word_of(next, k - 1)))
                return lmf_fail(err, "blob N-gram order %u entry %u has word %u out of range or order: the file is corrupt", n + 1, k, w);
        }
    }
    return 0;
}

int lmf_ngram_read(lmf_ngram *m, const uint8_t *base, uint32_t cfg_off, uint32_t cfg_size, uint32_t ngram_off,
                   uint32_t ngram_size, lmf_error *err)
{
    const uint8_t *c = base + cfg_off, *h = base + ngram_off;
    uint32_t n, tables, end = ngram_off + ngram_size; /* blob.c checked that both sections lie inside the file */
    memset(m, 0, sizeof *m);
    if (cfg_size < 64) return lmf_fail(err, "blob N-gram CONFIG section is %u bytes, expected 64: the file is corrupt", cfg_size);
    m->order = rd32(c);
    m->vocab_size = rd32(c + 4);
    m->seq_len = rd32(c + 8);
    if (m->order < 1 || m->order > LMF_NGRAM_MAX_ORDER)
        return lmf_fail(err, "blob N-gram order %u is not 1..%u", m->order, LMF_NGRAM_MAX_ORDER);
    if (m->vocab_size == 0 || m->vocab_size > (1u << 24) || m->seq_len == 0 || m->seq_len > LMF_NGRAM_MAX_SEQ_LEN)
        return lmf_fail(err, "blob N-gram vocab_size %u / seq_len %u out of range", m->vocab_size, m->seq_len);
    if (ngram_size < 16 + 32 * m->order || rd32(h) != m->order)
        return lmf_fail(err, "blob NGRAM section is too short or disagrees with the config: the file is corrupt");
    tables = ngram_off + 16 + 32 * m->order;
    for (n = 1; n <= m->order; n++)
        if (read_level(m, n, base, h + 16 + 32 * (n - 1), tables, end, err) != 0) return -1;
    for (n = 1; n <= m->order; n++)
        if (check_entries(m, n, err) != 0) return -1;
    return 0;
}

/* ---- scoring --------------------------------------------------------------- */

size_t lmf_ngram_state_bytes(const lmf_ngram *m) { return ((size_t)m->vocab_size * 4 + 15) & ~(size_t)15; }

int lmf_ngram_state_init(lmf_ngram_state *s, const lmf_ngram *m, void *arena, size_t arena_bytes, lmf_error *err)
{
    if (lmf_ngram_state_bytes(m) > arena_bytes)
        return lmf_fail(err, "the N-gram logits need %lu bytes of RAM but only %lu are available",
                        (unsigned long)lmf_ngram_state_bytes(m), (unsigned long)arena_bytes);
    memset(s, 0, sizeof *s);
    s->m = m;
    s->logits = (float *)arena;
    return 0;
}

/* Index in order n+1 of `word` among the children of entry `at` of order n. */
static int find_child(const lmf_ngram *m, uint32_t n, uint32_t at, uint32_t word, uint32_t *out)
{
    const lmf_ngram_level *child = &m->level[n];
    uint32_t lo = pointer_of(&m->level[n - 1], at), hi = pointer_of(&m->level[n - 1], at + 1);
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, w = word_of(child, mid);
        if (w == word) { *out = mid; return 1; }
        if (w < word) lo = mid + 1; else hi = mid;
    }
    return 0;
}

/* Index of tokens[0..len) in order len, walking down from its first word. */
static int find_ngram(const lmf_ngram *m, const uint32_t *tokens, uint32_t len, uint32_t *at)
{
    uint32_t i = tokens[0], n;
    for (n = 1; n < len; n++)
        if (!find_child(m, n, i, tokens[n], &i)) return 0;
    *at = i;
    return 1;
}

/* Keeps the last order-1 tokens. A token outside the vocabulary (only a
 * caller's bug can pass one) forgets the context rather than index past it. */
static void remember(lmf_ngram_state *s, uint32_t token)
{
    uint32_t keep = s->m->order - 1;
    if (token >= s->m->vocab_size) { s->n_history = 0; return; }
    if (keep == 0) return;
    if (s->n_history == keep) {
        memmove(s->history, s->history + 1, (keep - 1) * sizeof s->history[0]);
        s->n_history--;
    }
    s->history[s->n_history++] = token;
}

const float *lmf_ngram_forward(lmf_ngram_state *s, uint32_t token, uint32_t pos)
{
    const lmf_ngram *m = s->m;
    const lmf_ngram_level *uni = &m->level[0];
    uint32_t ctx[LMF_NGRAM_MAX_ORDER]; /* ctx[j]: the last j tokens' index in order j */
    float sums[LMF_NGRAM_MAX_ORDER];   /* sums[j] = b_{j+1} + ... + b_found */
    uint32_t found = 0, j, w, bit;
    if (pos == 0) s->n_history = 0;
    remember(s, token);
    /* the contexts in the model: a longer one can only exist if its suffix does */
    while (found < s->n_history && find_ngram(m, s->history + s->n_history - (found + 1), found + 1, &ctx[found + 1])) found++;
    sums[found] = 0.0f;
    for (j = found; j >= 1; j--) sums[j - 1] = backoff_of(&m->level[j - 1], ctx[j]) + sums[j];
    /* every token backs off to its unigram ... */
    for (w = 0, bit = 0; w < m->vocab_size; w++, bit += uni->entry_bits)
        s->logits[w] = value(bits_at(uni->bits, bit, uni->prob_bits), uni->prob_bits, uni->prob_codebook) + sums[0];
    /* ... unless a context saw it: longer contexts overwrite shorter ones */
    for (j = 1; j <= found; j++) {
        const lmf_ngram_level *parent = &m->level[j - 1], *child = &m->level[j];
        uint32_t k = pointer_of(parent, ctx[j]), end = pointer_of(parent, ctx[j] + 1);
        for (bit = k * child->entry_bits; k < end; k++, bit += child->entry_bits) {
            uint32_t word = bits_at(child->bits, bit, child->word_bits);
            s->logits[word] = value(bits_at(child->bits, bit + child->word_bits, child->prob_bits), child->prob_bits, child->prob_codebook) + sums[j];
        }
    }
    return s->logits;
}
