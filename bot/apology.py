"""The apology customers get, straight through the Bot API, while updates cannot be recorded
(the database is unreachable): their message is kept by Telegram and answered later, and
until then they hear that, not silence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiogram import Bot

from bot.rendering import Renderer, normalize_locale

log = logging.getLogger("carebot.apology")

TEMPLATE = "outage_apology"
# One apology per chat within this many seconds, however often the customer writes or
# Telegram redelivers their update.
EVERY_SECONDS = 60.0
# The poll loop and the webhook answer wait for the apologies at most this long.
SEND_TIMEOUT = 10.0


def private_sender(payload: dict[str, Any]) -> tuple[int, str | None] | None:
    """The private chat an update came from and its sender's language code; None for
    groups, channels and updates nobody wrote."""
    for key in ("message", "edited_message", "callback_query"):
        body = payload.get(key)
        if not isinstance(body, dict):
            continue
        message = body.get("message") if key == "callback_query" else body
        chat = message.get("chat") if isinstance(message, dict) else None
        sender = body.get("from")
        if isinstance(chat, dict) and chat.get("type") == "private" and isinstance(sender, dict):
            code = sender.get("language_code")
            return int(chat["id"]), code if isinstance(code, str) else None
    return None


class OutageApology:
    def __init__(
        self,
        bot: Bot,
        renderer: Renderer,
        *,
        every: float = EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot = bot
        self.renderer = renderer
        self.every = every
        self.monotonic = monotonic
        self._last: dict[int, float] = {}

    def _due(self, payloads: Iterable[dict[str, Any]]) -> dict[int, str]:
        """The chats to apologise to now, each with its locale; marked as apologised."""
        now = self.monotonic()
        self._last = {c: t for c, t in self._last.items() if now - t < self.every}
        due: dict[int, str] = {}
        for payload in payloads:
            found = private_sender(payload)
            if found is None or found[0] in self._last:
                continue
            chat_id, code = found
            self._last[chat_id] = now
            due[chat_id] = normalize_locale(code, self.renderer.default_locale)
        return due

    async def __call__(self, payloads: Iterable[dict[str, Any]]) -> int:
        """Apologise to the private chats of these unrecorded updates; how many were sent."""
        due = self._due(payloads)
        if not due:
            return 0
        sends = [
            self.bot.send_message(chat_id, self.renderer.render(TEMPLATE, locale))
            for chat_id, locale in due.items()
        ]
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                results = await asyncio.gather(*sends, return_exceptions=True)
        except TimeoutError:
            log.warning("apologies to %d chat(s) took too long", len(due))
            return 0
        failed = [r for r in results if isinstance(r, BaseException)]
        for error in failed[:1]:
            log.warning("could not apologise to %d chat(s): %s", len(failed), error)
        return len(results) - len(failed)
