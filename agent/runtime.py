"""The running agent: sense, score, sign, store; the link thread forwards.

Main thread, once per `poll_s`: poll the sensor source, evaluate the trigger rules, store any
trigger; once per report interval: capture an IMU window, fingerprint it, score it with the
on-device model and store a report; handle commands from the cloud; write the status file.
Every message is committed to the outbox before the link thread may publish it.
"""

from __future__ import annotations

import logging
import os
import queue
import resource
import threading
from dataclasses import asdict
from typing import assert_never

import agent
from agent import applications, held, keys
from agent import commands as cmds
from agent.applications import ApplicationSpool
from agent.assess import Assessment, Assessor
from agent.clock import Clock
from agent.config import AgentConfig
from agent.jsonfile import write_json_atomic
from agent.link import Link, Signer
from agent.outbox import Outbox
from agent.sensors.base import EventSpool, Source
from agent.sensors.iio import SensorError
from agent.timekeeper import TimeKeeper
from agent.triggers import Reading, TriggerEngine
from agent.update.machine import Policy
from agent.update.worker import Updater
from agent.watchdog import Feeder, Notifier, Progress
from protocol import messages as m
from protocol.topics import Channel

log = logging.getLogger(__name__)

PRIORITY_REPORT = 0
POLL_S = 1.0
"""Sensors are polled and trigger rules evaluated once a second, whatever the report interval."""
PRIORITY_REPLY = 100


class Agent:
    """Wire the parts together; `run(stop)` until `stop` is set (SIGTERM sets it).

    The agent owns the configuration, the key, the model and the outbox bound: commands return
    effects and the agent applies them (`apply`), so no component keeps a copy that goes stale.
    One clock reaches every component."""

    def __init__(
        self,
        cfg: AgentConfig,
        source: Source,
        assessor: Assessor,
        outbox: Outbox,
        signer: Signer,
        clock: Clock | None = None,
        enrollment: m.Enrollment | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.source = source
        self.assessor = assessor
        self.outbox = outbox
        self.signer = signer
        self.enrollment = enrollment  # the record of the key in use (its seq: the generation)
        raw = clock or Clock()
        # Wall time through the time base (agent.timebase): never below the persisted floor,
        # corrected by the bridge's time until NTP synchronises the system clock.
        self.time = TimeKeeper(outbox, raw.wall_ms, raw.mono_ms)
        self.clock = Clock(wall_ms=self.time.wall_ms, mono_ms=raw.mono_ms)
        self.commands: queue.Queue[m.Command] = queue.Queue()
        # expiring commands waiting for a trusted wall clock, kept across restarts (agent.held)
        self.held: list[m.Command] = held.load(outbox)
        self.started_mono_ms = self.clock.mono_ms()
        saved = outbox.get_json("triggers", {})
        self.triggers = TriggerEngine(cfg.rules, saved if isinstance(saved, dict) else {})
        self.last: Assessment | None = None
        self.reading = Reading(ts_ms=0, telemetry={})
        self.handler = cmds.CommandHandler(self)
        self.link = Link(
            cfg, outbox, signer, self._birth, self.commands, self.clock, on_connect=self._resend
        )
        self.link.on_bridge_time = self.time.on_bridge_time
        self.status_path = cfg.data_dir / "status.json"
        self.spool = EventSpool(cfg.data_dir / "events")
        done = outbox.get_json("spool_done", [])
        self.spool.remove(done if isinstance(done, list) else [])  # committed before a crash
        self.spool_dir = self.spool.directory
        self.applications = ApplicationSpool(cfg.data_dir / applications.SPOOL)
        done = outbox.get_json(applications.DONE_KEY, [])
        self.applications.remove(done if isinstance(done, list) else [])
        self._spool_mtime = 0
        self.feeder = Feeder(notifier or Notifier())
        self.updater = Updater(
            cfg.data_dir,
            cfg.bridge_public_key,
            agent.__version__,
            Policy(cfg.update_retries, cfg.update_max_starts, int(cfg.update_trial_s * 1000)),
        )  # the trial deadline on trialclock's clock, as the launcher judges it, not wall time
        now = self.clock.mono_ms()
        self._sensor_ok_ms = self._drained_ms = now
        self._drain_mark = (-1, -1)  # (backlog, last ack) at the last watchdog check

    # ---- messages -----------------------------------------------------------------------------

    def _head(self) -> dict[str, object]:
        return {
            "sender": self.cfg.device_id,
            "seq": 0,  # numbered by the outbox when first transmitted
            "boot": self.outbox.boot,
            "ts_ms": self.clock.wall_ms(),
        }

    def _birth(self, session: int) -> m.Birth:
        stats = self.outbox.stats()
        return m.Birth(
            sender=self.cfg.device_id,
            seq=2 * session,
            boot=stats.boot,
            ts_ms=self.clock.wall_ms(),
            agent_version=agent.__version__,
            model_id=self.assessor.model_id,
            model_sha256=self.assessor.model_sha256,
            config_sha256=self.cfg.sha256,
            device_kind=self.cfg.kind,
            backlog=stats.backlog,
            resume_seq=self.outbox.resume_seq(),
            config_version=cmds.config_version(self.outbox),
        )

    def report(
        self, cmd_seq: int = 0, cmd_result: str = "", strokes: tuple[tuple[int, ...], ...] = ()
    ) -> m.Report:
        """Capture, fingerprint and score now; store the signed-to-be report."""
        assessment = self.assessor.assess(self.source.capture())
        self.last = assessment
        reading = self.reading
        report = m.Report(
            **self._head(),  # type: ignore[arg-type]
            model_id=assessment.model_id,
            model_sha256=assessment.model_sha256,
            risk_pm=assessment.risk_pm,
            features=assessment.input_q,
            fingerprint=assessment.fingerprint,
            mono_ms=self.clock.mono_ms(),
            telemetry={k: v for k, v in list(reading.telemetry.items())[:32]},
            cmd_seq=cmd_seq,
            cmd_result=cmd_result[:64],
            time_quality=self.time.quality,
            strokes=strokes,
        )
        self.outbox.put(report, PRIORITY_REPLY if cmd_seq else PRIORITY_REPORT)
        return report

    def poll(self) -> list[m.Trigger]:
        """Poll the source and the explicit-event spool; store a trigger for every rule that
        fires, with the rule state and the consumed events, in one transaction."""
        reading = self.source.poll(self.clock.wall_ms())
        self._sensor_ok_ms = self.clock.mono_ms()  # the source answered: progress
        taken = self.spool.take()
        if taken:
            events = reading.events + tuple(event for _path, event in taken)
            reading = Reading(reading.ts_ms, reading.telemetry, events)
        self.reading = reading
        fired = self.triggers.evaluate(reading)
        out = []
        if fired:
            last = self.last or self.assessor.assess(self.source.capture())
            self.last = last
            for f in fired:
                out.append(m.Trigger(
                    **self._head(),  # type: ignore[arg-type]
                    model_id=last.model_id,
                    model_sha256=last.model_sha256,
                    risk_pm=last.risk_pm,
                    mono_ms=self.clock.mono_ms(),
                    rule=f.rule.name,
                    priority=f.rule.priority,
                    body=f.body,
                ))  # fmt: skip
        if fired or taken:
            done = [path.name for path, _event in taken]
            self.outbox.put_triggers(
                [(t, t.priority) for t in out],
                {"triggers": self.triggers.state, "spool_done": done},
            )
            self.spool.remove(done)  # committed: a crash before this only repeats the removal
            for trig in out:
                log.info("trigger %s (%s) stored", trig.rule, trig.trigger)
        return out

    def send_applications(self) -> list[m.Application]:
        """Store the queued applications (`edge-agent apply`) with the names of their spool
        files in one transaction, so each is sent once even across a crash."""
        taken = self.applications.take()
        if not taken:
            return []
        out = [
            m.Application(**self._head(), applicant=applicant)  # type: ignore[arg-type]
            for _path, applicant in taken
        ]
        done = [path.name for path, _applicant in taken]
        self.outbox.put_triggers(
            [(a, applications.PRIORITY_APPLICATION) for a in out], {applications.DONE_KEY: done}
        )
        self.applications.remove(done)
        log.info("%d application(s) stored", len(out))
        return out

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self.link.start()
        poll_ms = int(POLL_S * 1000)
        next_poll = next_report = next_status = self.clock.mono_ms()
        self.feeder.ready()
        self.updater.resume()
        try:
            while not stop.is_set() and not self.updater.restart.is_set():
                now = self.clock.mono_ms()
                self.time.step()
                self._handle_commands()
                if now >= next_poll or self._spool_changed():
                    self.poll()
                    self.send_applications()
                    next_poll = now + poll_ms
                # A config command may have shortened the interval: never wait longer than it.
                report_ms = int(self.cfg.report_interval_s * 1000)
                next_report = min(next_report, now + report_ms)
                if now >= next_report:
                    try:
                        self.report()
                    except SensorError as exc:  # no good IMU window yet: nothing to score
                        log.warning("report skipped: %s", exc)
                    next_report = now + report_ms
                if now >= next_status:
                    self._watch_update()
                    self.write_status()
                    next_status = now + int(self.cfg.status_interval_s * 1000)
                if not self.link.is_alive():
                    raise RuntimeError("the link thread stopped unexpectedly")
                if self.feeder.due(now):
                    self.feeder.step(self.progress(now), now)
                wake_ms = min(next_poll, next_report, next_status) - self.clock.mono_ms()
                if wake_ms > 0:
                    stop.wait(min(wake_ms, 50) / 1000)
        finally:
            self.updater.shutdown()
            self.feeder.stopping()
            self.link.shutdown()
            self.write_status(stopped=True)
            self.source.close()
            self.outbox.close()

    def progress(self, now_ms: int) -> Progress:
        """What moved lately, for the watchdog rule (agent.watchdog.verdict)."""
        stats = self.outbox.stats()
        link = self.link.status
        mark = (stats.backlog, max(link.acked, stats.last_ack))
        if mark[0] < self._drain_mark[0] or mark[1] > self._drain_mark[1]:
            self._drained_ms = now_ms
        self._drain_mark = mark
        return Progress(
            sensor_ok_ms=self._sensor_ok_ms,
            backlog=stats.backlog,
            drained_ms=self._drained_ms,
            link_beat_ms=self.link.beat_ms,
            link_can_send=link.connected and link.bridge_online,
        )

    def _watch_update(self) -> None:
        """On trial after a self-update: commit once the bridge acked this run's messages."""
        if self.updater.on_trial:
            stats = self.outbox.stats()
            self.updater.watch_acks(stats.next_seq, max(self.link.status.acked, stats.last_ack))

    def _spool_changed(self) -> bool:
        """An explicit emergency was queued: poll now, not at the next second (one stat)."""
        try:
            mtime = os.stat(self.spool_dir).st_mtime_ns
        except OSError:
            return False
        changed, self._spool_mtime = mtime != self._spool_mtime, mtime
        return changed

    def time_trusted(self) -> bool:
        """Whether the wall clock may judge expiries (NTP, or the bridge's time from an ack)."""
        return self.time.trusted()

    def _handle_commands(self) -> None:
        waiting = list(self.held)
        while True:
            try:
                waiting.append(self.commands.get_nowait())
            except queue.Empty:
                break
        if not waiting:
            return
        apply, hold, refused = held.triage(waiting, self.clock.wall_ms(), self.time_trusted())
        if hold != self.held:  # durable before anything is applied: none lost, none twice
            held.save(self.outbox, hold)
        self.held = hold  # evaluated again once the clock is trusted
        for verdict, cmd in refused:
            self.link.count_drop(verdict, cmd)
        for cmd in apply:
            self._handle_command(cmd)

    def _handle_command(self, cmd: m.Command) -> None:
        outcome = self.handler.handle(cmd)
        result = outcome.result
        try:
            for effect in outcome.effects:
                self.apply(effect)
        except Exception as exc:  # a command must never take the agent down
            log.exception("command %s: applying its effects failed", cmd.command)
            result = f"error: {type(exc).__name__}"
        self.report(cmd_seq=cmd.seq, cmd_result=result, strokes=outcome.strokes)

    def apply(self, effect: cmds.Effect) -> None:
        """Carry out one effect of a command."""
        match effect:
            case cmds.ConfigChanged(cfg):
                self.cfg = cfg
            case cmds.OutboxResized(max_messages):
                self.outbox.max_messages = max_messages
            case cmds.KeyRotated(key, record):
                self.signer.key = key
                self.enrollment = record
                resigned = self.outbox.resign(self.signer.sign)
                self.link.forget_numbered()
                log.info(
                    "key rotated to kid %s (generation %d); %d unacked messages re-signed",
                    keys.kid(key).hex(),
                    record.seq,
                    resigned,
                )
            case cmds.ModelReplaced(assessor):
                self.assessor = assessor
            case cmds.PublishEnrollment(data):
                self.link.publish_signed(Channel.ENROLL, data)
            case cmds.PublishDiag(data):
                self.link.publish_signed(Channel.DIAG, data)
            case _:
                assert_never(effect)

    def _resend(self) -> None:
        """On every connect (from the link thread): send a rotation still waiting for its
        confirmation again (the bridge may have missed it)."""
        data = self.handler.pending_enrollment()
        if data is not None:
            self.link.publish_signed(Channel.ENROLL, data)

    def figures(self) -> dict[str, int]:
        """Counters for a diagnostics answer: memory, outbox, link."""
        stats, link = self.outbox.stats(), self.link.status
        out = {
            "rss_max_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "outbox_backlog": stats.backlog,
            "outbox_unsent": stats.unsent,
            "outbox_in_flight": stats.in_flight,
            "last_ack": max(link.acked, stats.last_ack),
            "boot": stats.boot,
            "session": link.session,
            "reconnects": link.reconnects,
            "dropped_inbound": link.dropped_inbound,
            "published": link.published,
            "retransmitted": link.retransmitted,
            "held_commands": len(self.held),
        }
        try:  # the resident set now (Linux), beside the peak
            pages = int(open("/proc/self/statm").read().split()[1])  # noqa: SIM115
            out["rss_kb"] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, ValueError, IndexError):
            pass
        return out

    def write_status(self, stopped: bool = False) -> None:
        """status.json for `edge-agent status`: written whole and renamed into place."""
        stats = self.outbox.stats()
        link = self.link.status
        doc = {
            "device_id": self.cfg.device_id,
            "pid": os.getpid(),
            "running": not stopped,
            "updated_ms": self.clock.wall_ms(),
            "link": "connected" if link.connected else "disconnected",
            "bridge_online": link.bridge_online,
            "drain": link.drain,
            "last_error": link.last_error,
            "session": link.session,
            "published": link.published,
            "retransmitted": link.retransmitted,
            "reconnects": link.reconnects,
            "dropped_inbound": link.dropped_inbound,
            "last_ack": max(link.acked, stats.last_ack),
            "outbox": asdict(stats),
            "model_id": self.assessor.model_id,
            "model_sha256": self.assessor.model_sha256.hex(),
            "last_risk_pm": self.last.risk_pm if self.last else None,
        }
        write_json_atomic(self.status_path, doc, durable=False)  # rewritten every second
