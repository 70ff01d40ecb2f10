"""The application: builds Bot, Dispatcher, services and servers, and runs them together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiohttp import web

import handlers
from bot.commands import set_default_commands
from bot.config import Settings
from bot.http import base_app
from bot.inbox import Inbox
from bot.metrics import Metrics
from bot.middlewares import FloodMiddleware, PeopleMiddleware
from bot.polling import poll
from bot.rendering import Renderer
from bot.runner import Runner
from bot.sender import Sender
from bot.webhook import add_webhook_route, derive_secret, webhook_path
from models.database import Database
from models.schema import current_revision, migrate, require_current
from services.clock import Clock, SystemClock
from services.customers import Customers
from services.loyalty import Loyalty
from services.outbox import Outbox
from services.policy import Policy
from services.staff import Staff

log = logging.getLogger("carebot")


def make_bot(token: str, api_url: str | None) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api_url)) if api_url else None
    return Bot(token, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


def make_storage(redis_url: str | None) -> BaseStorage:
    if redis_url:
        from aiogram.fsm.storage.redis import RedisStorage

        return RedisStorage.from_url(redis_url)
    return MemoryStorage()


@dataclass
class Carebot:
    """Everything one running bot holds; `bot/app.py` is the only place that knows it all."""

    settings: Settings
    policy: Policy
    bot: Bot
    clock: Clock = field(default_factory=SystemClock)
    db: Database = field(init=False)
    renderer: Renderer = field(init=False)
    metrics: Metrics = field(init=False)
    dp: Dispatcher = field(init=False)
    inbox: Inbox = field(init=False)
    runner: Runner = field(init=False)
    outbox: Outbox = field(init=False)
    sender: Sender = field(init=False)
    http: web.Application = field(init=False)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _site_runner: web.AppRunner | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        settings, policy, clock = self.settings, self.policy, self.clock
        self.db = Database(settings.database_url)
        self.renderer = Renderer(
            default_locale=settings.default_locale, timezone=settings.zone, currency=policy.currency
        )
        self.metrics = Metrics()
        self.outbox = Outbox(self.db, clock)
        loyalty = Loyalty(self.db, policy, clock, self.outbox, self.renderer)
        customers = Customers(self.db, policy, clock, loyalty)
        staff = Staff(self.db, frozenset(settings.admin_ids))
        self.dp = Dispatcher(
            storage=make_storage(settings.redis_url),
            settings=settings,
            policy=policy,
            clock=clock,
            renderer=self.renderer,
            metrics=self.metrics,
            staff_chat_id=settings.staff_chat_id,
            customers=customers,
            loyalty=loyalty,
            staff=staff,
            outbox=self.outbox,
        )
        self.dp.update.outer_middleware(
            FloodMiddleware(self.renderer, policy.flood.messages, policy.flood.seconds)
        )
        self.dp.update.outer_middleware(PeopleMiddleware(customers, staff, self.renderer))
        self.dp.include_routers(*handlers.ROUTERS)
        self.inbox = Inbox(self.db, clock)
        self.runner = Runner(self.dp, self.bot, self.inbox, self.metrics)
        self.sender = Sender(self.bot, self.outbox, customers, self.renderer, self.metrics)
        self.http = base_app(self.db, self.metrics, self.inbox)
        if settings.webhook_url:
            add_webhook_route(
                self.http,
                webhook_path(settings.webhook_url),
                self.webhook_secret,
                self.inbox,
                self.runner,
            )

    @property
    def webhook_secret(self) -> str:
        if self.settings.webhook_secret is not None:
            return self.settings.webhook_secret.get_secret_value()
        return derive_secret(self.bot.token)

    async def prepare_database(self) -> None:
        """An embedded SQLite file is set up on first start; any other database, or one
        at an older revision, must be migrated on purpose with `carebot migrate`."""
        if not self.settings.is_postgres and await current_revision(self.db) is None:
            log.info("new embedded database: creating the schema")
            await migrate(self.db)
        await require_current(self.db)

    async def start(self) -> None:
        await self.prepare_database()
        self._site_runner = web.AppRunner(self.http, access_log=None)
        await self._site_runner.setup()
        site = web.TCPSite(self._site_runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        me = await self.bot.me()
        log.info("bot @%s (%s) connected", me.username, me.id)
        await set_default_commands(self.bot, self.renderer)
        await self.runner.resume()
        allowed = self.dp.resolve_used_update_types()
        if self.settings.webhook_url:
            await self.bot.set_webhook(
                self.settings.webhook_url, secret_token=self.webhook_secret, allowed_updates=allowed
            )
            log.info("webhook mode: %s", self.settings.webhook_url)
        else:
            await self.bot.delete_webhook()
            self._tasks.append(
                asyncio.create_task(poll(self.bot, self.inbox, self.runner, allowed, self._stop))
            )
            log.info("polling mode")
        self._tasks.append(asyncio.create_task(self.sender.run(self._stop)))

    @property
    def http_port(self) -> int:
        """The port actually bound (HTTP_PORT=0 picks a free one)."""
        assert self._site_runner is not None
        for site in self._site_runner.sites:
            server = getattr(site, "_server", None)
            if server is not None and server.sockets:
                return int(server.sockets[0].getsockname()[1])
        return self.settings.http_port

    async def stop(self) -> None:
        """Stop taking updates, finish those in hand, then close everything."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runner.drain()
        if self._site_runner is not None:
            await self._site_runner.cleanup()
        await self.dp.storage.close()
        await self.bot.session.close()
        await self.db.close()
        # aiogram has no way to detach a router; free them so another app in this
        # process (the test suite builds many) can include them again.
        for router in handlers.ROUTERS:
            router._parent_router = None
        self.dp.sub_routers.clear()

    async def run_until_stopped(self) -> None:
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()
