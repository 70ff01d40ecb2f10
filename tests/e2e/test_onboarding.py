"""A customer's first conversation, through the emulator, as they would have it."""

from __future__ import annotations

from bot.app import Carebot
from sandbox.emulator import Emulator


async def test_start_share_contact_menu_help_and_english(
    telegram: Emulator, carebot: Carebot
) -> None:
    alice = telegram.customer(1001, "Alice", language_code="zh-hans", phone="+8613800138000")

    welcome = await alice.says("/start")
    assert "Alice" in welcome.text and "欢迎" in welcome.text
    keyboard = welcome.reply_markup or {}
    assert keyboard["keyboard"][0][0]["request_contact"] is True

    linked, menu = await alice.shares_contact(expect=2)
    assert "+8613800138000" in linked.text
    assert (linked.reply_markup or {}).get("remove_keyboard") is True
    assert "主菜单" in menu.text
    assert menu.buttons[0][0][0] == "💎 我的积分"

    help_text = await alice.says("/help")
    assert "我能为您做什么" in help_text.text and "/points" in help_text.text

    done, english_menu = await alice.says("/language en", expect=2)
    assert "English" in done.text
    assert "Main menu" in english_menu.text
    assert english_menu.buttons[0][0][0] == "💎 My points"

    english_help = await alice.says("/help")
    assert "What I can do for you" in english_help.text


async def test_someone_elses_contact_is_refused_politely(
    telegram: Emulator, carebot: Carebot
) -> None:
    bob = telegram.customer(1002, "Bob", language_code="en", phone="+8613900139000")
    await bob.says("/start")
    refusal = await bob.shares_contact(of_user_id=4242, phone="+8613700137000")
    assert "your own" in refusal.text
    customer = await carebot.dp["customers"].by_telegram(1002)
    assert customer.phone is None


async def test_phone_can_wait_for_later(telegram: Emulator, carebot: Carebot) -> None:
    carol = telegram.customer(1003, "Carol", language_code="en")
    await carol.says("/start")
    later = await carol.presses("Later")
    assert "any time" in later.text
    menu = await carol.next_message()
    assert "Main menu" in menu.text


async def test_deep_link_payload_is_kept_as_the_source(
    telegram: Emulator, carebot: Carebot
) -> None:
    dave = telegram.customer(1004, "Dave", language_code="en")
    await dave.says("/start poster-2026")
    customer = await carebot.dp["customers"].by_telegram(1004)
    assert customer.source == "poster-2026"


async def test_a_returning_customer_with_a_phone_goes_straight_to_the_menu(
    telegram: Emulator, carebot: Carebot
) -> None:
    erin = telegram.customer(1005, "Erin", language_code="en", phone="+8613600136000")
    await erin.says("/start")
    await erin.shares_contact(expect=2)
    again = await erin.says("/start")
    assert "Welcome back" in again.text
    assert again.buttons[0][0][0] == "💎 My points"


async def test_the_command_menu_is_set_in_each_language(
    telegram: Emulator, carebot: Carebot
) -> None:
    token = carebot.bot.token
    _, english = await telegram.call(token, "getMyCommands", {"language_code": "en"})
    _, chinese = await telegram.call(token, "getMyCommands", {"language_code": "zh"})
    english, chinese = english["result"], chinese["result"]
    assert {c["command"] for c in english} >= {"start", "help", "language", "points"}
    assert next(c for c in chinese if c["command"] == "help")["description"] == "帮助"
