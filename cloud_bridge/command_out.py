"""Signed commands from the command line: sealed with the bridge key (sender `<id>-cli`) and
stored in the outbox; the running bridge publishes them on each device's command topic."""

from __future__ import annotations

from cloud_bridge import keyfile
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError


def active_devices(cfg: BridgeConfig, kinds: frozenset[str] | None = None) -> list[str]:
    """The fleet's active devices, only those of `kinds` when given."""
    from cloud_bridge.device_state import ACTIVE
    from cloud_bridge.registry import Registry
    from cloud_bridge.store import open_store

    with open_store(cfg.store_url) as store, store.transaction() as tx:
        return [
            d.device_id
            for d in Registry().devices(tx)
            if d.status == ACTIVE and d.fleet == cfg.fleet and (kinds is None or d.kind in kinds)
        ]


def send_commands(
    cfg: BridgeConfig, device_ids: list[str], name: str, args: dict[str, int | str | bytes | bool]
) -> None:
    """Seal one `name` command per device and store them all in the outbox in one transaction,
    for the running bridge to publish (QoS 1, in commit order, like the pool outputs of operator
    commands); BridgeError, storing nothing, when a device is not enrolled. Publishing here,
    each process on its own connection, let two overlapping runs deliver a lower number after
    a higher one, which the device refuses as stale (review finding 6)."""
    from cloud_bridge.outputs import Outputs
    from cloud_bridge.publish import operator_publisher
    from cloud_bridge.registry import Registry
    from cloud_bridge.store import open_store

    key = keyfile.load(cfg.key_path)
    with open_store(cfg.store_url) as store:
        outputs = Outputs(operator_publisher(cfg.instance, key, store))
        with store.transaction() as tx:
            pending = []
            for device_id in device_ids:
                device = Registry().device(tx, device_id)
                if device is None:
                    raise BridgeError(f"no device {device_id!r} is enrolled")
                pending.append(outputs.command(tx, device.fleet, device_id, name, args))
            outputs.seal_and_store(tx, pending)
