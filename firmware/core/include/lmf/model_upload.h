/* Model upload through the running firmware (protocol 1.1, docs/protocol.md,
 * "Model upload") and the model store it writes: two slots and a commit
 * journal inside the `model` partition, so that the model the board runs
 * stays usable until a new one is complete, read back from flash and
 * verified, and the board never picks a half-written model at boot.
 *
 * Layout of the model partition (size P, docs/flashing.md):
 *   slot 0     at 0                         (where `lmflash flash --model` writes)
 *   slot 1     at S1 = floor((P - 4096) / 2 / 64 KiB) * 64 KiB
 *   journal    the last 4 KiB sector: 32-byte commit records, appended
 * A commit record says "the model is the `size` bytes at `offset`, CRC-32
 * `crc`", with a sequence number; the valid record with the highest sequence
 * wins. With no valid record (a freshly flashed board) slot 0 comes first.
 * Whatever a record says, a port validates the blob (lmf_blob_open, CRC
 * included) and falls back to the next candidate.
 *
 * Portable: the port gives read/erase/write access to the partition
 * (esp_partition_* on the board, a file on the virtual board). */
#ifndef LMF_MODEL_UPLOAD_H
#define LMF_MODEL_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include "lmf/protocol.h"
#include "lmf/session.h"

#define LMF_STORE_SECTOR 4096u
#define LMF_STORE_SLOT_ALIGN 65536u
#define LMF_STORE_RECORD_BYTES 32u
#define LMF_STORE_RECORD_MAGIC "LMFS"
/* UPLOAD_DATA carries u32 offset, u32 crc32 and at most this many bytes */
#define LMF_UPLOAD_CHUNK_MAX (LMF_PROTO_MAX_PAYLOAD - LMF_PROTO_HEADER - 8)
/* UPLOAD_BEGIN flags */
#define LMF_UPLOAD_RESTART 1u

typedef struct lmf_flash_io {
    uint32_t size; /* bytes of the model partition */
    /* Each returns 0, or -1 when the flash operation failed. */
    int (*read)(void *ctx, uint32_t offset, void *dst, size_t len);
    int (*erase)(void *ctx, uint32_t offset, uint32_t len); /* whole LMF_STORE_SECTORs */
    int (*write)(void *ctx, uint32_t offset, const void *src, size_t len); /* to erased flash */
    void *ctx;
} lmf_flash_io;

typedef struct lmf_store_slot {
    uint32_t offset;
    uint32_t size;  /* from a commit record; 0: read it from the blob's header */
    uint32_t crc;   /* CRC-32 of the whole blob from a commit record (0 when size is 0) */
} lmf_store_slot;

uint32_t lmf_store_slot1(uint32_t partition_size);
uint32_t lmf_store_journal(uint32_t partition_size);

/* Where a model may be, best first (at most 2 entries); *next_seq receives
 * the sequence number the next commit must use. Returns the count. */
int lmf_store_candidates(const lmf_flash_io *io, lmf_store_slot out[2], uint32_t *next_seq);

/* Appends a commit record (erasing the journal sector when it is full). */
int lmf_store_commit(const lmf_flash_io *io, uint32_t seq, uint32_t offset, uint32_t size, uint32_t crc);

typedef struct lmf_upload_port {
    /* The new blob is in flash at [offset, offset + size) and its CRC-32 is
     * right: can this board run it (a valid blob that fits its RAM)? 0 yes;
     * else -1 with a sentence in why. */
    int (*check)(void *ctx, uint32_t offset, uint32_t size, char *why, size_t cap);
    /* It is committed: switch to it once the current request is answered
     * (the virtual board re-opens it; a board may simply restart). */
    void (*activate)(void *ctx, uint32_t offset, uint32_t size);
    void *ctx;
} lmf_upload_port;

typedef struct lmf_model_upload {
    const lmf_flash_io *flash;
    const lmf_upload_port *port;
    uint32_t active_offset, active_size; /* the model the board runs (size 0: none) */
    uint32_t next_seq;
    int in_progress;                     /* survives a host that goes away, not a reset */
    uint32_t target, capacity, size, crc;
    uint32_t received, received_crc, erased_to;
    uint32_t commits, chunk_errors;
    uint8_t buf[256];
    uint8_t payload[LMF_PROTO_MAX_PAYLOAD];
    uint8_t tx[LMF_PROTO_MAX_ENCODED];
} lmf_model_upload;

void lmf_model_upload_init(lmf_model_upload *u, const lmf_flash_io *flash, const lmf_upload_port *port,
                           uint32_t active_offset, uint32_t active_size, uint32_t next_seq);

/* Handles a protocol 1.1 upload message (types 0x08..0x0B) and answers it on
 * the session's line. Returns 1 when the type was an upload message. */
int lmf_model_upload_handle(lmf_model_upload *u, lmf_session *s, uint8_t type, uint16_t id, const uint8_t *body,
                            size_t len);

#endif
