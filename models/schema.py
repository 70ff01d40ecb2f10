"""The schema's version: upgrade a database to the newest migration, or tell it is behind."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from models.database import Database


class SchemaOutdated(Exception):
    """The database is not at the newest migration; `carebot migrate` brings it there."""


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("migrations")))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revision"
    return head


async def current_revision(db: Database) -> str | None:
    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with db.engine.connect() as connection:
        return await connection.run_sync(read)


async def migrate(db: Database, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or with `down`, downgrade) the database in one transaction per run."""
    config = alembic_config()

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)

    async with db.engine.begin() as connection:
        await connection.run_sync(run)


async def require_current(db: Database) -> None:
    current, head = await current_revision(db), head_revision()
    if current != head:
        found = f"at revision {current}" if current else "empty"
        raise SchemaOutdated(
            f"the database is {found}, the code needs revision {head}: run `carebot migrate`"
        )
