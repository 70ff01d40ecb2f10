"""RFM quintile scores and the R × FM segment grid."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from services.rfm import SEGMENT_RULES, SEGMENTS, SegmentKey, quintile_scores, score_rfm


def _population(r: int, f: int, m: int) -> tuple[list[int], list[int], list[int]]:
    """Five customers whose scores are a permutation of 1–5 per dimension; the first has
    scores (r, f, m). With five distinct values each quintile holds exactly one customer,
    so frequency and monetary value v score v, and recency d days scores 5 - d."""
    rs = [r, *(s for s in range(1, 6) if s != r)]
    fs = [f, *(s for s in range(1, 6) if s != f)]
    ms = [m, *(s for s in range(1, 6) if s != m)]
    return [5 - s for s in rs], fs, ms


@pytest.mark.parametrize(
    ("r", "f", "m", "fm", "segment"),
    [
        (5, 5, 5, 5, "champions"),
        (5, 4, 3, 4, "champions"),
        (4, 5, 4, 5, "loyal"),
        (3, 4, 4, 4, "loyal"),
        (5, 2, 3, 3, "potential_loyalist"),
        (4, 2, 1, 2, "potential_loyalist"),
        (5, 1, 1, 1, "new"),
        (4, 1, 1, 1, "promising"),
        (3, 3, 3, 3, "need_attention"),
        (3, 2, 1, 2, "about_to_sleep"),
        (3, 1, 1, 1, "about_to_sleep"),
        (2, 3, 4, 4, "at_risk"),
        (1, 3, 2, 3, "at_risk"),
        (1, 5, 5, 5, "cant_lose_them"),
        (2, 5, 4, 5, "cant_lose_them"),
        (2, 1, 2, 2, "hibernating"),
        (2, 1, 1, 1, "hibernating"),
        (1, 2, 1, 2, "lost"),
        (1, 1, 1, 1, "lost"),
    ],
)
def test_segment_table(r: int, f: int, m: int, fm: int, segment: SegmentKey) -> None:
    scores = score_rfm(*_population(r, f, m))
    assert (scores.r[0], scores.f[0], scores.m[0], scores.fm[0]) == (r, f, m, fm)
    assert scores.segment_keys()[0] == segment


def test_rules_cover_every_cell_exactly_once_and_use_every_segment() -> None:
    for r, fm in itertools.product(range(1, 6), repeat=2):
        matching = [
            rule
            for rule in SEGMENT_RULES
            if rule.r_min <= r <= rule.r_max and rule.fm_min <= fm <= rule.fm_max
        ]
        assert len(matching) == 1, (r, fm)
    assert {rule.segment for rule in SEGMENT_RULES} == set(SEGMENTS)
    assert len(SEGMENTS) == 11


def test_quintiles_of_distinct_values() -> None:
    values = np.arange(10.0)
    assert quintile_scores(values).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    recency_scores = quintile_scores(values, higher_is_better=False)
    assert recency_scores.tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
    assert np.bincount(quintile_scores(np.arange(1000.0)))[1:].tolist() == [200] * 5


def test_ties_take_the_lowest_score_of_their_block() -> None:
    frequency = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 5], dtype=float)
    assert quintile_scores(frequency).tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    recency = np.array([0, 0, 0, 0, 0, 0, 10, 20, 30, 40], dtype=float)
    recency_scores = quintile_scores(recency, higher_is_better=False)
    assert recency_scores.tolist() == [3, 3, 3, 3, 3, 3, 2, 2, 1, 1]


def test_customers_without_purchases_are_not_scored() -> None:
    with pytest.raises(ValueError, match="purchase"):
        score_rfm([1.0, 2.0], [1, 0], [10.0, 0.0])


def test_empty_input() -> None:
    scores = score_rfm([], [], [])
    assert scores.segment.size == 0
    assert scores.segment_keys() == []


customers = st.integers(min_value=1, max_value=60).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, n, elements=st.integers(0, 400).map(float)),
        arrays(np.float64, n, elements=st.integers(1, 12).map(float)),
        arrays(np.float64, n, elements=st.floats(0, 5000, allow_nan=False)),
    )
)


@given(customers)
def test_scores_and_segments_are_well_formed(data: tuple[np.ndarray, ...]) -> None:
    recency, frequency, monetary = data
    scores = score_rfm(recency, frequency, monetary)
    for dimension in (scores.r, scores.f, scores.m, scores.fm):
        assert dimension.min() >= 1 and dimension.max() <= 5
    for r, fm, code in zip(scores.r, scores.fm, scores.segment, strict=True):
        matching = [
            SEGMENTS.index(rule.segment)
            for rule in SEGMENT_RULES
            if rule.r_min <= r <= rule.r_max and rule.fm_min <= fm <= rule.fm_max
        ]
        assert matching == [code]


@given(arrays(np.float64, st.integers(1, 80), elements=st.integers(0, 30).map(float)))
def test_scores_are_monotone_and_equal_values_score_alike(values: np.ndarray) -> None:
    for higher_is_better in (True, False):
        scores = quintile_scores(values, higher_is_better=higher_is_better)
        order = np.argsort(values if higher_is_better else -values, kind="stable")
        assert (np.diff(scores[order].astype(int)) >= 0).all()
        for value in np.unique(values):
            assert np.unique(scores[values == value]).size == 1


@given(customers, st.integers(min_value=0, max_value=2**32 - 1))
def test_scores_do_not_depend_on_input_order(data: tuple[np.ndarray, ...], seed: int) -> None:
    recency, frequency, monetary = data
    permutation = np.random.default_rng(seed).permutation(recency.size)
    before = score_rfm(recency, frequency, monetary)
    after = score_rfm(recency[permutation], frequency[permutation], monetary[permutation])
    assert (after.segment == before.segment[permutation]).all()
