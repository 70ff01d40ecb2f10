"""Win-back (客户挽回): an offer to customers at risk of leaving, at most once per policy
period and at most N times in all, with an incentive per RFM segment; and the result —
a purchase within the attribution window of an offer counts as won back.

At risk means, in the latest classification: a churn risk at or above the policy's
threshold, or an RFM segment the policy names (at risk, can't lose them, ...). A customer
who bought since that classification is not written to, and one silent for longer than
`max_silence_days` is left alone. Attempt n of a customer is the outbox row keyed
`winback:<customer>:<n>`, so attempts are counted from the outbox itself.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Customer, OutboxMessage, OutboxStatus, Purchase, SegmentSnapshot
from models.database import Database
from services.clock import Clock
from services.outbox import Outbox, Outgoing, Render
from services.outreach import Gifts, enqueue_each, may_write
from services.policy import Policy

KIND = "winback"


def winback_key(customer_id: int, attempt: int) -> str:
    return f"winback:{customer_id}:{attempt}"


@dataclass(frozen=True)
class Candidate:
    customer: Customer
    segment: str
    churn_probability: float | None
    attempt: int

    @property
    def key(self) -> str:
        return winback_key(self.customer.id, self.attempt)


@dataclass(frozen=True)
class WinbackResults:
    """Offers enqueued in [start, end) and what came of them."""

    start: datetime
    end: datetime
    window_days: int
    offers: int
    delivered: int
    won_back: int
    revenue: Decimal
    # Per attempt number: (delivered, won back).
    by_attempt: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return self.won_back / self.delivered if self.delivered else None


@dataclass(eq=False)
class Winback:
    db: Database
    policy: Policy
    clock: Clock
    outbox: Outbox
    render: Render
    gifts: Gifts

    async def due(self) -> list[Candidate]:
        """Customers at risk who may get an offer now, with the number it would be."""
        rules = self.policy.winback
        if rules.max_attempts == 0:
            return []
        now = self.clock.now()
        history = (
            select(
                OutboxMessage.customer_id.label("customer_id"),
                func.count(OutboxMessage.id).label("attempts"),
                func.max(OutboxMessage.created_at).label("last"),
            )
            .where(OutboxMessage.kind == KIND)
            .group_by(OutboxMessage.customer_id)
            .subquery()
        )
        bought = (
            select(
                Purchase.customer_id.label("customer_id"),
                func.max(Purchase.occurred_at).label("last"),
            )
            .where(Purchase.customer_id.is_not(None), Purchase.amount > 0)
            .group_by(Purchase.customer_id)
            .subquery()
        )
        attempts = func.coalesce(history.c.attempts, 0)
        query = (
            select(Customer, SegmentSnapshot.segment, SegmentSnapshot.churn_probability, attempts)
            .join(SegmentSnapshot, SegmentSnapshot.customer_id == Customer.id)
            .join(bought, bought.c.customer_id == Customer.id)
            .outerjoin(history, history.c.customer_id == Customer.id)
            .where(
                *may_write(marketing=True),
                or_(
                    SegmentSnapshot.segment.in_(rules.segments),
                    SegmentSnapshot.churn_probability >= rules.risk_threshold,
                ),
                bought.c.last >= now - timedelta(days=rules.max_silence_days),
                bought.c.last <= SegmentSnapshot.computed_at,
                attempts < rules.max_attempts,
                or_(
                    history.c.last.is_(None),
                    history.c.last <= now - timedelta(days=rules.period_days),
                ),
            )
            .order_by(Customer.id)
        )
        # One pass: the aggregates behind it are computed once, not once per page.
        async with self.db.session() as session:
            rows = (await session.execute(query)).all()
        return [
            Candidate(customer, segment, churn, int(made) + 1)
            for customer, segment, churn, made in rows
        ]

    async def send(self) -> int:
        """An offer, with its incentive, to each customer due one; how many."""
        return await enqueue_each(self.db, self._offer, await self.due())

    async def _offer(self, session: AsyncSession, candidate: Candidate) -> int:
        rules = self.policy.winback
        customer, locale = candidate.customer, candidate.customer.locale
        listed = candidate.segment in rules.segments
        granted = await self.gifts.grant(
            session,
            customer,
            rules.incentives.get(candidate.segment if listed else "default"),
            reason=KIND,
            reference=candidate.key,
        )
        text = self.render.render(
            "winback",
            locale,
            name=customer.name or "",
            shop=self.policy.shop.name(locale),
            segment=candidate.segment,
            attempt=candidate.attempt,
            gift=granted,
        )
        return await self.outbox.enqueue(
            [
                Outgoing(
                    key=candidate.key,
                    chat_id=int(customer.chat_id or 0),
                    text=text,
                    kind=KIND,
                    customer_id=customer.id,
                    marketing=True,
                    quiet=True,
                )
            ],
            session=session,
        )

    async def results(self, start: datetime, end: datetime) -> WinbackResults:
        """Offers enqueued in [start, end): how many were delivered, and how many of those
        customers bought within the attribution window after theirs arrived."""
        window = timedelta(days=self.policy.winback.attribution_days)
        async with self.db.session() as session:
            offers = (
                await session.execute(
                    select(
                        OutboxMessage.customer_id,
                        OutboxMessage.dedupe_key,
                        OutboxMessage.status,
                        OutboxMessage.sent_at,
                    ).where(
                        OutboxMessage.kind == KIND,
                        OutboxMessage.created_at >= start,
                        OutboxMessage.created_at < end,
                    )
                )
            ).all()
            delivered = [
                (cid, int(key.rsplit(":", 1)[1]), sent_at)
                for cid, key, status, sent_at in offers
                if status == OutboxStatus.SENT and sent_at is not None and cid is not None
            ]
            purchases = await _purchases_since(
                session,
                [cid for cid, _, _ in delivered],
                min((at for _, _, at in delivered), default=end),
            )
        won, revenue = 0, Decimal(0)
        by_attempt: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for cid, attempt, sent_at in delivered:
            bought = [a for at, a in purchases.get(cid, []) if sent_at <= at < sent_at + window]
            by_attempt[attempt][0] += 1
            if bought:
                won += 1
                revenue += sum(bought, Decimal(0))
                by_attempt[attempt][1] += 1
        return WinbackResults(
            start=start,
            end=end,
            window_days=self.policy.winback.attribution_days,
            offers=len(offers),
            delivered=len(delivered),
            won_back=won,
            revenue=revenue,
            by_attempt={n: (d, w) for n, (d, w) in sorted(by_attempt.items())},
        )


async def _purchases_since(
    session: AsyncSession, customer_ids: list[int], since: datetime
) -> dict[int, list[tuple[datetime, Decimal]]]:
    found: dict[int, list[tuple[datetime, Decimal]]] = defaultdict(list)
    unique = list(dict.fromkeys(customer_ids))
    for start in range(0, len(unique), 500):
        rows = await session.execute(
            select(Purchase.customer_id, Purchase.occurred_at, Purchase.amount).where(
                Purchase.customer_id.in_(unique[start : start + 500]),
                Purchase.amount > 0,
                Purchase.occurred_at >= since,
            )
        )
        for cid, at, amount in rows.all():
            if cid is not None:
                found[cid].append((at, amount))
    return found
