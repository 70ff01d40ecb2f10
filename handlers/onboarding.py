"""The first conversation: /start, sharing the phone number, or leaving it for later."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message, ReplyKeyboardRemove

from bot.filters import Label
from bot.keyboards import main_menu, share_phone
from bot.say import Say
from models import Customer
from services.customers import Customers, LinkStatus
from services.policy import Policy

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)


@router.message(CommandStart())
async def start(
    message: Message,
    command: CommandObject,
    customer: Customer,
    customer_created: bool,
    customers: Customers,
    policy: Policy,
    say: Say,
) -> None:
    if customer_created and command.args:
        await customers.record_source(customer.id, command.args)
    has_phone = customer.phone is not None
    await say(
        message,
        "welcome",
        name=customer.name or message.chat.full_name,
        shop=policy.shop.name(say.locale),
        returning=not customer_created,
        has_phone=has_phone,
        reply_markup=main_menu(say.renderer, say.locale)
        if has_phone
        else share_phone(say.renderer, say.locale),
    )


@router.message(F.contact)
async def contact_shared(
    message: Message, customer: Customer, customers: Customers, say: Say
) -> None:
    assert message.contact is not None and message.from_user is not None
    if message.contact.user_id != message.from_user.id:
        await say(message, "phone_not_own", button=say.label("share_phone"))
        return
    link = await customers.link_phone(customer.id, message.contact.phone_number)
    if link.status is LinkStatus.INVALID:
        await say(
            message,
            "phone_invalid",
            phone=message.contact.phone_number,
            button=say.label("share_phone"),
        )
        return
    template = "phone_linked" if link.status is LinkStatus.LINKED else "phone_taken"
    await say(
        message,
        template,
        phone=link.phone,
        purchases=link.purchases,
        points=link.points,
        reply_markup=ReplyKeyboardRemove(),
    )
    await say(message, "menu", reply_markup=main_menu(say.renderer, say.locale))


@router.message(Label("phone_later"))
async def phone_later(message: Message, say: Say) -> None:
    await say(message, "phone_later", reply_markup=ReplyKeyboardRemove())
    await say(message, "menu", reply_markup=main_menu(say.renderer, say.locale))
