"""Security: a customer never reaches another customer's data, and the HTTP doors hold.

Alice has everything a customer can have (phone, purchases, points, a coupon, a closed
ticket waiting for her rating, a half-answered survey). Bob then sends every customer
command with Alice's ids as arguments and presses every button Alice was shown, and every
kind of button the bot has, filled with Alice's ids: nothing he gets names Alice's data,
and Alice's data is exactly as it was.

Elsewhere already: the permission matrix of every staff command (tests/e2e/
test_staff_permissions.py), webhook requests without the secret (tests/e2e/test_webhook.py),
the API without or with a wrong token, oversize and malformed bodies (tests/e2e/test_api.py).
Here: what those leave out.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiogram.filters.callback_data import CallbackData
from sqlalchemy import func, select

from bot import buttons, keyboards, staff_buttons
from bot.app import Carebot
from bot.commands import CUSTOMER_COMMANDS
from bot.webhook import SECRET_HEADER
from models import Purchase, Role, Ticket
from models.database import Database
from sandbox.emulator import Emulator
from sandbox.players import Customer as Player
from sandbox.state import Chat, ChatMessage
from services.policy import Flood, Policy
from services.tickets import StaffRef
from tests.e2e.care import purchase, registered
from tests.e2e.conftest import OWNER_ID, STAFF_CHAT, AppFactory
from tests.e2e.conftest import carebot as carebot
from tests.e2e.conftest import staff_chat as staff_chat
from tests.e2e.conftest import start_app as start_app
from tests.e2e.conftest import telegram as telegram
from tests.e2e.helpers import eventually
from tests.e2e.test_webhook import free_port

ALICE_PHONE = "+8613800005101"
ALICE_NAME = "Alicesecret"
COMPLAINT = "Parcel-7788 never arrived"
# Alice's 1,234 yuan of purchases less the coffee she took.
BALANCE = 1234 - 100


def inline_data(messages: list[ChatMessage]) -> list[str]:
    return [
        data
        for message in messages
        for row in message.buttons
        for _, data in row
        if data is not None and not data.startswith(("http://", "https://", "tg://"))
    ]


def callback_prefixes() -> set[str]:
    """Every kind of button the bot can show, from the modules that define them."""
    modules = {buttons.__name__, keyboards.__name__, staff_buttons.__name__}
    return {
        str(kind.__prefix__) for kind in CallbackData.__subclasses__() if kind.__module__ in modules
    }


class Alice:
    """Everything Alice has, and the ids that name it."""

    def __init__(self) -> None:
        self.customer_id = 0
        self.ticket_id = 0
        self.offer_id = 0
        self.response_id = 0
        self.question_id = 0
        self.survey_id = 0
        self.coupon = ""
        self.nonce = ""
        self.shown: list[str] = []

    def secrets(self) -> list[str]:
        return [
            ALICE_NAME,
            ALICE_PHONE.removeprefix("+86"),
            COMPLAINT,
            self.coupon,
            f"{BALANCE:,}",
            str(BALANCE),
        ]

    def forged(self) -> list[str]:
        """Every kind of button, filled with Alice's ids."""
        t, o, c = self.ticket_id, self.offer_id, self.customer_id
        r, q, s = self.response_id, self.question_id, self.survey_id
        return [
            *(buttons.Rate(ticket=t, score=score).pack() for score in range(1, 6)),
            buttons.SurveyAnswer(response=r, question=q, value=1).pack(),
            buttons.SurveySkip(response=r, question=q).pack(),
            buttons.SurveyOpen(response=r).pack(),
            buttons.SurveyOpen(survey=s).pack(),
            buttons.RewardConfirm(key="coffee", nonce=self.nonce).pack(),
            buttons.RewardPick(key="coffee").pack(),
            buttons.RewardCancel().pack(),
            buttons.FeedbackKind(kind="complaint").pack(),
            buttons.FeedbackSend().pack(),
            buttons.FeedbackCancel().pack(),
            buttons.TicketAction(action="close", ticket=t).pack(),
            buttons.TicketAction(action="take", ticket=t).pack(),
            buttons.GrantOffer(offer=o).pack(),
            buttons.RefreshCard(customer=c).pack(),
            buttons.CouponUsed(code=self.coupon).pack(),
            buttons.ProfileEdit(field="marketing_off").pack(),
            keyboards.Menu(item="tickets").pack(),
            keyboards.Language(code="zh").pack(),
            keyboards.OptOut().pack(),
            staff_buttons.CustomerPick(customer=c).pack(),
            staff_buttons.InboxAction(action="take", ticket=t).pack(),
            staff_buttons.InboxAction(action="reply", ticket=t).pack(),
            staff_buttons.InboxAction(action="close", ticket=t).pack(),
            staff_buttons.BroadcastStep(step="send", value="x").pack(),
            buttons.Forget(confirm=False).pack(),
            buttons.Forget(confirm=True).pack(),  # last: Bob forgets himself, not Alice
        ]


async def alice_with_everything(
    carebot: Carebot, telegram: Emulator, staff_chat: Chat
) -> tuple[Player, Alice]:
    player = telegram.customer(5101, ALICE_NAME, language_code="en", phone=ALICE_PHONE)
    alice = Alice()
    alice.customer_id = await registered(carebot, player)
    await player.shares_contact(expect=2)
    await purchase(carebot, player, alice.customer_id, "1234")

    await player.says("/rewards")
    confirm = await player.presses("A free coffee")
    alice.nonce = buttons.RewardConfirm.unpack(inline_data([confirm])[0]).nonce
    await player.presses_data(confirm.message_id, inline_data([confirm])[0])
    (coupon,) = await carebot.dp["rewards"].coupons_of(alice.customer_id)
    alice.coupon = coupon.code

    await player.says("/feedback")
    await player.presses("Complaint")
    await player.says(COMPLAINT)
    await player.presses("Send")
    ticket = None

    async def posted() -> bool:
        nonlocal ticket
        async with carebot.db.session() as session:
            ticket = await session.scalar(
                select(Ticket).where(Ticket.customer_id == alice.customer_id)
            )
        return ticket is not None and ticket.staff_chat_message_id is not None

    await eventually(posted)
    assert ticket is not None and ticket.staff_chat_message_id is not None
    alice.ticket_id = ticket.id
    owner = telegram.staff_member(OWNER_ID, "Olga", staff_chat, language_code="en")
    close = buttons.TicketAction(action="close", ticket=ticket.id).pack()
    owner.tg.user_presses(OWNER_ID, STAFF_CHAT, ticket.staff_chat_message_id, close)
    assert "⭐" in (await player.next_message()).buttons[0][0][0]

    offers = await player.says("/survey")
    first = await player.presses_data(offers.message_id, inline_data([offers])[0])
    answer = buttons.SurveyAnswer.unpack(inline_data([first])[0])
    alice.response_id, alice.question_id = answer.response, answer.question
    second = await player.presses_data(first.message_id, inline_data([first])[0])
    alice.question_id = buttons.SurveyAnswer.unpack(inline_data([second])[0]).question
    alice.survey_id = buttons.SurveyOpen.unpack(inline_data([offers])[0]).survey

    # A low rating on a second, closed ticket proposes an apology: its id is Alice's too.
    alice.offer_id = await low_rated_offer(carebot, alice.customer_id)
    await player.says("/profile")
    await player.says("/forgetme")
    alice.shown = inline_data(player.messages)
    return player, alice


async def low_rated_offer(carebot: Carebot, customer_id: int) -> int:
    tickets = carebot.dp["tickets"]
    opened = await tickets.open(customer_id, "question", "Second question", [])
    await tickets.close(opened.id, StaffRef(OWNER_ID, "Olga", Role.OWNER))
    rating = await tickets.rate(customer_id, opened.id, 1)
    assert rating.offer is not None
    return int(rating.offer.id)


@pytest.fixture
def policy(policy: Policy) -> Policy:
    """Bob sends a hundred updates in a few seconds; the flood limit is not under test."""
    return policy.model_copy(update={"flood": Flood(messages=10_000, seconds=1)})


async def quiet(carebot: Carebot, telegram: Emulator) -> None:
    """Everything received has been handled, and the bot has stopped talking."""
    seen = -1
    while seen != telegram.seq or await carebot.inbox.count_pending():
        seen = telegram.seq
        await asyncio.sleep(0.5)


def everything_received(telegram: Emulator, player: Player, answers: list[str]) -> list[str]:
    """The texts, captions, files and pop-ups the bot gave a player."""
    seen = [m.body for m in player.messages]
    seen += [m.media.data.decode("utf-8", "replace") for m in player.messages if m.media]
    return seen + answers


async def test_a_customer_never_reaches_another_customers_data(
    telegram: Emulator, carebot: Carebot, staff_chat: Chat
) -> None:
    _, alice = await alice_with_everything(carebot, telegram, staff_chat)
    privacy = carebot.dp["privacy"]
    before = await privacy.export(alice.customer_id)
    staff_seen = len(telegram.messages(STAFF_CHAT, from_bot=True))

    bob = telegram.customer(5102, "Bob", language_code="en")
    await registered(carebot, bob)
    ids = [
        str(alice.customer_id),
        "5101",
        f"#{alice.ticket_id}",
        alice.coupon,
        ALICE_PHONE,
        str(alice.response_id),
    ]
    for command in (*CUSTOMER_COMMANDS, "cancel"):
        for value in ids:
            await bob.says(f"/{command} {value}")
    await quiet(carebot, telegram)

    pressed = [*alice.shown, *alice.forged()]
    tried = {data.split(":", 1)[0] for data in pressed}
    assert callback_prefixes() <= tried, callback_prefixes() - tried
    answers = []
    for data in pressed:
        target = bob.last_message
        assert target is not None
        query = telegram.user_presses(bob.user_id, bob.chat_id, target.message_id, data)
        answer = await telegram.until(lambda q=query: q.answer, 5)  # type: ignore[misc]
        assert answer is not None, data
        answers.append(str(answer.get("text") or ""))
    await quiet(carebot, telegram)

    # What Bob typed may be echoed back to him ("I don't speak +86…"); nothing else may.
    received = []
    for text in everything_received(telegram, bob, answers):
        for typed in ids:
            text = text.replace(typed, "")
        received.append(text)
    for secret in alice.secrets():
        assert not [text for text in received if secret in text], secret
    staff_now = telegram.messages(STAFF_CHAT, from_bot=True)[staff_seen:]
    assert not [m.body for m in staff_now if ALICE_NAME in m.body or COMPLAINT in m.body]
    after = await privacy.export(alice.customer_id)
    assert {**after, "exported_at": None} == {**before, "exported_at": None}


API_TOKEN = "s3cret-token-for-tests-0123456789"


async def raw_request(port: int, head: str, body: bytes, timeout: float = 5) -> int:
    """Send bytes as they are, headers included, and return the HTTP status answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"\r\n\r\n" + body)
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), timeout)
        return int(status.split()[1])
    finally:
        writer.close()


async def test_the_api_wants_the_exact_token_in_the_header_only(
    start_app: AppFactory, db: Database
) -> None:
    app: Carebot = await start_app(API_TOKEN=API_TOKEN)
    base = f"http://127.0.0.1:{app.http_port}"
    sale = {"reference": "T-1", "phone": "13800138000", "amount": "10"}
    same_length = API_TOKEN[:-1] + ("0" if API_TOKEN[-1] != "0" else "1")
    attempts: list[tuple[str, dict[str, str]]] = [
        ("/api/purchases", {"Authorization": f"Bearer {same_length}"}),
        ("/api/purchases", {"Authorization": f"Basic {API_TOKEN}"}),
        ("/api/purchases", {"Authorization": API_TOKEN}),
        ("/api/purchases", {"X-Api-Token": API_TOKEN}),
        *(
            (f"/api/purchases?{key}={API_TOKEN}", {})
            for key in ("token", "api_token", "access_token")
        ),
    ]
    async with aiohttp.ClientSession() as http:
        for path, headers in attempts:
            async with http.post(base + path, json=sale, headers=headers) as response:
                assert response.status == 401, (path, headers)
        async with http.get(f"{base}/api/customers/1?token={API_TOKEN}") as response:
            assert response.status == 401
    async with db.session() as session:
        assert await session.scalar(select(func.count(Purchase.id))) == 0


async def test_bodies_larger_than_allowed_are_refused_whatever_they_claim(
    start_app: AppFactory, db: Database
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    await start_app(
        API_TOKEN=API_TOKEN, WEBHOOK_URL=url, WEBHOOK_SECRET="s3cret_token-123", HTTP_PORT=str(port)
    )
    big = b"[" + b"1," * (1024 * 1024) + b"1]"
    api = f"POST /api/purchases HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}"
    hook = f"POST /telegram/hook HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: s3cret_token-123"
    for head in (api, hook):
        # Claims 2 MB, sends 10 bytes: refused at once, without waiting for the rest.
        claimed = f"{head}\r\nContent-Type: application/json\r\nContent-Length: {2 * 1024 * 1024}"
        assert await raw_request(port, claimed, b"{}" * 5) == 413, head
        # No length at all, 2 MB in chunks: refused once the limit is passed.
        chunks = b"".join(
            f"{len(part):x}\r\n".encode() + part + b"\r\n"
            for part in (big[i : i + 65536] for i in range(0, len(big), 65536))
        )
        chunked = f"{head}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
        assert await raw_request(port, chunked, chunks + b"0\r\n\r\n") == 413
        # Claims 20 bytes and sends 2 MB: only the 20 bytes are the body, and they are not JSON.
        short = f"{head}\r\nContent-Type: application/json\r\nContent-Length: 20"
        assert await raw_request(port, short, big) == 400
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        assert response.status == 200
    async with db.session() as session:
        assert await session.scalar(select(func.count(Purchase.id))) == 0


async def test_the_webhook_wants_the_exact_secret_in_the_header_only(
    start_app: AppFactory, telegram: Emulator
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    secret = "s3cret_token-123"
    await start_app(WEBHOOK_URL=url, WEBHOOK_SECRET=secret, HTTP_PORT=str(port))
    update = {
        "update_id": 4343,
        "message": {
            "message_id": 1,
            "date": 0,
            "chat": {"id": 5103, "type": "private"},
            "from": {"id": 5103, "is_bot": False, "first_name": "Eve"},
            "text": "/start",
        },
    }
    async with aiohttp.ClientSession() as http:
        for target, headers in (
            (url, {SECRET_HEADER: secret[:-1] + "4"}),
            (url, {SECRET_HEADER: secret.upper()}),
            (f"{url}?secret_token={secret}", {}),
            (url, {"Authorization": f"Bearer {secret}"}),
        ):
            async with http.post(target, json=update, headers=headers) as response:
                assert response.status == 401, (target, headers)
    assert not telegram.messages(5103, from_bot=True)
