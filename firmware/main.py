"""The device's entry point: build the hardware of the port it runs on (board.py), then loop.

The data directory is /data on the ESP32; in the unix port it is argv[1] or $FW_DATA.
The LED: off while Wi-Fi or MQTT is down, on while connected with the bridge online. The log
(print, the serial console): one line per boot, connect, lost link, command and trigger.
"""

import gc
import json
import sys
import time

import board
import storage


def main():
    if board.ESP32:
        data_dir = board.DATA_DIR
    else:
        import os

        data_dir = sys.argv[1] if len(sys.argv) > 1 else os.getenv("FW_DATA") or "data"
    board.preload()
    flash = storage.FileStorage(data_dir)
    cfg = load_config(flash)
    hw = board.hardware(cfg, data_dir)
    gc.collect()
    cfg = enroll(hw, flash, cfg)
    import device

    dev = device.Device(hw, flash)
    device.unload("claim", "sealedbox", "config")  # the heap is small: needed at boot only
    try:
        while True:
            time.sleep_ms(dev.step())
    except KeyboardInterrupt:
        dev.shutdown()
    except Exception as exc:  # the last crash, kept for a diag command after the reset
        record_crash(flash, "%s: %s" % (type(exc).__name__, exc))
        raise


def load_config(flash):
    """config.json, checked (a bad one ends the process with the error); config.py itself is
    loaded again only for a config command."""
    import config

    try:
        return config.load(flash)
    except config.ConfigError as exc:
        print("config:", exc)
        sys.exit(2)


def enroll(hw, flash, cfg):
    """Make the key and claim the credentials on first boot (claim.py), retried with backoff
    until the bridge answers; the configuration the device then runs with."""
    import claim

    if not claim.needed(flash, cfg):
        return cfg
    import backoff
    import wifi

    net = wifi.Wifi(hw.wlan, cfg["wifi"]["ssid"], cfg["wifi"]["password"],
                    backoff.Backoff(hw.getrandbits, 500, 30000))  # fmt: skip
    delay_ms = 1000
    while True:
        while not net.step(hw.ticks_ms()):
            time.sleep_ms(50)
        outcome = claim.ensure(hw, flash, cfg, print)
        if outcome == claim.DONE:
            return load_config(flash)  # with the claimed broker credentials
        if outcome == claim.REFUSED:
            delay_ms = 600000  # only a new token (a new config.json) helps; look again later
        time.sleep_ms(delay_ms)
        delay_ms = min(delay_ms * 2, 600000)


def record_crash(flash, reason):
    """crash.json: the exception and, on the ESP32, the reset cause it led from."""
    from commands import CRASH_FILE

    doc = {"reason": reason[:200]}
    if board.ESP32:
        import machine

        doc["reset_cause"] = machine.reset_cause()
    try:
        flash.write(CRASH_FILE + ".tmp", json.dumps(doc))
        flash.rename(CRASH_FILE + ".tmp", CRASH_FILE)
    except OSError:
        pass  # a full or broken flash must not hide the original exception


main()
