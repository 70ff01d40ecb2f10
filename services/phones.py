"""Phone numbers in one form (E.164), whatever way a contact card or a shop's list wrote them."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """Not a phone number that could be called."""


def normalize_phone(raw: str, region: str, *, international: bool = False) -> str:
    """`raw` as E.164 (+8613800138000).

    `international` is for Telegram's contact cards, which carry the full international
    number without its "+"; a shop's list may write local numbers, read in `region`.
    """
    text = raw.strip()
    if international and not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(raw) from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(raw)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
