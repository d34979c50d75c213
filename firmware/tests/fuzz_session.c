/* libFuzzer harness: the board's serial session fed hostile bytes. The input
 * is a list of records, so that mutations get past the frames' CRC:
 *   0x00 n bytes...      n raw bytes as they come off the line
 *   0x01 n type bytes... a frame with a good CRC (type, id 7, n body bytes)
 *   0x02 t               the clock jumps t * 10 ms (stalled partial frames)
 *   0x03                 the host stops reading (writes fail) / starts again
 * Between records the session steps (at most a few forward passes) and ticks.
 * LMF_FUZZ_BLOB names the model the session runs (none: a board without one).
 * Built with clang -fsanitize=fuzzer,address,undefined (LMF_FUZZ). */
#include "lmf/blob.h"
#include "lmf/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *model;
static size_t model_size;
static lmf_blob blob;
static int have_blob;
static uint32_t clock_us;
static int line_fails;
static uint8_t arena[1 << 20] __attribute__((aligned(16)));

static int line_write(void *ctx, const uint8_t *data, size_t len) { (void)ctx; (void)data; (void)len; return line_fails ? -1 : 0; }
static uint32_t now_us(void *ctx) { (void)ctx; return clock_us += 50; }
static const lmf_serial_io io = {line_write, now_us, NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *path = getenv("LMF_FUZZ_BLOB");
    FILE *f;
    lmf_error err;
    (void)argc; (void)argv;
    if (!path || !(f = fopen(path, "rb"))) return 0;
    fseek(f, 0, SEEK_END);
    model_size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    model = (uint8_t *)aligned_alloc(16, (model_size + 15) & ~(size_t)15);
    if (model && fread(model, 1, model_size, f) == model_size) have_blob = lmf_blob_open(&blob, model, model_size, 1, &err) == 0;
    fclose(f);
    return 0;
}

static void settle(lmf_session *s)
{
    int steps;
    for (steps = 0; steps < 8 && lmf_session_busy(s); steps++) lmf_session_step(s);
    lmf_session_tick(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lmf_session s;
    static uint8_t payload[LMF_PROTO_MAX_PAYLOAD], wire[LMF_PROTO_MAX_ENCODED];
    lmf_error err;
    size_t i = 0;
    line_fails = 0;
    if (lmf_session_init(&s, &io, have_blob ? &blob : NULL, NULL, arena, sizeof arena, 32, "fuzz board", &err) != 0) return 0;
    lmf_session_banner(&s);
    while (i < size) {
        uint8_t kind = data[i++];
        size_t n = i < size ? data[i++] : 0;
        if (kind % 4 == 0) {
            if (n > size - i) n = size - i;
            lmf_session_feed(&s, data + i, n);
            i += n;
        } else if (kind % 4 == 1) {
            uint8_t type = i < size ? data[i++] : 0;
            if (n > size - i) n = size - i;
            if (n > LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER) n = LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER;
            payload[0] = type;
            payload[1] = 0;
            payload[2] = 7;
            payload[3] = 0;
            memcpy(payload + LMF_PROTO_HEADER, data + i, n);
            i += n;
            lmf_session_feed(&s, wire, lmf_frame_encode(payload, LMF_PROTO_HEADER + n, wire));
        } else if (kind % 4 == 2) {
            clock_us += (uint32_t)n * 10000u;
        } else {
            line_fails = !line_fails;
        }
        settle(&s);
    }
    lmf_session_disconnect(&s);
    return 0;
}
