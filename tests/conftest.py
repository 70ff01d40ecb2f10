"""Fixtures every test may use: a migrated database per test, a frozen clock, the policy.

The database is SQLite unless CAREBOT_TEST_DATABASE_URL names a PostgreSQL database
(`.ci/run` runs the suite on both); CAREBOT_TEST_REDIS_URL adds Redis FSM storage.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from models import Base
from models.database import Database
from models.schema import migrate
from services.clock import FrozenClock
from services.policy import Policy, load_policy

PG_URL = os.environ.get("CAREBOT_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("CAREBOT_TEST_REDIS_URL", "")
IN_CI = os.environ.get("CI") == "true"


def requires(service: str, available: bool) -> pytest.MarkDecorator:
    """Skip when a server is missing on a developer's machine; in CI that is a failure."""
    if not available and IN_CI:
        pytest.fail(f"{service} is required in CI but is not configured", pytrace=False)
    return pytest.mark.skipif(not available, reason=f"needs {service}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test: faster than migrating every time."""
    path = tmp_path_factory.mktemp("template") / "carebot.db"

    async def build() -> None:
        db = Database(f"sqlite+aiosqlite:///{path}")
        await migrate(db)
        async with db.engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        await db.close()

    asyncio.run(build())
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> Iterator[None]:
    if PG_URL:

        async def reset() -> None:
            db = Database(PG_URL)
            async with db.engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
            await migrate(db)
            await db.close()

        asyncio.run(reset())
    yield


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    if PG_URL:
        request.getfixturevalue("postgres_ready")

        async def truncate() -> None:
            db = Database(PG_URL)
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            async with db.engine.begin() as connection:
                await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await db.close()

        asyncio.run(truncate())
        yield PG_URL
        return
    path = tmp_path / "carebot.db"
    shutil.copy(sqlite_template, path)
    yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 5, 1, 2, 0, tzinfo=UTC))


@pytest.fixture
def policy() -> Policy:
    return load_policy(Path(__file__).parent / "data" / "policy-defaults.toml")
