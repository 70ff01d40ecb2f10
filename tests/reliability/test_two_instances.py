"""Two instances: two real `carebot run` processes on one PostgreSQL (and Redis, when the
suite has one), behind one webhook URL.

Webhook mode, because that is how several instances share one bot: Telegram lets only one
poller hold a token (a second getUpdates gets 409 Conflict), while a webhook URL can sit in
front of any number of instances. A small round-robin balancer in the test stands for the
load balancer, skipping an instance it cannot reach as a health check would.

Shown: both instances handle updates; exactly one runs the scheduler; after the leader is
killed with SIGKILL the other takes the scheduler over within a minute; no scheduled job
runs twice for one time, and customers due a birthday greeting get exactly one.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select, update

from bot.webhook import SECRET_HEADER
from models import Customer, JobRun
from models.database import Database
from sandbox.emulator import Emulator
from tests.conftest import PG_URL, REDIS_URL
from tests.e2e.helpers import eventually

pytestmark = [
    pytest.mark.skipif(not PG_URL, reason="instances share PostgreSQL; runs with its suite"),
    pytest.mark.slow,
]

CAREBOT = str(Path(sys.executable).with_name("carebot"))
TOKEN = "5151:two-instances-token"
SECRET = "two-instances-secret"
LEADS = "this instance runs the scheduler"
# Every scheduled job but the weekly digest and the nightly classification runs every
# minute, so a few minutes show which instance runs them; quiet hours are off so that
# the birthday greetings go out at once.
POLICY = """
[quiet_hours]
start = "00:00"
end = "00:00"

[schedule]
followups = "every 1 minutes"
birthdays = "every 1 minutes"
winback = "every 1 minutes"
surveys = "every 1 minutes"
sla = "every 1 minutes"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RoundRobin:
    """A load balancer in front of the instances' webhook: each update goes to the next
    instance, or past it to the one after when it cannot be reached."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.ports: list[int] = []
        self.accepted: Counter[int] = Counter()  # port -> updates it answered 2xx
        self._turn: Iterator[int] = iter(())
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def start(self, ports: list[int]) -> None:
        self.ports = ports
        self._turn = itertools.cycle(ports)
        app = web.Application()
        app.router.add_post(self.path, self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {
            "Content-Type": "application/json",
            SECRET_HEADER: request.headers.get(SECRET_HEADER, ""),
        }
        for _ in self.ports:
            port = next(self._turn)
            try:
                async with self._http.post(
                    f"http://127.0.0.1:{port}{self.path}", data=body, headers=headers
                ) as answer:
                    if 200 <= answer.status < 300:
                        self.accepted[port] += 1
                    return web.Response(status=answer.status, body=await answer.read())
            except aiohttp.ClientConnectionError:
                continue
        return web.Response(status=502, text="no instance answered")


@dataclass
class Instance:
    port: int
    process: asyncio.subprocess.Process
    lines: list[tuple[float, str]] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    def follow(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.lines.append((time.monotonic(), line.decode(errors="replace")))

    def led_at(self) -> float | None:
        return next((at for at, line in self.lines if LEADS in line), None)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.wait()
        if self._reader is not None:
            await self._reader


async def healthy(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as answer,
        ):
            return answer.status == 200
    except aiohttp.ClientError:
        return False


async def start_instance(env: dict[str, str], cwd: Path, started: list[Instance]) -> Instance:
    """A `carebot run` process, in `started` (to be stopped) before it is ready."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        CAREBOT,
        "run",
        env={**env, "HTTP_PORT": str(port)},
        cwd=cwd,
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    instance = Instance(port, process)
    started.append(instance)
    instance.follow()

    async def up() -> bool:
        return await healthy(port)

    # Generous: a cold start imports a lot, and the machine may be busy.
    await eventually(up, timeout=120)
    return instance


async def finished_runs(db: Database) -> list[JobRun]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(JobRun).where(JobRun.finished_at.is_not(None)).order_by(JobRun.id)
            )
        )


async def test_the_scheduler_moves_to_the_other_instance_when_its_leader_dies(
    tmp_path: Path, database_url: str
) -> None:
    policy = tmp_path / "carebot.toml"
    policy.write_text(POLICY, "utf-8")
    db = Database(database_url)
    path = "/telegram/hook"
    async with Emulator() as telegram:
        instances: list[Instance] = []
        balancer = RoundRobin(path)
        env = {
            **os.environ,
            "BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": telegram.base_url,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
            "WEBHOOK_URL": balancer.url,
            "WEBHOOK_SECRET": SECRET,
            "TIMEZONE": "UTC",
            "CAREBOT_POLICY": str(policy),
            "LOG_LEVEL": "INFO",
        }
        try:
            first = await start_instance(env, tmp_path, instances)

            async def first_leads() -> bool:
                return first.led_at() is not None

            await eventually(first_leads, timeout=30)
            second = await start_instance(env, tmp_path, instances)
            await balancer.start([first.port, second.port])

            players = [telegram.customer(8100 + n, f"P{n}", language_code="en") for n in range(6)]
            for player in players:
                player.reply_timeout = 15
                assert "Hello" in (await player.says("/start")).body
            assert balancer.accepted[first.port] > 0 and balancer.accepted[second.port] > 0
            celebrating = players[:3]
            async with db.transaction() as session:
                await session.execute(
                    update(Customer)
                    .where(Customer.telegram_id.in_([p.user_id for p in celebrating]))
                    .values(birthday=datetime.now(UTC).date())
                )

            async def first_ran_jobs() -> bool:
                return bool(await finished_runs(db))

            await eventually(first_ran_jobs, timeout=90)
            assert second.led_at() is None, "only one instance runs the scheduler"

            first.process.kill()
            await first.process.wait()
            killed = time.monotonic()
            killed_wall = datetime.now(UTC)

            async def second_leads() -> bool:
                return second.led_at() is not None

            await eventually(second_leads, timeout=60)
            led_at = second.led_at()
            assert led_at is not None
            takeover = led_at - killed
            print(f"scheduler taken over {takeover:.1f} s after the leader was killed")

            async def second_ran_jobs() -> bool:
                return any(run.started_at > killed_wall for run in await finished_runs(db))

            await eventually(second_ran_jobs, timeout=90)
            for player in players:
                assert "What I can do for you" in (await player.says("/help")).body

            async def greeted() -> bool:
                return all(
                    any("Happy birthday" in m.body for m in player.messages)
                    for player in celebrating
                )

            await eventually(greeted, timeout=30)
        finally:
            for instance in instances:
                await instance.stop()
            await balancer.close()

    runs = await finished_runs(db)
    per_minute = Counter((run.name, run.ran_for.replace(second=0, microsecond=0)) for run in runs)
    assert set(per_minute.values()) == {1}, per_minute
    for player in players:
        birthdays = [m for m in player.messages if "Happy birthday" in m.body]
        assert len(birthdays) == (1 if player in celebrating else 0)
    assert takeover < 60
    await db.close()
