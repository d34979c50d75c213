#include "lmf/tokenizer.h"

#include <string.h>

static const uint8_t *piece(const lmf_tokenizer *t, uint32_t id, uint32_t *len)
{
    *len = t->piece_offsets[id + 1] - t->piece_offsets[id];
    return t->piece_bytes + t->piece_offsets[id];
}

/* memcmp order of the concatenation a+b against p, a prefix sorting first. */
static int compare_concat(const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb, const uint8_t *p, uint32_t lp)
{
    uint32_t i, n = la + lb;
    for (i = 0; i < n && i < lp; i++) {
        uint8_t c = i < la ? a[i] : b[i - la];
        if (c != p[i]) return c < p[i] ? -1 : 1;
    }
    return n < lp ? -1 : (n > lp ? 1 : 0);
}

/* Binary search of the sorted text pieces for the concatenation a+b. */
static uint32_t lookup_concat(const lmf_tokenizer *t, const uint8_t *a, uint32_t la, const uint8_t *b, uint32_t lb)
{
    uint32_t lo = 0, hi = t->sorted_count;
    if (la + lb > t->max_piece_bytes) return LMF_NONE;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2, lp;
        const uint8_t *p = piece(t, t->sorted[mid], &lp);
        int c = compare_concat(a, la, b, lb, p, lp);
        if (c == 0) return t->sorted[mid];
        if (c < 0) hi = mid; else lo = mid + 1;
    }
    return LMF_NONE;
}

uint32_t lmf_piece_lookup(const lmf_tokenizer *t, const uint8_t *bytes, uint32_t len)
{
    return lookup_concat(t, bytes, len, bytes, 0);
}

/* Appends the ids for one UTF-8 character: its piece, else one byte-fallback
 * token per byte; a character the byte tokens cannot spell (a vocabulary
 * without byte fallback) is one <unk>, not one per byte (nothing without <unk>). */
static uint32_t push_char(const lmf_tokenizer *t, const uint8_t *c, uint32_t n, uint32_t *ids, uint32_t count)
{
    uint32_t id = lmf_piece_lookup(t, c, n), i;
    if (id != LMF_NONE) {
        ids[count++] = id;
        return count;
    }
    for (i = 0; i < n; i++)
        if (t->byte_ids[c[i]] == LMF_NONE) {
            if (t->unk_id != LMF_NONE) ids[count++] = t->unk_id;
            return count;
        }
    for (i = 0; i < n; i++) ids[count++] = t->byte_ids[c[i]];
    return count;
}

/* Merges, repeatedly, the adjacent pair of text pieces whose concatenation is
 * the highest-scoring piece (leftmost on ties). */
static uint32_t merge_pairs(const lmf_tokenizer *t, uint32_t *ids, uint32_t n)
{
    for (;;) {
        float best_score = -1e10f;
        uint32_t best_id = LMF_NONE, best_at = 0, i;
        for (i = 0; i + 1 < n; i++) {
            uint32_t la, lb, id;
            const uint8_t *a, *b;
            if (t->kinds[ids[i]] != LMF_PIECE_TEXT || t->kinds[ids[i + 1]] != LMF_PIECE_TEXT) continue;
            a = piece(t, ids[i], &la);
            b = piece(t, ids[i + 1], &lb);
            id = lookup_concat(t, a, la, b, lb);
            if (id != LMF_NONE && t->scores[id] > best_score) {
                best_score = t->scores[id];
                best_id = id;
                best_at = i;
            }
        }
        if (best_id == LMF_NONE) return n;
        ids[best_at] = best_id;
        memmove(ids + best_at + 1, ids + best_at + 2, (n - best_at - 2) * sizeof *ids);
        n--;
    }
}

static int is_word_separator(uint8_t c) { return c == ' ' || (c >= 0x09 && c <= 0x0D); }

/* Word-level encoding (LMF_TOKENIZER_WORDS): every run of non-separator
 * bytes is one token, the text piece " " + word, or <unk>. */
static uint32_t encode_words(const lmf_tokenizer *t, const uint8_t *s, size_t len, uint32_t *ids, uint32_t n)
{
    size_t i = 0, end;
    while (i < len) {
        uint32_t id = LMF_NONE;
        if (is_word_separator(s[i])) { i++; continue; }
        for (end = i; end < len && !is_word_separator(s[end]); end++) {}
        if (end - i < t->max_piece_bytes) id = lookup_concat(t, (const uint8_t *)" ", 1, s + i, (uint32_t)(end - i));
        if (id == LMF_NONE) id = t->unk_id;
        if (id != LMF_NONE) ids[n++] = id;
        i = end;
    }
    return n;
}

int32_t lmf_encode(const lmf_tokenizer *t, const char *text, size_t len, int add_bos, uint32_t *ids, uint32_t cap)
{
    const uint8_t *s = (const uint8_t *)text;
    uint32_t n = 0;
    size_t i = 0;
    if (len + 2 > cap) return -1;
    if (add_bos && t->bos_id != LMF_NONE) ids[n++] = t->bos_id;
    if (t->flags & LMF_TOKENIZER_WORDS) return (int32_t)encode_words(t, s, len, ids, n);
    if (len > 0 && (t->flags & LMF_TOKENIZER_DUMMY_PREFIX)) {
        uint32_t space = lmf_piece_lookup(t, (const uint8_t *)" ", 1);
        if (space != LMF_NONE) ids[n++] = space;
    }
    while (i < len) {
        /* a character: its first byte and up to 3 continuation bytes (10xxxxxx) */
        uint32_t clen = 1;
        while (i + clen < len && clen < 4 && (s[i + clen] & 0xC0) == 0x80) clen++;
        n = push_char(t, s + i, clen, ids, n);
        i += clen;
    }
    return (int32_t)merge_pairs(t, ids, n);
}

const uint8_t *lmf_decode(const lmf_tokenizer *t, uint32_t prev, uint32_t token, uint32_t *len)
{
    const uint8_t *p;
    if (token >= t->vocab_size || t->kinds[token] == LMF_PIECE_CONTROL) {
        *len = 0;
        return t->piece_bytes;
    }
    p = piece(t, token, len);
    if (prev == t->bos_id && t->kinds[token] == LMF_PIECE_TEXT && *len > 0 && p[0] == ' ') {
        p++;
        (*len)--;
    }
    return p;
}
