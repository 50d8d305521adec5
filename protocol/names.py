"""The names of the contract, each defined once: ids, reserved device ids, share groups, kinds.

These are wire-level facts, which is why they live in protocol/ and nowhere else: an id becomes
a level of an MQTT topic (so it may hold no wildcard, level separator or NUL), and a device kind
travels in every birth certificate and enrollment record. The agent's and the bridge's
configuration, the pool's user and hold ids, the topic builder and the message fields all
import them from here.

Device kinds: `DEVICE_KINDS` is what the wire accepts; `AGENT_KINDS` is the subset a Linux edge
agent runs as (agent.toml `[device] kind`, the simulator's profiles). The fifth kind, `mcu`, is
the ESP32 firmware: it has no agent.toml and no simulated profile; the sixth, `merchant`, is a
shop's payment QR stand or POS. `AGENT_KINDS` is ordered: the
simulator derives each device's random streams from the index of its kind.
"""

from __future__ import annotations

import re
from typing import Final, TypeGuard

ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""An id of the topic tree: fleet, device, pool user, command, hold, rule and bridge names."""

ID_RULE: Final = "1-64 characters of A-Z a-z 0-9 . _ -"
"""`ID_PATTERN` in words, for error messages."""

RESERVED_DEVICE_IDS: Final = frozenset({"pool", "risk", "bridge"})
"""Level 3 of the tree names a device or one of these cloud branches, so no device may use them."""

SHARE_GROUP_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""An MQTT 5 shared-subscription group name (`$share/{group}/...`): an id without dots."""

PHONE_KIND: Final = "phone"
"""The user's phone: the one kind that may send a credit application (messages.Application)."""

AGENT_KINDS: Final = (PHONE_KIND, "wearable", "fridge", "ev")
"""The kinds a Linux edge agent runs as, in the simulator's order."""

MCU_KIND: Final = "mcu"
"""The ESP32 firmware's kind."""

MERCHANT_KIND: Final = "merchant"
"""A micro-merchant's payment QR stand or POS: reports each day's turnover (a `turnover`
trigger), which the merchant's pool limit follows. No agent profile: it runs the merchant's own
software or the firmware."""

DEVICE_KINDS: Final = frozenset({*AGENT_KINDS, MCU_KIND, MERCHANT_KIND})
"""Every kind the wire accepts in a birth certificate or an enrollment record."""


def is_id(value: object) -> TypeGuard[str]:
    """True if `value` is a string matching `ID_PATTERN` in full."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


CLAIM_ACCOUNT_PREFIX = "claim-"
"""Claim accounts (protocol.claims) are named so; no device id may start with it."""


def is_device_id(value: object) -> TypeGuard[str]:
    """True if `value` is an id, not one of the reserved cloud branches and not a claim
    account's name."""
    return (
        is_id(value)
        and value not in RESERVED_DEVICE_IDS
        and not value.startswith(CLAIM_ACCOUNT_PREFIX)
    )
