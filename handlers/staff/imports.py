"""/import: a CSV of purchases or customers sent to the bot, applied whole or not at all."""

from __future__ import annotations

import csv
import io

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, Message

from bot.say import Say
from services.import_rows import ImportReport
from services.imports import Importer

router = Router(name=__name__)

KINDS = ("purchases", "customers")
# The Bot API lets bots download files up to 20 MB; larger files go through the CLI.
DOWNLOAD_LIMIT = 20 * 1024 * 1024
# Bad rows listed in the message; all reported ones come as a file as well.
SHOWN = 20


def decode(data: bytes) -> str | None:
    """UTF-8 (with or without a BOM), or GB18030 as Excel saves Chinese CSV; None if neither."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


@router.message(Command("import"))
async def import_file(
    message: Message, command: CommandObject, bot: Bot, importer: Importer, say: Say
) -> None:
    kind = (command.args or "").strip().lower()
    document = message.document
    if kind not in KINDS or document is None or message.from_user is None:
        await say(message, "staff_import_usage")
        return
    if document.file_size is not None and document.file_size > DOWNLOAD_LIMIT:
        await say(message, "staff_import_too_big", limit=DOWNLOAD_LIMIT // (1024 * 1024))
        return
    downloaded = io.BytesIO()
    await bot.download(document, destination=downloaded)
    text = decode(downloaded.getvalue())
    if text is None:
        await say(message, "staff_import_unreadable")
        return
    run = importer.purchases if kind == "purchases" else importer.customers
    report = await run(
        io.StringIO(text, newline=""),
        actor=message.from_user.id,
        source=(document.file_name or "")[:64],
    )
    if report.applied:
        await say(message, "staff_import_done", report=report)
        return
    await say(message, "staff_import_rejected", report=report, shown=report.errors[:SHOWN])
    if report.error_count > SHOWN:
        await message.answer_document(
            BufferedInputFile(_errors_csv(report), filename=f"{kind}-errors.csv"),
        )


def _errors_csv(report: ImportReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("line", "column", "reason"))
    writer.writerows((e.line, e.column, e.reason) for e in report.errors)
    return ("\ufeff" + out.getvalue()).encode("utf-8")
