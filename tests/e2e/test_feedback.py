"""Feedback becomes a ticket in the staff group; answers go both ways with word back on
delivery; closing asks the customer for a rating; a low one brings an apology."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import Carebot
from sandbox.emulator import Emulator
from sandbox.players import PNG_1X1, StaffMember
from sandbox.state import Chat
from tests.e2e.care import file_complaint, posted, registered, settled
from tests.e2e.conftest import STAFF_CHAT, AppFactory
from tests.e2e.helpers import eventually


async def test_feedback_reaches_a_forum_topic_and_answers_go_both_ways(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    alice = telegram.customer(2101, "Alice", language_code="en")
    await registered(carebot, alice)
    done = await file_complaint(alice, "The lid of my cup leaks")
    assert "ticket <b>#1</b>" in done.html

    ticket = await posted(telegram)
    assert "工单 #1" in ticket.text and "The lid of my cup leaks" in ticket.text
    assert [label for label, _ in ticket.buttons[0]] == ["🙋 接手", "✅ 关闭"]
    topic = staff_chat.topics[ticket.thread_id or 0]
    assert topic.name == "Alice · #1"
    card = telegram.find_message(STAFF_CHAT, staff_chat.pinned[-1])
    assert card is not None and card.thread_id == topic.thread_id
    assert "Alice" in card.text and "小客户" in card.text and "#1 投诉" in card.text
    photo = telegram.messages(STAFF_CHAT, from_bot=True)[-1]
    assert photo.photo is not None and photo.thread_id == topic.thread_id

    owner = telegram.staff_member(9001, "Olga", staff_chat)
    await owner.says_in(staff_chat, "Sorry! A new lid is on its way.", thread_id=topic.thread_id)
    answer = await alice.next_message()
    assert answer.text == "Sorry! A new lid is on its way."
    receipt = await telegram.wait_for(lambda m: m.chat_id == STAFF_CHAT and "已送达" in m.text)
    assert receipt.thread_id == topic.thread_id

    telegram.user_sends_file(
        9001, "photo", PNG_1X1, caption="This one", chat_id=STAFF_CHAT, thread_id=topic.thread_id
    )
    picture = await alice.next_message()
    assert picture.photo == PNG_1X1 and picture.caption == "This one"

    await alice.says("Thank you, when will it arrive?", expect=0)
    relayed = await telegram.wait_for(lambda m: "when will it arrive" in m.body)
    assert relayed.chat_id == STAFF_CHAT and relayed.thread_id == topic.thread_id

    answered = await carebot.dp["tickets"].get(1)
    assert answered.first_response_at is not None
    mine = await alice.says("/tickets")
    assert "#1 Complaint · open" in mine.text


async def test_closing_asks_for_a_rating_and_a_low_one_brings_an_apology(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    bob = telegram.customer(2102, "Bob", language_code="en")
    await registered(carebot, bob)
    await file_complaint(bob, "Nobody called me back")
    owner = telegram.staff_member(9001, "Olga", staff_chat)
    ticket = await posted(telegram)
    toast = await owner.presses_for_toast("接手", chat=staff_chat)
    assert "#1" in toast["text"]
    taken = await settled(telegram, ticket.message_id, "处理人：Olga")
    assert [label for label, _ in taken.buttons[0]] == ["✅ 关闭"]
    await owner.presses_for_toast("关闭", chat=staff_chat)
    closed = await settled(telegram, ticket.message_id, "已关闭")
    assert closed.buttons == []

    question = await bob.next_message()
    assert "How satisfied are you with how we handled this?" in question.text
    assert [label for label, _ in question.buttons[0]][-1] == "⭐⭐⭐⭐⭐"
    sorry = await bob.presses("⭐⭐")
    assert "what went wrong" in sorry.text
    alert = await telegram.wait_for(lambda m: "差评" in m.text)
    assert "2★" in alert.text and "200 积分" in alert.text
    await bob.says("Three days and no call", expect=1)
    await telegram.wait_for(lambda m: "Three days and no call" in m.text)

    await owner.presses_for_toast("发放补偿", chat=staff_chat)
    await telegram.wait_for(lambda m: "Olga" in m.text and "200 积分" in m.text)
    apology = await bob.next_message()
    assert "added 200 points" in apology.text
    again = await owner.presses_for_toast("🔄 更新卡片", chat=staff_chat)
    assert again["text"]
    assert "My points</b>: 200" in (await bob.says("/points")).html


async def test_without_topics_a_reply_to_the_ticket_is_relayed(
    telegram: Emulator, start_app: AppFactory
) -> None:
    group = telegram.staff_group(STAFF_CHAT, "Staff", forum=False)
    carebot = await start_app()
    carol = telegram.customer(2103, "Carol", language_code="en")
    await registered(carebot, carol)
    await file_complaint(carol, "Wrong size delivered")
    ticket = await posted(telegram)
    assert ticket.thread_id is None and "回复本消息" in ticket.text
    owner = telegram.staff_member(9001, "Olga", group)
    await owner.replies_in(group, ticket.message_id, "We will swap it tomorrow.")
    assert (await carol.next_message()).text == "We will swap it tomorrow."
    await telegram.wait_for(lambda m: "已送达" in m.text)

    await carol.says("Great, thanks", expect=0)
    copy = await telegram.wait_for(lambda m: "Great, thanks" in m.text)
    await owner.replies_in(group, copy.message_id, "You're welcome")
    assert (await carol.next_message()).text == "You're welcome"


async def test_staff_learn_when_a_customer_blocked_the_bot(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    dan = telegram.customer(2104, "Dan", language_code="en")
    await registered(carebot, dan)
    await file_complaint(dan, "Broken")
    ticket = await posted(telegram)
    await dan.blocks_bot()
    owner: StaffMember = telegram.staff_member(9001, "Olga", staff_chat)
    await owner.says_in(staff_chat, "Hello?", thread_id=ticket.thread_id)
    receipt = await telegram.wait_for(lambda m: "未送达" in m.text)
    assert "屏蔽" in receipt.text

    async def unreachable() -> bool:
        customer = await carebot.dp["customers"].by_telegram(2104)
        return customer is not None and not customer.reachable

    await eventually(unreachable)


async def test_text_where_a_photo_is_expected_and_the_reverse(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    erin = telegram.customer(2105, "Erin", language_code="en")
    await registered(carebot, erin)
    await erin.says("/feedback")
    await erin.presses("Suggestion")
    assert "describe it in words first" in (await erin.sends_photo()).text
    assert "describe it in words first" in (await erin.sends_sticker()).text
    await erin.says("Open earlier on Sundays")
    assert "ready for photos" in (await erin.says("and later on Fridays")).text
    assert "ready for photos" in (await erin.sends_voice()).text
    cancelled = await erin.presses("Cancel")
    assert "nothing was sent" in cancelled.text
    assert "no open tickets" in (await erin.says("/tickets")).text
    stale = await erin.presses_for_toast("Send")
    assert "no longer active" in stale["text"]


async def test_without_the_right_to_manage_topics_tickets_go_to_general(
    telegram: Emulator, start_app: AppFactory
) -> None:
    group = telegram.add_group(STAFF_CHAT, "Staff", forum=True, bot_can_manage_topics=False)
    carebot = await start_app()
    fay = telegram.customer(2106, "Fay", language_code="en")
    await registered(carebot, fay)
    done = await file_complaint(fay, "Late delivery")
    assert "#1" in done.text
    ticket = await posted(telegram)
    assert ticket.thread_id is None and "回复本消息" in ticket.text and group.topics == {}
    owner = telegram.staff_member(9001, "Olga", group)
    await owner.replies_in(group, ticket.message_id, "On its way")
    assert (await fay.next_message()).text == "On its way"


async def test_a_reply_to_a_copy_not_yet_stored_waits_for_it(
    telegram: Emulator, start_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = telegram.staff_group(STAFF_CHAT, "Staff", forum=False)
    carebot = await start_app()
    dan = telegram.customer(2104, "Dan", language_code="en")
    await registered(carebot, dan)
    await file_complaint(dan, "Late again")
    ticket = await posted(telegram)
    owner = telegram.staff_member(9001, "Olga", group)
    await owner.replies_in(group, ticket.message_id, "Sorry, checking.")
    await dan.next_message()

    # The copy is in the group a good while before its id is stored, and staff answer it
    # at once: the answer still finds its ticket.
    tickets = carebot.dp["staff_inbox"].tickets
    record = tickets.copied

    async def slowly(message_id: int, staff_chat_message_id: int) -> None:
        await asyncio.sleep(0.5)
        await record(message_id, staff_chat_message_id)

    monkeypatch.setattr(tickets, "copied", slowly)
    await dan.says("Where is it?", expect=0)
    copy = await telegram.wait_for(lambda m: "Where is it?" in m.text)
    await owner.replies_in(group, copy.message_id, "Out for delivery")
    assert (await dan.next_message()).text == "Out for delivery"
