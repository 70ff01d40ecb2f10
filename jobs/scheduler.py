"""The scheduler: APScheduler cron triggers in the business time zone, times from the
policy's [schedule], run by one instance at a time (see jobs/leader.py).

A new leader first catches up: a job whose latest scheduled time within CATCH_UP passed
without a run (the old leader died just then, or the bot was restarting) runs at once.
Every job is safe to run twice — what it enqueues is keyed — so a catch-up never doubles
a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from jobs.context import JobContext
from jobs.leader import Leader
from jobs.tasks import JOBS, run_job
from services.policy import Policy, When

log = logging.getLogger("carebot.jobs")

# A follower tries to take the lead this often; a leader checks it still holds it.
RETRY_SECONDS = 15.0
CHECK_SECONDS = 10.0
CATCH_UP = timedelta(hours=6)
# A run late by less than this (a busy event loop) still runs.
MISFIRE_GRACE_SECONDS = 600


def trigger_for(when: When, zone: ZoneInfo) -> CronTrigger:
    if when.every_minutes is not None:
        return CronTrigger(minute=f"*/{when.every_minutes}", timezone=zone)
    return CronTrigger(
        day_of_week=when.weekday or "*", hour=when.hour, minute=when.minute, timezone=zone
    )


def triggers(policy: Policy, zone: ZoneInfo) -> dict[str, CronTrigger]:
    """The trigger of every scheduled job."""
    return {
        name: trigger_for(policy.schedule.when(name), zone)
        for name, job in JOBS.items()
        if job.scheduled
    }


def next_runs(policy: Policy, zone: ZoneInfo, now: datetime) -> dict[str, datetime | None]:
    return {
        name: trigger.get_next_fire_time(None, now)
        for name, trigger in triggers(policy, zone).items()
    }


def last_due(trigger: CronTrigger, now: datetime, horizon: timedelta) -> datetime | None:
    """The latest time the trigger fired within `horizon` before `now`, if any."""
    latest = None
    fire = trigger.get_next_fire_time(None, now - horizon)
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return latest


class Scheduler:
    """Runs the jobs while this instance leads; tries to lead until stopped."""

    def __init__(
        self,
        ctx: JobContext,
        leader: Leader,
        *,
        jobs: Iterable[str] | None = None,
        retry: float = RETRY_SECONDS,
        check: float = CHECK_SECONDS,
    ) -> None:
        self.ctx = ctx
        self.leader = leader
        every = triggers(ctx.policy, ctx.zone)
        self.triggers = {n: every[n] for n in (every if jobs is None else jobs)}
        self.retry = retry
        self.check = check
        self.leading = False
        self._aps: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.leading = await self.leader.acquire()
                except Exception as error:
                    log.warning("cannot reach the scheduler lock: %s", error)
                    self.leading = False
                if self.leading:
                    await self._lead(stop)
                else:
                    await _sleep(stop, self.retry)
        finally:
            self.leading = False
            await self.leader.close()
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _lead(self, stop: asyncio.Event) -> None:
        log.info("this instance runs the scheduler")
        self._aps = AsyncIOScheduler(timezone=self.ctx.zone)
        for name, trigger in self.triggers.items():
            self._aps.add_job(
                self._fire,
                trigger,
                args=[name],
                id=name,
                name=name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=MISFIRE_GRACE_SECONDS,
            )
        self._aps.start()
        try:
            await self._catch_up()
            while not stop.is_set():
                await _sleep(stop, self.check)
                if not stop.is_set() and not await self.leader.held():
                    log.warning("no longer the scheduler's leader; stepping down")
                    break
        finally:
            self.leading = False
            self._aps.shutdown(wait=False)
            self._aps = None
            await self.leader.release()

    async def _catch_up(self) -> None:
        now = self.ctx.clock.now()
        for name, trigger in self.triggers.items():
            due = last_due(trigger, now, CATCH_UP)
            if due is None:
                continue
            last = await self.ctx.runs.latest(name)
            if last is None or last.ran_for < due:
                log.info("job %s was due at %s and did not run: running it now", name, due)
                task = asyncio.create_task(self._fire(name))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _fire(self, name: str) -> None:
        try:
            await run_job(self.ctx, name)
        except Exception:
            log.exception("job %s failed", name)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
