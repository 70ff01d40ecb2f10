"""Tier follow-ups (客户跟进计划): a check-in per period of the customer's tier cadence
(default: key customers monthly, regular quarterly, small none), skipped while the customer
was recently contacted by staff or by any campaign."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select

from models import Customer
from models.database import Database
from services.clock import Clock
from services.loyalty import TRAILING
from services.outbox import Outbox, Outgoing
from services.outreach import (
    BATCH,
    Templates,
    balances_of,
    may_write,
    recently_contacted,
    spend_of,
)
from services.policy import Policy, Tier


def period_of(day: date, months: int) -> str:
    """The calendar period of `months` months holding `day`, named by its first month:
    quarterly periods are 2026-01, 2026-04, 2026-07 and 2026-10."""
    index = (day.year * 12 + day.month - 1) // months * months
    return f"{index // 12}-{index % 12 + 1:02d}"


def followup_key(customer_id: int, period: str) -> str:
    return f"followup:{customer_id}:{period}"


@dataclass(frozen=True)
class Due:
    customer: Customer
    tier: Tier
    period: str

    @property
    def key(self) -> str:
        return followup_key(self.customer.id, self.period)


@dataclass(eq=False)
class Followups:
    db: Database
    policy: Policy
    clock: Clock
    zone: ZoneInfo
    outbox: Outbox
    render: Templates

    async def send(self) -> int:
        """Enqueue this period's follow-up for every customer due one; how many."""
        enqueued = 0
        last_id = 0
        while True:
            async with self.db.session() as session:
                batch = list(
                    await session.scalars(
                        select(Customer)
                        .where(*may_write(marketing=True), Customer.id > last_id)
                        .order_by(Customer.id)
                        .limit(BATCH)
                    )
                )
            if not batch:
                return enqueued
            last_id = batch[-1].id
            enqueued += await self._send(await self._due(batch))

    async def _due(self, customers: list[Customer]) -> list[Due]:
        now = self.clock.now()
        today = now.astimezone(self.zone).date()
        ids = [c.id for c in customers]
        async with self.db.session() as session:
            spend = await spend_of(session, ids, now - TRAILING, now)
        due = []
        for customer in customers:
            tier = self.policy.tier_for_spend(spend.get(customer.id, Decimal(0)))
            if tier.followup_months:
                due.append(Due(customer, tier, period_of(today, tier.followup_months)))
        done = await self.outbox.present(d.key for d in due)
        due = [d for d in due if d.key not in done]
        quiet = timedelta(days=self.policy.followups.quiet_days)
        if quiet:
            async with self.db.session() as session:
                busy = await recently_contacted(session, [d.customer.id for d in due], now - quiet)
            due = [d for d in due if d.customer.id not in busy]
        return due

    async def _send(self, due: list[Due]) -> int:
        if not due:
            return 0
        names = set(self.render.template_names("followup"))
        async with self.db.transaction() as session:
            points = await balances_of(session, [d.customer.id for d in due])
            messages = []
            for item in due:
                customer, locale = item.customer, item.customer.locale
                template = f"followup_{item.tier.key}"
                text = self.render.render(
                    template if template in names else "followup",
                    locale,
                    name=customer.name or "",
                    shop=self.policy.shop.name(locale),
                    tier=item.tier.name(locale),
                    points=points.get(customer.id, 0),
                )
                messages.append(
                    Outgoing(
                        key=item.key,
                        chat_id=int(customer.chat_id or 0),
                        text=text,
                        kind="followup",
                        customer_id=customer.id,
                        marketing=True,
                        quiet=True,
                    )
                )
            return await self.outbox.enqueue(messages, session=session)
