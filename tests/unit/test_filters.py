"""Plain filters (magic filters, states) are checked on the event loop, with aiogram's own
meaning: false stops the handler, a dict adds to its arguments."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Dispatcher, F, Router
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Chat, Message

import handlers
from bot.filters import check_filters_inline


class Steps(StatesGroup):
    asked = State()


def message(text: str, chat_type: str = "private") -> Message:
    return Message.model_validate(
        {"message_id": 1, "date": 0, "chat": Chat(id=1, type=chat_type), "text": text}
    )


async def test_magic_filters_and_states_run_inline_with_their_meaning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router = Router()
    router.message.filter(F.chat.type == "private")

    @router.message(Steps.asked, F.text.as_("words"))
    async def answer(message: Message, words: str) -> None: ...

    check_filters_inline(router)

    async def no_threads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a filter went to a thread")

    monkeypatch.setattr(asyncio, "to_thread", no_threads)
    own = router.message._handler.filters or []
    state, words = router.message.handlers[0].filters or []
    assert await own[0].call(message("hi")) is True
    assert await own[0].call(message("hi", "group")) is False
    assert await state.call(message("hi"), raw_state=Steps.asked.state) is True
    assert await state.call(message("hi"), raw_state=None) is False
    assert await words.call(message("hi")) == {"words": "hi"}


def test_every_filter_of_the_bot_runs_inline() -> None:
    dispatcher = Dispatcher()
    dispatcher.include_routers(*handlers.ROUTERS)
    try:
        check_filters_inline(dispatcher)
        checks = [
            checked
            for router in dispatcher.chain_tail
            for observer in router.observers.values()
            for handler in (observer._handler, *observer.handlers)
            for checked in handler.filters or ()
        ]
        assert checks and all(checked.awaitable for checked in checks)
    finally:
        for router in handlers.ROUTERS:
            router._parent_router = None
        dispatcher.sub_routers.clear()
