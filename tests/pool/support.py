"""Helpers shared by the pool tests: a small test policy and a controllable clock."""

from __future__ import annotations

from cloud_bridge.pool.policy import (
    Emergencies,
    Health,
    Holds,
    Installments,
    Limits,
    Merchant,
    Mileage,
    Policy,
    Raises,
    Statement,
)

DAY = 86_400_000
T0 = 1_700_000_000_000  # a fixed epoch, so every run is the same

# Small numbers so that random sequences reach every rule: raises after 2 on-time statements,
# 3-period plans from 500 yuan (by themselves for purchases at shop-a), a 10 % emergency
# reserve, 3 live holds; 2 emergency draws and 1,500 yuan a day, boosts 5 minutes apart and
# 2 a week, 1,000 km a day; merchant reviews every 3 days over 10-day windows.
TEST_POLICY = Policy(
    limits=Limits(min_fen=10_000, max_fen=3_000_000, min_draw_fen=100),
    holds=Holds(default_ttl_ms=DAY, max_ttl_ms=10 * DAY, max_active=3),
    statement=Statement(
        cycle_days=30, grace_days=10, min_payment_bps=1000, min_payment_floor_fen=5_000
    ),
    raises=Raises(after_on_time_cycles=2, step_bps=2500),
    installments=Installments(periods=3, min_amount_fen=50_000, eligible_merchants=("shop-a",)),
    emergency=Emergencies(reserve_bps=1000, max_per_day=2, max_fen_per_day=150_000),
    health=Health(boost_fen=20_000, max_boost_fen=300_000, cooldown_ms=300_000, max_per_week=2),
    mileage=Mileage(max_km_per_day=1_000),
    merchant=Merchant(window_days=10, review_days=3, full_history_days=20, max_daily_fen=2_000_000),
)


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now_ms: int = T0) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms
