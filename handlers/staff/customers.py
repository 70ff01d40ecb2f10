"""Customers for staff: /find and the customer card, /purchase at the counter, /points."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot.say import Say
from bot.staff_buttons import CustomerPick, customer_choices
from models import Customer
from services.desk import MAX_ADJUSTMENT, Desk, DeskError
from services.lookup import Lookup
from services.loyalty import SaleError

router = Router(name=__name__)

MAX_AMOUNT = Decimal("10000000")


@router.message(Command("find"))
async def find(message: Message, command: CommandObject, lookup: Lookup, say: Say) -> None:
    query = (command.args or "").strip()
    if not query:
        await say(message, "staff_find_usage")
        return
    found = await lookup.find(query)
    if not found:
        await say(message, "staff_find_none", query=query[:64])
    elif len(found) == 1:
        await show_card(message, found[0].id, lookup, say)
    else:
        await say(
            message, "staff_find_results", customers=found, reply_markup=customer_choices(found)
        )


@router.callback_query(CustomerPick.filter())
async def picked(
    query: CallbackQuery, callback_data: CustomerPick, lookup: Lookup, say: Say
) -> None:
    await show_card(query, callback_data.customer, lookup, say)


async def show_card(
    event: Message | CallbackQuery, customer_id: int, lookup: Lookup, say: Say
) -> None:
    card = await lookup.card(customer_id)
    if card is None:
        if isinstance(event, CallbackQuery):
            await say.notice(event, "stale_button")
        else:
            await say(event, "staff_find_none", query=f"#{customer_id}")
        return
    await say(
        event,
        "staff_customer_card",
        card=card,
        tier_name=card.summary.tier.name(say.locale),
        label=say.label,
    )


async def _customer(message: Message, ref: str, lookup: Lookup, say: Say) -> Customer | None:
    customer = await lookup.resolve(ref)
    if customer is None:
        await say(message, "staff_customer_unknown", ref=ref[:64])
        return None
    if customer.is_erased:
        await say(message, "staff_customer_erased", customer=customer)
        return None
    return customer


@router.message(Command("purchase"))
async def purchase(
    message: Message, command: CommandObject, lookup: Lookup, desk: Desk, say: Say
) -> None:
    words = (command.args or "").split()
    if len(words) not in (2, 3) or message.from_user is None:
        await say(message, "staff_purchase_usage")
        return
    amount = _amount(words[1])
    if amount is None:
        await say(message, "staff_amount_invalid", amount=words[1][:32])
        return
    reference = words[2] if len(words) == 3 else None
    if reference is not None and len(reference) > 128:
        await say(message, "staff_purchase_usage")
        return
    customer = await _customer(message, words[0], lookup, say)
    if customer is None:
        return
    try:
        entry = await desk.purchase(message.from_user.id, customer.id, amount, reference)
    except SaleError as error:
        await say(message, "staff_sale_refused", error=error)
        return
    await say(
        message,
        "staff_purchase_done" if entry.result.created else "staff_purchase_known",
        customer=customer,
        amount=amount,
        reference=entry.reference,
        result=entry.result,
    )


def _amount(text: str) -> Decimal | None:
    try:
        amount = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if not amount.is_finite() or not 0 < amount < MAX_AMOUNT:
        return None
    if amount != amount.quantize(Decimal("0.01")):
        return None
    return amount


@router.message(Command("points"))
async def points(
    message: Message, command: CommandObject, lookup: Lookup, desk: Desk, say: Say
) -> None:
    words = (command.args or "").split(maxsplit=2)
    if len(words) < 3 or message.from_user is None:
        await say(message, "staff_points_usage", limit=MAX_ADJUSTMENT)
        return
    ref, raw_delta, reason = words
    delta = _delta(raw_delta)
    if delta is None:
        await say(message, "staff_points_usage", limit=MAX_ADJUSTMENT)
        return
    customer = await _customer(message, ref, lookup, say)
    if customer is None:
        return
    try:
        change = await desk.adjust_points(message.from_user.id, customer.id, delta, reason)
    except DeskError as error:
        await say(
            message,
            "staff_points_refused",
            reason=error.reason,
            balance=error.balance,
            customer=customer,
            limit=MAX_ADJUSTMENT,
        )
        return
    await say(message, "staff_points_done", customer=customer, change=change, reason=reason)


def _delta(text: str) -> int | None:
    raw = text.strip()
    digits = raw.lstrip("+-")
    if not digits.isdigit() or len(raw) - len(digits) > 1:
        return None
    value = int(digits)
    return -value if raw.startswith("-") else value
