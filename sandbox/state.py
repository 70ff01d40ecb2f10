"""The emulator's in-memory Telegram world: users, chats, topics, messages, files, bot state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sandbox.html_entities import Entity

JsonDict = dict[str, Any]

# What Telegram sends when allowed_updates is empty or never given.
DEFAULT_UPDATE_TYPES = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    }
)


@dataclass
class User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    is_bot: bool = False
    phone: str | None = None
    blocked_bot: bool = False
    started: bool = True

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data


@dataclass
class Topic:
    thread_id: int
    name: str
    icon_color: int
    icon_custom_emoji_id: str | None = None
    closed: bool = False

    def to_api(self) -> JsonDict:
        data: JsonDict = {
            "message_thread_id": self.thread_id,
            "name": self.name,
            "icon_color": self.icon_color,
        }
        if self.icon_custom_emoji_id:
            data["icon_custom_emoji_id"] = self.icon_custom_emoji_id
        return data


@dataclass(eq=False)
class Chat:
    id: int
    type: str  # "private", "group" or "supergroup"
    title: str | None = None
    user: User | None = None  # the other party of a private chat
    is_forum: bool = False
    username: str | None = None
    members: dict[int, str] = field(default_factory=dict)  # user id -> ChatMember status
    bot_status: str = "member"
    bot_can_manage_topics: bool = False
    topics: dict[int, Topic] = field(default_factory=dict)
    pinned: list[int] = field(default_factory=list)
    # The reply keyboard the bot last showed here, until removed.
    reply_keyboard: JsonDict | None = None
    next_message_id: int = 1

    @property
    def is_group(self) -> bool:
        return self.type in ("group", "supergroup")

    def to_api(self) -> JsonDict:
        data: JsonDict = {"id": self.id, "type": self.type}
        if self.user is not None:
            data.update(
                {k: v for k, v in self.user.to_api().items() if k in ("first_name", "last_name")}
            )
            if self.user.username:
                data["username"] = self.user.username
        else:
            data["title"] = self.title or ""
            if self.username:
                data["username"] = self.username
            if self.is_forum:
                data["is_forum"] = True
        return data

    def full_info(self) -> JsonDict:
        """ChatFullInfo; aiogram 3.31 requires the colour, reaction and gift fields."""
        data = self.to_api()
        data.update(
            {
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
        )
        return data


@dataclass(eq=False)
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    width: int = 0
    height: int = 0
    thumb_id: str | None = None  # a smaller PhotoSize of the same photo

    def to_api(self) -> JsonDict:
        return {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": len(self.data),
            "file_path": self.file_path,
        }


@dataclass(eq=False)
class ChatMessage:
    """One message in a chat, in either direction, with what the players need to inspect it."""

    chat_id: int
    message_id: int
    sender: User
    date: int
    text: str | None = None
    entities: list[Entity] = field(default_factory=list)
    caption: str | None = None
    caption_entities: list[Entity] = field(default_factory=list)
    html: str | None = None  # the raw text or caption as the bot sent it
    content: JsonDict = field(default_factory=dict)  # photo, document, contact, service fields
    media: StoredFile | None = None
    reply_markup: JsonDict | None = None  # as sent: inline keyboard, reply keyboard, removal
    thread_id: int | None = None
    is_topic_message: bool = False
    reply_to: ChatMessage | None = None
    forward_origin: JsonDict | None = None
    edit_date: int | None = None
    deleted: bool = False

    @property
    def from_bot(self) -> bool:
        return self.sender.is_bot

    @property
    def edited(self) -> bool:
        return self.edit_date is not None

    @property
    def body(self) -> str:
        """Text or caption, whichever the message has."""
        return self.text if self.text is not None else (self.caption or "")

    @property
    def buttons(self) -> list[list[tuple[str, str | None]]]:
        """Inline keyboard rows as (text, callback_data or url)."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [[(b["text"], b.get("callback_data", b.get("url"))) for b in row] for row in rows]

    @property
    def reply_keyboard(self) -> list[list[str]] | None:
        """Reply keyboard rows as button texts, when this message showed one."""
        rows = (self.reply_markup or {}).get("keyboard")
        if rows is None:
            return None
        return [[b if isinstance(b, str) else b["text"] for b in row] for row in rows]

    @property
    def photo(self) -> bytes | None:
        return self.media.data if self.media is not None and "photo" in self.content else None

    @property
    def document(self) -> bytes | None:
        return self.media.data if self.media is not None and "document" in self.content else None

    @property
    def document_name(self) -> str | None:
        doc = self.content.get("document")
        return doc.get("file_name") if isinstance(doc, dict) else None

    def to_api(self, chat: Chat, *, with_reply: bool = True) -> JsonDict:
        data: JsonDict = {
            "message_id": self.message_id,
            "from": self.sender.to_api(),
            "chat": chat.to_api(),
            "date": self.date,
        }
        if self.thread_id is not None:
            data["message_thread_id"] = self.thread_id
            if self.is_topic_message:
                data["is_topic_message"] = True
        if self.forward_origin is not None:
            data["forward_origin"] = self.forward_origin
        if with_reply and self.reply_to is not None and not self.reply_to.deleted:
            data["reply_to_message"] = self.reply_to.to_api(chat, with_reply=False)
        if self.edit_date is not None:
            data["edit_date"] = self.edit_date
        if self.text is not None:
            data["text"] = self.text
            if self.entities:
                data["entities"] = self.entities
        data.update(self.content)
        if self.caption is not None:
            data["caption"] = self.caption
            if self.caption_entities:
                data["caption_entities"] = self.caption_entities
        # Only inline keyboards are echoed: aiogram cannot parse other markups in a Message.
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            data["reply_markup"] = {"inline_keyboard": self.reply_markup["inline_keyboard"]}
        return data

    def view(self) -> JsonDict:
        """A JSON-safe summary for observers such as a browser page."""
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "from_bot": self.from_bot,
            "sender": self.sender.to_api(),
            "date": self.date,
            "text": self.body,
            "html": self.html,
            "buttons": [[list(b) for b in row] for row in self.buttons],
            "reply_keyboard": self.reply_keyboard,
            "thread_id": self.thread_id,
            "edited": self.edited,
            "deleted": self.deleted,
            "kind": next(iter(self.content), "text"),
            "reply_to": self.reply_to.message_id if self.reply_to else None,
        }


@dataclass(eq=False)
class CallbackQuery:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created: float  # monotonic
    answered: bool = False
    answer: JsonDict | None = None


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    max_connections: int = 40


@dataclass(eq=False)
class BotState:
    """What Telegram keeps per bot token: the update queue, webhook, commands."""

    user: User
    pending: list[JsonDict] = field(default_factory=list)
    next_update_id: int = 1
    allowed_updates: frozenset[str] = DEFAULT_UPDATE_TYPES
    allowed_updates_given: list[str] | None = None
    webhook: Webhook | None = None
    last_error_date: int | None = None
    last_error_message: str | None = None
    commands: dict[tuple[str, str], list[JsonDict]] = field(default_factory=dict)
    poll_generation: int = 0
    deliverer: asyncio.Task[None] | None = None


def update_type(update: JsonDict) -> str:
    return next(k for k in update if k != "update_id")
