"""The bridge side of a simulated fleet: set a bridge up, enroll devices, open pools, run it.

Everything goes through the real `cloud-bridge` CLI, the same commands an operator types, so a
fleet run also exercises them. Reads (events, rejections, pools) go to the bridge's store
through its repositories (`cloud_bridge.store`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cloud_bridge import config as bridge_config
from cloud_bridge import keyfile
from cloud_bridge.pool.state import PoolState
from cloud_bridge.store import logs_repo, open_store, pool_repo, retention_repo
from cloud_bridge.store.ingest_repo import LogRow
from cloud_bridge.store.logs_repo import StoredRejection
from tools.procs import Supervisor

POOL_LIMIT_FEN = 5_000_000  # 50,000 yuan: room for an emergency draw and many restock holds
DEMO_APPLICANT = Path(__file__).resolve().parents[2] / "docs" / "examples" / "applicant.json"
"""The application every demo user files (`pool apply`): approved at about 32,000 yuan."""

# EV rate tiers where the simulated fleet drives (600-2,700 km a month), so tier changes move
# rates; restock holds expire after [policy] hold_ttl_s in bridge.toml, within the demo.
# The trigger limits count real time, and the fleet lives a simulated day every few seconds:
# a health boost may follow a simulated day after the last (3 s), a car may drive what it
# drives in a simulated day every few seconds, and falls may draw up to a hundred times a day.
DEMO_POLICY = """\
[emergency]
max_per_day = 100
max_fen_per_day = 50000000

[health]
cooldown_ms = 3000
max_per_week = 1000

[mileage]
max_km_per_day = 10000000

[[rates.tiers]]
min_km_per_month = 0
rate_bps = 1800

[[rates.tiers]]
min_km_per_month = 1000
rate_bps = 1650

[[rates.tiers]]
min_km_per_month = 2000
rate_bps = 1500
"""


WATCHER = "watcher"
"""The observer account of the demo's own watcher on a secured broker."""
TAP = "tap"
"""The observer account the demo prints for `tools.tap`: one of its own, because the broker makes
the client id the username, so a tap logged in as the watcher would take the watcher's session
over (and the watcher would miss what was published while they took turns)."""


class BrokerAuth(NamedTuple):
    """A secured Mosquitto's auth directory and pid file: the bridge keeps the one current
    (`cloud-bridge broker-config`) and signals the other."""

    auth_dir: Path
    pid_file: Path


class BridgeSetupError(RuntimeError):
    """A `cloud-bridge` command failed; the message carries its stderr."""


def command(name: str) -> list[str]:
    """How to run console script `name` (edge-agent, cloud-bridge) of this environment: the
    installed script beside this Python when it exists (so `ps` shows its name), else -m."""
    script = Path(sys.executable).parent / name
    if script.exists():
        return [str(script)]
    module = {"edge-agent": "agent.cli", "cloud-bridge": "cloud_bridge.cli"}[name]
    return [sys.executable, "-m", module]


def run_cli(name: str, *args: str, ok: tuple[int, ...] = (0,), timeout_s: float = 120) -> str:
    """Run a CLI to completion; its stdout, or BridgeSetupError with its stderr."""
    proc = subprocess.run(
        [*command(name), *args], capture_output=True, text=True, timeout=timeout_s
    )
    if proc.returncode not in ok:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise BridgeSetupError(f"{name} {' '.join(args[:2])} failed: {' / '.join(detail[-3:])}")
    return proc.stdout


@dataclass
class Bridge:
    """A bridge data directory (key, bridge.toml, database) and, once started, its process."""

    data: Path
    cfg: bridge_config.BridgeConfig
    public_key_hex: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def fleet(self) -> str:
        return self.cfg.fleet

    @property
    def store_url(self) -> str:
        return self.cfg.store_url

    @property
    def config_path(self) -> Path:
        return self.data / "bridge.toml"

    @property
    def log_path(self) -> Path:
        return self.data / "bridge.log"

    @classmethod
    def load(cls, data: Path) -> Bridge:
        """An existing data directory, as `cloud-bridge init` left it."""
        toml = data / "bridge.toml"
        if not (data / "bridge.key").exists():
            raise BridgeSetupError(
                f"{data} has no bridge.key: run cloud-bridge init --data {data} first"
            )
        cfg = bridge_config.load(toml if toml.exists() else None, data)
        key = keyfile.load(cfg.key_path)
        return cls(data, cfg, bytes(key.verify_key).hex())

    @classmethod
    def create(
        cls,
        data: Path,
        fleet: str,
        url: str,
        protocol: str,
        *,
        hold_ttl_s: int = 30,
        auth: BrokerAuth | None = None,
    ) -> Bridge:
        """`cloud-bridge init`, then a bridge.toml for this broker and the demo policy. With
        `auth`, the bridge logs in, writes the broker's files and an observer account for the
        watcher (`watcher_password`)."""
        data.mkdir(parents=True, exist_ok=True)
        run_cli(
            "cloud-bridge",
            "init",
            "--data",
            str(data),
            "--fleet",
            fleet,
            "--mqtt-url",
            url,
            "--json",
        )
        (data / "pool-policy.toml").write_text(DEMO_POLICY)
        # MQTT 5 brokers get a share group, so more bridges could join; 3.1.1 has none.
        share = 'share_group = "bridges"\n' if protocol == "5" else ""
        login = 'username = "bridge-1"\npassword_file = "mqtt.pass"\n' if auth else ""
        managed = (
            f'\n[broker]\ndir = "{auth.auth_dir}"\npid_file = "{auth.pid_file}"\n' if auth else ""
        )
        (data / "bridge.toml").write_text(
            f'[bridge]\nid = "bridge-1"\nfleet = "{fleet}"\n\n'
            f'[mqtt]\nurl = "{url}"\nprotocol = "{protocol}"\n{share}{login}\n'
            '[store]\npath = "bridge.sqlite3"\n\n'
            f'[policy]\nfile = "pool-policy.toml"\nhold_ttl_s = {hold_ttl_s}\n'
            # What an emergency without an amount of its own draws (a wearable's fall):
            # sized to the demo's pools rather than the production defaults.
            "emergency_fen = { illness = 300000, disaster = 500000, education = 200000 }\n\n"
            "[metrics]\nport = 0\n" + managed
        )
        if auth and (data / f"{WATCHER}.pass").exists():  # set up before: rewrite the files
            run_cli("cloud-bridge", "broker-config", "--data", str(data))
        elif auth:
            for observer in (WATCHER, TAP):
                run_cli(
                    "cloud-bridge", "broker-account", observer, "--role", "observer",
                    "--password-file", str(data / f"{observer}.pass"), "--data", str(data),
                )  # fmt: skip
        return cls.load(data)

    @property
    def watcher_password(self) -> str | None:
        """The observer account's password when the broker is secured, else None."""
        path = self.data / f"{WATCHER}.pass"
        return path.read_text().strip() if path.exists() else None

    # ---- operator commands --------------------------------------------------------------------

    def enroll(self, enrollment: Path, user: str) -> None:
        run_cli(
            "cloud-bridge", "devices", "enroll", str(enrollment), "--user", user,
            "--data", str(self.data), "--json",
        )  # fmt: skip

    def open_pool(self, user: str, limit_fen: int = POOL_LIMIT_FEN) -> str:
        """Open (approve) the user's pool; an existing pool is left as it is. The result code."""
        out = run_cli(
            "cloud-bridge", "pool", "open", "--user", user, "--limit", str(limit_fen),
            "--key", f"open-{user}", "--data", str(self.data), "--json",
            *(["--policy", str(self.cfg.policy_file)] if self.cfg.policy_file else []),
            ok=(0, 1),
        )  # fmt: skip
        result = str(json.loads(out).get("result", "?"))
        if result not in ("ok", "pool_exists"):
            raise BridgeSetupError(f"cannot open the pool of {user}: {result}")
        return result

    def apply_pool(self, user: str, applicant: Path = DEMO_APPLICANT) -> str:
        """Apply for the user's pool as a new customer would (`pool apply`: the scorecard and
        the user's enrolled devices decide); an existing pool is left as it is. The result code
        of the opening; BridgeSetupError if the application is referred or declined."""
        out = run_cli(
            "cloud-bridge", "pool", "apply", "--user", user, "--applicant", str(applicant),
            "--key", f"open-{user}", "--data", str(self.data), "--json",
            *(["--policy", str(self.cfg.policy_file)] if self.cfg.policy_file else []),
            ok=(0, 1),
        )  # fmt: skip
        doc = json.loads(out)
        result = str(doc.get("result"))
        if result not in ("ok", "pool_exists"):
            decision = doc.get("decision", {})
            raise BridgeSetupError(
                f"the application of {user} was not approved: {decision.get('outcome')} "
                f"({', '.join(decision.get('reasons', []))}); result {result}"
            )
        return result

    # ---- the process --------------------------------------------------------------------------

    def start(self, sup: Supervisor) -> None:
        self.proc = sup.spawn(
            [*command("cloud-bridge"), "run", "--data", str(self.data)], self.log_path
        )

    def stop(self, sup: Supervisor, timeout_s: float = 20) -> int | None:
        if self.proc is None:
            return None
        code = sup.stop(self.proc, timeout_s)
        self.proc = None
        return code

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no bridge log)"

    # ---- reads --------------------------------------------------------------------------------

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """A raw read of the bridge's database, for tests that check a table as it is; the
        tools read through the store's repositories (the methods below)."""
        with open_store(self.store_url) as store, store.transaction() as tx:
            return list(tx.fetchall(sql, params))

    def events(self, device_id: str | None = None, kind: int | None = None) -> list[LogRow]:
        """The stored data events (all, one device's, or of one kind), by device and seq."""
        with open_store(self.store_url) as store, store.transaction() as tx:
            return logs_repo.events(tx, device_id, kind)

    def rejections(self, device_id: str | None = None) -> list[StoredRejection]:
        """The stored rejections (all, or those naming one device), oldest first."""
        with open_store(self.store_url) as store, store.transaction() as tx:
            return logs_repo.rejections(tx, device_id)

    def pools(self) -> list[PoolState]:
        """Every pool as stored, by user."""
        with open_store(self.store_url) as store, store.transaction() as tx:
            return pool_repo.all_states(tx)

    def event_count(self) -> int:
        with open_store(self.store_url) as store, store.transaction() as tx:
            return retention_repo.count(tx, "events")

    def event_seqs(self) -> dict[str, list[int]]:
        """Every stored data event's sequence number, per device, in order."""
        with open_store(self.store_url) as store, store.transaction() as tx:
            numbers = logs_repo.event_numbers(tx)
        out: dict[str, list[int]] = {}
        for device, seq in numbers:
            out.setdefault(device, []).append(seq)
        return out

    def wait_quiet(self, timeout_s: float, quiet_s: float = 1.0) -> None:
        """Wait until no new event has been stored for `quiet_s` (the tail has been ingested)."""
        deadline = time.monotonic() + timeout_s
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = self.event_count()
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.2)
