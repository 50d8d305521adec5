"""The device fingerprint of agent/features.py in integer arithmetic, and the model input.

`extract` gives the same 24 fixed-point fields as agent.features.extract(...).to_wire() on the
same samples (tests/firmware/test_fingerprint.py compares them); every rational is exact and
only the final field is rounded, half away from zero as agent.features._int. The band shapes
use an integer radix-2 FFT (the window must be a power of two, 64 or more) with twiddles of
30 bits, and logarithms in fixed point (fixed.py): they agree with numpy's float64 unless the
exact value lies within about 1e-9 of a rounding boundary.

    extract(cols, ts_us, rate_hz, accel_lsb, gyro_lsb, temp_mc) -> list of 24 ints
        cols: six sequences of n int16 samples (ax ay az gx gy gz); ts_us: n arrival times
        (microseconds, any origin; increasing); lsb: integer sensitivities
    model_input(current, baseline) -> bytes, the int8 input tensor (agent.scoring.quantise of
        agent.features.model_input) for the scorer

The MPU-6050 has no touch screen: the four behaviour fields are 0 and the model's behaviour
block is the neutral one, as for the Linux agent's fridges and EVs.
"""

import fixed
import model_card
from fixed import FRAC, ONE, isqrt, ln_fx, round_div, round_sqrt

N_FIELDS = 24
TW_FRAC = 30  # twiddle precision (bits)
GUARD = 24  # guard bits of the FFT's inputs: its roundings stay far below the last bit
# spectral bands as percent of the sample rate (agent.features BAND_LOW, BAND_MID, BAND_HIGH)
BANDS_PCT = ((2, 12), (12, 30), (40, 50))
MILLION = 1000000


def _ceil_div(a, b):
    return -((-a) // b)


def band_bins(n):
    """(first, last) rfft bins of the low, mid and high bands (agent.features._band_slices)."""
    out = []
    for lo, hi in BANDS_PCT:
        first = _ceil_div(lo * n, 100)
        last = n // 2 if 2 * hi >= 100 else _ceil_div(hi * n, 100) - 1
        out.append((first, last))
    return out


_twiddles = {}  # type: dict  # n -> (cos, sin) tables of n // 2 entries, TW_FRAC bits


def _table(n):
    tw = _twiddles.get(n)
    if tw is None:
        shift = FRAC - TW_FRAC
        cos_t = []
        sin_t = []
        for j in range(n // 2):
            c, s = fixed.cos_sin_fx(j, n)
            cos_t.append((c + (1 << (shift - 1))) >> shift)
            sin_t.append((s + (1 << (shift - 1))) >> shift)
        if cos_t[0] != 1 << TW_FRAC or sin_t[0] != 0:  # fft_power relies on it
            raise ValueError("the first twiddle must be exactly 1")
        tw = (cos_t, sin_t)
        _twiddles[n] = tw
    return tw


def fft_power(x):
    """|X_k|^2 for k = 0..n/2 of the integer sequence x (length a power of two), through an
    integer radix-2 FFT (exact inputs, twiddles and products rounded to TW_FRAC bits)."""
    n = len(x)
    cos_t, sin_t = _table(n)
    re = list(x)
    im = [0] * n
    j = 0
    for i in range(1, n):  # bit-reversal permutation
        bit = n >> 1
        while j & bit:
            j ^= bit
            bit >>= 1
        j |= bit
        if i < j:
            re[i], re[j] = re[j], re[i]
    half = 1
    rnd = 1 << (TW_FRAC - 1)
    while half < n:
        step = n // (2 * half)
        for start in range(0, n, 2 * half):
            # k = 0: the twiddle is exactly 1 (_table checks it), and (x * 2^TW_FRAC + rnd)
            # >> TW_FRAC is x itself: a third of the butterflies need no multiplication
            b = start + half
            br = re[b]
            bi = im[b]
            re[b] = re[start] - br
            im[b] = im[start] - bi
            re[start] += br
            im[start] += bi
            for k in range(1, half):
                c = cos_t[k * step]
                s = sin_t[k * step]  # the twiddle is exp(-i theta): cos - i sin
                a = start + k
                b = a + half
                br = re[b]
                bi = im[b]
                tr = (br * c + bi * s + rnd) >> TW_FRAC
                ti = (bi * c - br * s + rnd) >> TW_FRAC
                re[b] = re[a] - tr
                im[b] = im[a] - ti
                re[a] += tr
                im[a] += ti
        half *= 2
    return [re[k] * re[k] + im[k] * im[k] for k in range(n // 2 + 1)]


def _band_cdb(columns, n):
    """(mid, high) band power over low band power, centi-dB, for three centred columns."""
    bins = band_bins(n)
    sums = [0, 0, 0]
    for col in columns:
        power = fft_power(col)
        for b in range(3):
            first, last = bins[b]
            s = 0
            for k in range(first, last + 1):
                s += power[k]
            sums[b] += s
    counts = [last - first + 1 for first, last in bins]
    out = []
    for b in (1, 2):
        # (sums[b] / counts[b]) / (sums[0] / counts[0]); an empty band counts as one unit
        num = max(sums[b], 1) * counts[0]
        den = max(sums[0], 1) * counts[b]
        out.append(round_div(1000 * ln_fx(num, den), fixed.LN10))
    return out


def _median2(sorted_values):
    # twice the median of a sorted list (an integer even for an even count)
    n = len(sorted_values)
    h = n // 2
    if n % 2:
        return 2 * sorted_values[h]
    return sorted_values[h - 1] + sorted_values[h]


def _quant_gap_milli(cols, n):
    gaps4 = []  # 4 x each axis' median gap: the median of medians is then an integer
    for axis in range(6):
        col = sorted(cols[axis])
        steps = []
        for i in range(1, n):
            d = col[i] - col[i - 1]
            if d > 0:
                steps.append(d)
        steps.sort()
        gaps4.append(2 * _median2(steps) if steps else 0)
    gaps4.sort()
    return round_div((gaps4[2] + gaps4[3]) * 1000, 8)


def _repeat_pm(cols, n):
    a, b, c, d, e, f = cols
    seen = set()
    for i in range(n):
        seen.add((a[i], b[i], c[i], d[i], e[i], f[i]))
    return round_div(1000 * (n - len(seen)), n)


def _timing(ts_us, n, rate_hz):
    # least-squares slope with the centred index doubled (2k - n + 1, integers):
    # slope = 2 B / C; rate_ppb = (nominal / slope - 1) * 1e9 with nominal = 1e6 / rate_hz
    t0 = ts_us[0]
    b = c = t1 = t2 = 0
    for k in range(n):
        t = ts_us[k] - t0
        d = 2 * k - n + 1
        b += d * t
        c += d * d
        t1 += t
        t2 += t * t
    rate_ppb = round_div(1000000000 * (MILLION * c - 2 * b * rate_hz), 2 * b * rate_hz)
    # residual sum of squares: sum (t - mean)^2 - B^2 / C; jitter = sqrt(rss / n) * 1000 ns
    p = ((n * t2 - t1 * t1) * c - n * b * b) * MILLION
    jitter_ns = round_sqrt(max(p, 0), n * n * c)
    return rate_ppb, jitter_ns


def extract(cols, ts_us, rate_hz, accel_lsb, gyro_lsb, temp_mc):
    """The 24 fingerprint fields (wire order) of one at-rest window; see the module doc."""
    n = len(ts_us)
    if len(cols) != 6 or n < 64 or n & (n - 1) or any(len(c) != n for c in cols):
        raise ValueError("the window must be a power of two of 64 or more 6-axis samples")
    sums = [0] * 6
    squares = [0] * 6
    for axis in range(6):
        s = q = 0
        for v in cols[axis]:
            s += v
            q += v * v
        sums[axis] = s
        squares[axis] = q
    out = [0] * N_FIELDS
    # 0: |mean accel| in micro-g = sqrt(sum S^2) * 1e6 / (n * lsb)
    d = n * accel_lsb
    out[0] = round_sqrt((sums[0] ** 2 + sums[1] ** 2 + sums[2] ** 2) * MILLION * MILLION, d * d)
    for axis in (3, 4, 5):  # 1..3: gyro means in micro-deg/s
        out[axis - 2] = round_div(sums[axis] * MILLION, n * gyro_lsb)
    # 4, 5: mean over axes of the rms noise: sqrt(n Q - S^2) / (n * lsb) per axis, summed in
    # fixed point (FRAC guard bits) and rounded once
    for field, first, lsb in ((4, 0, accel_lsb), (5, 3, gyro_lsb)):
        total = 0
        for axis in range(first, first + 3):
            total += isqrt((n * squares[axis] - sums[axis] ** 2) << (2 * FRAC))
        out[field] = round_div(total * MILLION, 3 * n * lsb * ONE)
    # 6..9: band shapes of the window less its mean (scaled by n: n x - S is exact)
    for field, first in ((6, 0), (8, 3)):
        columns = []
        for axis in range(first, first + 3):
            s = sums[axis]
            columns.append([(n * v - s) << GUARD for v in cols[axis]])
        mid, high = _band_cdb(columns, n)
        out[field] = mid
        out[field + 1] = high
        columns = []
    out[10] = _quant_gap_milli(cols, n)
    out[11] = _repeat_pm(cols, n)
    out[12], out[13] = _timing(ts_us, n, rate_hz)
    out[14] = temp_mc
    return out  # 15..19 (temperature coefficients, baseline only), 20..23 (touch): 0


# ---- the model input ---------------------------------------------------------------------------

_TC = {0: 15, 1: 16, 2: 17, 3: 18, 12: 19}  # compensated field -> its coefficient field
_LN_RATIO = (4, 5, 10, 13)  # input -> ln(current / baseline) of these fields
_DIFF = ((6, 6), (7, 7), (8, 8), (9, 9))  # input index, field: plain differences


def _rational(value):
    """A float constant of the model card as an exact decimal fraction (num, den), from its
    shortest repr, so both ports read the same number."""
    text = repr(value)
    exp = 0
    if "e" in text:
        text, e = text.split("e")
        exp = int(e)
    if "." in text:
        whole, frac = text.split(".")
        text = whole + frac
        exp -= len(frac)
    num = int(text)
    if exp >= 0:
        return num * 10**exp, 1
    return num, 10**-exp


_cards = {}  # type: dict  # id(card) -> (scales, clip, input scale) as exact fractions


def _constants(card):
    got = _cards.get(id(card))
    if got is None:
        clip = _rational(card.CLIP)
        got = ([_rational(s) for s in card.SCALES], clip[0] * ONE // clip[1],
               _rational(card.INPUT_SCALE))
        _cards[id(card)] = got
    return got


def _raw_deltas(cur, base):
    # (num, den) of each raw delta in INPUT_FEATURES order, exact; ln ratios in fixed point
    dt_num = cur[14] - base[14]  # milli-degrees: dt_c = dt_num / 1000
    out = [(0, 1)] * 20
    for i, field in ((0, 0), (1, 1), (2, 2), (3, 3), (12, 12)):
        # current - (baseline + tc * dt_c)
        out[i] = ((cur[field] - base[field]) * 1000 - base[_TC[field]] * dt_num, 1000)
    for i, field in ((4, 4), (5, 5), (10, 10), (13, 13)):
        out[i] = (ln_fx(max(cur[field], 1), max(base[field], 1)), ONE)
    for i, field in _DIFF:
        out[i] = (cur[field] - base[field], 1)
    out[11] = (cur[11], 1)
    out[14] = (dt_num, 1000)
    for i in range(15, 20):
        out[i] = (0, 1)  # no touch: the neutral behaviour block
    return out


def model_input(current, baseline, card=model_card):
    """The int8 input tensor for `current` against `baseline` (both wire-order field lists):
    scaled, squashed by sign(x) ln(1 + |x|), clipped, quantised half up as agent.scoring, with
    the normalisation of `card` (the model in use)."""
    if tuple(card.FEATURES) != model_card.FEATURES:
        raise ValueError("the card was trained for another feature layout")
    q = bytearray(20)
    zp = card.INPUT_ZERO_POINT
    scales, clip_fx, (s_num, s_den) = _constants(card)
    for i, (num, den) in enumerate(_raw_deltas(current, baseline)):
        sc_num, sc_den = scales[i]
        # x = (num / den) / (sc_num / sc_den)
        xn = num * sc_den
        xd = den * sc_num
        if xn == 0:
            y = 0
        else:
            ax = abs(xn)
            y = ln_fx(xd + ax, xd)  # ln(1 + |x|)
            if y > clip_fx:
                y = clip_fx
            if xn < 0:
                y = -y
        # round half up of y / input_scale + zero point
        v = (y * s_den + (s_num * ONE) // 2) // (s_num * ONE) + zp
        q[i] = (max(-128, min(127, v))) & 0xFF
    return bytes(q)
