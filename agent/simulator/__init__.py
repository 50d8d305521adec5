"""Physically grounded simulator of the devices' sensors, clocks and users, and of impostors.

Pure numpy, deterministic from integer seeds. The agent's `sim` sensor source and the model's
training, evaluation and tests use it:

    from agent.simulator import SimDevice, impostor
    device = SimDevice(seed=42, kind="phone")
    capture = device.capture(session=0)          # agent.features.Capture
    device.skew_ppm                              # host crystal error, ppm
    fake = impostor("replay", device, session=1, attack_seed=0)
"""

from agent.simulator.device import SessionEnv, SimDevice
from agent.simulator.impostors import IMPOSTOR_KINDS, applicable, impostor
from agent.simulator.profiles import DEVICE_KINDS, PROFILES, KindProfile, SimError
from agent.simulator.touch import TapRhythm

__all__ = [
    "DEVICE_KINDS",
    "IMPOSTOR_KINDS",
    "PROFILES",
    "KindProfile",
    "SessionEnv",
    "SimDevice",
    "SimError",
    "TapRhythm",
    "applicable",
    "impostor",
]
