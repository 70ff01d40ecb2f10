"""Environment configuration: secrets and infrastructure, validated with clear messages."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from services.policy import Locale

_TOKEN = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# The drivers people usually write, mapped to the async drivers carebot runs on.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+psycopg2": "postgresql+asyncpg",
    "postgresql+psycopg": "postgresql+asyncpg",
}
_SUPPORTED = {"sqlite+aiosqlite", "postgresql+asyncpg"}


class Settings(BaseSettings):
    """Everything read from the environment or `.env`; names are a stable interface."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = Field(default=None, alias="BOT_TOKEN")
    telegram_api_url: str | None = Field(default=None, alias="TELEGRAM_API_URL")
    database_url: str = Field(default="sqlite+aiosqlite:///carebot.db", alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, alias="ADMIN_IDS")
    staff_chat_id: int | None = Field(default=None, alias="STAFF_CHAT_ID")
    api_token: SecretStr | None = Field(default=None, alias="API_TOKEN")
    webhook_url: str | None = Field(default=None, alias="WEBHOOK_URL")
    webhook_secret: SecretStr | None = Field(default=None, alias="WEBHOOK_SECRET")
    timezone: str = Field(default="Asia/Shanghai", alias="TIMEZONE")
    default_locale: Locale = Field(default="zh", alias="DEFAULT_LOCALE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", alias="LOG_LEVEL"
    )
    http_host: str = Field(default="127.0.0.1", alias="HTTP_HOST")
    http_port: int = Field(default=8080, ge=0, le=65535, alias="HTTP_PORT")
    policy_path: str | None = Field(default=None, alias="CAREBOT_POLICY")

    @field_validator(
        "bot_token",
        "api_token",
        "webhook_secret",
        "redis_url",
        "webhook_url",
        "telegram_api_url",
        "policy_path",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("staff_chat_id", mode="before")
    @classmethod
    def _blank_chat_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TOKEN.match(value.get_secret_value()):
            raise ValueError(
                "BOT_TOKEN must look like 123456789:AAE... (digits, a colon, then letters, "
                "digits, '_' or '-'), as @BotFather gives it"
            )
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET.match(value.get_secret_value()):
            raise ValueError("WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p for p in re.split(r"[,\s]+", value.strip()) if p]
            bad = [p for p in parts if not p.lstrip("-").isdigit()]
            if bad:
                raise ValueError(
                    f"ADMIN_IDS must be Telegram user ids separated by commas; not a number: "
                    f"{', '.join(bad)}"
                )
            return [int(p) for p in parts]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Asia/Shanghai"
            ) from None
        return value

    @field_validator("database_url")
    @classmethod
    def _async_database_url(cls, value: str) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "DATABASE_URL is not a database URL; examples: sqlite+aiosqlite:///carebot.db, "
                "postgresql+asyncpg://user:password@host:5432/carebot"
            ) from None
        driver = _ASYNC_DRIVERS.get(url.drivername, url.drivername)
        if driver not in _SUPPORTED:
            raise ValueError(
                f"DATABASE_URL uses {url.drivername!r}; carebot runs on SQLite "
                "(sqlite+aiosqlite://) or PostgreSQL (postgresql+asyncpg://)"
            )
        return url.set(drivername=driver).render_as_string(hide_password=False)

    @field_validator("webhook_url", "telegram_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")


def describe_errors(error: Exception) -> str:
    """A settings ValidationError as lines an operator can act on, naming the variables."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    lines = []
    for item in error.errors():
        name = ".".join(str(p) for p in item["loc"]) or "configuration"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {message}")
    return "\n".join(lines)
