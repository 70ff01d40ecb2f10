"""The `carebot` command: run the bot, migrate the database, try it in the sandbox, import
and export data."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from bot.config import Settings, describe_errors
from services.collector import settle_after_startup
from services.policy import Policy, PolicyError, load_policy

if TYPE_CHECKING:
    from datetime import datetime

    from jobs.tasks import Done
    from models.database import Database

app = typer.Typer(
    help="carebot: customer care on Telegram — loyalty, feedback, surveys, proactive care.",
    no_args_is_help=True,
    add_completion=False,
)


def _fail(message: str) -> typer.Exit:
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code=2)


def load(*, quiet: bool = False) -> tuple[Settings, Policy]:
    """Settings and policy, or a message naming what to fix and an exit. `quiet` keeps
    log lines out of a terminal chat unless LOG_LEVEL asks for them."""
    try:
        settings = Settings()
    except ValidationError as error:
        raise _fail("Configuration error (see .env.example):\n" + describe_errors(error)) from None
    try:
        policy = load_policy(settings.policy_path)
    except PolicyError as error:
        raise _fail(f"Policy error: {error}") from None
    explicit = "log_level" in settings.model_fields_set
    logging.basicConfig(
        level=settings.log_level if explicit or not quiet else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # aiogram logs every update at INFO with chat ids; ours is the one line per update.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings, policy


async def _run_app(settings: Settings, policy: Policy) -> None:
    from bot.app import Carebot, make_bot
    from models.schema import SchemaOutdated

    assert settings.bot_token is not None
    carebot = Carebot(
        settings=settings,
        policy=policy,
        bot=make_bot(settings.bot_token.get_secret_value(), settings.telegram_api_url),
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, carebot.request_stop)
    try:
        await carebot.run_until_stopped()
    except SchemaOutdated as error:
        raise _fail(f"Cannot start: {error}") from None


@app.command()
def run() -> None:
    """Run the bot: long polling, or webhook mode when WEBHOOK_URL is set.

    Without BOT_TOKEN it starts the sandbox instead, so you can chat with the bot locally.
    """
    settings, policy = load(quiet=not os.environ.get("BOT_TOKEN"))
    if settings.bot_token is None:
        typer.echo("No BOT_TOKEN set: starting the sandbox (a local Telegram) instead.")
        from sandbox.session import run_sandbox

        asyncio.run(run_sandbox(settings, policy))
        return
    asyncio.run(_run_app(settings, policy))


@app.command()
def sandbox() -> None:
    """Try the bot with no Telegram account: a local Telegram and a page in the browser
    (http://HTTP_HOST:HTTP_PORT/), with a chat in this terminal too when it is one."""
    settings, policy = load(quiet=True)
    from sandbox.session import run_sandbox

    asyncio.run(run_sandbox(settings, policy))


@app.command()
def migrate(
    revision: Annotated[
        str, typer.Argument(help="Target revision; the newest by default.")
    ] = "head",
) -> None:
    """Bring the database (DATABASE_URL) to the newest schema."""
    settings, _ = load()
    from models.database import Database
    from models.schema import current_revision
    from models.schema import migrate as upgrade

    async def go() -> tuple[str | None, str | None]:
        db = Database(settings.database_url)
        try:
            before = await current_revision(db)
            await upgrade(db, revision)
            return before, await current_revision(db)
        finally:
            await db.close()

    try:
        before, after = asyncio.run(go())
    except OSError as error:
        raise _fail(f"Cannot reach the database: {error}") from None
    if before == after:
        typer.echo(f"The database is up to date (revision {after}).")
    else:
        typer.echo(f"Migrated the database from {before or 'empty'} to revision {after}.")


@app.command("demo-data")
def demo_data(
    customers: Annotated[int, typer.Option(min=1, help="How many customers to create.")] = 300,
    seed: Annotated[int, typer.Option(help="The same seed gives the same shop.")] = 1,
    force: Annotated[
        bool, typer.Option(help="Add the demo shop even if the database has customers.")
    ] = False,
) -> None:
    """Fill the database (DATABASE_URL) with a seeded demo shop, so reports have data."""
    settings, policy = load()
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url

    from models import Customer
    from models.database import Database
    from models.schema import SchemaOutdated, current_revision, require_current
    from models.schema import migrate as upgrade
    from services.clock import SystemClock
    from services.demo import DemoDataPresent, DemoSummary, seed_demo

    async def go() -> DemoSummary:
        db = Database(settings.database_url)
        try:
            if not settings.is_postgres and await current_revision(db) is None:
                await upgrade(db)
            await require_current(db)
            async with db.session() as session:
                existing = await session.scalar(select(func.count()).select_from(Customer))
            if existing and not force:
                raise _fail(
                    f"The database already has {existing} customers; demo data is meant for an "
                    "empty one. Use --force to add it anyway."
                )
            return await seed_demo(
                db, policy, SystemClock(), customers=customers, seed=seed, timezone=settings.zone
            )
        finally:
            await db.close()

    try:
        summary = asyncio.run(go())
    except (DemoDataPresent, SchemaOutdated) as error:
        raise _fail(f"Cannot load demo data: {error}") from None
    except OSError as error:
        raise _fail(f"Cannot reach the database: {error}") from None
    where = make_url(settings.database_url).render_as_string(hide_password=True)
    typer.echo(
        f"Demo shop written to {where}: {summary.customers} customers, {summary.purchases} "
        f"purchases ({summary.refunds} refunded), {summary.tickets} tickets "
        f"({summary.open_tickets} open), {summary.survey_responses} survey responses, "
        f"{summary.birthdays_this_week} birthdays this week."
    )


import_app = typer.Typer(
    help="Import a shop's data from CSV: a file is applied whole, or not at all.",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

FileArgument = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The CSV file.")
]
EncodingOption = Annotated[
    str, typer.Option(help="The file's encoding; Excel in Chinese often saves gb18030.")
]


@import_app.command("purchases")
def import_purchases(file: FileArgument, encoding: EncodingOption = "utf-8-sig") -> None:
    """Purchases: reference, one of phone / customer_id / telegram_id, amount, and optionally
    currency, occurred_at (ISO 8601), store, refund_of. Re-importing a file adds nothing."""
    _import("purchases", file, encoding)


@import_app.command("customers")
def import_customers(file: FileArgument, encoding: EncodingOption = "utf-8-sig") -> None:
    """A customer list: phone, and optionally name, birthday (YYYY-MM-DD), locale (zh/en),
    region, marketing_opt_in (true/false). Matched by phone; blanks are filled in."""
    _import("customers", file, encoding)


async def _open_database(settings: Settings) -> Database:
    """The configured database at the newest schema; a new embedded SQLite file is set up."""
    from models.database import Database
    from models.schema import current_revision, require_current
    from models.schema import migrate as upgrade

    db = Database(settings.database_url)
    try:
        if not settings.is_postgres and await current_revision(db) is None:
            await upgrade(db)
        await require_current(db)
    except BaseException:
        await db.close()
        raise
    return db


def _import(kind: str, file: Path, encoding: str) -> None:
    settings, policy = load()
    from models.schema import SchemaOutdated
    from services.clock import SystemClock
    from services.import_rows import ImportReport
    from services.imports import Importer
    from services.loyalty import Loyalty

    size = file.stat().st_size
    show_bar = sys.stderr.isatty()

    async def go() -> ImportReport:
        db = await _open_database(settings)
        clock = SystemClock()
        importer = Importer(
            db, policy, clock, Loyalty(db, policy, clock), settings.zone, settings.default_locale
        )
        run = importer.purchases if kind == "purchases" else importer.customers
        try:
            with (
                file.open("rb") as raw,
                io.TextIOWrapper(raw, encoding=encoding, newline="") as text,
                typer.progressbar(
                    length=size,
                    label=f"Importing {file.name}",
                    file=sys.stderr,
                    hidden=not show_bar,
                ) as bar,
            ):
                done = 0

                def progress(_: int) -> None:
                    nonlocal done
                    bar.update(raw.tell() - done)
                    done = raw.tell()

                return await run(text, source=file.name[:64], progress=progress)
        finally:
            await db.close()

    settle_after_startup()
    try:
        report = asyncio.run(go())
    except LookupError:
        raise _fail(f"Unknown encoding {encoding!r}; try utf-8-sig or gb18030.") from None
    except SchemaOutdated as error:
        raise _fail(f"Cannot import: {error}") from None
    except OSError as error:
        raise _fail(f"Cannot reach the database: {error}") from None
    if not report.applied:
        for problem in report.errors:
            column = f" {problem.column}:" if problem.column else ""
            typer.echo(f"{file}:{problem.line}:{column} {problem.reason}", err=True)
        more = report.error_count - len(report.errors)
        if more:
            typer.echo(f"... and {more} more", err=True)
        typer.secho(
            f"Nothing imported: {report.error_count} problem(s) in {report.rows} rows. "
            "Fix them and run the import again.",
            err=True,
            fg=typer.colors.RED,
        )
        raise typer.Exit(code=1)
    if kind == "purchases":
        typer.echo(
            f"Imported {file.name}: {report.rows} rows, {report.created} new purchases, "
            f"{report.unchanged} already recorded, {report.points} points awarded."
        )
    else:
        typer.echo(
            f"Imported {file.name}: {report.rows} rows, {report.created} new customers, "
            f"{report.updated} updated, {report.unchanged} unchanged."
        )


@app.command("export")
def export(
    what: Annotated[str, typer.Argument(help="customers, purchases, tickets or responses.")],
    file: Annotated[
        Path | None, typer.Argument(dir_okay=False, help="Where to write; standard output if none.")
    ] = None,
    summary: Annotated[bool, typer.Option(help="Totals only, without personal data.")] = False,
) -> None:
    """Export data as CSV (UTF-8; a file also gets the BOM Excel needs for Chinese text)."""
    from services.clock import SystemClock
    from services.exports import EXPORTS, Exports

    if what not in EXPORTS:
        raise _fail(f"Cannot export {what!r}; choose one of {', '.join(EXPORTS)}.")
    settings, _ = load(quiet=file is None)

    async def go() -> int:
        db = await _open_database(settings)
        exports = Exports(db, settings.zone, SystemClock())
        try:
            if file is None:
                rows = await exports.write(what, sys.stdout, aggregate=summary, bom=False)
            else:
                with file.open("w", encoding="utf-8", newline="") as out:
                    rows = await exports.write(what, out, aggregate=summary)
            await exports.record(None, what, aggregate=summary, rows=rows)
            return rows
        finally:
            await db.close()

    try:
        rows = asyncio.run(go())
    except OSError as error:
        raise _fail(f"Cannot export: {error}") from None
    if file is not None:
        typer.echo(f"Wrote {rows} rows to {file}.")


jobs_app = typer.Typer(
    help="Scheduled jobs (`carebot run` runs them on schedule): list them, or run one now.",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
def jobs_list() -> None:
    """Each job, when it runs (the policy's [schedule]), its next and its last run."""
    from datetime import UTC, datetime

    from jobs.scheduler import next_runs
    from jobs.tasks import JOBS
    from services.jobruns import LastRun

    settings, policy = load(quiet=True)
    zone = settings.zone
    upcoming = next_runs(policy, zone, datetime.now(UTC))

    async def last_runs() -> dict[str, LastRun]:
        from services.jobruns import JobRuns

        db = await _open_database(settings)
        try:
            return await JobRuns(db).last_of_each()
        finally:
            await db.close()

    try:
        last = asyncio.run(last_runs())
    except Exception as error:
        typer.echo(f"(Last runs unknown: {error})", err=True)
        last = {}
    typer.echo(f"Times in {settings.timezone}.")
    for name, job in JOBS.items():
        if job.scheduled:
            when = str(getattr(policy.schedule, name))
            coming = upcoming.get(name)
            upcoming_text = f"next {coming.astimezone(zone):%Y-%m-%d %H:%M}" if coming else ""
        else:
            when, upcoming_text = "continuously", "in `carebot run`"
        typer.echo(f"{name:<13} {when:<16} {upcoming_text:<22} {job.about}")
        ran = last.get(name)
        if ran is not None:
            at = f"{ran.ran_for.astimezone(zone):%Y-%m-%d %H:%M}"
            if ran.error:
                outcome = f"failed: {ran.error}"
            elif ran.finished_at is None:
                outcome = "running (or stopped before it finished)"
            else:
                outcome = f"{ran.count} {job.counts}"
            typer.echo(f"{'':<13} last run for {at}: {outcome}")


@jobs_app.command("run")
def jobs_run(
    name: Annotated[
        str,
        typer.Argument(
            help="segmentation, followups, birthdays, winback, surveys, sla, digest or sender."
        ),
    ],
    now: Annotated[
        str | None,
        typer.Option(
            "--now",
            help="Run as if it were this time (ISO 8601, e.g. 2026-05-01T09:00+08:00; "
            "without an offset, in TIMEZONE).",
        ),
    ] = None,
) -> None:
    """Run one job once now (or at a pretend time) and say how many it enqueued or sent."""
    from datetime import datetime

    from jobs.tasks import JOBS, JobUnavailable
    from models.schema import SchemaOutdated

    settings, policy = load()
    if name not in JOBS:
        raise _fail(f"Unknown job {name!r}; the jobs are: {', '.join(JOBS)}.")
    at = None
    if now is not None:
        try:
            at = datetime.fromisoformat(now)
        except ValueError:
            raise _fail(
                f"--now {now!r} is not a time; write ISO 8601, e.g. 2026-05-01T09:00+08:00."
            ) from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=settings.zone)
    if name == "sender" and settings.bot_token is None:
        raise _fail("The sender sends through Telegram: set BOT_TOKEN.")
    try:
        done: Done = asyncio.run(_run_job(settings, policy, name, at))
    except (SchemaOutdated, JobUnavailable) as error:
        raise _fail(f"Cannot run {name}: {error}") from None
    except OSError as error:
        raise _fail(f"Cannot reach the database: {error}") from None
    typer.echo(_job_summary(name, done, JOBS[name].counts))


async def _run_job(settings: Settings, policy: Policy, name: str, at: datetime | None) -> Done:
    from bot.app import make_bot
    from bot.care_buttons import CareButtons
    from bot.metrics import Metrics
    from bot.rendering import Renderer
    from bot.sender import Sender
    from jobs.context import build_context
    from jobs.tasks import run_job
    from services.clock import Clock, FrozenClock, SystemClock
    from services.customers import Customers
    from services.loyalty import Loyalty
    from services.outbox import Outbox
    from services.surveys import Surveys

    db = await _open_database(settings)
    clock: Clock = FrozenClock(at) if at is not None else SystemClock()
    renderer = Renderer(
        default_locale=settings.default_locale, timezone=settings.zone, currency=policy.currency
    )
    outbox = Outbox.for_policy(db, clock, policy, settings.zone)
    sender = None
    if name == "sender":
        assert settings.bot_token is not None
        bot = make_bot(settings.bot_token.get_secret_value(), settings.telegram_api_url)
        loyalty = Loyalty(db, policy, clock, outbox, renderer)
        customers = Customers(db, policy, clock, loyalty)
        sender = Sender.for_policy(
            bot, outbox, customers, renderer, Metrics(), policy.sending, settings.redis_url
        )
    ctx = build_context(
        db=db,
        policy=policy,
        clock=clock,
        zone=settings.zone,
        renderer=renderer,
        buttons=CareButtons(renderer),
        outbox=outbox,
        staff_chat_id=settings.staff_chat_id,
        owner_ids=frozenset(settings.admin_ids),
        staff_locale=settings.default_locale,
        sender=sender,
    )
    try:
        if name == "surveys":
            # The policy's surveys, created as the bot does at start.
            await Surveys(db, clock).sync(policy.surveys)
        return await run_job(ctx, name)
    finally:
        if sender is not None:
            await sender.pacer.close()
            await sender.bot.session.close()
        await db.close()


def _job_summary(name: str, done: Done, counts: str) -> str:
    noun = "customer" if counts == "classified" else "message"
    lines = [f"{name}: {done.count} {noun}{'' if done.count == 1 else 's'} {counts}."]
    details = done.details or {}
    if "abc" in details:
        shares = "; ".join(
            f"{c['abc_class']}: {c['customer_share']:.0%} of customers, "
            f"{c['revenue_share']:.0%} of revenue"
            for c in details["abc"]
        )
        lines.append(f"ABC over {details['buyers']} buying customers — {shares}.")
        lines.append(
            "Segments: "
            + ", ".join(f"{k} {v}" for k, v in sorted(details["segments"].items()))
            + "."
        )
        model = details["model"]
        if model["fitted"]:
            lines.append(
                f"Churn risk: BG/NBD fitted on {model['customers']} customers "
                f"(r={model['r']:.3f}, alpha={model['alpha']:.3f}, a={model['a']:.3f}, "
                f"b={model['b']:.3f}, log-likelihood {model['log_likelihood']:.1f}, "
                f"time unit {model['unit_days']:g} days), raised by the rule signals; "
                f"{details['at_risk']} customers at risk."
            )
        else:
            lines.append(
                f"Churn risk: rule signals only, the model was not fitted ({model['reason']}); "
                f"{details['at_risk']} customers at risk."
            )
    return "\n".join(lines)


def main() -> None:
    app()
