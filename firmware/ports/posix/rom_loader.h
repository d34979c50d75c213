/* The ESP32-S3 serial download mode for the virtual board: the boot ROM's
 * loader and, once a host has uploaded and started it, the flasher stub
 * (esp-flasher-stub as shipped with esptool/esptool-js). Enough of both for
 * unmodified esptool-js: SLIP framing, SYNC (8 replies), READ_REG/WRITE_REG
 * (chip detection, eFuses, the SPI flash-ID sequence), GET_SECURITY_INFO,
 * MEM_BEGIN/DATA/END (stub upload, then "OHAI"), FLASH_BEGIN/DATA/END,
 * FLASH_DEFL_BEGIN/DATA/END (zlib), SPI_FLASH_MD5, CHANGE_BAUDRATE,
 * SPI_ATTACH, SPI_SET_PARAMS, and in the stub READ_FLASH, ERASE_FLASH,
 * ERASE_REGION. Status bytes as each one sends them: the ROM 4 bytes
 * (status, error code 0x05..0x0B, 2 reserved), the stub 2 (big-endian
 * 0xC000..0xC900, 0xFF00); the stub acknowledges a data block before writing
 * it and reports a write or inflate error with the next command.
 *
 * Byte-level and allocation-free except zlib's inflate state, so that a
 * hostile-input test can feed it anything (firmware/tests/rom_loader_fuzz.c). */
#ifndef LMF_ROM_LOADER_H
#define LMF_ROM_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>
#include "flash_image.h"

#define ROM_RX_MAX (0x4000 + 16 + 8 + 64)  /* the largest packet: a 16 KiB FLASH_DATA block */
#define ROM_REGS 64

/* The stub esptool-js 0.7.0 uploads to an ESP32-S3 (targets/stub_flasher/esp32s3.json). */
#define STUB_TEXT_START 0x40378000u
#define STUB_ENTRY 0x40379524u

typedef struct rom_loader_io {
    void (*write)(void *ctx, const uint8_t *data, size_t len);
    /* After the reply to CHANGE_BAUDRATE: the chip's UART now runs at baud. */
    void (*set_baud)(void *ctx, uint32_t baud);
    /* ROM FLASH_END/FLASH_DEFL_END: 0 = reboot, 1 = run the app. */
    void (*leave)(void *ctx, int run_app);
    void *ctx;
} rom_loader_io;

typedef struct rom_loader {
    const rom_loader_io *io;
    flash_image *flash;
    int stub;                      /* 0: the ROM answers; 1: the stub runs */
    /* SLIP receiver */
    uint8_t rx[ROM_RX_MAX];
    size_t rx_len;
    int in_frame, escaped, overflow;
    /* MEM_BEGIN .. MEM_END */
    int mem_active;
    uint32_t mem_addr, mem_remaining, mem_text_start, mem_text_len;
    /* FLASH_(DEFL_)BEGIN .. END */
    int flash_active, compressed, z_ready;
    uint32_t flash_addr, flash_remaining, erase_next, erase_end;
    z_stream z;
    uint8_t inflated[0x4000];
    int pending_error;             /* stub: a post-processing error, sent with the next command */
    /* READ_FLASH (stub) */
    int reading;
    uint32_t read_addr, read_left, read_packet, read_total, read_acked;
    void *read_md5;                /* EVP_MD_CTX */
    /* registers that were written (SPI controller, etc.) */
    uint32_t reg_addr[ROM_REGS], reg_val[ROM_REGS];
    int nregs;
    /* fault injection: corrupt the n-th data packet (1-based), or every one */
    uint32_t data_packets, corrupt_packet;
    int corrupt_all;
    /* counters */
    uint32_t frames, bad_frames, checksum_errors;
    uint8_t tx[2 * 4200 + 2];
    uint8_t resp[4200];
} rom_loader;

void rom_loader_init(rom_loader *l, const rom_loader_io *io, flash_image *flash);
void rom_loader_free(rom_loader *l);
/* Bytes from the host. */
void rom_loader_feed(rom_loader *l, const uint8_t *data, size_t len);

/* Spots a SLIP-framed SYNC command in a byte stream (the virtual board's
 * stand-in for "the host pulled IO0 low and reset the chip" when it has no
 * modem lines). */
typedef struct sync_spotter {
    uint8_t buf[64];
    size_t len;
    int in_frame, escaped;
} sync_spotter;
/* Returns 1 when `byte` completed a SYNC packet. */
int sync_spotter_push(sync_spotter *s, uint8_t byte);

#endif
