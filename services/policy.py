"""The business policy file (carebot.toml): tiers, points, service targets, quiet hours."""

from __future__ import annotations

import tomllib
from datetime import time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Locale = Literal["zh", "en"]
LOCALES: tuple[Locale, ...] = ("zh", "en")


class PolicyError(Exception):
    """The policy file cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Strict):
    zh: str
    en: str

    def __call__(self, locale: str) -> str:
        return self.en if locale == "en" else self.zh


class Tier(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    min_spend: Decimal = Field(ge=0)
    multiplier: Decimal = Field(gt=0)
    followup_months: int = Field(ge=0)
    name: Localized


class Points(_Strict):
    per_unit: Decimal = Field(ge=0)
    expiry_months: int = Field(ge=0)


class Service(_Strict):
    sla_minutes: int = Field(gt=0)


class QuietHours(_Strict):
    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


class Flood(_Strict):
    messages: int = Field(gt=0)
    seconds: int = Field(gt=0)


class Shop(_Strict):
    name: Localized


class Policy(_Strict):
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    phone_region: str = Field(pattern=r"^[A-Z]{2}$")
    shop: Shop
    points: Points
    tiers: tuple[Tier, ...]
    service: Service
    quiet_hours: QuietHours
    flood: Flood

    @field_validator("tiers")
    @classmethod
    def _ordered(cls, tiers: tuple[Tier, ...]) -> tuple[Tier, ...]:
        if not tiers:
            raise ValueError("at least one tier is needed")
        spends = [t.min_spend for t in tiers]
        if spends != sorted(spends, reverse=True) or len(set(spends)) != len(spends):
            raise ValueError("tiers must go from the highest min_spend to the lowest, no ties")
        if spends[-1] != 0:
            raise ValueError('the last tier must have min_spend = "0"')
        if len({t.key for t in tiers}) != len(tiers):
            raise ValueError("tier keys must be unique")
        return tiers

    @model_validator(mode="after")
    def _names_in_every_locale(self) -> Policy:
        for tier in self.tiers:
            for locale in LOCALES:
                if not tier.name(locale).strip():
                    raise ValueError(f"tier {tier.key!r} has no name in {locale}")
        return self

    def tier(self, key: str) -> Tier:
        for tier in self.tiers:
            if tier.key == key:
                return tier
        return self.tiers[-1]

    def tier_for_spend(self, spend: Decimal) -> Tier:
        for tier in self.tiers:
            if spend >= tier.min_spend:
                return tier
        return self.tiers[-1]


def default_policy_text() -> str:
    return resources.files("services").joinpath("carebot.default.toml").read_text("utf-8")


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_policy(path: str | Path | None = None) -> Policy:
    """The shipped defaults with the shop's own file laid over them, key by key.

    With no path, `carebot.toml` in the working directory is used when it exists.
    """
    data = tomllib.loads(default_policy_text())
    source = Path(path) if path else Path("carebot.toml")
    if path or source.exists():
        try:
            override = tomllib.loads(source.read_text("utf-8"))
        except FileNotFoundError:
            raise PolicyError(f"policy file {source} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise PolicyError(f"policy file {source} is not valid TOML: {error}") from None
        data = _merge(data, override)
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise PolicyError(f"policy file {source}: {problems}") from None
