"""A TCP relay from a rig's namespace to the broker, with an impairment the bench controls.

A rig in a namespace connects to ``host_ip:port`` (the host's end of its veth pair); the relay
forwards each connection to the broker on 127.0.0.1. It is the rig's only way out, so:

- a broker that goes down closes the rig's connection too (as a real broker's would);
- where the kernel lacks ``tc netem`` (some VM kernels), ``impair()`` emulates the bench's
  delay and loss here: every chunk is held ``delay_ms`` (order kept), and a "lost" chunk waits
  a further retransmission timeout, which is what TCP makes of a lost segment. It is an
  emulation of loss at the TCP level, not packet loss; the report says which one ran.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from dataclasses import dataclass

CHUNK = 65536
RTO_MS = 300
"""The stall a lost segment costs: Linux's minimum retransmission timeout (200 ms) plus an RTT."""


@dataclass(frozen=True)
class Impairment:
    delay_ms: int = 0
    loss_pct: float = 0.0

    def hold_ms(self, rng: random.Random) -> int:
        """How long one chunk is held: the delay, plus a retransmission when it is 'lost'."""
        lost = self.loss_pct > 0 and rng.random() * 100 < self.loss_pct
        return self.delay_ms + (RTO_MS if lost else 0)


class Relay:
    """Listens on ``listen_host`` (an ephemeral port) and forwards to ``target``."""

    def __init__(self, listen_host: str, target: tuple[str, int], seed: int = 1) -> None:
        self.target = target
        self.impairment = Impairment()
        self._rng = random.Random(seed)  # seeded: a run's "losses" replay
        self._server = socket.create_server((listen_host, 0))
        self.port = self._server.getsockname()[1]
        self.host = listen_host
        self._closed = threading.Event()
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.connections = 0
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def impair(self, delay_ms: int = 0, loss_pct: float = 0.0) -> None:
        self.impairment = Impairment(delay_ms, loss_pct)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _addr = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()  # the broker is down: refuse as it would
                continue
            upstream.settimeout(None)
            self.connections += 1
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._socks |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                hold = self.impairment.hold_ms(self._rng)
                if hold:
                    time.sleep(hold / 1000)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._socks -= {src, dst}

    def drop_all(self) -> None:
        """Close every relayed connection (the broker went away under them)."""
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self.drop_all()
