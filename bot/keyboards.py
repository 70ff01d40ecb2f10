"""Buttons and their callback data; labels come from the templates like every other text."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)

from bot.rendering import Renderer

MENU_ITEMS = (
    "points",
    "rewards",
    "feedback",
    "tickets",
    "survey",
    "profile",
    "language",
    "help",
)


class Menu(CallbackData, prefix="menu"):
    item: str


class Language(CallbackData, prefix="lang"):
    code: str


class OptOut(CallbackData, prefix="optout"):
    """The unsubscribe button under every marketing message."""


def main_menu(renderer: Renderer, locale: str) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(
            text=renderer.label(f"menu_{item}", locale), callback_data=Menu(item=item).pack()
        )
        for item in MENU_ITEMS
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    )


def share_phone(renderer: Renderer, locale: str) -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=renderer.label("share_phone", locale), request_contact=True)],
            [KeyboardButton(text=renderer.label("phone_later", locale))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def languages() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text="中文", callback_data=Language(code="zh").pack()),
                InlineKeyboardButton(text="English", callback_data=Language(code="en").pack()),
            ]
        ]
    )
