"""Two bridge processes in one MQTT 5 shared-subscription group on one PostgreSQL: both take
part, and every device message is applied exactly once."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest

from protocol import cose
from protocol import messages as m
from tests.agent.harness import wait
from tests.bridge.harness import Bridge
from tests.bridge.test_end_to_end import FRIDGE_RULE
from tests.harness.mosquitto import Mosquitto, free_port

pytestmark = [pytest.mark.broker, pytest.mark.postgres, pytest.mark.slow]


def accepted(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("cp_bridge_accepted_total")
    )


def test_two_bridges_share_the_load_exactly_once(
    tmp_path: Path, private_broker: Mosquitto, pg_dsn: str
) -> None:
    url, data = private_broker.url, tmp_path / "bridge"
    ports = [free_port(), free_port()]
    bridges = [
        Bridge.create(
            data,
            url,
            pg_dsn,
            instance=name,
            share_group="bridges",
            # every trigger must make its hold here: none waits for a phone's step-up
            # confirmation (tests/bridge/test_stepup* cover that)
            extra=f'\n[metrics]\nport = {port}\n\n[risk]\nstep_up = "allow"\n',
        )
        for name, port in zip(("bridge-a", "bridge-b"), ports, strict=True)
    ]
    assert bridges[0].public_key_hex == bridges[1].public_key_hex  # one bridge key
    a = bridges[0]
    devices = [
        a.device(
            tmp_path, "fridge-1", "fridge", url, "u-1", extra_toml=FRIDGE_RULE, interval_s=0.05
        ),
        a.device(tmp_path, "phone-1", "phone", url, "u-1", interval_s=0.05),
        a.device(tmp_path, "phone-2", "phone", url, "u-2", interval_s=0.05),
        a.device(tmp_path, "ev-1", "ev", url, "u-2", interval_s=0.05),
    ]
    a.open_pool("u-1", 50_000_000)
    a.open_pool("u-2", 50_000_000)
    for b in bridges:
        b.start()
    time.sleep(1.5)
    for dev in devices:
        dev.start("--offline-ok")
    try:
        assert wait(lambda: int(a.query("SELECT count(*) FROM events")[0][0]) > 600, 60), (
            bridges[0].log()[-2000:] + bridges[1].log()[-2000:]
        )
        shares = [accepted(p) for p in ports]
    finally:
        for dev in devices:
            dev.stop()
        time.sleep(1)
        for b in bridges:
            b.stop()
    assert min(shares) > 0.1 * sum(shares), shares  # both bridges did real work
    for dev in devices:
        seqs = [
            int(r[0])
            for r in a.query(
                "SELECT seq FROM events WHERE device_id = ? ORDER BY seq", (dev.device_id,)
            )
        ]
        assert seqs == list(range(1, len(seqs) + 1)), dev.device_id
    triggers = [
        m.decode(cose.peek_payload(bytes(r[0])))
        for r in a.query("SELECT envelope FROM events WHERE device_id = 'fridge-1' AND kind = 4")
    ]
    holds = a.query("SELECT idem_key FROM pool_commands WHERE kind = 'hold'")
    assert sorted(str(h[0]) for h in holds) == sorted(f"fridge-1:{t.seq}:hold" for t in triggers)
    # The ledger balances and every pool passes its audit.
    audit = a.query(
        "SELECT user_id, held_fen, available_fen, limit_fen, outstanding_fen FROM pools"
    )
    for _user, held, available, limit, outstanding in audit:
        assert available == limit - outstanding - held
