"""The IMU's faults on the device (issue 15, sensor_fault): an I2C read error and a frozen part
are counted and flagged in the next report's telemetry, with the Linux agent's keys, and the
device goes on: Device.assess gives the last good assessment again, flagged, and reads the bus
anew on the next call. The I2C bus is the one thing simulated (mpu6050_sim, with a fault)."""

import device
import mpu6050
import mpu6050_sim
from mpu6050_sim import SimClock

WINDOW = 32
HZ = 250


class FaultyBus:
    """mpu6050_sim.SimI2C behind a fault switch: "i2c_error" (every read fails with EIO, as
    machine.I2C raises a NAK), "stuck" (the part repeats its last burst) or "none"."""

    def __init__(self, seed):
        self.chip = mpu6050_sim.SimI2C(seed)
        self.fault = "none"
        self.frozen = None

    def writeto_mem(self, addr, reg, buf):
        self.chip.writeto_mem(addr, reg, buf)

    def readfrom_mem(self, addr, reg, n):
        return self.chip.readfrom_mem(addr, reg, n)

    def readfrom_mem_into(self, addr, reg, buf):
        if self.fault == "i2c_error":
            raise OSError(5)
        if self.fault == "stuck" and self.frozen is not None:
            buf[:] = self.frozen
            return
        self.chip.readfrom_mem_into(addr, reg, buf)
        self.frozen = bytes(buf) if self.fault == "stuck" else None


def _capture(imu):
    clock = SimClock(3)
    return imu.capture(WINDOW, HZ, clock.ticks_us, clock.sleep_us)[0]


def test_stuck_only_for_a_window_that_never_moves():
    bus = FaultyBus(4)
    imu = mpu6050.MPU6050(bus)
    imu.configure(HZ)
    assert not mpu6050.stuck(_capture(imu))
    bus.fault = "stuck"
    assert mpu6050.stuck(_capture(imu))
    cols = _capture(imu)
    cols[5][WINDOW - 1] += 1  # one LSB on one gyro axis: alive
    assert not mpu6050.stuck(cols)


def test_a_bus_error_raises_oserror_and_the_next_capture_reads_again():
    bus = FaultyBus(4)
    imu = mpu6050.MPU6050(bus)
    bus.fault = "i2c_error"
    try:
        _capture(imu)
    except OSError:
        pass
    else:
        raise AssertionError("a failed read passed")
    bus.fault = "none"
    assert not mpu6050.stuck(_capture(imu))


def test_health_counts_episodes_and_flags_while_they_last():
    h = mpu6050.Health()
    assert h.telemetry() == {"imu.ok": 1}
    h.note(mpu6050.FAULT_READ)
    h.note(mpu6050.FAULT_READ)
    assert h.telemetry() == {"fault.imu.read": 1, "imu.ok": 0}
    h.note(None)
    assert h.telemetry() == {"fault.imu.read": 1, "imu.ok": 1}
    h.note(mpu6050.FAULT_STUCK)
    h.note(mpu6050.FAULT_READ)  # another fault: a new episode
    h.note(None)
    assert h.telemetry() == {"fault.imu.read": 2, "fault.imu.stuck": 1, "imu.ok": 1}


class _Hw:
    def imu_ticks_us(self):
        return self.clock.ticks_us()

    def imu_sleep_us(self, us):
        self.clock.sleep_us(us)


class _Device(device.Device):
    """The Device with only what assess uses: its IMU, config, hardware clock and log (the
    real __init__ wants a provisioned flash, a key and a model; assess needs none of them
    until a window is good)."""

    def __init__(self, bus):
        hw = _Hw()
        hw.clock = SimClock(3)
        self.hw = hw
        self.cfg = {"imu": {"window_samples": WINDOW, "sample_hz": HZ}}
        self.imu = mpu6050.MPU6050(bus)
        self.imu_health = mpu6050.Health()
        self.model = object()
        self.last = None
        self.logged = []
        self.log = self.logged.append


def _device(bus):
    return _Device(bus)


def test_assess_without_a_good_window_raises_imu_error_and_counts():
    bus = FaultyBus(5)
    dev = _device(bus)
    bus.fault = "i2c_error"
    try:
        dev.assess()
    except mpu6050.ImuError:
        pass
    else:
        raise AssertionError("scored without a window")
    assert dev.imu_health.telemetry() == {"fault.imu.read": 1, "imu.ok": 0}
    assert "IMU read failed" in dev.logged[0]


def test_assess_in_a_fault_gives_the_last_assessment_flagged_and_keeps_reading():
    bus = FaultyBus(6)
    dev = _device(bus)
    last = (123, b"\x01\x02", {0: 7})  # as a good capture left it
    dev.last = last
    reads = bus.chip.reads
    bus.fault = "i2c_error"
    assert dev.assess() is last and dev.assess() is last
    assert dev.imu_health.telemetry() == {"fault.imu.read": 1, "imu.ok": 0}
    bus.fault = "stuck"
    assert dev.assess() is last
    assert dev.imu_health.telemetry() == {"fault.imu.read": 1, "fault.imu.stuck": 1, "imu.ok": 0}
    assert bus.chip.reads > reads  # each call went to the bus again
    try:  # a model self-test never takes a stale assessment for its own
        dev.assess(object())
    except mpu6050.ImuError:
        pass
    else:
        raise AssertionError("a stale window scored for another model")
