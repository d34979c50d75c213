/* A tiny, allocation-free formatter: the core must not depend on printf (heavy
 * on the board, and float printing differs between C libraries).
 * Conversions: %s %d %u %x %08x %c %%; %ld/%lu/%lx take long. Floats are printed
 * only through lmf_fmt_fixed, whose output is the same on every target. */
#ifndef LMF_FMT_H
#define LMF_FMT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Writes at most cap-1 chars and a NUL; returns the length written. */
size_t lmf_vfmt(char *buf, size_t cap, const char *fmt, va_list ap);
size_t lmf_fmt(char *buf, size_t cap, const char *fmt, ...);
/* value with `decimals` digits after the point (0..6), rounded half up. */
size_t lmf_fmt_fixed(char *buf, size_t cap, float value, int decimals);

/* Parsers for the driver's options and the console's commands: 0 on success.
 * lmf_parse_u32: decimal digits only. lmf_parse_decimal: [-]digits[.digits]
 * (spaces around are allowed), computed as whole + frac / 10^k in float, the
 * same value on every target and in the host's copy (src/protocol.ts coreFloat). */
int lmf_parse_u32(const char *s, uint32_t *v);
int lmf_parse_decimal(const char *s, float *v);

#endif
