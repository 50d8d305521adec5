"""The bridge's commands on flash: the highest seq taken from each bridge instance (the replay
check) and every verified command not yet answered, in one record.

A command is written here when it arrives, in the same write as its seq becoming seen: the
MQTT client acknowledges the PUBLISH only after that (mqtt.py), so a power cut before it
leaves the command unseen and the broker delivers it again, and a cut after it leaves the
command on flash. It leaves the record only once its answer (a report whose cmd_seq is its
seq) is in the outbox; a cut between the two is settled at boot by `answered`, so that no
command is answered twice (agent/held.py keeps the agent's list for the same reason).

The record is CBOR [seen, pending], CRC-framed as the outbox's are, written to a temporary file
and renamed over the old one: a cut at any byte leaves the old record or the new one, never a
torn one. A record of an older image (the held list alone, the seen map in cmd_seen.json) is
still read.

    save(storage, seen, pending)  seen: {bridge instance: highest seq}; pending: a list of
                                  (name, seq, args, expires_ms)
    load(storage, log)            (seen, pending) saved before the reset (empty when none;
                                  an unreadable record is logged, and cmd_seen.json still
                                  keeps seqs from coming back)
    triage(pending, now_ms, trusted)  (to apply, to keep, refused with their verdicts)
    answered(payloads)            the cmd_seq of every command answer among outbox payloads
"""

import json

import cbor
import command_gate
import messages
from storage import crc32

FILE = "held.cbor"
SEEN = "cmd_seen.json"  # written by images before the combined record; read, merged


def save(storage, seen, pending):
    data = cbor.encode([seen, [list(cmd) for cmd in pending]])
    storage.write(FILE + ".tmp", crc32(data).to_bytes(4, "big") + data)
    storage.rename(FILE + ".tmp", FILE)


def _old_seen(storage):
    raw = storage.read(SEEN)
    try:
        seen = json.loads(raw) if raw else {}
    except ValueError:
        seen = {}
    return seen if isinstance(seen, dict) else {}


def load(storage, log):
    seen = _old_seen(storage)
    raw = storage.read(FILE)
    if not raw:
        return seen, []
    try:
        if len(raw) < 4 or crc32(raw[4:]) != int.from_bytes(raw[:4], "big"):
            raise ValueError("bad CRC")
        doc = cbor.decode(raw[4:])
        if isinstance(doc, list) and len(doc) == 2 and isinstance(doc[0], dict):
            for sender, seq in doc[0].items():
                if seq > seen.get(sender, 0):
                    seen[sender] = seq
            doc = doc[1]
        pending = []
        for name, seq, args, expires in doc:
            pending.append((name, seq, args, expires))
        return seen, pending
    except (ValueError, TypeError) as exc:  # ProtocolError is a ValueError
        log("held commands not restored: %s" % (exc,))
        return seen, []


def answered(payloads):
    """The set of cmd_seq values of the reports among `payloads` (encoded, unsigned)."""
    key = None
    for k, name, _typ, _default in messages.FIELDS[messages.REPORT][1]:
        if name == "cmd_seq":
            key = k
    out = set()
    for payload in payloads:
        if messages.kind_of(payload) == messages.REPORT:
            seq = cbor.decode(payload).get(key, 0)
            if seq:
                out.add(seq)
    return out


def triage(pending, now_ms, trusted):
    """(to apply, to keep until the clock is trusted, [(verdict, cmd)] refused), in order
    (agent/held.py triage)."""
    apply = []
    keep = []
    refused = []
    for cmd in pending:
        verdict = command_gate.gate(cmd[3], False, now_ms, trusted)
        if verdict == command_gate.APPLY:
            apply.append(cmd)
        elif verdict == command_gate.HOLD:
            keep.append(cmd)
        else:
            refused.append((verdict, cmd))
    return apply, keep, refused
