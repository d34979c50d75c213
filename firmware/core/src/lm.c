/* Dispatch by architecture (see lm.h). */
#include "lmf/lm.h"
#include "lmf/sampler.h"

#include <string.h>

size_t lmf_lm_bytes(const lmf_blob *b, uint32_t ctx)
{
    if (b->arch == LMF_ARCH_NGRAM) return lmf_ngram_state_bytes(&b->ngram); /* no cache: the history is a few tokens */
    return lmf_state_bytes(&b->cfg, ctx);
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

size_t lmf_run_sampler_bytes(const lmf_blob *b) { return round16(lmf_sampler_bytes(b->cfg.vocab_size)); }

size_t lmf_run_token_bytes(uint32_t ctx) { return round16(((size_t)ctx + 2) * 4); }

size_t lmf_run_bytes(const lmf_blob *b, uint32_t ctx)
{
    return lmf_run_sampler_bytes(b) + lmf_run_token_bytes(ctx) + lmf_lm_bytes(b, ctx);
}

uint32_t lmf_run_max_ctx(const lmf_blob *b, size_t arena_bytes)
{
    uint32_t lo = 0, hi = b->cfg.seq_len;
    while (lo < hi) { /* run bytes grow with ctx: the largest ctx that fits */
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (lmf_run_bytes(b, mid) <= arena_bytes) lo = mid; else hi = mid - 1;
    }
    return lo;
}

int lmf_lm_init(lmf_lm *m, const lmf_blob *b, void *arena, size_t arena_bytes, uint32_t ctx, lmf_error *err)
{
    memset(m, 0, sizeof *m);
    m->blob = b;
    if (b->arch != LMF_ARCH_NGRAM) {
        if (lmf_state_init(&m->tf, b, arena, arena_bytes, ctx, err) != 0) return -1;
        m->ctx = m->tf.ctx;
        m->logits = m->tf.logits;
        return 0;
    }
    if (ctx == 0) ctx = b->cfg.seq_len;
    if (ctx > b->cfg.seq_len) return lmf_fail(err, "context %u is longer than the model's %u positions", ctx, b->cfg.seq_len);
    if (((uintptr_t)arena & 15) != 0) return lmf_fail(err, "arena must be 16-byte aligned");
    if (lmf_ngram_state_init(&m->ng, &b->ngram, arena, arena_bytes, err) != 0) return -1;
    m->ctx = ctx;
    m->logits = m->ng.logits;
    return 0;
}

const float *lmf_lm_forward(lmf_lm *m, uint32_t token, uint32_t pos)
{
    if (m->blob->arch == LMF_ARCH_NGRAM) return lmf_ngram_forward(&m->ng, token, pos);
    return lmf_forward(&m->tf, token, pos);
}
