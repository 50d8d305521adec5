"""docs/credit-pool.md names every policy key, result code, command, event and account."""

from __future__ import annotations

from pathlib import Path

from cloud_bridge.pool.commands import COMMANDS
from cloud_bridge.pool.ledger import Account
from cloud_bridge.pool.policy import describe
from cloud_bridge.pool.results import Result

DOC = (Path(__file__).resolve().parents[2] / "docs" / "credit-pool.md").read_text()
ENGINE = Path(__file__).resolve().parents[2] / "cloud_bridge" / "pool"


def test_every_policy_key_and_result_code_is_documented() -> None:
    missing = [k for k, _, _ in describe() if f"`{k}`" not in DOC]
    missing += [r.value for r in Result if f"`{r.value}`" not in DOC]
    missing += [a.value for a in Account if f"`{a.value}`" not in DOC]
    missing += [cls.__name__ for cls in COMMANDS.values() if f"`{cls.__name__}`" not in DOC]
    assert missing == []


def test_every_event_kind_is_documented() -> None:
    import re

    source = "".join(p.read_text() for p in ENGINE.glob("*.py"))
    kinds = set(re.findall(r'Event\(\s*"([a-z_]+)"', source))
    assert kinds and sorted(k for k in kinds if f"`{k}`" not in DOC) == []
