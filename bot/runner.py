"""Feeds recorded updates to the Dispatcher: in order within a chat, in parallel across chats."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiogram import Bot, Dispatcher

from bot.inbox import Inbox, update_type
from bot.locks import KeyedLocks
from bot.metrics import Metrics

log = logging.getLogger("carebot.updates")

# Handled updates are marked done together, one write per this many seconds instead of one
# per update. A crash in that window leaves them pending, and the next start handles them
# again: at least once, as for a crash during handling.
FINISH_EVERY = 0.02
# Pauses between attempts to write the marks while the database is away. Bounded, so that a
# shutdown with the database down does not wait for ever: marks still unwritten then leave
# their updates pending, to be handled again at the next start.
FINISH_RETRIES = (0.5, 1.0, 2.0, 4.0, 5.0)


def chat_key(payload: dict[str, Any]) -> int | None:
    """The chat an update belongs to, so one customer's messages are handled in order."""
    for key, body in payload.items():
        if not isinstance(body, dict):
            continue
        chat = body.get("chat") or (body.get("message") or {}).get("chat")
        if isinstance(chat, dict) and "id" in chat:
            return int(chat["id"])
        sender = body.get("from")
        if isinstance(sender, dict) and "id" in sender and key != "update_id":
            return int(sender["id"])
    return None


class Runner:
    def __init__(
        self,
        dp: Dispatcher,
        bot: Bot,
        inbox: Inbox,
        metrics: Metrics,
        *,
        concurrency: int = 64,
        finish_every: float = FINISH_EVERY,
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.inbox = inbox
        self.metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._chats = KeyedLocks()
        self._tasks: set[asyncio.Task[None]] = set()
        self._finish_every = finish_every
        self._handled: list[tuple[int, str | None]] = []
        self._finishing = False

    def submit(self, payloads: list[dict[str, Any]]) -> None:
        """Start handling recorded updates; returns at once. Locks are taken in the order
        of submission, and asyncio's locks wake waiters first come, first served."""
        for payload in payloads:
            self._track(self._handle(payload))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self) -> int:
        """Hand over what a previous run recorded but did not finish."""
        left = await self.inbox.pending()
        if left:
            log.info("resuming %d update(s) recorded before the last stop", len(left))
            self.submit(left)
        return len(left)

    async def drain(self) -> None:
        """Wait for every update in hand, and for their marks, for a clean shutdown."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _handle(self, payload: dict[str, Any]) -> None:
        async with self._chats.hold(chat_key(payload)), self._slots:
            await self._feed(payload)

    async def _feed(self, payload: dict[str, Any]) -> None:
        kind = update_type(payload)
        update_id = payload["update_id"]
        started = time.perf_counter()
        failed: str | None = None
        try:
            await self.dp.feed_raw_update(self.bot, payload)
        except Exception as error:
            # Only reaches here when the error handler itself failed.
            failed = type(error).__name__
            self.metrics.errors.labels(kind).inc()
            log.exception("update %s (%s) was not handled", update_id, kind)
        elapsed = time.perf_counter() - started
        self.metrics.updates.labels(kind).inc()
        self.metrics.latency.observe(elapsed)
        self._handled.append((update_id, failed))
        if not self._finishing:
            self._finishing = True
            self._track(self._finish_soon())
        log.info(
            "update=%s type=%s ms=%.1f status=%s",
            update_id,
            kind,
            elapsed * 1000,
            "failed" if failed else "done",
        )

    async def _finish_soon(self) -> None:
        await asyncio.sleep(self._finish_every)
        handled, self._handled = self._handled, []
        self._finishing = False
        for pause in (*FINISH_RETRIES, None):
            try:
                await self.inbox.finish(handled)
                return
            except Exception as error:
                if pause is None:
                    log.error(
                        "%d update(s) handled but not marked done (%s); the next start "
                        "handles them again",
                        len(handled),
                        type(error).__name__,
                    )
                    return
                log.warning(
                    "could not mark %d update(s) done (%s); trying again in %.1f s",
                    len(handled),
                    type(error).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
