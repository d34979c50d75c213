#include "esp_image.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static int digest(const EVP_MD *md, const uint8_t *data, size_t len, uint8_t *out)
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, md, NULL) == 1 ? 0 : -1;
}

int esp_ptable_read(const flash_image *f, uint32_t offset, esp_ptable *t, char *why, size_t cap)
{
    const uint8_t *tab = flash_at(f, offset, ESP_PARTITION_TABLE_MAX);
    uint32_t i;
    memset(t, 0, sizeof *t);
    if (!tab) { snprintf(why, cap, "the flash is too small for a partition table at 0x%x", offset); return -1; }
    for (i = 0; i + 32 <= ESP_PARTITION_TABLE_MAX; i += 32) {
        const uint8_t *e = tab + i;
        uint16_t magic = u16(e);
        if (magic == 0xFFFF) break; /* an erased entry ends the table */
        if (magic == 0xEBEB) {
            uint8_t md5[16];
            int k, ff = 1;
            for (k = 2; k < 16; k++) ff &= e[k] == 0xFF;
            if (!ff || digest(EVP_md5(), tab, i, md5) != 0 || memcmp(md5, e + 16, 16) != 0) {
                snprintf(why, cap, "partition table MD5 mismatch at 0x%x: the table is corrupt, flash it again", offset + i);
                return -1;
            }
            continue;
        }
        if (magic != 0x50AA) {
            snprintf(why, cap, "partition table entry %u at 0x%x has bad magic 0x%04x: flash the partition table again", i / 32, offset + i, magic);
            return -1;
        }
        if (t->count >= (int)(sizeof t->p / sizeof t->p[0])) break;
        {
            esp_partition *p = &t->p[t->count++];
            p->type = e[2];
            p->subtype = e[3];
            p->offset = u32(e + 4);
            p->size = u32(e + 8);
            memcpy(p->label, e + 12, 16);
            p->label[16] = '\0';
            p->flags = u32(e + 28);
            if (p->offset > f->size || p->size > f->size - p->offset) {
                snprintf(why, cap, "partition `%s` (0x%x, %u bytes) lies outside the %u-byte flash: the table was made for a bigger flash",
                         p->label, p->offset, p->size, f->size);
                return -1;
            }
        }
    }
    if (t->count == 0) { snprintf(why, cap, "no partition table at 0x%x (the flash there is erased or garbage)", offset); return -1; }
    return 0;
}

const esp_partition *esp_ptable_find(const esp_ptable *t, int type, int subtype, const char *label)
{
    int i;
    for (i = 0; i < t->count; i++) {
        const esp_partition *p = &t->p[i];
        if (p->type != type) continue;
        if (subtype >= 0 && p->subtype != subtype) continue;
        if (label && strcmp(p->label, label) != 0) continue;
        return p;
    }
    return NULL;
}

/* Where a segment may be loaded on an ESP32-S3 (esptool's MEMORY_MAP for the
 * S3, esp_image_format.c's checks): flash-mapped DROM/IROM, internal RAM,
 * RTC memory, and the padding segments esptool inserts at low addresses. */
static int segment_address_ok(uint32_t a, uint32_t len)
{
    static const uint32_t ranges[][2] = {
        {0x00000000u, 0x00010000u}, {0x3C000000u, 0x3E000000u}, {0x3FC88000u, 0x3FD00000u}, {0x40370000u, 0x403E0000u},
        {0x42000000u, 0x44000000u}, {0x50000000u, 0x50002000u}, {0x600FE000u, 0x60100000u},
    };
    size_t i;
    for (i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (a >= ranges[i][0] && a < ranges[i][1] && len <= ranges[i][1] - a) return 1;
    return 0;
}

int esp_image_verify(const flash_image *f, uint32_t offset, uint32_t max, uint32_t *entry, char *why, size_t cap)
{
    const uint8_t *h = flash_at(f, offset, 24);
    uint32_t pos, i, nseg, csum_at;
    uint8_t csum = 0xEF;
    uint16_t min_rev, max_rev;
    if (!h || max < 24) { snprintf(why, cap, "image at 0x%x lies outside the flash", offset); return -1; }
    if (h[0] != 0xE9) { snprintf(why, cap, "image at 0x%x has invalid magic byte (expected 0xE9, saw 0x%02x)", offset, h[0]); return -1; }
    if (u16(h + 12) != ESP_CHIP_ID_S3) {
        snprintf(why, cap, "image at 0x%x is for chip id %u, this is an ESP32-S3 (chip id 9): build it with `idf.py set-target esp32s3`", offset, u16(h + 12));
        return -1;
    }
    min_rev = u16(h + 15);
    max_rev = u16(h + 17);
    if (min_rev > ESP_CHIP_REVISION || (max_rev != 0 && max_rev != 0xFFFF && ESP_CHIP_REVISION > max_rev)) {
        snprintf(why, cap, "image at 0x%x runs on chip revisions v%u.%u to v%u.%u, this chip is v0.2", offset, min_rev / 100, min_rev % 100,
                 max_rev / 100, max_rev % 100);
        return -1;
    }
    nseg = h[1];
    if (nseg == 0 || nseg > 16) { snprintf(why, cap, "image at 0x%x has %u segments (1 to 16 allowed)", offset, nseg); return -1; }
    if (entry) *entry = u32(h + 4);
    pos = 24;
    for (i = 0; i < nseg; i++) {
        const uint8_t *sh = pos <= max - 8 ? flash_at(f, offset + pos, 8) : NULL;
        const uint8_t *data;
        uint32_t addr, len, k;
        if (!sh) { snprintf(why, cap, "image at 0x%x is truncated in the header of segment %u", offset, i); return -1; }
        addr = u32(sh);
        len = u32(sh + 4);
        pos += 8;
        if (len % 4 != 0) { snprintf(why, cap, "image at 0x%x: segment %u has a length (%u) that is not a multiple of 4", offset, i, len); return -1; }
        if (len > max - pos || !(data = flash_at(f, offset + pos, len))) {
            snprintf(why, cap, "image at 0x%x: segment %u (%u bytes) runs past the end of the partition", offset, i, len);
            return -1;
        }
        if (!segment_address_ok(addr, len)) {
            snprintf(why, cap, "image at 0x%x: segment %u loads to 0x%08x, which is not ESP32-S3 memory", offset, i, addr);
            return -1;
        }
        for (k = 0; k < len; k++) csum ^= data[k];
        pos += len;
    }
    csum_at = ((pos + 1 + 15) & ~15u) - 1; /* zero padding, then the checksum as the last byte of a 16-byte block */
    if (csum_at >= max || !flash_at(f, offset + csum_at, 1)) { snprintf(why, cap, "image at 0x%x is truncated before its checksum", offset); return -1; }
    if (f->mem[offset + csum_at] != csum) {
        snprintf(why, cap, "image at 0x%x: checksum failed (calculated 0x%02x, read 0x%02x)", offset, csum, f->mem[offset + csum_at]);
        return -1;
    }
    if (h[23] == 1) {
        uint8_t sha[32];
        const uint8_t *stored = csum_at + 1 <= max - 32 ? flash_at(f, offset + csum_at + 1, 32) : NULL;
        if (!stored) { snprintf(why, cap, "image at 0x%x is truncated in its SHA-256", offset); return -1; }
        if (digest(EVP_sha256(), f->mem + offset, csum_at + 1, sha) != 0 || memcmp(sha, stored, 32) != 0) {
            snprintf(why, cap, "image at 0x%x: the appended SHA-256 does not match (image corrupt)", offset);
            return -1;
        }
    }
    return 0;
}
