"""Ed25519 signatures (RFC 8032 section 5.1) for MicroPython, byte for byte what PyNaCl makes.

    key = SigningKey(seed)          32-byte seed (RFC 8032 "secret key")
    key.public                      the 32-byte public key
    key.sign(message)               the 64-byte signature
    verify(public, message, sig)    True or False

Speed on a board without a C toolchain comes from three things (issue 14's measurements):
- the fixed base point B is multiplied with a comb (Lim-Lee; TEETH teeth SPACING apart): 63
  precomputed points kept as 6 KB of bytes (ed25519_comb.TABLE, frozen into flash on the
  board; as Python integers it would take ~77 KB of heap), so [r]B is 42 doublings and at
  most 43 mixed additions;
- field inversion and the square root use the addition chains of ref10 (about 265 squarings
  and 11 multiplications), several times faster than pow(z, p - 2, p) in MicroPython;
- SHA-512 is compiled with viper (sha512.py).

Not constant time: MicroPython's big integers are not, and the device's threat model is a
forged message on the wire, not a timing probe on the board.
"""

import ed25519_comb
from sha512 import SHA512

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
D2 = (2 * D) % P
SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
B_X = 15112221349535400772501151409588531511454012693041857206046113283949847762202
B_Y = 46316835694926478169428394003475163141307993866256225615783033603165251855960

TEETH = 6
SPACING = 43  # TEETH * SPACING >= 253 bits of a scalar below L
ENTRY = 96  # bytes per table entry: y + x, y - x, 2dxy, 32 bytes little-endian each

_IDENTITY = (0, 1, 1, 0)


# ---- field arithmetic modulo p ---------------------------------------------------------------


def _sqr_n(x, n):
    for _ in range(n):
        x = x * x % P
    return x


def _chain_250(z):
    # ref10's chain: (z ** (2**250 - 1), z ** 11)
    z2 = z * z % P
    z9 = _sqr_n(z2, 2) * z % P
    z11 = z9 * z2 % P
    z5 = z11 * z11 % P * z9 % P  # 2**5 - 1
    z10 = _sqr_n(z5, 5) * z5 % P
    z20 = _sqr_n(z10, 10) * z10 % P
    z40 = _sqr_n(z20, 20) * z20 % P
    z50 = _sqr_n(z40, 10) * z10 % P
    z100 = _sqr_n(z50, 50) * z50 % P
    z200 = _sqr_n(z100, 100) * z100 % P
    z250 = _sqr_n(z200, 50) * z50 % P
    return z250, z11


def inv(z):
    """z ** (p - 2) mod p: p - 2 = (2**250 - 1) * 2**5 + 11."""
    z250, z11 = _chain_250(z)
    return _sqr_n(z250, 5) * z11 % P


def _pow22523(z):
    # z ** ((p - 5) / 8) = z ** (2**252 - 3) = z ** ((2**250 - 1) * 4 + 1)
    z250, _ = _chain_250(z)
    return _sqr_n(z250, 2) * z % P


# ---- points in extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z -----------------


def _double(p):
    # RFC 8032 section 5.1.4, doubling
    x1, y1, z1, _ = p
    a = x1 * x1 % P
    b = y1 * y1 % P
    c = 2 * z1 * z1 % P
    h = a + b
    s = x1 + y1
    e = h - s * s % P
    g = a - b
    f = c + g
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _add(p, q):
    # RFC 8032 section 5.1.4, addition
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = t1 * D2 % P * t2 % P
    d = 2 * z1 * z2 % P
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _madd(p, ypx, ymx, xy2d):
    # addition of an affine point given as (y + x, y - x, 2dxy): 7 multiplications
    x1, y1, z1, t1 = p
    a = (y1 - x1) * ymx % P
    b = (y1 + x1) * ypx % P
    c = t1 * xy2d % P
    d = 2 * z1
    e = b - a
    f = d - c
    g = d + c
    h = b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def encode_point(p):
    """RFC 8032 section 5.1.2: y little-endian, the sign of x in the top bit."""
    x, y, z, _ = p
    zi = inv(z)
    x = x * zi % P
    y = y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode_point(raw):
    """RFC 8032 section 5.1.3; None for bytes that are not a point."""
    if len(raw) != 32:
        return None
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    yy = y * y % P
    u = (yy - 1) % P
    v = (D * yy + 1) % P
    v3 = v * v % P * v % P
    x = u * v3 % P * _pow22523(u * v3 % P * v3 % P * v % P) % P
    vxx = v * x % P * x % P
    if vxx != u:
        if vxx != P - u:
            return None
        x = x * SQRT_M1 % P
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def comb_table():
    """The comb's table, computed: entry i - 1 (i = 1..63) is the sum of 2**(SPACING * t) * B
    over the bits t set in i, as (y + x, y - x, 2dxy). ed25519_comb.TABLE holds these bytes."""
    teeth = []
    point = (B_X, B_Y, 1, B_X * B_Y % P)
    for _ in range(TEETH):
        teeth.append(point)
        for _ in range(SPACING):
            point = _double(point)
    out = bytearray()
    for i in range(1, 1 << TEETH):
        acc = _IDENTITY
        for t in range(TEETH):
            if i >> t & 1:
                acc = _add(acc, teeth[t])
        zi = inv(acc[2])
        x = acc[0] * zi % P
        y = acc[1] * zi % P
        for v in ((y + x) % P, (y - x) % P, D2 * x % P * y % P):
            out.extend(v.to_bytes(32, "little"))
    return bytes(out)


_TABLE = memoryview(ed25519_comb.TABLE)


def _field(offset):
    return int.from_bytes(_TABLE[offset : offset + 32], "little")


def base_mul(k):
    """[k]B for 0 <= k < 2**258, by the comb."""
    kb = k.to_bytes(33, "little")
    acc = _IDENTITY
    for j in range(SPACING - 1, -1, -1):
        acc = _double(acc)
        i = 0
        for t in range(TEETH):
            bit = SPACING * t + j
            i |= ((kb[bit >> 3] >> (bit & 7)) & 1) << t
        if i:
            o = (i - 1) * ENTRY
            acc = _madd(acc, _field(o), _field(o + 32), _field(o + 64))
    return acc


def _mul(k, p):
    # [k]p with a fixed 4-bit window (verification only: p is the signer's key)
    multiples = [_IDENTITY, p]
    for _ in range(14):
        multiples.append(_add(multiples[-1], p))
    acc = _IDENTITY
    for shift in range(252, -1, -4):
        acc = _double(_double(_double(_double(acc))))
        nibble = (k >> shift) & 15
        if nibble:
            acc = _add(acc, multiples[nibble])
    return acc


def _reduce(digest):
    return int.from_bytes(digest, "little") % L


class SigningKey:
    """An Ed25519 key from its 32-byte seed; `public` is computed once."""

    def __init__(self, seed):
        if len(seed) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes")
        h = SHA512(seed).digest()
        # RFC 8032 section 5.1.5: clamp the first half
        a = bytearray(h[:32])
        a[0] &= 248
        a[31] = (a[31] & 127) | 64
        self._a = int.from_bytes(a, "little")
        self._prefix = h[32:]
        self.public = encode_point(base_mul(self._a))

    def sign(self, message):
        """RFC 8032 section 5.1.6: the 64-byte signature of `message`."""
        h = SHA512(self._prefix)
        h.update(message)
        r = _reduce(h.digest())
        big_r = encode_point(base_mul(r))
        h = SHA512(big_r)
        h.update(self.public)
        h.update(message)
        k = _reduce(h.digest())
        s = (r + k * self._a) % L
        return big_r + s.to_bytes(32, "little")


def verify(public, message, signature):
    """RFC 8032 section 5.1.7 (the cofactorless check libsodium makes): True when `signature`
    is `public`'s signature of `message`."""
    if len(signature) != 64 or len(public) != 32:
        return False
    a = decode_point(public)
    if a is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    h = SHA512(signature[:32])
    h.update(public)
    h.update(message)
    k = _reduce(h.digest())
    neg_a = ((P - a[0]) % P, a[1], a[2], (P - a[3]) % P)
    check = _add(base_mul(s), _mul(k, neg_a))
    return encode_point(check) == bytes(signature[:32])
