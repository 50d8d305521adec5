"""Mosquitto's password file, ACL file and mosquitto.conf, from the broker accounts: pure.

Who may do what on the broker (docs/protocol.md section 8):

- a device connects with username = its device id; the broker sets its client id to the
  username (`use_username_as_clientid`), so nobody can take over another client's session. It
  may publish only on its own device channels and read only its own ack and commands and the
  bridge state (ACL patterns on `%u`, one fleet per file);
- a bridge account reads the fleet's tree and is the only one that may publish acks, commands,
  pool states and decisions, risk notes and the bridge state;
- an observer account (the cloud team's consumers, the demo's watcher, `tools.tap`) reads the
  fleet's whole tree and publishes nothing;
- a claim account (`claim-<token id>`, while its claim token is valid: protocol.claims) may
  only publish its enrollment on its claim topic and read the answer on its answer topic;
- an anonymous client cannot connect at all (`allow_anonymous false`); a revoked device is
  left out of the password file, and a reload disconnects it.

`cloud_bridge.broker_files` writes the texts and reloads the broker; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cloud_bridge.device_state import ACTIVE
from cloud_bridge.errors import BridgeError
from cloud_bridge.store.broker_repo import BRIDGE, CLAIM, DEVICE, OBSERVER, BrokerAccount
from protocol import mqtt_password, topics
from protocol.cose import MAX_ENVELOPE_BYTES
from protocol.errors import ProtocolError
from protocol.topics import DEVICE_CHANNELS, PREFIX, Channel

PASSWD, ACL, CONF = "passwd", "acl", "mosquitto.conf"
MESSAGE_SIZE_LIMIT = MAX_ENVELOPE_BYTES
"""Largest payload the broker accepts: the largest signed envelope of the contract (4352 B).
Mosquitto's default is 256 MB, which let two 64 MiB messages raise the bridge to 332 MB."""
MAX_PACKET_SIZE = MAX_ENVELOPE_BYTES + 1024
"""Largest MQTT packet (payload, topic, properties): a client sending more is disconnected."""
HEADER = "# Written by cloud-bridge broker-config from the device registry: do not edit.\n"


class BrokerConfigError(BridgeError):
    """The accounts cannot be written as broker files (a bad name, hash or collision)."""


@dataclass(frozen=True)
class BrokerFiles:
    """The three files' texts, by file name."""

    passwd: str
    acl: str
    conf: str

    def by_name(self) -> dict[str, str]:
        return {PASSWD: self.passwd, ACL: self.acl, CONF: self.conf}


def admitted(accounts: Iterable[BrokerAccount]) -> list[BrokerAccount]:
    """The accounts that may connect: every bridge and observer account, and the device
    accounts of enrolled, active devices (a revoked device is left out)."""
    return [a for a in accounts if a.role != DEVICE or a.device_status == ACTIVE]


def _check(account: BrokerAccount) -> None:
    try:
        topics.validate_id(account.username, f"{account.role} account")
        mqtt_password.parse(account.password_hash)
    except ProtocolError as exc:
        raise BrokerConfigError(f"broker account {account.username!r}: {exc}") from exc


def password_file(accounts: Iterable[BrokerAccount]) -> str:
    """Mosquitto's password file: `username:$7$...` for each admitted account, by name."""
    lines = []
    for account in sorted(admitted(accounts), key=lambda a: a.username):
        _check(account)
        lines.append(f"{account.username}:{account.password_hash}\n")
    return "".join(lines)


def acl_file(fleet: str, accounts: Iterable[BrokerAccount]) -> str:
    """Mosquitto's ACL file for one fleet: device patterns, then one block per service account.

    Lines before the first `user` would be the anonymous client's: there are none. `pattern`
    lines apply to every authenticated client with `%u` replaced by its username; service
    account names are ids too and never device ids (enrollment refuses the collision), so the
    device patterns give them nothing a device could use.
    """
    topics.validate_id(fleet, "fleet")
    base = f"{PREFIX}/{fleet}"
    out = [
        HEADER,
        f"# Fleet {fleet}. Devices: username = device id = client id.\n",
    ]
    out += [f"pattern write {base}/%u/{c.value}\n" for c in (*DEVICE_CHANNELS, Channel.DIAG)]
    out += [
        f"pattern read {base}/%u/{Channel.ACK.value}\n",
        f"pattern read {base}/%u/{Channel.CMD.value}/+\n",
        f"pattern read {topics.bridge_state(fleet)}\n",
    ]
    services = sorted((a for a in admitted(accounts) if a.role != DEVICE), key=lambda a: a.username)
    for account in services:
        _check(account)
        out.append(f"\nuser {account.username}\n")
        # The device patterns expand to this name too: deny them, so a service account
        # cannot publish as if it were a device.
        out += [
            f"topic deny {base}/{account.username}/{c.value}\n"
            for c in (*DEVICE_CHANNELS, Channel.DIAG)
        ]
        out += [f"topic {rule}\n" for rule in _service_rules(fleet, account.role, account.username)]
    return "".join(out)


def _service_rules(fleet: str, role: str, username: str) -> list[str]:
    base = f"{PREFIX}/{fleet}"
    if role == BRIDGE:
        return [
            f"read {base}/#",
            f"write {base}/+/{Channel.ACK.value}",
            f"write {base}/+/{Channel.CMD.value}/+",
            f"write {base}/+/{Channel.CLAIM_ANSWER.value}",
            f"write {base}/pool/+/{Channel.POOL_STATE.value}",
            f"write {base}/pool/+/{Channel.POOL_DECISION.value}",
            f"write {base}/pool/+/{Channel.POOL_EVENT.value}",
            f"write {base}/pool/+/{Channel.POOL_PAYOUT.value}",
            f"write {base}/risk/+",
            f"write {topics.bridge_state(fleet)}",
        ]
    if role == OBSERVER:
        return [f"read {base}/#"]
    if role == CLAIM:  # its own claim and answer, nothing else
        return [
            f"write {topics.claim(fleet, username)}",
            f"read {topics.claim(fleet, username, Channel.CLAIM_ANSWER)}",
        ]
    raise BrokerConfigError(f"no ACL rules for role {role!r}")


def security_lines(auth_dir: Path) -> list[str]:
    """The global lines of mosquitto.conf that make it authenticate and authorise."""
    return [
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {auth_dir / PASSWD}",
        f"acl_file {auth_dir / ACL}",
        f"message_size_limit {MESSAGE_SIZE_LIMIT}",
        f"max_packet_size {MAX_PACKET_SIZE}",
    ]


def listener_lines(port: int, host: str = "") -> list[str]:
    """A listener and the options that must follow it (Mosquitto reads them per listener)."""
    return [
        f"listener {port}{' ' + host if host else ''}",
        # The client id is the username: no client can take another's session over.
        "use_username_as_clientid true",
    ]


MAX_QUEUED = 100_000
"""Messages kept per offline client's session (commands and acks waiting for a device)."""


def mosquitto_conf(auth_dir: Path, port: int = 1883, pid_file: Path | None = None) -> str:
    """A mosquitto.conf for production: the security lines, one listener, persistence."""
    lines = [HEADER.rstrip("\n"), *security_lines(auth_dir), *listener_lines(port)]
    if pid_file is not None:
        lines.append(f"pid_file {pid_file}")
    # Devices keep their own outbox until acked, so a queue cap loses nothing of theirs; it
    # bounds what an offline client's session costs the broker (Mosquitto's default: 1000).
    lines += ["persistence true", "set_tcp_nodelay true", f"max_queued_messages {MAX_QUEUED}"]
    return "\n".join(lines) + "\n"


def render(
    fleet: str,
    accounts: Iterable[BrokerAccount],
    auth_dir: Path,
    port: int = 1883,
    pid_file: Path | None = None,
) -> BrokerFiles:
    """All three files for these accounts."""
    rows = list(accounts)
    return BrokerFiles(
        password_file(rows), acl_file(fleet, rows), mosquitto_conf(auth_dir, port, pid_file)
    )
