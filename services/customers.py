"""Customers (客户档案): created on first contact, kept current, linked to their phone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Customer, PointsEntry, Purchase, SegmentSnapshot
from models.database import Database
from services.clock import Clock
from services.loyalty import Loyalty
from services.phones import InvalidPhone, normalize_phone
from services.policy import LOCALES, Policy

# Writing last_seen on every message would make each update a write; a minute is plenty.
_SEEN_RESOLUTION = timedelta(minutes=1)
# Run for every update: built once, as building a statement costs more than running it.
_CUSTOMERS = Customer.__table__.c
_BY_TELEGRAM = select(*_CUSTOMERS).where(_CUSTOMERS.telegram_id == bindparam("telegram_id"))


@dataclass(frozen=True)
class TelegramProfile:
    """What a Telegram update tells about the person writing."""

    telegram_id: int
    chat_id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    locale: str = "zh"

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p)[:128]


def _outdated(customer: Customer, profile: TelegramProfile, now: datetime) -> bool:
    """Whether the customer's row should take in what this message tells."""
    seen = customer.last_seen_at
    return (
        seen is None
        or now - seen > _SEEN_RESOLUTION
        or not customer.reachable
        or customer.username != profile.username
    )


class LinkStatus(StrEnum):
    LINKED = "linked"
    INVALID = "invalid"
    TAKEN = "taken"


@dataclass(frozen=True)
class PhoneLink:
    status: LinkStatus
    phone: str | None = None
    purchases: int = 0
    points: int = 0


class Customers:
    def __init__(self, db: Database, policy: Policy, clock: Clock, loyalty: Loyalty) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.loyalty = loyalty

    async def get(self, customer_id: int) -> Customer | None:
        async with self.db.session() as session:
            return await session.get(Customer, customer_id)

    async def by_telegram(self, telegram_id: int) -> Customer | None:
        async with self.db.session() as session:
            return await session.scalar(select(Customer).where(Customer.telegram_id == telegram_id))

    async def touch(
        self, profile: TelegramProfile, *, source: str | None = None
    ) -> tuple[Customer, bool]:
        """The customer behind a Telegram user, created on first contact; whether new.

        Writing to the bot proves the chat is open again, so it clears `reachable=False`.
        Most messages change nothing, and are only read.
        """
        now = self.clock.now()
        row = await self.db.first_row(_BY_TELEGRAM, telegram_id=profile.telegram_id)
        # Handlers read the customer and pass on its id; none adds it to a session.
        known = Customer(**row) if row is not None else None
        if known is not None and not _outdated(known, profile, now):
            return known, False
        async with self.db.transaction() as session:
            customer = await session.scalar(
                select(Customer).where(Customer.telegram_id == profile.telegram_id)
            )
            if customer is None:
                customer = Customer(
                    telegram_id=profile.telegram_id,
                    chat_id=profile.chat_id,
                    username=profile.username,
                    name=profile.display_name,
                    locale=profile.locale,
                    source=source,
                    marketing_opt_in=True,
                    reachable=True,
                    created_at=now,
                    last_seen_at=now,
                )
                session.add(customer)
                await session.flush()
                return customer, True
            if _outdated(customer, profile, now):
                customer.last_seen_at = now
                customer.reachable = True
                customer.chat_id = profile.chat_id
                if not customer.is_erased:
                    customer.username = profile.username
            return customer, False

    async def record_source(self, customer_id: int, source: str) -> None:
        """Where a new customer came from: the deep-link payload of their first /start."""
        async with self.db.transaction() as session:
            await session.execute(
                update(Customer).where(Customer.id == customer_id).values(source=source[:64])
            )

    async def set_locale(self, customer_id: int, locale: str) -> None:
        if locale not in LOCALES:
            raise ValueError(f"unknown locale {locale!r}")
        async with self.db.transaction() as session:
            await session.execute(
                update(Customer).where(Customer.id == customer_id).values(locale=locale)
            )

    async def set_reachable(self, telegram_id: int, reachable: bool) -> bool:
        """Record that the customer blocked (or unblocked) the bot; whether one was found."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Customer)
                .where(Customer.telegram_id == telegram_id)
                .values(reachable=reachable)
            )
            return bool(getattr(result, "rowcount", 0))

    async def mark_unreachable(self, customer_id: int) -> None:
        """Telegram refused delivery (blocked, chat gone): stop trying until they write."""
        async with self.db.transaction() as session:
            await session.execute(
                update(Customer).where(Customer.id == customer_id).values(reachable=False)
            )

    async def set_marketing(self, customer_id: int, allowed: bool) -> None:
        """Consent to offers and news; every job reads it again when it sends."""
        async with self.db.transaction() as session:
            await session.execute(
                update(Customer).where(Customer.id == customer_id).values(marketing_opt_in=allowed)
            )

    async def link_phone(self, customer_id: int, raw_phone: str) -> PhoneLink:
        """Attach a phone from the customer's own contact card, with what was recorded
        under it: an imported profile is merged in, waiting sales are credited."""
        try:
            phone = normalize_phone(raw_phone, self.policy.phone_region, international=True)
        except InvalidPhone:
            return PhoneLink(LinkStatus.INVALID)
        async with self.db.transaction() as session:
            customer = await session.get(Customer, customer_id, with_for_update=True)
            if customer is None:
                raise LookupError(customer_id)
            holder = await session.scalar(select(Customer).where(Customer.phone == phone))
            if holder is not None and holder.id != customer.id:
                if holder.telegram_id is not None:
                    return PhoneLink(LinkStatus.TAKEN, phone)
                await self._absorb(session, customer, holder)
            customer.phone = phone
            waiting = list(
                await session.scalars(
                    select(Purchase).where(Purchase.customer_id.is_(None), Purchase.phone == phone)
                )
            )
            for purchase in waiting:
                purchase.customer_id = customer.id
            await session.flush()
            points = await self.loyalty.credit_purchases(session, customer.id, waiting)
            return PhoneLink(LinkStatus.LINKED, phone, len(waiting), points)

    async def _absorb(self, session: AsyncSession, customer: Customer, imported: Customer) -> None:
        """Fold a record from the shop's customer list into the Telegram customer."""
        for field in ("name", "birthday", "region", "notes"):
            if getattr(imported, field) is not None:
                setattr(customer, field, getattr(imported, field))
        customer.marketing_opt_in = imported.marketing_opt_in
        await session.execute(
            update(Purchase)
            .where(Purchase.customer_id == imported.id)
            .values(customer_id=customer.id)
        )
        await session.execute(
            update(PointsEntry)
            .where(PointsEntry.customer_id == imported.id)
            .values(customer_id=customer.id)
        )
        snapshot = await session.get(SegmentSnapshot, imported.id)
        if snapshot is not None:
            await session.delete(snapshot)
        imported.phone = None
        await session.flush()
        await session.delete(imported)
        await session.flush()
