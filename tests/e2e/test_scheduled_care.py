"""Scheduled care end to end: jobs enqueue, the running bot's sender delivers through the
emulator within Telegram's limits, 429s and blocked chats included, each eligible customer
getting exactly one message of each kind."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update

from bot.app import Carebot, make_bot
from jobs.tasks import run_job
from models import Customer, OutboxMessage, OutboxStatus
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.players import Customer as Player
from sandbox.state import Chat
from services.clock import FrozenClock
from services.customers import Customers, TelegramProfile
from services.loyalty import Sale
from services.policy import Policy
from tests.e2e.conftest import make_settings
from tests.e2e.helpers import eventually

BIRTHDAY = date(1991, 5, 1)  # the frozen clock's day: 2026-05-01, 10:00 in Shanghai


async def registered(
    carebot: Carebot, player: Player, *, locale: str = "en", **fields: object
) -> int:
    customers: Customers = carebot.dp["customers"]
    customer, _ = await customers.touch(
        TelegramProfile(
            telegram_id=player.user_id,
            chat_id=player.user_id,
            first_name=player.user.first_name,
            locale=locale,
        )
    )
    if fields:
        async with carebot.db.transaction() as session:
            await session.execute(
                update(Customer).where(Customer.id == customer.id).values(**fields)
            )
    return customer.id


async def settled(db: Database) -> bool:
    async with db.session() as session:
        waiting = await session.scalar(
            select(func.count()).where(
                OutboxMessage.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING))
            )
        )
    return not waiting


async def test_every_eligible_customer_gets_exactly_one_message_despite_429s_and_blocks(
    telegram: Emulator, carebot: Carebot, db: Database, clock: FrozenClock
) -> None:
    telegram.limits(True)
    # The last two never pressed Start: sending to them is refused with 403.
    people = [
        telegram.customer(3000 + n, f"Guest{n}", language_code="en", started=n < 22)
        for n in range(24)
    ]
    ids = {}
    for n, person in enumerate(people):
        ids[person.user_id] = await registered(
            carebot, person, locale="zh" if n % 2 else "en", birthday=BIRTHDAY
        )
        if n < 8:  # key customers: a monthly follow-up as well
            await carebot.dp["loyalty"].record_purchase(
                Sale(
                    reference=f"E2E-{n}",
                    amount=Decimal(1500),
                    occurred_at=clock.now() - timedelta(days=90),
                    channel="test",
                    customer_id=ids[person.user_id],
                )
            )
    blocked, opted_out, erased, refused = people[16:18], people[18], people[19], people[22:]
    async with db.transaction() as session:
        await session.execute(
            update(Customer)
            .where(Customer.id == ids[opted_out.user_id])
            .values(marketing_opt_in=False)
        )
        await session.execute(
            update(Customer).where(Customer.id == ids[erased.user_id]).values(erased_at=clock.now())
        )
    for person in blocked:
        telegram.block(person.user_id)

    async def blocks_seen() -> bool:
        found = [await carebot.dp["customers"].get(ids[p.user_id]) for p in blocked]
        return all(c is not None and not c.reachable for c in found)

    await eventually(blocks_seen)
    telegram.fail_next("sendMessage", 429, count=3, retry_after=1)
    telegram.fail_next("sendMessage", 502, count=1)
    before = {p.user_id: len(p.messages) for p in people}

    # Follow-ups first: a birthday greeting is a contact that defers them.
    followups = await run_job(carebot.jobs, "followups")
    birthdays = await run_job(carebot.jobs, "birthdays")

    assert (birthdays.count, followups.count) == (20, 8)

    async def all_sent() -> bool:
        # The 502 is retried after a backoff: let the frozen clock move on meanwhile.
        clock.advance(timedelta(milliseconds=250))
        carebot.sender.wake()
        return await settled(db)

    await eventually(all_sent, timeout=30)
    assert telegram.rate_limited >= 3
    eligible = [*people[:16], *people[20:22]]
    for person in eligible:
        texts = [m.text or "" for m in person.messages[before[person.user_id] :]]
        greetings = [t for t in texts if "🎂" in t]
        checkins = [t for t in texts if "monthly check-in" in t or "每月一次的回访" in t]
        key_customer = person.user_id < 3008
        assert (len(greetings), len(checkins)) == (1, int(key_customer)), (person.user_id, texts)
    for person in (opted_out, erased, *blocked, *refused):
        assert len(person.messages) == before[person.user_id]
    for person in refused:
        customer = await carebot.dp["customers"].get(ids[person.user_id])
        assert customer is not None and not customer.reachable
    async with db.session() as session:
        failed = list(
            await session.scalars(
                select(OutboxMessage.attempts).where(OutboxMessage.status == OutboxStatus.FAILED)
            )
        )
    assert failed == [0, 0]  # refused once, never retried

    again = [await run_job(carebot.jobs, name) for name in ("birthdays", "followups")]
    assert [done.count for done in again] == [0, 0]


async def test_the_running_bot_leads_the_scheduler_and_catches_up_a_missed_run(
    telegram: Emulator, database_url: str, policy: Policy, clock: FrozenClock, staff_chat: Chat
) -> None:
    settings = make_settings(database_url, telegram.base_url)
    assert settings.bot_token is not None
    app = Carebot(
        settings=settings,
        policy=policy,
        bot=make_bot(settings.bot_token.get_secret_value(), settings.telegram_api_url),
        clock=clock,
        run_scheduler=True,
    )
    ann = telegram.customer(3101, "Ann", language_code="en")
    await registered(app, ann, birthday=BIRTHDAY)
    await app.start()
    try:
        # 10:00 in Shanghai: the 09:00 birthday run was missed while the bot was down.
        greeting = await ann.next_message()
        assert app.scheduler.leading
        assert (greeting.text or "").startswith("🎂 Happy birthday, Ann!")
    finally:
        await app.stop()
