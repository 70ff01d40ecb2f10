"""Feedback and complaints (反馈 / 投诉): filing a ticket step by step, the customer's open
tickets, their later messages to staff, and rating how a closed ticket was handled."""

from __future__ import annotations

from typing import Any

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, Filter, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot import buttons
from bot.keyboards import Menu
from bot.say import Say
from bot.staff_inbox import RELAYED, StaffInbox
from models import Customer, TicketKind
from services.tickets import (
    MAX_ATTACHMENTS,
    TEXT_LIMIT,
    Attachment,
    RatingOutcome,
    TicketError,
    Tickets,
    TicketView,
)

router = Router(name=__name__)
router.message.filter(F.chat.type == ChatType.PRIVATE)
router.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)

# Words, not commands: a command during a step is answered by its own handler.
WORDS = F.text & ~F.text.startswith("/")


class FeedbackSteps(StatesGroup):
    kind = State()
    text = State()
    photos = State()


class RatingSteps(StatesGroup):
    comment = State()


class OpenTicket(Filter):
    """The customer has a ticket still open; it is handed to the handler as `ticket`."""

    async def __call__(
        self, message: Message, tickets: Tickets, customer: Customer | None = None
    ) -> bool | dict[str, Any]:
        if customer is None:
            return False
        ticket = await tickets.current(customer.id)
        return {"ticket": ticket} if ticket is not None else False


@router.message(Command("feedback"))
@router.callback_query(Menu.filter(F.item == "feedback"))
async def start_feedback(event: Message | CallbackQuery, state: FSMContext, say: Say) -> None:
    await state.set_state(FeedbackSteps.kind)
    await say(event, "feedback_kind", reply_markup=buttons.feedback_kinds(say.renderer, say.locale))


@router.callback_query(buttons.FeedbackKind.filter())
async def kind_chosen(
    query: CallbackQuery, callback_data: buttons.FeedbackKind, state: FSMContext, say: Say
) -> None:
    if callback_data.kind not in set(TicketKind):
        await say.notice(query, "stale_button")
        return
    await state.set_state(FeedbackSteps.text)
    await state.set_data({"kind": callback_data.kind})
    await say(query, "feedback_text", kind=say.label(f"kind_{callback_data.kind}"))
    await buttons.drop(query)


@router.message(FeedbackSteps.kind, WORDS)
async def kind_expected(message: Message, say: Say) -> None:
    await say(
        message, "feedback_kind", reply_markup=buttons.feedback_kinds(say.renderer, say.locale)
    )


@router.message(FeedbackSteps.text, WORDS)
@router.message(FeedbackSteps.text, F.photo, F.caption)
async def text_given(message: Message, state: FSMContext, say: Say) -> None:
    text = (message.text or message.caption or "").strip()
    if len(text) > TEXT_LIMIT:
        await say(message, "too_long", length=len(text), limit=TEXT_LIMIT)
        return
    photos = [message.photo[-1].file_id] if message.photo else []
    await state.update_data(text=text, photos=photos)
    await state.set_state(FeedbackSteps.photos)
    await _photos_so_far(message, say, len(photos))


async def _photos_so_far(message: Message, say: Say, photos: int) -> None:
    """How many photos the draft holds, with the button that sends it."""
    await say(
        message,
        "feedback_photos",
        photos=photos,
        limit=MAX_ATTACHMENTS,
        reply_markup=buttons.feedback_send(say.renderer, say.locale),
    )


@router.message(FeedbackSteps.text, ~F.text)
async def text_first(message: Message, say: Say) -> None:
    await say(message, "feedback_text_first")


@router.message(FeedbackSteps.photos, F.photo)
async def photo_added(message: Message, state: FSMContext, say: Say) -> None:
    assert message.photo is not None
    photos: list[str] = list((await state.get_data()).get("photos", []))
    if len(photos) >= MAX_ATTACHMENTS:
        await say(
            message,
            "feedback_photos_full",
            limit=MAX_ATTACHMENTS,
            reply_markup=buttons.feedback_send(say.renderer, say.locale),
        )
        return
    photos.append(message.photo[-1].file_id)
    await state.update_data(photos=photos)
    await _photos_so_far(message, say, len(photos))


@router.message(FeedbackSteps.photos, WORDS)
@router.message(FeedbackSteps.photos, ~F.text)
async def photo_expected(message: Message, say: Say) -> None:
    await say(
        message,
        "feedback_photo_expected",
        reply_markup=buttons.feedback_send(say.renderer, say.locale),
    )


@router.callback_query(FeedbackSteps.photos, buttons.FeedbackSend.filter())
async def send_feedback(
    query: CallbackQuery,
    customer: Customer,
    state: FSMContext,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    data = await state.get_data()
    try:
        ticket = await tickets.open(
            customer.id,
            str(data.get("kind", "")),
            str(data.get("text", "")),
            [Attachment("photo", file_id) for file_id in data.get("photos", [])],
        )
    except TicketError as error:
        await state.clear()
        await say(query, "feedback_invalid", reason=error.reason)
        return
    await state.clear()
    await say(query, "feedback_done", ticket=ticket)
    await buttons.drop(query)
    await staff_inbox.announce(ticket)


@router.callback_query(buttons.FeedbackCancel.filter())
async def cancel_feedback(query: CallbackQuery, state: FSMContext, say: Say) -> None:
    if await state.get_state() in FeedbackSteps:
        await state.clear()
    await say(query, "feedback_cancelled")
    await buttons.drop(query)


@router.callback_query(buttons.FeedbackSend.filter())
async def send_without_draft(query: CallbackQuery, say: Say) -> None:
    await say.notice(query, "stale_button")


@router.message(Command("tickets"))
@router.callback_query(Menu.filter(F.item == "tickets"))
async def show_tickets(
    event: Message | CallbackQuery, customer: Customer, tickets: Tickets, say: Say
) -> None:
    await say(event, "tickets", tickets=await tickets.open_of(customer.id))


# --- rating a closed ticket (CSAT) ---------------------------------------------------------


@router.callback_query(buttons.Rate.filter())
async def rated(
    query: CallbackQuery,
    callback_data: buttons.Rate,
    customer: Customer,
    state: FSMContext,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    rating = await tickets.rate(customer.id, callback_data.ticket, callback_data.score)
    if rating.outcome is RatingOutcome.ALREADY:
        await say.notice(query, "csat_already")
        return
    if rating.outcome is not RatingOutcome.RATED or rating.ticket is None:
        await say.notice(query, "stale_button")
        return
    if rating.low:
        await state.set_state(RatingSteps.comment)
        await state.set_data({"ticket": rating.ticket.id})
        await say(query, "csat_low", ticket=rating.ticket)
        await buttons.drop(query)
        await staff_inbox.low_rating(rating)
    else:
        await say(query, "csat_thanks", ticket=rating.ticket)
        await buttons.drop(query)
        await staff_inbox.rated(rating.ticket)


@router.message(RatingSteps.comment, WORDS)
async def what_went_wrong(
    message: Message,
    customer: Customer,
    state: FSMContext,
    tickets: Tickets,
    staff_inbox: StaffInbox,
    say: Say,
) -> None:
    assert message.text is not None
    ticket_id = int((await state.get_data()).get("ticket", 0))
    await state.clear()
    if await tickets.explain(customer.id, ticket_id, message.text):
        ticket = await tickets.get(ticket_id)
        if ticket is not None:
            await staff_inbox.what_went_wrong(ticket, message.text.strip()[:TEXT_LIMIT])
    await say(message, "csat_comment_thanks")


@router.message(RatingSteps.comment, ~F.text)
async def comment_in_words(message: Message, say: Say) -> None:
    await say(message, "csat_comment_in_words")


# --- later messages of a customer with an open ticket --------------------------------------


@router.message(WORDS, StateFilter(None), OpenTicket())
@router.message(~F.text, F.content_type.in_(RELAYED), StateFilter(None), OpenTicket())
async def to_staff(message: Message, ticket: TicketView, staff_inbox: StaffInbox, say: Say) -> None:
    if message.text is not None and len(message.text) > TEXT_LIMIT:
        await say(message, "too_long", length=len(message.text), limit=TEXT_LIMIT)
        return
    await staff_inbox.from_customer(message, ticket)
