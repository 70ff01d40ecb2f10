"""Privacy: /mydata sends everything stored about the customer; /forgetme erases it."""

from __future__ import annotations

import json

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot import buttons
from bot.say import Say
from bot.staff_inbox import StaffInbox
from models import Customer
from services.privacy import Privacy

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)
router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)


@router.message(Command("mydata"))
async def my_data(message: Message, customer: Customer, privacy: Privacy, say: Say) -> None:
    data = await privacy.export(customer.id)
    document = json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")
    await message.answer_document(
        BufferedInputFile(document, filename=f"mydata-{customer.id}.json"),
        caption=say.text("mydata"),
    )


@router.message(Command("forgetme"))
async def forget_me(message: Message, say: Say) -> None:
    await say(message, "forget_confirm", reply_markup=buttons.forget(say.renderer, say.locale))


@router.callback_query(buttons.Forget.filter(F.confirm))
async def forget_confirmed(
    query: CallbackQuery,
    customer: Customer,
    privacy: Privacy,
    staff_inbox: StaffInbox,
    state: FSMContext,
    say: Say,
) -> None:
    erasure = await privacy.erase(customer.id)
    await state.clear()
    await say(query, "forgotten")
    await buttons.drop(query)
    if erasure is not None:
        await staff_inbox.customer_erased(erasure.customer_id)


@router.callback_query(buttons.Forget.filter(~F.confirm))
async def forget_cancelled(query: CallbackQuery, say: Say) -> None:
    await say(query, "forget_cancelled")
    await buttons.drop(query)
