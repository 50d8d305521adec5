"""The header every payload starts with: the major version, the size limit and the kinds.

Keys 0 (ver) and 1 (kind) of every message map; `protocol.messages` re-exports these names and
defines the messages of each kind. firmware/lib/messages.py mirrors the kind numbers
(tests/firmware/test_mirror.py).
"""

from __future__ import annotations

import enum

MAJOR_VERSION = 1
MAX_PAYLOAD_BYTES = 4096
KEY_VERSION = 0
KEY_KIND = 1


class Kind(enum.IntEnum):
    """Message kinds; the number is key 1 of every payload."""

    BIRTH = 1
    DEATH = 2
    REPORT = 3
    TRIGGER = 4
    ACK = 5
    BRIDGE_STATE = 6
    DECISION = 7
    POOL_STATE = 8
    COMMAND = 9
    RISK = 10
    ENROLLMENT = 11
    POOL_EVENT = 12
    PAYOUT = 13
    CLAIM_ANSWER = 14
    DIAG = 15
    APPLICATION = 16
