"""The scene keys of [sensors], and the composite source: readers' telemetry merged, faults
counted per episode, a failing reader or IMU never raising into the agent's loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import config
from agent.config import ConfigError, Shelf
from agent.sensors.faults import Fault
from agent.sensors.iio import IioSource, SensorError
from agent.sensors.scenes import SceneReading, SceneSource
from agent.sensors.sim import SimSource
from tests.agent.test_config import GOOD, write


def test_config__scene_keys(tmp_path: Path) -> None:
    text = GOOD.replace(
        "[[triggers.rule]]",
        '[sensors]\nscenes = ["loadcell", "obd2"]\nobd_port = "/dev/rfcomm0"\n'
        'shelves = [{item = "milk", unit_g = 1030, full_count = 4},\n'
        '  {item = "eggs", unit_g = 60, full_count = 12, channel = 1, device = "/sys/x"}]\n\n'
        "[[triggers.rule]]",
        1,
    )
    cfg = config.load(write(tmp_path, text))
    assert cfg.scenes == ("loadcell", "obd2") and cfg.obd_port == Path("/dev/rfcomm0")
    assert cfg.shelves == (
        Shelf("milk", 1030.0, 4),
        Shelf("eggs", 60.0, 12, channel=1, device=Path("/sys/x")),
    )
    assert config.load(write(tmp_path, GOOD)).scenes == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('scenes = ["gps"]', "scenes"),
        ('scenes = ["obd2", "obd2"]', "once"),
        ('shelves = [{item = "milk", unit_g = 0, full_count = 4}]', "shelf #1"),
        # `removed.<item>` must stay a valid telemetry key (an id of at most 64 characters)
        ('shelves = [{item = "' + "m" * 57 + '", unit_g = 10, full_count = 4}]', "at most 56"),
        ('shelves = [{item = "milk", unit_g = 10, full_count = 4, chanel = 1}]', "shelf #1"),
        (
            'shelves = [{item = "a", unit_g = 1, full_count = 1}, '
            '{item = "a", unit_g = 1, full_count = 1}]',
            "once",
        ),
    ],
)
def test_config__bad_scene_keys_name_the_key(tmp_path: Path, line: str, message: str) -> None:
    text = GOOD.replace("[[triggers.rule]]", f"[sensors]\n{line}\n\n[[triggers.rule]]", 1)
    with pytest.raises(ConfigError, match=message) as err:
        config.load(write(tmp_path, text))
    assert "[sensors]" in str(err.value) and "for example" in str(err.value).lower()


class Reader:
    """A scene reader that answers from a script (the composite's contract, not hardware)."""

    name = "demo"

    def __init__(self, *script: SceneReading | Exception) -> None:
        self.script = list(script)
        self.closed = False

    def read(self, now_ms: int) -> SceneReading:
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def close(self) -> None:
        self.closed = True


def test_scene_source__merges_counts_and_survives_a_broken_reader() -> None:
    reader = Reader(
        SceneReading({"inv.milk": 80}),
        SceneReading({}, (Fault.MISSING,), ok=False),
        RuntimeError("a bug in a reader"),
        SceneReading({"inv.milk": 70}),
    )
    src = SceneSource(SimSource("fridge", 1, 86_400.0, appliance=False), (reader,))
    got = [src.poll(1_000 * i).telemetry for i in range(4)]
    assert got[0] == {"inv.milk": 80, "demo.ok": 1, "imu.ok": 1}
    assert got[1]["demo.ok"] == 0 and got[1]["fault.demo.missing"] == 1
    assert got[2]["demo.ok"] == 0 and got[2]["fault.demo.read"] == 1
    assert got[3] == {
        "inv.milk": 70, "demo.ok": 1, "imu.ok": 1, "fault.demo.missing": 1, "fault.demo.read": 1
    }  # fmt: skip
    # A report keeps the first 32 entries: the health keys come before any reader's values.
    assert list(got[3])[-1] == "inv.milk" and next(iter(got[3])).startswith("fault.")
    src.close()
    assert reader.closed


def test_scene_source__an_imu_that_fails_mid_run_reuses_its_last_window(tmp_path: Path) -> None:
    dev = tmp_path / "iio:device0"
    dev.mkdir()
    for name, value in [("in_accel_scale", "0.000598"), ("in_anglvel_scale", "0.000133")]:
        (dev / name).write_text(value)
    for axis in "xyz":
        (dev / f"in_accel_{axis}_raw").write_text("16384" if axis == "z" else "3")
        (dev / f"in_anglvel_{axis}_raw").write_text("1")
    src = SceneSource(IioSource(dev, 1000, 64, sleep=lambda s: None), ())
    first = src.capture()
    (dev / "in_accel_x_raw").unlink()  # the part went away
    assert src.capture() is first and src.capture() is first
    tel = src.poll(0).telemetry
    assert tel["imu.ok"] == 0 and tel["fault.imu.read"] == 1
    with pytest.raises(SensorError):  # before any good window there is nothing to reuse
        SceneSource(IioSource(dev, 1000, 64, sleep=lambda s: None), ()).capture()
