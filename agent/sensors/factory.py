"""Choose and open the configured sensor source, with its scene readers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.clock import Clock
from agent.config import AgentConfig
from agent.sensors.base import Source
from agent.sensors.scenes import SceneReader, SceneSource

WallMs = Callable[[], int]
HARDWARE_IMUS = ("mpu6050", "iio")
"""Sources on a real part that can fail or freeze mid-run: always behind a SceneSource, which
turns their faults into counted `fault.imu.*` telemetry instead of an exception in the loop."""


def source_for(cfg: AgentConfig, boot: int, wall_ms: WallMs | None = None) -> Source:
    """The configured IMU source, with its scene readers on the agent's clock (`wall_ms`)."""
    imu = open_source(
        cfg.source, cfg.kind, seed=cfg.seed, data_dir=cfg.data_dir, boot=boot, cfg=cfg
    )
    if not cfg.scenes and cfg.source not in HARDWARE_IMUS:
        return imu
    return SceneSource(imu, scene_readers(cfg, imu, wall_ms))


def scene_readers(
    cfg: AgentConfig, imu: Source, wall_ms: WallMs | None = None
) -> tuple[SceneReader, ...]:
    """The configured scene readers, in the order `[sensors] scenes` names them."""
    readers: list[SceneReader] = []
    wall = wall_ms or Clock().wall_ms
    for name in cfg.scenes:
        if name == "obd2":
            from agent.sensors.obd2 import ObdReader

            readers.append(
                ObdReader(cfg.obd_port, cfg.obd_baud, cfg.data_dir / "obd2.json", wall_ms=wall)
            )
        elif name == "loadcell":
            from agent.sensors.hx711 import LoadCellReader

            readers.append(LoadCellReader(cfg.shelves, cfg.loadcell_device, cfg.data_dir))
        elif name == "activity":
            readers.append(activity_reader(cfg, imu, wall_ms))
    return tuple(readers)


def activity_reader(cfg: AgentConfig, imu: Source, wall_ms: WallMs | None = None) -> SceneReader:
    """Steps and falls from the IMU source itself (it must have an accelerometer stream)."""
    from agent.sensors.activity_reader import ActivityReader
    from agent.sensors.iio import IioSource, SensorError
    from agent.sensors.mpu6050 import Mpu6050Source

    wall = wall_ms or Clock().wall_ms

    if isinstance(imu, IioSource):
        counter = imu.read_steps if imu.has_step_counter else None
        return ActivityReader(
            imu,
            cfg.activity_hz,
            cfg.data_dir,
            device=imu.device,
            step_counter=counter,
            wall_ms=wall,
        )
    if isinstance(imu, Mpu6050Source):
        return ActivityReader(imu, cfg.activity_hz, cfg.data_dir, wall_ms=wall)
    raise SensorError(
        f'the activity scene reads the IMU: set [sensors] source = "mpu6050" or "iio" '
        f'(not "{cfg.source}")'
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

        # Real scene readers replace the simulated appliance's telemetry, never mix with it.
        appliance = not (cfg and cfg.scenes)
        return SimSource(kind, seed, cfg.day_s if cfg else 86_400.0, boot, appliance)
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
