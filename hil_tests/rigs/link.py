"""The network path of a virtual rig (its namespace and the relay on the host's end), shared
by the virtual agent and the virtual ESP32: cut, heal and impair the link."""

from __future__ import annotations

from hil_tests.faults import netns
from hil_tests.faults.netns import NetNs
from hil_tests.faults.relay import Relay


class NamespacedLink:
    """Mixin: a rig whose device runs in `_ns` (None: the host's network) behind `relay`."""

    name: str
    _ns: NetNs | None
    relay: Relay | None

    def cut_link(self) -> None:
        self._need_ns().cut()

    def heal_link(self) -> None:
        ns = self._need_ns()
        ns.heal()
        if netns.netem_available():
            ns.clear_netem()
        if self.relay is not None:
            self.relay.impair(0, 0.0)

    def impair_link(self, delay_ms: int, loss_pct: float) -> str:
        ns = self._need_ns()
        if netns.netem_available():
            ns.netem(delay_ms, loss_pct)
            return "tc netem"
        assert self.relay is not None
        self.relay.impair(delay_ms, loss_pct)
        return "relay emulation (this kernel has no netem)"

    def _need_ns(self) -> NetNs:
        if self._ns is None:
            raise NotImplementedError(f"{self.name} runs without a network namespace")
        return self._ns
