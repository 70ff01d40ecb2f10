"""Tickets: filed with a short number, taken and closed by staff, the first response timed,
rated once, and a low rating's apology granted once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import OutboxMessage, Role
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy, Recovery, Reward
from services.tickets import (
    Attachment,
    GrantOutcome,
    Outcome,
    RatingOutcome,
    StaffRef,
    TicketError,
)
from tests.services.care_helpers import Care, care

AGENT = StaffRef(501, "Sam", Role.AGENT)


@pytest.fixture
def shop(db: Database, policy: Policy, clock: FrozenClock) -> Care:
    return care(db, policy, clock)


async def test_feedback_becomes_a_ticket_with_its_photos(shop: Care) -> None:
    alice = await shop.customer(1)
    ticket = await shop.tickets.open(
        alice, "complaint", "  The mug arrived broken  ", [Attachment("photo", "PH1")]
    )
    assert (ticket.id, ticket.status, ticket.text) == (1, "open", "The mug arrived broken")
    assert ticket.attachments == (Attachment("photo", "PH1"),)
    assert [t.id for t in await shop.tickets.open_of(alice)] == [1]


@pytest.mark.parametrize(
    ("kind", "text", "reason"),
    [("rant", "x", "kind"), ("praise", "   ", "empty"), ("question", "x" * 4001, "too_long")],
)
async def test_feedback_that_cannot_be_filed(shop: Care, kind: str, text: str, reason: str) -> None:
    alice = await shop.customer(1)
    with pytest.raises(TicketError) as error:
        await shop.tickets.open(alice, kind, text)
    assert error.value.reason == reason
    assert await shop.tickets.open_of(alice) == []


async def test_the_first_staff_answer_is_timed(shop: Care, clock: FrozenClock) -> None:
    alice = await shop.customer(1)
    ticket = await shop.tickets.open(alice, "question", "Opening hours?")
    clock.advance(timedelta(minutes=12))
    first = await shop.tickets.staff_said(ticket.id, AGENT, "9 to 9", staff_chat_message_id=77)
    clock.advance(timedelta(minutes=5))
    await shop.tickets.staff_said(ticket.id, AGENT, "every day")
    answered = await shop.tickets.get(ticket.id)
    assert answered is not None and answered.first_response_at is not None
    assert answered.first_response_at - answered.created_at == timedelta(minutes=12)
    assert (await shop.tickets.by_staff_message(77)) == answered
    await shop.tickets.delivered(first, ok=True, customer_message_id=5)


async def test_sla_breaches_are_measurable(shop: Care, clock: FrozenClock) -> None:
    alice = await shop.customer(1)
    start = clock.now()
    quick = await shop.tickets.open(alice, "question", "a")
    slow = await shop.tickets.open(alice, "question", "b")
    never = await shop.tickets.open(alice, "question", "c")
    clock.advance(timedelta(minutes=10))
    await shop.tickets.staff_said(quick.id, AGENT, "ok")
    clock.advance(timedelta(minutes=40))
    await shop.tickets.staff_said(slow.id, AGENT, "sorry")
    assert [t.id for t in await shop.tickets.overdue()] == [never.id]
    times = await shop.tickets.response_times(start, clock.now())
    assert (times.opened, times.answered, times.breaches, times.sla_minutes) == (3, 2, 2, 30)
    assert times.median_minutes == 30


async def test_take_then_close_then_a_rating(shop: Care) -> None:
    alice = await shop.customer(1)
    ticket = await shop.tickets.open(alice, "suggestion", "More tea")
    taken = await shop.tickets.take(ticket.id, AGENT)
    assert taken.outcome is Outcome.DONE and taken.ticket and taken.ticket.assignee == "Sam"
    assert (await shop.tickets.take(ticket.id, AGENT)).outcome is Outcome.ALREADY
    early = await shop.tickets.rate(alice, ticket.id, 5)
    assert early.outcome is RatingOutcome.NOT_CLOSED
    closed = await shop.tickets.close(ticket.id, AGENT)
    assert closed.outcome is Outcome.DONE and closed.ticket and not closed.ticket.is_open
    assert (await shop.tickets.close(ticket.id, AGENT)).outcome is Outcome.ALREADY
    assert (await shop.tickets.take(ticket.id, AGENT)).outcome is Outcome.CLOSED
    rated = await shop.tickets.rate(alice, ticket.id, 4)
    assert rated.outcome is RatingOutcome.RATED and not rated.low
    assert (await shop.tickets.rate(alice, ticket.id, 1)).outcome is RatingOutcome.ALREADY
    csat = await shop.tickets.csat(ticket.created_at, ticket.created_at + timedelta(days=1))
    assert (csat.count, csat.average, csat.distribution[4]) == (1, 4.0, 1)


async def test_ratings_out_of_range_or_for_someone_else_are_refused(shop: Care) -> None:
    alice = await shop.customer(1)
    bob = await shop.customer(2, "Bob")
    ticket = await shop.tickets.open(alice, "question", "?")
    await shop.tickets.close(ticket.id, AGENT)
    assert (await shop.tickets.rate(alice, ticket.id, 6)).outcome is RatingOutcome.OUT_OF_RANGE
    assert (await shop.tickets.rate(bob, ticket.id, 5)).outcome is RatingOutcome.UNKNOWN
    assert (await shop.tickets.rate(alice, 999, 5)).outcome is RatingOutcome.UNKNOWN


async def test_a_low_rating_proposes_points_granted_once(shop: Care) -> None:
    alice = await shop.customer(1)
    ticket = await shop.tickets.open(alice, "complaint", "Rude")
    await shop.tickets.close(ticket.id, AGENT)
    rating = await shop.tickets.rate(alice, ticket.id, 2)
    assert rating.low and rating.offer is not None
    assert (rating.offer.kind, rating.offer.points) == ("points", 200)
    assert await shop.tickets.explain(alice, ticket.id, "Nobody listened")
    assert not await shop.tickets.explain(alice, ticket.id, "twice")

    grant = await shop.tickets.grant(rating.offer.id, AGENT)
    assert (grant.outcome, grant.balance) == (GrantOutcome.GRANTED, 200)
    assert (await shop.tickets.grant(rating.offer.id, AGENT)).outcome is GrantOutcome.ALREADY
    summary = await shop.loyalty.summary(alice)
    assert summary.balance == 200 and summary.recent[0].reason == "recovery"
    async with shop.db.session() as session:
        note = await session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "recovery"))
    assert note is not None and note.text == "recovery_granted:en"


async def test_the_apology_can_be_a_coupon(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    coupon_policy = policy.model_copy(
        update={
            "rewards": (Reward(key="cake", name={"zh": "蛋糕", "en": "Cake"}, cost=50),),
            "recovery": Recovery(kind="coupon", reward="cake"),
        }
    )
    shop = care(db, coupon_policy, clock)
    alice = await shop.customer(1)
    ticket = await shop.tickets.open(alice, "complaint", "Cold coffee")
    await shop.tickets.close(ticket.id, AGENT)
    rating = await shop.tickets.rate(alice, ticket.id, 1)
    assert rating.offer is not None
    grant = await shop.tickets.grant(rating.offer.id, AGENT)
    assert grant.offer is not None and grant.offer.coupon_code is not None
    coupon = await shop.rewards.find(grant.offer.coupon_code)
    assert coupon is not None and (coupon.reward_key, coupon.cost, coupon.source) == (
        "cake",
        0,
        "recovery",
    )


async def test_one_topic_per_customer_and_chat(shop: Care) -> None:
    alice = await shop.customer(1)
    first = await shop.tickets.save_topic(-100, alice, 11)
    second = await shop.tickets.save_topic(-100, alice, 12)
    assert second.thread_id == first.thread_id == 11
    assert await shop.tickets.customer_of_thread(-100, 11) == alice
    await shop.tickets.forget_topic(-100, alice)
    assert await shop.tickets.topic(-100, alice) is None


async def test_the_card_sums_up_the_customer(shop: Care) -> None:
    alice = await shop.customer(1)
    await shop.buys(alice, "120")
    ticket = await shop.tickets.open(alice, "question", "?")
    card = await shop.tickets.card(alice)
    assert card is not None
    assert (card.name, card.balance, card.tier.key, card.segment) == ("Alice", 120, "small", None)
    assert [t.id for t in card.open_tickets] == [ticket.id]
    assert len(card.purchases) == 1
    await shop.tickets.close(ticket.id, AGENT)
    changed = await shop.tickets.card(alice)
    assert changed is not None and changed.open_tickets == ()
