"""Birthday greetings (生日祝福): everyone whose birthday it is, at the policy's local hour,
once a year, with their tier's gift granted in the same transaction as the greeting."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, extract, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Customer
from models.database import Database
from services.clock import Clock
from services.loyalty import TRAILING
from services.outbox import Outbox, Outgoing, Render
from services.outreach import BATCH, Gifts, enqueue_each, may_write, spend_of
from services.policy import Policy, Tier


def celebrated_on(day: date) -> list[tuple[int, int]]:
    """The (month, day) birthdays celebrated on `day`: 29 February is kept on 28 February
    in common years."""
    days = [(day.month, day.day)]
    if (day.month, day.day) == (2, 28) and not calendar.isleap(day.year):
        days.append((2, 29))
    return days


def birthday_key(customer_id: int, year: int) -> str:
    return f"birthday:{customer_id}:{year}"


@dataclass(eq=False)
class Birthdays:
    db: Database
    policy: Policy
    clock: Clock
    zone: ZoneInfo
    outbox: Outbox
    render: Render
    gifts: Gifts

    async def due(self, day: date) -> list[Customer]:
        """Customers celebrating on `day` whom a greeting may reach, greeted or not."""
        celebrated = or_(
            *(
                and_(
                    extract("month", Customer.birthday) == m, extract("day", Customer.birthday) == d
                )
                for m, d in celebrated_on(day)
            )
        )
        found: list[Customer] = []
        last_id = 0
        async with self.db.session() as session:
            while True:
                batch = list(
                    await session.scalars(
                        select(Customer)
                        .where(*may_write(marketing=True), Customer.birthday.is_not(None))
                        .where(celebrated, Customer.id > last_id)
                        .order_by(Customer.id)
                        .limit(BATCH)
                    )
                )
                if not batch:
                    return found
                found.extend(batch)
                last_id = batch[-1].id

    async def send(self) -> int:
        """Greet today's birthdays not greeted yet this year; how many were enqueued. Run
        before the greeting hour, the greetings wait for it."""
        now = self.clock.now()
        today = now.astimezone(self.zone).date()
        at = self.policy.schedule.when("birthdays")
        greet_at = datetime.combine(today, time(at.hour, at.minute), self.zone)
        not_before = max(now, greet_at)
        due = await self.due(today)
        done = await self.outbox.present(birthday_key(c.id, today.year) for c in due)
        fresh = [c for c in due if birthday_key(c.id, today.year) not in done]
        async with self.db.session() as session:
            spend = await spend_of(session, [c.id for c in fresh], now - TRAILING, now)
        due_gifts = [(c, self.policy.tier_for_spend(spend.get(c.id, Decimal(0)))) for c in fresh]
        year = today.year

        async def greet(session: AsyncSession, item: tuple[Customer, Tier]) -> int:
            customer, tier = item
            key = birthday_key(customer.id, year)
            locale = customer.locale
            granted = await self.gifts.grant(
                session,
                customer,
                self.policy.birthdays.gifts.get(tier.key),
                reason="birthday",
                reference=key,
            )
            text = self.render.render(
                "birthday",
                locale,
                name=customer.name or "",
                shop=self.policy.shop.name(locale),
                tier=tier.name(locale),
                gift=granted,
            )
            return await self.outbox.enqueue(
                [
                    Outgoing(
                        key=key,
                        chat_id=int(customer.chat_id or 0),
                        text=text,
                        kind="birthday",
                        customer_id=customer.id,
                        marketing=True,
                        not_before=not_before,
                        quiet=True,
                    )
                ],
                session=session,
            )

        return await enqueue_each(self.db, greet, due_gifts)
