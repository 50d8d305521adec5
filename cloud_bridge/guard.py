"""What the bridge answers to what it sees on its own retained topics (pure decisions).

The bridge state and the pool states are retained messages, and whoever can publish on the
broker can replace them: with nothing (an empty retained message), with garbage or a foreign
signature, or with one of the bridge's own earlier, validly signed messages. Broker ACLs may
forbid that, but this defence does not rest on them (issue 12, docs/protocol.md section 5): the
bridge subscribes to those topics and puts the current message back.

The server (thin I/O) verifies and decodes what arrives and hands the result here; nothing in
this module touches the network, the database or the clock.

Bridge state numbering. Devices order a bridge instance's states by (boot, seq) and ignore
older ones. So that a genuine last will still counts while every earlier "offline" does not,
each MQTT session of the bridge takes a `StatePair` numbered after the previous one: its
announcement first, its will last (`announce_seq < will_seq`). Every earlier will is then older
than the session's announcement, and the session's own will newer. A re-announcement sends the
session's announcement again, byte for byte: a new number would be newer than the will the
broker holds for this session, and devices would then ignore the bridge's genuine death.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from protocol import messages as m


@dataclass(frozen=True, slots=True)
class StatePair:
    """The numbers of one session's announcement and will (both of the same boot)."""

    boot: int
    announce_seq: int
    will_seq: int

    def __post_init__(self) -> None:
        if not 0 < self.announce_seq < self.will_seq:
            raise ValueError("the will must be numbered after the announcement")


def must_reannounce(seen: m.BridgeState | None, instance: str, current: StatePair) -> bool:
    """Whether the bridge publishes its announcement again after seeing `seen` on its state
    topic while it runs. `seen` is None for anything that is not a BridgeState signed with the
    bridge key: an empty retained message, garbage, a foreign signature.

    - nothing valid: yes (devices ignore it; the retained topic must say online again);
    - any "offline": yes: another instance's will, or a replay of an earlier one of ours;
    - an "online" of ours older than the current announcement: yes, so the retained state is
      the current session's (its will comes after it);
    - another instance's "online", or our current announcement: no. Answering only these
      cases means two live instances never answer each other in a loop.
    """
    if seen is None or not seen.online:
        return True
    if seen.sender != instance:
        return False
    return (seen.boot, seen.seq) < (current.boot, current.announce_seq)


def must_republish_pool(seen_version: int | None, current_version: int | None) -> bool:
    """Whether the bridge publishes a pool's current state after seeing a state of version
    `seen_version` on its retained topic (None: empty, unsigned, foreign-signed, or not that
    pool's). Nothing to put there when the pool does not exist (`current_version` None); a
    state as new as the current one, or newer (another bridge's, not committed here yet), is
    left alone."""
    if current_version is None:
        return False
    return seen_version is None or seen_version < current_version


ECHO_DEPTH = 8
"""Own publishes remembered per topic while their echo has not come back."""


class Echoes:
    """The bridge's own retained publishes, until the broker sends each back once (the bridge
    subscribes to the topics it publishes on). An echo is its own output and needs no check; a
    copy seen a second time is a replay and is checked like any other message.

    Bounded: at most `ECHO_DEPTH` payloads per topic and `max_topics` topics (the oldest topic
    is forgotten first); a forgotten echo is only checked, which costs a look-up, not a
    wrong answer.
    """

    def __init__(self, max_topics: int) -> None:
        if max_topics < 1:
            raise ValueError("max_topics must be positive")
        self.max_topics = max_topics
        self._pending: OrderedDict[str, list[bytes]] = OrderedDict()

    def sent(self, topic: str, payload: bytes) -> None:
        pending = self._pending.pop(topic, [])
        pending.append(payload)
        self._pending[topic] = pending[-ECHO_DEPTH:]
        while len(self._pending) > self.max_topics:
            self._pending.popitem(last=False)

    def is_echo(self, topic: str, payload: bytes) -> bool:
        """True (and forgotten) if `payload` is an own publish on `topic` not seen back yet;
        the ones published before it are forgotten too (the broker keeps their order)."""
        pending = self._pending.get(topic)
        if not pending or payload not in pending:
            return False
        del pending[: pending.index(payload) + 1]
        if not pending:
            del self._pending[topic]
        return True
