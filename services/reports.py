"""KPIs for a period (绩效评估) and the data behind the report charts, as SQL aggregates.

Definitions, for a period [start, end):
- customers: every customer not erased, at the end of the period; new: created in it.
- active: customers with at least one purchase in the period.
- repurchase rate (复购率): active customers with two purchases or more, over active ones.
- retention rate (留存率): customers active in the previous period of the same length who
  are active again in this one, over those active then; churn rate is its complement.
- CSAT: the average of 1-5 scores given in the period: tickets' satisfaction ratings and
  survey "rating" answers. NPS: promoters (9-10) minus detractors (0-6), in percent of the
  survey "nps" answers given in the period.
- first response: minutes from a ticket's creation to the first staff answer, for tickets
  created in the period; compared with the policy's SLA.
- points: issued = credits in the period, spent = debits in the period (redemptions,
  refunds, adjustments), outstanding = every customer's balance at the end.
"""

from __future__ import annotations

import calendar
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from models import (
    Customer,
    PointsEntry,
    Purchase,
    SegmentSnapshot,
    SurveyAnswer,
    SurveyQuestion,
    Ticket,
    TicketStatus,
)
from models.database import Database
from services.clock import Clock
from services.policy import Policy
from services.rfm import SEGMENTS

_SPAN = re.compile(r"^(\d{1,4})([dwmy])$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_RANGE = re.compile(r"^(\d{4}-\d{2}-\d{2})\s*(?:\.\.|~|to)\s*(\d{4}-\d{2}-\d{2})$")


class PeriodError(ValueError):
    """A period that cannot be read; the message is the text given."""


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    @property
    def previous(self) -> Period:
        return Period(self.start - (self.end - self.start), self.start)


def parse_period(text: str, now: datetime, zone: ZoneInfo, default_days: int) -> Period:
    """`30d`, `8w`, `6m`, `1y`, `today`, `week`, `month`, `year`, `2026-04`, `2026`, or
    `2026-04-01..2026-04-30` (whole local days, both included); empty = the default."""
    raw = text.strip().lower()
    today = now.astimezone(zone).date()

    def local(day: date) -> datetime:
        return datetime.combine(day, time(0), zone)

    if not raw:
        return Period(now - timedelta(days=default_days), now)
    if span := _SPAN.match(raw):
        count, unit = int(span.group(1)), span.group(2)
        if count == 0:
            raise PeriodError(text)
        if unit in "dw":
            return Period(now - timedelta(days=count * (7 if unit == "w" else 1)), now)
        months = count * (12 if unit == "y" else 1)
        if months > 1200:
            raise PeriodError(text)
        return Period(local(_months_before(today, months)), now)
    if raw == "today":
        return Period(local(today), now)
    if raw == "week":
        return Period(local(today - timedelta(days=today.weekday())), now)
    if raw == "month":
        return Period(local(today.replace(day=1)), now)
    if raw == "year":
        return Period(local(today.replace(month=1, day=1)), now)
    try:
        if month := _MONTH.match(raw):
            first = date(int(month.group(1)), int(month.group(2)), 1)
            days = calendar.monthrange(first.year, first.month)[1]
            return Period(local(first), local(first + timedelta(days=days)))
        if raw.isdigit() and len(raw) == 4:
            first = date(int(raw), 1, 1)
            return Period(local(first), local(first.replace(year=first.year + 1)))
        if span_range := _RANGE.match(raw):
            first = date.fromisoformat(span_range.group(1))
            last = date.fromisoformat(span_range.group(2))
            if last >= first:
                return Period(local(first), local(last + timedelta(days=1)))
    except ValueError:
        pass
    raise PeriodError(text)


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True)
class Kpis:
    period: Period
    customers: int
    new_customers: int
    active: int
    repeat_buyers: int
    previous_active: int
    retained: int
    purchases: int
    revenue: Decimal
    csat_average: float | None
    csat_count: int
    nps: float | None
    nps_count: int
    response_median: float | None
    response_p90: float | None
    responded: int
    within_sla: int
    sla_minutes: int
    waiting_past_sla: int
    tickets_by_kind: dict[str, int]
    points_issued: int
    points_spent: int
    points_outstanding: int

    @property
    def repurchase_rate(self) -> float | None:
        return self.repeat_buyers / self.active if self.active else None

    @property
    def retention_rate(self) -> float | None:
        return self.retained / self.previous_active if self.previous_active else None

    @property
    def churn_rate(self) -> float | None:
        rate = self.retention_rate
        return None if rate is None else 1 - rate

    @property
    def sla_rate(self) -> float | None:
        return self.within_sla / self.responded if self.responded else None

    @property
    def tickets(self) -> int:
        return sum(self.tickets_by_kind.values())


@dataclass(frozen=True)
class SegmentMap:
    """Customers per (R score, FM score) cell, and per named segment."""

    cells: dict[tuple[int, int], int]
    segments: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.segments.values())


@dataclass(frozen=True)
class Pareto:
    """The ABC curve: cumulative share of revenue against cumulative share of customers,
    customers taken from the largest spender down."""

    customer_share: list[float]
    revenue_share: list[float]
    customers: int
    # The share of customers that brings 80% of revenue.
    top_share_for_80: float | None


@dataclass(frozen=True)
class TrendPoint:
    start: date
    csat: float | None
    nps: float | None
    answers: int


@dataclass(frozen=True)
class Trend:
    bucket: str  # "day", "week" or "month"
    points: list[TrendPoint] = field(default_factory=list)


@dataclass(frozen=True)
class ChartData:
    """What the report charts are drawn from, for one period."""

    segments: SegmentMap
    pareto: Pareto
    trend: Trend
    waits: list[float]
    sla_minutes: int


class Reports:
    def __init__(self, db: Database, policy: Policy, clock: Clock, zone: ZoneInfo) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.zone = zone

    def period(self, text: str = "") -> Period:
        return parse_period(text, self.clock.now(), self.zone, self.policy.reports.period_days)

    async def kpis(self, period: Period) -> Kpis:
        async with self.db.session() as session:
            customers, new = (
                await session.execute(
                    select(
                        func.count(Customer.id),
                        func.count(Customer.id).filter(Customer.created_at >= period.start),
                    ).where(Customer.erased_at.is_(None), Customer.created_at < period.end)
                )
            ).one()
            active, repeat, purchases, revenue = await _buying(session, period)
            previous_active, retained = await _retention(session, period)
            csat_average, csat_count = await _csat(session, period)
            nps, nps_count = await _nps(session, period)
            waits = await _first_responses(session, period)
            sla = self.policy.service.sla_minutes
            waiting = await session.scalar(
                select(func.count(Ticket.id)).where(
                    Ticket.status != TicketStatus.CLOSED,
                    Ticket.first_response_at.is_(None),
                    Ticket.created_at < self.clock.now() - timedelta(minutes=sla),
                )
            )
            kinds = dict(
                (
                    await session.execute(
                        select(Ticket.kind, func.count(Ticket.id))
                        .where(Ticket.created_at >= period.start, Ticket.created_at < period.end)
                        .group_by(Ticket.kind)
                    )
                ).all()
            )
            issued, spent = (
                await session.execute(
                    select(
                        func.coalesce(
                            func.sum(case((PointsEntry.delta > 0, PointsEntry.delta), else_=0)), 0
                        ),
                        func.coalesce(
                            func.sum(case((PointsEntry.delta < 0, -PointsEntry.delta), else_=0)), 0
                        ),
                    ).where(
                        PointsEntry.created_at >= period.start, PointsEntry.created_at < period.end
                    )
                )
            ).one()
            outstanding = await session.scalar(
                select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
                    PointsEntry.created_at < period.end
                )
            )
        times = np.array(waits, dtype=np.float64)
        return Kpis(
            period=period,
            customers=int(customers),
            new_customers=int(new),
            active=active,
            repeat_buyers=repeat,
            previous_active=previous_active,
            retained=retained,
            purchases=purchases,
            revenue=revenue,
            csat_average=csat_average,
            csat_count=csat_count,
            nps=nps,
            nps_count=nps_count,
            response_median=float(np.median(times)) if times.size else None,
            response_p90=float(np.percentile(times, 90)) if times.size else None,
            responded=int(times.size),
            within_sla=int((times <= sla).sum()),
            sla_minutes=sla,
            waiting_past_sla=int(waiting or 0),
            tickets_by_kind={str(k): int(v) for k, v in kinds.items()},
            points_issued=int(issued or 0),
            points_spent=int(spent or 0),
            points_outstanding=int(outstanding or 0),
        )

    async def segment_map(self) -> SegmentMap:
        """From the latest classification; customers who never bought are "potential"."""
        async with self.db.session() as session:
            rows = await session.execute(
                select(
                    SegmentSnapshot.r_score,
                    SegmentSnapshot.f_score,
                    SegmentSnapshot.m_score,
                    SegmentSnapshot.segment,
                    func.count(),
                )
                .join(Customer, Customer.id == SegmentSnapshot.customer_id)
                .where(Customer.erased_at.is_(None))
                .group_by(
                    SegmentSnapshot.r_score,
                    SegmentSnapshot.f_score,
                    SegmentSnapshot.m_score,
                    SegmentSnapshot.segment,
                )
            )
            cells: Counter[tuple[int, int]] = Counter()
            segments: Counter[str] = Counter()
            for r, f, m, segment, count in rows:
                segments[segment] += count
                if r and f and m:
                    cells[(int(r), (int(f) + int(m) + 1) // 2)] += count
        ordered = {s: segments[s] for s in (*SEGMENTS, "potential") if segments[s]}
        ordered.update({s: n for s, n in segments.items() if s not in ordered})
        return SegmentMap(dict(cells), ordered)

    async def pareto(self, period: Period, points: int = 200) -> Pareto:
        """Net revenue per customer in the period, largest first, sampled to `points`."""
        # In a transaction: PostgreSQL streams through a cursor only inside one.
        async with self.db.transaction() as session:
            result = await session.stream_scalars(
                select(func.sum(Purchase.amount))
                .where(
                    Purchase.customer_id.is_not(None),
                    Purchase.occurred_at >= period.start,
                    Purchase.occurred_at < period.end,
                )
                .group_by(Purchase.customer_id)
            )
            revenue = np.array([float(v) async for v in result if v is not None and v > 0])
        if revenue.size == 0:
            return Pareto([0.0], [0.0], 0, None)
        revenue[::-1].sort()
        cumulative = np.concatenate(([0.0], np.cumsum(revenue) / revenue.sum()))
        shares = np.arange(revenue.size + 1) / revenue.size
        picks = np.unique(np.linspace(0, revenue.size, min(points, revenue.size + 1)).round())
        top = int(np.searchsorted(cumulative, 0.8 - 1e-9)) / revenue.size
        return Pareto(
            customer_share=[float(shares[int(i)]) for i in picks],
            revenue_share=[float(cumulative[int(i)]) for i in picks],
            customers=int(revenue.size),
            top_share_for_80=top,
        )

    async def satisfaction_trend(self, period: Period) -> Trend:
        """CSAT and NPS per day (periods up to two weeks), week (up to 20 weeks) or month."""
        bucket = "day" if period.days <= 14 else "week" if period.days <= 140 else "month"
        async with self.db.session() as session:
            scores = [
                (at, "csat", int(value or 0))
                for value, at in (
                    await session.execute(
                        select(Ticket.csat, func.coalesce(Ticket.closed_at, Ticket.created_at))
                        .where(Ticket.csat.is_not(None))
                        .where(_between(func.coalesce(Ticket.closed_at, Ticket.created_at), period))
                    )
                )
            ]
            answers = await session.execute(
                select(SurveyAnswer.created_at, SurveyQuestion.kind, SurveyAnswer.value)
                .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
                .where(
                    SurveyQuestion.kind.in_(("rating", "nps")),
                    SurveyAnswer.value.is_not(None),
                    _between(SurveyAnswer.created_at, period),
                )
            )
            scores += [
                (at, "csat" if kind == "rating" else "nps", int(value or 0))
                for at, kind, value in answers
            ]
        groups: dict[date, list[tuple[str, int]]] = {}
        for at, kind, value in scores:
            groups.setdefault(self._bucket_start(at, bucket), []).append((kind, value))
        points = []
        for start in self._buckets(period, bucket):
            found = groups.get(start, [])
            csat = [v for k, v in found if k == "csat"]
            nps = [v for k, v in found if k == "nps"]
            points.append(
                TrendPoint(
                    start,
                    sum(csat) / len(csat) if csat else None,
                    _nps_of(nps),
                    len(found),
                )
            )
        return Trend(bucket, points)

    async def chart_data(self, period: Period, kpis: Kpis) -> ChartData:
        return ChartData(
            segments=await self.segment_map(),
            pareto=await self.pareto(period),
            trend=await self.satisfaction_trend(period),
            waits=await self.response_times(period),
            sla_minutes=kpis.sla_minutes,
        )

    async def response_times(self, period: Period) -> list[float]:
        """Minutes to the first staff answer, for tickets created in the period."""
        async with self.db.session() as session:
            return await _first_responses(session, period)

    def _bucket_start(self, at: datetime, bucket: str) -> date:
        day = at.astimezone(self.zone).date()
        if bucket == "week":
            return day - timedelta(days=day.weekday())
        if bucket == "month":
            return day.replace(day=1)
        return day

    def _buckets(self, period: Period, bucket: str) -> list[date]:
        start = self._bucket_start(period.start, bucket)
        last = self._bucket_start(period.end - timedelta(microseconds=1), bucket)
        days: list[date] = []
        while start <= last:
            days.append(start)
            if bucket == "month":
                start = _months_before(start, -1)
            else:
                start += timedelta(days=7 if bucket == "week" else 1)
        return days


def _bought_within(period: Period) -> ColumnElement[bool]:
    """The customer (of the outer query) bought something in the period."""
    return (
        exists()
        .where(
            Purchase.customer_id == Customer.id,
            Purchase.amount > 0,
            _between(Purchase.occurred_at, period),
        )
        .correlate(Customer)
    )


def _between(
    column: ColumnElement[datetime] | InstrumentedAttribute[datetime], period: Period
) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


def _nps_of(values: list[int]) -> float | None:
    if not values:
        return None
    promoters = sum(1 for v in values if v >= 9)
    detractors = sum(1 for v in values if v <= 6)
    return 100 * (promoters - detractors) / len(values)


async def _buying(session: AsyncSession, period: Period) -> tuple[int, int, int, Decimal]:
    per_customer = (
        select(Purchase.customer_id, func.count(Purchase.id).label("n"))
        .where(
            Purchase.customer_id.is_not(None),
            Purchase.amount > 0,
            Purchase.occurred_at >= period.start,
            Purchase.occurred_at < period.end,
        )
        .group_by(Purchase.customer_id)
        .subquery()
    )
    active, repeat = (
        await session.execute(
            select(
                func.count(per_customer.c.customer_id),
                func.count(per_customer.c.customer_id).filter(per_customer.c.n >= 2),
            )
        )
    ).one()
    purchases, revenue = (
        await session.execute(
            select(
                func.count(Purchase.id).filter(Purchase.amount > 0), func.sum(Purchase.amount)
            ).where(Purchase.occurred_at >= period.start, Purchase.occurred_at < period.end)
        )
    ).one()
    return (
        int(active),
        int(repeat),
        int(purchases),
        Decimal(revenue) if revenue is not None else Decimal("0.00"),
    )


async def _retention(session: AsyncSession, period: Period) -> tuple[int, int]:
    again, then = _bought_within(period), _bought_within(period.previous)
    previous, retained = (
        await session.execute(
            select(func.count(Customer.id), func.count(Customer.id).filter(again)).where(then)
        )
    ).one()
    return int(previous), int(retained)


async def _csat(session: AsyncSession, period: Period) -> tuple[float | None, int]:
    closed = func.coalesce(Ticket.closed_at, Ticket.created_at)
    tickets_sum, tickets_n = (
        await session.execute(
            select(func.sum(Ticket.csat), func.count(Ticket.csat)).where(
                Ticket.csat.is_not(None), closed >= period.start, closed < period.end
            )
        )
    ).one()
    surveys_sum, surveys_n = (
        await session.execute(
            select(func.sum(SurveyAnswer.value), func.count(SurveyAnswer.value))
            .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
            .where(
                SurveyQuestion.kind == "rating",
                SurveyAnswer.created_at >= period.start,
                SurveyAnswer.created_at < period.end,
            )
        )
    ).one()
    count = int(tickets_n or 0) + int(surveys_n or 0)
    total = int(tickets_sum or 0) + int(surveys_sum or 0)
    return (total / count if count else None), count


async def _nps(session: AsyncSession, period: Period) -> tuple[float | None, int]:
    promoters, detractors, count = (
        await session.execute(
            select(
                func.count(SurveyAnswer.id).filter(SurveyAnswer.value >= 9),
                func.count(SurveyAnswer.id).filter(SurveyAnswer.value <= 6),
                func.count(SurveyAnswer.id),
            )
            .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
            .where(
                SurveyQuestion.kind == "nps",
                SurveyAnswer.value.is_not(None),
                SurveyAnswer.created_at >= period.start,
                SurveyAnswer.created_at < period.end,
            )
        )
    ).one()
    if not count:
        return None, 0
    return 100 * (int(promoters) - int(detractors)) / int(count), int(count)


async def _first_responses(session: AsyncSession, period: Period) -> list[float]:
    rows = await session.execute(
        select(Ticket.created_at, Ticket.first_response_at).where(
            Ticket.first_response_at.is_not(None),
            Ticket.created_at >= period.start,
            Ticket.created_at < period.end,
        )
    )
    return [
        max(0.0, (answered - created).total_seconds() / 60)
        for created, answered in rows
        if answered is not None
    ]
