"""Classification at scale: the nightly segmentation against a straightforward pandas
implementation of the same rules, on the same database, in one run.

    .venv/bin/python -m bench.classify --database sqlite+aiosqlite:///shop.db
    .venv/bin/python -m bench.classify --database postgresql+asyncpg://user@host/db

The database comes from bench/shopgen.py. Each side runs in its own child process, so its
wall time and peak RSS (from wait4's resource usage) are its own:

- carebot: `Segmentation.run()`, as the `segmentation` job runs it (reads, computes, and
  writes every customer's snapshot);
- pandas: `pandas.read_sql` of the customers, purchases and tickets, groupby per customer,
  the rule tables and policy imported from services (thresholds, RFM grid, tiers, risk
  weights), its own scoring code, and the BG/NBD fit of `lifetimes` (on the distinct
  (x, t_x, T) rows with their counts as weights, as its documentation offers for large
  data). It writes nothing to the database.

The sides take turns (--repeat times each) and each keeps its best run. Then every
customer's RFM scores, segment, ABC class, tier, recency, frequency, spend and
churn risk are compared, and the BG/NBD parameters (relative difference). Prints one JSON
object and appends it to --out. Needs the optional dependency group `bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import create_engine

from bench.shopgen import DEFAULT_NOW
from services import rfm, segmentation
from services.loyalty import TRAILING
from services.policy import Policy, load_policy

ROOT = Path(__file__).resolve().parents[1]
ZONE = "Asia/Shanghai"
PARAMETERS = ("r", "alpha", "a", "b")
PARAMETER_TOLERANCE = 1e-4
# Snapshots keep churn risk to four decimals; the two fits may differ a little more.
CHURN_TOLERANCE = 1e-4
FIGURES = ("seconds", "process_seconds", "cpu_seconds", "peak_rss_mb")


def sync_url(url: str) -> str:
    """The same database through a blocking driver, for pandas."""
    return url.replace("sqlite+aiosqlite://", "sqlite://").replace(
        "postgresql+asyncpg://", "postgresql+psycopg://"
    )


async def run_carebot(url: str, now: datetime, policy: Policy) -> dict[str, Any]:
    from models.database import Database
    from services.clock import FrozenClock

    db = Database(url)
    try:
        started = time.perf_counter()
        report = await segmentation.Segmentation(db, policy, FrozenClock(now), ZoneInfo(ZONE)).run()
        seconds = time.perf_counter() - started
    finally:
        await db.close()
    model = report.model
    return {
        "seconds": seconds,
        "customers": report.customers,
        "params": {name: getattr(model, name) for name in PARAMETERS} if model.fitted else None,
    }


def _days(moments: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Days since 1970-01-01 in the shop's calendar."""
    local = moments.dt.tz_convert(ZONE).dt.tz_localize(None).dt.normalize()
    return np.asarray(local.values.astype("datetime64[D]").astype(np.int64))


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, format="ISO8601")


def quintile(values: pd.Series, *, higher_is_better: bool = True) -> pd.Series:
    """1 + floor(5k/n), k = how many customers are strictly worse (rfm's rule)."""
    n = len(values)
    worse = values.rank(method="min") - 1 if higher_is_better else n - values.rank(method="max")
    return (1 + (5 * worse.astype(np.int64)) // n).astype(np.int64)


def run_pandas(url: str, now: datetime, policy: Policy) -> dict[str, Any]:
    from lifetimes import BetaGeoFitter

    rules = policy.segmentation
    unit = rules.model_unit_days
    started = time.perf_counter()
    engine = create_engine(sync_url(url))
    customers = pd.read_sql("SELECT id FROM customers WHERE erased_at IS NULL", engine)
    purchases = pd.read_sql(
        "SELECT customer_id, amount, occurred_at FROM purchases WHERE customer_id IS NOT NULL",
        engine,
    )
    tickets = pd.read_sql(
        "SELECT customer_id, kind, created_at, closed_at, csat FROM tickets", engine
    )
    survey_ratings = pd.read_sql(
        "SELECT r.customer_id, a.value, a.created_at FROM survey_answers a"
        " JOIN survey_responses r ON r.id = a.response_id"
        " JOIN survey_questions q ON q.id = a.question_id WHERE q.kind = 'rating'",
        engine,
    )
    engine.dispose()

    purchases["occurred_at"] = _utc(purchases["occurred_at"])
    purchases = purchases[purchases["occurred_at"] <= now]
    window = purchases[purchases["occurred_at"] >= now - timedelta(days=rules.window_days)]
    trailing = purchases[purchases["occurred_at"] >= now - TRAILING]
    bought = purchases[purchases["amount"] > 0].copy()
    bought["day"] = _days(bought["occurred_at"])
    visits = bought.drop_duplicates(["customer_id", "day"]).groupby("customer_id")["day"]

    frame = customers.set_index("id").sort_index()
    frame["frequency"] = (window["amount"] > 0).groupby(window["customer_id"]).sum()
    frame["monetary"] = window.groupby("customer_id")["amount"].sum()
    frame["spend"] = trailing.groupby("customer_id")["amount"].sum()
    frame["days"] = visits.count()
    frame["first_day"] = visits.min()
    frame["last_day"] = visits.max()
    frame[["frequency", "monetary", "spend", "days"]] = (
        frame[["frequency", "monetary", "spend", "days"]].fillna(0).astype(np.int64)
    )
    today = (now.astimezone(ZoneInfo(ZONE)).date() - datetime(1970, 1, 1).date()).days
    frame["recency_days"] = today - frame["last_day"]

    # RFM over the customers who bought in the window, with the grid of services/rfm.
    scored = frame[frame["frequency"] >= 1]
    r = quintile(scored["recency_days"], higher_is_better=False)
    f = quintile(scored["frequency"])
    m = quintile(scored["monetary"])
    fm = (f + m + 1) // 2
    segment = pd.Series("", index=scored.index, dtype=object)
    for rule in rfm.SEGMENT_RULES:
        cell = r.between(rule.r_min, rule.r_max) & fm.between(rule.fm_min, rule.fm_max)
        segment[cell] = rule.segment
    frame["segment"] = np.where(frame["days"] > 0, "lost", "potential")
    frame.loc[scored.index, "segment"] = segment
    frame["r_score"], frame["f_score"], frame["m_score"] = r, f, m
    frame[["r_score", "f_score", "m_score"]] = frame[["r_score", "f_score", "m_score"]].fillna(0)

    # ABC: A while the revenue of everyone strictly ahead is below a_share of the total.
    revenue = scored["monetary"].clip(lower=0)
    blocks = revenue.groupby(revenue).sum().sort_index(ascending=False)
    ahead = revenue.map(blocks.cumsum() - blocks)
    total = revenue.sum()
    abc_class = pd.Series("C", index=scored.index, dtype=object)
    if total > 0:
        abc_class[(ahead < rules.abc_b_share * total) & (revenue > 0)] = "B"
        abc_class[(ahead < rules.abc_a_share * total) & (revenue > 0)] = "A"
    frame["abc_class"] = "C"
    frame.loc[scored.index, "abc_class"] = abc_class

    frame["tier"] = np.select(
        [frame["spend"] >= int(tier.min_spend * 100) for tier in policy.tiers],
        [tier.key for tier in policy.tiers],
        default=policy.tiers[-1].key,
    )

    # BG/NBD with lifetimes, then the rule signals of services/segmentation.
    history = frame[frame["days"] > 0]
    x = (history["days"] - 1).astype(np.float64)
    t_x = (history["last_day"] - history["first_day"]) / unit
    big_t = (today - history["first_day"]) / unit
    rows = pd.DataFrame({"x": x, "t_x": t_x, "T": big_t})
    distinct = rows.groupby(["x", "t_x", "T"]).size().reset_index(name="weight")
    fitter = BetaGeoFitter()
    fitter.fit(distinct["x"], distinct["t_x"], distinct["T"], weights=distinct["weight"])
    params = {name: float(fitter.params_[name]) for name in PARAMETERS}
    model_risk = 1 - fitter.conditional_probability_alive(x, t_x, big_t)

    repeat = x > 0
    own = t_x * unit / x.where(repeat)
    usual = own.where(repeat, own[repeat].median())
    silence = (big_t - t_x) * unit
    rule_risk = pd.Series(0.0, index=frame.index)
    overdue = silence > rules.interval_factor * usual
    long = silence > 2 * rules.interval_factor * usual
    rule_risk[overdue[overdue].index] = segmentation.OVERDUE_RISK
    rule_risk[long[long].index] = segmentation.LONG_OVERDUE_RISK
    since = now - timedelta(days=rules.signal_days)
    complaints = (
        tickets[(tickets["kind"] == "complaint") & (_utc(tickets["created_at"]) >= since)]
        .groupby("customer_id")["kind"]
        .count()
    )
    complaint_risk = (complaints * segmentation.COMPLAINT_RISK).clip(
        upper=segmentation.MAX_COMPLAINT_RISK
    )
    rule_risk = rule_risk.add(complaint_risk, fill_value=0).reindex(frame.index)
    low_tickets = tickets[
        (tickets["csat"] <= rules.low_rating) & (_utc(tickets["closed_at"]) >= since)
    ]["customer_id"]
    low_surveys = survey_ratings[
        (survey_ratings["value"] <= rules.low_rating)
        & (_utc(survey_ratings["created_at"]) >= since)
    ]["customer_id"]
    low = pd.Index(pd.concat([low_tickets, low_surveys]).unique())
    low = low[low.isin(frame.index)]
    rule_risk[low] += segmentation.LOW_RATING_RISK
    rule_risk = rule_risk.clip(upper=segmentation.MAX_RULE_RISK)
    churn = pd.Series(np.nan, index=frame.index)
    churn[history.index] = np.maximum(rule_risk[history.index], model_risk)
    frame["churn_probability"] = churn
    seconds = time.perf_counter() - started
    frame["monetary"] = frame["monetary"] / 100
    return {
        "seconds": seconds,
        "customers": len(frame),
        "params": params,
        "frame": frame[
            [
                "recency_days",
                "frequency",
                "monetary",
                "r_score",
                "f_score",
                "m_score",
                "segment",
                "abc_class",
                "tier",
                "churn_probability",
            ]
        ],
    }


def child(side: str, url: str, now: datetime, out: Path) -> None:
    policy = load_policy(os.environ.get("CAREBOT_POLICY") or None)
    if side == "carebot":
        result = asyncio.run(run_carebot(url, now, policy))
    else:
        result = run_pandas(url, now, policy)
        result.pop("frame").to_pickle(out.with_suffix(".frame.pkl"))
    out.write_text(json.dumps(result))


def spawn(side: str, url: str, now: datetime, workdir: Path) -> dict[str, Any]:
    """Run one side in a child process: its own figures, wall time and peak RSS."""
    out = workdir / f"{side}.json"
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.classify",
            "--database",
            url,
            "--now",
            now.isoformat(),
            "--child",
            side,
            "--child-out",
            str(out),
        ],
        cwd=ROOT,
    )
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the {side} side failed with exit code {process.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["process_seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # kilobytes on Linux
    # The whole child's processor time (its threads included, the database server's not):
    # steadier than wall time on a machine that other work shares.
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result


def compare(url: str, frame: pd.DataFrame) -> dict[str, Any]:
    """Customer-by-customer differences between the snapshots and the baseline's frame."""
    engine = create_engine(sync_url(url))
    shots = pd.read_sql(
        "SELECT customer_id, recency_days, frequency, monetary, r_score, f_score, m_score,"
        " segment, abc_class, tier, churn_probability FROM customer_segments",
        engine,
        index_col="customer_id",
    ).sort_index()
    engine.dispose()
    shots["monetary"] = shots["monetary"] / 100
    shots[["r_score", "f_score", "m_score"]] = shots[["r_score", "f_score", "m_score"]].fillna(0)
    same_customers = shots.index.equals(frame.index)
    differences: dict[str, int] = {}
    if same_customers:
        for column in ("segment", "abc_class", "tier", "r_score", "f_score", "m_score"):
            differences[column] = int((shots[column] != frame[column]).sum())
        for column in ("recency_days", "frequency", "monetary"):
            a, b = shots[column].astype(float), frame[column].astype(float)
            differences[column] = int((~((a == b) | (a.isna() & b.isna()))).sum())
        a, b = shots["churn_probability"], frame["churn_probability"]
        close = ((a - b).abs() <= CHURN_TOLERANCE + 1e-12) | (a.isna() & b.isna())
        differences["churn_probability"] = int((~close).sum())
        largest = float((a - b).abs().max())
    return {
        "same_customers": same_customers,
        "customers_compared": len(shots),
        "differences": differences,
        "largest_churn_difference": largest if same_customers else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="a DATABASE_URL made by bench.shopgen")
    parser.add_argument("--now", default=DEFAULT_NOW, help="the classification time, ISO 8601")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "classify.jsonl")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each side, best kept")
    parser.add_argument("--child", choices=("carebot", "pandas"), help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    now = datetime.fromisoformat(args.now).astimezone(UTC)
    if args.child:
        child(args.child, args.database, now, args.child_out)
        return

    # The sides take turns, and each keeps its best run: the first run of all reads the
    # database from disk, the others from the operating system's cache.
    runs: dict[str, list[dict[str, Any]]] = {"carebot": [], "pandas": []}
    with tempfile.TemporaryDirectory() as workdir:
        for _ in range(args.repeat):
            for side, results in runs.items():
                results.append(spawn(side, args.database, now, Path(workdir)))
        frame = pd.read_pickle(Path(workdir) / "pandas.frame.pkl")
    carebot = min(runs["carebot"], key=lambda run: float(run["seconds"]))
    baseline = min(runs["pandas"], key=lambda run: float(run["seconds"]))
    comparison = compare(args.database, frame)
    params = {
        name: {
            "carebot": carebot["params"][name],
            "lifetimes": baseline["params"][name],
            "relative_difference": abs(carebot["params"][name] / baseline["params"][name] - 1),
        }
        for name in PARAMETERS
    }
    identical = (
        comparison["same_customers"]
        and not any(comparison["differences"].values())
        and all(p["relative_difference"] <= PARAMETER_TOLERANCE for p in params.values())
    )
    result = {
        "benchmark": "classify",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "database": args.database.split(":", 1)[0],
        "now": now.isoformat(),
        "customers": carebot["customers"],
        "carebot": {k: carebot[k] for k in FIGURES},
        "pandas": {k: baseline[k] for k in FIGURES},
        "runs": {
            side: [round(run["seconds"], 1) for run in results] for side, results in runs.items()
        },
        "speedup": baseline["seconds"] / carebot["seconds"],
        "cpu_ratio": baseline["cpu_seconds"] / carebot["cpu_seconds"],
        "rss_ratio": carebot["peak_rss_mb"] / baseline["peak_rss_mb"],
        "params": params,
        "comparison": comparison,
        "identical": identical,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as results:
        results.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
