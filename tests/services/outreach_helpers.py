"""A shop for the scheduled-care tests: the jobs' services on the test database, with the
real templates, and builders for customers, purchases, tickets and what the outbox holds."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from bot.care_buttons import CareButtons
from bot.rendering import Renderer
from jobs.context import JobContext, build_context
from models import (
    Customer,
    OutboxMessage,
    OutboxStatus,
    PointsEntry,
    Purchase,
    Ticket,
    TicketMessage,
    TicketStatus,
)
from models.database import Database
from services.clock import FrozenClock
from services.loyalty import Loyalty, Sale
from services.outbox import Outbox, Outgoing
from services.policy import Policy

ZONE = ZoneInfo("Asia/Shanghai")
STAFF_CHAT = -1001234567890
OWNER = 9001
_telegram_ids = itertools.count(60_000)
_references = itertools.count(1)


def local(text: str) -> datetime:
    """A business-local time written as "2026-05-01 09:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


@dataclass
class Shop:
    db: Database
    policy: Policy
    clock: FrozenClock
    jobs: JobContext
    outbox: Outbox
    loyalty: Loyalty

    async def customer(
        self,
        name: str = "Ann",
        *,
        locale: str = "en",
        birthday: date | None = None,
        marketing: bool = True,
        reachable: bool = True,
        erased: bool = False,
        chat: bool = True,
    ) -> Customer:
        telegram_id = next(_telegram_ids)
        async with self.db.transaction() as session:
            customer = Customer(
                telegram_id=telegram_id if chat else None,
                chat_id=telegram_id if chat else None,
                name=name,
                birthday=birthday,
                locale=locale,
                marketing_opt_in=marketing,
                reachable=reachable,
                created_at=self.clock.now(),
                erased_at=self.clock.now() if erased else None,
            )
            session.add(customer)
        return customer

    async def buys(self, customer: Customer, amount: str, at: datetime | None = None) -> int:
        """A purchase (now, or at `at`); its id."""
        result = await self.loyalty.record_purchase(
            Sale(
                reference=f"S-{next(_references)}",
                amount=Decimal(amount),
                occurred_at=at or self.clock.now(),
                channel="test",
                customer_id=customer.id,
            )
        )
        return result.purchase_id

    async def refunds(self, customer: Customer, purchase_id: int, amount: str) -> None:
        async with self.db.session() as session:
            reference = await session.scalar(
                select(Purchase.reference).where(Purchase.id == purchase_id)
            )
        await self.loyalty.record_purchase(
            Sale(
                reference=f"R-{next(_references)}",
                amount=-Decimal(amount),
                occurred_at=self.clock.now(),
                channel="test",
                customer_id=customer.id,
                refund_of=reference,
            )
        )

    async def ticket(
        self,
        customer: Customer,
        *,
        kind: str = "question",
        opened: datetime | None = None,
        answered: datetime | None = None,
        closed: datetime | None = None,
        csat: int | None = None,
    ) -> int:
        """A ticket as it stands after what happened to it; its id."""
        opened = opened or self.clock.now()
        async with self.db.transaction() as session:
            ticket = Ticket(
                customer_id=customer.id,
                kind=kind,
                status=TicketStatus.CLOSED if closed else TicketStatus.OPEN,
                created_at=opened,
                first_response_at=answered,
                closed_at=closed,
                csat=csat,
                escalation_level=0,
            )
            session.add(ticket)
            await session.flush()
            session.add(
                TicketMessage(
                    ticket_id=ticket.id, author="customer", text="Help, please", created_at=opened
                )
            )
            if answered is not None:
                session.add(
                    TicketMessage(
                        ticket_id=ticket.id, author="staff", text="On it", created_at=answered
                    )
                )
            return ticket.id

    async def campaign_reached(self, customer: Customer, at: datetime) -> None:
        """A broadcast sent to the customer at `at`."""
        moment = self.clock.now()
        self.clock.set(at)
        await self.outbox.enqueue(
            [
                Outgoing(
                    key=f"broadcast:1:{customer.id}",
                    chat_id=int(customer.chat_id or 0),
                    text="News",
                    kind="broadcast",
                    customer_id=customer.id,
                    marketing=True,
                )
            ]
        )
        self.clock.set(moment)

    async def messages(self, kind: str | None = None) -> list[OutboxMessage]:
        async with self.db.session() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if kind is not None:
                query = query.where(OutboxMessage.kind == kind)
            return list(await session.scalars(query))

    async def keys(self, kind: str) -> set[str]:
        return {m.dedupe_key for m in await self.messages(kind)}

    async def mark_sent(self, kind: str, at: datetime) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.kind == kind)
                .values(status=OutboxStatus.SENT, sent_at=at)
            )

    async def ledger(self, customer: Customer) -> list[tuple[int, str, str | None]]:
        async with self.db.session() as session:
            rows = await session.execute(
                select(PointsEntry.delta, PointsEntry.reason, PointsEntry.reference)
                .where(PointsEntry.customer_id == customer.id)
                .order_by(PointsEntry.id)
            )
            return [(delta, reason, reference) for delta, reason, reference in rows.all()]


def shop(
    db: Database, policy: Policy, clock: FrozenClock, *, staff_chat: int | None = STAFF_CHAT
) -> Shop:
    renderer = Renderer(default_locale="zh", timezone=ZONE, currency=policy.currency)
    outbox = Outbox.for_policy(db, clock, policy, ZONE)
    jobs = build_context(
        db=db,
        policy=policy,
        clock=clock,
        zone=ZONE,
        renderer=renderer,
        buttons=CareButtons(renderer),
        outbox=outbox,
        staff_chat_id=staff_chat,
        owner_ids=frozenset({OWNER}),
        staff_locale="en",
    )
    loyalty = Loyalty(db, policy, clock, outbox, renderer)
    return Shop(db, policy, clock, jobs, outbox, loyalty)
