"""/help in the staff group: what a staff member can do with their role."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.filters import StaffChat
from bot.say import Say
from models import Role

router = Router(name=__name__)
router.message.filter(StaffChat())


@router.message(Command("help"))
async def staff_help(message: Message, staff_role: Role, say: Say) -> None:
    await say(message, "staff_help", role=staff_role.value)
