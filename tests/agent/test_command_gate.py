"""agent.command_gate: when a verified command may be applied (pure)."""

from __future__ import annotations

import pytest

from agent import command_gate as g


@pytest.mark.parametrize(
    ("expires_ms", "retained", "now_ms", "trusted", "verdict"),
    [
        (0, False, 5, True, g.APPLY),  # never expires
        (0, False, 5, False, g.APPLY),  # no expiry: the clock does not matter
        (0, True, 5, True, g.RETAINED),  # retained: never, whatever else
        (10, True, 5, True, g.RETAINED),
        (10, False, 10, True, g.APPLY),  # at the expiry still valid
        (10, False, 11, True, g.EXPIRED),
        (10, False, 11, False, g.HOLD),  # untrusted clock: neither applied nor refused
        (10, False, 5, False, g.HOLD),
    ],
)
def test_gate(expires_ms: int, retained: bool, now_ms: int, trusted: bool, verdict: str) -> None:
    assert g.gate(expires_ms, retained, now_ms, trusted) == verdict
