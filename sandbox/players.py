"""Players for tests: customers and staff who talk to the bot through the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, overload

from sandbox.state import Chat, ChatMessage, JsonDict, User

if TYPE_CHECKING:
    from sandbox.world import World

# A tiny valid PNG and an Ogg header: enough for bots that only store or forward media.
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
OGG_STUB = b"OggS" + bytes(24)
WEBP_STUB = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11"

_NEW = ("bot_message",)
_NEW_OR_EDITED = ("bot_message", "edited")


class Player:
    """A Telegram user; its actions wait, event-driven, for the bot's answer.

    `reply_timeout` bounds every wait; a wait that runs out raises AssertionError listing
    what the bot did send.
    """

    reply_timeout = 5.0

    def __init__(self, tg: World, user: User) -> None:
        self.tg = tg
        self.user = user
        self.last_query_id: str | None = None
        self._created = tg.seq
        self._seen: dict[int, int] = {}  # chat id -> last event seq already handed out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.user.first_name} #{self.user.id}>"

    @property
    def user_id(self) -> int:
        return self.user.id

    @property
    def chat_id(self) -> int:
        """The private chat with the bot."""
        return self.user.id

    @property
    def messages(self) -> list[ChatMessage]:
        """Everything the bot sent to the private chat, in order (deleted ones flagged)."""
        return self.tg.messages(self.chat_id, from_bot=True)

    @property
    def last_message(self) -> ChatMessage | None:
        alive = [m for m in self.messages if not m.deleted]
        return alive[-1] if alive else None

    # --- waiting -------------------------------------------------------------------------

    async def _act(
        self,
        action: Callable[[], object],
        chat_id: int,
        expect: int | None,
        kinds: tuple[str, ...] = _NEW,
    ) -> list[ChatMessage]:
        mark = self.tg.seq
        action()
        self._seen[chat_id] = mark
        count = 1 if expect is None else expect
        if count <= 0:
            return []
        return await self._collect(chat_id, mark, count, kinds)

    async def _collect(
        self, chat_id: int, mark: int, count: int, kinds: tuple[str, ...]
    ) -> list[ChatMessage]:
        def enough() -> list[ChatMessage] | None:
            events = self.tg.bot_events(mark, chat_id, kinds)
            if len(events) < count:
                return None
            self._seen[chat_id] = events[count - 1].seq
            return [e.message for e in events[:count] if e.message is not None]

        found = await self.tg.until(enough, self.reply_timeout)
        if found is None:
            raise AssertionError(
                f"{self.user.first_name} expected {count} bot message(s) in chat {chat_id} "
                f"within {self.reply_timeout}s; {self.tg.describe_since(mark, chat_id)}"
            )
        return found

    async def next_message(self, *, chat: Chat | None = None) -> ChatMessage:
        """The next bot message in the chat after those this player already received."""
        chat_id = self.chat_id if chat is None else chat.id
        mark = self._seen.get(chat_id, self._created)
        return (await self._collect(chat_id, mark, 1, _NEW))[0]

    async def expect_none(self, within: float = 0.3, *, chat: Chat | None = None) -> None:
        """Assert the bot sends or edits nothing more in the chat for `within` seconds."""
        chat_id = self.chat_id if chat is None else chat.id
        mark = self._seen.get(chat_id, self._created)

        def anything() -> ChatMessage | None:
            found = self.tg.bot_messages_since(mark, chat_id, _NEW_OR_EDITED)
            return found[0] if found else None

        if await self.tg.until(anything, within) is not None:
            raise AssertionError(
                f"expected silence in chat {chat_id}; {self.tg.describe_since(mark, chat_id)}"
            )

    # --- buttons -------------------------------------------------------------------------

    def _find_button(self, chat_id: int, label: str) -> tuple[ChatMessage, Any]:
        """The newest button whose text is `label` (or else contains it): inline buttons of
        any bot message, reply-keyboard buttons only while that keyboard is shown."""
        chat = self.tg.get_chat(chat_id)
        seen: list[str] = []
        for message in reversed(self.tg.messages(chat_id, from_bot=True)):
            markup = message.reply_markup or {}
            if message.deleted or not markup:
                continue
            if "inline_keyboard" in markup:
                buttons: list[Any] = [b for row in markup["inline_keyboard"] for b in row]
            elif chat is not None and chat.reply_keyboard is markup:
                buttons = [b for row in markup["keyboard"] for b in row]
            else:
                continue
            texts = [b if isinstance(b, str) else b["text"] for b in buttons]
            seen.extend(texts)
            for exact in (True, False):
                for text, button in zip(texts, buttons, strict=True):
                    if text == label or (not exact and label in text):
                        return message, button
        raise AssertionError(f"no button {label!r} in chat {chat_id}; buttons shown: {seen}")

    async def presses(self, label: str, *, chat: Chat | None = None) -> ChatMessage:
        """Press a button by (part of) its text; wait for the bot's next message or edit.

        Inline buttons send a callback_query; reply-keyboard buttons send their text, or
        the user's contact for a request_contact button."""
        chat_id = self.chat_id if chat is None else chat.id
        message, button = self._find_button(chat_id, label)
        if isinstance(button, str) or "inline_keyboard" not in (message.reply_markup or {}):
            text = button if isinstance(button, str) else button["text"]
            contact = isinstance(button, dict) and bool(button.get("request_contact"))

            def send() -> None:
                if contact:
                    self.tg.user_shares_contact(self.user_id)
                else:
                    self.tg.user_sends_text(self.user_id, text, chat_id=chat_id)

            return (await self._act(send, chat_id, None))[0]
        if "callback_data" not in button:
            raise AssertionError(f"button {button['text']!r} is not a callback button: {button}")
        return await self.presses_data(message.message_id, button["callback_data"], chat=chat)

    async def presses_data(
        self, message_id: int, data: str, *, chat: Chat | None = None
    ) -> ChatMessage:
        """Send a callback_query with any data (even forged) for a message; wait for the
        bot's next message or edit in that chat."""
        chat_id = self.chat_id if chat is None else chat.id

        def press() -> None:
            self.last_query_id = self.tg.user_presses(self.user_id, chat_id, message_id, data).id

        return (await self._act(press, chat_id, None, _NEW_OR_EDITED))[0]

    async def presses_for_toast(self, label: str, *, chat: Chat | None = None) -> JsonDict:
        """Press an inline button and wait for answerCallbackQuery: {text, show_alert, url}."""
        chat_id = self.chat_id if chat is None else chat.id
        message, button = self._find_button(chat_id, label)
        if not isinstance(button, dict) or "callback_data" not in button:
            raise AssertionError(f"button {label!r} is not an inline callback button")
        self._seen[chat_id] = self.tg.seq
        query = self.tg.user_presses(
            self.user_id, chat_id, message.message_id, button["callback_data"]
        )
        self.last_query_id = query.id
        answer = await self.tg.until(lambda: query.answer, self.reply_timeout)
        if answer is None:
            raise AssertionError(
                f"the bot did not answer the callback query within {self.reply_timeout}s"
            )
        return answer


class Customer(Player):
    """A customer in a private chat with the bot.

    Each action waits for the bot's next message in the chat and returns it; with `expect=N`
    it waits for N messages and returns them as a list (expect=0 does not wait).
    """

    @overload
    async def says(self, text: str) -> ChatMessage: ...
    @overload
    async def says(self, text: str, *, expect: int) -> list[ChatMessage]: ...
    async def says(
        self, text: str, *, expect: int | None = None
    ) -> ChatMessage | list[ChatMessage]:
        def send() -> None:
            self.tg.user_sends_text(self.user_id, text)

        return _one_or_all(await self._act(send, self.chat_id, expect), expect)

    @overload
    async def replies_to(self, message_id: int, text: str) -> ChatMessage: ...
    @overload
    async def replies_to(self, message_id: int, text: str, *, expect: int) -> list[ChatMessage]: ...
    async def replies_to(
        self, message_id: int, text: str, *, expect: int | None = None
    ) -> ChatMessage | list[ChatMessage]:
        def send() -> None:
            self.tg.user_sends_text(self.user_id, text, reply_to_id=message_id)

        return _one_or_all(await self._act(send, self.chat_id, expect), expect)

    @overload
    async def shares_contact(
        self, *, of_user_id: int | None = None, phone: str | None = None
    ) -> ChatMessage: ...
    @overload
    async def shares_contact(
        self, *, of_user_id: int | None = None, phone: str | None = None, expect: int
    ) -> list[ChatMessage]: ...
    async def shares_contact(
        self, *, of_user_id: int | None = None, phone: str | None = None, expect: int | None = None
    ) -> ChatMessage | list[ChatMessage]:
        """Share the own contact (as the request_contact button does) or someone else's."""

        def share() -> None:
            self.tg.user_shares_contact(self.user_id, phone=phone, contact_user_id=of_user_id)

        return _one_or_all(await self._act(share, self.chat_id, expect), expect)

    @overload
    async def sends_photo(
        self, data: bytes = PNG_1X1, caption: str | None = None
    ) -> ChatMessage: ...
    @overload
    async def sends_photo(
        self, data: bytes = PNG_1X1, caption: str | None = None, *, expect: int
    ) -> list[ChatMessage]: ...
    async def sends_photo(
        self, data: bytes = PNG_1X1, caption: str | None = None, *, expect: int | None = None
    ) -> ChatMessage | list[ChatMessage]:
        return _one_or_all(await self._send_file("photo", data, None, caption, expect), expect)

    @overload
    async def sends_document(
        self, data: bytes, filename: str, caption: str | None = None
    ) -> ChatMessage: ...
    @overload
    async def sends_document(
        self, data: bytes, filename: str, caption: str | None = None, *, expect: int
    ) -> list[ChatMessage]: ...
    async def sends_document(
        self, data: bytes, filename: str, caption: str | None = None, *, expect: int | None = None
    ) -> ChatMessage | list[ChatMessage]:
        replies = await self._send_file("document", data, filename, caption, expect)
        return _one_or_all(replies, expect)

    @overload
    async def sends_sticker(self) -> ChatMessage: ...
    @overload
    async def sends_sticker(self, *, expect: int) -> list[ChatMessage]: ...
    async def sends_sticker(self, *, expect: int | None = None) -> ChatMessage | list[ChatMessage]:
        return _one_or_all(await self._send_file("sticker", WEBP_STUB, None, None, expect), expect)

    @overload
    async def sends_voice(self, data: bytes = OGG_STUB) -> ChatMessage: ...
    @overload
    async def sends_voice(self, data: bytes = OGG_STUB, *, expect: int) -> list[ChatMessage]: ...
    async def sends_voice(
        self, data: bytes = OGG_STUB, *, expect: int | None = None
    ) -> ChatMessage | list[ChatMessage]:
        return _one_or_all(await self._send_file("voice", data, None, None, expect), expect)

    async def _send_file(
        self, kind: str, data: bytes, filename: str | None, caption: str | None, expect: int | None
    ) -> list[ChatMessage]:
        def send() -> None:
            self.tg.user_sends_file(self.user_id, kind, data, file_name=filename, caption=caption)

        return await self._act(send, self.chat_id, expect)

    async def blocks_bot(self) -> None:
        """Block the bot: its sends now fail with 403; the bot gets my_chat_member "kicked"."""
        self._seen[self.chat_id] = self.tg.seq
        self.tg.block(self.user_id)

    async def unblocks_bot(self) -> None:
        """Unblock and press Restart: my_chat_member "member", then /start.
        The bot's greeting is then available through next_message()."""
        self._seen[self.chat_id] = self.tg.seq
        self.tg.unblock(self.user_id)
        self.tg.user_sends_text(self.user_id, "/start")


class StaffMember(Customer):
    """A staff member: a customer-like user who also writes in the staff group."""

    async def says_in(self, group: Chat, text: str, *, thread_id: int | None = None) -> ChatMessage:
        """Post in the group (in a forum topic when thread_id is given); returns the posted
        message. The bot's reaction: next_message(chat=group), or tg.wait_for(...)."""
        self._seen[group.id] = self.tg.seq
        return self.tg.user_sends_text(self.user_id, text, chat_id=group.id, thread_id=thread_id)

    async def replies_in(self, group: Chat, message_id: int, text: str) -> ChatMessage:
        """Reply to a message in the group (the topic follows the replied message)."""
        self._seen[group.id] = self.tg.seq
        return self.tg.user_sends_text(self.user_id, text, chat_id=group.id, reply_to_id=message_id)


def _one_or_all(replies: list[ChatMessage], expect: int | None) -> ChatMessage | list[ChatMessage]:
    return replies[0] if expect is None else replies
