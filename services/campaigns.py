"""Broadcasts (群发): pick an audience, render for each customer, enqueue once, report results.

Only customers who opted in, can be reached and were not erased are ever targeted; the
sender checks again when it sends. The messages are outbox rows keyed
`broadcast:<campaign>:<customer>`, so a campaign can never reach anyone twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, exists, extract, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Campaign,
    CampaignStatus,
    Customer,
    OutboxMessage,
    OutboxStatus,
    PointsEntry,
    Purchase,
    SegmentSnapshot,
)
from models.database import Database
from services.audit import record_audit
from services.clock import Clock
from services.loyalty import TRAILING
from services.outbox import Outbox, Outgoing, Render
from services.policy import Policy
from services.rfm import SEGMENTS

AUDIENCE_KINDS = ("all", "tier", "segment", "abc", "at_risk", "birthday", "potential")
ABC = ("A", "B", "C")
# RFM segments that are at risk whatever the churn model says.
AT_RISK_SEGMENTS = ("at_risk", "cant_lose_them")
BATCH = 500


class Compose(Render, Protocol):
    """What a broadcast needs of the renderer: templates, and text staff wrote."""

    def render_string(self, source: str, locale: str, /, **context: Any) -> str: ...


class AudienceError(ValueError):
    """An audience that does not exist (an unknown tier, segment, class or month)."""


@dataclass(frozen=True)
class Audience:
    kind: str
    value: str | None = None

    def as_json(self) -> dict[str, str | None]:
        return {"kind": self.kind, "value": self.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(str(data["kind"]), None if data.get("value") is None else str(data["value"]))


@dataclass(frozen=True)
class Message:
    """What to send: a template name, or a text staff wrote (Jinja, same sandbox)."""

    template: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Preview:
    size: int
    customer: Customer | None
    text: str | None


@dataclass(frozen=True)
class Progress:
    total: int
    pending: int
    delivered: int
    blocked: int
    opted_out: int
    failed: int

    @property
    def done(self) -> int:
        return self.total - self.pending


@dataclass(frozen=True)
class Results:
    campaign: Campaign
    progress: Progress
    opt_outs: int
    buyers: int
    purchases: int
    revenue: Decimal
    window_days: int


def key_prefix(campaign_id: int) -> str:
    return f"broadcast:{campaign_id}:"


class Campaigns:
    def __init__(
        self,
        db: Database,
        policy: Policy,
        clock: Clock,
        outbox: Outbox,
        compose: Compose,
        zone: ZoneInfo,
    ) -> None:
        self.db = db
        self.policy = policy
        self.clock = clock
        self.outbox = outbox
        self.compose = compose
        self.zone = zone

    # --- audiences -------------------------------------------------------------------------

    def check(self, audience: Audience) -> Audience:
        kind, value = audience.kind, audience.value
        valid = {
            "all": value is None,
            "at_risk": value is None,
            "potential": value is None,
            "tier": value in {t.key for t in self.policy.tiers},
            "segment": value in SEGMENTS,
            "abc": value in ABC,
            "birthday": value is not None and value.isdigit() and 1 <= int(value) <= 12,
        }
        if not valid.get(kind, False):
            raise AudienceError(f"{kind}:{value}")
        return audience

    def _members(self, audience: Audience) -> Select[Customer]:
        """The customers an audience means, only those a broadcast may reach."""
        self.check(audience)
        query = select(Customer).where(
            Customer.erased_at.is_(None),
            Customer.marketing_opt_in.is_(True),
            Customer.reachable.is_(True),
            Customer.chat_id.is_not(None),
        )
        kind, value = audience.kind, audience.value
        if kind in ("segment", "abc", "at_risk"):
            query = query.join(SegmentSnapshot, SegmentSnapshot.customer_id == Customer.id)
        if kind == "tier":
            query = self._in_tier(query, str(value))
        elif kind == "segment":
            query = query.where(SegmentSnapshot.segment == value)
        elif kind == "abc":
            query = query.where(SegmentSnapshot.abc_class == value)
        elif kind == "at_risk":
            query = query.where(
                or_(
                    SegmentSnapshot.churn_probability >= self.policy.campaigns.at_risk_probability,
                    SegmentSnapshot.segment.in_(AT_RISK_SEGMENTS),
                )
            )
        elif kind == "birthday":
            query = query.where(extract("month", Customer.birthday) == int(str(value)))
        elif kind == "potential":
            query = query.where(~exists().where(Purchase.customer_id == Customer.id))
        return query

    def _in_tier(self, query: Select[Customer], key: str) -> Select[Customer]:
        """The tier as it stands now: spend over the trailing twelve months."""
        now = self.clock.now()
        spend = (
            select(Purchase.customer_id, func.sum(Purchase.amount).label("spend"))
            .where(Purchase.occurred_at >= now - TRAILING, Purchase.occurred_at < now)
            .group_by(Purchase.customer_id)
            .subquery()
        )
        total = func.coalesce(spend.c.spend, 0)
        tiers = self.policy.tiers
        index = next(i for i, t in enumerate(tiers) if t.key == key)
        conditions: list[ColumnElement[bool]] = []
        if index < len(tiers) - 1:
            conditions.append(total >= tiers[index].min_spend)
        if index > 0:
            conditions.append(total < tiers[index - 1].min_spend)
        return query.outerjoin(spend, spend.c.customer_id == Customer.id).where(*conditions)

    async def size(self, audience: Audience) -> int:
        query = select(func.count()).select_from(self._members(audience).subquery())
        async with self.db.session() as session:
            return int(await session.scalar(query) or 0)

    async def preview(self, audience: Audience, message: Message) -> Preview:
        """The message as one real member of the audience (the most recently active)
        would get it, and how many would. Rendering errors surface here, before sending."""
        size = await self.size(audience)
        async with self.db.session() as session:
            customer = await session.scalar(
                self._members(audience)
                .order_by(Customer.last_seen_at.desc().nulls_last(), Customer.id)
                .limit(1)
            )
            if customer is None:
                return Preview(size, None, None)
            context = await self._context(session, [customer])
        return Preview(size, customer, self._render(message, customer, context[customer.id]))

    # --- sending ---------------------------------------------------------------------------

    async def launch(
        self,
        token: str,
        actor: int,
        audience: Audience,
        message: Message,
        *,
        locale: str,
        report_chat_id: int | None = None,
        report_thread_id: int | None = None,
    ) -> tuple[Campaign, bool]:
        """The campaign and all its outbox rows in one transaction: all enqueued or none.
        A token already used returns that campaign (False: not launched again)."""
        try:
            return await self._launch(
                token, actor, audience, message, locale, report_chat_id, report_thread_id
            ), True
        except IntegrityError:
            async with self.db.session() as session:
                known = await session.scalar(select(Campaign).where(Campaign.token == token))
            if known is None:
                raise
            return known, False

    async def _launch(
        self,
        token: str,
        actor: int,
        audience: Audience,
        message: Message,
        locale: str,
        report_chat_id: int | None,
        report_thread_id: int | None,
    ) -> Campaign:
        now = self.clock.now()
        members = self._members(audience)
        async with self.db.transaction() as session:
            campaign = Campaign(
                token=token,
                audience=audience.as_json(),
                template=message.template,
                text=message.text,
                created_by=actor,
                locale=locale,
                created_at=now,
                status=CampaignStatus.SENDING,
                audience_size=0,
                enqueued=0,
                report_chat_id=report_chat_id,
                report_thread_id=report_thread_id,
            )
            session.add(campaign)
            await session.flush()
            last_id, size, enqueued = 0, 0, 0
            while True:
                batch = list(
                    await session.scalars(
                        members.where(Customer.id > last_id).order_by(Customer.id).limit(BATCH)
                    )
                )
                if not batch:
                    break
                last_id = batch[-1].id
                size += len(batch)
                context = await self._context(session, batch)
                enqueued += await self.outbox.enqueue(
                    [
                        Outgoing(
                            key=f"{key_prefix(campaign.id)}{customer.id}",
                            chat_id=int(customer.chat_id or 0),
                            text=self._render(message, customer, context[customer.id]),
                            kind="broadcast",
                            customer_id=customer.id,
                            marketing=True,
                            # Held in quiet hours, including those a long broadcast runs into.
                            quiet=True,
                        )
                        for customer in batch
                    ],
                    session=session,
                )
            campaign.audience_size = size
            campaign.enqueued = enqueued
            if enqueued == 0:
                campaign.status = CampaignStatus.DONE
                campaign.finished_at = now
            record_audit(
                session,
                at=now,
                actor=actor,
                action="broadcast.send",
                target_type="campaign",
                target_id=campaign.id,
                after={
                    "audience": audience.as_json(),
                    "template": message.template,
                    "text": message.text,
                    "recipients": enqueued,
                },
            )
        return campaign

    async def _context(
        self, session: AsyncSession, customers: Sequence[Customer]
    ) -> dict[int, dict[str, Any]]:
        """Per customer, what a broadcast may mention: points, tier, the shop's name."""
        ids = [c.id for c in customers]
        now = self.clock.now()
        balances = dict(
            (
                await session.execute(
                    select(PointsEntry.customer_id, func.sum(PointsEntry.delta))
                    .where(PointsEntry.customer_id.in_(ids))
                    .group_by(PointsEntry.customer_id)
                )
            ).all()
        )
        spends = dict(
            (
                await session.execute(
                    select(Purchase.customer_id, func.sum(Purchase.amount))
                    .where(
                        Purchase.customer_id.in_(ids),
                        Purchase.occurred_at >= now - TRAILING,
                        Purchase.occurred_at < now,
                    )
                    .group_by(Purchase.customer_id)
                )
            ).all()
        )
        context = {}
        for customer in customers:
            tier = self.policy.tier_for_spend(Decimal(spends.get(customer.id) or 0))
            context[customer.id] = {
                "name": customer.name or "",
                "points": int(balances.get(customer.id) or 0),
                "tier_name": tier.name(customer.locale),
                "shop": self.policy.shop.name(customer.locale),
            }
        return context

    def _render(self, message: Message, customer: Customer, context: dict[str, Any]) -> str:
        if message.template is not None:
            return self.compose.render(message.template, customer.locale, **context)
        return self.compose.render_string(message.text or "", customer.locale, **context)

    # --- progress and results --------------------------------------------------------------

    async def active(self) -> list[Campaign]:
        async with self.db.session() as session:
            return list(
                await session.scalars(
                    select(Campaign)
                    .where(Campaign.status == CampaignStatus.SENDING)
                    .order_by(Campaign.id)
                )
            )

    async def get(self, campaign_id: int) -> Campaign | None:
        async with self.db.session() as session:
            return await session.get(Campaign, campaign_id)

    async def recent(self, limit: int = 10) -> list[Campaign]:
        async with self.db.session() as session:
            return list(
                await session.scalars(select(Campaign).order_by(Campaign.id.desc()).limit(limit))
            )

    async def set_progress_message(self, campaign_id: int, message_id: int) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(progress_message_id=message_id)
            )

    async def progress(self, campaign_id: int) -> Progress:
        async with self.db.session() as session:
            rows = await session.execute(
                select(OutboxMessage.status, OutboxMessage.last_error, func.count())
                .where(OutboxMessage.dedupe_key.startswith(key_prefix(campaign_id)))
                .group_by(OutboxMessage.status, OutboxMessage.last_error)
            )
            counts = {"pending": 0, "delivered": 0, "blocked": 0, "opted_out": 0, "failed": 0}
            for status, error, count in rows:
                counts[_outcome(status, error)] += int(count)
        return Progress(total=sum(counts.values()), **counts)

    async def finish(self, campaign_id: int, progress: Progress) -> bool:
        """Mark the campaign done; True for the one caller (of several instances) that did."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
                .values(
                    status=CampaignStatus.DONE,
                    finished_at=self.clock.now(),
                    outcome={
                        "delivered": progress.delivered,
                        "blocked": progress.blocked,
                        "opted_out": progress.opted_out,
                        "failed": progress.failed,
                    },
                )
            )
            return bool(getattr(result, "rowcount", 0))

    async def results(self, campaign_id: int) -> Results | None:
        """Delivery, opt-outs since, and what recipients bought within the attribution
        window after the campaign went out."""
        campaign = await self.get(campaign_id)
        if campaign is None:
            return None
        progress = await self.progress(campaign_id)
        window = self.policy.campaigns.attribution_days
        start = campaign.created_at
        end = start + timedelta(days=window)
        delivered = (
            select(OutboxMessage.customer_id)
            .where(
                OutboxMessage.dedupe_key.startswith(key_prefix(campaign_id)),
                OutboxMessage.status == OutboxStatus.SENT,
            )
            .scalar_subquery()
        )
        async with self.db.session() as session:
            # Everyone targeted had opted in, so a recipient opted out now did so since.
            opt_outs = await session.scalar(
                select(func.count(Customer.id)).where(
                    Customer.id.in_(delivered), Customer.marketing_opt_in.is_(False)
                )
            )
            buyers, purchases, revenue = (
                await session.execute(
                    select(
                        func.count(func.distinct(Purchase.customer_id)),
                        func.count(Purchase.id),
                        func.sum(Purchase.amount),
                    ).where(
                        Purchase.customer_id.in_(delivered),
                        Purchase.amount > 0,
                        Purchase.occurred_at >= start,
                        Purchase.occurred_at < end,
                    )
                )
            ).one()
        return Results(
            campaign=campaign,
            progress=progress,
            opt_outs=int(opt_outs or 0),
            buyers=int(buyers or 0),
            purchases=int(purchases or 0),
            revenue=Decimal(revenue) if revenue is not None else Decimal("0.00"),
            window_days=window,
        )


def _outcome(status: str, error: str | None) -> str:
    """Which count an outbox row adds to. The sender records Telegram's refusal in
    `last_error`; a block, a deleted account or a missing chat are all "blocked"."""
    reason = (error or "").lower()
    if status in (OutboxStatus.PENDING, OutboxStatus.SENDING):
        return "pending"
    if status == OutboxStatus.SENT:
        return "delivered"
    if "opted out" in reason:
        return "opted_out"
    if any(sign in reason for sign in ("blocked", "forbidden", "not found", "unreachable")):
        return "blocked"
    return "failed"
