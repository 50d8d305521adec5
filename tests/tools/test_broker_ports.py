"""The ports private brokers listen on: never in the kernel's range for outgoing connections,
where a client's own end of a connection could take a restarting broker's port (seen in CI: a
broker stopped for an outage test could not listen again, "Address already in use")."""

from __future__ import annotations

import socket
from pathlib import Path

from tools.broker import PORT_FLOOR, free_port


def test_free_ports_lie_below_the_outgoing_range_and_can_be_listened_on() -> None:
    first_outgoing = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(50)}
    assert all(PORT_FLOOR <= p < first_outgoing for p in ports), sorted(ports)
    assert len(ports) > 1  # chosen at random, so parallel runs rarely pick the same one
    for port in list(ports)[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()
