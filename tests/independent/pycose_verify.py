"""Independent COSE_Sign1 verification with pycose (and its own cbor2 5.x).

Runs in a separate interpreter whose path holds only pycose and its dependencies (see
tests/harness/independent.py), so nothing of this project is imported. Reads JSON lines
{"pub": hex, "msg": hex} on stdin and writes one JSON line per input:
{"ok": bool, "payload": hex, "kid": hex, "alg": int, "error": str}.
"""

import json
import sys

import cbor2
from pycose.headers import KID, Algorithm
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message


def check(pub_hex: str, msg_hex: str) -> dict:
    try:
        msg = Sign1Message.decode(bytes.fromhex(msg_hex))
        msg.key = OKPKey(crv=Ed25519, x=bytes.fromhex(pub_hex))
        ok = bool(msg.verify_signature())
        alg = msg.phdr.get(Algorithm)
        return {
            "ok": ok,
            "payload": msg.payload.hex(),
            "kid": msg.phdr.get(KID, b"").hex(),
            "alg": getattr(alg, "identifier", alg),
            "payload_cbor": _maybe_cbor(msg.payload) if ok else None,
        }
    except Exception as exc:  # any failure of the foreign library is a "does not verify"
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _maybe_cbor(payload: bytes):
    try:
        return _typed(cbor2.loads(payload))
    except Exception:
        return None


def _typed(value):
    """Payload decoded by this interpreter's cbor2, as JSON with bytes in hex."""
    if isinstance(value, dict):
        return [[_typed(k), _typed(v)] for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [_typed(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return {"other": repr(value)}


for line in sys.stdin:
    line = line.strip()
    if line:
        job = json.loads(line)
        sys.stdout.write(json.dumps(check(job["pub"], job["msg"])) + "\n")
