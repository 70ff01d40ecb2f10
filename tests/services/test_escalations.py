"""SLA escalation: a ticket unanswered past the SLA alerts the staff group once; past twice
the SLA a louder alert calls the admins by name."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Role, StaffMember, Ticket
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy
from tests.services.outreach_helpers import OWNER, STAFF_CHAT, Shop, local, shop


@pytest.fixture
def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-01 14:00"))
    return shop(db, policy, clock)


async def test_a_ticket_past_the_sla_alerts_the_staff_once(care: Shop, clock: FrozenClock) -> None:
    ann = await care.customer("Ann")
    now = clock.now()
    late = await care.ticket(ann, kind="complaint", opened=now - timedelta(minutes=41))
    await care.ticket(ann, opened=now - timedelta(minutes=50), answered=now - timedelta(minutes=45))
    await care.ticket(ann, opened=now - timedelta(minutes=20))
    await care.ticket(ann, opened=now - timedelta(hours=2), closed=now - timedelta(hours=1))

    assert await care.jobs.escalations.send() == 1
    assert await care.jobs.escalations.send() == 0

    (alert,) = await care.messages("sla")
    assert alert.dedupe_key == f"sla:{late}:1"
    assert alert.chat_id == STAFF_CHAT and not alert.quiet and alert.customer_id is None
    assert f"Ticket #{late} is waiting" in alert.text
    assert "Complaint from Ann" in alert.text and "no answer for 41 min" in alert.text


async def test_past_twice_the_sla_the_admins_are_called(care: Shop, clock: FrozenClock) -> None:
    async with care.db.transaction() as session:
        session.add(
            StaffMember(telegram_id=7001, name="Ada", role=Role.ADMIN, created_at=clock.now())
        )
        session.add(
            StaffMember(telegram_id=7002, name="Abe", role=Role.AGENT, created_at=clock.now())
        )
    ann = await care.customer("Ann")
    late = await care.ticket(ann, opened=clock.now() - timedelta(minutes=35))
    assert await care.jobs.escalations.send() == 1
    clock.advance(timedelta(minutes=24))
    assert await care.jobs.escalations.send() == 0
    clock.advance(timedelta(minutes=1))

    assert await care.jobs.escalations.send() == 1
    assert await care.jobs.escalations.send() == 0

    louder = (await care.messages("sla"))[-1]
    assert louder.dedupe_key == f"sla:{late}:2"
    assert "ESCALATION" in louder.text and "1 h 0 min" in louder.text
    assert f'<a href="tg://user?id={OWNER}">' in louder.text
    assert '<a href="tg://user?id=7001">Ada</a>' in louder.text and "7002" not in louder.text
    async with care.db.session() as session:
        level = await session.scalar(select(Ticket.escalation_level).where(Ticket.id == late))
    assert level == 2


async def test_nothing_is_sent_without_a_staff_group(
    db: Database, policy: Policy, clock: FrozenClock
) -> None:
    care = shop(db, policy, clock, staff_chat=None)
    ann = await care.customer("Ann")
    await care.ticket(ann, opened=clock.now() - timedelta(hours=3))
    assert await care.jobs.escalations.send() == 0
