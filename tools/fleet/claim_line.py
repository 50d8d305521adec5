"""A factory line: provision every device of a claim batch, without an operator per device.

Each device of the line is a light enrollment client (agent.claim), not a full agent: it makes
its key, claims with its token and checks the sealed credentials it gets back. `--retry N`
claims the first N devices a second time with the same key (a device that lost the answer), and
the run checks that they got the same answer again. Prints one JSON summary; exit 1 if any
device did not end enrolled.

Each device's key is saved before its claim is sent, in its own file `KEYS_DIR/<device>.json`
(mode 0600: it holds the key seed, then the broker password too). A run killed mid-batch wastes
no token: run it again with the same arguments and each device claims with its saved key (a
claim already decided is answered again with the same credentials).

    python -m tools.fleet.claim_line --batch batch.json --mqtt-url mqtt://127.0.0.1:1883 \\
        --bridge-key HEX --workers 8 --retry 10 --keys-dir keys/
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import nacl.signing

import keyfiles
from agent.claim import ClaimResult, claim_once


def _key(path: Path, device_id: str) -> nacl.signing.SigningKey:
    """The device's saved key, else a new one saved (0600) before anything is sent."""
    if path.exists():
        return nacl.signing.SigningKey(bytes.fromhex(json.loads(path.read_text())["seed"]))
    key = nacl.signing.SigningKey.generate()
    _save(path, {"device": device_id, "seed": bytes(key).hex()}, overwrite=False)
    return key


def _save(path: Path, doc: dict[str, object], *, overwrite: bool = True) -> None:
    keyfiles.write_private(path, (json.dumps(doc) + "\n").encode(), overwrite=overwrite)


def _device(
    index: int, claim: bytes, args: argparse.Namespace, bridge: nacl.signing.VerifyKey
) -> dict[str, object]:
    url = urlsplit(args.mqtt_url)
    device_id = f"{args.prefix}-{index:05d}"
    path = args.keys_dir / f"{device_id}.json"
    key = _key(path, device_id)

    def once() -> ClaimResult:
        return claim_once(
            url.hostname or "127.0.0.1", url.port or 1883, claim, key, device_id, args.kind, bridge
        )

    first = once()
    out: dict[str, object] = {
        "device": device_id,
        "result": first.result,
        "reason": first.reason,
        "seed": bytes(key).hex(),
        "password": first.credentials.password if first.credentials else "",
    }
    _save(path, out)
    if index < args.retry:
        again = once()
        out["retry_same_answer"] = again.answer == first.answer and again.result == first.result
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.fleet.claim_line",
        description="Provision every device of a claim batch (cloud-bridge claims issue --out) "
        "with light enrollment clients, as a factory line would.",
    )
    parser.add_argument("--batch", type=Path, required=True, help="the batch file")
    parser.add_argument("--mqtt-url", required=True, help="mqtt://host:port of the broker")
    parser.add_argument("--bridge-key", required=True, help="the bridge's public key (hex)")
    parser.add_argument("--kind", default="mcu", help="device kind (default mcu)")
    parser.add_argument("--prefix", default="line", help="device ids are PREFIX-00000, ...")
    parser.add_argument("--workers", type=int, default=8, help="devices claiming at once")
    parser.add_argument("--retry", type=int, default=0, help="claim the first N twice")
    parser.add_argument("--limit", type=int, default=0, help="only the first N tokens")
    parser.add_argument(
        "--keys-dir",
        type=Path,
        required=True,
        help="one file per device (0600): its key, saved before its claim, and its broker "
        "password; a run again reuses the saved keys",
    )
    args = parser.parse_args(argv)
    args.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    doc = json.loads(args.batch.read_text())
    bridge = nacl.signing.VerifyKey(bytes.fromhex(args.bridge_key))
    tokens = doc["tokens"][: args.limit or None]
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(
            pool.map(
                lambda it: _device(it[0], bytes.fromhex(it[1]["claim"]), args, bridge),
                enumerate(tokens),
            )
        )
    enrolled = sum(r["result"] == "enrolled" for r in results)
    retried = [r for r in results if "retry_same_answer" in r]
    summary = {
        "batch": doc["batch"],
        "devices": len(results),
        "enrolled": enrolled,
        "retried": len(retried),
        "retries_answered_again": sum(bool(r["retry_same_answer"]) for r in retried),
        "refused": sorted({str(r["reason"]) for r in results if r["result"] != "enrolled"}),
    }
    print(json.dumps(summary))
    return 0 if enrolled == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
