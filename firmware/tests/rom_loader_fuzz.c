#define _GNU_SOURCE
/* Hostile input for the virtual board's ROM loader and flasher stub, its boot
 * checks and the model store, meant to run under ASan/UBSan
 * (tests/flash-hostile.test.ts):
 *   1. a well-formed esptool session (sync, stub upload, deflated write, MD5,
 *      read back), checked for the right answers;
 *   2. garbage bytes, in ROM and stub mode;
 *   3. that session's packets damaged: bits flipped, cut short, escapes
 *      broken, length fields lying, frames too long, random opcodes;
 *   4. random and mutated partition tables and app images;
 *   5. random upload messages and commit journals through the session.
 * Usage: rom-loader-fuzz [ITERATIONS] [SEED]. Prints counters; exits non-zero
 * only when a well-formed session got a wrong answer. */
#include "esp_image.h"
#include "flash_image.h"
#include "rom_loader.h"

#include "lmf/model_upload.h"
#include "lmf/session.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* ---- capturing the loader's replies ----------------------------------------- */

static uint8_t out[1 << 20];
static size_t out_len;
static void cap_write(void *ctx, const uint8_t *d, size_t n)
{
    (void)ctx;
    if (out_len + n > sizeof out) out_len = 0;
    memcpy(out + out_len, d, n);
    out_len += n;
}
static uint32_t last_baud;
static void cap_baud(void *ctx, uint32_t b) { (void)ctx; last_baud = b; }
static int leaves;
static void cap_leave(void *ctx, int run) { (void)ctx; (void)run; leaves++; }
static const rom_loader_io io = {cap_write, cap_baud, cap_leave, NULL};

static size_t slip(const uint8_t *p, size_t n, uint8_t *o)
{
    size_t i, k = 0;
    o[k++] = 0xC0;
    for (i = 0; i < n; i++) {
        if (p[i] == 0xC0) { o[k++] = 0xDB; o[k++] = 0xDC; }
        else if (p[i] == 0xDB) { o[k++] = 0xDB; o[k++] = 0xDD; }
        else o[k++] = p[i];
    }
    o[k++] = 0xC0;
    return k;
}

static void put32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }

/* A command packet (not yet SLIP-encoded). */
static size_t command(uint8_t *pkt, uint8_t op, const uint8_t *data, size_t n, uint32_t chk)
{
    pkt[0] = 0;
    pkt[1] = op;
    pkt[2] = (uint8_t)n;
    pkt[3] = (uint8_t)(n >> 8);
    put32(pkt + 4, chk);
    if (n) memcpy(pkt + 8, data, n);
    return 8 + n;
}

static uint32_t xsum(const uint8_t *d, size_t n)
{
    uint8_t c = 0xEF;
    size_t i;
    for (i = 0; i < n; i++) c ^= d[i];
    return c;
}

/* The packets of one esptool-like session, as esptool-js sends them. */
#define MAX_PKTS 64
static uint8_t pkts[MAX_PKTS][0x4000 + 64];
static size_t pkt_len[MAX_PKTS];
static int npkts;
static uint8_t image[100000];

static void add(uint8_t op, const uint8_t *data, size_t n, uint32_t chk)
{
    pkt_len[npkts] = command(pkts[npkts], op, data, n, chk);
    npkts++;
}

static void build_session(void)
{
    uint8_t d[0x4000 + 16], z[120000];
    uLongf zlen = sizeof z;
    uint32_t i, off;
    for (i = 0; i < sizeof image; i++) image[i] = (uint8_t)(i * 7 + (i >> 9));
    compress2(z, &zlen, image, sizeof image, 9);
    npkts = 0;
    memset(d, 0x55, 36);
    d[0] = 7; d[1] = 7; d[2] = 0x12; d[3] = 0x20;
    add(0x08, d, 36, 0);                                        /* SYNC */
    add(0x14, NULL, 0, 0);                                      /* GET_SECURITY_INFO */
    put32(d, 0x40001000u); add(0x0A, d, 4, 0);                  /* READ_REG magic */
    put32(d, 64); put32(d + 4, 1); put32(d + 8, 0x1800); put32(d + 12, STUB_TEXT_START);
    add(0x05, d, 16, 0);                                        /* MEM_BEGIN */
    put32(d, 64); put32(d + 4, 0); put32(d + 8, 0); put32(d + 12, 0);
    memset(d + 16, 0xA5, 64);
    add(0x07, d, 80, xsum(d + 16, 64));                         /* MEM_DATA */
    put32(d, 0); put32(d + 4, STUB_ENTRY); add(0x06, d, 8, 0);  /* MEM_END: stub runs, OHAI */
    put32(d, 921600); put32(d + 4, 115200); add(0x0F, d, 8, 0); /* CHANGE_BAUDRATE */
    put32(d, sizeof image); put32(d + 4, (uint32_t)((zlen + 0x3FFF) / 0x4000)); put32(d + 8, 0x4000); put32(d + 12, 0x10000);
    add(0x10, d, 16, 0);                                        /* FLASH_DEFL_BEGIN */
    for (off = 0, i = 0; off < zlen; off += 0x4000, i++) {
        uint32_t n = (uint32_t)(zlen - off < 0x4000 ? zlen - off : 0x4000);
        put32(d, n); put32(d + 4, i); put32(d + 8, 0); put32(d + 12, 0);
        memcpy(d + 16, z + off, n);
        add(0x11, d, 16 + n, xsum(z + off, n));                 /* FLASH_DEFL_DATA */
    }
    put32(d, 1); add(0x12, d, 4, 0);                            /* FLASH_DEFL_END */
    put32(d, 0x10000); put32(d + 4, sizeof image); put32(d + 8, 0); put32(d + 12, 0);
    add(0x13, d, 16, 0);                                        /* SPI_FLASH_MD5 */
    put32(d, 0x10000); put32(d + 4, 5000); put32(d + 8, 0x1000); put32(d + 12, 1024);
    add(0xD2, d, 16, 0);                                        /* READ_FLASH */
}

static uint8_t enc[2 * (0x4000 + 64) + 2];

static void send_pkt(rom_loader *l, const uint8_t *p, size_t n)
{
    size_t k = slip(p, n, enc);
    rom_loader_feed(l, enc, k);
}

static int check_session(flash_image *f)
{
    rom_loader l;
    uint8_t md5[16], ack[4];
    unsigned int mlen = 0;
    int i, ok = 1;
    rom_loader_init(&l, &io, f);
    out_len = 0;
    for (i = 0; i < npkts; i++) send_pkt(&l, pkts[i], pkt_len[i]);
    /* READ_FLASH: ack the two packets (4096 + 904 bytes) */
    put32(ack, 4096); { size_t k = slip(ack, 4, enc); rom_loader_feed(&l, enc, k); }
    put32(ack, 5000); { size_t k = slip(ack, 4, enc); rom_loader_feed(&l, enc, k); }
    if (!l.stub) { fprintf(stderr, "FAIL: the stub did not start\n"); ok = 0; }
    if (last_baud != 921600) { fprintf(stderr, "FAIL: CHANGE_BAUDRATE not applied\n"); ok = 0; }
    if (memcmp(f->mem + 0x10000, image, sizeof image) != 0) { fprintf(stderr, "FAIL: the deflated image was not written right\n"); ok = 0; }
    EVP_Digest(image, sizeof image, md5, &mlen, EVP_md5(), NULL);
    if (!memmem(out, out_len, md5, 16)) { fprintf(stderr, "FAIL: no right MD5 in the replies\n"); ok = 0; }
    if (!memmem(out, out_len, "OHAI", 4)) { fprintf(stderr, "FAIL: no OHAI\n"); ok = 0; }
    if (l.reading) { fprintf(stderr, "FAIL: READ_FLASH did not finish\n"); ok = 0; }
    rom_loader_free(&l);
    return ok;
}

static void garbage(rom_loader *l, size_t n)
{
    static uint8_t g[4096];
    size_t i;
    if (n > sizeof g) n = sizeof g;
    for (i = 0; i < n; i++) g[i] = (rnd() & 3) == 0 ? 0xC0 : (rnd() & 7) == 0 ? 0xDB : (uint8_t)rnd();
    rom_loader_feed(l, g, n);
}

static void damaged(rom_loader *l)
{
    static uint8_t p[0x4000 + 200];
    int i = (int)(rnd() % (uint32_t)npkts);
    size_t n = pkt_len[i], k;
    memcpy(p, pkts[i], n);
    switch (rnd() % 8) {
    case 0: p[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8)); break;          /* a flipped bit */
    case 1: n = rnd() % n; break;                                        /* cut short */
    case 2: p[2] = (uint8_t)rnd(); p[3] = (uint8_t)rnd(); break;          /* the length lies */
    case 3: if (n > 12) put32(p + 8, rnd()); break;                      /* first word lies (sizes, addresses) */
    case 4: p[1] = (uint8_t)rnd(); break;                                /* another opcode */
    case 5: if (n > 20) { put32(p + 8, rnd() % 0x5000); put32(p + 12, rnd()); } break;
    case 6: if (n > 24) { put32(p + 16, rnd()); put32(p + 20, rnd()); } break;
    default: p[0] = (uint8_t)rnd(); break;                               /* direction */
    }
    k = slip(p, n, enc);
    if (rnd() % 10 == 0 && k > 3) enc[1 + rnd() % (k - 2)] = 0xDB;        /* a broken escape */
    if (rnd() % 10 == 0) k = k > 1 ? k - 1 : k;                          /* no end delimiter */
    rom_loader_feed(l, enc, k);
}

static void fuzz_loader(flash_image *f, long iterations)
{
    rom_loader l;
    long i;
    rom_loader_init(&l, &io, f);
    for (i = 0; i < iterations; i++) {
        uint32_t what = rnd() % 10;
        out_len = 0;
        if (what < 3) garbage(&l, rnd() % 600);
        else if (what < 8) damaged(&l);
        else send_pkt(&l, pkts[rnd() % (uint32_t)npkts], pkt_len[rnd() % (uint32_t)npkts]); /* a good packet, maybe out of order */
        if (rnd() % 500 == 0) { /* a reset: ROM again */
            rom_loader_free(&l);
            rom_loader_init(&l, &io, f);
        }
        if (rnd() % 300 == 0) { /* an overlong frame */
            static uint8_t big[ROM_RX_MAX + 100];
            memset(big, 0x41, sizeof big);
            big[0] = 0xC0;
            rom_loader_feed(&l, big, sizeof big);
        }
    }
    fprintf(stderr, "loader: %u frames, %u bad frames, %u checksum errors\n", l.frames, l.bad_frames, l.checksum_errors);
    rom_loader_free(&l);
}

static void fuzz_images(flash_image *f, long iterations)
{
    long i, ok = 0;
    char why[300];
    for (i = 0; i < iterations; i++) {
        esp_ptable t;
        uint32_t entry, k, n = rnd() % 200;
        /* a plausible table and image, then damage */
        for (k = 0; k < 0xC00; k++) f->mem[0x8000 + k] = 0xFF;
        for (k = 0; k < (rnd() % 8); k++) {
            uint8_t *e = f->mem + 0x8000 + 32 * k;
            e[0] = 0xAA; e[1] = 0x50; e[2] = (uint8_t)(rnd() % 3 ? 1 : 0x40); e[3] = (uint8_t)rnd();
            put32(e + 4, rnd() % 2 ? 0x10000 * (k + 1) : rnd()); put32(e + 8, rnd() % 2 ? 0x10000 : rnd());
            memcpy(e + 12, "model\0\0\0\0\0\0\0\0\0\0\0", 16); put32(e + 28, 0);
        }
        f->mem[0x10000] = 0xE9;
        f->mem[0x10001] = (uint8_t)(rnd() % 20);
        for (k = 2; k < 24 + n; k++) f->mem[0x10000 + k] = (uint8_t)rnd();
        if (rnd() % 2) { f->mem[0x1000C] = 9; f->mem[0x1000D] = 0; }
        for (k = 0; k < (rnd() % 8); k++) f->mem[0x8000 + rnd() % 0x100] ^= (uint8_t)rnd();
        if (esp_ptable_read(f, 0x8000, &t, why, sizeof why) == 0) {
            ok++;
            esp_ptable_find(&t, 0x40, -1, "model");
        }
        ok += esp_image_verify(f, 0x10000, rnd() % 2 ? 0x100000 : rnd() % 0x200, &entry, why, sizeof why) == 0;
        ok += esp_image_verify(f, f->size - (rnd() % 64), 0x1000, &entry, why, sizeof why) == 0; /* at the very end */
    }
    fprintf(stderr, "images: %ld accepted of %ld\n", ok, iterations * 3);
}

/* ---- model upload through a session ---------------------------------------------- */

static flash_image *part_flash;
static int part_read(void *c, uint32_t o, void *d, size_t n) { (void)c; return flash_read(part_flash, 0x110000 + o, d, n); }
static int part_erase(void *c, uint32_t o, uint32_t n) { (void)c; return flash_erase(part_flash, 0x110000 + o, n); }
static int part_write(void *c, uint32_t o, const void *d, size_t n) { (void)c; return flash_write(part_flash, 0x110000 + o, d, n); }
static int sink(void *c, const uint8_t *d, size_t n) { (void)c; (void)d; (void)n; return 0; }
static uint32_t clock_us(void *c) { (void)c; return 0; }
static int accept_all;
static int check_any(void *c, uint32_t o, uint32_t s, char *why, size_t cap) { (void)c; (void)o; (void)s; snprintf(why, cap, "test"); return accept_all ? 0 : (int)(rnd() % 2) - 1; }

/* A clean upload and commit of `n` random bytes: the path the random messages rarely complete. */
static void clean_upload(lmf_session *s, lmf_model_upload *u, uint32_t n)
{
    static uint8_t data[20000], msg[LMF_PROTO_MAX_PAYLOAD], frame[LMF_PROTO_MAX_ENCODED];
    uint32_t i, crc, off;
    size_t len;
    (void)u;
    for (i = 0; i < n; i++) data[i] = (uint8_t)rnd();
    crc = lmf_crc32(0, data, n);
    msg[0] = 0x08; msg[1] = 0; msg[2] = 1; msg[3] = 0;
    put32(msg + 4, n); put32(msg + 8, crc); put32(msg + 12, 1);
    len = lmf_frame_encode(msg, 16, frame);
    lmf_session_feed(s, frame, len);
    for (off = 0; off < n; off += 1000) {
        uint32_t k = n - off < 1000 ? n - off : 1000;
        msg[0] = 0x09;
        put32(msg + 4, off); put32(msg + 8, lmf_crc32(0, data + off, k));
        memcpy(msg + 12, data + off, k);
        len = lmf_frame_encode(msg, 12 + k, frame);
        lmf_session_feed(s, frame, len);
    }
    msg[0] = 0x0A;
    put32(msg + 4, n); put32(msg + 8, crc);
    len = lmf_frame_encode(msg, 12, frame);
    accept_all = 1;
    lmf_session_feed(s, frame, len);
    accept_all = 0;
}
static void activate(void *c, uint32_t o, uint32_t s) { (void)c; (void)o; (void)s; }

static void fuzz_upload(flash_image *f, long iterations)
{
    static lmf_session s;
    static lmf_model_upload u;
    static const lmf_serial_io sio = {sink, clock_us, NULL};
    static uint8_t arena[8192], msg[LMF_PROTO_MAX_PAYLOAD], frame[LMF_PROTO_MAX_ENCODED];
    lmf_flash_io fio = {0x2F0000, part_read, part_erase, part_write, NULL};
    lmf_upload_port port = {check_any, activate, NULL};
    lmf_store_slot c[2];
    lmf_error err;
    uint32_t next, size = 3000 + rnd() % 5000, crc = rnd();
    long i;
    part_flash = f;
    lmf_session_init(&s, &sio, NULL, "none", arena, sizeof arena, 0, "fuzz", &err);
    lmf_model_upload_init(&u, &fio, &port, 0, rnd() % 2 ? 0 : 100000, 1);
    s.upload = &u;
    s.framed = 1;
    for (i = 0; i < 200; i++) clean_upload(&s, &u, 64 + rnd() % 19000); /* fills the journal: erased and started again */
    if (u.commits != 200) { fprintf(stderr, "FAIL: %u of 200 clean uploads committed\n", u.commits); exit(1); }
    lmf_store_candidates(&fio, c, &next);
    if (next != 201 || c[0].offset != u.active_offset) { fprintf(stderr, "FAIL: the journal does not name the last commit\n"); exit(1); }
    for (i = 0; i < iterations; i++) {
        uint32_t k, n = 4 + rnd() % 60;
        size_t len;
        msg[0] = (uint8_t)(rnd() % 8 == 0 ? 0x08 : rnd() % 8 == 0 ? 0x0A : rnd() % 16 == 0 ? 0x0B : 0x09);
        msg[1] = 0;
        msg[2] = (uint8_t)rnd();
        msg[3] = 0;
        for (k = 4; k < n + 4; k++) msg[k] = (uint8_t)rnd();
        if (msg[0] == 0x08) { put32(msg + 4, rnd() % 20 ? size : rnd()); put32(msg + 8, crc); n = 12 + rnd() % 4; }
        if (msg[0] == 0x09) { put32(msg + 4, rnd() % 3 ? u.received : rnd()); n = 8 + rnd() % 1100; for (k = 12; k < n + 4 && k < sizeof msg; k++) msg[k] = (uint8_t)rnd(); if (n + 4 > sizeof msg) n = sizeof msg - 4; if (u.received + n - 8 > size) n = 8 + (size - u.received) + (rnd() % 3 == 0); if (n + 4 > sizeof msg) n = sizeof msg - 4; if (rnd() % 4) put32(msg + 8, lmf_crc32(0, msg + 12, n - 8)); }
        if (msg[0] == 0x0A) { put32(msg + 4, size); put32(msg + 8, rnd() % 2 ? crc : u.received_crc); n = 8; crc = u.received == size ? u.received_crc : crc; }
        len = lmf_frame_encode(msg, 4 + n, frame);
        if (rnd() % 20 == 0) frame[rnd() % len] ^= 0x40;
        lmf_session_feed(&s, frame, len);
        if (rnd() % 200 == 0) { /* a random journal sector */
            for (k = 0; k < 4096; k += 4) put32(f->mem + 0x110000 + lmf_store_journal(fio.size) + k, rnd() % 3 ? 0xFFFFFFFFu : rnd());
            lmf_store_candidates(&fio, c, &next);
        }
    }
    fprintf(stderr, "upload: %u commits, %u chunk errors, %u bytes in the current upload\n", u.commits, u.chunk_errors, u.received);
}

int main(int argc, char **argv)
{
    flash_image f;
    long iterations = argc > 1 ? atol(argv[1]) : 20000;
    if (argc > 2) rng_state ^= (uint64_t)atoll(argv[2]) * 0x9E3779B97F4A7C15ull;
    if (flash_open_memory(&f, 4u << 20) != 0) return 2;
    build_session();
    if (!check_session(&f)) { flash_close(&f); return 1; }
    fuzz_loader(&f, iterations);
    fuzz_images(&f, iterations / 4);
    fuzz_upload(&f, iterations);
    if (!check_session(&f)) { flash_close(&f); return 1; } /* still answers right after all that */
    flash_close(&f);
    printf("rom-loader-fuzz: ok\n");
    return 0;
}
