#include "semihost.h"

/* Call numbers from QEMU's target/xtensa/xtensa-semi.c. */
enum {
    SYS_EXIT = 1,
    SYS_READ = 3,
    SYS_WRITE = 4,
    SYS_OPEN = 5,
    SYS_CLOSE = 6,
    SYS_ARGC = 1000,
    SYS_ARGV_SZ = 1001,
    SYS_ARGV = 1002,
};

/* Exit status after a CPU exception, as a shell reports a process killed by
 * SIGABRT: distinct from every status the driver returns. */
#define FAULT_EXIT_STATUS 134

/* QEMU returns the result in a2 and the guest errno in a3. */
static int32_t simcall(uint32_t nr, uint32_t arg1, uint32_t arg2, uint32_t arg3)
{
    register uint32_t a2 __asm__("a2") = nr;
    register uint32_t a3 __asm__("a3") = arg1;
    register uint32_t a4 __asm__("a4") = arg2;
    register uint32_t a5 __asm__("a5") = arg3;
    __asm__ volatile("simcall" : "+r"(a2), "+r"(a3) : "r"(a4), "r"(a5) : "memory");
    return (int32_t)a2;
}

int semihost_write(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        int32_t n = simcall(SYS_WRITE, (uint32_t)fd, (uint32_t)p, len);
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* QEMU copies at most what one call asks; big reads in steps keep each
 * host-side buffer small. */
#define READ_CHUNK (1u << 20)

long semihost_read_file(const char *path, void *buf, size_t max)
{
    int32_t fd = simcall(SYS_OPEN, (uint32_t)path, 0 /* O_RDONLY */, 0);
    if (fd < 0) return SEMIHOST_CANNOT_OPEN;
    uint8_t *p = buf;
    size_t total = 0;
    long result;
    for (;;) {
        size_t room = max - total, chunk = room < READ_CHUNK ? room : READ_CHUNK;
        int32_t n;
        if (chunk == 0) { /* full: one more byte means the file does not fit */
            uint8_t probe;
            n = simcall(SYS_READ, (uint32_t)fd, (uint32_t)&probe, 1);
            result = n == 0 ? (long)total : n < 0 ? SEMIHOST_READ_ERROR : SEMIHOST_TOO_BIG;
            break;
        }
        n = simcall(SYS_READ, (uint32_t)fd, (uint32_t)(p + total), chunk);
        if (n <= 0) {
            result = n == 0 ? (long)total : SEMIHOST_READ_ERROR;
            break;
        }
        total += (size_t)n;
    }
    simcall(SYS_CLOSE, (uint32_t)fd, 0, 0);
    return result;
}

int semihost_argc(void) { return simcall(SYS_ARGC, 0, 0, 0); }

size_t semihost_argv_size(void) { return (size_t)simcall(SYS_ARGV_SZ, 0, 0, 0); }

char **semihost_argv(void *buf)
{
    simcall(SYS_ARGV, (uint32_t)buf, 0, 0);
    return buf;
}

_Noreturn void semihost_exit(int status)
{
    simcall(SYS_EXIT, (uint32_t)status, 0, 0);
    for (;;) {}
}

static char *put_hex(char *p, uint32_t v)
{
    *p++ = '0';
    *p++ = 'x';
    for (int shift = 28; shift >= 0; shift -= 4) *p++ = "0123456789abcdef"[(v >> shift) & 15];
    return p;
}

static char *put_str(char *p, const char *s)
{
    while (*s) *p++ = *s++;
    return p;
}

_Noreturn void semihost_fault(uint32_t exccause, uint32_t epc1, uint32_t excvaddr)
{
    /* EXCCAUSE values: 0 illegal instruction, 15 load or store where there
     * is no memory. QEMU lets misaligned loads through, unlike the chip. */
    char msg[96], *p = msg;
    p = put_str(p, "lmf-qemu: CPU exception EXCCAUSE=");
    p = put_hex(p, exccause);
    p = put_str(p, " at pc ");
    p = put_hex(p, epc1);
    p = put_str(p, ", address ");
    p = put_hex(p, excvaddr);
    *p++ = '\n';
    semihost_write(2, msg, (size_t)(p - msg));
    semihost_exit(FAULT_EXIT_STATUS);
}
