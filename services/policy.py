"""The business policy file (carebot.toml): tiers, points, service targets, quiet hours."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services import tiers as spend_tiers
from services.rfm import SEGMENTS

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
    # How far ahead /points warns about points about to expire.
    expiry_warning_days: int = Field(default=30, ge=1)


class Service(_Strict):
    sla_minutes: int = Field(gt=0)
    # Past this many times the SLA, an unanswered ticket is escalated to the admins.
    escalation_multiplier: float = Field(default=2.0, gt=1)


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


class Reward(_Strict):
    """One entry of the rewards catalogue (积分兑换): points buy a coupon for it."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name: Localized
    cost: int = Field(gt=0)
    # How many can ever be redeemed; None = unlimited.
    stock: int | None = Field(default=None, ge=0)


class Recovery(_Strict):
    """The apology staff may grant with one button after a rating of 1 or 2."""

    kind: Literal["points", "coupon"] = "points"
    points: int = Field(default=200, ge=0)
    reward: str | None = None


SurveyKind = Literal["rating", "nps", "choice", "text"]


class Choice(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    zh: str
    en: str

    def __call__(self, locale: str) -> str:
        return self.en if locale == "en" else self.zh


class QuestionSpec(_Strict):
    kind: SurveyKind
    text: Localized
    choices: tuple[Choice, ...] = ()
    optional: bool = False

    @model_validator(mode="after")
    def _choices_fit_the_kind(self) -> QuestionSpec:
        if self.kind == "choice" and not 2 <= len(self.choices) <= 8:
            raise ValueError("a choice question needs 2 to 8 choices")
        if self.kind != "choice" and self.choices:
            raise ValueError(f"a {self.kind} question takes no choices")
        return self


class SurveySpec(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    title: Localized
    # What sends it besides /survey: "manual" (only /survey), "purchase", "ticket".
    trigger: Literal["manual", "purchase", "ticket"] = "manual"
    questions: tuple[QuestionSpec, ...] = Field(min_length=1, max_length=20)


class Campaigns(_Strict):
    # A recipient's purchases within this many days of a broadcast count as its result.
    attribution_days: int = Field(default=14, ge=1, le=365)
    # The "at risk" audience: churn risk at or above this (or an at-risk RFM segment).
    at_risk_probability: float = Field(default=0.5, gt=0, le=1)


class Reports(_Strict):
    # The period /stats covers when none is given.
    period_days: int = Field(default=30, ge=1, le=3660)


_AT = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun)\s+)?([01]?\d|2[0-3]):([0-5]\d)$")
_EVERY = re.compile(r"^every\s+(\d{1,2})\s+minutes?$")


@dataclass(frozen=True)
class When:
    """When a job runs, in the business time zone: at `hour:minute` every day (or on
    `weekday` only), or every `every_minutes` minutes."""

    hour: int = 0
    minute: int = 0
    weekday: str | None = None
    every_minutes: int | None = None


def parse_when(text: str) -> When:
    """ "09:00" (daily), "mon 09:00" (weekly), "every 5 minutes"; ValueError otherwise."""
    raw = " ".join(text.lower().split())
    if every := _EVERY.match(raw):
        minutes = int(every.group(1))
        if not 1 <= minutes <= 59:
            raise ValueError(f"{text!r}: every 1 to 59 minutes")
        return When(every_minutes=minutes)
    if at := _AT.match(raw):
        return When(hour=int(at.group(2)), minute=int(at.group(3)), weekday=at.group(1))
    raise ValueError(
        f'{text!r} is not a time: write "09:00" (every day), "mon 09:00" (once a week) or '
        '"every 5 minutes"'
    )


class Schedule(_Strict):
    """When each scheduled job runs (see `parse_when` for the forms)."""

    segmentation: str = "03:00"
    followups: str = "10:00"
    # The local hour birthday greetings go out.
    birthdays: str = "09:00"
    winback: str = "10:30"
    surveys: str = "11:00"
    sla: str = "every 5 minutes"
    digest: str = "mon 09:00"

    @field_validator("*")
    @classmethod
    def _readable(cls, value: str) -> str:
        parse_when(value)
        return value

    def when(self, job: str) -> When:
        return parse_when(str(getattr(self, job)))


class Classification(_Strict):
    """The nightly classification: RFM and ABC over a window, and the churn signals."""

    # RFM and ABC look at purchases within this many days.
    window_days: int = Field(default=365, ge=1, le=3660)
    # ABC cuts by cumulative share of revenue: A up to a_share, B up to b_share.
    abc_a_share: float = Field(default=0.80, gt=0, lt=1)
    abc_b_share: float = Field(default=0.95, gt=0, le=1)
    # The BG/NBD churn model is fitted in units of this many days, when at least
    # `model_min_customers` customers have bought (else the rule signals alone decide).
    model_unit_days: float = Field(default=7, gt=0)
    model_min_customers: int = Field(default=30, ge=2)
    # A customer is overdue when their silence exceeds this many times their usual
    # interval between purchases.
    interval_factor: float = Field(default=2.0, gt=1)
    # Complaints, and ratings at or below `low_rating`, count within this many days.
    signal_days: int = Field(default=90, ge=1)
    low_rating: int = Field(default=2, ge=1, le=4)

    @model_validator(mode="after")
    def _shares_in_order(self) -> Classification:
        if self.abc_a_share > self.abc_b_share:
            raise ValueError("abc_a_share must not exceed abc_b_share")
        return self


class Gift(_Strict):
    """A present that goes with a message: bonus points, a coupon for a catalogue reward,
    or nothing."""

    kind: Literal["none", "points", "coupon"] = "none"
    points: int = Field(default=0, ge=0)
    reward: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> Gift:
        if self.kind == "points" and self.points <= 0:
            raise ValueError('a gift of kind "points" needs points > 0')
        if self.kind == "coupon" and not self.reward:
            raise ValueError('a gift of kind "coupon" needs the key of a reward')
        return self


class Birthdays(_Strict):
    # The gift per tier key; a tier not named gets a greeting only, and a gift for a key
    # that is not a tier is never given.
    gifts: dict[str, Gift] = Field(default_factory=dict)


class Followups(_Strict):
    # A customer contacted by staff or by any campaign within this many days is skipped
    # (and tried again on a later day of the same period).
    quiet_days: int = Field(default=14, ge=0, le=365)


class Winback(_Strict):
    # At risk: churn risk at or above this (0-1), or one of these RFM segments.
    risk_threshold: float = Field(default=0.5, gt=0, le=1)
    segments: tuple[str, ...] = ("at_risk", "cant_lose_them", "about_to_sleep", "hibernating")
    # Customers silent for longer than this are left alone.
    max_silence_days: int = Field(default=730, ge=1)
    period_days: int = Field(default=60, ge=1)
    max_attempts: int = Field(default=3, ge=0)
    # A purchase within this many days of a win-back message counts as won back.
    attribution_days: int = Field(default=30, ge=1, le=365)
    # The incentive per RFM segment; "default" for customers at risk by churn risk alone.
    incentives: dict[str, Gift] = Field(default_factory=dict)

    @field_validator("segments")
    @classmethod
    def _known_segments(cls, segments: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(segments) - set(SEGMENTS))
        if unknown:
            raise ValueError(f"unknown RFM segments: {', '.join(unknown)}")
        return segments

    @field_validator("incentives")
    @classmethod
    def _known_incentive_segments(cls, incentives: dict[str, Gift]) -> dict[str, Gift]:
        unknown = sorted(set(incentives) - {*SEGMENTS, "default"})
        if unknown:
            raise ValueError(f"incentives for unknown segments: {', '.join(unknown)}")
        return incentives


class Invitations(_Strict):
    # A post-purchase survey goes this many days after the purchase...
    delay_days: int = Field(default=3, ge=0, le=90)
    # ...for purchases at most this many days older than that (history imported later
    # is not asked about)...
    window_days: int = Field(default=7, ge=1, le=90)
    # ...and at most once per customer per this many days.
    period_days: int = Field(default=30, ge=1, le=365)
    # A closed ticket still unrated after this many hours gets one reminder to rate it.
    csat_reminder_hours: int = Field(default=24, ge=1, le=720)


class Sending(_Strict):
    # Telegram's free limits: about 30 messages a second overall, one per second per chat.
    rate_per_second: float = Field(default=30, gt=0, le=30)
    per_chat_seconds: float = Field(default=1.0, ge=0)
    # Paid broadcasts (0.1 Telegram Stars per message) lift the overall limit up to 1000/s.
    allow_paid_broadcast: bool = False
    paid_rate_per_second: float = Field(default=1000, gt=0, le=1000)
    # Messages a sender claimed and did not finish (it died) are sent again after this long.
    claim_timeout_seconds: int = Field(default=120, ge=1, le=3600)

    @property
    def rate(self) -> float:
        return self.paid_rate_per_second if self.allow_paid_broadcast else self.rate_per_second


class Policy(_Strict):
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    phone_region: str = Field(pattern=r"^[A-Z]{2}$")
    shop: Shop
    points: Points
    tiers: tuple[Tier, ...]
    service: Service
    quiet_hours: QuietHours
    flood: Flood
    rewards: tuple[Reward, ...] = ()
    recovery: Recovery = Recovery()
    surveys: tuple[SurveySpec, ...] = ()
    campaigns: Campaigns = Campaigns()
    reports: Reports = Reports()
    schedule: Schedule = Schedule()
    segmentation: Classification = Classification()
    birthdays: Birthdays = Birthdays()
    followups: Followups = Followups()
    winback: Winback = Winback()
    survey_invitations: Invitations = Invitations()
    sending: Sending = Sending()

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

    @model_validator(mode="after")
    def _catalogue_is_consistent(self) -> Policy:
        keys = [r.key for r in self.rewards]
        if len(set(keys)) != len(keys):
            raise ValueError("reward keys must be unique")
        if self.recovery.kind == "coupon" and self.recovery.reward not in keys:
            raise ValueError("recovery.reward must name a reward of the catalogue")
        survey_keys = [s.key for s in self.surveys]
        if len(set(survey_keys)) != len(survey_keys):
            raise ValueError("survey keys must be unique")
        return self

    @model_validator(mode="after")
    def _gifts_are_consistent(self) -> Policy:
        rewards = {r.key for r in self.rewards}
        gifts = [*self.birthdays.gifts.values(), *self.winback.incentives.values()]
        for gift in gifts:
            if gift.kind == "coupon" and gift.reward not in rewards:
                raise ValueError(f"gift reward {gift.reward!r} is not in the rewards catalogue")
        return self

    def reward(self, key: str) -> Reward | None:
        return next((r for r in self.rewards if r.key == key), None)

    def tier(self, key: str) -> Tier:
        for tier in self.tiers:
            if tier.key == key:
                return tier
        return self.tiers[-1]

    def tier_for_spend(self, spend: Decimal) -> Tier:
        return self.tiers[spend_tiers.tier_index(spend, self.tiers)]


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
