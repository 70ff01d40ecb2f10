"""The customer's own profile edits: name, birthday and region, each checked strictly."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import update

from models import Customer
from models.database import Database
from services.clock import Clock, local_today

NAME_LIMIT = 64
REGION_LIMIT = 64
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
OLDEST_YEAR = 1900


class ProfileError(ValueError):
    """An edit refused; `reason` names why (format, no_such_day, future, too_old, empty,
    too_long)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_birthday(text: str, today: date) -> date:
    """A birthday written YYYY-MM-DD that exists on the calendar and is not in the future:
    "2026-02-31" is refused as a day that does not exist, not as a bad format."""
    match = _DATE.match(text.strip())
    if match is None:
        raise ProfileError("format")
    year, month, day = (int(part) for part in match.groups())
    try:
        born = date(year, month, day)
    except ValueError:
        raise ProfileError("no_such_day") from None
    if born > today:
        raise ProfileError("future")
    if year < OLDEST_YEAR:
        raise ProfileError("too_old")
    return born


def clean_line(text: str, limit: int) -> str:
    """One line of plain words: inner whitespace collapsed, within `limit` characters."""
    line = " ".join(text.split())
    if not line:
        raise ProfileError("empty")
    if len(line) > limit:
        raise ProfileError("too_long")
    return line


class Profile:
    def __init__(self, db: Database, clock: Clock, timezone: ZoneInfo) -> None:
        self.db = db
        self.clock = clock
        self.timezone = timezone

    async def set_name(self, customer_id: int, text: str) -> str:
        name = clean_line(text, NAME_LIMIT)
        await self._set(customer_id, name=name)
        return name

    async def set_birthday(self, customer_id: int, text: str) -> date:
        born = parse_birthday(text, local_today(self.clock, self.timezone))
        await self._set(customer_id, birthday=born)
        return born

    async def set_region(self, customer_id: int, text: str) -> str:
        region = clean_line(text, REGION_LIMIT)
        await self._set(customer_id, region=region)
        return region

    async def _set(self, customer_id: int, **values: object) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(Customer)
                .where(Customer.id == customer_id, Customer.erased_at.is_(None))
                .values(**values)
            )
