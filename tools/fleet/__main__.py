"""python -m tools.fleet: N simulated devices against a running broker and bridge, for load and
soak. Provisions, enrolls and opens pools as needed (a second run with the same --out reuses the
devices), runs every device as a real `edge-agent run` process for --duration seconds, then
stops them cleanly and prints what each sent, what the bridge acknowledged and what is left.

    cloud-bridge init --data var/bridge --fleet demo --mqtt-url mqtt://127.0.0.1:1883
    cloud-bridge run --data var/bridge &
    python -m tools.fleet --url mqtt://127.0.0.1:1883 --bridge-data var/bridge \\
        --devices 40 --kinds phone,fridge --interval 0.5 --duration 300

Exit status: 0 done, 1 an agent failed or the bridge acknowledged nothing, 2 bad usage or setup.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tools.fleet.bridge import Bridge, BridgeSetupError
from tools.fleet.devices import Device, DeviceStatus, set_up, start_all, stop_all
from tools.fleet.plan import KINDS, Tuning, plan
from tools.procs import Supervisor, sigterm_as_interrupt

REPORT_EVERY_S = 5.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.fleet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--url", default="mqtt://127.0.0.1:1883", help="the broker the bridge uses")
    p.add_argument("--bridge-data", type=Path, required=True, help="the bridge's data directory")
    p.add_argument("--devices", type=int, default=10, help="how many devices (10)")
    p.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"device kinds, comma-separated; a household has one of each ({','.join(KINDS)})",
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between reports (1.0)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds to run (60)")
    p.add_argument("--day-s", type=float, default=3.0, help="seconds per simulated day (3)")
    p.add_argument("--seed", type=int, default=1, help="seed of the devices' physics (1)")
    p.add_argument("--prefix", default="", help="prefix for device and user ids (keeps runs apart)")
    p.add_argument(
        "--protocol", choices=["5", "3.1.1"], help="MQTT version (default: the bridge's)"
    )
    p.add_argument("--out", type=Path, help="devices' directory (default out/fleet-<timestamp>)")
    p.add_argument("--workers", type=int, default=2, help="devices provisioned at once (2)")
    return p.parse_args(argv)


def progress_line(what: str, done: int, total: int) -> None:
    print(f"[{done:>{len(str(total))}}/{total}] {what}", flush=True)


def totals(statuses: dict[str, DeviceStatus]) -> tuple[int, int, int, int]:
    """(connected, sent, acked, backlog) over the fleet."""
    values = statuses.values()
    return (
        sum(s.link == "connected" for s in values),
        sum(s.last_seq for s in values),
        sum(s.acked for s in values),
        sum(s.backlog for s in values),
    )


def summary(devices: list[Device], statuses: dict[str, DeviceStatus], seconds: float) -> str:
    width = max(len(d.device_id) for d in devices)
    lines = [
        f"{'device':{width}}  {'kind':8}  {'user':6}  {'sent':>7}  {'acked':>7}  {'backlog':>7}"
    ]
    for d in devices:
        s = statuses[d.device_id]
        lines.append(
            f"{d.device_id:{width}}  {d.spec.kind:8}  {d.spec.user:6}  "
            f"{s.last_seq:>7}  {s.acked:>7}  {s.backlog:>7}"
        )
    _c, sent, acked, backlog = totals(statuses)
    lines.append(
        f"{'total':{width}}  {len(devices):>3} devices      {sent:>7}  {acked:>7}  {backlog:>7}"
    )
    lines.append(f"{sent / max(seconds, 1e-9):.1f} messages/s sent over {seconds:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        specs = plan(args.devices, kinds, args.seed, prefix=args.prefix)
        bridge = Bridge.load(args.bridge_data)
        tuning = Tuning(
            interval_s=args.interval,
            day_s=args.day_s,
            protocol=args.protocol or bridge.cfg.mqtt_protocol,
            status_interval_s=1.0,
            # A bridge that logs in runs on a secured broker: so do its devices, each with the
            # password `edge-agent provision` made (enroll adds its account).
            credentials=bool(bridge.cfg.username),
        )
    except (ValueError, BridgeSetupError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    if bridge.cfg.mqtt_url != args.url:
        print(f"fleet: note: the bridge's config names {bridge.cfg.mqtt_url}, not {args.url}")
    out = args.out or Path("out") / time.strftime("fleet-%Y%m%d-%H%M%S")
    sup = Supervisor()
    devices: list[Device] = []
    started = time.monotonic()
    try:
        with sigterm_as_interrupt():
            print(f"fleet: setting up {len(specs)} devices in {out} for fleet {bridge.fleet}")
            devices = set_up(specs, out, bridge, args.url, tuning, progress_line, args.workers)
            start_all(devices, sup)
            started = time.monotonic()
            print(f"fleet: {len(devices)} agents running for {args.duration:.0f} s; Ctrl-C stops")
            next_report = started + REPORT_EVERY_S
            while (now := time.monotonic()) < started + args.duration:
                time.sleep(min(0.2, max(0.0, started + args.duration - now)))
                if time.monotonic() >= next_report:
                    next_report += REPORT_EVERY_S
                    c, sent, acked, backlog = totals({d.device_id: d.status() for d in devices})
                    print(
                        f"t={time.monotonic() - started:5.0f}s  connected {c}/{len(devices)}  "
                        f"sent {sent}  acked {acked}  backlog {backlog}",
                        flush=True,
                    )
                    if acked == 0 and time.monotonic() - started > 15:
                        print(
                            "fleet: nothing acknowledged yet: is the bridge running "
                            f"(cloud-bridge run --data {args.bridge_data})?",
                            flush=True,
                        )
    except KeyboardInterrupt:
        print("fleet: interrupted; stopping the agents")
    except BridgeSetupError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        sup.close()
        return 2
    finally:
        ran = time.monotonic() - started
        stop_all(devices, sup)
        sup.close()
    if not devices:
        return 1
    failed = [
        d.device_id for d in devices if d.proc is not None and d.proc.returncode not in (0, -15)
    ]
    statuses = {d.device_id: d.status() for d in devices}
    print(summary(devices, statuses, ran))
    if failed:
        print(f"fleet: agents failed: {', '.join(failed)} (see {out}/<device>/agent.log)")
        return 1
    if sum(s.acked for s in statuses.values()) == 0:
        print("fleet: the bridge acknowledged nothing")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
