"""Double-entry rules of the pool ledger: accounts, the postings of each movement, the checks.

Every pool has its own accounts (so pools never contend for a shared balance row). A posting is
signed: positive is a debit, negative a credit. The accounts form two books, and every journal
entry balances within each book, which is stronger than balancing overall:

- commitment (memo) book: `limit` (credit: the approved line) against `available`, `held` and
  `drawn` (debits). It keeps available = limit - drawn - held by construction.
- funds book: the receivables `principal`, `installment`, `interest` (debits) against
  `settlement` (money paid out to or received from the user) and `income` (interest earned).

A journal entry is all postings of one state change of one pool, identified by (user, version).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cloud_bridge.pool.state import PoolState


class Account(enum.StrEnum):
    LIMIT = "limit"
    AVAILABLE = "available"
    HELD = "held"
    DRAWN = "drawn"
    PRINCIPAL = "principal"
    INSTALLMENT = "installment"
    INTEREST = "interest"
    SETTLEMENT = "settlement"
    INCOME = "income"


COMMITMENT = frozenset({Account.LIMIT, Account.AVAILABLE, Account.HELD, Account.DRAWN})
FUNDS = frozenset(set(Account) - COMMITMENT)


@dataclass
class Journal:
    """Postings being built for one entry; same-account postings are summed, zeros dropped."""

    amounts: dict[Account, int] = field(default_factory=dict)

    def post(self, account: Account, amount_fen: int) -> None:
        total = self.amounts.get(account, 0) + amount_fen
        if total:
            self.amounts[account] = total
        else:
            self.amounts.pop(account, None)

    def set_limit(self, delta_fen: int) -> None:
        """The line grows (delta > 0) or shrinks; the change lands in available."""
        self.post(Account.AVAILABLE, delta_fen)
        self.post(Account.LIMIT, -delta_fen)

    def hold(self, amount_fen: int) -> None:
        self.post(Account.HELD, amount_fen)
        self.post(Account.AVAILABLE, -amount_fen)

    def unhold(self, amount_fen: int) -> None:
        self.hold(-amount_fen)

    def draw(self, amount_fen: int, *, installment: bool = False, from_held: bool = False) -> None:
        """Money paid out: usage rises (from available or from a hold) and so does a receivable."""
        self.post(Account.DRAWN, amount_fen)
        self.post(Account.HELD if from_held else Account.AVAILABLE, -amount_fen)
        self.post(Account.INSTALLMENT if installment else Account.PRINCIPAL, amount_fen)
        self.post(Account.SETTLEMENT, -amount_fen)

    def repay_principal(self, amount_fen: int, *, installment: bool = False) -> None:
        """Money received against principal: the receivable falls and credit is restored."""
        self.draw(-amount_fen, installment=installment)

    def bill_interest(self, amount_fen: int) -> None:
        self.post(Account.INTEREST, amount_fen)
        self.post(Account.INCOME, -amount_fen)

    def repay_interest(self, amount_fen: int) -> None:
        self.post(Account.INTEREST, -amount_fen)
        self.post(Account.SETTLEMENT, amount_fen)

    def repay_accrued(self, amount_fen: int) -> None:
        """Accrued, unbilled interest paid early: earned and received in one step."""
        self.post(Account.SETTLEMENT, amount_fen)
        self.post(Account.INCOME, -amount_fen)


def unbalanced(amounts: Mapping[Account, int]) -> list[str]:
    """Why these postings are not one valid entry; empty if each book balances."""
    problems = []
    for name, book in (("commitment", COMMITMENT), ("funds", FUNDS)):
        total = sum(v for a, v in amounts.items() if a in book)
        if total:
            problems.append(f"{name} book is off by {total} fen")
    return problems


def expected_balances(state: PoolState) -> dict[Account, int]:
    """The balances the ledger must show for this state (settlement and income are flows: the
    funds book balancing accounts for them)."""
    return {
        Account.LIMIT: -state.limit_fen,
        Account.AVAILABLE: state.available_fen,
        Account.HELD: state.held_fen,
        Account.DRAWN: state.outstanding_fen,
        Account.PRINCIPAL: state.principal_fen,
        Account.INSTALLMENT: state.installment_fen,
        Account.INTEREST: state.interest_fen,
    }


def balances(entries: Iterable[Mapping[Account, int]]) -> dict[Account, int]:
    """Account balances after these entries, every account present."""
    out = dict.fromkeys(Account, 0)
    for entry in entries:
        for account, amount in entry.items():
            out[account] += amount
    return out
