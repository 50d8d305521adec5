"""Rig drivers for the HIL bench, chosen by ``--rig SPEC``.

``make_rig`` maps a spec to a driver. The serial and SSH drivers are imported lazily: they
pull in pyserial/mpremote and ssh and are only needed for real hardware.
"""

from __future__ import annotations

from typing import Any

from hil_tests.rigs.base import KIND_AGENT, KIND_ESP32, Rig, RigError

__all__ = ["KIND_AGENT", "KIND_ESP32", "RIG_SPEC_HELP", "Rig", "RigError", "make_rig"]

RIG_SPEC_HELP = (
    "virtual-agent | virtual-esp32 | serial:PORT (a real ESP32, e.g. serial:/dev/ttyUSB0) | "
    "ssh:HOST (a real Raspberry Pi, e.g. ssh:pi@10.0.0.7)"
)


def make_rig(spec: str, **opts: Any) -> Rig:
    """Build the rig driver for ``spec`` (see RIG_SPEC_HELP)."""
    if spec == "virtual-agent":
        from hil_tests.rigs.virtual_agent import VirtualAgentRig

        return VirtualAgentRig(**opts)
    if spec == "virtual-esp32":
        from hil_tests.rigs.virtual_esp32 import VirtualEsp32Rig

        return VirtualEsp32Rig(**opts)
    if spec.startswith("serial:") and len(spec) > len("serial:"):
        from hil_tests.rigs.serial_rig import SerialRig  # type: ignore[import-not-found,unused-ignore]

        return SerialRig(spec.removeprefix("serial:"), **opts)  # type: ignore[no-any-return,unused-ignore]
    if spec.startswith("ssh:") and len(spec) > len("ssh:"):
        from hil_tests.rigs.ssh_rig import SshRig  # type: ignore[import-not-found,unused-ignore]

        return SshRig(spec.removeprefix("ssh:"), **opts)  # type: ignore[no-any-return,unused-ignore]
    raise RigError(f"unknown rig {spec!r}; expected one of: {RIG_SPEC_HELP}")
