"""Outputs of operator commands in the outbox, on both dialects: a bridge takes them over into
its own rows in commit order, and a second bridge that read the same rows gets none of them."""

from __future__ import annotations

import nacl.signing
import pytest

from cloud_bridge.broker_cli import CLI_SUFFIX
from cloud_bridge.outputs import Outputs, in_pool_order
from cloud_bridge.pool import commands as c
from cloud_bridge.pool.service import PoolService
from cloud_bridge.publish import Publisher
from cloud_bridge.store import ingest_repo as repo
from cloud_bridge.store import open_store
from cloud_bridge.store.ingest_repo import OutputRow
from protocol import envelope
from protocol import messages as m

KEY = nacl.signing.SigningKey(bytes(range(32)))


def test_one_bridge_adopts_each_operator_output_in_order(store_url: str) -> None:
    with open_store(store_url) as store:
        service = PoolService(store)
        cli = Outputs(Publisher(f"bridge-1{CLI_SUFFIX}", KEY, store))
        one, two = (
            Outputs(Publisher("bridge-1", KEY, store)),
            Outputs(Publisher("bridge-2", KEY, store)),
        )
        for command in (
            c.OpenPool(user="u-1", key="k1", limit_fen=100_000),
            c.Draw(user="u-1", key="k2", amount_fen=30_000),
            c.Freeze(user="u-1", key="k3", reason="risk"),
        ):
            with store.transaction() as tx:
                outcome = service.execute(command, tx=tx)
                cli.seal_and_store(tx, [cli.pool_state(tx, "test", outcome)])
        with store.transaction() as tx:
            rows = repo.operator_outputs(tx, CLI_SUFFIX, 500)
            assert repo.operator_outputs(tx, CLI_SUFFIX, 2) == rows[:2]
            taken = one.adopt(tx, rows)
        with store.transaction() as tx:
            assert two.adopt(tx, rows) == []  # read before the first took them: gone now
            assert repo.operator_outputs(tx, CLI_SUFFIX, 500) == []
            mine = repo.pending_outputs(tx, "bridge-1")
            assert repo.pending_outputs(tx, "bridge-2") == []
        assert len(taken) == 3
        assert [(r.topic, r.payload, r.retain) for r in mine] == [
            (o.topic, o.payload, o.retain) for o in taken
        ]
        assert [o.stored for o in taken] == [(r.instance, r.seq) for r in mine]
        decoded = [envelope.unseal(o.payload, lambda kid: KEY.verify_key)[1] for o in taken]
        states = [s for s in decoded if isinstance(s, m.PoolState)]
        assert len(states) == 3
        assert [s.version for s in states] == [1, 2, 3]
        assert [s.status for s in states] == ["open", "open", "frozen"]
        assert {s.sender for s in states} == {"bridge-1-cli"}
        assert {o.topic for o in taken} == {"cp/v1/test/pool/u-1/state"}


def test_adopted_pool_outputs_are_put_in_version_order_per_user(store_url: str) -> None:
    """Two writers of the same sender store rows whose (created_ms, seq) order may not be the
    commit order; adoption puts each user's events and states in (version, index) order, the
    state after its events, and leaves other rows where they were."""
    with open_store(store_url) as store:
        service = PoolService(store)
        writers = [Outputs(Publisher(f"bridge-1{CLI_SUFFIX}", KEY, store)) for _ in range(2)]
        made: list[list[OutputRow]] = []
        for n, command in enumerate(
            (
                c.OpenPool(user="u-1", key="k1", limit_fen=100_000),
                c.OpenPool(user="u-2", key="k1", limit_fen=100_000),
                c.Draw(user="u-1", key="k2", amount_fen=30_000),
                c.Draw(user="u-2", key="k2", amount_fen=30_000),
            )
        ):
            out = writers[n % 2]
            with store.transaction() as tx:
                outcome = service.execute(command, tx=tx)
                sealed = out.seal_and_store(tx, out.pool_change(tx, "test", outcome))
                made.append(
                    [OutputRow(*o.stored, o.topic, o.payload, o.retain) for o in sealed if o.stored]
                )
        risk = OutputRow("bridge-1-cli", 99_999, "cp/v1/test/risk/d-1", b"\x00", False)
        # The worst order: newest first, a non-pool row in the middle.
        rows = [*made[3], *made[2], risk, *made[1], *made[0]]
        ordered = in_pool_order(rows)
        assert ordered[len(made[3]) + len(made[2])] == risk
        decoded = [
            envelope.unseal(r.payload, lambda kid: KEY.verify_key)[1] for r in ordered if r != risk
        ]
        for user in ("u-1", "u-2"):
            mine = [d for d in decoded if getattr(d, "user", None) == user]
            keys = [
                (d.version, 0, d.index) if isinstance(d, m.PoolEvent) else (d.version, 1, 0)
                for d in mine
            ]
            assert keys == sorted(keys) and [k[0] for k in keys] == [1, 1, 2, 2]


def test_the_operator_suffix_is_checked_before_it_goes_into_the_statement(
    store_url: str,
) -> None:
    with open_store(store_url) as store, store.transaction() as tx:
        with pytest.raises(ValueError, match="suffix"):
            repo.operator_outputs(tx, "-cli' OR '1'='1", 10)
        assert repo.operator_outputs(tx, CLI_SUFFIX, 10) == []
