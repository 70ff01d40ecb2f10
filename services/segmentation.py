"""The nightly classification (客户分类): RFM segment, ABC class, tier and churn risk for
every customer, written as one snapshot row each with the time it was computed.

Everything is loaded set-based (a handful of grouped SQL queries, whatever the number of
customers), computed with numpy by services/rfm.py, abc.py, tiers.py and bgnbd.py, and
written in batches.

- RFM: purchases within the policy window; customers without one are "potential" when
  they never bought and "lost" when they bought before the window. Recency is days since
  the last purchase, in the business's calendar.
- ABC: revenue within the window, among the customers who bought in it.
- Tier: net spend over the trailing twelve months.
- Churn risk: 1 - P(alive) of the BG/NBD model fitted on the shop's own purchase days,
  raised by the rule signals below; while too few customers have bought to fit the model
  (or it does not converge) the rule signals alone decide, and the report says why.

Rule signals (each also a reason staff see on the customer):

=====================================  =============================================
signal                                 risk it stands for
=====================================  =============================================
silent > factor × usual interval       0.6 (0.8 beyond twice that)
each complaint within signal_days      +0.1, at most +0.2
a rating <= low_rating within them     +0.1
=====================================  =============================================

The usual interval is the customer's own mean gap between purchase days; a customer who
bought on one day only is measured against the shop's median interval. The rule risk is
capped at 0.95.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, Table, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Customer,
    Purchase,
    SegmentSnapshot,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    TicketKind,
)
from models.database import Database
from services import abc, bgnbd, rfm, tiers
from services.clock import Clock
from services.loyalty import TRAILING
from services.policy import Policy

log = logging.getLogger(__name__)

WRITE_BATCH = 1000
OVERDUE_RISK = 0.6
LONG_OVERDUE_RISK = 0.8
COMPLAINT_RISK = 0.1
MAX_COMPLAINT_RISK = 0.2
LOW_RATING_RISK = 0.1
MAX_RULE_RISK = 0.95
# The model is named among the reasons once it alone puts the risk this high.
MODEL_REASON_AT = 0.5

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ChurnModel:
    """The BG/NBD fit used for churn risk, or why the rule signals decided alone."""

    fitted: bool
    unit_days: float
    reason: str | None = None
    r: float | None = None
    alpha: float | None = None
    a: float | None = None
    b: float | None = None
    log_likelihood: float | None = None
    customers: int = 0


@dataclass(frozen=True)
class SegmentationReport:
    computed_at: datetime
    customers: int
    buyers: int  # bought within the window
    window_days: int
    abc: tuple[abc.AbcClassSummary, ...]
    segments: dict[str, int]
    tiers: dict[str, int]
    at_risk: int  # churn risk at or above 0.5
    model: ChurnModel

    def as_json(self) -> dict[str, Any]:
        return {
            "computed_at": self.computed_at.isoformat(),
            "customers": self.customers,
            "buyers": self.buyers,
            "window_days": self.window_days,
            "abc": [asdict(s) for s in self.abc],
            "segments": self.segments,
            "tiers": self.tiers,
            "at_risk": self.at_risk,
            "model": asdict(self.model),
        }


@dataclass
class _Signals:
    """Per-customer rule signals, aligned with the customer id array."""

    risk: FloatArray
    reasons: list[list[dict[str, Any]]]


class Segmentation:
    def __init__(self, db: Database, policy: Policy, clock: Clock, zone: ZoneInfo) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.zone = zone

    async def run(self) -> SegmentationReport:
        """Classify every customer not erased and replace their snapshots."""
        rules = self.policy.segmentation
        now = self.clock.now()
        today = now.astimezone(self.zone).date()
        async with self.db.session() as session:
            ids = np.fromiter(
                await session.scalars(
                    select(Customer.id).where(Customer.erased_at.is_(None)).order_by(Customer.id)
                ),
                dtype=np.int64,
            )
            window_rows = await _grouped(
                session,
                [
                    func.count(Purchase.id).filter(Purchase.amount > 0),
                    func.sum(Purchase.amount),
                ],
                Purchase.occurred_at >= now - timedelta(days=rules.window_days),
                Purchase.occurred_at <= now,
            )
            trailing_rows = await _grouped(
                session,
                [func.sum(Purchase.amount)],
                Purchase.occurred_at >= now - TRAILING,
                Purchase.occurred_at <= now,
            )
            history = await self._purchase_days(session, now)
            complaints = dict(
                (
                    await session.execute(
                        select(Ticket.customer_id, func.count(Ticket.id))
                        .where(
                            Ticket.kind == TicketKind.COMPLAINT,
                            Ticket.created_at >= now - timedelta(days=rules.signal_days),
                        )
                        .group_by(Ticket.customer_id)
                    )
                ).all()
            )
            low = await self._lowest_ratings(session, now)
        n = ids.size
        position = {int(cid): i for i, cid in enumerate(ids.tolist())}

        def column(rows: list[tuple[Any, ...]], at: int) -> FloatArray:
            values = np.zeros(n)
            for row in rows:
                i = position.get(int(row[0]))
                if i is not None and row[at] is not None:
                    values[i] = float(row[at])
            return values

        frequency = column(window_rows, 1)
        monetary = column(window_rows, 2)
        spend = column(trailing_rows, 1)

        summary = bgnbd.summarize_history(
            history[0], history[1], today, unit_days=rules.model_unit_days
        )
        in_history = np.array([position.get(int(c), -1) for c in summary.customer], dtype=np.intp)
        known = in_history >= 0
        summary_rows = in_history[known]
        x, t_x, big_t = summary.frequency[known], summary.recency[known], summary.T[known]
        recency_days = np.full(n, np.nan)
        recency_days[summary_rows] = np.rint((big_t - t_x) * rules.model_unit_days)

        model, model_risk = self._fit(x, t_x, big_t)
        signals = self._signals(n, summary_rows, x, t_x, big_t, complaints, low, position)
        churn = np.full(n, np.nan)
        churn[summary_rows] = signals.risk[summary_rows]
        if model_risk is not None:
            churn[summary_rows] = np.maximum(churn[summary_rows], model_risk)
            for row, risk in zip(summary_rows.tolist(), model_risk.tolist(), strict=True):
                if risk >= MODEL_REASON_AT:
                    signals.reasons[row].append({"code": "model", "alive": round(1 - risk, 3)})

        scored = frequency >= 1
        segment = np.where(np.isnan(recency_days), "potential", "lost").astype(object)
        r = np.zeros(n, dtype=np.uint8)
        f = np.zeros(n, dtype=np.uint8)
        m = np.zeros(n, dtype=np.uint8)
        if scored.any():
            # Recency for scoring only: a window purchase always has a purchase day.
            scores = rfm.score_rfm(
                np.nan_to_num(recency_days[scored]), frequency[scored], monetary[scored]
            )
            r[scored], f[scored], m[scored] = scores.r, scores.f, scores.m
            segment[scored] = scores.segment_keys()
        classes = np.full(n, 2, dtype=np.uint8)
        classes[scored] = abc.classify_abc(
            monetary[scored], a_share=rules.abc_a_share, b_share=rules.abc_b_share
        )
        tier_rules = [tiers.Tier(t.key, t.min_spend) for t in self.policy.tiers]
        tier_index = tiers.classify_tiers(spend, tier_rules)

        def snapshot(i: int) -> dict[str, Any]:
            return {
                "customer_id": int(ids[i]),
                "recency_days": None if np.isnan(recency_days[i]) else int(recency_days[i]),
                "frequency": int(frequency[i]),
                "monetary": Decimal(str(round(monetary[i], 2))),
                "r_score": int(r[i]) or None,
                "f_score": int(f[i]) or None,
                "m_score": int(m[i]) or None,
                "segment": str(segment[i]),
                "abc_class": abc.ABC_CLASSES[classes[i]],
                "tier": tier_rules[tier_index[i]].key,
                "churn_probability": None if np.isnan(churn[i]) else round(float(churn[i]), 4),
                "risk_reasons": signals.reasons[i] or None,
                "computed_at": now,
            }

        await self._write(n, snapshot)
        return SegmentationReport(
            computed_at=now,
            customers=n,
            buyers=int(scored.sum()),
            window_days=rules.window_days,
            abc=abc.summarize_abc(monetary[scored], classes[scored]),
            segments=dict(Counter(str(s) for s in segment.tolist())),
            tiers=dict(Counter(tier_rules[i].key for i in tier_index.tolist())),
            at_risk=int(np.sum(np.nan_to_num(churn) >= 0.5)),
            model=model,
        )

    async def _purchase_days(
        self, session: AsyncSession, now: datetime
    ) -> tuple[NDArray[np.int64], NDArray[np.datetime64]]:
        """Every (customer, local purchase day) with a purchase, distinct."""
        day = self._local_day(session, now)
        rows = (
            await session.execute(
                select(Purchase.customer_id, day)
                .where(
                    Purchase.customer_id.is_not(None),
                    Purchase.amount > 0,
                    Purchase.occurred_at <= now,
                )
                .group_by(Purchase.customer_id, day)
            )
        ).all()
        customers = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        days = np.array([row[1] for row in rows], dtype="datetime64[D]")
        return customers, days

    def _local_day(self, session: AsyncSession, now: datetime) -> ColumnElement[Any]:
        if session.get_bind().dialect.name == "postgresql":
            return func.date(func.timezone(self.zone.key, Purchase.occurred_at))
        # SQLite keeps UTC text; the zone's current offset moves it to the local day.
        offset = now.astimezone(self.zone).utcoffset() or timedelta(0)
        return func.date(Purchase.occurred_at, f"{int(offset.total_seconds() // 60):+d} minutes")

    async def _lowest_ratings(self, session: AsyncSession, now: datetime) -> dict[int, int]:
        """Per customer, their lowest ticket rating or survey rating within signal_days,
        when at or below the policy's low rating."""
        rules = self.policy.segmentation
        since = now - timedelta(days=rules.signal_days)
        lowest: dict[int, int] = {}
        tickets = await session.execute(
            select(Ticket.customer_id, func.min(Ticket.csat))
            .where(Ticket.csat <= rules.low_rating, Ticket.closed_at >= since)
            .group_by(Ticket.customer_id)
        )
        surveys = await session.execute(
            select(SurveyResponse.customer_id, func.min(SurveyAnswer.value))
            .join(SurveyAnswer, SurveyAnswer.response_id == SurveyResponse.id)
            .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
            .where(
                SurveyQuestion.kind == "rating",
                SurveyAnswer.value <= rules.low_rating,
                SurveyAnswer.created_at >= since,
            )
            .group_by(SurveyResponse.customer_id)
        )
        for customer_id, score in [*tickets.all(), *surveys.all()]:
            if score is not None:
                lowest[customer_id] = min(score, lowest.get(customer_id, score))
        return lowest

    def _fit(
        self, x: FloatArray, t_x: FloatArray, big_t: FloatArray
    ) -> tuple[ChurnModel, FloatArray | None]:
        rules = self.policy.segmentation
        try:
            params = bgnbd.fit_bgnbd(x, t_x, big_t, min_customers=rules.model_min_customers)
        except bgnbd.BgNbdError as error:
            log.info("churn model not fitted, rule signals decide: %s", error)
            return ChurnModel(False, rules.model_unit_days, reason=str(error)), None
        alive = bgnbd.probability_alive(params, x, t_x, big_t)
        model = ChurnModel(
            True,
            rules.model_unit_days,
            r=params.r,
            alpha=params.alpha,
            a=params.a,
            b=params.b,
            log_likelihood=params.log_likelihood,
            customers=params.n_customers,
        )
        return model, 1.0 - alive

    def _signals(
        self,
        n: int,
        rows: NDArray[np.intp],
        x: FloatArray,
        t_x: FloatArray,
        big_t: FloatArray,
        complaints: dict[int, int],
        low: dict[int, int],
        position: dict[int, int],
    ) -> _Signals:
        rules = self.policy.segmentation
        unit = rules.model_unit_days
        risk = np.zeros(n)
        reasons: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        repeat = x > 0
        own = np.where(repeat, t_x * unit / np.where(repeat, x, 1.0), np.nan)
        shop = float(np.median(own[repeat])) if repeat.any() else None
        silence = (big_t - t_x) * unit
        for k, row in enumerate(rows.tolist()):
            usual = own[k] if repeat[k] else shop
            if usual is None or usual <= 0:
                continue
            if silence[k] > rules.interval_factor * usual:
                long = silence[k] > 2 * rules.interval_factor * usual
                risk[row] = LONG_OVERDUE_RISK if long else OVERDUE_RISK
                reasons[row].append(
                    {
                        "code": "silence" if repeat[k] else "silence_shop",
                        "days": round(float(silence[k])),
                        "usual": round(float(usual)),
                    }
                )
        for customer_id, count in complaints.items():
            i = position.get(customer_id)
            if i is not None and count:
                risk[i] += min(COMPLAINT_RISK * count, MAX_COMPLAINT_RISK)
                reasons[i].append({"code": "complaints", "count": int(count)})
        for customer_id, score in low.items():
            i = position.get(customer_id)
            if i is not None:
                risk[i] += LOW_RATING_RISK
                reasons[i].append({"code": "low_rating", "score": int(score)})
        return _Signals(np.minimum(risk, MAX_RULE_RISK), reasons)

    async def _write(self, n: int, snapshot: Callable[[int], dict[str, Any]]) -> None:
        """Replace the snapshots batch by batch; erased customers lose theirs."""
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        table = cast(Table, SegmentSnapshot.__table__)
        upsert = insert(table)
        # One statement executed with many rows: compiled once, not once per batch.
        upsert = upsert.on_conflict_do_update(
            index_elements=["customer_id"],
            set_={c.name: upsert.excluded[c.name] for c in table.columns if not c.primary_key},
        )
        for start in range(0, n, WRITE_BATCH):
            rows = [snapshot(i) for i in range(start, min(n, start + WRITE_BATCH))]
            async with self.db.transaction() as session:
                await session.execute(upsert, rows)
        async with self.db.transaction() as session:
            await session.execute(
                delete(SegmentSnapshot).where(
                    SegmentSnapshot.customer_id.in_(
                        select(Customer.id).where(Customer.erased_at.is_not(None))
                    )
                )
            )


async def _grouped(
    session: AsyncSession, measures: list[Any], *where: ColumnElement[bool]
) -> list[tuple[Any, ...]]:
    """(customer_id, *measures) per customer over their purchases matching `where`."""
    rows = await session.execute(
        select(Purchase.customer_id, *measures)
        .where(Purchase.customer_id.is_not(None), *where)
        .group_by(Purchase.customer_id)
    )
    return [tuple(row) for row in rows.all()]
