"""Long polling that confirms an update to Telegram only after the inbox holds it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramConflictError, TelegramNetworkError, TelegramServerError
from aiogram.methods import GetUpdates, TelegramMethod

from bot.apology import OutageApology
from bot.inbox import Inbox
from bot.runner import Runner

log = logging.getLogger("carebot.polling")

# While the inbox cannot be written the same batch is fetched again after this pause,
# doubling up to STORE_BACKOFF_MAX: short enough that the bot answers within seconds of
# the database coming back, and a failed attempt costs one refused connection.
STORE_BACKOFF = 0.5
STORE_BACKOFF_MAX = 5.0


class GetUpdatesAsSent(TelegramMethod[list[dict[str, Any]]]):
    """getUpdates with each update left as the JSON Telegram sent: the inbox stores it as
    it is, and the Dispatcher parses it once, instead of aiogram parsing every update here,
    the inbox dumping it back to JSON and the Dispatcher parsing it again."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


async def poll(
    bot: Bot,
    inbox: Inbox,
    runner: Runner,
    allowed_updates: list[str],
    stop: asyncio.Event,
    apologize: OutageApology,
    *,
    timeout: int = 25,
) -> None:
    """aiogram's own polling moves the offset as soon as updates arrive; here the next
    offset (which makes Telegram forget earlier updates) is sent only after they are
    written, so a crash in between means Telegram delivers them again. While they cannot
    be written (the database is down) the offset stays where it is, the customers get an
    apology, and the same batch is fetched again until it is written."""
    offset: int | None = None
    backoff = 1.0
    store_backoff = STORE_BACKOFF
    while not stop.is_set():
        request = GetUpdatesAsSent(offset=offset, timeout=timeout, allowed_updates=allowed_updates)
        fetch = asyncio.ensure_future(bot(request, request_timeout=timeout + 10))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not fetch.done():
            fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)
            break
        stopping.cancel()
        try:
            payloads = fetch.result()
        except TelegramConflictError as error:
            log.error("another poller or a webhook holds this bot token: %s", error.message)
            await _pause(stop, 5.0)
            continue
        except (TelegramNetworkError, TelegramServerError, TimeoutError) as error:
            log.warning("getUpdates failed (%s); retrying in %.0f s", error, backoff)
            await _pause(stop, backoff)
            backoff = min(backoff * 2, 30.0)
            continue
        backoff = 1.0
        if not payloads:
            continue
        try:
            fresh = await inbox.store(payloads)
        except Exception as error:
            # The error's name only: its text can hold the statement's parameters, which
            # are the customers' messages.
            log.warning(
                "could not record %d update(s) (%s); asking again in %.1f s",
                len(payloads),
                type(error).__name__,
                store_backoff,
            )
            await apologize(payloads)
            await _pause(stop, store_backoff)
            store_backoff = min(store_backoff * 2, STORE_BACKOFF_MAX)
            continue
        store_backoff = STORE_BACKOFF
        runner.submit(fresh)
        offset = payloads[-1]["update_id"] + 1
    if offset is not None:
        # Confirm the last batch, or the next start would be sent it again.
        try:
            await bot(GetUpdates(offset=offset, timeout=0, limit=1))
        except Exception:
            log.info("could not confirm the last batch; it is in the inbox and runs once")


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
