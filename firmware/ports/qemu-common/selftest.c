/* Self-test of the QEMU/lx106 image's arithmetic runtime.
 *
 * lx106 has no FPU and no divider: every float and double operation and every
 * 32- and 64-bit division below is a call into GCC's lib1funcs.S /
 * ieee754-*.S, Debian's libgcc or libgcc-rom.c. The same file built natively
 * (gcc -std=c11 -O2 -ffp-contract=off: x86-64 SSE, IEEE-754 binary32/64 with
 * round-to-nearest-even) must print byte-identical stdout, which
 * tests/xtensa-selftest.test.ts checks. Each operation's results over a few
 * thousand pseudo-random operands are folded into one hash; a few hand-picked
 * cases are printed alone so that a mismatch is readable.
 *
 * On Xtensa it also prints to stderr the CCOUNT taken by loops of known
 * instruction count, which calibrates CCOUNT against instructions under
 * qemu -icount shift=0. Operands never include NaN: its sign and payload
 * after an invalid operation differ between SSE and the soft-float code. */
#include <stdint.h>
#include <string.h>

#ifdef __XTENSA__
#include "semihost.h"
static void out(int fd, const char *s, size_t n) { semihost_write(fd, s, n); }
#else
#include <stdio.h>
static void out(int fd, const char *s, size_t n) { fwrite(s, 1, n, fd == 1 ? stdout : stderr); }
#endif

enum { N = 4096 };

static void put_hex(const char *label, uint64_t v, int digits)
{
    char buf[64];
    size_t n = strlen(label);
    memcpy(buf, label, n);
    buf[n++] = ' ';
    for (int i = digits - 1; i >= 0; i--) buf[n++] = "0123456789abcdef"[(v >> (4 * i)) & 15];
    buf[n++] = '\n';
    out(1, buf, n);
}

static void put32(const char *label, uint32_t v) { put_hex(label, v, 8); }
static void put64(const char *label, uint64_t v) { put_hex(label, v, 16); }

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint64_t d2u(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static double u2d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

static uint32_t rng = 0x2545f491u;

static uint32_t rnd(void) /* xorshift32 */
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static uint64_t rnd64(void) { uint64_t hi = rnd(); return hi << 32 | rnd(); }

/* Every helper calls rnd() once per statement: the order of two calls in one
 * expression is unspecified, and the two compilers may differ. */

/* Random bits shifted right by a random count, to spread magnitudes. */
static uint32_t rnd_scaled(void) { uint32_t v = rnd(); return v >> rnd() % 32; }
static int32_t rnd_scaled_signed(void) { int32_t v = (int32_t)rnd(); return v >> rnd() % 32; }
static uint64_t rnd_scaled64(void) { uint64_t v = rnd64(); return v >> rnd() % 64; }

static uint32_t mix(uint32_t h, uint32_t v) { return (h ^ v) * 0x01000193u; }
static uint32_t mix64(uint32_t h, uint64_t v) { return mix(mix(h, (uint32_t)v), (uint32_t)(v >> 32)); }

/* A random finite float with a biased exponent in [lo, lo + span). */
static float rnd_float_exp(uint32_t lo, uint32_t span)
{
    uint32_t sign_mantissa = rnd() & 0x807fffffu;
    return u2f(sign_mantissa | (lo + rnd() % span) << 23);
}

static double rnd_double_exp(uint32_t lo, uint32_t span)
{
    uint64_t sign_mantissa = rnd64() & 0x800fffffffffffffull;
    return u2d(sign_mantissa | (uint64_t)(lo + rnd() % span) << 52);
}

/* Half near 1.0, so that sums cancel and products stay in range; half over
 * every finite exponent, subnormals included, to overflow and underflow. */
static float rnd_float(void) { return rnd() & 1 ? rnd_float_exp(117, 20) : rnd_float_exp(0, 255); }

static double rnd_double(void) { return rnd() & 1 ? rnd_double_exp(1013, 20) : rnd_double_exp(0, 2047); }

static void test_float(void)
{
    uint32_t add = 0, sub = 0, mul = 0, div = 0, cmp = 0;
    for (int i = 0; i < N; i++) {
        float a = rnd_float(), b = rnd_float();
        uint32_t pick = rnd() % 8;
        if (pick == 0) b = a;                /* equal operands for the comparisons */
        if (pick == 1) b = -a;               /* exact cancellation */
        add = mix(add, f2u(a + b));
        sub = mix(sub, f2u(a - b));
        mul = mix(mul, f2u(a * b));
        div = mix(div, f2u(a / (b == 0.0f ? 1.0f : b)));
        cmp = mix(cmp, (uint32_t)(a < b) | (a <= b) << 1 | (a == b) << 2 | (a > b) << 3 |
                       (a >= b) << 4 | (a != b) << 5);
    }
    put32("f32.add", add);
    put32("f32.sub", sub);
    put32("f32.mul", mul);
    put32("f32.div", div);
    put32("f32.cmp", cmp);
}

static void test_conversions(void)
{
    uint32_t from_i32 = 0, from_u32 = 0, to_i32 = 0, to_u32 = 0, to_i64 = 0;
    uint32_t widen = 0, narrow = 0;
    for (int i = 0; i < N; i++) {
        int32_t si = rnd_scaled_signed();
        uint32_t ui = rnd_scaled();
        from_i32 = mix(from_i32, f2u((float)si));
        from_u32 = mix(from_u32, f2u((float)ui));
        /* Only values that fit: out-of-range conversions are undefined. */
        to_i32 = mix(to_i32, (uint32_t)(int32_t)rnd_float_exp(100, 58));
        to_u32 = mix(to_u32, (uint32_t)u2f(f2u(rnd_float_exp(100, 59)) & 0x7fffffffu));
        to_i64 = mix64(to_i64, (uint64_t)(int64_t)rnd_float_exp(100, 90));
        widen = mix64(widen, d2u((double)rnd_float()));
        /* Exponents from below float's subnormals to past its maximum. */
        narrow = mix(narrow, f2u((float)rnd_double_exp(1023 - 152, 282)));
    }
    put32("cvt.i32_to_f32", from_i32);
    put32("cvt.u32_to_f32", from_u32);
    put32("cvt.f32_to_i32", to_i32);
    put32("cvt.f32_to_u32", to_u32);
    put32("cvt.f32_to_i64", to_i64);
    put32("cvt.f32_to_f64", widen);
    put32("cvt.f64_to_f32", narrow);
}

static void test_double(void)
{
    uint32_t add = 0, sub = 0, mul = 0, div = 0, cmp = 0;
    for (int i = 0; i < N; i++) {
        double a = rnd_double(), b = rnd() % 8 == 0 ? a : rnd_double(); /* some equal */
        add = mix64(add, d2u(a + b));
        sub = mix64(sub, d2u(a - b));
        mul = mix64(mul, d2u(a * b));
        div = mix64(div, d2u(a / (b == 0.0 ? 1.0 : b)));
        cmp = mix(cmp, (uint32_t)(a < b) | (a <= b) << 1 | (a == b) << 2 | (a > b) << 3);
    }
    put32("f64.add", add);
    put32("f64.sub", sub);
    put32("f64.mul", mul);
    put32("f64.div", div);
    put32("f64.cmp", cmp);
}

static void test_integer(void)
{
    uint32_t sdiv = 0, smod = 0, udiv = 0, umod = 0;
    uint32_t mul64 = 0, smul = 0, udiv64 = 0, umod64 = 0, sdiv64 = 0, smod64 = 0;
    for (int i = 0; i < N; i++) {
        int32_t sa = (int32_t)rnd(), sb = rnd_scaled_signed();
        uint32_t ua = rnd(), ub = rnd_scaled();
        if (sb == 0 || sb == -1) sb = 7;     /* no division by zero, no INT32_MIN / -1 */
        if (ub == 0) ub = 3;
        sdiv = mix(sdiv, (uint32_t)(sa / sb));
        smod = mix(smod, (uint32_t)(sa % sb));
        udiv = mix(udiv, ua / ub);
        umod = mix(umod, ua % ub);

        uint64_t a = rnd64(), b = rnd_scaled64();
        if (b == 0) b = 5;
        int64_t sa64 = (int64_t)rnd_scaled64(), sb64 = (int64_t)b >> rnd() % 2; /* both signs */
        if (sb64 == 0 || sb64 == -1) sb64 = 11;
        mul64 = mix64(mul64, a * b);
        smul = mix64(smul, (uint64_t)((int64_t)sa * sb));
        udiv64 = mix64(udiv64, a / b);
        umod64 = mix64(umod64, a % b);
        sdiv64 = mix64(sdiv64, (uint64_t)(sa64 / sb64));
        smod64 = mix64(smod64, (uint64_t)(sa64 % sb64));
    }
    put32("i32.div", sdiv);
    put32("i32.mod", smod);
    put32("u32.div", udiv);
    put32("u32.mod", umod);
    put32("u64.mul", mul64);
    put32("i32xi32.i64", smul);
    put32("u64.div", udiv64);
    put32("u64.mod", umod64);
    put32("i64.div", sdiv64);
    put32("i64.mod", smod64);
}

/* volatile: the compiler must not fold these at build time. */
static void test_cases(void)
{
    volatile float one = 1.0f, three = 3.0f, tenth = 0.1f, fifth = 0.2f, half = 0.5f;
    volatile float big = u2f(0x7f7fffffu), min_normal = u2f(0x00800000u), min_sub = u2f(1u);
    volatile int32_t odd = 16777217, minus7 = -7, two = 2;
    volatile uint32_t all_ones = 0xffffffffu, ten = 10;
    volatile double d_one = 1.0, d_three = 3.0;
    put32("case.1/3", f2u(one / three));
    put32("case.0.1+0.2", f2u(tenth + fifth));
    put32("case.2^24+1", f2u((float)odd));
    put32("case.max*2", f2u(big * 2.0f));
    put32("case.min_normal/2", f2u(min_normal * half));
    put32("case.min_sub/2", f2u(min_sub * half));
    put32("case.3min_sub/2", f2u(min_sub * 3.0f * half));
    put32("case.-0", f2u(-(one - one)));
    put32("case.-7/2", (uint32_t)(minus7 / two));
    put32("case.-7%2", (uint32_t)(minus7 % two));
    put32("case.~0u/10", all_ones / ten);
    put64("case.d1/3", d2u(d_one / d_three));
    put64("case.(double)(1/3f)", d2u((double)(one / three)));
}

#ifdef __XTENSA__
/* CCOUNT taken by n iterations of a two-instruction loop. */
static uint32_t loop_ccount(uint32_t n)
{
    uint32_t t0, t1;
    __asm__ volatile("rsr.ccount %0\n"
                     "1: addi %2, %2, -1\n"
                     "bnez %2, 1b\n"
                     "rsr.ccount %1"
                     : "=&a"(t0), "=&a"(t1), "+a"(n));
    return t1 - t0;
}

static void put_dec(char **p, uint32_t v)
{
    char digits[10];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10); while (v /= 10);
    while (n) *(*p)++ = digits[--n];
}

static void calibrate(void)
{
    for (uint32_t n = 1000000; n <= 2000000; n += 1000000) {
        char buf[64], *p = buf;
        memcpy(p, "calibration ", 12);
        p += 12;
        put_dec(&p, 2 * n);
        memcpy(p, " instructions ", 14);
        p += 14;
        put_dec(&p, loop_ccount(n));
        memcpy(p, " ccount\n", 8);
        p += 8;
        out(2, buf, (size_t)(p - buf));
    }
}
#endif

#ifdef __XTENSA__
static uint32_t ccount(void)
{
    uint32_t t;
    __asm__ volatile("rsr.ccount %0" : "=a"(t));
    return t;
}

static volatile float fa = 1.37f, fb = -0.731f, fr;
static volatile int32_t ia = 123457;

/* Instructions per soft-float operation (CCOUNT x 25 under -icount shift=0):
 * a loop of the operation on volatile operands minus the same loop without it. */
#define OP_COST(name, expr)                                                        \
    do {                                                                           \
        uint32_t t0, t1, t2, i;                                                    \
        char buf[64], *p = buf;                                                    \
        t0 = ccount();                                                             \
        for (i = 0; i < 1024; i++) { float x = fa, y = fb; (void)y; fr = x; }      \
        t1 = ccount();                                                             \
        for (i = 0; i < 1024; i++) { float x = fa, y = fb; (void)x; (void)y; fr = (expr); } \
        t2 = ccount();                                                             \
        memcpy(p, "softfloat " name " ", sizeof "softfloat " name);                \
        p += sizeof "softfloat " name;                                             \
        put_dec(&p, (uint32_t)(((t2 - t1) - (t1 - t0)) * 25u / 1024u));           \
        memcpy(p, " instructions\n", 14);                                          \
        p += 14;                                                                   \
        out(2, buf, (size_t)(p - buf));                                            \
    } while (0)

static void soft_float_costs(void)
{
    OP_COST("mul", x * y);
    OP_COST("add", x + y);
    OP_COST("sub", x - y);
    OP_COST("div", x / y);
    OP_COST("i2f", (float)ia);
}
#endif

int main(void)
{
    test_cases();
    test_float();
    test_conversions();
    test_double();
    test_integer();
#ifdef __XTENSA__
    calibrate();
    soft_float_costs();
#endif
    return 0;
}
