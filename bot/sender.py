"""The sender: drains the outbox within Telegram's limits, once per message.

Several senders may drain one PostgreSQL outbox (each row is claimed by one of them); the
pace they keep together comes from a `Pacer` (shared through Redis when configured). See
services/outbox.py for what a crash can and cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
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
from services.outbox import Claimed, Outbox, Outgoing
from services.policy import Sending

log = logging.getLogger("carebot.sender")

# Telegram's limits for free messages: about 30 per second overall, one per second per chat.
DEFAULT_RATE = 30.0
PER_CHAT_INTERVAL = 1.0
RATE_LIMIT_RETRIES = 5
# Messages in hand at most, in batches: past their slot, those whose requests are slow
# (Telegram taking long to answer) still count, so a stall cannot claim without end.
IN_HAND_BATCHES = 4
# Messages between their claim check and being marked sent, at most: a tenth of a
# second's worth. A process killed can double only those (Telegram may have taken them),
# so when the database is slow to mark them the sending waits instead of the window
# growing.
IN_FLIGHT_SECONDS = 0.1


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
        staff_chat_id: int | None = None,
        staff_locale: str = "zh",
    ) -> None:
        self.bot = bot
        self.outbox = outbox
        self.customers = customers
        self.renderer = renderer
        self.metrics = metrics
        self.paid_broadcast = paid_broadcast
        self.pacer = pacer or LocalPacer(rate, per_chat_interval)
        self.staff_chat_id = staff_chat_id
        self.staff_locale = staff_locale
        # A batch is about a second's worth of messages, so that claimed rows do not wait
        # long (another instance may be free to send them).
        self.batch_size = max(1, min(int(rate), 500))
        self._chats = KeyedLocks()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[int]] = set()
        self._in_hand: set[int] = set()
        # Messages claimed and not yet past their slot, and a signal when one gets past.
        self._waiting = 0
        self._progress = asyncio.Event()
        self.in_flight = max(2, math.ceil(rate * IN_FLIGHT_SECONDS))
        self._flight = asyncio.Semaphore(self.in_flight)

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
        *,
        staff_chat_id: int | None = None,
        staff_locale: str = "zh",
    ) -> Sender:
        """A sender at the policy's pace, shared with every instance through Redis when
        REDIS_URL is set; messages Telegram refuses are reported in the staff group."""
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
            staff_chat_id=staff_chat_id,
            staff_locale=staff_locale,
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
        """Send what is due now; how many messages were delivered.

        Messages are claimed a batch at a time, and the next batch is claimed as soon as
        fewer than half a batch wait for their slots, so the pacer never runs dry: no slot
        is lost to the claim's round trip, nor to messages whose requests or database
        updates are slow once past their slot."""
        delivered = 0
        flying: set[asyncio.Task[int]] = set()
        more = True
        while flying or more:
            stopping = stop is not None and stop.is_set()
            room = self.batch_size * IN_HAND_BATCHES - len(flying)
            if more and not stopping and self._waiting <= self.batch_size // 2 and room > 0:
                limit = min(self.batch_size - self._waiting, room)
                batch = await self.outbox.claim(limit=limit, busy=self._in_hand)
                more = len(batch) == limit
                flying.update(self._start(message) for message in batch)
                if not flying:
                    break
            elif stopping:
                more = False
            self._progress.clear()
            progress = asyncio.create_task(self._progress.wait())
            done, _ = await asyncio.wait({*flying, progress}, return_when=asyncio.FIRST_COMPLETED)
            progress.cancel()
            for task in done & flying:
                if task.exception() is None:
                    delivered += task.result()
                else:
                    # The row stays claimed and is sent again after the claim timeout.
                    log.error("sending an outbox message failed", exc_info=task.exception())
            flying -= done
        return delivered

    def _start(self, message: Claimed) -> asyncio.Task[int]:
        task = asyncio.create_task(self._paced(message))
        # Held here too, so that a failed claim leaves none of them unreferenced; and their
        # rows are not claimed again while in hand, even past the claim timeout.
        self._tasks.add(task)
        self._in_hand.add(message.id)
        self._waiting += 1

        def done(_: asyncio.Task[int]) -> None:
            self._tasks.discard(task)
            self._in_hand.discard(message.id)

        task.add_done_callback(done)
        return task

    def _past_slot(self) -> None:
        self._waiting -= 1
        self._progress.set()

    async def _paced(self, message: Claimed) -> int:
        """One chat's messages go one after another, a chat interval apart; across chats
        they share the overall rate, so one busy chat never holds up the others."""
        waiting = True
        try:
            async with self._chats.hold(message.chat_id):
                if message.blocked_reason:
                    await self.outbox.skipped(message.id, message.blocked_reason)
                    return 0
                for _ in range(RATE_LIMIT_RETRIES):
                    await self.pacer.wait(message.chat_id)
                    if waiting:
                        waiting = False
                        self._past_slot()
                    async with self._flight:
                        if not await self.outbox.take(message):
                            return 0
                        # Taking it is a database write: a 429 may have come meanwhile,
                        # and sending now would be sending during the pause.
                        while await self.pacer.paused():
                            await self.pacer.wait(message.chat_id)
                        outcome = await self._send(message)
                    if outcome is not Outcome.RETRY:
                        return int(outcome is Outcome.SENT)
                await self.outbox.postpone([message.id], self.outbox.clock.now())
                return 0
        finally:
            if waiting:
                self._past_slot()

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
                log.error(
                    "Telegram refused outbox message %s (%s): %s",
                    message.id,
                    message.kind,
                    error.message,
                )
                await self.outbox.failed(message.id, error.message)
                await self._report_refusal(message, error.message)
            return Outcome.SETTLED
        except (TelegramServerError, TelegramNetworkError, TimeoutError) as error:
            await self.outbox.retry_later(message.id, str(error), message.attempts)
            return Outcome.SETTLED
        await self.outbox.sent(message.id, sent.message_id)
        return Outcome.SENT

    async def _report_refusal(self, message: Claimed, reason: str) -> None:
        """A refused text (too long, broken HTML) is a template's fault: the staff hear of
        it once a day per kind of message, not once per customer of a broadcast."""
        if self.staff_chat_id is None or message.chat_id == self.staff_chat_id:
            return
        day = self.outbox.clock.now().date().isoformat()
        text = self.renderer.render(
            "staff_message_refused",
            self.staff_locale,
            kind=message.kind,
            customer_id=message.customer_id,
            error=reason,
        )
        await self.outbox.enqueue(
            [
                Outgoing(
                    key=f"refused:{message.kind}:{day}",
                    chat_id=self.staff_chat_id,
                    text=text,
                    kind="staff_refused",
                )
            ]
        )
        self.wake()

    async def _unreachable(self, message: Claimed, reason: str) -> None:
        # The customer first: a message marked failed always has its customer marked too,
        # and a stop in between leaves the message to be taken again, then skipped.
        if message.customer_id is not None:
            await self.customers.mark_unreachable(message.customer_id)
        await self.outbox.failed(message.id, reason)

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
