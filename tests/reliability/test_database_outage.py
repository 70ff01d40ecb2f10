"""Database faults: PostgreSQL unreachable for a while and back, while customers chat, sales
are recorded, surveys answered and a job runs.

The shared server is never stopped: the bot reaches it through a TCP proxy the test
switches off (new connections refused, open ones cut) and on again. Shown:
- customers writing meanwhile get an apology in their language, once, instead of silence;
- the bot recovers by itself: the same process answers everything written during the
  outage, nothing is lost (polling: the offset is not moved past an update until it is
  recorded, so Telegram hands it out again; webhook: the bot answers 503 and Telegram
  sends it again);
- no sale, points entry or survey answer is half-written: every sale has exactly one
  points entry, every survey response is a prefix of its questions and complete only
  when all are answered; a job failing in the outage enqueues and grants nothing twice
  when it runs again.

The 3-second outage runs with the suite; the 30-second one is marked slow.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import make_url

from bot.app import Carebot
from jobs.tasks import run_job
from models import (
    Customer,
    OutboxMessage,
    PointsEntry,
    Purchase,
    Survey,
    SurveyAnswer,
    SurveyQuestion,
    SurveyResponse,
)
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.players import Customer as Player
from sandbox.state import ChatMessage
from services.loyalty import Sale
from services.surveys import Surveys
from tests.conftest import PG_URL
from tests.e2e.conftest import AppFactory
from tests.e2e.conftest import start_app as start_app
from tests.e2e.conftest import telegram as telegram
from tests.e2e.helpers import eventually
from tests.reliability.proxy import TcpProxy

pytestmark = pytest.mark.skipif(not PG_URL, reason="a PostgreSQL outage: runs with its suite")

APOLOGY = {"zh": "系统暂时出现故障", "en": "technical problem"}
ANSWER = {"zh": ("我的积分", "我能为您做什么"), "en": ("My points", "What I can do for you")}
# How long a customer waits for an answer once the database is back.
RECOVERY_LIMIT = 30.0


@dataclass
class Figures:
    apology_latency: list[float] = field(default_factory=list)
    recovered_in: float = 0.0
    sales: int = 0
    failed_writes: Counter[str] = field(default_factory=Counter)
    webhook_retries: int = 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Writers:
    """Sales and survey answers written the way their callers do it: a unit that fails is
    tried again until it commits (a sale under the same reference)."""

    def __init__(self, app: Carebot, customers: list[int], survey_id: int) -> None:
        self.app = app
        self.customers = customers
        self.survey_id = survey_id
        self.references: list[str] = []
        self.failures: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sales())] + [
            asyncio.create_task(self._survey(c)) for c in self.customers
        ]

    async def finish(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _until_committed(self, unit: Any) -> Any:
        while True:
            try:
                return await unit()
            except Exception as error:
                # The driver's own error: refused while down, or the connection lost
                # in the middle of a transaction when the outage began.
                cause = getattr(error, "orig", None) or error
                self.failures[type(cause.__cause__ or cause).__name__] += 1
                await asyncio.sleep(0.05)

    async def _sales(self) -> None:
        loyalty = self.app.dp["loyalty"]
        customers = itertools.cycle(self.customers)
        for number in itertools.count(1):
            if self._stop.is_set():
                return
            sale = Sale(
                reference=f"OUTAGE-{number}",
                # Small, so that no customer reaches a new tier: its congratulation would
                # land among the answers the test waits for.
                amount=Decimal("2.00"),
                occurred_at=self.app.clock.now(),
                channel="api",
                customer_id=next(customers),
            )
            self.references.append(sale.reference)
            await self._until_committed(lambda sale=sale: loyalty.record_purchase(sale))
            await asyncio.sleep(0.02)

    async def _survey(self, customer_id: int) -> None:
        surveys: Surveys = self.app.surveys
        began = await self._until_committed(lambda: surveys.begin(customer_id, self.survey_id))
        response_id = began.step.response_id
        while True:
            result = await self._until_committed(lambda: surveys.resume(customer_id, response_id))
            question = result.step.question
            if question is None:
                return
            value = next((v for v in range(11) if question.accepts(v)), None)
            await self._until_committed(
                lambda question=question, value=value: surveys.answer(
                    customer_id,
                    response_id,
                    question.id,
                    value=value,
                    text="fine" if value is None else None,
                )
            )
            await asyncio.sleep(0.3)


def locale_of(player: Player) -> str:
    return "zh" if (player.user.language_code or "").startswith("zh") else "en"


async def next_within(player: Player, seconds: float) -> ChatMessage:
    player.reply_timeout = seconds
    return await player.next_message()


async def outage(
    telegram: Emulator, start_app: AppFactory, db: Database, *, webhook: bool, seconds: float
) -> Figures:
    figures = Figures()
    target = make_url(PG_URL)
    async with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        through_proxy = target.set(host="127.0.0.1", port=proxy.port)
        extra: dict[str, str] = {
            "DATABASE_URL": through_proxy.render_as_string(hide_password=False)
        }
        if webhook:
            port = free_port()
            extra.update(
                WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/hook",
                WEBHOOK_SECRET="outage-secret",
                HTTP_PORT=str(port),
            )
        app: Carebot = await start_app(**extra)
        players = [
            telegram.customer(7101, "Li", language_code="zh-hans"),
            telegram.customer(7102, "Ann", language_code="en"),
            telegram.customer(7103, "Wang", language_code="zh"),
            telegram.customer(7104, "Bob", language_code="en-US"),
        ]
        customers = []
        for player in players:
            await player.says("/start")
            found = await app.dp["customers"].by_telegram(player.user_id)
            customers.append(found.id)
        celebrating = customers[:2]
        async with db.transaction() as session:
            await session.execute(
                update(Customer)
                .where(Customer.id.in_(celebrating))
                .values(birthday=date(1990, 5, 1))
            )
            survey_id = await session.scalar(select(Survey.id).where(Survey.key == "post_purchase"))
        assert survey_id is not None

        writers = Writers(app, customers, survey_id)
        writers.start()
        await asyncio.sleep(0.3)
        await proxy.down()
        went_down = time.monotonic()

        with pytest.raises(Exception):  # noqa: B017 - any database error will do
            await run_job(app.jobs, "birthdays")

        # Everyone writes twice during the outage. Polling fetches all their updates at
        # once; the emulator posts webhook updates one at a time, retrying the first until it
        # is taken, so there only the first customer hears from the bot before the database
        # is back. Either way an apology comes once per chat, in the customer's language.
        sent = time.monotonic()
        for player in players:
            telegram.user_sends_text(player.user_id, "/points")
        for player in players[:1] if webhook else players:
            message = await next_within(player, 10.0)
            figures.apology_latency.append(time.monotonic() - sent)
            assert APOLOGY[locale_of(player)] in message.body, message.body
        for player in players:
            telegram.user_sends_text(player.user_id, "/help")

        await asyncio.sleep(max(0.0, seconds - (time.monotonic() - went_down)))
        await proxy.up()
        back = time.monotonic()

        # Everything written during the outage is answered by the same process, in order.
        for player in players:
            for expected in ANSWER[locale_of(player)]:
                message = await next_within(player, RECOVERY_LIMIT)
                assert expected in message.body, message.body
        figures.recovered_in = time.monotonic() - back
        for player in players:
            await player.expect_none(0.5)
        # Updates handled as the database went away are marked done once it is back, so a
        # restart would not answer them a second time.
        await eventually(lambda: no_pending(app), timeout=15)

        await writers.finish()
        figures.sales = len(writers.references)
        figures.failed_writes = writers.failures
        figures.webhook_retries = telegram.webhook_failures

        assert (await run_job(app.jobs, "birthdays")).count == len(celebrating)
        assert (await run_job(app.jobs, "birthdays")).count == 0
    await check_nothing_half_written(db, writers, celebrating)
    return figures


async def no_pending(app: Carebot) -> bool:
    return not await app.inbox.pending()


async def check_nothing_half_written(
    db: Database, writers: Writers, celebrating: list[int]
) -> None:
    async with db.session() as session:
        references = set(await session.scalars(select(Purchase.reference)))
        assert references == set(writers.references)
        per_purchase = Counter(
            await session.scalars(
                select(PointsEntry.purchase_id).where(PointsEntry.purchase_id.is_not(None))
            )
        )
        purchases = set(await session.scalars(select(Purchase.id)))
        assert set(per_purchase) == purchases and set(per_purchase.values()) == {1}

        questions = (
            await session.execute(
                select(SurveyQuestion.survey_id, func.count()).group_by(SurveyQuestion.survey_id)
            )
        ).all()
        total = dict(questions)
        for response in await session.scalars(select(SurveyResponse)):
            positions = list(
                await session.scalars(
                    select(SurveyQuestion.position)
                    .join(SurveyAnswer, SurveyAnswer.question_id == SurveyQuestion.id)
                    .where(SurveyAnswer.response_id == response.id)
                    .order_by(SurveyQuestion.position)
                )
            )
            assert positions == list(range(1, len(positions) + 1))
            assert (response.completed_at is not None) == (
                len(positions) == total[response.survey_id]
            )
            assert response.completed_at is not None, "every survey was finished after the outage"

        greetings = Counter(
            await session.scalars(
                select(OutboxMessage.customer_id).where(OutboxMessage.kind == "birthday")
            )
        )
        gifts = Counter(
            await session.scalars(
                select(PointsEntry.customer_id).where(PointsEntry.reason == "birthday")
            )
        )
        assert greetings == gifts == Counter(celebrating)


async def test_a_short_database_outage_in_polling_mode(
    telegram: Emulator, start_app: AppFactory, db: Database
) -> None:
    figures = await outage(telegram, start_app, db, webhook=False, seconds=3)
    print(figures)


async def test_a_short_database_outage_in_webhook_mode(
    telegram: Emulator, start_app: AppFactory, db: Database
) -> None:
    figures = await outage(telegram, start_app, db, webhook=True, seconds=3)
    assert figures.webhook_retries > 0
    print(figures)


@pytest.mark.slow
@pytest.mark.parametrize("webhook", [False, True], ids=["polling", "webhook"])
async def test_a_30_second_database_outage(
    telegram: Emulator, start_app: AppFactory, db: Database, webhook: bool
) -> None:
    figures = await outage(telegram, start_app, db, webhook=webhook, seconds=30)
    print(figures)
