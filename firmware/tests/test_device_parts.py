"""The device's parts in MicroPython: the MPU-6050 driver over the simulated bus, the JSON
config's errors, Wi-Fi backoff, the watchdog, key rotation and the model rollback."""

import json
import struct
import time

import commands
import config
import cose
import ed25519
import fwtest
import messages
import model_store
import mpu6050
import mpu6050_sim
import storage
import watchdog
import wifi
from backoff import Backoff
from watchdog import StubWDT, Watchdog

KEY_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032 TEST 1


def test_mpu6050_configures_and_decodes_what_the_bus_holds():
    bus = mpu6050_sim.SimI2C(7)
    imu = mpu6050.MPU6050(bus)
    imu.configure(250)
    assert bus.regs[0x6B] == 0 and bus.regs[0x1A] == 3 and bus.regs[0x19] == 3
    clock = mpu6050_sim.SimClock(7)
    cols, ts, temp_mc = imu.capture(64, 250, clock.ticks_us, clock.sleep_us)
    twin = mpu6050_sim.SimI2C(7)  # the same sensor, read by hand
    for i in range(64):
        ax, ay, az, t, gx, gy, gz = struct.unpack(">hhhhhhh", twin.readfrom_mem(0x68, 0x3B, 14))
        assert [c[i] for c in cols] == [ax, ay, az, gx, gy, gz]
    assert all(ts[i] < ts[i + 1] for i in range(63))
    assert 3990 <= ts[1] - ts[0] <= 4010  # paced at 250 Hz
    assert abs(temp_mc - (t * 1000 // 340 + 36530)) <= 10


def test_mpu6050_refuses_a_silent_or_foreign_device():
    bus = mpu6050_sim.SimI2C(1)
    for address, who in ((0x69, 0x68), (0x68, 0x12)):
        bus.regs[0x75] = who
        try:
            mpu6050.MPU6050(bus, address)
        except mpu6050.ImuError as exc:
            assert "0x" in str(exc)
        else:
            raise AssertionError("accepted")


def _doc():
    return {
        "device": {"id": "esp32-1", "fleet": "home"},
        "bridge": {"public_key": "ab" * 32},
        "mqtt": {"host": "127.0.0.1"},
        "baseline": {str(i): i for i in range(24)},
    }


def _error(doc):
    try:
        config.build(doc)
    except config.ConfigError as exc:
        return str(exc)
    raise AssertionError("accepted")


def test_config_defaults_and_errors_that_say_how_to_fix_them():
    cfg = config.build(_doc())
    assert cfg["mqtt"]["port"] == 1883 and cfg["report"]["interval_s"] == 60
    assert cfg["baseline"] == list(range(24))
    doc = _doc()
    del doc["mqtt"]["host"]
    assert "mqtt.host is missing; for example: host = " in _error(doc)
    doc = _doc()
    doc["mqtt"]["port"] = "x"
    assert "mqtt.port = 'x' must be an integer from 1 to 65535; for example: port = 1883" in (
        _error(doc)
    )
    doc = _doc()
    doc["imu"] = {"window_samples": 100}
    assert "must be a power of two" in _error(doc)
    doc = _doc()
    doc["mqtt"]["hots"] = "x"
    assert "mqtt.hots is not a setting" in _error(doc)
    doc = _doc()
    doc["device"]["id"] = "a/b"
    assert "may hold only" in _error(doc)
    doc = _doc()
    del doc["baseline"]["7"]
    assert "24 fields" in _error(doc)


def test_overrides_change_only_the_remote_keys():
    cfg = config.build(_doc())
    changed = config.with_overrides(cfg, {"report.interval_s": 5})
    assert changed["report"]["interval_s"] == 5 and cfg["report"]["interval_s"] == 60
    for bad in ({"mqtt.host": "evil"}, {"report.interval_s": 0}):
        try:
            config.with_overrides(cfg, bad)
        except config.ConfigError:
            continue
        raise AssertionError("accepted %r" % bad)


class _DeadWLAN:
    # a radio that never associates (the hardware stand-in), counting connect calls
    def __init__(self):
        self.connects = 0

    def active(self, on=None):
        return True

    def isconnected(self):
        return False

    def connect(self, ssid, password):
        self.connects += 1

    def disconnect(self):
        pass


def test_wifi_retries_with_growing_backoff():
    radio = _DeadWLAN()
    w = wifi.Wifi(radio, "net", "pw", Backoff(lambda bits: (1 << bits) - 1, 500, 4000))
    starts = []
    for now in range(0, 120000, 10):
        before = radio.connects
        w.step(now)
        if radio.connects != before:
            starts.append(now)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # each attempt waits CONNECT_TIMEOUT_MS, then a delay doubling to the 4 s cap
    waits = [g - wifi.CONNECT_TIMEOUT_MS for g in gaps]
    assert waits[:4] == [500, 1000, 2000, 4000] and max(waits) <= 4000, waits


def test_watchdog_is_fed_only_after_progress():
    wdt = StubWDT()
    dog = Watchdog(wdt, 1000, window_ms=500)
    assert dog.check(1200, 0, True) == watchdog.PROGRESS and wdt.feeds == 1  # nothing to drain
    dog.sensed(1400)
    dog.beat(1400)
    assert dog.check(1600, 3, False) == watchdog.PROGRESS  # an outage: cannot send, not stuck
    assert dog.check(1600, 3, True) == watchdog.OUTBOX_STALLED and wdt.feeds == 2
    dog.drained(1600)
    assert dog.check(1700, 3, True) == watchdog.PROGRESS and wdt.feeds == 3
    dog.beat(2200)
    assert dog.check(2200, 0, True) == watchdog.SENSOR_STALLED and wdt.feeds == 3
    dog.sensed(2200)
    dog.beat(1600)
    assert dog.check(2200, 0, True) == watchdog.LINK_STALLED and wdt.feeds == 3
    dog.beat(2200)
    assert dog.check(2200, 0, True) == watchdog.PROGRESS and wdt.feeds == 4


def test_watchdog_rule_across_the_ticks_wrap():
    top = time.ticks_add(0, -1)  # the largest ticks_ms value: the next tick wraps to 0
    assert watchdog.verdict(5, 100, top, 0, top, top, True) == watchdog.PROGRESS
    assert watchdog.verdict(200, 100, top, 0, top, 150, True) == watchdog.SENSOR_STALLED
    assert watchdog.verdict(200, 100, 150, 2, top, 150, True) == watchdog.OUTBOX_STALLED
    assert watchdog.verdict(200, 100, 150, 2, top, 150, False) == watchdog.PROGRESS


class _Dev:
    # what commands.py reads of device.Device
    def __init__(self, flash):
        self.storage = flash
        self.cfg = config.build(_doc())
        self.key = ed25519.SigningKey(bytes.fromhex(KEY_HEX))
        self.boot = 3

    def wall_ms(self):
        return 1764547200000

    def random_bytes(self, n):
        return bytes(range(1, n + 1))


def test_rotation_pending_then_confirmed_and_finished_after_a_reset():
    flash = storage.FileStorage(fwtest.scratch())
    flash.write(commands.KEY, commands.key_text(bytes.fromhex(KEY_HEX)))
    dev = _Dev(flash)
    result, effects = commands.handle(dev, "rotate", {})
    assert result == "pending" and effects[0][0] == "enroll"
    new = ed25519.SigningKey(bytes(range(1, 33)))
    old_pub = dev.key.public
    payload, kid = cose.verify1(effects[0][1], lambda k: old_pub)
    assert kid == cose.kid_for(old_pub) and new.public in payload
    assert flash.read(commands.ROTATION) == effects[0][1]
    wrong = commands.handle(dev, "rotate", {"confirm_kid": b"\x00" * 8})
    assert wrong[0].startswith("refused")
    # a reset between recording the new key and promoting it: boot finishes the promotion
    record = json.dumps({"generation": 2, "public_key": new.public.hex()})
    cut = fwtest.FaultyStorage(flash, len(record) + 1)  # the record and its rename, no more
    result, effects = commands.handle(
        _with(dev, cut), "rotate", {"confirm_kid": cose.kid_for(new.public)}
    )
    assert result == "error: PowerCut" and effects == ()
    assert commands.read_key(flash, commands.KEY).public == old_pub  # not yet promoted
    info = json.loads(flash.read(commands.KEY_INFO))
    assert info["generation"] == 2 and info["public_key"] == new.public.hex()
    commands.settle_rotation(flash)
    assert commands.read_key(flash, commands.KEY).public == new.public
    assert flash.read(commands.PENDING) is None and flash.read(commands.ROTATION) is None
    # the confirmation run again after the reset (its answer was never stored): "ok" again
    dev.storage, dev.key = flash, commands.read_key(flash, commands.KEY)  # what boot loads
    assert commands.handle(dev, "rotate", {"confirm_kid": cose.kid_for(new.public)}) == ("ok", ())


def _with(dev, flash):
    dev.storage = flash
    return dev


def test_config_command_is_kept_across_resets():
    flash = storage.FileStorage(fwtest.scratch())
    flash.write(config.FILE, json.dumps(_doc()))
    dev = _Dev(flash)
    result, effects = commands.handle(dev, "config", {"report.interval_s": 7})
    assert result == "ok" and effects[0][1]["report"]["interval_s"] == 7
    assert config.load(flash)["report"]["interval_s"] == 7
    refused = commands.handle(dev, "config", {"mqtt.host": "elsewhere"})
    assert refused[0] == "refused: mqtt.host cannot be set remotely"
    assert commands.handle(dev, "reboot", {})[0] == "refused: unknown command reboot"


def test_desired_config_versions_replace_and_never_go_back():
    flash = storage.FileStorage(fwtest.scratch())
    flash.write(config.FILE, json.dumps(_doc()))
    dev = _Dev(flash)
    assert commands.config_version(flash) == 0
    commands.handle(dev, "config", {"sensors.day_s": 60})  # an old-style merge first
    result, _e = commands.handle(dev, "config", {"report.interval_s": 9, "config_version": 2})
    assert result == "ok" and commands.config_version(flash) == 2
    assert config.load_overrides(flash) == {"report.interval_s": 9}  # the whole desired state
    older = commands.handle(dev, "config", {"report.interval_s": 5, "config_version": 1})
    assert older[0] == "refused: version 1 is older than 2 applied"
    assert config.load_overrides(flash) == {"report.interval_s": 9}
    assert commands.handle(dev, "config", {"report.interval_s": 9, "config_version": 2})[0] == "ok"


def test_diag_answers_with_the_ring_the_crash_and_figures_under_the_cap():
    flash = storage.FileStorage(fwtest.scratch())
    flash.write(config.FILE, json.dumps(_doc()))
    flash.write(commands.CRASH_FILE, json.dumps({"reason": "ValueError: x", "reset_cause": 3}))
    dev = _Dev(flash)
    dev.key = ed25519.SigningKey(bytes(range(32)))
    dev.box, dev.dropped_inbound, dev.reports, dev.skipped = [], 2, 5, 0
    dev.ring = ["line %03d " % i + "x" * 110 for i in range(40)]  # 4.7 KB: over the cap
    dev.current_seq = 77
    dev._head = lambda seq: {"sender": "esp-1", "seq": seq, "boot": 1, "ts_ms": 5}
    dev.mono_ms = lambda: 61000
    result, effects = commands.handle(dev, "diag", {"lines": 200})
    assert result == "ok" and effects[0][0] == "diag", result
    payload, _kid = cose.verify1(effects[0][1], lambda kid: dev.key.public)
    assert len(payload) <= messages.MAX_DIAG_BYTES
    assert payload[:5] == bytes([payload[0], 0, 1, 1, messages.DIAG])  # ver 1, kind 15
    assert b"ValueError: x" in payload and b"line 039" in payload and b"line 000" not in payload
    assert commands.handle(dev, "diag", {"lines": 999})[0].startswith("refused: lines")


def test_a_model_card_that_does_not_load_is_rolled_back():
    flash = storage.FileStorage(fwtest.scratch())
    assert model_store.current(flash).model_id == "risk-v1"  # built in
    flash.write("card_bad.py", b"MODEL_ID = 'broken'\n")
    model_store.select(flash, "card_bad.py")
    logged = []
    model = model_store.current(flash, logged.append)
    assert model.model_id == "risk-v1" and flash.read(model_store.POINTER) is None
    assert "rolling back" in logged[0]
    with open("firmware/lib/model_card.py", "rb") as f:
        flash.write("card_good.py", f.read())
    model_store.select(flash, "card_good.py")
    model = model_store.current(flash)
    assert model.score(bytes(20)) == model_store.current(storage.FileStorage(fwtest.scratch())).score(
        bytes(20)
    )


def test_mono_ms_keeps_counting_across_the_ticks_wrap():
    import time

    from device import MonoClock

    period = time.ticks_add(0, -1) + 1  # the port's ticks period: 2**30 on the ESP32
    now = [period - 5000]
    clock = MonoClock(lambda: now[0] % period)
    seen = [clock.read()]
    for _ in range(4):  # steps of 2 s across the wrap
        now[0] += 2000
        seen.append(clock.read())
    assert seen == [period - 5000 + 2000 * i for i in range(5)], seen
