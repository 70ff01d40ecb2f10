"""Fixtures: a whole sandbox in this process (emulator, bot, page) and clients for its page."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from bot.config import Settings
from sandbox.session import Sandbox, open_sandbox
from services.policy import Policy
from tests.conftest import REDIS_URL

Json = dict[str, Any]


def sandbox_settings(database_url: str) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": database_url,
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "REDIS_URL": REDIS_URL or None,
            "DEFAULT_LOCALE": "zh",
        }
    )


@pytest.fixture
async def sandbox(database_url: str, policy: Policy) -> AsyncIterator[Sandbox]:
    async with open_sandbox(sandbox_settings(database_url), policy) as running:
        yield running


class PageClient:
    """What the page's JavaScript does, over HTTP: GET views, POST controls."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def get(self, path: str) -> Json:
        async with self.session.get(f"/sandbox/api/{path}") as response:
            assert response.status == 200, await response.text()
            body: Json = await response.json()
            return body

    async def post(self, path: str, body: Json | None = None, *, status: int = 200) -> Json:
        async with self.session.post(
            f"/sandbox/api/{path}", json=body or {}, headers={"X-Sandbox": "1"}
        ) as response:
            answer: Json = await response.json()
            assert response.status == status, answer
            return answer


class EventStream:
    """The page's Server-Sent Events stream, read line by line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, matches: Callable[[Json], bool], timeout: float = 5.0) -> Json:
        """The next event that `matches`; fails listing what came instead."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        seen: list[str] = []
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no matching event within {timeout}s; got: {seen}")
            try:
                line = await asyncio.wait_for(self.response.content.readline(), remaining)
            except TimeoutError:
                continue
            if not line.startswith(b"data: "):
                continue
            item: Json = json.loads(line[6:])
            if matches(item):
                return item
            seen.append(item["type"] + ":" + str(item.get("message", {}).get("text", ""))[:40])

    async def bot_message(self, chat_id: int, contains: str = "", timeout: float = 5.0) -> Json:
        item = await self.next(
            lambda e: (
                e["type"] == "message"
                and e["chat_id"] == chat_id
                and e["message"]["from"]["is_bot"]
                and not e["message"].get("service")
                and contains in e["message"]["text"]
            ),
            timeout,
        )
        return item


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=sandbox.url) as session:
        yield session


@pytest.fixture
def page(http: aiohttp.ClientSession) -> PageClient:
    return PageClient(http)


@pytest.fixture
async def events(http: aiohttp.ClientSession) -> AsyncIterator[EventStream]:
    async with http.get("/sandbox/api/events") as response:
        stream = EventStream(response)
        await stream.next(lambda e: e["type"] == "hello")
        yield stream
