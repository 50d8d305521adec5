"""Firmware update in the unix port (issue 18 item 2): the signed manifest, the inactive
partition written block by block, boot on trial, valid only after an ack, and the bootloader's
rollback otherwise; a power cut before every flash write, replayed to the end."""

import hashlib

import cbor
import cose
import ed25519
import fwtest
import ota
import ota_sim
from storage import FileStorage

BRIDGE = ed25519.SigningKey(bytes(range(32)))
OTHER = ed25519.SigningKey(bytes(range(1, 33)))
OLD_IMAGE = b"old firmware " * 500
NEW_IMAGE = bytes((i * 7) & 0xFF for i in range(3 * ota.BLOCK + 123))


def manifest(version="1.1.0", image=NEW_IMAGE, key=BRIDGE, min_version="0", url="http://u/fw",
             target="esp32"):  # fmt: skip
    doc = {1: version, 2: hashlib.sha256(image).digest(), 3: url, 4: min_version, 5: len(image)}
    if target is not None:
        doc[6] = target
    payload = cbor.encode(doc)
    return cose.sign1(payload, key)


class Power:
    """A budget of flash writes; the one beyond it is cut (before it happens)."""

    def __init__(self, budget=None):
        self.budget = budget
        self.spent = 0

    def __call__(self):
        if self.budget is not None and self.spent >= self.budget:
            self.budget = None  # the power comes back for the next boot
            raise fwtest.PowerCut()
        self.spent += 1


class PoweredStorage:
    def __init__(self, inner, power):
        self.inner = inner
        self.power = power

    def read(self, name):
        return self.inner.read(name)

    def write(self, name, data):
        self.power()
        self.inner.write(name, data)

    def rename(self, old, new):
        self.power()
        self.inner.rename(old, new)

    def write_at(self, name, offset, data):
        self.power()
        self.inner.write_at(name, offset, data)

    def read_at(self, name, offset, buf):
        return self.inner.read_at(name, offset, buf)


def server(image=NEW_IMAGE, status=206, fail_at=None):
    calls = []

    def fetch(url, offset, n):
        calls.append(offset)
        if fail_at is not None and len(calls) == fail_at:
            raise OSError(104)  # the connection dropped
        if status != 206:
            return status, b""
        return 206, image[offset : offset + n]

    return fetch, calls


def device(root, power=None):
    power = power or Power()
    flash = PoweredStorage(FileStorage(root), power)
    table = ota_sim.SimTable(flash, power=power)
    if flash.read("ota_0.bin") is None:
        FileStorage(root).write("ota_0.bin", OLD_IMAGE)
    return table, flash


def boot(table, flash):
    table.reset()
    o = ota.Ota(flash, table.running(), table.mark_app_valid_cancel_rollback,
                BRIDGE.public, version="1.0.0")  # fmt: skip
    o.on_boot()
    return o


def image_in(table, label, n):
    buf = bytearray(n)
    ota_sim.SimPartition(table, label).readblocks(0, buf)
    return bytes(buf)


def test_update_commits_after_the_ack():
    table, flash = device(fwtest.scratch())
    o = boot(table, flash)
    assert o.offer(manifest(min_version="1.1")) == "pending"
    fetch, calls = server(fail_at=2)  # one dropped connection: retried from the same block
    while o.step(fetch) == ota.DOWNLOADING:
        pass
    assert calls == [0, 4096, 4096, 8192, 12288], calls
    o = boot(table, flash)
    assert o.phase == ota.TRIAL and table.running().info()[4] == "ota_1"
    assert o.acked() and o.phase == ota.COMMITTED
    o = boot(table, flash)  # valid: stays
    assert table.running().info()[4] == "ota_1" and o.state["running"] == "1.1.0"
    assert image_in(table, "ota_1", len(NEW_IMAGE)) == NEW_IMAGE
    assert o.offer(manifest("1.0.5")) == "refused: downgrade"  # below the committed floor


def test_a_commit_without_min_version_still_refuses_older_releases():
    table, flash = device(fwtest.scratch())
    o = boot(table, flash)
    assert o.offer(manifest("2.0.0")) == "pending"  # min_version "0"
    fetch, _calls = server()
    while o.step(fetch) == ota.DOWNLOADING:
        pass
    o = boot(table, flash)
    assert o.acked() and o.state["floor"] == "2.0.0"
    assert o.offer(manifest("1.5.0")) == "refused: downgrade"
    assert o.phase == ota.COMMITTED


def test_no_ack_before_a_reset_rolls_back():
    table, flash = device(fwtest.scratch())
    o = boot(table, flash)
    o.offer(manifest())
    fetch, _calls = server()
    while o.step(fetch) == ota.DOWNLOADING:
        pass
    o = boot(table, flash)
    assert o.phase == ota.TRIAL  # booted once, pending verify, never acked
    o = boot(table, flash)  # e.g. the watchdog reset it
    assert o.phase == ota.ROLLED_BACK and table.running().info()[4] == "ota_0"
    assert image_in(table, "ota_0", len(OLD_IMAGE)) == OLD_IMAGE
    assert not o.acked()


def test_refusals_and_failed_downloads():
    table, flash = device(fwtest.scratch())
    o = boot(table, flash)
    assert o.offer(manifest(key=OTHER)).startswith("refused: manifest")
    assert o.offer(manifest("1.0.0")) == "refused: same_version"
    assert o.offer(manifest(target="linux-agent")) == "refused: wrong_target"
    assert o.offer(manifest(target=None)) == "refused: wrong_target"
    assert o.offer(manifest(url="https://u/fw")).startswith("refused: manifest: url must be http")
    assert o.offer(manifest()) == "pending" and o.offer(manifest()) == "refused: busy"
    fetch, calls = server(status=404)
    assert o.step(fetch) == ota.IDLE and o.state["reason"] == "http 404" and calls == [0]
    o.offer(manifest())
    fetch, _calls = server(image=b"x" * len(NEW_IMAGE))  # not what was signed
    while o.step(fetch) == ota.DOWNLOADING:
        pass
    assert o.phase == ota.IDLE and o.state["reason"] == "sha256 mismatch"
    assert table.running().info()[4] == "ota_0" and table.data["boot"] == "ota_0"


def test_a_power_cut_before_every_flash_write_ends_on_a_working_image():
    total = None
    cut = 0
    while total is None or cut < total:
        root = fwtest.scratch()
        power = Power(cut)
        table, flash = device(root, power)
        offered = False
        for _boot in range(8):
            try:
                table = ota_sim.SimTable(flash, power=power)  # read again, as at power-on
                o = boot(table, flash)
                if o.phase == ota.IDLE and not offered:
                    offered = o.offer(manifest()) == "pending"
                elif o.phase == ota.IDLE or o.phase == ota.ROLLED_BACK:
                    o.offer(manifest())  # the operator sends it again
                fetch, _calls = server()
                while o.step(fetch) == ota.DOWNLOADING:
                    pass
                if o.phase == ota.TRIAL:
                    o = boot(table, flash)
                    o.acked()
                if o.phase == ota.COMMITTED:
                    break
            except fwtest.PowerCut:
                continue
        # whatever was cut, the device ends on the new image, valid, and the old one is intact
        assert o.phase == ota.COMMITTED, (cut, o.state)
        running = table.running().info()[4]
        assert running == "ota_1" and table.data["states"]["ota_1"] == "valid", (cut, table.data)
        assert image_in(table, "ota_1", len(NEW_IMAGE)) == NEW_IMAGE
        assert image_in(table, "ota_0", len(OLD_IMAGE)) == OLD_IMAGE
        if total is None:
            total = power.spent  # flash writes of an uncut update
        cut += 1
    print("power cut before each of %d flash writes" % total)
    assert total >= 10
