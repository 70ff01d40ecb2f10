"""Filters shared by handlers: a reply-keyboard label pressed, in whichever language; and
every plain filter (`F.text`, a state) checked on the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Router
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


def check_filters_inline(router: Router) -> None:
    """aiogram hands every filter that is not a coroutine function to a worker thread
    (`asyncio.to_thread`): magic filters (`F.text`) and states used as filters, so an
    update tried against a few routers made dozens of thread round trips, each waiting
    for the interpreter lock, for what are attribute reads. Here they become coroutine
    functions, for `router` and every router below it; running it again changes nothing.
    A filter that has to wait for something is written as a coroutine function."""
    for each in router.chain_tail:
        for observer in each.observers.values():
            # The observer's own filters (router.message.filter(...)) live in `_handler`.
            for handler in (observer._handler, *observer.handlers):
                for checked in handler.filters or ():
                    if not checked.awaitable:
                        checked.callback = _inline(checked.callback)
                        checked.awaitable = True


def _inline(check: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    # aiogram passes only the arguments named in the original signature (kept in the
    # filter's `params`), so these go through unchanged.
    async def checked(*args: Any, **kwargs: Any) -> Any:
        return check(*args, **kwargs)

    return checked
