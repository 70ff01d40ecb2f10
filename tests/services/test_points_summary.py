"""What /points shows: the balance, the tier and the next, points about to expire, and the
latest ledger lines; expired points are written off before they can be shown or spent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from models.database import Database
from services.clock import FrozenClock, add_months
from services.loyalty import balance_of
from services.policy import Points, Policy
from tests.services.care_helpers import Care, care


@pytest.fixture
def expiring(db: Database, policy: Policy, clock: FrozenClock) -> Care:
    points = Points(per_unit=policy.points.per_unit, expiry_months=12, expiry_warning_days=30)
    return care(db, policy.model_copy(update={"points": points}), clock)


async def test_the_summary_names_the_tier_and_what_the_next_needs(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    shop = care(db, policy, clock)
    alice = await shop.customer(1)
    await shop.buys(alice, "250")
    summary = await shop.loyalty.summary(alice)
    assert (summary.balance, summary.tier.key, summary.next_tier and summary.next_tier.key) == (
        250,
        "small",
        "regular",
    )
    assert summary.to_next == 50
    assert [(line.delta, line.reason) for line in summary.recent] == [(250, "purchase")]
    assert summary.expiring_soon == 0


async def test_only_the_last_ten_entries_newest_first(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    shop = care(db, policy, clock)
    alice = await shop.customer(1)
    for amount in range(1, 13):
        clock.advance(timedelta(minutes=1))
        await shop.buys(alice, str(amount))
    summary = await shop.loyalty.summary(alice)
    assert [line.delta for line in summary.recent] == list(range(12, 2, -1))


async def test_points_about_to_expire_are_announced_then_written_off(
    expiring: Care, clock: FrozenClock
) -> None:
    alice = await expiring.customer(1)
    await expiring.buys(alice, "250")
    clock.advance(timedelta(days=200))
    await expiring.buys(alice, "40")
    clock.set(add_months(datetime(2026, 5, 1, 2, tzinfo=UTC), 12) - timedelta(days=10))
    soon = await expiring.loyalty.summary(alice)
    assert (soon.balance, soon.expiring_soon) == (290, 250)
    assert soon.next_expiry == datetime(2027, 5, 1, 2, tzinfo=UTC)

    clock.advance(timedelta(days=11))
    later = await expiring.loyalty.summary(alice)
    assert (later.balance, later.expiring_soon) == (40, 0)
    assert later.recent[0].reason == "expired" and later.recent[0].delta == -250
    again = await expiring.loyalty.summary(alice)
    assert again.balance == 40


async def test_spending_uses_the_points_that_expire_first(
    expiring: Care, clock: FrozenClock
) -> None:
    alice = await expiring.customer(1)
    await expiring.buys(alice, "250")
    clock.advance(timedelta(days=100))
    await expiring.buys(alice, "40")
    redeemed = await expiring.rewards.redeem(alice, "coffee", "1:a")
    assert redeemed.balance == 190
    clock.advance(timedelta(days=300))
    assert await expiring.loyalty.expire_all() == 150
    async with expiring.db.session() as session:
        assert await balance_of(session, alice) == 40
    clock.advance(timedelta(days=100))
    assert await expiring.loyalty.expire_all() == 40
    assert await expiring.loyalty.expire_all() == 0


async def test_a_nightly_write_off_covers_everyone(expiring: Care, clock: FrozenClock) -> None:
    people = [await expiring.customer(10 + n, f"P{n}") for n in range(3)]
    for person in people:
        await expiring.buys(person, "120")
    clock.advance(timedelta(days=400))
    assert await expiring.loyalty.expire_all() == 360
    assert await expiring.loyalty.expire_all() == 0


def test_months_are_added_on_the_calendar() -> None:
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 11, 15, tzinfo=UTC), 14) == datetime(2028, 1, 15, tzinfo=UTC)
