"""Broadcast audiences: each kind picks the right customers, and only reachable, opted-in,
not erased ones; launching twice with one confirmation makes one campaign."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from models import Customer, OutboxMessage, Purchase, SegmentSnapshot
from models.database import Database
from services.campaigns import Audience, AudienceError, Campaigns, Message
from services.clock import FrozenClock
from services.outbox import Outbox
from services.policy import Policy

ZONE = ZoneInfo("Asia/Shanghai")


class Words:
    def render(self, template: str, locale: str, /, **context: Any) -> str:
        return f"{template}:{locale}:{context['name']}:{context['points']}:{context['tier_name']}"

    def render_string(self, source: str, locale: str, /, **context: Any) -> str:
        return source.replace("NAME", context["name"])

    def label(self, key: str, locale: str) -> str:
        return key


@pytest.fixture
def campaigns(db: Database, policy: Policy, clock: FrozenClock) -> Campaigns:
    return Campaigns(db, policy, clock, Outbox(db, clock), Words(), ZONE)


async def people(db: Database, now: datetime) -> None:
    """Ten customers; ids 7-10 must never be targeted (opted out, blocked, erased, no chat)."""
    specs: list[dict[str, Any]] = [
        {"birthday": date(1990, 5, 3), "spend": "1200", "segment": "champions", "abc": "A"},
        {"birthday": date(1985, 5, 31), "spend": "400", "segment": "at_risk", "abc": "B"},
        {"birthday": date(1991, 6, 1), "spend": "50", "segment": "lost", "abc": "C", "risk": 0.9},
        {"spend": None, "segment": "potential"},
        {"spend": "999.99", "segment": "loyal", "abc": "A", "risk": 0.2},
        {"spend": None},
        {"spend": "2000", "segment": "champions", "abc": "A", "marketing_opt_in": False},
        {"spend": "2000", "segment": "champions", "abc": "A", "reachable": False},
        {"spend": "2000", "segment": "champions", "abc": "A", "erased_at": now},
        {"spend": "2000", "segment": "champions", "abc": "A", "chat_id": None},
    ]
    async with db.transaction() as session:
        for number, spec in enumerate(specs, start=1):
            session.add(
                Customer(
                    id=number,
                    telegram_id=100 + number,
                    chat_id=spec.get("chat_id", 100 + number),
                    name=f"C{number}",
                    locale="en",
                    birthday=spec.get("birthday"),
                    marketing_opt_in=spec.get("marketing_opt_in", True),
                    reachable=spec.get("reachable", True),
                    erased_at=spec.get("erased_at"),
                    created_at=now - timedelta(days=400),
                )
            )
            await session.flush()
            if spec["spend"]:
                session.add(
                    Purchase(
                        customer_id=number,
                        reference=f"R{number}",
                        amount=Decimal(spec["spend"]),
                        currency="CNY",
                        occurred_at=now - timedelta(days=30),
                        channel="api",
                        created_at=now,
                    )
                )
            if "segment" in spec and spec["segment"] != "potential":
                session.add(
                    SegmentSnapshot(
                        customer_id=number,
                        frequency=1,
                        monetary=Decimal(1),
                        segment=spec["segment"],
                        abc_class=spec["abc"],
                        tier="small",
                        churn_probability=spec.get("risk"),
                        computed_at=now,
                    )
                )


@pytest.mark.parametrize(
    ("audience", "expected"),
    [
        (Audience("all"), {1, 2, 3, 4, 5, 6}),
        (Audience("tier", "key"), {1}),
        (Audience("tier", "regular"), {2, 5}),
        (Audience("tier", "small"), {3, 4, 6}),
        (Audience("segment", "champions"), {1}),
        (Audience("abc", "A"), {1, 5}),
        (Audience("at_risk"), {2, 3}),
        (Audience("birthday", "5"), {1, 2}),
        (Audience("potential"), {4, 6}),
    ],
)
async def test_each_audience(
    db: Database, clock: FrozenClock, campaigns: Campaigns, audience: Audience, expected: set[int]
) -> None:
    await people(db, clock.now())
    assert await campaigns.size(audience) == len(expected)
    campaign, launched = await campaigns.launch(
        "t1", 9001, audience, Message(template="broadcast_x"), locale="en"
    )
    assert launched and campaign.enqueued == len(expected)
    async with db.session() as session:
        rows = list(await session.scalars(select(OutboxMessage)))
    assert {r.customer_id for r in rows} == expected
    assert all(r.marketing and r.dedupe_key == f"broadcast:1:{r.customer_id}" for r in rows)


@pytest.mark.parametrize(
    "audience",
    [
        Audience("tier", "gold"),
        Audience("segment", "vip"),
        Audience("abc", "D"),
        Audience("birthday", "13"),
        Audience("all", "x"),
        Audience("everyone"),
    ],
)
def test_unknown_audiences_are_refused(campaigns: Campaigns, audience: Audience) -> None:
    with pytest.raises(AudienceError):
        campaigns.check(audience)


async def test_one_confirmation_launches_once(
    db: Database, clock: FrozenClock, campaigns: Campaigns
) -> None:
    await people(db, clock.now())
    message = Message(text="Hello NAME")
    first, launched = await campaigns.launch("same", 9001, Audience("all"), message, locale="en")
    again, relaunched = await campaigns.launch("same", 9001, Audience("all"), message, locale="en")
    assert launched and not relaunched and again.id == first.id
    async with db.session() as session:
        texts = set(await session.scalars(select(OutboxMessage.text)))
        assert await session.scalar(select(func.count(OutboxMessage.id))) == 6
    assert "Hello C1" in texts
    preview = await campaigns.preview(Audience("tier", "key"), Message(template="broadcast_x"))
    assert preview.size == 1 and preview.text == "broadcast_x:en:C1:0:Key customer"


async def test_a_broadcast_waits_out_quiet_hours_even_once_started(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    clock.set(datetime(2026, 5, 1, 12, 59, tzinfo=UTC))  # 20:59 in Shanghai
    await people(db, clock.now())
    outbox = Outbox.for_policy(db, clock, policy, ZONE)
    campaigns = Campaigns(db, policy, clock, outbox, Words(), ZONE)
    await campaigns.launch("night", 9001, Audience("all"), Message(text="Hi"), locale="en")
    for number, first in enumerate(await outbox.claim(2)):
        await outbox.sent(first.id, number)
    clock.set(datetime(2026, 5, 1, 14, 30, tzinfo=UTC))  # 22:30: quiet hours
    assert await outbox.claim(10) == []
    clock.set(datetime(2026, 5, 2, 1, 0, tzinfo=UTC))  # 09:00 the next morning
    assert len(await outbox.claim(10)) == 4
