"""The HTTP session to the Bot API: aiogram's, keeping the answer models it builds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType

if TYPE_CHECKING:
    from aiogram import Bot


class TelegramSession(AiohttpSession):
    """aiogram reads every answer through `Response[<the method's result type>]`. pydantic
    holds such a class only weakly, so once nothing else refers to it the next collection
    frees it and the next call builds it again, which cost a tenth of the bot's time per
    update. Keeping one of each here makes every call after the first find it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._answer_models: dict[Any, type[Response[Any]]] = {}

    def check_response(
        self, bot: Bot, method: TelegramMethod[TelegramType], status_code: int, content: str
    ) -> Response[TelegramType]:
        returning = method.__returning__
        if returning not in self._answer_models:
            self._answer_models[returning] = Response[returning]  # type: ignore[valid-type]
        return super().check_response(bot, method, status_code, content)
