"""ABC (Pareto) classification by cumulative revenue share."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from services.abc import ABC_CLASSES, classify_abc, summarize_abc


def _classes(revenue: list[float], **shares: float) -> list[str]:
    return [ABC_CLASSES[code] for code in classify_abc(revenue, **shares)]


def test_the_guides_pareto_split() -> None:
    # 20% of customers bring 80% of sales, 30% bring 15%, 50% bring 5%.
    revenue = [40.0] * 20 + [5.0] * 30 + [1.0] * 50
    codes = classify_abc(revenue)
    assert np.bincount(codes).tolist() == [20, 30, 50]
    summary = summarize_abc(revenue, codes)
    assert [c.abc_class for c in summary] == ["A", "B", "C"]
    assert [c.customers for c in summary] == [20, 30, 50]
    assert [c.customer_share for c in summary] == pytest.approx([0.20, 0.30, 0.50])
    assert [c.revenue for c in summary] == pytest.approx([800.0, 150.0, 50.0])
    assert [c.revenue_share for c in summary] == pytest.approx([0.80, 0.15, 0.05])


def test_the_customer_crossing_a_boundary_stays_in_the_upper_class() -> None:
    assert _classes([79.0, 1.0, 15.0, 5.0]) == ["A", "C", "A", "B"]


def test_a_customer_after_an_exactly_reached_boundary_goes_down() -> None:
    assert _classes([80.0, 15.0, 5.0]) == ["A", "B", "C"]
    assert _classes([0.8, 0.15, 0.05]) == ["A", "B", "C"]


def test_equal_revenue_gets_the_same_class() -> None:
    assert _classes([50.0, 30.0, 10.0, 5.0, 5.0]) == ["A", "A", "B", "B", "B"]


def test_zero_and_negative_revenue_is_c() -> None:
    assert _classes([10.0, 0.0, -3.0], a_share=1.0, b_share=1.0) == ["A", "C", "C"]
    assert _classes([0.0, 0.0]) == ["C", "C"]
    summary = summarize_abc([10.0, 0.0, -3.0], classify_abc([10.0, 0.0, -3.0]))
    assert summary[0].revenue_share == 1.0
    assert summary[2].customer_share == pytest.approx(2 / 3)


def test_thresholds_are_parameters() -> None:
    revenue = [50.0, 25.0, 15.0, 10.0]
    assert _classes(revenue, a_share=0.5, b_share=0.9) == ["A", "B", "B", "C"]
    with pytest.raises(ValueError):
        classify_abc(revenue, a_share=0.9, b_share=0.8)


def test_empty_input() -> None:
    codes = classify_abc([])
    assert codes.size == 0
    assert all(c.customers == 0 and c.revenue_share == 0.0 for c in summarize_abc([], codes))


revenues = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.one_of(
        st.sampled_from([0.0, 1.0, 5.0, 40.0]),
        st.integers(1, 10**6).map(lambda cents: cents / 100),
    ),
)


@given(revenues)
def test_classes_are_monotone_in_revenue(revenue: np.ndarray) -> None:
    codes = classify_abc(revenue)
    order = np.argsort(-revenue, kind="stable")
    assert (np.diff(codes[order].astype(int)) >= 0).all()
    for value in np.unique(revenue):
        assert np.unique(codes[revenue == value]).size == 1
    assert (codes[revenue == 0] == 2).all()


@given(revenues)
def test_a_is_the_smallest_set_reaching_its_share(revenue: np.ndarray) -> None:
    codes = classify_abc(revenue)
    total = revenue.sum()
    if total == 0:
        return
    in_a = revenue[codes == 0]
    assert in_a.sum() >= 0.8 * total - 1e-6
    # Without its smallest revenue block, class A would fall short of 80%.
    smallest = in_a.min()
    assert in_a[in_a > smallest].sum() < 0.8 * total


@given(revenues)
def test_summary_adds_up(revenue: np.ndarray) -> None:
    summary = summarize_abc(revenue, classify_abc(revenue))
    assert sum(c.customers for c in summary) == revenue.size
    assert sum(c.customer_share for c in summary) == pytest.approx(1.0)
    if revenue.sum() > 0:
        assert sum(c.revenue_share for c in summary) == pytest.approx(1.0)
