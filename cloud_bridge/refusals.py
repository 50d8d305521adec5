"""Which refusals are stored and published: a budget per minute that a sender cannot multiply
by choosing names.

Every refusal is counted in the metrics. Storing one (a `rejections` row) and publishing it (a
signed risk note) costs disk and output, so each minute only a budget of them is kept:

- a refusal whose signature verified is charged to the enrolled device whose key verified it:
  devices exist only by enrollment, so a forger cannot make more of them, one stolen or misused
  key cannot fill the table by writing a new device id in every topic, and a compromised device
  cannot multiply its budget by minting keys through rotations (all its keys share one budget);
- a refusal with no verified key (garbage, a bad topic, oversize, an unknown or revoked kid, a
  bad signature) is charged to one budget per reason code for the whole bridge process: the
  topic's device id, the header's kid and the payload are all the sender's choice, so none of
  them may open a budget of its own.

The table of counts is cleared every minute, and its keys are enrolled device ids and reason
codes, so it stays small whatever arrives. Several bridge processes each have their own budget.
(`[rejections] per_key_per_minute` keeps its name from when the budget was per key.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.errors import Reason

WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Budget:
    """Refusals stored per minute: `per_key` for each enrolled device whose key verified them,
    `per_reason` for each reason code among the refusals no key verified."""

    per_key: int
    per_reason: int

    def __post_init__(self) -> None:
        if self.per_key < 0 or self.per_reason < 0:
            raise ValueError(f"a refusal budget cannot be negative: {self}")


class RefusalBudget:
    """Charge refusals to their source; `clock` is monotonic seconds (injected for tests)."""

    def __init__(self, budget: Budget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self.clock = clock
        self._start = clock()
        self._counts: dict[str | Reason, int] = {}

    def charge(self, signer: str | None, reason: Reason) -> bool:
        """Charge one refusal to `signer` (the enrolled device whose key its signature verified
        with) or, when no key verified (None), to its `reason`; True while that source is within
        its budget this minute, i.e. the refusal is to be stored and published."""
        now = self.clock()
        if now - self._start >= WINDOW_S:
            self._start, self._counts = now, {}
        source: str | Reason = reason if signer is None else signer
        limit = self.budget.per_reason if signer is None else self.budget.per_key
        count = self._counts.get(source, 0) + 1
        self._counts[source] = count
        return count <= limit

    @property
    def sources(self) -> int:
        """Sources charged this minute (what the table holds)."""
        return len(self._counts)
