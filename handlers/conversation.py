"""/cancel: leave whatever step-by-step conversation is under way."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from bot.keyboards import main_menu
from bot.say import Say

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)


@router.message(Command("cancel"))
async def cancel(message: Message, state: FSMContext, say: Say) -> None:
    had_steps = await state.get_state() is not None
    await state.clear()
    await say(
        message,
        "cancelled" if had_steps else "nothing_to_cancel",
        reply_markup=main_menu(say.renderer, say.locale),
    )
