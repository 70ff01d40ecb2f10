"""End-to-end fixtures: the local Telegram emulator and the real app talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.app import Carebot, make_bot
from bot.config import Settings
from sandbox.emulator import Emulator
from sandbox.state import Chat
from services.clock import FrozenClock
from services.policy import Policy
from tests.conftest import REDIS_URL

TOKEN = "123456789:AAEcarebot-test-token_0123456789abcd"
STAFF_CHAT = -1001234567890
OWNER_ID = 9001


@pytest.fixture
async def telegram() -> AsyncIterator[Emulator]:
    async with Emulator() as emulator:
        yield emulator


@pytest.fixture
def staff_chat(telegram: Emulator) -> Chat:
    return telegram.staff_group(STAFF_CHAT, "Staff", forum=True)


def make_settings(database_url: str, api_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api_url,
        "DATABASE_URL": database_url,
        "ADMIN_IDS": str(OWNER_ID),
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "HTTP_PORT": "0",
        "REDIS_URL": REDIS_URL or None,
    }
    values.update(extra)
    return Settings.model_validate(values)


AppFactory = Callable[..., Any]


@pytest.fixture
async def start_app(
    telegram: Emulator, database_url: str, policy: Policy, clock: FrozenClock
) -> AsyncIterator[AppFactory]:
    """Starts a Carebot against the emulator (with extra settings), stopped at the end."""
    started: list[Carebot] = []

    async def start(**extra: Any) -> Carebot:
        settings = make_settings(database_url, telegram.base_url, **extra)
        assert settings.bot_token is not None
        app = Carebot(
            settings=settings,
            policy=policy,
            bot=make_bot(settings.bot_token.get_secret_value(), settings.telegram_api_url),
            clock=clock,
        )
        await app.start()
        started.append(app)
        return app

    yield start
    for app in started:
        await app.stop()


@pytest.fixture
async def carebot(start_app: AppFactory, staff_chat: Chat) -> Carebot:
    app: Carebot = await start_app()
    return app
