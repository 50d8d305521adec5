"""`cloud-bridge run`: the MQTT side of the bridge around the ingest pipeline.

The paho network thread only queues what arrives (bounded in messages and in bytes: when the
queue is full it waits, which pushes back on the broker instead of dropping; a payload over the
envelope limit is cut to a few bytes before it is queued, and refused unread). One worker
thread takes batches (up to `batch_max`, waiting at most `batch_wait_ms` for more), runs them
through `Ingest.process` in one transaction, then publishes the outputs; stored outputs are
deleted once the broker has acknowledged them, and any left by a crash are published again at
the next start. Between batches the worker prunes old rows when a round is due
(`cloud_bridge.retention`).

The bridge's retained state topic says online; its last will says offline. Several bridges of
one fleet share that topic: when one dies, the others see its offline state and say online
again at once, so devices pause for a moment at most. The bridge also watches its retained
topics against anyone who can publish on the broker (`cloud_bridge.retained` around the pure
`cloud_bridge.guard`): an empty, foreign or earlier state on the bridge state topic makes it
announce itself again; an empty, foreign or older pool state makes it publish the pool's
current state. Each session's announcement and
will are numbered as a pair (guard.StatePair) reserved ahead by the worker.
"""

from __future__ import annotations

import logging
import queue
import random
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import nacl.signing
import paho.mqtt.client as mqtt

import mqttc
from cloud_bridge import broker_cli, guard
from cloud_bridge.config import BridgeConfig
from cloud_bridge.fleet_desk import FleetDesk
from cloud_bridge.inbox import Inbox
from cloud_bridge.ingest import BatchResult, Inbound, Ingest, PayoutTiming
from cloud_bridge.metrics import Metrics
from cloud_bridge.outputs import Output, Outputs
from cloud_bridge.payouts import measure_payouts
from cloud_bridge.pool.policy import load_policy
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry
from cloud_bridge.retained import RetainedWatch
from cloud_bridge.retention import Pruner, Retention
from cloud_bridge.store import StoreConflict, open_store
from cloud_bridge.store import ingest_repo as repo
from protocol import messages as m
from protocol import topics

log = logging.getLogger(__name__)
TRANSIENT_RETRIES = 5
OPERATOR_POLL_S = 0.2
"""How often the worker looks for outputs of operator commands (cloud-bridge pool ...)."""
STEPUP_POLL_S = 0.5
"""How often the worker settles step-ups past their deadline (`step_up_expired`)."""


class BridgeServer:
    def __init__(self, cfg: BridgeConfig, key: nacl.signing.SigningKey) -> None:
        self.cfg = cfg
        self.key = key
        self.metrics = Metrics()
        self.store = open_store(cfg.store_url)
        self.registry = Registry()
        with self.store.transaction() as tx:
            self.registry.preload(tx)
        self.publisher = Publisher(cfg.instance, key, self.store)
        self.service = PoolService(self.store, policy=load_policy(cfg.policy_file))
        self.ingest = Ingest(self.store, self.registry, self.publisher, self.service, cfg)
        self.inbox: Inbox[Inbound] = Inbox(cfg.queue_max, cfg.queue_max_bytes)
        self.pruner = Pruner(self.store, Retention.of(cfg))
        self.fleet = FleetDesk(
            cfg, key, self.store, self.registry, self.publisher, self.metrics,
            lambda: broker_cli.sync(cfg, self.store),
        )  # fmt: skip
        self.connected = threading.Event()
        self._stopping = threading.Event()  # our own disconnect: not a lost connection
        self._announce = threading.Event()  # set from the network thread, served by the worker
        self._acked_outputs: list[tuple[str, int]] = []
        self._inflight: dict[int, tuple[str, int] | None] = {}  # mid -> stored row, if any
        self._early_mids: set[int] = set()
        self._republish = threading.Event()  # publish the outputs table again (reconnected)
        self._operator_due = 0.0  # monotonic time of the next look for operator outputs
        self._stepup_due = 0.0  # ... and of the next round of step-up expiry
        self._lock = threading.Lock()
        self.retained = RetainedWatch(cfg.fleet, cfg.instance, key, self.metrics)
        self._state_topic = self.retained.state_topic
        self.outputs = Outputs(self.publisher)
        # Bridge state numbering (guard.StatePair): the pair whose will goes with the next
        # connection, the current session's, and a spare reserved ahead by the worker.
        self._next_pair = self._new_pair()
        self._next_will = self._state_at(self._next_pair.will_seq, False)
        self._session: guard.StatePair | None = None
        self._session_will = self._next_will
        self._announcement = b""
        self._spare: guard.StatePair | None = self._new_pair()
        self.client = self._make_client()

    # ---- MQTT ---------------------------------------------------------------------------------

    def _new_pair(self) -> guard.StatePair:
        pub = self.publisher
        announce = pub.next_seq()
        return guard.StatePair(pub.boot, announce, pub.next_seq())

    def _state_at(self, seq: int, online: bool) -> bytes:
        pub = self.publisher
        state = m.BridgeState(
            sender=pub.instance, seq=seq, boot=pub.boot, ts_ms=pub.wall_ms(), online=online
        )
        return pub.seal(state)

    def _client_settings(self) -> mqttc.Settings:
        cfg = self.cfg
        return mqttc.Settings(
            client_id=cfg.client_id or cfg.instance,
            protocol=cfg.mqtt_protocol,
            username=cfg.username,
            password_file=cfg.password_file,
            tls=cfg.tls,
            ca_file=cfg.ca_file,
            cert_file=cfg.cert_file,
            key_file=cfg.key_file,
        )

    def _make_client(self) -> mqtt.Client:
        # inflight_max 0 = no client-side in-flight queue: paho rescans its whole queue on every
        # PUBACK otherwise (O(n) per ack); the broker's receive maximum bounds what is in flight.
        client = mqttc.make_client(self._client_settings(), inflight_max=0, auto_reconnect=True)
        client.will_set(self._state_topic, self._next_will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("bridge: broker refused the connection: %s", reason)
            return
        mqttc.nodelay(client)
        group = self.cfg.share_group or None
        if group and self.cfg.mqtt_protocol != "5":
            log.warning("bridge: shared subscriptions need MQTT 5; subscribing unshared")
            group = None
        filters = topics.ingest_filters(self.cfg.fleet, share_group=group)
        for f in [*filters, self.fleet.claim_filter(group)]:
            client.subscribe(f, qos=1)
        client.subscribe(self._state_topic, qos=1)
        client.subscribe(topics.pool_state_filter(self.cfg.fleet), qos=1)
        with self._lock:
            self._inflight.clear()  # whatever was in flight is sent again from the table
            self._early_mids.clear()
            # This connection went out with the will of _next_pair: that pair is the session's.
            self._session, self._session_will = self._next_pair, self._next_will
            self._announcement = self._state_at(self._session.announce_seq, True)
            if self._spare is not None:  # the next connection's will, numbered after this one
                self._next_pair, self._spare = self._spare, None
                self._next_will = self._state_at(self._next_pair.will_seq, False)
                client.will_set(self._state_topic, self._next_will, qos=1, retain=True)
        self._announce.set()
        self._republish.set()
        self.connected.set()
        log.info("bridge %s: connected, serving fleet %s", self.cfg.instance, self.cfg.fleet)

    def _on_disconnect(self, *_: Any) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("bridge: disconnected from the broker; reconnecting")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self._state_topic:
            self._on_state(bytes(msg.payload))
            return
        if self.retained.is_pool_state(msg.topic):
            self.retained.on_pool_state(msg.topic, bytes(msg.payload))
            return
        if self.fleet.wants(msg.topic):
            self.fleet.received(msg.topic, bytes(msg.payload))
            return
        item = Inbound.received(
            msg.topic, msg.payload, time.time_ns() // 1_000_000, time.monotonic_ns()
        )
        self.inbox.put(item, item.size)  # blocks when full: back-pressure, never a drop

    def _on_state(self, payload: bytes) -> None:
        """Network thread: no database here, the worker publishes (cloud_bridge.retained)."""
        if self._stopping.is_set():
            return  # our own goodbye coming back
        if self.retained.must_reannounce(payload, self._session):
            self._announce.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        # Runs inside paho's lock: only touch our own small state here.
        with self._lock:
            if mid in self._inflight:
                row = self._inflight.pop(mid)
                if row is not None:
                    self._acked_outputs.append(row)
            else:
                self._early_mids.add(mid)  # acked before _send could record it

    def _send(
        self,
        topic: str,
        payload: bytes,
        retain: bool = False,
        stored: tuple[str, int] | None = None,
    ) -> bool:
        """Publish QoS 1 and track its PUBACK, whatever it is: every message id is recorded
        or matched, so an early PUBACK can never be mistaken for a later message's after
        paho's ids wrap around. False when it could not be sent (disconnected)."""
        if retain and self.retained.is_pool_state(topic):
            self.retained.sent(topic, payload)  # before the publish: its echo can come back
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self.metrics.published.inc()
        with self._lock:
            if info.mid in self._early_mids:
                self._early_mids.discard(info.mid)
                if stored is not None:
                    self._acked_outputs.append(stored)
            else:
                self._inflight[info.mid] = stored
        return True

    def publish(self, outputs: Sequence[Output]) -> None:
        """Publish after a commit. Stored outputs stay in the table until the broker has them;
        anything that cannot go out now (disconnected) is sent again after the reconnect."""
        for out in outputs:
            if not self._send(out.topic, out.payload, out.retain, out.stored):
                self._republish.set()

    def _take_published(self) -> list[tuple[str, int]]:
        """Stored outputs the broker has acknowledged since the last call: their rows can go."""
        with self._lock:
            done, self._acked_outputs = self._acked_outputs, []
            self.metrics.pending_outputs.set(sum(r is not None for r in self._inflight.values()))
        return done

    def _forget_published(self) -> None:
        """Delete the rows of published outputs in a transaction of their own (when idle, or at
        shutdown; while messages flow they go in the next batch's transaction instead)."""
        done = self._take_published()
        if done:
            with self.store.transaction() as tx:
                repo.forget_outputs(tx, done)

    def _republish_pending(self) -> None:
        with self.store.transaction() as tx:
            # Only this instance's: another live instance publishes its own, and re-sending its
            # rows could put an older retained pool state over its newer one.
            rows = repo.pending_outputs(tx, self.cfg.instance)
        if rows:
            log.info("bridge: publishing %d outputs committed before the last stop", len(rows))
        self.publish([Output(r.topic, r.payload, r.retain, (r.instance, r.seq)) for r in rows])

    # ---- the worker ---------------------------------------------------------------------------

    def _take_batch(self) -> list[Inbound]:
        try:
            first = self.inbox.get(timeout=0.1)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.cfg.batch_wait_ms / 1000
        while len(batch) < self.cfg.batch_max:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self.inbox.get(timeout=remaining))
                except queue.Empty:
                    break
        return batch

    def run(self, stop: threading.Event) -> None:
        # The network thread must get the GIL quickly while the worker is busy with a batch:
        # the default 5 ms switch interval showed up as 40 ms stalls of inbound messages.
        sys.setswitchinterval(0.0005)
        self.metrics.serve(self.cfg.metrics_port, self.cfg.metrics_host)
        # The broker's files from the committed accounts: a bridge killed after a claim's
        # commit and before its rewrite left that device's account off the broker.
        self.fleet.sync()
        self.client.connect_async(
            self.cfg.mqtt_host,
            self.cfg.mqtt_port,
            keepalive=self.cfg.keepalive_s,
            **self._connect_kwargs(),
        )
        self.client.loop_start()
        try:
            self.connected.wait(10)
            while not stop.is_set():
                self.step()
            for _ in range(self.inbox.qsize()):  # finish what was received before stopping
                if not self.step():
                    break
        finally:
            self.shutdown()

    def step(self) -> int:
        if self._spare is None:
            spare = self._new_pair()
            with self._lock:
                self._spare = spare
        if self._announce.is_set() and self.connected.is_set():
            self._announce.clear()
            with self._lock:
                announcement = self._announcement
            self._send(self._state_topic, announcement, retain=True)
        if self.retained.pending and self.connected.is_set():
            self.publish(
                self.retained.restore(self.store, self.service, self.outputs, self.publisher)
            )
        if self._republish.is_set() and self.connected.is_set():
            self._republish.clear()
            self._republish_pending()
        if self.connected.is_set() and time.monotonic() >= self._operator_due:
            self._operator_due = time.monotonic() + OPERATOR_POLL_S
            self._adopt_operator_outputs()
        if time.monotonic() >= self._stepup_due:
            self._stepup_due = time.monotonic() + STEPUP_POLL_S
            self.publish(self.ingest.expire_stepups())
        for topic, answer in self.fleet.step():  # claims answered, drift counted
            self._send(topic, answer)
        pruned = self.pruner.step()
        if pruned is not None:
            for table, n in pruned.by_table().items():
                self.metrics.pruned.labels(table=table).inc(n)
        batch = self._take_batch()
        self.metrics.backlog.set(self.inbox.qsize())
        self.metrics.backlog_bytes.set(self.inbox.bytes)
        if not batch:
            self._forget_published()
            return 0
        for result in self._process(batch):
            self.publish(result.outputs)
            done = time.monotonic_ns()
            if result.payouts:
                self._measure_payouts(result.payouts, done)
            for received in result.decided_ns:
                self.metrics.latency.observe((done - received) / 1e9)
            self.metrics.accepted.inc(result.accepted)
            for reason, n in result.rejected.items():
                self.metrics.rejected.labels(reason=reason).inc(n)
            for code, n in result.action_refusals.items():
                self.metrics.action_refused.labels(result=code).inc(n)
            for code, n in result.risk_reasons.items():
                self.metrics.risk_reasons.labels(reason=code).inc(n)
            for reason, n in result.unstored.items():
                self.metrics.unstored.labels(reason=reason).inc(n)
            self.metrics.db_seconds.observe(result.db_seconds)
        self.metrics.batch_size.observe(len(batch))
        return len(batch)

    def _measure_payouts(self, timings: Sequence[PayoutTiming], published_ns: int) -> None:
        """Each payout against its tier's budget; a late one is counted and alerted."""
        late = measure_payouts(self.metrics, timings, published_ns)
        if not late:
            return
        log.warning("bridge: %d payout instructions later than their tier's budget", len(late))
        try:
            with self.store.transaction() as tx:
                pending = [self.outputs.risk(tx, t.fleet, t.device, note) for t, note in late]
                outputs = self.outputs.seal_and_store(tx, pending)
        except Exception:  # counted and logged already; the alert is not worth stopping for
            self.publisher.invalidate()
            log.exception("bridge: storing %d payout_late alerts failed", len(late))
            return
        self.publish(outputs)

    def _adopt_operator_outputs(self) -> None:
        """Publish what operator commands stored in the outbox (their pool states), taking
        each row into this instance's own: exactly one bridge publishes it, at least once."""
        try:
            with self.store.transaction() as tx:
                outputs = self.outputs.adopt_operator_outputs(tx)
        except StoreConflict:  # another bridge took them, or busy: at the next look
            self.publisher.invalidate()
            return
        except Exception:  # the database failed: at the next look, without stopping the worker
            self.publisher.invalidate()
            log.exception("bridge: taking the outputs of operator commands failed")
            return
        if outputs:
            log.info("bridge: publishing %d outputs of operator commands", len(outputs))
        self.publish(outputs)

    def _process(self, batch: list[Inbound]) -> list[BatchResult]:
        """The batch in one transaction; after an unexpected error, one message at a time, and
        a message that still fails is stored without pool actions. A bad message can neither
        stop the bridge nor hold back the others."""
        if not batch:
            return []
        # Rows of outputs the broker has acknowledged go in the same transaction: one commit
        # per batch, not two. Lost with a rollback, they are simply deleted by a later one (a
        # row left behind only means its output is published again after a restart).
        published = self._take_published()
        for attempt in range(TRANSIENT_RETRIES):
            try:
                return [self.ingest.process(batch, forget=published)]
            except StoreConflict:  # deadlock, serialisation failure, busy: try again
                time.sleep(random.uniform(0, 0.01 * 2**attempt))
            except Exception:
                log.exception("bridge: batch of %d failed; retrying one by one", len(batch))
                break
        with self._lock:
            self._acked_outputs.extend(published)  # for the next transaction that commits
        results = []
        for item in batch:
            for act in (True, False):
                try:
                    results.append(self.ingest.process([item], act=act))
                    break
                except Exception:
                    log.exception("bridge: message on %s failed (act=%s)", item.topic, act)
        return results

    def _connect_kwargs(self) -> dict[str, Any]:
        return mqttc.connect_kwargs(self._client_settings())

    def shutdown(self) -> None:
        self._stopping.set()
        if self.connected.is_set():
            # The session's will, said by the bridge itself: numbered after its announcement.
            self._send(self._state_topic, self._session_will, retain=True)
            deadline = time.monotonic() + 2
            while self._inflight and time.monotonic() < deadline:
                time.sleep(0.02)
            self._forget_published()
            self.client.disconnect()
            log.info("bridge %s: stopped; said offline and disconnected", self.cfg.instance)
        self.client.loop_stop()
        self.store.close()
