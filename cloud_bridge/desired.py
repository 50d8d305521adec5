"""Desired and reported configuration of a device (issue 18 item 4): pure decisions on values.

The bridge holds, per device, a versioned desired configuration (dotted agent keys such as
`report.interval_s`); the device reports the version it runs in every birth. When the two
differ, the bridge sends the whole desired state as one signed `config` command that carries
the version (`protocol.messages.CONFIG_VERSION_ARG`); the device's "ok" answer to that command
(matched by its seq) or its next birth says it converged. The fleet's drift is the number of
devices whose reported version lags the desired one. The SQL is `store.desired_repo`'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from cloud_bridge.errors import BridgeError
from protocol.messages import CONFIG_VERSION_ARG, REMOTE_CONFIG_KEYS

Value = int | str | bool
MAX_KEYS = 15
"""Keys of one desired state: a command carries at most 16 arguments, one is the version."""
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}\.[a-z][a-z0-9_]{0,31}")


class DesiredError(BridgeError):
    """An assignment that cannot become desired configuration (says which and how to fix)."""


@dataclass(frozen=True)
class DeviceConfig:
    """One device's row: what is wanted, what it said it runs, the last command sent."""

    device_id: str
    desired_version: int = 0
    desired: Mapping[str, Value] = field(default_factory=lambda: MappingProxyType({}))
    reported_version: int = 0
    sent_seq: int = 0
    sent_version: int = 0

    @property
    def drifted(self) -> bool:
        """The device does not (yet) run the desired version."""
        return self.reported_version != self.desired_version


def must_send(row: DeviceConfig | None, reported_version: int) -> bool:
    """On a birth reporting `reported_version`: send the desired state? Only when there is one
    (version > 0) and the device runs another version."""
    return row is not None and row.desired_version > 0 and reported_version != row.desired_version


def command_args(row: DeviceConfig) -> dict[str, int | str | bytes | bool]:
    """The `config` command's arguments for the desired state: its keys and its version."""
    return {**row.desired, CONFIG_VERSION_ARG: row.desired_version}


def confirmed_version(row: DeviceConfig | None, cmd_seq: int, cmd_result: str) -> int | None:
    """The version a device's answer confirms: the one carried by the config command of seq
    `cmd_seq`, if that is the last one sent and the device answered "ok"; else None."""
    if row is None or cmd_seq == 0 or row.sent_seq != cmd_seq or cmd_result != "ok":
        return None
    return row.sent_version


def parse_value(text: str) -> Value:
    """`30` -> 30, `true`/`false` -> bool, anything else stays text (no floats: integers only,
    as in the rest of the contract)."""
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


def parse_assignments(items: Sequence[str], base: Mapping[str, Value]) -> dict[str, Value]:
    """`base` with each `section.key=value` applied (`section.key=` removes the key)."""
    out = dict(base)
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not _KEY.fullmatch(key):
            raise DesiredError(
                f"{item!r} must be section.key=value with a dotted agent key; "
                "for example: report.interval_s=30"
            )
        if key not in REMOTE_CONFIG_KEYS:
            raise DesiredError(
                f"{key!r} cannot be set remotely (the agent refuses it); the keys that can: "
                + ", ".join(sorted(REMOTE_CONFIG_KEYS))
            )
        if text == "":
            out.pop(key, None)
            continue
        value = parse_value(text)
        if isinstance(value, bool) or not isinstance(value, int):
            raise DesiredError(f"{item!r}: {key} takes a whole number, for example {key}=30")
        out[key] = value
    if len(out) > MAX_KEYS:
        raise DesiredError(f"{len(out)} keys: a desired configuration holds at most {MAX_KEYS}")
    return out


def drift(rows: Sequence[DeviceConfig]) -> int:
    """Devices whose reported version lags the desired one (a reference for the SQL count)."""
    return sum(1 for r in rows if r.desired_version > 0 and r.reported_version < r.desired_version)
