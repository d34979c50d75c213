/* Framing of the serial protocol (docs/protocol.md): COBS over
 * payload ‖ CRC32, ended by 0x00. A byte-at-a-time decoder with a fixed
 * buffer, so that no input, however long or broken, can overflow it. */
#ifndef LMF_PROTOCOL_H
#define LMF_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define LMF_PROTO_MAJOR 1
#define LMF_PROTO_MINOR 2
/* 1.2: GENERATE's flags bit 0: u32 repeat_window, u32 n_banned and n_banned
 * u32 token ids follow the 28 fixed bytes, before the prompt */
#define LMF_GENERATE_SAMPLING 1u
#define LMF_GENERATE_KNOWN_FLAGS LMF_GENERATE_SAMPLING
#define LMF_PROTO_MAX_PAYLOAD 1024
#define LMF_PROTO_HEADER 4                     /* type, reserved, u16 id */
/* COBS adds one byte per 254 and one at the start; then the CRC and the 0x00 */
#define LMF_PROTO_MAX_ENCODED (LMF_PROTO_MAX_PAYLOAD + 4 + (LMF_PROTO_MAX_PAYLOAD + 4) / 254 + 2)

enum {
    LMF_MSG_HELLO = 0x01, LMF_MSG_INFO = 0x02, LMF_MSG_GENERATE = 0x03, LMF_MSG_CANCEL = 0x04,
    LMF_MSG_PING = 0x05, LMF_MSG_RESET = 0x06, LMF_MSG_CONSOLE = 0x07,
    LMF_MSG_HELLO_REPLY = 0x81, LMF_MSG_INFO_REPLY = 0x82, LMF_MSG_TOKEN = 0x83, LMF_MSG_DONE = 0x84,
    LMF_MSG_ERROR = 0x85, LMF_MSG_PONG = 0x86, LMF_MSG_OK = 0x87,
    /* 1.1: model upload (model_upload.h) */
    LMF_MSG_UPLOAD_BEGIN = 0x08, LMF_MSG_UPLOAD_DATA = 0x09, LMF_MSG_UPLOAD_COMMIT = 0x0A, LMF_MSG_UPLOAD_ABORT = 0x0B,
    LMF_MSG_UPLOAD_STATUS = 0x88, LMF_MSG_UPLOAD_DONE = 0x89
};

enum {
    LMF_ERR_VERSION = 1, LMF_ERR_BUSY = 2, LMF_ERR_BAD_REQUEST = 3, LMF_ERR_PROMPT_TOO_LONG = 4,
    LMF_ERR_UNKNOWN_TYPE = 5, LMF_ERR_NO_MODEL = 6,
    /* 1.1: model upload */
    LMF_ERR_TOO_BIG = 7, LMF_ERR_UPLOAD_STATE = 8, LMF_ERR_UPLOAD_CORRUPT = 9, LMF_ERR_FLASH = 10,
    LMF_ERR_MODEL_INVALID = 11
};

enum { LMF_DONE_MAX_TOKENS = 0, LMF_DONE_END_OF_TEXT = 1, LMF_DONE_CANCELLED = 2, LMF_DONE_CONTEXT_FULL = 3 };

/* Encodes payload[0..len) as a complete wire frame into out (room for
 * LMF_PROTO_MAX_ENCODED bytes). Returns the frame's length. */
size_t lmf_frame_encode(const uint8_t *payload, size_t len, uint8_t *out);

typedef struct lmf_frame_decoder {
    uint8_t raw[LMF_PROTO_MAX_ENCODED];  /* bytes since the last 0x00 */
    size_t raw_len;
    int overflowed;                       /* too long: skip to the next 0x00 */
    uint8_t payload[LMF_PROTO_MAX_PAYLOAD + 4];
    size_t payload_len;                   /* of the last good frame, CRC removed */
    uint32_t errors;                      /* frames dropped */
} lmf_frame_decoder;

void lmf_frame_decoder_reset(lmf_frame_decoder *d);

/* Feeds one byte. Returns 1 when it completed a good frame (then
 * d->payload[0..payload_len) holds it, until the next call), else 0. */
int lmf_frame_decoder_push(lmf_frame_decoder *d, uint8_t byte);

/* Little-endian field access for message bodies. */
static inline uint32_t lmf_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t lmf_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void lmf_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void lmf_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

#endif
