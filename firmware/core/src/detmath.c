#include "lmf/detmath.h"

/* 2^(k/128) in Q30 for k = 0..128. */
static const uint32_t exp2_q30[129] = {
    1073741824u, 1079572136u, 1085434106u, 1091327906u, 1097253708u, 1103211687u, 1109202018u, 1115224875u,
    1121280436u, 1127368878u, 1133490379u, 1139645120u, 1145833280u, 1152055042u, 1158310587u, 1164600099u,
    1170923762u, 1177281762u, 1183674286u, 1190101520u, 1196563654u, 1203060876u, 1209593378u, 1216161350u,
    1222764986u, 1229404479u, 1236080024u, 1242791816u, 1249540052u, 1256324931u, 1263146652u, 1270005413u,
    1276901417u, 1283834865u, 1290805962u, 1297814910u, 1304861917u, 1311947188u, 1319070932u, 1326233356u,
    1333434672u, 1340675091u, 1347954824u, 1355274085u, 1362633090u, 1370032052u, 1377471191u, 1384950723u,
    1392470869u, 1400031848u, 1407633882u, 1415277195u, 1422962010u, 1430688553u, 1438457051u, 1446267730u,
    1454120821u, 1462016553u, 1469955159u, 1477936870u, 1485961921u, 1494030547u, 1502142985u, 1510299473u,
    1518500250u, 1526745556u, 1535035634u, 1543370725u, 1551751076u, 1560176931u, 1568648537u, 1577166143u,
    1585730000u, 1594340357u, 1602997467u, 1611701585u, 1620452965u, 1629251865u, 1638098541u, 1646993254u,
    1655936265u, 1664927835u, 1673968228u, 1683057710u, 1692196547u, 1701385007u, 1710623359u, 1719911875u,
    1729250827u, 1738640488u, 1748081133u, 1757573041u, 1767116489u, 1776711757u, 1786359126u, 1796058879u,
    1805811301u, 1815616678u, 1825475297u, 1835387448u, 1845353420u, 1855373507u, 1865448001u, 1875577199u,
    1885761398u, 1896000896u, 1906295993u, 1916646992u, 1927054196u, 1937517909u, 1948038440u, 1958616096u,
    1969251188u, 1979944027u, 1990694927u, 2001504204u, 2012372174u, 2023299156u, 2034285470u, 2045331439u,
    2056437387u, 2067603638u, 2078830522u, 2090118366u, 2101467502u, 2112878262u, 2124350982u, 2135885998u,
    2147483648u,
};

/* e^x = 2^t with t = x*log2(e) taken to Q15 fixed point (error < 1.1e-5 in
 * the result); the integer part of t becomes the float exponent and the
 * fraction is looked up and linearly interpolated (error < 3.7e-6). Two
 * float operations in all: this is called ~2000 times a token. */
float lmf_expf(float x)
{
    uint32_t ax = lmf_abs_bits(x);
    int32_t t, n, frac, k, r;
    uint32_t lo, hi, m;
    if (ax > 0x42AE0000u) { /* |x| > 87 or NaN */
        if (lmf_f2u(x) & 0x80000000u) return 0.0f;
        x = 87.0f;
    }
    t = lmf_round_small(x * (1.44269504088896341f * 32768.0f));
    n = t >> 15;                 /* floor: arithmetic shift */
    frac = t & 0x7FFF;
    k = frac >> 8;               /* table index, 0..127 */
    r = frac & 0xFF;             /* 8 bits between entries */
    lo = exp2_q30[k];
    hi = exp2_q30[k + 1];
    m = lo + ((hi - lo) * (uint32_t)r >> 8);
    /* m in [2^30, 2^31): mantissa = m >> 7 without its leading one. */
    if (n < -126) return 0.0f;
    return lmf_u2f((uint32_t)(n + 127) << 23 | ((m >> 7) & 0x7FFFFFu));
}

float lmf_sqrtf(float x)
{
    float y;
    if (!(x > 0.0f)) return 0.0f;
    y = lmf_u2f(0x1FBD1DF5u + (lmf_f2u(x) >> 1)); /* within ~4% of sqrt(x) */
    y = 0.5f * (y + x / y);
    y = 0.5f * (y + x / y);
    y = 0.5f * (y + x / y);
    return y;
}

float lmf_logf(float x)
{
    uint32_t u = lmf_f2u(x);
    int32_t e = (int32_t)((u >> 23) & 0xFF) - 127;
    float m, s, s2, sum;
    if (!(x > 0.0f)) return -3.0e38f;
    m = lmf_u2f((u & 0x7FFFFFu) | 0x3F800000u); /* mantissa in [1, 2) */
    if (m > 1.41421356f) { m *= 0.5f; e += 1; }   /* now in [0.707, 1.414] */
    /* ln m = 2 atanh(s), s = (m-1)/(m+1), |s| < 0.172 */
    s = (m - 1.0f) / (m + 1.0f);
    s2 = s * s;
    sum = s * (2.0f + s2 * (0.666666667f + s2 * (0.4f + s2 * (0.285714286f + s2 * 0.222222222f))));
    return (float)e * 0.693147181f + sum;
}

/* Reduces x by multiples of pi/2 (Cody-Waite, pi/2 split in three parts so the
 * products are exact) and evaluates Taylor polynomials on [-pi/4, pi/4]. */
void lmf_sincosf(float x, float *s, float *c)
{
    int32_t q = lmf_round_small(x * 0.636619772f);
    float qf = lmf_i2f_small(q);
    float r = ((x - qf * 1.5703125f) - qf * 4.837512969970703e-4f) - qf * 7.549790126404332e-8f;
    float r2 = r * r;
    float sr = r * (1.0f - r2 * (0.166666667f - r2 * (0.00833333333f - r2 * (0.000198412698f - r2 * 2.75573192e-6f))));
    float cr = 1.0f - r2 * (0.5f - r2 * (0.0416666667f - r2 * (0.00138888889f - r2 * 2.48015873e-5f)));
    switch (q & 3) {
    case 0: *s = sr; *c = cr; break;
    case 1: *s = cr; *c = -sr; break;
    case 2: *s = -sr; *c = -cr; break;
    default: *s = -cr; *c = sr; break;
    }
}
