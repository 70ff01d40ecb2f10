"""What the outreach jobs share: who may be written to, who was contacted lately, spend and
points per customer in one query, gifts granted in the message's own transaction, and
the "enqueue once, with whatever it grants" rule."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Customer,
    OutboxMessage,
    OutboxStatus,
    PointsEntry,
    Purchase,
    Ticket,
    TicketMessage,
)
from models.database import Database
from services.loyalty import Loyalty, balance_of
from services.outbox import Render
from services.policy import Gift, Policy, Reward
from services.rewards import OutOfStock, Rewards

log = logging.getLogger(__name__)
T = TypeVar("T")

# Rows per query when jobs walk through every customer.
BATCH = 1000
# An IN (...) list of ids stays well under every database's parameter limit.
_IDS_PER_QUERY = 500


class Templates(Render, Protocol):
    """The renderer, asked also which templates exist (a template per tier, say)."""

    def template_names(self, prefix: str) -> list[str]: ...


class Buttons(Protocol):
    """Inline buttons a job puts under a message, as the outbox stores them (JSON)."""

    def survey(self, response_id: int, locale: str) -> dict[str, Any]:
        """One button that opens the survey response."""
        ...

    def rating(self, ticket_id: int) -> dict[str, Any]:
        """The five rating buttons for a closed ticket."""
        ...


def may_write(*, marketing: bool) -> list[ColumnElement[bool]]:
    """Who a job may write to: not erased, not known to have blocked the bot, with a chat;
    for marketing (offers, greetings, follow-ups) also opted in."""
    conditions: list[ColumnElement[bool]] = [
        Customer.erased_at.is_(None),
        Customer.reachable.is_(True),
        Customer.chat_id.is_not(None),
    ]
    if marketing:
        conditions.append(Customer.marketing_opt_in.is_(True))
    return conditions


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), _IDS_PER_QUERY):
        yield unique[start : start + _IDS_PER_QUERY]


async def recently_contacted(
    session: AsyncSession, customer_ids: Sequence[int], since: datetime
) -> set[int]:
    """Those of `customer_ids` whom staff answered on a ticket, or any campaign (a marketing
    message: broadcast, follow-up, greeting, win-back) reached or is about to reach, since
    `since`."""
    contacted: set[int] = set()
    for chunk in _chunks(customer_ids):
        contacted.update(
            await session.scalars(
                select(Ticket.customer_id)
                .join(TicketMessage, TicketMessage.ticket_id == Ticket.id)
                .where(
                    Ticket.customer_id.in_(chunk),
                    TicketMessage.author == "staff",
                    TicketMessage.created_at >= since,
                )
                .distinct()
            )
        )
        contacted.update(
            c
            for c in await session.scalars(
                select(OutboxMessage.customer_id)
                .where(
                    OutboxMessage.customer_id.in_(chunk),
                    OutboxMessage.marketing.is_(True),
                    OutboxMessage.created_at >= since,
                    OutboxMessage.status.in_(
                        (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.SENT)
                    ),
                )
                .distinct()
            )
            if c is not None
        )
    return contacted


async def spend_of(
    session: AsyncSession, customer_ids: Sequence[int], start: datetime, end: datetime
) -> dict[int, Decimal]:
    """Net spend (refunds subtracted) per customer in [start, end); absent = nothing."""
    spend: dict[int, Decimal] = {}
    for chunk in _chunks(customer_ids):
        rows = await session.execute(
            select(Purchase.customer_id, func.sum(Purchase.amount))
            .where(
                Purchase.customer_id.in_(chunk),
                Purchase.occurred_at >= start,
                Purchase.occurred_at < end,
            )
            .group_by(Purchase.customer_id)
        )
        spend.update({cid: Decimal(total or 0) for cid, total in rows.all() if cid is not None})
    return spend


async def balances_of(session: AsyncSession, customer_ids: Sequence[int]) -> dict[int, int]:
    found: dict[int, int] = {}
    for chunk in _chunks(customer_ids):
        rows = await session.execute(
            select(PointsEntry.customer_id, func.sum(PointsEntry.delta))
            .where(PointsEntry.customer_id.in_(chunk))
            .group_by(PointsEntry.customer_id)
        )
        found.update({cid: int(total or 0) for cid, total in rows.all()})
    return found


@dataclass(frozen=True)
class Granted:
    """What a customer was given with a message, for its template."""

    kind: str  # "none", "points" or "coupon"
    points: int = 0
    balance: int | None = None
    coupon_code: str | None = None
    reward: Reward | None = None


NOTHING = Granted("none")


class Gifts:
    def __init__(self, policy: Policy, loyalty: Loyalty, rewards: Rewards) -> None:
        self.policy = policy
        self.loyalty = loyalty
        self.rewards = rewards

    async def grant(
        self,
        session: AsyncSession,
        customer: Customer,
        gift: Gift | None,
        *,
        reason: str,
        reference: str,
    ) -> Granted:
        """Give `gift` in the caller's transaction. A coupon's reward that has run out of
        stock gives nothing (the message then says nothing of a gift)."""
        if gift is None or gift.kind == "none":
            return NOTHING
        if gift.kind == "points":
            await self.loyalty.credit(
                session, customer.id, gift.points, reason, reference=reference
            )
            return Granted(
                "points", points=gift.points, balance=await balance_of(session, customer.id)
            )
        reward = self.policy.reward(gift.reward or "")
        if reward is None:
            return NOTHING
        try:
            coupon = await self.rewards.issue(
                session, customer, reward, source=reason[:16], request_key=reference[:64]
            )
        except OutOfStock:
            log.warning(
                "no %s left for the %s gift to customer %s", reward.key, reason, customer.id
            )
            return NOTHING
        return Granted("coupon", coupon_code=coupon.code, reward=reward)


class _AlreadyDone(Exception):
    """A message was enqueued before: undo what this attempt granted."""


Work = Callable[[AsyncSession, T], Awaitable[int]]
# Items granted and enqueued per transaction.
GIFT_BATCH = 200


async def enqueue_once(db: Database, work: Work[T], item: T) -> bool:
    """Run `work` (grant, render, enqueue) for `item` in one transaction and keep it only
    when its message was new: a rerun, or another instance a moment earlier, leaves
    nothing behind. `work` returns how many messages the outbox took."""
    try:
        async with db.transaction() as session:
            if not await work(session, item):
                raise _AlreadyDone
    except _AlreadyDone:
        return False
    except IntegrityError as error:
        # A coupon for the same reference committed by a concurrent run: theirs stands.
        log.info("already granted by another run: %s", error.orig)
        return False
    return True


async def enqueue_each(db: Database, work: Work[T], items: Sequence[T]) -> int:
    """`enqueue_once` for every item, GIFT_BATCH of them per transaction; how many were
    new. A batch in which another run got first to an item is rolled back whole and done
    again item by item."""
    enqueued = 0
    for start in range(0, len(items), GIFT_BATCH):
        batch = items[start : start + GIFT_BATCH]
        try:
            async with db.transaction() as session:
                for item in batch:
                    if not await work(session, item):
                        raise _AlreadyDone
            enqueued += len(batch)
        except (_AlreadyDone, IntegrityError):
            for item in batch:
                enqueued += await enqueue_once(db, work, item)
    return enqueued
