"""The auditor: checks a store's pools against the ledger and the invariants. Read-only.

Run after every step of the property tests and from `cloud-bridge pool audit` in production.
It recomputes everything from the journal (postings) and compares with each pool's stored state:

1. every journal entry balances within the commitment book and within the funds book;
2. each pool's account balances equal what its state says (limit, available, held, drawn,
   principal, installment, interest);
3. each state is valid (available = limit - outstanding - held >= 0, ...) and its query columns
   agree with it;
4. versions are gap-free: events exist for every version 1..version and no later one, and no
   recorded command claims a later version.
"""

from __future__ import annotations

import json
from collections import defaultdict

from cloud_bridge.pool.ledger import COMMITMENT, Account, expected_balances
from cloud_bridge.pool.state import PoolState
from cloud_bridge.pool.view import PoolView
from cloud_bridge.store.base import Transaction

_MEMO = ", ".join(f"'{a.value}'" for a in sorted(COMMITMENT))


def audit(tx: Transaction) -> list[str]:
    """Every problem found, one line each; an empty list means the books are clean."""
    problems: list[str] = []
    for user, version, memo, funds in tx.fetchall(
        "SELECT user_id, version,"
        f" SUM(CASE WHEN account IN ({_MEMO}) THEN amount_fen ELSE 0 END),"
        f" SUM(CASE WHEN account IN ({_MEMO}) THEN 0 ELSE amount_fen END)"
        " FROM pool_postings GROUP BY user_id, version"
        f" HAVING SUM(CASE WHEN account IN ({_MEMO}) THEN amount_fen ELSE 0 END) <> 0"
        f" OR SUM(CASE WHEN account IN ({_MEMO}) THEN 0 ELSE amount_fen END) <> 0"
    ):
        problems.append(f"{user} v{version}: entry unbalanced (commitment {memo}, funds {funds})")

    ledger: dict[str, dict[str, int]] = defaultdict(dict)
    for user, account, total in tx.fetchall(
        "SELECT user_id, account, SUM(amount_fen) FROM pool_postings GROUP BY user_id, account"
    ):
        ledger[user][account] = int(total)
    versions: dict[str, tuple[int, int]] = {
        user: (int(n), int(top))
        for user, n, top in tx.fetchall(
            "SELECT user_id, COUNT(DISTINCT version), MAX(version) FROM pool_events"
            " GROUP BY user_id"
        )
    }
    commands = {
        user: int(top)
        for user, top in tx.fetchall(
            "SELECT user_id, MAX(version) FROM pool_commands GROUP BY user_id"
        )
    }
    seen = set()
    for row in tx.fetchall(
        "SELECT user_id, status, limit_fen, available_fen, outstanding_fen, held_fen,"
        " interest_fen, rate_bps, version, updated_ms, state FROM pools"
    ):
        user = row[0]
        seen.add(user)
        try:
            state = PoolState.from_json(json.loads(row[10]))
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"{user}: stored state is invalid: {exc}")
            continue
        columns = (
            state.status.value,
            state.limit_fen,
            state.available_fen,
            state.outstanding_fen,
            state.held_fen,
            state.interest_fen,
            state.rate_bps,
            state.version,
            state.updated_ms,
        )
        if tuple(row[1:10]) != columns:
            problems.append(f"{user}: columns {tuple(row[1:10])} disagree with state {columns}")
        balances = ledger.get(user, {})
        for account, want in expected_balances(state).items():
            got = balances.get(account.value, 0)
            if got != want:
                problems.append(f"{user}: ledger {account.value} is {got}, state says {want}")
        unknown = set(balances) - {a.value for a in Account}
        if unknown:
            problems.append(f"{user}: postings to unknown accounts {sorted(unknown)}")
        count, top = versions.get(user, (0, 0))
        if (count, top) != (state.version, state.version):
            problems.append(
                f"{user}: version {state.version} but events cover {count} versions up to {top}"
            )
        if commands.get(user, 0) > state.version:
            problems.append(f"{user}: a command records version {commands[user]} > {state.version}")
        try:
            PoolView.of(state)
        except ValueError as exc:
            problems.append(f"{user}: view invalid: {exc}")
    for user in sorted((set(ledger) | set(versions)) - seen):
        problems.append(f"{user}: postings or events without a pool")
    return problems
