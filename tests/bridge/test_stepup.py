"""Step-up that does something (issue 13 item 10), through the ingest on a real store with the
real model: a step_up verdict holds the event's action and sends a signed `stepup` command to
the user's phone; the phone's answer (a fresh, scored report) runs the action, declines it, or
is ignored when its own session is not the owner's; the clock expires the rest."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import pytest

from agent.config import REPO_MODEL
from agent.features import model_input
from agent.scoring import Scorer
from agent.simulator.cohort import LabelledSession, device_sessions
from cloud_bridge.config import BridgeConfig
from cloud_bridge.ingest import Inbound, Ingest
from cloud_bridge.pool.commands import OpenPool
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.registry import Registry
from cloud_bridge.store import Store, ingest_repo, open_store
from protocol import envelope, topics
from protocol import messages as m
from protocol.topics import Channel

SCORER = Scorer.load(REPO_MODEL)
FLEET = "f"
BRIDGE_KEY = nacl.signing.SigningKey(bytes(32))
T0 = 1_800_000_000_000
# The wearable's thresholds at the bottom of the scale: every event of it is a step-up. The
# phone keeps the calibrated ones, so its genuine sessions can confirm.
CFG_TOML = "[risk]\nkinds = { wearable = { step_up_q = -128, hold_q = 127 } }\n"


@dataclass
class Rig:
    store: Store
    ingest: Ingest
    clock: list[int]
    keys: dict[str, nacl.signing.SigningKey]
    sessions: dict[str, list[LabelledSession]]
    seqs: dict[str, int]

    def send(self, device: str, msg: m.Report | m.Trigger) -> list[m.Message]:
        channel = Channel.REPORT if isinstance(msg, m.Report) else Channel.TRIGGER
        item = Inbound(
            topics.device(FLEET, device, channel), envelope.seal(msg, self.keys[device]),
            self.clock[0],
        )  # fmt: skip
        result = self.ingest.process([item])
        assert result.accepted == 1, result.rejected
        return [
            envelope.unseal(o.payload, lambda _k: BRIDGE_KEY.verify_key)[1] for o in result.outputs
        ]

    def next_seq(self, device: str) -> int:
        self.seqs[device] += 1
        return self.seqs[device]

    def report(self, device: str, session: LabelledSession, **over: object) -> m.Report:
        score = SCORER.score(model_input(session.current, session.baseline, SCORER.normalisation))
        seq = self.next_seq(device)
        fields: dict[str, object] = dict(
            sender=device, seq=seq, boot=1, ts_ms=self.clock[0], model_id=SCORER.model_id,
            model_sha256=SCORER.model_sha256, risk_pm=score.risk_pm, features=score.input_q,
            fingerprint=session.current.to_wire(), mono_ms=seq * 1000,
        )  # fmt: skip
        fields.update(over)
        return m.Report(**fields)  # type: ignore[arg-type]

    def emergency(self, device: str, kind: str = "illness", amount_fen: int = 300_000) -> m.Trigger:
        seq = self.next_seq(device)
        return m.Trigger(
            sender=device, seq=seq, boot=1, ts_ms=self.clock[0], model_id=SCORER.model_id,
            model_sha256=SCORER.model_sha256, risk_pm=0, mono_ms=seq * 1000, rule="sos",
            priority=255,
            body=m.EmergencyBody(emergency=kind, source="explicit", amount_fen=amount_fen),
        )  # fmt: skip


@pytest.fixture
def rig(tmp_path: Path, store_url: str) -> Iterator[Rig]:
    yield from make_rig(tmp_path, store_url, CFG_TOML)


def make_rig(tmp_path: Path, store_url: str, toml: str) -> Iterator[Rig]:
    """The rig on a bridge configured by `toml` (tests/bridge/test_stepup_touch.py too)."""
    url = store_url  # SQLite and PostgreSQL: the step-up rows and their locks on both
    (tmp_path / "bridge.toml").write_text(toml)
    from cloud_bridge.config import load

    cfg: BridgeConfig = load(tmp_path / "bridge.toml", tmp_path)
    cfg = BridgeConfig(**{**cfg.__dict__, "fleet": FLEET, "store_url": url})
    clock = [T0]
    with open_store(url) as store:
        registry = Registry()
        service = PoolService(store)
        ingest = Ingest(store, registry, Publisher("bridge-1", BRIDGE_KEY, store), service, cfg,
                        wall_ms=lambda: clock[0])  # fmt: skip
        keys, sessions = {}, {}
        for n, (device, kind, seed) in enumerate(
            (("u1-phone", "phone", 1_960_011), ("u1-watch", "wearable", 1_960_012))
        ):
            key = nacl.signing.SigningKey(bytes([n + 7]) * 32)
            ss = device_sessions(seed, kind, genuine=10, per_impostor=2)
            record = m.Enrollment(
                sender=device, seq=1, boot=0, ts_ms=1, fleet=FLEET, device_kind=kind,
                public_key=bytes(key.verify_key), baseline=ss[0].baseline.to_wire(),
            )  # fmt: skip
            with store.transaction() as tx:
                registry.enroll(tx, envelope.seal(record, key), "u1", 1, fleet=FLEET)
            keys[device], sessions[device] = key, ss
        service.execute(OpenPool(user="u1", key="open-u1", limit_fen=5_000_000))
        yield Rig(store, ingest, clock, keys, sessions, {d: 0 for d in keys})


def q_of(s: LabelledSession) -> int:
    return SCORER.score(model_input(s.current, s.baseline, SCORER.normalisation)).output_q


def genuine(rig: Rig, device: str, under_q: int) -> LabelledSession:
    return next(s for s in rig.sessions[device] if not s.impostor and q_of(s) < under_q)


def impostor(rig: Rig, device: str) -> LabelledSession:
    return next(s for s in rig.sessions[device] if s.impostor and q_of(s) > 0)


def decisions(out: list[m.Message]) -> list[m.Decision]:
    return [o for o in out if isinstance(o, m.Decision)]


def stepup_command(out: list[m.Message]) -> m.Command:
    (cmd,) = [o for o in out if isinstance(o, m.Command) and o.command == "stepup"]
    return cmd


def held(rig: Rig) -> tuple[m.Trigger, m.Command]:
    """The watch reports once (its scores are all step-ups here), then asks for an emergency
    draw: held, and the phone is asked."""
    rig.send("u1-watch", rig.report("u1-watch", genuine(rig, "u1-watch", 0)))
    sos = rig.emergency("u1-watch")
    out = rig.send("u1-watch", sos)
    (decision,) = decisions(out)
    assert (decision.decision, decision.action, decision.result) == (
        "step_up", "emergency_draw", "step_up_pending",
    )  # fmt: skip
    assert decision.amount_fen == 300_000
    cmd = stepup_command(out)
    assert cmd.device == "u1-phone"  # the user's phone, not the watch that asked
    challenge = cmd.args["challenge"]
    assert cmd.args["event"] == f"u1-watch:{sos.seq}"
    assert isinstance(challenge, bytes) and len(challenge) == 16
    # An illness emergency must complete within 15 s: the step-up lapses 2 s before that.
    assert cmd.args["expires_ms"] == rig.clock[0] + 13_000
    return sos, cmd


def drawn_fen(rig: Rig) -> int:
    with rig.store.transaction() as tx:
        row = tx.fetchone(
            "SELECT count(*) FROM pool_commands WHERE kind = 'draw' AND result = 'ok'"
        )
    return int(row[0]) if row else 0


def learnt(rig: Rig) -> list[tuple[str, int, str]]:
    """The triggers the user's sequence model has learnt (user_risk, migration 011)."""
    with rig.store.transaction() as tx:
        (mem,) = ingest_repo.lock_users(tx, {"u1"}).values()
    return [(e.kind, e.amount_fen, e.device) for e in mem.history]


def test_a_confirmation_from_the_owners_phone_runs_the_held_draw(rig: Rig) -> None:
    sos, cmd = held(rig)
    assert drawn_fen(rig) == 0
    rig.clock[0] += 4_000
    answer = rig.report(
        "u1-phone", genuine(rig, "u1-phone", -23), cmd_seq=cmd.seq, cmd_result="confirmed"
    )
    out = rig.send("u1-phone", answer)
    ds = {d.device: d for d in decisions(out)}
    done = ds["u1-watch"]
    assert done.device_seq == sos.seq and done.result == "ok"
    assert done.reasons == ("step_up_confirmed",) and done.amount_fen == 300_000
    assert ds["u1-phone"].decision == "allow"  # the answering report's own decision
    assert drawn_fen(rig) == 1
    assert any(isinstance(o, m.PoolState) for o in out)
    # The owner vouched for it: the user's trigger-sequence model learns the held trigger.
    assert learnt(rig) == [("emergency", 300_000, "u1-watch")]
    # The same answer again (a redelivery under a new number) changes nothing.
    again = rig.report(
        "u1-phone", genuine(rig, "u1-phone", -23), cmd_seq=cmd.seq, cmd_result="confirmed"
    )
    assert [d.device for d in decisions(rig.send("u1-phone", again))] == ["u1-phone"]
    assert drawn_fen(rig) == 1


def test_a_declined_step_up_says_so_and_draws_nothing(rig: Rig) -> None:
    sos, cmd = held(rig)
    answer = rig.report(
        "u1-phone", genuine(rig, "u1-phone", -23), cmd_seq=cmd.seq, cmd_result="declined"
    )
    ds = {d.device: d for d in decisions(rig.send("u1-phone", answer))}
    assert (ds["u1-watch"].device_seq, ds["u1-watch"].result) == (sos.seq, "step_up_declined")
    assert drawn_fen(rig) == 0
    assert learnt(rig) == []  # a declined trigger is no habit of the user's


def test_an_impostor_on_the_phone_cannot_confirm_and_the_step_up_expires(rig: Rig) -> None:
    sos, cmd = held(rig)
    answer = rig.report(
        "u1-phone", impostor(rig, "u1-phone"), cmd_seq=cmd.seq, cmd_result="confirmed"
    )
    ds = {d.device: d for d in decisions(rig.send("u1-phone", answer))}
    assert list(ds) == ["u1-phone"] and ds["u1-phone"].decision != "allow"
    assert rig.ingest.expire_stepups() == ()  # not yet: 13 s
    rig.clock[0] += 13_000
    outs = rig.ingest.expire_stepups()
    (expired,) = [envelope.unseal(o.payload, lambda _k: BRIDGE_KEY.verify_key)[1] for o in outs]
    assert isinstance(expired, m.Decision)
    assert (expired.device, expired.device_seq, expired.result) == (
        "u1-watch",
        sos.seq,
        "step_up_expired",
    )
    assert expired.reasons == ("step_up_expired",)
    assert rig.ingest.expire_stepups() == ()  # settled once
    # A confirmation after the deadline is too late.
    late = rig.report(
        "u1-phone", genuine(rig, "u1-phone", -23), cmd_seq=cmd.seq, cmd_result="confirmed"
    )
    assert [d.device for d in decisions(rig.send("u1-phone", late))] == ["u1-phone"]
    assert drawn_fen(rig) == 0


def test_step_up_allow_keeps_the_old_behaviour(tmp_path: Path) -> None:
    from cloud_bridge import actions
    from cloud_bridge.risk.verdict import Level, Verdict

    cfg = BridgeConfig(path=None, data_dir=tmp_path, risk_step_up="allow")
    sos = m.Trigger(
        sender="d", seq=1, boot=1, ts_ms=1, model_id="risk-v1", model_sha256=bytes(32), risk_pm=0,
        mono_ms=1, rule="sos", priority=255,
        body=m.EmergencyBody(emergency="illness", source="explicit", amount_fen=100),
    )  # fmt: skip
    step_up = Verdict(Level.STEP_UP, ("score_step_up",), 0)
    assert actions.plan(sos, "u", step_up, cfg).command is not None
    held_plan = actions.plan(sos, "u", step_up, BridgeConfig(path=None, data_dir=tmp_path))
    assert held_plan.command is None and held_plan.stepup is actions.StepUp.PENDING


def test_a_phone_enrolled_later_does_not_become_the_confirmer(rig: Rig) -> None:
    """The user's first phone answers step-ups: a second "phone" enrolled for the same user
    later (a claim token in the wrong hands), whose id sorts first, is not asked."""
    from cloud_bridge.store import stepup_repo

    key = nacl.signing.SigningKey(bytes([42]) * 32)
    record = m.Enrollment(
        sender="0-intruder", seq=1, boot=0, ts_ms=1, fleet=FLEET, device_kind="phone",
        public_key=bytes(key.verify_key), baseline=rig.sessions["u1-phone"][0].baseline.to_wire(),
    )  # fmt: skip
    with rig.store.transaction() as tx:
        Registry().enroll(tx, envelope.seal(record, key), "u1", 2, fleet=FLEET)
    with rig.store.transaction() as tx:
        assert stepup_repo.primary_device(tx, "u1") == "u1-phone"
