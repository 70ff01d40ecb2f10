"""The running bot: health and metrics, blocks, the inbox that loses nothing, the schema check."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sqlalchemy import text, update

from bot.app import Carebot, make_bot
from models import Customer, InboxUpdate
from models.database import Database
from models.schema import SchemaOutdated, head_revision
from sandbox.emulator import Emulator
from services.clock import FrozenClock
from services.policy import Policy
from tests.e2e.conftest import AppFactory, make_settings
from tests.e2e.helpers import eventually


async def get(app: Carebot, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{app.http_port}{path}") as response,
    ):
        return response.status, await response.text()


async def test_healthz_and_metrics(telegram: Emulator, carebot: Carebot) -> None:
    henry = telegram.customer(1201, "Henry", language_code="en")
    await henry.says("/start")
    status, body = await get(carebot, "/healthz")
    assert (status, body) == (200, '{"status": "ok"}')
    status, metrics = await get(carebot, "/metrics")
    assert status == 200
    assert 'carebot_updates_total{type="message"}' in metrics
    assert "carebot_handler_seconds_bucket" in metrics
    assert "carebot_outbox_depth 0.0" in metrics


async def test_a_customer_who_blocks_the_bot_is_unreachable_until_they_return(
    telegram: Emulator, carebot: Carebot, db: Database
) -> None:
    ivy = telegram.customer(1202, "Ivy", language_code="en")
    await ivy.says("/start")

    async def reachable() -> bool | None:
        customer = await carebot.dp["customers"].by_telegram(1202)
        return None if customer is None else customer.reachable

    await ivy.blocks_bot()

    async def blocked() -> bool:
        return await reachable() is False

    await eventually(blocked)
    await ivy.unblocks_bot()
    greeting = await ivy.next_message()
    assert "Welcome back" in greeting.text
    assert await reachable() is True


async def test_a_redelivered_update_is_handled_once(carebot: Carebot) -> None:
    payload: dict[str, Any] = {
        "update_id": 777,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 1, "type": "private"},
            "from": {"id": 1, "is_bot": False, "first_name": "X"},
            "text": "hi",
        },
    }
    assert await carebot.inbox.store([payload]) == [payload]
    assert await carebot.inbox.store([payload]) == []


async def test_updates_recorded_before_a_crash_are_handled_at_the_next_start(
    telegram: Emulator,
    database_url: str,
    db: Database,
    policy: Policy,
    clock: FrozenClock,
    start_app: AppFactory,
) -> None:
    jack = telegram.customer(1203, "Jack", language_code="en")
    message = telegram.user_sends_text(jack.user_id, "/help")
    # The update was recorded, then the process died before handling it; Telegram has
    # already been told it arrived and will not send it again.
    payload = telegram.pending_updates()[-1]
    assert payload["message"]["message_id"] == message.message_id
    async with db.transaction() as session:
        session.add(
            InboxUpdate(
                update_id=payload["update_id"],
                payload=payload,
                update_type="message",
                status="pending",
                received_at=clock.now(),
            )
        )
    await start_app()
    reply = await jack.next_message()
    assert "What I can do for you" in reply.text

    async def done() -> bool:
        async with db.session() as session:
            row = await session.get(InboxUpdate, payload["update_id"])
            return row is not None and row.status == "done"

    await eventually(done)


async def test_the_bot_refuses_to_start_on_an_outdated_schema(
    telegram: Emulator, database_url: str, db: Database, policy: Policy
) -> None:
    async with db.transaction() as session:
        await session.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    settings = make_settings(database_url, telegram.base_url)
    assert settings.bot_token is not None
    app = Carebot(
        settings=settings,
        policy=policy,
        bot=make_bot(settings.bot_token.get_secret_value(), settings.telegram_api_url),
    )
    try:
        with pytest.raises(SchemaOutdated, match="carebot migrate"):
            await app.start()
        await app.stop()
    finally:
        async with db.transaction() as session:
            await session.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()}
            )


async def test_no_personal_data_in_info_logs(
    telegram: Emulator, carebot: Carebot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    kate = telegram.customer(1204, "Kate", language_code="en", phone="+8613500135000")
    await kate.says("/start")
    await kate.shares_contact(expect=2)
    await kate.says("my secret message")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "INFO")
    assert "update=" in logged
    for private in ("13500135000", "my secret message", "Kate"):
        assert private not in logged


async def test_an_erased_customer_keeps_no_username(
    telegram: Emulator, carebot: Carebot, db: Database, clock: FrozenClock
) -> None:
    lee = telegram.customer(1205, "Lee", username="lee_handle", language_code="en")
    await lee.says("/start")
    async with db.transaction() as session:
        await session.execute(
            update(Customer)
            .where(Customer.telegram_id == 1205)
            .values(erased_at=clock.now(), username=None, name=None)
        )
    await lee.says("/menu")
    customer = await carebot.dp["customers"].by_telegram(1205)
    assert customer is not None and customer.username is None
