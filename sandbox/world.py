"""The emulator's world: users, chats, messages, files, update queues, user actions, events."""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sandbox.html_entities import bot_command_entities
from sandbox.state import (
    BotState,
    CallbackQuery,
    Chat,
    ChatMessage,
    JsonDict,
    StoredFile,
    Topic,
    User,
)

T = TypeVar("T")

SERVICE_KEYS = frozenset(
    {
        "forum_topic_created",
        "forum_topic_edited",
        "forum_topic_closed",
        "forum_topic_reopened",
        "pinned_message",
    }
)
GENERAL_TOPIC_ID = 1
_TOKEN_RE = re.compile(r"^(\d{1,20}):(\S+)$")
_FILE_FOLDERS = {
    "photo": ("photos", ".jpg"),
    "document": ("documents", ""),
    "video": ("videos", ".mp4"),
    "audio": ("music", ".mp3"),
    "voice": ("voice", ".oga"),
    "animation": ("animations", ".mp4"),
    "sticker": ("stickers", ".webp"),
}


@dataclass
class Event:
    """Something observable happened: the bot sent, edited or deleted a message, and so on."""

    seq: int
    kind: str
    chat_id: int | None
    message: ChatMessage | None = None
    data: JsonDict = field(default_factory=dict)

    def to_json(self) -> JsonDict:
        body: JsonDict = {"seq": self.seq, "kind": self.kind, "chat_id": self.chat_id, **self.data}
        if self.message is not None:
            body["message"] = self.message.view()
        return body


def is_service(message: ChatMessage) -> bool:
    return not SERVICE_KEYS.isdisjoint(message.content)


def chat_member_api(user: User, status: str, *, can_manage_topics: bool = False) -> JsonDict:
    """A ChatMember object with every field aiogram requires for its status."""
    data: JsonDict = {"status": status, "user": user.to_api()}
    if status == "creator":
        data["is_anonymous"] = False
    elif status == "administrator":
        data.update(
            can_be_edited=False,
            is_anonymous=False,
            can_manage_chat=True,
            can_delete_messages=True,
            can_manage_video_chats=True,
            can_restrict_members=True,
            can_promote_members=False,
            can_change_info=True,
            can_invite_users=True,
            can_post_stories=False,
            can_edit_stories=False,
            can_delete_stories=False,
            can_send_welcome_messages=False,
            can_pin_messages=True,
            can_manage_topics=can_manage_topics,
        )
    elif status == "kicked":
        data["until_date"] = 0
    elif status == "restricted":
        data.update(
            {
                key: False
                for key in [
                    "can_send_messages",
                    "can_send_audios",
                    "can_send_documents",
                    "can_send_photos",
                    "can_send_videos",
                    "can_send_video_notes",
                    "can_send_voice_notes",
                    "can_send_polls",
                    "can_send_other_messages",
                    "can_add_web_page_previews",
                    "can_react_to_messages",
                    "can_edit_tag",
                    "can_change_info",
                    "can_invite_users",
                    "can_pin_messages",
                    "can_manage_topics",
                ]
            },
            is_member=True,
            until_date=0,
        )
    return data


class World:
    """All state of the emulated Telegram, reachable through methods only."""

    def __init__(
        self,
        *,
        bot_first_name: str = "Carebot Sandbox",
        bot_username: str | None = None,
        monotonic: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.monotonic = monotonic
        self.wall_clock = wall_clock
        self._bot_first_name = bot_first_name
        self._bot_username = bot_username
        self._users: dict[int, User] = {}
        self._chats: dict[int, Chat] = {}
        self._messages: dict[int, dict[int, ChatMessage]] = {}
        self._files: dict[str, StoredFile] = {}
        self._file_numbers = itertools.count(1)
        self._query_numbers = itertools.count(1)
        self._queries: dict[str, CallbackQuery] = {}
        self._bots: dict[int, BotState] = {}
        # Players may act before the bot's first request; their updates wait here, and the
        # first token seen becomes this bot.
        self._primary = BotState(user=User(id=0, first_name=bot_first_name, is_bot=True))
        self._events: list[Event] = []
        self._subscribers: list[asyncio.Queue[JsonDict]] = []
        self._tick = asyncio.Event()
        self.last_action_seq = 0
        self.closing = False

    # --- clock ---------------------------------------------------------------------------

    def now(self) -> int:
        """Message dates: unix seconds on the settable wall clock."""
        return int(self.wall_clock())

    # --- bots ----------------------------------------------------------------------------

    def bot_for_token(self, token: str) -> BotState | None:
        match = _TOKEN_RE.match(token)
        if match is None:
            return None
        bot_id = int(match.group(1))
        bot = self._bots.get(bot_id)
        if bot is not None:
            return bot
        if not self._bots:
            bot = self._primary
            _rename_bot(bot.pending, 0, bot_id)
            bot.user.id = bot_id
        else:
            bot = BotState(user=User(id=bot_id, first_name=self._bot_first_name, is_bot=True))
        bot.user.username = self._bot_username or f"sandbox_{bot_id}_bot"
        self._bots[bot_id] = bot
        return bot

    @property
    def bot(self) -> BotState:
        """The bot that players talk to: the first token that called the API."""
        return self._primary

    @property
    def bot_user(self) -> User:
        return self._primary.user

    # --- users and chats -----------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str,
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        phone: str | None = None,
        started: bool = True,
    ) -> User:
        """A Telegram user with a private chat with the bot (chat id = user id).

        Adding a known user again updates them in place."""
        user = self._users.get(user_id) or User(id=user_id, first_name=first_name)
        user.first_name = first_name
        user.last_name = last_name
        user.username = username
        user.language_code = language_code
        user.phone = phone
        user.started = started
        if user_id not in self._users:
            self._users[user_id] = user
            self._chats[user_id] = Chat(id=user_id, type="private", user=user)
            self._messages[user_id] = {}
        return user

    def get_user(self, user_id: int) -> User | None:
        if user_id == self.bot_user.id:
            return self.bot_user
        return self._users.get(user_id)

    def add_group(
        self,
        chat_id: int,
        title: str,
        *,
        forum: bool = False,
        supergroup: bool = True,
        bot_status: str = "administrator",
        bot_can_manage_topics: bool = True,
    ) -> Chat:
        """A group the bot is in; by default as an administrator allowed to manage topics."""
        if chat_id >= 0:
            raise ValueError("group chat ids are negative, such as -1001234567890")
        chat = Chat(
            id=chat_id,
            type="supergroup" if supergroup or forum else "group",
            title=title,
            is_forum=forum,
            bot_status=bot_status,
            bot_can_manage_topics=bot_can_manage_topics,
            next_message_id=GENERAL_TOPIC_ID + 1,  # id 1 is the General topic's in forums
        )
        self._chats[chat_id] = chat
        self._messages[chat_id] = {}
        return chat

    def set_member(self, chat_id: int, user_id: int, status: str = "member") -> None:
        """Status is one of creator, administrator, member, restricted, left, kicked."""
        self._chat(chat_id).members[user_id] = status

    def set_bot_status(self, chat_id: int, status: str) -> None:
        """E.g. "kicked" to see how the bot copes with being removed from a group."""
        self._chat(chat_id).bot_status = status

    def get_chat(self, chat_id: int) -> Chat | None:
        return self._chats.get(chat_id)

    def find_chat(self, ref: int | str) -> Chat | None:
        if isinstance(ref, int):
            return self._chats.get(ref)
        name = ref.lstrip("@").lower()
        return next((c for c in self._chats.values() if (c.username or "").lower() == name), None)

    def _chat(self, chat_id: int) -> Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise KeyError(f"no chat {chat_id} in the emulator")
        return chat

    def chats(self) -> list[Chat]:
        return list(self._chats.values())

    # --- messages ------------------------------------------------------------------------

    def messages(
        self, chat_id: int, *, from_bot: bool | None = None, service: bool = False
    ) -> list[ChatMessage]:
        """Messages of a chat in order, deleted ones included (see .deleted)."""
        return [
            m
            for m in self._messages.get(chat_id, {}).values()
            if (from_bot is None or m.from_bot == from_bot) and (service or not is_service(m))
        ]

    def find_message(self, chat_id: int, message_id: int) -> ChatMessage | None:
        return self._messages.get(chat_id, {}).get(message_id)

    def post(self, chat: Chat, sender: User, **fields: Any) -> ChatMessage:
        """Store a new message in a chat and tell observers about it."""
        message_id = chat.next_message_id
        chat.next_message_id += 1
        message = ChatMessage(
            chat_id=chat.id, message_id=message_id, sender=sender, date=self.now()
        )
        for key, value in fields.items():
            setattr(message, key, value)
        if chat.is_forum and message.thread_id is not None:
            message.is_topic_message = True
            if message.reply_to is None and message.thread_id != message_id:
                # Telegram makes a topic message without a reply answer the topic's root.
                message.reply_to = self.find_message(chat.id, message.thread_id)
        self._messages[chat.id][message_id] = message
        if sender.is_bot and message.reply_markup is not None:
            if "keyboard" in message.reply_markup:
                chat.reply_keyboard = message.reply_markup
            elif message.reply_markup.get("remove_keyboard"):
                chat.reply_keyboard = None
        if is_service(message):
            kind = "service"
        else:
            kind = "bot_message" if sender.is_bot else "user_message"
        self.emit(kind, chat.id, message)
        return message

    def root_message(self, chat: Chat, topic: Topic) -> ChatMessage | None:
        return self.find_message(chat.id, topic.thread_id)

    # --- files ---------------------------------------------------------------------------

    def store_file(
        self,
        data: bytes,
        kind: str,
        *,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> StoredFile:
        number = next(self._file_numbers)
        folder, default_ext = _FILE_FOLDERS.get(kind, ("documents", ""))
        ext = default_ext
        if file_name and "." in file_name:
            ext = "." + file_name.rsplit(".", 1)[1]
        if mime_type is None and file_name:
            mime_type = mimetypes.guess_type(file_name)[0]
        stored = StoredFile(
            file_id=f"{kind[:3].upper()}{number:06d}{secrets.token_urlsafe(12)}",
            file_unique_id=f"U{number:06d}{secrets.token_hex(3)}",
            data=data,
            file_path=f"{folder}/file_{number}{ext}",
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        if kind == "photo":
            stored.width, stored.height = 1280, 960
            thumb = self.store_file(data, "photo_thumb")
            thumb.width, thumb.height = 320, 240
            stored.thumb_id = thumb.file_id
        return stored

    def get_file(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def file_by_path(self, path: str) -> StoredFile | None:
        return next((f for f in self._files.values() if f.file_path == path), None)

    def media_api(self, kind: str, stored: StoredFile) -> Any:
        """The API object for a file sent as `kind` (photo, document, voice, ...)."""
        base: JsonDict = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": len(stored.data),
        }
        if kind == "photo":
            sizes = []
            thumb = self._files.get(stored.thumb_id or "")
            for item in (thumb, stored):
                if item is not None:
                    sizes.append(
                        {
                            "file_id": item.file_id,
                            "file_unique_id": item.file_unique_id,
                            "file_size": len(item.data),
                            "width": item.width or 1280,
                            "height": item.height or 960,
                        }
                    )
            return sizes
        if kind in ("video", "animation"):
            base.update(width=640, height=480, duration=1)
        elif kind in ("audio", "voice"):
            base["duration"] = 1
        elif kind == "sticker":
            base.update(
                type="regular", width=512, height=512, is_animated=False, is_video=False, emoji="🙂"
            )
        if kind in ("document", "video", "audio", "animation") and stored.file_name:
            base["file_name"] = stored.file_name
        if stored.mime_type and kind != "sticker":
            base["mime_type"] = stored.mime_type
        return base

    # --- updates -------------------------------------------------------------------------

    def queue_update(self, kind: str, payload: JsonDict) -> None:
        bot = self._primary
        if kind not in bot.allowed_updates:
            return  # Telegram never creates updates the bot did not ask for
        bot.pending.append({"update_id": bot.next_update_id, kind: payload})
        bot.next_update_id += 1
        self.changed()

    def pending_updates(self) -> list[JsonDict]:
        return list(self._primary.pending)

    # --- what users do -------------------------------------------------------------------

    def user_sends(
        self,
        user_id: int,
        *,
        chat_id: int | None = None,
        text: str | None = None,
        caption: str | None = None,
        content: JsonDict | None = None,
        media: StoredFile | None = None,
        thread_id: int | None = None,
        reply_to_id: int | None = None,
    ) -> ChatMessage:
        """A user posts a message (in the private chat unless chat_id is a group)."""
        user = self._users.get(user_id)
        if user is None:
            raise KeyError(f"no user {user_id} in the emulator")
        chat = self._chat(user_id if chat_id is None else chat_id)
        if chat.type == "private" and user.blocked_bot:
            raise RuntimeError(f"user {user_id} has blocked the bot; unblock first")
        if chat.is_group and chat.members.get(user_id) in (None, "left", "kicked"):
            chat.members[user_id] = "member"
        if thread_id is not None and chat.is_forum and thread_id not in chat.topics:
            raise ValueError(f"no topic {thread_id} in chat {chat.id}")
        reply_to = None
        if reply_to_id is not None:
            reply_to = self.find_message(chat.id, reply_to_id)
            if reply_to is None:
                raise ValueError(f"no message {reply_to_id} in chat {chat.id}")
            if thread_id is None:
                thread_id = reply_to.thread_id
        user.started = True
        self.last_action_seq = self.seq
        message = self.post(
            chat,
            user,
            text=text,
            entities=bot_command_entities(text) if text else [],
            html=text if text is not None else caption,
            caption=caption,
            content=content or {},
            media=media,
            thread_id=thread_id if chat.is_forum else None,
            reply_to=reply_to,
        )
        if chat.user is not None or chat.bot_status not in ("left", "kicked"):
            self.queue_update("message", message.to_api(chat))
        return message

    def user_sends_text(self, user_id: int, text: str, **where: Any) -> ChatMessage:
        return self.user_sends(user_id, text=text, **where)

    def user_shares_contact(
        self,
        user_id: int,
        *,
        phone: str | None = None,
        contact_user_id: int | None = None,
        first_name: str | None = None,
        **where: Any,
    ) -> ChatMessage:
        """Share a contact: the user's own (the reply-keyboard button) or someone else's."""
        user = self._users[user_id]
        owner_id = user_id if contact_user_id is None else contact_user_id
        owner = self._users.get(owner_id)
        number = phone or (owner.phone if owner else None) or f"+{8613800000000 + owner_id}"
        contact: JsonDict = {
            "phone_number": number,
            "first_name": first_name or (owner.first_name if owner else "Contact"),
            "user_id": owner_id,
        }
        if owner is not None and owner.last_name and first_name is None:
            contact["last_name"] = owner.last_name
        if owner_id == user_id and user.phone is None:
            user.phone = number
        return self.user_sends(user_id, content={"contact": contact}, **where)

    def user_sends_file(
        self,
        user_id: int,
        kind: str,
        data: bytes,
        *,
        file_name: str | None = None,
        caption: str | None = None,
        **where: Any,
    ) -> ChatMessage:
        """Send a photo, document, voice, sticker... as `kind`."""
        stored = self.store_file(data, kind, file_name=file_name)
        return self.user_sends(
            user_id,
            caption=caption,
            content={kind: self.media_api(kind, stored)},
            media=stored,
            **where,
        )

    def user_presses(self, user_id: int, chat_id: int, message_id: int, data: str) -> CallbackQuery:
        """Press an inline button (any callback data, even forged) under a message."""
        user = self._users[user_id]
        chat = self._chat(chat_id)
        message = self.find_message(chat_id, message_id)
        if message is None or message.deleted:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        query = CallbackQuery(
            id=f"{next(self._query_numbers)}{secrets.randbelow(10**9):09d}",
            user_id=user_id,
            chat_id=chat_id,
            message_id=message_id,
            data=data,
            created=self.monotonic(),
        )
        self._queries[query.id] = query
        self.last_action_seq = self.seq
        self.queue_update(
            "callback_query",
            {
                "id": query.id,
                "from": user.to_api(),
                "message": message.to_api(chat),
                "chat_instance": str(abs(chat_id) * 31 + 7),
                "data": data,
            },
        )
        return query

    def get_query(self, query_id: str) -> CallbackQuery | None:
        return self._queries.get(query_id)

    def block(self, user_id: int) -> None:
        """The user blocks the bot: sends fail with 403 and a my_chat_member update arrives."""
        user = self._users[user_id]
        if user.blocked_bot:
            return
        user.blocked_bot = True
        self._member_update(user, "member", "kicked")
        self.emit("blocked", user_id)

    def unblock(self, user_id: int) -> None:
        user = self._users[user_id]
        if not user.blocked_bot:
            return
        user.blocked_bot = False
        self._member_update(user, "kicked", "member")
        self.emit("unblocked", user_id)

    def _member_update(self, user: User, old: str, new: str) -> None:
        self.last_action_seq = self.seq
        self.queue_update(
            "my_chat_member",
            {
                "chat": self._chat(user.id).to_api(),
                "from": user.to_api(),
                "date": self.now(),
                "old_chat_member": chat_member_api(self.bot_user, old),
                "new_chat_member": chat_member_api(self.bot_user, new),
            },
        )

    # --- events and waiting --------------------------------------------------------------

    @property
    def seq(self) -> int:
        """Number of the latest event; events after a mark have a greater seq."""
        return len(self._events)

    def events_since(self, seq: int) -> list[Event]:
        return self._events[seq:]

    def emit(
        self, kind: str, chat_id: int | None, message: ChatMessage | None = None, **data: Any
    ) -> Event:
        event = Event(
            seq=len(self._events) + 1, kind=kind, chat_id=chat_id, message=message, data=data
        )
        self._events.append(event)
        if self._subscribers:
            body = event.to_json()
            for queue in self._subscribers:
                queue.put_nowait(body)
        self.changed()
        return event

    def subscribe(self) -> asyncio.Queue[JsonDict]:
        """A queue receiving every event as a JSON-safe dict {"kind": ..., ...}."""
        queue: asyncio.Queue[JsonDict] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[JsonDict]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def changed(self) -> None:
        """Wake everyone waiting in until()."""
        self._tick.set()
        self._tick = asyncio.Event()

    async def until(self, check: Callable[[], T | None], seconds: float | None) -> T | None:
        """Re-run `check` after every change until it returns non-None or `seconds` pass."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while True:
            result = check()
            if result is not None:
                return result
            tick = self._tick
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(tick.wait(), remaining)
            except TimeoutError:
                return check()

    def bot_events(
        self, since: int, chat_id: int | None = None, kinds: tuple[str, ...] = ("bot_message",)
    ) -> list[Event]:
        """Events after the mark `since` of the given kinds that carry a message."""
        return [
            e
            for e in self._events[since:]
            if e.kind in kinds and e.message is not None and chat_id in (None, e.chat_id)
        ]

    def bot_messages_since(
        self, since: int, chat_id: int | None = None, kinds: tuple[str, ...] = ("bot_message",)
    ) -> list[ChatMessage]:
        return [e.message for e in self.bot_events(since, chat_id, kinds) if e.message is not None]

    async def wait_for(
        self,
        predicate: Callable[[ChatMessage], bool],
        timeout: float = 5.0,
        *,
        since: int | None = None,
    ) -> ChatMessage:
        """The first bot message anywhere matching `predicate`, sent after the last player
        action (or after the `since` mark)."""
        start = self.last_action_seq if since is None else since

        def find() -> ChatMessage | None:
            return next((m for m in self.bot_messages_since(start) if predicate(m)), None)

        found = await self.until(find, timeout)
        if found is None:
            raise AssertionError(
                f"no matching bot message within {timeout}s; {self.describe_since(start)}"
            )
        return found

    def describe_since(self, seq: int, chat_id: int | None = None) -> str:
        """What the bot sent since a mark, for failure messages."""
        # A message edited after sending appears once, as it is now.
        sent = list(dict.fromkeys(self.bot_messages_since(seq, chat_id, ("bot_message", "edited"))))
        if not sent:
            where = f" to chat {chat_id}" if chat_id is not None else ""
            return f"the bot sent nothing{where}"
        lines = [
            f"  chat {m.chat_id} #{m.message_id}{' (edited)' if m.edited else ''}: "
            f"{m.body[:120]!r}{' buttons=' + str(m.buttons) if m.buttons else ''}"
            for m in sent
        ]
        return "the bot sent:\n" + "\n".join(lines)


def _rename_bot(updates: list[JsonDict], old_id: int, new_id: int) -> None:
    """Updates queued before the bot's first request name it with a placeholder id."""

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("is_bot") is True and value.get("id") == old_id:
                value["id"] = new_id
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(updates)
