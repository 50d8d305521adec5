"""The SHA-512 compression function in plain Python integers, for a port built without the
native emitter (sha512.py loads it only then; sha512_viper.py is the one the ESP32 runs)."""

_MASK = 0xFFFFFFFFFFFFFFFF


def compress(h, w, k, block):
    # FIPS 180-4 section 6.4.2 with Python integers (64-bit words joined from their halves)
    m = _MASK
    ws = [int.from_bytes(block[8 * t : 8 * t + 8], "big") for t in range(16)]
    for t in range(16, 80):
        x = ws[t - 15]
        s0 = ((x >> 1) | (x << 63)) ^ ((x >> 8) | (x << 56)) ^ (x >> 7)
        x = ws[t - 2]
        s1 = ((x >> 19) | (x << 45)) ^ ((x >> 61) | (x << 3)) ^ (x >> 6)
        ws.append((s1 + ws[t - 7] + (s0 & m) + ws[t - 16]) & m)
    st = [(h[2 * i] << 32) | h[2 * i + 1] for i in range(8)]
    a, b, c, d, e, f, g, hh = st
    for t in range(80):
        s1 = ((e >> 14) | (e << 50)) ^ ((e >> 18) | (e << 46)) ^ ((e >> 41) | (e << 23))
        t1 = (hh + (s1 & m) + (g ^ (e & (f ^ g))) + ((k[2 * t] << 32) | k[2 * t + 1]) + ws[t]) & m
        s0 = ((a >> 28) | (a << 36)) ^ ((a >> 34) | (a << 30)) ^ ((a >> 39) | (a << 25))
        t2 = ((s0 & m) + ((a & b) | (c & (a | b)))) & m
        hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & m, c, b, a, (t1 + t2) & m
    for i, v in enumerate((a, b, c, d, e, f, g, hh)):
        v = (st[i] + v) & m
        h[2 * i] = v >> 32
        h[2 * i + 1] = v & 0xFFFFFFFF
