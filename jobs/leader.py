"""Which instance runs the scheduler: one at a time, another taking over when it dies.

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection held for as
  long as the instance leads. PostgreSQL releases it when that connection ends, so a
  leader killed outright frees it as soon as its connection drops.
- Redis (when REDIS_URL is set): a key with a random token and a time to live, renewed
  while leading; a dead leader's key expires after `ttl` seconds.
- SQLite: one process owns the file, so it always leads.

A follower tries again every few seconds (see jobs/scheduler.py), so a new leader takes
over well within a minute.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from models.database import Database

log = logging.getLogger("carebot.jobs")

# "carebot" in ASCII: the advisory lock the scheduler's leader holds.
LOCK_KEY = int.from_bytes(b"carebot", "big")
PING_TIMEOUT = 5.0


class Leader(Protocol):
    async def acquire(self) -> bool:
        """Try to become the leader; whether this instance leads now."""
        ...

    async def held(self) -> bool:
        """Whether this instance still leads (renewing the lead where it expires)."""
        ...

    async def release(self) -> None: ...

    async def close(self) -> None: ...


class AlwaysLeader:
    """SQLite: a single process, always the leader."""

    async def acquire(self) -> bool:
        return True

    async def held(self) -> bool:
        return True

    async def release(self) -> None:
        return None

    async def close(self) -> None:
        return None


class PostgresLeader:
    def __init__(self, db: Database, key: int = LOCK_KEY) -> None:
        self.db = db
        self.key = key
        self._connection: AsyncConnection | None = None

    async def acquire(self) -> bool:
        if self._connection is not None:
            return await self.held()
        connection = await self.db.engine.connect()
        try:
            # Autocommit: a connection held for hours must not sit in an open transaction.
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            got = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            )
        except BaseException:
            await connection.close()
            raise
        if not got:
            await connection.close()
            return False
        self._connection = connection
        return True

    async def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                await self._connection.scalar(text("SELECT 1"))
        except Exception as error:
            log.warning("lost the scheduler lock's connection: %s", error)
            await self._drop()
            return False
        return True

    async def release(self) -> None:
        if self._connection is None:
            return
        try:
            await self._connection.scalar(
                text("SELECT pg_advisory_unlock(:key)"), {"key": self.key}
            )
        except Exception as error:
            log.warning("could not unlock the scheduler lock: %s", error)
        await self._drop()

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                await connection.invalidate()
            except Exception as error:
                log.debug("closing the scheduler lock's connection: %s", error)

    async def close(self) -> None:
        await self.release()


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeader:
    def __init__(self, redis_url: str, *, key: str = "carebot:scheduler", ttl: float = 30.0):
        from redis.asyncio import Redis

        self.redis: Any = Redis.from_url(redis_url)
        self.key = key
        self.ttl_ms = int(ttl * 1000)
        self.token = secrets.token_hex(16)
        self._leading = False
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        if self._leading:
            return await self.held()
        self._leading = bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self._leading

    async def held(self) -> bool:
        if not self._leading:
            return False
        try:
            self._leading = bool(await self._renew([self.key], [self.token, self.ttl_ms]))
        except Exception as error:
            log.warning("could not renew the scheduler lock: %s", error)
            self._leading = False
        return self._leading

    async def release(self) -> None:
        if self._leading:
            self._leading = False
            try:
                await self._release([self.key], [self.token])
            except Exception as error:
                log.warning("could not release the scheduler lock: %s", error)

    async def close(self) -> None:
        await self.release()
        await self.redis.aclose()


def leader_for(db: Database, redis_url: str | None, scope: str = "") -> Leader:
    """Redis when configured, else PostgreSQL's advisory lock, else (SQLite) always.
    `scope` (the bot's id) keeps two bots sharing one Redis server apart."""
    if redis_url:
        return RedisLeader(redis_url, key=f"carebot:{scope}:scheduler")
    if db.dialect == "postgresql":
        return PostgresLeader(db)
    return AlwaysLeader()
