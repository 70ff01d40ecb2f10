"""The staff group as the inbox: tickets, each customer's forum topic and pinned card, and
messages relayed both ways with word back on whether they arrived."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import html
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum
from typing import ParamSpec

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramForbiddenError
from aiogram.types import InlineKeyboardMarkup, Message

from bot import buttons
from bot.locks import KeyedLocks
from bot.pacing import GROUP_INTERVAL
from bot.rendering import Renderer
from services.customers import Customers
from services.outbox import Outbox, Outgoing
from services.tickets import (
    Attachment,
    CustomerCard,
    OfferView,
    Rating,
    StaffRef,
    Tickets,
    TicketView,
)

log = logging.getLogger("carebot.inbox")

# Telegram cannot copy a 1024-character caption into a topic.
CAPTION_LIMIT = 1023
CAPTIONED = {"photo", "document", "video", "audio", "voice", "animation"}
RELAYED = CAPTIONED | {"text", "sticker", "video_note"}


P = ParamSpec("P")


def tolerant(method: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """The staff group out of reach (the bot removed, a right missing) must not break the
    customer's conversation: what was stored stays stored, and the failure is logged."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await method(*args, **kwargs)
        except TelegramAPIError as error:
            log.error("staff group not updated (%s): %s", method.__name__, error)

    return guarded


class Delivery(StrEnum):
    DELIVERED = "delivered"
    BLOCKED = "blocked"
    ERASED = "erased"
    FAILED = "failed"


def attachments_of(message: Message) -> list[Attachment]:
    """The files a message carries, by the id Telegram lets the bot send them again with."""
    if message.photo:
        return [Attachment("photo", message.photo[-1].file_id)]
    for kind in ("document", "video", "audio", "voice", "animation", "sticker", "video_note"):
        media = getattr(message, kind, None)
        if media is not None:
            return [Attachment(kind, media.file_id)]
    return []


class StaffInbox:
    def __init__(
        self,
        bot: Bot,
        renderer: Renderer,
        tickets: Tickets,
        customers: Customers,
        outbox: Outbox,
        chat_id: int | None,
        wake: Callable[[], None],
    ) -> None:
        self.bot = bot
        self.renderer = renderer
        self.tickets = tickets
        self.customers = customers
        self.outbox = outbox
        self.chat_id = chat_id
        self.wake = wake
        self._forum: bool | None = None
        # Posts already in the staff group whose message id is not stored yet: a staff reply
        # to one of them can arrive (another chat, handled in parallel) before it is.
        self._recording: set[asyncio.Future[None]] = set()
        # Customers whose cards wait for a background refresh, in the order told.
        self._stale: dict[int, None] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._cards = KeyedLocks()

    @contextlib.asynccontextmanager
    async def _posting(self) -> AsyncIterator[None]:
        done = asyncio.get_running_loop().create_future()
        self._recording.add(done)
        try:
            yield
        finally:
            self._recording.discard(done)
            done.set_result(None)

    async def posts_recorded(self) -> None:
        """Returns once every post made so far in the staff group is stored with its id."""
        if self._recording:
            await asyncio.gather(*self._recording)

    @property
    def locale(self) -> str:
        """Everything the bot posts in the staff group is in the shop's default language."""
        return self.renderer.default_locale

    def text(self, template: str, /, **context: object) -> str:
        return self.renderer.render(template, self.locale, **context)

    def topic_name(self, card: CustomerCard | None) -> str:
        """A topic's name is plain text, not HTML: the escaping every template gets (a name
        such as "<b>A & B</b>") is undone, or staff would read "&lt;b&gt;"."""
        return html.unescape(self.text("staff_topic_name", card=card))[:128]

    async def is_forum(self) -> bool:
        """Whether the staff group has topics; asked once, remembered once known."""
        if self.chat_id is None:
            return False
        if self._forum is None:
            try:
                chat = await self.bot.get_chat(self.chat_id)
            except TelegramAPIError as error:
                log.warning("cannot read the staff group %s: %s", self.chat_id, error)
                return False
            self._forum = bool(chat.is_forum)
        return self._forum

    # --- topics and the card -------------------------------------------------------------

    async def thread_of(self, customer_id: int) -> int | None:
        """The customer's topic, opened with a pinned card when there is none yet; None
        when the group has no topics."""
        if self.chat_id is None or not await self.is_forum():
            return None
        topic = await self.tickets.topic(self.chat_id, customer_id)
        if topic is not None:
            return topic.thread_id
        card = await self.tickets.card(customer_id)
        if card is None:
            return None
        try:
            created = await self.bot.create_forum_topic(self.chat_id, self.topic_name(card))
        except TelegramAPIError as error:
            log.warning("no topic for customer %s, posting in General: %s", customer_id, error)
            return None
        topic = await self.tickets.save_topic(self.chat_id, customer_id, created.message_thread_id)
        if topic.thread_id != created.message_thread_id:
            # Another instance opened one first: keep theirs.
            with contextlib.suppress(TelegramAPIError):
                await self.bot.delete_forum_topic(self.chat_id, created.message_thread_id)
            return topic.thread_id
        await self.refresh_card(customer_id)
        return topic.thread_id

    @tolerant
    async def refresh_card(self, customer_id: int) -> None:
        """Show the customer's card as it is now: edited in place, or posted and pinned
        when missing. An unchanged card is left alone. One refresh at a time per
        customer: the card is read in several statements, so one read while a sale
        commits can be half old, and the refresh asked after the sale must land last."""
        if self.chat_id is None:
            return
        await self._refresh_card(self.chat_id, customer_id)

    async def _refresh_card(self, chat_id: int, customer_id: int) -> bool:
        """Whether the card was shown anew (edited or posted)."""
        async with self._cards.hold(customer_id):
            return await self._show_card(chat_id, customer_id)

    async def _show_card(self, chat_id: int, customer_id: int) -> bool:
        topic = await self.tickets.topic(chat_id, customer_id)
        card = await self.tickets.card(customer_id)
        if topic is None or card is None:
            return False
        text = self.text("staff_card", card=card)
        digest = hashlib.sha256(text.encode()).hexdigest()
        if topic.card_message_id is not None and topic.card_digest == digest:
            return False
        markup = buttons.refresh_card(self.renderer, self.locale, customer_id)
        if topic.card_message_id is not None:
            try:
                await self.bot.edit_message_text(
                    text,
                    chat_id=chat_id,
                    message_id=topic.card_message_id,
                    reply_markup=markup,
                )
            except TelegramBadRequest as error:
                if "not modified" not in error.message:
                    log.warning("card of customer %s not edited: %s", customer_id, error.message)
                    await self._post_card(topic.id, topic.thread_id, text, markup, digest)
                    return True
            await self.tickets.card_shown(topic.id, topic.card_message_id, digest)
            return True
        await self._post_card(topic.id, topic.thread_id, text, markup, digest)
        return True

    def points_changed(self, customer_ids: list[int]) -> None:
        """Told by the database once a transaction that wrote these customers' purchases
        or points has committed: their cards are refreshed in the background, never
        making the writer wait (a sale from the shop's till must not wait for Telegram).
        One refresh at a time, and a card shown at most every GROUP_INTERVAL seconds: a
        job that credits many customers at once must not use up the group's 20 messages a
        minute that new tickets need."""
        if self.chat_id is None:
            return
        self._stale.update(dict.fromkeys(customer_ids))
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.create_task(self._refresh_stale(self.chat_id))

    async def _refresh_stale(self, chat_id: int) -> None:
        while self._stale:
            customer_id = next(iter(self._stale))
            del self._stale[customer_id]
            try:
                shown = await self._refresh_card(chat_id, customer_id)
            except Exception:
                log.exception("card of customer %s not refreshed", customer_id)
                continue
            if shown and self._stale:
                await asyncio.sleep(GROUP_INTERVAL)

    async def settle(self) -> None:
        """Returns once the card refresh under way is done, for a clean shutdown; the
        cards still waiting are left as they are (their refresh button brings them up to
        date), so that stopping never waits for the pace."""
        self._stale.clear()
        if self._refresher is not None:
            await asyncio.gather(self._refresher, return_exceptions=True)

    async def _post_card(
        self, topic_id: int, thread_id: int, text: str, markup: InlineKeyboardMarkup, digest: str
    ) -> None:
        assert self.chat_id is not None
        posted = await self.bot.send_message(
            self.chat_id, text, message_thread_id=thread_id, reply_markup=markup
        )
        try:
            await self.bot.pin_chat_message(
                self.chat_id, posted.message_id, disable_notification=True
            )
        except TelegramAPIError as error:
            log.warning("card not pinned (the bot may lack the right): %s", error)
        await self.tickets.card_shown(topic_id, posted.message_id, digest)

    async def _send(
        self, customer_id: int, text: str, markup: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        """A message in the customer's topic (or the group); a topic deleted by hand is
        opened again."""
        if self.chat_id is None:
            return None
        thread = await self.thread_of(customer_id)
        try:
            return await self.bot.send_message(
                self.chat_id, text, message_thread_id=thread, reply_markup=markup
            )
        except TelegramBadRequest as error:
            if thread is None or "thread not found" not in error.message:
                raise
        await self.tickets.forget_topic(self.chat_id, customer_id)
        thread = await self.thread_of(customer_id)
        return await self.bot.send_message(
            self.chat_id, text, message_thread_id=thread, reply_markup=markup
        )

    # --- tickets -------------------------------------------------------------------------

    @tolerant
    async def announce(self, ticket: TicketView) -> None:
        """Post a new ticket, with its photos, where staff will see it."""
        if self.chat_id is None:
            return
        in_topic = await self.thread_of(ticket.customer_id) is not None
        card = await self.tickets.card(ticket.customer_id)
        async with self._posting():
            posted = await self._send(
                ticket.customer_id,
                self.text("staff_ticket", ticket=ticket, card=card, topics=in_topic),
                buttons.ticket_actions(self.renderer, self.locale, ticket.id, taken=False),
            )
            if posted is None:
                return
            await self.tickets.posted(ticket.id, posted.message_id)
        thread = posted.message_thread_id if posted.is_topic_message else None
        for attachment in ticket.attachments:
            await self._send_file(attachment, thread, posted.message_id)
        await self.refresh_card(ticket.customer_id)

    async def _send_file(self, attachment: Attachment, thread: int | None, reply_to: int) -> None:
        assert self.chat_id is not None
        try:
            if attachment.kind == "photo":
                await self.bot.send_photo(
                    self.chat_id,
                    attachment.file_id,
                    message_thread_id=thread,
                    reply_to_message_id=reply_to,
                )
            elif attachment.kind == "document":
                await self.bot.send_document(
                    self.chat_id,
                    attachment.file_id,
                    message_thread_id=thread,
                    reply_to_message_id=reply_to,
                )
        except TelegramAPIError as error:
            log.warning("attachment not posted: %s", error)

    @tolerant
    async def ticket_changed(self, ticket: TicketView) -> None:
        """The ticket's post shows its status; closed tickets lose their buttons."""
        if self.chat_id is None or ticket.staff_chat_message_id is None:
            return
        card = await self.tickets.card(ticket.customer_id)
        in_topic = await self.tickets.topic(self.chat_id, ticket.customer_id) is not None
        markup = (
            None
            if not ticket.is_open
            else buttons.ticket_actions(
                self.renderer, self.locale, ticket.id, taken=ticket.status == "taken"
            )
        )
        with contextlib.suppress(TelegramBadRequest):
            await self.bot.edit_message_text(
                self.text("staff_ticket", ticket=ticket, card=card, topics=in_topic),
                chat_id=self.chat_id,
                message_id=ticket.staff_chat_message_id,
                reply_markup=markup,
            )
        await self.refresh_card(ticket.customer_id)

    @tolerant
    async def from_customer(self, message: Message, ticket: TicketView) -> None:
        """A further message of the customer lands in their topic (or the group)."""
        kind = message.content_type
        text = message.text if kind == "text" else message.caption
        row_id = await self.tickets.customer_said(
            ticket.id, text, attachments_of(message), customer_message_id=message.message_id
        )
        if self.chat_id is None:
            return
        card = await self.tickets.card(ticket.customer_id)
        header = self.text("staff_from_customer", ticket=ticket, card=card, text=text or "")
        async with self._posting():
            if kind == "text":
                posted = await self._send(ticket.customer_id, header)
                copy_id = posted.message_id if posted else None
            else:
                thread = await self.thread_of(ticket.customer_id)
                copied = await self.bot.copy_message(
                    self.chat_id,
                    message.chat.id,
                    message.message_id,
                    message_thread_id=thread,
                    caption=header[:CAPTION_LIMIT] if kind in CAPTIONED else None,
                )
                copy_id = copied.message_id
            if copy_id is not None:
                await self.tickets.copied(row_id, copy_id)

    async def to_customer(self, message: Message, ticket: TicketView, staff: StaffRef) -> Delivery:
        """Relay a staff member's message to the customer as it is (text, photo, file)."""
        kind = message.content_type
        text = message.text if kind == "text" else message.caption
        row_id = await self.tickets.staff_said(
            ticket.id,
            staff,
            text,
            attachments_of(message),
            staff_chat_message_id=message.message_id,
        )
        customer = await self.customers.get(ticket.customer_id)
        outcome, error, copy_id = Delivery.DELIVERED, None, None
        if customer is None or customer.is_erased or customer.chat_id is None:
            outcome = Delivery.ERASED
        else:
            try:
                copied = await self.bot.copy_message(
                    customer.chat_id, message.chat.id, message.message_id
                )
                copy_id = copied.message_id
            except TelegramForbiddenError as failure:
                outcome, error = Delivery.BLOCKED, failure.message
            except TelegramBadRequest as failure:
                blocked = "chat not found" in failure.message
                outcome = Delivery.BLOCKED if blocked else Delivery.FAILED
                error = failure.message
            if outcome is Delivery.BLOCKED:
                await self.customers.mark_unreachable(customer.id)
        await self.tickets.delivered(
            row_id,
            ok=outcome is Delivery.DELIVERED,
            error=error or (None if outcome is Delivery.DELIVERED else outcome.value),
            customer_message_id=copy_id,
        )
        await message.reply(self.text("staff_relay_result", outcome=outcome.value, error=error))
        return outcome

    # --- ratings and apologies -------------------------------------------------------------

    async def ask_rating(self, ticket: TicketView) -> None:
        """Ask the customer how satisfied they are with how the ticket was handled."""
        customer = await self.customers.get(ticket.customer_id)
        if customer is None or customer.is_erased or customer.chat_id is None:
            return
        text = self.renderer.render("csat_ask", customer.locale, ticket=ticket)
        await self.outbox.enqueue(
            [
                Outgoing(
                    key=f"csat:{ticket.id}",
                    chat_id=customer.chat_id,
                    text=text,
                    kind="csat",
                    customer_id=customer.id,
                    reply_markup=buttons.rating(ticket.id).model_dump(exclude_none=True),
                )
            ]
        )
        self.wake()

    @tolerant
    async def low_rating(self, rating: Rating) -> None:
        """Alert the staff to a rating of 1-2, with the apology to grant by one button."""
        if self.chat_id is None or rating.ticket is None or rating.offer is None:
            return
        await self._send(
            rating.ticket.customer_id,
            self.text("staff_low_rating", ticket=rating.ticket, offer=rating.offer),
            buttons.grant_offer(self.renderer, self.locale, rating.offer.id),
        )
        await self.refresh_card(rating.ticket.customer_id)

    @tolerant
    async def rated(self, ticket: TicketView) -> None:
        await self.refresh_card(ticket.customer_id)

    @tolerant
    async def what_went_wrong(self, ticket: TicketView, text: str) -> None:
        if self.chat_id is None:
            return
        await self._send(
            ticket.customer_id, self.text("staff_rating_comment", ticket=ticket, text=text)
        )

    @tolerant
    async def offer_granted(self, offer: OfferView, staff: StaffRef) -> None:
        if self.chat_id is None:
            return
        await self._send(
            offer.customer_id, self.text("staff_offer_granted", offer=offer, staff=staff)
        )
        self.wake()
        await self.refresh_card(offer.customer_id)

    @tolerant
    async def customer_erased(self, customer_id: int) -> None:
        """The topic's name and card no longer say who the customer was."""
        if self.chat_id is None:
            return
        topic = await self.tickets.topic(self.chat_id, customer_id)
        if topic is None:
            return
        card = await self.tickets.card(customer_id)
        with contextlib.suppress(TelegramBadRequest):
            await self.bot.edit_forum_topic(
                self.chat_id, topic.thread_id, name=self.topic_name(card)
            )
        await self.refresh_card(customer_id)
