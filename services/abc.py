"""ABC (Pareto) classification of customers by cumulative share of revenue, and its summary.

Customers are taken in order of revenue, highest first. A customer is in class A while the
revenue of everyone strictly ahead of them is below the A boundary (80% by default), so the
customer whose revenue crosses the boundary is still A; likewise for B (95% by default);
the rest are C. Customers with equal revenue are classed together, as if each were the first
of them, so the same revenue always gets the same class. Revenue of zero or below (nothing
bought, or refunds exceeding purchases) is class C and counts as zero in the shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

AbcClass = Literal["A", "B", "C"]

ABC_CLASSES: tuple[AbcClass, ...] = ("A", "B", "C")
"""Class keys; the codes returned by :func:`classify_abc` index this."""

# Cumulative shares come from float sums, so a boundary reached exactly (80 of 100) can
# read as 0.7999999999; this tolerance keeps such a customer's successor out of the class.
_SHARE_TOLERANCE = 1e-9


@dataclass(frozen=True, slots=True)
class AbcClassSummary:
    """One class's weight: how many customers and how much revenue, absolute and as shares."""

    abc_class: AbcClass
    customers: int
    customer_share: float
    revenue: float
    revenue_share: float


def _revenue(revenue: ArrayLike) -> NDArray[np.float64]:
    values = np.asarray(revenue, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("revenue must be one-dimensional")
    if not np.isfinite(values).all():
        raise ValueError("revenue must be finite")
    return np.clip(values, 0.0, None)


def classify_abc(
    revenue: ArrayLike, *, a_share: float = 0.80, b_share: float = 0.95
) -> NDArray[np.uint8]:
    """Class code per customer (0 = A, 1 = B, 2 = C, indices into :data:`ABC_CLASSES`).

    `a_share` and `b_share` are the cumulative revenue shares that close classes A and B.
    """
    if not 0.0 < a_share <= b_share <= 1.0:
        raise ValueError("need 0 < a_share <= b_share <= 1")
    distinct, index, counts = np.unique(_revenue(revenue), return_inverse=True, return_counts=True)
    block_revenue = distinct * counts
    # Summed from the top down, so the shares that decide A and B carry the least rounding.
    from_top = np.cumsum(block_revenue[::-1])[::-1]
    block_codes = np.full(distinct.size, 2, dtype=np.uint8)
    if distinct.size and from_top[0] > 0.0:
        ahead_share = (from_top - block_revenue) / from_top[0]
        block_codes[ahead_share < b_share - _SHARE_TOLERANCE] = 1
        block_codes[ahead_share < a_share - _SHARE_TOLERANCE] = 0
        block_codes[distinct <= 0.0] = 2
    return block_codes[index]


def summarize_abc(revenue: ArrayLike, codes: NDArray[np.uint8]) -> tuple[AbcClassSummary, ...]:
    """Share of customers and of revenue in each class, A, B, C in that order."""
    values = _revenue(revenue)
    if codes.shape != values.shape:
        raise ValueError("revenue and codes must have the same shape")
    counts = np.bincount(codes, minlength=len(ABC_CLASSES))
    sums = np.bincount(codes, weights=values, minlength=len(ABC_CLASSES))
    n = max(int(values.size), 1)
    total = float(values.sum())
    return tuple(
        AbcClassSummary(
            abc_class=key,
            customers=int(counts[i]),
            customer_share=float(counts[i]) / n,
            revenue=float(sums[i]),
            revenue_share=float(sums[i]) / total if total > 0.0 else 0.0,
        )
        for i, key in enumerate(ABC_CLASSES)
    )
