"""What nothing else handled: unknown commands, non-text messages, stale buttons."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message

from bot.keyboards import main_menu
from bot.say import Say

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)

# Telegram's own limit for one message; longer text can only come from a broken client.
TEXT_LIMIT = 4096


@router.message(F.text.startswith("/"))
async def unknown_command(message: Message, say: Say) -> None:
    await say(message, "unknown_command")


@router.message(F.text)
async def free_text(message: Message, say: Say) -> None:
    assert message.text is not None
    if len(message.text) > TEXT_LIMIT:
        await say(message, "too_long", length=len(message.text), limit=TEXT_LIMIT)
        return
    await say(message, "free_text", reply_markup=main_menu(say.renderer, say.locale))


@router.message()
async def not_text(message: Message, say: Say) -> None:
    await say(message, "text_expected")


@router.callback_query()
async def stale_button(query: CallbackQuery, say: Say) -> None:
    await say.notice(query, "stale_button")
