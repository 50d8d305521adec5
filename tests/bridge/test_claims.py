"""Provisioning by claim: the bridge's pure decisions (cloud_bridge.claims), the token and the
sealed credentials (protocol.claims, real libsodium), and the claim account's ACL."""

from __future__ import annotations

import os

import nacl.signing
import pytest

from cloud_bridge import claims
from cloud_bridge.broker_config import acl_file
from cloud_bridge.claims import AnswerAgain, ClaimError, ClaimReason, Enroll, Refuse, TokenRow
from cloud_bridge.store.broker_repo import CLAIM, BrokerAccount
from protocol import claims as pc
from protocol import mqtt_password
from protocol.errors import ProtocolError

BRIDGE = nacl.signing.SigningKey(bytes(range(32)))
TOKEN = pc.ClaimToken(batch="b-1", token="0a1b2c", user="alice", fleet="f", expires_ms=1_000)
ACCOUNT = pc.claim_account("0a1b2c")
KID, OTHER_KID = b"k" * 8, b"o" * 8
FRESH = TokenRow("0a1b2c", "b-1", "alice", 1_000)
USED = TokenRow("0a1b2c", "b-1", "alice", 1_000, KID, "mcu-1", b"answer")


@pytest.mark.parametrize(
    ("row", "account", "kid", "device", "now", "verdict"),
    [
        (FRESH, ACCOUNT, KID, "mcu-1", 500, Enroll("alice")),
        (FRESH, ACCOUNT, KID, "mcu-1", 1_000, Enroll("alice")),  # at the expiry still valid
        (FRESH, ACCOUNT, KID, "mcu-1", 1_001, Refuse(ClaimReason.EXPIRED)),
        (None, ACCOUNT, KID, "mcu-1", 500, Refuse(ClaimReason.UNKNOWN)),
        (TokenRow("0a1b2c", "b-2", "alice", 1_000), ACCOUNT, KID, "mcu-1", 5,
         Refuse(ClaimReason.UNKNOWN)),  # the token names another batch than the stored one
        (FRESH, "claim-ffff", KID, "mcu-1", 500, Refuse(ClaimReason.ACCOUNT)),
        (TokenRow("0a1b2c", "b-1", "alice", 1_000, revoked=True), ACCOUNT, KID, "mcu-1", 5,
         Refuse(ClaimReason.REVOKED)),
        (USED, ACCOUNT, KID, "mcu-1", 500, AnswerAgain(b"answer")),  # a retry
        (USED, ACCOUNT, KID, "mcu-1", 9_999, AnswerAgain(b"answer")),  # even after expiry
        (USED, ACCOUNT, OTHER_KID, "mcu-1", 500, Refuse(ClaimReason.USED)),  # another key
        (USED, ACCOUNT, KID, "mcu-2", 500, Refuse(ClaimReason.USED)),  # another device id
    ],
)  # fmt: skip
def test_judge(
    row: TokenRow | None, account: str, kid: bytes, device: str, now: int, verdict: object
) -> None:
    assert claims.judge(row, TOKEN, account, kid, device, now) == verdict


def test_token_round_trip_and_forgeries() -> None:
    data = pc.seal_token(TOKEN, BRIDGE)
    assert pc.open_token(data, BRIDGE.verify_key) == TOKEN
    other = nacl.signing.SigningKey(bytes(32))
    with pytest.raises(ProtocolError):
        pc.open_token(pc.seal_token(TOKEN, other), BRIDGE.verify_key)  # not the bridge's key
    with pytest.raises(ProtocolError):
        pc.open_token(data[:-1] + bytes([data[-1] ^ 1]), BRIDGE.verify_key)  # tampered


def test_credentials_open_only_with_the_device_key() -> None:
    device = nacl.signing.SigningKey.generate()
    creds = pc.Credentials(username="mcu-1", password="s3cret")
    sealed = pc.seal_credentials(creds, bytes(device.verify_key))
    assert pc.open_credentials(sealed, device) == creds
    with pytest.raises(ProtocolError):
        pc.open_credentials(sealed, nacl.signing.SigningKey.generate())


def test_issue_makes_one_token_per_user_with_working_claim_passwords() -> None:
    batch, tokens = claims.issue(
        ["alice", "bob"], "f", 3_600_000, 1_000, lambda t: pc.seal_token(t, BRIDGE), os.urandom
    )
    assert [t.token.user for t in tokens] == ["alice", "bob"]
    assert all(t.token.batch == batch and t.token.expires_ms == 3_601_000 for t in tokens)
    assert len({t.token.token for t in tokens}) == 2
    for t in tokens:
        assert mqtt_password.verify(pc.claim_password(t.data), t.mqtt_hash)
        assert pc.open_token(t.data, BRIDGE.verify_key) == t.token


@pytest.mark.parametrize(
    ("text", "count", "users"),
    [("alice\n", 3, ["alice"] * 3), ("# users\na\nb\n\n", 2, ["a", "b"])],
)
def test_read_user_map__valid(text: str, count: int, users: list[str]) -> None:
    assert claims.read_user_map(text, count) == users


@pytest.mark.parametrize(
    ("text", "count", "message"),
    [("a\nb\n", 3, "2 users for --count 3"), ("bad user\n", 1, "is not a user id")],
)
def test_read_user_map__invalid(text: str, count: int, message: str) -> None:
    with pytest.raises(ClaimError, match=message):
        claims.read_user_map(text, count)


@pytest.mark.parametrize(("text", "ms"), [("90s", 90_000), ("15m", 900_000), ("1h", 3_600_000)])
def test_parse_ttl__valid(text: str, ms: int) -> None:
    assert claims.parse_ttl(text) == ms


@pytest.mark.parametrize("text", ["", "1", "0h", "1y", "-1h", "h"])
def test_parse_ttl__invalid(text: str) -> None:
    with pytest.raises(ClaimError, match="for example: 1h"):
        claims.parse_ttl(text)


def test_a_claim_account_may_only_publish_its_claim_and_read_its_answer() -> None:
    hashed = mqtt_password.hash_password("x")
    acl = acl_file("f", [BrokerAccount(ACCOUNT, CLAIM, hashed)])
    block = acl.split(f"user {ACCOUNT}\n", 1)[1]
    allowed = [line for line in block.splitlines() if line and not line.startswith("topic deny")]
    assert allowed == [
        f"topic write cp/v1/f/{ACCOUNT}/claim",
        f"topic read cp/v1/f/{ACCOUNT}/claim_answer",
    ]
    # The device patterns would expand to its name: denied, like a service account's.
    assert f"topic deny cp/v1/f/{ACCOUNT}/report" in block
