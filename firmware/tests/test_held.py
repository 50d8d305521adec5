"""The bridge's commands survive a power cut (firmware/lib/held.py): a command is on flash in
the same write that marks its seq seen, leaves it only once its answer is in the outbox, and a
cut at any write between its arrival and its answer still ends with it answered exactly once."""

import json

import board
import cbor
import commands
import config
import device
import ed25519
import fwtest
import held
import messages
import storage
import timebase

KEY_HEX = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032 TEST 1
BRIDGE = ed25519.SigningKey(bytes(range(32)))
HOUR = 3600000
CMD_TOPIC = "cp/v1/home/esp32-1/cmd/"
CMD_SEQ = 17  # docs/protocol.md, Report: 17 => cmd_seq


def _flash():
    path = fwtest.scratch()
    flash = storage.FileStorage(path)
    doc = {
        "device": {"id": "esp32-1", "fleet": "home"},
        "bridge": {"public_key": BRIDGE.public.hex()},
        "mqtt": {"host": "127.0.0.1"},
        "imu": {"sim_seed": 7},
        "baseline": {str(i): 1000 + i for i in range(24)},
    }
    flash.write(config.FILE, json.dumps(doc))
    flash.write(commands.KEY, commands.key_text(bytes.fromhex(KEY_HEX)))
    return path


def _boot(path, flash=None):
    """A fresh Device on the flash at `path`: what the board runs after a reset."""
    return device.Device(board.unix_hardware(path), flash or storage.FileStorage(path))


def _command(seq, name, expires_ms):
    fields = {"sender": "bridge-1", "seq": seq, "boot": 1, "ts_ms": 1764288000500,
              "device": "esp32-1", "command": name, "args": {}, "expires_ms": expires_ms}  # fmt: skip
    return CMD_TOPIC + name, messages.seal(messages.COMMAND, fields, BRIDGE)


def _trust(dev):
    dev.time = timebase.on_bridge_time(dev.time, dev.hw.wall_ms(), dev.hw.wall_ms())


def _answers(dev):
    """The cmd_seq of every report in the outbox, one per answer (decoded here, plainly)."""
    out = []
    for e in dev.box.entries():
        doc = cbor.decode(e.payload)
        if doc[1] == messages.REPORT and doc.get(CMD_SEQ, 0):
            out.append(doc[CMD_SEQ])
    return sorted(out)


def test_a_held_command_survives_a_power_cut_and_is_applied_once_the_clock_is_trusted():
    path = _flash()
    dev = _boot(path)
    assert not timebase.trusted(dev.time) and dev.pending == []
    expires = dev.hw.wall_ms() + HOUR
    dev._on_message(*_command(5, "ping", expires), False)
    dev._on_message(*_command(6, "ping", 0), False)  # no expiry: applied at once
    assert dev.dropped_inbound == 0
    dev._run_commands()
    assert dev.pending == [("ping", 5, {}, expires)]
    assert _answers(dev) == [6]
    dev = None  # the power is cut: only the flash remains
    dev = _boot(path)
    assert dev.pending == [("ping", 5, {}, expires)]
    dev._run_commands()  # still no trusted clock: held again
    assert dev.pending == [("ping", 5, {}, expires)] and _answers(dev) == [6]
    dev._on_message(*_command(5, "ping", expires), False)  # sent again: seen, refused
    assert dev.dropped_inbound == 1 and len(dev.pending) == 1
    _trust(dev)
    dev._run_commands()
    assert dev.pending == [] and _answers(dev) == [5, 6]  # 5 answered now
    dev = _boot(path)
    assert dev.pending == []  # applied once: not again after the next reset
    dev._run_commands()
    assert _answers(dev) == [5, 6]


def test_a_command_arriving_is_on_flash_before_the_next_pass():
    path = _flash()
    dev = _boot(path)
    dev._on_message(*_command(8, "ping", 0), False)
    dev = _boot(path)  # cut before the loop's next pass: the command was not applied yet
    assert dev.pending == [("ping", 8, {}, 0)]
    dev._run_commands()
    assert _answers(dev) == [8] and _boot(path).pending == []


def test_an_expired_held_command_is_dropped_from_flash_too():
    path = _flash()
    dev = _boot(path)
    dev._on_message(*_command(9, "ping", dev.hw.wall_ms() + HOUR), False)
    dev._run_commands()
    dev = _boot(path)
    dev.time = timebase.on_bridge_time(dev.time, dev.hw.wall_ms() + 2 * HOUR, dev.hw.wall_ms())
    dev._run_commands()
    assert dev.pending == [] and dev.dropped_inbound == 1 and len(dev.box) == 0
    assert _boot(path).pending == []


def _scenario(dev, expires):
    """Two commands arrive (one held for the clock, one not), two passes answer them."""
    dev._on_message(*_command(5, "ping", expires), False)
    dev._on_message(*_command(6, "ping", 0), False)
    dev._run_commands()
    _trust(dev)
    dev._run_commands()


def test_a_cut_at_any_write_from_arrival_to_answer_answers_each_command_exactly_once():
    # the writes of an uncut run, after the boot
    path = _flash()
    flaky = fwtest.FaultyStorage(storage.FileStorage(path), 1 << 30)
    dev = _boot(path, flaky)
    expires = dev.hw.wall_ms() + HOUR
    booted = len(flaky.ops)
    _scenario(dev, expires)
    assert _answers(dev) == [5, 6]
    costs = flaky.ops[booted:]
    assert len(costs) >= 8, costs  # two arrivals, two answers, two removals at least
    cuts = 0
    for i in range(len(costs)):
        for part in (0, costs[i] // 2):  # before the write, or halfway through it
            path = _flash()
            flaky = fwtest.FaultyStorage(storage.FileStorage(path), 1 << 30)
            dev = _boot(path, flaky)
            flaky.budget = sum(costs[:i]) + part
            try:
                _scenario(dev, expires)
            except fwtest.PowerCut:
                cuts += 1
            else:
                raise AssertionError("no cut at write %d" % i)
            dev = _boot(path)
            # the broker sends again what the device never acknowledged (the client acks a
            # command after _on_message returned): here everything, the seen ones refused
            _scenario(dev, expires)
            assert _answers(dev) == [5, 6], (i, part, _answers(dev))
            assert dev.pending == [], (i, part)
            dev = _boot(path)
            dev._run_commands()
            assert _answers(dev) == [5, 6] and dev.pending == [], (i, part)
    assert cuts == 2 * len(costs)
    print("held: %d cuts, at each of %d writes from arrival to answer" % (cuts, len(costs)))


def test_a_cut_at_any_byte_of_the_write_leaves_the_old_record_or_the_new_one():
    flash = storage.FileStorage(fwtest.scratch())
    old = [("config", 3, {"report.interval_s": 30}, 1764288000000)]
    new = old + [("model", 4, {"url": "http://h/m", "sha256": b"\x01" * 32}, 1764288060000)]
    held.save(flash, {"bridge-1": 3}, old)
    budget = 0
    while True:
        cut = fwtest.FaultyStorage(flash, budget)
        try:
            held.save(cut, {"bridge-1": 4}, new)
        except fwtest.PowerCut:
            assert held.load(flash, print) == ({"bridge-1": 3}, old), budget
            budget += 1
            continue
        break
    assert budget > 40  # the cut fell on every byte of the record before it went through
    assert held.load(flash, print) == ({"bridge-1": 4}, new)
    flash.write(held.FILE, b"\x00\x00\x00\x00garbage")  # a damaged file: nothing, said so
    lines = []
    assert held.load(flash, lines.append) == ({}, []) and "not restored" in lines[0]


def test_the_record_of_an_older_image_is_read():
    flash = storage.FileStorage(fwtest.scratch())
    flash.write(held.SEEN, json.dumps({"bridge-1": 7}))
    data = cbor.encode([["ping", 7, {}, 1764288000000]])  # the held list alone, no seen map
    flash.write(held.FILE, storage.crc32(data).to_bytes(4, "big") + data)
    assert held.load(flash, print) == ({"bridge-1": 7}, [("ping", 7, {}, 1764288000000)])
