"""The policy file: shipped defaults, a shop's overrides, and clear errors."""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

import pytest

from services.policy import PolicyError, load_policy


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "carebot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_the_guides_tiers(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, ""))
    assert [(t.key, t.min_spend) for t in policy.tiers] == [
        ("key", Decimal(1000)),
        ("regular", Decimal(300)),
        ("small", Decimal(0)),
    ]
    assert policy.tier("key").name("zh") == "主要客户"
    assert policy.service.sla_minutes == 30
    assert policy.quiet_hours.contains(time(22, 0)) and not policy.quiet_hours.contains(time(12))


@pytest.mark.parametrize(
    ("spend", "tier"),
    [("1000", "key"), ("999.99", "regular"), ("300", "regular"), ("299.99", "small")],
)
def test_tier_for_spend(tmp_path: Path, spend: str, tier: str) -> None:
    assert load_policy(write(tmp_path, "")).tier_for_spend(Decimal(spend)).key == tier


def test_a_shop_overrides_one_key_and_keeps_the_rest(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "[service]\nsla_minutes = 15\n"))
    assert policy.service.sla_minutes == 15
    assert policy.flood.messages == 20


def test_tiers_out_of_order_are_refused(tmp_path: Path) -> None:
    text = """
[[tiers]]
key = "a"
min_spend = "0"
multiplier = "1"
followup_months = 0
name = { zh = "甲", en = "A" }

[[tiers]]
key = "b"
min_spend = "100"
multiplier = "1"
followup_months = 0
name = { zh = "乙", en = "B" }
"""
    with pytest.raises(PolicyError, match="highest min_spend to the lowest"):
        load_policy(write(tmp_path, text))


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(write(tmp_path, "[service\n"))


def test_unknown_keys_are_refused_rather_than_ignored(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="sla_minuts"):
        load_policy(write(tmp_path, "[service]\nsla_minuts = 5\n"))


def test_a_missing_file_named_explicitly_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "nope.toml")
