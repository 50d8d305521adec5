"""A private Mosquitto per test (or per session) on an ephemeral port, with stop/start/restart.

The one launcher of the project (tools/broker.py), with the tests' defaults: its own config
file, persistence directory and log in a temporary directory, so fault tests can stop it, kill
it, restart it and read its log without touching any other broker on the machine.

`secure=True` runs it as shipped: no anonymous clients, password and ACL files in
`WORKDIR/auth` (empty until a bridge's `cloud-bridge broker-config` or `admit` below writes
them), client id = username, the message size limit. The fixtures in tests/conftest.py start
secured brokers unless a test asks for an open one. `running_at(url)` finds the harness broker
behind a URL, so the bridge harness can set a bridge up for it without more arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from cloud_bridge import broker_files
from cloud_bridge.store.broker_repo import BrokerAccount
from tools.broker import Mosquitto as _Mosquitto
from tools.broker import free_port

__all__ = ["Mosquitto", "free_port"]

log = logging.getLogger(__name__)


class Mosquitto(_Mosquitto):
    """`persistence=False` makes a restart lose every queued message (the broker-crash case);
    Mosquitto's own default of 1000 queued messages per offline client is kept."""

    _running: ClassVar[dict[int, Mosquitto]] = {}

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        *,
        persistence: bool = True,
        max_queued_messages: int = 1000,
        extra_config: str = "",
        secure: bool = False,
    ) -> None:
        super().__init__(
            workdir,
            port,
            persistence=persistence,
            max_queued_messages=max_queued_messages,
            extra_config=extra_config,
            auth_dir=workdir / "auth" if secure else None,
        )
        if not secure:
            log.warning("test broker %s is open: any client may connect and publish", workdir)

    def start(self) -> None:
        super().start()
        Mosquitto._running[self.port] = self

    def stop(self) -> None:
        super().stop()
        Mosquitto._running.pop(self.port, None)

    @classmethod
    def running_at(cls, url: str) -> Mosquitto | None:
        """The harness broker listening at `url` (mqtt://127.0.0.1:PORT), if one is."""
        port = url.rsplit(":", 1)[-1]
        return cls._running.get(int(port)) if port.isdigit() else None

    def admit(self, fleet: str, accounts: Iterable[BrokerAccount]) -> None:
        """Write these accounts as the broker's files and reload it (tests without a bridge
        database, such as the agent's with a stand-in bridge)."""
        assert self.auth_dir is not None, "admit() is for a secured broker"
        broker_files.apply(fleet, accounts, self.auth_dir, pid_file=self.pid_file)
