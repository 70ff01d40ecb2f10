"""`carebot sandbox`: a local Telegram, the real bot against it, and a browser page to try it.

The sandbox starts fresh every time: the emulator lives in memory, so its chats, message
ids and update ids begin again at 1, and an old sandbox database would point at messages
that no longer exist (and hold update ids the inbox would take for duplicates). So the
default sandbox database file is removed at each start; a DATABASE_URL set on purpose is
left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.app import Carebot, make_bot
from bot.config import Settings
from sandbox.emulator import Emulator
from sandbox.players import Customer
from sandbox.terminal import chat_in_terminal
from sandbox.web import SandboxClock, SandboxWeb, job_environment
from services.policy import Policy

log = logging.getLogger("carebot.sandbox")

SANDBOX_TOKEN = "1000000001:SANDBOX-carebot-local-emulator-00000"
SANDBOX_DATABASE = "sqlite+aiosqlite:///carebot-sandbox.db"
STAFF_CHAT_ID = -1001000000001
OWNER_ID = 100
CUSTOMER_ID = 1001
CUSTOMER_PHONE = "+8613800001001"


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


def remove_sandbox_database(settings: Settings) -> None:
    """Start from an empty sandbox database (see the module docstring for why)."""
    if settings.database_url != SANDBOX_DATABASE:
        return
    name = make_url(SANDBOX_DATABASE).database
    assert name is not None
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(name + suffix).unlink(missing_ok=True)


@dataclass
class Sandbox:
    """A running sandbox: the emulator, the bot, the page, and the clock they share."""

    emulator: Emulator
    app: Carebot
    web: SandboxWeb
    clock: SandboxClock
    alice: Customer

    @property
    def url(self) -> str:
        host = self.app.settings.http_host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.app.http_port}/"


@contextlib.asynccontextmanager
async def open_sandbox(settings: Settings, policy: Policy) -> AsyncIterator[Sandbox]:
    """Start the emulator, a staff forum with its owner, the customer Alice, the bot and
    the page; stop them all on exit."""
    clock = SandboxClock()
    async with Emulator(wall_clock=clock.timestamp) as emulator:
        config = sandbox_settings(settings, emulator.base_url)
        assert config.bot_token is not None
        remove_sandbox_database(config)
        group = emulator.staff_group(STAFF_CHAT_ID, "Staff (sandbox)", forum=True)
        app = Carebot(
            settings=config,
            policy=policy,
            bot=make_bot(config.bot_token.get_secret_value(), config.telegram_api_url),
            clock=clock,
        )
        web = SandboxWeb(emulator, app, clock, group, job_env=job_environment(config))
        web.add_staff("Owner", user_id=OWNER_ID, status="creator")
        web.add_customer(
            "Alice", settings.default_locale, CUSTOMER_PHONE, user_id=CUSTOMER_ID, started=True
        )
        user = emulator.get_user(CUSTOMER_ID)
        assert user is not None
        alice = Customer(emulator, user)
        web.install(app.http)
        try:
            await app.start()
        except BaseException:
            await app.stop()  # a half-started app still holds routers and connections
            raise
        try:
            yield Sandbox(emulator, app, web, clock, alice)
        finally:
            await app.stop()


async def run_sandbox(settings: Settings, policy: Policy) -> None:
    """Serve the sandbox until Ctrl-C or SIGTERM; chat in the terminal too when it is one."""
    try:
        async with open_sandbox(settings, policy) as sandbox:
            print(f"Sandbox running: open {sandbox.url} in a browser.", flush=True)
            print(
                f"(Telegram emulator at {sandbox.emulator.base_url}; "
                f"/healthz and /metrics on the same address.)",
                flush=True,
            )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            waiting: set[asyncio.Task[object]] = {asyncio.create_task(stop.wait())}
            if sys.stdin.isatty():
                print("In this terminal you are the customer Alice. Start with /start.")
                waiting.add(asyncio.create_task(chat_in_terminal(sandbox.emulator, sandbox.alice)))
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in waiting:
                task.cancel()
            print("Stopping the sandbox.", flush=True)
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        print(
            f"Cannot serve the sandbox page on {settings.http_host}:{settings.http_port}: "
            f"{error.strerror}. Set HTTP_PORT to a free port.",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
