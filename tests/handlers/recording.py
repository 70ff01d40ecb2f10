"""A Bot API session that answers every call at once with a small valid result and keeps
what was asked, so the real Dispatcher can be fed thousands of updates quickly."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    CopyMessage,
    CreateForumTopic,
    GetChat,
    GetMe,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup

BOT_ID = 123456789


class RecordingSession(BaseSession):
    def __init__(self, *, forum_chats: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.forum_chats = forum_chats
        self.calls: list[TelegramMethod[Any]] = []
        self._ids = itertools.count(10_000)

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        self.calls.append(method)
        content = json.dumps({"ok": True, "result": self._result(method)})
        return self.check_response(bot, method, 200, content).result  # type: ignore[return-value]

    def _result(self, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, GetMe):
            return {"id": BOT_ID, "is_bot": True, "first_name": "Carebot", "username": "care_bot"}
        if isinstance(method, GetChat):
            chat_id = int(method.chat_id)
            return {
                **_chat(chat_id, chat_id in self.forum_chats),
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": True,
                    "limited_gifts": True,
                    "unique_gifts": True,
                    "premium_subscription": True,
                    "gifts_from_channels": True,
                },
            }
        if isinstance(method, CreateForumTopic):
            return {"message_thread_id": next(self._ids), "name": method.name, "icon_color": 0}
        if isinstance(method, CopyMessage):
            return {"message_id": next(self._ids)}
        returning = str(method.__returning__)
        if "Message" not in returning:
            return True
        chat_id = int(getattr(method, "chat_id", 0) or 0)
        message: dict[str, Any] = {
            "message_id": getattr(method, "message_id", None) or next(self._ids),
            "date": 0,
            "chat": _chat(chat_id, chat_id in self.forum_chats),
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Carebot"},
            "text": getattr(method, "text", None) or "…",
        }
        thread = getattr(method, "message_thread_id", None)
        if thread:
            message.update(message_thread_id=thread, is_topic_message=True)
        markup = getattr(method, "reply_markup", None)
        if isinstance(markup, InlineKeyboardMarkup):
            message["reply_markup"] = markup.model_dump(exclude_none=True)
        return message

    def callback_data(self, chat_id: int) -> list[str]:
        """Every button the bot showed in a chat, newest last."""
        found = []
        for call in self.calls:
            markup = getattr(call, "reply_markup", None)
            if str(getattr(call, "chat_id", "")) != str(chat_id):
                continue
            if isinstance(markup, InlineKeyboardMarkup):
                found.extend(
                    b.callback_data
                    for row in markup.inline_keyboard
                    for b in row
                    if b.callback_data
                )
        return found

    def texts(self, chat_id: int) -> list[str]:
        return [
            str(getattr(c, "text", ""))
            for c in self.calls
            if str(getattr(c, "chat_id", "")) == str(chat_id) and getattr(c, "text", None)
        ]

    async def close(self) -> None:
        return None

    async def stream_content(  # pragma: no cover - nothing is downloaded here
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""


def _chat(chat_id: int, forum: bool) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Someone"}
    chat: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": "Staff"}
    if forum:
        chat["is_forum"] = True
    return chat
