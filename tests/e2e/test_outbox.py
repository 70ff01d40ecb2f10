"""Proactive messages: enqueued once by key, claimed once, consent honoured. Telegram's
limits and faults are in tests/reliability/test_telegram_faults.py."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.app import Carebot
from models import OutboxMessage
from models.database import Database
from sandbox.emulator import Emulator
from services.clock import FrozenClock
from services.customers import TelegramProfile
from services.outbox import Outbox, Outgoing
from tests.e2e.helpers import eventually


async def customer_id(carebot: Carebot, telegram_id: int, name: str) -> int:
    customer, _ = await carebot.dp["customers"].touch(
        TelegramProfile(telegram_id=telegram_id, chat_id=telegram_id, first_name=name, locale="en")
    )
    return int(customer.id)


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
    assert "no longer receive offers" in (confirmation.text or "")
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
    assert "不再收到" in ((await quinn.says("/stop")).text or "")
    customer = await carebot.dp["customers"].by_telegram(1702)
    assert customer is not None and not customer.marketing_opt_in


async def test_a_sender_never_takes_back_a_message_it_still_holds(
    db: Database, clock: FrozenClock
) -> None:
    outbox = Outbox(db, clock, claim_timeout=timedelta(seconds=2))
    await outbox.enqueue([Outgoing(key="slow:1", chat_id=1801, text="slow", kind="test")])
    (held,) = await outbox.claim(10)
    clock.advance(timedelta(seconds=3))  # its request is slow: the claim timed out

    assert await outbox.claim(10, busy={held.id}) == []
    (again,) = await outbox.claim(10)  # as a sender that died would leave it
    assert again.id == held.id and again.claim_token != held.claim_token
