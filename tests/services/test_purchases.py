"""Recording sales: points, refunds, unlinked phones, idempotency, tier-up notes."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from models import OutboxMessage
from models.database import Database
from services.clock import FrozenClock
from services.customers import Customers, TelegramProfile
from services.loyalty import Loyalty, Sale, SaleError
from services.outbox import Outbox
from services.policy import Policy


class Words:
    def render(self, template: str, locale: str, /, **context: Any) -> str:
        return f"{template}:{locale}:{context['tier'].key}"

    def label(self, key: str, locale: str) -> str:
        return key


@pytest.fixture
def loyalty(db: Database, policy: Policy, clock: FrozenClock) -> Loyalty:
    return Loyalty(db, policy, clock, Outbox(db, clock), Words())


async def new_customer(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty, tid: int
) -> int:
    customers = Customers(db, policy, clock, loyalty)
    customer, _ = await customers.touch(
        TelegramProfile(telegram_id=tid, chat_id=tid, first_name="A")
    )
    return customer.id


def sale(reference: str, amount: str, clock: FrozenClock, **who: Any) -> Sale:
    return Sale(
        reference=reference, amount=Decimal(amount), occurred_at=clock.now(), channel="api", **who
    )


async def test_a_sale_earns_floor_of_amount_times_rate(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty
) -> None:
    cid = await new_customer(db, policy, clock, loyalty, 1)
    result = await loyalty.record_purchase(sale("R-1", "250.99", clock, customer_id=cid))
    assert (result.created, result.points_awarded, result.balance) == (True, 250, 250)


async def test_the_same_reference_twice_changes_nothing(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty
) -> None:
    cid = await new_customer(db, policy, clock, loyalty, 1)
    first = await loyalty.record_purchase(sale("R-1", "100", clock, customer_id=cid))
    again = await loyalty.record_purchase(sale("R-1", "100", clock, customer_id=cid))
    assert not again.created
    assert (again.purchase_id, again.points_awarded, again.balance) == (first.purchase_id, 100, 100)


async def test_concurrent_requests_with_one_reference_record_one_sale(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty
) -> None:
    cid = await new_customer(db, policy, clock, loyalty, 1)
    results = await asyncio.gather(
        *(loyalty.record_purchase(sale("R-9", "80", clock, customer_id=cid)) for _ in range(5))
    )
    assert sum(r.created for r in results) == 1
    assert {r.purchase_id for r in results} == {results[0].purchase_id}
    assert {r.balance for r in results} == {80}


async def test_a_higher_tier_earns_with_its_multiplier_and_is_congratulated(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty
) -> None:
    cid = await new_customer(db, policy, clock, loyalty, 1)
    clock.advance(timedelta(days=-1))
    await loyalty.record_purchase(sale("R-1", "1000", clock, customer_id=cid))
    clock.advance(timedelta(days=1))
    second = await loyalty.record_purchase(sale("R-2", "100", clock, customer_id=cid))
    assert second.points_awarded == 150
    async with db.session() as session:
        notes = list(await session.scalars(select(OutboxMessage.text)))
    assert notes == ["tier_up:zh:key"]


async def test_a_refund_takes_back_its_share_and_never_below_zero(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty
) -> None:
    cid = await new_customer(db, policy, clock, loyalty, 1)
    await loyalty.record_purchase(sale("R-1", "200", clock, customer_id=cid))
    half = await loyalty.record_purchase(sale("R-1-r1", "-100", clock, refund_of="R-1"))
    assert (half.points_awarded, half.balance, half.shortfall) == (-100, 100, 0)
    async with db.transaction() as session:
        from models import PointsEntry

        session.add(
            PointsEntry(customer_id=cid, delta=-60, reason="redeem", created_at=clock.now())
        )
    rest = await loyalty.record_purchase(sale("R-1-r2", "-100", clock, refund_of="R-1"))
    assert (rest.points_awarded, rest.balance, rest.shortfall) == (-40, 0, 60)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "0"}, "amount"),
        ({"currency": "USD"}, "currency"),
        ({"customer_id": 999}, "customer_id"),
        ({"telegram_id": 999}, "telegram_id"),
        ({"phone": "12"}, "phone"),
        ({"amount": "-5", "refund_of": None}, "refund_of"),
        ({"amount": "-5", "refund_of": "nope"}, "refund_of"),
        ({"amount": "-500", "refund_of": "R-1"}, "amount"),
    ],
)
async def test_bad_sales_name_the_field_and_store_nothing(
    db: Database,
    policy: Policy,
    clock: FrozenClock,
    loyalty: Loyalty,
    change: dict[str, Any],
    field: str,
) -> None:
    cid = await new_customer(db, policy, clock, loyalty, 1)
    await loyalty.record_purchase(sale("R-1", "100", clock, customer_id=cid))
    values: dict[str, Any] = {"reference": "R-x", "amount": "10", "customer_id": cid}
    values.update(change)
    if "phone" in change or "telegram_id" in change or "refund_of" in change:
        values.pop("customer_id")
    if values.get("refund_of") is None:
        values.pop("refund_of", None)
    with pytest.raises(SaleError) as caught:
        await loyalty.record_purchase(
            Sale(
                occurred_at=clock.now(),
                channel="api",
                **{**values, "amount": Decimal(values["amount"])},
            )
        )
    assert caught.value.field == field
    assert (await loyalty.summary(cid)).balance == 100


async def test_a_sale_for_an_unknown_phone_waits_for_its_customer(
    db: Database, policy: Policy, clock: FrozenClock, loyalty: Loyalty
) -> None:
    waiting = await loyalty.record_purchase(sale("R-1", "120", clock, phone="13800138000"))
    assert (waiting.customer_id, waiting.points_awarded, waiting.balance) == (None, 0, None)
    customers = Customers(db, policy, clock, loyalty)
    customer, _ = await customers.touch(TelegramProfile(telegram_id=5, chat_id=5, first_name="B"))
    link = await customers.link_phone(customer.id, "8613800138000")
    assert (link.purchases, link.points) == (1, 120)
