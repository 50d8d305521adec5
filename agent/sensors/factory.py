"""Choose and open the configured sensor source."""

from __future__ import annotations

from pathlib import Path

from agent.config import AgentConfig
from agent.sensors.base import Source


def source_for(cfg: AgentConfig, boot: int) -> Source:
    return open_source(
        cfg.source, cfg.kind, seed=cfg.seed, data_dir=cfg.data_dir, boot=boot, cfg=cfg
    )


def open_source(
    name: str,
    kind: str,
    *,
    seed: int,
    data_dir: Path,
    boot: int = 1,
    cfg: AgentConfig | None = None,
) -> Source:
    sample_hz = cfg.sample_hz if cfg else 100
    window = cfg.window_samples if cfg else 200
    if name == "sim":
        from agent.sensors.sim import SimSource

        return SimSource(kind, seed, cfg.day_s if cfg else 86_400.0, boot)
    if name == "iio":
        from agent.sensors.iio import IioSource

        device = cfg.iio_device if cfg else Path("/sys/bus/iio/devices/iio:device0")
        return IioSource(device, sample_hz, window)
    if name == "mpu6050":
        from agent.sensors.mpu6050 import Mpu6050Source, open_bus

        bus = open_bus(cfg.i2c_bus if cfg else 1)
        return Mpu6050Source(bus, cfg.i2c_address if cfg else 0x68, sample_hz, window)
    if name == "replay":
        from agent.sensors.iio import SensorError
        from agent.sensors.replay import ReplaySource

        if cfg is None or cfg.replay_file is None:
            raise SensorError('the replay source needs [sensors] replay_file = "..."')
        return ReplaySource(cfg.replay_file)
    raise ValueError(f"unknown source {name!r}")
