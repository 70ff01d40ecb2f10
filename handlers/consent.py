"""Marketing consent: /stop and the unsubscribe button under every marketing message."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.keyboards import OptOut
from bot.say import Say
from models import Customer
from services.customers import Customers

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)
router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)


@router.message(Command("stop"))
@router.callback_query(OptOut.filter())
async def opt_out(
    event: Message | CallbackQuery, customer: Customer, customers: Customers, say: Say
) -> None:
    await customers.set_marketing(customer.id, False)
    await say(event, "opted_out")
