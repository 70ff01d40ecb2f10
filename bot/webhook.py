"""Webhook mode: an update is answered 200 only after the inbox holds it."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from urllib.parse import urlsplit

from aiohttp import web

from bot.api import MAX_BODY
from bot.apology import OutageApology
from bot.inbox import Inbox
from bot.runner import Runner

log = logging.getLogger("carebot.webhook")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_path(url: str) -> str:
    return urlsplit(url).path or "/webhook"


def derive_secret(bot_token: str) -> str:
    """A secret for setWebhook when WEBHOOK_SECRET is not set: stable across restarts and
    instances, unguessable without the token."""
    return hmac.new(bot_token.encode(), b"carebot-webhook", hashlib.sha256).hexdigest()


def add_webhook_route(
    app: web.Application,
    path: str,
    secret: str,
    inbox: Inbox,
    runner: Runner,
    apologize: OutageApology,
) -> None:
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            log.warning("webhook request without the right secret from %s", request.remote)
            return web.Response(status=401, text="wrong secret token")
        # A body said to be larger than the server takes is refused before it is waited for.
        if (request.content_length or 0) > MAX_BODY:
            return web.Response(status=413, text="body too large")
        try:
            payload = await request.json(loads=json.loads)
        except ValueError:
            return web.Response(status=400, text="body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return web.Response(status=400, text="not a Telegram update")
        try:
            fresh = await inbox.store([payload])
        except Exception as error:
            # The error's name only: its text can hold the statement's parameters, which
            # are the customer's message.
            log.warning(
                "could not record update %s (%s); Telegram will retry",
                payload["update_id"],
                type(error).__name__,
            )
            await apologize([payload])
            return web.Response(status=503, text="try again")
        runner.submit(fresh)
        return web.Response(status=200)

    app.router.add_post(path, receive)
