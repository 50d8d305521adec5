"""The auditor: checks a store's pools against the ledger and the invariants. Read-only.

Run after every step of the property tests and from `cloud-bridge pool audit` in production.
It recomputes everything from the journal (postings) and compares with each pool's stored state:

1. every journal entry balances within the commitment book and within the funds book;
2. each pool's account balances equal what its state says (limit, available, held, drawn,
   principal, installment, interest);
3. each state is valid (available = limit - outstanding - held >= 0, ...) and its query columns
   (`due_ms` too: when time next changes it) agree with it;
4. versions are gap-free: events exist for every version 1..version and no later one, and no
   recorded command claims a later version.
"""

from __future__ import annotations

import json

from cloud_bridge.pool.ledger import Account, expected_balances
from cloud_bridge.pool.state import PoolState
from cloud_bridge.pool.statements import next_due_ms
from cloud_bridge.pool.view import PoolView
from cloud_bridge.store import pool_repo
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.pool_repo import Books, EventVersions


def audit(tx: Transaction) -> list[str]:
    """Every problem found, one line each; an empty list means the books are clean."""
    return check(pool_repo.read_books(tx))


def check(books: Books) -> list[str]:
    """The problems in books read from a store (pure: `audit` reads them)."""
    problems = [
        f"{e.user} v{e.version}: entry unbalanced"
        f" (commitment {e.commitment_fen}, funds {e.funds_fen})"
        for e in books.unbalanced
    ]
    seen = set()
    for row in books.pools:
        user = row.user
        seen.add(user)
        try:
            state = PoolState.from_json(json.loads(row.state_json))
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
            # 0: a pool written before migration 006, whose first scheduler round sets it.
            row.columns[-1] if row.columns[-1] == 0 else next_due_ms(state),
        )
        if row.columns != columns:
            problems.append(f"{user}: columns {row.columns} disagree with state {columns}")
        balances = books.balances.get(user, {})
        for account, want in expected_balances(state).items():
            got = balances.get(account.value, 0)
            if got != want:
                problems.append(f"{user}: ledger {account.value} is {got}, state says {want}")
        unknown = set(balances) - {a.value for a in Account}
        if unknown:
            problems.append(f"{user}: postings to unknown accounts {sorted(unknown)}")
        covered = books.event_versions.get(user, EventVersions(0, 0))
        if (covered.count, covered.highest) != (state.version, state.version):
            problems.append(
                f"{user}: version {state.version} but events cover {covered.count} versions"
                f" up to {covered.highest}"
            )
        recorded = books.command_versions.get(user, 0)
        if recorded > state.version:
            problems.append(f"{user}: a command records version {recorded} > {state.version}")
        try:
            PoolView.of(state)
        except ValueError as exc:
            problems.append(f"{user}: view invalid: {exc}")
    for user in sorted((set(books.balances) | set(books.event_versions)) - seen):
        problems.append(f"{user}: postings or events without a pool")
    return problems
