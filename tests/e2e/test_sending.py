"""The sender against the emulator: server errors retried with backoff, pictures sent with
their captions, and several senders draining one outbox — each message once, the pace
shared through Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from redis.asyncio import Redis
from sqlalchemy import select

from bot.app import make_bot
from bot.metrics import Metrics
from bot.pacing import Pacer, RedisPacer
from bot.rendering import Renderer
from bot.sender import Sender
from models import Customer, OutboxMessage
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.state import Chat
from services.clock import FrozenClock
from services.customers import Customers
from services.loyalty import Loyalty
from services.outbox import Outbox, Outgoing
from services.policy import Policy
from tests.conftest import PG_URL, REDIS_URL
from tests.e2e.conftest import TOKEN
from tests.services.outreach_helpers import ZONE

MakeSender = Callable[..., Sender]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def make_sender(
    telegram: Emulator, db: Database, policy: Policy, clock: FrozenClock
) -> AsyncIterator[MakeSender]:
    """Senders of their own, each as a separate instance of the bot would have."""
    made: list[Sender] = []
    renderer = Renderer(default_locale="zh", timezone=ZONE)

    def make(*, rate: float = 30, pacer: Pacer | None = None, paid: bool = False) -> Sender:
        outbox = Outbox(db, clock)
        customers = Customers(db, policy, clock, Loyalty(db, policy, clock, outbox, renderer))
        sender = Sender(
            make_bot(TOKEN, telegram.base_url),
            outbox,
            customers,
            renderer,
            Metrics(),
            rate=rate,
            pacer=pacer,
            paid_broadcast=paid,
        )
        made.append(sender)
        return sender

    yield make
    for sender in made:
        await sender.pacer.close()
        await sender.bot.session.close()


async def chats(
    db: Database, telegram: Emulator, clock: FrozenClock, first: int, count: int
) -> list[int]:
    """Customers with a chat in the emulator; their chat ids."""
    ids = list(range(first, first + count))
    async with db.transaction() as session:
        for user_id in ids:
            telegram.customer(user_id, f"U{user_id}", language_code="en")
            session.add(
                Customer(telegram_id=user_id, chat_id=user_id, locale="en", created_at=clock.now())
            )
    return ids


async def enqueue(db: Database, clock: FrozenClock, to: list[int], kind: str = "note") -> None:
    await Outbox(db, clock).enqueue(
        [Outgoing(key=f"{kind}:{c}", chat_id=c, text=f"{kind} {c}", kind=kind) for c in to]
    )


async def rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def test_server_errors_are_retried_with_backoff(
    telegram: Emulator, db: Database, clock: FrozenClock, make_sender: MakeSender
) -> None:
    (chat,) = await chats(db, telegram, clock, 4100, 1)
    await enqueue(db, clock, [chat])
    sender = make_sender()
    telegram.fail_next("sendMessage", 502, count=2)

    assert await sender.drain_once() == 0
    (row,) = await rows(db)
    assert (row.status, row.attempts) == ("pending", 1) and "Bad Gateway" in (row.last_error or "")
    assert row.not_before == clock.now() + timedelta(seconds=2)
    assert await sender.drain_once() == 0  # not due yet
    clock.advance(timedelta(seconds=2))
    assert await sender.drain_once() == 0
    clock.advance(timedelta(seconds=4))
    assert await sender.drain_once() == 1

    (row,) = await rows(db)
    assert (row.status, row.attempts) == ("sent", 2) and row.telegram_message_id
    assert [m.text for m in telegram.messages(chat)] == [f"note {chat}"]


async def test_a_picture_goes_with_its_caption(
    telegram: Emulator, db: Database, clock: FrozenClock, make_sender: MakeSender
) -> None:
    group: Chat = telegram.staff_group(-1009000000001, "Staff")
    await Outbox(db, clock).enqueue(
        [Outgoing(key="chart", chat_id=group.id, text="The curve", kind="digest", photo=PNG)]
    )
    assert await make_sender().drain_once() == 1
    (posted,) = telegram.messages(group.id)
    assert posted.photo and posted.caption == "The curve"


async def test_paid_broadcast_is_asked_for_when_the_policy_allows_it(
    telegram: Emulator, db: Database, clock: FrozenClock, make_sender: MakeSender
) -> None:
    to = await chats(db, telegram, clock, 4150, 2)
    await enqueue(db, clock, to)
    sender = make_sender(rate=1000, paid=True)
    asked: list[object] = []

    async def record(
        make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
    ) -> Any:
        asked.append(getattr(method, "allow_paid_broadcast", None))
        return await make_request(bot, method)

    sender.bot.session.middleware(record)
    assert await sender.drain_once() == 2
    assert asked == [True, True]


@pytest.mark.skipif(
    not PG_URL, reason="several senders share one outbox on PostgreSQL; SQLite is one process"
)
async def test_two_senders_drain_one_outbox_each_message_once(
    telegram: Emulator, db: Database, clock: FrozenClock, make_sender: MakeSender
) -> None:
    to = await chats(db, telegram, clock, 4200, 60)
    await enqueue(db, clock, to)
    first, second = make_sender(), make_sender()

    sent = await asyncio.gather(first.drain_once(), second.drain_once())

    assert sum(sent) == 60 and all(sent)
    assert {r.status for r in await rows(db)} == {"sent"}
    for chat in to:
        assert [m.text for m in telegram.messages(chat)] == [f"note {chat}"]


@pytest.mark.skipif(
    not (PG_URL and REDIS_URL),
    reason="several senders share the pace through Redis, on one PostgreSQL outbox",
)
async def test_senders_sharing_redis_keep_the_overall_rate_together(
    telegram: Emulator, db: Database, clock: FrozenClock, make_sender: MakeSender
) -> None:
    telegram.limits(True, global_per_second=30)
    to = await chats(db, telegram, clock, 4300, 75)
    await enqueue(db, clock, to)
    bot_id = int(TOKEN.split(":")[0])
    redis = Redis.from_url(REDIS_URL)
    await redis.delete(*[key async for key in redis.scan_iter(f"carebot:{bot_id}:send:*")], "-")
    await redis.aclose()
    senders = [make_sender(rate=25, pacer=RedisPacer(REDIS_URL, bot_id, 25, 1.0)) for _ in range(3)]

    started = time.monotonic()
    sent = await asyncio.gather(*(s.drain_once() for s in senders))
    elapsed = time.monotonic() - started

    assert sum(sent) == 75 and telegram.rate_limited == 0
    assert elapsed >= 74 / 25 * 0.95  # 25 a second in all, not 25 each
    for chat in to:
        assert len(telegram.messages(chat)) == 1
