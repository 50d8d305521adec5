"""Fridge stock from load cells: calibration, smoothing, door and item events, stock per shelf.

Pure functions of values; agent.sensors.hx711 reads the numbers from the IIO driver. A shelf's
weight is `(raw * scale - tare_mv) * g_per_mv`: IIO's `scale` turns raw counts into millivolts
(and follows the HX711's gain setting), the calibration stored on the device turns millivolts
into grams. Each read is smoothed by the median of the last few; while a shelf's weight swings
(a hand on it, the door open) the stock estimate holds its last settled value, and when it
settles lower by at least half an item, the items taken are counted.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from agent.config import Shelf

WINDOW = 5
"""Reads in the median (one a second): a spike shorter than three reads never shows."""
SETTLED_BAND_G = 20.0
"""A shelf is settled when its last WINDOW weights lie within this band."""
STUCK_READS = 30
"""Identical raw reads in a row before a cell counts as stuck: a live HX711's 24-bit reading
always moves in its lowest bits, so this many repeats means a frozen driver or a dead wire."""


@dataclass(frozen=True)
class Calibration:
    """How a shelf's millivolts become grams: measured with the shelf empty (tare) and with a
    known weight on it (span)."""

    tare_mv: float = 0.0
    g_per_mv: float = 0.0

    @property
    def complete(self) -> bool:
        # A negative span is a real rig (A+/A- swapped, a cell mounted in compression): the
        # sign of g_per_mv turns its falling millivolts into rising grams.
        return self.g_per_mv != 0


def tare(samples_mv: list[float]) -> Calibration:
    """Calibration with the current (empty) shelf as zero; the span is measured next."""
    return Calibration(tare_mv=statistics.median(samples_mv))


def span(cal: Calibration, samples_mv: list[float], known_g: float) -> Calibration:
    """The calibration after placing `known_g` grams on a tared shelf."""
    delta = statistics.median(samples_mv) - cal.tare_mv
    if known_g <= 0 or delta == 0:
        raise ValueError("the known weight must be positive and move the reading")
    return replace(cal, g_per_mv=known_g / delta)


def grams(cal: Calibration, mv: float) -> float:
    return (mv - cal.tare_mv) * cal.g_per_mv


@dataclass(frozen=True)
class ShelfState:
    """What a shelf's next step needs: the recent weights, the last settled weight, and the
    raw value repeat count (the stuck check)."""

    recent_g: tuple[float, ...] = ()
    settled_g: float | None = None
    last_raw: int | None = None
    repeats: int = 0


@dataclass(frozen=True)
class ShelfUpdate:
    """The outcome of one read of a shelf."""

    weight_g: float  # smoothed (median of the window)
    settled: bool  # False while the weight swings (the door is open, a hand is on the shelf)
    stock_pct: int  # from the last settled weight: what the restock rule reads
    items: int  # whole items on the shelf, from the last settled weight
    removed: int  # items taken since the last settled weight (0 if none or added)
    stuck: bool


def stock_pct(shelf: Shelf, weight_g: float) -> int:
    full = shelf.unit_g * shelf.full_count
    return max(0, min(100, round(weight_g * 100 / full)))


def step(
    shelf: Shelf, cal: Calibration, state: ShelfState, raw: int, scale: float
) -> tuple[ShelfState, ShelfUpdate]:
    """Fold one raw read of a shelf into its state."""
    repeats = state.repeats + 1 if raw == state.last_raw else 0
    recent = (*state.recent_g, grams(cal, raw * scale))[-WINDOW:]
    weight = statistics.median(recent)
    settled = max(recent) - min(recent) <= SETTLED_BAND_G
    before = state.settled_g
    now_settled = weight if settled else before
    removed = 0
    if settled and before is not None and before - weight >= shelf.unit_g / 2:
        removed = round((before - weight) / shelf.unit_g)
    basis = now_settled if now_settled is not None else weight
    update = ShelfUpdate(
        weight_g=weight,
        settled=settled,
        stock_pct=stock_pct(shelf, basis),
        items=max(0, round(basis / shelf.unit_g)),
        removed=removed,
        stuck=repeats + 1 >= STUCK_READS,
    )
    return ShelfState(recent, now_settled, raw, repeats), update
