"""The HTTP server every instance runs: health, metrics, and the webhook when configured."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select

from bot.inbox import Inbox
from bot.metrics import Metrics
from models import OutboxMessage, OutboxStatus
from models.database import Database


def base_app(db: Database, metrics: Metrics, inbox: Inbox) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)

    async def healthz(_: web.Request) -> web.Response:
        if await db.ping():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "database unreachable"}, status=503)

    async def scrape(_: web.Request) -> web.Response:
        try:
            async with db.session() as session:
                depth = await session.scalar(
                    select(func.count()).where(OutboxMessage.status == OutboxStatus.PENDING)
                )
            metrics.outbox_depth.set(int(depth or 0))
            metrics.inbox_pending.set(await inbox.count_pending())
        except Exception:
            # While the database is away the counters still answer; gauges keep their value.
            pass
        return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", scrape)
    return app
