/* The model partition (model_partition.h). ESP-IDF v5.4 APIs, from
 * components/esp_partition/include/esp_partition.h: esp_partition_find_first,
 * esp_partition_read, esp_partition_write (to erased flash),
 * esp_partition_erase_range (offset and size multiples of the partition's
 * erase_size, 4 KiB), esp_partition_mmap (ESP_PARTITION_MMAP_DATA: byte
 * access; the MMU maps 64 KiB pages, so a slot is mapped from its page-aligned
 * offset and the blob pointer points into the mapping), esp_partition_munmap. */
#include "model_partition.h"

#include <stdio.h>
#include <string.h>

#include "esp_err.h"

static uint32_t get_u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint32_t get_u16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != v) return 0;
    return 1;
}

/* ---- lmf_flash_io over esp_partition_* ------------------------------------ */

static int in_range(const esp_partition_t *part, uint32_t offset, size_t len)
{
    return offset <= part->size && len <= part->size - offset;
}

static int flash_read(void *ctx, uint32_t offset, void *dst, size_t len)
{
    const esp_partition_t *part = ctx;
    if (!in_range(part, offset, len)) return -1;
    return esp_partition_read(part, offset, dst, len) == ESP_OK ? 0 : -1;
}

static int flash_erase(void *ctx, uint32_t offset, uint32_t len)
{
    const esp_partition_t *part = ctx;
    /* esp_partition_erase_range wants both aligned to erase_size (4 KiB here) */
    if (!in_range(part, offset, len) || offset % LMF_STORE_SECTOR || len % LMF_STORE_SECTOR) return -1;
    if (part->erase_size && (offset % part->erase_size || len % part->erase_size)) return -1;
    return esp_partition_erase_range(part, offset, len) == ESP_OK ? 0 : -1;
}

static int flash_write(void *ctx, uint32_t offset, const void *src, size_t len)
{
    const esp_partition_t *part = ctx;
    if (!in_range(part, offset, len)) return -1;
    return esp_partition_write(part, offset, src, len) == ESP_OK ? 0 : -1;
}

/* ---- one slot --------------------------------------------------------------- */

/* Reads and checks the header of the blob at offset; *size: the commit
 * record's size, or 0 to take the header's. */
static int check_header(const esp_partition_t *part, uint32_t offset, uint32_t *size, char *reason, size_t cap)
{
    uint8_t head[LMF_BLOB_HEADER_BYTES];
    uint32_t major, minor, bytes;
    esp_err_t e;
    if (offset % 16 != 0) { /* PIE loads ignore the low 4 address bits: the blob's base must be 16-byte aligned */
        snprintf(reason, cap, "the commit record names offset 0x%x, which is no slot start: upload the model again", (unsigned)offset);
        return -1;
    }
    if (!in_range(part, offset, sizeof head)) {
        snprintf(reason, cap, "the model partition is too small for a model");
        return -1;
    }
    e = esp_partition_read(part, offset, head, sizeof head);
    if (e != ESP_OK) {
        snprintf(reason, cap, "the model partition cannot be read (%s): upload the model again", esp_err_to_name(e));
        return -1;
    }
    if (all_bytes(head, sizeof head, 0xFF)) {
        snprintf(reason, cap, "there is no model in flash yet: upload one with `lmflash upload-model MODEL.blob`");
        return -1;
    }
    if (memcmp(head, LMF_BLOB_MAGIC, 4) != 0) {
        snprintf(reason, cap,
                 "the model partition does not start with an lmflash model (no LMFB magic): upload one with "
                 "`lmflash upload-model MODEL.blob`");
        return -1;
    }
    major = get_u16(head + 4);
    minor = get_u16(head + 6);
    bytes = get_u32(head + 8);
    if (major != LMF_BLOB_VERSION_MAJOR) {
        snprintf(reason, cap,
                 "the model is format %u.%u and this firmware reads %u.x: convert the model with the lmflash that "
                 "built this firmware, or flash a newer firmware",
                 (unsigned)major, (unsigned)minor, (unsigned)LMF_BLOB_VERSION_MAJOR);
        return -1;
    }
    if (*size == 0) *size = bytes;
    if (*size < LMF_BLOB_HEADER_BYTES || !in_range(part, offset, *size)) {
        snprintf(reason, cap,
                 "the model header says %u bytes but the partition holds %u: the upload was cut off or the "
                 "model is too big for this flash; upload it again (`lmflash inspect MODEL.blob --board ...` "
                 "says what fits)",
                 (unsigned)*size, (unsigned)(part->size - offset));
        return -1;
    }
    return 0;
}

/* Maps [offset, offset + size): from the 64 KiB page that holds offset, the
 * pointer moved forward into the mapping. */
static esp_err_t map_slot(const esp_partition_t *part, uint32_t offset, uint32_t size, const uint8_t **data,
                          esp_partition_mmap_handle_t *handle)
{
    uint32_t page = offset & ~(MODEL_MMU_PAGE - 1), lead = offset - page;
    const void *mapped = NULL;
    esp_err_t e = esp_partition_mmap(part, page, (size_t)lead + size, ESP_PARTITION_MMAP_DATA, &mapped, handle);
    if (e == ESP_OK) *data = (const uint8_t *)mapped + lead;
    return e;
}

/* The slot at offset: header, mapping, the record's CRC-32, lmf_blob_open.
 * Leaves it mapped on success. */
static int open_slot(const esp_partition_t *part, const lmf_store_slot *slot, lmf_blob *blob, char *reason, size_t cap)
{
    const uint8_t *data = NULL;
    esp_partition_mmap_handle_t handle;
    uint32_t size = slot->size;
    esp_err_t e;
    lmf_error err;
    if (check_header(part, slot->offset, &size, reason, cap) != 0) return -1;
    e = map_slot(part, slot->offset, size, &data, &handle);
    if (e != ESP_OK) {
        snprintf(reason, cap,
                 "the model (%u bytes) cannot be mapped into the address space (%s): use a smaller model or "
                 "less PSRAM",
                 (unsigned)size, esp_err_to_name(e));
        return -1;
    }
    if (slot->crc && lmf_crc32(0, data, size) != slot->crc) {
        esp_partition_munmap(handle);
        snprintf(reason, cap, "the model in flash does not match its commit record: upload it again");
        return -1;
    }
    /* every offset, table and tensor, and the CRC-32 of the whole blob */
    if (lmf_blob_open(blob, data, size, 1, &err) != 0) {
        esp_partition_munmap(handle);
        snprintf(reason, cap, "the model in flash is unusable (%s): upload it again with `lmflash upload-model`", err.msg);
        return -1;
    }
    return 0; /* stays mapped for as long as the firmware runs */
}

int model_partition_open(lmf_blob *blob, model_partition *info, char *reason, size_t cap)
{
    lmf_store_slot cands[2];
    char why[LMF_ERROR_MAX + 200];
    int n, i;

    memset(info, 0, sizeof *info);
    info->next_seq = 1;
    info->part = esp_partition_find_first((esp_partition_type_t)LMF_MODEL_PARTITION_TYPE,
                                          (esp_partition_subtype_t)LMF_MODEL_PARTITION_SUBTYPE, LMF_MODEL_PARTITION_LABEL);
    if (!info->part) {
        snprintf(reason, cap,
                 "the partition table has no `model` partition (type 0x40): flash the firmware with its "
                 "partitions-*.csv (`idf.py flash`), then upload a model with `lmflash upload-model MODEL.blob`");
        return -1;
    }
    info->address = info->part->address;
    info->size = info->part->size;
    info->io.size = info->part->size;
    info->io.read = flash_read;
    info->io.erase = flash_erase;
    info->io.write = flash_write;
    info->io.ctx = (void *)info->part; /* the io callbacks only read through it */

    /* best first: the newest committed model, then the other slot */
    n = lmf_store_candidates(&info->io, cands, &info->next_seq);
    reason[0] = '\0';
    for (i = 0; i < n; i++) {
        if (open_slot(info->part, &cands[i], blob, why, sizeof why) == 0) {
            info->slot_offset = cands[i].offset;
            info->blob_bytes = blob->size;
            return 0;
        }
        if (!reason[0]) snprintf(reason, cap, "%s", why); /* the best candidate's problem is the one to tell */
    }
    if (!reason[0]) snprintf(reason, cap, "there is no model in flash yet: upload one with `lmflash upload-model MODEL.blob`");
    return -1;
}

int model_partition_check(const model_partition *info, uint32_t offset, uint32_t size, size_t *arena_bytes, char *why,
                          size_t cap)
{
    const uint8_t *data = NULL;
    esp_partition_mmap_handle_t handle;
    lmf_blob b;
    lmf_error err;
    uint32_t bytes = size;
    *arena_bytes = 0;
    if (!info->part) { snprintf(why, cap, "there is no model partition"); return -1; }
    if (check_header(info->part, offset, &bytes, why, cap) != 0) return -1;
    if (map_slot(info->part, offset, size, &data, &handle) != ESP_OK) return 0; /* no room beside the running model: the boot checks it */
    if (lmf_blob_open(&b, data, size, 1, &err) != 0) {
        esp_partition_munmap(handle);
        snprintf(why, cap, "%s", err.msg);
        return -1;
    }
    *arena_bytes = lmf_run_bytes(&b, 1);
    esp_partition_munmap(handle);
    return 0;
}
