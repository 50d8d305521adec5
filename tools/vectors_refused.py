"""The refused vectors of tests/vectors/project.json (tools/gen_vectors.py): validly signed
payloads that every reader must refuse as bad_cbor, because they hold an item outside the
contract."""

from __future__ import annotations

from collections.abc import Iterable

import nacl.signing

from protocol import cose
from protocol import messages as m

# RFC 8949 appendix A encodings of items outside the contract (docs/protocol.md section 3):
# readers refuse them wherever they sit, under a key they do not know too.
OUTSIDE = {
    "nan-half": "f97e00",
    "nan-single": "fa7fc00000",
    "nan-double": "fb7ff8000000000000",
    "undefined": "f7",
    "tag-epoch-time": "c11a514b67b0",
    "tag-bignum": "c249010000000000000000",
    "indefinite-bytes": "5f42010243030405ff",
    "indefinite-text": "7f657374726561646d696e67ff",
    "indefinite-array": "9f018202039f0405ffff",
    "indefinite-map": "bf61610161629f0203ffff",
}
UNKNOWN_KEY = 23  # neither Ack nor BridgeState uses it (Report's strokes do); one byte, 0x17


def refused(
    key: nacl.signing.SigningKey, examples: Iterable[tuple[str, m.Message]]
) -> list[dict[str, str]]:
    """Payloads (and their envelopes, validly signed) that every reader refuses as bad_cbor: an
    ack and a bridge state, which devices read too, with an item outside the contract under an
    unknown key; and an ack whose known device field is an indefinite-length text."""
    out = []
    for name, msg in examples:
        if name not in ("ack", "bridge-state"):
            continue
        payload = m.encode(msg)
        assert 0xA0 <= payload[0] < 0xB7  # a map of fewer than 23 entries: one head byte
        for item_name, item in OUTSIDE.items():
            bad = bytes([payload[0] + 1]) + payload[1:] + bytes([UNKNOWN_KEY]) + bytes.fromhex(item)
            out.append({"name": f"{name}-{item_name}-under-unknown-key", "payload": bad.hex()})
        if name == "ack":  # RFC 8949 section 3.2.3: "rig-07" as two chunks, (_ "rig", "-07")
            definite = bytes.fromhex("0a66") + b"rig-07"
            chunked = bytes.fromhex("0a7f63") + b"rig" + bytes.fromhex("63") + b"-07\xff"
            assert payload.count(definite) == 1
            out.append(
                {
                    "name": "ack-indefinite-device",
                    "payload": payload.replace(definite, chunked).hex(),
                }
            )
    kid = cose.kid_for(key.verify_key)
    for case in out:
        case["envelope"] = cose.sign1(bytes.fromhex(case["payload"]), key, kid).hex()
        case["reason"] = "bad_cbor"
    return out
