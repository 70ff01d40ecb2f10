"""Crash safety of the sender: the real process killed with SIGKILL in the middle of
sending; after a restart every message arrives, and only one whose request was in flight
at the kill can arrive twice."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from models import Customer, OutboxMessage
from models.database import Database
from sandbox.emulator import Emulator
from services.clock import SystemClock
from services.outbox import Outbox, Outgoing
from tests.e2e.helpers import eventually

CAREBOT = str(Path(sys.executable).with_name("carebot"))
PEOPLE = 60


@pytest.mark.slow
async def test_a_killed_sender_loses_nothing(tmp_path: Path, database_url: str) -> None:
    policy = tmp_path / "carebot.toml"
    policy.write_text("[sending]\nrate_per_second = 20\nclaim_timeout_seconds = 2\n", "utf-8")
    db = Database(database_url)
    clock = SystemClock()
    async with Emulator() as telegram:
        telegram.delay(0.01)
        chats = list(range(8000, 8000 + PEOPLE))
        async with db.transaction() as session:
            for chat in chats:
                telegram.customer(chat, f"P{chat}", language_code="en")
                session.add(
                    Customer(telegram_id=chat, chat_id=chat, locale="en", created_at=clock.now())
                )
        await Outbox(db, clock).enqueue(
            [Outgoing(key=f"note:{c}", chat_id=c, text=f"note {c}", kind="note") for c in chats]
        )
        env = {
            **os.environ,
            "BOT_TOKEN": "4343:crash-test-token",
            "TELEGRAM_API_URL": telegram.base_url,
            "DATABASE_URL": database_url,
            "HTTP_PORT": "0",
            "CAREBOT_POLICY": str(policy),
            "REDIS_URL": "",
            "LOG_LEVEL": "WARNING",
        }

        def delivered() -> int:
            return sum(len(telegram.messages(c)) for c in chats)

        async def reached(count: int) -> bool:
            return delivered() >= count

        async def run() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                CAREBOT, "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.DEVNULL
            )

        first = await run()
        try:
            await eventually(lambda: reached(PEOPLE // 3), timeout=30)
        finally:
            first.kill()
            await first.wait()
        assert delivered() < PEOPLE

        async def everyone_reached() -> bool:
            return all(telegram.messages(c) for c in chats)

        second = await run()
        try:
            await eventually(everyone_reached, timeout=30)
        finally:
            second.terminate()
            await second.wait()

        counts = [len(telegram.messages(c)) for c in chats]
        assert min(counts) == 1
        assert sum(counts) - PEOPLE <= 1, counts
        async with db.session() as session:
            statuses = set(await session.scalars(select(OutboxMessage.status)))
        assert statuses == {"sent"}
    await db.close()
