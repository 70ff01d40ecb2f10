"""A handler that raised: logged with the update id, counted, and the customer gets an apology."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.types import Chat, ErrorEvent, User

from bot.metrics import Metrics
from bot.rendering import Renderer, normalize_locale
from bot.say import Say

log = logging.getLogger("carebot.errors")

router = Router(name=__name__)


@router.errors()
async def handler_failed(
    event: ErrorEvent,
    bot: Bot,
    renderer: Renderer,
    metrics: Metrics,
    event_chat: Chat | None = None,
    event_from_user: User | None = None,
    say: Say | None = None,
) -> None:
    update = event.update
    metrics.errors.labels(update.event_type).inc()
    log.error(
        "update %s (%s) failed: %s",
        update.update_id,
        update.event_type,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    if event_chat is None or event_chat.type != ChatType.PRIVATE:
        return
    # `say` is missing when the failure came before the customer could be loaded (the
    # database being down, say): fall back to the language their Telegram app uses.
    if say is None:
        code = event_from_user.language_code if event_from_user else None
        say = Say(renderer, normalize_locale(code, renderer.default_locale))
    try:
        await bot.send_message(event_chat.id, say.text("error_apology"))
    except Exception:
        log.warning("could not apologise for update %s", update.update_id)
