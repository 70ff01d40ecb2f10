"""Helpers for the customer-care conversations through the emulator."""

from __future__ import annotations

import itertools
from decimal import Decimal

from bot.app import Carebot
from sandbox.players import Customer
from services.loyalty import Sale

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
