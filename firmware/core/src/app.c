/* The program around the core: parses a job from argv, opens the blob, runs
 * prompt + generation or teacher-forced scoring, and writes text, JSON or raw
 * logits. Shared by the host executable and the QEMU image so that both print
 * the same bytes for the same job. */
#include "lmf/app.h"
#include "lmf/blob.h"
#include "lmf/fmt.h"
#include "lmf/lm.h"
#include "lmf/sampler.h"
#include "lmf/tokenizer.h"

#include <string.h>

static const char usage[] =
    "usage: lmf-run [options]\n"
    "  -p, --prompt TEXT        prompt (default: empty, i.e. BOS only)\n"
    "      --prompt-hex HEX     the prompt as hex bytes (any bytes, even invalid UTF-8)\n"
    "  -n, --steps N            tokens to generate (default 256; stops early at end of text or context)\n"
    "  -t, --temp T             temperature, 0 = greedy (default 0)\n"
    "  -k, --top-k K            keep the K likeliest tokens (default 0 = off)\n"
    "      --top-p P            nucleus sampling threshold (default 0.9; 1 = off)\n"
    "  -s, --seed S             random seed (default 42)\n"
    "      --repeat-penalty R   divide repeated tokens' logits by R (default 1 = off)\n"
    "      --repeat-window W    recent tokens the penalty looks at (default 64)\n"
    "      --ban ID[,ID...]     never sample these token ids (at most 16)\n"
    "      --ctx N              context length (default: the model's, or what fits in RAM)\n"
    "      --truncate-prompt    a prompt longer than the context keeps BOS and its end,\n"
    "                           leaving room for -n tokens (at most half the context)\n"
    "      --tokens LIST        score token ids instead of generating: ids separated by ',',\n"
    "                           sequences by ';' (the state restarts for each)\n"
    "      --json               print one JSON object with ids, text and stats\n"
    "      --show-unk           print <unk> as U+FFFD in the text (it has no bytes of its own)\n"
    "      --logits             write each position's logits (f32 little-endian) to stdout\n"
    "      --target-logits      with --tokens: write only the logit of the next id of each position\n"
    "                           (f32 little-endian; none for a sequence's last position)\n"
    "      --no-crc             skip the blob's CRC check\n"
    "      --info               print the model's config and the RAM plan for --ctx as JSON\n";

#define MAX_HEX_PROMPT 1024

typedef struct job {
    const char *prompt;
    size_t prompt_len;
    char hex_prompt[MAX_HEX_PROMPT];
    uint32_t steps, ctx;
    const char *tokens;
    int json, logits, target_logits, check_crc, info, show_unk, truncate_prompt;
    lmf_sampler_params sampling;
} job;

static void emit(const lmf_port *port, const void *data, size_t len) { port->write_out(port->ctx, (const char *)data, len); }
static void emit_str(const lmf_port *port, const char *s) { emit(port, s, strlen(s)); }

static void say(const lmf_port *port, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    n = lmf_vfmt(line, sizeof line, fmt, ap);
    va_end(ap);
    port->write_err(port->ctx, line, n);
}

static void emitf(const lmf_port *port, const char *fmt, ...)
{
    char line[160];
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    n = lmf_vfmt(line, sizeof line, fmt, ap);
    va_end(ap);
    emit(port, line, n);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int parse_hex_prompt(job *j, const char *s)
{
    size_t n = 0;
    if (!s) return -1;
    for (; s[0] && s[1]; s += 2) {
        int hi = hex_digit(s[0]), lo = hex_digit(s[1]);
        if (hi < 0 || lo < 0 || n == MAX_HEX_PROMPT) return -1;
        j->hex_prompt[n++] = (char)(hi << 4 | lo);
    }
    if (*s) return -1;
    j->prompt = j->hex_prompt;
    j->prompt_len = n;
    return 0;
}

static int parse_ban_list(const char *s, lmf_sampler_params *p)
{
    char num[12];
    while (*s) {
        size_t n = 0;
        while (*s && *s != ',' && n < sizeof num - 1) num[n++] = *s++;
        num[n] = '\0';
        if (*s == ',') s++;
        if (p->n_banned == LMF_MAX_BANNED || lmf_parse_u32(num, &p->banned[p->n_banned]) != 0) return -1;
        p->n_banned++;
    }
    return 0;
}

static int parse_args(job *j, int argc, char **argv, const lmf_port *port)
{
    int i;
    memset(j, 0, sizeof *j);
    j->prompt = "";
    j->steps = 256;
    j->check_crc = 1;
    lmf_sampler_defaults(&j->sampling);
    j->sampling.temperature = 0.0f;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0, takes_value = 1;
        if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { j->prompt = v ? v : (bad = 1, ""); j->prompt_len = strlen(j->prompt); }
        else if (!strcmp(a, "--prompt-hex")) bad = parse_hex_prompt(j, v);
        else if (!strcmp(a, "-n") || !strcmp(a, "--steps")) bad = lmf_parse_u32(v, &j->steps);
        else if (!strcmp(a, "-t") || !strcmp(a, "--temp")) bad = lmf_parse_decimal(v, &j->sampling.temperature) || j->sampling.temperature < 0.0f;
        else if (!strcmp(a, "-k") || !strcmp(a, "--top-k")) bad = lmf_parse_u32(v, &j->sampling.top_k);
        else if (!strcmp(a, "--top-p")) bad = lmf_parse_decimal(v, &j->sampling.top_p) || j->sampling.top_p <= 0.0f || j->sampling.top_p > 1.0f;
        else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) { uint32_t seed = 0; bad = lmf_parse_u32(v, &seed); j->sampling.seed = seed; }
        else if (!strcmp(a, "--repeat-penalty")) bad = lmf_parse_decimal(v, &j->sampling.repeat_penalty) || j->sampling.repeat_penalty <= 0.0f;
        else if (!strcmp(a, "--repeat-window")) bad = lmf_parse_u32(v, &j->sampling.repeat_window);
        else if (!strcmp(a, "--ban")) bad = !v || parse_ban_list(v, &j->sampling);
        else if (!strcmp(a, "--ctx")) bad = lmf_parse_u32(v, &j->ctx);
        else if (!strcmp(a, "--tokens")) j->tokens = v ? v : (bad = 1, "");
        else {
            takes_value = 0;
            if (!strcmp(a, "--json")) j->json = 1;
            else if (!strcmp(a, "--show-unk")) j->show_unk = 1;
            else if (!strcmp(a, "--logits")) j->logits = 1;
            else if (!strcmp(a, "--target-logits")) j->target_logits = 1;
            else if (!strcmp(a, "--no-crc")) j->check_crc = 0;
            else if (!strcmp(a, "--info")) j->info = 1;
            else if (!strcmp(a, "--truncate-prompt")) j->truncate_prompt = 1;
            else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { port->write_out(port->ctx, usage, sizeof usage - 1); return 1; }
            else { say(port, "lmf-run: unknown option '%s'\n%s", a, usage); return -1; }
        }
        if (bad) { say(port, "lmf-run: option %s needs a valid value (see --help)\n", a); return -1; }
        i += takes_value;
    }
    return 0;
}

/* s[0..n) as the inside of a JSON string. Bytes >= 0x80 pass through: the
 * reader decodes UTF-8 (a character cut by the step limit becomes U+FFFD). */
static void json_string_body(const lmf_port *port, const uint8_t *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') { char e[2] = {'\\', (char)c}; emit(port, e, 2); }
        else if (c == '\n') emit_str(port, "\\n");
        else if (c < 0x20 || c == 0x7F) emitf(port, "\\u%04x", c);
        else emit(port, &c, 1);
    }
}

static void json_ids(const lmf_port *port, const char *name, const uint32_t *ids, uint32_t n)
{
    uint32_t i;
    emitf(port, "\"%s\":[", name);
    for (i = 0; i < n; i++) emitf(port, i ? ",%u" : "%u", ids[i]);
    emit_str(port, "]");
}

typedef struct run {
    const lmf_port *port;
    const lmf_blob *blob;
    lmf_lm state;        /* the model's state, whatever its architecture */
    uint32_t *ids;       /* prompt then generated tokens */
    uint32_t n_prompt;
    uint32_t prompt_dropped; /* tokens --truncate-prompt cut from the prompt's start */
} run;

static void write_logits(const run *r, const float *logits)
{
    emit(r->port, logits, (size_t)r->blob->cfg.vocab_size * 4);
}

static uint32_t cycles(const lmf_port *port) { return port->cycle_count ? port->cycle_count(port->ctx) : 0; }

/* Teacher-forced scoring: forward every id of every sequence, printing logits
 * (whole rows, or with --target-logits only the one a scorer of perplexity
 * needs: 4 bytes a position instead of 4 x vocabulary). */
static int score_sequences(run *r, const job *j)
{
    const char *s = j->tokens;
    while (*s) {
        uint32_t n = 0, pos;
        while (*s && *s != ';') {
            uint32_t v = 0;
            int digits = 0;
            while (*s >= '0' && *s <= '9') { v = v * 10 + (uint32_t)(*s++ - '0'); digits++; }
            if (!digits || v >= r->blob->cfg.vocab_size) { say(r->port, "lmf-run: --tokens holds a bad or out-of-vocabulary id\n"); return 2; }
            if (n == r->state.ctx) { say(r->port, "lmf-run: a --tokens sequence is longer than the context (%u)\n", r->state.ctx); return 2; }
            r->ids[n++] = v;
            if (*s == ',') s++;
        }
        if (*s == ';') s++;
        for (pos = 0; pos < n; pos++) {
            const float *logits = lmf_lm_forward(&r->state, r->ids[pos], pos);
            if (j->logits) write_logits(r, logits);
            if (j->target_logits && pos + 1 < n) emit(r->port, &logits[r->ids[pos + 1]], 4);
        }
    }
    return 0;
}

static int generate(run *r, const job *j, uint8_t *sampler_mem)
{
    const lmf_tokenizer *tok = &r->blob->tok;
    lmf_sampler sampler;
    uint32_t n_prompt = r->n_prompt, n = n_prompt, pos, token, gen = 0, forwards = 0, c0;

    lmf_sampler_init(&sampler, &j->sampling, r->blob->cfg.vocab_size, sampler_mem);
    token = r->ids[0];
    c0 = cycles(r->port);
    for (pos = 0; pos < r->state.ctx; pos++) {
        const float *logits;
        uint32_t next, len;
        const uint8_t *piece;
        if (pos + 1 >= n_prompt && gen == j->steps) break; /* no forward whose logits go unused */
        logits = lmf_lm_forward(&r->state, token, pos);
        forwards++;
        if (j->logits) write_logits(r, logits);
        if (pos + 1 < n_prompt) {
            next = r->ids[pos + 1];
        } else {
            next = lmf_sample(&sampler, r->state.logits, r->ids, n);
            gen++;
            r->ids[n++] = next;
            if (next == tok->bos_id || next == tok->eos_id) break;
            piece = lmf_decode(tok, token, next, &len);
            if (j->show_unk && next == tok->unk_id) piece = (const uint8_t *)"\xEF\xBF\xBD", len = 3; /* U+FFFD */
            if (!j->json && !j->logits) emit(r->port, piece, len);
        }
        token = next;
    }
    c0 = cycles(r->port) - c0;
    if (j->json) {
        uint32_t i, prev;
        emit_str(r->port, "{");
        json_ids(r->port, "prompt_tokens", r->ids, n_prompt);
        emit_str(r->port, ",");
        json_ids(r->port, "generated_tokens", r->ids + n_prompt, n - n_prompt);
        emit_str(r->port, ",\"text\":");
        /* the generated text, decoded again piece by piece into one string */
        emit(r->port, "\"", 1);
        for (i = n_prompt, prev = r->ids[n_prompt - 1]; i < n; prev = r->ids[i++]) {
            uint32_t len;
            const uint8_t *piece = lmf_decode(tok, prev, r->ids[i], &len);
            if (r->ids[i] == tok->bos_id || r->ids[i] == tok->eos_id) break;
            json_string_body(r->port, piece, len);
        }
        emit(r->port, "\"", 1);
        emitf(r->port, ",\"ctx\":%u}\n", r->state.ctx);
    }
    say(r->port, "lmf: prompt_tokens=%u generated_tokens=%u forwards=%u ctx=%u", n_prompt, gen, forwards, r->state.ctx);
    if (r->prompt_dropped) say(r->port, " prompt_dropped=%u", r->prompt_dropped);
    if (r->port->cycle_count) say(r->port, " cycles=%u", c0);
    say(r->port, "\n");
    return 0;
}

/* Encodes the prompt using the not yet initialised state memory as scratch
 * (BPE starts from one token per byte), then keeps the ids if they fit. */
static int encode_prompt(run *r, const job *j, uint8_t *scratch, size_t scratch_bytes, uint32_t ctx)
{
    size_t len = j->prompt_len;
    uint32_t cap = scratch_bytes / 4 > 0xFFFFFFF ? 0xFFFFFFF : (uint32_t)(scratch_bytes / 4);
    uint32_t *tmp = (uint32_t *)(void *)scratch;
    int32_t n = lmf_encode(&r->blob->tok, j->prompt, len, 1, tmp, cap);
    uint32_t max_ctx = r->blob->cfg.seq_len;
    if (n < 0) {
        say(r->port, "lmf-run: the prompt is too long to encode in the RAM left beside a context of %u tokens: shorten it\n", ctx);
        return -1;
    }
    if ((uint32_t)n > ctx && j->truncate_prompt) {
        /* keep BOS and the prompt's end, leaving room for the reply */
        uint32_t room = j->steps < ctx / 2 ? j->steps : ctx / 2;
        uint32_t keep = ctx - room; /* at least 1: BOS */
        memmove(tmp + 1, tmp + (uint32_t)n - (keep - 1), (size_t)(keep - 1) * 4);
        r->prompt_dropped = (uint32_t)n - keep;
        n = (int32_t)keep;
    }
    if ((uint32_t)n > ctx) {
        /* advice that can be followed: --ctx only helps below the model's maximum */
        if (ctx == max_ctx)
            say(r->port, "lmf-run: the prompt is %u tokens, longer than the model's context of %u tokens (its maximum): shorten it, or pass --truncate-prompt to keep its end\n", (uint32_t)n, ctx);
        else if (j->ctx)
            say(r->port, "lmf-run: the prompt is %u tokens, longer than --ctx %u: raise --ctx (the model allows up to %u), or pass --truncate-prompt to keep its end\n", (uint32_t)n, ctx, max_ctx);
        else
            say(r->port, "lmf-run: the prompt is %u tokens, longer than the %u-token context that fits in RAM: shorten it, or pass --truncate-prompt to keep its end\n", (uint32_t)n, ctx);
        return -1;
    }
    if (n == 0) { say(r->port, "lmf-run: this vocabulary has no BOS token: give a prompt\n"); return -1; }
    memcpy(r->ids, tmp, (size_t)n * 4);
    r->n_prompt = (uint32_t)n;
    return 0;
}


/* The RAM the driver carves from its arena for a context of ctx tokens:
 * sampler scratch, the token list, the decoder state. */

static void print_info(const lmf_port *port, const lmf_blob *b, uint32_t ctx)
{
    const lmf_config *c = &b->cfg;
    size_t state = lmf_lm_bytes(b, ctx);
    if (b->arch == LMF_ARCH_NGRAM)
        emitf(port, "{\"arch\":\"ngram\",\"order\":%u,", b->ngram.order);
    else
        emitf(port, "{\"dim\":%u,\"hidden_dim\":%u,\"n_layers\":%u,\"n_heads\":%u,\"n_kv_heads\":%u,",
              c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads);
    emitf(port, "\"vocab_size\":%u,\"seq_len\":%u,\"group_size\":%u,\"blob_bytes\":%u,\"ctx\":%u,",
          c->vocab_size, c->seq_len, c->group_size, b->size, ctx);
    emitf(port, "\"state_bytes\":%lu,\"sampler_bytes\":%lu,\"token_bytes\":%lu,\"arena_bytes\":%lu}\n",
          (unsigned long)state, (unsigned long)lmf_run_sampler_bytes(b), (unsigned long)lmf_run_token_bytes(ctx),
          (unsigned long)lmf_run_bytes(b, ctx));
}

int lmf_app_main(int argc, char **argv, const uint8_t *blob_bytes, size_t blob_size,
                 uint8_t *arena, size_t arena_size, const lmf_port *port)
{
    job j;
    lmf_blob blob;
    lmf_error err;
    run r;
    size_t sampler_bytes, fixed;
    uint32_t ctx;
    int rc = parse_args(&j, argc, argv, port);
    if (rc != 0) return rc < 0 ? 2 : 0;
    if (lmf_blob_open(&blob, blob_bytes, blob_size, j.check_crc, &err) != 0) {
        say(port, "lmf-run: %s\n", err.msg);
        return 3;
    }
    {
        uint32_t i;
        for (i = 0; i < j.sampling.n_banned; i++)
            if (j.sampling.banned[i] >= blob.cfg.vocab_size) {
                say(port, "lmf-run: --ban id %u is outside the vocabulary: ids go from 0 to %u\n", j.sampling.banned[i], blob.cfg.vocab_size - 1);
                return 2;
            }
    }
    /* arena: sampler scratch, the token list, then the decoder state (lm.h) */
    if (j.ctx > blob.cfg.seq_len) {
        say(port, "lmf-run: --ctx %u is longer than the model's %u positions\n", j.ctx, blob.cfg.seq_len);
        return 2;
    }
    ctx = j.ctx ? j.ctx : blob.cfg.seq_len;
    if (j.info) { print_info(port, &blob, ctx); return 0; }
    if (!j.ctx && lmf_run_bytes(&blob, ctx) > arena_size) ctx = lmf_run_max_ctx(&blob, arena_size); /* the default shrinks to fit */
    sampler_bytes = lmf_run_sampler_bytes(&blob);
    fixed = sampler_bytes + lmf_run_token_bytes(ctx);
    if (fixed > arena_size) { say(port, "lmf-run: not enough RAM for a context of %u tokens\n", ctx); return 4; }
    memset(&r, 0, sizeof r);
    r.port = port;
    r.blob = &blob;
    r.ids = (uint32_t *)(void *)(arena + sampler_bytes);
    if (ctx != 0 && !j.tokens && encode_prompt(&r, &j, arena + fixed, arena_size - fixed, ctx) != 0) return 2;
    if (ctx == 0 || lmf_lm_init(&r.state, &blob, arena + fixed, arena_size - fixed, ctx, &err) != 0) {
        say(port, "lmf-run: %s\n", ctx ? err.msg : "not enough RAM for any context");
        return 4;
    }
    return j.tokens ? score_sequences(&r, &j) : generate(&r, &j, arena);
}
