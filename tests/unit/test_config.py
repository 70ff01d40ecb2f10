"""Settings from the environment: the stable names, and clear words for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings, describe_errors


def settings(**env: str) -> Settings:
    return Settings.model_validate(env)


def problem(**env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(**env)
    return describe_errors(caught.value)


def test_embedded_defaults_need_nothing() -> None:
    config = Settings(_env_file=None)
    assert config.database_url == "sqlite+aiosqlite:///carebot.db"
    assert config.timezone == "Asia/Shanghai"
    assert config.default_locale == "zh"
    assert (config.http_host, config.http_port) == ("127.0.0.1", 8080)
    assert config.bot_token is None


def test_every_documented_variable_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "BOT_TOKEN": "123456:ABC-def_ghi",
        "TELEGRAM_API_URL": "http://127.0.0.1:8081/",
        "DATABASE_URL": "postgresql+asyncpg://u:p@db:5432/care",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "ADMIN_IDS": "11, 22",
        "STAFF_CHAT_ID": "-1001234",
        "API_TOKEN": "s3cret",
        "WEBHOOK_URL": "https://bot.example.com/tg",
        "WEBHOOK_SECRET": "abc_DEF-123",
        "TIMEZONE": "Europe/Berlin",
        "DEFAULT_LOCALE": "en",
        "LOG_LEVEL": "DEBUG",
        "HTTP_HOST": "0.0.0.0",
        "HTTP_PORT": "9000",
        "CAREBOT_POLICY": "/etc/carebot.toml",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Settings(_env_file=None)
    assert config.bot_token is not None and config.bot_token.get_secret_value() == env["BOT_TOKEN"]
    assert config.telegram_api_url == "http://127.0.0.1:8081"
    assert config.admin_ids == [11, 22]
    assert config.staff_chat_id == -1001234
    assert config.is_postgres
    assert config.webhook_url == "https://bot.example.com/tg"
    assert (config.timezone, config.default_locale, config.http_port) == (
        "Europe/Berlin",
        "en",
        9000,
    )
    assert config.policy_path == "/etc/carebot.toml"


def test_a_token_that_is_not_digits_colon_text_is_named() -> None:
    message = problem(BOT_TOKEN="not-a-token")
    assert "BOT_TOKEN" in message and "123456789:AAE" in message


def test_an_unknown_time_zone_is_named() -> None:
    message = problem(TIMEZONE="Mars/Olympus")
    assert "TIMEZONE" in message and "Mars/Olympus" in message


def test_a_database_url_sqlalchemy_cannot_parse_is_named() -> None:
    message = problem(DATABASE_URL="not a url")
    assert "DATABASE_URL" in message and "sqlite+aiosqlite" in message


def test_an_unsupported_database_is_named() -> None:
    assert "carebot runs on SQLite" in problem(DATABASE_URL="mysql://u@h/db")


def test_common_urls_get_the_async_driver() -> None:
    assert settings(DATABASE_URL="postgresql://u:p@h/db").database_url == (
        "postgresql+asyncpg://u:p@h/db"
    )
    assert settings(DATABASE_URL="sqlite:///x.db").database_url == "sqlite+aiosqlite:///x.db"


def test_admin_ids_must_be_numbers() -> None:
    assert "not a number: bob" in problem(ADMIN_IDS="1,bob")


def test_a_webhook_secret_telegram_would_refuse_is_named() -> None:
    assert "WEBHOOK_SECRET" in problem(WEBHOOK_SECRET="has spaces")


def test_blank_optional_values_count_as_unset() -> None:
    config = settings(BOT_TOKEN="", STAFF_CHAT_ID="", WEBHOOK_URL=" ")
    assert config.bot_token is None and config.staff_chat_id is None and config.webhook_url is None


DOCUMENTED = {
    "BOT_TOKEN",
    "TELEGRAM_API_URL",
    "DATABASE_URL",
    "REDIS_URL",
    "ADMIN_IDS",
    "STAFF_CHAT_ID",
    "API_TOKEN",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "TIMEZONE",
    "DEFAULT_LOCALE",
    "LOG_LEVEL",
    "HTTP_HOST",
    "HTTP_PORT",
    "CAREBOT_POLICY",
}


def test_env_example_lists_every_variable_and_loads_as_is() -> None:
    example = Path(__file__).parents[2] / ".env.example"
    names = {
        line.split("=", 1)[0]
        for line in example.read_text("utf-8").splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert names == DOCUMENTED
    config = Settings(_env_file=example)
    assert config.bot_token is None and config.admin_ids == [] and config.staff_chat_id is None
