"""CSV exports: customers, purchases, tickets and survey responses, row by row or as
aggregates without personal data. UTF-8 with a BOM, so Excel opens Chinese text correctly.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from models import (
    Customer,
    PointsEntry,
    Purchase,
    SegmentSnapshot,
    StaffMember,
    Survey,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
)
from models.database import Database
from services.audit import record_audit
from services.clock import Clock

EXPORTS = ("customers", "purchases", "tickets", "responses")
BOM = "\ufeff"
_CHUNK = 1000

Row = Sequence[object]


class Exports:
    def __init__(self, db: Database, zone: ZoneInfo, clock: Clock) -> None:
        self.db = db
        self.zone = zone
        self.clock = clock

    async def record(self, actor: int | None, what: str, *, aggregate: bool, rows: int) -> None:
        """Who took which data away, in the audit log with the changes."""
        async with self.db.transaction() as session:
            record_audit(
                session,
                at=self.clock.now(),
                actor=actor,
                action=f"export.{what}",
                after={"aggregate": aggregate, "rows": rows},
            )

    async def write(self, what: str, out: IO[str], *, aggregate: bool, bom: bool = True) -> int:
        """Write one export as CSV; the number of data rows written."""
        rows = self.aggregates(what) if aggregate else self.rows(what)
        writer = csv.writer(out, lineterminator="\r\n")
        if bom:
            out.write(BOM)
        count = -1
        async for row in rows:
            writer.writerow([self._cell(v) for v in row])
            count += 1
        return max(count, 0)

    def _cell(self, value: object) -> object:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return value.astimezone(self.zone).isoformat(timespec="seconds")
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, float):
            return f"{value:.4g}"
        return value

    def rows(self, what: str) -> AsyncIterator[Row]:
        """The header, then one row per record, streamed from the database."""
        exports = {
            "customers": self._customers,
            "purchases": self._purchases,
            "tickets": self._tickets,
            "responses": self._responses,
        }
        if what not in exports:
            raise ValueError(what)
        return exports[what]()

    def aggregates(self, what: str) -> AsyncIterator[Row]:
        """Counts and sums only: what a viewer may take away."""
        exports = {
            "customers": self._customer_counts,
            "purchases": self._purchase_months,
            "tickets": self._ticket_months,
            "responses": self._response_averages,
        }
        if what not in exports:
            raise ValueError(what)
        return exports[what]()

    async def _stream(self, query: Any) -> AsyncIterator[tuple[Any, ...]]:
        # In a transaction: PostgreSQL streams through a cursor only inside one.
        async with self.db.transaction() as session:
            result = await session.stream(query.execution_options(yield_per=_CHUNK))
            async for row in result:
                yield tuple(row)

    async def _customers(self) -> AsyncIterator[Row]:
        yield (
            "id",
            "telegram_id",
            "username",
            "name",
            "phone",
            "birthday",
            "locale",
            "region",
            "source",
            "marketing_opt_in",
            "reachable",
            "created_at",
            "last_seen_at",
            "erased",
            "points",
            "tier",
            "segment",
            "abc_class",
            "churn_probability",
        )
        points = (
            select(PointsEntry.customer_id, func.sum(PointsEntry.delta).label("balance"))
            .group_by(PointsEntry.customer_id)
            .subquery()
        )
        query = (
            select(
                Customer.id,
                Customer.telegram_id,
                Customer.username,
                Customer.name,
                Customer.phone,
                Customer.birthday,
                Customer.locale,
                Customer.region,
                Customer.source,
                Customer.marketing_opt_in,
                Customer.reachable,
                Customer.created_at,
                Customer.last_seen_at,
                Customer.erased_at.is_not(None),
                func.coalesce(points.c.balance, 0),
                SegmentSnapshot.tier,
                SegmentSnapshot.segment,
                SegmentSnapshot.abc_class,
                SegmentSnapshot.churn_probability,
            )
            .outerjoin(points, points.c.customer_id == Customer.id)
            .outerjoin(SegmentSnapshot, SegmentSnapshot.customer_id == Customer.id)
            .order_by(Customer.id)
        )
        async for row in self._stream(query):
            yield row

    async def _purchases(self) -> AsyncIterator[Row]:
        yield (
            "id",
            "reference",
            "customer_id",
            "phone",
            "amount",
            "currency",
            "occurred_at",
            "store",
            "channel",
            "refund_of",
            "created_at",
        )
        original = aliased(Purchase)
        query = (
            select(
                Purchase.id,
                Purchase.reference,
                Purchase.customer_id,
                Purchase.phone,
                Purchase.amount,
                Purchase.currency,
                Purchase.occurred_at,
                Purchase.store,
                Purchase.channel,
                original.reference,
                Purchase.created_at,
            )
            .outerjoin(original, original.id == Purchase.refund_of_id)
            .order_by(Purchase.id)
        )
        async for row in self._stream(query):
            yield row

    async def _tickets(self) -> AsyncIterator[Row]:
        yield (
            "id",
            "customer_id",
            "kind",
            "status",
            "created_at",
            "first_response_at",
            "first_response_minutes",
            "closed_at",
            "csat",
            "escalation_level",
            "assignee_telegram_id",
        )
        query = (
            select(
                Ticket.id,
                Ticket.customer_id,
                Ticket.kind,
                Ticket.status,
                Ticket.created_at,
                Ticket.first_response_at,
                Ticket.closed_at,
                Ticket.csat,
                Ticket.escalation_level,
                StaffMember.telegram_id,
            )
            .outerjoin(StaffMember, StaffMember.id == Ticket.assignee_id)
            .order_by(Ticket.id)
        )
        async for row in self._stream(query):
            ticket_id, customer, kind, status, created, answered, closed, *rest = row
            minutes = (
                round((answered - created).total_seconds() / 60, 1)
                if isinstance(answered, datetime) and isinstance(created, datetime)
                else None
            )
            yield (ticket_id, customer, kind, status, created, answered, minutes, closed, *rest)

    async def _responses(self) -> AsyncIterator[Row]:
        yield (
            "response_id",
            "survey",
            "customer_id",
            "instance",
            "status",
            "started_at",
            "completed_at",
            "question",
            "question_kind",
            "value",
            "text",
        )
        query = (
            select(
                SurveyResponse.id,
                Survey.key,
                SurveyResponse.customer_id,
                SurveyResponse.instance,
                SurveyResponse.status,
                SurveyResponse.started_at,
                SurveyResponse.completed_at,
                SurveyQuestion.position,
                SurveyQuestion.kind,
                SurveyAnswer.value,
                SurveyAnswer.text,
            )
            .join(Survey, Survey.id == SurveyResponse.survey_id)
            .join(SurveyAnswer, SurveyAnswer.response_id == SurveyResponse.id)
            .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
            .order_by(SurveyResponse.id, SurveyQuestion.position)
        )
        async for row in self._stream(query):
            yield row

    async def _customer_counts(self) -> AsyncIterator[Row]:
        yield ("dimension", "value", "customers")
        async with self.db.session() as session:
            alive = Customer.erased_at.is_(None)
            total = await session.scalar(select(func.count(Customer.id)).where(alive))
            yield ("all", "", int(total or 0))
            dimensions: list[tuple[str, Any]] = [
                ("locale", Customer.locale),
                ("region", Customer.region),
                ("marketing_opt_in", Customer.marketing_opt_in),
                ("reachable", Customer.reachable),
                ("tier", SegmentSnapshot.tier),
                ("segment", SegmentSnapshot.segment),
                ("abc_class", SegmentSnapshot.abc_class),
            ]
            for name, column in dimensions:
                rows = await session.execute(
                    select(column, func.count(Customer.id))
                    .outerjoin(SegmentSnapshot, SegmentSnapshot.customer_id == Customer.id)
                    .where(alive)
                    .group_by(column)
                    .order_by(column)
                )
                for value, count in rows:
                    yield (name, value, int(count))

    async def _purchase_months(self) -> AsyncIterator[Row]:
        yield ("month", "purchases", "refunds", "revenue", "buyers")
        months: dict[str, list[Any]] = defaultdict(lambda: [0, 0, Decimal("0.00"), set()])
        query = select(Purchase.occurred_at, Purchase.amount, Purchase.customer_id)
        async for occurred, amount, customer in self._stream(query):
            month = months[self._month(occurred)]
            month[0 if amount > 0 else 1] += 1
            month[2] += amount
            if customer is not None and amount > 0:
                month[3].add(customer)
        for key in sorted(months):
            sales, refunds, revenue, buyers = months[key]
            yield (key, sales, refunds, revenue, len(buyers))

    async def _ticket_months(self) -> AsyncIterator[Row]:
        yield ("month", "kind", "tickets", "closed", "answered", "csat_average")
        groups: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
        query = select(
            Ticket.created_at, Ticket.kind, Ticket.closed_at, Ticket.first_response_at, Ticket.csat
        )
        async for created, kind, closed, answered, csat in self._stream(query):
            group = groups[(self._month(created), str(kind))]
            group[0] += 1
            group[1] += closed is not None
            group[2] += answered is not None
            if csat is not None:
                group[3] += int(csat)
                group[4] += 1
        for (month, kind), (tickets, closed, answered, total, rated) in sorted(groups.items()):
            average = round(total / rated, 2) if rated else None
            yield (month, kind, tickets, closed, answered, average)

    async def _response_averages(self) -> AsyncIterator[Row]:
        yield ("survey", "question", "question_kind", "answers", "average")
        query = (
            select(
                Survey.key,
                SurveyQuestion.position,
                SurveyQuestion.kind,
                func.count(SurveyAnswer.id),
                func.avg(SurveyAnswer.value),
            )
            .join(SurveyQuestion, SurveyQuestion.survey_id == Survey.id)
            .join(SurveyAnswer, SurveyAnswer.question_id == SurveyQuestion.id)
            .group_by(Survey.key, SurveyQuestion.position, SurveyQuestion.kind)
            .order_by(Survey.key, SurveyQuestion.position)
        )
        async for key, position, kind, count, average in self._stream(query):
            yield (key, position, kind, count, round(float(average), 2) if average else None)

    def _month(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%Y-%m")
