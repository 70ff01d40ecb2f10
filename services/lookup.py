"""Finding a customer for staff, and everything staff should see about them on one card."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Customer,
    Purchase,
    SegmentSnapshot,
    StaffMember,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
    Ticket,
    TicketStatus,
)
from models.database import Database
from services.loyalty import Loyalty, PointsSummary
from services.phones import InvalidPhone, normalize_phone
from services.policy import Policy

# Customer ids are small; a longer run of digits is a phone number.
_MAX_ID_DIGITS = 9
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class Rating:
    """A score a customer gave: a ticket's CSAT, a survey rating (1-5) or NPS (0-10)."""

    kind: str
    value: int
    at: datetime


@dataclass(frozen=True)
class CustomerCard:
    customer: Customer
    summary: PointsSummary
    snapshot: SegmentSnapshot | None
    purchases: list[Purchase]
    purchase_count: int
    total_spend: Decimal
    open_tickets: list[Ticket]
    ratings: list[Rating]

    @property
    def average_rating(self) -> float | None:
        scores = [r.value for r in self.ratings if r.kind != "nps"]
        return sum(scores) / len(scores) if scores else None


@dataclass(frozen=True)
class InboxLine:
    """An open ticket as /inbox lists it."""

    id: int
    customer_id: int
    customer_name: str | None
    erased: bool
    kind: str
    status: str
    created_at: datetime
    first_response_at: datetime | None
    assignee: str | None


def customer_id_in(text: str) -> int | None:
    """`#12` or `12` as a customer id; None when the text is not one."""
    raw = text.strip().removeprefix("#")
    if raw.isdigit() and len(raw) <= _MAX_ID_DIGITS:
        return int(raw)
    return None


class Lookup:
    def __init__(self, db: Database, policy: Policy, loyalty: Loyalty) -> None:
        self.db = db
        self.policy = policy
        self.loyalty = loyalty

    async def find(self, query: str, limit: int = 10) -> list[Customer]:
        """Customers matching a phone (whole or its last digits), a name part, a customer
        id or an @username, best matches first."""
        text = query.strip()
        if not text:
            return []
        conditions = []
        if text.startswith("@"):
            conditions.append(func.lower(Customer.username) == text[1:].lower())
        else:
            number = customer_id_in(text)
            if number is not None:
                conditions.append(Customer.id == number)
            with contextlib.suppress(InvalidPhone):
                conditions.append(Customer.phone == normalize_phone(text, self.policy.phone_region))
            digits = "".join(_DIGITS.findall(text))
            if len(digits) >= 4 and len(digits) >= len(text.replace(" ", "")) - 1:
                conditions.append(Customer.phone.contains(digits, autoescape=True))
            conditions.append(func.lower(Customer.name).contains(text.lower(), autoescape=True))
            conditions.append(func.lower(Customer.username) == text.lower())
        async with self.db.session() as session:
            return list(
                await session.scalars(
                    select(Customer)
                    .where(or_(*conditions))
                    .order_by(Customer.last_seen_at.desc().nulls_last(), Customer.id)
                    .limit(limit)
                )
            )

    async def resolve(self, ref: str) -> Customer | None:
        """Exactly one customer by id (`12`, `#12`), phone or @username: the forms a
        command that changes data accepts, since a name part may match several."""
        text = ref.strip()
        async with self.db.session() as session:
            if text.startswith("@") and len(text) > 1:
                return await session.scalar(
                    select(Customer).where(func.lower(Customer.username) == text[1:].lower())
                )
            number = customer_id_in(text)
            if number is not None:
                return await session.get(Customer, number)
            try:
                phone = normalize_phone(text, self.policy.phone_region)
            except InvalidPhone:
                return None
            return await session.scalar(select(Customer).where(Customer.phone == phone))

    async def card(self, customer_id: int) -> CustomerCard | None:
        summary = await self.loyalty.summary(customer_id)
        async with self.db.session() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                return None
            snapshot = await session.get(SegmentSnapshot, customer_id)
            purchases = list(
                await session.scalars(
                    select(Purchase)
                    .where(Purchase.customer_id == customer_id)
                    .order_by(Purchase.occurred_at.desc(), Purchase.id.desc())
                    .limit(5)
                )
            )
            count, total = (
                await session.execute(
                    select(func.count(), func.sum(Purchase.amount)).where(
                        Purchase.customer_id == customer_id, Purchase.amount > 0
                    )
                )
            ).one()
            tickets = list(
                await session.scalars(
                    select(Ticket)
                    .where(Ticket.customer_id == customer_id, Ticket.status != TicketStatus.CLOSED)
                    .order_by(Ticket.created_at)
                )
            )
            ratings = await _ratings(session, customer_id)
        return CustomerCard(
            customer=customer,
            summary=summary,
            snapshot=snapshot,
            purchases=purchases,
            purchase_count=int(count),
            total_spend=Decimal(total) if total is not None else Decimal("0.00"),
            open_tickets=tickets,
            ratings=ratings,
        )

    async def inbox(self, limit: int = 15) -> tuple[list[InboxLine], int]:
        """Tickets not closed yet, oldest first, and how many there are in all."""
        async with self.db.session() as session:
            total = await session.scalar(
                select(func.count(Ticket.id)).where(Ticket.status != TicketStatus.CLOSED)
            )
            rows = await session.execute(
                select(Ticket, Customer.name, Customer.erased_at, StaffMember.name)
                .join(Customer, Customer.id == Ticket.customer_id)
                .outerjoin(StaffMember, StaffMember.id == Ticket.assignee_id)
                .where(Ticket.status != TicketStatus.CLOSED)
                .order_by(Ticket.created_at, Ticket.id)
                .limit(limit)
            )
            lines = [
                InboxLine(
                    id=ticket.id,
                    customer_id=ticket.customer_id,
                    customer_name=name,
                    erased=erased is not None,
                    kind=ticket.kind,
                    status=ticket.status,
                    created_at=ticket.created_at,
                    first_response_at=ticket.first_response_at,
                    assignee=assignee,
                )
                for ticket, name, erased, assignee in rows
            ]
        return lines, int(total or 0)


async def _ratings(session: AsyncSession, customer_id: int, limit: int = 5) -> list[Rating]:
    csat = await session.execute(
        select(Ticket.csat, Ticket.closed_at, Ticket.created_at)
        .where(Ticket.customer_id == customer_id, Ticket.csat.is_not(None))
        .order_by(Ticket.created_at.desc())
        .limit(limit)
    )
    found = [Rating("csat", int(v or 0), closed or created) for v, closed, created in csat]
    answers = await session.execute(
        select(SurveyQuestion.kind, SurveyAnswer.value, SurveyAnswer.created_at)
        .join(SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .where(
            SurveyResponse.customer_id == customer_id,
            SurveyQuestion.kind.in_(("rating", "nps")),
            SurveyAnswer.value.is_not(None),
        )
        .order_by(SurveyAnswer.created_at.desc())
        .limit(limit)
    )
    found += [Rating(kind, int(value or 0), at) for kind, value, at in answers]
    return sorted(found, key=lambda r: r.at, reverse=True)[:limit]
