"""The page's server side over HTTP: views, controls, and the live event stream."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from sandbox import web
from sandbox.api_params import UploadedFile
from sandbox.players import PNG_1X1
from sandbox.session import CUSTOMER_ID, OWNER_ID, SANDBOX_TOKEN, STAFF_CHAT_ID, Sandbox
from services.policy import Policy
from tests.e2e.helpers import eventually
from tests.sandbox_web.conftest import EventStream, PageClient, open_sandbox, sandbox_settings


async def test_the_page_its_assets_and_the_bot_endpoints_share_one_address(
    http: aiohttp.ClientSession,
) -> None:
    async with http.get("/", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "/sandbox/"
    async with http.get("/sandbox/") as response:
        page = await response.text()
        assert response.status == 200
        assert 'src="static/app.js"' in page and "Staff group" in page
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        async with http.get(f"/sandbox/static/{asset}") as response:
            assert response.status == 200 and kind in response.content_type
    async with http.get("/healthz") as response:
        assert (await response.json())["status"] == "ok"
    async with http.get("/metrics") as response:
        assert response.status == 200


async def test_state_names_the_personas_group_clock_and_jobs(page: PageClient) -> None:
    state = await page.get("state")
    assert [c["name"] for c in state["customers"]] == ["Alice"]
    assert state["customers"][0]["id"] == CUSTOMER_ID
    assert state["staff"] == [
        {
            "id": OWNER_ID,
            "name": "Owner",
            "language": "zh",
            "phone": None,
            "demo": False,
            "status": "creator",
        }
    ]
    assert state["group"] == {"id": STAFF_CHAT_ID, "title": "Staff (sandbox)"}
    assert state["clock"]["offset_seconds"] == 0
    assert "birthdays" in state["jobs"]["names"] and "sender" in state["jobs"]["names"]
    assert state["jobs"]["available"] == web.jobs_available()
    assert state["faults"] == {"storm": False, "errors": False}


async def test_a_new_customer_registers_by_sharing_a_contact_and_checks_points(
    sandbox: Sandbox, page: PageClient, events: EventStream
) -> None:
    label = sandbox.app.renderer.label
    wang = await page.post(
        "customers", {"name": "Wang Fang", "language": "en", "phone": "+8613800002222"}
    )
    assert (await events.next(lambda e: e["type"] == "state"))["state"]["customers"][-1] == {
        **wang,
        "blocked": False,
    }

    await page.post("send", {"user_id": wang["id"], "text": "/start"})
    mine = await events.next(lambda e: e["type"] == "message" and e["message"]["text"] == "/start")
    assert mine["message"]["from"]["id"] == wang["id"]
    welcome = await events.bot_message(wang["id"], "Wang Fang")
    assert welcome["keyboard"]["rows"][0][0] == {
        "text": label("share_phone", "en"),
        "contact": True,
    }

    await page.post("contact", {"user_id": wang["id"]})
    await events.bot_message(wang["id"], "+8613800002222")
    menu = await events.bot_message(wang["id"])
    assert menu["keyboard"] is None  # the share button went away
    points = next(
        b
        for row in menu["message"]["inline_keyboard"]
        for b in row
        if b["text"] == label("menu_points", "en")
    )

    await page.post(
        "press",
        {"user_id": wang["id"], "message_id": menu["message"]["id"], "data": points["data"]},
    )
    balance = await events.bot_message(wang["id"], "My points")
    assert balance["message"]["entities"][0]["type"] == "bold"


async def test_controls_refuse_what_the_page_should_not_send(
    http: aiohttp.ClientSession, page: PageClient
) -> None:
    async with http.post("/sandbox/api/send", json={"user_id": CUSTOMER_ID, "text": "hi"}) as r:
        assert r.status == 403  # no X-Sandbox header: another site cannot drive the sandbox
    assert (
        "language"
        in (await page.post("customers", {"name": "X", "language": "ru"}, status=400))["error"]
    )
    await page.post("customers", {"name": "  ", "language": "en"}, status=400)
    await page.post("send", {"user_id": 424242, "text": "hi"}, status=400)
    await page.post("send", {"user_id": CUSTOMER_ID, "text": "   "}, status=400)
    await page.post("press", {"user_id": CUSTOMER_ID, "message_id": 999, "data": "x"}, status=400)
    await page.post("clock", {"step": "year"}, status=400)
    await page.post("faults", {"action": "meteor"}, status=400)
    await page.post("jobs/no-such-job", status=400)


async def test_the_command_menu_is_the_one_the_bot_set(sandbox: Sandbox, page: PageClient) -> None:
    label = sandbox.app.renderer.label
    zh = await page.get(f"commands?chat_id={CUSTOMER_ID}&user_id={CUSTOMER_ID}")
    assert {"command": "points", "description": label("cmd_points", "zh")} in zh["commands"]
    bob = await page.post("customers", {"name": "Bob", "language": "en"})
    en = await page.get(f"commands?chat_id={bob['id']}&user_id={bob['id']}")
    assert {"command": "points", "description": label("cmd_points", "en")} in en["commands"]


async def test_what_the_bot_sends_edits_and_deletes_reaches_the_stream(
    sandbox: Sandbox, page: PageClient, events: EventStream
) -> None:
    tg = sandbox.emulator
    html = 'A <b>bold <i>move</i></b>, <a href="https://example.com">link</a> &lt;b&gt;'
    status, sent = await tg.call(
        SANDBOX_TOKEN, "sendMessage", {"chat_id": CUSTOMER_ID, "text": html, "parse_mode": "HTML"}
    )
    assert status == 200
    message_id = sent["result"]["message_id"]
    shown = (await events.bot_message(CUSTOMER_ID, "bold move"))["message"]
    assert shown["text"] == "A bold move, link <b>"  # markup became entities; text stays text
    kinds = [(e["type"], e["offset"], e["length"]) for e in shown["entities"]]
    assert kinds == [("bold", 2, 9), ("italic", 7, 4), ("text_link", 13, 4)]

    await tg.call(
        SANDBOX_TOKEN,
        "editMessageText",
        {"chat_id": CUSTOMER_ID, "message_id": message_id, "text": "changed"},
    )
    edited = await events.bot_message(CUSTOMER_ID, "changed")
    assert edited["message"]["id"] == message_id and edited["message"]["edited"] is True

    await tg.call(
        SANDBOX_TOKEN, "deleteMessage", {"chat_id": CUSTOMER_ID, "message_id": message_id}
    )
    gone = await events.next(lambda e: e["type"] == "deleted")
    assert gone == {"type": "deleted", "chat_id": CUSTOMER_ID, "message_id": message_id}
    history = await page.get(f"chats/{CUSTOMER_ID}")
    assert message_id not in [m["id"] for m in history["messages"]]


async def test_photos_and_documents_go_up_and_come_down(
    sandbox: Sandbox, http: aiohttp.ClientSession, events: EventStream
) -> None:
    form = aiohttp.FormData()
    form.add_field("user_id", str(CUSTOMER_ID))
    form.add_field("as", "photo")
    form.add_field("caption", "my receipt")
    form.add_field("file", PNG_1X1, filename="receipt.png", content_type="image/png")
    async with http.post("/sandbox/api/upload", data=form, headers={"X-Sandbox": "1"}) as r:
        assert r.status == 200, await r.text()
    photo = (
        await events.next(lambda e: e["type"] == "message" and e["message"]["kind"] == "photo")
    )["message"]
    assert photo["text"] == "my receipt"
    async with http.get(photo["file"]["url"]) as response:
        assert response.content_type == "image/png"
        assert await response.read() == PNG_1X1

    status, _ = await sandbox.emulator.call(
        SANDBOX_TOKEN,
        "sendDocument",
        {
            "chat_id": CUSTOMER_ID,
            "document": UploadedFile(b"<script>x</script>", "page.html", "text/html"),
        },
    )
    assert status == 200
    document = (
        await events.next(lambda e: e["type"] == "message" and e["message"]["kind"] == "document")
    )["message"]
    assert document["file"]["name"] == "page.html"
    async with http.get(document["file"]["url"]) as response:
        # Downloaded, never rendered as this page's origin.
        assert response.content_type == "application/octet-stream"
        assert "attachment" in response.headers["Content-Disposition"]


async def test_the_clock_moves_the_bot_and_the_emulator_together(
    sandbox: Sandbox, page: PageClient, events: EventStream
) -> None:
    before = time.time()
    moved = await page.post("clock", {"step": "day"})
    assert moved["offset_seconds"] == 86400
    assert (await events.next(lambda e: e["type"] == "clock"))["clock"] == moved
    assert sandbox.app.clock is sandbox.clock
    assert sandbox.clock.now() - datetime.now(UTC) == pytest.approx(
        timedelta(days=1), abs=timedelta(seconds=5)
    )

    await page.post("send", {"user_id": CUSTOMER_ID, "text": "/start"})
    welcome = await events.bot_message(CUSTOMER_ID)
    assert welcome["message"]["date"] - before == pytest.approx(86400, abs=10)
    customer = await sandbox.app.dp["customers"].by_telegram(CUSTOMER_ID)
    assert customer.created_at.timestamp() - before == pytest.approx(86400, abs=10)

    await page.post("clock", {"step": "month"})
    assert sandbox.clock.offset == timedelta(days=31)


async def test_faults_block_storm_and_clear(
    sandbox: Sandbox, page: PageClient, events: EventStream
) -> None:
    tg = sandbox.emulator
    await page.post("send", {"user_id": CUSTOMER_ID, "text": "/start"})
    await events.bot_message(CUSTOMER_ID)

    state = await page.post("faults", {"action": "block", "user_id": CUSTOMER_ID})
    assert state["customers"][0]["blocked"] is True
    customers = sandbox.app.dp["customers"]

    async def unreachable() -> bool:
        return not (await customers.by_telegram(CUSTOMER_ID)).reachable

    await eventually(unreachable)
    await page.post("send", {"user_id": CUSTOMER_ID, "text": "hello?"}, status=400)

    await page.post("faults", {"action": "unblock", "user_id": CUSTOMER_ID})
    await events.bot_message(CUSTOMER_ID)  # Restart sent /start, and the bot answered

    state = await page.post("faults", {"action": "storm"})
    assert state["faults"]["storm"] is True
    for _ in range(3):
        await page.post("send", {"user_id": CUSTOMER_ID, "text": "/points"})

    async def refused() -> bool:
        return tg.rate_limited > 0

    await eventually(refused)

    state = await page.post("faults", {"action": "clear"})
    assert state["faults"] == {"storm": False, "errors": False}
    await asyncio.sleep(2.1)  # the storm's retry_after runs out
    await page.post("send", {"user_id": CUSTOMER_ID, "text": "/help"})
    await events.bot_message(CUSTOMER_ID, "/points", timeout=8)


async def test_a_job_runs_at_the_sandbox_time_through_run_job(
    sandbox: Sandbox, page: PageClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, datetime, str]] = []

    async def fake(name: str, now: datetime, env: dict[str, str]) -> web.JobRun:
        calls.append((name, now, env["DATABASE_URL"]))
        return web.JobRun(name, True, "enqueued 3")

    monkeypatch.setattr(web, "run_job", fake)
    sandbox.web.jobs_ready = False
    assert "not part" in (await page.post("jobs/birthdays", status=400))["error"]
    sandbox.web.jobs_ready = True
    await page.post("clock", {"step": "week"})
    result = await page.post("jobs/birthdays")
    assert result == {
        "type": "job",
        "running": False,
        "name": "birthdays",
        "ok": True,
        "output": "enqueued 3",
    }
    name, now, database = calls[0]
    assert name == "birthdays" and database == sandbox.app.settings.database_url
    assert now - datetime.now(UTC) == pytest.approx(timedelta(days=7), abs=timedelta(seconds=5))


async def test_run_job_reports_a_command_that_fails(sandbox: Sandbox) -> None:
    result = await web.run_job("no-such-job", sandbox.clock.now(), sandbox.web.job_env)
    assert not result.ok and result.output


@pytest.mark.skipif(not web.jobs_available(), reason="`carebot jobs` is not in this build yet")
async def test_a_real_job_runs_against_the_sandbox(page: PageClient) -> None:
    await page.post("demo-data", {"customers": 30})
    result = await page.post("jobs/segmentation")
    assert result["ok"], result["output"]


async def test_demo_data_loads_into_the_running_sandbox(
    sandbox: Sandbox, page: PageClient, events: EventStream
) -> None:
    summary = await page.post("demo-data", {"customers": 40, "seed": 3})
    assert summary["customers"] == 40 and summary["purchases"] > 0
    state = (await events.next(lambda e: e["type"] == "state"))["state"]
    demo = [c for c in state["customers"] if c["demo"]]
    assert len(demo) == summary["on_telegram"] > 0
    assert state["demo"]["customers"] == 40

    # A demo customer is a Telegram user the bot knows, with their purchase history.
    someone = demo[0]
    await page.post("send", {"user_id": someone["id"], "text": "/start"})
    welcome = await events.bot_message(someone["id"])
    assert someone["name"] in welcome["message"]["text"]
    await page.post("demo-data", {"customers": 40}, status=400)  # once per sandbox


async def test_stopping_is_prompt_with_a_page_open(database_url: str, policy: Policy) -> None:
    async with open_sandbox(sandbox_settings(database_url), policy) as running:
        session = aiohttp.ClientSession(base_url=running.url)
        stream = await session.get("/sandbox/api/events")
        await EventStream(stream).next(lambda e: e["type"] == "hello")
        started = time.monotonic()
    assert time.monotonic() - started < 5  # the open stream did not hold the shutdown up
    stream.close()
    await session.close()


async def test_staff_write_and_reply_in_the_group(page: PageClient, events: EventStream) -> None:
    first = await page.post("send", {"user_id": OWNER_ID, "text": "Who takes the 3 pm delivery?"})
    await page.post("staff", {"name": "Mei"})
    state = (await events.next(lambda e: e["type"] == "state"))["state"]
    mei = next(s for s in state["staff"] if s["name"] == "Mei")
    assert mei["status"] == "member"
    await page.post(
        "send", {"user_id": mei["id"], "text": "I do!", "reply_to": first["message_id"]}
    )
    reply = await events.next(lambda e: e["type"] == "message" and e["message"]["text"] == "I do!")
    assert reply["chat_id"] == STAFF_CHAT_ID
    assert reply["message"]["from"]["name"] == "Mei"
    assert reply["message"]["reply_to"] == {
        "id": first["message_id"],
        "from": "Owner",
        "text": "Who takes the 3 pm delivery?",
    }
