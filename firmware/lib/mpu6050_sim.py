"""A simulated MPU-6050 at register level: a stand-in for machine.I2C on the unix port (the
hardware bus is the one thing the tests may fake). It answers WHO_AM_I, takes the configuration
writes and serves 14-byte sample bursts from ACCEL_XOUT_H, generated from a seed: per-device
biases, noise levels and a first-order low-pass (the DLPF) are drawn once, then every read
gives the next sample. Deterministic, so provisioning (in CPython) and the device (in
MicroPython) see the same sensor.

    i2c = SimI2C(seed=7)
    imu = mpu6050.MPU6050(i2c)
"""

ADDRESS = 0x68
_WHO_AM_I = 0x75
_ACCEL_XOUT_H = 0x3B


class _Rand:
    # xorshift32: the same stream in CPython and MicroPython
    def __init__(self, seed):
        self.state = (seed * 2654435761 + 12345) & 0xFFFFFFFF or 1

    def bits(self, n):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x >> (32 - n)

    def noise(self, sd):
        # about N(0, sd^2): four 8-bit uniforms (variance 4 * 65536 / 12 = 21845), scaled
        s = self.bits(8) + self.bits(8) + self.bits(8) + self.bits(8) - 510
        return (s * sd * 148) // 21845  # 21845 ** 0.5 = 147.8


class SimI2C:
    """machine.I2C's memory interface for one MPU-6050 at ADDRESS."""

    def __init__(self, seed, address=ADDRESS):
        self.address = address
        self.regs = bytearray(128)
        self.regs[_WHO_AM_I] = 0x68
        self.reads = 0
        r = _Rand(seed)
        self._rand = r
        self.mean = (
            r.bits(9) - 256, r.bits(9) - 256, 16384 + r.bits(9) - 256,
            r.bits(7) - 64, r.bits(7) - 64, r.bits(7) - 64,
        )  # fmt: skip
        self.sd = (
            8 + r.bits(3), 8 + r.bits(3), 10 + r.bits(3),
            3 + r.bits(2), 3 + r.bits(2), 3 + r.bits(2),
        )  # fmt: skip
        self.temp_raw = -3900 + r.bits(8)  # about 25 degrees C
        self._prev = [0] * 6

    def _check(self, addr):
        if addr != self.address:
            raise OSError(19)  # ENODEV: nothing acknowledges that address

    def writeto_mem(self, addr, reg, buf):
        self._check(addr)
        for i, b in enumerate(buf):
            self.regs[(reg + i) & 0x7F] = b

    def readfrom_mem(self, addr, reg, n):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, reg, buf)
        return bytes(buf)

    def readfrom_mem_into(self, addr, reg, buf):
        self._check(addr)
        if reg == _ACCEL_XOUT_H:
            self._sample()
        for i in range(len(buf)):
            buf[i] = self.regs[(reg + i) & 0x7F]

    def _sample(self):
        r = self._rand
        values = [0] * 7
        for axis in range(6):
            # first-order low-pass of white noise: flicker-free, rolled off near Nyquist
            x = r.noise(self.sd[axis])
            y = (x + self._prev[axis]) // 2
            self._prev[axis] = x
            values[axis if axis < 3 else axis + 1] = self.mean[axis] + y
        values[3] = self.temp_raw + r.bits(2) - 1
        pos = _ACCEL_XOUT_H
        for v in values:
            v &= 0xFFFF
            self.regs[pos] = v >> 8
            self.regs[pos + 1] = v & 0xFF
            pos += 2
        self.reads += 1


class SimClock:
    """The sampling clock of the simulated board (a clock may be simulated in tests): the
    host's microsecond ticks as the capture sees them, with up to `jitter_us` of arrival
    jitter per read and sleeps that take exactly as long as asked. Provisioning enrolls with
    it and the unix port captures with it, so both see the same timing."""

    JITTER_US = 2

    def __init__(self, seed, jitter_us=JITTER_US):
        self._rand = _Rand(seed ^ 0x5A5A5A5A)
        self.jitter_us = jitter_us
        self.now_us = 0

    def ticks_us(self):
        self.now_us += (self._rand.bits(16) * (self.jitter_us + 1)) >> 16
        return self.now_us

    def sleep_us(self, us):
        self.now_us += us
