"""Telegram misbehaving while the sender drains the outbox: 429 storms with their pauses
honoured by every send, server errors, timeouts and refused connections retried with
backoff, blocked and unknown chats given up at once, and texts Telegram refuses reported
to the staff while everyone else still gets their message. The real app runs against the
emulator; every request the bot makes is recorded on the way out."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendMessage, TelegramMethod
from sqlalchemy import select

from bot.app import Carebot
from models import OutboxMessage
from models.database import Database
from sandbox.emulator import Emulator
from services.clock import FrozenClock
from services.customers import TelegramProfile
from services.outbox import Outgoing
from tests.e2e.conftest import STAFF_CHAT
from tests.e2e.conftest import carebot as carebot
from tests.e2e.conftest import staff_chat as staff_chat
from tests.e2e.conftest import start_app as start_app
from tests.e2e.conftest import telegram as telegram
from tests.e2e.helpers import eventually


@dataclass
class Request:
    chat_id: int
    started: float
    ended: float = 0.0
    error: BaseException | None = None


@dataclass
class Wire:
    """Every sendMessage the bot makes, when it left and how it ended."""

    requests: list[Request] = field(default_factory=list)

    async def __call__(
        self, make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
    ) -> Any:
        if not isinstance(method, SendMessage):
            return await make_request(bot, method)
        request = Request(int(method.chat_id), time.monotonic())
        self.requests.append(request)
        try:
            return await make_request(bot, method)
        except Exception as error:
            request.error = error
            raise
        finally:
            request.ended = time.monotonic()

    def to(self, chat_id: int) -> list[Request]:
        return [r for r in self.requests if r.chat_id == chat_id]

    def sent_during_pauses(self) -> list[tuple[float, float]]:
        """Requests that left while a 429's retry_after was running: (its age, the pause)."""
        found: list[tuple[float, float]] = []
        for refused in self.requests:
            if isinstance(refused.error, TelegramRetryAfter):
                pause = refused.error.retry_after
                found += [
                    (other.started - refused.ended, pause)
                    for other in self.requests
                    if refused.ended < other.started < refused.ended + pause
                ]
        return found


@pytest.fixture
def wire(carebot: Carebot) -> Wire:
    recorder = Wire()
    carebot.bot.session.middleware(recorder)
    return recorder


async def customers(telegram: Emulator, carebot: Carebot, first: int, count: int) -> dict[int, int]:
    """Customers with a chat in the emulator: chat id -> customer id."""
    found = {}
    for chat in range(first, first + count):
        telegram.customer(chat, f"C{chat}", language_code="en")
        customer, _ = await carebot.dp["customers"].touch(
            TelegramProfile(telegram_id=chat, chat_id=chat, first_name=f"C{chat}", locale="en")
        )
        found[chat] = customer.id
    return found


async def send(carebot: Carebot, people: dict[int, int], kind: str = "note", **text: str) -> None:
    """One message to each of `people`; `text` overrides the text for some chats."""
    await carebot.outbox.enqueue(
        Outgoing(
            key=f"{kind}:{chat}",
            chat_id=chat,
            text=text.get(str(chat), f"{kind} for {chat}"),
            kind=kind,
            customer_id=cid,
        )
        for chat, cid in people.items()
    )
    carebot.sender.wake()


async def statuses(db: Database) -> dict[str, str]:
    async with db.session() as session:
        rows = await session.execute(select(OutboxMessage.dedupe_key, OutboxMessage.status))
        return {key: status for key, status in rows.all()}


def received(telegram: Emulator, chats: dict[int, int]) -> Counter[int]:
    return Counter({chat: len(telegram.messages(chat)) for chat in chats})


async def all_settled(db: Database) -> bool:
    return not {"pending", "sending"} & set((await statuses(db)).values())


async def test_messages_reach_customers_within_telegrams_limits(
    telegram: Emulator, carebot: Carebot, db: Database
) -> None:
    telegram.limits(True)
    people = await customers(telegram, carebot, 1500, 12)
    await carebot.outbox.enqueue(
        Outgoing(key=f"wave:{chat}:{n}", chat_id=chat, text=f"hello {n}", kind="t", customer_id=c)
        for chat, c in people.items()
        for n in (1, 2)
    )
    carebot.sender.wake()

    async def all_sent() -> bool:
        return set((await statuses(db)).values()) == {"sent"}

    await eventually(all_sent, timeout=10)
    assert telegram.rate_limited == 0
    for chat in people:
        assert [m.text for m in telegram.messages(chat)] == ["hello 1", "hello 2"]


async def test_a_storm_of_429s_pauses_every_send_for_retry_after(
    telegram: Emulator, carebot: Carebot, db: Database, wire: Wire
) -> None:
    people = await customers(telegram, carebot, 2000, 10)
    telegram.fail_next("sendMessage", 429, count=4, retry_after=1)
    await send(carebot, people)

    await eventually(lambda: all_settled(db), timeout=20)

    assert telegram.rate_limited == 4
    assert wire.sent_during_pauses() == []
    assert set(received(telegram, people).values()) == {1}
    assert set((await statuses(db)).values()) == {"sent"}


async def test_telegram_lowering_its_limit_is_followed_without_a_loss(
    telegram: Emulator, carebot: Carebot, db: Database, wire: Wire
) -> None:
    telegram.limits(True, global_per_second=5)  # the bot's policy says 30 a second
    people = await customers(telegram, carebot, 2100, 20)
    await send(carebot, people)

    await eventually(lambda: all_settled(db), timeout=30)

    assert telegram.rate_limited > 0
    assert wire.sent_during_pauses() == []
    assert set(received(telegram, people).values()) == {1}


async def test_server_errors_are_retried_with_backoff_and_nothing_is_lost(
    telegram: Emulator, carebot: Carebot, db: Database, clock: FrozenClock, wire: Wire
) -> None:
    people = await customers(telegram, carebot, 2200, 8)
    for status in (502, 500, 503, 504, 502):
        telegram.fail_next("sendMessage", status, count=2)
    await send(carebot, people)

    async def first_round_over() -> bool:
        return len({r.chat_id for r in wire.requests}) == len(people)

    await eventually(first_round_over, timeout=10)
    async with db.session() as session:
        backing_off = list(
            await session.scalars(select(OutboxMessage).where(OutboxMessage.status == "pending"))
        )
    assert backing_off and all(r.not_before > clock.now() for r in backing_off)
    assert all(r.attempts >= 1 and r.last_error for r in backing_off)

    async def delivered_after_backoff() -> bool:
        clock.advance(timedelta(minutes=1))
        carebot.sender.wake()
        return await all_settled(db)

    await eventually(delivered_after_backoff, timeout=30)
    assert set(received(telegram, people).values()) == {1}
    assert set((await statuses(db)).values()) == {"sent"}
    assert sum(1 for r in wire.requests if r.error is not None) == 10


async def test_telegram_unreachable_for_a_while_loses_nothing(
    telegram: Emulator, carebot: Carebot, db: Database, clock: FrozenClock, wire: Wire
) -> None:
    people = await customers(telegram, carebot, 2300, 6)
    port = int(telegram.base_url.rsplit(":", 1)[1])
    await telegram.stop()
    await send(carebot, people)

    async def all_refused() -> bool:
        return len({r.chat_id for r in wire.requests if r.error is not None}) == len(people)

    await eventually(all_refused, timeout=10)
    assert received(telegram, people).total() == 0
    await telegram.start(port=port)

    async def delivered_after_backoff() -> bool:
        clock.advance(timedelta(minutes=1))
        carebot.sender.wake()
        return await all_settled(db)

    await eventually(delivered_after_backoff, timeout=30)
    assert set(received(telegram, people).values()) == {1}
    assert set((await statuses(db)).values()) == {"sent"}


async def test_timed_out_requests_are_retried_and_nothing_is_lost(
    telegram: Emulator, carebot: Carebot, db: Database, clock: FrozenClock, wire: Wire
) -> None:
    people = await customers(telegram, carebot, 2400, 5)
    carebot.bot.session.timeout = 0.3
    telegram.delay(0.6)
    await send(carebot, people)

    def timed_out() -> list[Request]:
        return [r for r in wire.requests if r.error is not None]

    async def every_first_try_timed_out() -> bool:
        return len({r.chat_id for r in timed_out()}) == len(people)

    await eventually(every_first_try_timed_out, timeout=15)
    telegram.delay(0)
    carebot.bot.session.timeout = 60

    async def delivered_after_backoff() -> bool:
        clock.advance(timedelta(minutes=1))
        carebot.sender.wake()
        return await all_settled(db)

    await eventually(delivered_after_backoff, timeout=30)
    counts = received(telegram, people)
    assert min(counts.values()) >= 1
    # A request that timed out may still have been carried out by Telegram (the Bot API
    # has no idempotency key): only those can arrive twice, each at most once more.
    duplicates = counts.total() - len(people)
    assert duplicates <= len(timed_out())
    assert set((await statuses(db)).values()) == {"sent"}


@pytest.mark.parametrize(
    ("trouble", "error"),
    [
        ("blocked", "bot was blocked by the user"),
        ("never started", "bot can't initiate conversation"),
        ("no such chat", "chat not found"),
    ],
)
async def test_unreachable_customers_are_marked_and_never_retried(
    telegram: Emulator, carebot: Carebot, db: Database, wire: Wire, trouble: str, error: str
) -> None:
    chat = 2500
    if trouble != "no such chat":
        telegram.customer(chat, "Olga", language_code="en", started=trouble != "never started")
    if trouble == "blocked":
        # As Telegram answers before the bot has heard of the block from an update.
        telegram.fail_next("sendMessage", 403, description=f"Forbidden: {error}")
    customer, _ = await carebot.dp["customers"].touch(
        TelegramProfile(telegram_id=chat, chat_id=chat, first_name="Olga", locale="en")
    )
    people = {chat: customer.id}
    await send(carebot, people, kind="first")

    async def failed() -> bool:
        return (await statuses(db)).get(f"first:{chat}") == "failed"

    await eventually(failed)
    reloaded = await carebot.dp["customers"].get(customer.id)
    assert reloaded is not None and not reloaded.reachable
    async with db.session() as session:
        reason = await session.scalar(
            select(OutboxMessage.last_error).where(OutboxMessage.dedupe_key == f"first:{chat}")
        )
    assert error in (reason or "")

    await send(carebot, people, kind="second")

    async def skipped() -> bool:
        return (await statuses(db)).get(f"second:{chat}") == "skipped"

    await eventually(skipped)
    assert len(wire.to(chat)) == 1


@pytest.mark.parametrize(
    ("broken", "error"),
    [("x" * 5000, "message is too long"), ("<b>Happy birthday", "can't parse entities")],
)
async def test_a_refused_text_is_reported_to_staff_and_the_rest_go_out(
    telegram: Emulator,
    carebot: Carebot,
    db: Database,
    wire: Wire,
    caplog: pytest.LogCaptureFixture,
    broken: str,
    error: str,
) -> None:
    people = await customers(telegram, carebot, 2600, 6)
    bad = list(people)[1:3]
    with caplog.at_level(logging.ERROR, logger="carebot.sender"):
        await send(carebot, people, kind="birthday", **{str(chat): broken for chat in bad})

        async def staff_told() -> bool:
            return await all_settled(db) and any(
                error in (m.text or "") for m in telegram.messages(STAFF_CHAT)
            )

        await eventually(staff_told, timeout=10)

    counts = received(telegram, people)
    assert all(counts[chat] == 1 for chat in people if chat not in bad)
    assert all(counts[chat] == 0 for chat in bad)
    states = await statuses(db)
    assert [states[f"birthday:{chat}"] for chat in bad] == ["failed", "failed"]
    (alert,) = [m.text or "" for m in telegram.messages(STAFF_CHAT) if error in (m.text or "")]
    assert "birthday" in alert
    for chat in bad:  # a broken template is not the customer's doing
        person = await carebot.dp["customers"].get(people[chat])
        assert person is not None and person.reachable
    assert [r for r in caplog.records if error in r.getMessage()]
    assert len(wire.requests) == len(people) + 1
