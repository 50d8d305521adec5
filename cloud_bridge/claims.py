"""Provisioning by claim, the bridge's decisions: pure functions of values (issue 18 item 7).

A claim token (protocol.claims) admits one device key, once. `judge` decides what a verified
claim gets: enrolment, the same answer again (a retry of the same key and token, whose answer
was lost), or a refusal with a stable reason code. `issue` makes a batch's tokens from injected
randomness and clock. The I/O is `cloud_bridge.claim_desk` (the running bridge) and
`cloud_bridge.claims_cli`; the SQL `store.claims_repo`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cloud_bridge.errors import BridgeError
from protocol import claims as pc
from protocol import mqtt_password
from protocol.names import is_id

MAX_BATCH = 100_000
MAX_TTL_MS = 30 * 24 * 3600 * 1000
CLAIM_RETRY_MS = 10 * 60 * 1000
"""How long a used token's claim account stays on the broker for retries of a lost answer."""


class ClaimError(BridgeError):
    """A batch that cannot be issued (says which input and how to fix it)."""


class ClaimReason(enum.StrEnum):
    """Why a claim was refused (ClaimAnswer.reason)."""

    INVALID = "claim_invalid"  # not a token the bridge key signed, or not an enrollment
    UNKNOWN = "claim_unknown"  # signed, but not issued by this fleet's database
    ACCOUNT = "claim_account"  # published from another token's claim account
    REVOKED = "claim_revoked"
    EXPIRED = "claim_expired"
    USED = "claim_used"  # already used by another key or device
    DEVICE_TAKEN = "device_taken"  # the device id is enrolled already (another key or user)


@dataclass(frozen=True)
class TokenRow:
    """A token as stored, with its batch's revocation."""

    token_id: str
    batch_id: str
    user_id: str
    expires_ms: int
    used_kid: bytes | None = None
    device_id: str | None = None
    answer: bytes | None = None
    revoked: bool = False


@dataclass(frozen=True)
class Enroll:
    """Enroll the device for `user` and answer with its new credentials."""

    user: str


@dataclass(frozen=True)
class AnswerAgain:
    """The same key and token again: send the stored answer (nothing changes)."""

    answer: bytes


@dataclass(frozen=True)
class Refuse:
    reason: ClaimReason


Verdict = Enroll | AnswerAgain | Refuse


def judge(
    row: TokenRow | None,
    token: pc.ClaimToken,
    account: str,
    kid: bytes,
    device_id: str,
    now_ms: int,
) -> Verdict:
    """What a claim whose token and enrollment verified gets. `account`: the claim account it
    was published from (the topic level); `kid`: the key it enrolls."""
    if account != pc.claim_account(token.token):
        return Refuse(ClaimReason.ACCOUNT)
    if row is None or row.batch_id != token.batch:
        return Refuse(ClaimReason.UNKNOWN)
    if row.revoked:
        return Refuse(ClaimReason.REVOKED)
    if row.used_kid is not None:
        if row.used_kid == kid and row.device_id == device_id and row.answer is not None:
            return AnswerAgain(row.answer)
        return Refuse(ClaimReason.USED)
    if now_ms > row.expires_ms:
        return Refuse(ClaimReason.EXPIRED)
    return Enroll(row.user_id)


@dataclass(frozen=True)
class Issued:
    """One token of a batch: the signed bytes, who it is for and its account's password hash."""

    token: pc.ClaimToken
    data: bytes
    mqtt_hash: str


def read_user_map(text: str, count: int) -> list[str]:
    """The user of each of `count` tokens from a user map: one user id a line (`#` comments);
    one line gives every token to that user, else there must be one line per token."""
    users = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    bad = [u for u in users if not is_id(u)]
    if bad:
        raise ClaimError(f"user map: {bad[0]!r} is not a user id (1-64 of A-Z a-z 0-9 . _ -)")
    if len(users) == 1:
        return users * count
    if len(users) != count:
        raise ClaimError(
            f"user map has {len(users)} users for --count {count}: give one user (every token "
            "is for it) or one line per token"
        )
    return users


def issue(
    users: Sequence[str],
    fleet: str,
    ttl_ms: int,
    now_ms: int,
    sign: Callable[[pc.ClaimToken], bytes],
    rand: Callable[[int], bytes],
) -> tuple[str, list[Issued]]:
    """A batch id and its tokens, one per user given (randomness and clock injected)."""
    if not 1 <= len(users) <= MAX_BATCH:
        raise ClaimError(f"--count must be from 1 to {MAX_BATCH}")
    if not 1 <= ttl_ms <= MAX_TTL_MS:
        raise ClaimError("--ttl must be from 1s to 30d; for example: --ttl 1h")
    batch = "b-" + rand(6).hex()
    out = []
    for user in users:
        token = pc.ClaimToken(
            batch=batch,
            token=rand(pc.TOKEN_ID_BYTES).hex(),
            user=user,
            fleet=fleet,
            expires_ms=now_ms + ttl_ms,
        )
        data = sign(token)
        out.append(Issued(token, data, mqtt_password.hash_password(pc.claim_password(data))))
    return batch, out


def parse_ttl(text: str) -> int:
    """`90s`, `15m`, `1h`, `2d` -> milliseconds."""
    units = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit() or int(number) == 0:
        raise ClaimError(f"--ttl {text!r} must be a number with s, m, h or d; for example: 1h")
    return int(number) * units[unit]
