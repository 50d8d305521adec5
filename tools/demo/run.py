"""One demo run: set up, play the script, tear down, check, summarise.

    set up     broker, `cloud-bridge init` + `cloud-bridge run` on SQLite, the fleet (provisioned,
               enrolled, pools opened), the watcher; then every agent as `edge-agent run`
    script     at 15 % of the run an emergency on the first household's phone; at 35 % the
               broker stops for a few seconds; at 60 % a clone of the last household's phone
               key starts (and stops once caught); restock, health and EV moments come by
               themselves
    tear down  clone, agents (each says goodbye), bridge once it is quiet, watcher, broker
    check      zero loss per device, every moment seen

Every child process goes through one Supervisor, so an error or Ctrl-C anywhere stops them all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tools.broker import Broker, Mosquitto, mosquitto_binary, open_broker
from tools.demo import chart, summary
from tools.demo.moments import Moments
from tools.demo.view import Frame
from tools.demo.watch import Pool, Watcher
from tools.fleet import loss
from tools.fleet.bridge import TAP, WATCHER, Bridge, BrokerAuth
from tools.fleet.devices import Device, DeviceStatus, Progress, clone, set_up, start_all, stop_all
from tools.fleet.plan import KINDS, DeviceSpec, Tuning, households, plan
from tools.procs import Supervisor

FLEET = "demo"
EMERGENCY_FEN = 88_800  # 888 yuan: an amount no fall detection asks for, so it is recognisable
BROKER_DOWN_S = 3.0
TICK_S = 0.25


log = logging.getLogger("demo")


class DemoError(RuntimeError):
    """The demo cannot go on (a process died, set-up failed); the message says why."""


@dataclass
class Options:
    duration_s: float = 90.0
    devices: int = 20
    seed: int = 7
    out: Path = Path("out/demo")
    broker: str = "auto"
    interval_s: float = 0.5
    day_s: float = 3.0
    open_broker: bool = False  # True: no passwords or ACLs (development only)


@dataclass
class Cues:
    """When the script acts, in seconds since the agents started."""

    emergency_s: float
    restart_s: float
    clone_s: float

    @classmethod
    def for_duration(cls, duration_s: float) -> Cues:
        return cls(0.15 * duration_s, 0.35 * duration_s, 0.6 * duration_s)


@dataclass
class State:
    """What the script has done so far."""

    phase: str = "setting up"  # then running, then stopping (Demo.phase() says more)
    t0: float = 0.0  # time.time() when the agents were started
    emergency_done: bool = False
    down_at: float | None = None
    up_at: float | None = None
    marks: dict[str, int] = field(default_factory=dict)  # last seq per device at the stop
    clone: Device | None = None
    clone_stopped: bool = False


class Demo:
    def __init__(self, opts: Options, show: Callable[[Frame], None], progress: Progress) -> None:
        self.opts = opts
        self.show = show
        self.progress = progress
        self.sup = Supervisor()
        self.moments = Moments()
        self.state = State()
        self.cues = Cues.for_duration(opts.duration_s)
        self.specs: list[DeviceSpec] = plan(opts.devices, KINDS, opts.seed)
        self.devices: list[Device] = []
        self.broker: Broker | None = None
        self.bridge: Bridge | None = None
        self.watcher: Watcher | None = None
        self.tuning = Tuning(interval_s=opts.interval_s, day_s=opts.day_s)
        self.started_wall = time.monotonic()

    # ---- set-up -------------------------------------------------------------------------------

    @property
    def broker_label(self) -> str:
        b = self.broker
        return f"{b.name} (MQTT {b.protocol}) {b.url}" if b else "(none)"

    @property
    def tap_command(self) -> str:
        url = self.broker.url if self.broker else "?"
        login = ""
        if self.bridge is not None and self.bridge.watcher_password is not None:
            login = f" --username {TAP} --password-file {self.bridge.data / (TAP + '.pass')}"
        return f"python -m tools.tap --url {url} --data {self.opts.out / 'bridge'}{login}"

    def set_up(self) -> None:
        out = self.opts.out
        out.mkdir(parents=True, exist_ok=True)
        self.progress("starting the broker", 0, 1)
        secure = not self.opts.open_broker and (
            self.opts.broker == "mosquitto" or (self.opts.broker == "auto" and mosquitto_binary())
        )
        if not secure:
            log.warning(
                "demo: the broker is open (no passwords, no ACLs): anyone on this machine may "
                "publish on it; %s",
                "as asked (--open-broker)" if self.opts.open_broker else "the embedded broker",
            )
        auth_dir = (out / "broker-auth").resolve() if secure else None
        self.broker = open_broker(self.opts.broker, out / "broker", auth_dir=auth_dir)
        self.broker.start()
        self.tuning = Tuning(
            interval_s=self.opts.interval_s,
            day_s=self.opts.day_s,
            protocol=self.broker.protocol,
            credentials=secure,
        )
        self.progress(f"broker up: {self.broker_label}", 1, 1)
        auth = None
        if isinstance(self.broker, Mosquitto) and auth_dir is not None:
            auth = BrokerAuth(auth_dir, self.broker.pid_file)
        self.bridge = Bridge.create(
            out / "bridge", FLEET, self.broker.url, self.broker.protocol, auth=auth
        )
        self.bridge.start(self.sup)
        self.progress("bridge started (cloud-bridge run, SQLite)", 1, 1)
        self.devices = set_up(
            self.specs, out / "devices", self.bridge, self.broker.url, self.tuning, self.progress
        )
        self.watcher = Watcher(
            self.broker.url,
            self.broker.protocol,
            FLEET,
            bytes.fromhex(self.bridge.public_key_hex),
            time.time(),
            login=None if auth is None else (WATCHER, self.bridge.watcher_password or ""),
        )
        self.watcher.hooks.append(self.moments.on_message)
        self.watcher.seed_pools(
            [
                Pool(p.user, p.status.value, p.limit_fen, p.available_fen, p.outstanding_fen,
                     p.held_fen, p.rate_bps, p.version)
                for p in self.bridge.pools()
            ]
        )  # fmt: skip
        self.watcher.start()
        self._wait_bridge_online()
        self.state.t0 = self.watcher.t0 = time.time()
        start_all(self.devices, self.sup)
        self.state.phase = "running"

    def _wait_bridge_online(self, timeout_s: float = 20) -> None:
        assert self.watcher is not None and self.bridge is not None
        deadline = time.monotonic() + timeout_s
        while not self.watcher.snapshot().bridge_online:
            self._check_bridge()
            if time.monotonic() > deadline:
                raise DemoError(f"the bridge did not come online:\n{self.bridge.log_tail()}")
            time.sleep(0.1)

    # ---- the script ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.time() - self.state.t0

    def play(self) -> None:
        """Run the script until the duration is over, showing a frame every tick."""
        while (t := self.elapsed()) < self.opts.duration_s:
            self._check_bridge()
            statuses = {d.device_id: d.status() for d in self.devices}
            fleet_up = all(s.link == "connected" for s in statuses.values())
            self._step(t, statuses, fleet_up)
            self.show(self.frame(statuses))
            time.sleep(TICK_S)

    def _step(self, t: float, statuses: dict[str, DeviceStatus], fleet_up: bool) -> None:
        st, cues = self.state, self.cues
        # The emergency waits for the whole fleet to be connected, but not for ever: the
        # later cues follow it, and a missing device must not hold up the rest of the script.
        if not st.emergency_done and t >= cues.emergency_s and (fleet_up or t >= cues.restart_s):
            self._emergency()
        if st.down_at is None and t >= cues.restart_s and st.emergency_done:
            self._broker_down()
        elif st.down_at is not None and st.up_at is None and t >= st.down_at + BROKER_DOWN_S:
            self._broker_up()
        elif st.up_at is not None and self.moments.recovered_s is None:
            self._check_recovered()
        if st.clone is None and t >= cues.clone_s and st.up_at is not None:
            self._start_clone()
        caught = self.moments.get("clone").state == "done"
        if st.clone is not None and not st.clone_stopped and caught:
            if st.clone.proc is not None:
                self.sup.stop(st.clone.proc)  # the copied board is taken away
            st.clone_stopped = True

    def _emergency(self) -> None:
        device = self.devices[0]  # the first household's phone
        self.moments.arm_emergency(self.elapsed(), device.device_id, EMERGENCY_FEN)
        raised_ns = device.emergency("illness", EMERGENCY_FEN)
        # The trigger counts from the moment the event is on the device (the spool file's
        # time), not from the start-up of the command that put it there.
        self.moments.cue("emergency", raised_ns / 1e9 - self.state.t0)
        self.state.emergency_done = True

    def _broker_down(self) -> None:
        assert self.broker is not None
        st = self.state
        st.marks = {d.device_id: d.status().last_seq for d in self.devices}
        st.down_at = self.elapsed()
        self.moments.arm_restart(st.down_at)
        self.broker.stop()

    def _broker_up(self) -> None:
        assert self.broker is not None
        self.broker.start()
        self.state.up_at = self.elapsed()
        self.moments.restart_note(
            f"broker down {self.state.up_at - (self.state.down_at or 0):.1f} s; fleet reconnecting"
        )

    def _check_recovered(self) -> None:
        behind = [
            d.device_id
            for d in self.devices
            if (s := d.status()).link != "connected"
            or s.acked < self.state.marks.get(d.device_id, 0)
        ]
        if not behind:
            t = self.elapsed()
            down = self.state.down_at or 0.0
            self.moments.recovered(
                t,
                f"all {len(self.devices)} devices back and acked past their marks "
                f"{t - down:.1f} s after the stop; zero loss checked at the end",
            )

    def _start_clone(self) -> None:
        assert self.bridge is not None and self.broker is not None
        phones = [d for d in self.devices if d.spec.kind == "phone"]
        target = phones[-1] if len(phones) > 1 else self.devices[-1]
        twin = clone(
            target,
            self.opts.out / "devices",
            self.bridge,
            self.broker.url,
            self.tuning,
            seed=target.spec.seed + 999_983,
        )
        self.moments.arm_clone(self.elapsed(), target.device_id, target.spec.user)
        twin.start(self.sup)
        self.state.clone = twin

    def phase(self) -> str:
        """What the script is doing now, in a few words, for the view."""
        st = self.state
        if st.phase != "running":
            return st.phase  # setting up, stopping
        if st.down_at is not None and st.up_at is None:
            return "broker down"
        if st.up_at is not None and self.moments.recovered_s is None:
            return "fleet reconnecting"
        if st.clone is not None and not st.clone_stopped:
            return "clone running"
        if self.moments.get("emergency").state == "armed":
            return "emergency raised"
        return "running"

    def _check_bridge(self) -> None:
        bridge = self.bridge
        if bridge is not None and bridge.proc is not None and bridge.proc.poll() is not None:
            raise DemoError(
                f"the bridge exited with code {bridge.proc.returncode}:\n{bridge.log_tail()}"
            )

    def frame(self, statuses: dict[str, DeviceStatus] | None = None) -> Frame:
        assert self.watcher is not None
        rows = []
        for d in self.devices:
            s = statuses.get(d.device_id) if statuses else None
            rows.append((d.spec, s if s is not None else d.status()))
        clone = self.state.clone
        return Frame(
            elapsed_s=min(self.elapsed(), self.opts.duration_s),
            duration_s=self.opts.duration_s,
            phase=self.phase(),
            broker=self.broker_label,
            broker_up=bool(self.broker and self.broker.running),
            devices=rows,
            record=self.watcher.snapshot(),
            moments=self.moments.all(),
            tap=self.tap_command,
            clone=clone.device_id if clone is not None and not self.state.clone_stopped else "",
        )

    # ---- the end ------------------------------------------------------------------------------

    def finish(self) -> summary.Outcome:
        """Stop everything in order, check zero loss, draw the chart; the outcome."""
        assert self.bridge is not None and self.watcher is not None
        st = self.state
        st.phase = "stopping"
        self.show(self.frame())
        if st.clone is not None and st.clone.proc is not None:
            self.sup.stop(st.clone.proc)
        stop_all(self.devices, self.sup)
        self.bridge.wait_quiet(timeout_s=10)
        time.sleep(0.5)  # the last decisions on their way to the watcher
        self.bridge.stop(self.sup)
        record = self.watcher.snapshot()
        self.watcher.stop()
        events = self.bridge.event_seqs()
        holders = {d.device_id: [d.outbox_path] for d in self.devices}
        if st.clone is not None:
            holders[st.clone.device_id].append(st.clone.outbox_path)
        losses = loss.check(events, holders)
        zero = all(x.ok for x in losses)
        stored = sum(len(v) for v in events.values())
        recovered = self.moments.get("restart").detail
        self.moments.finish_restart(
            zero,
            recovered.replace("zero loss checked at the end", f"zero loss over {stored} events")
            if zero
            else recovered,
        )
        for moment in self.moments.all():
            if moment.state in ("waiting", "armed"):
                self.moments.fail(moment.key, "not seen within the run")
        if self.broker is not None:
            self.broker.close()
        moments = self.moments.all()
        reasons = [f"{m.title}: {m.failed}" for m in moments if m.state != "done"]
        if not zero:
            reasons.append(
                "zero loss failed: "
                + "; ".join(x.device_id + " " + x.problem for x in losses if not x.ok)
            )
        down = (st.down_at, st.up_at) if st.down_at is not None and st.up_at is not None else None
        png = chart.draw(
            record,
            moments,
            self.opts.duration_s,
            down,
            self.opts.out / "demo.png",
            f"credit-pool demo: {len(self.devices)} devices, {self.broker_label}, "
            f"seed {self.opts.seed}",
        )
        return summary.Outcome(
            devices=len(self.devices),
            households=households(len(self.specs)),
            duration_s=self.opts.duration_s,
            wall_s=time.monotonic() - self.started_wall,
            broker=self.broker_label,
            seed=self.opts.seed,
            moments=moments,
            record=record,
            losses=losses,
            events_stored=stored,
            chart=png,
            out=self.opts.out,
            tap=self.tap_command,
            reasons=reasons,
        )

    def abort(self) -> None:
        """Stop whatever runs, in a safe order, after an error or Ctrl-C."""
        if self.watcher is not None:
            self.watcher.stop()
        self.sup.close()
        if self.broker is not None:
            self.broker.close()
