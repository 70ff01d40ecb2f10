"""The BG/NBD churn model (Fader, Hardie & Lee 2005): likelihood, fit, P(alive), expected purchases.

Per customer the model takes x, the number of repeat purchases; t_x, the age at the last
purchase (0 when x is 0); and T, the age at the end of calibration, all in one time unit,
counted from the first purchase. While alive a customer buys at rate λ ~ Gamma(r, α) and,
after each purchase, drops out with probability p ~ Beta(a, b).

Fitting works on the distinct (x, t_x, T) rows weighted by how many customers share them,
which are far fewer than customers when times are whole days, so a million customers fit as
fast as a few thousand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

# scipy ships without type stubs; with scipy-stubs installed these ignores go unused.
from scipy.linalg import eigh_tridiagonal
from scipy.optimize import minimize
from scipy.special import (
    betaln,
    digamma,
    expit,
    gammaln,
)

FloatArray = NDArray[np.float64]

MIN_CUSTOMERS = 30
"""Below this many customers the four parameters are not worth estimating."""

_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
# Where L-BFGS-B stops early, a point whose mean log-likelihood per customer moves by less
# than this per unit of any log-parameter is taken as the maximum.
_GRADIENT_TOLERANCE = 1e-4
_QUADRATURE_NODES = 64
# Bounds the (rows × nodes) work arrays of expected_purchases to a few megabytes.
_ROWS_PER_BLOCK = 8192
# Above this many distinct rows, a fit on a sample of about this many starts the full fit.
_SAMPLE_ROWS = 50_000


class BgNbdError(Exception):
    """The model cannot be fitted; the caller falls back to rule-based signals."""


class NotEnoughData(BgNbdError):
    """Too few customers, or no repeat purchases, to estimate the model."""


class FitFailed(BgNbdError):
    """The optimiser did not converge on this data."""


@dataclass(frozen=True, slots=True)
class BgNbdParams:
    """A fitted model, with its log-likelihood and the number of customers it was fitted on.

    alpha scales with the time unit of the data, so predictions must use the fit's unit.
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n_customers: int


@dataclass(frozen=True, slots=True)
class CalibrationSummary:
    """Per-customer model inputs for customers with a purchase up to the calibration end."""

    customer: NDArray[Any]
    frequency: FloatArray
    recency: FloatArray
    T: FloatArray


def _days(values: NDArray[Any]) -> NDArray[np.int64]:
    if values.dtype == object:
        values = values.astype("datetime64[D]")
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[D]").astype(np.int64)
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64)
    raise TypeError("purchase times must be whole days (integers) or datetime64 values")


def _day(value: int | date | np.datetime64) -> int:
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[D]").astype(np.int64))
    if isinstance(value, date):
        return value.toordinal() - _UNIX_EPOCH_ORDINAL
    return int(value)


def summarize_history(
    customer: ArrayLike,
    purchase_day: ArrayLike,
    calibration_end: int | date | np.datetime64,
    *,
    unit_days: float = 7.0,
) -> CalibrationSummary:
    """Turn purchases into (x, t_x, T) per customer, in units of `unit_days` days.

    `customer` holds any integer ids, one per purchase; `purchase_day` holds whole days, as
    datetime64 or date values or as integers (days since 1970-01-01 when `calibration_end` is
    a date). Purchases after `calibration_end` (an inclusive end) are ignored, and several
    purchases on one day count as one. Customers are returned in ascending id order.
    """
    ids = np.asarray(customer)
    days = _days(np.asarray(purchase_day))
    if ids.shape != days.shape or ids.ndim != 1:
        raise ValueError("customer and purchase_day must be one-dimensional and equally long")
    if unit_days <= 0:
        raise ValueError("unit_days must be positive")
    end = _day(calibration_end)
    kept = days <= end
    ids, days = ids[kept], days[kept]
    order = np.lexsort((days, ids))
    ids, days = ids[order], days[order]
    distinct = np.ones(ids.size, dtype=bool)
    distinct[1:] = (ids[1:] != ids[:-1]) | (days[1:] != days[:-1])
    ids, days = ids[distinct], days[distinct]
    is_first = np.ones(ids.size, dtype=bool)
    is_first[1:] = ids[1:] != ids[:-1]
    is_last = np.ones(ids.size, dtype=bool)
    is_last[:-1] = is_first[1:]
    starts, lasts = np.flatnonzero(is_first), np.flatnonzero(is_last)
    first = days[starts]
    return CalibrationSummary(
        customer=ids[starts],
        frequency=(lasts - starts).astype(np.float64),
        recency=(days[lasts] - first) / unit_days,
        T=(end - first) / unit_days,
    )


def _arrays(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    big_t = np.asarray(T, dtype=np.float64)
    if not x.shape == t_x.shape == big_t.shape:
        raise ValueError("frequency, recency and T must have the same shape")
    if not (np.isfinite(x).all() and np.isfinite(big_t).all()):
        raise ValueError("frequency, recency and T must be finite")
    if (x < 0).any() or (t_x < 0).any() or (t_x > big_t).any():
        raise ValueError("need frequency >= 0 and 0 <= recency <= T")
    return x, t_x, big_t


def _distinct(*columns: FloatArray) -> tuple[list[FloatArray], NDArray[np.intp]]:
    """The distinct rows of equally long columns, and each input row's index among them."""
    order = np.lexsort(columns[::-1])
    changed = np.zeros(order.size, dtype=bool)
    changed[:1] = True
    for column in columns:
        ordered = column[order]
        changed[1:] |= ordered[1:] != ordered[:-1]
    inverse = np.empty(order.size, dtype=np.intp)
    inverse[order] = np.cumsum(changed) - 1
    firsts = order[changed]
    return [column[firsts] for column in columns], inverse


def _weights(weights: ArrayLike | None, like: FloatArray) -> FloatArray:
    w = np.ones_like(like) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != like.shape or (w < 0).any():
        raise ValueError("weights must be non-negative, one per row")
    return w


def distinct_rows(
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The distinct (x, t_x, T) rows and the summed weight (customer count) of each."""
    x, t_x, big_t = _arrays(frequency, recency, T)
    w = _weights(weights, x)
    (x, t_x, big_t), inverse = _distinct(x, t_x, big_t)
    counts = np.bincount(inverse, weights=w, minlength=x.size).astype(np.float64)
    return x, t_x, big_t, counts


@dataclass(frozen=True, slots=True)
class _Rows:
    """Weighted rows with each column also held as its distinct values plus an index per row.

    The gamma-family functions and logarithms then run over a few hundred distinct values
    per likelihood evaluation instead of over every row, and terms that depend on x alone
    are summed with the weight of each distinct x.
    """

    x: FloatArray
    weight: FloatArray
    total: float
    x_values: FloatArray
    x_index: NDArray[np.intp]
    x_weight: FloatArray
    t_x_values: FloatArray
    t_x_index: NDArray[np.intp]
    T_values: FloatArray
    T_index: NDArray[np.intp]

    @classmethod
    def of(cls, x: FloatArray, t_x: FloatArray, T: FloatArray, weight: FloatArray) -> _Rows:
        x_values, x_index = np.unique(x, return_inverse=True)
        t_x_values, t_x_index = np.unique(t_x, return_inverse=True)
        T_values, T_index = np.unique(T, return_inverse=True)
        return cls(
            x=x,
            weight=weight,
            total=float(weight.sum()),
            x_values=x_values,
            x_index=x_index,
            x_weight=np.bincount(x_index, weights=weight, minlength=x_values.size).astype(
                np.float64
            ),
            t_x_values=t_x_values,
            t_x_index=t_x_index,
            T_values=T_values,
            T_index=T_index,
        )


def _log_likelihood_and_gradient(
    r: float, alpha: float, a: float, b: float, rows: _Rows
) -> tuple[float, FloatArray]:
    """Total log-likelihood (FHL 2005, eq. 6, in log form) and its gradient in (r, α, a, b).

    Each row's likelihood mixes "alive at T" and "dropped out right after the last purchase";
    the two are added in log space so neither underflows for frequent buyers.
    """
    xv, x, w = rows.x_values, rows.x, rows.weight
    repeat_v = xv > 0
    # b + x - 1 appears only for repeat buyers; 1.0 elsewhere keeps the logarithm finite.
    b_x1 = np.where(repeat_v, b + xv - 1, 1.0)
    common = gammaln(r + xv) - gammaln(r) + r * np.log(alpha) + betaln(a, b + xv) - betaln(a, b)
    log_alpha_t = np.log(alpha + rows.T_values)[rows.T_index]
    log_alpha_tx = np.log(alpha + rows.t_x_values)[rows.t_x_index]
    log_dropout = np.where(repeat_v, np.log(a) - np.log(b_x1), -np.inf)[rows.x_index]
    alive = -(r + x) * log_alpha_t
    dropped = log_dropout - (r + x) * log_alpha_tx
    mixed = np.logaddexp(alive, dropped)
    p_alive = np.exp(alive - mixed)
    p_dropped = 1.0 - p_alive
    log_likelihood = float(rows.x_weight @ common + w @ mixed)

    wx = rows.x_weight
    inv_alpha_t = (1.0 / (alpha + rows.T_values))[rows.T_index]
    inv_alpha_tx = (1.0 / (alpha + rows.t_x_values))[rows.t_x_index]
    inv_b_x1 = np.where(repeat_v, 1.0 / b_x1, 0.0)[rows.x_index]
    d_r = wx @ (digamma(r + xv) - digamma(r) + np.log(alpha)) - w @ (
        p_alive * log_alpha_t + p_dropped * log_alpha_tx
    )
    d_alpha = rows.total * r / alpha - w @ (
        (r + x) * (p_alive * inv_alpha_t + p_dropped * inv_alpha_tx)
    )
    d_a = wx @ (digamma(a + b) - digamma(a + b + xv)) + (w @ p_dropped) / a
    d_b = wx @ (digamma(b + xv) - digamma(a + b + xv) - digamma(b) + digamma(a + b)) - w @ (
        p_dropped * inv_b_x1
    )
    return log_likelihood, np.array([d_r, d_alpha, d_a, d_b], dtype=np.float64)


def log_likelihood(
    params: BgNbdParams | tuple[float, float, float, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> float:
    """Total log-likelihood of (r, α, a, b) on the rows, each counted `weights` times."""
    if isinstance(params, BgNbdParams):
        params = (params.r, params.alpha, params.a, params.b)
    x, t_x, big_t = _arrays(frequency, recency, T)
    rows = _Rows.of(x, t_x, big_t, _weights(weights, x))
    return _log_likelihood_and_gradient(*params, rows)[0]


def _objective(log_params: FloatArray, rows: _Rows) -> tuple[float, FloatArray]:
    """Mean negative log-likelihood per customer and its gradient in log-parameters."""
    params = np.exp(log_params)
    r, alpha, a, b = (float(v) for v in params)
    value, gradient = _log_likelihood_and_gradient(r, alpha, a, b, rows)
    return -value / rows.total, -gradient * params / rows.total


def _maximize(rows: _Rows, start: FloatArray) -> Any:
    """L-BFGS-B on the mean negative log-likelihood, in log-parameters."""
    return minimize(
        _objective,
        start,
        args=(rows,),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-20.0, 20.0)] * 4,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
    )


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    min_customers: int = MIN_CUSTOMERS,
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters for the customers (rows counted `weights` times).

    Raises :class:`NotEnoughData` with fewer than `min_customers` customers or no repeat
    purchase, and :class:`FitFailed` when the optimiser does not converge.
    """
    x, t_x, big_t, w = distinct_rows(frequency, recency, T, weights)
    n_customers = float(w.sum())
    if n_customers < min_customers:
        raise NotEnoughData(f"{n_customers:g} customers, at least {min_customers} needed")
    if not (w[x > 0] > 0).any():
        raise NotEnoughData("no customer has a repeat purchase")
    # α is the scale of the purchase rate, so starting it at total time over total purchases
    # (the mean rate's inverse when r = 1) makes the start independent of the time unit.
    start_alpha = float(w @ big_t) / max(float(w @ x), 1.0)
    start = np.log([1.0, max(start_alpha, 1e-6), 1.0, 1.0])
    if x.size > _SAMPLE_ROWS:
        # Most iterations only walk towards the maximum; a random share of the customers
        # shows the way at a fraction of the cost, and the full data then settles it in a
        # few steps (the same maximum: the stopping rules below are unchanged).
        sampled = np.random.default_rng(0).binomial(w.astype(np.int64), _SAMPLE_ROWS / x.size)
        kept = sampled > 0
        rough = _maximize(
            _Rows.of(x[kept], t_x[kept], big_t[kept], sampled[kept].astype(np.float64)), start
        )
        if np.isfinite(rough.fun) and np.isfinite(rough.x).all():
            start = rough.x
    result = _maximize(_Rows.of(x, t_x, big_t, w), start)
    # L-BFGS-B reports a failed line search when the likelihood is flat to rounding along a
    # ridge (a and b growing together, or a shrinking to 0: dropout heterogeneity is then
    # not identified); a vanishing gradient shows that the maximum is reached all the same.
    stationary = np.abs(result.jac).max() <= _GRADIENT_TOLERANCE
    if not (result.success or stationary) or not np.isfinite(result.fun):
        raise FitFailed(f"BG/NBD fit did not converge: {result.message}")
    r, alpha, a, b = (float(v) for v in np.exp(result.x))
    return BgNbdParams(
        r=r,
        alpha=alpha,
        a=a,
        b=b,
        log_likelihood=-float(result.fun) * n_customers,
        n_customers=round(n_customers),
    )


def _log_dropout_odds(
    params: BgNbdParams, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """log of a/(b+x-1) · ((α+T)/(α+t_x))^(r+x): the odds of having dropped out; -inf at x=0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1, 1.0)
    odds = np.log(a) - np.log(b_x1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(repeat, odds, -np.inf)


def probability_alive(
    params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(alive | x, t_x, T) per customer; 1 for customers without a repeat purchase."""
    x, t_x, big_t = _arrays(frequency, recency, T)
    return np.asarray(expit(-_log_dropout_odds(params, x, t_x, big_t)), dtype=np.float64)


def _beta_gauss_rule(a: float, b: float, size: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights of Gauss quadrature for the Beta(a, b) distribution (Golub–Welsch).

    The Jacobi matrix comes from the three-term recurrence of Jacobi polynomials moved to
    [0, 1]; its first diagonal and off-diagonal entries, the Beta mean and standard
    deviation, are written out because the general formula is 0/0 there when a + b is 1 or 2.
    """
    s = a + b - 2.0
    n = np.arange(1, size, dtype=np.float64)
    diagonal = np.r_[a / (a + b), (1.0 + (a - b) * s / ((2 * n + s) * (2 * n + s + 2))) / 2]
    m = n[1:]
    off_squared = (
        m
        * (m + b - 1)
        * (m + a - 1)
        * (m + s)
        / ((2 * m + s) ** 2 * (2 * m + s + 1) * (2 * m + s - 1))
    )
    off = np.r_[np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1))), np.sqrt(off_squared)]
    nodes, vectors = eigh_tridiagonal(diagonal, off)
    return np.asarray(nodes, dtype=np.float64), np.asarray(vectors[0] ** 2, dtype=np.float64)


def expected_purchases(
    params: BgNbdParams,
    t: float,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """E[purchases in the next `t` units | x, t_x, T] per customer (FHL 2005, eq. 10).

    Computed as P(alive) times the posterior mean of (1 - (1 + p·t/(α+T))^-(r+x)) / p over
    the dropout probability p ~ Beta(a, b+x), by Gauss quadrature for that Beta
    distribution, instead of through the paper's Gauss hypergeometric function: scipy's
    hyp2f1 returns NaN or wrong values in parts of the parameter space (large b, large x),
    while the quadrature stays within 1e-8 relative for horizons t up to 100·(α+T), and
    within 1e-3 beyond (a customer first seen today, with a year ahead, counted in days).
    """
    if t < 0:
        raise ValueError("t must not be negative")
    x, t_x, big_t = _arrays(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    (row_x, row_t), inverse = _distinct(x, big_t)
    distinct_x, x_index = np.unique(row_x, return_inverse=True)
    rules = [_beta_gauss_rule(a, b + value, _QUADRATURE_NODES) for value in distinct_x]
    # p near 0 turns the integrand into 0/0, whose limit is its flat value (r+x)·t/(α+T);
    # nudging such nodes to 1e-12 keeps that value without moving the integral measurably.
    nodes = np.maximum(np.array([rule[0] for rule in rules]), 1e-12)
    weights = np.array([rule[1] for rule in rules])
    per_row = np.empty(row_x.size)
    for start in range(0, row_x.size, _ROWS_PER_BLOCK):
        block = slice(start, start + _ROWS_PER_BLOCK)
        p = nodes[x_index[block]]
        shape = (r + row_x[block])[:, None]
        scale = (t / (alpha + row_t[block]))[:, None]
        integrand = -np.expm1(-shape * np.log1p(p * scale)) / p
        per_row[block] = np.einsum("ij,ij->i", integrand, weights[x_index[block]])
    p_alive = expit(-_log_dropout_odds(params, x, t_x, big_t))
    return np.asarray(per_row[inverse] * p_alive, dtype=np.float64)
