"""Surveys the jobs send: the post-purchase survey some days after a purchase, at most once
per period, and one reminder to rate a closed ticket left unrated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models import SurveyResponse
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy, load_policy
from services.surveys import Surveys
from tests.services.outreach_helpers import Shop, local, shop


@pytest.fixture
async def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-01 11:00"))
    await Surveys(db, clock).sync(policy.surveys)
    return shop(db, policy, clock)


async def test_a_survey_follows_a_purchase_after_the_delay(care: Shop) -> None:
    ann = await care.customer("Ann")
    bought = await care.buys(ann, "80", care.clock.now() - timedelta(days=3, hours=1))
    fresh = await care.customer("Fre")
    await care.buys(fresh, "80", care.clock.now() - timedelta(days=2))
    old = await care.customer("Old")
    await care.buys(old, "80", care.clock.now() - timedelta(days=30))
    back = await care.customer("Ref")
    refunded = await care.buys(back, "80", care.clock.now() - timedelta(days=4))
    await care.refunds(back, refunded, "80")
    opted_out = await care.customer("Opt", marketing=False)
    await care.buys(opted_out, "80", care.clock.now() - timedelta(days=4))
    for hidden in (
        await care.customer("Era", erased=True),
        await care.customer("Blo", reachable=False),
    ):
        await care.buys(hidden, "80", care.clock.now() - timedelta(days=4))

    assert await care.jobs.invitations.send() == 2

    invitations = await care.messages("survey")
    assert {m.customer_id for m in invitations} == {ann.id, opted_out.id}
    first = next(m for m in invitations if m.customer_id == ann.id)
    assert first.dedupe_key == f"survey:purchase:{bought}" and first.quiet
    assert not first.marketing
    assert "How was your purchase?" in first.text
    async with care.db.session() as session:
        response = await session.scalar(
            select(SurveyResponse).where(SurveyResponse.customer_id == ann.id)
        )
    assert response is not None and response.instance == f"purchase:{bought}"
    assert first.reply_markup == {
        "inline_keyboard": [
            [{"text": "📝 Answer the survey", "callback_data": f"svo:0:{response.id}"}]
        ]
    }


async def test_one_survey_per_customer_per_period(care: Shop, clock: FrozenClock) -> None:
    ann = await care.customer("Ann")
    await care.buys(ann, "80", clock.now() - timedelta(days=3))
    assert await care.jobs.invitations.send() == 1
    assert await care.jobs.invitations.send() == 0
    await care.buys(ann, "60")
    clock.advance(timedelta(days=3))
    assert await care.jobs.invitations.send() == 0
    clock.advance(timedelta(days=30))
    await care.buys(ann, "60", clock.now() - timedelta(days=3))
    assert await care.jobs.invitations.send() == 1


async def test_an_invitation_lost_in_a_crash_is_sent_on_the_rerun(care: Shop) -> None:
    ann = await care.customer("Ann")
    bought = await care.buys(ann, "80", care.clock.now() - timedelta(days=3))
    # The run stopped after inviting and before enqueueing the message.
    assert await care.jobs.invitations.surveys.invite(ann.id, "post_purchase", f"purchase:{bought}")
    assert await care.jobs.invitations.send() == 1
    assert await care.keys("survey") == {f"survey:purchase:{bought}"}


async def test_an_unrated_closed_ticket_gets_one_reminder(care: Shop, clock: FrozenClock) -> None:
    ann = await care.customer("Ann")
    now = clock.now()
    unrated = await care.ticket(
        ann, opened=now - timedelta(days=3), closed=now - timedelta(hours=25)
    )
    await care.ticket(ann, opened=now - timedelta(days=3), closed=now - timedelta(hours=26), csat=4)
    await care.ticket(ann, opened=now - timedelta(days=1), closed=now - timedelta(hours=2))
    gone = await care.customer("Blo", reachable=False)
    await care.ticket(gone, opened=now - timedelta(days=3), closed=now - timedelta(hours=25))

    assert await care.jobs.invitations.send() == 1
    assert await care.jobs.invitations.send() == 0

    (reminder,) = await care.messages("csat")
    assert reminder.dedupe_key == f"csat_reminder:{unrated}"
    assert f"ticket #{unrated}" in reminder.text
    assert reminder.reply_markup is not None
    assert [b["callback_data"] for b in reminder.reply_markup["inline_keyboard"][0]] == [
        f"csat:{unrated}:{score}" for score in range(1, 6)
    ]


async def test_a_ticket_survey_follows_a_closed_ticket(
    db: Database, clock: FrozenClock, tmp_path: Path
) -> None:
    override = tmp_path / "carebot.toml"
    override.write_text(
        '[[surveys]]\nkey = "after_ticket"\ntrigger = "ticket"\n'
        'title = { zh = "服务评价", en = "How did we do?" }\n'
        '[[surveys.questions]]\nkind = "rating"\n'
        'text = { zh = "满意吗？", en = "Satisfied?" }\n',
        encoding="utf-8",
    )
    policy = load_policy(override)
    clock.set(local("2026-05-01 11:00"))
    await Surveys(db, clock).sync(policy.surveys)
    care = shop(db, policy, clock)
    ann = await care.customer("Ann")
    now = clock.now()
    ticket = await care.ticket(
        ann, opened=now - timedelta(days=2), closed=now - timedelta(hours=30), csat=5
    )

    assert await care.jobs.invitations.send() == 1

    (invitation,) = await care.messages("survey")
    assert invitation.dedupe_key == f"survey:ticket:{ticket}"
    assert "How did we do?" in invitation.text
