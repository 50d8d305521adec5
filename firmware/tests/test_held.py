"""Held commands (expiring ones that wait for a trusted clock) survive a power cut: they are on
flash before any command of the same pass is applied, and a cut at any byte of that write
leaves the old list or the new one (firmware/lib/held.py)."""

import json

import board
import commands
import config
import device
import fwtest
import held
import storage
import timebase

KEY_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032 TEST 1
HOUR = 3600000


def _flash():
    path = fwtest.scratch()
    flash = storage.FileStorage(path)
    doc = {
        "device": {"id": "esp32-1", "fleet": "home"},
        "bridge": {"public_key": "ab" * 32},
        "mqtt": {"host": "127.0.0.1"},
        "imu": {"sim_seed": 7},
        "baseline": {str(i): 1000 + i for i in range(24)},
    }
    flash.write(config.FILE, json.dumps(doc))
    flash.write(commands.KEY, commands.key_text(bytes.fromhex(KEY_HEX)))
    return path


def _boot(path):
    """A fresh Device on the flash at `path`: what the board runs after a reset."""
    return device.Device(board.unix_hardware(path), storage.FileStorage(path))


def test_a_held_command_survives_a_power_cut_and_is_applied_once_the_clock_is_trusted():
    path = _flash()
    dev = _boot(path)
    assert not timebase.trusted(dev.time) and dev.held == []
    expires = dev.hw.wall_ms() + HOUR
    dev.commands.append(("ping", 5, {}, expires))
    dev.commands.append(("ping", 6, {}, 0))  # no expiry: applied at once
    dev._run_commands()
    assert dev.held == [("ping", 5, {}, expires)]
    assert len(dev.box) == 1  # 6's answer
    dev = None  # the power is cut: only the flash remains
    dev = _boot(path)
    assert dev.held == [("ping", 5, {}, expires)]
    dev._run_commands()  # still no trusted clock: held again, nothing rewritten
    assert dev.held == [("ping", 5, {}, expires)] and len(dev.box) == 1
    dev.time = timebase.on_bridge_time(dev.time, dev.hw.wall_ms(), dev.hw.wall_ms())
    dev._run_commands()
    assert dev.held == [] and len(dev.box) == 2  # 5 answered now
    assert storage.FileStorage(path).read(held.FILE) is None
    assert _boot(path).held == []  # applied once: not again after the next reset


def test_an_expired_held_command_is_dropped_from_flash_too():
    path = _flash()
    dev = _boot(path)
    dev.commands.append(("ping", 9, {}, dev.hw.wall_ms() + HOUR))
    dev._run_commands()
    dev = _boot(path)
    dev.time = timebase.on_bridge_time(dev.time, dev.hw.wall_ms() + 2 * HOUR, dev.hw.wall_ms())
    dev._run_commands()
    assert dev.held == [] and dev.dropped_inbound == 1 and len(dev.box) == 0
    assert _boot(path).held == []


def test_a_cut_at_any_byte_of_the_write_leaves_the_old_list_or_the_new_one():
    flash = storage.FileStorage(fwtest.scratch())
    old = [("config", 3, {"report.interval_s": 30}, 1764288000000)]
    new = old + [("model", 4, {"url": "http://h/m", "sha256": b"\x01" * 32}, 1764288060000)]
    held.save(flash, old)
    budget = 0
    while True:
        cut = fwtest.FaultyStorage(flash, budget)
        try:
            held.save(cut, new)
        except fwtest.PowerCut:
            assert held.load(flash, print) == old, budget
            budget += 1
            continue
        break
    assert budget > 40  # the cut fell on every byte of the record before it went through
    assert held.load(flash, print) == new
    flash.write(held.FILE, b"\x00\x00\x00\x00garbage")  # a damaged file: nothing, said so
    lines = []
    assert held.load(flash, lines.append) == [] and "not restored" in lines[0]
