"""The one exception of the wire contract and the reason codes every rejection carries.

A reason code is a short, stable, lower-case string: it is what metrics are labelled with, what
the bridge publishes on the risk topic and what the cloud team greps for. Never rename one; add.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Why a message (or a topic, or an id) was refused."""

    # Envelope and encoding
    OVERSIZE = "oversize"
    BAD_CBOR = "bad_cbor"
    NOT_COSE = "not_cose"
    BAD_HEADER = "bad_header"
    UNSUPPORTED_ALG = "unsupported_alg"
    BAD_SIGNATURE = "bad_signature"
    # Who sent it
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_KEY = "revoked_key"
    RETIRED_KEY = "retired_key"  # rotated out: a newer key of the same device signs now
    SENDER_MISMATCH = "sender_mismatch"
    WRONG_DEVICE_KIND = "wrong_device_kind"  # a kind that may not send this message
    # Payload schema
    NOT_A_MAP = "not_a_map"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    UNKNOWN_KIND = "unknown_kind"
    UNSUPPORTED_VERSION = "unsupported_version"
    # Topic
    BAD_TOPIC = "bad_topic"
    BAD_ID = "bad_id"
    TOPIC_MISMATCH = "topic_mismatch"
    # Ordering (protocol.replay)
    REPLAY = "replay"
    STALE = "stale"


class ProtocolError(Exception):
    """A message, topic or id that does not satisfy the wire contract.

    `reason` is machine-readable (count it, publish it); the message text is for people.
    """

    def __init__(self, reason: Reason, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
