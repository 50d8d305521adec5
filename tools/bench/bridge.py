"""Bridge suite: throughput and latency of one `cloud-bridge run` process.

- Sustained verified-and-committed reports per second: N signed reports from 50 enrolled
  devices wait in the bridge's persistent session on a private Mosquitto; the bridge starts and
  the clock runs until the event log holds all N. Its peer is the same run's paho ceiling (one
  paho client that receives and unseals the same N reports, no database, no outputs): the goal
  is a ratio >= 0.6 on SQLite and >= 0.5 on PostgreSQL. Beside it, the same with FLEET_DEVICES
  enrolled devices sending round robin (every batch then touches as many devices as it has
  messages): the rate must stay within 15 % of the 50-device rate.
- Trigger-to-decision latency at 200 triggers/s: a publisher paces EV-tier triggers; a cloud-team
  subscriber times each signed decision from the moment its trigger was published.

On SQLite always; on PostgreSQL as well when CP_BENCH_PG_DSN (or CP_TEST_PG_DSN) is set.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import subprocess
import threading
import time
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_bridge.store import open_store
from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.topics import Channel
from tools.bench.common import Context, Figure, percentile, pg_schema
from tools.fleet.bridge import command, run_cli

ROOT = Path(__file__).resolve().parents[2]
FLEET = "bench"
SHA = bytes(32)
DEVICES = 50
FLEET_DEVICES = 10_000
RATIO_GOAL = {"SQLite": 0.6, "PostgreSQL": 0.5}  # of the paho receive + unseal ceiling
FLEET_DROP_MAX = 0.15


def _bare_verify_rate(seconds: float) -> float:
    key = nacl.signing.SigningKey(bytes(range(32)))
    msg = b"x" * 200
    sig = key.sign(msg).signature
    vk = key.verify_key
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            vk.verify(msg, sig)
        n += 200
    return n / (time.perf_counter() - start)


class Setup:
    """A bridge data directory with `devices` enrolled devices and their keys."""

    def __init__(self, ctx: Context, port: int, pg_dsn: str | None, devices: int = DEVICES) -> None:
        self.data = ctx.workdir / f"bridge-{secrets.token_hex(3)}"
        self._cleanup = contextlib.ExitStack()  # every setup starts empty, and is dropped after
        store_url = self._cleanup.enter_context(pg_schema(pg_dsn)) if pg_dsn else None
        run_cli(
            "cloud-bridge",
            "init",
            "--data",
            str(self.data),
            "--fleet",
            FLEET,
            "--mqtt-url",
            f"mqtt://127.0.0.1:{port}",
        )
        self.store_url = store_url or str(self.data / "bridge.sqlite3")
        store_line = f'dsn = "{store_url}"' if store_url else 'path = "bridge.sqlite3"'
        (self.data / "bridge.toml").write_text(
            f'[bridge]\nid = "bench-1"\nfleet = "{FLEET}"\n\n[mqtt]\n'
            f'url = "mqtt://127.0.0.1:{port}"\n\n[store]\n{store_line}\n'
        )
        self.keys = {f"dev-{i:05d}": nacl.signing.SigningKey.generate() for i in range(devices)}
        from cloud_bridge.pool.commands import OpenPool
        from cloud_bridge.pool.service import PoolService
        from cloud_bridge.registry import Registry

        with open_store(self.store_url) as store:
            with store.transaction() as tx:
                registry = Registry()
                for device, key in self.keys.items():
                    record = m.Enrollment(
                        sender=device,
                        seq=1,
                        boot=0,
                        ts_ms=1,
                        fleet=FLEET,
                        device_kind="ev",
                        public_key=bytes(key.verify_key),
                    )
                    registry.enroll(
                        tx, envelope.seal(record, key), f"user-{device}", 1, fleet=FLEET
                    )
            service = PoolService(store)
            service.execute_many(
                [OpenPool(user=f"user-{d}", key="open", limit_fen=10**8) for d in self.keys]
            )
        self.port = port
        self.bridge_key = nacl.signing.VerifyKey(
            bytes.fromhex(
                json.loads(run_cli("cloud-bridge", "init", "--data", str(self.data), "--json"))[
                    "public_key"
                ]
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 120) -> None:
        """Start the bridge and wait until it says online: its subscriptions (and on the first
        start its persistent session) are in place then, since it subscribes before it
        announces itself. A fixed wait is not enough on a busy machine, where loading the
        bridge can take seconds: messages queued before its session exists are lost."""
        online = threading.Event()
        state_topic = topics.bridge_state(FLEET)

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            with contextlib.suppress(ProtocolError):
                _s, state = envelope.unseal(bytes(msg.payload), lambda kid: self.bridge_key)
                if isinstance(state, m.BridgeState) and state.online:
                    online.set()

        watch = mqtt.Client(CallbackAPIVersion.VERSION2)
        watch.on_message = on_message
        watch.connect("127.0.0.1", self.port)
        watch.subscribe(state_topic, qos=1)
        watch.loop_start()
        try:
            self._launch()
            if not online.wait(timeout_s):
                raise RuntimeError(f"the bridge did not say online in {timeout_s:.0f} s")
        finally:
            watch.loop_stop()
            watch.disconnect()

    def _launch(self) -> None:
        self.log = open(self.data / "bridge.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *command("cloud-bridge"),
                "run",
                "--data",
                str(self.data),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            stdout=self.log,
            stderr=self.log,
        )

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(30)
            self.proc = None
            self.log.close()

    def close(self) -> None:
        self.stop()
        self._cleanup.close()

    def events(self) -> int:
        with open_store(self.store_url) as store, store.transaction() as tx:
            return int(tx.scalar("SELECT count(*) FROM events"))


def _report(device: str, seq: int) -> m.Report:
    return m.Report(
        sender=device,
        seq=seq,
        boot=1,
        ts_ms=seq,
        model_id="risk-v1",
        model_sha256=SHA,
        risk_pm=10,
        features=bytes(20),
        mono_ms=seq,
        fingerprint={i: i * 1000 for i in range(24)},
        telemetry={"km_30d": 900},
    )


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _throughput(
    ctx: Context, port: int, store_url: str | None, n: int, devices: int = DEVICES
) -> tuple[float, float]:
    """(reports stored per second, bridge CPU seconds per report), both from its first stored
    event. CPU time is what other processes on a busy machine disturb least."""
    ctx.progress(f"enrolling {devices} devices")
    setup = Setup(ctx, port, store_url, devices)
    try:
        ctx.progress(f"signing {n} reports")
        batch = _signed_batch(setup.keys, n)
        setup.start()  # creates the bridge's persistent session and subscriptions
        setup.stop()
        ctx.progress("queueing them on the broker while the bridge is down")
        _queue(port, batch)
        setup.start()
        launched = time.perf_counter()
        ctx.progress("bridge draining")
        assert setup.proc is not None
        pid = setup.proc.pid
        first: tuple[float, int, float] | None = None  # the clock starts at the first stored event
        while (stored := setup.events()) < len(batch):
            now = time.perf_counter()
            if first is None and stored:
                first = (now, stored, _proc_cpu_s(pid))
            if now - launched > 300:
                raise RuntimeError(f"bridge stored {stored} of {len(batch)} in 300 s")
            time.sleep(0.05)
        done, cpu = time.perf_counter(), _proc_cpu_s(pid)
        start, before, cpu0 = first or (launched, 0, 0.0)
        return (len(batch) - before) / (done - start), (cpu - cpu0) / (len(batch) - before)
    finally:  # a failed run must not leave its bridge running nor its schema behind
        setup.close()


def _signed_batch(keys: dict[str, nacl.signing.SigningKey], n: int) -> list[tuple[str, bytes]]:
    """n signed reports, round robin over the devices, each device's numbers from 1."""
    return [
        (topics.device(FLEET, d, Channel.REPORT), envelope.seal(_report(d, s), k))
        for s in range(1, n // len(keys) + 1)
        for d, k in keys.items()
    ]


def _queue(port: int, batch: list[tuple[str, bytes]]) -> None:
    """Publish every (topic, payload) at QoS 1 and wait until the broker has them all."""
    pub = _publisher(port)
    for info in [pub.publish(t, p, qos=1) for t, p in batch]:
        info.wait_for_publish(60)
    pub.loop_stop()
    pub.disconnect()


def _ceiling_batch(n: int) -> tuple[list[tuple[str, bytes]], dict[bytes, nacl.signing.VerifyKey]]:
    """n reports signed by DEVICES fresh keys, and those keys by kid."""
    keys = {f"dev-{i:03d}": nacl.signing.SigningKey.generate() for i in range(DEVICES)}
    return _signed_batch(keys, n), {cose.kid_for(k.verify_key): k.verify_key for k in keys.values()}


def _paho_ceiling(
    port: int,
    batch: list[tuple[str, bytes]],
    by_kid: dict[bytes, nacl.signing.VerifyKey],
    verify: bool,
) -> tuple[float, float]:
    """What one paho-mqtt process can take in at all: the same signed reports drained from a
    persistent session at QoS 1 into a callback that only unseals each one (COSE verify and
    decode, no database, no outputs), or that does nothing. No bridge can be faster than this
    in one process with paho-mqtt as its client, so it bounds the bridge's ratio."""
    done = threading.Event()
    count = 0

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        nonlocal count
        if verify:
            envelope.unseal(msg.payload, by_kid.__getitem__)
        count += 1
        if count == len(batch):
            done.set()

    client_id = f"ceiling-{secrets.token_hex(3)}"

    def client() -> mqtt.Client:
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        c.on_message = on_message
        return c

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 600
    sub = client()
    sub.connect("127.0.0.1", port, clean_start=True, properties=props)
    sub.subscribe(f"cp/v1/{FLEET}/+/report", qos=1)
    sub.loop(2)
    sub.disconnect()
    _queue(port, batch)
    sub = client()
    start, cpu0 = time.perf_counter(), _self_cpu_s()
    sub.connect("127.0.0.1", port, clean_start=False, properties=props)
    sub.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"the ceiling subscriber took {count} of {len(batch)} in 300 s")
    rate = len(batch) / (time.perf_counter() - start)
    cpu = (_self_cpu_s() - cpu0) / len(batch)  # the waiting main thread takes next to none
    sub.loop_stop()
    sub.disconnect()
    return rate, cpu


def _unseal_ceiling(ctx: Context, n: int) -> tuple[float, float]:
    """The receive + unseal ceiling on a broker of its own (see `_paho_ceiling`)."""
    with ctx.mosquitto(f"paho-ceiling-{secrets.token_hex(2)}") as (_host, port):
        batch, by_kid = _ceiling_batch(n)
        return _paho_ceiling(port, batch, by_kid, verify=True)


def _latency(
    ctx: Context, port: int, store_url: str | None, rate: int, seconds: float
) -> list[float]:
    setup = Setup(ctx, port, store_url)
    setup.start()
    sent: dict[tuple[str, int], float] = {}
    got: dict[tuple[str, int], float] = {}
    bridge_key = setup.bridge_key
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        _s, decision = envelope.unseal(msg.payload, lambda kid: bridge_key)
        assert isinstance(decision, m.Decision)
        with lock:
            got.setdefault((decision.device, decision.device_seq), now)

    sub = mqtt.Client(CallbackAPIVersion.VERSION2)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe(f"cp/v1/{FLEET}/pool/+/decision", qos=1)
    sub.loop_start()
    pub = _publisher(port)
    devices = list(setup.keys.items())
    warmup = rate  # the first second warms caches and connections; not measured
    total = int(rate * seconds) + warmup
    ctx.progress(f"{total} triggers at {rate}/s (the first {warmup} warm up)")
    start = time.perf_counter()
    for i in range(total):
        device, key = devices[i % len(devices)]
        seq = i // len(devices) + 1
        trig = m.Trigger(
            sender=device,
            seq=seq,
            boot=1,
            ts_ms=i,
            model_id="risk-v1",
            model_sha256=SHA,
            risk_pm=10,
            mono_ms=i,
            rule="ev-tier",
            priority=2,
            body=m.EvTierBody(km_30d=500 + seq, tier=1),
        )
        data = envelope.seal(trig, key)
        target = start + i / rate
        while (delay := target - time.perf_counter()) > 0:
            time.sleep(min(delay, 0.002))
        with lock:
            sent[(device, seq)] = time.perf_counter()
        pub.publish(topics.device(FLEET, device, Channel.TRIGGER), data, qos=1)
    deadline = time.perf_counter() + 30
    while len(got) < total and time.perf_counter() < deadline:
        time.sleep(0.05)
    pub.loop_stop()
    sub.loop_stop()
    setup.close()
    if len(got) < total:
        raise RuntimeError(f"only {len(got)} of {total} decisions arrived")
    order = sorted(sent, key=sent.__getitem__)[warmup:]
    return [(got[k] - sent[k]) * 1000 for k in order]


def run(ctx: Context) -> list[Figure]:
    n = 4000 if ctx.quick else 20000
    figures: list[Figure] = []
    bare = _bare_verify_rate(0.5 if ctx.quick else 2.0)
    figures.append(
        Figure(
            "bridge",
            "bare PyNaCl Ed25519 verify (same run)",
            bare,
            "ops/s",
            note="one core, the peer of the rates below",
        )
    )
    with ctx.mosquitto("paho-ceiling") as (_host, port):
        ctx.progress("paho ceiling: receive only, then receive and unseal")
        batch, by_kid = _ceiling_batch(n)
        receive, _cpu = _paho_ceiling(port, batch, by_kid, verify=False)
        unseal, unseal_cpu = _paho_ceiling(port, batch, by_kid, verify=True)
    figures.append(
        Figure(
            "bridge",
            "ceiling: paho QoS 1 receive, nothing else",
            receive,
            "msg/s",
            note=f"{n} queued reports drained by one paho-mqtt client, one process",
        )
    )
    figures.append(
        Figure(
            "bridge",
            "ceiling: paho QoS 1 receive + unseal (verify, decode)",
            unseal,
            "msg/s",
            peer=f"{unseal / bare:.2f} of bare verify",
            note="no database, no outputs: no one-process paho bridge can pass this ratio",
        )
    )
    stores: list[tuple[str, str | None]] = [("SQLite", None)]
    dsn = ctx.pg_dsn or os.environ.get("CP_TEST_PG_DSN")
    if dsn:
        stores.append(("PostgreSQL", dsn))
    fleet = FLEET_DEVICES // 10 if ctx.quick else FLEET_DEVICES
    before, before_cpu = unseal, unseal_cpu  # the ceiling is measured again after every
    for name, url in stores:  # bridge run: each rate is compared with the ceilings around it
        ratios, cpu_ratios = {}, {}
        for devices in (DEVICES, fleet):
            with ctx.mosquitto(f"bridge-{name}-{devices}") as (_host, port):
                rate, cpu = _throughput(ctx, port, url, n, devices)
            ctx.progress("paho ceiling again")
            after, after_cpu = _unseal_ceiling(ctx, n)
            ceiling, before = (before + after) / 2, after
            ceiling_cpu, before_cpu = (before_cpu + after_cpu) / 2, after_cpu
            ratios[devices] = rate / ceiling
            cpu_ratios[devices] = ceiling_cpu / cpu
            figures.append(
                Figure(
                    "bridge",
                    f"verified + committed reports/s ({name}, {devices} devices)",
                    rate,
                    "msg/s",
                    peer=f"{rate / bare:.2f} of bare verify",
                    note=f"{n} reports, {devices} devices round robin, one process, "
                    "from its first stored event",
                )
            )
            figures.append(
                Figure(
                    "bridge",
                    f"bridge rate / paho unseal ceiling ({name}, {devices} devices)",
                    ratios[devices],
                    "ratio",
                    target=f">= {RATIO_GOAL[name]}" if devices == DEVICES else None,
                    peer=f"ceiling {ceiling:.0f} msg/s, the mean of the runs before and after",
                )
            )
            figures.append(
                Figure(
                    "bridge",
                    f"CPU per report, paho unseal ceiling / bridge ({name}, {devices} devices)",
                    cpu_ratios[devices],
                    "ratio",
                    peer=f"bridge process {cpu * 1e6:.0f} us, ceiling {ceiling_cpu * 1e6:.0f} us",
                    note="CPU seconds of each process per report: what other processes on a "
                    "busy machine disturb least",
                )
            )
        figures.append(
            Figure(
                "bridge",
                f"fleet growth: rate lost with {fleet} devices against {DEVICES} ({name})",
                1 - ratios[fleet] / ratios[DEVICES],
                "fraction",
                target=f"<= {FLEET_DROP_MAX}",
                note="from the two ratios to the ceiling; every message of a batch is then "
                "from another device",
            )
        )
        figures.append(
            Figure(
                "bridge",
                f"fleet growth in CPU per report: {fleet} devices against {DEVICES} ({name})",
                1 - cpu_ratios[fleet] / cpu_ratios[DEVICES],
                "fraction",
                note="from the two CPU ratios to the ceiling",
            )
        )
        with ctx.mosquitto(f"latency-{name}") as (_host, port):
            lat = _latency(ctx, port, url, 200, 5 if ctx.quick else 15)
        figures.append(
            Figure("bridge", f"trigger->decision p50 at 200/s ({name})", percentile(lat, 50), "ms")
        )
        figures.append(
            Figure(
                "bridge",
                f"trigger->decision p99 at 200/s ({name})",
                percentile(lat, 99),
                "ms",
                target="<= 50",
                note="source product promises 3 s",
            )
        )
    return figures
