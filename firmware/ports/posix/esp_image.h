/* What the ESP32-S3's boot ROM and ESP-IDF's 2nd-stage bootloader check
 * before they run code from flash, for the virtual board: the image format
 * (components/bootloader_support/include/esp_app_format.h: magic 0xE9,
 * chip id 9, segments, XOR checksum, appended SHA-256) and the partition
 * table (esp_flash_partitions.h, gen_esp32part.py: 32-byte entries with magic
 * 0x50AA, then an MD5 entry 0xEBEB). */
#ifndef LMF_ESP_IMAGE_H
#define LMF_ESP_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include "flash_image.h"

#define ESP_BOOTLOADER_OFFSET 0x0u
#define ESP_PARTITION_TABLE_OFFSET 0x8000u
#define ESP_PARTITION_TABLE_MAX 0xC00u
#define ESP_CHIP_ID_S3 9u
#define ESP_CHIP_REVISION 2u /* the virtual chip is an ESP32-S3 v0.2 */

typedef struct esp_partition {
    uint8_t type, subtype;
    uint32_t offset, size, flags;
    char label[17];
} esp_partition;

typedef struct esp_ptable {
    int count;
    esp_partition p[95];
} esp_ptable;

/* Reads and checks the partition table at `offset`. 0, or -1 with a sentence in why. */
int esp_ptable_read(const flash_image *f, uint32_t offset, esp_ptable *t, char *why, size_t cap);
/* The first partition matching type, subtype (-1: any) and label (NULL: any). */
const esp_partition *esp_ptable_find(const esp_ptable *t, int type, int subtype, const char *label);

/* Checks the image at `offset` (at most `max` bytes): header, chip id and
 * revision, segment addresses and lengths, checksum and, when appended, the
 * SHA-256. 0 (and the entry point), or -1 with a sentence in why. */
int esp_image_verify(const flash_image *f, uint32_t offset, uint32_t max, uint32_t *entry, char *why, size_t cap);

#endif
