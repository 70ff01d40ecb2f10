"""Birthday greetings: today's birthdays only, at the policy's hour, once a year, with the
tier's gift recorded in the same transaction as the greeting."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Coupon
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy, load_policy
from tests.services.outreach_helpers import Shop, local, shop

BIRTHDAY = date(1990, 5, 1)


@pytest.fixture
def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-01 09:00"))
    return shop(db, policy, clock)


async def test_only_todays_birthdays_that_may_be_written_to_are_greeted(care: Shop) -> None:
    ann = await care.customer("Ann", birthday=BIRTHDAY)
    await care.customer("Bob", birthday=BIRTHDAY, marketing=False)
    await care.customer("Cat", birthday=BIRTHDAY, erased=True)
    await care.customer("Dan", birthday=BIRTHDAY, reachable=False)
    await care.customer("Eve", birthday=date(1990, 5, 2))
    await care.customer("Fay", birthday=BIRTHDAY, chat=False)
    await care.customer("Gus")

    assert await care.jobs.birthdays.send() == 1

    (greeting,) = await care.messages("birthday")
    assert greeting.dedupe_key == f"birthday:{ann.id}:2026"
    assert greeting.chat_id == ann.chat_id and greeting.marketing and greeting.quiet
    assert greeting.text.startswith("🎂 Happy birthday, Ann!")


async def test_a_rerun_greets_nobody_twice(care: Shop, clock: FrozenClock) -> None:
    ann = await care.customer("Ann", birthday=BIRTHDAY)
    assert await care.jobs.birthdays.send() == 1
    assert await care.jobs.birthdays.send() == 0
    clock.advance(timedelta(hours=5))
    assert await care.jobs.birthdays.send() == 0
    assert await care.ledger(ann) == [(50, "birthday", f"birthday:{ann.id}:2026")]


async def test_the_tiers_gift_comes_with_the_greeting(care: Shop, clock: FrozenClock) -> None:
    regular = await care.customer("Rae", birthday=BIRTHDAY)
    await care.buys(regular, "500", clock.now() - timedelta(days=40))

    assert await care.jobs.birthdays.send() == 1

    gift = [e for e in await care.ledger(regular) if e[1] == "birthday"]
    assert gift == [(200, "birthday", f"birthday:{regular.id}:2026")]
    (greeting,) = await care.messages("birthday")
    assert "added 200 points" in greeting.text and "you now have 700" in greeting.text


async def test_a_coupon_gift_is_issued_once(
    db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    override = tmp_path / "carebot.toml"
    override.write_text(
        '[birthdays.gifts]\nkey = { kind = "coupon", reward = "voucher_20" }\n', encoding="utf-8"
    )
    clock.set(local("2026-05-01 09:00"))
    care = shop(db, load_policy(override), clock)
    vip = await care.customer("Vic", birthday=BIRTHDAY)
    await care.buys(vip, "1500", clock.now() - timedelta(days=3))

    assert await care.jobs.birthdays.send() == 1
    assert await care.jobs.birthdays.send() == 0

    async with db.session() as session:
        coupons = list(await session.scalars(select(Coupon).where(Coupon.customer_id == vip.id)))
    assert [(c.reward_key, c.request_key) for c in coupons] == [
        ("voucher_20", f"birthday:{vip.id}:2026")
    ]
    (greeting,) = await care.messages("birthday")
    assert coupons[0].code in greeting.text and "A 20 yuan voucher" in greeting.text


async def test_runs_at_once_greet_and_give_once(care: Shop) -> None:
    ann = await care.customer("Ann", birthday=BIRTHDAY)
    results = await asyncio.gather(*(care.jobs.birthdays.send() for _ in range(3)))
    assert sorted(results) == [0, 0, 1]
    assert len(await care.messages("birthday")) == 1
    assert len([e for e in await care.ledger(ann) if e[1] == "birthday"]) == 1


@pytest.mark.parametrize(
    ("today", "greeted"),
    [("2027-02-28", True), ("2027-03-01", False), ("2028-02-28", False), ("2028-02-29", True)],
)
async def test_29_february_is_kept_on_28_february_in_common_years(
    care: Shop, clock: FrozenClock, today: str, greeted: bool
) -> None:
    leap = await care.customer("Lea", birthday=date(2000, 2, 29))
    clock.set(local(f"{today} 09:00"))
    assert await care.jobs.birthdays.send() == int(greeted)
    if greeted:
        assert await care.keys("birthday") == {f"birthday:{leap.id}:{today[:4]}"}


async def test_greetings_enqueued_early_wait_for_the_birthday_hour(
    care: Shop, clock: FrozenClock
) -> None:
    await care.customer("Ann", birthday=BIRTHDAY)
    clock.set(local("2026-05-01 06:30"))
    assert await care.jobs.birthdays.send() == 1
    (greeting,) = await care.messages("birthday")
    assert greeting.not_before == local("2026-05-01 09:00")
    assert await care.outbox.claim(10) == []
    clock.set(local("2026-05-01 09:00"))
    assert [m.id for m in await care.outbox.claim(10)] == [greeting.id]


async def test_next_year_brings_a_new_greeting(care: Shop, clock: FrozenClock) -> None:
    ann = await care.customer("Ann", birthday=BIRTHDAY)
    assert await care.jobs.birthdays.send() == 1
    clock.set(local("2027-05-01 09:00"))
    assert await care.jobs.birthdays.send() == 1
    assert await care.keys("birthday") == {f"birthday:{ann.id}:2026", f"birthday:{ann.id}:2027"}
