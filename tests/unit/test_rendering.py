"""Templates: one sandboxed environment, locale fallback, escaping for HTML parse mode."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2.exceptions import SecurityError, TemplateError

from bot.rendering import Renderer, normalize_locale
from models import AuditEntry
from services.loyalty import RefundTarget, SaleError, check_refund
from services.policy import LOCALES

TEMPLATES = Path(__file__).parents[2] / "templates"


@pytest.fixture
def renderer(tmp_path: Path) -> Renderer:
    return Renderer(timezone=ZoneInfo("Asia/Shanghai"), override_dir=tmp_path)


def test_every_template_exists_in_every_locale() -> None:
    names = {locale: {p.name for p in (TEMPLATES / locale).glob("*.j2")} for locale in LOCALES}
    assert names["zh"] == names["en"]


def test_every_label_exists_in_every_locale(renderer: Renderer) -> None:
    text = (TEMPLATES / "zh" / "labels.j2").read_text("utf-8")
    keys = [line.split()[2] for line in text.splitlines() if line.startswith("{% set")]
    for key in keys:
        assert renderer.label(key, "zh") != renderer.label(key, "en")


def test_customer_text_is_escaped(renderer: Renderer) -> None:
    text = renderer.render(
        "welcome", "en", name="<b>x</b>", shop="s", returning=True, has_phone=True
    )
    assert "&lt;b&gt;x&lt;/b&gt;" in text


def test_a_template_missing_in_a_locale_falls_back_to_the_default(
    renderer: Renderer, tmp_path: Path
) -> None:
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "only_zh.j2").write_text("只有中文", encoding="utf-8")
    assert renderer.render("only_zh", "en") == "只有中文"


def test_money_and_numbers_follow_the_locale(renderer: Renderer, tmp_path: Path) -> None:
    for locale in LOCALES:
        (tmp_path / locale).mkdir()
        (tmp_path / locale / "m.j2").write_text(
            "{{ a | money }} {{ n | number }}", encoding="utf-8"
        )
    assert renderer.render("m", "en", a=Decimal("1234.5"), n=12345) == "CN¥1,234.50 12,345"
    assert renderer.render("m", "zh", a=Decimal("1234.5"), n=12345) == "¥1,234.50 12,345"


def test_a_template_cannot_reach_python_internals(renderer: Renderer, tmp_path: Path) -> None:
    (tmp_path / "zh").mkdir()
    (tmp_path / "zh" / "evil.j2").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8"
    )
    with pytest.raises(SecurityError):
        renderer.render("evil", "zh")


@pytest.mark.parametrize(
    ("code", "locale"),
    [("zh-hans", "zh"), ("zh-TW", "zh"), ("en-US", "en"), ("en", "en"), ("ru", "zh"), (None, "zh")],
)
def test_telegram_language_codes(code: str | None, locale: str) -> None:
    assert normalize_locale(code, "zh") == locale


@pytest.mark.parametrize(
    "source", ["{{ 9**9**9**9 }}", "{{ 2 ** 5000 }}", "{{ 'x' * 10**9 }}", "{{ 10**6 * [0] }}"]
)
def test_a_staff_text_cannot_build_huge_values(renderer: Renderer, source: str) -> None:
    with pytest.raises(TemplateError, match=r"too large|more than"):
        renderer.render_string(source, "en")


def test_ordinary_arithmetic_still_works(renderer: Renderer) -> None:
    text = "{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ 3 * 4 }} {{ 2.5 * 2 }} {{ -2 ** 3 }}"
    assert renderer.render_string(text, "en") == "1024 ababab 12 5.0 -8"


@pytest.mark.parametrize(
    ("target", "buyer", "amount"),
    [
        (None, None, "-5"),
        (RefundTarget(Decimal(50), customer_id=1, refunded=Decimal(0)), 2, "-5"),
        (RefundTarget(Decimal(50), customer_id=1, refunded=Decimal(-40)), 1, "-20"),
    ],
)
def test_a_refused_sale_is_told_to_staff_in_their_language(
    renderer: Renderer, target: RefundTarget | None, buyer: int | None, amount: str
) -> None:
    with pytest.raises(SaleError) as refused:
        check_refund("S-1", Decimal(amount), target, buyer)
    error = refused.value
    zh = renderer.render("staff_sale_refused", "zh", error=error)
    en = renderer.render("staff_sale_refused", "en", error=error)
    assert error.field in zh and error.reason not in zh
    assert error.reason.replace("'", "") in en


def test_the_audit_log_says_who_acted(renderer: Renderer) -> None:
    at = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    entries = [
        AuditEntry(action="privacy.erase", target_type="customer", target_id="7", created_at=at),
        AuditEntry(action="import.purchases", actor_telegram_id=None, created_at=at),
        AuditEntry(action="points.adjust", actor_telegram_id=4242, created_at=at),
    ]
    zh = renderer.render("staff_audit", "zh", entries=entries).splitlines()
    en = renderer.render("staff_audit", "en", entries=entries).splitlines()
    assert ["顾客本人" in zh[1], "命令行" in zh[2], "4242" in zh[3]] == [True] * 3
    assert ["the customer" in en[1], "command line" in en[2], "4242" in en[3]] == [True] * 3
