"""Firmware update (issue 18 item 2): the agent's signed manifest (agent/update/manifest.py),
written into the inactive OTA partition, booted on trial, marked valid only after a report of
the new firmware was acknowledged; otherwise the bootloader rolls back by itself.

    ota = Ota(storage, running, mark_valid, bridge_public)
    ota.on_boot()              after every boot: a trial that did not come up is rolled back
    ota.offer(manifest)        the `update` command: "pending" or "refused: <why>"
    ota.step(fetch)            one block; "reset" once the new image is set to boot
    ota.acked()                the bridge acked a report of the trial firmware: mark it valid

On the ESP32, `running` is esp32.Partition(esp32.Partition.RUNNING) and `mark_valid` is
esp32.Partition.mark_app_valid_cancel_rollback (the bootloader must be built with app rollback,
as MicroPython's ESP32 boards are): a new image boots once as pending-verify, and a reset before
it is marked valid boots the previous one again. In the unix port SimTable gives the same
methods over files in the flash directory (ota_sim.py), with the bootloader's rule in `reset()`.
The device loads this module only while an update runs (updates.py loads it).

`fetch(url, offset, n)` returns (http_status, bytes): the board's HTTP Range GET. The state
lives in ota.json (written whole, then renamed), saved before each step's effect, so a power
cut anywhere resumes at the last durable block or leaves the old firmware booting.
"""

import hashlib
import json

import cbor
import cose
from errors import ProtocolError
from updates import (  # noqa: F401 - the names of the update's state, re-exported
    BLOCK,
    COMMITTED,
    DOWNLOADING,
    IDLE,
    ROLLED_BACK,
    STATE,
    TRIAL,
    version_key,
)

RETRIES = 5
TARGET = "esp32"  # the manifest's target this firmware takes (agent/update/manifest.py)


def verify_manifest(data, bridge_public):
    """The manifest signed by the bridge key, as a dict; ValueError or ProtocolError else."""
    kid = cose.kid_for(bridge_public)
    payload, _kid = cose.verify1(data, lambda k: bridge_public if k == kid else None)
    doc = cbor.decode(payload)
    if not isinstance(doc, dict):
        raise ValueError("manifest is not a map")
    m = {
        "version": doc.get(1),
        "sha256": doc.get(2),
        "url": doc.get(3),
        "min_version": doc.get(4, "0"),
        "size": doc.get(5),
        "target": doc.get(6),  # "esp32" here; "linux-agent" is the Linux agent's tarball
    }
    version_key(m["version"])
    version_key(m["min_version"])
    if not isinstance(m["sha256"], bytes) or len(m["sha256"]) != 32:
        raise ValueError("sha256 must be 32 bytes")
    if not isinstance(m["url"], str) or not isinstance(m["size"], int) or m["size"] <= 0:
        raise ValueError("url and size are required")
    if not m["url"].startswith("http://"):
        raise ValueError("url must be http:// (board.py has no TLS)")
    return m


class Ota:
    def __init__(self, storage, running, mark_valid, bridge_public, version="0"):
        self.storage = storage
        self.running = running
        self.mark_valid = mark_valid
        self.bridge_public = bridge_public
        self.version = version  # of the image in `running` when no update says otherwise
        raw = storage.read(STATE)
        self.state = json.loads(raw) if raw else {"phase": IDLE, "floor": "0", "running": version}

    @property
    def phase(self):
        return self.state["phase"]

    def _save(self):
        self.storage.write(STATE + ".tmp", json.dumps(self.state))
        self.storage.rename(STATE + ".tmp", STATE)

    def _label(self):
        return self.running.info()[4]

    def on_boot(self):
        """A trial whose image is not the one running was rolled back by the bootloader."""
        s = self.state
        if s["phase"] == TRIAL and self._label() != s["label"]:
            s["phase"] = ROLLED_BACK
            s["reason"] = "not acknowledged before a reset"
            self._save()
        return s["phase"]

    def offer(self, data):
        s = self.state
        if s["phase"] in (DOWNLOADING, TRIAL):
            return "refused: busy"
        try:
            m = verify_manifest(data, self.bridge_public)
        except (ValueError, ProtocolError) as exc:
            return ("refused: manifest: %s" % exc)[:64]
        if m["target"] != TARGET:
            return "refused: wrong_target"
        if m["version"] == s["running"]:
            return "refused: same_version"
        if version_key(m["version"]) < version_key(s["floor"]):
            return "refused: downgrade"
        target = self.running.get_next_update()
        if m["size"] > target.ioctl(4, 0) * BLOCK:
            return "refused: image larger than the partition"
        s.update({
            "phase": DOWNLOADING, "target": m["version"], "sha256": m["sha256"].hex(),
            "url": m["url"], "size": m["size"], "min_version": m["min_version"], "offset": 0,
            "retries": RETRIES, "label": target.info()[4], "reason": "",
        })  # fmt: skip
        self._save()
        return "pending"

    def step(self, fetch):
        """One block of the download, or the check and switch after the last one."""
        s = self.state
        if s["phase"] != DOWNLOADING:
            return s["phase"]
        target = self.running.get_next_update()
        if s["offset"] < s["size"]:
            n = min(BLOCK, s["size"] - s["offset"])
            try:
                status, data = fetch(s["url"], s["offset"], n)
            except OSError:
                status, data = 0, b""
            if 400 <= status < 500:
                return self._stop("http %d" % status)
            if status not in (200, 206) or len(data) != n:
                s["retries"] -= 1
                if s["retries"] <= 0:
                    return self._stop("retries exhausted")
                self._save()
                return DOWNLOADING
            buf = bytearray(BLOCK)  # a whole erase block, the tail padded
            buf[:n] = data
            target.writeblocks(s["offset"] // BLOCK, buf)
            s["offset"] += n
            self._save()  # after the block: a cut before it only writes it again
            return DOWNLOADING
        if self._digest(target) != s["sha256"]:
            return self._stop("sha256 mismatch")
        s["phase"] = TRIAL
        s["previous"] = self._label()
        self._save()  # before set_boot: a cut between them boots the old image, see on_boot
        target.set_boot()
        return "reset"

    def _digest(self, part):
        h = hashlib.sha256()
        buf = bytearray(BLOCK)
        left = self.state["size"]
        block = 0
        while left > 0:
            part.readblocks(block, buf)
            h.update(buf[: min(BLOCK, left)])
            left -= BLOCK
            block += 1
        return h.digest().hex()

    def _stop(self, reason):
        self.state.update({"phase": IDLE, "reason": reason, "offset": 0})
        self._save()
        return IDLE

    def acked(self):
        """A report made by the trial firmware was acknowledged: keep it."""
        s = self.state
        if s["phase"] != TRIAL or self._label() != s["label"]:
            return False
        self.mark_valid()
        s["phase"] = COMMITTED
        s["running"] = s["target"]
        for v in (s["min_version"], s["target"]):  # the committed version is a floor too
            if version_key(v) > version_key(s["floor"]):
                s["floor"] = v
        self._save()
        return True
