"""/broadcast to an RFM segment: consent and reachability honoured, Telegram's limits kept,
progress and results reported in the staff group, campaign results afterwards."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select, update

from bot.app import Carebot
from models import Campaign, Customer, OutboxMessage, SegmentSnapshot
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.players import Customer as Player
from sandbox.state import Chat
from services.clock import FrozenClock
from services.customers import TelegramProfile
from services.loyalty import Sale
from tests.e2e.conftest import OWNER_ID


async def member(
    carebot: Carebot,
    telegram: Emulator,
    db: Database,
    clock: FrozenClock,
    user_id: int,
    segment: str,
) -> tuple[Player, int]:
    player = telegram.customer(user_id, f"C{user_id}", language_code="en")
    customer, _ = await carebot.dp["customers"].touch(
        TelegramProfile(user_id, user_id, f"C{user_id}", locale="en")
    )
    async with db.transaction() as session:
        session.add(
            SegmentSnapshot(
                customer_id=customer.id,
                frequency=1,
                monetary=Decimal(10),
                segment=segment,
                abc_class="C",
                tier="small",
                computed_at=clock.now(),
            )
        )
    return player, customer.id


async def test_a_broadcast_to_a_segment_reaches_each_eligible_customer_once(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database, clock: FrozenClock
) -> None:
    telegram.limits(True)
    olivia = telegram.staff_member(OWNER_ID, "Olivia", staff_chat, language_code="en")
    at_risk = [await member(carebot, telegram, db, clock, 2000 + i, "at_risk") for i in range(40)]
    champions = [
        await member(carebot, telegram, db, clock, 2100 + i, "champions") for i in range(3)
    ]
    opted_out, unreachable, erased, blocks_later = (p for p, _ in at_risk[:4])
    eligible = [p for p, _ in at_risk[3:]]
    await carebot.dp["customers"].set_marketing(at_risk[0][1], False)
    await carebot.dp["customers"].mark_unreachable(at_risk[1][1])
    async with db.transaction() as session:
        await session.execute(
            update(Customer).where(Customer.id == at_risk[2][1]).values(erased_at=clock.now())
        )
    await carebot.dp["desk"].adjust_points(OWNER_ID, at_risk[5][1], 75, "welcome gift")
    clock.advance(timedelta(minutes=5))
    await carebot.dp["customers"].touch(TelegramProfile(2005, 2005, "C2005", locale="en"))

    await olivia.says_in(staff_chat, "/broadcast")
    await olivia.next_message(chat=staff_chat)
    await olivia.presses("By RFM segment", chat=staff_chat)
    choose = await olivia.presses("At risk", chat=staff_chat)
    assert "37 customers" in choose.text
    preview = await olivia.presses("Points reminder", chat=staff_chat)
    assert "you hold 75 points" in preview.text  # the most recently seen member, as they see it
    confirm = await olivia.next_message(chat=staff_chat)
    assert "37 customers" in confirm.text and f"customer #{at_risk[5][1]}" in confirm.text
    # Blocked a moment ago: Telegram's notice of it has not reached the bot yet.
    blocked_user = telegram.get_user(blocks_later.user_id)
    assert blocked_user is not None
    blocked_user.blocked_bot = True
    await olivia.presses("Send · 37", chat=staff_chat)  # the confirmation loses its buttons
    started = await olivia.next_message(chat=staff_chat)
    assert "Broadcast #1 queued: 37 messages" in started.text

    done = await telegram.wait_for(
        lambda m: m.chat_id == staff_chat.id and "done:" in m.body, timeout=20
    )
    assert "36 delivered, 0 failed, 1 blocked" in done.text
    assert telegram.rate_limited == 0
    for person in eligible:
        if person is blocks_later:
            continue
        texts = [m.text or "" for m in person.messages]
        assert len(texts) == 1 and "points at our shop" in texts[0], (person, texts)
        assert person.messages[0].buttons[-1][0][0] == "🔕 Stop these messages"
    for person in (opted_out, unreachable, erased, blocks_later, *(p for p, _ in champions)):
        assert person.messages == [], person
    async with db.session() as session:
        count = await session.scalar(select(func.count(OutboxMessage.id)))
        campaign = await session.get(Campaign, 1)
    assert count == 37 and campaign is not None and campaign.status == "done"
    assert campaign.outcome == {"delivered": 36, "blocked": 1, "opted_out": 0, "failed": 0}

    # Afterwards: one recipient unsubscribes, another buys within the attribution window.
    await eligible[1].presses("Stop these messages")
    clock.advance(timedelta(days=3))
    await carebot.dp["loyalty"].record_purchase(
        Sale("AFTER-1", Decimal("88.00"), clock.now(), "api", customer_id=at_risk[5][1])
    )
    await olivia.says_in(staff_chat, "/campaigns 1")
    results = (await olivia.next_message(chat=staff_chat)).text
    assert "Audience: By RFM segment: At risk" in results
    assert "delivered 36 · blocked 1 · failed 0 · waiting 0" in results
    assert "Opted out since: 1" in results
    assert "Bought within 14 days: 1 customers, 1 purchases, CN¥88.00" in results
    await olivia.says_in(staff_chat, "/campaigns")
    assert "#1 ·" in (await olivia.next_message(chat=staff_chat)).text


async def test_a_written_text_is_previewed_and_a_second_send_press_sends_nothing(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database, clock: FrozenClock
) -> None:
    olivia = telegram.staff_member(OWNER_ID, "Olivia", staff_chat, language_code="en")
    people = [await member(carebot, telegram, db, clock, 2200 + i, "lost") for i in range(2)]
    await olivia.says_in(staff_chat, "/broadcast")
    await olivia.next_message(chat=staff_chat)
    await olivia.presses("Everyone who opted in", chat=staff_chat)
    await olivia.presses("Write my own", chat=staff_chat)
    await olivia.says_in(staff_chat, "Hi {{ name")
    assert "cannot be sent" in (await olivia.next_message(chat=staff_chat)).text
    # Typed, not formatted: the tags are the staff member's words and stay words.
    await olivia.says_in(staff_chat, "Hi {{ name }}, <b>big</b> sale & more!")
    preview = await olivia.next_message(chat=staff_chat)
    assert preview.text == "Hi C2200, <b>big</b> sale & more!"
    await olivia.next_message(chat=staff_chat)
    button = next(b for b in telegram.messages(staff_chat.id, from_bot=True)[-1].buttons[0])
    confirm_id = telegram.messages(staff_chat.id, from_bot=True)[-1].message_id
    await olivia.presses_data(confirm_id, str(button[1]), chat=staff_chat)
    query = telegram.user_presses(olivia.user_id, staff_chat.id, confirm_id, str(button[1]))
    answer = await telegram.until(lambda: query.answer, 5)
    assert answer is not None and "no longer active" in answer["text"]
    for person, _ in people:
        await telegram.wait_for(lambda m, p=person: m.chat_id == p.chat_id, timeout=10)
        assert [m.text for m in person.messages] == [
            f"Hi C{person.user_id}, <b>big</b> sale & more!"
        ]
    async with db.session() as session:
        assert await session.scalar(select(func.count(Campaign.id))) == 1


async def test_an_empty_audience_is_said_before_anything_is_sent(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    olivia = telegram.staff_member(OWNER_ID, "Olivia", staff_chat, language_code="en")
    await olivia.says_in(staff_chat, "/broadcast")
    await olivia.next_message(chat=staff_chat)
    await olivia.presses("By birthday month", chat=staff_chat)
    empty = await olivia.presses("February", chat=staff_chat)
    assert "Nobody in “By birthday month: February”" in empty.text
    await olivia.says_in(staff_chat, "/cancel")
    assert "nothing was sent" in (await olivia.next_message(chat=staff_chat)).text
