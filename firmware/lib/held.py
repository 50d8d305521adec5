"""The state of the bridge's commands on flash: the highest seq taken from each bridge
instance (SEEN, the replay check) and the expiring commands held until the clock is trusted
(agent/timebase.py).

A command's seq is recorded as seen (cmd_seen.json) when it arrives, so a held command kept
only in the heap would be lost by a power cut and never come again (the agent keeps its own
in agent/held.py for the same reason). The list is one CBOR record, CRC-framed as the outbox's
are, written to a temporary file and renamed over the old one: a cut at any byte leaves the
old list or the new one, never a torn one.

    save(storage, held)    held: a list of (name, seq, args, expires_ms); [] removes the file
    load(storage, log)     the list saved before the reset ([] when none or unreadable)
    load_seen(storage)     {bridge instance: highest command seq taken}
"""

import json

import cbor
from storage import crc32

FILE = "held.cbor"
SEEN = "cmd_seen.json"


def load_seen(storage):
    raw = storage.read(SEEN)
    try:
        seen = json.loads(raw) if raw else {}
    except ValueError:
        seen = {}
    return seen if isinstance(seen, dict) else {}


def save(storage, held):
    if not held:
        storage.remove(FILE)
        return
    data = cbor.encode([list(cmd) for cmd in held])
    storage.write(FILE + ".tmp", crc32(data).to_bytes(4, "big") + data)
    storage.rename(FILE + ".tmp", FILE)


def load(storage, log):
    raw = storage.read(FILE)
    if not raw:
        return []
    try:
        if len(raw) < 4 or crc32(raw[4:]) != int.from_bytes(raw[:4], "big"):
            raise ValueError("bad CRC")
        out = []
        for name, seq, args, expires in cbor.decode(raw[4:]):
            out.append((name, seq, args, expires))
        return out
    except (ValueError, TypeError) as exc:  # ProtocolError is a ValueError
        log("held commands not restored: %s" % (exc,))
        return []
