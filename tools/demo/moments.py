"""The demo's six scripted moments and how each is recognised in real traffic.

Three happen on their own, driven by the simulated calendar; the demo only watches for them:

    restock   a decision with action hold, result ok (a fridge's refill offer reserved credit)
    health    a decision with action health_boost, result ok (a wearer's step streak)
    ev        a decision with action mileage, result ok (an EV's 30-day mileage set the rate)

Three the demo causes, and times from its cue:

    emergency `edge-agent emergency` on one device -> that device's emergency_draw decision, ok
              (after a step_up_pending one when the bridge asked the user's phone to confirm)
    clone     a copy of one device's key starts -> a seq_conflict risk alert about it, and its
              user's pool state says frozen
    restart   the broker stops and starts -> every device is connected again and acknowledged
              past what it had sent before the stop; done only when the zero-loss check passes

Times are seconds since the agents were started. Thread-safe: `on_message` is a Watcher hook.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass

from cloud_bridge.actions import StepUp
from protocol import messages as m

STEP_UP_PENDING = StepUp.PENDING.result

ORDER = ("restock", "health", "ev", "emergency", "clone", "restart")
TITLES = {
    "restock": "fridge restock offer",
    "health": "health-streak boost",
    "ev": "EV rate tier",
    "emergency": "emergency draw",
    "clone": "cloned key caught and frozen",
    "restart": "broker restart, nothing lost",
}
_NATURAL = {"hold": "restock", "health_boost": "health", "mileage": "ev"}


def yuan(fen: int) -> str:
    return f"{fen / 100:,.2f} yuan"


@dataclass
class Moment:
    key: str
    title: str
    cue_s: float | None = None  # when the demo caused it; None for the natural ones
    done_s: float | None = None
    detail: str = ""
    failed: str = ""

    @property
    def state(self) -> str:
        """waiting, armed (cued, not seen yet), done or failed."""
        if self.failed:
            return "failed"
        if self.done_s is not None:
            return "done"
        return "armed" if self.cue_s is not None else "waiting"

    @property
    def took_s(self) -> float | None:
        """Seconds from the cue (or the start) to the moment."""
        if self.done_s is None:
            return None
        return self.done_s - (self.cue_s or 0.0)


class Moments:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items = {key: Moment(key, TITLES[key]) for key in ORDER}
        self._emergency: tuple[str, int] | None = None  # (device, amount_fen) awaited
        self._clone: tuple[str, str] | None = None  # (device, user) awaited
        self._clone_alert_s: float | None = None
        self._clone_frozen_s: float | None = None
        self._recovered_s: float | None = None
        self._bridge_ms = 0  # the emergency's decision: bridge receipt to signed decision
        # The emergency's payout instruction: (tier, bridge receipt to signed payout, budget ms).
        self._payout: tuple[str, int, int] | None = None

    # ---- cues from the script -----------------------------------------------------------------

    def arm_emergency(self, t: float, device: str, amount_fen: int) -> None:
        with self._lock:
            self._items["emergency"].cue_s = t
            self._emergency = (device, amount_fen)

    def cue(self, key: str, t: float) -> None:
        """Correct a cue's time once it is known exactly (the decision may already be in)."""
        with self._lock:
            self._items[key].cue_s = t
            if key == "emergency" and self._items[key].done_s is not None:
                self._emergency_detail()

    def arm_clone(self, t: float, device: str, user: str) -> None:
        with self._lock:
            self._items["clone"].cue_s = t
            self._clone = (device, user)

    def arm_restart(self, t: float) -> None:
        with self._lock:
            self._items["restart"].cue_s = t
            self._items["restart"].detail = "broker stopped"

    def restart_note(self, detail: str) -> None:
        with self._lock:
            self._items["restart"].detail = detail

    def recovered(self, t: float, detail: str) -> None:
        """Every device is back and acknowledged past its pre-restart mark."""
        with self._lock:
            self._recovered_s = t
            self._items["restart"].detail = detail

    @property
    def recovered_s(self) -> float | None:
        with self._lock:
            return self._recovered_s

    def finish_restart(self, zero_loss: bool, detail: str) -> None:
        """The end of the run: the restart counts only if the zero-loss check passed."""
        with self._lock:
            moment = self._items["restart"]
            moment.detail = detail
            if self._recovered_s is None:
                moment.failed = moment.failed or "the fleet did not recover after the restart"
            elif not zero_loss:
                moment.failed = "messages were lost"
            else:
                moment.done_s = self._recovered_s

    def fail(self, key: str, reason: str) -> None:
        with self._lock:
            moment = self._items[key]
            if moment.done_s is None:
                moment.failed = reason

    # ---- detection ----------------------------------------------------------------------------

    def on_message(self, t: float, message: m.Message) -> None:
        with self._lock:
            if isinstance(message, m.Decision):
                self._decision(t, message)
            elif isinstance(message, m.Payout):
                self._on_payout(message)
            elif isinstance(message, m.Risk):
                cloned = self._clone is not None and message.device == self._clone[0]
                if cloned and "seq_conflict" in message.reason and self._clone_alert_s is None:
                    self._clone_alert_s = t
                    self._clone_done()
            elif isinstance(message, m.PoolState):
                owner = self._clone is not None and message.user == self._clone[1]
                if owner and message.status == "frozen" and self._clone_frozen_s is None:
                    self._clone_frozen_s = t
                    self._clone_done()

    def _decision(self, t: float, d: m.Decision) -> None:
        key = _NATURAL.get(d.action)
        if key and d.result == "ok":
            moment = self._items[key]
            if moment.done_s is None:
                moment.done_s = t
                moment.detail = {
                    "restock": f"{d.device}: {yuan(d.amount_fen)} held for a refill",
                    "health": f"{d.device}: step streak met, {d.user}'s limit boosted",
                    "ev": f"{d.device}: 30-day mileage reported, {d.user}'s rate tier set",
                }[key]
        if d.action == "emergency_draw" and self._emergency:
            device, amount = self._emergency
            moment = self._items["emergency"]
            if d.device == device and d.amount_fen == amount and moment.done_s is None:
                if d.result == STEP_UP_PENDING:
                    return  # held for the user's confirmation: the final decision follows
                if d.result != "ok":
                    why = f" ({', '.join(d.reasons)})" if d.reasons else ""
                    moment.failed = f"the draw was refused: {d.decision}, {d.result}{why}"
                    return
                moment.done_s = t
                self._bridge_ms = max(0, d.ts_ms - d.received_ms)
                self._emergency_detail()

    def _on_payout(self, p: m.Payout) -> None:
        if not self._emergency or self._payout is not None:
            return
        device, amount = self._emergency
        if p.device == device and p.amount_fen == amount:
            self._payout = (p.tier, max(0, p.ts_ms - p.received_ms), p.budget_ms)
            if self._items["emergency"].done_s is not None:
                self._emergency_detail()

    def _emergency_detail(self) -> None:
        moment = self._items["emergency"]
        assert self._emergency is not None and moment.took_s is not None
        device, amount = self._emergency
        moment.detail = (
            f"{device}: {yuan(amount)} drawn; trigger to decision "
            f"{moment.took_s * 1000:.0f} ms (in the bridge {self._bridge_ms} ms)"
        )
        if self._payout is not None:
            tier, took_ms, budget_ms = self._payout
            verdict = "within" if took_ms <= budget_ms else "OVER"
            moment.detail += (
                f"; payout signed in {took_ms} ms, {verdict} the {tier} budget of {budget_ms} ms"
            )

    def _clone_done(self) -> None:
        moment = self._items["clone"]
        assert self._clone is not None
        device, user = self._clone
        if self._clone_alert_s is not None and self._clone_frozen_s is not None:
            moment.done_s = max(self._clone_alert_s, self._clone_frozen_s)
            moment.detail = f"seq_conflict on {device}; pool of {user} frozen"
        elif self._clone_alert_s is not None:
            moment.detail = f"seq_conflict on {device}; waiting for the freeze"

    # ---- readers ------------------------------------------------------------------------------

    def get(self, key: str) -> Moment:
        with self._lock:
            return dataclasses.replace(self._items[key])

    def all(self) -> list[Moment]:
        with self._lock:
            return [dataclasses.replace(self._items[k]) for k in ORDER]

    def all_done(self) -> bool:
        return all(moment.state == "done" for moment in self.all())
