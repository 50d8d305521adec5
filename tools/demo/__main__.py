"""python -m tools.demo: the whole system on one machine, end to end, in about two minutes.

A private broker (Mosquitto when installed, else an embedded one), the bridge on SQLite and a
fleet of households (phone, wearable, fridge, EV) as real agent processes. Six moments are
scripted and detected from real traffic: a fridge restock offer, a health-streak boost, an EV
rate tier, an emergency draw, a cloned key caught and frozen, and a broker restart with nothing
lost. A live view shows devices, throughput, decisions, pools and the moments; at the end a
summary, summary.json and a PNG chart go to the output directory. See docs/demo.md.

Exit status: 0 every moment happened and nothing was lost; 1 something did not happen or was
lost (the summary says what); 2 bad usage or set-up failed; 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from rich.console import Console

    from tools.demo import summary
    from tools.demo.run import Demo, DemoError, Options
    from tools.demo.view import LiveDisplay, PlainDisplay
except ImportError as exc:  # rich, matplotlib or amqtt missing
    sys.exit(f"demo: {exc}; install the demo extra: pip install -e '.[demo]' (or run ./dev demo)")
from tools.broker import KINDS as BROKERS
from tools.broker import BrokerError
from tools.fleet.bridge import BridgeSetupError
from tools.procs import sigterm_as_interrupt

MIN_DURATION_S = 30.0
MIN_DEVICES = 4  # one household: a phone, a wearable, a fridge and an EV


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--duration", type=float, default=90.0, help="seconds the fleet runs (90)")
    p.add_argument("--devices", type=int, default=20, help="devices, 4 to a household (20)")
    p.add_argument("--seed", type=int, default=7, help="seed of the devices' physics (7)")
    p.add_argument("--out", type=Path, help="output directory (default out/demo-<timestamp>)")
    p.add_argument(
        "--broker",
        default="auto",
        choices=BROKERS,
        help="auto: Mosquitto when installed, else the embedded broker (MQTT 3.1.1)",
    )
    p.add_argument(
        "--open-broker",
        action="store_true",
        help="run Mosquitto without passwords and ACLs (development only; a warning is logged); "
        "by default it runs with the bridge's broker accounts and ACLs",
    )
    p.add_argument("--interval", type=float, default=0.5, help="seconds between reports (0.5)")
    p.add_argument(
        "--no-live",
        action="store_true",
        help="plain progress lines instead of the live view (automatic without a terminal)",
    )
    args = p.parse_args(argv)
    if args.duration < MIN_DURATION_S:
        p.error(f"--duration must be at least {MIN_DURATION_S:.0f} seconds for every moment")
    if args.devices < MIN_DEVICES:
        p.error(f"--devices must be at least {MIN_DEVICES}: one household of every kind")
    if not 0.1 <= args.interval <= 5:
        p.error("--interval must be 0.1 to 5 seconds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out or Path("out") / time.strftime("demo-%Y%m%d-%H%M%S")
    opts = Options(
        duration_s=args.duration,
        devices=args.devices,
        seed=args.seed,
        out=out,
        broker=args.broker,
        interval_s=args.interval,
        open_broker=args.open_broker,
    )
    live = not args.no_live and sys.stdout.isatty()
    display = LiveDisplay(Console()) if live else PlainDisplay()
    demo = Demo(opts, display.show, display.progress)
    print(f"demo: {opts.devices} devices for {opts.duration_s:.0f} s; output in {out}", flush=True)
    try:
        with sigterm_as_interrupt():
            demo.set_up()
            # Printed before the live view takes the screen: the command works while we run.
            print(f"demo: watch the same broker live with: {demo.tap_command}", flush=True)
            demo.play()
            outcome = demo.finish()
    except KeyboardInterrupt:
        display.close()
        print("demo: interrupted; stopped every process", file=sys.stderr)
        return 130
    except (DemoError, BrokerError, BridgeSetupError) as exc:
        display.close()
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    finally:
        display.close()
        demo.abort()  # whatever still runs after an error; a no-op after a clean finish
    summary.write(outcome)
    print(summary.text(outcome), flush=True)
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    sys.exit(main())
