"""The `carebot` command: run the bot, migrate the database, try it in the sandbox."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Annotated

import typer
from pydantic import ValidationError

from bot.config import Settings, describe_errors
from services.policy import Policy, PolicyError, load_policy

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
    """Try the bot with no Telegram account: a local Telegram and a chat in this terminal."""
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


def main() -> None:
    app()
