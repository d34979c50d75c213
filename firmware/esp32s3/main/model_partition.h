/* The model partition: found by name; the model store's slots and journal
 * inside it (lmf/model_upload.h); the running model memory-mapped and checked
 * once at boot; flash access for `lmflash upload-model`. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "esp_partition.h"
#include "lmf/blob.h"
#include "lmf/model_upload.h"

/* The partition that holds the blob (partitions-*.csv, docs/hardware.md):
 * label "model", type 0x40 (application-defined), subtype 0x00. */
#define LMF_MODEL_PARTITION_LABEL "model"
#define LMF_MODEL_PARTITION_TYPE 0x40
#define LMF_MODEL_PARTITION_SUBTYPE 0x00

/* The MMU maps flash in 64 KiB pages (ESP32-S3); slot starts are multiples of it. */
#define MODEL_MMU_PAGE 0x10000u

typedef struct model_partition {
    const esp_partition_t *part; /* NULL: no model partition */
    uint32_t address, size;      /* the partition in flash */
    lmf_flash_io io;             /* read/erase/write inside it (esp_partition_*), for lmf_store_* and upload */
    uint32_t next_seq;           /* for the next commit record (lmf_store_candidates) */
    /* the running model: its slot in the partition (size 0: none) */
    uint32_t slot_offset, blob_bytes;
} model_partition;

/* Finds the partition, asks the store which slot holds the newest committed
 * model (lmf_store_candidates) and opens the first candidate that passes:
 * header (magic, version, size), the commit record's CRC-32 when there is
 * one, then the blob mapped into the data address space and validated
 * completely, CRC included (lmf_blob_open). Returns 0 with *blob ready (it
 * stays mapped), or -1 with a sentence in reason (the best candidate's
 * problem) that says what is wrong and what to do; it reads well after
 * "ready, but " in the banner. info->part is set whenever the partition
 * exists, so that an upload can still be taken. Never aborts. */
int model_partition_open(lmf_blob *blob, model_partition *info, char *reason, size_t cap);

/* For the upload's check: the blob just written at [offset, offset + size)
 * is mapped, validated (lmf_blob_open, CRC included), *arena_bytes set to
 * lmf_run_bytes(blob, 1), and unmapped again. Returns 0, or -1
 * with a sentence in why. When the address space has no room to map it
 * beside the running model, only its header is checked (*arena_bytes 0):
 * the boot after the restart checks it completely and falls back to the
 * other slot if it fails. */
int model_partition_check(const model_partition *info, uint32_t offset, uint32_t size, size_t *arena_bytes, char *why,
                          size_t cap);
