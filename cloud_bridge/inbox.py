"""The bridge's inbound queue: bounded in messages and in bytes.

The paho network thread puts what arrives; the worker takes batches. A put that would pass
either bound waits (back-pressure on the broker: nothing received is dropped), so the memory a
burst can take is bounded by `max_bytes`, not only by a message count that, times the largest
message, could be hundreds of megabytes. An empty queue always takes one message, so a message
larger than `max_bytes` waits for the queue to empty instead of forever.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    def __init__(self, max_items: int, max_bytes: int) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("an inbox needs room for at least one message and one byte")
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: collections.deque[tuple[T, int]] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    def _room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_items and self._bytes + size <= self.max_bytes

    def put(self, item: T, size: int) -> None:
        """Queue `item`, counted as `size` bytes; waits while it does not fit."""
        with self._not_full:
            while not self._room(size):
                self._not_full.wait()
            self._items.append((item, size))
            self._bytes += size
            self._not_empty.notify()

    def get(self, timeout: float | None = None) -> T:
        """The oldest item; waits up to `timeout` seconds (None: forever), then queue.Empty."""
        with self._not_empty:
            if timeout is None:
                while not self._items:
                    self._not_empty.wait()
            else:
                deadline = time.monotonic() + timeout
                while not self._items:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise queue.Empty
                    self._not_empty.wait(remaining)
            return self._take()

    def get_nowait(self) -> T:
        with self._lock:
            if not self._items:
                raise queue.Empty
            return self._take()

    def _take(self) -> T:
        item, size = self._items.popleft()
        self._bytes -= size
        self._not_full.notify()
        return item

    def qsize(self) -> int:
        """Messages queued."""
        with self._lock:
            return len(self._items)

    @property
    def bytes(self) -> int:
        """Bytes queued, as counted by `put`."""
        with self._lock:
            return self._bytes
