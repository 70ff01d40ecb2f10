"""`carebot jobs`: list each job with its next run, and run one once at a pretend time."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from bot.cli import app
from models import Customer
from models.database import Database
from models.schema import migrate
from sandbox.emulator import Emulator
from tests.e2e.conftest import TOKEN


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no .env or carebot.toml, and none of the caller's settings."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "BOT_TOKEN",
        "DATABASE_URL",
        "WEBHOOK_URL",
        "CAREBOT_POLICY",
        "REDIS_URL",
        "TELEGRAM_API_URL",
        "STAFF_CHAT_ID",
        "TIMEZONE",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def env(workdir: Path) -> dict[str, str]:
    return {"DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'shop.db'}"}


async def with_customer(url: str, **fields: object) -> None:
    db = Database(url)
    await migrate(db)
    async with db.transaction() as session:
        session.add(
            Customer(
                telegram_id=5151,
                chat_id=5151,
                name="Ann",
                locale="en",
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                **fields,
            )
        )
    await db.close()


async def carebot(*args: str, env: dict[str, str]) -> Result:
    """The command, in a thread: it runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)


def test_list_shows_every_job_and_its_next_run(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["jobs", "list"], env=env)
    assert result.exit_code == 0, result.output
    assert "Times in Asia/Shanghai." in result.output
    for name in ("segmentation", "followups", "birthdays", "winback", "surveys", "sla", "digest"):
        line = next(line for line in result.output.splitlines() if line.startswith(name))
        assert " next 20" in line
    assert "every 5 minutes" in result.output and "mon 09:00" in result.output
    assert "sender        continuously" in result.output


async def test_a_job_runs_once_at_the_time_given(env: dict[str, str]) -> None:
    await with_customer(env["DATABASE_URL"], birthday=date(1990, 5, 1))

    first = await carebot("jobs", "run", "birthdays", "--now", "2026-05-01T09:00+08:00", env=env)
    again = await carebot("jobs", "run", "birthdays", "--now", "2026-05-01T09:05+08:00", env=env)
    other_day = await carebot("jobs", "run", "birthdays", "--now", "2026-05-02T09:00", env=env)

    assert first.exit_code == 0, first.output
    assert "birthdays: 1 message enqueued." in first.output
    assert "birthdays: 0 messages enqueued." in again.output
    assert "birthdays: 0 messages enqueued." in other_day.output
    listed = await carebot("jobs", "list", env=env)
    assert "last run for 2026-05-02 09:00: 0 enqueued" in listed.output


async def test_segmentation_reports_the_shares_and_the_model(env: dict[str, str]) -> None:
    await with_customer(env["DATABASE_URL"])
    result = await carebot("jobs", "run", "segmentation", env=env)
    assert result.exit_code == 0, result.output
    assert "segmentation: 1 customer classified." in result.output
    assert "ABC over 0 buying customers" in result.output
    assert "Churn risk: rule signals only, the model was not fitted" in result.output


async def test_the_sender_job_sends_what_is_due(env: dict[str, str]) -> None:
    async with Emulator() as telegram:
        ann = telegram.customer(5151, "Ann", language_code="en")
        await with_customer(env["DATABASE_URL"], birthday=date(1990, 5, 1))
        now = ["--now", "2026-05-01T10:00+08:00"]
        await carebot("jobs", "run", "birthdays", *now, env=env)
        sent = await carebot(
            "jobs",
            "run",
            "sender",
            *now,
            env={**env, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url},
        )
    assert sent.exit_code == 0, sent.output
    assert "sender: 1 message sent." in sent.output
    (greeting,) = ann.messages
    assert (greeting.text or "").startswith("🎂 Happy birthday, Ann!")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["jobs", "run", "horoscopes"], "Unknown job 'horoscopes'; the jobs are: segmentation"),
        (["jobs", "run", "sla", "--now", "next tuesday"], "--now 'next tuesday' is not a time"),
        (["jobs", "run", "sender"], "The sender sends through Telegram: set BOT_TOKEN."),
    ],
)
def test_mistakes_are_explained(env: dict[str, str], args: list[str], words: str) -> None:
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output
