"""main.py of the virtual ESP32 under the HIL bench (MicroPython; the unix port runs it).

firmware/main.py's loop, with the bench's fault injection on the *simulated hardware* only
(the firmware's own modules run unmodified), switched by files in the flash directory:

- hil_clock_offset_ms: the wall clock runs this many ms off (a clock jump), read every second;
- hil_sensor_fault: "i2c_error" (every I2C read of the MPU-6050 fails with EIO), "stuck" (its
  registers read the same bytes every time) or absent / "none".
"""

import sys
import time

import board
import config
import storage

POLL_MS = 1000


class Switch:
    """A file's text, re-read at most every POLL_MS."""

    def __init__(self, flash, name, default):
        self.flash = flash
        self.name = name
        self.default = default
        self.value = default
        self.at = None

    def get(self):
        now = time.ticks_ms()
        if self.at is None or time.ticks_diff(now, self.at) >= POLL_MS:
            self.at = now
            data = self.flash.read(self.name)
            self.value = data.decode().strip() if data else self.default
        return self.value


class FaultyI2C:
    """The simulated I2C bus, with the bench's faults in front of it."""

    def __init__(self, i2c, fault):
        self.i2c = i2c
        self.fault = fault
        self.frozen = {}

    def writeto_mem(self, addr, reg, buf):
        return self.i2c.writeto_mem(addr, reg, buf)

    def readfrom_mem(self, addr, reg, n):
        buf = bytearray(n)
        self.readfrom_mem_into(addr, reg, buf)
        return bytes(buf)

    def readfrom_mem_into(self, addr, reg, buf):
        fault = self.fault.get()
        if fault == "i2c_error":
            raise OSError(5)  # EIO: the bus did not answer
        key = (reg, len(buf))
        if fault == "stuck" and key in self.frozen:
            buf[:] = self.frozen[key]
            return
        if hasattr(self.i2c, "readfrom_mem_into"):
            self.i2c.readfrom_mem_into(addr, reg, buf)
        else:
            buf[:] = self.i2c.readfrom_mem(addr, reg, len(buf))
        if fault == "stuck":
            self.frozen[key] = bytes(buf)
        elif self.frozen:
            self.frozen = {}


def main():
    data_dir = sys.argv[1]
    flash = storage.FileStorage(data_dir)
    try:
        cfg = config.load(flash)
    except config.ConfigError as exc:
        print("config:", exc)
        sys.exit(2)
    hw = board.hardware(cfg, data_dir)
    hw.i2c = FaultyI2C(hw.i2c, Switch(flash, "hil_sensor_fault", "none"))
    offset = Switch(flash, "hil_clock_offset_ms", "0")
    wall_ms = hw.wall_ms
    hw.wall_ms = lambda: wall_ms() + int(offset.get())
    import device

    dev = device.Device(hw, flash)
    try:
        while True:
            time.sleep_ms(dev.step())
    except KeyboardInterrupt:
        dev.shutdown()


main()
