"""Bad input, fuzzed. Random updates of every kind go through the real Dispatcher: each
message type, odd Unicode, 10,000-character texts, control characters, forged and stolen
button data, replies to unknown messages, edits, the staff group written to by staff and by
strangers. No handler fails, and no request the bot makes would be refused by Telegram
(checked with the emulator's own rules). Then, through the emulator: HTML in names and
feedback reaches staff as text, and a staff-written broadcast cannot reach Python and is
refused with the line of its error before anything is queued.

The long run: `pytest -m slow tests/reliability/test_fuzz.py` (1,000 sequences).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import Carebot
from bot.permissions import STAFF_COMMANDS
from models import Campaign, OutboxMessage
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.state import Chat
from services.clock import FrozenClock
from services.policy import Policy
from tests.e2e.conftest import OWNER_ID, STAFF_CHAT, TOKEN, make_settings
from tests.e2e.conftest import carebot as carebot
from tests.e2e.conftest import staff_chat as staff_chat
from tests.e2e.conftest import start_app as start_app
from tests.e2e.conftest import telegram as telegram
from tests.handlers.recording import RecordingSession
from tests.handlers.test_random_updates import COMMANDS, FORGED, Failures, World

CUSTOMERS = (7101, 7102, 7103)
STRANGER = 7199  # a member of the staff group who is not staff
OTHER_GROUP = -100777

# Pieces that break naive text handling: direction marks and overrides, joiners, a byte
# order mark, combining marks, astral characters and emoji sequences, control characters,
# line separators, HTML, Jinja2 and SQL look-alikes.
ODD = (
    "\u200f",
    "\u202e",
    "\u2066",
    "\u200d",
    "\u200c",
    "\ufeff",
    "e\u0301\u0302\u0303",
    "\u0336",
    "𝕏",
    "𠀀",
    "😀",
    "👨\u200d👩\u200d👧\u200d👦",
    "🏳️\u200d🌈",
    "🇨🇳",
    "\x00",
    "\x07",
    "\x1b[31m",
    "\r\n",
    "\t",
    "\u2028",
    "\u0085",
    "<b>",
    "</i>",
    "<a href='javascript:alert(1)'>",
    "&amp;",
    "&",
    "&#0;",
    "{{ 7*7 }}",
    "{% for x in y %}",
    "'; DROP TABLE customers; --",
    "%s%n",
    "/start",
    " ",
)
odd_text = st.lists(st.one_of(st.sampled_from(ODD), st.text(max_size=8)), max_size=12).map("".join)
long_text = st.builds(
    lambda piece, size: (piece * size)[:size],
    st.sampled_from(("x", "😀", "e\u0301", "<&>", "\u200f", "👨\u200d👩\u200d👧")),
    st.integers(4000, 10_000),
)
command = st.builds(
    lambda name, args: f"{name} {args}" if args else name,
    st.sampled_from((*COMMANDS, *(f"/{c}" for c in STAFF_COMMANDS), "/language", "/start")),
    st.one_of(st.just(""), odd_text, st.sampled_from(("en", "zh", "1", "1 +5 x", "#1"))),
)
any_text = st.one_of(odd_text.filter(bool), long_text, command)
name = st.one_of(
    st.sampled_from(("<b>Eve</b>", "A & B", "</i>", "&lt;", "\u202eevE", "👨\u200d👩\u200d👧")),
    st.text(min_size=1, max_size=64),
)
phone = st.one_of(
    st.integers(0, 99).map(lambda n: f"+86138001{n:05d}"),
    st.text(max_size=20),
)
# Data a button could never have come with: random bytes as Telegram would pass them on.
random_bytes = st.binary(min_size=1, max_size=64).map(lambda raw: raw.decode("utf-8", "replace"))
forged = st.one_of(
    st.builds(
        lambda pattern, n, m, k: pattern.format(n=n, m=m, k=k),
        st.sampled_from(FORGED),
        *(st.integers(-2, 10**12) for _ in range(3)),
    ),
    random_bytes,
    st.text(max_size=64),
)
CAPTIONED = ("photo", "video", "document", "audio", "voice", "animation")
MEDIA = (*CAPTIONED, "sticker", "video_note", "location", "venue", "poll", "dice")
KINDS = ("complaint", "suggestion", "praise", "question")
customer = st.sampled_from(CUSTOMERS)
action = st.one_of(
    st.tuples(st.just("text"), customer, any_text),
    st.tuples(
        st.just("media"),
        customer,
        st.tuples(st.sampled_from(MEDIA), st.one_of(st.none(), odd_text, long_text)),
    ),
    st.tuples(st.just("contact"), customer, st.tuples(st.sampled_from(("own", "other")), phone)),
    st.tuples(st.just("ticket"), customer, st.tuples(st.sampled_from(KINDS), any_text)),
    st.tuples(st.just("reply"), customer, st.tuples(st.integers(1, 10**6), any_text)),
    st.tuples(st.just("edit"), customer, any_text),
    st.tuples(st.just("press"), customer, st.integers(0, 30)),
    st.tuples(st.just("steal"), customer, st.integers(0, 30)),
    st.tuples(st.just("forged"), customer, forged),
    st.tuples(st.just("block"), customer, st.booleans()),
    st.tuples(st.just("sale"), customer, st.integers(1, 1500)),
    st.tuples(st.just("staff_text"), st.integers(0, 5), any_text),
    st.tuples(st.just("staff_press"), st.integers(0, 30), st.just("")),
    st.tuples(st.just("stranger"), st.integers(0, 30), any_text),
    st.tuples(st.just("other_group"), st.sampled_from((OWNER_ID, STRANGER)), any_text),
)


class Fuzzer(World):
    """The world of tests/handlers with every other kind of update Telegram can send."""

    names: dict[int, str]

    def user(self, user_id: int) -> dict[str, Any]:
        found = super().user(user_id)
        if user_id in self.names:
            # Telegram allows 64 characters in each of the two names.
            found["first_name"] = found["last_name"] = self.names[user_id]
        return found

    def chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id == OTHER_GROUP:
            return {"id": chat_id, "type": "group", "title": "Elsewhere"}
        return super().chat(chat_id)

    async def act(self, kind: str, who: int, what: Any) -> None:
        if kind == "media":
            media, caption = what
            content = _media(media)
            if caption is not None and media in CAPTIONED:
                content["caption"] = caption[:1024]
            await self.feed({"message": self.message(who, who, **content)})
        elif kind == "contact":
            whose, number = what
            contact: dict[str, Any] = {"phone_number": number, "first_name": "Someone"}
            if whose == "own":
                contact["user_id"] = who
            else:
                contact["user_id"] = CUSTOMERS[(CUSTOMERS.index(who) + 1) % len(CUSTOMERS)]
            await self.feed({"message": self.message(who, who, contact=contact)})
        elif kind == "ticket":
            # The whole filing, so tickets (and the staff posts naming the customer) are common.
            ticket_kind, text = what
            await self.act("text", who, "/feedback")
            await self.press(who, who, f"fb:{ticket_kind}")
            await self.act("text", who, text)
            await self.press(who, who, "fbsend")
        elif kind == "reply":
            unknown, text = what
            replied = self.message(who, who, text="…")
            replied["message_id"] = unknown
            content = {**self.text_content(text), "reply_to_message": replied}
            await self.feed({"message": self.message(who, who, **content)})
        elif kind == "edit":
            edited = {**self.message(who, who, **self.text_content(what)), "edit_date": 1}
            await self.feed({"edited_message": edited})
        elif kind == "steal":
            # A button another customer was shown, with that customer's ids in its data.
            other = CUSTOMERS[(CUSTOMERS.index(who) + 1) % len(CUSTOMERS)]
            shown = self.session.callback_data(other)
            if shown:
                await self.press(who, who, shown[-1 - what % len(shown)])
        elif kind == "block":
            status = "kicked" if what else "member"
            await self.feed({"my_chat_member": self.membership(who, status)})
        elif kind == "stranger":
            shown = self.session.callback_data(STAFF_CHAT)
            if shown and who % 2:
                await self.press(STRANGER, STAFF_CHAT, shown[-1 - who % len(shown)])
            else:
                message = self.message(STRANGER, STAFF_CHAT, **self.text_content(what))
                await self.feed({"message": message})
        elif kind == "other_group":
            await self.feed({"message": self.message(who, OTHER_GROUP, **self.text_content(what))})
        else:
            await super().act(kind, who, what)

    def membership(self, user_id: int, status: str) -> dict[str, Any]:
        bot = {"id": 123456789, "is_bot": True, "first_name": "Carebot"}
        new: dict[str, Any] = {"status": status, "user": bot}
        if status == "kicked":
            new["until_date"] = 0
        return {
            "chat": self.chat(user_id),
            "from": self.user(user_id),
            "date": 0,
            "old_chat_member": {"status": "member", "user": bot},
            "new_chat_member": new,
        }


def _file(**extra: Any) -> dict[str, Any]:
    return {"file_id": "FILE", "file_unique_id": "F", **extra}


def _media(kind: str) -> dict[str, Any]:
    place = {"latitude": 31.23, "longitude": 121.47}
    contents: dict[str, Any] = {
        "photo": [_file(width=1, height=1)],
        "video": _file(width=1, height=1, duration=1),
        "document": _file(file_name="<b>notes</b>.txt"),
        "audio": _file(duration=1),
        "voice": _file(duration=1),
        "animation": _file(width=1, height=1, duration=1),
        "sticker": _file(type="regular", width=512, height=512, is_animated=False, is_video=False),
        "video_note": _file(length=1, duration=1),
        "location": place,
        "venue": {"location": place, "title": "<i>Shop", "address": "1 Road & Co"},
        "poll": {
            "id": "1",
            "question": "<b>?",
            "options": [
                {"persistent_id": "a", "text": "a", "voter_count": 0},
                {"persistent_id": "b", "text": "b", "voter_count": 0},
            ],
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        },
        "dice": {"emoji": "🎲", "value": 3},
    }
    return {kind: contents[kind]}


# What the runs covered, for RELIABILITY.md (`pytest -s` prints it).
TALLY = {"sequences": 0, "updates": 0, "requests checked": 0}


async def fuzz(
    database_url: str, policy: Policy, clock: FrozenClock, names: list[str], actions: list[Any]
) -> None:
    session = RecordingSession(forum_chats=frozenset({STAFF_CHAT}))
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    app = Carebot(
        settings=make_settings(database_url, "http://127.0.0.1:9", REDIS_URL=None),
        policy=policy,
        bot=bot,
        clock=clock,
    )
    failures = Failures()
    logging.getLogger("carebot").addHandler(failures)
    try:
        await app.surveys.sync(policy.surveys)
        world = Fuzzer(app, session)
        world.names = dict(zip(CUSTOMERS, names, strict=True))
        for kind, who, what in actions:
            await world.act(kind, who, what)
        assert not failures.records, [r.getMessage() for r in failures.records]
        assert not session.refusals(), session.refusals()
        TALLY["sequences"] += 1
        TALLY["updates"] += next(world.update_ids) - 1
        TALLY["requests checked"] += len(session.calls)
    finally:
        logging.getLogger("carebot").removeHandler(failures)
        await app.stop()


SEQUENCE = st.lists(action, min_size=1, max_size=40)
NAMES = st.lists(name, min_size=len(CUSTOMERS), max_size=len(CUSTOMERS))
FUZZ_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


@settings(max_examples=40, **FUZZ_SETTINGS)
@given(names=NAMES, actions=SEQUENCE)
def test_random_updates_of_every_kind_are_handled_and_telegram_would_accept_every_answer(
    database_url: str, policy: Policy, clock: FrozenClock, names: list[str], actions: list[Any]
) -> None:
    asyncio.run(fuzz(database_url, policy, clock, names, actions))
    print(TALLY)


@pytest.mark.slow
@settings(max_examples=1000, **FUZZ_SETTINGS)
@given(names=NAMES, actions=SEQUENCE)
def test_the_long_fuzz_run(
    database_url: str, policy: Policy, clock: FrozenClock, names: list[str], actions: list[Any]
) -> None:
    asyncio.run(fuzz(database_url, policy, clock, names, actions))
    print(TALLY)


HOSTILE_NAME = '<b>Eve</b> & "Co" </i><a href="x">'
HOSTILE_TEXT = "</b><i>my order & <script>alert(1)</script> &amp; <tg-spoiler>"


async def test_html_in_a_name_and_in_feedback_reaches_staff_as_text(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="carebot")
    eve = telegram.customer(7301, HOSTILE_NAME, language_code="en")
    await eve.says("/start")
    await eve.says("/feedback")
    await eve.presses("Complaint")
    await eve.says(HOSTILE_TEXT)
    await eve.presses("Send")
    post = await telegram.wait_for(lambda m: m.chat_id == STAFF_CHAT and HOSTILE_TEXT in m.body)
    assert HOSTILE_NAME in post.body and not post.entities[1:]
    assert any(HOSTILE_NAME in topic.name for topic in staff_chat.topics.values())
    await eve.says(HOSTILE_TEXT + " again", expect=0)
    await telegram.wait_for(lambda m: m.chat_id == STAFF_CHAT and f"{HOSTILE_TEXT} again" in m.body)
    # A full-length caption full of characters HTML escapes, copied under a header.
    await eve.sends_photo(caption="&<" * 512, expect=0)
    copied = await telegram.wait_for(lambda m: m.chat_id == STAFF_CHAT and m.photo is not None)
    assert copied.caption is not None and "&<&<" in copied.caption
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# The buttons to a written broadcast to every customer, by the staff member's language.
TO_EVERYONE = {
    "en": ("Everyone who opted in", "Write my own"),
    "zh": ("全部（同意接收的）", "自己写"),
}


async def broadcast_text(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, text: str, language: str = "en"
) -> str:
    """What staff are told when they write `text` as a broadcast to every customer."""
    owner = telegram.staff_member(OWNER_ID, "Olga", staff_chat, language_code=language)
    await owner.says_in(staff_chat, "/broadcast")
    await owner.next_message(chat=staff_chat)
    for button in TO_EVERYONE[language]:
        await owner.presses(button, chat=staff_chat)
    await owner.says_in(staff_chat, text)
    return (await owner.next_message(chat=staff_chat)).text or ""


async def queued(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        messages = await session.scalar(select(func.count(OutboxMessage.id)))
        campaigns = await session.scalar(select(func.count(Campaign.id)))
    return int(messages or 0), int(campaigns or 0)


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("Hi\n{{ ''.__class__.__mro__[1].__subclasses__() }}", 2, "unsafe"),
        ("{{ name.__init__.__globals__ }}", 1, "unsafe"),
        ("{{ cycler.__init__.__globals__.os.system('id') }}", 1, "unsafe"),
        ("{{ '{0.__class__}'.format(name) }}", 1, "unsafe"),
        ("Dear {{ name }},\n\n{% for x in %}", 3, "Expected an expression"),
        ("{{ range(10**9) | list }}", 1, "Range too big"),
        ("Hi {{ name }}\n{{ 9**9**9**9 }}", 2, "too large"),
        ("{{ name * 10**9 }}", 1, "more than 10000 items"),
        ("Hello\n{{ points / 0 }}", 2, "division by zero"),
        ("{{ no_such_thing }}", 1, "undefined"),
    ],
)
async def test_a_broken_or_prying_broadcast_is_refused_with_its_line_and_nothing_is_queued(
    telegram: Emulator,
    carebot: Carebot,
    staff_chat: Chat,
    db: Database,
    text: str,
    line: int,
    why: str,
) -> None:
    customer = telegram.customer(7302, "Ann", language_code="en")
    await customer.says("/start")
    told = await broadcast_text(telegram, carebot, staff_chat, text)
    assert "cannot be sent" in told and f"line {line}:" in told and why in told, told
    assert await queued(db) == (0, 0)


async def test_a_broken_broadcast_is_told_in_the_staff_members_language(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat, db: Database
) -> None:
    customer = telegram.customer(7303, "Bo", language_code="zh-hans")
    await customer.says("/start")
    told = await broadcast_text(
        telegram, carebot, staff_chat, "您好 {{ name }}\n{{ points / 0 }}", language="zh"
    )
    # Jinja2's own words stay as they are; the sentence and the line are the staff's.
    assert "无法发送" in told and "第 2 行：division by zero" in told, told
    assert "line" not in told and "cannot" not in told, told
    assert await queued(db) == (0, 0)
