"""Signed commands from the command line: sealed with the bridge key (sender `<id>-cli`) and
published on each device's command topic under the CLI's own broker account."""

from __future__ import annotations

from cloud_bridge import broker_cli, keyfile
from cloud_bridge.config import BridgeConfig
from cloud_bridge.errors import BridgeError

PUBLISH_TIMEOUT_S = 10


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
    """Seal one `name` command per device and publish them all (QoS 1); BridgeError when a
    device is not enrolled or the broker cannot be reached."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from cloud_bridge.publish import Publisher
    from cloud_bridge.registry import Registry
    from cloud_bridge.store import open_store
    from protocol import messages as m
    from protocol import topics

    key = keyfile.load(cfg.key_path)
    out: list[tuple[str, bytes]] = []
    with open_store(cfg.store_url) as store:
        publisher = Publisher(f"{cfg.instance}{broker_cli.CLI_SUFFIX}", key, store)
        for device_id in device_ids:
            with store.transaction() as tx:
                device = Registry().device(tx, device_id)
            if device is None:
                raise BridgeError(f"no device {device_id!r} is enrolled")
            sealed = publisher.sealed(m.Command, device=device_id, command=name, args=args)
            out.append((topics.command(device.fleet, device_id, name), sealed))
    client_id = f"{cfg.instance}{broker_cli.CLI_SUFFIX}-{publisher.boot}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if cfg.username:
        # Its own account: the broker makes the client id the username, so connecting as the
        # bridge itself would take the running bridge's session over.
        password = cfg.password_file.read_text().strip() if cfg.password_file else None
        client.username_pw_set(cfg.username + broker_cli.CLI_SUFFIX, password)
    try:
        client.connect(cfg.mqtt_host, cfg.mqtt_port)
    except OSError as exc:
        raise BridgeError(f"cannot reach the broker at {cfg.mqtt_url}: {exc}") from exc
    client.loop_start()
    try:
        for topic, sealed in out:
            client.publish(topic, sealed, 1).wait_for_publish(PUBLISH_TIMEOUT_S)
    finally:
        client.disconnect()
        client.loop_stop()
