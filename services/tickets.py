"""Feedback and complaints (反馈 / 投诉): tickets, their messages both ways, who took and
closed them, the first-response time, ratings (CSAT) and the apology after a low one."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Coupon,
    Customer,
    OfferStatus,
    Purchase,
    RecoveryOffer,
    Role,
    SegmentSnapshot,
    StaffMember,
    StaffTopic,
    Ticket,
    TicketKind,
    TicketMessage,
    TicketStatus,
)
from models.database import Database
from services.audit import record_audit
from services.clock import Clock
from services.loyalty import TRAILING, Loyalty, balance_of, lock_customer, spend_between
from services.outbox import Outbox, Outgoing, Render
from services.policy import Policy, Tier
from services.rewards import OutOfStock, Rewards

TEXT_LIMIT = 4000
MAX_ATTACHMENTS = 10
OPEN = (TicketStatus.OPEN, TicketStatus.TAKEN)
# A rating this low asks what went wrong and proposes an apology to staff.
LOW_RATING = 2


class TicketError(ValueError):
    """Feedback that cannot be filed as given; `reason` names what to fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class StaffRef:
    """The staff member acting, as the update tells it."""

    telegram_id: int
    name: str
    role: Role


@dataclass(frozen=True)
class Attachment:
    kind: str  # "photo", "document", ...
    file_id: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "file_id": self.file_id}


@dataclass(frozen=True)
class TicketView:
    id: int
    customer_id: int
    kind: str
    status: str
    created_at: datetime
    first_response_at: datetime | None
    closed_at: datetime | None
    csat: int | None
    text: str | None
    attachments: tuple[Attachment, ...]
    assignee: str | None
    staff_chat_message_id: int | None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN


class Outcome(StrEnum):
    DONE = "done"
    ALREADY = "already"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Change:
    outcome: Outcome
    ticket: TicketView | None = None


class RatingOutcome(StrEnum):
    RATED = "rated"
    ALREADY = "already"
    NOT_CLOSED = "not_closed"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OfferView:
    id: int
    ticket_id: int
    customer_id: int
    kind: str
    points: int | None
    reward_key: str | None
    status: str
    coupon_code: str | None = None


@dataclass(frozen=True)
class Rating:
    outcome: RatingOutcome
    ticket: TicketView | None = None
    offer: OfferView | None = None

    @property
    def low(self) -> bool:
        return self.outcome is RatingOutcome.RATED and self.offer is not None


class GrantOutcome(StrEnum):
    GRANTED = "granted"
    ALREADY = "already"
    ERASED = "erased"
    OUT_OF_STOCK = "out_of_stock"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Grant:
    outcome: GrantOutcome
    offer: OfferView | None = None
    balance: int | None = None


@dataclass(frozen=True)
class PurchaseLine:
    occurred_at: datetime
    amount: Any
    reference: str


@dataclass(frozen=True)
class CustomerCard:
    """What staff see first in a customer's topic."""

    customer_id: int
    name: str | None
    username: str | None
    phone: str | None
    erased: bool
    reachable: bool
    marketing: bool
    locale: str
    tier: Tier
    balance: int
    segment: str | None
    churn_risk: float | None
    purchases: tuple[PurchaseLine, ...]
    open_tickets: tuple[TicketView, ...]
    ratings: tuple[int, ...]


@dataclass(frozen=True)
class ResponseTimes:
    """First-response times of tickets opened in a period, against the SLA."""

    opened: int
    answered: int
    median_minutes: float | None
    p90_minutes: float | None
    breaches: int  # answered late, or still unanswered past the SLA
    sla_minutes: int


@dataclass(frozen=True)
class Csat:
    count: int
    average: float | None
    distribution: dict[int, int] = field(default_factory=dict)


class Tickets:
    def __init__(
        self,
        db: Database,
        policy: Policy,
        clock: Clock,
        loyalty: Loyalty,
        rewards: Rewards,
        outbox: Outbox | None = None,
        render: Render | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.loyalty = loyalty
        self.rewards = rewards
        self.outbox = outbox
        self.render = render

    # --- the customer's side -----------------------------------------------------------

    async def open(
        self,
        customer_id: int,
        kind: str,
        text: str,
        attachments: Sequence[Attachment] = (),
        *,
        customer_message_id: int | None = None,
    ) -> TicketView:
        """File feedback as a ticket; its id is the short number the customer sees."""
        if kind not in set(TicketKind):
            raise TicketError("kind")
        text = text.strip()
        if not text:
            raise TicketError("empty")
        if len(text) > TEXT_LIMIT:
            raise TicketError("too_long")
        if len(attachments) > MAX_ATTACHMENTS:
            raise TicketError("too_many_attachments")
        now = self.clock.now()
        async with self.db.transaction() as session:
            ticket = Ticket(
                customer_id=customer_id,
                kind=kind,
                status=TicketStatus.OPEN,
                created_at=now,
                escalation_level=0,
            )
            session.add(ticket)
            await session.flush()
            session.add(
                TicketMessage(
                    ticket_id=ticket.id,
                    author="customer",
                    text=text,
                    attachments=[a.to_json() for a in attachments] or None,
                    customer_message_id=customer_message_id,
                    created_at=now,
                )
            )
            await session.flush()
            return await self._view(session, ticket)

    async def open_of(self, customer_id: int) -> list[TicketView]:
        """The customer's tickets not closed yet, newest first."""
        async with self.db.session() as session:
            tickets = await session.scalars(
                select(Ticket)
                .where(Ticket.customer_id == customer_id, Ticket.status.in_(OPEN))
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            )
            return [await self._view(session, t) for t in tickets]

    async def current(self, customer_id: int) -> TicketView | None:
        """The ticket a customer's further messages belong to: their newest open one."""
        tickets = await self.open_of(customer_id)
        return tickets[0] if tickets else None

    async def latest(self, customer_id: int) -> TicketView | None:
        async with self.db.session() as session:
            ticket = await session.scalar(
                select(Ticket)
                .where(Ticket.customer_id == customer_id)
                .order_by(Ticket.created_at.desc(), Ticket.id.desc())
                .limit(1)
            )
            return await self._view(session, ticket) if ticket else None

    async def get(self, ticket_id: int) -> TicketView | None:
        async with self.db.session() as session:
            ticket = await session.get(Ticket, ticket_id)
            return await self._view(session, ticket) if ticket else None

    async def customer_said(
        self,
        ticket_id: int,
        text: str | None,
        attachments: Sequence[Attachment] = (),
        *,
        customer_message_id: int | None = None,
    ) -> int:
        """A further message from the customer on a ticket; the message's id."""
        async with self.db.transaction() as session:
            message = TicketMessage(
                ticket_id=ticket_id,
                author="customer",
                text=(text or "")[:TEXT_LIMIT] or None,
                attachments=[a.to_json() for a in attachments] or None,
                customer_message_id=customer_message_id,
                created_at=self.clock.now(),
            )
            session.add(message)
            await session.flush()
            return message.id

    async def rate(self, customer_id: int, ticket_id: int, score: int) -> Rating:
        """The customer's CSAT for a closed ticket, once. A low score (1-2) also proposes
        the policy's apology for staff to grant."""
        if not 1 <= score <= 5:
            return Rating(RatingOutcome.OUT_OF_RANGE)
        async with self.db.transaction() as session:
            ticket = await session.get(Ticket, ticket_id, with_for_update=True)
            if ticket is None or ticket.customer_id != customer_id:
                return Rating(RatingOutcome.UNKNOWN)
            if ticket.status != TicketStatus.CLOSED:
                return Rating(RatingOutcome.NOT_CLOSED, await self._view(session, ticket))
            if ticket.csat is not None:
                return Rating(RatingOutcome.ALREADY, await self._view(session, ticket))
            ticket.csat = score
            offer = None
            if score <= LOW_RATING:
                recovery = self.policy.recovery
                row = RecoveryOffer(
                    ticket_id=ticket.id,
                    customer_id=customer_id,
                    kind=recovery.kind,
                    points=recovery.points if recovery.kind == "points" else None,
                    reward_key=recovery.reward if recovery.kind == "coupon" else None,
                    status=OfferStatus.PROPOSED,
                    created_at=self.clock.now(),
                )
                session.add(row)
                await session.flush()
                offer = _offer_view(row)
            await session.flush()
            return Rating(RatingOutcome.RATED, await self._view(session, ticket), offer)

    async def explain(self, customer_id: int, ticket_id: int, text: str) -> bool:
        """What went wrong, after a low rating; kept once."""
        text = text.strip()[:TEXT_LIMIT]
        if not text:
            return False
        async with self.db.transaction() as session:
            ticket = await session.get(Ticket, ticket_id)
            if (
                ticket is None
                or ticket.customer_id != customer_id
                or ticket.csat is None
                or ticket.csat > LOW_RATING
                or ticket.csat_comment is not None
            ):
                return False
            ticket.csat_comment = text
            return True

    # --- the staff side ----------------------------------------------------------------

    async def posted(self, ticket_id: int, staff_chat_message_id: int) -> None:
        """Where the ticket was posted in the staff group."""
        async with self.db.transaction() as session:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is not None:
                ticket.staff_chat_message_id = staff_chat_message_id

    async def copied(self, message_id: int, staff_chat_message_id: int) -> None:
        """Where a customer's message was copied in the staff group."""
        async with self.db.transaction() as session:
            message = await session.get(TicketMessage, message_id)
            if message is not None:
                message.staff_chat_message_id = staff_chat_message_id

    async def by_staff_message(self, staff_chat_message_id: int) -> TicketView | None:
        """The ticket a message in the staff group belongs to: the ticket's own post, or a
        customer's message copied there, or a staff answer relayed from there."""
        async with self.db.session() as session:
            ticket = await session.scalar(
                select(Ticket).where(Ticket.staff_chat_message_id == staff_chat_message_id)
            )
            if ticket is None:
                ticket = await session.scalar(
                    select(Ticket)
                    .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
                    .where(TicketMessage.staff_chat_message_id == staff_chat_message_id)
                    .limit(1)
                )
            return await self._view(session, ticket) if ticket else None

    async def staff_said(
        self,
        ticket_id: int,
        staff: StaffRef,
        text: str | None,
        attachments: Sequence[Attachment] = (),
        *,
        staff_chat_message_id: int | None = None,
    ) -> int:
        """A staff answer on a ticket, before it is relayed; the first one sets the
        first-response time."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            member = await self._member(session, staff)
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None:
                raise LookupError(ticket_id)
            if ticket.first_response_at is None:
                ticket.first_response_at = now
            message = TicketMessage(
                ticket_id=ticket_id,
                author="staff",
                staff_id=member.id,
                text=(text or "")[:TEXT_LIMIT] or None,
                attachments=[a.to_json() for a in attachments] or None,
                staff_chat_message_id=staff_chat_message_id,
                created_at=now,
            )
            session.add(message)
            await session.flush()
            return message.id

    async def delivered(
        self,
        message_id: int,
        *,
        ok: bool,
        error: str | None = None,
        customer_message_id: int | None = None,
    ) -> None:
        async with self.db.transaction() as session:
            message = await session.get(TicketMessage, message_id)
            if message is not None:
                message.delivered = ok
                message.delivery_error = error[:255] if error else None
                message.customer_message_id = customer_message_id

    async def take(self, ticket_id: int, staff: StaffRef) -> Change:
        async with self.db.transaction() as session:
            ticket = await session.get(Ticket, ticket_id, with_for_update=True)
            if ticket is None:
                return Change(Outcome.UNKNOWN)
            if ticket.status == TicketStatus.CLOSED:
                return Change(Outcome.CLOSED, await self._view(session, ticket))
            member = await self._member(session, staff)
            if ticket.status == TicketStatus.TAKEN and ticket.assignee_id == member.id:
                return Change(Outcome.ALREADY, await self._view(session, ticket))
            before = {"status": ticket.status, "assignee_id": ticket.assignee_id}
            ticket.status = TicketStatus.TAKEN
            ticket.assignee_id = member.id
            _audit(session, self.clock, staff, "ticket.take", ticket, before)
            await session.flush()
            return Change(Outcome.DONE, await self._view(session, ticket))

    async def close(self, ticket_id: int, staff: StaffRef) -> Change:
        async with self.db.transaction() as session:
            ticket = await session.get(Ticket, ticket_id, with_for_update=True)
            if ticket is None:
                return Change(Outcome.UNKNOWN)
            if ticket.status == TicketStatus.CLOSED:
                return Change(Outcome.ALREADY, await self._view(session, ticket))
            member = await self._member(session, staff)
            before = {"status": ticket.status, "assignee_id": ticket.assignee_id}
            ticket.status = TicketStatus.CLOSED
            ticket.closed_at = self.clock.now()
            if ticket.assignee_id is None:
                ticket.assignee_id = member.id
            _audit(session, self.clock, staff, "ticket.close", ticket, before)
            await session.flush()
            return Change(Outcome.DONE, await self._view(session, ticket))

    async def offer(self, offer_id: int) -> OfferView | None:
        async with self.db.session() as session:
            row = await session.get(RecoveryOffer, offer_id)
            return _offer_view(row) if row else None

    async def grant(self, offer_id: int, staff: StaffRef) -> Grant:
        """Give the apology a staff member approved, once, and tell the customer in the
        same transaction."""
        async with self.db.transaction() as session:
            row = await session.get(RecoveryOffer, offer_id, with_for_update=True)
            if row is None:
                return Grant(GrantOutcome.UNKNOWN)
            customer = await lock_customer(session, row.customer_id)
            assert customer is not None
            if row.status == OfferStatus.GRANTED:
                return Grant(GrantOutcome.ALREADY, await self._offer(session, row))
            if customer.is_erased:
                return Grant(GrantOutcome.ERASED, _offer_view(row))
            reference = f"ticket:{row.ticket_id}"
            if row.kind == "coupon":
                reward = self.policy.reward(row.reward_key or "")
                if reward is None:
                    return Grant(GrantOutcome.UNKNOWN, _offer_view(row))
                try:
                    coupon = await self.rewards.issue(session, customer, reward, source="recovery")
                except OutOfStock:
                    return Grant(GrantOutcome.OUT_OF_STOCK, _offer_view(row))
                row.coupon_id = coupon.id
            else:
                await self.loyalty.credit(
                    session,
                    customer.id,
                    row.points or 0,
                    "recovery",
                    reference=reference,
                    actor_telegram_id=staff.telegram_id,
                )
            row.status = OfferStatus.GRANTED
            row.granted_by = staff.telegram_id
            row.granted_at = self.clock.now()
            record_audit(
                session,
                at=self.clock.now(),
                actor=staff.telegram_id,
                action="recovery.grant",
                target_type="customer",
                target_id=customer.id,
                after={"offer": row.id, "kind": row.kind, "points": row.points},
            )
            await session.flush()
            view = await self._offer(session, row)
            balance = await balance_of(session, customer.id)
            if self.outbox is not None and self.render is not None and customer.chat_id:
                reward = self.policy.reward(view.reward_key or "")
                text = self.render.render(
                    "recovery_granted",
                    customer.locale,
                    offer=view,
                    reward=reward,
                    balance=balance,
                )
                await self.outbox.enqueue(
                    [
                        Outgoing(
                            key=f"recovery:{row.id}",
                            chat_id=customer.chat_id,
                            text=text,
                            kind="recovery",
                            customer_id=customer.id,
                        )
                    ],
                    session=session,
                )
            return Grant(GrantOutcome.GRANTED, view, balance)

    # --- forum topics and the customer card --------------------------------------------

    async def topic(self, chat_id: int, customer_id: int) -> StaffTopic | None:
        async with self.db.session() as session:
            return await session.scalar(
                select(StaffTopic).where(
                    StaffTopic.chat_id == chat_id, StaffTopic.customer_id == customer_id
                )
            )

    async def save_topic(self, chat_id: int, customer_id: int, thread_id: int) -> StaffTopic:
        """Remember a customer's new topic. Should another instance have opened one for
        them a moment earlier, that one is returned and this one is to be dropped."""
        try:
            async with self.db.transaction() as session:
                topic = StaffTopic(
                    chat_id=chat_id,
                    customer_id=customer_id,
                    thread_id=thread_id,
                    created_at=self.clock.now(),
                )
                session.add(topic)
            return topic
        except IntegrityError:
            existing = await self.topic(chat_id, customer_id)
            if existing is None:
                raise
            return existing

    async def forget_topic(self, chat_id: int, customer_id: int) -> None:
        """The topic was deleted in Telegram: the next message opens a new one."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(StaffTopic).where(
                    StaffTopic.chat_id == chat_id, StaffTopic.customer_id == customer_id
                )
            )

    async def card_shown(self, topic_id: int, message_id: int, digest: str) -> None:
        async with self.db.transaction() as session:
            topic = await session.get(StaffTopic, topic_id)
            if topic is not None:
                topic.card_message_id = message_id
                topic.card_digest = digest

    async def customer_of_thread(self, chat_id: int, thread_id: int) -> int | None:
        async with self.db.session() as session:
            return await session.scalar(
                select(StaffTopic.customer_id).where(
                    StaffTopic.chat_id == chat_id, StaffTopic.thread_id == thread_id
                )
            )

    async def card(self, customer_id: int) -> CustomerCard | None:
        now = self.clock.now()
        async with self.db.session() as session:
            customer = await session.get(Customer, customer_id)
            if customer is None:
                return None
            spend = await spend_between(session, customer_id, now - TRAILING, now)
            snapshot = await session.get(SegmentSnapshot, customer_id)
            purchases = await session.scalars(
                select(Purchase)
                .where(Purchase.customer_id == customer_id)
                .order_by(Purchase.occurred_at.desc(), Purchase.id.desc())
                .limit(3)
            )
            open_tickets = await session.scalars(
                select(Ticket)
                .where(Ticket.customer_id == customer_id, Ticket.status.in_(OPEN))
                .order_by(Ticket.id)
            )
            ratings = await session.scalars(
                select(Ticket.csat)
                .where(Ticket.customer_id == customer_id, Ticket.csat.is_not(None))
                .order_by(Ticket.closed_at.desc(), Ticket.id.desc())
                .limit(5)
            )
            return CustomerCard(
                customer_id=customer.id,
                name=customer.name,
                username=customer.username,
                phone=customer.phone,
                erased=customer.is_erased,
                reachable=customer.reachable,
                marketing=customer.marketing_opt_in,
                locale=customer.locale,
                tier=self.policy.tier_for_spend(spend),
                balance=await balance_of(session, customer_id),
                segment=snapshot.segment if snapshot else None,
                churn_risk=snapshot.churn_probability if snapshot else None,
                purchases=tuple(
                    PurchaseLine(p.occurred_at, p.amount, p.reference) for p in purchases
                ),
                open_tickets=tuple([await self._view(session, t) for t in open_tickets]),
                ratings=tuple(r for r in ratings if r is not None),
            )

    # --- measures for reports and jobs -------------------------------------------------

    async def overdue(self) -> list[TicketView]:
        """Open tickets with no staff answer past the SLA, oldest first."""
        limit = self.clock.now() - timedelta(minutes=self.policy.service.sla_minutes)
        async with self.db.session() as session:
            tickets = await session.scalars(
                select(Ticket)
                .where(
                    Ticket.status.in_(OPEN),
                    Ticket.first_response_at.is_(None),
                    Ticket.created_at <= limit,
                )
                .order_by(Ticket.created_at)
            )
            return [await self._view(session, t) for t in tickets]

    async def response_times(self, start: datetime, end: datetime) -> ResponseTimes:
        sla = self.policy.service.sla_minutes
        now = self.clock.now()
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Ticket.created_at, Ticket.first_response_at).where(
                        Ticket.created_at >= start, Ticket.created_at < end
                    )
                )
            ).all()
        waits = [(answered - opened).total_seconds() / 60 for opened, answered in rows if answered]
        late = sum(w > sla for w in waits)
        unanswered_late = sum(
            1
            for opened, answered in rows
            if answered is None and now - opened > timedelta(minutes=sla)
        )
        return ResponseTimes(
            opened=len(rows),
            answered=len(waits),
            median_minutes=statistics.median(waits) if waits else None,
            p90_minutes=_percentile(waits, 0.9) if waits else None,
            breaches=late + unanswered_late,
            sla_minutes=sla,
        )

    async def csat(self, start: datetime, end: datetime) -> Csat:
        """Ticket ratings given for tickets closed in a period."""
        async with self.db.session() as session:
            scores = list(
                await session.scalars(
                    select(Ticket.csat).where(
                        Ticket.closed_at >= start, Ticket.closed_at < end, Ticket.csat.is_not(None)
                    )
                )
            )
        values = [s for s in scores if s is not None]
        return Csat(
            len(values),
            sum(values) / len(values) if values else None,
            {score: values.count(score) for score in range(1, 6)},
        )

    # --- helpers -------------------------------------------------------------------------

    async def _member(self, session: AsyncSession, staff: StaffRef) -> StaffMember:
        """The staff member's row; an owner named by ADMIN_IDS gets one on first action."""
        member = await session.scalar(
            select(StaffMember).where(StaffMember.telegram_id == staff.telegram_id)
        )
        if member is None:
            member = StaffMember(
                telegram_id=staff.telegram_id,
                name=staff.name[:128],
                role=staff.role.value,
                created_at=self.clock.now(),
            )
            session.add(member)
            await session.flush()
        return member

    async def _view(self, session: AsyncSession, ticket: Ticket) -> TicketView:
        first = await session.scalar(
            select(TicketMessage)
            .where(TicketMessage.ticket_id == ticket.id, TicketMessage.author == "customer")
            .order_by(TicketMessage.id)
            .limit(1)
        )
        assignee = (
            await session.scalar(
                select(StaffMember.name).where(StaffMember.id == ticket.assignee_id)
            )
            if ticket.assignee_id
            else None
        )
        return TicketView(
            id=ticket.id,
            customer_id=ticket.customer_id,
            kind=ticket.kind,
            status=ticket.status,
            created_at=ticket.created_at,
            first_response_at=ticket.first_response_at,
            closed_at=ticket.closed_at,
            csat=ticket.csat,
            text=first.text if first else None,
            attachments=tuple(
                Attachment(a["kind"], a["file_id"]) for a in (first.attachments or [])
            )
            if first
            else (),
            assignee=assignee,
            staff_chat_message_id=ticket.staff_chat_message_id,
        )

    async def _offer(self, session: AsyncSession, row: RecoveryOffer) -> OfferView:
        code = None
        if row.coupon_id is not None:
            code = await session.scalar(select(Coupon.code).where(Coupon.id == row.coupon_id))
        return _offer_view(row, code)


def _audit(
    session: AsyncSession,
    clock: Clock,
    staff: StaffRef,
    action: str,
    ticket: Ticket,
    before: dict[str, Any],
) -> None:
    """A staff change to a ticket, in the audit log with the change (权限管理)."""
    record_audit(
        session,
        at=clock.now(),
        actor=staff.telegram_id,
        action=action,
        target_type="ticket",
        target_id=ticket.id,
        before=before,
        after={"status": ticket.status, "assignee_id": ticket.assignee_id},
    )


def _offer_view(row: RecoveryOffer, coupon_code: str | None = None) -> OfferView:
    return OfferView(
        id=row.id,
        ticket_id=row.ticket_id,
        customer_id=row.customer_id,
        kind=row.kind,
        points=row.points,
        reward_key=row.reward_key,
        status=row.status,
        coupon_code=coupon_code,
    )


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * (len(ordered) - 1))))
    return ordered[index]
