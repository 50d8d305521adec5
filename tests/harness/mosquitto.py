"""A private Mosquitto per test (or per session) on an ephemeral port, with stop/start/restart.

The one launcher of the project (tools/broker.py), with the tests' defaults: its own config
file, persistence directory and log in a temporary directory, so fault tests can stop it, kill
it, restart it and read its log without touching any other broker on the machine.
"""

from __future__ import annotations

from pathlib import Path

from tools.broker import Mosquitto as _Mosquitto
from tools.broker import free_port

__all__ = ["Mosquitto", "free_port"]


class Mosquitto(_Mosquitto):
    """`persistence=False` makes a restart lose every queued message (the broker-crash case);
    Mosquitto's own default of 1000 queued messages per offline client is kept."""

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        *,
        persistence: bool = True,
        max_queued_messages: int = 1000,
        extra_config: str = "",
        auth_dir: Path | None = None,
    ) -> None:
        super().__init__(
            workdir,
            port,
            persistence=persistence,
            max_queued_messages=max_queued_messages,
            extra_config=extra_config,
            auth_dir=auth_dir,
        )
