"""Every main-menu button and its command answer, in the customer's language."""

from __future__ import annotations

from decimal import Decimal

from bot.app import Carebot
from sandbox.emulator import Emulator
from services.clock import FrozenClock
from services.loyalty import Sale


async def test_each_menu_button_answers(telegram: Emulator, carebot: Carebot) -> None:
    sam = telegram.customer(2101, "Sam", language_code="en")
    await sam.says("/start")
    menu = await sam.says("/menu")
    for label, _ in [button for row in menu.buttons for button in row]:
        reply = await sam.presses(label)
        assert reply.text, label


async def test_points_show_balance_and_tier_after_a_purchase(
    telegram: Emulator, carebot: Carebot, clock: FrozenClock
) -> None:
    tina = telegram.customer(2102, "Tina", language_code="en")
    await tina.says("/start")
    await carebot.dp["loyalty"].record_purchase(
        Sale(
            reference="T-1",
            amount=Decimal("250.00"),
            occurred_at=clock.now(),
            channel="api",
            telegram_id=2102,
        )
    )
    points = await tina.says("/points")
    assert "250" in points.text and "Customer" in points.text
    assert "Regular customer" in points.text


async def test_profile_shows_what_is_stored(telegram: Emulator, carebot: Carebot) -> None:
    uma = telegram.customer(2103, "Uma", language_code="zh", phone="+8613300133000")
    await uma.says("/start")
    await uma.shares_contact(expect=2)
    profile = await uma.says("/profile")
    assert "Uma" in profile.text and "+8613300133000" in profile.text
