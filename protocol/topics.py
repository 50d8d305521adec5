"""Every MQTT topic of the contract is built and parsed here, and nowhere else.

Tree (modelled on the Sparkplug B namespace; docs/protocol.md section 1)::

    cp/v1/{fleet}/{device}/birth|death|report|trigger|enroll  device -> bridge
    cp/v1/{fleet}/{device}/application                        device -> bridge
    cp/v1/{fleet}/{device}/ack                                bridge -> device
    cp/v1/{fleet}/{device}/cmd/{command}                      bridge -> device
    cp/v1/{fleet}/pool/{user}/state|decision                  bridge -> cloud team
    cp/v1/{fleet}/risk/{device}                               bridge -> cloud team
    cp/v1/{fleet}/bridge/state                                bridge -> everyone (retained)

Ids are 1-64 bytes of ``[A-Za-z0-9._-]``, so they can never contain a wildcard, a level
separator or NUL. ``pool``, ``risk`` and ``bridge`` are reserved: a device with such an id would
be indistinguishable from the cloud branches at level 3.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol.errors import ProtocolError, Reason
from protocol.names import CLAIM_ACCOUNT_PREFIX, ID_RULE, SHARE_GROUP_PATTERN, is_device_id, is_id
from protocol.names import RESERVED_DEVICE_IDS as RESERVED_DEVICE_IDS  # re-exported

PREFIX = "cp/v1"


class Channel(enum.StrEnum):
    """The last fixed level of a topic; says who publishes and what the payload is."""

    BIRTH = "birth"
    DEATH = "death"
    REPORT = "report"
    TRIGGER = "trigger"
    ENROLL = "enroll"
    APPLICATION = "application"
    ACK = "ack"
    CMD = "cmd"
    POOL_STATE = "state"
    POOL_DECISION = "decision"
    POOL_EVENT = "event"
    POOL_PAYOUT = "payout"
    RISK = "risk"
    BRIDGE_STATE = "bridge_state"
    CLAIM = "claim"
    CLAIM_ANSWER = "claim_answer"
    DIAG = "diag"


POOL_CHANNELS = (
    Channel.POOL_STATE,
    Channel.POOL_DECISION,
    Channel.POOL_EVENT,
    Channel.POOL_PAYOUT,
)
"""Channels under cp/v1/{fleet}/pool/{user}/: the bridge publishes them for the cloud team."""

DEVICE_CHANNELS = (
    Channel.BIRTH,
    Channel.DEATH,
    Channel.REPORT,
    Channel.TRIGGER,
    Channel.ENROLL,
    Channel.APPLICATION,
)
"""Channels a device publishes on (the bridge ingests these). `enroll` carries key rotations;
`application` a phone's credit application."""

CLAIM_CHANNELS = (Channel.CLAIM, Channel.CLAIM_ANSWER)
"""Enrollment by claim (docs/protocol.md): a not yet enrolled device, logged in with the claim
account of its token, publishes its enrollment on `.../{claim account}/claim` and reads the
bridge's answer on `.../{claim account}/claim_answer`."""


def validate_id(value: str, what: str = "id") -> str:
    """Return `value` if it is a legal id, else raise ProtocolError(BAD_ID) naming `what`."""
    if not is_id(value):
        raise ProtocolError(Reason.BAD_ID, f"{what} {value!r} must be {ID_RULE}")
    return value


def validate_device_id(value: str) -> str:
    """Like validate_id, and refuse the ids reserved for the cloud branches of the tree."""
    validate_id(value, "device id")
    if not is_device_id(value):
        raise ProtocolError(Reason.BAD_ID, f"device id {value!r} is reserved")
    return value


@dataclass(frozen=True)
class Topic:
    """A parsed topic. `device`, `user` and `command` are set where the channel has them."""

    channel: Channel
    fleet: str
    device: str | None = None
    user: str | None = None
    command: str | None = None

    def __post_init__(self) -> None:
        validate_id(self.fleet, "fleet")
        needs_device = self.channel not in (
            *POOL_CHANNELS,
            Channel.BRIDGE_STATE,
        )
        if needs_device:
            if self.device is None:
                raise ProtocolError(Reason.BAD_TOPIC, f"{self.channel} topic needs a device")
            if self.channel in CLAIM_CHANNELS:  # the level names a claim account, no device
                validate_id(self.device, "claim account")
                if not self.device.startswith(CLAIM_ACCOUNT_PREFIX):
                    raise ProtocolError(Reason.BAD_TOPIC, f"{self.device!r} is no claim account")
            else:
                validate_device_id(self.device)
        elif self.device is not None:
            raise ProtocolError(Reason.BAD_TOPIC, f"{self.channel} topic has no device")
        if self.channel in POOL_CHANNELS:
            if self.user is None:
                raise ProtocolError(Reason.BAD_TOPIC, f"pool {self.channel} topic needs a user")
            validate_id(self.user, "user")
        elif self.user is not None:
            raise ProtocolError(Reason.BAD_TOPIC, f"{self.channel} topic has no user")
        if self.channel is Channel.CMD:
            if self.command is None:
                raise ProtocolError(Reason.BAD_TOPIC, "cmd topic needs a command name")
            validate_id(self.command, "command")
        elif self.command is not None:
            raise ProtocolError(Reason.BAD_TOPIC, f"{self.channel} topic has no command")

    def __str__(self) -> str:
        base = f"{PREFIX}/{self.fleet}"
        if self.channel is Channel.BRIDGE_STATE:
            return f"{base}/bridge/state"
        if self.channel in POOL_CHANNELS:
            return f"{base}/pool/{self.user}/{self.channel.value}"
        if self.channel is Channel.RISK:
            return f"{base}/risk/{self.device}"
        if self.channel is Channel.CMD:
            return f"{base}/{self.device}/cmd/{self.command}"
        return f"{base}/{self.device}/{self.channel.value}"


def device(fleet: str, device_id: str, channel: Channel) -> str:
    """Topic of a device channel: birth, death, report, trigger, enroll, application, ack or
    diag (the answer to a diag command, read by the operator's CLI: never ingested)."""
    if channel not in (*DEVICE_CHANNELS, Channel.ACK, Channel.DIAG):
        raise ProtocolError(Reason.BAD_TOPIC, f"{channel} is not a device channel")
    return str(Topic(channel, fleet, device=device_id))


def command(fleet: str, device_id: str, name: str) -> str:
    """Topic on which the bridge sends command `name` to a device."""
    return str(Topic(Channel.CMD, fleet, device=device_id, command=name))


def claim(fleet: str, account: str, channel: Channel = Channel.CLAIM) -> str:
    """Topic on which a claim account publishes its enrollment, or reads its answer."""
    if channel not in CLAIM_CHANNELS:
        raise ProtocolError(Reason.BAD_TOPIC, f"{channel} is not a claim channel")
    return str(Topic(channel, fleet, device=account))


def claim_filter(fleet: str) -> str:
    """Subscription filter for every claim of one fleet (the bridge answers them)."""
    return f"{PREFIX}/{validate_id(fleet, 'fleet')}/+/{Channel.CLAIM.value}"


def pool(fleet: str, user: str, channel: Channel) -> str:
    """Topic of a pool's retained state, its decisions, its events or its payouts."""
    if channel not in POOL_CHANNELS:
        raise ProtocolError(Reason.BAD_TOPIC, f"{channel} is not a pool channel")
    return str(Topic(channel, fleet, user=user))


def risk(fleet: str, device_id: str) -> str:
    """Topic of risk alerts and rejections about one device."""
    return str(Topic(Channel.RISK, fleet, device=device_id))


def bridge_state(fleet: str) -> str:
    """Retained topic that says whether the bridge is online."""
    return str(Topic(Channel.BRIDGE_STATE, fleet))


def pool_state_filter(fleet: str) -> str:
    """Subscription filter for every pool's retained state in one fleet (the bridge watches
    them: cloud_bridge.guard)."""
    return f"{PREFIX}/{validate_id(fleet, 'fleet')}/pool/+/{Channel.POOL_STATE.value}"


_LEAF_CHANNELS = frozenset(
    c.value for c in (*DEVICE_CHANNELS, Channel.ACK, Channel.DIAG, *CLAIM_CHANNELS)
)


def parse(topic: str) -> Topic:
    """Parse any topic of the tree; raise ProtocolError(BAD_TOPIC or BAD_ID) otherwise."""
    if not isinstance(topic, str):
        raise ProtocolError(Reason.BAD_TOPIC, "topic must be a string")
    parts = topic.split("/")
    if len(parts) < 5 or parts[0] != "cp" or parts[1] != "v1":
        raise ProtocolError(Reason.BAD_TOPIC, f"{topic!r} is not under {PREFIX}/")
    fleet, third, rest = parts[2], parts[3], parts[4:]
    if third == "bridge" and rest == ["state"]:
        return Topic(Channel.BRIDGE_STATE, fleet)
    if third == "pool" and len(rest) == 2 and rest[1] in {c.value for c in POOL_CHANNELS}:
        return Topic(Channel(rest[1]), fleet, user=rest[0])
    if third == "risk" and len(rest) == 1:
        return Topic(Channel.RISK, fleet, device=rest[0])
    if third in RESERVED_DEVICE_IDS:
        raise ProtocolError(Reason.BAD_TOPIC, f"{topic!r} is not a topic of the tree")
    if len(rest) == 2 and rest[0] == "cmd":
        return Topic(Channel.CMD, fleet, device=third, command=rest[1])
    if len(rest) == 1 and rest[0] in {
        c.value for c in (*DEVICE_CHANNELS, Channel.ACK, *CLAIM_CHANNELS)
    }:
        return Topic(Channel(rest[0]), fleet, device=third)
    raise ProtocolError(Reason.BAD_TOPIC, f"{topic!r} is not a topic of the tree")


def ingest_filters(fleet: str | None = None, share_group: str | None = None) -> list[str]:
    """Subscription filters for the bridge: every device channel of one fleet (or all fleets).

    With `share_group`, the filters are MQTT 5 shared subscriptions (``$share/{group}/...``), so
    several bridge processes split the load.
    """
    level = "+" if fleet is None else validate_id(fleet, "fleet")
    filters = [f"{PREFIX}/{level}/+/{c.value}" for c in DEVICE_CHANNELS]
    if share_group is not None:
        if not SHARE_GROUP_PATTERN.fullmatch(share_group):
            raise ProtocolError(Reason.BAD_ID, f"share group {share_group!r} is not a legal name")
        filters = [f"$share/{share_group}/{f}" for f in filters]
    return filters


def device_inbox_filters(fleet: str, device_id: str) -> list[str]:
    """What a device subscribes to: its ack, its commands and the bridge state."""
    validate_id(fleet, "fleet")
    validate_device_id(device_id)
    return [
        f"{PREFIX}/{fleet}/{device_id}/ack",
        f"{PREFIX}/{fleet}/{device_id}/cmd/+",
        bridge_state(fleet),
    ]
