"""Birthdays are written YYYY-MM-DD and must exist on the calendar."""

from __future__ import annotations

from datetime import date

import pytest

from services.profile import ProfileError, clean_line, parse_birthday

TODAY = date(2026, 5, 1)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("2026-02-31", "no_such_day"),
        ("1990-13-01", "no_such_day"),
        ("2023-02-29", "no_such_day"),
        ("31/02/1990", "format"),
        ("1990-2-3", "format"),
        ("yesterday", "format"),
        ("2027-01-01", "future"),
        ("1850-06-01", "too_old"),
    ],
)
def test_a_birthday_that_cannot_be(text: str, reason: str) -> None:
    with pytest.raises(ProfileError) as error:
        parse_birthday(text, TODAY)
    assert error.value.reason == reason


@pytest.mark.parametrize(
    ("text", "born"),
    [(" 1990-05-17 ", date(1990, 5, 17)), ("2024-02-29", date(2024, 2, 29))],
)
def test_a_real_birthday(text: str, born: date) -> None:
    assert parse_birthday(text, TODAY) == born


def test_a_name_is_one_tidy_line() -> None:
    assert clean_line("  Li\n  Wei ", 64) == "Li Wei"
    with pytest.raises(ProfileError, match="too_long"):
        clean_line("x" * 65, 64)
    with pytest.raises(ProfileError, match="empty"):
        clean_line(" \n ", 64)
