"""Spend tiers: place customers by trailing-12-month spend, and tell one how far the next tier is.

Tiers are given highest first as (key, minimum spend); a customer belongs to the first tier
whose minimum their spend reaches. Spend below every minimum (net refunds) falls in the
lowest tier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise
from typing import NamedTuple, Protocol, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray


class TierRule(Protocol):
    """Anything with a key and the trailing-12-month spend that reaches it (the policy's
    tiers and :class:`Tier` alike)."""

    @property
    def key(self) -> str: ...

    @property
    def min_spend(self) -> Decimal: ...


T = TypeVar("T", bound=TierRule)


class Tier(NamedTuple):
    """A tier and the trailing-12-month spend, in currency units, that reaches it."""

    key: str
    min_spend: Decimal


DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("key", Decimal(1000)),
    Tier("regular", Decimal(300)),
    Tier("small", Decimal(0)),
)
"""The bookstore example: key customers ≥ 1000, regular 300–999.99, small below 300."""


@dataclass(frozen=True, slots=True)
class TierProgress:
    """Where one customer stands: current tier, the next one up and the spend still needed."""

    current: str
    next_tier: str | None
    amount_needed: Decimal | None


def _checked(tiers: Sequence[T]) -> Sequence[T]:
    if not tiers:
        raise ValueError("at least one tier is needed")
    minimums = [tier.min_spend for tier in tiers]
    if any(high <= low for high, low in pairwise(minimums)):
        raise ValueError("tiers must be ordered by strictly decreasing min_spend")
    if len({tier.key for tier in tiers}) != len(tiers):
        raise ValueError("tier keys must be distinct")
    return tiers


def classify_tiers(spend: ArrayLike, tiers: Sequence[TierRule] = DEFAULT_TIERS) -> NDArray[np.intp]:
    """Tier index per customer (0 = the highest tier, indices into `tiers`)."""
    tiers = _checked(tiers)
    values = np.asarray(spend, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("spend must be finite")
    # Summing cents in floats can give 999.9999999 for 1000.00; comparing at cent precision
    # puts such a customer where the exact decimal amount would.
    cents = np.round(values, 2)
    ascending = np.array([float(tier.min_spend) for tier in reversed(tiers)])
    reached = np.searchsorted(ascending, cents, side="right") - 1
    return np.asarray(len(tiers) - 1 - np.clip(reached, 0, None), dtype=np.intp)


def tier_index(spend: Decimal, tiers: Sequence[TierRule]) -> int:
    """One customer's tier, as an index into tiers already checked (the policy's are when
    it is read): the first whose minimum their spend reaches, else the lowest."""
    # A plain loop: asked for every sale an import writes, and a generator costs twice this.
    for index, tier in enumerate(tiers):
        if spend >= tier.min_spend:
            return index
    return len(tiers) - 1


def tier_progress(spend: Decimal, tiers: Sequence[TierRule] = DEFAULT_TIERS) -> TierProgress:
    """One customer's tier and, unless already in the top tier, what it takes to move up."""
    tiers = _checked(tiers)
    index = tier_index(spend, tiers)
    if index == 0:
        return TierProgress(current=tiers[0].key, next_tier=None, amount_needed=None)
    up = tiers[index - 1]
    return TierProgress(
        current=tiers[index].key, next_tier=up.key, amount_needed=up.min_spend - spend
    )
