"""Points and tiers (积分 / 会员): what a purchase earns, what a customer holds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import PointsEntry, Purchase
from models.database import Database
from services.clock import Clock
from services.policy import Policy, Tier

TRAILING = timedelta(days=365)


@dataclass(frozen=True)
class PointsSummary:
    balance: int
    spend_12m: Decimal
    tier: Tier
    next_tier: Tier | None
    to_next: Decimal


def points_for(amount: Decimal, policy: Policy, tier: Tier) -> int:
    """floor(amount x points per unit x tier multiplier); refunds are handled by the caller."""
    raw = amount * policy.points.per_unit * tier.multiplier
    return int(raw.to_integral_value(rounding=ROUND_FLOOR))


async def balance_of(session: AsyncSession, customer_id: int) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.customer_id == customer_id
        )
    )
    return int(total or 0)


async def spend_between(
    session: AsyncSession, customer_id: int, start: datetime, end: datetime
) -> Decimal:
    total = await session.scalar(
        select(func.sum(Purchase.amount)).where(
            Purchase.customer_id == customer_id,
            Purchase.occurred_at >= start,
            Purchase.occurred_at < end,
        )
    )
    return Decimal(total) if total is not None else Decimal("0.00")


class Loyalty:
    def __init__(self, db: Database, policy: Policy, clock: Clock) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock

    async def summary(self, customer_id: int) -> PointsSummary:
        now = self.clock.now()
        async with self.db.session() as session:
            balance = await balance_of(session, customer_id)
            spend = await spend_between(session, customer_id, now - TRAILING, now)
        tier = self.policy.tier_for_spend(spend)
        higher = [t for t in self.policy.tiers if t.min_spend > tier.min_spend]
        next_tier = higher[-1] if higher else None
        to_next = next_tier.min_spend - spend if next_tier else Decimal(0)
        return PointsSummary(balance, spend, tier, next_tier, to_next)

    async def credit_purchases(
        self, session: AsyncSession, customer_id: int, purchases: Sequence[Purchase]
    ) -> int:
        """Ledger entries for purchases now owned by the customer, oldest first; the net
        points. A sale earns at the tier its customer held just before it; a refund takes
        back what its sale earned, never more than the balance."""
        net = 0
        for purchase in sorted(purchases, key=lambda p: (p.occurred_at, p.id)):
            if purchase.amount >= 0:
                spend = await spend_between(
                    session, customer_id, purchase.occurred_at - TRAILING, purchase.occurred_at
                )
                delta = points_for(purchase.amount, self.policy, self.policy.tier_for_spend(spend))
                reason = "purchase"
            else:
                earned = 0
                if purchase.refund_of_id is not None:
                    earned = int(
                        await session.scalar(
                            select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
                                PointsEntry.purchase_id == purchase.refund_of_id,
                                PointsEntry.reason == "purchase",
                            )
                        )
                        or 0
                    )
                balance = await balance_of(session, customer_id)
                delta = -min(earned, balance)
                reason = "refund"
            if delta:
                session.add(
                    PointsEntry(
                        customer_id=customer_id,
                        delta=delta,
                        reason=reason,
                        reference=purchase.reference,
                        purchase_id=purchase.id,
                        created_at=self.clock.now(),
                    )
                )
                await session.flush()
                net += delta
        return net
