"""`say`: render a template in the customer's language and answer the event with it."""

from __future__ import annotations

from typing import Any

from aiogram.types import (
    CallbackQuery,
    ForceReply,
    InaccessibleMessage,
    InlineKeyboardMarkup,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.rendering import Renderer

Markup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove | ForceReply


class Say:
    """Bound to one update's locale by the middleware, so handlers never pick a language."""

    def __init__(self, renderer: Renderer, locale: str, answered: set[str] | None = None) -> None:
        self.renderer = renderer
        self.locale = locale
        # Telegram refuses a second answer to one button press; remember which had theirs.
        self.answered = answered if answered is not None else set()

    def in_locale(self, locale: str) -> Say:
        return Say(self.renderer, locale, self.answered)

    async def acknowledge(
        self, query: CallbackQuery, text: str | None = None, *, alert: bool = False
    ) -> None:
        if query.id not in self.answered:
            self.answered.add(query.id)
            await query.answer(text, show_alert=alert)

    def text(self, template: str, /, **context: Any) -> str:
        return self.renderer.render(template, self.locale, **context)

    def label(self, key: str) -> str:
        return self.renderer.label(key, self.locale)

    async def __call__(
        self,
        event: Message | CallbackQuery,
        template: str,
        /,
        *,
        reply_markup: Markup | None = None,
        **context: Any,
    ) -> Message | None:
        text = self.text(template, **context)
        if isinstance(event, CallbackQuery):
            await self.acknowledge(event)
            message = event.message
            if message is None or isinstance(message, InaccessibleMessage):
                return None
            return await message.answer(text, reply_markup=reply_markup)
        return await event.answer(text, reply_markup=reply_markup)

    async def notice(self, query: CallbackQuery, template: str, /, **context: Any) -> None:
        """A short pop-up on a button press instead of a message in the chat."""
        await self.acknowledge(query, self.text(template, **context), alert=True)
