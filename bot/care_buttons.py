"""The buttons under scheduled messages, as JSON for the outbox: open a survey, rate a ticket."""

from __future__ import annotations

from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import buttons
from bot.rendering import Renderer


class CareButtons:
    """What the jobs' services ask for (services.outreach.Buttons), built from the same
    callback data the handlers answer."""

    def __init__(self, renderer: Renderer) -> None:
        self.renderer = renderer

    def survey(self, response_id: int, locale: str) -> dict[str, Any]:
        button = InlineKeyboardButton(
            text=self.renderer.label("survey_start", locale),
            callback_data=buttons.SurveyOpen(response=response_id).pack(),
        )
        return InlineKeyboardMarkup(inline_keyboard=[[button]]).model_dump(exclude_none=True)

    def rating(self, ticket_id: int) -> dict[str, Any]:
        return buttons.rating(ticket_id).model_dump(exclude_none=True)
