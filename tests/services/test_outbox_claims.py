"""The outbox's claims: quiet hours decided when a message is taken, a stalled sender's
claim taken over and then refused to it, and rows of a sender that died sent again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.database import Database
from services.clock import FrozenClock
from services.outbox import CLAIM_TIMEOUT, Outbox, Outgoing
from services.policy import Policy
from tests.services.outreach_helpers import ZONE, local


@pytest.fixture
def outbox(db: Database, policy: Policy, clock: FrozenClock) -> Outbox:
    return Outbox(db, clock, quiet_hours=policy.quiet_hours, zone=ZONE)


def message(key: str, *, quiet: bool) -> Outgoing:
    return Outgoing(key=key, chat_id=-100, text=key, kind="test", quiet=quiet)


async def test_quiet_messages_wait_for_the_end_of_quiet_hours(
    outbox: Outbox, clock: FrozenClock
) -> None:
    clock.set(local("2026-05-01 20:59"))
    await outbox.enqueue([message("greeting", quiet=True), message("alert", quiet=False)])
    clock.set(local("2026-05-01 21:00"))
    (alert,) = await outbox.claim(10)
    assert alert.text == "alert"
    await outbox.sent(alert.id, telegram_message_id=7)
    clock.set(local("2026-05-02 08:59"))
    assert await outbox.claim(10) == []
    clock.set(local("2026-05-02 09:00"))
    assert [m.text for m in await outbox.claim(10)] == ["greeting"]


async def test_a_stalled_claim_taken_over_is_not_sent_by_the_first_sender(
    outbox: Outbox, clock: FrozenClock
) -> None:
    await outbox.enqueue([message("one", quiet=False)])
    (first,) = await outbox.claim(10)
    clock.advance(CLAIM_TIMEOUT)
    (second,) = await outbox.claim(10)
    assert second.id == first.id and second.claim_token != first.claim_token
    assert not await outbox.take(first)
    assert await outbox.take(second)


async def test_a_sender_that_died_leaves_its_messages_to_be_sent_again(
    outbox: Outbox, clock: FrozenClock
) -> None:
    await outbox.enqueue([message(f"m{n}", quiet=False) for n in range(3)])
    claimed = await outbox.claim(10)
    await outbox.take(claimed[0])
    await outbox.sent(claimed[0].id, telegram_message_id=501)
    assert await outbox.claim(10) == []
    clock.advance(CLAIM_TIMEOUT - timedelta(seconds=1))
    assert await outbox.claim(10) == []
    clock.advance(timedelta(seconds=1))
    assert [m.text for m in await outbox.claim(10)] == ["m1", "m2"]


async def test_a_taken_claim_is_renewed(outbox: Outbox, clock: FrozenClock) -> None:
    await outbox.enqueue([message("slow", quiet=False)])
    (claimed,) = await outbox.claim(10)
    clock.advance(CLAIM_TIMEOUT - timedelta(seconds=5))
    assert await outbox.take(claimed)
    clock.advance(timedelta(seconds=10))
    assert await outbox.claim(10) == []
