"""Scheduled pool life in process (issue 16 item 4), on SQLite and PostgreSQL, with a fake clock:
a round ticks exactly the pools whose time has come, once; the tick's key makes a repeat of the
same due work harmless; two schedulers side by side split the work and apply each piece once."""

from __future__ import annotations

import threading
from dataclasses import replace

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.auditor import audit
from cloud_bridge.pool.policy import Policy
from cloud_bridge.pool.service import PoolService
from cloud_bridge.pool.state import Hold, PoolState, Status
from cloud_bridge.pool.statements import NEVER_MS, next_due_ms
from cloud_bridge.scheduler import Round, Scheduler, tick_key
from cloud_bridge.store import open_store
from cloud_bridge.store import pool_repo as repo

T0 = 1_764_288_000_000
HOUR = 3_600_000
DAY = 24 * HOUR
CYCLE = 30 * DAY


class Clock:
    """The injected clock (allowed: clocks), moved by the test."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def kinds(service: PoolService, user: str) -> list[str]:
    with service.store.transaction() as tx:
        return [e.kind for _v, e in repo.events_of(tx, user)]


def due_ms(service: PoolService, user: str) -> int:
    with service.store.transaction() as tx:
        return int(tx.fetchall("SELECT due_ms FROM pools WHERE user_id = ?", (user,))[0][0])


def test_next_due_is_the_earliest_of_holds_statement_and_review() -> None:
    s = PoolState(
        user="u", status=Status.OPEN, limit_fen=100_000, rate_bps=1_800, opened_ms=T0,
        updated_ms=T0, next_statement_ms=T0 + CYCLE,
    )  # fmt: skip
    assert next_due_ms(s) == T0 + CYCLE
    holds = (Hold("h", 1_000, T0 + 2 * HOUR), Hold("g", 1_000, T0 + HOUR))
    assert next_due_ms(replace(s, holds=holds)) == T0 + HOUR
    assert next_due_ms(replace(s, next_review_ms=T0 + DAY)) == T0 + DAY
    assert next_due_ms(replace(s, status=Status.CLOSED, limit_fen=0)) == NEVER_MS
    assert next_due_ms(replace(s, status=Status.FROZEN)) == T0 + CYCLE  # statements go on


def test_a_round_expires_a_hold_and_closes_a_statement_on_time_once(store_url: str) -> None:
    clock = Clock()
    service = PoolService(open_store(store_url), Policy(), clock)
    scheduler = Scheduler(service)
    try:
        service.execute(c.OpenPool(user="u1", key="open", limit_fen=1_000_000))
        hold = c.PlaceHold(user="u1", key="h", hold_id="h1", amount_fen=10_000, ttl_ms=HOUR)
        service.execute(hold)
        assert due_ms(service, "u1") == T0 + HOUR
        assert scheduler.run_once() == Round()  # nothing is due yet
        clock.now = T0 + HOUR - 1
        assert scheduler.run_once().claimed == 0
        clock.now = T0 + HOUR
        assert scheduler.run_once() == Round(claimed=1, changed=1, events=1)
        assert scheduler.run_once().claimed == 0  # done, and marked done in the same commit
        assert service.get("u1").held_fen == 0  # type: ignore[union-attr]
        assert due_ms(service, "u1") == T0 + CYCLE
        clock.now = T0 + CYCLE + 5
        assert scheduler.run_once() == Round(claimed=1, changed=1, events=1)
        assert scheduler.run_once().claimed == 0
        assert kinds(service, "u1") == ["opened", "hold_placed", "hold_expired", "statement_closed"]
        with service.store.transaction() as tx:
            recorded = repo.recorded_commands(
                tx, {("u1", tick_key(T0 + HOUR)), ("u1", tick_key(T0 + CYCLE))}
            )
            assert len(recorded) == 2
            assert audit(tx) == []
    finally:
        service.store.close()


def test_a_user_who_never_borrows_is_raised_by_the_schedule(store_url: str) -> None:
    clock = Clock()
    service = PoolService(open_store(store_url), Policy(), clock)
    scheduler = Scheduler(service)
    try:
        service.execute(c.OpenPool(user="u1", key="open", limit_fen=100_000))
        for cycle in range(1, 7):
            clock.now = T0 + cycle * CYCLE
            assert scheduler.run_once().changed == 1
        assert kinds(service, "u1").count("statement_closed") == 6
        assert kinds(service, "u1")[-2:] == ["limit_raised", "statement_closed"]
        assert service.get("u1").limit_fen == 120_000  # type: ignore[union-attr]
    finally:
        service.store.close()


def test_work_that_ran_but_was_not_marked_done_is_not_applied_twice(store_url: str) -> None:
    """A tick committed while the pool's due time still says the old one (as if the scheduler
    had died between the two): the next round's tick has the same key, so the command log
    answers it and nothing happens twice; the due time is then set right."""
    clock = Clock()
    service = PoolService(open_store(store_url), Policy(), clock)
    try:
        service.execute(c.OpenPool(user="u1", key="open", limit_fen=100_000))
        clock.now = T0 + CYCLE
        first = service.execute(c.Tick(user="u1", key=tick_key(T0 + CYCLE)))
        assert [e.kind for e in first.events] == ["statement_closed"]
        with service.store.transaction() as tx:
            repo.set_due(tx, "u1", T0 + CYCLE)  # the mark that "did not happen"
        clock.now = T0 + CYCLE + HOUR
        done = Scheduler(service).run_once()
        assert done == Round(claimed=1)  # claimed, replayed, nothing changed
        assert kinds(service, "u1") == ["opened", "statement_closed"]
        assert due_ms(service, "u1") == T0 + 2 * CYCLE
        with service.store.transaction() as tx:
            assert audit(tx) == []
    finally:
        service.store.close()


def test_a_pool_from_before_the_schedule_gets_its_due_time(store_url: str) -> None:
    clock = Clock()
    service = PoolService(open_store(store_url), Policy(), clock)
    try:
        service.execute(c.OpenPool(user="u1", key="open", limit_fen=100_000))
        with service.store.transaction() as tx:
            repo.set_due(tx, "u1", 0)  # what migration 006 gives a pool that existed before
            assert audit(tx) == []  # 0 is allowed: not known yet
        assert Scheduler(service).run_once() == Round(claimed=1)
        assert due_ms(service, "u1") == T0 + CYCLE
        assert kinds(service, "u1") == ["opened"]
    finally:
        service.store.close()


def test_two_schedulers_side_by_side_apply_each_due_work_once(store_url: str) -> None:
    clock = Clock()
    setup = PoolService(open_store(store_url), Policy(), clock)
    users = [f"u{i:03d}" for i in range(60)]
    try:
        for i, user in enumerate(users):
            setup.execute(c.OpenPool(user=user, key="open", limit_fen=1_000_000))
            hold = c.PlaceHold(user=user, key="h", hold_id="h1", amount_fen=1_000, ttl_ms=HOUR + i)
            setup.execute(hold)
    finally:
        setup.store.close()
    clock.now = T0 + CYCLE + HOUR  # every hold expired, every first statement due
    services = [PoolService(open_store(store_url), Policy(), clock) for _ in range(2)]
    rounds: list[list[Round]] = [[], []]

    def work(n: int) -> None:
        scheduler = Scheduler(services[n], batch=7)
        while True:
            done = scheduler.run_once()
            rounds[n].append(done)
            if not done.claimed:
                return

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert sum(r.changed for rs in rounds for r in rs) == len(users)
        with services[0].store.transaction() as tx:
            for user in users:
                got = [e.kind for _v, e in repo.events_of(tx, user)]
                assert got == ["opened", "hold_placed", "hold_expired", "statement_closed"], user
            assert audit(tx) == []
    finally:
        for s in services:
            s.store.close()
