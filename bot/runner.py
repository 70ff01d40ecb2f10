"""Feeds recorded updates to the Dispatcher: in order within a chat, in parallel across chats."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiogram import Bot, Dispatcher

from bot.inbox import Inbox, update_type
from bot.locks import KeyedLocks
from bot.metrics import Metrics

log = logging.getLogger("carebot.updates")


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
    ) -> None:
        self.dp = dp
        self.bot = bot
        self.inbox = inbox
        self.metrics = metrics
        self._slots = asyncio.Semaphore(concurrency)
        self._chats = KeyedLocks()
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, payloads: list[dict[str, Any]]) -> None:
        """Start handling recorded updates; returns at once. Locks are taken in the order
        of submission, and asyncio's locks wake waiters first come, first served."""
        for payload in payloads:
            task = asyncio.create_task(self._handle(payload))
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
        """Wait for every update in hand, for a clean shutdown."""
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
        try:
            await self.inbox.finish(update_id, failed=failed)
        except Exception:
            log.exception("update %s handled but not marked done", update_id)
        log.info(
            "update=%s type=%s ms=%.1f status=%s",
            update_id,
            kind,
            elapsed * 1000,
            "failed" if failed else "done",
        )
