"""Webhook mode through the emulator: updates arrive by POST, the secret is checked."""

from __future__ import annotations

import socket

import aiohttp

from bot.app import Carebot
from bot.webhook import SECRET_HEADER
from sandbox.emulator import Emulator
from tests.e2e.conftest import AppFactory


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def webhook_app(start_app: AppFactory) -> tuple[Carebot, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    app: Carebot = await start_app(
        WEBHOOK_URL=url, WEBHOOK_SECRET="s3cret_token-123", HTTP_PORT=str(port)
    )
    return app, url


async def test_a_conversation_by_webhook(telegram: Emulator, start_app: AppFactory) -> None:
    _, url = await webhook_app(start_app)
    info = telegram.bot.webhook
    assert info is not None and info.url == url and info.secret_token == "s3cret_token-123"
    assert "my_chat_member" in telegram.bot.allowed_updates
    mia = telegram.customer(1301, "Mia", language_code="en", phone="+8613400134000")
    assert "Hello Mia" in (await mia.says("/start")).text
    linked, menu = await mia.shares_contact(expect=2)
    assert "+8613400134000" in linked.text and "Main menu" in menu.text


async def test_a_request_with_a_wrong_or_missing_secret_is_rejected(
    telegram: Emulator, start_app: AppFactory
) -> None:
    app, url = await webhook_app(start_app)
    update = {
        "update_id": 4242,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 1302, "type": "private"},
            "from": {"id": 1302, "is_bot": False, "first_name": "Eve"},
            "text": "/start",
        },
    }
    async with aiohttp.ClientSession() as http:
        for headers in ({SECRET_HEADER: "guess"}, {}):
            async with http.post(url, json=update, headers=headers) as response:
                assert response.status == 401
        async with http.post(
            url, data=b"{not json", headers={SECRET_HEADER: "s3cret_token-123"}
        ) as response:
            assert response.status == 400
    assert await app.inbox.store([update]) == [update], "the rejected update was not recorded"
