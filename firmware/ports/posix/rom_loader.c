/* The ESP32-S3 ROM loader and flasher stub of the virtual board: see
 * rom_loader.h. Sources for the behaviour: esptool's serial-protocol.rst,
 * esptool-js 0.7.0 lib/esploader.js, esp-flasher-stub src/command_handler.c
 * and src/commands.h (ESP32S3-FACTS.md section 2). */
#include "rom_loader.h"

#include <openssl/evp.h>
#include <string.h>

enum {
    OP_FLASH_BEGIN = 0x02, OP_FLASH_DATA = 0x03, OP_FLASH_END = 0x04, OP_MEM_BEGIN = 0x05, OP_MEM_END = 0x06,
    OP_MEM_DATA = 0x07, OP_SYNC = 0x08, OP_WRITE_REG = 0x09, OP_READ_REG = 0x0A, OP_SPI_SET_PARAMS = 0x0B,
    OP_SPI_ATTACH = 0x0D, OP_READ_FLASH_SLOW = 0x0E, OP_CHANGE_BAUDRATE = 0x0F, OP_FLASH_DEFL_BEGIN = 0x10, OP_FLASH_DEFL_DATA = 0x11,
    OP_FLASH_DEFL_END = 0x12, OP_SPI_FLASH_MD5 = 0x13, OP_GET_SECURITY_INFO = 0x14, OP_ERASE_FLASH = 0xD0,
    OP_ERASE_REGION = 0xD1, OP_READ_FLASH = 0xD2, OP_RUN_USER_CODE = 0xD3
};

/* Failures, each with the stub's status code and the ROM's error code. */
enum { E_OK, E_BAD_LEN, E_CHECKSUM, E_INVALID, E_SPI, E_NOT_IN_FLASH, E_INFLATE, E_NOT_ENOUGH, E_TOO_MUCH };
static const uint16_t stub_code[] = {0x0000, 0xC000, 0xC100, 0xC300, 0xC400, 0xC600, 0xC700, 0xC800, 0xC900};
static const uint8_t rom_code[] = {0x00, 0x05, 0x07, 0x05, 0x08, 0x06, 0x0B, 0x05, 0x05};

#define SPI_BASE 0x60002000u
#define SPI_CMD (SPI_BASE + 0x00)
#define SPI_USR2 (SPI_BASE + 0x20)
#define SPI_W0 (SPI_BASE + 0x58)
#define SPI_CMD_USR (1u << 18)

static uint32_t u32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }

void rom_loader_init(rom_loader *l, const rom_loader_io *io, flash_image *flash)
{
    memset(l, 0, sizeof *l);
    l->io = io;
    l->flash = flash;
}

void rom_loader_free(rom_loader *l)
{
    if (l->z_ready) inflateEnd(&l->z);
    l->z_ready = 0;
    if (l->read_md5) EVP_MD_CTX_free((EVP_MD_CTX *)l->read_md5);
    l->read_md5 = NULL;
}

/* ---- output -------------------------------------------------------------- */

static void send_slip(rom_loader *l, const uint8_t *data, size_t len)
{
    size_t i, o = 0;
    l->tx[o++] = 0xC0;
    for (i = 0; i < len && o + 3 < sizeof l->tx; i++) {
        if (data[i] == 0xC0) { l->tx[o++] = 0xDB; l->tx[o++] = 0xDC; }
        else if (data[i] == 0xDB) { l->tx[o++] = 0xDB; l->tx[o++] = 0xDD; }
        else l->tx[o++] = data[i];
    }
    l->tx[o++] = 0xC0;
    l->io->write(l->io->ctx, l->tx, o);
}

static void respond(rom_loader *l, uint8_t op, uint32_t value, const uint8_t *data, size_t dlen, int err)
{
    uint8_t *r = l->resp;
    size_t status = l->stub ? 2 : 4, n;
    if (dlen > sizeof l->resp - 8 - status) dlen = sizeof l->resp - 8 - status;
    n = dlen + status;
    r[0] = 0x01;
    r[1] = op;
    r[2] = (uint8_t)n;
    r[3] = (uint8_t)(n >> 8);
    put32(r + 4, value);
    if (dlen) memcpy(r + 8, data, dlen);
    if (l->stub) {
        r[8 + dlen] = (uint8_t)(stub_code[err] >> 8); /* big-endian, esp-flasher-stub s_send_response */
        r[9 + dlen] = (uint8_t)stub_code[err];
    } else {
        r[8 + dlen] = err ? 1 : 0;
        r[9 + dlen] = rom_code[err];
        r[10 + dlen] = 0;
        r[11 + dlen] = 0;
    }
    send_slip(l, r, 8 + n);
}

/* ---- registers ------------------------------------------------------------- */

static uint32_t reg_default(const rom_loader *l, uint32_t addr)
{
    switch (addr) {
    case 0x40001000u: return 0x09;                /* chip magic: ESP32-S3 */
    case 0x60007044u: return 0x4D460001u;         /* MAC 02:4c:4d:46:00:01 (locally administered) */
    case 0x60007048u: return 0x0000024Cu;
    case 0x60007050u: return 2u << 18;            /* eFuse BLOCK1 word 3: QFN56, minor revision 2 */
    case 0x6000706Cu: return 1;                   /* BLOCK2 word 4: block version major 1 */
    case 0x60000014u: return 694;                 /* UART_CLKDIV at 115200 from 80 MHz */
    case SPI_W0: return 0;
    default: (void)l; return 0;
    }
}

static uint32_t reg_read(const rom_loader *l, uint32_t addr)
{
    int i;
    for (i = 0; i < l->nregs; i++)
        if (l->reg_addr[i] == addr) return l->reg_val[i];
    return reg_default(l, addr);
}

static void reg_store(rom_loader *l, uint32_t addr, uint32_t value)
{
    int i;
    for (i = 0; i < l->nregs; i++)
        if (l->reg_addr[i] == addr) { l->reg_val[i] = value; return; }
    if (l->nregs < ROM_REGS) {
        l->reg_addr[l->nregs] = addr;
        l->reg_val[l->nregs++] = value;
    }
}

static void reg_write(rom_loader *l, uint32_t addr, uint32_t value, uint32_t mask)
{
    uint32_t v = (value & mask) | (reg_read(l, addr) & ~mask);
    if (addr == 0x40001000u) return; /* ROM */
    if (addr == SPI_CMD && (v & SPI_CMD_USR)) {
        /* a user command on the flash's SPI bus: RDID answers the JEDEC id
         * (GigaDevice, capacity code of this flash); others read zeros. Done at once. */
        uint32_t cmd = reg_read(l, SPI_USR2) & 0xFFFF;
        reg_store(l, SPI_W0, cmd == 0x9F ? 0xC8u | 0x40u << 8 | (uint32_t)flash_size_code(l->flash->size) << 16 : 0);
        v &= ~SPI_CMD_USR;
    }
    reg_store(l, addr, v);
}

/* ---- commands -------------------------------------------------------------- */

static int checksum_ok(const uint8_t *data, size_t len, uint32_t expected)
{
    uint8_t c = 0xEF;
    size_t i;
    for (i = 0; i < len; i++) c ^= data[i];
    return c == expected;
}

static int in_ram(uint32_t addr, uint32_t len)
{
    static const uint32_t ram[][2] = {{0x3FC88000u, 0x3FD00000u}, {0x40370000u, 0x403E0000u}, {0x600FE000u, 0x60100000u}, {0x50000000u, 0x50002000u}};
    size_t i;
    for (i = 0; i < sizeof ram / sizeof ram[0]; i++)
        if (addr >= ram[i][0] && addr <= ram[i][1] && len <= ram[i][1] - addr) return 1;
    return 0;
}

static int flash_range_ok(const rom_loader *l, uint32_t addr, uint32_t len)
{
    return addr <= l->flash->size && len <= l->flash->size - addr;
}

/* Erases what the write up to `end` needs (the stub erases just in time). */
static int erase_to(rom_loader *l, uint32_t end)
{
    while (l->erase_next < end && l->erase_next < l->erase_end) {
        if (flash_erase(l->flash, l->erase_next, FLASH_SECTOR) != 0) return E_SPI;
        l->erase_next += FLASH_SECTOR;
    }
    return E_OK;
}

static int write_flash(rom_loader *l, const uint8_t *data, uint32_t len)
{
    int e;
    if (len > l->flash_remaining) return E_TOO_MUCH;
    if ((e = erase_to(l, l->flash_addr + len)) != E_OK) return e;
    if (flash_write(l->flash, l->flash_addr, data, len) != 0) return E_SPI;
    l->flash_addr += len;
    l->flash_remaining -= len;
    return E_OK;
}

static int flash_begin(rom_loader *l, const uint8_t *d, uint16_t len, int compressed)
{
    uint32_t size, offset, start, end;
    if (len != 16 && len != 20) return E_BAD_LEN;
    size = u32(d);
    offset = u32(d + 12);
    if (!flash_range_ok(l, offset, size)) return E_SPI;
    start = offset & ~(FLASH_SECTOR - 1);
    end = (uint32_t)(((uint64_t)offset + size + FLASH_SECTOR - 1) & ~(uint64_t)(FLASH_SECTOR - 1));
    if (end > l->flash->size) end = l->flash->size;
    l->flash_active = 1;
    l->compressed = compressed;
    l->flash_addr = offset;
    l->flash_remaining = size;
    l->erase_next = start;
    l->erase_end = end;
    if (!l->stub && erase_to(l, end) != E_OK) return E_SPI; /* the ROM erases it all at BEGIN */
    if (compressed) {
        if (l->z_ready) inflateReset(&l->z);
        else {
            memset(&l->z, 0, sizeof l->z);
            if (inflateInit(&l->z) != Z_OK) return E_INFLATE;
            l->z_ready = 1;
        }
    }
    return E_OK;
}

/* Writes a *_DATA block's payload (the stub does this after its reply). */
static int flash_data_post(rom_loader *l, const uint8_t *data, uint32_t len)
{
    if (!l->compressed) return write_flash(l, data, len < l->flash_remaining ? len : l->flash_remaining);
    l->z.next_in = (Bytef *)(uintptr_t)data;
    l->z.avail_in = len;
    for (;;) {
        int rc;
        uint32_t produced;
        l->z.next_out = l->inflated;
        l->z.avail_out = sizeof l->inflated;
        rc = inflate(&l->z, Z_NO_FLUSH);
        produced = (uint32_t)(sizeof l->inflated - l->z.avail_out);
        if (produced) {
            int e = write_flash(l, l->inflated, produced);
            if (e != E_OK) return e;
        }
        if (rc == Z_STREAM_END) return l->z.avail_in ? E_TOO_MUCH : E_OK;
        if (rc == Z_BUF_ERROR && l->z.avail_in == 0) return E_OK; /* wants the next block */
        if (rc != Z_OK && rc != Z_BUF_ERROR) return E_INFLATE;
        if (l->z.avail_in == 0 && l->z.avail_out != 0) return E_OK;
    }
}

static int md5_of(rom_loader *l, uint32_t addr, uint32_t size, uint8_t out[16])
{
    const uint8_t *p = flash_at(l->flash, addr, size);
    unsigned int n = 0;
    if (!p) return E_SPI;
    return EVP_Digest(p, size, out, &n, EVP_md5(), NULL) == 1 ? E_OK : E_SPI;
}

static void read_flash_next(rom_loader *l)
{
    uint32_t n = l->read_left < l->read_packet ? l->read_left : l->read_packet;
    const uint8_t *p = flash_at(l->flash, l->read_addr, n);
    if (n && p) {
        EVP_DigestUpdate((EVP_MD_CTX *)l->read_md5, p, n);
        send_slip(l, p, n);
        l->read_addr += n;
        l->read_left -= n;
    }
}

static void read_flash_finish(rom_loader *l)
{
    uint8_t md5[16];
    unsigned int n = 0;
    EVP_DigestFinal_ex((EVP_MD_CTX *)l->read_md5, md5, &n);
    send_slip(l, md5, sizeof md5);
    l->reading = 0;
}

/* A frame from the host while READ_FLASH streams: the 4-byte count of bytes received. */
static void read_flash_ack(rom_loader *l, const uint8_t *p, size_t len)
{
    if (len != 4) { read_flash_finish(l); return; } /* not an ack: the stub stops there */
    l->read_acked = u32(p);
    if (l->read_left > 0) read_flash_next(l);
    else if (l->read_acked >= l->read_total) read_flash_finish(l);
}

static void handle_command(rom_loader *l, const uint8_t *p, size_t size)
{
    uint8_t op = p[1];
    uint16_t len = (uint16_t)(p[2] | p[3] << 8);
    uint32_t chk = u32(p + 4), value = 0;
    const uint8_t *d = p + 8;
    uint8_t out[64];
    size_t out_len = 0;
    int e = E_OK, post = 0, i;

    if (p[0] != 0x00) { respond(l, op, 0, NULL, 0, E_INVALID); return; }
    if (size != (size_t)len + 8) { respond(l, op, 0, NULL, 0, E_BAD_LEN); return; }
    if (l->stub && l->pending_error) { /* a write after the last ACK failed: say so now */
        e = l->pending_error;
        l->pending_error = E_OK;
        respond(l, op, 0, NULL, 0, e);
        return;
    }
    switch (op) {
    case OP_SYNC: {
        static const uint8_t pattern[4] = {0x07, 0x07, 0x12, 0x20};
        if (len != 36) { e = E_BAD_LEN; break; }
        for (i = 4; i < 36; i++)
            if (d[i] != 0x55) e = E_INVALID;
        if (memcmp(d, pattern, 4) != 0) e = E_INVALID;
        if (e != E_OK) break;
        value = l->stub ? 0 : 0x20120707u; /* the ROM's replies carry a value, the stub's 0 */
        for (i = 0; i < 7; i++) respond(l, op, value, NULL, 0, E_OK); /* 8 replies in all */
        break;
    }
    case OP_READ_REG:
        if (len != 4) e = E_BAD_LEN;
        else value = reg_read(l, u32(d));
        break;
    case OP_WRITE_REG:
        if (len == 0 || len % 16 != 0) { e = E_NOT_ENOUGH; break; }
        for (i = 0; i < len; i += 16) reg_write(l, u32(d + i), u32(d + i + 4), u32(d + i + 8));
        break;
    case OP_GET_SECURITY_INFO:
        if (len != 0) { e = E_BAD_LEN; break; }
        memset(out, 0, 20);
        put32(out + 12, 9); /* chip id: ESP32-S3 */
        out_len = 20;
        break;
    case OP_SPI_ATTACH:
        if (len != 4 && len != 8) e = E_BAD_LEN;
        break;
    case OP_SPI_SET_PARAMS:
        if (len != 24) e = E_BAD_LEN;
        break;
    case OP_CHANGE_BAUDRATE:
        if (len != 8) { e = E_BAD_LEN; break; }
        if (u32(d) < 300 || u32(d) > 5000000) { e = E_INVALID; break; }
        post = 1;
        break;
    case OP_MEM_BEGIN:
        if (len != 16) { e = E_BAD_LEN; break; }
        if (!in_ram(u32(d + 12), u32(d))) { e = E_INVALID; break; }
        l->mem_active = 1;
        l->mem_remaining = u32(d);
        l->mem_addr = u32(d + 12);
        if (l->mem_addr == STUB_TEXT_START || l->mem_text_len == 0) { l->mem_text_start = l->mem_addr; l->mem_text_len = l->mem_remaining; }
        break;
    case OP_MEM_DATA: {
        uint32_t n;
        if (len < 16) { e = E_NOT_ENOUGH; break; }
        if (!l->mem_active) { e = E_NOT_IN_FLASH; break; }
        n = u32(d);
        if (n != (uint32_t)len - 16 || n > l->mem_remaining) { e = E_TOO_MUCH; break; }
        if (!checksum_ok(d + 16, n, chk)) { e = E_CHECKSUM; l->checksum_errors++; break; }
        l->mem_addr += n; /* the virtual chip cannot run what it is given: it only counts it */
        l->mem_remaining -= n;
        break;
    }
    case OP_MEM_END:
        if (len != 8) { e = E_BAD_LEN; break; }
        if (!l->mem_active) { e = E_NOT_IN_FLASH; break; }
        l->mem_active = 0;
        if (u32(d) == 0) post = 1; /* run the entry point after the reply */
        break;
    case OP_FLASH_BEGIN:
    case OP_FLASH_DEFL_BEGIN:
        e = flash_begin(l, d, len, op == OP_FLASH_DEFL_BEGIN);
        break;
    case OP_FLASH_DATA:
    case OP_FLASH_DEFL_DATA: {
        uint32_t n;
        if (len < 16) { e = l->stub ? E_NOT_ENOUGH : E_BAD_LEN; break; }
        if (!l->flash_active || l->compressed != (op == OP_FLASH_DEFL_DATA)) { e = E_NOT_IN_FLASH; break; }
        n = u32(d);
        if (n != (uint32_t)len - 16) { e = E_TOO_MUCH; break; }
        if (op == OP_FLASH_DEFL_DATA && l->flash_remaining == 0 && n > 4) { e = E_TOO_MUCH; break; }
        l->data_packets++;
        if (n > 0 && (l->corrupt_all || l->data_packets == l->corrupt_packet))
            ((uint8_t *)(uintptr_t)d)[16 + n / 2] ^= 0x10; /* the line flipped a bit */
        if (!checksum_ok(d + 16, n, chk)) { e = E_CHECKSUM; l->checksum_errors++; break; }
        if (l->stub) post = 1; /* the stub ACKs first, then writes */
        else e = flash_data_post(l, d + 16, n);
        break;
    }
    case OP_FLASH_END:
    case OP_FLASH_DEFL_END:
        if (len != 4) { e = E_BAD_LEN; break; }
        if (l->stub) {
            if (!l->flash_active) { e = E_NOT_IN_FLASH; break; }
            if (l->flash_remaining != 0) { e = E_BAD_LEN; break; }
            l->flash_active = 0; /* the stub never reboots here ("TODO: Implement reboot") */
        } else {
            l->flash_active = 0;
            post = 1;
        }
        break;
    case OP_SPI_FLASH_MD5: {
        uint8_t md5[16];
        if (len != 16) { e = E_BAD_LEN; break; }
        if ((e = md5_of(l, u32(d), u32(d + 4), md5)) != E_OK) break;
        if (l->stub) { memcpy(out, md5, 16); out_len = 16; }
        else {
            static const char hex[] = "0123456789abcdef";
            for (i = 0; i < 16; i++) { out[2 * i] = (uint8_t)hex[md5[i] >> 4]; out[2 * i + 1] = (uint8_t)hex[md5[i] & 15]; }
            out_len = 32; /* the ROM answers in ASCII hex */
        }
        break;
    }
    case OP_ERASE_FLASH:
        if (!l->stub) { e = E_INVALID; break; }
        if (flash_erase(l->flash, 0, l->flash->size) != 0) e = E_SPI;
        break;
    case OP_ERASE_REGION:
        if (!l->stub) { e = E_INVALID; break; }
        if (len != 8 || u32(d) % FLASH_SECTOR || u32(d + 4) % FLASH_SECTOR) { e = E_BAD_LEN; break; }
        if (flash_erase(l->flash, u32(d), u32(d + 4)) != 0) e = E_SPI;
        break;
    case OP_READ_FLASH:
        if (!l->stub) { e = E_INVALID; break; }
        if (len != 16 || u32(d + 8) == 0 || u32(d + 8) > 4096) { e = E_BAD_LEN; break; }
        if (!flash_range_ok(l, u32(d), u32(d + 4))) { e = E_SPI; break; }
        post = 1;
        break;
    case OP_READ_FLASH_SLOW: /* ROM only: u32 offset, u32 length <= 64; the answer always carries 64 bytes (esptool read_flash_slow) */
        if (l->stub) { e = E_INVALID; break; }
        if (len != 8 || u32(d + 4) > 64) { e = E_BAD_LEN; break; }
        if (!flash_range_ok(l, u32(d), u32(d + 4))) { e = E_SPI; break; }
        memset(out, 0, 64);
        if (flash_read(l->flash, u32(d), out, u32(d + 4)) != 0) { e = E_SPI; break; }
        out_len = 64;
        break;
    case OP_RUN_USER_CODE:
        if (l->stub) return; /* no reply, and the stub does nothing ("TODO") */
        e = E_INVALID;
        break;
    default: e = E_INVALID;
    }
    respond(l, op, value, out, e == E_OK ? out_len : 0, e);
    if (e != E_OK || !post) return;
    /* after the reply */
    switch (op) {
    case OP_CHANGE_BAUDRATE:
        if (l->io->set_baud) l->io->set_baud(l->io->ctx, u32(d));
        break;
    case OP_MEM_END:
        if (u32(d + 4) == STUB_ENTRY || (u32(d + 4) >= l->mem_text_start && u32(d + 4) < l->mem_text_start + l->mem_text_len)) {
            static const uint8_t ohai[4] = {'O', 'H', 'A', 'I'};
            l->stub = 1; /* whatever was loaded, the virtual chip runs its flasher stub */
            l->flash_active = 0;
            send_slip(l, ohai, 4);
        }
        break;
    case OP_FLASH_DATA:
    case OP_FLASH_DEFL_DATA:
        l->pending_error = flash_data_post(l, d + 16, u32(d));
        break;
    case OP_FLASH_END:
    case OP_FLASH_DEFL_END:
        if (l->io->leave) l->io->leave(l->io->ctx, u32(d) != 0);
        break;
    case OP_READ_FLASH:
        if (!l->read_md5) l->read_md5 = EVP_MD_CTX_new();
        if (!l->read_md5) break;
        EVP_DigestInit_ex((EVP_MD_CTX *)l->read_md5, EVP_md5(), NULL);
        l->reading = 1;
        l->read_addr = u32(d);
        l->read_left = l->read_total = u32(d + 4);
        l->read_packet = u32(d + 8);
        l->read_acked = 0;
        if (l->read_left) read_flash_next(l);
        else read_flash_finish(l);
        break;
    default: break;
    }
}

static void handle_frame(rom_loader *l, const uint8_t *p, size_t len)
{
    l->frames++;
    if (l->reading) { read_flash_ack(l, p, len); return; }
    if (len < 8) { l->bad_frames++; return; } /* too short to be a command: dropped */
    handle_command(l, p, len);
}

void rom_loader_feed(rom_loader *l, const uint8_t *data, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++) {
        uint8_t b = data[i];
        if (!l->in_frame) { /* the loader ignores bytes until a frame starts */
            if (b == 0xC0) { l->in_frame = 1; l->rx_len = 0; l->escaped = l->overflow = 0; }
            continue;
        }
        if (b == 0xC0) {
            if (l->overflow || l->escaped) l->bad_frames++;
            else if (l->rx_len > 0) handle_frame(l, l->rx, l->rx_len);
            /* a 0xC0 both ends a frame and may start the next one */
            l->rx_len = 0;
            l->escaped = l->overflow = 0;
            continue;
        }
        if (l->overflow) continue;
        if (l->escaped) {
            l->escaped = 0;
            if (b == 0xDC) b = 0xC0;
            else if (b == 0xDD) b = 0xDB;
            else { l->overflow = 1; continue; } /* a broken escape spoils the frame */
        } else if (b == 0xDB) {
            l->escaped = 1;
            continue;
        }
        if (l->rx_len >= sizeof l->rx) { l->overflow = 1; continue; }
        l->rx[l->rx_len++] = b;
    }
}

int sync_spotter_push(sync_spotter *s, uint8_t b)
{
    size_t i;
    if (b == 0xC0) {
        int sync = s->in_frame && !s->escaped && s->len == 44 && s->buf[0] == 0 && s->buf[1] == 0x08 && s->buf[2] == 36 &&
                   s->buf[3] == 0 && s->buf[8] == 0x07 && s->buf[9] == 0x07 && s->buf[10] == 0x12 && s->buf[11] == 0x20;
        for (i = 12; sync && i < 44; i++) sync = s->buf[i] == 0x55;
        s->in_frame = 1;
        s->len = 0;
        s->escaped = 0;
        return sync;
    }
    if (!s->in_frame) return 0;
    if (s->escaped) {
        s->escaped = 0;
        b = b == 0xDC ? 0xC0 : b == 0xDD ? 0xDB : 0;
    } else if (b == 0xDB) {
        s->escaped = 1;
        return 0;
    }
    if (s->len < sizeof s->buf) s->buf[s->len++] = b;
    else s->in_frame = 0;
    return 0;
}
