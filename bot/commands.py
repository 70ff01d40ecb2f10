"""The command menu Telegram shows, in each language: customers', and staff's in the staff
group."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from bot.permissions import STAFF_COMMANDS
from bot.rendering import Renderer
from services.policy import LOCALES

CUSTOMER_COMMANDS = (
    "start",
    "menu",
    "points",
    "rewards",
    "feedback",
    "tickets",
    "survey",
    "profile",
    "language",
    "mydata",
    "forgetme",
    "stop",
    "help",
)


def customer_commands(renderer: Renderer, locale: str) -> list[BotCommand]:
    return [
        BotCommand(command=name, description=renderer.label(f"cmd_{name}", locale))
        for name in CUSTOMER_COMMANDS
    ]


async def set_default_commands(bot: Bot, renderer: Renderer) -> None:
    """One list per language Telegram may ask for, and the default locale's for the rest."""
    scope = BotCommandScopeDefault()
    await bot.set_my_commands(customer_commands(renderer, renderer.default_locale), scope=scope)
    for locale in LOCALES:
        await bot.set_my_commands(
            customer_commands(renderer, locale), scope=scope, language_code=locale
        )


async def set_chat_commands(bot: Bot, renderer: Renderer, chat_id: int, locale: str) -> None:
    """A customer who picked a language in the bot sees the menu in it, whatever their app's."""
    await bot.set_my_commands(
        customer_commands(renderer, locale), scope=BotCommandScopeChat(chat_id=chat_id)
    )


async def set_staff_commands(bot: Bot, renderer: Renderer, chat_id: int) -> None:
    """The staff group's menu lists the staff commands (each still checks the role)."""
    scope = BotCommandScopeChat(chat_id=chat_id)
    try:
        for locale in (None, *LOCALES):
            await bot.set_my_commands(
                [
                    BotCommand(
                        command=name,
                        description=renderer.label(
                            f"cmd_staff_{name}", locale or renderer.default_locale
                        ),
                    )
                    for name in STAFF_COMMANDS
                ],
                scope=scope,
                language_code=locale,
            )
    except TelegramAPIError as error:
        logging.getLogger("carebot").warning("staff group menu not set: %s", error)
