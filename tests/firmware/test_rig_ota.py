"""Firmware update through the whole device loop (issue 18 item 2): the virtual ESP32 (the
MicroPython unix port, its OTA partitions simulated by ota.SimTable in its flash directory),
a private Mosquitto and an unmodified cloud-bridge. `cloud-bridge devices update` sends the
signed manifest; the board downloads the image over HTTP (Range requests, one flash block at
a time), writes the inactive partition, resets into it (the rig starts the process again, as
a board's reset boots what the partition table names), and marks it valid only after a report
of it was acknowledged. A second update that gets no ack (the bridge is stopped) is rolled
back by the bootloader at the next reset, and nothing in the outbox is lost.

The simulated image is a marker (ota_sim.SIM_IMAGE_MAGIC and a version) that the firmware reads
from the partition it booted: the code that runs is the same, the version it reports is the
image's. That is what the rig can show of "which image runs"; the bytes written, the digest
check, the partition switch and the rollback are the firmware's own."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.provision_esp32 import firmware_module
from protocol import cose
from protocol import messages as m
from tests.agent.harness import wait
from tests.bridge.harness import Bridge, bridge_cli
from tests.firmware.test_rig import DEVICE, events, provision_rig
from tests.harness.mosquitto import Mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

ota = firmware_module("ota")
ota_sim = firmware_module("ota_sim")


def sim_image(version: str, size: int = 3 * ota.BLOCK + 123) -> bytes:
    """A simulated firmware image of `size` bytes: the marker, then bytes that differ per
    block (a block written at the wrong offset would change the digest)."""
    head = ota_sim.SIM_IMAGE_MAGIC + version.encode() + b"\n"
    body = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(size // 32 + 1))
    return (head + body)[:size]


HELD = threading.Event()
"""Set: the server answers. Cleared: a request waits (up to 30 s), as a slow server would, so
the test can stop the bridge after the board took the command but before it boots the image."""
HELD.set()


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Files of a directory, with `Range: bytes=A-B` answered 206 (the board asks for one
    flash block at a time)."""

    def do_GET(self) -> None:
        HELD.wait(30)
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if match is None or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        start, end = int(match[1]), min(int(match[2]), len(data) - 1)
        if start >= len(data):
            self.send_error(416)
            return
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])


@contextlib.contextmanager
def range_server(directory: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def update(bridge: Bridge, version: str, url: str, image: Path) -> None:
    bridge_cli(
        "devices", "update", DEVICE, "--target", "esp32", "--version", version, "--url", url,
        "--file", str(image),
        "--data", str(bridge.data), "--config", str(bridge.config),
    )  # fmt: skip


def births(bridge: Bridge) -> list[str]:
    """The agent_version of every birth the bridge recorded, in order."""
    rows = bridge.query(
        "SELECT envelope FROM session_events WHERE device_id = ? ORDER BY seq", (DEVICE,)
    )
    out = []
    for (env,) in rows:
        msg = m.decode(cose.peek_payload(bytes(env)))  # type: ignore[arg-type]
        if isinstance(msg, m.Birth):
            out.append(msg.agent_version)
    return out


def update_answers(bridge: Bridge) -> list[str]:
    """cmd_result of the reports that answer an `update` command, in order."""
    out = []
    for _s, kind, env in events(bridge):
        msg = m.decode(cose.peek_payload(env))
        if kind == int(m.Kind.REPORT) and isinstance(msg, m.Report) and msg.cmd_seq:
            out.append(msg.cmd_result)
    return out


def otadata(rig_flash: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((rig_flash / ota_sim.SimTable.DATA).read_text())
    return doc


def test_virtual_esp32_updates_its_firmware_and_rolls_back_one_never_acked(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    bridge = Bridge.create(tmp_path / "bridge", private_broker.url)
    rig = provision_rig(tmp_path, bridge, private_broker, "u-ota")
    served = tmp_path / "served"
    served.mkdir()
    (served / "fw-0.3.0.bin").write_bytes(sim_image("0.3.0"))
    (served / "fw-0.4.0.bin").write_bytes(sim_image("0.4.0", 2 * ota.BLOCK))
    bridge.start()
    rig.start()
    try:
        with range_server(served) as base:
            assert wait(lambda: len(events(bridge)) >= 3, 60), rig.console() + bridge.log()[-3000:]
            assert births(bridge) == ["fw-0.2.0"]

            # 1. a good update: downloaded, booted on trial, committed after an acked report
            update(bridge, "0.3.0", f"{base}/fw-0.3.0.bin", served / "fw-0.3.0.bin")
            assert wait(lambda: "update: firmware 0.3.0 committed" in rig.console(), 90), (
                rig.console()[-3000:] + bridge.log()[-2000:]
            )
            assert rig.resets == 1
            assert update_answers(bridge)[:1] == ["pending"]
            assert wait(lambda: births(bridge)[-1:] == ["fw-0.3.0"], 30), births(bridge)
            table = otadata(rig.flash)
            assert table["running"] == "ota_1"
            assert table["states"] == {"ota_0": "valid", "ota_1": "valid"}
            written = (rig.flash / "ota_1.bin").read_bytes()
            image = (served / "fw-0.3.0.bin").read_bytes()
            # whole blocks: the last one padded with zeros by ota.Ota.step
            assert written == image + bytes(4 * ota.BLOCK - len(image))
            state = json.loads((rig.flash / ota.STATE).read_text())
            assert (state["phase"], state["running"]) == (ota.COMMITTED, "0.3.0")

            # 2. an update that never gets an ack: the bridge is down while it runs on trial
            # (operator commands go out through the running bridge: the image is held back
            # until the board took the command and the bridge is down)
            HELD.clear()
            update(bridge, "0.4.0", f"{base}/fw-0.4.0.bin", served / "fw-0.4.0.bin")
            took = "command update (seq"
            assert wait(lambda: rig.console().count(took) == 2, 30), rig.console()[-2000:]
            bridge.stop()
            n_before = len(events(bridge))
            HELD.set()
            assert wait(lambda: rig.resets == 2, 60), rig.console()[-3000:]
            assert wait(lambda: f"{DEVICE} fw-0.4.0" in rig.console(), 30), rig.console()[-2000:]
            assert wait(lambda: "connected (session" in rig.console().split("fw-0.4.0")[-1], 30)
            assert otadata(rig.flash)["states"] == {"ota_0": "pending", "ota_1": "valid"}
        rig.kill()  # a reset before any ack: the bootloader boots the valid image again
        rig.start()
        assert wait(lambda: "update: rolled back" in rig.console(), 30), rig.console()[-3000:]
        table = otadata(rig.flash)
        assert table["running"] == "ota_1"
        assert table["states"] == {"ota_0": "aborted", "ota_1": "valid"}
        state = json.loads((rig.flash / ota.STATE).read_text())
        assert (state["phase"], state["running"]) == (ota.ROLLED_BACK, "0.3.0")

        # the bridge back: the old firmware delivers everything, the trial's reports included
        bridge.start()
        assert wait(lambda: births(bridge)[-1:] == ["fw-0.3.0"], 30), births(bridge)
        assert wait(lambda: update_answers(bridge)[1:2] == ["pending"], 30), rig.console()[-2000:]
        assert wait(lambda: len(events(bridge)) >= n_before + 3, 30)
    finally:
        if rig.running:
            rig.stop()
    bridge.stop()
    got = events(bridge)
    seqs = [s for s, _k, _e in got]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # nothing lost over either update
    # every number the device gave out is at the bridge or still kept on the board's flash (it
    # reports every second, so some may be in flight at the stop)
    box = firmware_module("outbox").Outbox(firmware_module("storage").FileStorage(str(rig.flash)))
    kept = {e.seq for e in box.in_flight() if e.seq}
    assert set(range(1, box.next_seq())) == set(seqs) | kept
