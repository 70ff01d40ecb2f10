"""Bad input gets a short, polite answer in the customer's language, and the bot goes on."""

from __future__ import annotations

import pytest

from bot.app import Carebot
from sandbox.emulator import Emulator
from sandbox.players import Customer
from sandbox.state import Chat


@pytest.fixture
async def frank(telegram: Emulator, carebot: Carebot) -> Customer:
    customer = telegram.customer(1101, "Frank", language_code="en")
    await customer.says("/start")
    return customer


async def test_a_sticker_a_photo_and_a_voice_note_where_text_is_expected(frank: Customer) -> None:
    for reply in (
        await frank.sends_sticker(),
        await frank.sends_photo(),
        await frank.sends_voice(),
    ):
        assert "only read text" in reply.text


async def test_an_unknown_command(frank: Customer) -> None:
    assert "don't know that command" in (await frank.says("/teleport")).text


async def test_a_ten_thousand_character_message(frank: Customer) -> None:
    reply = await frank.says("x" * 10_000)
    assert "too long" in reply.text and "10,000" in reply.text


async def test_a_forged_or_stale_button_gets_a_notice(frank: Customer) -> None:
    menu = await frank.says("/menu")
    query = frank.tg.user_presses(frank.user_id, frank.chat_id, menu.message_id, "menu:teleport")
    answer = await frank.tg.until(lambda: query.answer, 5)
    assert answer is not None and answer["show_alert"]
    assert "no longer active" in answer["text"]
    query = frank.tg.user_presses(frank.user_id, frank.chat_id, menu.message_id, "\x00garbage")
    assert await frank.tg.until(lambda: query.answer, 5) is not None


async def test_answers_follow_the_customers_language(telegram: Emulator, carebot: Carebot) -> None:
    wang = telegram.customer(1102, "王", language_code="zh-hans")
    await wang.says("/start")
    assert "文字" in (await wang.sends_sticker()).text


async def test_a_handler_error_is_logged_counted_and_apologised_for(
    telegram: Emulator, carebot: Carebot, monkeypatch: pytest.MonkeyPatch
) -> None:
    gina = telegram.customer(1103, "Gina", language_code="en")
    await gina.says("/start")

    async def broken(customer_id: int) -> None:
        raise RuntimeError("points service down")

    monkeypatch.setattr(carebot.dp["loyalty"], "summary", broken)
    apology = await gina.says("/points")
    assert "Sorry, something went wrong" in apology.text
    assert "Traceback" not in apology.text and "points service down" not in apology.text
    metrics = carebot.metrics.render().decode()
    assert 'carebot_handler_errors_total{type="message"} 1.0' in metrics
    assert "Main menu" in (await gina.says("/menu")).text


async def test_other_groups_are_ignored(telegram: Emulator, carebot: Carebot) -> None:
    group = telegram.add_group(-100555, "Random group", forum=False)
    stranger = telegram.staff_member(1104, "Stranger", group)
    await stranger.says_in(group, "/help")
    await stranger.says_in(group, "hello bot")
    await stranger.expect_none(chat=group)


async def test_the_staff_group_answers_staff_only(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    intruder = telegram.staff_member(1105, "Intruder", staff_chat)
    await intruder.says_in(staff_chat, "/help")
    await intruder.expect_none(chat=staff_chat)
    owner = telegram.staff_member(9001, "Owner", staff_chat, language_code="en")
    await owner.says_in(staff_chat, "/help")
    reply = await owner.next_message(chat=staff_chat)
    assert "Your role: owner" in reply.text
