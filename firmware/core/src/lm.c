/* Dispatch by architecture (see lm.h). */
#include "lmf/lm.h"

#include <string.h>

size_t lmf_lm_bytes(const lmf_blob *b, uint32_t ctx)
{
    if (b->arch == LMF_ARCH_NGRAM) return lmf_ngram_state_bytes(&b->ngram); /* no cache: the history is a few tokens */
    return lmf_state_bytes(&b->cfg, ctx);
}

uint32_t lmf_lm_max_ctx(const lmf_blob *b, size_t arena_bytes)
{
    if (b->arch == LMF_ARCH_NGRAM) return lmf_ngram_state_bytes(&b->ngram) <= arena_bytes ? b->cfg.seq_len : 0;
    return lmf_state_max_ctx(&b->cfg, arena_bytes);
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
