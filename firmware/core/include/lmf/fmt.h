/* A tiny, allocation-free formatter: the core must not depend on printf (heavy
 * on the board, and float printing differs between C libraries).
 * Conversions: %s %d %u %x %08x %c %%; %ld/%lu/%lx take long. Floats are printed
 * only through lmf_fmt_fixed, whose output is the same on every target. */
#ifndef LMF_FMT_H
#define LMF_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Writes at most cap-1 chars and a NUL; returns the length written. */
size_t lmf_vfmt(char *buf, size_t cap, const char *fmt, va_list ap);
size_t lmf_fmt(char *buf, size_t cap, const char *fmt, ...);
/* value with `decimals` digits after the point (0..6), rounded half up. */
size_t lmf_fmt_fixed(char *buf, size_t cap, float value, int decimals);

#endif
