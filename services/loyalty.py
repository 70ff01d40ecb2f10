"""Points and tiers (积分 / 会员): what a purchase earns, what a customer holds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import Customer, PointsEntry, Purchase
from models.database import Database
from services.clock import Clock, points_expiry
from services.import_rows import REASONS
from services.outbox import Outbox, Outgoing, Render
from services.phones import InvalidPhone, normalize_phone
from services.policy import Policy, Tier

log = logging.getLogger(__name__)

TRAILING = timedelta(days=365)


@dataclass(frozen=True)
class LedgerLine:
    """One line of a customer's points history, as /points shows it."""

    at: datetime
    delta: int
    reason: str
    reference: str | None


@dataclass(frozen=True)
class PointsSummary:
    balance: int
    spend_12m: Decimal
    tier: Tier
    next_tier: Tier | None
    to_next: Decimal
    # Points that will expire within the policy's warning window, and the first such day.
    expiring_soon: int = 0
    next_expiry: datetime | None = None
    recent: tuple[LedgerLine, ...] = ()


async def lock_customer(session: AsyncSession, customer_id: int) -> Customer | None:
    """Hold the customer's row until the transaction ends, so that two spends of the same
    points run one after the other. PostgreSQL locks the row (SELECT ... FOR UPDATE);
    SQLite has one writer at a time, taken by this first write: reads that follow in the
    transaction then see every committed spend."""
    if session.get_bind().dialect.name == "postgresql":
        return await session.get(Customer, customer_id, with_for_update=True)
    await session.execute(update(Customer).where(Customer.id == customer_id).values(id=Customer.id))
    return await session.get(Customer, customer_id)


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


# Run on every points lookup and sale: built once, as building a statement costs more
# than running it.
_SPEND_BETWEEN = select(func.sum(Purchase.amount)).where(
    Purchase.customer_id == bindparam("customer_id"),
    Purchase.occurred_at >= bindparam("start"),
    Purchase.occurred_at < bindparam("end"),
)
_LEDGER = select(PointsEntry).where(PointsEntry.customer_id == bindparam("customer_id"))


async def spend_between(
    session: AsyncSession, customer_id: int, start: datetime, end: datetime
) -> Decimal:
    total = await session.scalar(
        _SPEND_BETWEEN, {"customer_id": customer_id, "start": start, "end": end}
    )
    return Decimal(total) if total is not None else Decimal("0.00")


class SaleError(ValueError):
    """A sale that cannot be recorded as given: `field` names what to fix, `code` and
    `params` say why (a key of REASONS: a template says it in the staff member's language,
    staff_import_reasons), `reason` in English for the HTTP API and the command line."""

    def __init__(self, field: str, code: str, **params: object) -> None:
        self.field = field
        self.code = code
        self.params = params
        self.reason = REASONS[code].format(**params)
        super().__init__(f"{field}: {self.reason}")


@dataclass(frozen=True)
class RefundTarget:
    """The sale a refund names, as the refund's checks need it: its amount, its customer,
    and what earlier refunds of it took back (zero or negative)."""

    amount: Decimal
    customer_id: int | None
    refunded: Decimal


def check_refund(
    refund_of: str, amount: Decimal, target: RefundTarget | None, buyer: int | None
) -> RefundTarget:
    """The sale a refund of `amount` may take back from, or the SaleError saying why not.
    `target` is None when no purchase has the reference; `buyer` is the customer the
    refund itself names, if it names one."""
    if target is None or target.amount < 0:
        raise SaleError("refund_of", "refund_unknown", reference=refund_of)
    if buyer is not None and target.customer_id not in (None, buyer):
        raise SaleError("refund_of", "refund_other_customer")
    if target.amount + target.refunded + amount < 0:
        raise SaleError("amount", "refund_exceeds")
    return target


@dataclass(frozen=True)
class Sale:
    """A sale (or, with a negative amount and `refund_of`, a refund) from any channel."""

    reference: str
    amount: Decimal
    occurred_at: datetime
    channel: str
    currency: str | None = None
    phone: str | None = None
    customer_id: int | None = None
    telegram_id: int | None = None
    refund_of: str | None = None
    store: str | None = None


@dataclass(frozen=True)
class PurchaseResult:
    purchase_id: int
    customer_id: int | None
    points_awarded: int
    balance: int | None
    created: bool
    # Points a refund should have taken back but could not: the balance never goes negative.
    shortfall: int = 0


class Loyalty:
    def __init__(
        self,
        db: Database,
        policy: Policy,
        clock: Clock,
        outbox: Outbox | None = None,
        render: Render | None = None,
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.outbox = outbox
        self.render = render

    async def record_purchase(self, sale: Sale) -> PurchaseResult:
        """The sale, its points and a tier-up note in one transaction. A reference already
        recorded returns what was recorded and changes nothing."""
        known = await self._recorded(sale.reference)
        if known is not None:
            return known
        try:
            async with self.db.transaction() as session:
                return await self._record(session, sale)
        except IntegrityError:
            # Another request recorded the same reference a moment ago.
            known = await self._recorded(sale.reference)
            if known is None:
                raise
            return known

    async def record_in(self, session: AsyncSession, sale: Sale) -> PurchaseResult:
        """`record_purchase` inside the caller's transaction: for a batch recorded whole
        or not at all, or a staff entry committed with its audit record."""
        known = await self._recorded_in(session, sale.reference)
        if known is not None:
            return known
        return await self._record(session, sale)

    async def _recorded(self, reference: str) -> PurchaseResult | None:
        async with self.db.session() as session:
            return await self._recorded_in(session, reference)

    async def _recorded_in(self, session: AsyncSession, reference: str) -> PurchaseResult | None:
        purchase = await session.scalar(select(Purchase).where(Purchase.reference == reference))
        if purchase is None:
            return None
        points = await session.scalar(
            select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
                PointsEntry.purchase_id == purchase.id
            )
        )
        balance = (
            await balance_of(session, purchase.customer_id)
            if purchase.customer_id is not None
            else None
        )
        return PurchaseResult(
            purchase.id, purchase.customer_id, int(points or 0), balance, created=False
        )

    async def _record(self, session: AsyncSession, sale: Sale) -> PurchaseResult:
        if not sale.reference.strip():
            raise SaleError("reference", "required")
        if sale.amount == 0:
            raise SaleError("amount", "nonzero")
        currency = (sale.currency or self.policy.currency).upper()
        if currency != self.policy.currency:
            raise SaleError("currency", "currency", currency=self.policy.currency)
        customer, phone = await self._buyer(session, sale)
        original: Purchase | None = None
        if sale.amount < 0:
            original = await self._refunded(session, sale, customer)
            customer = (
                await session.get(Customer, original.customer_id) if original.customer_id else None
            )
            phone = original.phone
        before = await self._tier_now(session, customer.id) if customer else None
        purchase = Purchase(
            customer_id=customer.id if customer else None,
            phone=phone,
            reference=sale.reference.strip()[:128],
            amount=sale.amount,
            currency=currency,
            occurred_at=sale.occurred_at,
            store=sale.store,
            channel=sale.channel,
            refund_of_id=original.id if original else None,
            created_at=self.clock.now(),
        )
        session.add(purchase)
        await session.flush()
        if customer is None:
            return PurchaseResult(purchase.id, None, 0, None, created=True)
        awarded = await self.credit_purchases(session, customer.id, [purchase])
        shortfall = 0
        if original is not None:
            earned = await self._earned(session, original.id)
            owed = refund_share(sale.amount, original.amount, earned)
            shortfall = owed + awarded
        balance = await balance_of(session, customer.id)
        await self._note_tier_change(session, customer, before)
        return PurchaseResult(purchase.id, customer.id, awarded, balance, True, shortfall)

    async def _buyer(self, session: AsyncSession, sale: Sale) -> tuple[Customer | None, str | None]:
        given = [k for k in ("phone", "customer_id", "telegram_id") if getattr(sale, k) is not None]
        if len(given) > 1:
            raise SaleError(given[1], "one_buyer")
        if sale.customer_id is not None:
            customer = await session.get(Customer, sale.customer_id)
            if customer is None:
                raise SaleError("customer_id", "no_customer", id=sale.customer_id)
            return customer, customer.phone
        if sale.telegram_id is not None:
            customer = await session.scalar(
                select(Customer).where(Customer.telegram_id == sale.telegram_id)
            )
            if customer is None:
                raise SaleError("telegram_id", "no_telegram_customer")
            return customer, customer.phone
        if sale.phone is not None:
            try:
                phone = normalize_phone(sale.phone, self.policy.phone_region)
            except InvalidPhone:
                raise SaleError("phone", "phone") from None
            customer = await session.scalar(select(Customer).where(Customer.phone == phone))
            return customer, phone
        if sale.amount < 0:
            return None, None
        raise SaleError("customer", "no_buyer")

    async def _refunded(
        self, session: AsyncSession, sale: Sale, customer: Customer | None
    ) -> Purchase:
        if not sale.refund_of:
            raise SaleError("refund_of", "refund_needs_sale")
        original = await session.scalar(
            select(Purchase).where(Purchase.reference == sale.refund_of)
        )
        target = None
        if original is not None:
            refunded = await session.scalar(
                select(func.coalesce(func.sum(Purchase.amount), 0)).where(
                    Purchase.refund_of_id == original.id
                )
            )
            target = RefundTarget(original.amount, original.customer_id, Decimal(refunded or 0))
        check_refund(sale.refund_of, sale.amount, target, customer.id if customer else None)
        assert original is not None
        return original

    async def _earned(self, session: AsyncSession, purchase_id: int) -> int:
        earned = await session.scalar(
            select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
                PointsEntry.purchase_id == purchase_id, PointsEntry.reason == "purchase"
            )
        )
        return int(earned or 0)

    async def _tier_now(self, session: AsyncSession, customer_id: int) -> Tier:
        now = self.clock.now()
        return self.policy.tier_for_spend(
            await spend_between(session, customer_id, now - TRAILING, now + timedelta(seconds=1))
        )

    async def _note_tier_change(
        self, session: AsyncSession, customer: Customer, before: Tier | None
    ) -> None:
        after = await self._tier_now(session, customer.id)
        if before is None or after.min_spend <= before.min_spend:
            return
        if self.outbox is None or self.render is None or customer.chat_id is None:
            return
        year = self.clock.now().year
        text = self.render.render("tier_up", customer.locale, tier=after, customer=customer)
        await self.outbox.enqueue(
            [
                Outgoing(
                    key=f"tier_up:{customer.id}:{after.key}:{year}",
                    chat_id=customer.chat_id,
                    text=text,
                    kind="tier_up",
                    customer_id=customer.id,
                )
            ],
            session=session,
        )

    async def summary(self, customer_id: int, *, recent: int = 10) -> PointsSummary:
        """Balance, tier and what the next tier needs, points about to expire, and the
        latest `recent` ledger lines. Expired points are written off first, so the balance
        shown is the balance that can be spent."""
        now = self.clock.now()
        entries, spend = await self._ledger_and_spend(customer_id, now)
        if self.policy.points.expiry_months and any(
            entry.expires_at is not None and entry.expires_at <= now and left > 0
            for entry, left in _unspent(entries)
        ):
            async with self.db.transaction() as session:
                await lock_customer(session, customer_id)
                await self.settle_expiry(session, customer_id)
            entries, spend = await self._ledger_and_spend(customer_id, now)
        balance = sum(entry.delta for entry in entries)
        horizon = now + timedelta(days=self.policy.points.expiry_warning_days)
        soon = [
            (entry.expires_at, left)
            for entry, left in _unspent(entries)
            if left > 0 and entry.expires_at is not None and now < entry.expires_at <= horizon
        ]
        newest = sorted(entries, key=lambda e: (e.created_at, e.id), reverse=True)[:recent]
        history = tuple(LedgerLine(e.created_at, e.delta, e.reason, e.reference) for e in newest)
        tier = self.policy.tier_for_spend(spend)
        higher = [t for t in self.policy.tiers if t.min_spend > tier.min_spend]
        next_tier = higher[-1] if higher else None
        to_next = next_tier.min_spend - spend if next_tier else Decimal(0)
        return PointsSummary(
            balance,
            spend,
            tier,
            next_tier,
            to_next,
            expiring_soon=sum(left for _, left in soon),
            next_expiry=min((at for at, _ in soon), default=None),
            recent=history,
        )

    async def _ledger_and_spend(
        self, customer_id: int, now: datetime
    ) -> tuple[list[PointsEntry], Decimal]:
        """Every ledger entry of the customer, and their spend over the trailing year."""
        async with self.db.session() as session:
            entries = list(await session.scalars(_LEDGER, {"customer_id": customer_id}))
            # A sale recorded this very second counts, as it does for the tier-up note.
            spend = await spend_between(
                session, customer_id, now - TRAILING, now + timedelta(seconds=1)
            )
        return entries, spend

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
                owed = 0
                if purchase.refund_of_id is not None:
                    original = await session.get(Purchase, purchase.refund_of_id)
                    earned = await self._earned(session, purchase.refund_of_id)
                    owed = refund_share(
                        purchase.amount, original.amount if original else None, earned
                    )
                balance = await balance_of(session, customer_id)
                delta = -min(owed, balance)
                reason = "refund"
            if delta:
                session.add(
                    PointsEntry(
                        customer_id=customer_id,
                        delta=delta,
                        reason=reason,
                        reference=purchase.reference,
                        purchase_id=purchase.id,
                        expires_at=self.expiry_for(purchase.occurred_at) if delta > 0 else None,
                        created_at=self.clock.now(),
                    )
                )
                await session.flush()
                net += delta
        return net

    def expiry_for(self, earned_at: datetime) -> datetime | None:
        """When points earned at `earned_at` expire under the policy; None = never."""
        return points_expiry(earned_at, self.policy.points.expiry_months)

    async def credit(
        self,
        session: AsyncSession,
        customer_id: int,
        points: int,
        reason: str,
        *,
        reference: str | None = None,
        actor_telegram_id: int | None = None,
    ) -> PointsEntry:
        """Points given outside a purchase (an apology, a gift), in the caller's transaction."""
        if points <= 0:
            raise ValueError("a credit must be positive")
        now = self.clock.now()
        entry = PointsEntry(
            customer_id=customer_id,
            delta=points,
            reason=reason,
            reference=reference,
            actor_telegram_id=actor_telegram_id,
            expires_at=self.expiry_for(now),
            created_at=now,
        )
        session.add(entry)
        await session.flush()
        return entry

    async def settle_expiry(self, session: AsyncSession, customer_id: int) -> int:
        """Write off the points whose time has passed; how many. Spending uses the points
        that expire first, so what is left of each credit is found by handing all debits
        to the credits in order of expiry. Rerunning writes nothing more."""
        if not self.policy.points.expiry_months:
            return 0
        now = self.clock.now()
        expired = 0
        for entry, left in await _unspent_credits(session, customer_id):
            if entry.expires_at is not None and entry.expires_at <= now and left > 0:
                session.add(
                    PointsEntry(
                        customer_id=customer_id,
                        delta=-left,
                        reason="expired",
                        reference=f"expiry:{entry.id}",
                        created_at=now,
                    )
                )
                expired += left
        if expired:
            await session.flush()
        return expired

    async def expire_all(self) -> int:
        """The nightly write-off for every customer holding expired points; how many points."""
        if not self.policy.points.expiry_months:
            return 0
        async with self.db.session() as session:
            due = list(
                await session.scalars(
                    select(PointsEntry.customer_id)
                    .where(PointsEntry.delta > 0, PointsEntry.expires_at <= self.clock.now())
                    .distinct()
                )
            )
        total = 0
        for customer_id in due:
            async with self.db.transaction() as session:
                await lock_customer(session, customer_id)
                total += await self.settle_expiry(session, customer_id)
        return total


async def _unspent_credits(
    session: AsyncSession, customer_id: int
) -> list[tuple[PointsEntry, int]]:
    entries = await session.scalars(
        select(PointsEntry).where(PointsEntry.customer_id == customer_id)
    )
    return _unspent(list(entries))


def _unspent(entries: Sequence[PointsEntry]) -> list[tuple[PointsEntry, int]]:
    """Each credit with what is left of it once every debit is paid from the credits that
    expire first (those that never expire last)."""
    debt = -sum(e.delta for e in entries if e.delta < 0)
    credits = sorted(
        (e for e in entries if e.delta > 0),
        key=lambda e: (e.expires_at is None, e.expires_at or e.created_at, e.created_at, e.id),
    )
    left: list[tuple[PointsEntry, int]] = []
    for entry in credits:
        paid = min(debt, entry.delta)
        debt -= paid
        left.append((entry, entry.delta - paid))
    return left


def refund_share(amount: Decimal, original_amount: Decimal | None, earned: int) -> int:
    """The points a (possibly partial) refund takes back: its share of what the sale earned."""
    if original_amount is None or original_amount <= 0:
        return 0
    share = min(Decimal(1), -amount / original_amount) * earned
    return int(share.to_integral_value(rounding=ROUND_FLOOR))
