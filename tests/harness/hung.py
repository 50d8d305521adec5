"""A hung link for tests: a TCP relay in front of a real broker that can stop answering.

`HungRelay(broker_port)` forwards every new connection to the broker until `hang()`: from then
on the connections it holds are read (so the client's writes succeed) but nothing goes either
way, the way a NAT box or a half-dead broker that still holds the TCP connection behaves. New
connections are forwarded unless `hang_new` is set, in which case they are accepted and read
for ever without a byte of answer; with `hang_after_reply` each new connection hangs once the
broker's first answer (the CONNACK) went through. `closed_at` records when each client gave up
on a hung connection (its close reached us): the moment the client detected the hang."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from tools.broker import free_port


class HungRelay:
    def __init__(self, broker_port: int, host: str = "127.0.0.1") -> None:
        self.broker = (host, broker_port)
        self.port = free_port()
        self.hang_new = False
        self.hang_after_reply = False
        self._hung: list[threading.Event] = []  # one per forwarded connection
        self.accepted: list[float] = []  # monotonic time of each accepted connection
        self.closed_at: list[float] = []  # monotonic time a client closed a hung connection
        self.hung_at = 0.0  # when hang_after_reply last hung a connection
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._spawn(self._accept)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def hang(self) -> float:
        """Stop answering on every held connection; the monotonic time it happened."""
        for hung in self._hung:
            hung.set()
        return time.monotonic()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed by close()
                return
            self.accepted.append(time.monotonic())
            if self.hang_new:
                self._spawn(self._swallow, client)
                continue
            upstream = socket.create_connection(self.broker)
            hung = threading.Event()
            self._hung.append(hung)
            self._spawn(self._pump, client, upstream, hung, True, False)
            self._spawn(self._pump, upstream, client, hung, False, self.hang_after_reply)

    def _swallow(self, client: socket.socket) -> None:
        """Read for ever, answer nothing; note when the client closes."""
        client.settimeout(0.2)
        with client:
            while not self._stop.is_set():
                try:
                    data = client.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.closed_at.append(time.monotonic())
                    return

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        hung: threading.Event,
        from_client: bool,
        once: bool,
    ) -> None:
        """Copy src to dst until `hung`; `once`: hang after the first chunk (the broker's)."""
        src.settimeout(0.2)
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    if from_client and hung.is_set():
                        self.closed_at.append(time.monotonic())
                    return
                if not hung.is_set():
                    dst.sendall(data)
                    if once:
                        self.hung_at = time.monotonic()
                        hung.set()
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(2)
