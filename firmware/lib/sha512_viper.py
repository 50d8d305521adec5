"""The SHA-512 compression function (FIPS 180-4 section 6.4.2) in MicroPython viper.

The 64-bit words are pairs of 32-bit halves (hi, lo) in `array("I")` buffers, so the same code
is correct on the 32-bit ESP32 (compiled with `mpy-cross -march=xtensawin`) and on the 64-bit
unix port: every sum is masked to 32 bits and its carry found by comparison, and every shifted
value is a `uint`, so right shifts are logical on both. About 15x faster than plain code.

    compress(h, w, k, block)   h: 16 words of state, w: 160 words of scratch,
                               k: the 160 words of the round constants, block: 128 bytes
"""

import micropython


@micropython.viper
def compress(h: ptr32, w: ptr32, k: ptr32, block: ptr8):
    M = uint(0xFFFFFFFF)
    # the message schedule, FIPS 180-4 section 6.4.2 step 1
    i = 0
    while i < 32:
        j = i * 4
        w[i] = (uint(block[j]) << 24) | (uint(block[j + 1]) << 16) | (
            uint(block[j + 2]) << 8) | uint(block[j + 3])
        i += 1
    while i < 160:
        xh = uint(w[i - 30])  # W[t-15]
        xl = uint(w[i - 29])
        s0h = (((xh >> 1) | (xl << 31)) ^ ((xh >> 8) | (xl << 24)) ^ (xh >> 7)) & M
        s0l = (((xl >> 1) | (xh << 31)) ^ ((xl >> 8) | (xh << 24)) ^ ((xl >> 7) | (xh << 25))) & M
        xh = uint(w[i - 4])  # W[t-2]
        xl = uint(w[i - 3])
        s1h = (((xh >> 19) | (xl << 13)) ^ ((xl >> 29) | (xh << 3)) ^ (xh >> 6)) & M
        s1l = (((xl >> 19) | (xh << 13)) ^ ((xh >> 29) | (xl << 3)) ^ ((xl >> 6) | (xh << 26))) & M
        # s1 + W[t-7] + s0 + W[t-16], carry by comparison
        rl = (s1l + uint(w[i - 13])) & M
        rh = s1h + uint(w[i - 14])
        if rl < s1l:
            rh += 1
        tl = (rl + s0l) & M
        rh += s0h
        if tl < rl:
            rh += 1
        rl = (tl + uint(w[i - 31])) & M
        rh += uint(w[i - 32])
        if rl < tl:
            rh += 1
        w[i] = rh
        w[i + 1] = rl
        i += 2
    ah = uint(h[0])
    al = uint(h[1])
    bh = uint(h[2])
    bl = uint(h[3])
    ch = uint(h[4])
    cl = uint(h[5])
    dh = uint(h[6])
    dl = uint(h[7])
    eh = uint(h[8])
    el = uint(h[9])
    fh = uint(h[10])
    fl = uint(h[11])
    gh = uint(h[12])
    gl = uint(h[13])
    hh = uint(h[14])
    hl = uint(h[15])
    i = 0
    while i < 160:
        # T1 = h + S1(e) + Ch(e, f, g) + K[t] + W[t]
        sh = (((eh >> 14) | (el << 18)) ^ ((eh >> 18) | (el << 14)) ^ ((el >> 9) | (eh << 23))) & M
        sl = (((el >> 14) | (eh << 18)) ^ ((el >> 18) | (eh << 14)) ^ ((eh >> 9) | (el << 23))) & M
        t1l = (hl + sl) & M
        t1h = hh + sh
        if t1l < hl:
            t1h += 1
        xl = gl ^ (el & (fl ^ gl))
        tl = (t1l + xl) & M
        t1h += gh ^ (eh & (fh ^ gh))
        if tl < t1l:
            t1h += 1
        xl = uint(k[i + 1])
        t1l = (tl + xl) & M
        t1h += uint(k[i])
        if t1l < tl:
            t1h += 1
        xl = uint(w[i + 1])
        tl = (t1l + xl) & M
        t1h = (t1h + uint(w[i])) & M
        if tl < t1l:
            t1h = (t1h + 1) & M
        t1l = tl
        # T2 = S0(a) + Maj(a, b, c)
        sh = (((ah >> 28) | (al << 4)) ^ ((al >> 2) | (ah << 30)) ^ ((al >> 7) | (ah << 25))) & M
        sl = (((al >> 28) | (ah << 4)) ^ ((ah >> 2) | (al << 30)) ^ ((ah >> 7) | (al << 25))) & M
        xl = (al & bl) | (cl & (al | bl))
        t2l = (sl + xl) & M
        t2h = sh + ((ah & bh) | (ch & (ah | bh)))
        if t2l < sl:
            t2h += 1
        hh = gh
        hl = gl
        gh = fh
        gl = fl
        fh = eh
        fl = el
        el = (dl + t1l) & M
        eh = dh + t1h
        if el < dl:
            eh += 1
        eh = eh & M
        dh = ch
        dl = cl
        ch = bh
        cl = bl
        bh = ah
        bl = al
        al = (t1l + t2l) & M
        ah = t1h + t2h
        if al < t1l:
            ah += 1
        ah = ah & M
        i += 2
    # add the compressed chunk to the state
    j = 0
    while j < 16:
        if j == 0:
            xh = ah
            xl = al
        elif j == 2:
            xh = bh
            xl = bl
        elif j == 4:
            xh = ch
            xl = cl
        elif j == 6:
            xh = dh
            xl = dl
        elif j == 8:
            xh = eh
            xl = el
        elif j == 10:
            xh = fh
            xl = fl
        elif j == 12:
            xh = gh
            xl = gl
        else:
            xh = hh
            xl = hl
        tl = uint(h[j + 1])
        rl = (tl + xl) & M
        rh = uint(h[j]) + xh
        if rl < tl:
            rh += 1
        h[j] = rh
        h[j + 1] = rl
        j += 2
