/* The lmflash command-line driver on QEMU's emulated Xtensa cores: the lx106
 * (ports/qemu-xtensa) and the ESP32-S3's LX7 (ports/qemu-esp32s3).
 *
 * The job's arguments arrive through semihosting, the blob sits where
 * -device loader put it (__lmf_blob_start, see lmf-qemu.ld), output goes to
 * QEMU's stdout and stderr, and main's return value becomes QEMU's exit
 * status. */
#include <string.h>

#include "lmf/app.h"
#include "lmf/fmt.h"
#include "semihost.h"

/* Under -icount shift=0 every instruction takes 1 ns of virtual time, and
 * CCOUNT runs at the core configuration's clock: the port's CMakeLists.txt
 * defines the ratio its self-test measures (lx106: 40 MHz, 25). */
#ifndef LMF_QEMU_INSTRUCTIONS_PER_CCOUNT
#error "define LMF_QEMU_INSTRUCTIONS_PER_CCOUNT (instructions per CCOUNT tick under -icount shift=0)"
#endif
#define INSTRUCTIONS_PER_CCOUNT LMF_QEMU_INSTRUCTIONS_PER_CCOUNT

#define USAGE_ERROR 2

extern const uint8_t __lmf_blob_start[], __lmf_blob_end[];
extern uint8_t _stack_bottom[], _stack_top[];

#define STACK_PAINT 0xA5u

/* Stack use is measured, not guessed: everything below main's frame is
 * painted before the job and the deepest byte overwritten is found after it. */
static __attribute__((noinline)) void paint_stack(void)
{
    uint8_t here;
    uint8_t *p, *limit = (uint8_t *)((uintptr_t)&here - 64); /* keep clear of this frame */
    for (p = _stack_bottom; p < limit; p++) *p = STACK_PAINT;
}

static uint32_t stack_high_water(void)
{
    const uint8_t *p = _stack_bottom;
    while (p < _stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)(_stack_top - p);
}

/* The only memory the core uses. */
static uint8_t arena[512 * 1024] __attribute__((aligned(16)));

/* Room for argv as QEMU lays it out: pointers, then the strings. */
static uint32_t argv_buf[64 * 1024 / 4];

static void write_out(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    semihost_write(1, data, len);
}

static void write_err(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    semihost_write(2, data, len);
}

/* Instructions executed, in steps of INSTRUCTIONS_PER_CCOUNT: the port's cycle counter counts
 * what the benchmarks want to know. Differences stay right across the wrap. */
static uint32_t cycle_count(void *ctx)
{
    (void)ctx;
    uint32_t ccount;
    __asm__ volatile("rsr.ccount %0" : "=a"(ccount));
    return ccount * INSTRUCTIONS_PER_CCOUNT;
}

static int fail(const char *msg)
{
    semihost_write(2, msg, strlen(msg));
    return USAGE_ERROR;
}

/* The blob from a host file through semihosting, into the region where
 * -device loader would have put it: for a QEMU built without that device
 * (the ESP32-S3 one). Loading happens before the driver starts counting. */
static int load_blob(const char *path)
{
    long n = semihost_read_file(path, (void *)(uintptr_t)__lmf_blob_start,
                                (size_t)(__lmf_blob_end - __lmf_blob_start));
    if (n >= 0) return 1;
    write_err(NULL, "lmf-qemu: ", 10);
    write_err(NULL, path, strlen(path));
    fail(n == SEMIHOST_CANNOT_OPEN  ? ": cannot open it (does the file exist, relative to QEMU's working directory?)\n"
         : n == SEMIHOST_TOO_BIG    ? ": larger than the 60 MiB blob region\n"
                                    : ": read error\n");
    return 0;
}

int main(void)
{
    int argc = semihost_argc();
    if (semihost_argv_size() > sizeof argv_buf) return fail("lmf-qemu: arguments too long\n");
    char **argv = semihost_argv(argv_buf);
    if (argc >= 3 && strcmp(argv[1], "--load-blob") == 0) {
        if (!load_blob(argv[2])) return USAGE_ERROR;
        argv[2] = argv[0]; /* the driver sees its own arguments only */
        argv += 2;
        argc -= 2;
    }

    const uint8_t *blob = __lmf_blob_start;
    if (memcmp(blob, "LMFB", 4) != 0)
        return fail("lmf-qemu: no LMFB blob at 0x50400000; load one with "
                    "-device loader,file=BLOB,addr=0x50400000 or pass --load-blob BLOB first\n");
    uint32_t size = (uint32_t)blob[8] | (uint32_t)blob[9] << 8 | (uint32_t)blob[10] << 16 |
                    (uint32_t)blob[11] << 24;
    if (size > (uint32_t)(__lmf_blob_end - __lmf_blob_start))
        return fail("lmf-qemu: the blob's file_size is larger than its 60 MiB region\n");

    static const lmf_port port = {write_out, write_err, cycle_count, NULL};
    paint_stack();
    int rc = lmf_app_main(argc, argv, blob, size, arena, sizeof arena, &port);
    char line[48];
    size_t n = lmf_fmt(line, sizeof line, "lmf-qemu: stack_bytes=%u\n", stack_high_water());
    semihost_write(2, line, n);
    return rc;
}
