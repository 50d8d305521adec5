"""A private MQTT broker for the demo and the fleet simulator: Mosquitto when it is installed,
otherwise an embedded pure-Python broker (amqtt, from the `demo` extra) in a child process.

Both run on an ephemeral port on 127.0.0.1 as children that die with their parent, and can be
stopped, started and restarted, so the demo can restart the broker mid-run. The embedded broker
speaks MQTT 3.1.1 only (amqtt has no MQTT 5), has no persistence (a restart forgets every
session, subscription and retained message) and no shared subscriptions: `protocol` says which
MQTT version clients must use.

    python -m tools.broker [--broker auto|mosquitto|embedded]   # run one until Ctrl-C
    python -m tools.broker --auth-dir DIR    # Mosquitto with DIR/passwd and DIR/acl

With `auth_dir` (`--auth-dir`), Mosquitto runs with the product's security settings
(cloud_bridge.broker_config: no anonymous clients, the password and ACL files in that
directory as `cloud-bridge broker-config` writes them, client id = username, the message size
limit) and a pid file, so `cloud-bridge` can make it reload after enroll and revoke. Without it
the broker is open: anyone on 127.0.0.1 may connect and publish anything. The embedded broker
is always open.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import keyfiles
from cloud_bridge import broker_config
from tools.procs import die_with_parent

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
KINDS = ("auto", "mosquitto", "embedded")


class BrokerError(RuntimeError):
    """A broker could not be started (not installed, port not up, bad configuration)."""


class Broker(Protocol):
    """What the demo needs from a broker, whichever implementation runs it."""

    name: str
    protocol: str  # the MQTT version clients must speak: "5" or "3.1.1"
    port: int

    @property
    def url(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def close(self) -> None: ...


PORT_FLOOR = 20_000
"""Lowest port `free_port` picks: above the well-known and registered services most machines run."""


def _ephemeral_start() -> int:
    """The first port the kernel hands to outgoing connections (Linux: ip_local_port_range)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, below the kernel's range for
    outgoing connections: a broker stopped and started again on it (a restart test, the demo's
    broker restart) must not find it taken meanwhile by some client's own end of a connection,
    which the kernel's choice for a listener (bind to port 0) could not rule out."""
    top = _ephemeral_start()
    rng = random.SystemRandom()
    for _ in range(100 if top > PORT_FLOOR + 100 else 0):
        port = rng.randrange(PORT_FLOOR, top)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded machine
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, up: bool, timeout_s: float) -> bool:
    """True once a TCP connection to the port opens (up) or is refused (down)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return True
        except OSError:
            if not up:
                return True
        time.sleep(0.02)
    return False


def stop_child(proc: subprocess.Popen[bytes] | None, port: int, grace_s: float) -> None:
    """SIGTERM, SIGKILL after `grace_s`, then wait until the port is closed."""
    if proc is None:
        return
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    wait_port(port, up=False, timeout_s=5)


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if Path(p).exists()), None)


class Mosquitto:
    """Mosquitto as a child process with its own config, persistence directory and log.

    Persistence is on, so a restart keeps retained messages and persistent sessions; the demo's
    zero-loss check does not depend on that (devices keep every message until the bridge acks).
    """

    name = "mosquitto"
    protocol = "5"

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        *,
        persistence: bool = True,
        max_queued_messages: int = 10_000,
        extra_config: str = "",
        auth_dir: Path | None = None,
    ) -> None:
        """`persistence=False` makes a restart lose every queued message; `extra_config` is
        appended to the generated mosquitto.conf (another listener, TLS files, limits);
        `auth_dir` holds passwd and acl (empty ones are made if absent: nobody may connect
        until `cloud-bridge broker-config` writes them)."""
        self.workdir = workdir
        self.auth_dir = auth_dir.resolve() if auth_dir is not None else None
        self.port = port or free_port()
        self.persistence = persistence
        self.max_queued_messages = max_queued_messages
        self.extra_config = extra_config
        self.binary = mosquitto_binary()
        if self.binary is None:
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto)")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    @property
    def pid_file(self) -> Path:
        return self.workdir.resolve() / "mosquitto.pid"

    @property
    def secure(self) -> bool:
        return self.auth_dir is not None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGHUP)

    def _security(self) -> list[str]:
        if self.auth_dir is None:
            return [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        self.auth_dir.mkdir(parents=True, exist_ok=True)
        for name in (broker_config.PASSWD, broker_config.ACL):
            path = self.auth_dir / name
            if not path.exists():
                keyfiles.write_private(path, b"")
        return [
            *broker_config.security_lines(self.auth_dir),
            *broker_config.listener_lines(self.port, "127.0.0.1"),
            f"pid_file {self.pid_file}",
        ]

    def _config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            *self._security(),
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"max_queued_messages {self.max_queued_messages}",
            # Small QoS 1 packets would otherwise wait for delayed ACKs (Nagle): 40 ms stalls.
            "set_tcp_nodelay true",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it drops to 'mosquitto', who cannot write here
        conf = self.workdir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n" + self.extra_config)
        return conf

    def start(self) -> None:
        if self.running:
            return
        assert self.binary is not None
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self._config())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        if not wait_port(self.port, up=True, timeout_s=10):
            self.stop()
            log = self.log_path.read_text() if self.log_path.exists() else "(no log)"
            raise BrokerError(f"mosquitto did not start on port {self.port}:\n{log[-2000:]}")

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the broker saves its persistence file first."""
        stop_child(self.proc, self.port, grace_s=10)
        self.proc = None

    def kill(self) -> None:
        """Crash (SIGKILL): nothing is saved."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()


class Embedded:
    """amqtt's pure-Python broker, in a child process of its own (`--serve` below).

    Not in this process's event loop: amqtt 0.12.1's graceful shutdown hangs when clients are
    mid-flight (seen on the second restart under the demo's load), and a loop abandoned in a
    thread keeps its client sockets open, so clients would not even notice the broker going
    away. A process that exits frees every socket at once. It keeps nothing on disk either way:
    a restart forgets sessions, subscriptions and retained messages, and clients reconnect,
    resubscribe and resend whatever the bridge has not acknowledged end to end.
    """

    name = "embedded"
    protocol = "3.1.1"

    def __init__(self, workdir: Path, port: int = 0) -> None:
        if importlib.util.find_spec("amqtt") is None:
            raise BrokerError(
                "the embedded broker needs amqtt: pip install -e '.[demo]' (or install "
                "mosquitto and use --broker mosquitto)"
            )
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "embedded.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "tools.broker", "--serve", "--port", str(self.port)]
        with open(self.workdir / "embedded.out", "ab") as out:
            self.proc = subprocess.Popen(
                [*argv, "--dir", str(self.workdir.resolve())],
                cwd=Path(__file__).resolve().parents[1],  # where `tools` is importable
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                preexec_fn=die_with_parent,
                start_new_session=True,  # a Ctrl-C is for the demo, which stops us in order
            )
        if not wait_port(self.port, up=True, timeout_s=15):
            self.stop()
            tail = (self.workdir / "embedded.out").read_text(errors="replace")[-2000:]
            raise BrokerError(f"the embedded broker did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        stop_child(self.proc, self.port, grace_s=3)
        self.proc = None

    def close(self) -> None:
        self.stop()


def serve_embedded(port: int, workdir: Path) -> int:
    """The child side of `Embedded`: amqtt on 127.0.0.1:`port` until SIGTERM or SIGINT."""
    from amqtt.broker import Broker as AmqttBroker

    workdir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(workdir / "embedded.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("amqtt", "asyncio", "transitions"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }

    async def serve() -> None:
        broker = _patched(AmqttBroker)(config)
        await broker.start()
        print(f"amqtt listening on 127.0.0.1:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # No graceful shutdown (see Embedded): there is nothing to save, and exiting closes
        # every client connection at once.
        logging.shutdown()
        os._exit(0)

    asyncio.run(serve())
    return 0


class _SnapshotDict(dict):  # type: ignore[type-arg]
    """A dict whose iteration walks a copy of its keys, so it may change meanwhile."""

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self.keys()))


def _patched(base: type[Any]) -> type[Any]:
    """amqtt 0.12.1's broker with two faults fixed that the demo runs into:

    - On every connect it walks its subscription table across awaits; when another client
      subscribes meanwhile that raises "dictionary changed size during iteration" and the
      connecting client is never served. The table iterates over a snapshot instead.
    - On every connect it sends the client the retained messages matching *any* client's
      subscriptions (so an agent got pool states, and the bridge could get them and count them
      as bad topics). Only filters that the client itself holds are served now.
    """

    class PatchedBroker(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._subscriptions = _SnapshotDict()

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            holders = self._subscriptions.get(subscription[0], [])
            if any(s.client_id == session.client_id for s, _qos in holders):
                await super()._publish_retained_messages_for_subscription(subscription, session)

    return PatchedBroker


def open_broker(
    kind: str, workdir: Path, port: int = 0, auth_dir: Path | None = None
) -> Mosquitto | Embedded:
    """The broker `kind` asks for (auto: Mosquitto when installed, else embedded), not started.
    `auth_dir` needs Mosquitto (the embedded broker has no password or ACL files)."""
    if kind not in KINDS:
        raise BrokerError(f"--broker must be one of {', '.join(KINDS)}, not {kind!r}")
    if kind == "mosquitto" or (kind == "auto" and mosquitto_binary()):
        return Mosquitto(workdir, port, auth_dir=auth_dir)
    if auth_dir is not None:
        raise BrokerError(
            "--auth-dir needs Mosquitto (apt-get install mosquitto); the embedded broker "
            "has no authentication"
        )
    return Embedded(workdir, port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.broker", description=__doc__)
    parser.add_argument("--broker", default="auto", choices=KINDS)
    parser.add_argument("--dir", type=Path, default=Path("out/broker"), help="work directory")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--auth-dir",
        type=Path,
        default=None,
        help="Mosquitto with passwd and acl from this directory (cloud-bridge broker-config)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # Embedded's child
    args = parser.parse_args(argv)
    if args.serve:
        return serve_embedded(args.port, args.dir)
    try:
        broker = open_broker(args.broker, args.dir, args.port, args.auth_dir)
        broker.start()
    except BrokerError as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return 2
    print(f"{broker.name} (MQTT {broker.protocol}) on {broker.url}; Ctrl-C stops it", flush=True)
    if args.auth_dir is None:
        logging.getLogger("tools.broker").warning(
            "the broker is open: any local client may connect and publish (use --auth-dir)"
        )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    broker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
