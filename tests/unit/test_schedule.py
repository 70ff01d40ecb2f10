"""The policy's job settings: schedule times as an owner writes them, gifts that exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.policy import PolicyError, When, load_policy, parse_when


@pytest.mark.parametrize(
    ("text", "when"),
    [
        ("09:00", When(hour=9, minute=0)),
        ("7:05", When(hour=7, minute=5)),
        ("mon 09:00", When(hour=9, minute=0, weekday="mon")),
        ("  SUN   23:59 ", When(hour=23, minute=59, weekday="sun")),
        ("every 5 minutes", When(every_minutes=5)),
        ("every 1 minute", When(every_minutes=1)),
    ],
)
def test_schedule_times(text: str, when: When) -> None:
    assert parse_when(text) == when


@pytest.mark.parametrize("text", ["9am", "24:00", "monday 09:00", "every 0 minutes", "hourly"])
def test_times_that_are_not(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a time|every 1 to 59"):
        parse_when(text)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carebot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bad_schedule_names_the_job(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"schedule\.digest.*not a time"):
        load_policy(write(tmp_path, '[schedule]\ndigest = "mondays at nine"\n'))


def test_a_gift_must_be_a_reward_of_the_catalogue(tmp_path: Path) -> None:
    policy = '[winback.incentives]\nat_risk = { kind = "coupon", reward = "yacht" }\n'
    with pytest.raises(PolicyError, match="'yacht' is not in the rewards catalogue"):
        load_policy(write(tmp_path, policy))


def test_win_back_segments_must_exist(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="unknown RFM segments: sleepy"):
        load_policy(write(tmp_path, '[winback]\nsegments = ["at_risk", "sleepy"]\n'))


def test_the_defaults_are_the_documented_ones() -> None:
    policy = load_policy()
    assert policy.schedule.when("birthdays") == When(hour=9, minute=0)
    assert (policy.winback.period_days, policy.winback.max_attempts) == (60, 3)
    assert policy.survey_invitations.delay_days == 3
    assert policy.service.escalation_multiplier == 2
    assert policy.sending.rate == 30 and not policy.sending.allow_paid_broadcast
