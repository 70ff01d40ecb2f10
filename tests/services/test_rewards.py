"""Redeeming points for rewards: once per confirmation, never past the balance or the stock,
even when presses arrive at the same moment."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from models import Coupon, PointsEntry
from models.database import Database
from services.clock import FrozenClock
from services.loyalty import balance_of
from services.policy import Policy, Reward
from services.rewards import RedeemStatus, normalize_code
from tests.services.care_helpers import Care, care


@pytest.fixture
def shop(db: Database, policy: Policy, clock: FrozenClock) -> Care:
    return care(db, policy, clock)


async def ledger_sum(db: Database, customer_id: int) -> int:
    async with db.session() as session:
        return await balance_of(session, customer_id)


async def coupons(db: Database, customer_id: int) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Coupon).where(Coupon.customer_id == customer_id)
        )
        return int(count or 0)


async def test_a_reward_costs_its_points_and_gives_a_coupon(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "750")
    result = await shop.rewards.redeem(alice, "voucher_20", "1:a")
    assert result.status is RedeemStatus.REDEEMED and result.balance == 250
    assert result.coupon is not None and len(result.coupon.code) == 9
    assert (await shop.rewards.find(result.coupon.code.lower().replace("-", " "))) is not None
    async with shop.db.session() as session:
        entry = await session.scalar(select(PointsEntry).where(PointsEntry.reason == "redeem"))
    assert entry is not None and (entry.delta, entry.reference) == (-500, result.coupon.code)


async def test_not_enough_points_changes_nothing(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "99")
    result = await shop.rewards.redeem(alice, "coffee", "1:a")
    assert (result.status, result.balance, result.missing) == (RedeemStatus.NOT_ENOUGH, 99, 1)
    assert await coupons(shop.db, alice) == 0
    assert await ledger_sum(shop.db, alice) == 99


async def test_an_unknown_reward_is_refused(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "999")
    assert (await shop.rewards.redeem(alice, "yacht", "1:a")).status is RedeemStatus.UNKNOWN


async def test_the_same_confirmation_twice_redeems_once(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "1000")
    first = await shop.rewards.redeem(alice, "coffee", "1:same")
    again = await shop.rewards.redeem(alice, "coffee", "1:same")
    assert again.status is RedeemStatus.ALREADY and again.coupon == first.coupon
    assert again.balance == 900


async def test_concurrent_confirmations_never_spend_the_same_points_twice(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "1000")
    results = await asyncio.gather(
        *(shop.rewards.redeem(alice, "voucher_20", f"1:{n}") for n in range(8))
    )
    statuses = sorted(r.status.value for r in results)
    assert statuses.count("redeemed") == 2 and statuses.count("not_enough") == 6
    assert await ledger_sum(shop.db, alice) == 0
    assert await coupons(shop.db, alice) == 2


async def test_concurrent_presses_of_one_confirmation_give_one_coupon(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "1000")
    results = await asyncio.gather(*(shop.rewards.redeem(alice, "coffee", "1:x") for _ in range(6)))
    assert sorted(r.status.value for r in results) == ["already"] * 5 + ["redeemed"]
    assert len({r.coupon.code for r in results if r.coupon}) == 1
    assert await ledger_sum(shop.db, alice) == 900


async def test_stock_runs_out_across_customers_at_once(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    limited = policy.model_copy(
        update={"rewards": (Reward(key="mug", name={"zh": "杯", "en": "Mug"}, cost=10, stock=3),)}
    )
    shop = care(db, limited, clock)
    people = [await shop.customer(100 + n, f"P{n}") for n in range(6)]
    for person in people:
        await shop.buys(person, "50")
    results = await asyncio.gather(*(shop.rewards.redeem(p, "mug", f"{p}:1") for p in people))
    assert sorted(r.status.value for r in results) == ["out_of_stock"] * 3 + ["redeemed"] * 3
    for person, result in zip(people, results, strict=True):
        expected = 40 if result.status is RedeemStatus.REDEEMED else 50
        assert await ledger_sum(db, person) == expected
    catalogue = await shop.rewards.catalogue(people[0])
    assert catalogue.items[0].left == 0


async def test_a_coupon_is_marked_used_once(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "100")
    code = (await shop.rewards.redeem(alice, "coffee", "1:a")).coupon
    assert code is not None
    changed, found = await shop.rewards.mark_used(code.code, 9001)
    assert changed and found is not None and found.status == "used"
    again, _ = await shop.rewards.mark_used(code.code, 9001)
    assert not again


def test_codes_typed_by_hand_are_normalized() -> None:
    assert normalize_code(" abcd efgh ") == "ABCD-EFGH"
    assert normalize_code("ABCD-EFGH") == "ABCD-EFGH"
