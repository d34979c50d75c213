/* libFuzzer harness: the model-upload handler (protocol 1.1) with an
 * in-memory 256 KiB model partition. The input is a list of messages, each
 * handed to lmf_model_upload_handle as the session would after a good frame:
 *   u8 type (0x08..0x0B, and whatever else), u8 n, n body bytes
 * plus, with type 0xFF, "the flash fails from now on" (a write/erase error),
 * 0x49: UPLOAD_DATA whose chunk CRC the harness makes right, and 0x4A:
 * UPLOAD_COMMIT of exactly what was received (so that mutations get past
 * the CRCs to the flash and blob checks).
 * COMMIT's check opens the uploaded blob with the real blob reader.
 * Built with clang -fsanitize=fuzzer,address,undefined (LMF_FUZZ). */
#include "lmf/blob.h"
#include "lmf/model_upload.h"
#include "lmf/session.h"

#include <string.h>

#define PART_BYTES (256u * 1024u)

static uint8_t part[PART_BYTES] __attribute__((aligned(16)));
static int flash_broken;
static uint32_t clock_us;

static int f_read(void *ctx, uint32_t off, void *dst, size_t len)
{
    (void)ctx;
    if (off > PART_BYTES || len > PART_BYTES - off) return -1;
    memcpy(dst, part + off, len);
    return 0;
}
static int f_erase(void *ctx, uint32_t off, uint32_t len)
{
    (void)ctx;
    if (flash_broken || off % LMF_STORE_SECTOR || len % LMF_STORE_SECTOR || off > PART_BYTES || len > PART_BYTES - off) return -1;
    memset(part + off, 0xFF, len);
    return 0;
}
static int f_write(void *ctx, uint32_t off, const void *src, size_t len)
{
    size_t i;
    (void)ctx;
    if (flash_broken || off > PART_BYTES || len > PART_BYTES - off) return -1;
    for (i = 0; i < len; i++) part[off + i] &= ((const uint8_t *)src)[i]; /* NOR flash: writes only clear bits */
    return 0;
}
static int p_check(void *ctx, uint32_t off, uint32_t size, char *why, size_t cap)
{
    lmf_blob b;
    lmf_error err;
    (void)ctx;
    if (off > PART_BYTES || size > PART_BYTES - off || lmf_blob_open(&b, part + off, size, 1, &err) != 0) {
        strncpy(why, "the blob does not open", cap);
        if (cap) why[cap - 1] = '\0';
        return -1;
    }
    return 0;
}
static void p_activate(void *ctx, uint32_t off, uint32_t size) { (void)ctx; (void)off; (void)size; }
static int line_write(void *ctx, const uint8_t *d, size_t n) { (void)ctx; (void)d; (void)n; return 0; }
static uint32_t now_us(void *ctx) { (void)ctx; return clock_us += 100; }

static const lmf_flash_io flash = {PART_BYTES, f_read, f_erase, f_write, NULL};
static const lmf_upload_port port = {p_check, p_activate, NULL};
static const lmf_serial_io io = {line_write, now_us, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lmf_session s;
    static lmf_model_upload u;
    lmf_error err;
    size_t i = 0;
    memset(part, 0xFF, sizeof part);
    flash_broken = 0;
    if (lmf_session_init(&s, &io, NULL, NULL, NULL, 0, 0, "fuzz board", &err) != 0) return 0;
    lmf_model_upload_init(&u, &flash, &port, 0, 0, 1);
    s.upload = &u;
    while (i + 2 <= size) {
        uint8_t type = data[i], n = data[i + 1];
        i += 2;
        if (n > size - i) n = (uint8_t)(size - i);
        if (type == 0xFF) flash_broken = 1;
        else if (type == 0x49 && n >= 8) {
            uint8_t body[256];
            memcpy(body, data + i, n);
            lmf_put_u32(body + 4, lmf_crc32(0, body + 8, (size_t)n - 8));
            (void)lmf_model_upload_handle(&u, &s, LMF_MSG_UPLOAD_DATA, 9, body, n);
        } else if (type == 0x4A) {
            uint8_t body[8];
            lmf_put_u32(body, u.received);
            lmf_put_u32(body + 4, u.received_crc);
            (void)lmf_model_upload_handle(&u, &s, LMF_MSG_UPLOAD_COMMIT, 9, body, 8);
        } else (void)lmf_model_upload_handle(&u, &s, type, 9, data + i, n);
        i += n;
    }
    return 0;
}
