"""The HIL bench as a pytest suite: options, the bench, rigs, and the per-run report.

    pytest hil_tests --rig virtual-agent --rig virtual-esp32 [--ci]
    pytest hil_tests --rig serial:/dev/ttyUSB0 --broker mqtt://10.0.0.2:1883 --bridge /srv/bridge

Every scenario test takes the ``rig_spec`` parameter (one run per ``--rig``) and records its
figure through ``record``; at the end of the session hil-report/report.md (with a PNG chart per
scenario) and hil-report/junit.xml are written. See hil_tests/README.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from hil_tests import report
from hil_tests.bench import Bench
from hil_tests.faults import netns
from hil_tests.profile import BENCH, CI, Profile
from hil_tests.rigs import RIG_SPEC_HELP, Rig, make_rig
from hil_tests.rigs.agent_main import BROKEN_ENV

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REPORT_DIR = ROOT / "hil-report"
SCENARIOS = (
    "birth",
    "cadence",
    "outage",
    "partition",
    "power_cut",
    "sensor_fault",
    "clock_jump",
    "key_rotation",
    "model_update",
    "reconnect_storm",
    "soak",
    "broken_build",
)
FIGURES = pytest.StashKey[report.Figure]()
_figures: list[report.Figure] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("hil", "hardware-in-the-loop bench")
    g.addoption(
        "--rig",
        action="append",
        default=[],
        metavar="SPEC",
        help=f"a rig to run every scenario on (repeatable): {RIG_SPEC_HELP}",
    )
    g.addoption("--broker", metavar="URL", help="the bench's own broker (default: a private one)")
    g.addoption(
        "--bridge",
        metavar="DIR",
        type=Path,
        help="the data directory of the bench's own bridge (with --broker)",
    )
    g.addoption(
        "--ci",
        action="store_true",
        default=os.environ.get("HIL_CI") == "1",
        help="CI profile: short durations (also HIL_CI=1); see hil_tests/profile.py",
    )
    g.addoption("--outage-seconds", type=float, help="broker down (bench 60, CI 15)")
    g.addoption("--cut-seconds", type=float, help="partition: link cut (bench 60, CI 15)")
    g.addoption("--impair-seconds", type=float, help="10%% loss + 200 ms (bench 120, CI 20)")
    g.addoption("--cadence-seconds", type=float, help="cadence observed (bench 60, CI 15)")
    g.addoption("--soak-seconds", type=float, help="soak duration (bench 3600, CI 40)")
    g.addoption("--storm-devices", type=int, help="reconnect storm devices (100)")
    g.addoption("--hil-report", type=Path, default=DEFAULT_REPORT_DIR, help="report directory")


DRIVERS = Path(__file__).resolve().parent / "drivers"
"""The rig drivers' own tests (against stand-ins) run in ./dev test: the bench's session hooks
below (JUnit file, scenario timeouts) leave them, and every test outside hil_tests, alone."""


def is_scenario(path: Path) -> bool:
    here = Path(__file__).resolve().parent
    path = path.resolve()
    return path.is_relative_to(here) and not path.is_relative_to(DRIVERS)


def runs_scenarios(config: pytest.Config) -> bool:
    """Whether this run was asked for bench scenarios (not only the suite's testpaths)."""
    args = [a.split("::")[0] for a in config.args]
    return any(is_scenario(Path(config.invocation_params.dir, a)) for a in args)


def pytest_configure(config: pytest.Config) -> None:
    out: Path = config.getoption("--hil-report")
    if runs_scenarios(config) and not getattr(config.option, "xmlpath", None):
        config.option.xmlpath = str(out / "junit.xml")


def profile_of(config: pytest.Config) -> Profile:
    base = CI if config.getoption("--ci") else BENCH
    overrides = {
        "outage_s": config.getoption("--outage-seconds"),
        "cut_s": config.getoption("--cut-seconds"),
        "impair_s": config.getoption("--impair-seconds"),
        "cadence_s": config.getoption("--cadence-seconds"),
        "soak_s": config.getoption("--soak-seconds"),
        "storm_devices": config.getoption("--storm-devices"),
    }
    values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
    return Profile(**values)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-timeout's limit (300 s in pyproject.toml) from this run's durations: a scenario
    may take its fault, its drain and its start-up; the broken-build run takes four of them."""
    prof = profile_of(config)
    longest = max(prof.outage_s, prof.cut_s, prof.impair_s, prof.cadence_s, prof.soak_s)
    per_test = int(longest + 3 * prof.drain_s + 300)
    for item in items:
        if not is_scenario(item.path):
            continue
        factor = 6 if item.name.startswith("test_broken_build") else 1
        item.add_marker(pytest.mark.timeout(per_test * factor))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rig_spec" in metafunc.fixturenames:
        specs = metafunc.config.getoption("--rig") or ["virtual-agent"]
        metafunc.parametrize("rig_spec", specs, ids=specs)


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> Profile:
    return profile_of(pytestconfig)


@pytest.fixture(scope="session")
def netns_ok() -> bool:
    """Whether virtual rigs get namespaces; stale ``hil-*`` ones of a killed run go first."""
    why = netns.available()
    if why is not None:
        return False
    netns.sweep()
    return True


@pytest.fixture(scope="session")
def bench(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config, profile: Profile
) -> Iterator[Bench]:
    bench = Bench(
        tmp_path_factory.mktemp("bench"),
        profile.interval_s,
        broker_url=pytestconfig.getoption("--broker"),
        bridge_data=pytestconfig.getoption("--bridge"),
    )
    try:
        yield bench
    finally:
        bench.close()


@pytest.fixture
def rig(
    request: pytest.FixtureRequest,
    rig_spec: str,
    bench: Bench,
    netns_ok: bool,
    profile: Profile,
    tmp_path: Path,
) -> Iterator[Rig]:
    """A fresh rig for one scenario; closed (processes, namespace, relay) also on failure."""
    opts: dict[str, object] = {}
    if rig_spec.startswith("virtual-"):
        opts = {
            "workdir": tmp_path / "rig",
            "netns": netns_ok,
            "broker": bench.broker_addr,
            "broken": os.environ.get(BROKEN_ENV, ""),
            "interval_s": profile.interval_s,
            "lib_cache": bench.root / "esp32-lib",
            # the virtual agent's IMU on a simulated I2C bus, for the scenario that breaks it
            "i2c_imu": request.node.originalname.startswith("test_sensor_fault"),
        }
    r = make_rig(rig_spec, **opts)
    try:
        yield r
    finally:
        r.close()


def scenario_of(name: str) -> str:
    for s in sorted(SCENARIOS, key=len, reverse=True):
        if name.startswith(f"test_{s}"):
            return s
    return name.removeprefix("test_")


@pytest.fixture
def record(request: pytest.FixtureRequest) -> report.Figure:
    """This scenario's figure in the run's report; fill ``summary`` and the series."""
    spec = (
        request.node.callspec.params.get("rig_spec", "-")
        if hasattr(request.node, "callspec")
        else "-"
    )
    fig = report.Figure(request.node.nodeid, scenario_of(request.node.originalname), spec)
    request.node.stash[FIGURES] = fig
    _figures.append(fig)
    return fig


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    fig = item.stash.get(FIGURES, None)
    if fig is not None and (rep.when == "call" or rep.outcome != "passed"):
        if rep.when == "call":
            fig.seconds = rep.duration
        if hasattr(rep, "wasxfail"):
            fig.verdict = "XFAIL (known gap)" if rep.skipped else "XPASS (gap fixed?)"
            fig.detail = f"{rep.wasxfail}\n{rep.longreprtext}"
        elif rep.skipped:
            fig.verdict = "SKIP"
            fig.detail = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else ""
        elif rep.failed:
            fig.verdict = "FAIL"
            fig.detail = rep.longreprtext
        elif rep.when == "call":
            fig.verdict = "PASS"
    return rep


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _figures:
        return
    config = session.config
    prof = profile_of(config)
    rigs = ", ".join(config.getoption("--rig") or ["virtual-agent"])
    link = "tc netem" if netns.netem_available() else "relay emulation (kernel without netem)"
    header = (
        f"Run at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} on rigs {rigs}; "
        f"profile {prof.name} (outage {prof.outage_s:.0f} s, cut {prof.cut_s:.0f} s, "
        f"impaired {prof.impair_s:.0f} s, soak {prof.soak_s:.0f} s, storm "
        f"{prof.storm_devices} devices); link delay/loss by {link}."
    )
    path = report.write(_figures, config.getoption("--hil-report"), header)
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None:
        tr.write_line(f"hil: report in {path}")


Recorder = Callable[..., None]
