/* The virtual board's SPI NOR flash: a file of 4, 8 or 16 MB (or memory, for
 * tests), with NOR semantics: erase sets 4 KiB sectors to 0xFF, a write can
 * only clear bits (new = old & data), as on the chip. */
#ifndef LMF_FLASH_IMAGE_H
#define LMF_FLASH_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#define FLASH_SECTOR 4096u

typedef struct flash_image {
    uint8_t *mem;
    uint32_t size;
    int fd;            /* -1: memory only */
    /* fault injection: one bit that cannot be programmed to 0 (a worn cell) */
    int64_t stuck_addr;
    uint8_t stuck_bit;
    int stuck_once;    /* only the first write over it fails */
    uint32_t erases, writes;
} flash_image;

/* Opens (creating it erased when missing) the image file; size 0: the
 * existing file's size. Returns 0, or -1 with a sentence in why. */
int flash_open(flash_image *f, const char *path, uint32_t size, char *why, size_t cap);
/* An erased flash in memory (tests, fuzzing). */
int flash_open_memory(flash_image *f, uint32_t size);
void flash_close(flash_image *f);

/* Each returns 0, or -1 when [addr, addr + len) is outside the flash or misaligned (erase). */
int flash_read(const flash_image *f, uint32_t addr, void *dst, size_t len);
int flash_erase(flash_image *f, uint32_t addr, uint32_t len);
int flash_write(flash_image *f, uint32_t addr, const void *src, size_t len);
/* Bytes of the flash in place (read only), or NULL when outside. */
const uint8_t *flash_at(const flash_image *f, uint32_t addr, size_t len);

/* JEDEC capacity code of the size: 0x16 = 4 MB, 0x17 = 8 MB, 0x18 = 16 MB. */
uint8_t flash_size_code(uint32_t size);

#endif
