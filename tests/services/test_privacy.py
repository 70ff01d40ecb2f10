"""Privacy: the customer's own copy of their data, and erasure that keeps only anonymous
figures."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models import (
    AuditEntry,
    Customer,
    InboxUpdate,
    OutboxMessage,
    Purchase,
    SurveyAnswer,
    TicketMessage,
)
from models.database import Database
from models.staff import CUSTOMER_ERASED
from services.clock import FrozenClock
from services.customers import Customers
from services.loyalty import balance_of
from services.outbox import Outgoing
from services.policy import Policy
from services.privacy import Privacy
from services.profile import Profile
from tests.services.care_helpers import Care, care
from tests.services.test_surveys import answer_all

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def shop(db: Database, policy: Policy, clock: FrozenClock) -> Care:
    shop = care(db, policy, clock)
    await shop.surveys.sync(policy.surveys)
    return shop


async def a_full_customer(shop: Care) -> int:
    alice = await shop.customer(1001, "Alice")
    await shop.customers.link_phone(alice, "+8613800138000")
    profile = Profile(shop.db, shop.clock, ZONE)
    await profile.set_birthday(alice, "1990-05-17")
    await profile.set_region(alice, "Shanghai")
    await shop.buys(alice, "250")
    await shop.tickets.open(alice, "complaint", "The lid leaks")
    await answer_all(shop.surveys, alice, rating=2, nps=4, choice=0)
    async with shop.db.transaction() as session:
        session.add(
            InboxUpdate(
                update_id=1,
                payload={"update_id": 1, "message": {"from": {"id": 1001}, "text": "hi"}},
                update_type="message",
                status="done",
                received_at=shop.clock.now(),
            )
        )
        session.add(
            InboxUpdate(
                update_id=2,
                payload={"update_id": 2, "callback_query": {"from": {"id": 2002}}},
                update_type="callback_query",
                status="done",
                received_at=shop.clock.now(),
            )
        )
    return alice


async def test_the_export_holds_everything_about_the_customer(shop: Care) -> None:
    alice = await a_full_customer(shop)
    data = await Privacy(shop.db, shop.clock).export(alice)
    json.dumps(data)  # plain data, ready to send as a file
    assert data["profile"]["name"] == "Alice"
    assert data["profile"]["phone"] == "+8613800138000"
    assert data["profile"]["birthday"] == "1990-05-17"
    assert data["points_balance"] == 250
    assert data["purchases"][0]["amount"] == "250.00"
    assert data["tickets"][0]["messages"][0]["text"] == "The lid leaks"
    answers = data["survey_responses"][0]["answers"]
    assert [a["value"] for a in answers[:3]] == [2, 4, 0] and answers[3]["text"].startswith("note")


async def test_erasure_forgets_the_person_and_keeps_the_figures(shop: Care) -> None:
    alice = await a_full_customer(shop)
    privacy = Privacy(shop.db, shop.clock)
    erasure = await privacy.erase(alice)
    assert erasure is not None and erasure.telegram_id == 1001
    assert await privacy.erase(alice) is None
    async with shop.db.session() as session:
        customer = await session.get(Customer, alice)
        assert customer is not None and customer.is_erased
        assert (customer.name, customer.phone, customer.birthday, customer.region) == (
            None,
            None,
            None,
            None,
        )
        assert (customer.telegram_id, customer.username, customer.marketing_opt_in) == (
            None,
            None,
            False,
        )
        purchase = await session.scalar(select(Purchase))
        assert purchase is not None and purchase.amount == 250 and purchase.phone is None
        assert await balance_of(session, alice) == 250
        assert [m.text for m in await session.scalars(select(TicketMessage))] == [None]
        answers = list(await session.scalars(select(SurveyAnswer).order_by(SurveyAnswer.id)))
        assert [a.value for a in answers[:3]] == [2, 4, 0] and answers[3].text is None
        assert [u.update_id for u in await session.scalars(select(InboxUpdate))] == [2]
        # The audit log says that it happened, and nothing of who they were.
        erased = (
            await session.scalars(select(AuditEntry).where(AuditEntry.action == CUSTOMER_ERASED))
        ).one()
        assert (erased.target_type, erased.target_id) == ("customer", str(alice))
        assert erased.actor_telegram_id is None and erased.before is None and erased.after is None
    results = await shop.surveys.results("post_purchase")
    assert results is not None and results.questions[0].average == 2.0


async def test_coming_back_after_erasure_starts_afresh(shop: Care) -> None:
    alice = await a_full_customer(shop)
    await Privacy(shop.db, shop.clock).erase(alice)
    again = await shop.customer(1001, "Alice")
    assert again != alice
    customers = Customers(shop.db, shop.policy, shop.clock, shop.loyalty)
    fresh = await customers.get(again)
    assert fresh is not None and fresh.phone is None and not fresh.is_erased


async def test_messages_queued_for_an_erased_customer_are_dropped(shop: Care) -> None:
    alice = await a_full_customer(shop)
    await shop.outbox.enqueue(
        [Outgoing(key="x:1", chat_id=1001, text="Dear Alice", kind="test", customer_id=alice)]
    )
    await Privacy(shop.db, shop.clock).erase(alice)
    async with shop.db.session() as session:
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == "x:1"))
    assert row is not None and (row.status, row.text) == ("skipped", "")
