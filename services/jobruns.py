"""The record of scheduled job runs: when each ran, with what "now", what it did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from models import JobRun
from models.database import Database
from services.clock import Clock, SystemClock


@dataclass(frozen=True)
class LastRun:
    name: str
    ran_for: datetime
    started_at: datetime
    finished_at: datetime | None
    count: int | None
    error: str | None
    details: dict[str, Any] | None


def _last(row: JobRun) -> LastRun:
    return LastRun(
        row.name, row.ran_for, row.started_at, row.finished_at, row.count, row.error, row.details
    )


class JobRuns:
    """`wall` is the real clock: a run's "now" (`ran_for`) may be a pretend one."""

    def __init__(self, db: Database, wall: Clock | None = None) -> None:
        self.db = db
        self.wall = wall or SystemClock()

    async def started(self, name: str, ran_for: datetime) -> int:
        async with self.db.transaction() as session:
            row = JobRun(name=name, ran_for=ran_for, started_at=self.wall.now())
            session.add(row)
            await session.flush()
            return row.id

    async def finished(
        self,
        run_id: int,
        *,
        count: int | None = None,
        error: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        async with self.db.transaction() as session:
            row = await session.get(JobRun, run_id)
            if row is not None:
                row.finished_at = self.wall.now()
                row.count = count
                row.error = error[:255] if error else None
                row.details = details

    async def latest(self, name: str) -> LastRun | None:
        """The newest run of `name` that finished without error."""
        async with self.db.session() as session:
            row = await session.scalar(
                select(JobRun)
                .where(JobRun.name == name, JobRun.finished_at.is_not(None), JobRun.error.is_(None))
                .order_by(JobRun.ran_for.desc(), JobRun.id.desc())
                .limit(1)
            )
        return _last(row) if row is not None else None

    async def last_of_each(self) -> dict[str, LastRun]:
        """The most recent run of every job, finished or not, failed or not."""
        async with self.db.session() as session:
            newest = (
                select(JobRun.name, func.max(JobRun.id).label("id"))
                .group_by(JobRun.name)
                .subquery()
            )
            rows = await session.scalars(select(JobRun).join(newest, newest.c.id == JobRun.id))
            return {row.name: _last(row) for row in rows}
