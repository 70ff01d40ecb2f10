"""Every text the bot says, rendered from templates/<locale>/<name>.j2 in one sandbox."""

from __future__ import annotations

import logging
import traceback
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal
from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    pass_context,
    select_autoescape,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from services.policy import LOCALES

log = logging.getLogger(__name__)

# Parsed once: babel merges a locale's data anew for every call given its name, which was
# most of the cost of formatting a number.
BABEL_LOCALES = {"zh": Locale.parse("zh_Hans_CN"), "en": Locale.parse("en")}


def normalize_locale(code: str | None, default: str) -> str:
    """Telegram's language_code ("zh-hans", "en-US", "ru") as one of our locales."""
    if code:
        base = code.split("-")[0].split("_")[0].lower()
        if base in LOCALES:
            return base
    return default


class StaffTemplateError(TemplateError):
    """A text staff wrote that cannot be rendered; its message names the line, which is
    what staff need to fix it."""

    def __init__(self, error: Exception) -> None:
        self.line = _line_of(error)
        # Jinja2's own words (English): the staff_broadcast_broken template puts them
        # after the line, said in the staff member's language.
        self.detail = str(getattr(error, "message", None) or error) or type(error).__name__
        super().__init__(f"line {self.line}: {self.detail}" if self.line else self.detail)


def _line_of(error: Exception) -> int | None:
    if isinstance(error, TemplateSyntaxError):
        return error.lineno
    # Jinja2 rewrites a failing render's traceback so that it points into the template.
    lines = [
        f.lineno for f in traceback.extract_tb(error.__traceback__) if f.filename == "<template>"
    ]
    return lines[-1] if lines else None


# What one staff-written expression may produce: a power of at most this many bits, a
# repeated text or list of at most this many items. Enough for any message; far below what
# would stall the bot or fill its memory (`{{ 9**9**9 }}`, `{{ "x" * 10**9 }}`).
MAX_POWER_BITS = 1024
MAX_REPEAT = 10_000


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox, which keeps templates away from Python internals, with a bound on
    the two operators whose results grow without one."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _power_too_large(left, right):
            raise SecurityError(f"the power {left!r} ** {right!r} is too large")
        if operator == "*" and _repeat_too_long(left, right):
            raise SecurityError(f"the repetition gives more than {MAX_REPEAT} items")
        return super().call_binop(context, operator, left, right)


def _power_too_large(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return False
    return abs(base) > 1 and exponent * abs(base).bit_length() > MAX_POWER_BITS


def _repeat_too_long(left: Any, right: Any) -> bool:
    for items, times in ((left, right), (right, left)):
        if isinstance(items, str | list | tuple) and isinstance(times, int):
            return len(items) * times > MAX_REPEAT
    return False


class Renderer:
    """Looks a template up in the customer's locale, then in the default locale.

    Autoescape is on because every message is sent with parse_mode=HTML: a customer's
    name such as "<b>" must arrive as text, never as markup.
    """

    def __init__(
        self,
        *,
        default_locale: str = "zh",
        timezone: ZoneInfo,
        currency: str = "CNY",
        override_dir: Path | None = None,
    ) -> None:
        self.default_locale = default_locale
        self.timezone = timezone
        self.currency = currency
        packaged = str(resources.files("templates"))
        loaders = [FileSystemLoader(str(override_dir))] if override_dir else []
        loaders.append(FileSystemLoader(packaged))
        self.env = Sandbox(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(default_for_string=True, default=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        self._labels: dict[str, Any] = {}
        self._install_filters()

    def _template(self, name: str, locale: str) -> tuple[Template, str]:
        for candidate in dict.fromkeys((locale, self.default_locale)):
            try:
                return self.env.get_template(f"{candidate}/{name}.j2"), candidate
            except TemplateNotFound:
                continue
        raise TemplateNotFound(f"{locale}/{name}.j2")

    def render(self, template: str, locale: str, /, **context: Any) -> str:
        compiled, found = self._template(template, locale)
        if found != locale:
            log.warning("template %s missing in %s, using %s", template, locale, found)
        return compiled.render(_locale=found, **context).strip()

    def render_string(self, source: str, locale: str, /, **context: Any) -> str:
        """A text staff wrote (a broadcast), in the same sandbox and with the same filters
        as the templates. Whatever goes wrong in it (bad syntax, a name it may not use, a
        range the sandbox refuses, a division by zero) raises StaffTemplateError."""
        try:
            return self.env.from_string(source).render(_locale=locale, **context).strip()
        except Exception as error:
            raise StaffTemplateError(error) from error

    def template_names(self, prefix: str) -> list[str]:
        """The templates whose names start with `prefix`, as found in the default locale."""
        folder = f"{self.default_locale}/"
        found = self.env.list_templates(
            filter_func=lambda n: n.startswith(folder + prefix) and n.endswith(".j2")
        )
        return sorted({n.removeprefix(folder).removesuffix(".j2") for n in found})

    def label(self, key: str, locale: str) -> str:
        """A short text (button, command description) from <locale>/labels.j2."""
        for candidate in dict.fromkeys((locale, self.default_locale)):
            module = self._labels_module(candidate)
            value = getattr(module, key, None) if module is not None else None
            if isinstance(value, str):
                return value
        raise KeyError(f"no label {key!r} in {locale} or {self.default_locale}")

    def labels_everywhere(self, key: str) -> set[str]:
        """The label in every locale: a reply-keyboard press arrives as its text."""
        return {self.label(key, locale) for locale in LOCALES}

    def _labels_module(self, locale: str) -> Any:
        if locale not in self._labels:
            try:
                template = self.env.get_template(f"{locale}/labels.j2")
            except TemplateNotFound:
                self._labels[locale] = None
            else:
                self._labels[locale] = template.make_module({"_locale": locale})
        return self._labels[locale]

    def _install_filters(self) -> None:
        zone = self.timezone

        def babel(context: Context) -> Locale:
            return BABEL_LOCALES.get(str(context.get("_locale")), BABEL_LOCALES["zh"])

        @pass_context
        def number(context: Context, value: int | Decimal | float) -> str:
            return format_decimal(value, locale=babel(context))

        @pass_context
        def money(context: Context, value: Decimal | int, currency: str | None = None) -> str:
            return format_currency(value, currency or self.currency, locale=babel(context))

        @pass_context
        def day(context: Context, value: date | datetime, style: str = "medium") -> str:
            if isinstance(value, datetime):
                value = value.astimezone(zone).date()
            return format_date(value, format=style, locale=babel(context))

        @pass_context
        def moment(context: Context, value: datetime, style: str = "medium") -> str:
            return format_datetime(value, format=style, tzinfo=zone, locale=babel(context))

        self.env.filters.update(number=number, money=money, day=day, moment=moment)
