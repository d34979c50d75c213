/* QEMU's Xtensa semihosting (target/xtensa/xtensa-semi.c, enabled by
 * -semihosting-config enable=on): the simcall instruction with the call
 * number in a2 and the arguments in a3..a5. Output goes straight to QEMU's
 * own stdout/stderr when QEMU runs with -serial none. */
#ifndef LMF_SEMIHOST_H
#define LMF_SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

/* Writes all of buf to fd (1 = stdout, 2 = stderr); returns 0, or -1 on error. */
int semihost_write(int fd, const void *buf, size_t len);

/* The arguments given with -semihosting-config arg=...,arg=...: argc, then
 * the bytes argv needs (the pointer array plus the strings), then argv itself,
 * laid out in buf (at least semihost_argv_size() bytes, 4-byte aligned). */
int semihost_argc(void);
size_t semihost_argv_size(void);
char **semihost_argv(void *buf);

/* Reads the host file at path (QEMU's working directory for a relative
 * one) into buf, up to max bytes: returns its size, or one of these. */
#define SEMIHOST_CANNOT_OPEN (-1L)
#define SEMIHOST_READ_ERROR (-2L)
#define SEMIHOST_TOO_BIG (-3L)
long semihost_read_file(const char *path, void *buf, size_t max);

/* Ends QEMU with the given exit status. */
_Noreturn void semihost_exit(int status);

/* Called by crt0.S on any CPU exception: reports it on stderr and exits. */
_Noreturn void semihost_fault(uint32_t exccause, uint32_t epc1, uint32_t excvaddr);

#endif
