"""The sender: drains the outbox within Telegram's limits, once per message.

Several senders may drain one PostgreSQL outbox (each row is claimed by one of them); the
pace they keep together comes from a `Pacer` (shared through Redis when configured). See
services/outbox.py for what a crash can and cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import Enum

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.keyboards import OptOut
from bot.locks import KeyedLocks
from bot.metrics import Metrics
from bot.pacing import LocalPacer, Pacer, RedisPacer
from bot.rendering import Renderer
from services.customers import Customers
from services.outbox import Claimed, Outbox
from services.policy import Sending

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
        paid_broadcast: bool = False,
        pacer: Pacer | None = None,
    ) -> None:
        self.bot = bot
        self.outbox = outbox
        self.customers = customers
        self.renderer = renderer
        self.metrics = metrics
        self.paid_broadcast = paid_broadcast
        self.pacer = pacer or LocalPacer(rate, per_chat_interval)
        # A batch is about a second's worth of messages, so that claimed rows do not wait
        # long (another instance may be free to send them).
        self.batch_size = max(1, min(int(rate), 500))
        self._chats = KeyedLocks()
        self._wake = asyncio.Event()

    @classmethod
    def for_policy(
        cls,
        bot: Bot,
        outbox: Outbox,
        customers: Customers,
        renderer: Renderer,
        metrics: Metrics,
        sending: Sending,
        redis_url: str | None,
    ) -> Sender:
        """A sender at the policy's pace, shared with every instance through Redis when
        REDIS_URL is set."""
        pacer = (
            RedisPacer(redis_url, bot.id, sending.rate, sending.per_chat_seconds)
            if redis_url
            else None
        )
        return cls(
            bot,
            outbox,
            customers,
            renderer,
            metrics,
            rate=sending.rate,
            per_chat_interval=sending.per_chat_seconds,
            paid_broadcast=sending.allow_paid_broadcast,
            pacer=pacer,
        )

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
            if message.blocked_reason:
                await self.outbox.skipped(message.id, message.blocked_reason)
                return 0
            for _ in range(RATE_LIMIT_RETRIES):
                await self.pacer.wait(message.chat_id)
                if not await self.outbox.take(message):
                    return 0
                outcome = await self._send(message)
                if outcome is not Outcome.RETRY:
                    return int(outcome is Outcome.SENT)
            await self.outbox.postpone([message.id], self.outbox.clock.now())
            return 0

    async def _deliver(self, message: Claimed) -> Message:
        paid = True if self.paid_broadcast else None
        if message.photo is not None:
            return await self.bot.send_photo(
                message.chat_id,
                BufferedInputFile(message.photo, filename=f"{message.kind or 'image'}.png"),
                caption=message.text or None,
                reply_markup=self._markup(message),
                allow_paid_broadcast=paid,
            )
        return await self.bot.send_message(
            message.chat_id,
            message.text,
            reply_markup=self._markup(message),
            allow_paid_broadcast=paid,
        )

    async def _send(self, message: Claimed) -> Outcome:
        try:
            sent = await self._deliver(message)
        except TelegramRetryAfter as error:
            await self.pacer.pause(error.retry_after)
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
