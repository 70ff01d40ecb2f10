"""Random sequences of updates fed to the real Dispatcher (customers typing, sending photos,
pressing real, stale and forged buttons; staff answering and closing; sales arriving): no
handler ever fails, no balance goes below zero, and the points ledger always adds up."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.enums import ParseMode
from aiogram.types import Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.app import Carebot
from models import Coupon, Customer, PointsEntry, RewardStock
from services.clock import FrozenClock
from services.loyalty import Sale, SaleError
from services.policy import Policy
from tests.e2e.conftest import OWNER_ID, STAFF_CHAT, TOKEN, make_settings
from tests.handlers.recording import BOT_ID as BOT
from tests.handlers.recording import RecordingSession

CUSTOMERS = (7001, 7002)
COMMANDS = (
    "/start",
    "/menu",
    "/points",
    "/rewards",
    "/feedback",
    "/tickets",
    "/survey",
    "/profile",
    "/mydata",
    "/forgetme",
    "/stop",
    "/cancel",
    "/help",
)
FORGED = (
    "rw:{n}",
    "rwok:coffee:{n}",
    "rwok:voucher_20:x{n}",
    "rwok:tote_bag:{n}",
    "fb:{n}",
    "fb:complaint",
    "fbsend",
    "csat:{n}:{m}",
    "sva:{n}:{m}:{k}",
    "svs:{n}:{m}",
    "svo:{n}:0",
    "svo:0:{n}",
    "pf:birthday",
    "pf:marketing_{n}",
    "forget:1",
    "tk:close:{n}",
    "rec:{n}",
    "menu:{n}",
)

numbers = st.integers(min_value=-2, max_value=40)
texts = st.one_of(
    st.sampled_from(COMMANDS),
    st.sampled_from(("1990-05-17", "2026-02-31", "hello", "Broken lid", "<b>", "9")),
    st.text(max_size=30),
)
forged = st.builds(
    lambda pattern, n, m, k: pattern.format(n=n, m=m, k=k),
    st.sampled_from(FORGED),
    numbers,
    numbers,
    numbers,
)
action = st.one_of(
    st.tuples(st.just("text"), st.sampled_from(CUSTOMERS), texts),
    st.tuples(st.just("photo"), st.sampled_from(CUSTOMERS), st.booleans()),
    st.tuples(st.just("press"), st.sampled_from(CUSTOMERS), st.integers(0, 30)),
    st.tuples(
        st.just("forged"), st.sampled_from(CUSTOMERS), st.one_of(forged, st.text(max_size=64))
    ),
    st.tuples(st.just("sale"), st.sampled_from(CUSTOMERS), st.integers(-600, 1500)),
    st.tuples(st.just("staff_text"), st.integers(0, 5), texts),
    st.tuples(st.just("staff_press"), st.integers(0, 30), st.just("")),
)


@dataclass
class World:
    app: Carebot
    session: RecordingSession
    update_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    sales: list[str] = field(default_factory=list)

    def user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": f"U{user_id}", "language_code": "en"}

    def chat(self, chat_id: int) -> dict[str, Any]:
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"U{chat_id}"}
        return {"id": chat_id, "type": "supergroup", "title": "Staff", "is_forum": True}

    def message(self, user_id: int, chat_id: int, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self.message_ids),
            "date": 0,
            "chat": self.chat(chat_id),
            "from": self.user(user_id),
            **content,
        }

    async def feed(self, payload: dict[str, Any]) -> None:
        update = Update.model_validate(
            {"update_id": next(self.update_ids), **payload}, context={"bot": self.app.bot}
        )
        await self.app.dp.feed_update(self.app.bot, update)

    def text_content(self, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return content

    async def act(self, kind: str, who: int, what: Any) -> None:
        if kind == "text":
            await self.feed({"message": self.message(who, who, **self.text_content(what))})
        elif kind == "photo":
            photo = [{"file_id": "PHOTO", "file_unique_id": "P", "width": 1, "height": 1}]
            extra = {"caption": "look"} if what else {}
            await self.feed({"message": self.message(who, who, photo=photo, **extra)})
        elif kind in ("press", "forged"):
            shown = self.session.callback_data(who)
            data = what if kind == "forged" else (shown[-1 - what % len(shown)] if shown else "x")
            await self.press(who, who, data)
        elif kind == "sale":
            await self.sale(who, what)
        elif kind == "staff_text":
            threads = sorted(
                {
                    int(c.message_thread_id)
                    for c in self.session.calls
                    if getattr(c, "message_thread_id", None)
                }
            )
            thread = threads[who % len(threads)] if threads else None
            content = self.text_content(what)
            if thread is not None:
                content.update(message_thread_id=thread, is_topic_message=True)
            await self.feed({"message": self.message(OWNER_ID, STAFF_CHAT, **content)})
        elif kind == "staff_press":
            shown = self.session.callback_data(STAFF_CHAT)
            if shown:
                await self.press(OWNER_ID, STAFF_CHAT, shown[-1 - who % len(shown)])

    async def press(self, user_id: int, chat_id: int, data: str) -> None:
        message = self.message(BOT, chat_id, text="…")
        message["from"] = {"id": BOT, "is_bot": True, "first_name": "Carebot"}
        await self.feed(
            {
                "callback_query": {
                    "id": str(next(self.update_ids)),
                    "from": self.user(user_id),
                    "chat_instance": "1",
                    "message": message,
                    "data": data,
                }
            }
        )

    async def sale(self, telegram_id: int, amount: int) -> None:
        customer = await self.app.dp["customers"].by_telegram(telegram_id)
        if customer is None or amount == 0:
            return
        loyalty = self.app.dp["loyalty"]
        reference = f"S{next(self.update_ids)}-{telegram_id}"
        if amount > 0:
            self.sales.append(reference)
            sale = Sale(
                reference, Decimal(amount), self.app.clock.now(), "test", customer_id=customer.id
            )
        elif self.sales:
            sale = Sale(
                reference,
                Decimal(amount),
                self.app.clock.now(),
                "test",
                refund_of=self.sales[amount % len(self.sales)],
            )
        else:
            return
        # A refund larger than what is left of its sale is refused, as it should be.
        with contextlib.suppress(SaleError):
            await loyalty.record_purchase(sale)

    async def check(self) -> None:
        async with self.app.db.session() as session:
            balances = dict(
                (
                    await session.execute(
                        select(PointsEntry.customer_id, func.sum(PointsEntry.delta)).group_by(
                            PointsEntry.customer_id
                        )
                    )
                ).all()
            )
            redeemed = await session.scalar(
                select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
                    PointsEntry.reason == "redeem"
                )
            )
            paid = await session.scalar(select(func.coalesce(func.sum(Coupon.cost), 0)))
            stock = list(await session.scalars(select(RewardStock)))
            people = list(await session.scalars(select(Customer.id)))
        assert all(balance >= 0 for balance in balances.values()), balances
        assert -int(redeemed or 0) == int(paid or 0)
        for row in stock:
            reward = self.app.policy.reward(row.reward_key)
            assert reward is not None and reward.stock is not None and row.issued <= reward.stock
        loyalty = self.app.dp["loyalty"]
        for customer_id in people:
            summary = await loyalty.summary(customer_id)
            assert summary.balance == int(balances.get(customer_id, 0))


class Failures(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def play(database_url: str, policy: Policy, clock: FrozenClock, actions: list[Any]) -> None:
    session = RecordingSession(forum_chats=frozenset({STAFF_CHAT}))
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    settings_ = make_settings(database_url, "http://127.0.0.1:9", REDIS_URL=None)
    app = Carebot(settings=settings_, policy=policy, bot=bot, clock=clock)
    failures = Failures()
    logging.getLogger("carebot").addHandler(failures)
    try:
        await app.surveys.sync(policy.surveys)
        world = World(app, session)
        for kind, who, what in actions:
            await world.act(kind, who, what)
            await world.check()
        assert not failures.records, [r.getMessage() for r in failures.records]
    finally:
        logging.getLogger("carebot").removeHandler(failures)
        await app.stop()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(actions=st.lists(action, min_size=1, max_size=30))
def test_random_updates_never_break_the_bot_or_the_ledger(
    database_url: str, policy: Policy, clock: FrozenClock, actions: list[Any]
) -> None:
    asyncio.run(play(database_url, policy, clock, actions))
