"""`carebot sandbox`: a local Telegram, the real bot against it, and a chat to try it."""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.app import Carebot, make_bot
from bot.config import Settings
from sandbox.emulator import Emulator
from sandbox.terminal import chat_in_terminal
from services.policy import Policy

log = logging.getLogger("carebot.sandbox")

SANDBOX_TOKEN = "1000000001:SANDBOX-carebot-local-emulator-00000"
SANDBOX_DATABASE = "sqlite+aiosqlite:///carebot-sandbox.db"
STAFF_CHAT_ID = -1001000000001
OWNER_ID = 100
CUSTOMER_ID = 1001


def sandbox_settings(settings: Settings, api_url: str) -> Settings:
    """The operator's settings, pointed at the emulator. Unless DATABASE_URL was set on
    purpose, sandbox customers go to a file of their own, never to the real one."""
    changes: dict[str, object] = {
        "bot_token": SANDBOX_TOKEN,
        "telegram_api_url": api_url,
        "staff_chat_id": STAFF_CHAT_ID,
        "admin_ids": sorted({*settings.admin_ids, OWNER_ID}),
        "webhook_url": None,
    }
    if "database_url" not in settings.model_fields_set:
        changes["database_url"] = SANDBOX_DATABASE
    return Settings.model_validate(
        {**settings.model_dump(by_alias=True), **{k.upper(): v for k, v in changes.items()}}
    )


async def run_sandbox(settings: Settings, policy: Policy) -> None:
    async with Emulator() as emulator:
        config = sandbox_settings(settings, emulator.base_url)
        assert config.bot_token is not None
        emulator.staff_group(STAFF_CHAT_ID, "Staff (sandbox)", forum=True)
        emulator.staff_member(OWNER_ID, "Owner", emulator.get_chat(STAFF_CHAT_ID), status="creator")
        customer = emulator.customer(
            CUSTOMER_ID, "Alice", language_code=settings.default_locale, phone="+8613800001001"
        )
        app = Carebot(
            settings=config,
            policy=policy,
            bot=make_bot(config.bot_token.get_secret_value(), config.telegram_api_url),
        )
        await app.start()
        print(
            f"Sandbox running: Telegram emulator at {emulator.base_url}, bot HTTP at "
            f"http://{config.http_host}:{app.http_port} (/healthz, /metrics)."
        )
        print("You are the customer Alice. Start with /start.")
        chat = asyncio.create_task(chat_in_terminal(emulator, customer))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({chat, stopping}, return_when=asyncio.FIRST_COMPLETED)
        chat.cancel()
        stopping.cancel()
        await app.stop()
