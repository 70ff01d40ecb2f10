"""Proactive messages: enqueued once by key, sent within Telegram's limits, consent honoured."""

from __future__ import annotations

from sqlalchemy import select

from bot.app import Carebot
from models import OutboxMessage
from models.database import Database
from sandbox.emulator import Emulator
from services.customers import TelegramProfile
from services.outbox import Outgoing
from tests.e2e.helpers import eventually


async def customer_id(carebot: Carebot, telegram_id: int, name: str) -> int:
    customer, _ = await carebot.dp["customers"].touch(
        TelegramProfile(telegram_id=telegram_id, chat_id=telegram_id, first_name=name, locale="en")
    )
    return customer.id


def note(key: str, chat: int, customer: int, *, marketing: bool = False) -> Outgoing:
    return Outgoing(
        key=key,
        chat_id=chat,
        text=f"hello {key}",
        kind="test",
        customer_id=customer,
        marketing=marketing,
    )


async def statuses(db: Database) -> dict[str, str]:
    async with db.session() as session:
        rows = await session.execute(select(OutboxMessage.dedupe_key, OutboxMessage.status))
        return {key: status for key, status in rows.all()}


async def test_a_key_is_enqueued_once(carebot: Carebot) -> None:
    cid = await customer_id(carebot, 1401, "Nina")
    assert await carebot.outbox.enqueue([note("k:1", 1401, cid)]) == 1
    assert await carebot.outbox.enqueue([note("k:1", 1401, cid), note("k:2", 1401, cid)]) == 1


async def test_messages_reach_customers_within_telegrams_limits(
    telegram: Emulator, carebot: Carebot, db: Database
) -> None:
    telegram.limits(True)
    people = [telegram.customer(1500 + i, f"C{i}", language_code="en") for i in range(12)]
    ids = [await customer_id(carebot, p.user_id, p.user.first_name) for p in people]
    batch = [
        note(f"wave:{p.user_id}:{n}", p.user_id, cid)
        for p, cid in zip(people, ids, strict=True)
        for n in (1, 2)
    ]
    await carebot.outbox.enqueue(batch)
    carebot.sender.wake()

    async def all_sent() -> bool:
        return set((await statuses(db)).values()) == {"sent"}

    await eventually(all_sent, timeout=10)
    assert telegram.rate_limited == 0
    for person in people:
        assert [m.text for m in person.messages] == [
            f"hello wave:{person.user_id}:1",
            f"hello wave:{person.user_id}:2",
        ]


async def test_blocked_customers_become_unreachable_and_are_not_retried(
    telegram: Emulator, carebot: Carebot, db: Database
) -> None:
    olga = telegram.customer(1601, "Olga", language_code="en")
    cid = await customer_id(carebot, 1601, "Olga")
    telegram.block(1601)
    await carebot.outbox.enqueue([note("blocked:1", 1601, cid)])
    carebot.sender.wake()

    async def failed() -> bool:
        return (await statuses(db)).get("blocked:1") == "failed"

    await eventually(failed)
    customer = await carebot.dp["customers"].get(cid)
    assert customer is not None and not customer.reachable
    assert olga.messages == []
    await carebot.outbox.enqueue([note("blocked:2", 1601, cid)])
    carebot.sender.wake()

    async def skipped() -> bool:
        return (await statuses(db)).get("blocked:2") == "skipped"

    await eventually(skipped)


async def test_marketing_carries_an_unsubscribe_button_that_works(
    telegram: Emulator, carebot: Carebot, db: Database
) -> None:
    pia = telegram.customer(1701, "Pia", language_code="en")
    await pia.says("/start")
    cid = await customer_id(carebot, 1701, "Pia")
    await carebot.outbox.enqueue([note("offer:1", 1701, cid, marketing=True)])
    carebot.sender.wake()
    offer = await pia.next_message()
    assert offer.buttons[-1][0][0] == "🔕 Stop these messages"
    confirmation = await pia.presses("Stop these messages")
    assert "no longer receive offers" in confirmation.text
    await carebot.outbox.enqueue(
        [note("offer:2", 1701, cid, marketing=True), note("service:1", 1701, cid)]
    )
    carebot.sender.wake()
    service = await pia.next_message()
    assert service.text == "hello service:1"

    async def offer_skipped() -> bool:
        return (await statuses(db)).get("offer:2") == "skipped"

    await eventually(offer_skipped)


async def test_stop_command_opts_out(telegram: Emulator, carebot: Carebot) -> None:
    quinn = telegram.customer(1702, "Quinn", language_code="zh")
    await quinn.says("/start")
    assert "不再收到" in (await quinn.says("/stop")).text
    customer = await carebot.dp["customers"].by_telegram(1702)
    assert customer is not None and not customer.marketing_opt_in
