"""BG/NBD on the CDNOW sample against Fader, Hardie & Lee (2005), and the model's properties."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.special import betaln, gammaln, hyp2f1  # type: ignore[import-untyped, unused-ignore]

from services.bgnbd import (
    BgNbdParams,
    CalibrationSummary,
    NotEnoughData,
    distinct_rows,
    expected_purchases,
    fit_bgnbd,
    log_likelihood,
    probability_alive,
    summarize_history,
)

CDNOW = Path(__file__).resolve().parent.parent / "data" / "cdnow_sample.txt"
CALIBRATION_END = date(1997, 9, 30)
HOLDOUT_END = date(1998, 6, 30)
HOLDOUT_WEEKS = 39.0


@dataclass(frozen=True)
class Cdnow:
    customer: NDArray[np.int64]
    day: NDArray[np.datetime64]
    summary: CalibrationSummary
    params: BgNbdParams


def _dates(yyyymmdd: NDArray[np.int64]) -> NDArray[np.datetime64]:
    years = (yyyymmdd // 10000 - 1970).astype("datetime64[Y]")
    months = years.astype("datetime64[M]") + (yyyymmdd // 100 % 100 - 1)
    return np.asarray(months.astype("datetime64[D]") + (yyyymmdd % 100 - 1), dtype="datetime64[D]")


@pytest.fixture(scope="module")
def cdnow() -> Cdnow:
    columns = np.loadtxt(CDNOW, dtype=np.int64, usecols=(1, 2))
    customer, day = columns[:, 0], _dates(columns[:, 1])
    summary = summarize_history(customer, day, CALIBRATION_END, unit_days=7.0)
    params = fit_bgnbd(summary.frequency, summary.recency, summary.T)
    return Cdnow(customer=customer, day=day, summary=summary, params=params)


def _paper_log_likelihood(
    params: BgNbdParams,
    x: NDArray[np.float64],
    t_x: NDArray[np.float64],
    T: NDArray[np.float64],
) -> float:
    """Equation 6 of the paper written out directly, as an independent reference."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    gamma_part = np.exp(gammaln(r + x) - gammaln(r) + r * np.log(alpha))
    alive = np.exp(betaln(a, b + x) - betaln(a, b)) * gamma_part / (alpha + T) ** (r + x)
    dropped = np.where(
        x > 0,
        np.exp(betaln(a + 1, np.maximum(b + x - 1, 1e-300)) - betaln(a, b))
        * gamma_part
        / (alpha + t_x) ** (r + x),
        0.0,
    )
    return float(np.log(alive + dropped).sum())


def test_summary_follows_the_papers_definitions(cdnow: Cdnow) -> None:
    s = cdnow.summary
    assert s.customer.size == 2357
    assert s.customer[0] == 1
    # Customer 1 bought on 1997-01-01, 01-18 and 08-02 in calibration, then on 12-12.
    assert s.frequency[0] == 2
    assert s.recency[0] == pytest.approx(213 / 7)
    assert s.T[0] == pytest.approx(272 / 7)
    assert (s.recency <= s.T).all()
    assert (s.recency[s.frequency == 0] == 0).all()


def test_fit_matches_the_published_parameters(cdnow: Cdnow) -> None:
    p = cdnow.params
    assert (round(p.r, 3), round(p.alpha, 3), round(p.a, 3), round(p.b, 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    assert p.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    assert p.n_customers == 2357


def test_log_likelihood_matches_equation_6(cdnow: Cdnow) -> None:
    s, p = cdnow.summary, cdnow.params
    direct = _paper_log_likelihood(p, s.frequency, s.recency, s.T)
    assert log_likelihood(p, s.frequency, s.recency, s.T) == pytest.approx(direct, rel=1e-12)
    assert p.log_likelihood == pytest.approx(direct, rel=1e-12)


def test_weighted_fit_on_distinct_rows_equals_fit_on_all_rows(cdnow: Cdnow) -> None:
    s = cdnow.summary
    x, t_x, T, counts = distinct_rows(s.frequency, s.recency, s.T)
    assert x.size < s.frequency.size
    assert counts.sum() == s.frequency.size
    weighted = fit_bgnbd(x, t_x, T, counts)
    assert weighted.n_customers == cdnow.params.n_customers
    for name in ("r", "alpha", "a", "b", "log_likelihood"):
        assert getattr(weighted, name) == pytest.approx(getattr(cdnow.params, name), rel=1e-9)
    assert log_likelihood(cdnow.params, x, t_x, T, counts) == pytest.approx(
        cdnow.params.log_likelihood, rel=1e-12
    )


def test_doubling_every_customer_doubles_the_likelihood_only(cdnow: Cdnow) -> None:
    s = cdnow.summary
    twice = fit_bgnbd(np.tile(s.frequency, 2), np.tile(s.recency, 2), np.tile(s.T, 2))
    weighted = fit_bgnbd(s.frequency, s.recency, s.T, np.full(s.frequency.size, 2.0))
    assert twice.n_customers == weighted.n_customers == 2 * 2357
    assert twice.r == pytest.approx(cdnow.params.r, rel=1e-6)
    assert weighted.log_likelihood == pytest.approx(2 * cdnow.params.log_likelihood, rel=1e-9)


def test_probability_alive_is_one_without_repeat_purchases(cdnow: Cdnow) -> None:
    p = probability_alive(cdnow.params, [0, 0, 0], [0, 0, 0], [1.0, 20.0, 39.0])
    assert (p == 1.0).all()


def test_probability_alive_falls_with_time_since_last_purchase(cdnow: Cdnow) -> None:
    recency = np.linspace(0, 39, 40)
    by_recency = probability_alive(cdnow.params, np.full(40, 3.0), recency, np.full(40, 39.0))
    assert (np.diff(by_recency) > 0).all()
    T = np.linspace(10, 80, 40)
    by_age = probability_alive(cdnow.params, np.full(40, 3.0), np.full(40, 10.0), T)
    assert (np.diff(by_age) < 0).all()
    assert ((by_age > 0) & (by_age < 1)).all()


def test_holdout_correlation_matches_the_paper(cdnow: Cdnow) -> None:
    s = cdnow.summary
    end, holdout_end = np.datetime64(CALIBRATION_END), np.datetime64(HOLDOUT_END)
    in_holdout = (cdnow.day > end) & (cdnow.day <= holdout_end)
    pairs = np.unique(
        np.column_stack((cdnow.customer[in_holdout], cdnow.day[in_holdout].astype(np.int64))),
        axis=0,
    )
    actual = np.bincount(np.searchsorted(s.customer, pairs[:, 0]), minlength=s.customer.size)
    predicted = expected_purchases(cdnow.params, HOLDOUT_WEEKS, s.frequency, s.recency, s.T)
    assert np.corrcoef(predicted, actual)[0, 1] == pytest.approx(0.626, abs=0.02)


def test_expected_purchases_match_equation_10(cdnow: Cdnow) -> None:
    s, p = cdnow.summary, cdnow.params
    x, t_x, T, t = s.frequency, s.recency, s.T, HOLDOUT_WEEKS
    z = t / (p.alpha + T + t)
    tail = ((p.alpha + T) / (p.alpha + T + t)) ** (p.r + x) * hyp2f1(
        p.r + x, p.b + x, p.a + p.b + x - 1, z
    )
    odds = np.where(
        x > 0,
        p.a / np.maximum(p.b + x - 1, 1e-300) * ((p.alpha + T) / (p.alpha + t_x)) ** (p.r + x),
        0.0,
    )
    paper = (p.a + p.b + x - 1) / (p.a - 1) * (1 - tail) / (1 + odds)
    ours = expected_purchases(p, t, x, t_x, T)
    np.testing.assert_allclose(ours, paper, rtol=1e-8)


def test_expected_purchases_stay_finite_where_the_closed_form_fails() -> None:
    # b large and a large x: scipy's hyp2f1 gives NaN or wrong values here.
    params = BgNbdParams(r=2.0, alpha=0.5, a=30.0, b=100.0, log_likelihood=0.0, n_customers=0)
    expected = expected_purchases(params, 365.0, [0, 10, 300], [0, 30, 600], [0, 39, 700])
    assert np.isfinite(expected).all()
    assert (expected > 0).all()


def test_expected_purchases_grow_with_the_horizon(cdnow: Cdnow) -> None:
    s = cdnow.summary
    horizons = [0.0, 1.0, 10.0, 39.0, 100.0]
    curves = np.array(
        [expected_purchases(cdnow.params, t, s.frequency, s.recency, s.T) for t in horizons]
    )
    assert (curves[0] == 0).all()
    assert (np.diff(curves, axis=0) > 0).all()


def test_history_counts_distinct_days_and_ignores_later_purchases() -> None:
    customer = np.array([7, 7, 7, 7, 3, 9])
    day = np.array([100, 100, 114, 130, 121, 200])
    s = summarize_history(customer, day, calibration_end=128, unit_days=7.0)
    assert s.customer.tolist() == [3, 7]
    assert s.frequency.tolist() == [0.0, 1.0]
    assert s.recency.tolist() == [0.0, 2.0]
    assert s.T.tolist() == pytest.approx([1.0, 4.0])


def test_history_accepts_dates_and_days_alike() -> None:
    dates = np.array(["2024-01-01", "2024-01-08", "2024-02-01"], dtype="datetime64[D]")
    from_dates = summarize_history([1, 1, 2], dates, date(2024, 2, 5), unit_days=1.0)
    from_days = summarize_history(
        [1, 1, 2],
        dates.astype(np.int64),
        int(np.datetime64("2024-02-05").astype(np.int64)),
        unit_days=1.0,
    )
    assert from_dates.T.tolist() == from_days.T.tolist() == [35.0, 4.0]
    assert from_dates.recency.tolist() == [7.0, 0.0]


def test_history_without_purchases_is_empty() -> None:
    s = summarize_history(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 10)
    assert s.customer.size == s.frequency.size == s.T.size == 0


def test_too_few_customers_is_not_enough_data() -> None:
    with pytest.raises(NotEnoughData):
        fit_bgnbd([1, 2, 0], [3.0, 5.0, 0.0], [10.0, 10.0, 10.0])


def test_no_repeat_buyers_is_not_enough_data() -> None:
    with pytest.raises(NotEnoughData):
        fit_bgnbd(np.zeros(500), np.zeros(500), np.linspace(1, 50, 500))


def test_inconsistent_rows_are_rejected() -> None:
    with pytest.raises(ValueError):
        fit_bgnbd([1.0] * 40, [12.0] * 40, [10.0] * 40)
