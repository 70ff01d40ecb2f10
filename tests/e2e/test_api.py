"""The purchases HTTP API on the running app's port: auth, validation, idempotency, batches."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import Carebot
from models import Purchase
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.state import Chat
from tests.e2e.care import file_complaint, posted, registered, settled
from tests.e2e.conftest import AppFactory

TOKEN = "s3cret-token-for-tests-0123456789"


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(method, self.base + path, data=data, headers=headers) as r:
            return r.status, await r.json()


@pytest.fixture
async def api(start_app: AppFactory) -> AsyncIterator[tuple[Api, Carebot]]:
    app: Carebot = await start_app(API_TOKEN=TOKEN)
    async with aiohttp.ClientSession() as session:
        yield Api(session, f"http://127.0.0.1:{app.http_port}"), app


async def customer_id(app: Carebot, telegram: Emulator, user_id: int, phone: str) -> int:
    person = telegram.customer(user_id, f"P{user_id}", language_code="en", phone=phone)
    await person.says("/start")
    await person.shares_contact()
    found = await app.dp["customers"].by_telegram(user_id)
    assert found is not None
    return found.id


async def purchases(db: Database) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count(Purchase.id))) or 0)


async def test_the_token_is_required(api: tuple[Api, Carebot]) -> None:
    client, _ = api
    sale = {"reference": "T-1", "phone": "13800138000", "amount": "10"}
    for token in (None, "wrong", TOKEN + "x", ""):
        status, body = await client.call("POST", "/api/purchases", sale, token=token)
        assert status == 401 and "Bearer" in body["error"]
    status, _ = await client.call("GET", "/api/customers/1", token="wrong")
    assert status == 401
    status, spec = await client.call("GET", "/api/openapi.json", token=None)
    assert status == 200 and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/api/purchases",
        "/api/customers/{customer_id}",
        "/api/openapi.json",
    }


async def test_without_api_token_the_api_is_switched_off(start_app: AppFactory) -> None:
    app: Carebot = await start_app()
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{app.http_port}/api/purchases"
        async with session.post(url, json={}, headers={"Authorization": "Bearer x"}) as r:
            assert r.status == 503
            assert "API_TOKEN" in (await r.json())["error"]


async def test_a_purchase_is_recorded_once_by_reference(
    api: tuple[Api, Carebot], telegram: Emulator, db: Database
) -> None:
    client, app = api
    cid = await customer_id(app, telegram, 4001, "+8613800138401")
    sale = {"reference": "POS-1", "phone": "+86 138 0013 8401", "amount": 199.99, "store": "A"}
    status, body = await client.call("POST", "/api/purchases", sale)
    assert status == 201
    assert body == {
        "purchase_id": 1,
        "customer_id": cid,
        "points_awarded": 199,
        "balance": 199,
        "status": "created",
    }
    status, again = await client.call("POST", "/api/purchases", sale)
    assert status == 200 and again == {**body, "status": "known"}
    assert await purchases(db) == 1
    status, waiting = await client.call(
        "POST", "/api/purchases", {"reference": "POS-2", "phone": "13900139000", "amount": "5"}
    )
    assert status == 201 and waiting["customer_id"] is None and waiting["balance"] is None
    status, profile = await client.call("GET", f"/api/customers/{cid}")
    assert status == 200
    assert (profile["balance"], profile["tier"], profile["phone"]) == (
        199,
        "small",
        "+8613800138401",
    )
    assert profile["segment"] is None and profile["churn_risk"] is None
    status, _ = await client.call("GET", "/api/customers/999")
    assert status == 404


async def test_bad_bodies_get_field_errors_and_change_nothing(
    api: tuple[Api, Carebot], db: Database
) -> None:
    client, _ = api
    status, body = await client.call(
        "POST",
        "/api/purchases",
        {"reference": "", "amount": "ten", "phone": "13800138000", "colour": "red"},
    )
    assert status == 422
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"reference", "amount", "colour"}
    status, body = await client.call(
        "POST", "/api/purchases", {"reference": "X", "amount": "1.005", "customer_id": 1}
    )
    assert status == 422 and body["errors"][0]["field"] == "amount"
    status, body = await client.call(
        "POST", "/api/purchases", {"reference": "X", "amount": 5, "customer_id": 424242}
    )
    assert status == 422 and body["errors"] == [
        {"field": "customer_id", "message": "no customer 424242"}
    ]
    status, body = await client.call(
        "POST", "/api/purchases", {"reference": "X", "amount": 5, "occurred_at": "2026-04-01T10:00"}
    )
    assert status == 422
    assert any(e["field"] == "occurred_at" and "UTC offset" in e["message"] for e in body["errors"])
    status, body = await client.call("POST", "/api/purchases", raw=b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body = await client.call("POST", "/api/purchases", raw=b"x" * (1024 * 1024 + 1))
    assert status == 413
    status, _ = await client.call("GET", "/api/customers/abc")
    assert status == 422
    assert await purchases(db) == 0


async def test_a_batch_is_recorded_whole_or_not_at_all(
    api: tuple[Api, Carebot], telegram: Emulator, db: Database
) -> None:
    client, app = api
    cid = await customer_id(app, telegram, 4002, "+8613800138402")
    good = [
        {"reference": f"B-{n}", "customer_id": cid, "amount": "100.00", "currency": "CNY"}
        for n in range(3)
    ]
    bad = [*good, {"reference": "B-9", "customer_id": cid, "amount": "-5", "refund_of": "NOPE"}]
    status, body = await client.call("POST", "/api/purchases", bad)
    assert status == 422 and body["errors"] == [
        {"index": 3, "field": "refund_of", "message": "no sale with reference 'NOPE'"}
    ]
    assert await purchases(db) == 0
    status, body = await client.call("POST", "/api/purchases", good)
    assert status == 201 and [r["status"] for r in body] == ["created"] * 3
    assert body[-1]["balance"] == 300
    status, body = await client.call("POST", "/api/purchases", good[:1])
    assert status == 200 and body[0]["status"] == "known"
    refund = {"reference": "B-R", "amount": "-50", "refund_of": "B-0"}
    status, body = await client.call("POST", "/api/purchases", refund)
    assert status == 201 and body["points_awarded"] == -50 and body["balance"] == 250
    status, body = await client.call("POST", "/api/purchases", [])
    assert status == 422


async def test_a_sale_through_the_api_shows_on_the_customers_card(
    telegram: Emulator, staff_chat: Chat, api: tuple[Api, Carebot]
) -> None:
    client, app = api
    alice = telegram.customer(2601, "Alice", language_code="en")
    await registered(app, alice)
    await file_complaint(alice, "The lid leaks")
    await posted(telegram)
    card = staff_chat.pinned[-1]
    assert "积分：0" in (await settled(telegram, card, "积分：")).body
    sale = {"reference": "POS-31", "telegram_id": 2601, "amount": "250.00"}
    status, _ = await client.call("POST", "/api/purchases", sale)
    assert status == 201
    # Its last purchases and its points, read after the sale.
    assert "积分：250" in (await settled(telegram, card, "¥250.00")).body
