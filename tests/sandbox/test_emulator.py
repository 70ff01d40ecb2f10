"""The Telegram Bot API emulator, exercised through a real aiogram Bot and Dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, html
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.filters import CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    CallbackQuery,
    ChatFullInfo,
    ChatMemberAdministrator,
    ChatMemberMember,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    MessageId,
    MessageOriginUser,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from sandbox.emulator import Emulator
from sandbox.html_entities import EntityParseError, parse_html
from sandbox.players import PNG_1X1
from sandbox.terminal import chat_in_terminal, render_event

TOKEN = "123456:AAH-sandbox_token_for_tests_01234"
BOT_ID = 123456
ALICE = 1001
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class QuickSession(AiohttpSession):
    """aiogram's close() waits 250 ms for TLS shutdown, which plain local HTTP does not need."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def tg() -> AsyncIterator[Emulator]:
    emulator = Emulator(webhook_retry_delay=0.02)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(tg: Emulator) -> AsyncIterator[Bot]:
    session = QuickSession(api=TelegramAPIServer.from_base(tg.base_url))
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    yield bot
    await session.close()


@contextlib.asynccontextmanager
async def polling(dp: Dispatcher, bot: Bot) -> AsyncIterator[None]:
    started = asyncio.Event()

    async def on_startup() -> None:
        started.set()

    dp.startup.register(on_startup)
    task = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, polling_timeout=1, close_bot_session=False)
    )
    await asyncio.wait_for(started.wait(), 5)
    try:
        yield
    finally:
        await dp.stop_polling()
        await task


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def keyboard(*buttons: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in buttons]]
    )


async def bad_request(call: Any) -> str:
    with pytest.raises(TelegramBadRequest) as error:
        await call
    return error.value.message


# --- the HTML parser ----------------------------------------------------------------------


def test_html_entities_cover_telegram_tags() -> None:
    text, entities = parse_html(
        '😀<b>bold <i>both</i></b> <span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>'
        ' <a href="https://e.com/?a=1&amp;b=2">link</a> <u>u</u><s>s</s><code>c</code>'
        '<pre><code class="language-python">x = 1</code></pre>'
        "<blockquote expandable>q</blockquote> Tom &amp; Jerry &lt;3 &unknown; &#128512;"
    )
    assert text == "😀bold both st link usc" + "x = 1" + "q Tom & Jerry <3 &unknown; 😀"
    found = [(e["type"], e["offset"], e["length"]) for e in entities]
    assert found[:4] == [("bold", 2, 9), ("italic", 7, 4), ("spoiler", 12, 1), ("spoiler", 13, 1)]
    link = next(e for e in entities if e["type"] == "text_link")
    assert link["url"] == "https://e.com/?a=1&b=2"
    pre = next(e for e in entities if e["type"] == "pre")
    assert pre["language"] == "python"
    assert not any(e["type"] == "code" and e["offset"] == pre["offset"] for e in entities)
    assert ("expandable_blockquote", 28, 1) in found


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("line<br>", 'Unsupported start tag "br" at byte offset 4'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ('<span class="x">y</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ('<a href="x', "Unclosed start tag at byte offset 0"),
    ],
)
def test_html_errors_use_telegram_wording(source: str, error: str) -> None:
    with pytest.raises(EntityParseError) as raised:
        parse_html(source)
    assert str(raised.value) == error


# --- identity and chats -------------------------------------------------------------------


async def test_get_me_and_get_chat_parse_in_aiogram(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE, "Alice", username="alice")
    group = tg.staff_group(title="Staff")
    tg.wall_clock = lambda: 1_700_000_000.5
    assert (await bot.send_message(ALICE, "dated")).date.timestamp() == 1_700_000_000
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (BOT_ID, True, "sandbox_123456_bot")
    private = await bot.get_chat(ALICE)
    assert isinstance(private, ChatFullInfo)
    assert (private.type, private.first_name, private.username) == ("private", "Alice", "alice")
    staff = await bot.get_chat(group.id)
    assert (staff.type, staff.title, staff.is_forum) == ("supergroup", "Staff", True)
    assert await bad_request(bot.get_chat(424242)) == "Bad Request: chat not found"


async def test_chat_members_and_rights(tg: Emulator, bot: Bot) -> None:
    group = tg.staff_group()
    tg.staff_member(2001, "Bob", group)
    tg.staff_member(2002, "Carol", group, status="administrator")
    me = await bot.get_chat_member(group.id, BOT_ID)
    assert isinstance(me, ChatMemberAdministrator) and me.can_manage_topics
    assert isinstance(await bot.get_chat_member(group.id, 2001), ChatMemberMember)
    admins = await bot.get_chat_administrators(group.id)
    assert {a.user.id for a in admins} == {2002, BOT_ID}
    assert await bot.get_chat_member_count(group.id) == 3
    assert await bad_request(bot.get_chat_member(group.id, 999)) == "Bad Request: user not found"


# --- sending ------------------------------------------------------------------------------


async def test_send_message_parses_html_and_echoes_only_inline_keyboards(
    tg: Emulator, bot: Bot
) -> None:
    alice = tg.customer(ALICE, "Alice")
    source = "😀 <b>Hi</b>, <a href='https://example.com'>shop</a> &lt;3"
    sent = await bot.send_message(ALICE, source, reply_markup=keyboard(("Points", "points")))
    assert sent.text == "😀 Hi, shop <3"
    assert sent.from_user is not None and sent.from_user.id == BOT_ID
    assert sent.entities is not None
    assert [(e.type, e.offset, e.length) for e in sent.entities] == [
        ("bold", 3, 2),
        ("text_link", 7, 4),
    ]
    assert isinstance(sent.reply_markup, InlineKeyboardMarkup)
    assert alice.messages[-1].html == source
    assert alice.messages[-1].buttons == [[("Points", "points")]]

    menu = ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text="📱 Share", request_contact=True)],
            [KeyboardButton(text="Help")],
        ]
    )
    shown = await bot.send_message(ALICE, "menu", reply_markup=menu)
    assert shown.reply_markup is None  # a reply keyboard is never echoed
    assert alice.messages[-1].reply_keyboard == [["📱 Share"], ["Help"]]
    removed = await bot.send_message(ALICE, "bye", reply_markup=ReplyKeyboardRemove())
    assert removed.reply_markup is None
    assert (await bot.send_message(ALICE, "?", reply_markup=ForceReply())).text == "?"
    assert tg.get_chat(ALICE) is not None and tg.get_chat(ALICE).reply_keyboard is None  # type: ignore[union-attr]


async def test_free_text_is_never_json_decoded(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE)
    for text in ("[1, 2]", "123", "true", '{"a": 1}', "null"):
        assert (await bot.send_message(ALICE, text, parse_mode=None)).text == text
    caption = await bot.send_photo(ALICE, BufferedInputFile(PNG_1X1, "p.png"), caption="42")
    assert caption.caption == "42"


async def test_text_validation_errors(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE)
    assert await bad_request(bot.send_message(ALICE, "")) == "Bad Request: message text is empty"
    assert await bad_request(bot.send_message(ALICE, "<b> </b>")) == (
        "Bad Request: message text is empty"
    )
    assert await bad_request(bot.send_message(ALICE, "<b>x")) == (
        "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\""
    )
    assert await bad_request(bot.send_message(ALICE, "a" * 4097)) == (
        "Bad Request: message is too long"
    )
    long_but_fine = await bot.send_message(ALICE, "<b>" + "a" * 4096 + "</b>")
    assert long_but_fine.text is not None and len(long_but_fine.text) == 4096
    assert (await bot.send_message(ALICE, "  padded \n")).text == "padded"
    too_long_data = keyboard(("x", "é" * 33))
    assert await bad_request(bot.send_message(ALICE, "x", reply_markup=too_long_data)) == (
        "Bad Request: BUTTON_DATA_INVALID"
    )
    assert await bot.send_message(ALICE, "x", reply_markup=keyboard(("x", "é" * 32)))


async def test_reply_parameters(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE)
    question = tg.user_sends_text(ALICE, "question")
    answer = await bot.send_message(
        ALICE, "answer", reply_parameters=ReplyParameters(message_id=question.message_id)
    )
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.text == "question"
    missing = ReplyParameters(message_id=999)
    assert await bad_request(bot.send_message(ALICE, "x", reply_parameters=missing)) == (
        "Bad Request: message to be replied not found"
    )
    lenient = ReplyParameters(message_id=999, allow_sending_without_reply=True)
    assert (await bot.send_message(ALICE, "x", reply_parameters=lenient)).reply_to_message is None


async def test_unknown_chat_blocked_user_and_kicked_bot(tg: Emulator, bot: Bot) -> None:
    alice = tg.customer(ALICE, "Alice")
    tg.customer(1002, "Never started", started=False)
    group = tg.staff_group()
    assert await bad_request(bot.send_message(424242, "x")) == "Bad Request: chat not found"
    await alice.blocks_bot()
    with pytest.raises(TelegramForbiddenError) as blocked:
        await bot.send_message(ALICE, "hi")
    assert blocked.value.message == "Forbidden: bot was blocked by the user"
    with pytest.raises(TelegramForbiddenError) as never:
        await bot.send_message(1002, "hi")
    assert never.value.message == "Forbidden: bot can't initiate conversation with a user"
    tg.set_bot_status(group.id, "kicked")
    with pytest.raises(TelegramForbiddenError) as kicked:
        await bot.send_message(group.id, "hi")
    assert kicked.value.message == "Forbidden: bot was kicked from the supergroup chat"

    await alice.unblocks_bot()
    updates = await bot.get_updates()
    seen = [
        u.my_chat_member.new_chat_member.status if u.my_chat_member else u.message.text  # type: ignore[union-attr]
        for u in updates
    ]
    assert seen == ["kicked", "member", "/start"]
    assert updates[0].my_chat_member is not None
    assert updates[0].my_chat_member.new_chat_member.user.id == BOT_ID
    assert (await bot.send_message(ALICE, "welcome back")).text == "welcome back"


# --- files --------------------------------------------------------------------------------


async def test_photo_and_document_uploads_round_trip(tg: Emulator, bot: Bot) -> None:
    alice = tg.customer(ALICE)
    photo = await bot.send_photo(ALICE, BufferedInputFile(PNG_1X1, "p.png"), caption="<i>pic</i>")
    assert photo.photo is not None and len(photo.photo) == 2
    assert photo.caption == "pic"
    assert photo.caption_entities is not None and photo.caption_entities[0].type == "italic"
    assert alice.messages[-1].photo == PNG_1X1
    file = await bot.get_file(photo.photo[-1].file_id)
    assert file.file_path is not None
    downloaded = await bot.download(file)
    assert downloaded is not None and downloaded.read() == PNG_1X1

    again = await bot.send_photo(ALICE, photo.photo[-1].file_id)
    assert again.photo is not None and again.photo[-1].file_id == photo.photo[-1].file_id

    doc = await bot.send_document(ALICE, BufferedInputFile(b"a,b\n1,2\n", "report.csv"))
    assert doc.document is not None
    assert (doc.document.file_name, doc.document.mime_type) == ("report.csv", "text/csv")
    assert alice.messages[-1].document == b"a,b\n1,2\n"

    assert await bad_request(
        bot.send_photo(ALICE, BufferedInputFile(PNG_1X1, "p.png"), caption="x" * 1025)
    ) == ("Bad Request: message caption is too long")
    assert await bad_request(bot.send_photo(ALICE, "no-such-file")) == (
        "Bad Request: wrong file identifier/HTTP URL specified"
    )
    assert await bad_request(bot.get_file("no-such-file")) == "Bad Request: invalid file_id"


async def test_upload_under_the_field_name_and_json_bodies(tg: Emulator) -> None:
    tg.customer(ALICE)
    url = f"{tg.base_url}/bot{TOKEN}"
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("chat_id", str(ALICE))
        form.add_field("document", b"hello", filename="hello.txt")
        async with http.post(f"{url}/sendDocument", data=form) as response:
            body = await response.json()
        assert body["ok"] and body["result"]["document"]["file_name"] == "hello.txt"

        payload = {
            "chat_id": ALICE,
            "text": "[1, 2]",
            "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "y"}]]},
        }
        async with http.post(f"{url}/sendMessage", json=payload) as response:
            body = await response.json()
        assert body["result"]["text"] == "[1, 2]"
        assert body["result"]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "y"

        async with http.get(f"{url}/getMe") as response:
            assert (await response.json())["result"]["is_bot"] is True
        async with http.post(f"{url}/noSuchMethod") as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }
        async with http.get(f"{tg.base_url}/botnot-a-token/getMe") as response:
            assert response.status == 401


# --- editing, callbacks, copies -----------------------------------------------------------


async def test_edit_message_rules(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE)
    buttons = keyboard(("A", "a"))
    sent = await bot.send_message(ALICE, "<b>Hi</b>", reply_markup=buttons)
    where: dict[str, Any] = {"chat_id": ALICE, "message_id": sent.message_id}
    assert await bad_request(bot.edit_message_text("<b>Hi</b>", reply_markup=buttons, **where)) == (
        NOT_MODIFIED
    )
    edited = await bot.edit_message_text("<b>Hi</b>", **where)  # dropping the keyboard
    assert isinstance(edited, Message) and edited.reply_markup is None
    assert edited.edit_date is not None
    stored = tg.find_message(ALICE, sent.message_id)
    assert stored is not None and stored.edited and stored.buttons == []
    assert await bad_request(bot.edit_message_reply_markup(**where)) == NOT_MODIFIED
    restored = await bot.edit_message_reply_markup(reply_markup=buttons, **where)
    assert isinstance(restored, Message) and restored.reply_markup is not None

    from_user = tg.user_sends_text(ALICE, "mine")
    assert await bad_request(
        bot.edit_message_text("x", chat_id=ALICE, message_id=from_user.message_id)
    ) == ("Bad Request: message can't be edited")
    assert await bad_request(bot.edit_message_text("x", chat_id=ALICE, message_id=999)) == (
        "Bad Request: message to edit not found"
    )


async def test_callback_queries_are_answered_once(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE, "Alice")
    sent = await bot.send_message(ALICE, "pick", reply_markup=keyboard(("A", "a")))
    query = tg.user_presses(ALICE, ALICE, sent.message_id, "a")
    [update] = await bot.get_updates()
    assert update.callback_query is not None
    assert update.callback_query.data == "a"
    assert isinstance(update.callback_query.message, Message)
    assert update.callback_query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="done")
    too_old = "Bad Request: query is too old and response timeout expired or query ID is invalid"
    assert await bad_request(bot.answer_callback_query(query.id)) == too_old
    assert await bad_request(bot.answer_callback_query("12345")) == too_old


async def test_copy_and_forward_into_a_topic(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE, "Alice")
    group = tg.staff_group()
    topic = await bot.create_forum_topic(group.id, "Alice")
    thread = topic.message_thread_id
    photo = tg.user_sends_file(ALICE, "photo", PNG_1X1, caption="look")
    copied = await bot.copy_message(group.id, ALICE, photo.message_id, message_thread_id=thread)
    assert isinstance(copied, MessageId)
    stored = tg.find_message(group.id, copied.message_id)
    assert stored is not None
    assert (stored.photo, stored.caption, stored.thread_id) == (PNG_1X1, "look", thread)

    text = tg.user_sends_text(ALICE, "hello staff")
    forwarded = await bot.forward_message(
        group.id, ALICE, text.message_id, message_thread_id=thread
    )
    assert forwarded.text == "hello staff" and forwarded.message_thread_id == thread
    assert isinstance(forwarded.forward_origin, MessageOriginUser)
    assert forwarded.forward_origin.sender_user.id == ALICE

    long_caption = tg.user_sends_file(ALICE, "photo", PNG_1X1, caption="c" * 1024)
    assert await bad_request(
        bot.copy_message(group.id, ALICE, long_caption.message_id, message_thread_id=thread)
    ) == ("Bad Request: message caption is too long")
    assert await bad_request(bot.copy_message(group.id, ALICE, 999)) == (
        "Bad Request: message to copy not found"
    )


async def test_forum_topics(tg: Emulator, bot: Bot) -> None:
    group = tg.staff_group(forum=True)
    bob = tg.staff_member(2001, "Bob", group)
    topic = await bot.create_forum_topic(group.id, "Alice #1001")
    thread = topic.message_thread_id
    assert (topic.name, topic.icon_color) == ("Alice #1001", 7322096)
    root = tg.find_message(group.id, thread)
    assert root is not None and root.content["forum_topic_created"]["name"] == "Alice #1001"

    card = await bot.send_message(group.id, "new ticket", message_thread_id=thread)
    assert card.message_thread_id == thread and card.is_topic_message
    assert card.reply_to_message is not None
    assert card.reply_to_message.forum_topic_created is not None
    assert await bad_request(bot.send_message(group.id, "x", message_thread_id=99999)) == (
        "Bad Request: message thread not found"
    )

    await bob.says_in(group, "on it", thread_id=thread)
    await bob.replies_in(group, card.message_id, "done")
    in_topic, reply = await bot.get_updates()
    assert in_topic.message is not None and reply.message is not None
    assert (in_topic.message.message_thread_id, in_topic.message.is_topic_message) == (thread, True)
    assert in_topic.message.reply_to_message is not None
    assert in_topic.message.reply_to_message.message_id == thread
    assert reply.message.reply_to_message is not None
    assert reply.message.reply_to_message.message_id == card.message_id
    assert reply.message.message_thread_id == thread

    assert await bot.edit_forum_topic(group.id, thread, name="Alice (VIP)")
    assert await bot.close_forum_topic(group.id, thread)
    assert await bad_request(bot.close_forum_topic(group.id, thread)) == (
        "Bad Request: TOPIC_NOT_MODIFIED"
    )
    assert await bot.reopen_forum_topic(group.id, thread)
    plain = tg.add_group(-100555, "Plain")
    assert await bad_request(bot.create_forum_topic(plain.id, "x")) == (
        "Bad Request: the chat is not a forum"
    )
    assert [m.text for m in tg.messages(group.id, from_bot=True)] == ["new ticket"]


async def test_commands_per_scope_and_language(tg: Emulator, bot: Bot) -> None:
    group = tg.staff_group()
    staff_scope = BotCommandScopeChat(chat_id=group.id)
    await bot.set_my_commands([BotCommand(command="start", description="Start")])
    await bot.set_my_commands(
        [BotCommand(command="stats", description="Stats")], scope=staff_scope, language_code="en"
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    scoped = await bot.get_my_commands(scope=staff_scope, language_code="en")
    assert [c.command for c in scoped] == ["stats"]
    assert await bot.get_my_commands(language_code="zh") == []
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == []
    bad = [BotCommand(command="Bad Command", description="x")]
    assert await bad_request(bot.set_my_commands(bad)) == "Bad Request: BOT_COMMAND_INVALID"


async def test_chat_action_pin_and_delete(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE)
    events = tg.subscribe()
    assert await bot.send_chat_action(ALICE, "typing")
    assert (await events.get())["action"] == "typing"
    assert await bad_request(bot.send_chat_action(ALICE, "dancing")) == (
        "Bad Request: wrong parameter action in request"
    )
    sent = await bot.send_message(ALICE, "pin me")
    assert await bot.pin_chat_message(ALICE, sent.message_id)
    chat = await bot.get_chat(ALICE)
    assert chat.pinned_message is not None and chat.pinned_message.message_id == sent.message_id
    assert await bot.unpin_chat_message(ALICE)
    assert await bot.delete_message(ALICE, sent.message_id)
    stored = tg.find_message(ALICE, sent.message_id)
    assert stored is not None and stored.deleted
    assert await bad_request(bot.delete_message(ALICE, sent.message_id)) == (
        "Bad Request: message to delete not found"
    )


# --- updates: polling and webhooks --------------------------------------------------------


async def test_get_updates_offset_limit_and_long_polling(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE, "Alice")
    for text in ("a", "b", "c"):
        tg.user_sends_text(ALICE, text)
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first if u.message] == ["a", "b"]
    rest = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["c"]
    assert len(tg.pending_updates()) == 1  # not confirmed yet
    offset = rest[-1].update_id + 1

    loop = asyncio.get_running_loop()
    poll = asyncio.create_task(bot.get_updates(offset=offset, timeout=10))
    await tg.until(lambda: tg.calls["getUpdates"] == 3 or None, 5)
    started = loop.time()
    tg.user_sends_text(ALICE, "d")
    arrived = await poll
    assert [u.message.text for u in arrived if u.message] == ["d"]
    assert loop.time() - started < 2
    offset = arrived[-1].update_id + 1

    assert await bot.get_updates(offset=offset, allowed_updates=["callback_query"]) == []
    tg.user_sends_text(ALICE, "filtered out")
    sent = await bot.send_message(ALICE, "x", reply_markup=keyboard(("A", "a")))
    tg.user_presses(ALICE, ALICE, sent.message_id, "a")
    [only] = await bot.get_updates(offset=offset)
    assert only.callback_query is not None


async def test_a_second_poller_terminates_the_first(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE)
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await tg.until(lambda: tg.calls["getUpdates"] == 1 or None, 5)
    second = asyncio.create_task(bot.get_updates(timeout=10))
    with pytest.raises(TelegramConflictError) as conflict:
        await first
    assert conflict.value.message == (
        "Conflict: terminated by other getUpdates request; make sure that only one bot "
        "instance is running"
    )
    tg.user_sends_text(ALICE, "hi")
    assert len(await second) == 1


async def test_webhook_delivery_retries_in_order_with_the_secret(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE, "Alice")
    received: list[tuple[str | None, str]] = []
    failures = [500, 503]
    both_delivered = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        update = await request.json()
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), update["message"]["text"])
        )
        if failures:
            return web.Response(status=failures.pop(0))
        if update["message"]["text"] == "second":
            both_delivered.set()
            # Telegram executes a method given in the webhook's answer.
            return web.json_response({"method": "sendMessage", "chat_id": ALICE, "text": "[1]"})
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", receive)
    tg.user_sends_text(ALICE, "first")  # queued before the bot ever called the API
    async with serve(app) as base:
        assert await bad_request(bot.set_webhook(f"{base}/hook", secret_token="bad:token")) == (
            "Bad Request: secret token contains unallowed characters"
        )
        assert await bot.set_webhook(f"{base}/hook", secret_token="abc_DEF-123")
        tg.user_sends_text(ALICE, "second")
        with pytest.raises(TelegramConflictError) as conflict:
            await bot.get_updates()
        assert conflict.value.message == (
            "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
            "to delete the webhook first"
        )
        await asyncio.wait_for(both_delivered.wait(), 5)
        assert (await tg.wait_for(lambda m: m.chat_id == ALICE, timeout=5)).text == "[1]"
        info = await bot.get_webhook_info()
    assert received == [("abc_DEF-123", t) for t in ("first", "first", "first", "second")]
    assert info.url == f"{base}/hook" and info.pending_update_count == 0
    assert info.last_error_message == "Wrong response from the webhook: 503 Service Unavailable"
    assert tg.webhook_failures == 2
    assert await bot.delete_webhook()
    tg.user_sends_text(ALICE, "polled")
    assert [u.message.text for u in await bot.get_updates() if u.message] == ["polled"]


async def test_aiogram_webhook_may_answer_with_a_method(tg: Emulator, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(F.text == "ping")
    async def ping(message: Message) -> SendMessage:
        return message.answer("<b>pong</b>")

    app = web.Application()
    SimpleRequestHandler(dp, bot, handle_in_background=False, secret_token="s3cret").register(
        app, path="/hook"
    )
    alice = tg.customer(ALICE, "Alice")
    async with serve(app) as base:
        await bot.set_webhook(f"{base}/hook", secret_token="s3cret")
        reply = await alice.says("ping")
    assert (reply.text, reply.html) == ("pong", "<b>pong</b>")
    assert tg.calls["sendMessage"] == 1 and tg.webhook_reply_errors == []


# --- limits and faults --------------------------------------------------------------------


async def test_rate_limits_answer_429_with_retry_after(tg: Emulator, bot: Bot) -> None:
    now = [1000.0]
    tg.monotonic = lambda: now[0]
    tg.customer(ALICE)
    group = tg.staff_group()
    tg.limits(True, per_chat_per_second=1, private_burst=1)
    await bot.send_message(ALICE, "1")
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(ALICE, "2")
    assert limited.value.retry_after == 1
    assert limited.value.message.endswith("Original description: Too Many Requests: retry after 1")
    now[0] += 0.5
    with pytest.raises(TelegramRetryAfter):  # still inside the refused window
        await bot.send_message(ALICE, "2")
    now[0] += 0.6
    await bot.send_message(ALICE, "2")
    assert tg.rate_limited == 2

    for n in range(20):
        await bot.send_message(group.id, str(n))
    with pytest.raises(TelegramRetryAfter) as group_limited:
        await bot.send_message(group.id, "21st")
    assert group_limited.value.retry_after == 3  # 20 a minute: one more in 3 s

    tg.limits(True, global_per_second=5, private_burst=100)
    for n in range(5):
        await bot.send_message(ALICE, str(n))
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(ALICE, "6th this second")
    tg.limits(False)
    await bot.send_message(ALICE, "unlimited")


async def test_injected_failures_and_delay(tg: Emulator, bot: Bot) -> None:
    tg.customer(ALICE)
    tg.fail_next("sendMessage", 502, count=2)
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(ALICE, "x")
    assert (await bot.send_message(ALICE, "x")).text == "x"
    assert tg.calls["sendMessage"] == 3
    tg.fail_next(None, 429, retry_after=2)
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.get_me()
    assert limited.value.retry_after == 2 and tg.rate_limited == 1
    tg.fail_next("getMe", 400, description="Bad Request: custom")
    assert await bad_request(bot.get_me()) == "Bad Request: custom"

    tg.delay(0.1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bot.get_me()
    assert loop.time() - started >= 0.1


# --- players ------------------------------------------------------------------------------


def customer_bot() -> Dispatcher:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        assert message.from_user is not None
        menu = InlineKeyboardMarkup(
            inline_keyboard=[
                [
                    InlineKeyboardButton(text="⭐ Points", callback_data="points"),
                    InlineKeyboardButton(text="Help", callback_data="help"),
                ],
                [InlineKeyboardButton(text="Site", url="https://example.com")],
            ]
        )
        await message.answer(
            f"Hello, <b>{html.quote(message.from_user.first_name)}</b>!", reply_markup=menu
        )
        share = KeyboardButton(text="📱 Share phone", request_contact=True)
        await message.answer(
            "Share your phone", reply_markup=ReplyKeyboardMarkup(keyboard=[[share]])
        )

    @dp.callback_query(F.data == "points")
    async def points(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text("You have <b>42</b> points")
        await query.answer()

    @dp.callback_query(F.data == "help")
    async def help_(query: CallbackQuery) -> None:
        await query.answer("Ask us anything", show_alert=True)

    @dp.message(F.contact)
    async def contact(message: Message) -> None:
        assert message.contact is not None and message.from_user is not None
        own = message.contact.user_id == message.from_user.id
        text = f"Thanks, {message.contact.phone_number}" if own else "Share your own contact"
        await message.answer(text, reply_markup=ReplyKeyboardRemove())

    @dp.message(F.photo)
    async def photo(message: Message, bot: Bot) -> None:
        assert message.photo is not None
        data = await bot.download(message.photo[-1].file_id)
        assert data is not None
        await message.answer(f"Got {len(data.read())} bytes")

    @dp.message(F.text)
    async def echo(message: Message) -> None:
        await message.answer(html.quote(message.text or ""))

    return dp


async def test_players_drive_a_polling_aiogram_bot(tg: Emulator, bot: Bot) -> None:
    alice = tg.customer(ALICE, "Alice", language_code="zh", phone="+8613800138000")
    async with polling(customer_bot(), bot):
        hello, ask = await alice.says("/start", expect=2)
        assert (hello.text, hello.html) == ("Hello, Alice!", "Hello, <b>Alice</b>!")
        assert hello.buttons == [
            [("⭐ Points", "points"), ("Help", "help")],
            [("Site", "https://example.com")],
        ]
        assert ask.reply_keyboard == [["📱 Share phone"]]

        assert await alice.presses_for_toast("Help") == {
            "text": "Ask us anything",
            "show_alert": True,
            "url": None,
        }
        edited = await alice.presses("Points")
        assert edited.message_id == hello.message_id and edited.edited
        assert (edited.text, edited.buttons) == ("You have 42 points", [])

        thanks = await alice.presses("Share phone")  # the reply keyboard's contact button
        assert thanks.text == "Thanks, +8613800138000"
        other = await alice.shares_contact(of_user_id=999, phone="+15550001111")
        assert other.text == "Share your own contact"

        got = await alice.sends_photo(PNG_1X1)
        assert got.text == f"Got {len(PNG_1X1)} bytes"
        await alice.sends_sticker(expect=0)
        await alice.expect_none(within=0.2)
        assert (await alice.says("[1, 2] & <b>")).text == "[1, 2] & <b>"
        assert (await alice.replies_to(hello.message_id, "re")).text == "re"

        with pytest.raises(AssertionError, match="no button 'No such button'"):
            await alice.presses("No such button")
        alice.reply_timeout = 0.2
        with pytest.raises(AssertionError, match="expected 1 bot message"):
            await alice.sends_voice()
    assert alice.last_message is not None and alice.last_message.text == "re"


async def test_wait_for_and_subscribe(tg: Emulator, bot: Bot) -> None:
    events = tg.subscribe()
    alice = tg.customer(ALICE, "Alice")
    group = tg.staff_group()
    tg.user_sends_text(ALICE, "help")
    await bot.send_message(group.id, "Alice needs help")
    found = await tg.wait_for(lambda m: m.chat_id == group.id, timeout=1)
    assert found.text == "Alice needs help"
    kinds = [(await events.get())["kind"] for _ in range(2)]
    assert kinds == ["user_message", "bot_message"]
    with pytest.raises(AssertionError, match="Alice needs help"):
        await tg.wait_for(lambda m: "nope" in m.body, timeout=0.05)
    await bot.send_message(ALICE, "hi")
    assert (await alice.next_message()).text == "hi"
    tg.unsubscribe(events)


async def test_terminal_chat(
    tg: Emulator, bot: Bot, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = tg.customer(ALICE, "Alice")
    sent = await bot.send_message(
        ALICE, "<b>Pick</b>", reply_markup=keyboard(("A", "a"), ("B", "b"))
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\n/contact\n/press 2\n"))
    await chat_in_terminal(tg, alice)
    updates = await bot.get_updates()
    assert updates[0].message is not None and updates[0].message.text == "hello"
    assert updates[1].message is not None and updates[1].message.contact is not None
    assert updates[1].message.contact.phone_number == f"+{8613800000000 + ALICE}"
    assert updates[2].callback_query is not None and updates[2].callback_query.data == "b"
    assert "/press N" in capsys.readouterr().out
    stored = tg.find_message(ALICE, sent.message_id)
    assert stored is not None
    shown = render_event({"kind": "bot_message", "chat_id": ALICE, "message": stored.view()})
    assert shown == "bot #1: Pick\n    [1] A   [2] B"
