"""Every migration goes up, down and up again, on the test database's engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

from models import Base
from models.database import Database
from models.schema import alembic_config, current_revision, head_revision, migrate
from tests.conftest import PG_URL

REVISIONS = [
    script.revision
    for script in reversed(list(ScriptDirectory.from_config(alembic_config()).walk_revisions()))
]


@pytest.fixture
async def empty_db(tmp_path: Path) -> AsyncIterator[Database]:
    if not PG_URL:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'stairway.db'}")
        yield database
        await database.close()
        return
    # A schema of its own, so the shared test schema stays migrated meanwhile.
    admin = Database(PG_URL)
    async with admin.engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS stairway CASCADE"))
        await connection.execute(text("CREATE SCHEMA stairway"))
    database = Database(PG_URL)
    await database.engine.dispose()
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    database.engine = create_async_engine(
        PG_URL, connect_args={"server_settings": {"search_path": "stairway"}}
    )
    database.sessions = async_sessionmaker(database.engine, expire_on_commit=False)
    yield database
    await database.close()
    async with admin.engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA stairway CASCADE"))
    await admin.close()


@pytest.mark.parametrize("revision", REVISIONS)
async def test_each_revision_goes_up_down_and_up(empty_db: Database, revision: str) -> None:
    index = REVISIONS.index(revision)
    previous = REVISIONS[index - 1] if index else "base"
    if index:
        await migrate(empty_db, previous)
    await migrate(empty_db, revision)
    await migrate(empty_db, previous, down=True)
    assert await current_revision(empty_db) == (None if previous == "base" else previous)
    await migrate(empty_db, revision)
    assert await current_revision(empty_db) == revision


async def test_the_migrations_build_exactly_the_models(empty_db: Database) -> None:
    await migrate(empty_db)
    assert await current_revision(empty_db) == head_revision()

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with empty_db.engine.connect() as connection:
        assert await connection.run_sync(differences) == []
