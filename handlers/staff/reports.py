"""/stats: KPIs for a period with charts as images; /export: a CSV file of the data."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, FSInputFile, Message

from bot.permissions import may
from bot.say import Say
from models import Role
from services import charts
from services.exports import EXPORTS, Exports
from services.reports import PeriodError, Reports

router = Router(name=__name__)

# Telegram takes files up to 50 MB from bots; larger exports are for `carebot export`.
UPLOAD_LIMIT = 50 * 1024 * 1024


@router.message(Command("stats"))
async def stats(message: Message, command: CommandObject, reports: Reports, say: Say) -> None:
    try:
        period = reports.period(command.args or "")
    except PeriodError:
        await say(message, "staff_stats_usage")
        return
    kpis = await reports.kpis(period)
    await say(message, "staff_stats", k=kpis, label=say.label)
    data = await reports.chart_data(period, kpis)
    locale = say.locale if charts.can_draw(say.locale) else "en"

    def label(key: str) -> str:
        return say.renderer.label(key, locale)

    # matplotlib takes a moment per chart: drawn in a thread, the bot answers others meanwhile.
    images = await asyncio.to_thread(charts.report_charts, data, label)
    for name, png in images:
        await message.answer_photo(
            BufferedInputFile(png, filename=f"{name}.png"),
            caption=say.text("staff_chart_caption", chart=name, k=kpis, pareto=data.pareto),
        )


@router.message(Command("export"))
async def export(
    message: Message,
    command: CommandObject,
    exports: Exports,
    staff_role: Role,
    say: Say,
) -> None:
    words = (command.args or "").lower().split()
    if not words or words[0] not in EXPORTS or len(words) > 2:
        await say(message, "staff_export_usage", exports=EXPORTS)
        return
    what = words[0]
    aggregate = "summary" in words[1:] or not may(staff_role, "export_rows")
    if len(words) == 2 and words[1] != "summary":
        await say(message, "staff_export_usage", exports=EXPORTS)
        return
    handle, path = tempfile.mkstemp(prefix="carebot-export-", suffix=".csv")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            rows = await exports.write(what, out, aggregate=aggregate)
        if await asyncio.to_thread(os.path.getsize, path) > UPLOAD_LIMIT:
            await say(message, "staff_export_too_big", what=what)
            return
        actor = message.from_user.id if message.from_user else None
        await exports.record(actor, what, aggregate=aggregate, rows=rows)
        name = f"{what}{'-summary' if aggregate else ''}.csv"
        await message.answer_document(
            FSInputFile(path, filename=name),
            caption=say.text(
                "staff_export_done",
                what=what,
                rows=rows,
                aggregate=aggregate,
                restricted=not may(staff_role, "export_rows"),
            ),
        )
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)
