"""Buttons of the customer-care conversations and their callback data: rewards, feedback
and tickets, ratings, surveys, profile and privacy, and the staff inbox."""

from __future__ import annotations

import contextlib
from typing import Annotated

from aiogram.exceptions import TelegramBadRequest
from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    CallbackQuery,
    InaccessibleMessage,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)
from pydantic import Field

from bot.rendering import Renderer
from models import TicketKind
from services.policy import Reward
from services.surveys import Question

Rows = list[list[InlineKeyboardButton]]
# A row id in button data: within the databases' integer column, so a forged button with a
# huge number is refused by the filter as any malformed data is, never sent to the query.
RowId = Annotated[int, Field(ge=0, le=2**31 - 1)]


class RewardPick(CallbackData, prefix="rw"):
    key: str


class RewardConfirm(CallbackData, prefix="rwok"):
    """`nonce` names this confirmation: pressing it twice redeems once."""

    key: str
    nonce: str


class RewardCancel(CallbackData, prefix="rwno"):
    pass


class FeedbackKind(CallbackData, prefix="fb"):
    kind: str


class FeedbackSend(CallbackData, prefix="fbsend"):
    pass


class FeedbackCancel(CallbackData, prefix="fbno"):
    pass


class Rate(CallbackData, prefix="csat"):
    ticket: RowId
    score: int


class TicketAction(CallbackData, prefix="tk"):
    action: str  # "take" or "close"
    ticket: RowId


class GrantOffer(CallbackData, prefix="rec"):
    offer: RowId


class RefreshCard(CallbackData, prefix="card"):
    customer: RowId


class CouponUsed(CallbackData, prefix="cpn"):
    code: str


class SurveyOpen(CallbackData, prefix="svo"):
    """Begin a survey on one's own (`survey`) or go on with a response (`response`)."""

    survey: RowId = 0
    response: RowId = 0


class SurveyAnswer(CallbackData, prefix="sva"):
    response: RowId
    question: RowId
    value: int


class SurveySkip(CallbackData, prefix="svs"):
    response: RowId
    question: RowId


class ProfileEdit(CallbackData, prefix="pf"):
    field: str  # name, birthday, region, language, marketing_on, marketing_off


class Forget(CallbackData, prefix="forget"):
    confirm: bool


def _button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def _markup(rows: Rows) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)


def rewards(renderer: Renderer, locale: str, items: list[Reward]) -> InlineKeyboardMarkup:
    label = renderer.label("redeem", locale)
    return _markup(
        [[_button(f"{label} {r.name(locale)} · {r.cost}", RewardPick(key=r.key))] for r in items]
    )


def confirm_reward(
    renderer: Renderer, locale: str, reward: Reward, nonce: str
) -> InlineKeyboardMarkup:
    return _markup(
        [
            [
                _button(
                    renderer.label("confirm", locale), RewardConfirm(key=reward.key, nonce=nonce)
                ),
                _button(renderer.label("cancel", locale), RewardCancel()),
            ]
        ]
    )


def feedback_kinds(renderer: Renderer, locale: str) -> InlineKeyboardMarkup:
    buttons = [
        _button(renderer.label(f"kind_{kind.value}", locale), FeedbackKind(kind=kind.value))
        for kind in TicketKind
    ]
    return _markup(
        [buttons[:2], buttons[2:], [_button(renderer.label("cancel", locale), FeedbackCancel())]]
    )


def feedback_send(renderer: Renderer, locale: str) -> InlineKeyboardMarkup:
    return _markup(
        [
            [
                _button(renderer.label("send", locale), FeedbackSend()),
                _button(renderer.label("cancel", locale), FeedbackCancel()),
            ]
        ]
    )


def rating(ticket_id: int) -> InlineKeyboardMarkup:
    return _markup(
        [[_button("⭐" * score, Rate(ticket=ticket_id, score=score)) for score in range(1, 6)]]
    )


def ticket_actions(
    renderer: Renderer, locale: str, ticket_id: int, *, taken: bool
) -> InlineKeyboardMarkup:
    row = (
        []
        if taken
        else [
            _button(renderer.label("take", locale), TicketAction(action="take", ticket=ticket_id))
        ]
    )
    row.append(
        _button(renderer.label("close", locale), TicketAction(action="close", ticket=ticket_id))
    )
    return _markup([row])


def grant_offer(renderer: Renderer, locale: str, offer_id: int) -> InlineKeyboardMarkup:
    return _markup([[_button(renderer.label("grant_offer", locale), GrantOffer(offer=offer_id))]])


def refresh_card(renderer: Renderer, locale: str, customer_id: int) -> InlineKeyboardMarkup:
    return _markup(
        [[_button(renderer.label("refresh", locale), RefreshCard(customer=customer_id))]]
    )


def coupon_used(renderer: Renderer, locale: str, code: str) -> InlineKeyboardMarkup:
    return _markup([[_button(renderer.label("coupon_used", locale), CouponUsed(code=code))]])


def survey_list(
    renderer: Renderer, locale: str, offers: list[tuple[str, SurveyOpen]]
) -> InlineKeyboardMarkup:
    return _markup([[_button(text, data)] for text, data in offers])


def survey_question(
    renderer: Renderer, locale: str, response_id: int, question: Question
) -> InlineKeyboardMarkup | None:
    def answer(text: str, value: int) -> InlineKeyboardButton:
        return _button(text, SurveyAnswer(response=response_id, question=question.id, value=value))

    rows: Rows = []
    if question.kind == "rating":
        rows.append([answer(str(score), score) for score in range(1, 6)])
    elif question.kind == "nps":
        rows.append([answer(str(score), score) for score in range(0, 6)])
        rows.append([answer(str(score), score) for score in range(6, 11)])
    elif question.kind == "choice":
        rows.extend(
            [answer(text, index)] for index, text in enumerate(question.choice_labels(locale))
        )
    if question.optional:
        rows.append(
            [
                _button(
                    renderer.label("skip", locale),
                    SurveySkip(response=response_id, question=question.id),
                )
            ]
        )
    return _markup(rows) if rows else None


def profile(renderer: Renderer, locale: str, *, marketing: bool) -> InlineKeyboardMarkup:
    def edit(field: str) -> InlineKeyboardButton:
        return _button(renderer.label(f"edit_{field}", locale), ProfileEdit(field=field))

    toggle = "marketing_off" if marketing else "marketing_on"
    return _markup(
        [
            [edit("name"), edit("birthday")],
            [edit("region"), edit("language")],
            [edit(toggle)],
        ]
    )


def forget(renderer: Renderer, locale: str) -> InlineKeyboardMarkup:
    return _markup(
        [
            [
                _button(renderer.label("forget_yes", locale), Forget(confirm=True)),
                _button(renderer.label("forget_no", locale), Forget(confirm=False)),
            ]
        ]
    )


async def drop(query: CallbackQuery) -> None:
    """Take the buttons off the message pressed: a confirmation or an answer is used once."""
    if query.message is not None and not isinstance(query.message, InaccessibleMessage):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_reply_markup(reply_markup=None)
