/* Model upload and the model store: see model_upload.h and docs/protocol.md. */
#include "lmf/model_upload.h"
#include "lmf/blob.h"
#include "lmf/fmt.h"

#include <stdarg.h>
#include <string.h>

/* ---- the store ------------------------------------------------------------ */

uint32_t lmf_store_journal(uint32_t partition_size)
{
    return partition_size >= LMF_STORE_SECTOR ? (partition_size - LMF_STORE_SECTOR) & ~(LMF_STORE_SECTOR - 1) : 0;
}

uint32_t lmf_store_slot1(uint32_t partition_size)
{
    return (lmf_store_journal(partition_size) / 2) & ~(LMF_STORE_SLOT_ALIGN - 1);
}

typedef struct record {
    uint32_t seq, offset, size, crc;
} record;

/* 1 when the 32 bytes are a valid commit record. */
static int parse_record(const uint8_t *p, record *r)
{
    if (memcmp(p, LMF_STORE_RECORD_MAGIC, 4) != 0) return 0;
    if (lmf_crc32(0, p, 28) != lmf_get_u32(p + 28)) return 0;
    r->seq = lmf_get_u32(p + 4);
    r->offset = lmf_get_u32(p + 8);
    r->size = lmf_get_u32(p + 12);
    r->crc = lmf_get_u32(p + 16);
    return 1;
}

static int all_ff(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != 0xFF) return 0;
    return 1;
}

int lmf_store_candidates(const lmf_flash_io *io, lmf_store_slot out[2], uint32_t *next_seq)
{
    uint32_t journal = lmf_store_journal(io->size), slot1 = lmf_store_slot1(io->size), i;
    uint8_t p[LMF_STORE_RECORD_BYTES];
    record best = {0, 0, 0, 0}, r;
    int have = 0, n = 0;
    if (io->size >= LMF_STORE_SECTOR) {
        for (i = 0; i < LMF_STORE_SECTOR / LMF_STORE_RECORD_BYTES; i++) {
            if (io->read(io->ctx, journal + i * LMF_STORE_RECORD_BYTES, p, sizeof p) != 0) break;
            if (!parse_record(p, &r)) continue;
            if (r.size == 0 || r.offset > journal || r.size > journal - r.offset) continue; /* nonsense: ignore */
            if (!have || r.seq >= best.seq) { best = r; have = 1; }
        }
    }
    if (next_seq) *next_seq = have ? best.seq + 1 : 1;
    if (have) {
        out[n].offset = best.offset;
        out[n].size = best.size;
        out[n].crc = best.crc;
        n++;
    }
    if (!have || best.offset != 0) { out[n].offset = 0; out[n].size = 0; out[n].crc = 0; n++; }
    if (n < 2 && slot1 != 0 && (!have || best.offset != slot1)) { out[n].offset = slot1; out[n].size = 0; out[n].crc = 0; n++; }
    return n;
}

int lmf_store_commit(const lmf_flash_io *io, uint32_t seq, uint32_t offset, uint32_t size, uint32_t crc)
{
    uint32_t journal = lmf_store_journal(io->size), i, at = 0;
    uint8_t p[LMF_STORE_RECORD_BYTES], back[LMF_STORE_RECORD_BYTES];
    int found = 0;
    for (i = 0; i < LMF_STORE_SECTOR / LMF_STORE_RECORD_BYTES && !found; i++) {
        if (io->read(io->ctx, journal + i * LMF_STORE_RECORD_BYTES, p, sizeof p) != 0) return -1;
        if (all_ff(p, sizeof p)) { at = journal + i * LMF_STORE_RECORD_BYTES; found = 1; }
    }
    if (!found) { /* full: start the sector again (candidates fall back to the slots meanwhile) */
        if (io->erase(io->ctx, journal, LMF_STORE_SECTOR) != 0) return -1;
        at = journal;
    }
    memcpy(p, LMF_STORE_RECORD_MAGIC, 4);
    lmf_put_u32(p + 4, seq);
    lmf_put_u32(p + 8, offset);
    lmf_put_u32(p + 12, size);
    lmf_put_u32(p + 16, crc);
    lmf_put_u32(p + 20, 0xFFFFFFFFu);
    lmf_put_u32(p + 24, 0xFFFFFFFFu);
    lmf_put_u32(p + 28, lmf_crc32(0, p, 28));
    if (io->write(io->ctx, at, p, sizeof p) != 0) return -1;
    if (io->read(io->ctx, at, back, sizeof back) != 0 || memcmp(p, back, sizeof p) != 0) return -1;
    return 0;
}

/* ---- the protocol ----------------------------------------------------------- */

void lmf_model_upload_init(lmf_model_upload *u, const lmf_flash_io *flash, const lmf_upload_port *port,
                           uint32_t active_offset, uint32_t active_size, uint32_t next_seq)
{
    memset(u, 0, sizeof *u);
    u->flash = flash;
    u->port = port;
    u->active_offset = active_offset;
    u->active_size = active_size;
    u->next_seq = next_seq ? next_seq : 1;
}

static void reply(lmf_model_upload *u, lmf_session *s, uint8_t type, uint16_t id, const uint8_t *body, size_t len)
{
    size_t n;
    if (len > LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER) len = LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER;
    u->payload[0] = type;
    u->payload[1] = 0;
    lmf_put_u16(u->payload + 2, id);
    if (len) memmove(u->payload + LMF_PROTO_HEADER, body, len);
    n = lmf_frame_encode(u->payload, LMF_PROTO_HEADER + len, u->tx);
    if (s->io->write(s->io->ctx, u->tx, n) != 0) s->write_failures++;
}

static void reply_error(lmf_model_upload *u, lmf_session *s, uint16_t id, uint16_t code, const char *fmt, ...)
{
    uint8_t body[2 + 300];
    va_list ap;
    size_t n;
    lmf_put_u16(body, code);
    va_start(ap, fmt);
    n = lmf_vfmt((char *)body + 2, sizeof body - 2, fmt, ap);
    va_end(ap);
    reply(u, s, LMF_MSG_ERROR, id, body, 2 + n);
}

/* CRC-32 of flash [offset, offset + len), or -1 on a read error. */
static int flash_crc(lmf_model_upload *u, uint32_t offset, uint32_t len, uint32_t *crc)
{
    uint32_t c = 0;
    while (len > 0) {
        uint32_t n = len < sizeof u->buf ? len : (uint32_t)sizeof u->buf;
        if (u->flash->read(u->flash->ctx, offset, u->buf, n) != 0) return -1;
        c = lmf_crc32(c, u->buf, n);
        offset += n;
        len -= n;
    }
    *crc = c;
    return 0;
}

static void send_status(lmf_model_upload *u, lmf_session *s, uint16_t id)
{
    uint8_t body[20];
    lmf_put_u32(body, u->target);
    lmf_put_u32(body + 4, u->capacity);
    lmf_put_u32(body + 8, u->received);
    lmf_put_u32(body + 12, u->received_crc);
    lmf_put_u16(body + 16, LMF_UPLOAD_CHUNK_MAX);
    lmf_put_u16(body + 18, 0);
    reply(u, s, LMF_MSG_UPLOAD_STATUS, id, body, sizeof body);
}

static int overlaps(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return alen && blen && a < b + blen && b < a + alen;
}

/* Chooses the slot for a new model of `size` bytes beside the active one.
 * Returns 0, or -1 with the capacity of the best slot in *cap. */
static int choose_slot(lmf_model_upload *u, uint32_t size, uint32_t *target, uint32_t *cap)
{
    uint32_t journal = lmf_store_journal(u->flash->size), slot1 = lmf_store_slot1(u->flash->size);
    uint32_t starts[2], caps[2], i, best = 0;
    if (u->active_size == 0) { /* nothing to keep: the whole partition */
        *target = 0;
        *cap = journal;
        return size <= journal ? 0 : -1;
    }
    starts[0] = 0;
    caps[0] = slot1 ? slot1 : journal;
    starts[1] = slot1;
    caps[1] = slot1 ? journal - slot1 : 0;
    *cap = 0;
    for (i = 0; i < 2; i++) {
        uint32_t span = (size + LMF_STORE_SECTOR - 1) & ~(LMF_STORE_SECTOR - 1); /* erased in whole sectors */
        if (caps[i] == 0 || overlaps(starts[i], caps[i] < span ? caps[i] : span, u->active_offset, u->active_size)) continue;
        if (caps[i] > best) best = caps[i];
        if (size <= caps[i]) { *target = starts[i]; *cap = caps[i]; return 0; }
    }
    *cap = best;
    return -1;
}

static void handle_begin(lmf_model_upload *u, lmf_session *s, uint16_t id, const uint8_t *body, size_t len)
{
    uint32_t size, crc, flags, target = 0, cap = 0;
    if (len < 12) { reply_error(u, s, id, LMF_ERR_BAD_REQUEST, "UPLOAD_BEGIN needs u32 size, u32 crc32, u32 flags"); return; }
    size = lmf_get_u32(body);
    crc = lmf_get_u32(body + 4);
    flags = lmf_get_u32(body + 8);
    if (size < LMF_BLOB_HEADER_BYTES) { reply_error(u, s, id, LMF_ERR_BAD_REQUEST, "a model of %u bytes is too small to be a blob", size); return; }
    if (u->in_progress && u->size == size && u->crc == crc && !(flags & LMF_UPLOAD_RESTART)) {
        /* the same model again: resume; say what flash holds now */
        if (flash_crc(u, u->target, u->received, &u->received_crc) != 0) {
            reply_error(u, s, id, LMF_ERR_FLASH, "the model partition cannot be read: reset the board and try again");
            return;
        }
        send_status(u, s, id);
        return;
    }
    if (choose_slot(u, size, &target, &cap) != 0) {
        if (u->active_size && cap == 0)
            reply_error(u, s, id, LMF_ERR_TOO_BIG,
                        "the model is %u bytes; the running model (%u bytes) leaves no slot of the model partition (%u bytes) free beside it: "
                        "flash it with `lmflash flash --model MODEL.blob`, which replaces the running model through the bootloader",
                        size, u->active_size, u->flash->size);
        else if (u->active_size)
            reply_error(u, s, id, LMF_ERR_TOO_BIG,
                        "the model is %u bytes but the free slot of the model partition holds %u (the running model keeps the other slot): "
                        "flash it with `lmflash flash --model MODEL.blob`, which replaces the running model through the bootloader",
                        size, cap);
        else
            reply_error(u, s, id, LMF_ERR_TOO_BIG, "the model is %u bytes but the model partition holds %u: use a smaller model or a board with more flash",
                        size, cap);
        return;
    }
    u->in_progress = 1;
    u->target = target;
    u->capacity = cap;
    u->size = size;
    u->crc = crc;
    u->received = 0;
    u->received_crc = 0;
    u->erased_to = target; /* sectors are erased as the data reaches them */
    send_status(u, s, id);
}

static void handle_data(lmf_model_upload *u, lmf_session *s, uint16_t id, const uint8_t *body, size_t len)
{
    uint32_t offset, crc, n, at, done, c;
    const uint8_t *data = body + 8;
    if (len < 9) { reply_error(u, s, id, LMF_ERR_BAD_REQUEST, "UPLOAD_DATA needs u32 offset, u32 crc32 and at least one byte"); return; }
    if (!u->in_progress) { reply_error(u, s, id, LMF_ERR_UPLOAD_STATE, "no upload in progress: send UPLOAD_BEGIN first"); return; }
    offset = lmf_get_u32(body);
    crc = lmf_get_u32(body + 4);
    n = (uint32_t)(len - 8);
    if (offset != u->received) {
        reply_error(u, s, id, LMF_ERR_UPLOAD_STATE, "expected the data at offset %u, got %u: resume from %u", u->received, offset, u->received);
        return;
    }
    if (n > u->size - u->received) { reply_error(u, s, id, LMF_ERR_BAD_REQUEST, "the data goes past the %u bytes announced", u->size); return; }
    if (lmf_crc32(0, data, n) != crc) {
        u->chunk_errors++;
        reply_error(u, s, id, LMF_ERR_UPLOAD_CORRUPT, "the chunk at offset %u failed its CRC: send it again", offset);
        return;
    }
    at = u->target + offset;
    while (u->erased_to < at + n) {
        if (u->flash->erase(u->flash->ctx, u->erased_to, LMF_STORE_SECTOR) != 0) {
            reply_error(u, s, id, LMF_ERR_FLASH, "erasing flash at 0x%x failed: try again; if it keeps failing the flash is worn", u->erased_to);
            return;
        }
        u->erased_to += LMF_STORE_SECTOR;
    }
    if (u->flash->write(u->flash->ctx, at, data, n) == 0 && flash_crc(u, at, n, &c) == 0 && c == crc) {
        u->received += n;
        u->received_crc = lmf_crc32(u->received_crc, data, n);
        send_status(u, s, id);
        return;
    }
    /* written wrong: go back to the start of that sector, which is erased again before it is rewritten */
    u->chunk_errors++;
    done = (at & ~(LMF_STORE_SECTOR - 1)) < u->target ? 0 : (at & ~(LMF_STORE_SECTOR - 1)) - u->target;
    u->received = done;
    u->erased_to = u->target + done;
    if (flash_crc(u, u->target, done, &u->received_crc) != 0) u->received_crc = 0;
    reply_error(u, s, id, LMF_ERR_UPLOAD_CORRUPT,
                "flash at 0x%x did not read back what was written: resume from %u (that sector is erased again)", at, done);
}

static void handle_commit(lmf_model_upload *u, lmf_session *s, uint16_t id, const uint8_t *body, size_t len)
{
    uint32_t size, crc, c;
    uint8_t out[16];
    char why[200];
    if (len < 8) { reply_error(u, s, id, LMF_ERR_BAD_REQUEST, "UPLOAD_COMMIT needs u32 size, u32 crc32"); return; }
    size = lmf_get_u32(body);
    crc = lmf_get_u32(body + 4);
    if (!u->in_progress || u->size != size || u->crc != crc) {
        reply_error(u, s, id, LMF_ERR_UPLOAD_STATE, "no upload of that model is in progress: start with UPLOAD_BEGIN");
        return;
    }
    if (u->received != size) {
        reply_error(u, s, id, LMF_ERR_UPLOAD_STATE, "only %u of %u bytes have arrived: send the rest from offset %u", u->received, size, u->received);
        return;
    }
    if (lmf_session_busy(s)) { reply_error(u, s, id, LMF_ERR_BUSY, "a reply is being generated: send CANCEL or wait for its DONE, then commit"); return; }
    /* the whole model once more, as flash holds it */
    if (flash_crc(u, u->target, size, &c) != 0 || c != crc) {
        u->in_progress = 0;
        reply_error(u, s, id, LMF_ERR_UPLOAD_CORRUPT,
                    "the model read back from flash does not match its CRC-32: upload it again (the board keeps its current model)");
        return;
    }
    why[0] = '\0';
    if (u->port && u->port->check && u->port->check(u->port->ctx, u->target, size, why, sizeof why) != 0) {
        u->in_progress = 0;
        reply_error(u, s, id, LMF_ERR_MODEL_INVALID, "the board cannot run this model (%s); it keeps its current one", why);
        return;
    }
    if (lmf_store_commit(u->flash, u->next_seq, u->target, size, crc) != 0) {
        reply_error(u, s, id, LMF_ERR_FLASH, "writing the commit record failed: commit again; the board keeps its current model until it succeeds");
        return;
    }
    u->in_progress = 0;
    u->active_offset = u->target;
    u->active_size = size;
    u->commits++;
    lmf_put_u32(out, size);
    lmf_put_u32(out + 4, crc);
    lmf_put_u32(out + 8, u->target);
    lmf_put_u32(out + 12, u->next_seq);
    u->next_seq++;
    reply(u, s, LMF_MSG_UPLOAD_DONE, id, out, sizeof out);
    if (u->port && u->port->activate) u->port->activate(u->port->ctx, u->target, size);
}

int lmf_model_upload_handle(lmf_model_upload *u, lmf_session *s, uint8_t type, uint16_t id, const uint8_t *body, size_t len)
{
    switch (type) {
    case LMF_MSG_UPLOAD_BEGIN: handle_begin(u, s, id, body, len); return 1;
    case LMF_MSG_UPLOAD_DATA: handle_data(u, s, id, body, len); return 1;
    case LMF_MSG_UPLOAD_COMMIT: handle_commit(u, s, id, body, len); return 1;
    case LMF_MSG_UPLOAD_ABORT:
        u->in_progress = 0;
        reply(u, s, LMF_MSG_OK, id, NULL, 0);
        return 1;
    default: return 0;
    }
}
