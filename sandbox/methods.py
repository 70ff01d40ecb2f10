"""The Bot API methods the emulator implements, each checked the way Telegram checks it."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox.api_params import (
    MAX_CAPTION,
    ApiError,
    Params,
    UploadedFile,
    bad_request,
    check_caption,
    check_reply_markup,
    check_text,
    formatted_text,
)
from sandbox.faults import RateLimiter
from sandbox.state import (
    DEFAULT_UPDATE_TYPES,
    BotState,
    Chat,
    ChatMessage,
    JsonDict,
    StoredFile,
    Topic,
    Webhook,
)
from sandbox.world import GENERAL_TOPIC_ID, World, chat_member_api, is_service

Handler = Callable[[BotState, Params], Awaitable[Any]]

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the "
    "same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete "
    "the webhook first"
)
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is "
    "running"
)
DEFAULT_TOPIC_COLOR = 7322096
MAX_DOWNLOAD = 20 * 1024 * 1024
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_MEDIA_KINDS = ("photo", "document", "video", "audio", "voice", "animation", "sticker")


def _inline(markup: JsonDict | None) -> JsonDict | None:
    if markup and markup.get("inline_keyboard"):
        return markup
    return None


class BotApi:
    """Method handlers; `handlers` maps the canonical method name to its coroutine."""

    def __init__(
        self,
        world: World,
        limiter: RateLimiter,
        *,
        callback_answer_timeout: float,
        webhook_changed: Callable[[BotState], None],
    ) -> None:
        self.world = world
        self.limiter = limiter
        self.callback_answer_timeout = callback_answer_timeout
        self._webhook_changed = webhook_changed
        self.handlers: dict[str, Handler] = {
            "getMe": self.get_me,
            "logOut": self.no_op,
            "close": self.no_op,
            "getUpdates": self.get_updates,
            "setWebhook": self.set_webhook,
            "deleteWebhook": self.delete_webhook,
            "getWebhookInfo": self.get_webhook_info,
            "sendMessage": self.send_message,
            "copyMessage": self.copy_message,
            "forwardMessage": self.forward_message,
            "editMessageText": self.edit_message_text,
            "editMessageCaption": self.edit_message_caption,
            "editMessageReplyMarkup": self.edit_message_reply_markup,
            "deleteMessage": self.delete_message,
            "deleteMessages": self.delete_messages,
            "answerCallbackQuery": self.answer_callback_query,
            "setMyCommands": self.set_my_commands,
            "getMyCommands": self.get_my_commands,
            "deleteMyCommands": self.delete_my_commands,
            "getFile": self.get_file,
            "sendChatAction": self.send_chat_action,
            "getChat": self.get_chat,
            "getChatMember": self.get_chat_member,
            "getChatAdministrators": self.get_chat_administrators,
            "getChatMemberCount": self.get_chat_member_count,
            "createForumTopic": self.create_forum_topic,
            "editForumTopic": self.edit_forum_topic,
            "closeForumTopic": self.close_forum_topic,
            "reopenForumTopic": self.reopen_forum_topic,
            "deleteForumTopic": self.delete_forum_topic,
            "pinChatMessage": self.pin_chat_message,
            "unpinChatMessage": self.unpin_chat_message,
            "unpinAllChatMessages": self.unpin_all_chat_messages,
            "setMyDescription": self.no_op,
            "setMyShortDescription": self.no_op,
            "setMyName": self.no_op,
            "setChatMenuButton": self.no_op,
            "setMessageReaction": self.no_op,
        }
        for kind in _MEDIA_KINDS:
            self.handlers["send" + kind.capitalize()] = self._media_sender(kind)
        self._by_lower = {name.lower(): name for name in self.handlers}

    def canonical(self, method: str) -> str | None:
        """Telegram method names are case-insensitive."""
        return self._by_lower.get(method.lower())

    # --- shared checks -------------------------------------------------------------------

    def _chat(self, p: Params, field: str = "chat_id") -> Chat:
        chat = self.world.find_chat(p.chat_ref(field))
        if chat is None:
            raise bad_request("chat not found")
        return chat

    def _writable_chat(self, p: Params) -> Chat:
        chat = self._chat(p)
        if chat.user is not None:
            if chat.user.blocked_bot:
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            if not chat.user.started:
                raise ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        elif chat.bot_status == "kicked":
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat.type} chat")
        elif chat.bot_status == "left":
            raise ApiError(403, f"Forbidden: bot is not a member of the {chat.type} chat")
        return chat

    def _reply_target(self, chat: Chat, p: Params) -> ChatMessage | None:
        given = p.json("reply_parameters")
        if isinstance(given, dict):
            message_id = given.get("message_id")
            allow_missing = bool(given.get("allow_sending_without_reply"))
            other_chat = given.get("chat_id")
            if other_chat is not None and str(other_chat) != str(chat.id):
                return None  # replies to other chats are not emulated
        else:
            message_id = p.integer("reply_to_message_id")
            allow_missing = p.flag("allow_sending_without_reply")
        if message_id is None:
            return None
        target = self.world.find_message(chat.id, int(message_id))
        if target is None or target.deleted:
            if allow_missing:
                return None
            raise bad_request("message to be replied not found")
        return target

    def _thread(self, chat: Chat, p: Params, reply_to: ChatMessage | None) -> int | None:
        thread_id = p.integer("message_thread_id")
        if not chat.is_forum:
            return None
        if thread_id is None or thread_id == GENERAL_TOPIC_ID:
            return reply_to.thread_id if reply_to is not None else None
        topic = chat.topics.get(thread_id)
        if topic is None:
            raise bad_request("message thread not found")
        if topic.closed and not self._can_manage_topics(chat):
            raise bad_request("TOPIC_CLOSED")
        return thread_id

    @staticmethod
    def _can_manage_topics(chat: Chat) -> bool:
        return chat.bot_status in ("administrator", "creator") and chat.bot_can_manage_topics

    def _count_send(self, bot: BotState, chat: Chat) -> None:
        self.limiter.check(bot.user.id, chat.id, chat.is_group)

    def _input_file(self, p: Params, field: str, kind: str) -> StoredFile:
        value = p.get(field)
        if value is None:
            raise bad_request(f"there is no {field} in the request")
        if isinstance(value, str) and value.startswith("attach://"):
            value = p.get(value.removeprefix("attach://"))
        if isinstance(value, UploadedFile):
            if not value.data:
                raise bad_request("file must be non-empty")
            return self.world.store_file(value.data, kind, file_name=value.filename)
        if isinstance(value, str):
            known = self.world.get_file(value)
            if known is not None:
                return known
            if value.startswith(("http://", "https://")):
                # Nothing is fetched offline; the file exists but holds no bytes.
                name = value.rsplit("/", 1)[-1] or None
                return self.world.store_file(b"", kind, file_name=name)
        raise bad_request("wrong file identifier/HTTP URL specified")

    def _caption(
        self, p: Params, limit: int = MAX_CAPTION
    ) -> tuple[str | None, list[Any], str | None]:
        parsed = formatted_text(p, "caption", "parse_mode", "caption_entities")
        if parsed is None:
            return None, [], None
        plain, entities, source = parsed
        check_caption(plain, limit)
        return (plain or None), entities, source

    def _editable(self, bot: BotState, p: Params) -> tuple[Chat, ChatMessage]:
        if p.has("inline_message_id"):
            raise bad_request("inline messages are not emulated")
        chat = self._chat(p)
        message = self.world.find_message(chat.id, p.required_int("message_id"))
        if message is None or message.deleted:
            raise bad_request("message to edit not found")
        if message.sender.id != bot.user.id:
            raise bad_request("message can't be edited")
        return chat, message

    @staticmethod
    def _edit_markup(p: Params) -> JsonDict | None:
        markup = check_reply_markup(p.json("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise bad_request("inline keyboard expected")
        return _inline(markup)

    def _finish_edit(self, chat: Chat, message: ChatMessage, markup: JsonDict | None) -> JsonDict:
        if markup is not None or _inline(message.reply_markup) is not None:
            message.reply_markup = markup
        message.edit_date = self.world.now()
        self.world.emit("edited", chat.id, message)
        return message.to_api(chat)

    def _topic(self, chat: Chat, p: Params) -> Topic:
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        if not self._can_manage_topics(chat):
            raise bad_request("not enough rights to manage topics")
        topic = chat.topics.get(p.required_int("message_thread_id"))
        if topic is None:
            raise bad_request("message thread not found")
        return topic

    def _topic_service(
        self, bot: BotState, chat: Chat, topic: Topic, key: str, body: JsonDict
    ) -> None:
        self.world.post(chat, bot.user, content={key: body}, thread_id=topic.thread_id)

    # --- identity, updates, webhook ------------------------------------------------------

    async def no_op(self, bot: BotState, p: Params) -> bool:
        return True

    async def get_me(self, bot: BotState, p: Params) -> JsonDict:
        return {
            **bot.user.to_api(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _set_allowed_updates(self, bot: BotState, p: Params) -> None:
        given = p.json("allowed_updates")
        if given is None:
            return  # Telegram keeps the previous setting
        if not isinstance(given, list):
            raise bad_request("can't parse allowed_updates JSON object")
        bot.allowed_updates_given = [str(t) for t in given]
        bot.allowed_updates = frozenset(bot.allowed_updates_given) or DEFAULT_UPDATE_TYPES
        bot.pending = [u for u in bot.pending if set(u) - {"update_id"} <= bot.allowed_updates]

    async def get_updates(self, bot: BotState, p: Params) -> list[JsonDict]:
        if bot.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        self._set_allowed_updates(bot, p)
        offset = p.integer("offset")
        limit = min(max(p.integer("limit") or 100, 1), 100)
        timeout = min(max(p.integer("timeout") or 0, 0), 50)
        if offset is not None and offset < 0:
            bot.pending = bot.pending[offset:]
        elif offset is not None:
            bot.pending = [u for u in bot.pending if u["update_id"] >= offset]
        bot.poll_generation += 1
        generation = bot.poll_generation
        self.world.changed()  # an older long poll must end with a conflict

        def ready() -> list[JsonDict] | None:
            if generation != bot.poll_generation or bot.webhook is not None or self.world.closing:
                return []
            return bot.pending[:limit] if bot.pending else None

        result = await self.world.until(ready, timeout) if timeout else ready()
        if generation != bot.poll_generation:
            raise ApiError(409, POLL_CONFLICT)
        if bot.webhook is not None:
            raise ApiError(409, WEBHOOK_CONFLICT)
        return result or []

    async def set_webhook(self, bot: BotState, p: Params) -> bool:
        url = p.text("url") or ""
        if not url:
            return await self.delete_webhook(bot, p)
        # Real Telegram wants HTTPS on ports 443, 80, 88 or 8443; locally any port will do.
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        secret = p.text("secret_token")
        if secret is not None and not _SECRET_RE.fullmatch(secret):
            raise bad_request("secret token contains unallowed characters")
        self._set_allowed_updates(bot, p)
        if p.flag("drop_pending_updates"):
            bot.pending.clear()
        bot.webhook = Webhook(
            url=url, secret_token=secret, max_connections=p.integer("max_connections") or 40
        )
        bot.last_error_date = bot.last_error_message = None
        self._webhook_changed(bot)
        return True

    async def delete_webhook(self, bot: BotState, p: Params) -> bool:
        if p.flag("drop_pending_updates"):
            bot.pending.clear()
        bot.webhook = None
        self._webhook_changed(bot)
        return True

    async def get_webhook_info(self, bot: BotState, p: Params) -> JsonDict:
        info: JsonDict = {
            "url": bot.webhook.url if bot.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(bot.pending),
        }
        if bot.webhook is not None:
            info.update(max_connections=bot.webhook.max_connections, ip_address="127.0.0.1")
            if bot.last_error_date is not None:
                info.update(
                    last_error_date=bot.last_error_date, last_error_message=bot.last_error_message
                )
            if bot.allowed_updates_given:
                info["allowed_updates"] = bot.allowed_updates_given
        return info

    # --- sending -------------------------------------------------------------------------

    async def send_message(self, bot: BotState, p: Params) -> JsonDict:
        chat = self._writable_chat(p)
        reply_to = self._reply_target(chat, p)
        thread_id = self._thread(chat, p, reply_to)
        parsed = formatted_text(p, "text", "parse_mode", "entities")
        if parsed is None:
            raise bad_request("message text is empty")
        plain, entities, source = parsed
        check_text(plain)
        markup = check_reply_markup(p.json("reply_markup"))
        self._count_send(bot, chat)
        message = self.world.post(
            chat,
            bot.user,
            text=plain,
            entities=entities,
            html=source,
            reply_markup=markup,
            thread_id=thread_id,
            reply_to=reply_to,
        )
        return message.to_api(chat)

    def _media_sender(self, kind: str) -> Handler:
        async def send(bot: BotState, p: Params) -> JsonDict:
            chat = self._writable_chat(p)
            reply_to = self._reply_target(chat, p)
            thread_id = self._thread(chat, p, reply_to)
            stored = self._input_file(p, kind, kind)
            caption, caption_entities, source = self._caption(p)
            markup = check_reply_markup(p.json("reply_markup"))
            self._count_send(bot, chat)
            message = self.world.post(
                chat,
                bot.user,
                caption=caption,
                caption_entities=caption_entities,
                html=source,
                content={kind: self.world.media_api(kind, stored)},
                media=stored,
                reply_markup=markup,
                thread_id=thread_id,
                reply_to=reply_to,
            )
            return message.to_api(chat)

        return send

    def _source(self, p: Params, verb: str) -> ChatMessage:
        source_chat = self._chat(p, "from_chat_id")
        message = self.world.find_message(source_chat.id, p.required_int("message_id"))
        if message is None or message.deleted:
            raise bad_request(f"message to {verb} not found")
        if is_service(message):
            raise bad_request(
                f"message can't be {verb}ed" if verb == "forward" else "message can't be copied"
            )
        return message

    async def copy_message(self, bot: BotState, p: Params) -> JsonDict:
        source = self._source(p, "copy")
        chat = self._writable_chat(p)
        reply_to = self._reply_target(chat, p)
        thread_id = self._thread(chat, p, reply_to)
        caption, caption_entities, html = source.caption, source.caption_entities, source.html
        # Telegram cannot copy a 1024-character caption into a topic.
        limit = MAX_CAPTION - 1 if thread_id is not None else MAX_CAPTION
        if source.text is None:
            if p.has("caption"):
                caption, caption_entities, html = self._caption(p, limit)
            elif caption is not None:
                check_caption(caption, limit)
        else:
            caption, caption_entities = None, []
        markup = check_reply_markup(p.json("reply_markup"))
        self._count_send(bot, chat)
        message = self.world.post(
            chat,
            bot.user,
            text=source.text,
            entities=list(source.entities),
            caption=caption,
            caption_entities=list(caption_entities),
            html=html,
            content=dict(source.content),
            media=source.media,
            reply_markup=markup,
            thread_id=thread_id,
            reply_to=reply_to,
        )
        return {"message_id": message.message_id}

    async def forward_message(self, bot: BotState, p: Params) -> JsonDict:
        source = self._source(p, "forward")
        chat = self._writable_chat(p)
        thread_id = self._thread(chat, p, None)
        self._count_send(bot, chat)
        origin = source.forward_origin or {
            "type": "user",
            "sender_user": source.sender.to_api(),
            "date": source.date,
        }
        message = self.world.post(
            chat,
            bot.user,
            text=source.text,
            entities=list(source.entities),
            caption=source.caption,
            caption_entities=list(source.caption_entities),
            html=source.html,
            content=dict(source.content),
            media=source.media,
            thread_id=thread_id,
            forward_origin=origin,
        )
        return message.to_api(chat)

    async def send_chat_action(self, bot: BotState, p: Params) -> bool:
        chat = self._writable_chat(p)
        action = p.text("action") or ""
        if action not in _CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.world.emit("chat_action", chat.id, action=action)
        return True

    # --- editing -------------------------------------------------------------------------

    async def edit_message_text(self, bot: BotState, p: Params) -> JsonDict:
        chat, message = self._editable(bot, p)
        if message.text is None:
            raise bad_request("there is no text in the message to edit")
        parsed = formatted_text(p, "text", "parse_mode", "entities")
        if parsed is None:
            raise bad_request("message text is empty")
        plain, entities, source = parsed
        check_text(plain)
        markup = self._edit_markup(p)
        if (plain, entities, markup) == (
            message.text,
            message.entities,
            _inline(message.reply_markup),
        ):
            raise bad_request(NOT_MODIFIED)
        message.text, message.entities, message.html = plain, entities, source
        return self._finish_edit(chat, message, markup)

    async def edit_message_caption(self, bot: BotState, p: Params) -> JsonDict:
        chat, message = self._editable(bot, p)
        if message.media is None:
            raise bad_request("there is no caption in the message to edit")
        caption, entities, source = self._caption(p)
        markup = self._edit_markup(p)
        current = (message.caption, message.caption_entities, _inline(message.reply_markup))
        if (caption, entities, markup) == current:
            raise bad_request(NOT_MODIFIED)
        message.caption, message.caption_entities, message.html = caption, entities, source
        return self._finish_edit(chat, message, markup)

    async def edit_message_reply_markup(self, bot: BotState, p: Params) -> JsonDict:
        chat, message = self._editable(bot, p)
        markup = self._edit_markup(p)
        if markup == _inline(message.reply_markup):
            raise bad_request(NOT_MODIFIED)
        return self._finish_edit(chat, message, markup)

    async def delete_message(self, bot: BotState, p: Params) -> bool:
        chat = self._chat(p)
        message = self.world.find_message(chat.id, p.required_int("message_id"))
        if message is None or message.deleted:
            raise bad_request("message to delete not found")
        message.deleted = True
        self.world.emit("deleted", chat.id, message)
        return True

    async def delete_messages(self, bot: BotState, p: Params) -> bool:
        chat = self._chat(p)
        ids = p.json("message_ids")
        if not isinstance(ids, list):
            raise bad_request("message_ids is empty")
        for message_id in ids:
            message = self.world.find_message(chat.id, int(message_id))
            if message is not None and not message.deleted:
                message.deleted = True
                self.world.emit("deleted", chat.id, message)
        return True

    async def answer_callback_query(self, bot: BotState, p: Params) -> bool:
        query = self.world.get_query(p.required_text("callback_query_id"))
        if (
            query is None
            or query.answered
            or self.world.monotonic() - query.created > self.callback_answer_timeout
        ):
            raise bad_request(QUERY_TOO_OLD)
        text = p.text("text")
        if text is not None and len(text) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        query.answered = True
        query.answer = {"text": text, "show_alert": p.flag("show_alert"), "url": p.text("url")}
        self.world.emit("callback_answer", query.chat_id, query_id=query.id, **query.answer)
        return True

    # --- commands and files --------------------------------------------------------------

    @staticmethod
    def _commands_key(p: Params) -> tuple[str, str]:
        scope = p.json("scope") or {"type": "default"}
        if not isinstance(scope, dict):
            raise bad_request("can't parse scope JSON object")
        return json.dumps(scope, sort_keys=True), p.text("language_code") or ""

    async def set_my_commands(self, bot: BotState, p: Params) -> bool:
        commands = p.json("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        cleaned: list[JsonDict] = []
        for item in commands:
            if not isinstance(item, dict) or not _COMMAND_RE.fullmatch(
                str(item.get("command", ""))
            ):
                raise bad_request("BOT_COMMAND_INVALID")
            description = str(item.get("description", ""))
            if not 1 <= len(description) <= 256:
                raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
            cleaned.append({"command": item["command"], "description": description})
        bot.commands[self._commands_key(p)] = cleaned
        return True

    async def get_my_commands(self, bot: BotState, p: Params) -> list[JsonDict]:
        return bot.commands.get(self._commands_key(p), [])

    async def delete_my_commands(self, bot: BotState, p: Params) -> bool:
        bot.commands.pop(self._commands_key(p), None)
        return True

    async def get_file(self, bot: BotState, p: Params) -> JsonDict:
        stored = self.world.get_file(p.required_text("file_id"))
        if stored is None:
            raise bad_request("invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD:
            raise bad_request("file is too big")
        return stored.to_api()

    # --- chats and members ---------------------------------------------------------------

    async def get_chat(self, bot: BotState, p: Params) -> JsonDict:
        chat = self._chat(p)
        info = chat.full_info()
        if chat.pinned:
            pinned = self.world.find_message(chat.id, chat.pinned[-1])
            if pinned is not None:
                info["pinned_message"] = pinned.to_api(chat, with_reply=False)
        return info

    def _status_of(self, bot: BotState, chat: Chat, user_id: int) -> str:
        if chat.user is None:
            if user_id == bot.user.id:
                return chat.bot_status
            return chat.members.get(user_id, "left")
        if user_id == bot.user.id:
            return "kicked" if chat.user.blocked_bot else "member"
        if user_id != chat.user.id:
            raise bad_request("user not found")
        return "member"

    async def get_chat_member(self, bot: BotState, p: Params) -> JsonDict:
        chat = self._chat(p)
        user_id = p.required_int("user_id")
        user = bot.user if user_id == bot.user.id else self.world.get_user(user_id)
        if user is None:
            raise bad_request("user not found")
        status = self._status_of(bot, chat, user_id)
        manage = user_id == bot.user.id and chat.bot_can_manage_topics
        return chat_member_api(user, status, can_manage_topics=manage)

    async def get_chat_administrators(self, bot: BotState, p: Params) -> list[JsonDict]:
        chat = self._chat(p)
        if not chat.is_group:
            raise bad_request("there are no administrators in the private chat")
        admins: list[JsonDict] = []
        for user_id, status in chat.members.items():
            user = self.world.get_user(user_id)
            if user is not None and status in ("creator", "administrator"):
                admins.append(chat_member_api(user, status))
        if chat.bot_status == "administrator":
            admins.append(
                chat_member_api(
                    bot.user, "administrator", can_manage_topics=chat.bot_can_manage_topics
                )
            )
        return admins

    async def get_chat_member_count(self, bot: BotState, p: Params) -> int:
        chat = self._chat(p)
        if not chat.is_group:
            return 2
        present = ("creator", "administrator", "member", "restricted")
        return sum(s in present for s in chat.members.values()) + (chat.bot_status in present)

    # --- forum topics and pins -----------------------------------------------------------

    async def create_forum_topic(self, bot: BotState, p: Params) -> JsonDict:
        chat = self._writable_chat(p)
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        if not self._can_manage_topics(chat):
            raise bad_request("not enough rights to create a topic")
        name = p.required_text("name")
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_NAME_INVALID")
        topic = Topic(
            thread_id=chat.next_message_id,
            name=name,
            icon_color=p.integer("icon_color") or DEFAULT_TOPIC_COLOR,
            icon_custom_emoji_id=p.text("icon_custom_emoji_id"),
        )
        chat.topics[topic.thread_id] = topic
        created: JsonDict = {"name": topic.name, "icon_color": topic.icon_color}
        if topic.icon_custom_emoji_id:
            created["icon_custom_emoji_id"] = topic.icon_custom_emoji_id
        self._topic_service(bot, chat, topic, "forum_topic_created", created)
        return topic.to_api()

    async def edit_forum_topic(self, bot: BotState, p: Params) -> bool:
        chat = self._chat(p)
        topic = self._topic(chat, p)
        name = p.text("name")
        emoji = p.text("icon_custom_emoji_id")
        changes: JsonDict = {}
        if name is not None and name != topic.name:
            if len(name) > 128:
                raise bad_request("TOPIC_NAME_INVALID")
            topic.name = changes["name"] = name
        if emoji is not None and emoji != topic.icon_custom_emoji_id:
            topic.icon_custom_emoji_id = changes["icon_custom_emoji_id"] = emoji
        if not changes:
            raise bad_request("TOPIC_NOT_MODIFIED")
        self._topic_service(bot, chat, topic, "forum_topic_edited", changes)
        return True

    async def close_forum_topic(self, bot: BotState, p: Params) -> bool:
        return self._set_closed(bot, p, closed=True)

    async def reopen_forum_topic(self, bot: BotState, p: Params) -> bool:
        return self._set_closed(bot, p, closed=False)

    def _set_closed(self, bot: BotState, p: Params, *, closed: bool) -> bool:
        chat = self._chat(p)
        topic = self._topic(chat, p)
        if topic.closed == closed:
            raise bad_request("TOPIC_NOT_MODIFIED")
        topic.closed = closed
        key = "forum_topic_closed" if closed else "forum_topic_reopened"
        self._topic_service(bot, chat, topic, key, {})
        return True

    async def delete_forum_topic(self, bot: BotState, p: Params) -> bool:
        chat = self._chat(p)
        topic = self._topic(chat, p)
        del chat.topics[topic.thread_id]
        for message in self.world.messages(chat.id, service=True):
            if message.thread_id == topic.thread_id and not message.deleted:
                message.deleted = True
                self.world.emit("deleted", chat.id, message)
        return True

    async def pin_chat_message(self, bot: BotState, p: Params) -> bool:
        chat = self._writable_chat(p)
        message = self.world.find_message(chat.id, p.required_int("message_id"))
        if message is None or message.deleted:
            raise bad_request("message to pin not found")
        if message.message_id in chat.pinned:
            chat.pinned.remove(message.message_id)
        chat.pinned.append(message.message_id)
        self.world.emit("pinned", chat.id, message)
        return True

    async def unpin_chat_message(self, bot: BotState, p: Params) -> bool:
        chat = self._chat(p)
        message_id = p.integer("message_id")
        if message_id is None and chat.pinned:
            message_id = chat.pinned[-1]
        if message_id in chat.pinned:
            chat.pinned.remove(message_id)
            self.world.emit("unpinned", chat.id, message_id=message_id)
        return True

    async def unpin_all_chat_messages(self, bot: BotState, p: Params) -> bool:
        chat = self._chat(p)
        chat.pinned.clear()
        self.world.emit("unpinned", chat.id, message_id=None)
        return True
