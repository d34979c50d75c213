#include "lmf/sampler.h"
#include "lmf/detmath.h"

#define NEG_HUGE (-3.0e38f)

void lmf_sampler_defaults(lmf_sampler_params *p)
{
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 0.9f;
    p->repeat_penalty = 1.0f;
    p->repeat_window = 64;
    p->seed = 42;
    p->n_banned = 0;
}

size_t lmf_sampler_bytes(uint32_t vocab_size) { return (size_t)vocab_size * 8; }

void lmf_sampler_init(lmf_sampler *s, const lmf_sampler_params *p, uint32_t vocab_size, void *mem)
{
    s->p = *p;
    s->vocab_size = vocab_size;
    /* a zero state would stay zero: mix the seed (splitmix64 constant) */
    s->rng = p->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (s->rng == 0) s->rng = 1;
    s->probs = (float *)mem;
    s->order = (uint32_t *)mem + vocab_size;
}

/* xorshift64*, as in llama2.c */
static uint32_t random_u32(lmf_sampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (uint32_t)((s->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static float random_unit(lmf_sampler *s) { return (float)(random_u32(s) >> 8) / 16777216.0f; }

/* Order-preserving integer image of a float (see model.c). */
static int32_t sortable(float f)
{
    int32_t i = (int32_t)lmf_f2u(f);
    return i < 0 ? (int32_t)(i ^ 0x7FFFFFFF) : i;
}

/* Lowest id among the largest values: ties never depend on the C library. */
static uint32_t argmax(const float *v, uint32_t n)
{
    uint32_t i, best = 0;
    int32_t best_key = sortable(v[0]);
    for (i = 1; i < n; i++) {
        int32_t key = sortable(v[i]);
        if (key > best_key) { best_key = key; best = i; }
    }
    return best;
}

/* CTRL-style penalty, once per distinct token in the window. */
static void penalize_repeats(const lmf_sampler *s, float *logits, const uint32_t *history, uint32_t n)
{
    uint32_t start = n > s->p.repeat_window ? n - s->p.repeat_window : 0, i, j;
    for (i = start; i < n; i++) {
        uint32_t tok = history[i];
        int seen = 0;
        for (j = start; j < i && !seen; j++) seen = history[j] == tok;
        if (seen || tok >= s->vocab_size) continue;
        logits[tok] = logits[tok] > 0.0f ? logits[tok] / s->p.repeat_penalty : logits[tok] * s->p.repeat_penalty;
    }
}

/* a before b: higher probability first, then lower id */
static int ranks_before(const float *probs, uint32_t a, uint32_t b)
{
    int32_t ka = sortable(probs[a]), kb = sortable(probs[b]);
    return ka > kb || (ka == kb && a < b);
}

/* Heap sort of ids by rank: O(n log n), no recursion, no allocation. */
static void sift_down(const float *probs, uint32_t *ids, uint32_t root, uint32_t n)
{
    for (;;) {
        uint32_t child = 2 * root + 1, tmp;
        if (child >= n) return;
        if (child + 1 < n && ranks_before(probs, ids[child + 1], ids[child])) child++;
        if (!ranks_before(probs, ids[child], ids[root])) return;
        tmp = ids[root]; ids[root] = ids[child]; ids[child] = tmp;
        root = child;
    }
}

static void sort_by_rank(const float *probs, uint32_t *ids, uint32_t n)
{
    uint32_t i, tmp;
    /* a heap whose root ranks last, so that popping leaves the best first */
    for (i = n / 2; i-- > 0;) sift_down(probs, ids, i, n);
    for (i = n; i-- > 1;) {
        tmp = ids[0]; ids[0] = ids[i]; ids[i] = tmp;
        sift_down(probs, ids, 0, i);
    }
    for (i = 0; i < n / 2; i++) { tmp = ids[i]; ids[i] = ids[n - 1 - i]; ids[n - 1 - i] = tmp; }
}

uint32_t lmf_sample(lmf_sampler *s, float *logits, const uint32_t *history, uint32_t n_history)
{
    uint32_t V = s->vocab_size, i, n = 0, top;
    float max, sum = 0.0f, inv_temp, cutoff = 0.0f, mass, r, cum;
    for (i = 0; i < s->p.n_banned; i++)
        if (s->p.banned[i] < V) logits[s->p.banned[i]] = NEG_HUGE;
    if (s->p.repeat_penalty != 1.0f && s->p.repeat_penalty > 0.0f) penalize_repeats(s, logits, history, n_history);
    top = argmax(logits, V);
    if (s->p.temperature <= 0.0f) return top;

    /* softmax(logits / T) */
    inv_temp = 1.0f / s->p.temperature;
    max = logits[top];
    for (i = 0; i < V; i++) {
        s->probs[i] = lmf_expf((logits[i] - max) * inv_temp);
        sum += s->probs[i];
    }
    for (i = 0; i < V; i++) s->probs[i] /= sum;

    /* candidates: with top-p alone, tokens below (1-p)/(V-1) can never be in
     * the nucleus (llama2.c's shortcut), so they are not sorted */
    if (s->p.top_k == 0 && s->p.top_p < 1.0f && V > 1) cutoff = (1.0f - s->p.top_p) / (float)(V - 1);
    for (i = 0; i < V; i++)
        if (s->probs[i] > 0.0f && s->probs[i] >= cutoff) s->order[n++] = i;
    if (n == 0) return top;
    sort_by_rank(s->probs, s->order, n);
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;
    mass = 0.0f;
    for (i = 0; i < n; i++) {
        mass += s->probs[s->order[i]];
        if (s->p.top_p < 1.0f && mass > s->p.top_p) { n = i + 1; break; }
    }
    r = random_unit(s) * mass;
    cum = 0.0f;
    for (i = 0; i < n; i++) {
        cum += s->probs[s->order[i]];
        if (r < cum) return s->order[i];
    }
    return s->order[n - 1]; /* rounding left r just past the last sum */
}
