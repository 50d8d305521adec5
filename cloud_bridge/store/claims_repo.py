"""The SQL of claim batches and tokens (migration 010). Every function runs inside the caller's
transaction; the decisions are `cloud_bridge.claims`'s."""

from __future__ import annotations

from collections.abc import Sequence

from cloud_bridge.claims import CLAIM_RETRY_MS, Issued, TokenRow
from cloud_bridge.store.base import Transaction
from cloud_bridge.store.broker_repo import CLAIM, BrokerAccount
from protocol import claims as pc


def insert_batch(
    tx: Transaction, batch: str, fleet: str, tokens: Sequence[Issued], now_ms: int
) -> None:
    expires = max((t.token.expires_ms for t in tokens), default=now_ms)
    tx.execute(
        "INSERT INTO claim_batches (batch_id, fleet, created_ms, expires_ms) VALUES (?, ?, ?, ?)",
        (batch, fleet, now_ms, expires),
    )
    tx.executemany(
        "INSERT INTO claim_tokens (token_id, batch_id, user_id, expires_ms, mqtt_hash) "
        "VALUES (?, ?, ?, ?, ?)",
        [(t.token.token, batch, t.token.user, t.token.expires_ms, t.mqtt_hash) for t in tokens],
    )


def token(tx: Transaction, token_id: str) -> TokenRow | None:
    """The token and its batch's revocation, locked until the transaction ends."""
    row = tx.fetchone(
        "SELECT t.token_id, t.batch_id, t.user_id, t.expires_ms, t.used_kid, t.device_id, "
        "t.answer, b.revoked_ms FROM claim_tokens t JOIN claim_batches b "
        "ON b.batch_id = t.batch_id WHERE t.token_id = ?",
        (token_id,),
        for_update=True,
    )
    if row is None:
        return None
    return TokenRow(
        str(row[0]), str(row[1]), str(row[2]), int(row[3]),
        None if row[4] is None else bytes(row[4]),
        None if row[5] is None else str(row[5]),
        None if row[6] is None else bytes(row[6]),
        row[7] is not None,
    )  # fmt: skip


def mark_used(
    tx: Transaction, token_id: str, kid: bytes, device_id: str, answer: bytes, now_ms: int
) -> None:
    tx.execute(
        "UPDATE claim_tokens SET used_kid = ?, device_id = ?, answer = ?, used_ms = ? "
        "WHERE token_id = ? AND used_kid IS NULL",
        (kid, device_id, answer, now_ms, token_id),
    )


def revoke(tx: Transaction, batch: str, now_ms: int) -> tuple[int, int] | None:
    """Revoke a batch: (tokens in it, of which used); None if there is no such batch."""
    if tx.fetchone("SELECT batch_id FROM claim_batches WHERE batch_id = ?", (batch,)) is None:
        return None
    tx.execute(
        "UPDATE claim_batches SET revoked_ms = ? WHERE batch_id = ? AND revoked_ms IS NULL",
        (now_ms, batch),
    )
    row = tx.fetchone(
        "SELECT COUNT(*), COUNT(used_kid) FROM claim_tokens WHERE batch_id = ?", (batch,)
    )
    assert row is not None
    return int(row[0]), int(row[1])


def accounts(tx: Transaction, now_ms: int) -> list[BrokerAccount]:
    """The claim accounts the broker admits: tokens of batches not revoked, not expired, and
    unused or used less than CLAIM_RETRY_MS ago (a device that lost its answer retries on the
    claim account; after that, the token is spent and its account goes)."""
    rows = tx.fetchall(
        "SELECT t.token_id, t.mqtt_hash FROM claim_tokens t JOIN claim_batches b "
        "ON b.batch_id = t.batch_id WHERE b.revoked_ms IS NULL AND t.expires_ms >= ? "
        "AND (t.used_kid IS NULL OR t.used_ms >= ?) ORDER BY t.token_id",
        (now_ms, now_ms - CLAIM_RETRY_MS),
    )
    return [BrokerAccount(pc.claim_account(str(r[0])), CLAIM, str(r[1])) for r in rows]
