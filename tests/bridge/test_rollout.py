"""Staged rollouts (cloud_bridge.rollout): a stable subset by the device id's hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nacl.signing
import pytest

from agent.update.manifest import Manifest, verify
from cloud_bridge.rollout import BUCKETS, bucket, chosen
from tests.bridge.harness import Bridge, bridge_cli

DEVICES = [f"dev-{i:04d}" for i in range(2000)]


def test_bucket_is_the_id_hash() -> None:
    digest = hashlib.sha256(b"dev-0001").digest()
    assert bucket("dev-0001") == int.from_bytes(digest[:8], "big") % BUCKETS


def test_raising_the_percentage_only_adds_devices() -> None:
    ten, fifty = set(chosen(DEVICES, 10)), set(chosen(DEVICES, 50))
    assert ten < fifty
    assert chosen(DEVICES, 0) == [] and chosen(DEVICES, 100) == sorted(DEVICES)
    assert 150 <= len(ten) <= 250  # about 10 % of 2000
    assert chosen(reversed(DEVICES), 10) == sorted(ten)  # the order given does not matter


@pytest.mark.parametrize("percent", [-1, 100.5])
def test_percent_out_of_range(percent: float) -> None:
    with pytest.raises(ValueError, match="from 0 to 100"):
        chosen(DEVICES, percent)


def test_fleet_manifest_and_rollout_from_the_cli(tmp_path: Path) -> None:
    bridge = Bridge.create(tmp_path / "bridge", "mqtt://127.0.0.1:9")  # no broker needed
    release = tmp_path / "edge-agent-0.2.0.tar.gz"
    release.write_bytes(b"release bytes")
    out = tmp_path / "m.cbor"
    cli = ["--data", str(bridge.data), "--config", str(bridge.config)]
    bridge_cli("fleet", "manifest", "--version", "0.2.0", "--url", "https://u/r.tgz",
               "--file", str(release), "--min-version", "0.2", "--out", str(out), *cli)  # fmt: skip
    manifest = verify(out.read_bytes(), bytes.fromhex(bridge.public_key_hex))
    assert manifest == Manifest(
        "0.2.0", hashlib.sha256(b"release bytes").digest(), "https://u/r.tgz", 13, "0.2"
    )
    assert manifest.target == "linux-agent"  # the default
    default = tmp_path / "default.cbor"
    bridge_cli("fleet", "manifest", "--version", "0.3.0", "--url", "https://u/r.tgz",
               "--file", str(release), "--out", str(default), *cli)  # fmt: skip
    # without --min-version the floor is the release itself: nothing older can follow it
    assert verify(default.read_bytes(), bytes.fromhex(bridge.public_key_hex)).min_version == "0.3.0"
    dry = bridge_cli("fleet", "rollout", "--manifest", str(out), "--percent", "100",
                     "--dry-run", *cli)  # fmt: skip
    assert dry.stdout.strip() == "(no device)"
    forged = tmp_path / "forged.cbor"
    forged.write_bytes(manifest.sign(nacl.signing.SigningKey(bytes(32))))
    bad = bridge_cli("fleet", "rollout", "--manifest", str(forged), "--percent", "5", *cli,
                     check=False)  # fmt: skip
    assert bad.returncode == 2 and "sign it with this bridge's key" in bad.stderr
    bad = bridge_cli("devices", "update", "dev-1", "--version", "0.2.0", *cli, check=False)
    assert (
        bad.returncode == 2 and "give --manifest FILE, or --version, --url and --file" in bad.stderr
    )


def test_a_rollout_reaches_only_the_kinds_that_run_the_manifests_target(tmp_path: Path) -> None:
    bridge = Bridge.create(tmp_path / "bridge", "mqtt://127.0.0.1:9")  # no broker needed
    bridge.device(tmp_path, "fr-1", "fridge", "mqtt://127.0.0.1:9", "alice")
    image = tmp_path / "fw.bin"
    image.write_bytes(b"firmware image")
    cli = ["--data", str(bridge.data), "--config", str(bridge.config)]
    out = {t: tmp_path / f"{t}.cbor" for t in ("linux-agent", "esp32")}
    for target, path in out.items():
        bridge_cli("fleet", "manifest", "--version", "0.2.0", "--url", "http://u/r.bin", "--file",
                   str(image), "--target", target, "--out", str(path), *cli)  # fmt: skip
        signed = verify(path.read_bytes(), bytes.fromhex(bridge.public_key_hex))
        assert signed.target == target
    dry = {
        t: bridge_cli(
            "fleet", "rollout", "--manifest", str(p), "--percent", "100", "--dry-run", *cli
        ).stdout.strip()
        for t, p in out.items()
    }
    assert dry == {"linux-agent": "fr-1", "esp32": "(no device)"}  # a fridge runs the agent
    bad = bridge_cli("fleet", "manifest", "--version", "0.2.0", "--url", "https://u/r.bin",
                     "--file", str(image), "--target", "esp32", "--out", str(tmp_path / "x"),
                     *cli, check=False)  # fmt: skip
    assert bad.returncode == 2 and "esp32 image is downloaded over http://" in bad.stderr
