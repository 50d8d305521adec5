"""What a simulated fleet looks like, before anything runs: households, devices, configs. Pure.

A household is one user (one credit pool) with one device of each requested kind, so with all
four kinds a user owns a phone, a wearable, a fridge and an EV. The agent configuration is
written here in full rather than patched from the starter config of `edge-agent provision`:
the fleet runs on a compressed calendar (`day_s` seconds a day) with trigger rules tuned so
that every scene (restock, health streak, EV tier, emergency) happens within a minute or two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.names import AGENT_KINDS

KINDS = AGENT_KINDS  # a household has one device of each kind a Linux agent runs as


@dataclass(frozen=True)
class DeviceSpec:
    """One simulated device: its id, kind, owner and the seed of its simulated physics."""

    device_id: str
    kind: str
    user: str
    seed: int


@dataclass(frozen=True)
class Tuning:
    """How fast the simulated fleet lives. Defaults suit a demo of about a minute and a half."""

    interval_s: float = 0.5  # between reports; triggers are polled as often (at most 1 s)
    day_s: float = 3.0  # one simulated day; six polls a day let a step count reach its total
    protocol: str = "5"
    backoff_cap_s: float = 2.0  # reconnect quickly after a broker restart
    status_interval_s: float = 0.5
    credentials: bool = False  # devices log in with their id and mqtt.pass (a secured broker)

    def __post_init__(self) -> None:
        if not 0.05 <= self.interval_s <= 3600:
            raise ValueError("the report interval must be 0.05 to 3600 seconds")
        if self.protocol not in ("5", "3.1.1"):
            raise ValueError('the MQTT protocol must be "5" or "3.1.1"')


def households(devices: int, kinds: Sequence[str] = KINDS) -> int:
    return math.ceil(devices / len(kinds))


def plan(
    devices: int, kinds: Sequence[str] = KINDS, seed: int = 1, prefix: str = ""
) -> list[DeviceSpec]:
    """`devices` devices in households of one of each kind (the last one may be incomplete).

    Ids are h01-phone, h01-wearable, ... and users u01, u02, ...; `prefix` keeps two fleets on
    one bridge apart. Seeds derive from `seed`, so a run repeats.
    """
    if devices < 1:
        raise ValueError("a fleet needs at least one device")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds:
        raise ValueError(
            f"unknown device kind {unknown[0] if unknown else '(none)'}; kinds: {', '.join(KINDS)}"
        )
    width = max(2, len(str(households(devices, kinds))))
    out = []
    for i in range(devices):
        house, kind = divmod(i, len(kinds))
        number = f"{house + 1:0{width}d}"
        out.append(
            DeviceSpec(
                device_id=f"{prefix}h{number}-{kinds[kind]}",
                kind=kinds[kind],
                user=f"{prefix}u{number}",
                seed=seed * 1_000_003 + i,
            )
        )
    return out


def users(specs: Sequence[DeviceSpec]) -> list[str]:
    return sorted({s.user for s in specs})


# One rule per fridge item: with five items below 40 % for about a third of each cycle, some
# fridge of the fleet is low within seconds. The cool-down keeps a fridge from stacking up more
# holds than the pool allows (16 live holds).
_FRIDGE_ITEMS = (("milk", 2590), ("eggs", 1890), ("juice", 1290), ("yogurt", 990), ("greens", 1590))

_SOS = """
[[triggers.rule]]
name = "sos"
kind = "emergency"
emergency = "illness"
priority = 255
cooldown_s = 5
"""


def rules(kind: str) -> str:
    """The demo's trigger rules for one kind of device (TOML)."""
    if kind == "fridge":
        return (
            "".join(
                f'\n[[triggers.rule]]\nname = "{item}-low"\nkind = "restock"\nitem = "{item}"\n'
                f"threshold_pct = 40\nfull_cost_fen = {cost}\npriority = 5\ncooldown_s = 20\n"
                for item, cost in _FRIDGE_ITEMS
            )
            + _SOS
        )
    if kind == "wearable":
        # Most wearers walk 6,000-13,000 steps a day, so 2,500 on 3 days in a row is met
        # within about four simulated days. The fall rule also takes explicit emergencies.
        return (
            '\n[[triggers.rule]]\nname = "steps"\nkind = "health_streak"\n'
            "goal_steps = 2500\nstreak_days = 3\npriority = 3\ncooldown_s = 0\n"
            '\n[[triggers.rule]]\nname = "fall"\nkind = "emergency"\nemergency = "illness"\n'
            "fall_detection = true\npriority = 255\ncooldown_s = 5\n"
        )
    if kind == "ev":
        # km_30d sits between 600 and 2,700 km; 500 km steps make the tier move now and then.
        return (
            '\n[[triggers.rule]]\nname = "ev-tier"\nkind = "ev_tier"\n'
            "tiers_km = [500, 1000, 1500, 2000, 2500, 3000]\npriority = 2\ncooldown_s = 0\n"
        ) + _SOS
    if kind == "phone":
        return _SOS
    raise ValueError(f"unknown device kind {kind!r}")


def agent_toml(
    spec: DeviceSpec,
    fleet: str,
    bridge_key_hex: str,
    url: str,
    tuning: Tuning,
    *,
    seed: int | None = None,
    client_id: str = "",
) -> str:
    """The whole agent.toml of a simulated device; data and key live beside it.

    `seed` and `client_id` exist for a clone: the same key and id on other hardware (another
    seed), connecting under its own MQTT client id so that the two do not knock each other off
    the broker.
    """
    mqtt = (
        f'[mqtt]\nurl = "{url}"\nprotocol = "{tuning.protocol}"\n'
        f"backoff_cap_s = {tuning.backoff_cap_s}\n"
        f"refused_cap_s = {min(tuning.backoff_cap_s, 4.0)}\n"
        + (f'client_id = "{client_id}"\n' if client_id else "")
        + (
            f'username = "{spec.device_id}"\npassword_file = "mqtt.pass"\n'
            if tuning.credentials
            else ""
        )
    )
    return (
        f'[device]\nid = "{spec.device_id}"\nfleet = "{fleet}"\nkind = "{spec.kind}"\n'
        f'data_dir = "."\n\n[bridge]\npublic_key = "{bridge_key_hex}"\n\n{mqtt}\n'
        f"[report]\ninterval_s = {tuning.interval_s}\n"
        f"status_interval_s = {tuning.status_interval_s}\n\n"
        f'[sensors]\nsource = "sim"\nseed = {spec.seed if seed is None else seed}\n'
        f"day_s = {tuning.day_s}\n{rules(spec.kind)}"
    )
