"""The weekly KPI digest (绩效评估) for the staff group: the reports service's KPIs and
charts for the past seven days, win-back results and the latest classification, once per
ISO week (`digest:<year>-W<week>`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from models.database import Database
from services import charts
from services.clock import Clock
from services.jobruns import JobRuns
from services.outbox import Outbox, Outgoing, Render
from services.policy import Policy
from services.reports import Period, Reports
from services.winback import Winback

KIND = "digest"
WEEK = timedelta(days=7)


@dataclass(eq=False)
class Digest:
    db: Database
    policy: Policy
    clock: Clock
    zone: ZoneInfo
    outbox: Outbox
    render: Render
    reports: Reports
    winback: Winback
    runs: JobRuns
    chat_id: int | None
    locale: str

    def week(self) -> str:
        year, week, _ = self.clock.now().astimezone(self.zone).isocalendar()
        return f"{year}-W{week:02d}"

    async def send(self) -> int:
        """This week's digest, text and charts, unless it went already; how many messages."""
        if self.chat_id is None:
            return 0
        week = self.week()
        key = f"{KIND}:{week}"
        if await self.outbox.present([key]):
            return 0
        now = self.clock.now()
        period = Period(now - WEEK, now)
        kpis = await self.reports.kpis(period)
        data = await self.reports.chart_data(period, kpis)
        attribution = timedelta(days=self.policy.winback.attribution_days)
        winback = await self.winback.results(now - attribution, now)
        classification = await self.runs.latest("segmentation")
        locale = self.locale
        text = self.render.render(
            "staff_digest",
            locale,
            week=week,
            k=kpis,
            winback=winback,
            classification=classification.details if classification else None,
            classified_at=classification.ran_for if classification else None,
            label=lambda name: self.render.label(name, locale),
        )
        chart_locale = locale if charts.can_draw(locale) else "en"

        def label(name: str) -> str:
            return self.render.label(name, chart_locale)

        # matplotlib takes a moment per chart: drawn in a thread, the bot goes on meanwhile.
        images = await asyncio.to_thread(charts.report_charts, data, label)
        messages = [Outgoing(key=key, chat_id=self.chat_id, text=text, kind=KIND)]
        for name, png in images:
            caption = self.render.render(
                "staff_chart_caption", locale, chart=name, k=kpis, pareto=data.pareto
            )
            messages.append(
                Outgoing(
                    key=f"{key}:{name}",
                    chat_id=self.chat_id,
                    text=caption,
                    kind=KIND,
                    photo=png,
                )
            )
        return await self.outbox.enqueue(messages)
