"""Middlewares: each update's customer, language and flood limit, in one place each."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.types import Chat, TelegramObject, Update, User

from bot.rendering import Renderer, normalize_locale
from bot.say import Say
from services.customers import Customers, TelegramProfile
from services.staff import Staff

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class PeopleMiddleware(BaseMiddleware):
    """Loads who is writing: the customer (created on first contact) in a private chat, the
    staff role anywhere; and binds `say` to their language."""

    def __init__(self, customers: Customers, staff: Staff, renderer: Renderer) -> None:
        self.customers = customers
        self.staff = staff
        self.renderer = renderer

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        locale = normalize_locale(
            user.language_code if user else None, self.renderer.default_locale
        )
        assert isinstance(event, Update)
        # A block or unblock is reported by its own handler, not as a sign of life.
        if (
            user
            and chat
            and chat.type == ChatType.PRIVATE
            and not user.is_bot
            and not event.my_chat_member
        ):
            customer, created = await self.customers.touch(
                TelegramProfile(
                    telegram_id=user.id,
                    chat_id=chat.id,
                    first_name=user.first_name,
                    last_name=user.last_name,
                    username=user.username,
                    locale=locale,
                )
            )
            data["customer"] = customer
            data["customer_created"] = created
            locale = customer.locale
        if user:
            data["staff_role"] = await self.staff.role_of(user.id)
        say = data["say"] = Say(self.renderer, locale)
        try:
            return await handler(event, data)
        finally:
            if event.callback_query is not None:
                await say.acknowledge(event.callback_query)


class FloodMiddleware(BaseMiddleware):
    """Drops a customer's updates past `limit` per `window` seconds, with one notice per
    burst rather than one per message."""

    def __init__(self, renderer: Renderer, limit: int, window: float) -> None:
        self.renderer = renderer
        self.limit = limit
        self.window = window
        self._seen: dict[int, deque[float]] = {}
        self._warned: dict[int, float] = {}

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if user is None or chat is None or chat.type != ChatType.PRIVATE:
            return await handler(event, data)
        now = time.monotonic()
        seen = self._seen.setdefault(user.id, deque())
        while seen and now - seen[0] > self.window:
            seen.popleft()
        seen.append(now)
        if len(seen) <= self.limit:
            return await handler(event, data)
        if now - self._warned.get(user.id, -self.window) > self.window:
            self._warned[user.id] = now
            bot = data["bot"]
            locale = normalize_locale(user.language_code, self.renderer.default_locale)
            await bot.send_message(chat.id, self.renderer.render("slow_down", locale))
        return None
