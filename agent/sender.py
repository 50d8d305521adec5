"""The send window carried out against the outbox: no paho, no thread, no clock.

`agent.window.SendWindow` decides; a `Sender` does what it decides with the durable outbox
(number, read back, apply acks) and hands each envelope to a `publish` function that returns
the MQTT packet id. The link calls it from its thread with the paho client behind `publish`;
the window simulation (tests/agent/test_window_sim.py) calls it with a simulated broker.
"""

from __future__ import annotations

from collections.abc import Callable

from agent.outbox import Entry, Outbox
from agent.window import SendWindow, Tick


class Sender:
    def __init__(self, window: SendWindow, outbox: Outbox, sign: Callable[[bytes], bytes]) -> None:
        self.window = window
        self.outbox = outbox
        self.sign = sign
        self._ahead: list[Entry] = []  # just numbered: published without reading them back

    def connected(self, now_ms: int) -> None:
        """A new session: the window restarts from the outbox's counters."""
        stats = self.outbox.stats()
        self.window.on_connected(now_ms, stats.next_seq, self.outbox.resume_seq(), stats.last_ack)
        self._ahead = []

    def forget(self) -> None:
        """The stored envelopes changed (re-signed): read them back from the outbox."""
        self._ahead = []

    def drain(self, publish: Callable[[Entry], int]) -> None:
        """Carry out the window's plan until it has nothing more to do now."""
        while True:
            plan = self.window.plan()
            if plan.number:
                numbered = self.outbox.assign(plan.number, self.sign)
                if not numbered:
                    return
                self.window.numbered(numbered[0].seq or 0, numbered[-1].seq or 0)
                self._ahead = numbered
            elif plan.publish_hi:
                entries = self._entries(plan.publish_lo, plan.publish_hi)
                self.window.sent(plan.publish_hi, [(e.seq or 0, publish(e)) for e in entries])
            else:
                return

    def tick(self, now_ms: int, force_flush: bool = False) -> Tick:
        """Let time act: apply the ack to the outbox when the window says so, and forget what
        was numbered ahead when acks timed out (it is read back from the outbox)."""
        tick = self.window.tick(now_ms, force_flush)
        if tick.persist_ack:
            self.outbox.ack(tick.persist_ack)
            self.window.persisted(tick.persist_ack, now_ms)
        if tick.timed_out:
            self._ahead = []
        return tick

    def _entries(self, lo: int, hi: int) -> list[Entry]:
        """The numbered messages lo..hi: those numbered ahead, else read from the outbox."""
        if self._ahead and self._ahead[0].seq == lo:
            n = hi - lo + 1
            entries, self._ahead = self._ahead[:n], self._ahead[n:]
            return entries
        self._ahead = []
        return [e for e in self.outbox.sent_after(lo - 1, hi - lo + 1) if (e.seq or 0) <= hi]
