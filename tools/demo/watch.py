"""The demo's window on the broker: one MQTT subscriber that sees what the cloud team sees.

It counts device reports and triggers as they cross the broker (no decoding: only the rate
matters), and verifies and decodes everything the bridge publishes (decisions, pool states,
risk notes, bridge state) with the bridge key, through the key lookup of tools.tap. Everything
is kept in memory, per second since the run started, for the live view, the moments, the
summary and the chart. paho's network thread writes; readers take `snapshot()` under the lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol import envelope, topics
from protocol import messages as m
from protocol.errors import ProtocolError
from protocol.topics import Channel
from tools.tap import Keys

Hook = Callable[[float, m.Message], None]
"""hook(seconds since the start, a verified bridge message), called on paho's thread."""


@dataclass(frozen=True)
class Pool:
    """The latest published state of one pool."""

    user: str
    status: str
    limit_fen: int
    available_fen: int
    outstanding_fen: int
    held_fen: int
    rate_bps: int
    version: int


@dataclass
class Record:
    """Everything seen so far. Lists indexed by second since the start grow as time passes."""

    reports: list[int] = field(default_factory=list)  # reports and triggers seen, per second
    decisions: list[int] = field(default_factory=list)  # decisions seen, per second
    latency: list[tuple[float, float]] = field(default_factory=list)  # (t, ms) per decision
    by_outcome: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, result)
    verdicts: Counter[str] = field(default_factory=Counter)  # allow, step_up, hold, freeze
    risk: Counter[tuple[str, str]] = field(default_factory=Counter)  # (category, reason)
    pools: dict[str, Pool] = field(default_factory=dict)
    pool_history: list[tuple[float, Pool]] = field(default_factory=list)
    bridge_online: bool = False
    connected: bool = False
    unverified: int = 0  # bridge-side messages that did not verify (should stay 0)


def _bump(series: list[int], second: int, by: int = 1) -> None:
    if second < 0:
        return
    if len(series) <= second:
        series.extend([0] * (second + 1 - len(series)))
    series[second] += by


class Watcher:
    """Subscribe to a fleet's whole topic tree; `start()`, then read `snapshot()`; `stop()`."""

    def __init__(
        self,
        url: str,
        protocol: str,
        fleet: str,
        bridge_key: bytes,
        t0: float,
        login: tuple[str, str] | None = None,
    ) -> None:
        """`login`: (username, password) of an observer account on a secured broker."""
        self.fleet = fleet
        self.t0 = t0  # time.time() of the start: seconds in the record count from here
        self.keys = Keys(bridge_key, None)
        self.record = Record()
        self.hooks: list[Hook] = []
        self._lock = threading.Lock()
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 1883
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"demo-watch-{int(t0 * 1000) % 10**9}",
            protocol=MQTTProtocolVersion.MQTTv5
            if protocol == "5"
            else MQTTProtocolVersion.MQTTv311,
            clean_session=None if protocol == "5" else False,  # MQTT 5: the session expiry
        )
        self.client.reconnect_delay_set(1, 2)  # back quickly after the broker restart
        if login is not None:
            self.client.username_pw_set(*login)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def seed_pools(self, pools: list[Pool]) -> None:
        """Pools as they were before the bridge published anything about them."""
        with self._lock:
            for pool in pools:
                self._pool(0.0, pool)

    def start(self) -> None:
        # A session that outlives a disconnect, with QoS 1 subscriptions: what the bridge
        # publishes while this watcher is away (the broker restart moment) is queued for it,
        # not lost, so a decision made then still counts for its moment.
        if self.client.protocol == MQTTProtocolVersion.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
            self.client.connect_async(self._host, self._port, keepalive=10, properties=props)
        else:
            self.client.connect_async(self._host, self._port, keepalive=10)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def now(self) -> float:
        return time.time() - self.t0

    # ---- paho's thread ------------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            return
        # The whole tree of this fleet, as tools.tap subscribes to it.
        client.subscribe(f"{topics.PREFIX}/{self.fleet}/#", qos=1)
        with self._lock:
            self.record.connected = True

    def _on_disconnect(self, *_: Any) -> None:
        with self._lock:
            self.record.connected = False

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        t = self.now()
        second = int(t)
        try:
            channel = topics.parse(msg.topic).channel
        except ProtocolError:
            return
        if channel in (Channel.REPORT, Channel.TRIGGER):
            with self._lock:
                _bump(self.record.reports, second)
            return
        if channel not in (
            Channel.POOL_DECISION,
            Channel.POOL_STATE,
            Channel.POOL_PAYOUT,
            Channel.RISK,
            Channel.BRIDGE_STATE,
        ):
            return  # births, deaths, acks, commands: not part of the picture
        try:
            _signed, message = envelope.unseal(bytes(msg.payload), self.keys.resolve)
        except ProtocolError:
            with self._lock:
                self.record.unverified += 1
            return
        with self._lock:
            self._apply(t, message)
            hooks = list(self.hooks)
        for hook in hooks:
            hook(t, message)

    def _apply(self, t: float, message: m.Message) -> None:
        rec = self.record
        if isinstance(message, m.Decision):
            _bump(rec.decisions, int(t))
            rec.by_outcome[(message.action, message.result)] += 1
            rec.verdicts[message.decision] += 1
            if message.received_ms:
                ms = (self.t0 + t) * 1000 - message.received_ms
                rec.latency.append((t, max(0.0, ms)))
        elif isinstance(message, m.PoolState):
            self._pool(
                t,
                Pool(
                    message.user,
                    message.status,
                    message.limit_fen,
                    message.available_fen,
                    message.outstanding_fen,
                    message.held_fen,
                    message.rate_bps,
                    message.version,
                ),
            )
        elif isinstance(message, m.Risk):
            rec.risk[(message.category, message.reason)] += 1
        elif isinstance(message, m.BridgeState):
            rec.bridge_online = message.online

    def _pool(self, t: float, pool: Pool) -> None:
        old = self.record.pools.get(pool.user)
        if old is not None and old.version > pool.version:
            return  # a retained state delivered again after a reconnect, older than ours
        self.record.pools[pool.user] = pool
        self.record.pool_history.append((t, pool))

    # ---- readers ------------------------------------------------------------------------------

    def snapshot(self) -> Record:
        """A copy that the caller may read at leisure."""
        with self._lock:
            r = self.record
            return Record(
                reports=list(r.reports),
                decisions=list(r.decisions),
                latency=list(r.latency),
                by_outcome=Counter(r.by_outcome),
                verdicts=Counter(r.verdicts),
                risk=Counter(r.risk),
                pools=dict(r.pools),
                pool_history=list(r.pool_history),
                bridge_online=r.bridge_online,
                connected=r.connected,
                unverified=r.unverified,
            )


def rate(series: list[int], now_s: float, window_s: int = 3) -> float:
    """Mean per second over the last `window_s` whole seconds."""
    end = int(now_s)
    start = max(0, end - window_s)
    span = end - start
    return sum(series[start:end]) / span if span else 0.0


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]
