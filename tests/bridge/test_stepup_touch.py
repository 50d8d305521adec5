"""Touch behaviour in the step-up decision (issue 13 item 8), through the ingest on a real store
(SQLite and PostgreSQL) with the real model: the owner's first confirmations enrol their touch
template in the user's risk memory, a later confirmation with the owner's swipes runs the held
draw, one with someone else's swipes on the same phone (a thief with the phone and its key) is
refused with `touch_mismatch` in the decision and a risk alert, and a confirmation without
swipes once the template exists is refused (`touch_missing`; before, it counts as it always
did); implausible swipes are dropped with a reason; refusals in a row lock the user's step-ups
until an operator resets them (`cloud-bridge touch reset`, on the real store)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from agent.simulator import SimDevice
from agent.strokes import features
from cloud_bridge import cli
from cloud_bridge.risk import touch
from cloud_bridge.risk.policy import SignalPolicy
from cloud_bridge.risk.user_signals import UserMemory
from cloud_bridge.store import ingest_repo
from protocol import messages as m
from protocol.strokes import to_fixed
from tests.bridge.test_stepup import (
    CFG_TOML,
    Rig,
    decisions,
    drawn_fen,
    make_rig,
    q_of,
)

# Whose swipes the phone's answers carry: a simulated owner whose thief swipes unlike them (of
# seeds 9000-9149 the widest gap between the two: owner within 18, thief beyond 90, where the
# limit is 30). With most owners a thief is caught in most sessions, not all (docs/risk.md).
SWIPER_SEED = 9044
ENROL = 2
TOML = CFG_TOML + f"[risk_signals]\ntouch_enrol = {ENROL}\ntouch_keep = 4\n"


@pytest.fixture
def rig(tmp_path: Path, store_url: str) -> Iterator[Rig]:
    yield from make_rig(tmp_path, store_url, TOML)


def swipes(session: int, stranger: bool = False) -> tuple[tuple[int, ...], ...]:
    """A simulated phone's swipes as its agent sends them: its owner's, or a stranger's."""
    phone = SimDevice(SWIPER_SEED, "phone")
    return tuple(to_fixed(features(s)) for s in phone.swipes(session, 10, stranger))


def answer(rig: Rig, n: int, cmd: m.Command, strokes: tuple[tuple[int, ...], ...]) -> m.Report:
    """A confirmation from the phone in a genuine session of its own (the n-th that scores
    well: a session sent twice would be a fingerprint replay)."""
    fresh = [s for s in rig.sessions["u1-phone"] if not s.impostor and q_of(s) < -23]
    return rig.report(
        "u1-phone", fresh[n], cmd_seq=cmd.seq, cmd_result="confirmed", strokes=strokes
    )


def confirm(rig: Rig, n: int, strokes: tuple[tuple[int, ...], ...]) -> list[m.Message]:
    """The watch reports (the n-th of its genuine sessions: one sent twice would be a
    fingerprint replay) and asks for an emergency draw, held; the phone answers its step-up."""
    rig.clock[0] += 60_000
    ours = [s for s in rig.sessions["u1-watch"] if not s.impostor]
    rig.send("u1-watch", rig.report("u1-watch", ours[n]))
    out = rig.send("u1-watch", rig.emergency("u1-watch"))
    (cmd,) = [o for o in out if isinstance(o, m.Command) and o.command == "stepup"]
    assert cmd.device == "u1-phone"
    rig.clock[0] += 2_000
    return rig.send("u1-phone", answer(rig, n, cmd, strokes))


def memory(rig: Rig) -> UserMemory:
    with rig.store.transaction() as tx:
        return ingest_repo.lock_users(tx, {"u1"}).get("u1", UserMemory())


def watch_decision(out: list[m.Message]) -> m.Decision:
    (decision,) = [d for d in decisions(out) if d.device == "u1-watch"]
    return decision


def enrol(rig: Rig) -> None:
    for n in range(ENROL):
        done = watch_decision(confirm(rig, n, swipes(n)))
        assert (done.result, done.reasons) == ("ok", ("step_up_confirmed",))
    assert len(memory(rig).touch.confirmations) == ENROL


def test_the_owners_swipes_confirm_and_a_strangers_are_refused(rig: Rig) -> None:
    enrol(rig)
    # The owner again, another day: matched, drawn, and the template learns it.
    done = watch_decision(confirm(rig, ENROL, swipes(50)))
    assert (done.result, done.reasons) == ("ok", ("step_up_confirmed",))
    assert drawn_fen(rig) == ENROL + 1
    kept = memory(rig).touch
    assert len(kept.confirmations) == ENROL + 1
    # A thief holding the phone: a session the model lets through, someone else's swipes.
    out = confirm(rig, ENROL + 1, swipes(51, stranger=True))
    refused = watch_decision(out)
    assert refused.decision == "step_up" and refused.action == "emergency_draw"
    assert (refused.result, refused.reasons) == ("touch_mismatch", ("touch_mismatch",))
    (alert,) = [o for o in out if isinstance(o, m.Risk) and o.reason == "touch_mismatch"]
    assert (alert.device, alert.category) == ("u1-phone", "alert")
    assert "limit 30.0" in alert.detail  # the policy's default limit, 3000 / 100
    assert drawn_fen(rig) == ENROL + 1  # nothing drawn
    assert memory(rig).touch == replace(kept, refusals=1)  # a thief's swipes are never learnt
    with rig.store.transaction() as tx:
        statuses = [str(r[0]) for r in tx.fetchall("SELECT status FROM stepups ORDER BY opened_ms")]
    assert statuses == ["confirmed"] * (ENROL + 1) + ["touch_mismatch"]


def test_once_enrolled_a_confirmation_without_swipes_is_refused(rig: Rig) -> None:
    enrol(rig)
    before = memory(rig).touch
    policy = SignalPolicy(touch_enrol=ENROL, touch_keep=4).touch
    assert isinstance(touch.template(before, policy), touch.Template)
    # A patched agent that sends no strokes once the template exists: refused like a mismatch,
    # with its own reason, an alert, nothing drawn, nothing learnt, one refusal counted.
    out = confirm(rig, ENROL, ())
    refused = watch_decision(out)
    assert (refused.result, refused.reasons) == ("touch_missing", ("touch_missing",))
    (alert,) = [o for o in out if isinstance(o, m.Risk) and o.reason == "touch_missing"]
    assert (alert.device, alert.category) == ("u1-phone", "alert")
    assert "touch refusals in a row 1" in alert.detail
    assert drawn_fen(rig) == ENROL
    assert memory(rig).touch == replace(before, refusals=1)


def test_before_enrolment_a_confirmation_without_swipes_counts_as_before(rig: Rig) -> None:
    # No template yet (an older agent, a phone without a screen): it confirms as it did
    # before strokes existed, and teaches the template nothing.
    done = watch_decision(confirm(rig, 0, ()))
    assert (done.result, done.reasons) == ("ok", ("step_up_confirmed",))
    assert drawn_fen(rig) == 1
    assert memory(rig).touch == touch.Memory()


def test_implausible_swipes_are_dropped_with_a_counted_reason(rig: Rig) -> None:
    enrol(rig)
    before = memory(rig).touch
    # The owner's swipes, one value off any screen (start_x 9 screen widths): no evidence at
    # all, so the confirmation lacks strokes; never a crash, never learnt.
    mine = swipes(50)
    poisoned = ((90_000, *mine[0][1:]), *mine[1:])
    out = confirm(rig, ENROL, poisoned)
    refused = watch_decision(out)
    assert refused.result == "touch_missing"
    assert refused.reasons == ("touch_missing", "touch_implausible")
    reasons = sorted(o.reason for o in out if isinstance(o, m.Risk))
    assert reasons == ["touch_implausible", "touch_missing"]
    (bad,) = [o for o in out if isinstance(o, m.Risk) and o.reason == "touch_implausible"]
    assert "start_x = 9" in bad.detail
    assert drawn_fen(rig) == ENROL
    assert memory(rig).touch.confirmations == before.confirmations


def bridge_toml(tmp_path: Path, store_url: str) -> Path:
    """A bridge.toml naming the rig's store, for the operator's CLI."""
    key = "dsn" if store_url.startswith("postgres") else "path"
    path = tmp_path / "operator.toml"
    path.write_text(f'[bridge]\nfleet = "test"\n\n[store]\n{key} = "{store_url}"\n\n{TOML}')
    return path


def test_refusals_in_a_row_lock_the_users_step_ups_until_an_operator_resets(
    rig: Rig, tmp_path: Path, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    enrol(rig)
    # A thief retries: each attempt refused, the third locks the user (touch_max_refusals 3).
    for n in range(3):
        out = confirm(rig, ENROL + n, swipes(60 + n, stranger=True))
        assert watch_decision(out).result == "touch_mismatch"
        (alert,) = [o for o in out if isinstance(o, m.Risk) and o.reason == "touch_mismatch"]
        assert f"touch refusals in a row {n + 1}" in alert.detail
    assert "locked: cloud-bridge touch reset" in alert.detail
    assert memory(rig).touch.refusals == 3
    # The next step-up is refused at once: no command to the phone, nothing drawn.
    rig.clock[0] += 60_000
    ours = [s for s in rig.sessions["u1-watch"] if not s.impostor]
    rig.send("u1-watch", rig.report("u1-watch", ours[ENROL + 3]))
    out = rig.send("u1-watch", rig.emergency("u1-watch"))
    assert not [o for o in out if isinstance(o, m.Command) and o.command == "stepup"]
    locked = watch_decision(out)
    assert (locked.decision, locked.result) == ("step_up", "touch_locked")
    assert locked.reasons[-1] == "touch_locked"
    assert drawn_fen(rig) == ENROL
    # The operator checks with the user and resets the count (the template is kept).
    config = bridge_toml(tmp_path, store_url)
    argv = ["--data", str(tmp_path), "--config", str(config)]
    assert cli.main(["touch", "show", "u1", "--json", *argv]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == {
        "user": "u1", "confirmations": ENROL, "enrolled": True, "refusals": 3, "locked": True,
    }  # fmt: skip
    kept = memory(rig).touch.confirmations
    assert cli.main(["touch", "reset", "u1", *argv]) == 0
    assert "0 refusals in a row" in capsys.readouterr().out
    assert memory(rig).touch == touch.Memory(kept, 0)
    # The owner's own confirmation counts again.
    done = watch_decision(confirm(rig, ENROL + 4, swipes(70)))
    assert (done.result, done.reasons) == ("ok", ("step_up_confirmed",))
    assert drawn_fen(rig) == ENROL + 1
    # --template forgets the template too; an unknown user is a clear error (exit 2)
    assert cli.main(["touch", "reset", "u1", "--template", *argv]) == 0
    assert memory(rig).touch == touch.Memory()
    assert cli.main(["touch", "reset", "nobody", *argv]) == 2
    assert "no risk memory of user 'nobody'" in capsys.readouterr().err


def test_the_step_up_owners_memory_judges_even_after_the_phone_changed_hands(rig: Rig) -> None:
    """The pending step-up's user, not the answering phone's, owns the template: their memory
    is locked and judged even when the phone now belongs to someone else."""
    enrol(rig)
    before = memory(rig).touch
    rig.clock[0] += 60_000
    ours = [s for s in rig.sessions["u1-watch"] if not s.impostor]
    rig.send("u1-watch", rig.report("u1-watch", ours[ENROL]))
    out = rig.send("u1-watch", rig.emergency("u1-watch"))
    (cmd,) = [o for o in out if isinstance(o, m.Command) and o.command == "stepup"]
    with rig.store.transaction() as tx:
        tx.execute("UPDATE devices SET user_id = 'u2' WHERE device_id = 'u1-phone'")
    rig.clock[0] += 2_000
    out = rig.send("u1-phone", answer(rig, ENROL, cmd, swipes(51, stranger=True)))
    assert watch_decision(out).result == "touch_mismatch"
    assert drawn_fen(rig) == ENROL
    assert memory(rig).touch == replace(before, refusals=1)  # u1's template, not overwritten
