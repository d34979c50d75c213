#include "lmf/protocol.h"
#include "lmf/blob.h"

#include <string.h>

/* COBS: each block starts with a code byte, 1 + the number of non-zero bytes
 * that follow (at most 254); a code below 0xFF means a zero follows the block,
 * except at the very end. */
static size_t cobs_encode(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t code_at = 0, o = 1, i;
    uint8_t code = 1;
    for (i = 0; i < len; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            continue;
        }
        out[o++] = in[i];
        if (++code == 0xFF) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
        }
    }
    out[code_at] = code;
    return o;
}

/* Returns the decoded length, or (size_t)-1 when in is not valid COBS or
 * would not fit cap bytes. */
static size_t cobs_decode(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < len) {
        uint8_t code = in[i++], k;
        if (code == 0) return (size_t)-1;
        for (k = 1; k < code; k++) {
            if (i >= len || o >= cap || in[i] == 0) return (size_t)-1;
            out[o++] = in[i++];
        }
        if (code < 0xFF && i < len) {
            if (o >= cap) return (size_t)-1;
            out[o++] = 0;
        }
    }
    return o;
}

size_t lmf_frame_encode(const uint8_t *payload, size_t len, uint8_t *out)
{
    /* payload and CRC are encoded as one run of bytes: copy the CRC after the
     * payload in a scratch buffer only as big as a frame */
    uint8_t tmp[LMF_PROTO_MAX_PAYLOAD + 4];
    size_t n;
    if (len > LMF_PROTO_MAX_PAYLOAD) len = LMF_PROTO_MAX_PAYLOAD;
    memcpy(tmp, payload, len);
    lmf_put_u32(tmp + len, lmf_crc32(0, payload, len));
    n = cobs_encode(tmp, len + 4, out);
    out[n++] = 0;
    return n;
}

void lmf_frame_decoder_reset(lmf_frame_decoder *d)
{
    d->raw_len = 0;
    d->overflowed = 0;
    d->payload_len = 0;
}

static int finish_frame(lmf_frame_decoder *d)
{
    size_t n;
    if (d->raw_len == 0) return 0; /* an empty frame: a separator */
    n = cobs_decode(d->raw, d->raw_len, d->payload, sizeof d->payload);
    d->raw_len = 0;
    if (n == (size_t)-1 || n < LMF_PROTO_HEADER + 4 ||
        lmf_crc32(0, d->payload, n - 4) != lmf_get_u32(d->payload + n - 4)) {
        d->errors++;
        return 0;
    }
    d->payload_len = n - 4;
    return 1;
}

int lmf_frame_decoder_push(lmf_frame_decoder *d, uint8_t byte)
{
    if (byte == 0) {
        if (d->overflowed) {
            d->overflowed = 0;
            d->raw_len = 0;
            d->errors++;
            return 0;
        }
        return finish_frame(d);
    }
    if (d->overflowed) return 0;
    if (d->raw_len == sizeof d->raw) {
        d->overflowed = 1;
        return 0;
    }
    d->raw[d->raw_len++] = byte;
    return 0;
}
