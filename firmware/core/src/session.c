/* The board's serial session: see session.h and docs/protocol.md. */
#include "lmf/session.h"
#include "lmf/fmt.h"
#include "lmf/model_upload.h"
#include "lmf/tokenizer.h"

#include <string.h>

#define PARTIAL_FRAME_TIMEOUT_US 1000000u
#define CTRL_C 0x03

static const lmf_settings default_settings = {0.8f, 0.9f, 1.0f, 0, 256, 42, 64, {0}, 0};


/* ---- output -------------------------------------------------------------- */

static void send_raw(lmf_session *s, const void *data, size_t len)
{
    if (s->io->write(s->io->ctx, (const uint8_t *)data, len) != 0) {
        s->write_failures++;
        s->tx_stalled = 1;
        s->g.active = 0; /* nobody is reading: stop, and drop the rest */
    } else {
        s->tx_stalled = 0;
    }
    s->unframed = 1;
}

/* The echo of a typed byte. A host that writes but does not read would
 * otherwise make every byte wait out the port's write deadline: while the
 * last write failed, echo is dropped (line ends and replies still try, and
 * the first that goes through brings echo back). */
static void send_echo(lmf_session *s, uint8_t b)
{
    if (!s->tx_stalled) send_raw(s, &b, 1);
}

static void send_frame(lmf_session *s, uint8_t type, uint16_t id, const uint8_t *body, size_t len)
{
    uint8_t *m = s->msg;
    if (len > LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER) len = LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER;
    m[0] = type;
    m[1] = 0;
    lmf_put_u16(m + 2, id);
    if (len && body != m + LMF_PROTO_HEADER) memmove(m + LMF_PROTO_HEADER, body, len);
    /* console text (a banner, an echo) has no 0x00 after it: end it, so the
     * host does not read it as the start of this frame */
    if (s->unframed) send_raw(s, "", 1);
    send_raw(s, s->tx, lmf_frame_encode(m, LMF_PROTO_HEADER + len, s->tx));
    s->unframed = 0;
}

static void send_error(lmf_session *s, uint16_t id, uint16_t code, const char *text)
{
    uint8_t *body = s->msg + LMF_PROTO_HEADER;
    size_t n = strlen(text);
    if (n > LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER - 2) n = LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER - 2;
    lmf_put_u16(body, code);
    memcpy(body + 2, text, n);
    send_frame(s, LMF_MSG_ERROR, id, body, 2 + n);
}

/* Console text: whole UTF-8 characters only (U+FFFD for broken ones), no
 * control characters but newline (sent as CR LF) and tab. */
static const uint8_t replacement[3] = {0xEF, 0xBF, 0xBD};

static void console_put(lmf_session *s, const uint8_t *p, size_t n) { send_raw(s, p, n); }

static void console_str(lmf_session *s, const char *text) { send_raw(s, text, strlen(text)); }

static void console_printf(lmf_session *s, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    n = lmf_vfmt(buf, sizeof buf, fmt, ap);
    va_end(ap);
    send_raw(s, buf, n);
}

/* Is b a valid second byte after lead byte `lead`? (no overlongs, surrogates or > U+10FFFF) */
static int valid_second(uint8_t lead, uint8_t b)
{
    if ((b & 0xC0) != 0x80) return 0;
    if (lead == 0xE0) return b >= 0xA0;
    if (lead == 0xED) return b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90;
    if (lead == 0xF4) return b <= 0x8F;
    return 1;
}

static void utf8_flush(lmf_session *s)
{
    if (s->utf8_need) console_put(s, replacement, 3);
    s->utf8_have = s->utf8_need = 0;
}

static void console_byte(lmf_session *s, uint8_t b)
{
    if (s->utf8_need) {
        int ok = s->utf8_have == 1 ? valid_second(s->utf8[0], b) : (b & 0xC0) == 0x80;
        if (ok) {
            s->utf8[s->utf8_have++] = b;
            if (--s->utf8_need == 0) {
                console_put(s, s->utf8, s->utf8_have);
                s->utf8_have = 0;
            }
            return;
        }
        utf8_flush(s); /* broken sequence: mark it, then read b afresh */
    }
    if (b == '\n') console_put(s, (const uint8_t *)"\r\n", 2);
    else if (b == '\t' || (b >= 0x20 && b < 0x7F)) console_put(s, &b, 1);
    else if (b < 0x80) return; /* other control characters */
    else if (b >= 0xC2 && b <= 0xDF) { s->utf8[0] = b; s->utf8_have = 1; s->utf8_need = 1; }
    else if (b >= 0xE0 && b <= 0xEF) { s->utf8[0] = b; s->utf8_have = 1; s->utf8_need = 2; }
    else if (b >= 0xF0 && b <= 0xF4) { s->utf8[0] = b; s->utf8_have = 1; s->utf8_need = 3; }
    else console_put(s, replacement, 3);
}

static void console_text(lmf_session *s, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) console_byte(s, p[i]);
}

static void console_prompt(lmf_session *s) { console_str(s, "> "); }

/* ---- set-up -------------------------------------------------------------- */

int lmf_session_init(lmf_session *s, const lmf_serial_io *io, const lmf_blob *blob, const char *no_model_reason,
                     void *arena, size_t arena_bytes, uint32_t ctx, const char *board_name, lmf_error *err)
{
    uint8_t *a = (uint8_t *)arena;
    size_t fixed;
    memset(s, 0, sizeof *s);
    s->io = io;
    s->board_name = board_name;
    s->settings = default_settings;
    s->no_model_reason = no_model_reason ? no_model_reason : "no model on this board: flash one with `lmflash flash --model MODEL.blob`";
    lmf_frame_decoder_reset(&s->rx);
    if (!blob) return 0;
    if (ctx == 0) ctx = lmf_run_max_ctx(blob, arena_bytes);
    if (ctx == 0 || lmf_run_bytes(blob, ctx) > arena_bytes)
        return lmf_fail(err, "the model needs more RAM than the %lu bytes available, even for a short context", (unsigned long)arena_bytes);
    fixed = lmf_run_sampler_bytes(blob);
    s->sampler.probs = (float *)arena; /* lmf_sampler_init sets these again per reply */
    s->ids = (uint32_t *)(void *)(a + fixed);
    fixed += lmf_run_token_bytes(ctx);
    if (lmf_lm_init(&s->state, blob, a + fixed, arena_bytes - fixed, ctx, err) != 0) return -1;
    s->scratch = a + fixed;
    s->scratch_bytes = arena_bytes - fixed;
    s->blob = blob;
    return 0;
}

void lmf_session_banner(lmf_session *s)
{
    console_printf(s, "\r\nlmflash %s ready", s->board_name);
    if (s->blob && s->blob->arch == LMF_ARCH_NGRAM) {
        console_printf(s, ": %u-gram model, vocab %u, context %u.", s->blob->ngram.order, s->blob->cfg.vocab_size, s->state.ctx);
    } else if (s->blob) {
        const lmf_config *c = &s->blob->cfg;
        console_printf(s, ": model dim %u, %u layers, vocab %u, context %u.", c->dim, c->n_layers, c->vocab_size, s->state.ctx);
    } else {
        console_printf(s, ", but %s.", s->no_model_reason);
    }
    console_str(s, " Type a prompt, or /help.\r\n");
    console_prompt(s);
}

/* ---- generation ---------------------------------------------------------- */

/* Encodes the prompt into s->ids, using the state memory as scratch (BPE
 * starts with a token per byte). Returns the token count, 0 if too long. */
static uint32_t encode_prompt(lmf_session *s, const uint8_t *text, size_t len)
{
    uint32_t cap = s->scratch_bytes / 4 > 0x7FFFFFFu ? 0x7FFFFFFu : (uint32_t)(s->scratch_bytes / 4);
    uint32_t *tmp = (uint32_t *)(void *)s->scratch;
    int32_t n = lmf_encode(&s->blob->tok, (const char *)text, len, 1, tmp, cap);
    if (n <= 0 || (uint32_t)n > s->state.ctx) return 0;
    memcpy(s->ids, tmp, (size_t)n * 4);
    return (uint32_t)n;
}

static void start_generation(lmf_session *s, int framed, uint16_t id, const lmf_settings *st, uint32_t n_prompt)
{
    lmf_sampler_params p;
    lmf_sampler_defaults(&p);
    p.temperature = st->temperature;
    p.top_p = st->top_p;
    p.top_k = st->top_k;
    p.repeat_penalty = st->repeat_penalty;
    p.repeat_window = st->repeat_window;
    p.seed = st->seed;
    memcpy(p.banned, st->banned, sizeof p.banned);
    p.n_banned = st->n_banned;
    lmf_sampler_init(&s->sampler, &p, s->blob->cfg.vocab_size, (uint8_t *)s->sampler.probs);
    if (!framed && s->console_rng) s->sampler.rng = s->console_rng;
    memset(&s->g, 0, sizeof s->g);
    s->g.active = 1;
    s->g.framed = framed;
    s->g.id = id;
    s->g.n_prompt = s->g.n = n_prompt;
    s->g.max = st->max_tokens;
    s->g.token = s->ids[0];
    s->g.start_us = s->io->now_us(s->io->ctx);
    s->generations++;
}

static void finish_generation(lmf_session *s, uint8_t reason)
{
    lmf_generation *g = &s->g;
    uint32_t now = s->io->now_us(s->io->ctx), total = now - g->start_us;
    g->active = 0;
    if (g->framed) {
        uint8_t *body = s->msg + LMF_PROTO_HEADER;
        lmf_put_u32(body, g->n_prompt);
        lmf_put_u32(body + 4, g->gen);
        lmf_put_u32(body + 8, g->gen ? g->first_us - g->start_us : 0);
        lmf_put_u32(body + 12, total);
        body[16] = reason;
        send_frame(s, LMF_MSG_DONE, g->id, body, 17);
        return;
    }
    s->console_rng = s->sampler.rng;
    utf8_flush(s);
    {
        /* tokens per second to one decimal, in integers */
        uint32_t tenths = total ? (uint32_t)(((uint64_t)g->gen * 10000000u) / total) : 0;
        console_printf(s, "\r\n[%u tokens, %u.%u tok/s%s]\r\n", g->gen, tenths / 10, tenths % 10,
                       reason == LMF_DONE_CANCELLED ? ", stopped" : reason == LMF_DONE_CONTEXT_FULL ? ", context full" : "");
    }
    console_prompt(s);
}

static void emit_token(lmf_session *s, uint32_t prev, uint32_t next)
{
    uint32_t len;
    const uint8_t *piece = lmf_decode(&s->blob->tok, prev, next, &len);
    if (s->g.framed) {
        uint8_t *body = s->msg + LMF_PROTO_HEADER;
        if (len > LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER - 4) len = LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER - 4;
        lmf_put_u32(body, next);
        memcpy(body + 4, piece, len);
        send_frame(s, LMF_MSG_TOKEN, s->g.id, body, 4 + len);
    } else if (next == s->blob->tok.unk_id) {
        utf8_flush(s);
        console_put(s, replacement, 3); /* <unk> has no bytes: show that something was there */
    } else {
        console_text(s, piece, len);
    }
}

int lmf_session_busy(const lmf_session *s) { return s->g.active; }

/* One forward pass: the next prompt token, or one generated token. The stop
 * rules are lmf-run's (app.c), so a board and the native core agree. */
void lmf_session_step(lmf_session *s)
{
    lmf_generation *g = &s->g;
    const lmf_tokenizer *tok;
    uint32_t next;
    if (!g->active) return;
    tok = &s->blob->tok;
    if (g->pos >= s->state.ctx) { finish_generation(s, LMF_DONE_CONTEXT_FULL); return; }
    if (g->pos + 1 >= g->n_prompt && g->gen == g->max) { finish_generation(s, LMF_DONE_MAX_TOKENS); return; }
    lmf_lm_forward(&s->state, g->token, g->pos);
    if (g->pos + 1 < g->n_prompt) {
        next = s->ids[g->pos + 1];
    } else {
        next = lmf_sample(&s->sampler, s->state.logits, s->ids, g->n);
        if (g->gen++ == 0) g->first_us = s->io->now_us(s->io->ctx);
        s->ids[g->n++] = next;
        emit_token(s, g->token, next);
        if (!g->active) return; /* the line stopped taking output */
        if (next == tok->bos_id || next == tok->eos_id) { finish_generation(s, LMF_DONE_END_OF_TEXT); return; }
    }
    g->token = next;
    g->pos++;
}

/* ---- framed mode --------------------------------------------------------- */

static float get_f32(const uint8_t *p)
{
    uint32_t u = lmf_get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void handle_hello(lmf_session *s, uint16_t id, const uint8_t *body, size_t len)
{
    uint8_t *out = s->msg + LMF_PROTO_HEADER;
    size_t name_len = strlen(s->board_name);
    if (len < 6 || memcmp(body, "LMFP", 4) != 0) { send_error(s, id, LMF_ERR_BAD_REQUEST, "HELLO needs the LMFP magic and a version"); return; }
    if (body[4] != LMF_PROTO_MAJOR) {
        char text[200];
        lmf_fmt(text, sizeof text,
                "host speaks protocol %u.%u, this firmware %u.%u: update the firmware with `lmflash flash`, or use an lmflash that speaks %u.x",
                body[4], body[5], LMF_PROTO_MAJOR, LMF_PROTO_MINOR, LMF_PROTO_MAJOR);
        send_error(s, id, LMF_ERR_VERSION, text);
        return;
    }
    if (s->g.active && !s->g.framed) s->g.active = 0; /* a program takes over from a person */
    s->framed = 1;
    memcpy(out, "LMFP", 4);
    out[4] = LMF_PROTO_MAJOR;
    out[5] = LMF_PROTO_MINOR;
    lmf_put_u16(out + 6, LMF_PROTO_MAX_PAYLOAD);
    if (name_len > 200) name_len = 200;
    memcpy(out + 8, s->board_name, name_len);
    send_frame(s, LMF_MSG_HELLO_REPLY, id, out, 8 + name_len);
}

static size_t info_json(lmf_session *s, char *out, size_t cap)
{
    size_t n = lmf_fmt(out, cap, "{\"protocol\":\"%u.%u\",\"board\":\"%s\",", LMF_PROTO_MAJOR, LMF_PROTO_MINOR, s->board_name);
    if (s->blob && s->blob->arch == LMF_ARCH_NGRAM) {
        uint32_t k;
        n += lmf_fmt(out + n, cap - n, "\"model\":{\"arch\":\"ngram\",\"order\":%u,\"vocab_size\":%u,\"seq_len\":%u,\"blob_bytes\":%u,\"ngrams\":[",
                     s->blob->ngram.order, s->blob->cfg.vocab_size, s->blob->cfg.seq_len, s->blob->size);
        for (k = 0; k < s->blob->ngram.order; k++) n += lmf_fmt(out + n, cap - n, k ? ",%u" : "%u", s->blob->ngram.level[k].count);
        n += lmf_fmt(out + n, cap - n, "]},");
        n += lmf_fmt(out + n, cap - n, "\"ctx\":%u,\"ram_bytes\":%lu,", s->state.ctx,
                     (unsigned long)lmf_run_bytes(s->blob, s->state.ctx));
    } else if (s->blob) {
        const lmf_config *c = &s->blob->cfg;
        n += lmf_fmt(out + n, cap - n,
                     "\"model\":{\"dim\":%u,\"hidden_dim\":%u,\"n_layers\":%u,\"n_heads\":%u,\"n_kv_heads\":%u,\"vocab_size\":%u,\"seq_len\":%u,\"group_size\":%u,\"blob_bytes\":%u},",
                     c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len, c->group_size, s->blob->size);
        n += lmf_fmt(out + n, cap - n, "\"ctx\":%u,\"ram_bytes\":%lu,", s->state.ctx,
                     (unsigned long)lmf_run_bytes(s->blob, s->state.ctx));
    } else {
        n += lmf_fmt(out + n, cap - n, "\"model\":null,\"no_model_reason\":\"%s\",", s->no_model_reason);
    }
    if (s->blob && s->blob->tok.unk_id != LMF_NONE) n += lmf_fmt(out + n, cap - n, "\"unk_id\":%u,", s->blob->tok.unk_id); /* 1.2 */
    if (s->port_info && n + 1 < cap) n += s->port_info(s->port_info_ctx, out + n, cap - n, 1);
    n += lmf_fmt(out + n, cap - n, "\"generations\":%u,\"rx_errors\":%u,\"write_failures\":%u}", s->generations, s->rx.errors,
                 s->write_failures);
    return n;
}

/* The first banned id outside the vocabulary, or -1. */
static int64_t banned_outside(const lmf_session *s, const lmf_settings *st)
{
    uint32_t i;
    for (i = 0; i < st->n_banned; i++)
        if (st->banned[i] >= s->blob->cfg.vocab_size) return st->banned[i];
    return -1;
}

/* 1.2's sampling block after the fixed fields (flags bit 0): repeat window
 * and banned ids. Returns the bytes it took, or 0 after sending an ERROR. */
static size_t read_sampling_block(lmf_session *s, uint16_t id, const uint8_t *p, size_t len, lmf_settings *st)
{
    uint32_t n, i;
    int64_t bad;
    if (len < 8) { send_error(s, id, LMF_ERR_BAD_REQUEST, "GENERATE's sampling block is shorter than its 8 bytes"); return 0; }
    st->repeat_window = lmf_get_u32(p);
    n = lmf_get_u32(p + 4);
    if (n > LMF_MAX_BANNED) {
        char text[80];
        lmf_fmt(text, sizeof text, "at most %u banned token ids (got %u)", LMF_MAX_BANNED, n);
        send_error(s, id, LMF_ERR_BAD_REQUEST, text);
        return 0;
    }
    if (len < 8 + 4 * (size_t)n) { send_error(s, id, LMF_ERR_BAD_REQUEST, "GENERATE's banned ids are cut short"); return 0; }
    for (i = 0; i < n; i++) st->banned[i] = lmf_get_u32(p + 8 + 4 * i);
    st->n_banned = n;
    if ((bad = banned_outside(s, st)) >= 0) {
        char text[120];
        lmf_fmt(text, sizeof text, "banned token id %u is outside the vocabulary: ids go from 0 to %u", (uint32_t)bad,
                s->blob->cfg.vocab_size - 1);
        send_error(s, id, LMF_ERR_BAD_REQUEST, text);
        return 0;
    }
    return 8 + 4 * (size_t)n;
}

static void handle_generate(lmf_session *s, uint16_t id, const uint8_t *body, size_t len)
{
    lmf_settings st = default_settings;
    uint32_t n_prompt, flags;
    size_t fixed = 28;
    if (len < 28) { send_error(s, id, LMF_ERR_BAD_REQUEST, "GENERATE body is shorter than its 28 bytes of parameters"); return; }
    if (s->g.active) { send_error(s, id, LMF_ERR_BUSY, "a reply is being generated: send CANCEL or wait for its DONE"); return; }
    if (!s->blob) { send_error(s, id, LMF_ERR_NO_MODEL, s->no_model_reason); return; }
    st.temperature = get_f32(body);
    st.top_p = get_f32(body + 4);
    st.top_k = lmf_get_u32(body + 8);
    st.repeat_penalty = get_f32(body + 12);
    st.max_tokens = lmf_get_u32(body + 16);
    st.seed = lmf_get_u32(body + 20);
    flags = lmf_get_u32(body + 24);
    if (!(st.temperature >= 0.0f && st.temperature <= 100.0f) || !(st.top_p > 0.0f && st.top_p <= 1.0f) ||
        !(st.repeat_penalty > 0.0f && st.repeat_penalty <= 100.0f)) {
        send_error(s, id, LMF_ERR_BAD_REQUEST, "sampling parameters out of range: temperature 0..100, top_p (0, 1], repeat_penalty (0, 100]");
        return;
    }
    if (flags & ~LMF_GENERATE_KNOWN_FLAGS) {
        send_error(s, id, LMF_ERR_BAD_REQUEST, "GENERATE flags this firmware does not know: update the firmware with `lmflash flash`");
        return;
    }
    if (flags & LMF_GENERATE_SAMPLING) {
        size_t took = read_sampling_block(s, id, body + 28, len - 28, &st);
        if (took == 0) return;
        fixed += took;
    }
    n_prompt = encode_prompt(s, body + fixed, len - fixed);
    if (n_prompt == 0) {
        char text[120];
        lmf_fmt(text, sizeof text, "the prompt does not fit the context of %u tokens: shorten it", s->state.ctx);
        send_error(s, id, LMF_ERR_PROMPT_TOO_LONG, text);
        return;
    }
    start_generation(s, 1, id, &st, n_prompt);
}

static void handle_frame(lmf_session *s, const uint8_t *p, size_t len)
{
    uint8_t type = p[0];
    uint16_t id = lmf_get_u16(p + 2);
    const uint8_t *body = p + LMF_PROTO_HEADER;
    size_t blen = len - LMF_PROTO_HEADER;
    switch (type) {
    case LMF_MSG_HELLO: handle_hello(s, id, body, blen); break;
    case LMF_MSG_INFO: {
        /* body bytes go straight into the frame: leave room for the header */
        size_t n = info_json(s, (char *)s->msg + LMF_PROTO_HEADER, LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER);
        send_frame(s, LMF_MSG_INFO_REPLY, id, s->msg + LMF_PROTO_HEADER, n);
        break;
    }
    case LMF_MSG_GENERATE: handle_generate(s, id, body, blen); break;
    case LMF_MSG_CANCEL: {
        uint16_t which = blen >= 2 ? lmf_get_u16(body) : 0;
        if (s->g.active && s->g.framed && (which == 0 || which == s->g.id)) finish_generation(s, LMF_DONE_CANCELLED);
        break;
    }
    case LMF_MSG_PING: send_frame(s, LMF_MSG_PONG, id, body, blen > 64 ? 64 : blen); break;
    case LMF_MSG_RESET:
        if (s->g.active) finish_generation(s, LMF_DONE_CANCELLED);
        s->settings = default_settings;
        s->console_rng = 0;
        send_frame(s, LMF_MSG_OK, id, NULL, 0);
        break;
    case LMF_MSG_CONSOLE:
        if (s->g.active) finish_generation(s, LMF_DONE_CANCELLED);
        send_frame(s, LMF_MSG_OK, id, NULL, 0);
        s->framed = 0;
        lmf_session_banner(s);
        break;
    default:
        if (s->upload && lmf_model_upload_handle(s->upload, s, type, id, body, blen)) break; /* 1.1: model upload */
        {
            char text[80];
            lmf_fmt(text, sizeof text, "unknown message type: this firmware speaks protocol %u.%u", LMF_PROTO_MAJOR, LMF_PROTO_MINOR);
            send_error(s, id, LMF_ERR_UNKNOWN_TYPE, text);
        }
    }
}

/* ---- console mode -------------------------------------------------------- */

static const char help_text[] =
    "Type a prompt and press Enter; the reply streams back.\r\n"
    "  /temp T   temperature (0 = always the likeliest token)\r\n"
    "  /topk K   sample from the K likeliest tokens (0 = off)\r\n"
    "  /topp P   nucleus sampling threshold (1 = off)\r\n"
    "  /seed S   seed the sampler\r\n"
    "  /max N    tokens per reply\r\n"
    "  /rep R [W] repetition penalty R (1 = off) over the last W tokens\r\n"
    "  /ban ID    never sample token ID (up to 16; /ban lists, /ban clear empties)\r\n"
    "  /reset    default settings\r\n"
    "  /info     model, memory and settings\r\n"
    "  Ctrl-C    stop the reply\r\n";

static void print_settings(lmf_session *s)
{
    char t[16], p[16], r[16];
    uint32_t i;
    lmf_fmt_fixed(t, sizeof t, s->settings.temperature, 2);
    lmf_fmt_fixed(p, sizeof p, s->settings.top_p, 2);
    lmf_fmt_fixed(r, sizeof r, s->settings.repeat_penalty, 2);
    console_printf(s, "temp %s, topk %u, topp %s, repeat penalty %s over %u, max %u, seed %u, banned ", t, s->settings.top_k, p, r,
                   s->settings.repeat_window, s->settings.max_tokens, s->settings.seed);
    if (s->settings.n_banned == 0) console_str(s, "none");
    for (i = 0; i < s->settings.n_banned; i++) console_printf(s, i ? ",%u" : "%u", s->settings.banned[i]);
    console_str(s, "\r\n");
}

/* `/ban` lists, `/ban clear` empties, `/ban 0` or `/ban 0,5 7` adds ids. */
static void ban_command(lmf_session *s, const char *arg)
{
    lmf_settings next = s->settings;
    while (*arg == ' ') arg++;
    if (strcmp(arg, "clear") == 0) next.n_banned = 0;
    while (*arg && strcmp(arg, "clear") != 0) {
        char num[12];
        size_t n = 0;
        uint32_t v, i;
        int known = 0;
        while (*arg && *arg != ',' && *arg != ' ' && n < sizeof num - 1) num[n++] = *arg++;
        num[n] = '\0';
        while (*arg == ',' || *arg == ' ') arg++;
        if (lmf_parse_u32(num, &v) != 0) { console_str(s, "expected token ids, e.g. /ban 0 or /ban 0,5 (or /ban clear)\r\n"); return; }
        if (!s->blob || v >= s->blob->cfg.vocab_size) {
            console_printf(s, "token id %u is outside the vocabulary: ids go from 0 to %u\r\n", v, s->blob ? s->blob->cfg.vocab_size - 1 : 0);
            return;
        }
        for (i = 0; i < next.n_banned; i++) known |= next.banned[i] == v;
        if (known) continue;
        if (next.n_banned == LMF_MAX_BANNED) { console_printf(s, "at most %u banned ids: /ban clear first\r\n", LMF_MAX_BANNED); return; }
        next.banned[next.n_banned++] = v;
    }
    s->settings = next;
    print_settings(s);
}

/* `/rep R` or `/rep R W`: repetition penalty and its window. */
static void rep_command(lmf_session *s, const char *arg)
{
    float v;
    uint32_t w = s->settings.repeat_window;
    char pen[16];
    size_t n = 0;
    while (*arg == ' ') arg++;
    while (*arg && *arg != ' ' && n < sizeof pen - 1) pen[n++] = *arg++;
    pen[n] = '\0';
    while (*arg == ' ') arg++;
    if (*arg && lmf_parse_u32(arg, &w) != 0) { console_str(s, "expected /rep PENALTY [WINDOW], e.g. /rep 1.1 64\r\n"); return; }
    if (lmf_parse_decimal(pen, &v) != 0 || v < 0.01f || v > 100.0f) { console_str(s, "expected /rep PENALTY [WINDOW]: a penalty from 0.01 to 100 (1 = off)\r\n"); return; }
    s->settings.repeat_penalty = v;
    s->settings.repeat_window = w;
    print_settings(s);
}

static int set_number(lmf_session *s, const char *arg, float lo, float hi, float *out)
{
    float v;
    if (lmf_parse_decimal(arg, &v) != 0 || v < lo || v > hi) {
        char a[16], b[16];
        lmf_fmt_fixed(a, sizeof a, lo, 2);
        lmf_fmt_fixed(b, sizeof b, hi, 2);
        console_printf(s, "expected a number from %s to %s\r\n", a, b);
        return -1;
    }
    *out = v;
    return 0;
}

static void run_command(lmf_session *s, const char *cmd)
{
    const char *arg = cmd;
    float v;
    while (*arg && *arg != ' ') arg++;
#define IS(name) ((size_t)(arg - cmd) == sizeof(name) - 1 && memcmp(cmd, name, sizeof(name) - 1) == 0)
    if (IS("/help")) console_str(s, help_text);
    else if (IS("/info")) {
        if (s->blob && s->blob->arch == LMF_ARCH_NGRAM) {
            console_printf(s, "%s: %u-gram model, vocab %u, context %u tokens\r\n", s->board_name, s->blob->ngram.order,
                           s->blob->cfg.vocab_size, s->state.ctx);
            console_printf(s, "blob %u bytes; %lu bytes of RAM\r\n", s->blob->size,
                           (unsigned long)lmf_run_bytes(s->blob, s->state.ctx));
        } else if (s->blob) {
            const lmf_config *c = &s->blob->cfg;
            console_printf(s, "%s: model dim %u, hidden %u, %u layers, %u heads (%u kv), vocab %u, trained context %u\r\n", s->board_name,
                           c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab_size, c->seq_len);
            console_printf(s, "blob %u bytes; context %u tokens, %lu bytes of RAM\r\n", s->blob->size, s->state.ctx,
                           (unsigned long)lmf_run_bytes(s->blob, s->state.ctx));
        } else {
            console_printf(s, "%s: %s\r\n", s->board_name, s->no_model_reason);
        }
        if (s->port_info) {
            char extra[320];
            send_raw(s, extra, s->port_info(s->port_info_ctx, extra, sizeof extra, 0));
        }
        print_settings(s);
    } else if (IS("/temp")) { if (set_number(s, arg, 0, 100, &v) == 0) { s->settings.temperature = v; print_settings(s); } }
    else if (IS("/topp")) { if (set_number(s, arg, 0.01f, 1, &v) == 0) { s->settings.top_p = v; print_settings(s); } }
    else if (IS("/topk")) { if (set_number(s, arg, 0, 1000000, &v) == 0) { s->settings.top_k = (uint32_t)v; print_settings(s); } }
    else if (IS("/max")) { if (set_number(s, arg, 1, 1000000, &v) == 0) { s->settings.max_tokens = (uint32_t)v; print_settings(s); } }
    else if (IS("/seed")) {
        if (set_number(s, arg, 0, 100000000, &v) == 0) { s->settings.seed = (uint32_t)v; s->console_rng = 0; print_settings(s); }
    } else if (IS("/ban")) ban_command(s, arg);
    else if (IS("/rep")) rep_command(s, arg);
    else if (IS("/reset")) { s->settings = default_settings; s->console_rng = 0; print_settings(s); }
    else console_str(s, "unknown command: /help lists them\r\n");
#undef IS
}

static void submit_line(lmf_session *s)
{
    uint32_t n_prompt;
    s->line[s->line_len] = '\0';
    console_str(s, "\r\n");
    if (s->line_cut) console_printf(s, "(the line was cut to %u bytes)\r\n", LMF_LINE_MAX - 1);
    if (s->line[0] == '/') {
        run_command(s, s->line);
    } else if (s->line_len == 0) {
        /* nothing typed */
    } else if (!s->blob) {
        console_printf(s, "%s\r\n", s->no_model_reason);
    } else if ((n_prompt = encode_prompt(s, (const uint8_t *)s->line, s->line_len)) == 0) {
        console_printf(s, "the prompt does not fit the context of %u tokens: shorten it\r\n", s->state.ctx);
    } else {
        s->line_len = 0;
        s->line_cut = 0;
        start_generation(s, 0, 0, &s->settings, n_prompt);
        return;
    }
    s->line_len = 0;
    s->line_cut = 0;
    console_prompt(s);
}

/* Backspace removes a whole UTF-8 character, on the screen and in the line. */
static void erase_char(lmf_session *s)
{
    if (s->line_len == 0) return;
    while (s->line_len > 0 && ((uint8_t)s->line[s->line_len - 1] & 0xC0) == 0x80) s->line_len--;
    if (s->line_len > 0) s->line_len--;
    if (!s->tx_stalled) console_str(s, "\b \b");
}

static void console_input(lmf_session *s, uint8_t b)
{
    int after_cr = s->after_cr;
    s->after_cr = 0;
    if (s->g.active) { /* while generating only Ctrl-C counts */
        if (b == CTRL_C) finish_generation(s, LMF_DONE_CANCELLED);
        return;
    }
    if (b == '\r' || b == '\n') {
        if (b == '\n' && after_cr) return; /* CRLF is one line end */
        s->after_cr = b == '\r';
        submit_line(s);
    } else if (b == 0x08 || b == 0x7F) {
        erase_char(s);
    } else if (b == CTRL_C) {
        s->line_len = 0;
        console_str(s, "^C\r\n");
        console_prompt(s);
    } else if (b >= 0x20 || b == '\t') {
        if (s->line_len < LMF_LINE_MAX - 1) {
            s->line[s->line_len++] = (char)b;
            send_echo(s, b);
        } else {
            s->line_cut = 1;
        }
    }
}

/* ---- input --------------------------------------------------------------- */

void lmf_session_feed(lmf_session *s, const uint8_t *data, size_t len)
{
    size_t i;
    if (len) s->last_rx_us = s->io->now_us(s->io->ctx);
    for (i = 0; i < len; i++) {
        uint8_t b = data[i];
        if (s->framed || s->capturing) {
            int had_bytes = s->rx.raw_len > 0 || s->rx.overflowed;
            if (lmf_frame_decoder_push(&s->rx, b)) {
                const uint8_t *p = s->rx.payload;
                if (s->framed || p[0] == LMF_MSG_HELLO) handle_frame(s, p, s->rx.payload_len);
                s->capturing = 0; /* in console mode only a HELLO opens framed mode */
            } else if (b == 0 && had_bytes) {
                s->capturing = 0; /* a frame ended and was no good */
            }
        } else if (b == 0) {
            s->capturing = 1; /* maybe a HELLO frame follows */
            lmf_frame_decoder_reset(&s->rx);
        } else {
            console_input(s, b);
        }
    }
}

/* A partial frame that stalls is not a frame. If it held a line end, a person
 * is typing at a terminal: return to console mode. */
void lmf_session_tick(lmf_session *s)
{
    uint32_t now;
    size_t i;
    int typed = 0;
    if (s->rx.raw_len == 0 && !s->rx.overflowed && !s->capturing) return;
    now = s->io->now_us(s->io->ctx);
    if (now - s->last_rx_us < PARTIAL_FRAME_TIMEOUT_US) return;
    for (i = 0; i < s->rx.raw_len; i++) typed |= s->rx.raw[i] == '\r' || s->rx.raw[i] == '\n';
    if (s->rx.raw_len || s->rx.overflowed) s->rx.errors++;
    lmf_frame_decoder_reset(&s->rx);
    s->capturing = 0;
    if (s->framed && typed && !s->g.active) {
        s->framed = 0;
        lmf_session_banner(s);
    }
}

void lmf_session_disconnect(lmf_session *s)
{
    s->g.active = 0;
    s->framed = 0;
    s->capturing = 0;
    s->line_len = 0;
    s->utf8_have = s->utf8_need = 0;
    lmf_frame_decoder_reset(&s->rx);
}
