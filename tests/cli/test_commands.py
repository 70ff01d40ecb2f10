"""The `carebot` command as an operator meets it: migrate, bad configuration, run and stop."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from sandbox.emulator import Emulator

CAREBOT = str(Path(sys.executable).with_name("carebot"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with no .env or carebot.toml, and none of the caller's settings."""
    monkeypatch.chdir(tmp_path)
    for name in ("BOT_TOKEN", "DATABASE_URL", "WEBHOOK_URL", "CAREBOT_POLICY", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_migrate_creates_then_reports_up_to_date(workdir: Path) -> None:
    env = {"DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'shop.db'}"}
    first = CliRunner().invoke(app, ["migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert "Migrated the database from empty to revision" in first.output
    again = CliRunner().invoke(app, ["migrate"], env=env)
    assert "up to date" in again.output


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("BOT_TOKEN", "abc", "BOT_TOKEN must look like"),
        ("TIMEZONE", "Nowhere/City", "unknown time zone"),
        ("DATABASE_URL", "::", "DATABASE_URL is not a database URL"),
    ],
)
def test_bad_configuration_is_explained_not_traced(
    workdir: Path, variable: str, value: str, words: str
) -> None:
    result = CliRunner().invoke(app, ["run"], env={variable: value})
    assert result.exit_code == 2
    assert words in result.output and "Traceback" not in result.output


def test_a_broken_policy_file_is_explained(workdir: Path) -> None:
    (workdir / "carebot.toml").write_text("[service]\nsla_minutes = -1\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 2
    assert "Policy error" in result.output and "sla_minutes" in result.output


async def test_the_real_process_answers_and_stops_cleanly_on_sigterm(
    workdir: Path, database_url: str
) -> None:
    async with Emulator() as telegram:
        env = {
            **os.environ,
            "BOT_TOKEN": "4242:process-test-token",
            "TELEGRAM_API_URL": telegram.base_url,
            "DATABASE_URL": database_url,
            "HTTP_PORT": "0",
        }
        process = await asyncio.create_subprocess_exec(
            CAREBOT, "run", env=env, cwd=workdir, stderr=asyncio.subprocess.PIPE
        )
        try:
            rosa = telegram.customer(1901, "Rosa", language_code="en")
            rosa.reply_timeout = 30
            assert "Hello Rosa" in (await rosa.says("/start")).text
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 20)
        finally:
            if process.returncode is None:
                process.kill()
        assert process.stderr is not None
        log = (await process.stderr.read()).decode()
        assert code == 0, log
        assert "polling mode" in log and "Traceback" not in log
