"""Win-back: customers at risk get an offer with their segment's incentive, at most once
per period and at most three times, and a purchase soon after an offer counts."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from models import Customer, SegmentSnapshot
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy
from tests.services.outreach_helpers import Shop, local, shop


@pytest.fixture
def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-01 10:30"))
    return shop(db, policy, clock)


async def classified(
    care: Shop,
    name: str,
    segment: str,
    churn: float | None,
    *,
    last_purchase_days: int = 100,
    at: datetime | None = None,
    marketing: bool = True,
    reachable: bool = True,
    erased: bool = False,
) -> Customer:
    customer = await care.customer(name, marketing=marketing, reachable=reachable, erased=erased)
    await care.buys(customer, "120", care.clock.now() - timedelta(days=last_purchase_days))
    async with care.db.transaction() as session:
        session.add(
            SegmentSnapshot(
                customer_id=customer.id,
                recency_days=last_purchase_days,
                frequency=1,
                monetary=Decimal(120),
                segment=segment,
                abc_class="B",
                tier="small",
                churn_probability=churn,
                computed_at=at or care.clock.now() - timedelta(hours=7),
            )
        )
    return customer


async def test_customers_at_risk_get_an_offer_with_their_segments_incentive(care: Shop) -> None:
    risk = await classified(care, "Ria", "at_risk", 0.3)
    dear = await classified(care, "Dee", "cant_lose_them", None)
    odds = await classified(care, "Odd", "loyal", 0.8)
    await classified(care, "Cha", "champions", 0.1)
    await classified(care, "Opt", "at_risk", 0.9, marketing=False)
    await classified(care, "Era", "at_risk", 0.9, erased=True)
    await classified(care, "Blo", "at_risk", 0.9, reachable=False)
    await classified(care, "Old", "lost", 0.99, last_purchase_days=800)

    assert await care.jobs.winback.send() == 3

    assert await care.keys("winback") == {
        f"winback:{risk.id}:1",
        f"winback:{dear.id}:1",
        f"winback:{odds.id}:1",
    }
    gifts = {
        c.id: [e for e in await care.ledger(c) if e[1] == "winback"] for c in (risk, dear, odds)
    }
    assert gifts == {
        risk.id: [(200, "winback", f"winback:{risk.id}:1")],
        dear.id: [(300, "winback", f"winback:{dear.id}:1")],
        odds.id: [(100, "winback", f"winback:{odds.id}:1")],
    }
    texts = {m.customer_id: m.text for m in await care.messages("winback")}
    assert "we miss you" in texts[risk.id] and "added 200 points" in texts[risk.id]


async def test_a_customer_who_bought_since_the_classification_is_left_alone(care: Shop) -> None:
    back = await classified(care, "Bac", "at_risk", 0.9)
    await care.buys(back, "30", care.clock.now() - timedelta(hours=1))
    assert await care.jobs.winback.send() == 0


async def test_at_most_once_per_period_and_three_times_in_all(
    care: Shop, clock: FrozenClock
) -> None:
    risk = await classified(care, "Ria", "at_risk", 0.9, at=local("2026-04-30 03:00"))
    assert await care.jobs.winback.send() == 1
    assert await care.jobs.winback.send() == 0
    clock.advance(timedelta(days=59))
    assert await care.jobs.winback.send() == 0
    clock.advance(timedelta(days=1))
    assert await care.jobs.winback.send() == 1
    clock.advance(timedelta(days=60))
    assert await care.jobs.winback.send() == 1
    clock.advance(timedelta(days=60))
    assert await care.jobs.winback.send() == 0
    assert await care.keys("winback") == {f"winback:{risk.id}:{n}" for n in (1, 2, 3)}
    assert len([e for e in await care.ledger(risk) if e[1] == "winback"]) == 3


async def test_runs_at_once_make_one_offer(care: Shop) -> None:
    risk = await classified(care, "Ria", "at_risk", 0.9)
    assert sorted(await asyncio.gather(*(care.jobs.winback.send() for _ in range(3)))) == [0, 0, 1]
    assert len([e for e in await care.ledger(risk) if e[1] == "winback"]) == 1


async def test_a_purchase_within_the_window_after_an_offer_counts_as_won_back(
    care: Shop, clock: FrozenClock
) -> None:
    won = await classified(care, "Won", "at_risk", 0.9)
    await classified(care, "Late", "at_risk", 0.9)
    await classified(care, "Mute", "hibernating", 0.9)
    sent_at = clock.now()
    assert await care.jobs.winback.send() == 3
    await care.mark_sent("winback", sent_at)
    await care.buys(won, "88", sent_at + timedelta(days=6))
    late = (await care.messages("winback"))[1].customer_id
    async with care.db.session() as session:
        late_customer = await session.get(Customer, late)
    assert late_customer is not None
    await care.buys(late_customer, "50", sent_at + timedelta(days=31))

    results = await care.jobs.winback.results(
        sent_at - timedelta(days=1), sent_at + timedelta(days=1)
    )

    assert (results.offers, results.delivered, results.won_back) == (3, 3, 1)
    assert results.revenue == Decimal("88.00") and results.rate == pytest.approx(1 / 3)
    assert results.by_attempt == {1: (3, 1)}
