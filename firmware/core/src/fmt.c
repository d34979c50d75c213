#include "lmf/fmt.h"
#include "lmf/error.h"

#include <stdint.h>

typedef struct { char *buf; size_t cap, len; } sink;

static void put(sink *s, char c)
{
    if (s->len + 1 < s->cap) s->buf[s->len] = c;
    s->len++;
}

/* Digits of v in base 10 or 16, left-padded with `pad` to `width`. */
static void put_uint(sink *s, unsigned long v, unsigned base, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        unsigned d = (unsigned)(v % base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= base;
    } while (v && n < (int)sizeof tmp);
    while (width-- > n) put(s, pad);
    while (n) put(s, tmp[--n]);
}

size_t lmf_vfmt(char *buf, size_t cap, const char *fmt, va_list ap)
{
    sink s = {buf, cap, 0};
    for (; *fmt; fmt++) {
        int width = 0, is_long = 0;
        char pad = ' ';
        if (*fmt != '%') { put(&s, *fmt); continue; }
        fmt++;
        if (*fmt == '0') { pad = '0'; fmt++; }
        while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
        if (*fmt == 'l') { is_long = 1; fmt++; }
        switch (*fmt) {
        case 's': { const char *str = va_arg(ap, const char *); while (str && *str) put(&s, *str++); break; }
        case 'c': put(&s, (char)va_arg(ap, int)); break;
        case 'd': {
            long v = is_long ? va_arg(ap, long) : va_arg(ap, int);
            unsigned long mag = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
            if (v < 0) put(&s, '-');
            put_uint(&s, mag, 10, width, pad);
            break;
        }
        case 'u': put_uint(&s, is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 10, width, pad); break;
        case 'x': put_uint(&s, is_long ? va_arg(ap, unsigned long) : va_arg(ap, unsigned), 16, width, pad); break;
        case '%': put(&s, '%'); break;
        case '\0': fmt--; break;
        default: put(&s, '%'); put(&s, *fmt); break;
        }
    }
    if (cap) buf[s.len < cap ? s.len : cap - 1] = '\0';
    return s.len < cap ? s.len : (cap ? cap - 1 : 0);
}

size_t lmf_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    size_t n;
    va_start(ap, fmt);
    n = lmf_vfmt(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}

size_t lmf_fmt_fixed(char *buf, size_t cap, float value, int decimals)
{
    static const uint32_t pow10[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    int neg = value < 0.0f;
    float mag = neg ? -value : value;
    uint32_t scale, whole, frac;
    uint64_t scaled;
    if (decimals < 0) decimals = 0;
    if (decimals > 6) decimals = 6;
    scale = pow10[decimals];
    if (!(mag < 1.0e12f)) return lmf_fmt(buf, cap, neg ? "-inf" : "inf");
    scaled = (uint64_t)(mag * (float)scale + 0.5f);
    whole = (uint32_t)(scaled / scale);
    frac = (uint32_t)(scaled % scale);
    if (decimals == 0) return lmf_fmt(buf, cap, "%s%u", neg ? "-" : "", whole);
    {
        /* the fraction, zero-padded to `decimals` digits */
        char digits[8];
        int i;
        for (i = decimals - 1; i >= 0; i--, frac /= 10) digits[i] = (char)('0' + frac % 10);
        digits[decimals] = '\0';
        return lmf_fmt(buf, cap, "%s%u.%s", neg ? "-" : "", whole, digits);
    }
}

int lmf_parse_u32(const char *s, uint32_t *v)
{
    uint64_t acc = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        acc = acc * 10 + (uint64_t)(*s - '0');
        if (acc > 0xFFFFFFFFull) return -1;
    }
    *v = (uint32_t)acc;
    return 0;
}

int lmf_parse_decimal(const char *s, float *v)
{
    uint32_t whole = 0, frac = 0, scale = 1, digits = 0;
    int neg = 0;
    if (!s) return -1;
    while (*s == ' ') s++;
    if (*s == '-') { neg = 1; s++; }
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (whole > 100000000u) return -1;
        whole = whole * 10 + (uint32_t)(*s - '0');
    }
    if (*s == '.')
        for (s++; *s >= '0' && *s <= '9'; s++, digits++)
            if (scale < 1000000u) { frac = frac * 10 + (uint32_t)(*s - '0'); scale *= 10; }
    while (*s == ' ') s++;
    if (*s || digits == 0) return -1;
    *v = (float)whole + (float)frac / (float)scale;
    if (neg) *v = -*v;
    return 0;
}

int lmf_fail(lmf_error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        lmf_vfmt(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}
