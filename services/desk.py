"""What staff change by hand: a purchase at the counter and a points adjustment, audited."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.exc import IntegrityError

from models import PointsEntry
from models.database import Database
from services.audit import record_audit
from services.clock import Clock
from services.loyalty import Loyalty, PurchaseResult, Sale, balance_of, lock_customer

# One adjustment larger than this is surely a typo (an amount pasted as points).
MAX_ADJUSTMENT = 1_000_000


class DeskError(ValueError):
    """A staff entry that cannot be made; `reason` names the rule, `balance` the points held."""

    def __init__(self, reason: str, balance: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.balance = balance


@dataclass(frozen=True)
class StaffPurchase:
    reference: str
    result: PurchaseResult


@dataclass(frozen=True)
class Adjustment:
    delta: int
    before: int
    balance: int


class Desk:
    def __init__(self, db: Database, clock: Clock, loyalty: Loyalty) -> None:
        self.db = db
        self.clock = clock
        self.loyalty = loyalty

    async def purchase(
        self, actor: int, customer_id: int, amount: Decimal, reference: str | None = None
    ) -> StaffPurchase:
        """A sale entered by staff: the same points rule as the API; a reference that is
        already recorded changes nothing. Without a reference one is made up."""
        now = self.clock.now()
        reference = (reference or "").strip() or f"staff-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
        sale = Sale(
            reference=reference,
            amount=amount,
            occurred_at=now,
            channel="staff",
            customer_id=customer_id,
        )
        try:
            async with self.db.transaction() as session:
                result = await self.loyalty.record_in(session, sale)
                if result.created:
                    record_audit(
                        session,
                        at=now,
                        actor=actor,
                        action="purchase.record",
                        target_type="customer",
                        target_id=customer_id,
                        after={
                            "reference": reference,
                            "amount": amount,
                            "points": result.points_awarded,
                            "balance": result.balance,
                        },
                    )
        except IntegrityError:
            # The same reference arrived from elsewhere a moment ago: that one stands.
            result = await self.loyalty.record_purchase(sale)
        return StaffPurchase(reference, result)

    async def adjust_points(
        self, actor: int, customer_id: int, delta: int, reason: str
    ) -> Adjustment:
        """Add or take points with a reason; the balance never goes below zero."""
        reason = " ".join(reason.split())
        if delta == 0 or abs(delta) > MAX_ADJUSTMENT:
            raise DeskError("delta")
        if not reason:
            raise DeskError("reason")
        now = self.clock.now()
        async with self.db.transaction() as session:
            customer = await lock_customer(session, customer_id)
            if customer is None or customer.is_erased:
                raise DeskError("customer")
            await self.loyalty.settle_expiry(session, customer_id)
            before = await balance_of(session, customer_id)
            if before + delta < 0:
                raise DeskError("below_zero", before)
            session.add(
                PointsEntry(
                    customer_id=customer_id,
                    delta=delta,
                    reason="adjustment",
                    reference=reason[:128],
                    actor_telegram_id=actor,
                    expires_at=self.loyalty.expiry_for(now) if delta > 0 else None,
                    created_at=now,
                )
            )
            await session.flush()
            balance = before + delta
            record_audit(
                session,
                at=now,
                actor=actor,
                action="points.adjust",
                target_type="customer",
                target_id=customer_id,
                before={"balance": before},
                after={"balance": balance, "delta": delta, "reason": reason[:128]},
            )
        return Adjustment(delta, before, balance)
