"""Filters shared by handlers: a reply-keyboard label pressed, in whichever language."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import CallbackQuery, Message

from bot.say import Say
from models import Role


class Label(Filter):
    """The message is the text of reply-keyboard button `key` in any locale: the keyboard
    may have been shown before the customer switched language."""

    def __init__(self, key: str) -> None:
        self.key = key

    async def __call__(self, message: Message, say: Say) -> bool:
        return message.text is not None and message.text in say.renderer.labels_everywhere(self.key)


class StaffChat(Filter):
    """In the staff group, from a staff member of at least `role`; anyone else there is
    ignored, so the group never answers a customer who found their way in."""

    def __init__(self, role: Role = Role.VIEWER) -> None:
        self.role = role

    async def __call__(
        self, event: Message | CallbackQuery, staff_chat_id: int | None, staff_role: Role | None
    ) -> bool:
        message = event.message if isinstance(event, CallbackQuery) else event
        return (
            message is not None
            and staff_chat_id is not None
            and message.chat.id == staff_chat_id
            and staff_role is not None
            and staff_role.at_least(self.role)
        )
