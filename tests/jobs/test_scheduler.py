"""The scheduler: one instance leads (PostgreSQL advisory lock, or Redis), another takes
over when it stops or dies, and a new leader runs a job whose time passed without a run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select, text

from jobs.leader import LOCK_KEY, AlwaysLeader, PostgresLeader, RedisLeader
from jobs.scheduler import Scheduler, last_due, trigger_for
from models import JobRun
from models.database import Database
from services.clock import FrozenClock
from services.policy import Policy, parse_when
from tests.conftest import PG_URL, REDIS_URL
from tests.e2e.helpers import eventually
from tests.services.outreach_helpers import ZONE, Shop, local, shop

FAST = {"retry": 0.05, "check": 0.05}


@pytest.fixture
def care(db: Database, policy: Policy, clock: FrozenClock) -> Shop:
    clock.set(local("2026-05-01 10:00"))
    return shop(db, policy, clock)


class Running:
    """Schedulers started in the background, stopped at the end of the test."""

    def __init__(self) -> None:
        self.tasks: dict[Scheduler, tuple[asyncio.Event, asyncio.Task[None]]] = {}

    def start(self, scheduler: Scheduler) -> Scheduler:
        stop = asyncio.Event()
        self.tasks[scheduler] = (stop, asyncio.create_task(scheduler.run(stop)))
        return scheduler

    async def stop(self, scheduler: Scheduler) -> None:
        stop, task = self.tasks.pop(scheduler)
        stop.set()
        await task


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    schedulers = Running()
    yield schedulers
    for scheduler in list(schedulers.tasks):
        await schedulers.stop(scheduler)


async def one_leads(*schedulers: Scheduler) -> Scheduler:
    async def settled() -> bool:
        return sum(s.leading for s in schedulers) == 1

    await eventually(settled)
    return next(s for s in schedulers if s.leading)


@pytest.mark.skipif(not PG_URL, reason="the advisory lock is PostgreSQL's; SQLite is one process")
async def test_one_instance_leads_and_another_takes_over_when_it_stops(
    care: Shop, running: Running
) -> None:
    instances = [Database(PG_URL) for _ in range(2)]
    first, second = (
        running.start(Scheduler(care.jobs, PostgresLeader(db), jobs=[], **FAST)) for db in instances
    )
    leader = await one_leads(first, second)
    for _ in range(10):
        await asyncio.sleep(FAST["check"])
        assert sum(s.leading for s in (first, second)) == 1
    await running.stop(leader)
    follower = second if leader is first else first
    await eventually(lambda: _true(follower.leading))
    for db in instances:
        await db.close()


@pytest.mark.skipif(not PG_URL, reason="the advisory lock is PostgreSQL's; SQLite is one process")
async def test_a_dead_leaders_lock_is_freed_with_its_connection(
    care: Shop, running: Running
) -> None:
    dead_db, live_db = Database(PG_URL), Database(PG_URL)
    dead = PostgresLeader(dead_db)
    assert await dead.acquire()
    follower = running.start(Scheduler(care.jobs, PostgresLeader(live_db), jobs=[], **FAST))
    await asyncio.sleep(0.3)
    assert not follower.leading
    async with care.db.engine.connect() as connection:
        # The connection holding this database's scheduler lock goes, as a killed process's.
        await connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND classid = :high AND objid = :low AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
            {"high": LOCK_KEY >> 32, "low": LOCK_KEY & 0xFFFFFFFF},
        )
    await eventually(lambda: _true(follower.leading))
    assert not await dead.held()
    await dead.close()
    await dead_db.close()
    await running.stop(follower)
    await live_db.close()


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")
async def test_with_redis_a_dead_leaders_key_expires_and_another_takes_over(
    care: Shop, running: Running
) -> None:
    key = "carebot:test:scheduler"
    dead = RedisLeader(REDIS_URL, key=key, ttl=0.5)
    await dead.redis.delete(key)
    assert await dead.acquire()
    first, second = (
        running.start(
            Scheduler(care.jobs, RedisLeader(REDIS_URL, key=key, ttl=0.5), jobs=[], **FAST)
        )
        for _ in range(2)
    )
    await asyncio.sleep(0.2)
    assert not (first.leading or second.leading)
    leader = await one_leads(first, second)  # the dead one stopped renewing: its key expired
    assert not await dead.held()
    await dead.redis.aclose()
    await running.stop(leader)
    follower = second if leader is first else first
    await eventually(lambda: _true(follower.leading))


async def test_a_new_leader_runs_a_job_whose_time_passed_without_a_run(
    care: Shop, running: Running, db: Database
) -> None:
    await care.customer("Ann", birthday=date(1990, 5, 1))
    scheduler = running.start(Scheduler(care.jobs, AlwaysLeader(), jobs=["birthdays"], **FAST))

    async def greeted() -> bool:
        finished = await care.jobs.runs.latest("birthdays")
        return finished is not None and bool(await care.keys("birthday"))

    await eventually(greeted)
    await running.stop(scheduler)
    again = running.start(Scheduler(care.jobs, AlwaysLeader(), jobs=["birthdays"], **FAST))
    await eventually(lambda: _true(again.leading))
    await asyncio.sleep(0.2)
    assert await runs(db) == 1


async def runs(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count(JobRun.id))) or 0)


async def _true(value: bool) -> bool:
    return value


def test_the_latest_due_time_within_the_horizon() -> None:
    daily = trigger_for(parse_when("09:00"), ZONE)
    weekly = trigger_for(parse_when("mon 09:00"), ZONE)
    every = trigger_for(parse_when("every 5 minutes"), ZONE)
    now = local("2026-05-04 10:02")  # a Monday
    assert last_due(daily, now, timedelta(hours=6)) == local("2026-05-04 09:00")
    assert last_due(weekly, now, timedelta(hours=6)) == local("2026-05-04 09:00")
    assert last_due(every, now, timedelta(hours=6)) == local("2026-05-04 10:00")
    assert last_due(daily, local("2026-05-04 08:00"), timedelta(hours=6)) is None
