"""The application: builds Bot, Dispatcher, services and servers, and runs them together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage
from aiohttp import web

import handlers
from bot.api import PurchasesApi, add_api_routes
from bot.apology import OutageApology
from bot.campaign_reporter import CampaignReporter
from bot.care_buttons import CareButtons
from bot.commands import set_default_commands, set_staff_commands
from bot.config import Settings
from bot.filters import check_filters_inline
from bot.http import base_app
from bot.inbox import Inbox
from bot.metrics import Metrics
from bot.middlewares import FloodMiddleware, PeopleMiddleware
from bot.polling import poll
from bot.rendering import Renderer
from bot.runner import Runner
from bot.sender import Sender
from bot.session import TelegramSession
from bot.staff_inbox import StaffInbox
from bot.webhook import add_webhook_route, derive_secret, webhook_path
from jobs.context import JobContext, build_context
from jobs.leader import leader_for
from jobs.scheduler import Scheduler
from models.database import Database
from models.schema import current_revision, migrate, require_current
from services.audit import Audit
from services.campaigns import Campaigns
from services.clock import Clock, SystemClock
from services.collector import settle_after_startup
from services.customers import Customers
from services.desk import Desk
from services.exports import Exports
from services.imports import Importer
from services.lookup import Lookup
from services.loyalty import Loyalty
from services.outbox import Outbox
from services.policy import Policy
from services.privacy import Privacy
from services.profile import Profile
from services.reports import Reports
from services.rewards import Rewards
from services.staff import Staff
from services.surveys import Surveys
from services.tickets import Tickets

log = logging.getLogger("carebot")


def make_bot(token: str, api_url: str | None) -> Bot:
    session = (
        TelegramSession(api=TelegramAPIServer.from_base(api_url)) if api_url else TelegramSession()
    )
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
    # Whether to compete for running the scheduler; None: only on the system clock.
    run_scheduler: bool | None = None
    db: Database = field(init=False)
    renderer: Renderer = field(init=False)
    metrics: Metrics = field(init=False)
    dp: Dispatcher = field(init=False)
    inbox: Inbox = field(init=False)
    runner: Runner = field(init=False)
    apology: OutageApology = field(init=False)
    outbox: Outbox = field(init=False)
    sender: Sender = field(init=False)
    surveys: Surveys = field(init=False)
    reporter: CampaignReporter = field(init=False)
    http: web.Application = field(init=False)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _site_runner: web.AppRunner | None = field(init=False, default=None)
    jobs: JobContext = field(init=False)
    scheduler: Scheduler = field(init=False)

    def __post_init__(self) -> None:
        settings, policy, clock = self.settings, self.policy, self.clock
        self.db = Database(settings.database_url)
        self.renderer = Renderer(
            default_locale=settings.default_locale, timezone=settings.zone, currency=policy.currency
        )
        self.metrics = Metrics()
        self.outbox = Outbox.for_policy(self.db, clock, policy, settings.zone)
        loyalty = Loyalty(self.db, policy, clock, self.outbox, self.renderer)
        customers = Customers(self.db, policy, clock, loyalty)
        staff = Staff(self.db, frozenset(settings.admin_ids), clock)
        rewards = Rewards(self.db, policy, clock, loyalty)
        tickets = Tickets(self.db, policy, clock, loyalty, rewards, self.outbox, self.renderer)
        self.surveys = Surveys(self.db, clock)
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
            rewards=rewards,
            tickets=tickets,
            surveys=self.surveys,
            profile=Profile(self.db, clock, settings.zone),
            privacy=Privacy(self.db, clock),
        )
        self.dp.update.outer_middleware(
            FloodMiddleware(self.renderer, policy.flood.messages, policy.flood.seconds)
        )
        self.dp.update.outer_middleware(PeopleMiddleware(customers, staff, self.renderer))
        self.dp.include_routers(*handlers.ROUTERS)
        check_filters_inline(self.dp)
        self.inbox = Inbox(self.db, clock)
        self.runner = Runner(self.dp, self.bot, self.inbox, self.metrics)
        self.apology = OutageApology(self.bot, self.renderer)
        self.sender = Sender.for_policy(
            self.bot,
            self.outbox,
            customers,
            self.renderer,
            self.metrics,
            policy.sending,
            settings.redis_url,
            staff_chat_id=settings.staff_chat_id,
            staff_locale=settings.default_locale,
        )
        self.jobs = build_context(
            db=self.db,
            policy=policy,
            clock=clock,
            zone=settings.zone,
            renderer=self.renderer,
            buttons=CareButtons(self.renderer),
            outbox=self.outbox,
            staff_chat_id=settings.staff_chat_id,
            owner_ids=frozenset(settings.admin_ids),
            staff_locale=settings.default_locale,
            sender=self.sender,
            wake=self.sender.wake,
        )
        self.scheduler = Scheduler(
            self.jobs, leader_for(self.db, settings.redis_url, str(self.bot.id))
        )
        self.dp["staff_inbox"] = staff_inbox = StaffInbox(
            self.bot,
            self.renderer,
            tickets,
            customers,
            self.outbox,
            settings.staff_chat_id,
            wake=self.sender.wake,
        )
        self.db.watch_points(staff_inbox.points_changed)
        lookup = Lookup(self.db, policy, loyalty)
        campaigns = Campaigns(self.db, policy, clock, self.outbox, self.renderer, settings.zone)
        self.dp.workflow_data.update(
            wake_sender=self.sender.wake,
            audit=Audit(self.db),
            lookup=lookup,
            desk=Desk(self.db, clock, loyalty),
            campaigns=campaigns,
            reports=Reports(self.db, policy, clock, settings.zone),
            exports=Exports(self.db, settings.zone, clock),
            importer=Importer(
                self.db, policy, clock, loyalty, settings.zone, settings.default_locale
            ),
        )
        self.reporter = CampaignReporter(self.bot, campaigns, self.renderer)
        self.http = base_app(self.db, self.metrics, self.inbox)
        api_token = settings.api_token.get_secret_value() if settings.api_token else None
        add_api_routes(
            self.http, PurchasesApi(api_token, self.db, loyalty, lookup, clock, self.sender.wake)
        )
        if settings.webhook_url:
            add_webhook_route(
                self.http,
                webhook_path(settings.webhook_url),
                self.webhook_secret,
                self.inbox,
                self.runner,
                self.apology,
            )

    @property
    def schedules(self) -> bool:
        """Whether this instance competes to run the scheduled jobs. Cron triggers follow
        the wall clock, so with any other clock (the tests' frozen one, the sandbox's
        movable one) jobs are run on demand: `carebot jobs run`, the sandbox page."""
        if self.run_scheduler is not None:
            return self.run_scheduler
        return isinstance(self.clock, SystemClock)

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
        await self.surveys.sync(self.policy.surveys)
        self._site_runner = web.AppRunner(self.http, access_log=None)
        await self._site_runner.setup()
        site = web.TCPSite(self._site_runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        me = await self.bot.me()
        log.info("bot @%s (%s) connected", me.username, me.id)
        await set_default_commands(self.bot, self.renderer)
        if self.settings.staff_chat_id is not None:
            await set_staff_commands(self.bot, self.renderer, self.settings.staff_chat_id)
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
                asyncio.create_task(
                    poll(self.bot, self.inbox, self.runner, allowed, self._stop, self.apology)
                )
            )
            log.info("polling mode")
        self._tasks.append(asyncio.create_task(self.sender.run(self._stop)))
        if self.schedules:
            self._tasks.append(asyncio.create_task(self.scheduler.run(self._stop)))
        self._tasks.append(asyncio.create_task(self.reporter.run(self._stop)))

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
        await self.dp["staff_inbox"].settle()
        await self.dp.storage.close()
        await self.sender.pacer.close()
        await self.bot.session.close()
        await self.db.close()
        # aiogram has no way to detach a router; free them so another app in this
        # process (the test suite builds many) can include them again.
        for router in handlers.ROUTERS:
            router._parent_router = None
        self.dp.sub_routers.clear()

    async def run_until_stopped(self) -> None:
        """The process's one bot, from start to a stop signal."""
        await self.start()
        settle_after_startup()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    def request_stop(self) -> None:
        self._stop.set()
