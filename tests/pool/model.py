"""The reference model: the pool rules of docs/credit-pool.md written plainly, with no shared code.

Mutable dicts, a loop over time, and interest kept as one exact integral (fen x ms x bps) instead
of the engine's carried remainder. It knows nothing of stores, journals or JSON. The property
tests run the same commands through the real service and through this model and demand the
same result code and the same view after every step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cloud_bridge.pool import commands as c
from cloud_bridge.pool.policy import Policy

DAY = 86_400_000
DENOM = 10_000 * 365 * DAY


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class MPool:
    user: str
    status: str
    limit: int
    rate: int
    last_ms: int  # time of the last change (the stored state's updated_ms)
    next_stmt: int
    principal: int = 0
    interest: int = 0
    integral: int = 0  # interest accrued and unbilled, times DENOM, exact
    holds: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (amount, expires)
    merchants: dict[str, str] = field(default_factory=dict)  # hold id -> its merchant ("" none)
    plans: list[list[int]] = field(default_factory=list)  # [no, principal, periods_left]
    due_ms: int = 0
    min_due: int = 0
    due_left: int = 0
    streak: int = 0
    boost: int = 0
    next_plan: int = 1
    version: int = 0
    # Trigger limits: emergency draws (time, amount) and boost times, newest last; the last
    # accepted mileage report (km, time). Kept across close and reopen.
    emergencies: list[tuple[int, int]] = field(default_factory=list)
    boost_times: list[int] = field(default_factory=list)
    last_km: tuple[int, int] | None = None
    # Merchant pools: reported turnover by day, the first day reported, the next review time.
    turnover: dict[int, int] = field(default_factory=dict)
    first_day: int | None = None
    next_review: int = 0

    @property
    def installment(self) -> int:
        return sum(p[1] for p in self.plans)

    @property
    def outstanding(self) -> int:
        return self.principal + self.installment

    @property
    def held(self) -> int:
        return sum(a for a, _ in self.holds.values())

    @property
    def available(self) -> int:
        return self.limit - self.outstanding - self.held

    def view(self) -> dict[str, object]:
        return {
            "user": self.user,
            "status": self.status,
            "limit_fen": self.limit,
            "available_fen": self.available,
            "outstanding_fen": self.outstanding,
            "held_fen": self.held,
            "interest_fen": self.interest,
            "accrued_interest_fen": self.integral // DENOM,
            "rate_bps": self.rate,
            "min_due_fen": self.due_left,
            "due_ms": self.due_ms,
            "next_statement_ms": self.next_stmt,
            "on_time_cycles": self.streak,
            "version": self.version,
            "updated_ms": self.last_ms,
        }

    def copy(self) -> MPool:
        return MPool(
            **{
                **self.__dict__,
                "holds": dict(self.holds),
                "merchants": dict(self.merchants),
                "turnover": dict(self.turnover),
                "plans": [list(p) for p in self.plans],
                "emergencies": list(self.emergencies),
                "boost_times": list(self.boost_times),
            }
        )


class Model:
    """Pools by user; `apply` returns the result code (a string) of one command at time `now`."""

    def __init__(self, policy: Policy) -> None:
        self.p = policy
        self.pools: dict[str, MPool] = {}
        self.seen: dict[tuple[str, str], tuple[str, str]] = {}  # (user, key) -> (fp, result)

    def view(self, user: str) -> dict[str, object] | None:
        pool = self.pools.get(user)
        return None if pool is None else pool.view()

    # --- time -----------------------------------------------------------------------------

    def _accrue(self, pool: MPool, frm: int, to: int) -> None:
        pool.integral += pool.principal * (to - frm) * pool.rate

    def _catch_up(self, pool: MPool, now: int) -> tuple[int, int]:
        """Let time pass up to `now`; (the clock after, the number of events)."""
        t = pool.last_ms
        target = max(now, t)
        n = 0
        while True:
            hold = sorted(self._live(pool), key=lambda h: (h[2], h[0]))
            stmt = pool.next_stmt if pool.status != "closed" else None
            first_hold = hold[0] if hold and hold[0][2] <= target else None
            if first_hold and (stmt is None or stmt > target or first_hold[2] <= stmt):
                self._accrue(pool, t, first_hold[2])
                t = first_hold[2]
                del pool.holds[first_hold[0]]
                n += 1
            elif stmt is not None and stmt <= target:
                self._accrue(pool, t, stmt)
                t = stmt
                n += self._statement(pool, stmt)
            else:
                break
        self._accrue(pool, t, target)
        return target, n

    @staticmethod
    def _live(pool: MPool) -> list[tuple[str, int, int]]:
        return [(hid, a, e) for hid, (a, e) in pool.holds.items()]

    def _statement(self, pool: MPool, at: int) -> int:
        p = self.p
        n = 1
        if pool.min_due > 0 and pool.due_left > 0:  # the last minimum went unpaid
            pool.streak = 0
            n += 1
        else:  # paid, or nothing was due: a cycle in good standing
            pool.streak += 1
        if pool.streak >= p.raises.after_on_time_cycles and pool.status == "open":
            pool.streak = 0
            new = max(
                pool.limit,
                min(pool.limit + pool.limit * p.raises.step_bps // 10_000, p.limits.max_fen),
            )
            if new > pool.limit:
                pool.limit = new
                n += 1
        billed = pool.integral // DENOM
        pool.integral -= billed * DENOM
        pool.interest += billed
        inst = 0
        for plan in pool.plans:
            inst += plan[1] if plan[2] <= 1 else ceil_div(plan[1], plan[2])
            plan[2] = max(0, plan[2] - 1)
        revolving = 0
        if pool.principal:
            revolving = max(
                ceil_div(pool.principal * p.statement.min_payment_bps, 10_000),
                min(p.statement.min_payment_floor_fen, pool.principal),
            )
        pool.min_due = min(pool.interest + inst + revolving, pool.interest + pool.outstanding)
        pool.due_left = pool.min_due
        pool.due_ms = at + p.statement.grace_days * DAY
        pool.next_stmt = at + p.statement.cycle_days * DAY
        return n

    def _review(self, pool: MPool, t: int) -> int:
        """A merchant pool's review if one is due at t; the number of events."""
        if not pool.next_review or t < pool.next_review or pool.status == "closed":
            return 0
        assert pool.first_day is not None
        mp = self.p.merchant
        today = t // DAY
        first_counted = max(today - mp.window_days, pool.first_day)
        vals = [pool.turnover.get(d, 0) for d in range(first_counted, today)]
        total = sum(vals)
        monthly = total * mp.window_days // len(vals) if vals else 0
        cv = 0
        if total:
            mean_sq_gap = len(vals) * sum(v * v for v in vals) - total * total
            cv = math.isqrt(mean_sq_gap * 10**8) // total
        vol = max(mp.min_volatility_factor_bps, 10_000 - cv * mp.volatility_penalty_bps // 10_000)
        hist = min(10_000, (today - pool.first_day) * 10_000 // mp.full_history_days)
        target = monthly * mp.max_turnover_bps * vol * hist // 10**12
        new = min(max(target, self.p.limits.min_fen), self.p.limits.max_fen)
        new = max(new, pool.outstanding + pool.held)
        if pool.status == "frozen":
            new = min(new, pool.limit)
        pool.turnover = {d: f for d, f in pool.turnover.items() if d >= today - mp.window_days}
        while pool.next_review <= t:
            pool.next_review += mp.review_days * DAY
        changed = new != pool.limit
        pool.limit = new
        return 1 + int(changed)

    # --- commands ---------------------------------------------------------------------------

    def apply(self, cmd: c.Command, now: int) -> str:
        key = (cmd.user, cmd.key)
        old = self.pools.get(cmd.user)
        if old is not None and key in self.seen:
            fp, result = self.seen[key]
            return result if fp == cmd.fingerprint() else "key_reused"
        if old is None:
            if not isinstance(cmd, c.OpenPool):
                return "pool_not_found"
            result = self._open(None, cmd, now)
            if result == "ok":
                self.seen[key] = (cmd.fingerprint(), result)
            return result
        pool = old.copy()
        t, n = self._catch_up(pool, now)
        n += self._review(pool, t)
        result, m = self._command(pool, cmd, t)
        if result != "ok":
            m = 0
            pool = old.copy()
            t, n = self._catch_up(pool, now)
            n += self._review(pool, t)
        if n + m:
            pool.version = old.version + 1
            pool.last_ms = t
            self.pools[cmd.user] = pool
        self.seen[key] = (cmd.fingerprint(), result)
        return result

    def _open(self, pool: MPool | None, cmd: c.OpenPool, now: int) -> str:
        p = self.p
        if not p.limits.min_fen <= cmd.limit_fen <= p.limits.max_fen:
            return "limit_out_of_range"
        fresh = MPool(
            user=cmd.user,
            status="open",
            limit=cmd.limit_fen,
            rate=p.rates.base_bps if cmd.rate_bps is None else cmd.rate_bps,
            last_ms=now,
            next_stmt=now + p.statement.cycle_days * DAY,
        )
        if pool is not None:
            fresh.integral = pool.integral
            fresh.next_plan = pool.next_plan
            fresh.version = pool.version
            fresh.emergencies = list(pool.emergencies)
            fresh.boost_times = list(pool.boost_times)
            fresh.last_km = pool.last_km
            fresh.turnover = dict(pool.turnover)
            fresh.first_day = pool.first_day
            fresh.next_review = pool.next_review
        else:
            fresh.version = 1
            self.pools[cmd.user] = fresh
        if pool is not None:
            pool.__dict__.update(fresh.__dict__)
        return "ok"

    def _usable(self, pool: MPool, emergency: bool) -> int:
        if emergency:
            return pool.available
        return max(0, pool.available - pool.limit * self.p.emergency.reserve_bps // 10_000)

    def _command(self, pool: MPool, cmd: c.Command, t: int) -> tuple[str, int]:
        """(result, number of events) of the command itself, on a pool already at time t."""
        p = self.p
        closed, frozen = pool.status == "closed", pool.status == "frozen"
        if isinstance(cmd, c.OpenPool):
            return ("pool_exists", 0) if not closed else (self._open(pool, cmd, t), 1)
        if isinstance(cmd, c.Tick):
            return "ok", 0
        if isinstance(cmd, c.Repay):
            if closed:
                return "pool_closed", 0
            accrued = pool.integral // DENOM
            if cmd.amount_fen > pool.interest + accrued + pool.outstanding:
                return "exceeds_debt", 0
            left = cmd.amount_fen
            x = min(left, pool.interest)
            pool.interest -= x
            left -= x
            x = min(left, accrued)
            pool.integral -= x * DENOM
            left -= x
            x = min(left, pool.principal)
            pool.principal -= x
            left -= x
            for plan in pool.plans:
                x = min(left, plan[1])
                plan[1] -= x
                left -= x
            pool.plans = [plan for plan in pool.plans if plan[1]]
            if t <= pool.due_ms:
                pool.due_left = max(0, pool.due_left - cmd.amount_fen)
            return "ok", 1
        if isinstance(cmd, c.Draw):
            if closed or frozen:
                return ("pool_closed" if closed else "pool_frozen"), 0
            if cmd.amount_fen < p.limits.min_draw_fen:
                return "below_min_draw", 0
            if cmd.installments and (
                cmd.installments != p.installments.periods
                or cmd.amount_fen < p.installments.min_amount_fen
            ):
                return "installments_not_eligible", 0
            usable = self._usable(pool, cmd.emergency is not None)
            amount = cmd.amount_fen
            today: list[tuple[int, int]] = []
            budget = None
            if cmd.emergency is not None:
                today = [(at, fen) for at, fen in pool.emergencies if t - at < DAY]
                if len(today) >= p.emergency.max_per_day:
                    return "too_many_emergencies", 0
                budget = max(0, p.emergency.max_fen_per_day - sum(fen for _, fen in today))
            if cmd.up_to:
                amount = min(amount, usable) if budget is None else min(amount, usable, budget)
                amount = max(amount, p.limits.min_draw_fen)
            if budget is not None and amount > budget:
                return "exceeds_emergency_budget", 0
            if amount > usable:
                return "exceeds_credit", 0
            if cmd.installments:
                pool.plans.append([pool.next_plan, amount, cmd.installments])
                pool.next_plan += 1
            else:
                pool.principal += amount
            if cmd.emergency is not None:
                pool.emergencies = [*today, (t, amount)]
            return "ok", 1
        if isinstance(cmd, c.PlaceHold):
            if closed or frozen:
                return ("pool_closed" if closed else "pool_frozen"), 0
            ttl = p.holds.default_ttl_ms if cmd.ttl_ms is None else cmd.ttl_ms
            for bad, code in (
                (cmd.hold_id in pool.holds, "hold_exists"),
                (cmd.amount_fen < p.limits.min_draw_fen, "below_min_draw"),
                (ttl > p.holds.max_ttl_ms, "hold_ttl_too_long"),
                (len(pool.holds) >= p.holds.max_active, "too_many_holds"),
                (cmd.amount_fen > self._usable(pool, False), "exceeds_credit"),
            ):
                if bad:
                    return code, 0
            pool.holds[cmd.hold_id] = (cmd.amount_fen, t + ttl)
            pool.merchants[cmd.hold_id] = cmd.merchant
            return "ok", 1
        if isinstance(cmd, c.ConfirmHold):
            if cmd.hold_id not in pool.holds:
                return "hold_not_found", 0
            if closed or frozen:
                return ("pool_closed" if closed else "pool_frozen"), 0
            amount, _ = pool.holds[cmd.hold_id]
            take = amount if cmd.amount_fen is None else cmd.amount_fen
            if take > amount:
                return "exceeds_hold", 0
            del pool.holds[cmd.hold_id]
            shop = pool.merchants[cmd.hold_id]
            eligible = p.installments.eligible_merchants
            plan = (
                p.installments.automatic == 1
                and shop != ""
                and ("*" in eligible or shop in eligible)
                and take >= p.installments.min_amount_fen
                and not cmd.opt_out
            )
            if plan:
                pool.plans.append([pool.next_plan, take, p.installments.periods])
                pool.next_plan += 1
            else:
                pool.principal += take
            return "ok", 1
        if isinstance(cmd, c.ReleaseHold):
            if cmd.hold_id not in pool.holds:
                return "hold_not_found", 0
            del pool.holds[cmd.hold_id]
            return "ok", 1
        if isinstance(cmd, c.Freeze):
            if closed or frozen:
                return ("pool_closed" if closed else "already_frozen"), 0
            pool.status = "frozen"
            return "ok", 1
        if isinstance(cmd, c.Unfreeze):
            if not frozen:
                return ("pool_closed" if closed else "not_frozen"), 0
            pool.status = "open"
            return "ok", 1
        if isinstance(cmd, c.ClosePool):
            if closed:
                return "pool_closed", 0
            if pool.interest or pool.integral // DENOM or pool.outstanding or pool.holds:
                return "has_balance", 0
            pool.status, pool.limit, pool.boost = "closed", 0, 0
            pool.due_ms = pool.min_due = pool.due_left = pool.streak = 0
            return "ok", 1
        if isinstance(cmd, c.SetLimit):
            if closed:
                return "pool_closed", 0
            if not p.limits.min_fen <= cmd.limit_fen <= p.limits.max_fen:
                return "limit_out_of_range", 0
            if cmd.limit_fen < pool.outstanding + pool.held:
                return "limit_below_usage", 0
            changed = cmd.limit_fen != pool.limit
            pool.limit = cmd.limit_fen
            return "ok", int(changed)
        if isinstance(cmd, c.ReportMileage):
            if closed:
                return "pool_closed", 0
            km, per_day = cmd.km_per_month, p.mileage.max_km_per_day
            if km > 30 * per_day:
                return "implausible_mileage", 0
            if pool.last_km is not None:
                km0, t0 = pool.last_km
                if km > km0 and (km - km0) * DAY > per_day * (t - t0):
                    return "implausible_mileage", 0
            pool.rate = max(
                (t_ for t_ in p.rates.tiers if km >= t_.min_km_per_month),
                key=lambda t_: t_.min_km_per_month,
            ).rate_bps
            pool.last_km = (km, t)
            return "ok", 1
        if isinstance(cmd, c.HealthGoalMet):
            if closed or frozen:
                return ("pool_closed" if closed else "pool_frozen"), 0
            step = max(0, min(p.health.boost_fen, p.health.max_boost_fen - pool.boost))
            new = min(pool.limit + step, p.limits.max_fen)
            if new <= pool.limit:
                return "boost_cap_reached", 0
            if pool.boost_times and t - pool.boost_times[-1] < p.health.cooldown_ms:
                return "boost_cooldown", 0
            week = [at for at in pool.boost_times if t - at < 7 * DAY]
            if len(week) >= p.health.max_per_week:
                return "too_many_boosts", 0
            pool.boost_times = [*week, t]
            pool.boost += new - pool.limit
            pool.limit = new
            return "ok", 1
        if isinstance(cmd, c.LifeStage):
            if closed or frozen:
                return ("pool_closed" if closed else "pool_frozen"), 0
            bps = p.life_stage.change_bps(cmd.event)
            change = abs(pool.limit * bps) // 10_000
            if bps >= 0:
                new = max(pool.limit, min(pool.limit + change, p.limits.max_fen))
            else:
                floor = max(p.limits.min_fen, pool.outstanding + pool.held)
                new = min(pool.limit, max(pool.limit - change, floor))
            changed = new != pool.limit
            pool.limit = new
            return "ok", int(changed)
        if isinstance(cmd, c.ReportTurnover):
            if closed:
                return "pool_closed", 0
            today, window = t // DAY, p.merchant.window_days
            if not today - window <= cmd.day <= today:
                return "turnover_day_out_of_window", 0
            if cmd.day in pool.turnover:
                return "turnover_already_reported", 0
            if cmd.turnover_fen > p.merchant.max_daily_fen:
                return "implausible_turnover", 0
            pool.turnover = {d: f for d, f in pool.turnover.items() if d >= today - window}
            pool.turnover[cmd.day] = cmd.turnover_fen
            pool.first_day = cmd.day if pool.first_day is None else min(pool.first_day, cmd.day)
            pool.next_review = pool.next_review or t + p.merchant.review_days * DAY
            return "ok", 1
        raise TypeError(cmd)
