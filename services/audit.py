"""The audit log: who changed what and when, with the state before and after."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import AuditEntry
from models.database import Database


def jsonable(value: Any) -> Any:
    """Decimals, dates and enums as JSON-friendly values, recursively."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def record_audit(
    session: AsyncSession,
    *,
    at: datetime,
    actor: int | None,
    action: str,
    target_type: str | None = None,
    target_id: object = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add an entry to the caller's transaction, so it commits with the change it records.
    `actor` is the staff member's Telegram id; None for the command line, and for a
    customer's own erasure (kept without their Telegram id)."""
    entry = AuditEntry(
        actor_telegram_id=actor,
        action=action[:64],
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:64],
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        created_at=at,
    )
    session.add(entry)
    return entry


class Audit:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def latest(self, limit: int = 20) -> list[AuditEntry]:
        """The newest entries first."""
        async with self.db.session() as session:
            return list(
                await session.scalars(
                    select(AuditEntry)
                    .order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
                    .limit(limit)
                )
            )
