"""The main menu and what it opens: points, profile, language, help."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from bot import buttons
from bot.commands import set_chat_commands
from bot.keyboards import Language, Menu, languages, main_menu
from bot.say import Say
from models import Customer
from services.customers import Customers
from services.loyalty import Loyalty
from services.policy import LOCALES

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)
router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)


@router.message(Command("menu"))
@router.callback_query(Menu.filter(F.item == "menu"))
async def show_menu(event: Message | CallbackQuery, say: Say) -> None:
    await say(event, "menu", reply_markup=main_menu(say.renderer, say.locale))


@router.message(Command("help"))
@router.callback_query(Menu.filter(F.item == "help"))
async def show_help(event: Message | CallbackQuery, say: Say) -> None:
    await say(event, "help")


@router.message(Command("points"))
@router.callback_query(Menu.filter(F.item == "points"))
async def show_points(
    event: Message | CallbackQuery, customer: Customer, loyalty: Loyalty, say: Say
) -> None:
    await say(event, "points", summary=await loyalty.summary(customer.id))


@router.message(Command("profile"))
@router.callback_query(Menu.filter(F.item == "profile"))
async def show_profile(event: Message | CallbackQuery, customer: Customer, say: Say) -> None:
    await say(
        event,
        "profile",
        customer=customer,
        reply_markup=buttons.profile(say.renderer, say.locale, marketing=customer.marketing_opt_in),
    )


@router.message(Command("language"))
@router.callback_query(Menu.filter(F.item == "language"))
async def choose_language(
    event: Message | CallbackQuery,
    customer: Customer,
    customers: Customers,
    say: Say,
    bot: Bot,
    command: CommandObject | None = None,
) -> None:
    asked = (command.args or "").strip().lower() if command else ""
    if not asked:
        await say(event, "language_choose", reply_markup=languages())
    elif asked in LOCALES:
        await _switch(event, asked, customer, customers, say, bot)
    else:
        await say(event, "language_unknown", asked=asked[:32])


@router.callback_query(Language.filter())
async def language_chosen(
    query: CallbackQuery,
    callback_data: Language,
    customer: Customer,
    customers: Customers,
    say: Say,
    bot: Bot,
) -> None:
    if callback_data.code not in LOCALES:
        await say.notice(query, "stale_button")
        return
    await _switch(query, callback_data.code, customer, customers, say, bot)


async def _switch(
    event: Message | CallbackQuery,
    locale: str,
    customer: Customer,
    customers: Customers,
    say: Say,
    bot: Bot,
) -> None:
    await customers.set_locale(customer.id, locale)
    said = say.in_locale(locale)
    await said(event, "language_set")
    await said(event, "menu", reply_markup=main_menu(said.renderer, locale))
    if customer.chat_id is not None:
        await set_chat_commands(bot, said.renderer, customer.chat_id, locale)
