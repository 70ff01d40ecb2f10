"""Tier follow-ups: one per period of the tier's cadence, none for the tier without one,
and none while staff or a campaign contacted the customer within the quiet period."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from models import Customer
from models.database import Database
from services.clock import FrozenClock
from services.followups import period_of
from services.policy import Policy
from tests.services.outreach_helpers import Shop, local, shop


@pytest.fixture
def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-01 10:00"))
    return shop(db, policy, clock)


async def spender(
    care: Shop,
    name: str,
    amount: str,
    *,
    marketing: bool = True,
    reachable: bool = True,
    erased: bool = False,
) -> Customer:
    customer = await care.customer(name, marketing=marketing, reachable=reachable, erased=erased)
    await care.buys(customer, amount, care.clock.now() - timedelta(days=60))
    return customer


async def test_key_customers_monthly_and_regular_ones_quarterly(care: Shop) -> None:
    vip = await spender(care, "Vic", "1500")
    regular = await spender(care, "Rae", "500")
    await spender(care, "Sam", "100")
    await care.customer("Pat")
    await spender(care, "Opt", "1500", marketing=False)
    await spender(care, "Era", "1500", erased=True)
    await spender(care, "Blo", "1500", reachable=False)

    assert await care.jobs.followups.send() == 2

    assert await care.keys("followup") == {
        f"followup:{vip.id}:2026-05",
        f"followup:{regular.id}:2026-04",
    }
    texts = {m.customer_id: m.text for m in await care.messages("followup")}
    assert "monthly check-in" in texts[vip.id]
    assert "quarterly hello" in texts[regular.id]


async def test_a_period_gets_one_follow_up_however_often_the_job_runs(
    care: Shop, clock: FrozenClock
) -> None:
    vip = await spender(care, "Vic", "1500")
    regular = await spender(care, "Rae", "500")
    assert await care.jobs.followups.send() == 2
    for day in range(1, 32):
        clock.set(local("2026-05-01 10:00") + timedelta(days=day))
        await care.jobs.followups.send()
    assert await care.keys("followup") == {
        f"followup:{vip.id}:2026-05",
        f"followup:{vip.id}:2026-06",
        f"followup:{regular.id}:2026-04",
    }


async def test_recently_contacted_customers_wait_out_the_quiet_period(
    care: Shop, clock: FrozenClock
) -> None:
    answered = await spender(care, "Ans", "1500")
    reached = await spender(care, "Rea", "1500")
    await care.ticket(answered, opened=clock.now() - timedelta(days=4), answered=clock.now())
    await care.campaign_reached(reached, clock.now() - timedelta(days=13))

    assert await care.jobs.followups.send() == 0

    clock.advance(timedelta(days=2))
    assert await care.keys("followup") == set() and await care.jobs.followups.send() == 1
    assert await care.keys("followup") == {f"followup:{reached.id}:2026-05"}
    clock.advance(timedelta(days=12))
    assert await care.jobs.followups.send() == 0  # answered 14 days ago: still quiet
    clock.advance(timedelta(days=1))
    assert await care.jobs.followups.send() == 1
    assert f"followup:{answered.id}:2026-05" in await care.keys("followup")


async def test_a_follow_up_is_no_contact_for_the_next_one(care: Shop, clock: FrozenClock) -> None:
    vip = await spender(care, "Vic", "1500")
    clock.set(local("2026-05-31 10:00"))
    assert await care.jobs.followups.send() == 1
    clock.set(local("2026-06-01 10:00"))
    assert await care.jobs.followups.send() == 0  # reached yesterday: within the quiet period
    clock.set(local("2026-06-15 10:00"))
    assert await care.jobs.followups.send() == 1
    assert f"followup:{vip.id}:2026-06" in await care.keys("followup")


@pytest.mark.parametrize(
    ("day", "months", "period"),
    [
        ("2026-05-17", 1, "2026-05"),
        ("2026-05-17", 3, "2026-04"),
        ("2026-12-31", 3, "2026-10"),
        ("2026-01-01", 12, "2026-01"),
        ("2026-08-09", 2, "2026-07"),
    ],
)
def test_periods_follow_the_calendar(day: str, months: int, period: str) -> None:
    assert period_of(date.fromisoformat(day), months) == period
