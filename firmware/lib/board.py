"""The hardware of each port, passed into device.Device: what it uses of the board.

On the ESP32: I2C on the configured pins, network.WLAN, machine.WDT, the emergency button, the
on-board LED, flash under /data, the OTA partitions (esp32.Partition). In the unix port (the
virtual ESP32 of tests/firmware): the simulated MPU-6050 and its sampling clock (imu.sim_seed),
no Wi-Fi to join, a stub watchdog, OTA partitions simulated in files (ota_sim.SimTable), and the
"button" is a file named `button` in the data directory.

    hw = board.hardware(cfg, data_dir)      the right one for sys.platform
    hw = board.unix_hardware(data_dir)      the unix port's, its config read from data_dir
    board.preload()                         before `import device`: see KEPT
"""

import sys
import time

import storage

ESP32 = sys.platform == "esp32"
DATA_DIR = "/data"
# MicroPython ports whose epoch is 2000-01-01 (older ESP32 builds) need this many seconds more
_EPOCH_2000_S = 946684800
RESET_EXIT = 3
"""The unix port's exit status for machine.reset(): the virtual ESP32 starts the process again
(tools/virtual_esp32.py), as a board's reset boots what its partition table names."""


KEPT = ("errors", "storage", "cbor", "sha512", "ed25519_comb", "ed25519", "cose", "messages",
        "fixed", "model_card", "scorer", "fingerprint", "mqtt", "window", "outbox", "device")
"""The modules the device keeps loaded. preload() imports them one by one with a collection
after each, so that their bytecode packs at the bottom of the heap rather than among the
garbage their loading leaves: the free heap then stays in one piece (a fragmented one refused
a 512-byte list with 29 KB free in the soak of tools/bench)."""


def preload():
    import gc

    for name in KEPT:
        __import__(name)
        gc.collect()


class Hardware:
    """What the device uses of the board, each passed in (device.py reads only these)."""

    def __init__(self, data_dir):
        import random

        self.data_dir = data_dir
        self.ticks_ms = time.ticks_ms
        self.imu_ticks_us = time.ticks_us  # the clock IMU samples are paced and stamped by
        self.imu_sleep_us = time.sleep_us
        self.getrandbits = random.getrandbits
        self.log = print
        self._epoch_s = _EPOCH_2000_S if time.gmtime(0)[0] == 2000 else 0

    def image_version(self):
        """The version of the image running, when the image says (the unix port's simulated
        images); None: the firmware's own VERSION."""
        return None

    def wall_ms(self):
        return time.time_ns() // 1000000 + self._epoch_s * 1000

    def open_socket(self, host, port):
        import socket

        s = socket.socket()
        s.settimeout(5)
        s.connect(socket.getaddrinfo(host, port)[0][-1])
        try:
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: small QoS 1 packets go out at once
        except (OSError, AttributeError):
            pass
        return s

    def fetch_range(self, url, offset, n):
        """(status, body) of an HTTP Range GET of one flash block (http_get.py, loaded while
        an update runs only)."""
        import http_get

        return http_get.fetch_range(self.open_socket, url, offset, n)

    def fetch(self, url, path, max_bytes):
        """An HTTP GET streamed into the file `path`; the body's SHA-256 (http_get.py)."""
        import http_get

        return http_get.fetch(self.open_socket, url, path, max_bytes)


class Esp32(Hardware):
    def __init__(self, cfg):
        import esp32
        import machine
        import network
        from watchdog import WDT_TIMEOUT_MS

        super().__init__(DATA_DIR)
        imu = cfg["imu"]
        self.i2c = machine.I2C(0, scl=machine.Pin(imu["scl"]), sda=machine.Pin(imu["sda"]),
                               freq=400000)
        self.wlan = network.WLAN(network.STA_IF)
        self.wdt = machine.WDT(timeout=WDT_TIMEOUT_MS)
        # the stubs type the id as a label (str); MicroPython takes RUNNING (docs: esp32.Partition)
        self.running_partition = esp32.Partition(esp32.Partition.RUNNING)  # type: ignore[arg-type]
        self.mark_valid = esp32.Partition.mark_app_valid_cancel_rollback
        self.reset = machine.reset
        pin = cfg["emergency"]["button_pin"]
        self._button = machine.Pin(pin, machine.Pin.IN, machine.Pin.PULL_UP) if pin >= 0 else None
        self._was_down = False
        self._led = machine.Pin(2, machine.Pin.OUT)

    def button(self):
        # a press is a falling edge of the pulled-up pin
        down = self._button is not None and self._button.value() == 0
        pressed = down and not self._was_down
        self._was_down = down
        return pressed

    def led(self, on):
        self._led.value(1 if on else 0)


class UnixPort(Hardware):
    def __init__(self, cfg, data_dir):
        import mpu6050_sim
        import ota_sim
        import watchdog
        import wifi

        super().__init__(data_dir)
        seed = cfg["imu"]["sim_seed"]
        if seed < 0:
            from config import ConfigError

            raise ConfigError("the unix port has no MPU-6050: set imu.sim_seed")
        self.i2c = mpu6050_sim.SimI2C(seed, cfg["imu"]["i2c_address"])
        clock = mpu6050_sim.SimClock(seed)  # the simulated board's sampling clock
        self.imu_ticks_us = clock.ticks_us
        self.imu_sleep_us = clock.sleep_us
        self.wlan = wifi.NoWLAN()
        self.wdt = watchdog.StubWDT()
        # the OTA partition table over files of the data directory, booted as a board would be
        self.ota_table = ota_sim.SimTable(storage.FileStorage(data_dir))
        self.ota_table.reset()
        self.running_partition = self.ota_table.running()
        self.mark_valid = self.ota_table.mark_app_valid_cancel_rollback

    def image_version(self):
        import ota_sim

        return ota_sim.image_version(self.running_partition)

    def reset(self):
        raise SystemExit(RESET_EXIT)  # the virtual ESP32 starts the process again

    def button(self):
        import os

        try:
            os.remove(self.data_dir + "/button")
            return True
        except OSError:
            return False

    def led(self, on):
        pass


def hardware(cfg, data_dir):
    return Esp32(cfg) if ESP32 else UnixPort(cfg, data_dir)


def unix_hardware(data_dir):
    import config

    return UnixPort(config.load(storage.FileStorage(data_dir)), data_dir)
