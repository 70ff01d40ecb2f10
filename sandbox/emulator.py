"""The local Telegram Bot API emulator: an aiohttp server, webhook delivery and fault controls."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web

from sandbox.api_params import ApiError, Params, UploadedFile
from sandbox.faults import Fault, Faults, RateLimiter
from sandbox.methods import BotApi
from sandbox.players import Customer, StaffMember
from sandbox.state import BotState, Chat, JsonDict, Webhook
from sandbox.world import World

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPLOAD = 50 * 1024 * 1024


class Emulator(World):
    """A Telegram Bot API server on 127.0.0.1 with an in-memory Telegram behind it.

    Point aiogram at it with `AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))`.
    Any token `<digits>:<text>` works; the first one used becomes the bot players talk to.
    """

    def __init__(
        self,
        *,
        bot_first_name: str = "Carebot Sandbox",
        bot_username: str | None = None,
        webhook_retry_delay: float = 0.2,
        webhook_timeout: float = 10.0,
        callback_answer_timeout: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            bot_first_name=bot_first_name,
            bot_username=bot_username,
            monotonic=monotonic,
            wall_clock=wall_clock,
        )
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_timeout = webhook_timeout
        self.calls: Counter[str] = Counter()  # requests per method name
        self.rate_limited = 0  # 429 answers sent
        self.webhook_deliveries = 0
        self.webhook_failures = 0
        self.webhook_reply_errors: list[str] = []
        # Through a lambda so that replacing self.monotonic later moves the rate windows too.
        self._limiter = RateLimiter(lambda: self.monotonic())
        self._faults = Faults()
        self._delay = 0.0
        self._api = BotApi(
            self,
            self._limiter,
            callback_answer_timeout=callback_answer_timeout,
            webhook_changed=self._webhook_changed,
        )
        self.app = web.Application(client_max_size=MAX_UPLOAD)
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        self.app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        self.app.on_shutdown.append(self._on_shutdown)
        self.app.on_cleanup.append(self._on_cleanup)
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._http: aiohttp.ClientSession | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.closing = False
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound_port = self._runner.addresses[0][1]
        self._base_url = f"http://{host}:{bound_port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        else:
            await self._on_shutdown(self.app)
            await self._on_cleanup(self.app)

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the emulator is not started")
        return self._base_url

    async def _on_shutdown(self, app: web.Application) -> None:
        self.closing = True  # long polls answer at once instead of holding shutdown up
        self.changed()

    async def _on_cleanup(self, app: web.Application) -> None:
        self.closing = True
        for bot in self._bots.values():
            if bot.deliverer is not None:
                bot.deliverer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bot.deliverer
                bot.deliverer = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    # --- controls ------------------------------------------------------------------------

    def limits(
        self,
        enabled: bool = True,
        global_per_second: float = 30,
        per_chat_per_second: float = 1,
        group_per_minute: float = 20,
        *,
        private_burst: float = 3,
    ) -> None:
        """Enforce Telegram's flood limits on sends; past them answer 429 with retry_after.

        A private chat tolerates a burst of `private_burst` messages, then one per second.
        """
        self._limiter.configure(
            enabled, global_per_second, per_chat_per_second, group_per_minute, private_burst
        )

    def fail_next(
        self,
        method: str | None,
        status: int = 500,
        count: int = 1,
        description: str | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next `count` calls of `method` (or of any method) with this error."""
        self._faults.add(Fault(method, status, count, description, retry_after))

    def clear_faults(self) -> None:
        self._faults.clear()

    def delay(self, seconds: float) -> None:
        """Add latency to every API answer."""
        self._delay = seconds

    # --- players -------------------------------------------------------------------------

    def customer(
        self,
        user_id: int,
        first_name: str = "Customer",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = None,
        phone: str | None = None,
        started: bool = True,
    ) -> Customer:
        """A customer with a private chat; started=False means they never pressed Start."""
        user = self.add_user(
            user_id,
            first_name,
            last_name=last_name,
            username=username,
            language_code=language_code,
            phone=phone,
            started=started,
        )
        return Customer(self, user)

    def staff_group(
        self, chat_id: int = -1001234567890, title: str = "Staff", forum: bool = True
    ) -> Chat:
        """A supergroup where the bot is an administrator that can manage topics."""
        return self.add_group(chat_id, title, forum=forum)

    def staff_member(
        self,
        user_id: int,
        first_name: str = "Staff",
        group: Chat | None = None,
        *,
        status: str = "member",
        username: str | None = None,
        language_code: str | None = None,
    ) -> StaffMember:
        user = self.add_user(user_id, first_name, username=username, language_code=language_code)
        if group is not None:
            self.set_member(group.id, user_id, status)
        return StaffMember(self, user)

    # --- API calls -----------------------------------------------------------------------

    async def call(
        self, token: str, method: str, params: Mapping[str, Any]
    ) -> tuple[int, JsonDict]:
        """Run one API call as the HTTP route would; returns (status, body)."""
        bot = self.bot_for_token(token)
        if bot is None:
            return 401, ApiError(401, "Unauthorized").body()
        return await self._call(bot, method, params)

    async def _call(
        self, bot: BotState, method: str, params: Mapping[str, Any]
    ) -> tuple[int, JsonDict]:
        name = self._api.canonical(method)
        self.calls[name or method] += 1
        try:
            if self._delay > 0:
                await asyncio.sleep(self._delay)
            if name is None:
                raise ApiError(404, "Not Found")
            fault = self._faults.take(name)
            if fault is not None:
                raise fault
            result = await self._api.handlers[name](bot, Params(params))
        except ApiError as exc:
            if exc.status == 429:
                self.rate_limited += 1
            return exc.status, exc.body()
        return 200, {"ok": True, "result": result}

    async def _handle_api(self, request: web.Request) -> web.Response:
        try:
            params = await _read_params(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        status, body = await self.call(
            request.match_info["token"], request.match_info["method"], params
        )
        return web.json_response(body, status=status)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        stored = None
        if self.bot_for_token(request.match_info["token"]) is not None:
            stored = self.file_by_path(request.match_info["path"])
        if stored is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(
            body=stored.data, content_type=stored.mime_type or "application/octet-stream"
        )

    # --- webhook delivery ----------------------------------------------------------------

    def _webhook_changed(self, bot: BotState) -> None:
        self.changed()
        if bot.webhook is not None and (bot.deliverer is None or bot.deliverer.done()):
            bot.deliverer = asyncio.get_running_loop().create_task(self._deliver_updates(bot))

    async def _deliver_updates(self, bot: BotState) -> None:
        """POST pending updates one at a time, in order, retrying each until it is accepted."""
        failures = 0

        def ready() -> bool | None:
            if bot.webhook is None or self.closing:
                return False
            return True if bot.pending else None

        while await self.until(ready, None):
            hook = bot.webhook
            assert hook is not None
            update = bot.pending[0]
            if await self._post_update(bot, hook, update):
                failures = 0
                self.webhook_deliveries += 1
                if bot.pending and bot.pending[0] is update:
                    bot.pending.pop(0)
                self.changed()
            else:
                failures += 1
                self.webhook_failures += 1
                await asyncio.sleep(self.webhook_retry_delay * min(2 ** (failures - 1), 8))

    async def _post_update(self, bot: BotState, hook: Webhook, update: JsonDict) -> bool:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        headers = {SECRET_HEADER: hook.secret_token} if hook.secret_token else {}
        try:
            async with self._http.post(
                hook.url,
                json=update,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.webhook_timeout),
            ) as response:
                if not 200 <= response.status < 300:
                    self._webhook_error(
                        bot, f"Wrong response from the webhook: {response.status} {response.reason}"
                    )
                    return False
                reply = await _read_webhook_reply(response)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._webhook_error(bot, f"Connection failed: {type(exc).__name__}: {exc}")
            return False
        if reply is not None:
            # aiogram may answer the webhook with the method to call, which Telegram executes.
            method, params = reply
            status, body = await self._call(bot, method, params)
            if status != 200:
                self.webhook_reply_errors.append(f"{method}: {body['description']}")
        return True

    def _webhook_error(self, bot: BotState, message: str) -> None:
        bot.last_error_date = self.now()
        bot.last_error_message = message


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string plus a JSON, urlencoded or multipart body, as the Bot API accepts."""
    params: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse JSON request body") from None
        if isinstance(body, dict):
            params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = UploadedFile(value.file.read(), value.filename, value.content_type)
        else:
            params[key] = value
    return params


async def _read_webhook_reply(
    response: aiohttp.ClientResponse,
) -> tuple[str, dict[str, Any]] | None:
    """The method a webhook answer asks for, as JSON or as aiogram's multipart form."""
    if response.content_type == "application/json":
        try:
            body = await response.json()
        except ValueError:
            return None
        if isinstance(body, dict) and isinstance(body.get("method"), str):
            method = body.pop("method")
            return method, body
        return None
    if not response.content_type.startswith("multipart/"):
        return None
    fields: dict[str, Any] = {}
    reader = aiohttp.MultipartReader(response.headers, response.content)
    while (part := await reader.next()) is not None:
        if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
            continue
        data = bytes(await part.read(decode=True))
        if part.filename:
            fields[part.name] = UploadedFile(data, part.filename, part.headers.get("Content-Type"))
        else:
            fields[part.name] = data.decode(part.get_charset(default="utf-8"))
    method = fields.pop("method", None)
    return (method, fields) if isinstance(method, str) else None
