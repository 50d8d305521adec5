"""The device's side of firmware updates, always loaded: the update machine itself (ota.py,
4 KB of bytecode) is loaded only while an update runs and dropped after it (the heap is small).
Also the names ota.py and ota_sim.py share: the state file, its phases, the flash block and
version numbers.

    phase(storage)      the phase ota.json records (IDLE when there is none)
    busy(phase)         whether ota.py must run: a download in progress or a trial to settle
    up = Updates(storage, hw, bridge_public, version, log)    at boot (a trial settled)
    up.machine()        the ota.Ota, loaded (for an `update` command)
    up.settle()         drop ota.py when no update runs any more
    up.on_ack(ack_seq)  an ack: on trial, the second one marks the new firmware valid
    up.step(now)        a block of a download; True when the board must reset now
"""

import json
import sys
import time

STATE = "ota.json"
BLOCK = 4096

SIM_IMAGE_MAGIC = b"CPFW-SIM "
"""A simulated image (the unix port) starts with this, then its version and a newline: the
firmware reads the version of the image its partition table booted (ota_sim.image_version)."""

IDLE = "idle"
DOWNLOADING = "downloading"
TRIAL = "trial"
COMMITTED = "committed"
ROLLED_BACK = "rolled_back"


def phase(storage):
    raw = storage.read(STATE)
    return json.loads(raw)["phase"] if raw else IDLE


def busy(phase_):
    return phase_ == DOWNLOADING or phase_ == TRIAL


def version_key(version):
    parts = version.split(".") if isinstance(version, str) else ()
    if not 1 <= len(parts) <= 4 or any(not p.isdigit() or len(p) > 5 for p in parts):
        raise ValueError("version %r must be 1 to 4 dot-separated numbers" % (version,))
    out = [int(p) for p in parts]
    while len(out) < 4:
        out.append(0)
    return tuple(out)


TRIAL_MS = 600000
"""A firmware on trial gets this long to have a report acked before it resets (rollback)."""


class Updates:
    def __init__(self, storage, hw, bridge_public, version, log):
        self._args = (storage, hw.running_partition, hw.mark_valid, bridge_public, version)
        self._fetch = hw.fetch_range
        self.log = log
        self.ota = None
        self._trial_ack = None  # on trial: the ack that shows this firmware's reports arrive
        self._boot_ms = hw.ticks_ms()
        if busy(phase(storage)):
            machine = self.machine()
            if machine.on_boot() == ROLLED_BACK:
                log("update: rolled back (%s)" % machine.state.get("reason"))
            self.settle()

    def machine(self):
        if self.ota is None:
            import ota

            storage, running, mark_valid, bridge_public, version = self._args
            self.ota = ota.Ota(storage, running, mark_valid, bridge_public, version=version)
        return self.ota

    def settle(self):
        if self.ota is not None and not busy(self.ota.phase):
            self.ota = None
            sys.modules.pop("ota", None)
            sys.modules.pop("http_get", None)

    def on_ack(self, ack_seq):
        """On trial after an update: the first ack sets the mark; one beyond it means a report
        this firmware numbered reached the bridge, and the image is marked valid."""
        if self.ota is None or self.ota.phase != TRIAL:
            return
        if self._trial_ack is None:
            self._trial_ack = ack_seq
        elif ack_seq > self._trial_ack and self.ota.acked():
            self.log("update: firmware %s committed" % self.ota.state["running"])
            self.settle()

    def step(self, now):
        """Download one block of an offered update; True when it is in place (reset into it),
        or when a trial got no ack within TRIAL_MS (the bootloader then rolls back)."""
        if self.ota is None:
            return False
        p = self.ota.phase
        if p == DOWNLOADING and self.ota.step(self._fetch) == "reset":
            self.log("update: rebooting into %s" % self.ota.state["target"])
            return True
        if p == TRIAL and time.ticks_diff(now, self._boot_ms) > TRIAL_MS:
            self.log("update: no ack for the new firmware; resetting to roll back")
            return True
        self.settle()  # a download that stopped (refused, failed) drops ota.py
        return False
