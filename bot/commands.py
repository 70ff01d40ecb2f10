"""The command menu Telegram shows, in each language."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from bot.rendering import Renderer
from services.policy import LOCALES

CUSTOMER_COMMANDS = ("start", "menu", "points", "profile", "language", "stop", "help")


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
