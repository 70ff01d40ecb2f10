"""Buttons of the staff commands (lookup, broadcasts, the inbox) and their callback data.

Every prefix here is listed in bot/permissions.py STAFF_BUTTONS, which gives a press the
role of the command that showed the button.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.buttons import RowId
from bot.say import Say
from models import Customer
from services.campaigns import ABC, AUDIENCE_KINDS
from services.lookup import InboxLine
from services.policy import Policy
from services.rfm import SEGMENTS


class CustomerPick(CallbackData, prefix="sfind"):
    customer: RowId


class BroadcastStep(CallbackData, prefix="sbc"):
    """`step`: kind (an audience kind), value (of that kind), template, send, cancel."""

    step: str
    value: str = ""


class InboxAction(CallbackData, prefix="sinbox"):
    """`action`: take, reply, close, canned (with `name`), cancel."""

    action: str
    ticket: RowId = 0
    name: str = ""


Rows = list[list[InlineKeyboardButton]]

# Audience kinds that need a value chosen next.
VALUED = ("tier", "segment", "abc", "birthday")


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def _grid(buttons: Sequence[InlineKeyboardButton], width: int) -> Rows:
    return [list(buttons[i : i + width]) for i in range(0, len(buttons), width)]


def name_of(say: Say, template: str) -> str:
    """A template's name for a button: its label when it has one (a shop's own template
    may not), else the file name."""
    try:
        return say.label(f"tpl_{template}")
    except KeyError:
        return template


def customer_choices(customers: Sequence[Customer]) -> InlineKeyboardMarkup:
    rows = []
    for customer in customers:
        text = " · ".join(
            part for part in (f"#{customer.id}", customer.name, customer.phone) if part
        )
        rows.append([_button(text[:64], CustomerPick(customer=customer.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _cancel(say: Say) -> list[InlineKeyboardButton]:
    return [_button(say.label("staff_cancel"), BroadcastStep(step="cancel"))]


def audience_kinds(say: Say) -> InlineKeyboardMarkup:
    buttons = [
        _button(say.label(f"audience_{kind}"), BroadcastStep(step="kind", value=kind))
        for kind in AUDIENCE_KINDS
    ]
    return InlineKeyboardMarkup(inline_keyboard=[*_grid(buttons, 2), _cancel(say)])


def audience_values(say: Say, kind: str, policy: Policy) -> InlineKeyboardMarkup:
    options: list[tuple[str, str]]
    if kind == "tier":
        options = [(t.key, t.name(say.locale)) for t in policy.tiers]
    elif kind == "segment":
        options = [(s, say.label(f"segment_{s}")) for s in SEGMENTS]
    elif kind == "abc":
        options = [(c, say.label(f"abc_{c}")) for c in ABC]
    else:
        options = [(str(m), say.label(f"month_{m}")) for m in range(1, 13)]
    buttons = [_button(text, BroadcastStep(step="value", value=key)) for key, text in options]
    width = 3 if kind == "birthday" else 2
    return InlineKeyboardMarkup(inline_keyboard=[*_grid(buttons, width), _cancel(say)])


def templates(say: Say, names: Sequence[str]) -> InlineKeyboardMarkup:
    rows = [
        [_button(name_of(say, name), BroadcastStep(step="template", value=name))] for name in names
    ]
    rows.append([_button(say.label("staff_write_own"), BroadcastStep(step="template", value=""))])
    return InlineKeyboardMarkup(inline_keyboard=[*rows, _cancel(say)])


def confirm_broadcast(say: Say, size: int, token: str) -> InlineKeyboardMarkup:
    """`token` names this confirmation, so a second press cannot send a second time."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                _button(
                    f"{say.label('staff_send')} · {size}", BroadcastStep(step="send", value=token)
                )
            ],
            _cancel(say),
        ]
    )


def inbox(say: Say, tickets: Sequence[InboxLine]) -> InlineKeyboardMarkup:
    rows: Rows = []
    for ticket in tickets:
        row = []
        if ticket.status == "open":
            row.append(
                _button(
                    f"{say.label('staff_take')} #{ticket.id}",
                    InboxAction(action="take", ticket=ticket.id),
                )
            )
        row.append(
            _button(
                f"{say.label('staff_reply')} #{ticket.id}",
                InboxAction(action="reply", ticket=ticket.id),
            )
        )
        row.append(
            _button(
                f"{say.label('staff_close')} #{ticket.id}",
                InboxAction(action="close", ticket=ticket.id),
            )
        )
        rows.append(row)
    return InlineKeyboardMarkup(inline_keyboard=rows)


def canned(say: Say, ticket_id: int, names: Sequence[str]) -> InlineKeyboardMarkup:
    rows = [
        [
            _button(
                name_of(say, name),
                InboxAction(action="canned", ticket=ticket_id, name=name.removeprefix("canned_")),
            )
        ]
        for name in names
    ]
    rows.append([_button(say.label("staff_cancel"), InboxAction(action="cancel"))])
    return InlineKeyboardMarkup(inline_keyboard=rows)
