/* Hostile-blob test: takes a valid blob and feeds the core thousands of
 * corrupted copies (truncations, bit flips, overwritten header and table
 * fields, with the CRC both left stale and recomputed so that corruption
 * reaches the deeper checks). Every copy must be rejected with a message or,
 * if it still validates, must run the tokenizer and a few forward steps
 * without a crash. Built with ASan and UBSan (LMF_SANITIZE), so any
 * out-of-bounds access or undefined arithmetic aborts the run. Transformer
 * and N-gram blobs alike (their third section is the tensor directory or
 * the N-gram order descriptors, both overwritten field by field).
 *   blob-fuzz MODEL.blob [ITERATIONS] [SEED] */
#include "lmf/blob.h"
#include "lmf/lm.h"
#include "lmf/sampler.h"
#include "lmf/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 88172645463325252ull;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

static void fix_crc(uint8_t *b, size_t size)
{
    uint32_t file_size = get32(b + 8);
    if (file_size >= 16 && file_size <= size) put32(b + 12, lmf_crc32(0, b + 16, file_size - 16));
}

/* A value likely to break size arithmetic. */
static uint32_t hostile_value(void)
{
    static const uint32_t values[] = {0, 1, 2, 3, 15, 16, 17, 255, 256, 65535, 65536, 65537, 0x7FFFFFFFu,
                                      0x80000000u, 0xFFFFFFFFu, 0xFFFFFFF0u, 0x10000000u, 1u << 20, 1u << 24};
    return rnd() % 4 == 0 ? rnd() : values[rnd() % (sizeof values / sizeof values[0])];
}

/* The offsets of every u32 field the reader trusts: header, section table,
 * config, tokenizer header, tensor directory or N-gram descriptors (both sit
 * 16 bytes into the third section, in 32-byte records). */
static uint32_t pick_field(const uint8_t *b, uint32_t size)
{
    uint32_t table = get32(b + 24), cfg = get32(b + 36 + 0), tok, dir;
    (void)cfg;
    switch (rnd() % 5) {
    case 0: return 4 * (rnd() % 7);
    case 1: return table + 4 * (rnd() % 12);
    case 2: return get32(b + table + 4) + 4 * (rnd() % 11);
    case 3: tok = get32(b + table + 20); return tok + 4 * (rnd() % 14);
    default:
        dir = get32(b + table + 36);
        return dir + 16 + 32 * (rnd() % 60) + 4 * (rnd() % 8);
    }
    (void)size;
}

static uint8_t arena[1 << 20] __attribute__((aligned(16)));

/* Whatever validated must also run. */
static void exercise(const lmf_blob *blob)
{
    static const char *texts[] = {"Once upon a time", "", " 你好, world! \xF0\x9F\x98\x80", "\xFF\xFE\x80 stray bytes"};
    lmf_lm st;
    lmf_error err;
    uint32_t ids[128], pos, i, len;
    lmf_sampler sampler;
    lmf_sampler_params sp;
    static uint8_t sampler_mem[1 << 20] __attribute__((aligned(16)));
    for (i = 0; i < 4; i++) {
        int32_t n = lmf_encode(&blob->tok, texts[i], strlen(texts[i]), 1, ids, 128);
        int32_t k;
        for (k = 0; k < n; k++) (void)lmf_decode(&blob->tok, k ? ids[k - 1] : 0, ids[k], &len);
    }
    if (lmf_lm_init(&st, blob, arena, sizeof arena, 8 < blob->cfg.seq_len ? 8 : blob->cfg.seq_len, &err) != 0) return;
    if (lmf_sampler_bytes(blob->cfg.vocab_size) > sizeof sampler_mem) return;
    lmf_sampler_defaults(&sp);
    lmf_sampler_init(&sampler, &sp, blob->cfg.vocab_size, sampler_mem);
    ids[0] = blob->tok.bos_id < blob->cfg.vocab_size ? blob->tok.bos_id : 0;
    for (pos = 0; pos < 3 && pos < st.ctx; pos++) {
        lmf_lm_forward(&st, ids[pos], pos);
        ids[pos + 1] = lmf_sample(&sampler, st.logits, ids, pos + 1);
    }
}

int main(int argc, char **argv)
{
    FILE *f;
    uint8_t *orig, *work;
    long size;
    unsigned long iterations = argc > 2 ? strtoul(argv[2], NULL, 10) : 2000, it, rejected = 0, accepted = 0;
    lmf_blob blob;
    lmf_error err;
    if (argc < 2) { fprintf(stderr, "usage: blob-fuzz MODEL.blob [ITERATIONS] [SEED]\n"); return 2; }
    if (argc > 3) rng_state ^= strtoull(argv[3], NULL, 10) * 0x9E3779B97F4A7C15ull;
    f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    orig = aligned_alloc(16, ((size_t)size + 15) & ~(size_t)15);
    if (!orig || fread(orig, 1, (size_t)size, f) != (size_t)size) { fprintf(stderr, "cannot read %s\n", argv[1]); return 2; }
    fclose(f);
    if (lmf_blob_open(&blob, orig, (size_t)size, 1, &err) != 0) { fprintf(stderr, "the seed blob is invalid: %s\n", err.msg); return 2; }
    exercise(&blob);

    for (it = 0; it < iterations; it++) {
        /* a fresh heap copy of exactly the (maybe truncated) length, so ASan sees any overrun */
        size_t n = (size_t)size, i;
        uint32_t kind = rnd() % 6;
        if (kind == 0) n = rnd() % (size_t)size;
        work = aligned_alloc(16, (n + 15) & ~(size_t)15);
        memcpy(work, orig, n);
        if (kind == 1) for (i = 0; i < 1 + rnd() % 8; i++) work[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
        if (kind >= 2 && n >= 64) {
            for (i = 0; i < 1 + rnd() % 3; i++) {
                uint32_t off = pick_field(orig, (uint32_t)size);
                if (off + 4 <= n) put32(work + off, hostile_value());
            }
        }
        if (kind != 1 || rnd() % 2) fix_crc(work, n);
        if (lmf_blob_open(&blob, work, n, 1, &err) != 0) {
            if (err.msg[0] == '\0') { fprintf(stderr, "iteration %lu: rejected without a message\n", it); return 1; }
            rejected++;
        } else {
            accepted++;
            exercise(&blob);
        }
        free(work);
    }
    printf("blob-fuzz: %lu corrupted blobs, %lu rejected with a message, %lu still valid and run without fault\n", iterations, rejected, accepted);
    free(orig);
    return 0;
}
