"""Helpers for the customer-care conversations through the emulator."""

from __future__ import annotations

import itertools
from decimal import Decimal

from bot.app import Carebot
from sandbox.emulator import Emulator
from sandbox.players import Customer
from sandbox.state import ChatMessage
from services.loyalty import Sale
from tests.e2e.conftest import STAFF_CHAT

_references = itertools.count(1)


async def registered(carebot: Carebot, player: Customer) -> int:
    """Start the chat; the customer's id."""
    await player.says("/start")
    customer = await carebot.dp["customers"].by_telegram(player.user_id)
    assert customer is not None
    return int(customer.id)


async def purchase(carebot: Carebot, player: Customer, customer_id: int, amount: str) -> int:
    """A sale from the shop's system; the balance after it. When the sale lifts the
    customer's tier, the congratulation is waited for, so it cannot land in the middle of
    what the test says next."""
    loyalty = carebot.dp["loyalty"]
    before = (await loyalty.summary(customer_id)).tier
    result = await loyalty.record_purchase(
        Sale(
            reference=f"POS-{next(_references)}",
            amount=Decimal(amount),
            occurred_at=carebot.clock.now(),
            channel="api",
            customer_id=customer_id,
        )
    )
    if (await loyalty.summary(customer_id)).tier.min_spend > before.min_spend:
        carebot.sender.wake()
        assert "🎉" in (await player.next_message()).text
    return int(result.balance)


async def file_complaint(player: Customer, text: str) -> ChatMessage:
    kinds = await player.says("/feedback")
    assert "What would you like to tell us" in kinds.text
    await player.presses("Complaint")
    noted = await player.says(text)
    assert "Send photos if you like" in noted.text
    attached = await player.sends_photo()
    assert "1 photo attached" in attached.text
    return await player.presses("Send")


async def posted(telegram: Emulator) -> ChatMessage:
    """The ticket's post in the staff group, once its photo has followed it."""
    await telegram.wait_for(lambda m: m.chat_id == STAFF_CHAT and m.photo is not None)
    found = [m for m in telegram.messages(STAFF_CHAT, from_bot=True) if "工单 #" in m.body]
    return found[-1]


async def settled(telegram: Emulator, message_id: int, text: str) -> ChatMessage:
    """The staff-group message once an edit has put `text` in it."""

    def edited() -> ChatMessage | None:
        message = telegram.find_message(STAFF_CHAT, message_id)
        return message if message is not None and text in message.body else None

    found = await telegram.until(edited, 5)
    assert found is not None, f"message {message_id} never showed {text!r}"
    return found
