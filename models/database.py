"""The async engine and session factory, with the settings each database needs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Dialect, Select, event, exc, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from models.points_watch import WATCHERS, PointsWatcher


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the sender and the update workers read while one of them writes; the busy
    # timeout makes a second writer wait instead of failing with "database is locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


# A pooled PostgreSQL connection unused for this long (seconds) is checked before use; one
# in steady use is not, as a check costs three round trips to the server on every checkout.
PING_AFTER_IDLE = 1.0
_RETURNED_AT = "carebot_returned_at"
POOL_SIZE = 30
# asyncpg waits 60 s for a connection by default; a server that drops packets instead of
# refusing them would hold every update that long before the customer hears an apology.
CONNECT_TIMEOUT = 5.0


def _note_return(_dbapi_connection: Any, record: Any) -> None:
    record.info[_RETURNED_AT] = time.monotonic()


def _without_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", "")
    if isinstance(value, tuple | list):
        return type(value)(_without_nul(v) for v in value)
    if isinstance(value, dict):
        return {k: _without_nul(v) for k, v in value.items()}
    return value


def _strip_nul(
    _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    """PostgreSQL's text cannot hold the NUL character, which a customer's message or name
    can carry: it is dropped from every parameter here, the one place all writes pass."""
    return statement, _without_nul(parameters)


# SQLite's page cache for a bulk load (2 MB unless set): it holds little of the indexes
# an import writes into all over, and reading pages back costs more than the writing.
BULK_CACHE_KIB = 131_072


async def _as_before_bulk(connection: AsyncConnection, cache_size: int) -> None:
    """The connection back to checking foreign keys, and to its own page cache, before
    the pool lends it again; one that cannot be told is closed rather than lent
    unchecked."""
    try:
        await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        await connection.exec_driver_sql(f"PRAGMA cache_size = {cache_size}")
        await connection.commit()
    except Exception:
        await connection.invalidate()
        raise


class Database:
    """One engine per process; services open a short transaction per unit of work."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        options: dict[str, Any] = {"echo": echo}
        # No overflow: an overflow connection is closed when it comes back while the pool
        # is full, and under load that meant opening one (several round trips and
        # more CPU than a query) every few updates. Past POOL_SIZE a session waits for a
        # connection instead; the bound per process is the same.
        # (An in-memory SQLite database lives in one connection: no pool to size.)
        if ":memory:" not in url:
            options.update(pool_size=POOL_SIZE, max_overflow=0)
        if url.startswith("postgresql+asyncpg"):
            options.update(connect_args={"timeout": CONNECT_TIMEOUT})
        self.engine: AsyncEngine = create_async_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            event.listen(self.engine.sync_engine, "checkin", _note_return)
            event.listen(self.engine.sync_engine, "checkout", self._ping_if_idle)
            event.listen(self.engine.sync_engine, "before_cursor_execute", _strip_nul, retval=True)
        self._points_watchers: list[PointsWatcher] = []
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, info={WATCHERS: self._points_watchers}
        )
        # PostgreSQL gives each statement its own snapshot under READ COMMITTED, inside a
        # transaction or not, so reads need no BEGIN and ROLLBACK: one round trip each
        # instead of three. SQLite starts no transaction for a read anyway.
        readers = self.engine
        if self.engine.dialect.name == "postgresql":
            readers = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._readers = readers
        self._read_sessions = async_sessionmaker(readers, expire_on_commit=False)
        self._fast: dict[Select[Any], _FastRead] = {}

    def _ping_if_idle(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """A connection that may have died while idle (the server restarted, say) is
        tried first; a dead one makes the pool replace every connection it holds."""
        returned = record.info.get(_RETURNED_AT)
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE:
            return
        try:
            alive = self.engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.InvalidatePoolError(str(error)) from error
        if not alive:
            raise exc.InvalidatePoolError("the connection did not answer")

    def watch_points(self, watcher: PointsWatcher) -> None:
        """`watcher` is told the customers whose purchases or points a transaction of this
        database wrote, once it has committed (see models.points_watch)."""
        self._points_watchers.append(watcher)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def bulk_transaction(self) -> AsyncIterator[AsyncSession]:
        """`transaction()` for a bulk load whose statements take every id they write from
        rows read inside it (the imports). On SQLite the rows' foreign keys are then not
        looked up one by one, a fifth of writing a purchase and its ledger line, and the
        page cache is BULK_CACHE_KIB; foreign keys can be switched only outside a
        transaction, so both are changed before the load's BEGIN and back after its
        COMMIT, on the load's own connection."""
        if self.dialect != "sqlite":
            async with self.transaction() as session:
                yield session
            return
        async with self.engine.connect() as connection:
            cache_size = (await connection.exec_driver_sql("PRAGMA cache_size")).scalar_one()
            await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await connection.exec_driver_sql(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
            await connection.commit()
            try:
                async with (
                    connection.begin(),
                    self.sessions(bind=connection) as session,
                    session.begin(),
                ):
                    yield session
            finally:
                await _as_before_bulk(connection, int(cache_size))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; nothing is committed. Each statement is on its own: to
        stream rows (`session.stream`), which PostgreSQL does only inside a transaction,
        or to lock them, use `transaction()`."""
        async with self._read_sessions() as session:
            yield session

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A bare connection for the reads made on every update: no session's
        bookkeeping (identity map, transaction state), which costs more than the query."""
        async with self._readers.connect() as connection:
            yield connection

    async def first_row(self, statement: Select[Any], **params: Any) -> dict[str, Any] | None:
        """The first row of a statement read on every update, by column name, the values
        as SQLAlchemy gives them; through the driver itself, as SQLAlchemy's execution
        path costs more than such a query (about 70 µs of CPU on PostgreSQL). The
        parameters go to the driver as given: numbers and plain keys."""
        fast = self._fast.get(statement)
        if fast is None:
            fast = self._fast[statement] = _FastRead(statement, self.engine.dialect)
        values = [params[name] for name in fast.names]
        async with self.reading() as connection:
            driver = (await connection.get_raw_connection()).driver_connection
            try:
                found = await fast.fetch(driver, values)
            except Exception:
                # Asked again the usual way, SQLAlchemy sees the error for itself: a lost
                # connection is then dropped with the pool's others, the error raised as
                # its own, and a passing one answered.
                row = (await connection.execute(statement, params)).first()
                return dict(row._mapping) if row is not None else None
        return fast.named(found) if found is not None else None

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()


class _FastRead:
    """A statement compiled once for the driver, with its columns' result processors (aware
    UTC times; on SQLite also dates and booleans), which turn the driver's values into
    SQLAlchemy's."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.names = list(compiled.positiontup or ())
        columns = list(statement.selected_columns)
        self.keys = [str(column.key) for column in columns]
        self.processors = [
            (index, process)
            for index, column in enumerate(columns)
            if (process := column.type.dialect_impl(dialect).result_processor(dialect, None))
        ]
        self.postgres = dialect.name == "postgresql"

    async def fetch(self, driver: Any, values: list[Any]) -> Sequence[Any] | None:
        if self.postgres:
            found: Sequence[Any] | None = await driver.fetchrow(self.sql, *values)
            return found
        async with driver.execute(self.sql, values) as cursor:
            row: Sequence[Any] | None = await cursor.fetchone()
            return row

    def named(self, found: Sequence[Any]) -> dict[str, Any]:
        values = list(found)
        for index, process in self.processors:
            values[index] = process(values[index])
        return dict(zip(self.keys, values, strict=True))
