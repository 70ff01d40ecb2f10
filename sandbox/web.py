"""The sandbox browser page: a Telegram-like chat served by the bot's own aiohttp server.

`SandboxWeb.install(app.http)` adds, under /sandbox/, the page and its static files, a
Server-Sent Events stream fed from `Emulator.subscribe()`, and a small JSON control API:
personas (customers and staff), sending, pressing buttons, the sandbox clock, scheduled
jobs, Telegram faults and demo data. Everything runs in the bot's process and event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from bot.app import Carebot
from bot.config import Settings
from sandbox.emulator import Emulator
from sandbox.state import Chat, ChatMessage, JsonDict, StoredFile
from services.demo import DemoDataPresent, DemoSummary, seed_demo

log = logging.getLogger("carebot.sandbox")
T = TypeVar("T")

STATIC = Path(__file__).parent / "static"
# The stable `carebot jobs run <name>` names (ARCHITECTURE.md, "Interfaces").
JOB_NAMES = ("segmentation", "followups", "birthdays", "winback", "surveys", "sla", "digest")
SENDER_JOB = "sender"
JOB_TIMEOUT = 120.0
DEMO_TELEGRAM_BASE = 7_000_000
HEARTBEAT = 15.0  # seconds between SSE comments, so proxies and browsers keep the stream
CLOCK_STEPS = {
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}
# Every POST must carry this header: a page on another origin cannot add it without a
# CORS preflight, which this server never grants, so other sites cannot drive the sandbox.
CSRF_HEADER = "X-Sandbox"
_INLINE_IMAGES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
_LANGUAGE_CODES = {"zh": "zh-hans", "en": "en"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SandboxClock:
    """Real time plus an offset that only grows: "a day later" at the press of a button.

    Unlike a FrozenClock it keeps ticking, so message times, SLA ages and the flood window
    behave as they would; the bot (`Carebot(clock=...)`) and the emulator's `wall_clock`
    read the same instance, so they never disagree.
    """

    def __init__(self, real: Callable[[], datetime] | None = None) -> None:
        self._real = real or (lambda: datetime.now(UTC))
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return self._real() + self.offset

    def timestamp(self) -> float:
        return self.now().timestamp()

    def advance(self, delta: timedelta) -> None:
        if delta <= timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        self.offset += delta


@dataclass
class Persona:
    """Someone the page can act as: a customer in their private chat, or a staff member."""

    id: int
    name: str
    language: str = "zh"
    phone: str | None = None
    demo: bool = False


@dataclass(frozen=True)
class JobRun:
    name: str
    ok: bool
    output: str


class BadRequest(Exception):
    """A control request the page should not have sent; answered 400 with the reason."""


# --- scheduled jobs ---------------------------------------------------------------------


def jobs_available() -> bool:
    """Whether this build has `carebot jobs` (issue 5); the page disables the buttons if not."""
    import typer.main

    from bot.cli import app

    commands = getattr(typer.main.get_command(app), "commands", {})
    return "jobs" in commands


async def run_job(name: str, now: datetime, env: Mapping[str, str]) -> JobRun:
    """Run one scheduled job once, at the sandbox's "now", the way an operator would.

    This is the one place the page reaches the jobs: through the stable command
    `carebot jobs run <name> --now ISO`, in a child process pointed at the emulator and the
    sandbox database, so it works with whatever the jobs package offers inside.
    """
    command = [sys.executable, "-c", "from bot.cli import main; main()"]
    command += ["jobs", "run", name, "--now", now.isoformat(timespec="seconds")]
    process = await asyncio.create_subprocess_exec(
        *command,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), JOB_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        return JobRun(name, False, f"timed out after {JOB_TIMEOUT:.0f}s")
    text = output.decode("utf-8", "replace").strip()
    return JobRun(name, process.returncode == 0, text[-4000:])


# --- what the page is sent --------------------------------------------------------------


def _sender_name(message: ChatMessage) -> str:
    user = message.sender
    return " ".join(p for p in (user.first_name, user.last_name) if p)


def _file_json(stored: StoredFile, kind: str) -> JsonDict:
    return {
        "url": f"/sandbox/files/{stored.file_id}",
        "name": stored.file_name or stored.file_path.rsplit("/", 1)[-1],
        "mime": stored.mime_type or _sniff_image(stored.data) or "application/octet-stream",
        "size": len(stored.data),
        "kind": kind,
    }


def keyboard_json(markup: JsonDict | None) -> JsonDict | None:
    """A reply keyboard as the page draws it: rows of {text, contact}."""
    if not markup or "keyboard" not in markup:
        return None
    rows = []
    for row in markup["keyboard"]:
        cells = []
        for button in row:
            if isinstance(button, str):
                cells.append({"text": button, "contact": False})
            else:
                cells.append(
                    {"text": button["text"], "contact": bool(button.get("request_contact"))}
                )
        rows.append(cells)
    return {
        "rows": rows,
        "one_time": bool(markup.get("one_time_keyboard")),
        "placeholder": markup.get("input_field_placeholder"),
    }


def _inline_json(markup: JsonDict | None) -> list[list[JsonDict]]:
    rows = []
    for row in (markup or {}).get("inline_keyboard") or []:
        cells = []
        for button in row:
            cell: JsonDict = {"text": button["text"]}
            if "callback_data" in button:
                cell["data"] = button["callback_data"]
            elif str(button.get("url", "")).startswith(("http://", "https://", "tg://")):
                cell["url"] = button["url"]
            cells.append(cell)
        rows.append(cells)
    return rows


def message_json(message: ChatMessage) -> JsonDict:
    """One message with what a Telegram client needs to draw it: plain text plus entities
    (UTF-16 offsets, as JavaScript strings count), media, keyboards, the quoted reply."""
    content = message.content
    kind = next(iter(content), "text")
    data: JsonDict = {
        "chat_id": message.chat_id,
        "id": message.message_id,
        "thread_id": message.thread_id,
        "date": message.date,
        "edited": message.edited,
        "from": {
            "id": message.sender.id,
            "name": _sender_name(message),
            "is_bot": message.sender.is_bot,
        },
        "kind": kind,
        "text": message.body,
        "entities": message.entities if message.text is not None else message.caption_entities,
        "inline_keyboard": _inline_json(message.reply_markup),
        "reply_keyboard": keyboard_json(message.reply_markup),
        "remove_keyboard": bool((message.reply_markup or {}).get("remove_keyboard")),
    }
    if message.media is not None:
        data["file"] = _file_json(message.media, kind)
    if "contact" in content:
        contact = content["contact"]
        name = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p)
        data["contact"] = {"phone": contact.get("phone_number"), "name": name}
    for key in ("forum_topic_created", "forum_topic_edited"):
        if key in content:
            data["service"] = {"type": key, "name": content[key].get("name")}
    for key in ("forum_topic_closed", "forum_topic_reopened"):
        if key in content:
            data["service"] = {"type": key}
    quoted = message.reply_to
    # Telegram makes every topic message a reply to the topic's root; clients show no quote.
    if quoted is not None and not quoted.deleted and quoted.message_id != message.thread_id:
        data["reply_to"] = {
            "id": quoted.message_id,
            "from": _sender_name(quoted),
            "text": quoted.body[:200] or next(iter(quoted.content), ""),
        }
    if message.forward_origin is not None:
        origin = message.forward_origin.get("sender_user") or {}
        data["forwarded_from"] = origin.get("first_name") or "…"
    return data


def _sniff_image(data: bytes) -> str | None:
    """Photos the bot uploads may come without a MIME type; the bytes tell."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# --- the page's server side -------------------------------------------------------------


class SandboxWeb:
    """The page's routes and the state behind them: personas, faults, the live stream."""

    def __init__(
        self,
        emulator: Emulator,
        app: Carebot,
        clock: SandboxClock,
        group: Chat,
        *,
        job_env: Mapping[str, str],
        jobs_ready: bool | None = None,
    ) -> None:
        self.emulator = emulator
        self.app = app
        self.clock = clock
        self.group = group
        self.job_env = dict(job_env)
        self.jobs_ready = jobs_available() if jobs_ready is None else jobs_ready
        self.customers: dict[int, Persona] = {}
        self.staff: dict[int, Persona] = {}
        self.faults = {"storm": False, "errors": False}
        self.demo: DemoSummary | None = None
        self._next_user_id = 2001
        self._listeners: set[asyncio.Queue[JsonDict | None]] = set()
        self._pump: asyncio.Task[None] | None = None
        self._job_lock = asyncio.Lock()

    # --- personas --------------------------------------------------------------------

    def add_customer(
        self,
        name: str,
        language: str = "zh",
        phone: str | None = None,
        *,
        user_id: int | None = None,
        started: bool = False,
        demo: bool = False,
    ) -> Persona:
        """A customer persona with a private chat; a new one has not pressed Start yet."""
        name = name.strip()
        if not 1 <= len(name) <= 64:
            raise BadRequest("a name of 1 to 64 characters is needed")
        if language not in _LANGUAGE_CODES:
            raise BadRequest("language must be zh or en")
        phone = (phone or "").strip() or None
        if phone is not None and not phone.lstrip("+").isdigit():
            raise BadRequest("a phone number is digits, optionally after +")
        if user_id is None:
            user_id = self._new_user_id()
        existing = self.emulator.get_user(user_id)
        self.emulator.add_user(
            user_id,
            name,
            language_code=_LANGUAGE_CODES[language],
            phone=phone,
            started=started or (existing is not None and existing.started),
        )
        persona = self.customers[user_id] = Persona(user_id, name, language, phone, demo)
        return persona

    def add_staff(
        self, name: str, *, user_id: int | None = None, status: str = "member"
    ) -> Persona:
        name = name.strip()
        if not 1 <= len(name) <= 64:
            raise BadRequest("a name of 1 to 64 characters is needed")
        if user_id is None:
            user_id = self._new_user_id()
        self.emulator.staff_member(user_id, name, self.group, status=status)
        persona = self.staff[user_id] = Persona(user_id, name)
        return persona

    def _new_user_id(self) -> int:
        while self.emulator.get_user(self._next_user_id) is not None:
            self._next_user_id += 1
        self._next_user_id += 1
        return self._next_user_id - 1

    def _customer(self, body: Mapping[str, Any]) -> Persona:
        persona = self.customers.get(_int(body, "user_id"))
        if persona is None:
            raise BadRequest("no such customer")
        return persona

    def _actor(self, body: Mapping[str, Any]) -> tuple[int, Chat]:
        """Who acts where: a customer in their private chat, or staff in the group."""
        user_id = _int(body, "user_id")
        if user_id in self.staff:
            return user_id, self.group
        if user_id in self.customers:
            chat = self.emulator.get_chat(user_id)
            assert chat is not None
            return user_id, chat
        raise BadRequest("no such persona")

    # --- JSON views ------------------------------------------------------------------

    def state(self) -> JsonDict:
        bot = self.emulator.bot_user
        customers = []
        for persona in self.customers.values():
            user = self.emulator.get_user(persona.id)
            customers.append({**asdict(persona), "blocked": bool(user and user.blocked_bot)})
        return {
            "bot": {"id": bot.id, "name": bot.first_name, "username": bot.username},
            "customers": customers,
            "staff": [
                {**asdict(p), "status": self.group.members.get(p.id, "member")}
                for p in self.staff.values()
            ],
            "group": {"id": self.group.id, "title": self.group.title},
            "clock": self.clock_json(),
            "jobs": {"available": self.jobs_ready, "names": [*JOB_NAMES, SENDER_JOB]},
            "faults": dict(self.faults),
            "demo": _demo_json(self.demo) if self.demo else None,
        }

    def clock_json(self) -> JsonDict:
        return {
            "now": self.clock.now().isoformat(),
            "offset_seconds": self.clock.offset.total_seconds(),
            "timezone": self.app.settings.timezone,
        }

    def chat_json(self, chat: Chat) -> JsonDict:
        messages = [
            message_json(m) for m in self.emulator.messages(chat.id, service=True) if not m.deleted
        ]
        return {
            "chat": {
                "id": chat.id,
                "type": chat.type,
                "title": chat.title,
                "topics": self.topics_json(chat),
                "pinned": list(chat.pinned),
                "keyboard": keyboard_json(chat.reply_keyboard),
            },
            "messages": messages,
        }

    @staticmethod
    def topics_json(chat: Chat) -> list[JsonDict]:
        return [
            {"id": t.thread_id, "name": t.name, "closed": t.closed, "color": t.icon_color}
            for t in chat.topics.values()
        ]

    def commands_for(self, chat_id: int, user_id: int) -> list[JsonDict]:
        """The command menu Telegram would show this user in this chat: the narrowest
        scope set with getMyCommands semantics, in the user's language first."""
        chat = self.emulator.get_chat(chat_id)
        user = self.emulator.get_user(user_id)
        if chat is None or user is None:
            return []
        language = (user.language_code or "").split("-")[0]
        if chat.is_group:
            admin = chat.members.get(user_id) in ("creator", "administrator")
            scopes: list[JsonDict] = [
                {"type": "chat_member", "chat_id": chat_id, "user_id": user_id}
            ]
            if admin:
                scopes.append({"type": "chat_administrators", "chat_id": chat_id})
            scopes.append({"type": "chat", "chat_id": chat_id})
            if admin:
                scopes.append({"type": "all_chat_administrators"})
            scopes += [{"type": "all_group_chats"}, {"type": "default"}]
        else:
            scopes = [{"type": "chat", "chat_id": chat_id}, {"type": "all_private_chats"}]
            scopes.append({"type": "default"})
        stored = {
            (_scope_key(json.loads(key)), lang): commands
            for (key, lang), commands in self.emulator.bot.commands.items()
        }
        for scope in scopes:
            for lang in dict.fromkeys((language, "")):
                found = stored.get((_scope_key(scope), lang))
                if found:
                    return found
        return []

    # --- live events -----------------------------------------------------------------

    def publish(self, item: JsonDict) -> None:
        for queue in self._listeners:
            queue.put_nowait(item)

    def translate(self, event: JsonDict) -> JsonDict | None:
        """An emulator event as the page wants it, with the message as it is now."""
        kind = event["kind"]
        chat_id = event.get("chat_id")
        chat = self.emulator.get_chat(chat_id) if isinstance(chat_id, int) else None
        if kind in ("blocked", "unblocked"):
            return {"type": "state", "state": self.state()}
        if chat is None:
            return None
        view = event.get("message") or {}
        message = self.emulator.find_message(chat.id, int(view.get("message_id", 0)))
        if kind == "deleted":
            return {"type": "deleted", "chat_id": chat.id, "message_id": view.get("message_id")}
        if kind in ("pinned", "unpinned"):
            return {"type": "pinned", "chat_id": chat.id, "pinned": list(chat.pinned)}
        if kind == "chat_action":
            return {"type": "typing", "chat_id": chat.id, "action": event.get("action")}
        if kind == "callback_answer":
            query = self.emulator.get_query(str(event.get("query_id")))
            return {
                "type": "toast",
                "chat_id": chat.id,
                "user_id": query.user_id if query else None,
                "text": event.get("text"),
                "alert": bool(event.get("show_alert")),
                "url": event.get("url"),
            }
        if kind in ("bot_message", "user_message", "edited", "service") and message is not None:
            item: JsonDict = {
                "type": "message",
                "chat_id": chat.id,
                "message": message_json(message),
            }
            if chat.type == "private":
                item["keyboard"] = keyboard_json(chat.reply_keyboard)
            if kind == "service":
                item["topics"] = self.topics_json(chat)
            return item
        return None

    async def _pump_events(self) -> None:
        queue = self.emulator.subscribe()
        try:
            while True:
                event = await queue.get()
                try:
                    item = self.translate(event)
                except Exception:
                    log.exception("sandbox page: cannot show event %s", event.get("kind"))
                    continue
                if item is not None:
                    self.publish(item)
        finally:
            self.emulator.unsubscribe(queue)

    # --- routes ----------------------------------------------------------------------

    def install(self, http: web.Application) -> None:
        """Add the page to the bot's HTTP app; call before the app starts."""
        get, post = http.router.add_get, http.router.add_post
        get("/", self._to_page)
        get("/sandbox", self._to_page)
        get("/sandbox/", self._page)
        http.router.add_static("/sandbox/static/", STATIC)
        get("/sandbox/api/state", self._state)
        get("/sandbox/api/events", self._events)
        get("/sandbox/api/chats/{chat_id}", self._chat)
        get("/sandbox/api/commands", self._commands)
        get("/sandbox/files/{file_id}", self._file)
        for path, handler in {
            "customers": self._create_customer,
            "staff": self._create_staff,
            "send": self._send,
            "contact": self._contact,
            "upload": self._upload,
            "press": self._press,
            "clock": self._move_clock,
            "jobs/{name}": self._run_job,
            "faults": self._fault,
            "demo-data": self._demo_data,
        }.items():
            post(f"/sandbox/api/{path}", _guarded(handler))
        http.on_startup.append(self._on_startup)
        http.on_shutdown.append(self._on_shutdown)
        http.on_cleanup.append(self._on_cleanup)

    async def _on_startup(self, _: web.Application) -> None:
        self._pump = asyncio.create_task(self._pump_events())

    async def _on_shutdown(self, _: web.Application) -> None:
        # Open event streams would otherwise hold the server's graceful shutdown up.
        for queue in self._listeners:
            queue.put_nowait(None)

    async def _on_cleanup(self, _: web.Application) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None

    async def _to_page(self, _: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/sandbox/")

    async def _page(self, _: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def _state(self, _: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            chat = self.emulator.get_chat(int(request.match_info["chat_id"]))
        except ValueError:
            chat = None
        if chat is None:
            raise web.HTTPNotFound(text="no such chat")
        return web.json_response(self.chat_json(chat))

    async def _commands(self, request: web.Request) -> web.StreamResponse:
        try:
            chat_id, user_id = int(request.query["chat_id"]), int(request.query["user_id"])
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text="chat_id and user_id are needed") from None
        return web.json_response({"commands": self.commands_for(chat_id, user_id)})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        stored = self.emulator.get_file(request.match_info["file_id"])
        if stored is None:
            raise web.HTTPNotFound(text="no such file")
        mime = stored.mime_type or _sniff_image(stored.data)
        name = (stored.file_name or stored.file_path.rsplit("/", 1)[-1]).replace('"', "")
        headers = {"X-Content-Type-Options": "nosniff"}
        if mime in _INLINE_IMAGES:
            return web.Response(body=stored.data, content_type=mime, headers=headers)
        # Anything else downloads: an uploaded HTML file must not run as this page's origin.
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return web.Response(
            body=stored.data, content_type="application/octet-stream", headers=headers
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[JsonDict | None] = asyncio.Queue()
        self._listeners.add(queue)
        try:
            await response.write(b"retry: 1000\n\n")
            await _send_event(response, {"type": "hello", "state": self.state()})
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                if item is None:
                    break
                await _send_event(response, item)
        except ConnectionResetError:
            pass  # the page was closed or reloaded
        finally:
            self._listeners.discard(queue)
        return response

    async def _create_customer(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        persona = self.add_customer(
            str(body.get("name", "")),
            str(body.get("language", "zh")),
            str(body.get("phone") or "") or None,
        )
        self.publish({"type": "state", "state": self.state()})
        return web.json_response(asdict(persona))

    async def _create_staff(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        persona = self.add_staff(str(body.get("name", "")))
        self.publish({"type": "state", "state": self.state()})
        return web.json_response(asdict(persona))

    async def _send(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        user_id, chat = self._actor(body)
        text = str(body.get("text", "")).strip()
        if not text:
            raise BadRequest("the message is empty")
        message = _user_action(
            lambda: self.emulator.user_sends_text(
                user_id,
                text[:4096],
                chat_id=chat.id,
                thread_id=_optional_int(body, "thread_id") if chat.is_forum else None,
                reply_to_id=_optional_int(body, "reply_to"),
            )
        )
        return web.json_response({"message_id": message.message_id})

    async def _contact(self, request: web.Request) -> web.StreamResponse:
        persona = self._customer(await _json(request))
        message = _user_action(lambda: self.emulator.user_shares_contact(persona.id))
        return web.json_response({"message_id": message.message_id})

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise BadRequest("no file in the request")
        user_id, chat = self._actor({"user_id": form.get("user_id")})
        data = upload.file.read()
        if not data:
            raise BadRequest("the file is empty")
        photo = form.get("as") == "photo" and _sniff_image(data) is not None
        caption = str(form.get("caption") or "").strip() or None
        thread_id = _optional_int({"t": form.get("thread_id")}, "t") if chat.is_forum else None
        message = _user_action(
            lambda: self.emulator.user_sends_file(
                user_id,
                "photo" if photo else "document",
                data,
                file_name=None if photo else upload.filename,
                caption=caption,
                chat_id=chat.id,
                thread_id=thread_id,
            )
        )
        return web.json_response({"message_id": message.message_id})

    async def _press(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        user_id, chat = self._actor(body)
        data = str(body.get("data", ""))
        message_id = _int(body, "message_id")
        query = _user_action(lambda: self.emulator.user_presses(user_id, chat.id, message_id, data))
        return web.json_response({"query_id": query.id})

    async def _move_clock(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        step = CLOCK_STEPS.get(str(body.get("step")))
        if step is None:
            raise BadRequest(f"step must be one of {', '.join(CLOCK_STEPS)}")
        self.clock.advance(step)
        clock = self.clock_json()
        self.publish({"type": "clock", "clock": clock})
        return web.json_response(clock)

    async def _run_job(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in (*JOB_NAMES, SENDER_JOB):
            raise BadRequest("no such job")
        if not self.jobs_ready:
            raise BadRequest("scheduled jobs are not part of this build yet")
        async with self._job_lock:  # one at a time, as the scheduler would run them
            self.publish({"type": "job", "name": name, "running": True})
            result = await run_job(name, self.clock.now(), self.job_env)
        item = {"type": "job", "running": False, **asdict(result)}
        self.publish(item)
        return web.json_response(item)

    async def _fault(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        action = body.get("action")
        tg = self.emulator
        if action == "block":
            tg.block(self._customer(body).id)
        elif action == "unblock":
            persona = self._customer(body)
            tg.unblock(persona.id)
            tg.user_sends_text(persona.id, "/start")  # what Telegram's Restart button sends
        elif action == "storm":
            # Telegram's limits, much tighter, plus a burst of outright 429s on sends.
            tg.limits(True, 3, per_chat_per_second=0.2, group_per_minute=6, private_burst=1)
            tg.fail_next("sendMessage", 429, count=3, retry_after=2)
            self.faults["storm"] = True
        elif action == "errors":
            tg.fail_next("sendMessage", 502, count=3)
            self.faults["errors"] = True
        elif action == "clear":
            tg.clear_faults()
            tg.limits(False)
            self.faults = {"storm": False, "errors": False}
        else:
            raise BadRequest("action must be block, unblock, storm, errors or clear")
        state = self.state()
        self.publish({"type": "state", "state": state})
        return web.json_response(state)

    async def _demo_data(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        count = _optional_int(body, "customers") or 300
        if not 1 <= count <= 5000:
            raise BadRequest("between 1 and 5000 customers")
        try:
            summary = await seed_demo(
                self.app.db,
                self.app.policy,
                self.clock,
                customers=count,
                seed=_optional_int(body, "seed") or 1,
                timezone=self.app.settings.zone,
                telegram_base=DEMO_TELEGRAM_BASE,
            )
        except DemoDataPresent as error:
            raise BadRequest(str(error)) from None
        for person in summary.on_telegram:
            # They have used the bot before, so it may write to them (birthdays, win-back).
            self.add_customer(
                person.name,
                person.locale,
                person.phone,
                user_id=person.telegram_id,
                started=True,
                demo=True,
            )
        self.demo = summary
        self.publish({"type": "state", "state": self.state()})
        return web.json_response(_demo_json(summary))


# --- helpers ----------------------------------------------------------------------------


def _demo_json(summary: DemoSummary) -> JsonDict:
    data = asdict(summary)
    data["on_telegram"] = len(summary.on_telegram)
    return data


def _guarded(handler: Handler) -> Handler:
    """POST routes: the CSRF header is required, and BadRequest becomes a 400 answer."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if request.headers.get(CSRF_HEADER) != "1":
            return web.json_response({"error": f"missing {CSRF_HEADER} header"}, status=403)
        try:
            return await handler(request)
        except BadRequest as error:
            return web.json_response({"error": str(error)}, status=400)

    return guarded


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _int(body: Mapping[str, Any], key: str) -> int:
    value = _optional_int(body, key)
    if value is None:
        raise BadRequest(f"{key} is needed")
    return value


def _optional_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{key} must be a whole number") from None


def _user_action(action: Callable[[], T]) -> T:
    """Emulator user actions refuse impossible things (blocked bot, unknown message)."""
    try:
        return action()
    except (KeyError, ValueError, RuntimeError) as error:
        raise BadRequest(str(error).strip("'\"")) from None


def _scope_key(scope: Mapping[str, Any]) -> str:
    """BotCommandScope JSON with ids as text, so 1001 and "1001" compare equal."""
    return json.dumps({k: str(v) for k, v in scope.items()}, sort_keys=True)


async def _send_event(response: web.StreamResponse, item: JsonDict) -> None:
    payload = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    await response.write(f"data: {payload}\n\n".encode())


def job_environment(settings: Settings) -> dict[str, str]:
    """The environment a job's child process needs to act on this sandbox."""
    assert settings.bot_token is not None and settings.telegram_api_url is not None
    env = dict(os.environ)
    env.update(
        BOT_TOKEN=settings.bot_token.get_secret_value(),
        TELEGRAM_API_URL=settings.telegram_api_url,
        DATABASE_URL=settings.database_url,
        STAFF_CHAT_ID=str(settings.staff_chat_id),
        ADMIN_IDS=",".join(str(i) for i in settings.admin_ids),
        TIMEZONE=settings.timezone,
        DEFAULT_LOCALE=settings.default_locale,
        WEBHOOK_URL="",
    )
    return env
