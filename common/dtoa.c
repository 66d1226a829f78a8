/*
 * repr() of a float without allocation; see steptrace/dtoa.h.
 *
 * The shortest digits come from the Ryu algorithm (Ulf Adams, "Ryu: fast
 * float-to-string conversion", PLDI 2018), written here from the paper.
 * A finite x > 0 is m2 * 2^e2; its rounding interval (the reals that read
 * back as x) runs from mm * 2^(e2-2) to mp * 2^(e2-2) around
 * mv * 2^(e2-2), mv = 4 * m2, its ends included when m2 is even (a
 * reader rounds a tie to even, as strtod does).  The three are scaled by
 * 10^-e10 with one 64x128-bit multiplication each by a 125-bit 5^i (or
 * 2^k / 5^q) from dtoa_table.h, which the build generates; the scale is
 * chosen so the results vr, vp, vm are exact floors (the paper's proof)
 * with a few digits more than needed.  Digits are then taken off while
 * [vm, vp] still holds a number with fewer digits, and what is left is
 * rounded to the nearest, a tie to even: David Gay's dtoa mode 0, which
 * CPython's repr uses, gives the same digits (the tests compare both).
 */
#include "steptrace/dtoa.h"

#include <stdint.h>
#include <string.h>

#include "dtoa_table.h"

typedef unsigned __int128 dtoa_u128;

#define MANTISSA_BITS 52
#define EXPONENT_BIAS 1023

/* ceil(log2(5^e)) for e >= 1 (1 for e = 0); floor(log10(2^e)) and
 * floor(log10(5^e)): exact over the ranges used (dtoa_table.py checks). */
static inline int32_t
dtoa_pow5_bits(int32_t e)
{
    return ((e * 1217359) >> 19) + 1;
}

static inline int32_t
dtoa_log10_pow2(int32_t e)
{
    return (e * 78913) >> 18;
}

static inline int32_t
dtoa_log10_pow5(int32_t e)
{
    return (e * 732923) >> 20;
}

/* floor(m * mul / 2^j), mul a 128-bit {low, high}, 64 <= j. */
static inline uint64_t
dtoa_mul_shift(uint64_t m, const uint64_t mul[2], int32_t j)
{
    dtoa_u128 lo = (dtoa_u128)m * mul[0];
    dtoa_u128 hi = (dtoa_u128)m * mul[1];

    return (uint64_t)(((lo >> 64) + hi) >> (j - 64));
}

/* 1 when 5^p divides v (v > 0). */
static inline int
dtoa_multiple_of_pow5(uint64_t v, int32_t p)
{
    int32_t n = 0;

    while (v % 5 == 0) {
        v /= 5;
        n++;
    }
    return n >= p;
}

/* 1 when 2^p divides v (0 < v < 2^64). */
static inline int
dtoa_multiple_of_pow2(uint64_t v, int32_t p)
{
    return p < 64 && (v & ((UINT64_C(1) << p) - 1)) == 0;
}

/* x = digits * 10^exp, digits the shortest (see the top). */
struct dtoa_dec {
    uint64_t digits;
    int32_t exp;
};

/*
 * The three scaled bounds and which of them lost nothing to the floor.
 * vr = floor(mv * 2^(e2-2) / 10^e10) and so on.
 */
struct dtoa_scaled {
    uint64_t vr, vp, vm;
    int32_t e10;
    int vr_exact, vp_exact, vm_exact;
};

static void
dtoa_scale(uint64_t m2, int32_t e2, uint64_t mm_shift, struct dtoa_scaled *s)
{
    uint64_t mv = 4 * m2, mp = mv + 2, mm = mv - 1 - mm_shift;

    if (e2 >= 0) {
        /* x * 2^e2 / 10^q = x * 2^(e2-q) / 5^q: divide by 5^q. */
        int32_t q = dtoa_log10_pow2(e2) - (e2 > 3);
        int32_t j = -e2 + q + ST_DTOA_BITS + dtoa_pow5_bits(q) - 1;
        const uint64_t *mul = st_dtoa_pow5_inv[q];

        s->e10 = q;
        s->vr = dtoa_mul_shift(mv, mul, j);
        s->vp = dtoa_mul_shift(mp, mul, j);
        s->vm = dtoa_mul_shift(mm, mul, j);
        /* mp < 2^56 < 5^24: none is a multiple of 5^q past that. */
        s->vr_exact = q < 24 && dtoa_multiple_of_pow5(mv, q);
        s->vp_exact = q < 24 && dtoa_multiple_of_pow5(mp, q);
        s->vm_exact = q < 24 && dtoa_multiple_of_pow5(mm, q);
    }
    else {
        /* x * 2^e2 / 10^(q+e2) = x * 5^(-e2-q) / 2^q: divide by 2^q. */
        int32_t q = dtoa_log10_pow5(-e2) - (-e2 > 1);
        int32_t i = -e2 - q;
        int32_t j = q - (dtoa_pow5_bits(i) - ST_DTOA_BITS);
        const uint64_t *mul = st_dtoa_pow5[i];

        s->e10 = q + e2;
        s->vr = dtoa_mul_shift(mv, mul, j);
        s->vp = dtoa_mul_shift(mp, mul, j);
        s->vm = dtoa_mul_shift(mm, mul, j);
        s->vr_exact = dtoa_multiple_of_pow2(mv, q);
        s->vp_exact = dtoa_multiple_of_pow2(mp, q);
        s->vm_exact = dtoa_multiple_of_pow2(mm, q);
    }
}

/* The shortest digits of the finite x > 0 with fields ieee_m, ieee_e. */
static struct dtoa_dec
dtoa_shortest(uint64_t ieee_m, uint32_t ieee_e)
{
    struct dtoa_scaled s;
    struct dtoa_dec d;
    uint64_t m2 = ieee_m, vr, vp, vm;
    int32_t e2 = 1 - EXPONENT_BIAS - MANTISSA_BITS - 2, removed = 0;
    int even, vr_tz, vm_tz, last = 0, up;

    if (ieee_e != 0) {
        m2 |= UINT64_C(1) << MANTISSA_BITS;
        e2 = (int32_t)ieee_e - EXPONENT_BIAS - MANTISSA_BITS - 2;
    }
    even = (m2 & 1) == 0;
    /* At a power of two (not the smallest normal) the next double down
     * is half as far as the next one up: mm = mv - 1, else mv - 2. */
    dtoa_scale(m2, e2, ieee_m != 0 || ieee_e <= 1, &s);
    vr = s.vr;
    vp = s.vp;
    vm = s.vm;
    if (s.vp_exact && !even)
        vp--; /* The upper end is excluded and vp is it. */
    /* vm_tz: vm is the lower end exactly, and it is included. */
    vm_tz = s.vm_exact && even;
    /* vr_tz: the digits taken off vr so far are all zero. */
    vr_tz = s.vr_exact;
    if (!vm_tz && !vr_tz) {
        /* The usual case: no tie to break, no end to keep.  Two digits
         * at a time, then one. */
        while (vp / 100 > vm / 100) {
            last = (int)(vr % 100) / 10;
            vr /= 100;
            vp /= 100;
            vm /= 100;
            removed += 2;
        }
        if (vp / 10 > vm / 10) {
            last = (int)(vr % 10);
            vr /= 10;
            vp /= 10;
            vm /= 10;
            removed++;
        }
        d.digits = vr + (uint64_t)(vr == vm || last >= 5);
        d.exp = s.e10 + removed;
        return d;
    }
    while (vp / 10 > vm / 10) {
        vm_tz &= vm % 10 == 0;
        vr_tz &= last == 0;
        last = (int)(vr % 10);
        vr /= 10;
        vp /= 10;
        vm /= 10;
        removed++;
    }
    /* The lower end itself may be shorter still (vm > 0 here: it lost
     * a non-zero digit on its way to 0, so vm_tz is 0 then). */
    while (vm_tz && vm % 10 == 0) {
        vr_tz &= last == 0;
        last = (int)(vr % 10);
        vr /= 10;
        vp /= 10;
        vm /= 10;
        removed++;
    }
    if (vr_tz && last == 5 && vr % 2 == 0)
        last = 4; /* An exact tie: to the even digit. */
    /* Up when x is nearer vr + 1, or when vr is below the interval. */
    up = (vr == vm && !vm_tz) || last >= 5;
    d.digits = vr + (uint64_t)up;
    d.exp = s.e10 + removed;
    return d;
}

/* "00" to "99", two digits at a time. */
static const char dtoa_pairs[200] = {
#define DTOA_PAIR(t, u) '0' + (t), '0' + (u)
#define DTOA_TENS(t)                                                          \
    DTOA_PAIR(t, 0), DTOA_PAIR(t, 1), DTOA_PAIR(t, 2), DTOA_PAIR(t, 3),       \
        DTOA_PAIR(t, 4), DTOA_PAIR(t, 5), DTOA_PAIR(t, 6), DTOA_PAIR(t, 7),   \
        DTOA_PAIR(t, 8), DTOA_PAIR(t, 9)
    DTOA_TENS(0), DTOA_TENS(1), DTOA_TENS(2), DTOA_TENS(3), DTOA_TENS(4),
    DTOA_TENS(5), DTOA_TENS(6), DTOA_TENS(7), DTOA_TENS(8), DTOA_TENS(9),
#undef DTOA_TENS
#undef DTOA_PAIR
};

/* The number of decimal digits of v, 0 < v < 10^17: t or t + 1, t the
 * bit length times log10(2) rounded down (1233 / 4096 is near enough for
 * lengths below 64 bits). */
static inline int
dtoa_length(uint64_t v)
{
    static const uint64_t pow10[18] = {
        UINT64_C(1),
        UINT64_C(10),
        UINT64_C(100),
        UINT64_C(1000),
        UINT64_C(10000),
        UINT64_C(100000),
        UINT64_C(1000000),
        UINT64_C(10000000),
        UINT64_C(100000000),
        UINT64_C(1000000000),
        UINT64_C(10000000000),
        UINT64_C(100000000000),
        UINT64_C(1000000000000),
        UINT64_C(10000000000000),
        UINT64_C(100000000000000),
        UINT64_C(1000000000000000),
        UINT64_C(10000000000000000),
        UINT64_C(100000000000000000),
    };
    int t = ((64 - __builtin_clzll(v)) * 1233) >> 12;

    return t + (v >= pow10[t]);
}

/* Writes the n decimal digits of v (0 < v < 10^17) at p, from the end. */
static inline void
dtoa_digits(uint64_t v, char *p, int n)
{
    char *e = p + n;
    uint32_t w, r;
    int i;

    if (v >= 100000000) {
        w = (uint32_t)(v % 100000000);
        v /= 100000000;
        for (i = 0; i < 4; i++) {
            r = w % 100;
            w /= 100;
            e -= 2;
            memcpy(e, dtoa_pairs + 2 * r, 2);
        }
    }
    w = (uint32_t)v; /* < 10^9 */
    while (w >= 100) {
        r = w % 100;
        w /= 100;
        e -= 2;
        memcpy(e, dtoa_pairs + 2 * r, 2);
    }
    if (w >= 10) {
        e -= 2;
        memcpy(e, dtoa_pairs + 2 * w, 2);
    }
    else {
        *--e = (char)('0' + w);
    }
}

/*
 * Writes the n digits of v with the decimal point decpt places after the
 * first one, as CPython's format_float_short does for 'r'.
 * @return the end.
 */
static char *
dtoa_layout(char *p, uint64_t v, int n, int decpt)
{
    int e, i;

    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            *p++ = '0';
            *p++ = '.';
            for (i = decpt; i < 0; i++)
                *p++ = '0';
            dtoa_digits(v, p, n);
            return p + n;
        }
        if (decpt < n) {
            /* The digits one place on, then the first decpt back. */
            dtoa_digits(v, p + 1, n);
            for (i = 0; i < decpt; i++)
                p[i] = p[i + 1];
            p[decpt] = '.';
            return p + n + 1;
        }
        dtoa_digits(v, p, n);
        p += n;
        for (i = n; i < decpt; i++)
            *p++ = '0';
        *p++ = '.';
        *p++ = '0';
        return p;
    }
    dtoa_digits(v, p + 1, n);
    p[0] = p[1];
    if (n > 1) {
        p[1] = '.';
        p += n + 1;
    }
    else {
        p++;
    }
    e = decpt - 1;
    *p++ = 'e';
    *p++ = e < 0 ? '-' : '+';
    if (e < 0)
        e = -e;
    if (e >= 100)
        *p++ = (char)('0' + e / 100);
    memcpy(p, dtoa_pairs + 2 * (e % 100), 2);
    return p + 2;
}

size_t
st_double_repr(double x, char out[ST_DOUBLE_REPR_MAX])
{
    struct dtoa_dec d;
    uint64_t bits, ieee_m;
    uint32_t ieee_e;
    char *p = out;
    int n;

    memcpy(&bits, &x, sizeof(bits));
    ieee_m = bits & ((UINT64_C(1) << MANTISSA_BITS) - 1);
    ieee_e = (uint32_t)(bits >> MANTISSA_BITS) & 0x7ff;
    if (ieee_e == 0x7ff && ieee_m != 0) {
        memcpy(out, "nan", 4); /* Without a sign, as CPython. */
        return 3;
    }
    if (bits >> 63)
        *p++ = '-';
    if (ieee_e == 0x7ff) {
        memcpy(p, "inf", 4);
        return (size_t)(p - out) + 3;
    }
    if (ieee_e == 0 && ieee_m == 0) {
        memcpy(p, "0.0", 4);
        return (size_t)(p - out) + 3;
    }
    d = dtoa_shortest(ieee_m, ieee_e);
    n = dtoa_length(d.digits);
    p = dtoa_layout(p, d.digits, n, d.exp + n);
    *p = '\0';
    return (size_t)(p - out);
}
