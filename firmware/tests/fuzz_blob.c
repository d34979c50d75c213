/* libFuzzer harness: a blob as the board gets it (any bytes), opened and, if
 * it validates, tokenized, decoded and run for a few forward steps with the
 * sampler. Built by tests/fuzz.test.ts with clang -fsanitize=fuzzer,address,
 * undefined (firmware/CMakeLists.txt, LMF_FUZZ); the CRC check is off so
 * that mutations reach the deeper checks. Seeds: tests/fuzz.test.ts writes
 * the small synthetic vector blobs (tests/vectors.ts) as the corpus. */
#include "lmf/blob.h"
#include "lmf/lm.h"
#include "lmf/sampler.h"
#include "lmf/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static uint8_t arena[1 << 20] __attribute__((aligned(16)));
static uint8_t sampler_mem[1 << 20] __attribute__((aligned(16)));

static void run_a_little(const lmf_blob *blob)
{
    static const char *texts[] = {"Once upon a time", "", " \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80", "\xFF\x80 stray"};
    lmf_lm st;
    lmf_error err;
    lmf_sampler sampler;
    lmf_sampler_params sp;
    uint32_t ids[128], pos, i, len;
    for (i = 0; i < 4; i++) {
        int32_t n = lmf_encode(&blob->tok, texts[i], strlen(texts[i]), 1, ids, 128), k;
        for (k = 0; k < n; k++) (void)lmf_decode(&blob->tok, k ? ids[k - 1] : 0, ids[k], &len);
    }
    if (lmf_lm_init(&st, blob, arena, sizeof arena, blob->cfg.seq_len < 6 ? blob->cfg.seq_len : 6, &err) != 0) return;
    if (lmf_sampler_bytes(blob->cfg.vocab_size) > sizeof sampler_mem) return;
    lmf_sampler_defaults(&sp);
    sp.repeat_penalty = 1.3f;
    sp.banned[0] = 0;
    sp.n_banned = 1;
    lmf_sampler_init(&sampler, &sp, blob->cfg.vocab_size, sampler_mem);
    ids[0] = blob->tok.bos_id < blob->cfg.vocab_size ? blob->tok.bos_id : 0;
    for (pos = 0; pos < 4 && pos < st.ctx; pos++) {
        lmf_lm_forward(&st, ids[pos], pos);
        ids[pos + 1] = lmf_sample(&sampler, st.logits, ids, pos + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lmf_blob blob;
    lmf_error err;
    /* the board maps its blob at an aligned address: give the copy one */
    uint8_t *copy = (uint8_t *)aligned_alloc(16, (size + 15) & ~(size_t)15);
    if (!copy) return 0;
    memcpy(copy, data, size);
    if (lmf_blob_open(&blob, copy, size, 0, &err) == 0) run_a_little(&blob);
    free(copy);
    return 0;
}
