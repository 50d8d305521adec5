"""libsodium's sealed box, the opening side, in the subset MicroPython runs: what the bridge
uses to send a device its credentials after a claim (protocol/claims.py seal_credentials: a
crypto_box_seal to the X25519 form of the device's Ed25519 key). Issue 18 item 7 on the ESP32.

    plain = sealedbox.open_sealed(ciphertext, seed, ed25519_public)   ValueError if forged

crypto_box_seal (libsodium docs, "Sealed boxes"): ephemeral X25519 key epk, nonce =
BLAKE2b-192(epk || pk), crypto_box(m, nonce, pk, esk); the ciphertext is epk || box. The box
is XSalsa20-Poly1305 (NaCl crypto_secretbox) keyed by HSalsa20 of the X25519 shared secret.
The device's X25519 secret is its Ed25519 seed's SHA-512, first half (clamped by X25519), and
its X25519 public key the Montgomery form u = (1 + y) / (1 - y) of its Ed25519 point.

Cost: one X25519 ladder (255 steps of a few multiplications mod 2**255 - 19, less than one
Ed25519 signature check, which the firmware does for every bridge message), one BLAKE2b block
and a few Salsa20 blocks: once per enrollment. Plain Python integers: readable over fast.
"""

import ed25519
from sha512 import sha512

P = ed25519.P
M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"


# ---- X25519 (RFC 7748 section 5) ---------------------------------------------------------------


def x25519(k, u):
    """The scalar k (32 bytes, clamped here) times the point u (32 bytes): 32 bytes."""
    n = int.from_bytes(k, "little")
    n &= ~7
    n &= ~(128 << 8 * 31)
    n |= 64 << 8 * 31
    x1 = int.from_bytes(u, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        bit = (n >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a = (x2 + z2) % P
        aa = a * a % P
        b = (x2 - z2) % P
        bb = b * b % P
        e = (aa - bb) % P
        c = (x3 + z3) % P
        d = (x3 - z3) % P
        da = d * a % P
        cb = c * b % P
        x3 = (da + cb) % P
        x3 = x3 * x3 % P
        z3 = (da - cb) % P
        z3 = x1 * (z3 * z3 % P) % P
        x2 = aa * bb % P
        z2 = e * ((aa + 121665 * e) % P) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * ed25519.inv(z2) % P).to_bytes(32, "little")


def curve_public(ed_public):
    """The X25519 public key of an Ed25519 public key (u = (1 + y) / (1 - y))."""
    y = int.from_bytes(ed_public, "little") & ((1 << 255) - 1)
    return ((1 + y) * ed25519.inv((1 - y) % P) % P).to_bytes(32, "little")


def curve_secret(seed):
    """The X25519 secret of an Ed25519 seed (libsodium crypto_sign_ed25519_sk_to_curve25519:
    the first half of SHA-512(seed), clamped)."""
    h = bytearray(sha512(seed)[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


# ---- Salsa20, HSalsa20 (Bernstein, "Salsa20 specification"; "Extending the Salsa20 nonce") ----


def _rounds(x):
    for _ in range(10):
        for a, b, c, d in ((0, 4, 8, 12), (5, 9, 13, 1), (10, 14, 2, 6), (15, 3, 7, 11),
                           (0, 1, 2, 3), (5, 6, 7, 4), (10, 11, 8, 9), (15, 12, 13, 14)):  # fmt: skip
            v = (x[a] + x[d]) & M32
            x[b] ^= ((v << 7) & M32) | (v >> 25)
            v = (x[b] + x[a]) & M32
            x[c] ^= ((v << 9) & M32) | (v >> 23)
            v = (x[c] + x[b]) & M32
            x[d] ^= ((v << 13) & M32) | (v >> 19)
            v = (x[d] + x[c]) & M32
            x[a] ^= ((v << 18) & M32) | (v >> 14)


def _words(data):
    return [int.from_bytes(data[i : i + 4], "little") for i in range(0, len(data), 4)]


def _state(key, middle):
    k = _words(key)
    m = _words(middle)
    return [_SIGMA[0]] + k[:4] + [_SIGMA[1]] + m + [_SIGMA[2]] + k[4:] + [_SIGMA[3]]


def hsalsa20(key, nonce16):
    x = _state(key, nonce16)
    _rounds(x)
    return b"".join(x[i].to_bytes(4, "little") for i in (0, 5, 10, 15, 6, 7, 8, 9))


def salsa20_stream(key, nonce8, n):
    out = bytearray()
    block = 0
    while len(out) < n:
        start = _state(key, nonce8 + block.to_bytes(8, "little"))
        x = list(start)
        _rounds(x)
        for i in range(16):
            out.extend(((x[i] + start[i]) & M32).to_bytes(4, "little"))
        block += 1
    return bytes(out[:n])


# ---- Poly1305 (RFC 8439 section 2.5) -----------------------------------------------------------


def poly1305(key, msg):
    r = int.from_bytes(key[:16], "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    s = int.from_bytes(key[16:32], "little")
    p = (1 << 130) - 5
    acc = 0
    for i in range(0, len(msg), 16):
        acc = (acc + int.from_bytes(msg[i : i + 16] + b"\x01", "little")) * r % p
    return ((acc + s) & ((1 << 128) - 1)).to_bytes(16, "little")


# ---- BLAKE2b (RFC 7693), unkeyed ---------------------------------------------------------------

_IV = (0x6A09E667F3BCC908, 0xBB67AE8584CAA73B, 0x3C6EF372FE94F82B, 0xA54FF53A5F1D36F1,
       0x510E527FADE682D1, 0x9B05688C2B3E6C1F, 0x1F83D9ABFB41BD6B, 0x5BE0CD19137E2179)  # fmt: skip
_PERM = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)


def _rotr64(v, n):
    return (v >> n) | ((v << (64 - n)) & M64)


def _g(v, a, b, c, d, x, y):
    v[a] = (v[a] + v[b] + x) & M64
    v[d] = _rotr64(v[d] ^ v[a], 32)
    v[c] = (v[c] + v[d]) & M64
    v[b] = _rotr64(v[b] ^ v[c], 24)
    v[a] = (v[a] + v[b] + y) & M64
    v[d] = _rotr64(v[d] ^ v[a], 16)
    v[c] = (v[c] + v[d]) & M64
    v[b] = _rotr64(v[b] ^ v[c], 63)


def _compress(h, block, t, last):
    m = [int.from_bytes(block[i : i + 8], "little") for i in range(0, 128, 8)]
    v = list(h) + list(_IV)
    v[12] ^= t & M64
    v[13] ^= t >> 64
    if last:
        v[14] ^= M64
    for r in range(12):
        s = _PERM[r % 10]
        _g(v, 0, 4, 8, 12, m[s[0]], m[s[1]])
        _g(v, 1, 5, 9, 13, m[s[2]], m[s[3]])
        _g(v, 2, 6, 10, 14, m[s[4]], m[s[5]])
        _g(v, 3, 7, 11, 15, m[s[6]], m[s[7]])
        _g(v, 0, 5, 10, 15, m[s[8]], m[s[9]])
        _g(v, 1, 6, 11, 12, m[s[10]], m[s[11]])
        _g(v, 2, 7, 8, 13, m[s[12]], m[s[13]])
        _g(v, 3, 4, 9, 14, m[s[14]], m[s[15]])
    for i in range(8):
        h[i] ^= v[i] ^ v[i + 8]


def blake2b(data, digest_size=64):
    h = list(_IV)
    h[0] ^= 0x01010000 ^ digest_size
    n = len(data)
    offset = 0
    while n - offset > 128:
        offset += 128
        _compress(h, data[offset - 128 : offset], offset, False)
    tail = data[offset:]
    _compress(h, tail + bytes(128 - len(tail)), n, True)
    return b"".join(w.to_bytes(8, "little") for w in h)[:digest_size]


# ---- the sealed box ----------------------------------------------------------------------------


def open_box(box, nonce, their_public, my_secret):
    """crypto_box_open (NaCl): the plaintext, or ValueError when the tag does not verify."""
    shared = x25519(my_secret, their_public)
    if shared == bytes(32):  # a low-order point: libsodium's crypto_scalarmult refuses it too
        raise ValueError("box key is a low-order point")
    key = hsalsa20(shared, bytes(16))
    sub = hsalsa20(key, nonce[:16])
    if len(box) < 16:
        raise ValueError("box shorter than its tag")
    stream = salsa20_stream(sub, nonce[16:24], 32 + len(box) - 16)
    tag, ct = box[:16], box[16:]
    want = poly1305(stream[:32], ct)
    diff = 0
    for a, b in zip(tag, want):
        diff |= a ^ b
    if diff:
        raise ValueError("box does not verify (not sealed to this key, or altered)")
    return bytes(c ^ s for c, s in zip(ct, stream[32:]))


def open_sealed(data, seed, ed_public):
    """crypto_box_seal_open for the device's Ed25519 key (seed, public key)."""
    if len(data) < 48:
        raise ValueError("sealed box shorter than its key and tag")
    epk = bytes(data[:32])
    pk = curve_public(ed_public)
    nonce = blake2b(epk + pk, 24)
    return open_box(bytes(data[32:]), nonce, epk, curve_secret(seed))
