"""edge-agent: provision a device, run the agent, show its status, raise an emergency.

Exit codes: 0 success; 1 the agent failed while running; 2 bad usage, configuration or key;
3 the broker cannot be reached at start (pass --offline-ok to collect and connect later).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import agent
from agent import applications, diag, keys, provision
from agent import config as config_mod
from agent.errors import AgentError
from agent.jsonfile import read_json
from protocol.names import MCU_KIND

EXIT_FAILED, EXIT_USAGE, EXIT_BROKER = 1, 2, 3
log = logging.getLogger("edge-agent")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Edge agent: reads sensors, scores them on the device with TFLite, signs "
        "the result (COSE_Sign1, Ed25519) and forwards it over MQTT with a durable outbox.",
        epilog="Exit codes: 0 ok, 1 failed while running, 2 bad usage/config/key, "
        "3 broker unreachable at start.",
    )
    parser.add_argument("--version", action="version", version=agent.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "provision",
        help="make a device key and its signed enrollment record",
        description="Create DIR/device.key (Ed25519, mode 0600) and "
        "DIR/enrollment.cbor: device, fleet, kind, public key and the enrolled "
        "fingerprint baseline from captures at rest, signed by the new key; and "
        "DIR/mqtt.pass (mode 0600), the device's broker password, whose hash travels in the "
        "record. Hand enrollment.cbor to the bridge: cloud-bridge devices enroll FILE.",
    )
    p.add_argument("--device-id", required=True, help="1-64 characters of A-Z a-z 0-9 . _ -")
    p.add_argument("--fleet", required=True, help="fleet id")
    p.add_argument("--kind", required=True, choices=(*config_mod.DEVICE_KINDS, MCU_KIND))
    p.add_argument(
        "--target",
        default="linux",
        choices=["linux", "esp32"],
        help="esp32: also write DIR/board/ (config.json, device.key) for tools/flash; kind mcu",
    )
    p.add_argument("--out", required=True, type=Path, help="directory for key and record")
    p.add_argument(
        "--source",
        default="sim",
        choices=config_mod.SOURCES,
        help="sensor source for the baseline capture (default sim)",
    )
    p.add_argument("--seed", type=int, default=-1, help="sim seed (default: from the device id)")
    p.add_argument("--sessions", type=int, default=6, help="captures for the baseline (6)")
    p.add_argument("--bridge-key", help="bridge public key (hex): also write DIR/agent.toml")
    p.add_argument("--mqtt-url", default="mqtt://127.0.0.1:1883", help="for DIR/agent.toml")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    r = sub.add_parser(
        "run",
        help="run the agent until SIGTERM",
        description="Run the agent: sense, score, sign, store and forward. "
        "SIGTERM or Ctrl-C stops it cleanly (a signed death certificate).",
    )
    r.add_argument("--config", required=True, type=Path, help="agent.toml")
    r.add_argument(
        "--offline-ok",
        action="store_true",
        help="start even when the broker cannot be reached (collect, connect later)",
    )
    r.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    s = sub.add_parser(
        "status",
        help="link, backlog, last ack, sequence, boot counter",
        description="Show the running agent's link state and its outbox.",
    )
    s.add_argument("--config", required=True, type=Path)
    s.add_argument("--json", action="store_true")

    e = sub.add_parser(
        "emergency",
        help="raise an explicit emergency on a running agent",
        description="Queue an explicit emergency for the running agent; it is "
        "signed and sent ahead of everything else.",
    )
    e.add_argument("--config", required=True, type=Path)
    e.add_argument("--kind", required=True, choices=["illness", "disaster", "education"])
    e.add_argument("--amount-fen", type=int, default=0, help="amount asked for, in fen")

    applications.add_parser(sub)

    rec = sub.add_parser(
        "record",
        help="record captures for the replay source",
        description="Record COUNT captures (and telemetry) from the configured "
        'source to a JSON-lines file that [sensors] source = "replay" plays.',
    )
    rec.add_argument("--config", required=True, type=Path)
    rec.add_argument("--out", required=True, type=Path)
    rec.add_argument("--count", type=int, default=10)
    rec.add_argument(
        "--interval-s", type=float, default=1.0, help="between captures (scene readers poll on)"
    )

    src = sub.add_parser("sources", help="check the configured sensors on this rig")
    src_sub = src.add_subparsers(dest="sources_command", required=True)
    chk = src_sub.add_parser(
        "check",
        help="print live values from every configured source",
        description="Poll the configured source and scene readers once a second and print what "
        "they read; exit 1 if any of them reports a fault.",
    )
    chk.add_argument("--config", required=True, type=Path)
    chk.add_argument("--seconds", type=float, default=6.0)
    for name, what in (
        ("tare", "zero a load-cell shelf: run it with the shelf empty"),
        ("calibrate", "span a tared shelf: run it with a known weight on the shelf"),
    ):
        cal = src_sub.add_parser(name, help=what, description=what.capitalize() + ".")
        cal.add_argument("--config", required=True, type=Path)
        cal.add_argument("--shelf", required=True, help="the shelf's item, as in [sensors] shelves")
        cal.add_argument("--samples", type=int, default=20)
        if name == "calibrate":
            cal.add_argument("--grams", required=True, type=float, help="the known weight")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        handler = {
            "provision": provision.provision,
            "run": run,
            "status": status,
            "emergency": emergency,
            "apply": applications.apply,
            "record": record,
            "sources": sources,
        }[args.command]
        return int(handler(args))
    except AgentError as exc:
        print(f"edge-agent: {exc}", file=sys.stderr)
        return EXIT_USAGE


# ---- run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    cfg = config_mod.load(args.config)
    key = keys.load(cfg.key_file)
    if not args.offline_ok:
        problem = preflight(cfg)
        if problem:
            print(
                f"edge-agent: cannot reach the broker at {cfg.mqtt.url} ({problem}); check "
                "[mqtt] url, or pass --offline-ok to collect now and connect later",
                file=sys.stderr,
            )
            return EXIT_BROKER
    from agent.bootstrap import build_agent

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    the_agent = build_agent(cfg, key)
    logging.getLogger().addHandler(diag.RING)  # the last lines, for a diag command
    if diag.start_run(cfg.data_dir, the_agent.clock.wall_ms()):
        log.warning("the previous run ended uncleanly (SIGKILL, OOM or power loss)")
    log.info(
        "agent %s (%s) boot %d, model %s",
        cfg.device_id,
        cfg.kind,
        the_agent.outbox.boot,
        the_agent.assessor.model_id,
    )
    try:
        the_agent.run(stop)
    except Exception as exc:
        log.exception("agent failed")
        diag.record_crash(cfg.data_dir, f"{type(exc).__name__}: {exc}", the_agent.clock.wall_ms())
        print(f"edge-agent: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    diag.end_run(cfg.data_dir)
    if the_agent.updater.restart.is_set():
        from agent.update.worker import EXIT_RESTART

        return EXIT_RESTART  # switched to a new release: the launcher starts it
    return 0


def preflight(cfg: config_mod.AgentConfig) -> str:
    """'' if a TCP connection to the broker opens, else why not."""
    try:
        socket.getaddrinfo(cfg.mqtt.host, cfg.mqtt.port)
    except socket.gaierror as exc:
        return f"cannot resolve {cfg.mqtt.host}: {exc.strerror}"
    try:
        socket.create_connection((cfg.mqtt.host, cfg.mqtt.port), timeout=5).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return ""


# ---- status, emergency, record ---------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    from agent.outbox import Outbox

    cfg = config_mod.load(args.config)
    doc = read_json(cfg.data_dir / "status.json")
    stats = Outbox.peek(cfg.data_dir / "outbox.sqlite3")
    live = (
        isinstance(doc, dict)
        and doc.get("running")
        and (time.time() * 1000 - float(doc.get("updated_ms", 0)) < 5000 * cfg.status_interval_s)
    )
    out: dict[str, Any] = {
        "device_id": cfg.device_id,
        "running": bool(live),
        "link": doc.get("link") if live and isinstance(doc, dict) else "not running",
        "bridge_online": bool(doc.get("bridge_online"))
        if live and isinstance(doc, dict)
        else False,
        "drain": str(doc.get("drain", "")) if live and isinstance(doc, dict) else "",
        "last_error": doc.get("last_error", "") if isinstance(doc, dict) else "",
        "last_ack": max(
            int(doc.get("last_ack", 0)) if isinstance(doc, dict) else 0,
            stats.last_ack if stats else 0,
        ),
        "backlog": stats.backlog if stats else 0,
        "unsent": stats.unsent if stats else 0,
        "next_seq": stats.next_seq if stats else 1,
        "boot": stats.boot if stats else 0,
        "session": stats.session if stats else 0,
        "coalesced": stats.coalesced if stats else 0,
        "model_id": doc.get("model_id") if isinstance(doc, dict) else None,
        "last_risk_pm": doc.get("last_risk_pm") if isinstance(doc, dict) else None,
    }
    if args.json:
        print(json.dumps(out))
    else:
        width = max(len(k) for k in out)
        for k, v in out.items():
            print(f"{k.ljust(width)}  {v}")
    return 0


def emergency(args: argparse.Namespace) -> int:
    from agent.sensors.base import EventSpool

    cfg = config_mod.load(args.config)
    path = EventSpool(cfg.data_dir / "events").raise_emergency(args.kind, args.amount_fen)
    print(f"emergency {args.kind} queued ({path.name}); the running agent sends it next")
    return 0


def record(args: argparse.Namespace) -> int:
    from agent.sensors.factory import source_for
    from agent.sensors.replay import write_capture

    cfg = config_mod.load(args.config)
    source = source_for(cfg, boot=1)
    try:
        with open(args.out, "w") as fh:
            for i in range(args.count):
                if i:
                    time.sleep(args.interval_s)
                reading = source.poll(time.time_ns() // 1_000_000)
                write_capture(fh, source.capture(), reading.telemetry, reading.events)
                print(f"\rrecorded {i + 1}/{args.count}", end="", file=sys.stderr)
    finally:
        source.close()
    print(file=sys.stderr)
    return 0


def sources(args: argparse.Namespace) -> int:
    if args.sources_command == "check":
        return sources_check(args)
    return calibrate_shelf(args)


def calibrate_shelf(args: argparse.Namespace) -> int:
    """`edge-agent sources tare|calibrate`: measure a shelf, store its calibration on the device."""
    from agent.sensors import hx711, loadcell
    from agent.sensors.iio import SensorError
    from agent.sensors.loadcell import Calibration

    cfg = config_mod.load(args.config)
    shelf = next((s for s in cfg.shelves if s.item == args.shelf), None)
    if shelf is None:
        items = ", ".join(s.item for s in cfg.shelves) or "none configured"
        raise SensorError(f"no shelf {args.shelf!r} in [sensors] shelves ({items})")
    device = hx711.shelf_device(shelf, cfg.loadcell_device)
    samples = []
    for i in range(max(1, args.samples)):
        if i:
            time.sleep(0.1)
        raw, scale = hx711.read_channel(device, shelf.channel)
        samples.append(raw * scale)
    path = cfg.data_dir / hx711.CALIBRATION_FILE
    cals = hx711.load_calibration(path)
    if args.sources_command == "tare":
        cals[shelf.item] = loadcell.tare(samples)
    else:
        try:
            cals[shelf.item] = loadcell.span(
                cals.get(shelf.item, Calibration()), samples, args.grams
            )
        except ValueError as exc:
            raise SensorError(f"shelf {shelf.item}: {exc} (tare it empty first)") from exc
    hx711.save_calibration(path, cals)
    cal = cals[shelf.item]
    print(f"{shelf.item}: tare {cal.tare_mv:.4f} mV, {cal.g_per_mv:.4f} g/mV -> {path}")
    return 0


def sources_check(args: argparse.Namespace) -> int:
    """`edge-agent sources check`: live values, one line a second; 1 if anything faulted."""
    from agent.sensors.factory import source_for

    cfg = config_mod.load(args.config)
    source = source_for(cfg, boot=1)
    faulted = False
    try:
        deadline = time.monotonic() + args.seconds
        while True:
            reading = source.poll(time.time_ns() // 1_000_000)
            values = " ".join(f"{k}={v}" for k, v in sorted(reading.telemetry.items()))
            print(values or "(no telemetry yet)", flush=True)
            faulted |= any(k.startswith("fault.") for k in reading.telemetry)
            if time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        capture = source.capture()
        print(
            f"imu: {len(capture.imu_raw)} samples at {capture.sample_rate_hz:g} Hz, "
            f"temperature {capture.temp_mc / 1000:.1f} C",
            flush=True,
        )
    finally:
        source.close()
    return 1 if faulted else 0


if __name__ == "__main__":
    sys.exit(main())
