"""SHA-512 (FIPS 180-4), which MicroPython's hashlib lacks on the ESP32 (and in the unix port).

    h = SHA512(); h.update(data); h.digest()      like hashlib
    sha512(data) -> the 64-byte digest

The compression function is the viper one (sha512_viper.py, about 15x faster) where the port
has the native emitter, else the plain one (sha512_plain.py, loaded only then). Both keep the 64-bit words as 32-bit halves
in preallocated arrays, so hashing allocates nothing per block.
"""

from array import array

_K_HEX = (
    "428a2f98d728ae227137449123ef65cdb5c0fbcfec4d3b2fe9b5dba58189dbbc3956c25bf348b538"
    "59f111f1b605d019923f82a4af194f9bab1c5ed5da6d8118d807aa98a303024212835b0145706fbe"
    "243185be4ee4b28c550c7dc3d5ffb4e272be5d74f27b896f80deb1fe3b1696b19bdc06a725c71235"
    "c19bf174cf692694e49b69c19ef14ad2efbe4786384f25e30fc19dc68b8cd5b5240ca1cc77ac9c65"
    "2de92c6f592b02754a7484aa6ea6e4835cb0a9dcbd41fbd476f988da831153b5983e5152ee66dfab"
    "a831c66d2db43210b00327c898fb213fbf597fc7beef0ee4c6e00bf33da88fc2d5a79147930aa725"
    "06ca6351e003826f142929670a0e6e7027b70a8546d22ffc2e1b21385c26c9264d2c6dfc5ac42aed"
    "53380d139d95b3df650a73548baf63de766a0abb3c77b2a881c2c92e47edaee692722c851482353b"
    "a2bfe8a14cf10364a81a664bbc423001c24b8b70d0f89791c76c51a30654be30d192e819d6ef5218"
    "d69906245565a910f40e35855771202a106aa07032bbd1b819a4c116b8d2d0c81e376c085141ab53"
    "2748774cdf8eeb9934b0bcb5e19b48a8391c0cb3c5c95a634ed8aa4ae3418acb5b9cca4f7763e373"
    "682e6ff3d6b2b8a3748f82ee5defb2fc78a5636f43172f6084c87814a1f0ab728cc702081a6439ec"
    "90befffa23631e28a4506cebde82bde9bef9a3f7b2c67915c67178f2e372532bca273eceea26619c"
    "d186b8c721c0c207eada7dd6cde0eb1ef57d4f7fee6ed17806f067aa72176fba0a637dc5a2c898a6"
    "113f9804bef90dae1b710b35131c471b28db77f523047d8432caab7b40c724933c9ebe0a15c9bebc"
    "431d67c49c100d4c4cc5d4becb3e42b6597f299cfc657e2a5fcb6fab3ad6faec6c44198c4a475817"
)
_IV_HEX = (
    "6a09e667f3bcc908bb67ae8584caa73b3c6ef372fe94f82ba54ff53a5f1d36f1"
    "510e527fade682d19b05688c2b3e6c1f1f83d9abfb41bd6b5be0cd19137e2179"
)


def _words(hexed):
    raw = bytes.fromhex(hexed)
    out = array("I", bytes(len(raw)))
    for i in range(len(raw) // 4):
        out[i] = int.from_bytes(raw[4 * i : 4 * i + 4], "big")
    return out


_K = _words(_K_HEX)
_IV = _words(_IV_HEX)
_W = array("I", bytes(640))  # the message schedule, shared: hashing is not reentrant


# viper takes the arrays as raw pointers, which the stubs type as ptr32/ptr8: the calls below
# say so to the type checker
try:
    from sha512_viper import compress
except (ImportError, SyntaxError):  # a port built without the native emitter
    from sha512_plain import compress  # type: ignore[assignment]
del _K_HEX, _IV_HEX, _words  # the tables are built: their text need not stay in the heap


class SHA512:
    """Incremental SHA-512, the subset of hashlib's interface the firmware uses."""

    def __init__(self, data=b""):
        self._h = array("I", _IV)
        self._buf = bytearray(128)
        self._fill = 0
        self._length = 0
        if data:
            self.update(data)

    def update(self, data):
        mv = memoryview(data)
        n = len(mv)
        self._length += n
        pos = 0
        buf = self._buf
        while pos < n:
            take = min(128 - self._fill, n - pos)
            buf[self._fill : self._fill + take] = mv[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == 128:
                compress(self._h, _W, _K, buf)  # type: ignore[arg-type]
                self._fill = 0

    def digest(self):
        """The digest of everything given so far; the object stays usable (a copy finishes)."""
        h = array("I", self._h)
        buf = bytearray(self._buf)
        fill = self._fill
        # padding, FIPS 180-4 section 5.1.2: 0x80, zeros, the length in bits as 128 bits
        buf[fill] = 0x80
        for i in range(fill + 1, 128):
            buf[i] = 0
        if fill >= 112:
            compress(h, _W, _K, buf)  # type: ignore[arg-type]
            for i in range(128):
                buf[i] = 0
        buf[112:128] = (self._length * 8).to_bytes(16, "big")
        compress(h, _W, _K, buf)  # type: ignore[arg-type]
        out = bytearray(64)
        for i in range(16):
            out[4 * i : 4 * i + 4] = h[i].to_bytes(4, "big")
        return bytes(out)


def sha512(data):
    """The SHA-512 digest of `data`."""
    return SHA512(data).digest()
