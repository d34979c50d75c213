/* The board's side of the serial line (docs/protocol.md): console mode for
 * people, framed mode for programs, and generation one token per step so that
 * the line is read between tokens (Ctrl-C, CANCEL, PING while generating).
 * Portable: a port feeds received bytes in, calls lmf_session_step while
 * lmf_session_busy, lmf_session_tick now and then, and supplies output and a
 * clock through lmf_serial_io. */
#ifndef LMF_SESSION_H
#define LMF_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/blob.h"
#include "lmf/lm.h"
#include "lmf/protocol.h"
#include "lmf/sampler.h"

#define LMF_LINE_MAX 512

typedef struct lmf_serial_io {
    /* Sends bytes. Returns 0 when the line took them all, -1 when it could
     * not within the port's deadline (nobody reading): the session then stops
     * generating and drops its output. */
    int (*write)(void *ctx, const uint8_t *data, size_t len);
    /* A monotonic microsecond clock (it may wrap). */
    uint32_t (*now_us)(void *ctx);
    void *ctx;
} lmf_serial_io;

typedef struct lmf_settings {
    float temperature, top_p, repeat_penalty;
    uint32_t top_k, max_tokens, seed;
    uint32_t repeat_window;            /* recent tokens the penalty looks at */
    uint32_t banned[LMF_MAX_BANNED];   /* never sampled */
    uint32_t n_banned;
} lmf_settings;

typedef struct lmf_generation {
    int active, framed;
    uint16_t id;
    uint32_t n_prompt, n, pos, gen, max, token;
    uint32_t start_us, first_us;
} lmf_generation;

struct lmf_model_upload;

/* Optional: the port adds to /info and to the INFO reply (the ESP32-S3 app:
 * where the memory went and the free heap). json = 0: text lines, each
 * ending in "\r\n"; json = 1: JSON members, each followed by ','. Writes at
 * most cap - 1 bytes and returns their count. Set it after lmf_session_init. */
typedef size_t (*lmf_port_info_fn)(void *ctx, char *out, size_t cap, int json);

typedef struct lmf_session {
    const lmf_serial_io *io;
    lmf_port_info_fn port_info;     /* NULL: nothing to add */
    void *port_info_ctx;
    struct lmf_model_upload *upload; /* protocol 1.1 model upload (model_upload.h), or NULL: set by the port after init */
    const lmf_blob *blob;           /* NULL: no usable model */
    const char *board_name, *no_model_reason;
    lmf_lm state;                   /* the model, transformer or N-gram */
    lmf_sampler sampler;
    uint32_t *ids;                  /* prompt and generated tokens */
    uint8_t *scratch;               /* prompt encoding: the state memory, unused between replies */
    size_t scratch_bytes;
    uint64_t console_rng;           /* the console's sampler carries on across replies */
    int framed, capturing;          /* mode; console mode collecting a frame after a 0x00 */
    uint32_t last_rx_us;
    lmf_frame_decoder rx;
    char line[LMF_LINE_MAX];
    size_t line_len;
    int line_cut, after_cr;
    uint8_t utf8[4], utf8_have, utf8_need;
    lmf_settings settings;
    lmf_generation g;
    uint32_t generations, write_failures;
    int unframed;                   /* text went out since the last frame: the next frame starts with 0x00 */
    int tx_stalled;                 /* the last write failed (nobody reading): echo is dropped */
    uint8_t msg[LMF_PROTO_MAX_PAYLOAD];
    uint8_t tx[LMF_PROTO_MAX_ENCODED];
} lmf_session;


/* blob may be NULL (the board then explains no_model_reason to every
 * request). ctx = 0: the longest context that fits the arena. */
int lmf_session_init(lmf_session *s, const lmf_serial_io *io, const lmf_blob *blob, const char *no_model_reason,
                     void *arena, size_t arena_bytes, uint32_t ctx, const char *board_name, lmf_error *err);

void lmf_session_banner(lmf_session *s);
void lmf_session_feed(lmf_session *s, const uint8_t *data, size_t len);
int lmf_session_busy(const lmf_session *s);
void lmf_session_step(lmf_session *s);
void lmf_session_tick(lmf_session *s);
/* The host went away (USB unplugged, the pseudo-terminal closed). */
void lmf_session_disconnect(lmf_session *s);

#endif
