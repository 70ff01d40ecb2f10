"""The sender: drains the outbox within Telegram's limits, once per message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from enum import Enum

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.keyboards import OptOut
from bot.locks import KeyedLocks
from bot.metrics import Metrics
from bot.rendering import Renderer
from services.customers import Customers
from services.outbox import Claimed, Outbox

log = logging.getLogger("carebot.sender")

# Telegram's limits for free messages: about 30 per second overall, one per second per chat.
DEFAULT_RATE = 30.0
PER_CHAT_INTERVAL = 1.0
RATE_LIMIT_RETRIES = 5


class Outcome(Enum):
    SENT = "sent"
    SETTLED = "settled"  # failed or skipped for good; nothing more to do
    RETRY = "retry"  # rate-limited: try again after the pause


class Sender:
    def __init__(
        self,
        bot: Bot,
        outbox: Outbox,
        customers: Customers,
        renderer: Renderer,
        metrics: Metrics,
        *,
        rate: float = DEFAULT_RATE,
        per_chat_interval: float = PER_CHAT_INTERVAL,
    ) -> None:
        self.bot = bot
        self.outbox = outbox
        self.customers = customers
        self.renderer = renderer
        self.metrics = metrics
        self.interval = 1.0 / rate
        self.per_chat_interval = per_chat_interval
        self.batch_size = max(1, int(rate))
        self._next_slot = 0.0
        self._chats = KeyedLocks()
        self._chat_last_sent: dict[int, float] = {}
        self._paused_until = 0.0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, *, poll: float = 1.0) -> None:
        while not stop.is_set():
            try:
                sent = await self.drain_once(stop)
            except Exception:
                log.exception("sender pass failed; retrying")
                sent = 0
            if sent == 0 and not stop.is_set():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll)

    async def drain_once(self, stop: asyncio.Event | None = None) -> int:
        """Send what is due now, batch by batch; how many messages were delivered."""
        delivered = 0
        while stop is None or not stop.is_set():
            batch = await self.outbox.claim(limit=self.batch_size)
            if not batch:
                break
            results = await asyncio.gather(*(self._paced(message) for message in batch))
            delivered += sum(results)
        return delivered

    async def _paced(self, message: Claimed) -> int:
        """One chat's messages go one after another, a chat interval apart; across chats
        they share the overall rate, so one busy chat never holds up the others."""
        async with self._chats.hold(message.chat_id):
            last = self._chat_last_sent.get(message.chat_id)
            if last is not None:
                wait = last + self.per_chat_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            for _ in range(RATE_LIMIT_RETRIES):
                await self._overall_slot()
                outcome = await self._send(message)
                if outcome is not Outcome.RETRY:
                    self._chat_last_sent[message.chat_id] = time.monotonic()
                    return int(outcome is Outcome.SENT)
            await self.outbox.postpone([message.id], self.outbox.clock.now())
            return 0

    async def _overall_slot(self) -> None:
        """Wait for this process's next sending slot, and out any 429 pause."""
        while True:
            now = time.monotonic()
            if self._paused_until > now:
                await asyncio.sleep(self._paused_until - now)
                continue
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            if slot > now:
                await asyncio.sleep(slot - now)
            if self._paused_until <= time.monotonic():
                return

    async def _send(self, message: Claimed) -> Outcome:
        if message.blocked_reason:
            await self.outbox.skipped(message.id, message.blocked_reason)
            return Outcome.SETTLED
        try:
            sent = await self.bot.send_message(
                message.chat_id, message.text, reply_markup=self._markup(message)
            )
        except TelegramRetryAfter as error:
            self._paused_until = max(self._paused_until, time.monotonic() + error.retry_after)
            log.warning("Telegram asks to wait %s s; pausing all sending", error.retry_after)
            return Outcome.RETRY
        except TelegramForbiddenError as error:
            await self._unreachable(message, error.message)
            return Outcome.SETTLED
        except TelegramBadRequest as error:
            if "chat not found" in error.message:
                await self._unreachable(message, error.message)
            else:
                log.error("outbox message %s refused: %s", message.id, error.message)
                await self.outbox.failed(message.id, error.message)
            return Outcome.SETTLED
        except (TelegramServerError, TelegramNetworkError, TimeoutError) as error:
            await self.outbox.retry_later(message.id, str(error), message.attempts)
            return Outcome.SETTLED
        await self.outbox.sent(message.id, sent.message_id)
        return Outcome.SENT

    async def _unreachable(self, message: Claimed, reason: str) -> None:
        await self.outbox.failed(message.id, reason)
        if message.customer_id is not None:
            await self.customers.mark_unreachable(message.customer_id)

    def _markup(self, message: Claimed) -> InlineKeyboardMarkup | None:
        """Every marketing message carries its own way out."""
        rows = []
        if message.reply_markup:
            rows = InlineKeyboardMarkup.model_validate(message.reply_markup).inline_keyboard
        if message.marketing:
            rows = [
                *rows,
                [
                    InlineKeyboardButton(
                        text=self.renderer.label("unsubscribe", message.locale),
                        callback_data=OptOut().pack(),
                    )
                ],
            ]
        return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
