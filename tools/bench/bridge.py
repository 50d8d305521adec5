"""Bridge suite: throughput and latency of one `cloud-bridge run` process.

- Sustained verified-and-committed reports per second: N signed reports from 50 enrolled
  devices (the normal path: `tools.bench.bridge_load`) wait in the bridge's persistent session
  on a private Mosquitto, after a first round of one report a device; the bridge starts, the
  clock runs from when it has stored that round until the event log holds them all, and the
  run fails if any report was refused or alerted on. Its peer is the same run's paho ceiling (one
  paho client that receives and unseals the same N reports, no database, no outputs): the goal
  is a ratio >= 0.6 on SQLite and >= 0.5 on PostgreSQL. Beside it, the same with FLEET_DEVICES
  enrolled devices sending round robin (every batch then touches as many devices as it has
  messages): the rate must stay within 15 % of the 50-device rate.
- Trigger-to-decision latency at 200 triggers/s: a publisher paces EV-tier triggers; a cloud-team
  subscriber times each signed decision from the moment its trigger was published.

On SQLite always; on PostgreSQL as well when CP_BENCH_PG_DSN (or CP_TEST_PG_DSN) is set.
"""

from __future__ import annotations

import os
import resource
import secrets
import threading
import time
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import cose, envelope, topics
from protocol import messages as m
from protocol.topics import Channel
from tools.bench.bridge_load import Fleet
from tools.bench.bridge_rig import FLEET, Alerts, Drained, Setup, publisher, queue
from tools.bench.common import Context, Figure, percentile

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


def _proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _throughput(ctx: Context, port: int, store_url: str | None, fleet: Fleet, n: int) -> Drained:
    """The bridge draining a backlog of `fleet`'s reports queued on the broker: its rate and
    CPU seconds per report over the last n, once every device has been seen (a device's first
    report after a start fills the bridge's caches of its key, topics and baseline; in a
    10,000-device run of two reports a device, that would be half of what is measured). CPU
    time is what other processes on a busy machine disturb least. Every report must be stored
    and none refused or alerted on: the workload is the normal path
    (`tools.bench.bridge_load`), and a run that took another one would not measure what it
    says."""
    ctx.progress(f"enrolling {len(fleet)} devices")
    setup = Setup(ctx, port, store_url, fleet)
    try:
        warm = len(fleet)  # round robin: the first round is each device's first report
        ctx.progress(f"signing {warm} + {n} reports")
        batch = fleet.signed(FLEET, warm + n)
        setup.start()  # creates the bridge's persistent session and subscriptions
        setup.stop()
        ctx.progress("queueing them on the broker while the bridge is down")
        queue(port, batch)
        with Alerts(port) as alerts:
            setup.start()
            launched = time.perf_counter()
            ctx.progress("bridge draining")
            assert setup.proc is not None
            pid = setup.proc.pid
            first: tuple[float, int, float] | None = None  # the clock starts after the first round
            while sum(counts := setup.counts()) < len(batch):
                now = time.perf_counter()
                if first is None and counts[0] >= warm:
                    first = (now, counts[0], _proc_cpu_s(pid))
                if now - launched > 300:
                    raise RuntimeError(f"bridge stored {counts[0]} of {len(batch)} in 300 s")
                time.sleep(0.05)
            done, cpu = time.perf_counter(), _proc_cpu_s(pid)
        stored, refused = counts
        if refused or alerts.count:
            raise RuntimeError(
                f"of {len(batch)} reports the bridge refused {refused} and alerted on "
                f"{alerts.count}: not the normal path this suite measures"
            )
        start, before, cpu0 = first or (launched, 0, 0.0)
        if stored - before < n // 2:
            raise RuntimeError(f"only {stored - before} reports after the first round: too few")
        return Drained((stored - before) / (done - start), (cpu - cpu0) / (stored - before))
    finally:  # a failed run must not leave its bridge running nor its schema behind
        setup.close()


def _ceiling_batch(n: int) -> tuple[list[tuple[str, bytes]], dict[bytes, nacl.signing.VerifyKey]]:
    """n reports of a fresh fleet of DEVICES, as the bridge gets them, and its keys by kid."""
    fleet = Fleet(DEVICES)
    keys = {cose.kid_for(d.key.verify_key): d.key.verify_key for d in fleet}
    return fleet.signed(FLEET, n), keys


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
    queue(port, batch)
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


def _unseal_ceiling(
    ctx: Context, batch: list[tuple[str, bytes]], by_kid: dict[bytes, nacl.signing.VerifyKey]
) -> tuple[float, float]:
    """The receive + unseal ceiling on a broker of its own (see `_paho_ceiling`)."""
    with ctx.mosquitto(f"paho-ceiling-{secrets.token_hex(2)}") as (_host, port):
        return _paho_ceiling(port, batch, by_kid, verify=True)


def _latency(
    ctx: Context, port: int, store_url: str | None, rate: int, seconds: float
) -> list[float]:
    fleet = Fleet(DEVICES)
    setup = Setup(ctx, port, store_url, fleet)
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
    pub = publisher(port)
    devices = list(fleet)
    wall_ms = time.time_ns() // 1_000_000
    warmup = rate  # the first second warms caches and connections; not measured
    total = int(rate * seconds) + warmup
    ctx.progress(f"{total} triggers at {rate}/s (the first {warmup} warm up)")
    start = time.perf_counter()
    for i in range(total):
        device = devices[i % len(devices)]
        seq = i // len(devices) + 1
        trig = m.Trigger(
            sender=device.device_id, seq=seq, boot=1, ts_ms=wall_ms + i * 1000 // rate,
            model_id=fleet.scorer.model_id, model_sha256=fleet.scorer.model_sha256, risk_pm=10,
            mono_ms=i * 1000 // rate, rule="ev-tier", priority=2,
            body=m.EvTierBody(km_30d=500 + seq, tier=1),
        )  # fmt: skip
        data = envelope.seal(trig, device.key)
        target = start + i / rate
        while (delay := target - time.perf_counter()) > 0:
            time.sleep(min(delay, 0.002))
        with lock:
            sent[(device.device_id, seq)] = time.perf_counter()
        pub.publish(topics.device(FLEET, device.device_id, Channel.TRIGGER), data, qos=1)
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
    large = FLEET_DEVICES // 10 if ctx.quick else FLEET_DEVICES
    before, before_cpu = unseal, unseal_cpu  # the ceiling is measured again after every
    for name, url in stores:  # bridge run: each rate is compared with the ceilings around it
        ratios, cpu_ratios = {}, {}
        for devices in (DEVICES, large):
            with ctx.mosquitto(f"bridge-{name}-{devices}") as (_host, port):
                drained = _throughput(ctx, port, url, Fleet(devices), n)
            rate, cpu = drained.rate, drained.cpu_s
            ctx.progress("paho ceiling again")
            after, after_cpu = _unseal_ceiling(ctx, batch, by_kid)
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
                    "after each device's first report",
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
                f"fleet growth: rate lost with {large} devices against {DEVICES} ({name})",
                1 - ratios[large] / ratios[DEVICES],
                "fraction",
                target=f"<= {FLEET_DROP_MAX}",
                note="from the two ratios to the ceiling; every message of a batch is then "
                "from another device",
            )
        )
        figures.append(
            Figure(
                "bridge",
                f"fleet growth in CPU per report: {large} devices against {DEVICES} ({name})",
                1 - cpu_ratios[large] / cpu_ratios[DEVICES],
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
