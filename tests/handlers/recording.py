"""A Bot API session that answers every call at once with a small valid result and keeps
what was asked, so the real Dispatcher can be fed thousands of updates quickly; and the
emulator's own checks run over every recorded call, to tell what Telegram would refuse."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.default import Default, DefaultBotProperties
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    CopyMessage,
    CreateForumTopic,
    EditForumTopic,
    GetChat,
    GetMe,
    SendMediaGroup,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import InlineKeyboardMarkup
from pydantic import BaseModel

from sandbox.api_params import (
    MAX_CAPTION,
    ApiError,
    Params,
    bad_request,
    check_caption,
    check_reply_markup,
    check_text,
    formatted_text,
)

BOT_ID = 123456789
# One count for every session of the process: the database outlives a session between
# hypothesis examples, and Telegram never gives a message or topic id twice.
_IDS = itertools.count(10_000)


class RecordingSession(BaseSession):
    def __init__(self, *, forum_chats: frozenset[int] = frozenset()) -> None:
        super().__init__()
        self.forum_chats = forum_chats
        self.calls: list[TelegramMethod[Any]] = []
        self.defaults = DefaultBotProperties()
        self._ids = _IDS

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        self.calls.append(method)
        self.defaults = bot.default
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
        found: list[str] = []
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

    def refusals(self) -> list[str]:
        """Every recorded call the real Telegram would refuse, with its error text: text
        and caption length after HTML parsing, broken HTML, button data, callback answers
        (at most 200 characters, one per press), topic names."""
        found = []
        answered: set[str] = set()
        for call in self.calls:
            try:
                self._check(call, answered)
            except ApiError as error:
                found.append(f"{type(call).__name__}: {error.description}: {_shown(call)}")
        return found

    def _check(self, call: TelegramMethod[Any], answered: set[str]) -> None:
        if isinstance(call, AnswerCallbackQuery):
            if call.callback_query_id in answered:
                raise bad_request("query is too old and response timeout expired")
            answered.add(call.callback_query_id)
            if call.text is not None and len(call.text) > 200:
                raise bad_request("MESSAGE_TOO_LONG")
            return
        if isinstance(call, CreateForumTopic | EditForumTopic) and call.name is not None:
            if not 1 <= len(call.name) <= 128:
                raise bad_request("TOPIC_NAME_INVALID")
            return
        items: list[Any] = list(call.media) if isinstance(call, SendMediaGroup) else [call]
        for item in items:
            params = Params(self._params(item))
            if "text" in type(item).model_fields:
                text = formatted_text(params, "text", "parse_mode", "entities")
                check_text(text[0] if text else "")
            caption = formatted_text(params, "caption", "parse_mode", "caption_entities")
            if caption is not None:
                into_topic = isinstance(item, CopyMessage) and item.message_thread_id is not None
                check_caption(caption[0], MAX_CAPTION - 1 if into_topic else MAX_CAPTION)
            check_reply_markup(params.json("reply_markup"))

    def _params(self, item: Any) -> dict[str, Any]:
        """The fields the emulator reads, as aiogram would send them (defaults resolved)."""
        raw: dict[str, Any] = {}
        for name in ("text", "caption", "parse_mode", "entities", "caption_entities"):
            value = getattr(item, name, None)
            if isinstance(value, Default):
                value = self.defaults[value.name]
            if isinstance(value, list):
                value = [v.model_dump(exclude_none=True) for v in value]
            if value is not None:
                raw[name] = value
        markup = getattr(item, "reply_markup", None)
        if isinstance(markup, BaseModel):
            raw["reply_markup"] = markup.model_dump(exclude_none=True)
        return raw

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


def _shown(call: TelegramMethod[Any]) -> str:
    text = str(getattr(call, "text", None) or getattr(call, "caption", None) or "")
    return repr(text[:120])


def _chat(chat_id: int, forum: bool) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": "Someone"}
    chat: dict[str, Any] = {"id": chat_id, "type": "supergroup", "title": "Staff"}
    if forum:
        chat["is_forum"] = True
    return chat
