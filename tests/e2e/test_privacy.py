"""Profile and privacy in the chat: edits checked strictly, /mydata sends everything,
/forgetme erases the person and the staff see an erased customer."""

from __future__ import annotations

import json

from sqlalchemy import select

from bot.app import Carebot
from models import Customer, OutboxMessage
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.state import Chat
from services.outbox import Outgoing
from tests.e2e.care import purchase, registered
from tests.e2e.conftest import STAFF_CHAT
from tests.e2e.helpers import eventually


async def test_the_birthday_must_exist_on_the_calendar(
    telegram: Emulator, carebot: Carebot
) -> None:
    alice = telegram.customer(2301, "Alice", language_code="en")
    await registered(carebot, alice)
    profile = await alice.says("/profile")
    assert "Birthday: —" in profile.text
    assert "YYYY-MM-DD" in (await alice.presses("🎂 Birthday")).text
    assert "no such day as 2026-02-31" in (await alice.says("2026-02-31")).text
    assert "YYYY-MM-DD" in (await alice.says("31.02.1990")).text
    assert "type it in words" in (await alice.sends_photo()).text
    saved, shown = await alice.says("1990-05-17", expect=2)
    assert "Saved" in saved.text and "Birthday: May 17, 1990" in shown.text


async def test_name_region_and_offers_are_edited_from_the_profile(
    telegram: Emulator, carebot: Carebot
) -> None:
    bob = telegram.customer(2302, "Bob", language_code="en")
    await registered(carebot, bob)
    await bob.says("/profile")
    await bob.presses("✏️ Name")
    assert "under 64" in (await bob.says("B" * 80)).text
    _, shown = await bob.says("Bobby <Tables>", expect=2)
    assert "Name: Bobby &lt;Tables&gt;" in shown.html
    await bob.presses("📍 Region")
    _, shown = await bob.says("Hangzhou", expect=2)
    assert "Region: Hangzhou" in shown.text
    off = await bob.presses("🔕 Turn offers off")
    assert "no more offers" in off.text
    customer = await carebot.dp["customers"].by_telegram(2302)
    assert customer is not None and not customer.marketing_opt_in
    shown = await bob.next_message()
    assert "Offers and news: off" in shown.text
    assert shown.buttons[-1][0][0] == "🔔 Turn offers on"


async def test_mydata_sends_everything_stored(telegram: Emulator, carebot: Carebot) -> None:
    carol = telegram.customer(2303, "Carol", language_code="en", phone="+8613800138003")
    customer_id = await registered(carebot, carol)
    await carol.shares_contact(expect=2)
    await purchase(carebot, carol, customer_id, "88.50")
    reply = await carol.says("/mydata")
    assert reply.document is not None and reply.document_name == f"mydata-{customer_id}.json"
    data = json.loads(reply.document)
    assert data["profile"]["name"] == "Carol"
    assert data["profile"]["phone"] == "+8613800138003"
    assert data["purchases"][0]["amount"] == "88.50"
    assert data["points_balance"] == 88
    assert "everything we keep" in reply.caption


async def test_forgetme_erases_the_person_and_staff_see_an_erased_customer(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database
) -> None:
    dora = telegram.customer(2304, "Dora", language_code="en", phone="+8613800138004")
    customer_id = await registered(carebot, dora)
    await dora.shares_contact(expect=2)
    await purchase(carebot, dora, customer_id, "300")
    await dora.says("/feedback")
    await dora.presses("Question")
    await dora.says("Do you deliver to Suzhou?")
    await dora.presses("Send")
    ticket = await telegram.wait_for(lambda m: "工单 #1" in m.body)

    ask = await dora.says("/forgetme")
    assert "Erase your personal data?" in ask.text
    kept = await dora.presses("No, keep it")
    assert "nothing was erased" in kept.text
    await dora.says("/forgetme")
    gone = await dora.presses("Yes, erase")
    assert "has been erased" in gone.text

    async with db.session() as session:
        erased = await session.get(Customer, customer_id)
    assert erased is not None and erased.is_erased
    assert (erased.name, erased.phone, erased.telegram_id) == (None, None, None)
    summary = await carebot.dp["loyalty"].summary(customer_id)
    assert summary.balance == 300

    def renamed() -> bool | None:
        return staff_chat.topics[ticket.thread_id or 0].name.startswith("已删除的客户") or None

    assert await telegram.until(renamed, 5)
    owner = telegram.staff_member(9001, "Olga", staff_chat)
    await owner.says_in(staff_chat, "Yes we do!", thread_id=ticket.thread_id)
    receipt = await telegram.wait_for(lambda m: "未送达" in m.text)
    assert "客户已删除个人数据" in receipt.text and receipt.chat_id == STAFF_CHAT
    assert all(m.text != "Yes we do!" for m in dora.messages)

    again = await dora.says("/start")
    assert "welcome to" in again.text


async def test_stop_stops_offers_until_the_profile_turns_them_on(
    telegram: Emulator, carebot: Carebot, db: Database
) -> None:
    erin = telegram.customer(2305, "Erin", language_code="en")
    customer_id = await registered(carebot, erin)
    assert "no longer receive offers" in (await erin.says("/stop")).text

    def note(key: str, text: str, *, marketing: bool) -> Outgoing:
        return Outgoing(
            key=key,
            chat_id=2305,
            text=text,
            kind="test",
            customer_id=customer_id,
            marketing=marketing,
        )

    await carebot.outbox.enqueue(
        [
            note("offer:1", "Big sale", marketing=True),
            note("parcel:1", "Parcel sent", marketing=False),
        ]
    )
    carebot.sender.wake()
    assert (await erin.next_message()).text == "Parcel sent"

    async def offer_skipped() -> bool:
        async with db.session() as session:
            status = await session.scalar(
                select(OutboxMessage.status).where(OutboxMessage.dedupe_key == "offer:1")
            )
        return status == "skipped"

    await eventually(offer_skipped)
    assert all(m.text != "Big sale" for m in erin.messages)

    await erin.says("/profile")
    assert "receive our offers" in (await erin.presses("🔔 Turn offers on")).text
    await carebot.outbox.enqueue([note("offer:2", "Bigger sale", marketing=True)])
    carebot.sender.wake()

    def offered() -> bool | None:
        return any(m.text == "Bigger sale" for m in erin.messages) or None

    assert await telegram.until(offered, 5)
