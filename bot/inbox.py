"""The inbox table: every update is written here before Telegram is told it arrived."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models import InboxStatus, InboxUpdate
from models.database import Database
from services.clock import Clock

_NOT_TYPES = {"update_id"}


def update_type(payload: dict[str, Any]) -> str:
    return next((key for key in payload if key not in _NOT_TYPES), "unknown")


class Inbox:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def store(self, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Record a batch; the updates not seen before, in order. A redelivered update is
        left out, so it is handled once however often Telegram sends it."""
        if not payloads:
            return []
        now = self.clock.now()
        rows = [
            {
                "update_id": p["update_id"],
                "payload": p,
                "update_type": update_type(p)[:32],
                "status": InboxStatus.PENDING,
                "received_at": now,
            }
            for p in payloads
        ]
        insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(InboxUpdate)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["update_id"])
            .returning(InboxUpdate.update_id)
        )
        async with self.db.transaction() as session:
            fresh = set((await session.scalars(statement)).all())
        return [p for p in payloads if p["update_id"] in fresh]

    async def pending(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Updates received but not handled: what a crash left behind."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(InboxUpdate.payload)
                .where(InboxUpdate.status == InboxStatus.PENDING)
                .order_by(InboxUpdate.update_id)
                .limit(limit)
            )
            return list(rows.all())

    async def finish(self, handled: Sequence[tuple[int, str | None]]) -> None:
        """Mark handled updates done, or failed with the error's name, in one transaction."""
        now = self.clock.now()
        done = [update_id for update_id, failed in handled if failed is None]
        async with self.db.transaction() as session:
            if done:
                await session.execute(
                    update(InboxUpdate)
                    .where(InboxUpdate.update_id.in_(done))
                    .values(status=InboxStatus.DONE, error=None, handled_at=now)
                )
            for update_id, failed in handled:
                if failed is not None:
                    await session.execute(
                        update(InboxUpdate)
                        .where(InboxUpdate.update_id == update_id)
                        .values(status=InboxStatus.FAILED, error=failed[:255], handled_at=now)
                    )

    async def count_pending(self) -> int:
        async with self.db.session() as session:
            count = await session.scalar(
                select(func.count()).where(InboxUpdate.status == InboxStatus.PENDING)
            )
        return int(count or 0)
