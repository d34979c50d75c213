/* The 64-bit libgcc2 routines that Debian's lx106 libgcc leaves out because
 * the ESP8266 ROM provides them. (The assembly ones, 32-bit division and
 * soft-float, are assembled from GCC's lib1funcs.S: see CMakeLists.txt.)
 * Each is written with what libgcc.a and lib1funcs.S do provide, so none
 * calls itself. */
#include <stdint.h>

uint64_t __umulsidi3(uint32_t a, uint32_t b);                      /* lib1funcs.S */
uint64_t __udivmoddi4(uint64_t a, uint64_t b, uint64_t *rem);     /* libgcc.a */
int64_t __divmoddi4(int64_t a, int64_t b, int64_t *rem);          /* libgcc.a */

uint64_t __muldi3(uint64_t a, uint64_t b);
int64_t __divdi3(int64_t a, int64_t b);
uint64_t __udivdi3(uint64_t a, uint64_t b);
uint64_t __umoddi3(uint64_t a, uint64_t b);

/* Low 64 bits of the product: the full low-halves product plus the two
 * cross products, which only reach the high word. */
uint64_t __muldi3(uint64_t a, uint64_t b)
{
    uint32_t a_lo = (uint32_t)a, a_hi = (uint32_t)(a >> 32);
    uint32_t b_lo = (uint32_t)b, b_hi = (uint32_t)(b >> 32);
    return __umulsidi3(a_lo, b_lo) + ((uint64_t)(a_lo * b_hi + a_hi * b_lo) << 32);
}

/* __divmoddi4 always stores the remainder; __udivmoddi4 only when asked. */
int64_t __divdi3(int64_t a, int64_t b)
{
    int64_t rem;
    return __divmoddi4(a, b, &rem);
}

uint64_t __udivdi3(uint64_t a, uint64_t b) { return __udivmoddi4(a, b, 0); }

uint64_t __umoddi3(uint64_t a, uint64_t b)
{
    uint64_t rem;
    __udivmoddi4(a, b, &rem);
    return rem;
}
