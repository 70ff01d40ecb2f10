"""What every benchmark starts from: the `carebot` command of this environment, and a
database at the newest revision with nothing in it."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import text

from models.database import Database
from models.schema import migrate


def carebot_command() -> str:
    return str(Path(sys.executable).with_name("carebot"))


async def empty_postgres(url: str) -> None:
    """Drop everything in the public schema: give a benchmark a database kept for it."""
    db = Database(url)
    try:
        async with db.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await db.close()


async def fresh_database(url: str) -> None:
    """An empty database at the newest revision, so every run starts from the same state
    (a SQLite URL is expected to name a new file)."""
    if url.startswith("postgresql"):
        await empty_postgres(url)
    db = Database(url)
    try:
        await migrate(db)
    finally:
        await db.close()
