"""RFM scoring: quintile scores 1–5 for recency, frequency and monetary, and named segments.

Scores are rank-based quintiles over the customers being scored: a customer's score is
``1 + floor(5 * k / n)``, where ``n`` is the number of customers and ``k`` is the number of
customers strictly worse on that dimension (for frequency and monetary: with a smaller
value; for recency: with more days since the last purchase). Equal values therefore always
get the same score, the lowest their tied block would span — a block of one-time buyers
that fills 60% of the customers all score F = 1. With distinct values each quintile holds
a fifth of the customers.

Segments come from the R × FM grid: FM is the mean of the F and M scores rounded half up,
and :data:`SEGMENT_RULES` assigns each of the 25 (R, FM) cells to exactly one segment.
Only customers with at least one purchase in the window are scored; the caller labels the
others "potential".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

SegmentKey = Literal[
    "champions",
    "loyal",
    "potential_loyalist",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose_them",
    "hibernating",
    "lost",
]

SEGMENTS: tuple[SegmentKey, ...] = (
    "champions",
    "loyal",
    "potential_loyalist",
    "new",
    "promising",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose_them",
    "hibernating",
    "lost",
)
"""Segment keys in report order; segment codes returned by :func:`score_rfm` index this."""


@dataclass(frozen=True, slots=True)
class SegmentRule:
    """Customers whose R score and FM score both fall in the inclusive ranges get `segment`."""

    segment: SegmentKey
    r_min: int
    r_max: int
    fm_min: int
    fm_max: int


SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("champions", r_min=5, r_max=5, fm_min=4, fm_max=5),
    SegmentRule("loyal", r_min=3, r_max=4, fm_min=4, fm_max=5),
    SegmentRule("potential_loyalist", r_min=4, r_max=5, fm_min=2, fm_max=3),
    SegmentRule("new", r_min=5, r_max=5, fm_min=1, fm_max=1),
    SegmentRule("promising", r_min=4, r_max=4, fm_min=1, fm_max=1),
    SegmentRule("need_attention", r_min=3, r_max=3, fm_min=3, fm_max=3),
    SegmentRule("about_to_sleep", r_min=3, r_max=3, fm_min=1, fm_max=2),
    SegmentRule("at_risk", r_min=1, r_max=2, fm_min=3, fm_max=4),
    SegmentRule("cant_lose_them", r_min=1, r_max=2, fm_min=5, fm_max=5),
    SegmentRule("hibernating", r_min=2, r_max=2, fm_min=1, fm_max=2),
    SegmentRule("lost", r_min=1, r_max=1, fm_min=1, fm_max=2),
)
"""The R × FM grid, one rule per rectangle of cells; together they cover every cell once.

::

    R \\ FM   1               2                   3                   4               5
    5        new             potential_loyalist  potential_loyalist  champions       champions
    4        promising       potential_loyalist  potential_loyalist  loyal           loyal
    3        about_to_sleep  about_to_sleep      need_attention      loyal           loyal
    2        hibernating     hibernating         at_risk             at_risk         cant_lose_them
    1        lost            lost                at_risk             at_risk         cant_lose_them
"""


def _segment_grid(rules: tuple[SegmentRule, ...]) -> NDArray[np.uint8]:
    # Built once at import so a rule table with a gap or an overlap fails loudly, not by
    # silently mislabelling customers.
    unset = np.iinfo(np.uint8).max
    grid = np.full((6, 6), unset, dtype=np.uint8)
    for rule in rules:
        cells = grid[rule.r_min : rule.r_max + 1, rule.fm_min : rule.fm_max + 1]
        if (cells != unset).any():
            raise ValueError(f"segment rule for {rule.segment!r} overlaps another rule")
        cells[...] = SEGMENTS.index(rule.segment)
    if (grid[1:, 1:] == unset).any():
        raise ValueError("segment rules leave some (R, FM) cells without a segment")
    return grid


_GRID = _segment_grid(SEGMENT_RULES)


@dataclass(frozen=True, slots=True)
class RfmScores:
    """Per-customer scores (1–5, uint8) and segment codes (indices into :data:`SEGMENTS`)."""

    r: NDArray[np.uint8]
    f: NDArray[np.uint8]
    m: NDArray[np.uint8]
    fm: NDArray[np.uint8]
    segment: NDArray[np.uint8]

    def segment_keys(self) -> list[SegmentKey]:
        """The segment key of each customer, in input order."""
        return [SEGMENTS[code] for code in self.segment.tolist()]


def quintile_scores(values: ArrayLike, *, higher_is_better: bool = True) -> NDArray[np.uint8]:
    """Rank-based quintile scores 1–5; equal values get the same score (see module doc)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("values must be one-dimensional")
    if not np.isfinite(v).all():
        raise ValueError("values must be finite")
    n = v.size
    if n == 0:
        return np.empty(0, dtype=np.uint8)
    _, index, counts = np.unique(v, return_inverse=True, return_counts=True)
    at_or_below = np.cumsum(counts)
    worse = at_or_below - counts if higher_is_better else n - at_or_below
    return (1 + (5 * worse) // n).astype(np.uint8)[index]


def score_rfm(recency_days: ArrayLike, frequency: ArrayLike, monetary: ArrayLike) -> RfmScores:
    """Score customers who bought in the window and place each in one segment.

    `recency_days` is days since the last purchase, `frequency` the number of purchases
    (at least 1) and `monetary` the spend in currency units, used only for ranking.
    """
    recency = np.asarray(recency_days, dtype=np.float64)
    freq = np.asarray(frequency, dtype=np.float64)
    money = np.asarray(monetary, dtype=np.float64)
    if not recency.shape == freq.shape == money.shape:
        raise ValueError("recency_days, frequency and monetary must have the same shape")
    if (freq < 1).any():
        raise ValueError("only customers with a purchase in the window can be RFM-scored")
    r = quintile_scores(recency, higher_is_better=False)
    f = quintile_scores(freq)
    m = quintile_scores(money)
    fm = ((f.astype(np.uint16) + m + 1) // 2).astype(np.uint8)
    return RfmScores(r=r, f=f, m=m, fm=fm, segment=_GRID[r, fm])
