"""Spend tiers over trailing-12-month spend, and the distance to the next tier."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.tiers import DEFAULT_TIERS, Tier, TierProgress, classify_tiers, tier_progress


def _keys(spend: list[float], tiers: tuple[Tier, ...] = DEFAULT_TIERS) -> list[str]:
    return [tiers[i].key for i in classify_tiers(spend, tiers)]


def test_the_bookstore_thresholds() -> None:
    assert _keys([1000, 999.99, 300, 299.99, 0, 25_000]) == [
        "key",
        "regular",
        "regular",
        "small",
        "small",
        "key",
    ]


def test_net_refunds_fall_in_the_lowest_tier() -> None:
    assert _keys([-50.0]) == ["small"]


def test_float_sums_of_cents_are_judged_at_cent_precision() -> None:
    spend = sum([0.1] * 10) * 100  # 99.99999999999999 in floats
    assert _keys([spend * 3, 333.33 + 333.33 + 333.34]) == ["regular", "key"]


def test_progress_to_the_next_tier() -> None:
    assert tier_progress(Decimal("250")) == TierProgress("small", "regular", Decimal("50"))
    assert tier_progress(Decimal("999.99")) == TierProgress("regular", "key", Decimal("0.01"))
    assert tier_progress(Decimal("1000")) == TierProgress("key", None, None)
    assert tier_progress(Decimal("-20")) == TierProgress("small", "regular", Decimal("320"))


def test_custom_tiers() -> None:
    tiers = (Tier("gold", Decimal(5000)), Tier("silver", Decimal(1000)), Tier("rest", Decimal(0)))
    assert _keys([5000, 4999.99, 1000, 10], tiers) == ["gold", "silver", "silver", "rest"]
    assert tier_progress(Decimal("4000"), tiers) == TierProgress("silver", "gold", Decimal(1000))


@pytest.mark.parametrize(
    "tiers",
    [
        (),
        (Tier("low", Decimal(0)), Tier("high", Decimal(100))),
        (Tier("a", Decimal(100)), Tier("a", Decimal(0))),
    ],
)
def test_malformed_tiers_are_rejected(tiers: tuple[Tier, ...]) -> None:
    with pytest.raises(ValueError):
        classify_tiers([1.0], tiers)
    with pytest.raises(ValueError):
        tier_progress(Decimal(1), tiers)


cents = st.integers(min_value=-10_000, max_value=500_000)


@given(st.lists(cents, min_size=1, max_size=50))
def test_tier_is_monotone_in_spend(amounts: list[int]) -> None:
    spend = np.sort(np.array(amounts) / 100)
    assert (np.diff(classify_tiers(spend)) <= 0).all()


@given(cents)
def test_single_customer_agrees_with_the_vectorised_classification(amount: int) -> None:
    spend = Decimal(amount) / 100
    progress = tier_progress(spend)
    assert progress.current == _keys([amount / 100])[0]
    if progress.next_tier is None:
        assert progress.current == DEFAULT_TIERS[0].key
    else:
        assert progress.amount_needed is not None and progress.amount_needed > 0
        assert tier_progress(spend + progress.amount_needed).current == progress.next_tier
