/* The C library functions the core and the driver call, for the ESP32-S3
 * image: the S3 compiler here comes without a C library (and picolibc's
 * lx106 libc.a is call0 code, which cannot be linked with windowed code).
 * Byte loops, with word loops for aligned memcpy and memset (the sampler
 * clears and copies vocabulary-sized arrays every token). Compiled with
 * -fno-builtin and -fno-tree-loop-distribute-patterns (CMakeLists.txt), so
 * that GCC does not turn these very loops back into calls to themselves. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3) == 0)
        for (; n >= 4; n -= 4, d += 4, s += 4) *(uint32_t *)(void *)d = *(const uint32_t *)(const void *)s;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s)
        while (n--) *d++ = *s++;
    else
        while (n--) d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    uint32_t word = 0x01010101u * (uint8_t)c;
    for (; n > 0 && ((uintptr_t)d & 3) != 0; n--) *d++ = (uint8_t)c;
    for (; n >= 4; n -= 4, d += 4) *(uint32_t *)(void *)d = word;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;
    for (; n; n--, p++, q++)
        if (*p != *q) return *p < *q ? -1 : 1;
    return 0;
}

size_t strlen(const char *s)
{
    const char *p = s;
    while (*p) p++;
    return (size_t)(p - s);
}

int strcmp(const char *a, const char *b)
{
    const unsigned char *p = (const unsigned char *)a, *q = (const unsigned char *)b;
    while (*p && *p == *q) p++, q++;
    return *p < *q ? -1 : *p > *q;
}
