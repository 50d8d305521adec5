"""Integer arithmetic for the fingerprint: the ESP32 port's floats are single precision, so every
measure is computed in integers (exact rationals, or fixed point with FRAC guard bits) and only
the final fixed-point field is rounded, as agent/features.py rounds its float64 result.

    round_div(p, q)          p / q rounded half away from zero (agent.features._int)
    isqrt(n)                 floor(sqrt(n))
    round_sqrt(p, q)         sqrt(p / q) rounded half up (p, q >= 0)
    ln_fx(p, q)              ln(p / q) * 2**FRAC, to within a few units (p, q > 0)
    cos_sin_fx(j, n)         (cos, sin)(2 pi j / n) * 2**FRAC
"""

FRAC = 48
ONE = 1 << FRAC
# pi * 2**60, from the first digits of pi (3.14159265358979323846264338327950288...)
_PI_60 = 3622009729038561421


def bit_length(n):
    """int.bit_length, which MicroPython's int lacks: the bits of |n|."""
    n = abs(n)
    bits = 0
    while n >> 32:
        n >>= 32
        bits += 32
    while n:
        n >>= 1
        bits += 1
    return bits


def round_div(p, q):
    """p / q rounded half away from zero; q > 0."""
    if p >= 0:
        return (2 * p + q) // (2 * q)
    return -((-2 * p + q) // (2 * q))


def isqrt(n):
    """floor(sqrt(n)) for an integer n >= 0 (Newton's method on integers)."""
    if n < 0:
        raise ValueError("isqrt of a negative number")
    if n < 2:
        return n
    x = 1 << ((bit_length(n) + 1) // 2)
    while True:
        y = (x + n // x) >> 1
        if y >= x:
            return x
        x = y


def round_sqrt(p, q):
    """sqrt(p / q) rounded half up: floor(sqrt(p / q) + 1/2) = (isqrt(4p // q) + 1) // 2."""
    return (isqrt(4 * p // q) + 1) // 2


def _atanh2_fx(num, den):
    # 2 * atanh(num / den) * 2**FRAC for |num / den| <= 1/3: the series z + z^3/3 + z^5/5 ...
    if num < 0:
        return -_atanh2_fx(-num, den)
    z = (num << FRAC) // den
    z2 = (z * z) >> FRAC
    term = z
    total = 0
    k = 1
    while term:
        total += term // k
        term = (term * z2) >> FRAC
        k += 2
    return 2 * total


def ln_fx(p, q):
    """ln(p / q) * 2**FRAC for integers p, q > 0: ln(m * 2**e) = e ln 2 + 2 atanh((m-1)/(m+1))
    with m in [0.75, 1.5)."""
    if p <= 0 or q <= 0:
        raise ValueError("ln of a non-positive number")
    e = bit_length(p) - bit_length(q)
    if e > 0:
        q <<= e
    elif e < 0:
        p <<= -e
    # now p / q is in (1/2, 2); bring it to [0.75, 1.5)
    if 4 * p < 3 * q:
        p <<= 1
        e -= 1
    elif 2 * p >= 3 * q:
        q <<= 1
        e += 1
    return e * LN2 + _atanh2_fx(p - q, p + q)


LN2 = _atanh2_fx(1, 3)  # ln 2 = 2 atanh(1/3)
LN10 = ln_fx(10, 1)


def _sin_cos_small(x):
    # (sin, cos)(x) * 2**FRAC for a fixed-point angle 0 <= x <= pi/4 (Taylor series)
    s = term = x
    k = 1
    while term:
        term = -((term * x >> FRAC) * x >> FRAC) // ((k + 1) * (k + 2))
        s += term
        k += 2
    c = term = ONE
    k = 0
    while term:
        term = -((term * x >> FRAC) * x >> FRAC) // ((k + 1) * (k + 2))
        c += term
        k += 2
    return s, c


def cos_sin_fx(j, n):
    """(cos, sin)(2 pi j / n) * 2**FRAC, n divisible by 8: the angle is folded into the first
    octant, so the series stays short and the table symmetric."""
    j %= n
    octant = (8 * j) // n
    r = j - octant * n // 8  # 0 <= r < n / 8
    if octant & 1:
        r = n // 8 - r  # mirrored within its quarter
    x = (_PI_60 * 2 * r // n) >> (60 - FRAC)
    s, c = _sin_cos_small(x)
    # octants 0..7: (cos, sin) from (c, s) of the folded angle
    if octant == 0:
        return c, s
    if octant == 1:
        return s, c
    if octant == 2:
        return -s, c
    if octant == 3:
        return -c, s
    if octant == 4:
        return -c, -s
    if octant == 5:
        return -s, -c
    if octant == 6:
        return s, -c
    return c, -s
