"""Whoever watches a database's points hears of a customer's purchases and points once the
transaction that wrote them has committed, and only then."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from models.database import Database
from services.clock import FrozenClock
from services.customers import Customers, TelegramProfile
from services.loyalty import Loyalty, Sale
from services.policy import Policy


class _Refused(Exception):
    pass


async def test_watchers_hear_of_points_once_their_transaction_commits(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    loyalty = Loyalty(db, policy, clock)
    ann, _ = await Customers(db, policy, clock, loyalty).touch(
        TelegramProfile(telegram_id=701, chat_id=701, first_name="Ann")
    )
    told: list[list[int]] = []

    def broken(_customers: list[int]) -> None:
        raise RuntimeError("this watcher is broken")

    db.watch_points(broken)
    db.watch_points(told.append)
    sale = Sale(
        reference="POS-1",
        amount=Decimal("80"),
        occurred_at=clock.now() - timedelta(hours=1),
        channel="api",
        customer_id=ann.id,
    )
    assert (await loyalty.record_purchase(sale)).created
    assert told == [[ann.id]]

    with pytest.raises(_Refused):
        async with db.transaction() as session:
            await loyalty.credit(session, ann.id, 30, "goodwill")
            await session.flush()
            raise _Refused
    await loyalty.summary(ann.id)
    assert told == [[ann.id]]

    async with db.transaction() as session:
        await loyalty.credit(session, ann.id, 20, "goodwill")
    assert told == [[ann.id], [ann.id]]
    # The broken watcher changed nothing of what was committed.
    assert (await loyalty.summary(ann.id)).balance == 100
