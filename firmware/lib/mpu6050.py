"""MPU-6050 over machine.I2C (readfrom_mem / writeto_mem): the IMU of the ESP32 rig.

Register map from the InvenSense MPU-6000/6050 register map, revision 4.2, set up as the Linux
agent's agent/sensors/mpu6050.py: wake (PWR_MGMT_1 = 0), +-2 g (16384 LSB/g), +-250 deg/s
(131 LSB/(deg/s)), DLPF 44 Hz, sample divider for the configured rate; a window is a burst
read of the 14 bytes from ACCEL_XOUT_H per sample: accel x y z, temperature, gyro x y z,
big-endian int16.

    imu = MPU6050(i2c, address=0x68)         ImuError if nothing answers or it is not one
    imu.configure(sample_hz)
    cols, ts_us, temp_mc = imu.capture(n, sample_hz, ticks_us, sleep_us)
    stuck(cols)                              True: one raw sample repeated the whole window
    health = Health(); health.note(fault)    fault: None, FAULT_READ or FAULT_STUCK
    health.telemetry()                       {"fault.imu.read": 1, "imu.ok": 0}: the report's

A bus error (OSError from machine.I2C) leaves capture as it is: the device counts it.
"""

import time
from array import array


def _minus(a, b):
    return a - b


# CPython has no ticks_diff: provisioning runs the simulated IMU there, on plain integers
ticks_diff = getattr(time, "ticks_diff", _minus)


WHO_AM_I = 0x75
PWR_MGMT_1 = 0x6B
SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
ACCEL_XOUT_H = 0x3B
ACCEL_LSB_PER_G = 16384
GYRO_LSB_PER_DPS = 131
ADDRESS = 0x68
# the IMU's health in a report's telemetry, with the Linux agent's keys (agent/sensors/faults.py
# and scenes.py): fault episodes, counted when they begin, and whether the window is fresh
FAULT_READ = "fault.imu.read"
FAULT_STUCK = "fault.imu.stuck"
IMU_OK = "imu.ok"


class ImuError(Exception):
    """The IMU does not answer or is not an MPU-6050."""


def _s16(hi, lo):
    v = (hi << 8) | lo
    return v - 65536 if v & 0x8000 else v


def stuck(cols):
    """True when a window never changes on any axis (agent.sensors.mpu6050.stuck): a live
    MPU-6050 at rest shows a few LSB of noise on every axis, so a frozen part is flagged."""
    for col in cols:
        first = col[0]
        for v in col:
            if v != first:
                return False
    return len(cols[0]) >= 2


class Health:
    """Each capture's outcome, noted: None (a good window), FAULT_READ or FAULT_STUCK. A fault
    is counted when its episode begins and flagged (imu.ok 0) while it lasts."""

    def __init__(self):
        self.counts = {}
        self.fault = None

    def note(self, fault):
        if fault is not None and fault != self.fault:
            self.counts[fault] = self.counts.get(fault, 0) + 1
        self.fault = fault

    def telemetry(self):
        out = dict(self.counts)
        out[IMU_OK] = 0 if self.fault else 1
        return out


class MPU6050:
    def __init__(self, i2c, address=ADDRESS):
        self.i2c = i2c
        self.address = address
        self._buf = bytearray(14)
        try:
            who = i2c.readfrom_mem(address, WHO_AM_I, 1)[0]
        except OSError as exc:
            raise ImuError("no answer from I2C address 0x%02x: %s" % (address, exc))
        if who & 0x7E != 0x68:
            raise ImuError("0x%02x says WHO_AM_I=0x%02x, not an MPU-6050" % (address, who))

    def configure(self, sample_hz):
        w = self.i2c.writeto_mem
        a = self.address
        w(a, PWR_MGMT_1, b"\x00")
        w(a, CONFIG, b"\x03")  # DLPF 44 Hz, gyro output at 1 kHz
        w(a, SMPLRT_DIV, bytes((max(0, min(255, 1000 // sample_hz - 1)),)))
        w(a, GYRO_CONFIG, b"\x00")
        w(a, ACCEL_CONFIG, b"\x00")

    def read(self):
        """One sample: the 14 raw bytes (a preallocated buffer, overwritten by the next read)."""
        self.i2c.readfrom_mem_into(self.address, ACCEL_XOUT_H, self._buf)
        return self._buf

    def capture(self, n, sample_hz, ticks_us, sleep_us):
        """A window of n samples at rest: six array('h') columns, n arrival times (us since the
        first sample) and the median temperature in milli-degrees."""
        cols = [array("h", bytes(2 * n)) for _ in range(6)]
        ts = [0] * n
        temps = array("h", bytes(2 * n))
        period = 1000000 // sample_hz
        start = ticks_us()
        for i in range(n):
            # paced against absolute deadlines, so a late wake-up does not delay every later
            # sample (the IMU's own rate is what the timing fingerprint measures)
            wait = ticks_diff(start + i * period, ticks_us())
            if wait > 0:
                sleep_us(wait)
            b = self.read()
            cols[0][i] = _s16(b[0], b[1])
            cols[1][i] = _s16(b[2], b[3])
            cols[2][i] = _s16(b[4], b[5])
            temps[i] = _s16(b[6], b[7])
            cols[3][i] = _s16(b[8], b[9])
            cols[4][i] = _s16(b[10], b[11])
            cols[5][i] = _s16(b[12], b[13])
            ts[i] = ticks_diff(ticks_us(), start)
        for i in range(1, n):  # strictly increasing, as agent.sensors.mpu6050 makes them
            if ts[i] <= ts[i - 1]:
                ts[i] = ts[i - 1] + 1
        ordered = sorted(temps)
        h = n // 2
        mid2 = 2 * ordered[h] if n % 2 else ordered[h - 1] + ordered[h]
        # register map 4.18: median / 340 + 36.53 degrees, with the median's half kept: (mid2 / 2) * 1000 / 340 + 36530
        num = mid2 * 500 + 36530 * 340
        temp_mc = (num + 170) // 340 if num >= 0 else -((-num + 170) // 340)
        return cols, ts, temp_mc
